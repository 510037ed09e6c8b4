"""Settings of the demo: which model, where it listens, and the limits that keep it safe to expose."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Environment switches that must be set before gradio / huggingface_hub are imported: no analytics, no telemetry.
OFFLINE_ENV: dict[str, str] = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"  # the repo's demo/ folder (app.py, examples/)
EXAMPLES_DIR = DEMO_DIR / "examples"


def default_model_path() -> Path:
    """The built-in model (trained on ShapesQA): `$TRAJVLM_DEMO_MODEL` or `trajvlm/assets/default_model/`."""
    env = os.environ.get("TRAJVLM_DEMO_MODEL")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "assets" / "default_model"


def apply_offline_env() -> None:
    """Turn analytics and telemetry off (call before importing gradio). Explicit user settings are kept."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


@dataclass
class DemoSettings:
    """Everything the app needs to know; defaults are safe for a laptop and for exposing on a LAN.

    Frame / token knobs bound memory and compute: at most `max_frames_limit` frames of `frame_size` x
    `frame_size` pixels are ever held in memory for one video, whatever its length; decoding runs
    `chunk_frames` sampled frames at a time.
    """

    model_path: Path = field(default_factory=default_model_path)
    device: str = "cpu"
    host: str = "127.0.0.1"
    port: int | None = None  # None: gradio picks a free port from 7860 up
    # inputs
    max_upload_mb: int = 200
    max_video_minutes: float = 60.0  # longer videos are refused with a message
    max_question_chars: int = 2000
    # sampling (UI defaults and the upper bounds of the sliders)
    default_frames: int = 32
    max_frames_limit: int = 128
    default_fps: float | None = None  # None = no rate cap: frames spread over the whole video
    max_fps: float = 8.0
    chunk_frames: int = 16
    frame_size: int | None = None  # decoded frames are frame_size x frame_size; None = the model's input size
    # tokens / generation
    default_token_budget: int | None = None  # None: the model's own budget
    max_token_budget: int = 1024
    max_new_tokens: int = 64
    # presentation
    gallery_frames: int = 8
    overlay_size: int = 256  # long side of the overlay pictures
    # serving
    concurrency: int = 2  # events running at once (decode / tokenize / generate)
    queue_size: int = 64  # waiting events beyond this are refused with "queue full"
    max_sessions: int = 32  # sessions whose state (decoded frames) is kept; the oldest is dropped beyond
    temp_dir: Path | None = None  # gradio's upload/cache folder; None = gradio's default

    def __post_init__(self) -> None:
        self.model_path = Path(self.model_path)
        if self.temp_dir is not None:
            self.temp_dir = Path(self.temp_dir)
        checks = {
            "max_upload_mb": self.max_upload_mb > 0,
            "max_video_minutes": self.max_video_minutes > 0,
            "default_frames": 1 <= self.default_frames <= self.max_frames_limit,
            "chunk_frames": self.chunk_frames >= 1,
            "frame_size": self.frame_size is None or self.frame_size >= 16,
            "default_fps": self.default_fps is None or 0 < self.default_fps <= self.max_fps,
            "max_new_tokens": self.max_new_tokens >= 1,
            "gallery_frames": self.gallery_frames >= 1,
            "concurrency": self.concurrency >= 1,
            "queue_size": self.queue_size >= 1,
            "max_sessions": self.max_sessions >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid DemoSettings: " + ", ".join(f"{n}={getattr(self, n)!r}" for n in bad))
        if self.default_token_budget is not None and not 1 <= self.default_token_budget <= self.max_token_budget:
            raise ValueError(f"default_token_budget must be in [1, {self.max_token_budget}], got {self.default_token_budget!r}")

    @property
    def max_video_seconds(self) -> float:
        return self.max_video_minutes * 60.0
