"""Finetuning throughput (samples/s): TrajVLM vs the patch baseline, same frames, same LLM, one run, alternating.

    OMP_NUM_THREADS=1 trajvlm bench train --frames 16 64 --batch 4 --steps 6 --out eval/results/train_throughput.md

Both models start from the same weights (the TrajVLM under test and a deep copy of its vision tower + LLM with
the patch connector, 2x2 pooling, and a fresh projector). Stage-2 setting: the vision tower is frozen; the LLM,
the connector and the projector train (AdamW). A step is forward + backward + optimizer step on one batch of
ShapesQA val clips (raw frames, pre-processed once, outside the timing) with their captions as targets, LM loss
only (``--seg-loss`` adds TrajTok's segmentation loss on the clips' exact masks, which only TrajVLM can use).
Steps alternate between the variants (A B, B A, ...); after ``--warmup`` steps each, every step is timed and
the table reports batch / median step time. ``--bf16`` also times a copy of the TrajVLM cast to bfloat16 (the
dtype DeepSpeed's bf16 mode computes in; its float32 master-weight update is not part of the step here) and
reports bf16 ÷ float32 samples/s.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch

from .args import build_parser
from .common import (
    load_bench_model,
    machine_info,
    patch_twin,
    print_results,
    record_header,
    single_thread,
    write_text,
)
from .videos import shapesqa_val_examples

BF16 = "trajvlm_bf16"


def make_batch(processor, examples, num_frames: int):
    """ShapesQA clips -> BatchFeature (input_ids, attention_mask, labels, pixel_values_videos) + masks/graphs."""
    convs = [[{"from": "human", "value": "<video>\nDescribe the video."}, {"from": "gpt", "value": ex.caption}]
             for ex in examples]
    batch = processor(convs, [ex.frames[:num_frames] for ex in examples], return_labels=True, padding_side="right")
    masks = [torch.from_numpy(ex.masks[:num_frames].astype("int64")) for ex in examples]
    graphs = [torch.from_numpy(ex.graph[:, :num_frames].astype("int64")) for ex in examples]
    return batch, masks, graphs


def train_step(model, optimizer, batch, masks=None, graphs=None) -> tuple[float, float]:
    """One optimizer step; returns (seconds, loss)."""
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    kw = {"video_masks": masks, "video_graphs": graphs} if masks is not None else {}
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                pixel_values_videos=batch["pixel_values_videos"], labels=batch["labels"], **kw)
    out.loss.backward()
    optimizer.step()
    return time.perf_counter() - t0, float(out.loss.detach())


def prepare(model) -> torch.optim.Optimizer:
    model.train()
    model.vision_tower.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=1e-5)


def run(bm, frame_counts, *, batch_size: int, steps: int, warmup: int, seg_loss: bool, bf16: bool = False,
        log=print) -> list[dict]:
    traj = bm.model
    patch = patch_twin(traj, share=False)
    models = {"trajvlm": traj, **({BF16: copy.deepcopy(traj).to(torch.bfloat16)} if bf16 else {}), "patch": patch}
    variants = tuple(models)  # timed in this order, then reversed, alternately
    opts = {k: prepare(m) for k, m in models.items()}
    trainable = {k: sum(p.numel() for p in m.parameters() if p.requires_grad) for k, m in models.items()}
    rows = []
    for t in frame_counts:
        examples = shapesqa_val_examples(batch_size, frames=max(t, 8), needle_frames=max(t, 20),
                                         size=traj.config.image_size)
        batch, masks, graphs = make_batch(bm.processor, examples, t)
        with torch.no_grad():
            tokens = {k: m.encode_video(batch["pixel_values_videos"][:1]).num_tokens[0] for k, m in models.items()}
        times: dict[str, list[float]] = {k: [] for k in variants}
        losses: dict[str, list[float]] = {k: [] for k in variants}
        for i in range(warmup + steps):
            for v in (variants if i % 2 == 0 else variants[::-1]):
                use_seg = seg_loss and v != "patch"
                dt, loss = train_step(models[v], opts[v], batch, masks if use_seg else None, graphs if use_seg else None)
                if i >= warmup:
                    times[v].append(dt)
                    losses[v].append(loss)
                log(f"  T={t} step {i} {v}: {dt:.2f} s, loss {loss:.3f}{' (warm-up)' if i < warmup else ''}")
        for v in variants:
            med = statistics.median(times[v])
            rows.append({"frames": t, "variant": v, "batch": batch_size, "visual_tokens_per_sample": tokens[v],
                         "step_s_median": med, "step_s_min": min(times[v]), "step_s_max": max(times[v]),
                         "samples_per_s": batch_size / med, "trainable_params": trainable[v], "step_s": times[v],
                         "losses": losses[v]})
    return rows


def table(rows: list[dict]) -> str:
    with_bf16 = any(r["variant"] == BF16 for r in rows)
    head = ["frames", "variant", "visual tokens / sample", "step s, median (min-max)", "samples/s",
            "TrajVLM ÷ patch samples/s"] + (["bf16 ÷ float32 samples/s"] if with_bf16 else [])
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---:"] * len(head)) + "|"]
    patch = {r["frames"]: r for r in rows if r["variant"] == "patch"}
    fp32 = {r["frames"]: r for r in rows if r["variant"] == "trajvlm"}
    for r in rows:
        b = patch.get(r["frames"])
        ratio = f"{r['samples_per_s'] / b['samples_per_s']:.1f}x" if b and r["variant"] != "patch" else ""
        cells = [str(r["frames"]), r["variant"], f"{r['visual_tokens_per_sample']:,}",
                 f"{r['step_s_median']:.2f} ({r['step_s_min']:.2f}-{r['step_s_max']:.2f})", f"{r['samples_per_s']:.2f}",
                 ratio]
        if with_bf16:
            f = fp32.get(r["frames"])
            cells.append(f"{r['samples_per_s'] / f['samples_per_s']:.2f}x" if f and r["variant"] == BF16 else "")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None, prog: str = "trajvlm bench train") -> int:
    parser = build_parser("train", prog, __doc__)
    return run_cli(parser.parse_args(argv), parser)


def run_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    single_thread()
    info = machine_info()
    bm = load_bench_model(args.model, args.segmenter)
    t0 = time.perf_counter()
    rows = run(bm, args.frames, batch_size=args.batch, steps=args.steps, warmup=args.warmup, seg_loss=args.seg_loss,
               bf16=args.bf16, log=lambda s: print(s, file=sys.stderr, flush=True))
    wall = time.perf_counter() - t0
    tab = table(rows)
    print_results(tab, args.json, rows)
    if args.out:
        md = [
            *record_header("# Finetuning throughput: TrajVLM vs the patch baseline (CPU)", parser, args, info),
            "",
            f"Model: {bm.source}. Trainable parameters: "
            + ", ".join(f"{r['variant']} {r['trainable_params']:,}" for r in rows if r["frames"] == rows[0]["frames"])
            + f" (vision tower frozen; LLM + connector + projector train, AdamW). Batch {args.batch} ShapesQA val "
            f"clips, caption targets, {'LM + segmentation loss for TrajVLM' if args.seg_loss else 'LM loss only'}; "
            f"{args.warmup} warm-up + {args.steps} timed steps per variant, alternating; wall time {wall / 60:.1f} min.",
            "",
            tab,
            "",
            "Raw step times (s):",
            "",
            "```",
            *(f"{r['frames']:>4} {r['variant']:>8}: " + " ".join(f"{x:.2f}" for x in r["step_s"]) for r in rows),
            "```",
            "",
        ]
        write_text(args.out, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
