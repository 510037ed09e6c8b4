"""Segmenter-only training: ConvBackbone + TrajSegmenter with the Hungarian segmentation loss on ShapesQA.

    OMP_NUM_THREADS=1 python -m trajvlm.data.synthetic --out data/shapesqa --num-videos 500 --seed 0
    OMP_NUM_THREADS=1 python scripts/train_segmenter.py --data data/shapesqa --out checkpoints/segmenter

Writes OUT/backbone (ConvBackbone.save_pretrained, safetensors), OUT/trajtok (TrajTok.save_pretrained:
config.json + trajtok.safetensors; the encoder is untrained), OUT/train_log.json (curve) and prints a
markdown table of step / train loss / val mIoU.

Val mIoU is Hungarian-matched mean IoU over object trajectories (background excluded) on the feature grid:
"video" runs the whole TrajTok (chunks of frames_per_chunk + cross-chunk linking) over each full val video,
"chunk" scores each chunk's raw segmenter argmax separately (no linking).
Object level (trajvlm.trajtok.object_counts, on the same whole-video TrajTok output): "count match" is the
fraction of val videos whose kept trajectories (TrajTok's own selection: area > min_area), minus the background
one, are exactly as many as the GT objects; "object recall" is the fraction of GT objects (pooled over videos)
matched one-to-one to a kept trajectory with IoU >= 0.5.

    python scripts/train_segmenter.py --data DIR --eval-only runs/trajtok_segmenter   # score a saved segmenter
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trajvlm.trajtok import TrajTok, TrajTokConfig, matched_miou, segmentation_loss
from trajvlm.trajtok.metrics import object_counts, summarize_object_counts
from trajvlm.video.io import load_video
from trajvlm.vision.conv_backbone import ConvBackbone, ConvBackboneConfig


@dataclass
class Clip:
    vid: str
    frames: np.ndarray  # (T,H,W,3) uint8
    masks: np.ndarray  # (T,H,W) instance ids, the smallest unsigned int dtype that holds them (memory)
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
        masks = np.load(f"{stem}_mask.npz")["masks"]
        masks = masks.astype(np.uint8 if masks.min() >= 0 and masks.max() < 256 else np.int64)
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
    return np.stack(fr), torch.from_numpy(np.stack(ms)).long(), gs


@torch.no_grad()
def evaluate(backbone: ConvBackbone, trajtok: TrajTok, clips: list[Clip]) -> dict[str, float]:
    backbone.eval()
    trajtok.eval()
    fpc = trajtok.config.frames_per_chunk
    video_scores, chunk_scores, counts = [], [], []
    for c in clips:
        feats = features_of(backbone, to_pixels(c.frames, backbone.config)).unsqueeze(0)  # (1,T,h,w,C)
        out = trajtok(feats)
        masks = torch.from_numpy(c.masks).long().unsqueeze(0)  # (1,T,H,W)
        video_scores.append(matched_miou(out.hard_ids, masks, [torch.from_numpy(c.graph)]))
        counts += object_counts(out.hard_ids, out.trajectory_ids, masks, [torch.from_numpy(c.graph)])
        slots = out.assignment_logits.argmax(-1)  # (1,T,h,w) per-chunk slot ids
        for s in range(0, feats.shape[1], fpc):
            g = torch.from_numpy(c.graph[:, s : s + fpc])
            if (g != 0).any():
                chunk_scores.append(matched_miou(slots[:, s : s + fpc], masks[:, s : s + fpc], [g]))
    backbone.train()
    trajtok.train()
    errors = np.array([c.count_error for c in counts])
    return {
        "video_miou": float(np.mean(video_scores)),
        "chunk_miou": float(np.mean(chunk_scores)),
        **summarize_object_counts(counts),
        "count_errors": {int(e): int((errors == e).sum()) for e in np.unique(errors)},  # kept - GT -> videos
    }


def fmt_eval(ev: dict) -> str:
    return (
        f"video mIoU {ev['video_miou']:.3f} chunk mIoU {ev['chunk_miou']:.3f} count match {ev['count_match']:.3f} "
        f"object recall {ev['object_recall']:.3f}"
    )


def load_segmenter(directory: Path) -> tuple[ConvBackbone, TrajTok]:
    """What --out holds: DIR/backbone (ConvBackbone.save_pretrained) + DIR/trajtok (TrajTok.save_pretrained).

    DIR may also be a saved TrajVLM folder (config.json of model_type "trajvlm" with a ConvBackbone vision tower and
    the trajtok connector): its vision tower and TrajTok are taken, so the segmenter of a trained model can be
    continued (--init DIR --freeze-backbone) and put back with scripts/replace_segmenter.py."""
    model_config = directory / "config.json"
    if model_config.is_file() and json.loads(model_config.read_text()).get("model_type") == "trajvlm":
        return segmenter_of_model(directory)
    missing = [d for d in ("backbone", "trajtok") if not (directory / d / "config.json").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a saved segmenter (scripts/train_segmenter.py --out) nor a TrajVLM folder: "
            f"no {' or '.join(missing)}/config.json"
        )
    return ConvBackbone.from_pretrained(directory / "backbone"), TrajTok.from_pretrained(directory / "trajtok")


def segmenter_of_model(directory: Path) -> tuple[ConvBackbone, TrajTok]:
    """The vision tower and TrajTok connector of a saved TrajVLM (safetensors, no remote code)."""
    from trajvlm.model import TrajVLMForConditionalGeneration

    model = TrajVLMForConditionalGeneration.from_pretrained(directory)
    backbone = model.vision_tower.model
    if model.config.connector != "trajtok" or not isinstance(backbone, ConvBackbone):
        raise ValueError(
            f"{directory}: only a TrajVLM with the trajtok connector and a ConvBackbone vision tower has a segmenter "
            f"this script trains (connector {model.config.connector!r}, vision tower {type(backbone).__name__})"
        )
    return backbone, model.connector


def save_segmenter(directory: Path, backbone: ConvBackbone, trajtok: TrajTok) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    backbone.save_pretrained(directory / "backbone")
    trajtok.save_pretrained(directory / "trajtok")


def print_table(log: list[dict], final: dict | None, num_val: int) -> None:
    print(
        "\n| step | train loss | val video mIoU | val chunk mIoU | count match | object recall | CPU minutes |"
        "\n|---:|---:|---:|---:|---:|---:|---:|"
    )
    for e in log:
        loss = "-" if e["loss"] is None else f"{e['loss']:.3f}"
        print(
            f"| {e['step']} | {loss} | {e['video_miou']:.3f} | {e['chunk_miou']:.3f} | {e['count_match']:.3f} "
            f"| {e['object_recall']:.3f} | {e['minutes']} |"
        )
    if final is not None:
        print(
            f"| final ({final['label']}), all {num_val} val videos | | {final['video_miou']:.3f} | "
            f"{final['chunk_miou']:.3f} | {final['count_match']:.3f} | {final['object_recall']:.3f} | |"
        )
        print(f"count error (kept - GT objects) -> videos: {final['count_errors']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="ShapesQA folder")
    p.add_argument("--out", type=Path, help="where backbone/ and trajtok/ are written (required unless --eval-only)")
    p.add_argument(
        "--eval-only", type=Path, default=None, metavar="DIR",
        help="no training: score DIR/{backbone,trajtok} on the whole val split and print the table row",
    )
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
    p.add_argument(
        "--train-limit", type=int, default=None, help="train on the first N train videos (default: all)"
    )
    p.add_argument(
        "--save-best", choices=("video_miou", "count_match", "object_recall"), default=None,
        help="after every evaluation that beats the best so far on this val metric, write --out right away "
        "(usable while training runs); the final evaluation and --out are then of the best weights. "
        "Default: save the last weights once, at the end",
    )
    p.add_argument(
        "--save-min", type=float, default=None,
        help="with --save-best: write --out during training only once the metric also exceeds this value "
        "(e.g. the figure of the checkpoint it is meant to replace, from --eval-only with the same --val-limit)",
    )
    p.add_argument(
        "--init", type=Path, default=None, metavar="DIR",
        help="start from a saved segmenter (DIR/{backbone,trajtok}, this script's --out) instead of from scratch; "
        "its architecture is kept (--num-queries, --hidden-dim, --refine-* are then not used)",
    )
    p.add_argument(
        "--freeze-backbone", action="store_true",
        help="train only the segmenter, the backbone fixed (with --init: a TrajVLM built on that backbone keeps the "
        "features its trajectory encoder and LLM were trained on)",
    )
    p.add_argument("--num-queries", type=int, default=10)
    p.add_argument("--hidden-dim", type=int, default=64)
    p.add_argument("--refine-layers", type=int, default=2)
    p.add_argument(
        "--refine-dilation", type=int, default=1,
        help="refine block i uses spatial dilation refine_dilation**i (capped at 8); 1 = the original blocks",
    )
    p.add_argument(
        "--refine-temporal", action="store_true",
        help="refine blocks convolve over (t,h,w) instead of each frame alone (pixel embeddings see motion)",
    )
    p.add_argument("--min-area", type=int, default=8, help="saved TrajTok config: drop trajectories with <= this many cells")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--focal-weight", type=float, default=20.0)
    p.add_argument("--dice-weight", type=float, default=1.0)
    p.add_argument("--ce-weight", type=float, default=1.0)
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.clip_frames < 1 or args.eval_every < 1:
        p.error("--steps, --batch, --clip-frames and --eval-every must be >= 1")
    if args.out is None and args.eval_only is None:
        p.error("--out is required unless --eval-only")

    if args.eval_only is not None:
        backbone, trajtok = load_segmenter(args.eval_only)
        val = load_split(args.data, "val", args.val_limit)
        cpu0 = time.process_time()
        final = {**evaluate(backbone, trajtok, val), "label": str(args.eval_only)}
        print(f"{args.eval_only} on {len(val)} val videos: {fmt_eval(final)} "
              f"({(time.process_time() - cpu0) / 60:.1f} CPU min)", flush=True)
        print_table([], final, len(val))
        return 0

    # a saved segmenter to continue is read before the (large) data, so a wrong --init fails at once
    init = load_segmenter(args.init) if args.init is not None else None
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_load = time.perf_counter()
    train, val = load_split(args.data, "train", args.train_limit), load_split(args.data, "val", args.val_limit)
    print(f"loaded {len(train)} train / {len(val)} val videos in {time.perf_counter() - t_load:.1f} s", flush=True)

    if init is not None:
        backbone, trajtok = init
        bb_cfg = backbone.config
        if bb_cfg.image_size != train[0].frames.shape[1]:
            p.error(f"--init {args.init}: its backbone takes {bb_cfg.image_size}px frames, the data has "
                    f"{train[0].frames.shape[1]}px")
        if trajtok.config.frames_per_chunk != args.clip_frames:
            p.error(f"--init {args.init}: its TrajTok chunks {trajtok.config.frames_per_chunk} frames, "
                    f"--clip-frames is {args.clip_frames}")
        print(f"initialised from {args.init}", flush=True)
    else:
        bb_cfg = ConvBackboneConfig(image_size=int(train[0].frames.shape[1]))
        backbone = ConvBackbone(bb_cfg)
        tt_cfg = TrajTokConfig(
            feature_dim=bb_cfg.hidden_size,
            hidden_dim=args.hidden_dim,
            num_queries=args.num_queries,
            frames_per_chunk=args.clip_frames,
            refine_layers=args.refine_layers,
            refine_dilation=args.refine_dilation,
            refine_temporal=args.refine_temporal,
            min_area=args.min_area,
        )
        trajtok = TrajTok(tt_cfg)
    if args.freeze_backbone:
        backbone.requires_grad_(False)
    params = [q for q in list(backbone.parameters()) + list(trajtok.segmenter.parameters()) if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    def write_log(final: dict | None, num_val: int) -> None:
        (args.out / "train_log.json").write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "curve": log, "final": final, "val_videos": num_val},
                indent=1,
            )
        )

    log: list[dict] = []
    best: dict | None = None  # {"step", "value", "state"} of the best evaluation so far (--save-best)
    start, cpu_start = time.perf_counter(), time.process_time()
    ev = evaluate(backbone, trajtok, val)
    log.append({"step": 0, "loss": None, **ev, "minutes": 0.0})
    print(f"step 0 val {fmt_eval(ev)}", flush=True)
    running, step = [], 0
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr_at(step - 1)
        frames, masks, graphs = sample_batch(train, args.batch, args.clip_frames, rng)
        B, T = frames.shape[:2]
        pixels = to_pixels(frames.reshape(B * T, *frames.shape[2:]), bb_cfg)
        with torch.set_grad_enabled(not args.freeze_backbone):
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
            print(f"step {step} loss {entry['loss']:.3f} val {fmt_eval(ev)} ({minutes:.1f} CPU min, {wall:.1f} wall min)", flush=True)
            if args.save_best is not None and (best is None or ev[args.save_best] > best["value"]):
                best = {
                    "step": step,
                    "value": ev[args.save_best],
                    "state": ({k: v.clone() for k, v in backbone.state_dict().items()},
                              {k: v.clone() for k, v in trajtok.state_dict().items()}),
                }
                if args.save_min is None or best["value"] > args.save_min:
                    save_segmenter(args.out, backbone, trajtok)
                    write_log(None, len(val))
                    print(f"  best {args.save_best} so far: wrote {args.out} ({time.strftime('%H:%M:%S')})", flush=True)
        if out_of_time:
            print(f"stopping at step {step}: --max-minutes {args.max_minutes} reached", flush=True)
            break

    label = f"last weights, step {step}"
    if best is not None:
        backbone.load_state_dict(best["state"][0])
        trajtok.load_state_dict(best["state"][1])
        label = f"best {args.save_best} weights, step {best['step']}"
    full_val = val if args.val_limit is None else load_split(args.data, "val")
    final = {**evaluate(backbone, trajtok, full_val), "label": label}
    print(f"final ({label}, {len(full_val)} val videos): {fmt_eval(final)}", flush=True)
    save_segmenter(args.out, backbone, trajtok)
    write_log(final, len(full_val))
    print_table(log, final, len(full_val))
    print(f"\nsaved {args.out}/backbone and {args.out}/trajtok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
