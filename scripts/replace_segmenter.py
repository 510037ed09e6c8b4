"""Put a (further trained) segmenter into a saved TrajVLM: a copy of the model folder whose segmenter weights are
replaced, everything else byte-for-byte the same.

    python scripts/train_segmenter.py --data DIR --init MODEL --freeze-backbone --out SEG ...   # continue MODEL's
    python scripts/replace_segmenter.py --model MODEL --segmenter SEG --out NEW                 # and put it back

SEG is a train_segmenter.py --out folder (or another TrajVLM folder). Only the `connector.segmenter.*` tensors
change; the trajectory encoder, projector and LLM are MODEL's. The segmenter's backbone must be MODEL's vision
tower bit for bit (train it with --freeze-backbone): the trajectory encoder and LLM were trained on those features,
and the segmenter reads them. Its architecture must match MODEL's (same tensor names and shapes). Then continue
stage 2 on the new trajectories (finetune_trajvlm.py --model_name_or_path NEW); the new segmenter alone, without
that, scored lower in eval/results/default_model.md (session 9).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from trajvlm.train.model_folder import (
    WEIGHTS,
    check_new_folder,
    copy_other_files,
    read_weights,
    weights_file,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_segmenter import load_segmenter  # noqa: E402

SEGMENTER_PREFIX = "connector.segmenter."
TOWER_PREFIX = "vision_tower.model."


def replace_segmenter(model_dir: Path, segmenter_dir: Path, out: Path) -> int:
    """Write OUT = MODEL with SEG's segmenter; returns the number of tensors that changed value."""
    src = weights_file(model_dir)
    check_new_folder(model_dir, out)
    weights, _ = read_weights(src)
    backbone, trajtok = load_segmenter(segmenter_dir)

    tower = {k[len(TOWER_PREFIX):]: v for k, v in weights.items() if k.startswith(TOWER_PREFIX)}
    theirs = backbone.state_dict()
    if tower.keys() != theirs.keys() or any(not torch.equal(tower[k], theirs[k]) for k in tower):
        raise ValueError(
            f"{segmenter_dir}: its backbone is not {model_dir}'s vision tower (train it with --init {model_dir} "
            "--freeze-backbone): the model's trajectory encoder and LLM were trained on that tower's features"
        )
    new = {SEGMENTER_PREFIX + k: v for k, v in trajtok.segmenter.state_dict().items()}
    old = {k: v for k, v in weights.items() if k.startswith(SEGMENTER_PREFIX)}
    if old.keys() != new.keys() or any(old[k].shape != new[k].shape for k in old):
        raise ValueError(f"{segmenter_dir}: its segmenter's architecture (tensor names / shapes) differs from {model_dir}'s")
    changed = sum(not torch.equal(old[k], new[k]) for k in old)

    copy_other_files(model_dir, out, {WEIGHTS})
    weights.update({k: v.to(old[k].dtype).contiguous() for k, v in new.items()})
    save_file(weights, out / WEIGHTS, metadata={"format": "pt"})
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a saved TrajVLM folder (trajtok connector)")
    p.add_argument("--segmenter", type=Path, required=True, help="scripts/train_segmenter.py --out folder")
    p.add_argument("--out", type=Path, required=True, help="new model folder")
    args = p.parse_args(argv)
    changed = replace_segmenter(args.model, args.segmenter, args.out)
    print(f"{args.out}: {args.model} with the segmenter of {args.segmenter} ({changed} tensors changed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
