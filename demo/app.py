"""TrajVLM long-video chat: `python demo/app.py [--model PATH] [--host 127.0.0.1] [--port N]`.

Thin entry point; the app lives in `trajvlm/demo/` and `trajvlm demo` runs the same thing.
"""

from __future__ import annotations

import os
import sys

# Offline and quiet before anything can import gradio / huggingface_hub.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

if __name__ == "__main__":
    from trajvlm.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
