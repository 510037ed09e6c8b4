"""Deepen the Llama of a saved TrajVLM without changing what it answers, then keep training it.

    python -m trajvlm.train.deepen --model MODEL --out NEW [--every 2]

After every `every`-th decoder block a copy of that block is inserted whose attention output projection
(`o_proj`) and MLP output projection (`down_proj`) are zero: the copy adds nothing to the residual stream, so NEW
computes exactly what MODEL does (LLaMA-Pro style block expansion). Continued stage-2 training
(finetune_trajvlm.py --model_name_or_path NEW) then gives the copies something to do. Everything but the LLM --
vision tower, TrajTok, projector, tokenizer, processor -- is kept as it is. Used for the default model in session 10
(4 -> 6 blocks, eval/results/default_model.md).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from torch import nn

from .model_folder import (
    SAVED,
    check_new_folder,
    config_file,
    copy_other_files,
    load_model,
)


def deepen_llama(language_model: nn.Module, every: int) -> int:
    """Insert an identity-initialised copy after every `every`-th decoder block, in place; returns the new depth."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    decoder, cfg = language_model.model, language_model.config
    types = getattr(cfg, "layer_types", None)  # one attention type per block, when the config lists them
    blocks, new_types = [], []
    for i, block in enumerate(decoder.layers):
        copies = [block]
        if (i + 1) % every == 0:
            twin = copy.deepcopy(block)
            try:
                outputs = (twin.self_attn.o_proj, twin.mlp.down_proj)
            except AttributeError as e:
                raise ValueError(f"{type(block).__name__}: not a Llama-style block (self_attn.o_proj, mlp.down_proj)") from e
            with torch.no_grad():
                for proj in outputs:
                    proj.weight.zero_()
                    if proj.bias is not None:
                        proj.bias.zero_()
            copies.append(twin)
        blocks += copies
        if types is not None:
            new_types += [types[i]] * len(copies)
    for j, block in enumerate(blocks):
        block.self_attn.layer_idx = j  # KV-cache slot
    decoder.layers = nn.ModuleList(blocks)
    cfg.num_hidden_layers = len(blocks)
    if types is not None:
        cfg.layer_types = new_types
    return len(blocks)


def deepen_model(model_dir: Path, out: Path, every: int) -> tuple[int, int]:
    """Write OUT = MODEL with a deeper LLM; returns (old depth, new depth)."""
    config_file(model_dir)
    check_new_folder(model_dir, out)
    model = load_model(model_dir)
    old = model.config.text_config.num_hidden_layers
    new = deepen_llama(model.language_model, every)
    model.config.text_config = model.language_model.config
    model.save_pretrained(out)
    copy_other_files(model_dir, out, SAVED)
    return old, new


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a saved TrajVLM folder")
    p.add_argument("--out", type=Path, required=True, help="new model folder")
    p.add_argument("--every", type=int, default=2, help="insert a copy after every N-th block (default 2: 4 -> 6)")
    args = p.parse_args(argv)
    if args.every < 1:
        p.error("--every must be >= 1")
    old, new = deepen_model(args.model, args.out, args.every)
    print(f"{args.out}: {args.model} with its LLM deepened from {old} to {new} blocks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
