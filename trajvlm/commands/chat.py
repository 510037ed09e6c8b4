"""`trajvlm chat VIDEO QUESTION`: one question about one video in the terminal, the answer streamed."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "chat",
        help="ask one question about one video; the answer streams to stdout",
        description="Decode VIDEO in chunks, tokenize it into trajectories and stream the model's answer to "
        "QUESTION on stdout. Progress and statistics go to stderr.",
    )
    p.add_argument("video", help="video file (mp4, webm, mkv, avi, ...)")
    p.add_argument("question", help="the question (quote it)")
    add_video_args(p)
    p.add_argument("--max-new-tokens", type=int, default=128, help="answer length cap (default 128)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the answer (no progress or stats)")
    p.set_defaults(func=_run)


def add_video_args(p: argparse.ArgumentParser) -> None:
    """Model and sampling options shared by `chat` and `tokenize`."""
    p.add_argument("--model", default=None, help="model folder (save_pretrained); default: the built-in model "
                   "(trajvlm/assets/default_model, or $TRAJVLM_DEMO_MODEL)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--max-frames", type=int, default=32, help="frames sampled from the video, at most (default 32)")
    p.add_argument("--fps", type=float, default=0.0, help="sampling rate cap in frames per second (default 0 = no cap)")
    p.add_argument("--token-budget", type=int, default=None, help="visual token cap (default: the model's own)")
    p.add_argument("--max-minutes", type=float, default=None, help="refuse videos longer than this (default: no limit)")


def settings_from_args(args: argparse.Namespace, **extra):
    """DemoSettings for a one-shot command: the limits follow the arguments."""
    from trajvlm.demo.settings import DemoSettings

    kwargs = dict(
        device=args.device,
        max_frames_limit=max(args.max_frames, 1),
        default_frames=max(args.max_frames, 1),
        max_video_minutes=args.max_minutes if args.max_minutes else 1e9,
        max_token_budget=max(args.token_budget or 1, DemoSettings().max_token_budget),
        max_fps=max(args.fps or 0, DemoSettings().max_fps),
        **extra,
    )
    if args.model:
        kwargs["model_path"] = args.model
    return DemoSettings(**kwargs)


def _run(args: argparse.Namespace) -> int:
    import sys

    from trajvlm.demo.pipeline import (
        AnswerDelta,
        AnswerDone,
        DemoInputError,
        Progress,
        check_question,
        check_sampling,
        load_chat,
        model_input_size,
        prepare_video,
        stream_answer,
    )
    from trajvlm.video import VideoDecodeError

    def note(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    try:
        settings = settings_from_args(args, max_new_tokens=args.max_new_tokens)
        question = check_question(args.question, settings)
        max_frames, fps, budget = check_sampling(args.max_frames, args.fps, args.token_budget, settings)
        chat = load_chat(settings.model_path, device=settings.device, max_frames=max_frames)
        prepared = None
        size = settings.frame_size or model_input_size(chat) or 224
        for event in prepare_video(args.video, max_frames=max_frames, fps=fps, size=size, settings=settings):
            if isinstance(event, Progress):
                note(f"[{event.stage}] {event.message}")
            else:
                prepared = event
        for event in stream_answer(chat, prepared, question, [], token_budget=budget, settings=settings):
            if isinstance(event, Progress):
                note(f"[{event.stage}] {event.message}")
            elif isinstance(event, AnswerDelta):
                print(event.piece, end="", flush=True)
            elif isinstance(event, AnswerDone):
                print(flush=True)
                s = event.stats
                note(f"[stats] {s.visual_tokens} visual tokens (patch baseline: {s.patch_tokens}), "
                     f"{s.trajectories} trajectories, {s.frames} frames; decode {s.decode_s:.2f}s, "
                     f"encode {s.encode_s or 0:.2f}s, generate {s.generate_s or 0:.2f}s")
    except (DemoInputError, VideoDecodeError, FileNotFoundError, ValueError) as e:
        print(f"trajvlm chat: {e}", file=sys.stderr)
        return 1
    return 0
