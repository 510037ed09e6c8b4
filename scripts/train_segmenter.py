"""Segmenter-only training: ConvBackbone + TrajSegmenter with the Hungarian segmentation loss on ShapesQA.

    OMP_NUM_THREADS=1 python -m trajvlm.data.synthetic --out data/shapesqa --num-videos 500 --seed 0
    OMP_NUM_THREADS=1 python scripts/train_segmenter.py --data data/shapesqa --out checkpoints/segmenter

Writes OUT/backbone (ConvBackbone.save_pretrained, safetensors), OUT/trajtok (TrajTok.save_pretrained:
config.json + trajtok.safetensors; the encoder is untrained), OUT/train_log.json (curve) and prints a
markdown table of step / train loss / val mIoU.

Val mIoU is Hungarian-matched mean IoU over object trajectories (background excluded) on the feature grid:
"video" runs the whole TrajTok (chunks of frames_per_chunk + cross-chunk linking) over each full val video,
"chunk" scores each chunk's raw segmenter argmax separately (no linking).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trajvlm.trajtok import TrajTok, TrajTokConfig, matched_miou, segmentation_loss
from trajvlm.video.io import load_video
from trajvlm.vision.conv_backbone import ConvBackbone, ConvBackboneConfig


@dataclass
class Clip:
    vid: str
    frames: np.ndarray  # (T,H,W,3) uint8
    masks: np.ndarray  # (T,H,W) int64
    graph: np.ndarray  # (N,T) int64


def load_split(root: Path, split: str, limit: int | None = None) -> list[Clip]:
    """Read a ShapesQA split (DIR/<split>_captions.json lists each video once) with its mask sidecars."""
    index = root / f"{split}_captions.json"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: is {root} a ShapesQA folder (python -m trajvlm.data.synthetic)?")
    clips = []
    for entry in json.loads(index.read_text())[:limit]:
        video = root / entry["video"]
        stem = video.with_suffix("")
        frames = load_video(video, max_frames=None).frames  # (T,H,W,3) uint8, every frame
        masks = np.load(f"{stem}_mask.npz")["masks"].astype(np.int64)
        graph = np.load(f"{stem}_graph.npz")["graph"].astype(np.int64)
        if masks.shape[0] != frames.shape[0] or graph.shape[1] != frames.shape[0]:
            raise ValueError(
                f"{video}: {frames.shape[0]} frames but masks {masks.shape} / graph {graph.shape}"
            )
        clips.append(Clip(entry["id"], frames, masks, graph))
    return clips


def to_pixels(frames: np.ndarray, cfg: ConvBackboneConfig) -> torch.Tensor:
    """(T,H,W,3) uint8 -> (T,3,H,W) normalised float."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(cfg.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.image_std).view(1, 3, 1, 1)
    return (x - mean) / std


def features_of(backbone: ConvBackbone, pixels: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """(T,3,H,W) -> (T,h,w,C), chunked over frames to bound memory."""
    return torch.cat([backbone(p) for p in pixels.split(chunk)])


def sample_batch(clips: list[Clip], batch: int, frames: int, rng: np.random.Generator):
    fr, ms, gs = [], [], []
    for i in rng.integers(0, len(clips), batch):
        c = clips[i]
        T = c.frames.shape[0]
        s = int(rng.integers(0, T - frames + 1)) if T > frames else 0
        f, m, g = c.frames[s : s + frames], c.masks[s : s + frames], c.graph[:, s : s + frames]
        if rng.random() < 0.5:  # flips change nothing about identity; cheap augmentation
            f, m = f[:, :, ::-1], m[:, :, ::-1]
        if rng.random() < 0.5:
            f, m = f[:, ::-1], m[:, ::-1]
        fr.append(np.ascontiguousarray(f))
        ms.append(np.ascontiguousarray(m))
        gs.append(torch.from_numpy(g))
    return np.stack(fr), torch.from_numpy(np.stack(ms)), gs


@torch.no_grad()
def evaluate(backbone: ConvBackbone, trajtok: TrajTok, clips: list[Clip]) -> dict[str, float]:
    backbone.eval()
    trajtok.eval()
    fpc = trajtok.config.frames_per_chunk
    video_scores, chunk_scores = [], []
    for c in clips:
        feats = features_of(backbone, to_pixels(c.frames, backbone.config)).unsqueeze(0)  # (1,T,h,w,C)
        out = trajtok(feats)
        masks = torch.from_numpy(c.masks).unsqueeze(0)
        video_scores.append(matched_miou(out.hard_ids, masks, [torch.from_numpy(c.graph)]))
        slots = out.assignment_logits.argmax(-1)  # (1,T,h,w) per-chunk slot ids
        for s in range(0, feats.shape[1], fpc):
            g = torch.from_numpy(c.graph[:, s : s + fpc])
            if (g != 0).any():
                chunk_scores.append(matched_miou(slots[:, s : s + fpc], masks[:, s : s + fpc], [g]))
    backbone.train()
    trajtok.train()
    return {"video_miou": float(np.mean(video_scores)), "chunk_miou": float(np.mean(chunk_scores))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="ShapesQA folder")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument(
        "--max-minutes", type=float, default=20.0,
        help="safety cap: stop training after this much CPU time of this process (600 steps take ~10 on one core)",
    )
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--clip-frames", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=75)
    p.add_argument(
        "--val-limit", type=int, default=None, help="evaluate on the first N val videos during training (final: all)"
    )
    p.add_argument("--num-queries", type=int, default=10)
    p.add_argument("--hidden-dim", type=int, default=64)
    p.add_argument("--refine-layers", type=int, default=2)
    p.add_argument("--min-area", type=int, default=8, help="saved TrajTok config: drop trajectories with <= this many cells")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--focal-weight", type=float, default=20.0)
    p.add_argument("--dice-weight", type=float, default=1.0)
    p.add_argument("--ce-weight", type=float, default=1.0)
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.clip_frames < 1 or args.eval_every < 1:
        p.error("--steps, --batch, --clip-frames and --eval-every must be >= 1")

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_load = time.perf_counter()
    train, val = load_split(args.data, "train"), load_split(args.data, "val", args.val_limit)
    print(f"loaded {len(train)} train / {len(val)} val videos in {time.perf_counter() - t_load:.1f} s", flush=True)

    bb_cfg = ConvBackboneConfig(image_size=int(train[0].frames.shape[1]))
    backbone = ConvBackbone(bb_cfg)
    tt_cfg = TrajTokConfig(
        feature_dim=bb_cfg.hidden_size,
        hidden_dim=args.hidden_dim,
        num_queries=args.num_queries,
        frames_per_chunk=args.clip_frames,
        refine_layers=args.refine_layers,
        min_area=args.min_area,
    )
    trajtok = TrajTok(tt_cfg)
    params = list(backbone.parameters()) + list(trajtok.segmenter.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    log: list[dict] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    ev = evaluate(backbone, trajtok, val)
    log.append({"step": 0, "loss": None, **ev, "minutes": 0.0})
    print(f"step 0 val video mIoU {ev['video_miou']:.3f} chunk mIoU {ev['chunk_miou']:.3f}", flush=True)
    running, step = [], 0
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr_at(step - 1)
        frames, masks, graphs = sample_batch(train, args.batch, args.clip_frames, rng)
        B, T = frames.shape[:2]
        pixels = to_pixels(frames.reshape(B * T, *frames.shape[2:]), bb_cfg)
        feats = backbone(pixels)
        feats = feats.view(B, T, *feats.shape[1:])  # (B,T,h,w,C)
        loss = segmentation_loss(
            trajtok.segment(feats),
            masks,
            graphs,
            focal_weight=args.focal_weight,
            dice_weight=args.dice_weight,
            ce_weight=args.ce_weight,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running.append(loss.item())
        minutes = (time.process_time() - cpu_start) / 60  # CPU minutes: robust to other load on the machine
        out_of_time = minutes >= args.max_minutes
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            ev = evaluate(backbone, trajtok, val)
            wall = (time.perf_counter() - start) / 60
            entry = {"step": step, "loss": float(np.mean(running)), **ev, "minutes": round(minutes, 2), "wall_minutes": round(wall, 2)}
            log.append(entry)
            running = []
            print(
                f"step {step} loss {entry['loss']:.3f} val video mIoU {ev['video_miou']:.3f} "
                f"chunk mIoU {ev['chunk_miou']:.3f} ({minutes:.1f} CPU min, {wall:.1f} wall min)",
                flush=True,
            )
        if out_of_time:
            print(f"stopping at step {step}: --max-minutes {args.max_minutes} reached", flush=True)
            break

    full_val = val if args.val_limit is None else load_split(args.data, "val")
    final = evaluate(backbone, trajtok, full_val)
    print(
        f"final ({len(full_val)} val videos): video mIoU {final['video_miou']:.3f} chunk mIoU {final['chunk_miou']:.3f}",
        flush=True,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    backbone.save_pretrained(args.out / "backbone")
    trajtok.save_pretrained(args.out / "trajtok")
    (args.out / "train_log.json").write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "curve": log, "final": final, "val_videos": len(full_val)},
            indent=1,
        )
    )
    print("\n| step | train loss | val video mIoU | val chunk mIoU | CPU minutes |\n|---:|---:|---:|---:|---:|")
    for e in log:
        loss = "-" if e["loss"] is None else f"{e['loss']:.3f}"
        print(f"| {e['step']} | {loss} | {e['video_miou']:.3f} | {e['chunk_miou']:.3f} | {e['minutes']} |")
    print(
        f"| final, all {len(full_val)} val videos | | {final['video_miou']:.3f} | {final['chunk_miou']:.3f} | |", flush=True
    )
    print(f"\nsaved {args.out}/backbone and {args.out}/trajtok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
