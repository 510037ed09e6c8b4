"""TrajTok's segmenter vs a classical pipeline: per-frame graph segmentation / superpixels (scikit-image) linked
over time by optical-flow propagation (OpenCV Farneback). Frames/s on the same videos and matched mIoU against
the exact ShapesQA masks.

    OMP_NUM_THREADS=1 trajvlm bench segmenter --num-videos 8 --out eval/results/segmenter_vs_classical.md

- TrajTok: uint8 frames -> video processor -> vision tower -> TrajTok (segmenter per 16-frame chunk, cross-chunk
  linking, trajectory encoder) -> hard trajectory id per feature cell (``encode_video_chunks(keep_maps=True)``).
  The tokens are produced too; the timing covers the whole path.
- classical: frame t is segmented on its own (``skimage.segmentation.felzenszwalb`` or ``slic``); the track ids
  of frame t-1 are warped into frame t with the dense backward flow (``cv2.calcOpticalFlowFarneback`` t -> t-1,
  ``cv2.remap`` nearest); a segment inherits the id that covers >= half of its pixels when it also covers
  >= ``track_cover`` of that track's warped area (else a small segment is swallowed by the background track),
  otherwise it starts a new track. Ids are per pixel.

mIoU: ``trajvlm.trajtok.matched_miou`` (Hungarian matching of predicted ids to GT trajectories over the whole
clip, background takes part in the matching but is not averaged). TrajTok is scored on its feature grid (GT
majority-downsampled); the classical pipeline at full pixel resolution and also on the same grid (ids sampled at
cell centres). Timings are single-thread, best of ``--repeats`` per video, on frames already in memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .args import build_parser
from .common import (
    load_bench_model,
    machine_info,
    print_results,
    record_header,
    single_thread,
    write_text,
)
from .videos import bigbuckbunny, shapesqa_val_examples

METHODS = ("felzenszwalb", "slic")


@dataclass
class ClassicalParams:
    method: str = "felzenszwalb"
    fz_scale: float = 50.0  # felzenszwalb: larger = larger segments
    fz_sigma: float = 0.5
    fz_min_size: int = 12  # px
    slic_segments: int = 64
    slic_compactness: float = 10.0
    inherit_fraction: float = 0.5  # a segment continues a track if >= this fraction of it lands on the track
    track_cover: float = 0.25  # ... and it covers >= this fraction of the track's warped area (stops a small segment
    #                            from being swallowed by a large track such as the background)
    flow: dict = field(default_factory=lambda: {"pyr_scale": 0.5, "levels": 2, "winsize": 9, "iterations": 3,
                                                 "poly_n": 5, "poly_sigma": 1.1, "flags": 0})


def segment_frame(frame: np.ndarray, p: ClassicalParams) -> np.ndarray:
    """(H,W,3) uint8 -> (H,W) int64 segment labels 0..n-1."""
    from skimage.segmentation import felzenszwalb, slic

    if p.method == "felzenszwalb":
        return felzenszwalb(frame, scale=p.fz_scale, sigma=p.fz_sigma, min_size=p.fz_min_size).astype(np.int64)
    if p.method == "slic":
        return slic(frame, n_segments=p.slic_segments, compactness=p.slic_compactness, start_label=0).astype(np.int64)
    raise ValueError(f"unknown method {p.method!r}; expected one of {METHODS}")


def classical_track(frames: np.ndarray, p: ClassicalParams) -> np.ndarray:
    """frames (T,H,W,3) uint8 -> track ids (T,H,W) int64 (per-frame segmentation + flow propagation)."""
    import cv2

    T, H, W, _ = frames.shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = np.empty((T, H, W), dtype=np.int64)
    prev_gray = prev_ids = None
    next_id = 0
    for t in range(T):
        seg = segment_frame(frames[t], p)  # (H,W) 0..n-1
        n = int(seg.max()) + 1
        gray = cv2.cvtColor(frames[t], cv2.COLOR_RGB2GRAY)
        if prev_ids is None:
            ids = seg + next_id
            next_id += n
        else:
            flow = cv2.calcOpticalFlowFarneback(gray, prev_gray, None, **p.flow)  # (H,W,2): t -> t-1 displacement
            warped = cv2.remap(prev_ids.astype(np.float32), xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_REPLICATE).astype(np.int64)  # (H,W) ids of t-1 seen from t
            uniq, inv = np.unique(warped, return_inverse=True)
            joint = np.bincount(seg.ravel() * len(uniq) + inv.ravel(), minlength=n * len(uniq)).reshape(n, len(uniq))
            best = joint.argmax(1)
            inter = joint[np.arange(n), best]
            frac = inter / np.maximum(joint.sum(1), 1)
            cover = inter / np.maximum(joint.sum(0)[best], 1)
            fresh = (frac < p.inherit_fraction) | (cover < p.track_cover)
            assign = uniq[best]
            assign[fresh] = next_id + np.arange(int(fresh.sum()))
            next_id += int(fresh.sum())
            ids = assign[seg]
        out[t] = ids
        prev_gray, prev_ids = gray, ids
    return out


def grid_sample(ids: np.ndarray, h: int, w: int) -> np.ndarray:
    """(T,H,W) -> (T,h,w): the id at each grid cell's centre pixel."""
    _, H, W = ids.shape
    ys = ((np.arange(h) + 0.5) * H / h).astype(np.int64)
    xs = ((np.arange(w) + 0.5) * W / w).astype(np.int64)
    return ids[:, ys][:, :, xs]


@torch.no_grad()
def trajtok_track(model, video_processor, frames: np.ndarray, chunk: int = 64) -> torch.Tensor:
    """frames (T,H,W,3) uint8 -> hard trajectory ids (T,h,w) long."""
    enc = model.encode_video_chunks((video_processor(frames[i : i + chunk]) for i in range(0, len(frames), chunk)),
                                    keep_maps=True)
    return enc.trajtok.hard_ids[0, : enc.num_frames[0]]


def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def run(bm, *, num_videos: int, repeats: int, params: dict[str, ClassicalParams], bbb_frames: int, log=print) -> dict:
    from ...trajtok import matched_miou

    model, vp = bm.model, bm.processor.video_processor
    size = model.config.image_size
    examples = shapesqa_val_examples(num_videos, size=size)
    res: dict = {"videos": [], "speed": {}}
    totals = {"trajtok": [0, 0.0]} | {k: [0, 0.0] for k in params}
    for ex in examples:
        frames, masks, graph = ex.frames, ex.masks.astype(np.int64), ex.graph.astype(np.int64)
        m, g = torch.from_numpy(masks)[None], [torch.from_numpy(graph)]
        ids, dt = timed(lambda f=frames: trajtok_track(model, vp, f), repeats)
        h, w = ids.shape[-2:]
        row = {"id": ex.video_id, "frames": len(frames), "objects": int(graph.shape[0]),
               "trajtok": {"miou_grid": matched_miou(ids[None], m, g), "s": dt}}
        totals["trajtok"][0] += len(frames)
        totals["trajtok"][1] += dt
        for name, p in params.items():
            cids, dt = timed(lambda p=p, f=frames: classical_track(f, p), repeats)
            row[name] = {"miou_pixel": matched_miou(torch.from_numpy(cids)[None], m, g),
                         "miou_grid": matched_miou(torch.from_numpy(grid_sample(cids, h, w))[None], m, g),
                         "tracks": len(np.unique(cids)), "s": dt}
            totals[name][0] += len(frames)
            totals[name][1] += dt
        res["videos"].append(row)
        log(f"  {ex.video_id}: " + ", ".join(
            f"{k} mIoU {v.get('miou_grid', 0):.3f} ({len(frames) / v['s']:.0f} fps)"
            for k, v in row.items() if isinstance(v, dict)))
    res["speed"]["shapesqa"] = {k: n / s for k, (n, s) in totals.items()}
    res["grid"] = [int(h), int(w)]
    if bbb_frames:
        frames = bigbuckbunny(bbb_frames, size=size)
        sp = {}
        _, dt = timed(lambda: trajtok_track(model, vp, frames), repeats)
        sp["trajtok"] = len(frames) / dt
        for name, p in params.items():
            _, dt = timed(lambda p=p: classical_track(frames, p), repeats)
            sp[name] = len(frames) / dt
        res["speed"]["bbb"] = sp
        log(f"  bbb {bbb_frames} frames: " + ", ".join(f"{k} {v:.0f} fps" for k, v in sp.items()))
    return res


def tables(res: dict, names: list[str]) -> str:
    cols = ["trajtok", *names]
    label = {"trajtok": "TrajTok (trained)", "felzenszwalb": "felzenszwalb + Farneback",
             "slic": "SLIC + Farneback"}
    lines = [("| pipeline | frames/s, ShapesQA val clips | frames/s, Big Buck Bunny | TrajTok ÷ this (ShapesQA) "
             "| mIoU on the feature grid | mIoU at pixel resolution |"), "|---|---:|---:|---:|---:|---:|"]
    sq, bbb = res["speed"]["shapesqa"], res["speed"].get("bbb", {})
    n = len(res["videos"])
    for c in cols:
        grid = np.mean([v[c]["miou_grid"] for v in res["videos"]])
        pix = "-" if c == "trajtok" else f"{np.mean([v[c]['miou_pixel'] for v in res['videos']]):.3f}"
        b = f"{bbb[c]:.0f}" if c in bbb else "-"
        lines.append(f"| {label.get(c, c)} | {sq[c]:.0f} | {b} | {sq['trajtok'] / sq[c]:.2f}x | {grid:.3f} | {pix} |")
    lines += ["", f"Per video ({n} ShapesQA val clips; mIoU on the grid / pixel, seconds):", "",
              "| video | frames | objects | " + " | ".join(label.get(c, c) for c in cols) + " |",
              "|---|---:|---:|" + "---:|" * len(cols)]
    for v in res["videos"]:
        cells = [f"{v['trajtok']['miou_grid']:.3f} / - / {v['trajtok']['s']:.2f}s"]
        cells += [f"{v[c]['miou_grid']:.3f} / {v[c]['miou_pixel']:.3f} / {v[c]['s']:.2f}s ({v[c]['tracks']} tracks)"
                  for c in names]
        lines.append(f"| {v['id']} | {v['frames']} | {v['objects']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "trajvlm bench segmenter") -> int:
    parser = build_parser("segmenter", prog, __doc__)
    return run_cli(parser.parse_args(argv), parser)


def run_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    single_thread()
    import cv2

    cv2.setNumThreads(1)
    info = machine_info()
    bm = load_bench_model(args.model, args.segmenter)
    params = {m: ClassicalParams(method=m, fz_scale=args.fz_scale, fz_min_size=args.fz_min_size,
                                 slic_segments=args.slic_segments, track_cover=args.track_cover) for m in args.methods}
    t0 = time.perf_counter()
    res = run(bm, num_videos=args.num_videos, repeats=args.repeats, params=params, bbb_frames=args.bbb_frames,
              log=lambda s: print(s, file=sys.stderr, flush=True))
    wall = time.perf_counter() - t0
    tab = tables(res, list(params))
    print_results(tab, args.json, res)
    if args.out:
        import cv2 as _cv2
        import skimage

        size = bm.model.config.image_size
        md = [
            *record_header("# TrajTok segmenter vs a classical superpixel + optical-flow pipeline", parser, args, info),
            f"- scikit-image {skimage.__version__}, OpenCV {_cv2.__version__} (cv2.setNumThreads(1))",
            "",
            (f"Model: {bm.source}. Frames {size}x{size} px, TrajTok grid {res['grid'][0]}x{res['grid'][1]}. Classical "
            f"parameters: felzenszwalb scale={args.fz_scale}, sigma=0.5, min_size={args.fz_min_size}; SLIC "
            f"n_segments={args.slic_segments}, compactness=10; Farneback pyr_scale 0.5, 2 levels, window 9; a "
            f"segment inherits the track covering >= 50% of it if it also covers >= {args.track_cover:.0%} of that "
            "track's warped area (defaults picked on 10 ShapesQA *train* clips among a few settings; the clips "
            "scored here are val). Wall time "
            f"{wall / 60:.1f} min. See the module docstring of `trajvlm/eval/bench/segmenter_vs_classical.py` for "
            "exactly what is timed and scored."),
            "",
            tab,
            "",
        ]
        write_text(args.out, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
