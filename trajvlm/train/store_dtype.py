"""Store a saved TrajVLM's weights in a narrower dtype, computing in the same dtype as before.

    python -m trajvlm.train.store_dtype --model MODEL --out NEW [--dtype bfloat16]

NEW/model.safetensors holds every floating-point tensor of MODEL rounded to `--dtype` (integer tensors unchanged);
config.json and every other file are copied unchanged. The config keeps its compute dtype (`"dtype": "float32"`),
so `from_pretrained(NEW)` -- and `dtype="auto"` -- builds a float32 model and upcasts the stored weights on load
(exactly: every bfloat16 value is a float32 value); pass `dtype=torch.bfloat16` to compute in bfloat16 instead.
Half the bytes on disk for the same parameter count: room for a deeper LLM under the default model's 25 MB budget
(eval/results/default_model.md, session 11; the shipped model itself is still stored in float32). Rounding to
bfloat16 keeps 8 significant bits; on the session-10 model it changed 3 of the 898 ShapesQA test answers (net +1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from .model_folder import (
    WEIGHTS,
    check_new_folder,
    copy_other_files,
    read_weights,
    weights_file,
)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def store_dtype(model_dir: Path, out: Path, dtype: str = "bfloat16") -> tuple[int, int]:
    """Write OUT = MODEL with its floating-point weights stored as `dtype`; returns (old bytes, new bytes) of the
    weights file."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    src = weights_file(model_dir)
    check_new_folder(model_dir, out)
    tensors, metadata = read_weights(src)
    target = DTYPES[dtype]
    cast = {k: (t.to(target) if t.is_floating_point() else t).contiguous() for k, t in tensors.items()}
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file(cast, Path(out) / WEIGHTS, metadata={**(metadata or {}), "format": "pt"})  # transformers reads "pt"
    copy_other_files(model_dir, out, {WEIGHTS})
    return src.stat().st_size, (Path(out) / WEIGHTS).stat().st_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a saved TrajVLM folder (one model.safetensors)")
    p.add_argument("--out", type=Path, required=True, help="new model folder")
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES), help="storage dtype (default bfloat16)")
    args = p.parse_args(argv)
    old, new = store_dtype(args.model, args.out, args.dtype)
    print(f"{args.out}: {args.model} stored as {args.dtype}, {old / 1e6:.1f} MB -> {new / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
