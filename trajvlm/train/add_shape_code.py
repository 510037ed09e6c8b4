"""Give a saved TrajVLM's trajectory tokens a shape code of their own without changing what it answers.

    python -m trajvlm.train.add_shape_code --model MODEL --out NEW [--shape-dim 64] [--seed 0]

NEW's TrajTok config gets ``shape_dim`` S: every trajectory token is the D-wide latent followed by an S-wide code
of the trajectory's box-aligned (shape) features (``TrajEncoder``), so the projector reads D + S inputs. The code's
layers start from a seeded random init and the projector's new input columns from zero, so NEW computes exactly
what MODEL does; continued stage-2 training (finetune_trajvlm.py --model_name_or_path NEW) then learns to use the
code (the columns get a gradient from the first step). Everything else -- vision tower, segmenter, LLM, tokenizer,
processor -- is kept. MODEL must use the trajtok connector with ``roi_size`` > 0 and no shape code yet. Tracks cached
for MODEL (``--track_cache_dir``) stay valid for NEW: the cache's fingerprint leaves ``shape_dim`` out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from trajvlm.model import TrajVLMForConditionalGeneration
from trajvlm.trajtok import TrajTokConfig
from trajvlm.trajtok.encoder import TrajEncoder

from .model_folder import (
    SAVED,
    check_new_folder,
    config_file,
    copy_other_files,
    load_model,
)


def widen_input(linear: nn.Linear, extra: int) -> nn.Linear:
    """A Linear taking `extra` more inputs (appended, zero weights): same outputs on the old inputs whatever the new."""
    wide = nn.Linear(linear.in_features + extra, linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, : linear.in_features] = linear.weight  # (out, in + extra)
        if linear.bias is not None:
            wide.bias.copy_(linear.bias)
    return wide.to(linear.weight.dtype)


def add_shape_code(model: TrajVLMForConditionalGeneration, shape_dim: int, seed: int = 0) -> None:
    """In place: model's TrajTok emits (D + shape_dim)-wide tokens, its projector reads them; outputs unchanged."""
    if model.config.connector != "trajtok":
        raise ValueError(f"add_shape_code: the model uses the {model.config.connector!r} connector, not trajtok")
    old = model.config.trajtok_config
    if old.shape_dim:
        raise ValueError(f"add_shape_code: the model already has a shape code (shape_dim={old.shape_dim})")
    if isinstance(shape_dim, bool) or not isinstance(shape_dim, int) or shape_dim < 1:
        raise ValueError(f"add_shape_code: shape_dim must be an int >= 1, got {shape_dim!r}")
    if not old.roi_size:
        raise ValueError("add_shape_code: the model's TrajTok has roi_size 0 (no box-aligned features to code)")
    new = TrajTokConfig.from_dict({**old.to_dict(), "shape_dim": shape_dim})
    with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's random state alone
        torch.manual_seed(seed)
        encoder = TrajEncoder(new).to(next(model.connector.encoder.parameters()).dtype)
        projector_in = widen_input(model.projector.linear_1, shape_dim)  # (its init is overwritten, but draws)
    missing, unexpected = encoder.load_state_dict(model.connector.encoder.state_dict(), strict=False)
    if unexpected or any(not k.startswith("shape_") for k in missing):
        raise RuntimeError(f"add_shape_code: encoder weights do not line up (missing {missing}, unexpected {unexpected})")
    model.connector.encoder = encoder
    model.connector.config = new
    model.config.trajtok_config = new
    model.projector.linear_1 = projector_in


def add_shape_code_folder(model_dir: Path, out: Path, shape_dim: int, seed: int = 0) -> int:
    """Write OUT = MODEL with a shape code; returns the new token width."""
    config_file(model_dir)
    check_new_folder(model_dir, out)
    model = load_model(model_dir)
    add_shape_code(model, shape_dim, seed)
    model.save_pretrained(out)
    copy_other_files(model_dir, out, SAVED)
    return model.config.trajtok_config.token_dim


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a saved TrajVLM folder (trajtok connector, roi_size > 0)")
    p.add_argument("--out", type=Path, required=True, help="new model folder")
    p.add_argument("--shape-dim", type=int, default=64, help="width S of the shape code (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the code layers' random init (default 0)")
    args = p.parse_args(argv)
    if args.shape_dim < 1:
        p.error("--shape-dim must be >= 1")
    width = add_shape_code_folder(args.model, args.out, args.shape_dim, args.seed)
    print(f"{args.out}: {args.model} with a {args.shape_dim}-wide shape code on every trajectory token ({width} wide)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
