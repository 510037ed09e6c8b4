"""Time to first token and peak memory on this CPU: TrajVLM vs the patch baseline of the same size.

    OMP_NUM_THREADS=1 trajvlm bench latency --frames 256 1024 --repeats 3 --out eval/results/latency.md

The patch baseline is the same model (same vision tower, same LLM weights) with the patch connector
(``patch_pool_stride`` of the config, 2x2) and a fresh projector. Every measurement runs in a FRESH subprocess
(so peak RSS belongs to that one request), variants alternate within each repeat (A B, then B A, ...), and the
table reports the median over repeats (min-max in brackets).

In each subprocess: build the model, render the video (frames in memory, uint8), warm up with one 16-frame
request, then time ONE ``TrajVLMChat.ask(frames, question, max_new_tokens=1)``: frame preprocessing + vision tower
+ connector + prompt + splice + LLM prefill + the first token = time to first token (TTFT). Peak RSS is the
process's ``ru_maxrss`` after the request; "RSS before" is the resident size just before it (model + frames).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from .args import build_parser
from .common import (
    current_rss_mb,
    load_bench_model,
    machine_info,
    patch_twin,
    peak_rss_mb,
    print_results,
    record_header,
    single_thread,
    write_text,
)
from .videos import make_video

VARIANTS = ("trajvlm", "patch")
QUESTION = "What is the colour of the object that moves first?"


def worker(args: argparse.Namespace) -> dict:
    """One measurement (runs inside the fresh subprocess); returns the raw numbers."""
    import torch

    from ...chat import TrajVLMChat

    single_thread()
    bm = load_bench_model(args.model, args.segmenter)
    model = bm.model if args.variant == "trajvlm" else patch_twin(bm.model)
    chat = TrajVLMChat(model, bm.processor, max_frames=None, token_budget=args.token_budget)
    size = bm.model.config.image_size
    (num_frames,) = args.frames
    frames = make_video(args.video, num_frames, size=size, seed=args.seed)  # (T,H,W,3) uint8
    with torch.no_grad():
        chat.ask(make_video(args.video, 16, size=size, seed=args.seed), QUESTION, max_new_tokens=1)  # warm-up
        rss_before = current_rss_mb()
        t0 = time.perf_counter()
        r = chat.ask(frames, QUESTION, max_new_tokens=1)
        ttft = time.perf_counter() - t0
    return {
        "variant": args.variant,
        "frames": num_frames,
        "visual_tokens": r.num_visual_tokens,
        "ttft_s": ttft,
        "encode_s": r.timings["encode_s"],
        "generate_s": r.timings["generate_s"],
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "loadavg": os.getloadavg()[0],
        "source": bm.source,
    }


def run_one(args: argparse.Namespace, variant: str, frames: int) -> dict:
    cmd = [sys.executable, "-m", "trajvlm.eval.bench.latency", "--worker", "--variant", variant, "--frames",
           str(frames), "--video", args.video, "--seed", str(args.seed)]
    for flag, value in (("--model", args.model), ("--segmenter", args.segmenter), ("--token-budget", args.token_budget)):
        if value is not None:
            cmd += [flag, str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"latency worker failed ({variant}, {frames} frames):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(results: list[dict]) -> list[dict]:
    rows = []
    for t in dict.fromkeys(r["frames"] for r in results):
        for v in VARIANTS:
            rs = [r for r in results if r["frames"] == t and r["variant"] == v]
            if not rs:
                continue
            ttft = [r["ttft_s"] for r in rs]
            rows.append({
                "frames": t, "variant": v, "runs": len(rs), "visual_tokens": rs[0]["visual_tokens"],
                "ttft_median": statistics.median(ttft), "ttft_min": min(ttft), "ttft_max": max(ttft),
                "encode_median": statistics.median(r["encode_s"] for r in rs),
                "generate_median": statistics.median(r["generate_s"] for r in rs),
                "rss_before_median": statistics.median(r["rss_before_mb"] for r in rs),
                "peak_rss_median": statistics.median(r["peak_rss_mb"] for r in rs),
            })
    return rows


def table(rows: list[dict]) -> str:
    head = ["frames", "variant", "visual tokens", "TTFT s, median (min-max)", "encode s", "prefill+1st token s",
            "RSS before MB", "peak RSS MB", "patch ÷ TrajVLM TTFT", "patch ÷ TrajVLM peak RSS"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---:"] * len(head)) + "|"]
    traj = {r["frames"]: r for r in rows if r["variant"] == "trajvlm"}
    for r in rows:
        b = traj.get(r["frames"])
        ratio_t = f"{r['ttft_median'] / b['ttft_median']:.1f}x" if b and r["variant"] == "patch" else ""
        ratio_m = f"{r['peak_rss_median'] / b['peak_rss_median']:.2f}x" if b and r["variant"] == "patch" else ""
        out.append(
            f"| {r['frames']} | {r['variant']} | {r['visual_tokens']:,} | {r['ttft_median']:.2f} "
            f"({r['ttft_min']:.2f}-{r['ttft_max']:.2f}) | {r['encode_median']:.2f} | {r['generate_median']:.2f} "
            f"| {r['rss_before_median']:.0f} | {r['peak_rss_median']:.0f} | {ratio_t} | {ratio_m} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None, prog: str = "trajvlm bench latency") -> int:
    parser = build_parser("latency", prog, __doc__)
    return run_cli(parser.parse_args(argv), parser)


def run_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    single_thread()
    info = machine_info()
    results = []
    t0 = time.perf_counter()
    for rep in range(args.repeats):
        for t in args.frames:
            order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
            for v in order:
                r = run_one(args, v, t)
                results.append({**r, "repeat": rep})
                print(f"  repeat {rep} T={t} {v}: {r['visual_tokens']} tokens, TTFT {r['ttft_s']:.2f} s, "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB (load {r['loadavg']:.1f})", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    rows = summarize(results)
    tab = table(rows)
    print_results(tab, args.json, results)
    if args.out:
        md = [
            *record_header("# Latency and memory: TrajVLM vs the patch baseline (CPU)", parser, args, info),
            "",
            f"Model: {results[0]['source']}; patch baseline = the same vision tower + LLM with the patch connector "
            "(2x2 pooling) and a fresh projector. Video: " + args.video + f" (trajvlm/eval/bench/videos.py). "
            f"{args.repeats} repeats, each variant in a fresh subprocess, order alternated per repeat; "
            f"wall time {wall / 60:.1f} min.",
            "",
            ("TTFT = `TrajVLMChat.ask(frames, question, max_new_tokens=1)` on frames already in memory (no decoding): "
            "preprocessing + vision tower + connector + splice + LLM prefill + first token. `encode` = "
            "preprocessing + vision + connector; `prefill+1st token` = `generate`. Peak RSS = `ru_maxrss` of the "
            "subprocess (model, frames, warm-up and the request); RSS before = resident size just before the request."),
            "",
            tab,
            "",
            "Raw runs (repeat, frames, variant, TTFT s, peak RSS MB, 1-min load when the run ended):",
            "",
            "```",
            *(f"{r['repeat']} {r['frames']:>5} {r['variant']:>8} {r['ttft_s']:8.2f} {r['peak_rss_mb']:8.0f} "
              f"{r['loadavg']:5.1f}" for r in results),
            "```",
            "",
        ]
        write_text(args.out, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
