"""CLI: `python -m trajvlm.data.synthetic --out DIR --num-videos N --seed S [...]` (also `trajvlm synth ...`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--splits must be three comma-separated numbers, got {text!r}") from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"--splits must be three comma-separated numbers (train,val,test), got {text!r}")
    return parts  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trajvlm.data.synthetic",
        description="Generate ShapesQA: videos of moving coloured shapes with exact instance masks, trajectory graphs, "
        "captions (stage 1) and multiple-choice QA (stage 2 / evaluation). Deterministic from --seed.",
    )
    p.add_argument("--out", required=True, help="output folder (the --video_folder of the JSON files)")
    p.add_argument("--num-videos", type=int, required=True, help="number of videos over all splits")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--size", type=int, default=64, help="frame side in px (even, >= 32; default 64)")
    p.add_argument("--frames", type=int, default=16, help="frames of a normal clip (default 16)")
    p.add_argument("--needle-frames", type=int, default=64, help="frames of a long needle video (default 64)")
    p.add_argument("--splits", type=_fractions, default=(0.8, 0.1, 0.1), help="train,val,test fractions (default 0.8,0.1,0.1)")
    p.add_argument("--needle-fraction", type=float, default=0.2, help="share of videos that are needle videos (default 0.2)")
    p.add_argument("--min-objects", type=int, default=2, help="objects per normal clip, lower bound (default 2)")
    p.add_argument("--max-objects", type=int, default=5, help="objects per normal clip, upper bound (default 5)")
    p.add_argument("--fps", type=float, default=8.0, help="frame rate written to the mp4 (default 8)")
    p.add_argument("--crf", type=int, default=12, help="libx264 quality (default 12)")
    p.add_argument("--workers", type=int, default=1, help="processes (output is identical for any value; default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing ShapesQA dataset in --out (one made with the same arguments is kept as is)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from trajvlm.data.synthetic.generate import generate_dataset

    def progress(done: int, total: int) -> None:
        if not args.quiet and (done == total or done % max(1, total // 20) == 0):
            print(f"\r{done}/{total} videos", end="\n" if done == total else "", file=sys.stderr, flush=True)

    existed = (Path(args.out) / "meta.json").exists()
    t0 = time.perf_counter()
    try:
        meta = generate_dataset(
            args.out, args.num_videos, args.seed, size=args.size, frames=args.frames, needle_frames=args.needle_frames,
            splits=args.splits, needle_fraction=args.needle_fraction, fps=args.fps, crf=args.crf,
            min_objects=args.min_objects, max_objects=args.max_objects, workers=args.workers,
            overwrite=args.overwrite, progress=progress,
        )
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    seconds = time.perf_counter() - t0
    summary = ", ".join(f"{k} {v['videos']} videos / {v['questions']} questions" for k, v in meta["splits"].items())
    if existed and not args.overwrite:
        print(f"ShapesQA in {args.out} is up to date (same arguments): {summary}")
    else:
        print(f"ShapesQA -> {args.out}: {summary}; {seconds:.1f} s ({args.num_videos / seconds:.1f} videos/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
