"""Write frames to a video file with PyAV (test videos, ShapesQA, bundled examples)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# codec -> encoder options derived from `crf` (quality: lower is better, 0 = lossless where supported)
_CRF_CODECS = ("libx264", "libx265", "libsvtav1")


def _frame_rate(fps: float) -> Fraction:
    """`fps` as an exact rational (PyAV rejects floats); 29.97 -> 2997/100, 30000/1001 stays close."""
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"write_video needs a positive fps, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 8.0,
    codec: str = "libx264",
    crf: int = 12,
    *,
    gop: int | None = None,
) -> None:
    """Encode `frames` (T,H,W,3) uint8 RGB into `path` (container chosen by the suffix), pixel format yuv420p.

    H and W must be even for yuv420p codecs (libx264, mpeg4, ...). `crf` sets the quality: the CRF of
    libx264 / libx265 / libsvtav1 / libaom-av1 / libvpx-vp9, and for mpeg4 the fixed quantizer
    `qscale = clamp(round(crf / 6), 1, 31)` (crf 12 -> qscale 2, visually near-lossless). `fps` may be
    fractional (e.g. 29.97). AV1 encoders use their fastest presets. `gop` (keyword): maximum keyframe
    interval in frames (None: the encoder's default); small values make a file cheap to seek in.
    """
    import av  # PyAV: a core dependency, imported here to keep `import trajvlm` light

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video expects (T,H,W,3) uint8 frames, got shape {frames.shape} dtype {frames.dtype}")
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError("write_video got zero frames")
    if h % 2 or w % 2:
        raise ValueError(f"{codec} with yuv420p needs even frame sizes, got {h}x{w}")
    rate = _frame_rate(fps)
    if gop is not None and (isinstance(gop, bool) or int(gop) != gop or gop < 1):
        raise ValueError(f"gop must be a positive integer or None, got {gop!r}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if codec in _CRF_CODECS:
            stream.options = {"crf": str(crf), **({"preset": "veryfast"} if codec != "libsvtav1" else {"preset": "12"})}
        elif codec == "libaom-av1":
            stream.options = {"crf": str(crf), "cpu-used": "8", "usage": "realtime"}
        elif codec == "libvpx-vp9":
            stream.options = {"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        elif codec == "mpeg4":
            stream.codec_context.qscale = int(min(max(round(crf / 6), 1), 31))
        if gop is not None:
            stream.codec_context.gop_size = int(gop)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
