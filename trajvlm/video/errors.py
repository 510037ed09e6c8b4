"""The one error type of the video layer."""

from __future__ import annotations

from pathlib import Path


class VideoDecodeError(RuntimeError):
    """A video file cannot be read: missing, empty, not a video, corrupt/truncated, or no decodable frames.

    The message always names the path and the reason; `path` and `reason` are also kept as attributes.
    The underlying decoder exception is chained (`__cause__`), never swallowed. When the decord
    attempt and the PyAV fallback both fail, `reason` mentions both.

    Bad *arguments* (max_frames < 1, fps <= 0, start >= end, unknown backend, bad size) raise
    `ValueError` instead: they are caller bugs, not unreadable files.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path!r}: {reason}")
