"""TrajTok throughput and token count vs video length: trained segmenter vs untrained vs patch tokens.

    OMP_NUM_THREADS=1 python eval/bench_trajtok.py --checkpoint checkpoints/segmenter [--frames 16 64 256 1024]

One ShapesQA scene (sampled at 16 frames from --seed) is played over T frames (same objects, same paths,
timings and speeds stretched by T/16), rendered, and run through ConvBackbone + TrajTok for each T:

- "trained": backbone + TrajTok from --checkpoint (train_segmenter.py output; the encoder is untrained,
  which does not change throughput or token count);
- "untrained": the same architecture, freshly initialised (seeded);
- "patch": one token per feature cell, T*h*w (what a patch connector without pooling would feed the LLM).

Throughput is segmenter + encoder (+ linking) frames/s on precomputed features, streamed chunk by chunk
(`TrajTok.tokenize_chunks`, keep_maps=False), best of --repeats; backbone frames/s is reported separately.
The hard ids of the same run are scored with matched_miou against the rendered masks.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from trajvlm.data.synthetic import SceneConfig, render_scene, sample_scene
from trajvlm.trajtok import TrajTok, matched_miou
from trajvlm.vision.conv_backbone import ConvBackbone


def stretch_scene(scene, num_frames: int):
    """The same scene played over num_frames frames: timings scaled, speeds divided by the same factor."""
    f = num_frames / scene.num_frames
    objs = tuple(
        dataclasses.replace(
            o,
            t_start=int(round(o.t_start * f)),
            t_end=min(num_frames - 1, int(round((o.t_end + 1) * f)) - 1),
            speed=o.speed / f,
        )
        for o in scene.objects
    )
    return dataclasses.replace(scene, num_frames=num_frames, objects=objs)


def pixels_of(frames: np.ndarray, cfg) -> torch.Tensor:
    """(T,H,W,3) uint8 -> (T,3,H,W) normalised."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(cfg.image_mean).view(1, 3, 1, 1)) / torch.tensor(cfg.image_std).view(1, 3, 1, 1)


@torch.no_grad()
def run(backbone: ConvBackbone, trajtok: TrajTok, frames: np.ndarray, masks: np.ndarray, graph: np.ndarray, repeats: int):
    fpc = trajtok.config.frames_per_chunk
    pix = pixels_of(frames, backbone.config)
    t0 = time.perf_counter()
    feats = torch.cat([backbone(p) for p in pix.split(fpc)]).unsqueeze(0)  # (1,T,h,w,C)
    bb_s = time.perf_counter() - t0
    T, h, w = feats.shape[1:4]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = trajtok.tokenize_chunks(feats.split(fpc, dim=1), keep_maps=False)
        best = min(best, time.perf_counter() - t0)
    # one more pass keeping the maps, for the quality figure (not timed)
    full = trajtok.tokenize_chunks(feats.split(fpc, dim=1))
    miou = matched_miou(full.hard_ids, torch.from_numpy(masks.astype(np.int64))[None], [torch.from_numpy(graph.astype(np.int64))])
    return {
        "tokens": out.num_tokens[0],
        "trajectories": int(out.tokens[0].shape[0]),
        "patch_tokens": T * h * w,
        "fps": T / best,
        "backbone_fps": T / bb_s,
        "miou": miou,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, type=Path, help="train_segmenter.py --out folder")
    p.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256, 1024])
    p.add_argument("--seed", type=int, default=3, help="scene seed")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    trained_bb = ConvBackbone.from_pretrained(args.checkpoint / "backbone").eval()
    trained_tt = TrajTok.from_pretrained(args.checkpoint / "trajtok").eval()
    torch.manual_seed(0)
    fresh_bb = ConvBackbone(trained_bb.config).eval()
    fresh_tt = TrajTok(trained_tt.config).eval()
    cfg = trained_tt.config

    base = sample_scene(np.random.default_rng(args.seed), SceneConfig(size=trained_bb.config.image_size, num_frames=16))
    print(
        f"scene seed {args.seed}: {base.num_objects} objects ("
        + ", ".join(f"{o.description} t{o.t_start}-{o.t_end} {o.direction}" for o in base.objects)
        + f"); K={cfg.num_queries}, q={cfg.tokens_per_trajectory}, frames_per_chunk={cfg.frames_per_chunk}, "
        f"min_area={cfg.min_area}, torch threads={torch.get_num_threads()}"
    )
    rows = []
    for T in args.frames:
        frames, masks, graph = render_scene(stretch_scene(base, T))
        a = run(trained_bb, trained_tt, frames, masks, graph, args.repeats)
        b = run(fresh_bb, fresh_tt, frames, masks, graph, args.repeats)
        rows.append((T, a, b))
        print(f"  T={T} done", file=sys.stderr, flush=True)

    print(
        "\n| frames | patch tokens (T·h·w) | trained: trajectories | trained: tokens | untrained: tokens "
        "| patch / trained | untrained / trained | trained fps | untrained fps | backbone fps | trained mIoU | untrained mIoU |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for T, a, b in rows:
        print(
            f"| {T} | {a['patch_tokens']:,} | {a['trajectories']} | {a['tokens']} | {b['tokens']} "
            f"| {a['patch_tokens'] / max(a['tokens'], 1):,.0f}x | {b['tokens'] / max(a['tokens'], 1):.2f}x "
            f"| {a['fps']:.0f} | {b['fps']:.0f} | {a['backbone_fps']:.0f} | {a['miou']:.3f} | {b['miou']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
