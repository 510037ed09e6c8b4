"""Write frames to a video file with PyAV (test videos, ShapesQA, bundled examples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8.0, codec: str = "libx264", crf: int = 12) -> None:
    """Encode `frames` (T,H,W,3) uint8 RGB into `path` (container chosen by the suffix).

    H and W must be even for yuv420p codecs (libx264, mpeg4); `crf` applies to libx264 only.
    """
    import av  # PyAV: a core dependency, imported here to keep `import trajvlm` light

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video expects (T,H,W,3) uint8 frames, got shape {frames.shape} dtype {frames.dtype}")
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError("write_video got zero frames")
    if codec in ("libx264", "mpeg4", "libx265") and (h % 2 or w % 2):
        raise ValueError(f"{codec} needs even frame sizes, got {h}x{w}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=int(round(fps)) if float(fps).is_integer() else fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
