"""`trajvlm demo`: the Gradio long-video chat (same as `python demo/app.py`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="open the Gradio long-video chat (binds 127.0.0.1 by default)",
        description="Gradio long-video chat: upload a video, chat with streamed answers, see the trajectory overlays "
        "and token statistics. Analytics and telemetry are off; it listens on 127.0.0.1 unless --host says otherwise.",
    )
    add_demo_args(p)
    p.set_defaults(func=_run)


def add_demo_args(p: argparse.ArgumentParser) -> None:
    """The demo's options (shared with demo/app.py). Defaults come from DemoSettings."""
    p.add_argument("--model", default=None, help="model folder (save_pretrained); default: the built-in model "
                   "(trajvlm/assets/default_model, or $TRAJVLM_DEMO_MODEL)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=None, help="port (default: first free from 7860)")
    p.add_argument("--device", default="cpu", help="torch device for the model (default cpu)")
    p.add_argument("--max-upload-mb", type=int, default=None, help="largest accepted upload in MB (default 200)")
    p.add_argument("--max-minutes", type=float, default=None, help="longest accepted video in minutes (default 60)")
    p.add_argument("--max-frames", type=int, default=None, help="upper bound of the frames slider (default 128)")
    p.add_argument("--concurrency", type=int, default=None, help="events processed at once (default 2)")
    p.add_argument("--temp-dir", default=None, help="gradio's upload/cache folder (default: gradio's own)")


def settings_from_args(args: argparse.Namespace):
    from trajvlm.demo.settings import DemoSettings

    kwargs = {"host": args.host, "port": args.port, "device": args.device}
    optional = {
        "model_path": args.model,
        "max_upload_mb": args.max_upload_mb,
        "max_video_minutes": args.max_minutes,
        "max_frames_limit": args.max_frames,
        "concurrency": args.concurrency,
        "temp_dir": args.temp_dir,
    }
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    if "max_frames_limit" in kwargs:
        kwargs["default_frames"] = min(DemoSettings().default_frames, kwargs["max_frames_limit"])
    return DemoSettings(**kwargs)


def _run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from trajvlm.demo.settings import apply_offline_env

    apply_offline_env()  # before anything imports gradio / huggingface_hub
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio polls itself on startup
    try:
        settings = settings_from_args(args)
    except ValueError as e:
        print(f"trajvlm demo: {e}", file=sys.stderr)
        return 2
    from trajvlm.demo.app import launch
    from trajvlm.demo.pipeline import load_chat

    try:
        chat = load_chat(settings.model_path, device=settings.device, max_frames=settings.max_frames_limit)
    except FileNotFoundError as e:
        print(f"trajvlm demo: {e}", file=sys.stderr)
        return 1
    print(f"Loaded model from {settings.model_path}; starting the demo on http://{settings.host}:"
          f"{settings.port or '7860+'} (Ctrl+C to stop)", file=sys.stderr)
    launch(settings, chat, block=True)
    return 0
