"""Give a saved TrajVLM a new LLM of the same shape, keeping everything else (vision tower, TrajTok, projector,
tokenizer, processor).

    python -m trajvlm.train.swap_llm fresh --model MODEL --out LLM [--seed 0]
    python -m trajvlm.train.swap_llm put --model MODEL --llm LLM --out NEW

``fresh`` writes LLM = a randomly initialised Llama of MODEL's LLM configuration with MODEL's tokenizer: a folder
``text_warmup --llm LLM`` trains in place. ``put`` writes NEW = MODEL with LLM's weights as its language model; LLM
must have MODEL's LLM configuration (apart from bookkeeping such as ``use_cache``) and, when it carries a tokenizer,
the same vocabulary, or nothing is written. Used in session 20 to rebuild the default model: the shipped model's LLM
could not learn to tell two same-coloured objects apart (eval/results/default_model.md, sessions 16-19), so a fresh
Llama was taught that first (``text_warmup --probe-steps``) and put in its place, then stage 1 and stage 2 retrained
the connector and LLM on video (direction better, temporal order worse: not shipped; "Session 20").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

from trajvlm.model.modeling_trajvlm import CONFIG_BOOKKEEPING

from .lookup_probe import fresh_like
from .model_folder import (
    SAVED,
    check_new_folder,
    config_file,
    copy_other_files,
    load_model,
    weights_file,
)

# LLM config fields that say how it was saved or last run, not what it is (training saves its LLM with use_cache off)
_BOOKKEEPING = {*CONFIG_BOOKKEEPING, "use_cache"}


def _shape(config) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in _BOOKKEEPING}


def write_fresh_llm(model_dir: Path, out: Path, seed: int = 0) -> int:
    """Write OUT = a random-init Llama of MODEL_DIR's LLM config + MODEL_DIR's tokenizer; returns its parameter count."""
    config_file(model_dir)
    check_new_folder(model_dir, out)
    model = load_model(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    llm = fresh_like(model.language_model, seed)
    llm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in llm.parameters())


def put_llm(model_dir: Path, llm_dir: Path, out: Path) -> None:
    """Write OUT = MODEL_DIR with LLM_DIR's weights as its language model (same config and vocabulary required)."""
    config_file(model_dir)
    config_file(llm_dir)
    weights_file(llm_dir)
    check_new_folder(model_dir, out)
    model = load_model(model_dir)
    want, got = _shape(model.config.text_config), _shape(AutoConfig.from_pretrained(llm_dir))
    diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
    if diff:
        raise ValueError(f"{llm_dir}: its config differs from {model_dir}'s LLM in "
                         + ", ".join(f"{k} ({got.get(k)!r} vs {want.get(k)!r})" for k in diff))
    has_tokenizer = (Path(llm_dir) / "tokenizer_config.json").is_file()
    if has_tokenizer and AutoTokenizer.from_pretrained(llm_dir).get_vocab() != AutoTokenizer.from_pretrained(model_dir).get_vocab():
        raise ValueError(f"{llm_dir}: its tokenizer's vocabulary is not {model_dir}'s")
    llm = load_model(llm_dir, LlamaForCausalLM)
    model.language_model.load_state_dict(llm.state_dict(), strict=True)
    model.save_pretrained(out)
    copy_other_files(model_dir, out, SAVED)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fresh", help="write a randomly initialised Llama of the model's LLM config + its tokenizer")
    f.add_argument("--model", type=Path, required=True, help="a saved TrajVLM folder")
    f.add_argument("--out", type=Path, required=True, help="new LLM folder")
    f.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("put", help="write the model with another LLM of the same config in place of its own")
    q.add_argument("--model", type=Path, required=True, help="a saved TrajVLM folder")
    q.add_argument("--llm", type=Path, required=True, help="an LLM folder (e.g. one `fresh` wrote, then warmed up)")
    q.add_argument("--out", type=Path, required=True, help="new model folder")
    args = p.parse_args(argv)
    if args.command == "fresh":
        n = write_fresh_llm(args.model, args.out, args.seed)
        print(f"{args.out}: a fresh Llama of {args.model}'s LLM config ({n / 1e6:.2f} M parameters) + its tokenizer")
    else:
        put_llm(args.model, args.llm, args.out)
        print(f"{args.out}: {args.model} with {args.llm} as its LLM")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
