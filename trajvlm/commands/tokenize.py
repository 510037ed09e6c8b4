"""`trajvlm tokenize VIDEO`: trajectory and token counts for a video, and the overlay picture (PNG)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from trajvlm.commands.chat import add_video_args

    p = subparsers.add_parser(
        "tokenize",
        help="print trajectory and token counts for a video and write the overlay PNG",
        description="Run TrajTok on VIDEO (no LLM): print the trajectories found, the visual tokens used and what "
        "the patch baseline would use for the same frames, and write a PNG of sampled frames with each "
        "trajectory drawn in its own colour.",
    )
    p.add_argument("video", help="video file")
    add_video_args(p)
    p.add_argument("--out", default=None, help="overlay PNG path (default: <video name>_trajectories.png here)")
    p.add_argument("--sheet-frames", type=int, default=8, help="frames in the overlay picture (default 8)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON instead of a table")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from trajvlm.commands.chat import settings_from_args
    from trajvlm.demo.overlay import contact_sheet, overlay_frames
    from trajvlm.demo.pipeline import (
        DemoInputError,
        PreparedVideo,
        check_sampling,
        effective_budget,
        load_chat,
        model_input_size,
        prepare_video,
        stats_for,
        tokenize_prepared,
    )
    from trajvlm.video import VideoDecodeError

    if args.sheet_frames < 1:
        print("trajvlm tokenize: --sheet-frames must be >= 1", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(f"{Path(args.video).stem}_trajectories.png")
    try:
        settings = settings_from_args(args, gallery_frames=args.sheet_frames)
        max_frames, fps, budget = check_sampling(args.max_frames, args.fps, args.token_budget, settings)
        chat = load_chat(settings.model_path, device=settings.device, max_frames=max_frames)
        size = settings.frame_size or model_input_size(chat) or 224
        prepared = None
        for event in prepare_video(args.video, max_frames=max_frames, fps=fps, size=size, settings=settings):
            if isinstance(event, PreparedVideo):
                prepared = event
        tokenized = tokenize_prepared(chat, prepared, token_budget=budget, settings=settings)
    except (DemoInputError, VideoDecodeError, FileNotFoundError, ValueError) as e:
        print(f"trajvlm tokenize: {e}", file=sys.stderr)
        return 1
    clip, layout = prepared.clip, tokenized.layout
    images = [im for im, _ in overlay_frames(clip.frames, layout, timestamps=clip.timestamps,
                                             count=args.sheet_frames, out_size=settings.overlay_size, stamp=True)]
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(contact_sheet(images, columns=4)).save(out, format="PNG")

    rows = []
    for n, tid in enumerate(layout.trajectory_ids):
        present = np.flatnonzero(layout.presence[n])  # (k,) frame positions where trajectory n is visible
        boxes = layout.boxes[n, present]  # (k,4)
        area = float(np.mean((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))) if len(present) else 0.0
        rows.append({
            "id": int(tid),
            "frames": len(present),
            "first_s": float(clip.timestamps[present[0]]) if len(present) else None,
            "last_s": float(clip.timestamps[present[-1]]) if len(present) else None,
            "mean_box_area": round(area, 4),
        })
    stats = stats_for(prepared, tokenized, effective_budget(chat, budget))
    report = {"video": str(args.video), **stats.to_dict(), "overlay_png": str(out), "trajectory_list": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"video: {args.video}  ({stats.frames} frames sampled of {stats.video_seconds:.1f} s, {stats.chunks} chunk(s))")
    print(f"trajectories: {stats.trajectories}")
    print(f"visual tokens: {stats.visual_tokens}   patch baseline (same frames): {stats.patch_tokens}"
          + (f"   ({stats.compression:.1f}x fewer)" if stats.compression else ""))
    print(f"decode {stats.decode_s:.2f} s, encode {stats.encode_s:.2f} s")
    if rows:
        print(f"{'id':>4} {'frames':>6} {'first_s':>8} {'last_s':>8} {'box_area':>9}")
        for r in rows:
            first = "-" if r["first_s"] is None else f"{r['first_s']:.2f}"
            last = "-" if r["last_s"] is None else f"{r['last_s']:.2f}"
            print(f"{r['id']:>4} {r['frames']:>6} {first:>8} {last:>8} {r['mean_box_area']:>9.4f}")
    print(f"overlay: {out}")
    return 0
