"""The frame sampler: which source frames a video is reduced to.

This is the only sampler in TrajVLM; training, the lmms-eval plugin and the demo all reach it through
`load_video` / `iter_video_chunks` (or call `sample_frame_indices` directly on pre-decoded frames).

Conventions (shared by every backend):

- frame `i` of a stream (0-based, presentation order) sits at the nominal time `i / video_fps` seconds;
- frame `i` is on screen during `[i / video_fps, (i + 1) / video_fps)`; the window `[start, end)` keeps the
  frames on screen at some time in it, i.e. `floor(start * video_fps) <= i < end * video_fps`; `end` past
  the end of the video is clipped to it, so any `start` before the end yields at least one frame;
- `fps` caps the *average* sampling rate over the window: at most `floor(window_frames * fps / video_fps)`
  frames (at least 1) are taken, so the sampled clip never has more frames per second of video than `fps`;
- `max_frames` then caps the count;
- the chosen count `n` is spread uniformly with `linspace(first, last, n)` (both window ends included),
  rounded half up to integer indices. With `n` <= window size the indices are strictly increasing.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-6  # tolerance on `seconds * fps` products (0.1 * 30 = 3.0000000000000004 is frame 3)


def validate_sampling_args(
    *, max_frames: int | None = 64, fps: float | None = None, start: float | None = None, end: float | None = None
) -> None:
    """Raise `ValueError` naming the bad value if the sampling arguments are inconsistent."""
    if max_frames is not None:
        if isinstance(max_frames, bool) or int(max_frames) != max_frames or max_frames < 1:
            raise ValueError(f"max_frames must be a positive integer or None, got {max_frames!r}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number or None, got {fps!r}")
    if start is not None and not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be a non-negative number of seconds or None, got {start!r}")
    if end is not None and not (end > 0 and not math.isnan(end)):
        raise ValueError(f"end must be a positive number of seconds or None, got {end!r}")
    if start is not None and end is not None and start >= end:
        raise ValueError(f"start must be < end, got start={start!r} end={end!r}")


def frame_window(
    num_frames: int, video_fps: float, *, start: float | None = None, end: float | None = None
) -> tuple[int, int]:
    """Half-open index range `[first, stop)` of the frames on screen during `[start, end)` seconds.

    Empty (first == stop) when the window lies past the end of the video.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames!r}")
    if not (math.isfinite(video_fps) and video_fps > 0):
        raise ValueError(f"video_fps must be a positive number, got {video_fps!r}")
    first = 0 if start is None else math.floor(start * video_fps + _EPS)
    stop = num_frames if end is None or math.isinf(end) else math.ceil(end * video_fps - _EPS)
    first = min(max(first, 0), num_frames)
    stop = min(max(stop, first), num_frames)
    return first, stop


def sample_frame_indices(
    num_frames: int,
    video_fps: float,
    *,
    max_frames: int | None = 64,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Indices of the frames to decode: `(n,)` int64, strictly increasing, `n <= max_frames`.

    `num_frames`/`video_fps` describe the source stream. See the module docstring for the rules.
    Returns an empty array when the window holds no frame (e.g. `start` past the end); callers that
    read a file turn that into a `VideoDecodeError`. Bad arguments raise `ValueError`.
    """
    validate_sampling_args(max_frames=max_frames, fps=fps, start=start, end=end)
    first, stop = frame_window(num_frames, video_fps, start=start, end=end)
    available = stop - first
    if available == 0:
        return np.zeros((0,), dtype=np.int64)
    n = available
    if fps is not None:
        n = min(n, max(1, math.floor(available * fps / video_fps + _EPS)))
    if max_frames is not None:
        n = min(n, int(max_frames))
    # (n,) float positions -> round half up (np.round would round half to even and could repeat an index)
    return np.floor(np.linspace(first, stop - 1, n) + 0.5).astype(np.int64)
