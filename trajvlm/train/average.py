"""Average the weights of several saved TrajVLMs fine-tuned from one starting point (a "model soup").

    python -m trajvlm.train.average --models A B [C ...] --out NEW

NEW/model.safetensors holds the element-wise mean of every floating-point tensor of the models (integer tensors
must be equal and are kept); config.json and the tokenizer / processor files come from the first model (not the
files of one training run, such as its connector-only checkpoint). The models must be the same architecture with
the same config (apart from bookkeeping such as `_name_or_path` and `use_cache`): every tensor name, shape and dtype
must match, or nothing is written. Averaging only makes sense for runs that started from the same weights (e.g. two
stage-2 runs of one model on different question draws, which stay in one basin of the loss, or a fine-tuned model and
the model it started from); check the result on held-out data. Used for the default model in session 13
(eval/results/default_model.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from .model_folder import (
    WEIGHTS,
    check_new_folder,
    config_file,
    copy_other_files,
    read_weights,
    weights_file,
)

# files of a training run's output folder that belong to that one run (finetune_trajvlm.py writes them), not to the
# average: not copied. Tokenizer, processor and generation configs are.
RUN_FILES = {"connector.safetensors", "training_args.bin", "train_summary.json", "param_groups.json"}
# config fields that say where a model came from or how it was last run, not what it is (training saves its
# LLM with use_cache off, so a fine-tuned model and the model it started from differ there)
_BOOKKEEPING = {"_name_or_path", "transformers_version", "use_cache"}


def _config(model_dir: Path) -> dict:
    return _strip(json.loads(config_file(model_dir).read_text()))


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _BOOKKEEPING}
    return obj


def average_models(model_dirs: list[Path], out: Path) -> int:
    """Write OUT = the weight average of MODEL_DIRS (>= 2); returns the number of averaged tensors."""
    if len(model_dirs) < 2:
        raise ValueError(f"give at least two models to average, got {len(model_dirs)}")
    if len({Path(m).resolve() for m in model_dirs}) != len(model_dirs):
        raise ValueError("the same model is given twice")
    for m in model_dirs:
        check_new_folder(m, out)
    first_cfg = _config(model_dirs[0])
    for m in model_dirs[1:]:
        if _config(m) != first_cfg:
            raise ValueError(f"{m}: its config.json differs from {model_dirs[0]}'s: only the same architecture and "
                             "config can be averaged")
    base, metadata = read_weights(weights_file(model_dirs[0]))
    sums = {k: t.double() if t.is_floating_point() else t for k, t in base.items()}
    for m in model_dirs[1:]:
        other, _ = read_weights(weights_file(m))
        if set(other) != set(base):
            diff = sorted(set(other) ^ set(base))[:5]
            raise ValueError(f"{m}: its tensors differ from {model_dirs[0]}'s (e.g. {diff})")
        for k, t in other.items():
            if t.shape != base[k].shape or t.dtype != base[k].dtype:
                raise ValueError(f"{m}: tensor {k} is {tuple(t.shape)} {t.dtype}, "
                                 f"{model_dirs[0]} has {tuple(base[k].shape)} {base[k].dtype}")
            if t.is_floating_point():
                sums[k] = sums[k] + t.double()
            elif not torch.equal(t, base[k]):
                raise ValueError(f"{m}: integer tensor {k} differs from {model_dirs[0]}'s (it cannot be averaged)")
    n = len(model_dirs)
    mean = {k: ((s / n).to(base[k].dtype) if base[k].is_floating_point() else s).contiguous() for k, s in sums.items()}
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file(mean, Path(out) / WEIGHTS, metadata={**(metadata or {}), "format": "pt"})  # transformers reads "pt"
    copy_other_files(model_dirs[0], out, {WEIGHTS} | RUN_FILES)
    return sum(t.is_floating_point() for t in base.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, nargs="+", required=True, help="saved TrajVLM folders (>= 2, one config)")
    p.add_argument("--out", type=Path, required=True, help="new model folder")
    args = p.parse_args(argv)
    n = average_models(args.models, args.out)
    print(f"{args.out}: mean of {len(args.models)} models ({n} floating-point tensors averaged)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
