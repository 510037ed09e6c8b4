"""Read sampled frames from a video file: decord first, PyAV as the fallback.

Public API: `load_video`, `iter_video_chunks`, `probe_video`, `VideoClip`, `VideoInfo` (and `VideoDecodeError`
from `errors.py`). Which frames are read is decided by `sampling.sample_frame_indices` (see its docstring for
the rules); this module only opens files and decodes exactly those frames.

Frame indices are 0-based positions in presentation order of the first video stream, the same numbering
decord uses (one index per non-empty packet, ordered by pts). Timestamps are nominal: `index / fps` with `fps`
the stream's average frame rate, and `duration = num_source_frames / fps` (exact for constant-frame-rate video).

Backends:

- decord (`pip install 'trajvlm[video]'`) indexes the whole file on open and decodes with `get_batch`.
- PyAV first scans the packets (demux only, no decoding) to build the pts -> index table and keyframe list,
  which also gives the frame count when the container does not (mkv/webm). It then decodes forward and seeks
  to the keyframe before a target frame whenever that skips work, matching decoded frames to indices by pts,
  so sparse sampling of a long video does not decode all of it and the returned frames are exactly the frames
  at the returned indices. Streams without packet pts are decoded sequentially, counting frames.

`backend="auto"` uses decord when it is installed and can open and decode the file, and PyAV otherwise
(decord missing, or it fails: AV1, odd containers, ...). `size` resizes with the decoder's own scaler (decord's
`width/height` arguments, PyAV's `VideoFrame.reformat`, bilinear swscale), cheap because no full-size RGB
copy is made; an int is a square side, a pair is (H, W); the aspect ratio is not preserved.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import VideoDecodeError
from .sampling import sample_frame_indices, validate_sampling_args

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")


@dataclass
class VideoClip:
    """Sampled frames of one video (or one chunk of it, from `iter_video_chunks`)."""

    frames: np.ndarray  # (T,H,W,3) uint8 RGB
    timestamps: np.ndarray  # (T,) float64 seconds, frame_indices / fps
    frame_indices: np.ndarray  # (T,) int64 indices into the source stream
    fps: float  # source average fps
    duration: float  # source duration in seconds (num_source_frames / fps)
    num_source_frames: int
    backend: str  # "decord" | "pyav"
    path: str

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class VideoInfo:
    """Stream metadata as the chosen backend sees it (what sampling is computed from)."""

    path: str
    fps: float
    num_frames: int
    duration: float  # num_frames / fps
    backend: str  # "decord" | "pyav"


# ---------------------------------------------------------------------------------------------------------------
# argument handling


def _normalize_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """`size` -> (H, W) or None; ValueError on anything else."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size
    ):
        h, w = int(size[0]), int(size[1])
    else:
        raise ValueError(f"size must be an int (square side) or an (H, W) pair of ints, got {size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def _check_path(path: str | os.PathLike) -> str:
    """The path as str; VideoDecodeError when it is missing, not a file, or empty."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found")
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    return path


def _describe(exc: BaseException) -> str:
    """One-line description of a decoder exception for error messages."""
    if isinstance(exc, VideoDecodeError):
        return exc.reason
    text = str(exc).strip().splitlines()
    # decord prefixes its messages with "[time] /path/file.cc:line: "; keep the informative tail
    line = text[0] if text else ""
    if "Error reading" not in line and ".cc:" in line:
        line = line.split(".cc:", 1)[1].split(":", 1)[-1].strip()
    line = line if len(line) <= 300 else line[:297] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


# ---------------------------------------------------------------------------------------------------------------
# backends. A reader exposes: backend, path, fps, num_frames, read(indices) -> (n,H,W,3) uint8, close().
# read() takes ascending indices; successive read() calls on increasing indices continue decoding forward.


def _resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(n,H,W,3) uint8 RGB -> (n,h,w,3) with FFmpeg's swscale (bilinear), the scaler the PyAV path uses."""
    import av

    h, w = size
    out = np.empty((len(frames), h, w, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        out[i] = vf.reformat(width=w, height=h, interpolation="BILINEAR").to_ndarray()
    return out


class _DecordReader:
    backend = "decord"

    def __init__(self, path: str, size: tuple[int, int] | None):
        import decord  # optional dependency: imported only when used

        self._decord = decord
        self.path = path
        self._size = size
        self._resize_in_decord = size is not None  # decord's scaler, until it fails (see read)
        kwargs = {} if size is None else {"height": size[0], "width": size[1]}
        self._vr = decord.VideoReader(path, ctx=decord.cpu(0), **kwargs)
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps())
        if self.num_frames < 1:
            raise VideoDecodeError(path, "decord found no frames in the video stream")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise VideoDecodeError(path, f"decord reports an invalid frame rate {self.fps!r}")

    def _get_batch(self, indices: np.ndarray) -> np.ndarray:
        batch = self._vr.get_batch([int(i) for i in indices])
        # decord returns its own NDArray unless a global bridge (torch, ...) was set by someone else
        frames = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        if frames.ndim != 4 or frames.shape[0] != len(indices) or frames.shape[-1] != 3:
            raise VideoDecodeError(self.path, f"decord returned frames of shape {frames.shape} for {len(indices)} indices")
        return np.ascontiguousarray(frames, dtype=np.uint8)  # (n,H,W,3)

    def read(self, indices: np.ndarray) -> np.ndarray:
        if self._size is None:
            return self._get_batch(indices)
        if not self._resize_in_decord:
            return _resize_frames(self._get_batch(indices), self._size)
        try:
            return self._get_batch(indices)
        except Exception as e:
            # decord 0.6 cannot scale to some widths (16, 24, 48, 72, ...: "DECORDArrayCopyFromTo: The size must
            # exactly match"): decode at the source size and scale with swscale instead. A failure of that
            # attempt propagates with this error as its __context__.
            logger.debug("decord could not resize %s to %s (%s); resizing after decoding", self.path, self._size, e)
            self._vr = self._decord.VideoReader(self.path, ctx=self._decord.cpu(0))
            self._resize_in_decord = False
            return _resize_frames(self._get_batch(indices), self._size)

    def close(self) -> None:
        self._vr = None


class _PyAVReader:
    backend = "pyav"

    def __init__(self, path: str, size: tuple[int, int] | None):
        import av  # core dependency, imported lazily to keep `import trajvlm.video` light

        self._av = av
        self.path = path
        self._size = size
        self._container = None
        self._decoder: Iterator | None = None
        self._pos = -1  # index of the last frame taken from the decoder, -1 before the first
        try:
            self._open()
            stream = self._stream
            self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
            self._build_index()
            self.fps = self._find_fps()
        except BaseException:
            self.close()
            raise

    # -- opening and indexing

    def _open(self) -> None:
        self.close()
        self._container = self._av.open(self.path, mode="r")
        videos = self._container.streams.video
        if len(videos) == 0:
            raise VideoDecodeError(self.path, "the file has no video stream")
        self._stream = videos[0]
        self._stream.thread_type = "AUTO"
        self._decoder = None
        self._pos = -1

    def _build_index(self) -> None:
        """Demux every packet of the stream (no decoding): frame count, pts table, keyframes."""
        pts, keys, packets, missing_pts = [], [], 0, False
        for packet in self._container.demux(self._stream):
            if packet.size == 0:  # the empty flush packet at end of stream
                continue
            packets += 1
            if packet.pts is None:
                missing_pts = True
            else:
                pts.append(int(packet.pts))
                keys.append(bool(packet.is_keyframe))
        declared = int(self._stream.frames or 0)
        if packets == 0:
            raise VideoDecodeError(self.path, "the video stream has no frames")
        if declared > packets:
            raise VideoDecodeError(
                self.path, f"the container lists {declared} frames but only {packets} could be read (truncated file?)"
            )
        self.num_frames = packets
        self._pts = self._keys = self._pts_to_index = None
        if not missing_pts:
            order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
            sorted_pts = np.asarray(pts, dtype=np.int64)[order]  # (num_frames,) pts in presentation order
            if np.all(np.diff(sorted_pts) > 0):  # unique pts: usable to identify decoded frames
                self._pts = sorted_pts
                self._pts_to_index = {int(p): i for i, p in enumerate(sorted_pts)}
                key_flags = np.asarray(keys, dtype=bool)[order]
                key_flags[0] = True  # the file start is always a place to (re)start decoding from
                self._keys = np.flatnonzero(key_flags)  # (n_key,) indices of keyframes, ascending, starts at 0
        # The index pass consumed the file; decoding restarts from a fresh open (seeking back is not
        # possible in every container, e.g. AVI without an index).
        self._open()

    def _find_fps(self) -> float:
        for rate in (self._stream.average_rate, self._stream.guessed_rate):
            if rate is not None and float(rate) > 0:
                return float(rate)
        if self._pts is not None and self.num_frames > 1 and self._stream.time_base is not None:
            span = float((self._pts[-1] - self._pts[0]) * self._stream.time_base)
            if span > 0:
                return (self.num_frames - 1) / span
        if self._container.duration:
            return self.num_frames / (self._container.duration / 1_000_000)
        raise VideoDecodeError(self.path, "cannot determine the frame rate (no rate, timestamps or duration)")

    # -- decoding

    def _frames(self) -> Iterator[tuple[int, object]]:
        """(index, av.VideoFrame) from the current decoder position onwards."""
        counter = -1
        for frame in self._container.decode(self._stream):
            if self._pts_to_index is not None:
                if frame.pts is None or int(frame.pts) not in self._pts_to_index:
                    raise VideoDecodeError(self.path, f"decoded a frame with pts {frame.pts} not found among the packets")
                yield self._pts_to_index[int(frame.pts)], frame
            else:  # no pts: count frames; only valid when decoding from the file start
                counter += 1
                yield counter, frame

    def _seek_to_key(self, key_pos: int) -> None:
        """Restart decoding at keyframe number `key_pos` of `self._keys` (frame 0: reopen at the file start)."""
        key_index = int(self._keys[key_pos])
        if key_index == 0:
            self._open()
        else:
            try:
                self._container.seek(int(self._pts[key_index]), stream=self._stream, backward=True, any_frame=False)
            except (self._av.error.FFmpegError, OSError) as e:  # unseekable container: decode from the start
                logger.debug("seek failed in %s (%s); decoding from the start", self.path, e)
                self._open()
        self._decoder = self._frames()
        self._pos = -1

    def _next(self) -> tuple[int, object]:
        """The next (index, frame) from the decoder, or (-1, None) at the end of the stream."""
        if self._decoder is None:
            self._decoder = self._frames()
        try:
            index, frame = next(self._decoder)
        except StopIteration:
            return -1, None
        self._pos = index
        return index, frame

    def _advance_to(self, target: int):
        """Decode forward to frame `target` and return it (an av.VideoFrame)."""
        if self._keys is None:  # no usable pts: count frames from the file start
            if target <= self._pos:
                self._open()
            while True:
                index, frame = self._next()
                if frame is None:
                    raise VideoDecodeError(self.path, f"the stream ended before frame {target} ({self._pos + 1} decoded)")
                if index == target:
                    return frame
        key_pos = int(np.searchsorted(self._keys, target, side="right")) - 1  # last keyframe <= target (keys[0] == 0)
        just_seeked = False
        # seek when going backwards, or when a keyframe lies between the decoder position and the target
        if target <= self._pos or int(self._keys[key_pos]) > self._pos + 1:
            self._seek_to_key(key_pos)
            just_seeked = True
        while True:
            index, frame = self._next()
            if frame is None:
                raise VideoDecodeError(self.path, f"the stream ended before frame {target}")
            if index == target:
                return frame
            if index > target:
                if just_seeked and key_pos > 0:  # the demuxer landed past the keyframe: retry one keyframe earlier
                    key_pos -= 1
                    self._seek_to_key(key_pos)
                    continue
                raise VideoDecodeError(self.path, f"frame {target} could not be decoded (the decoder skipped to {index})")
            just_seeked = False

    def read(self, indices: np.ndarray) -> np.ndarray:
        out = None
        for j, target in enumerate(indices):
            target = int(target)
            if j > 0 and target == int(indices[j - 1]):
                out[j] = out[j - 1]
                continue
            frame = self._advance_to(target)
            if self._size is None:
                rgb = frame.to_ndarray(format="rgb24")
            else:
                h, w = self._size
                rgb = frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="BILINEAR")
            if out is None:
                out = np.empty((len(indices), *rgb.shape), dtype=np.uint8)  # (n,H,W,3)
            out[j] = rgb
        if out is None:
            h, w = self._size if self._size is not None else (self.height, self.width)
            out = np.zeros((0, h, w, 3), dtype=np.uint8)
        return out

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._decoder = None


# ---------------------------------------------------------------------------------------------------------------
# backend selection and fallback


class _Source:
    """An open video with the auto-fallback policy: decord first, PyAV when decord is missing or fails."""

    def __init__(self, path: str, backend: str, size: tuple[int, int] | None):
        self.path, self.requested, self.size = path, backend, size
        self.decord_error: BaseException | None = None  # why decord was passed over, reported if PyAV fails too
        self.reader = self._open()

    def _open(self):
        if self.requested in ("auto", "decord"):
            try:
                import decord  # noqa: F401  (optional dependency)
            except ImportError as e:
                if self.requested == "decord":
                    raise ImportError("backend='decord' needs decord: pip install 'trajvlm[video]'") from e
                logger.debug("decord is not installed; reading %s with PyAV", self.path)
            else:
                try:
                    return _DecordReader(self.path, self.size)
                except Exception as e:  # decord raises RuntimeError/DECORDError/...; chained below, never dropped
                    if self.requested == "decord":
                        raise VideoDecodeError(self.path, f"decord: {_describe(e)}") from e
                    logger.debug("decord cannot open %s (%s); trying PyAV", self.path, _describe(e))
                    self.decord_error = e
                    # inside the handler: a PyAV failure carries decord's error as its __context__
                    return self._open_pyav(e)
        return self._open_pyav(None)

    def _open_pyav(self, decord_error: BaseException | None):
        try:
            return _PyAVReader(self.path, self.size)
        except Exception as e:  # av.error.*, EOFError, our own VideoDecodeError, ...
            reason = f"PyAV: {_describe(e)}"
            if decord_error is not None:
                reason = f"decord: {_describe(decord_error)}; {reason}"
            raise VideoDecodeError(self.path, reason) from e

    def info(self) -> VideoInfo:
        r = self.reader
        return VideoInfo(path=self.path, fps=r.fps, num_frames=r.num_frames, duration=r.num_frames / r.fps, backend=r.backend)

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, str]:
        """Frames `(n,H,W,3)` uint8 at `indices` and the backend that decoded them."""
        try:
            return self.reader.read(indices), self.reader.backend
        except Exception as e:
            failed = self.reader.backend
            if failed == "decord" and self.requested == "auto":
                logger.warning("decord failed decoding %s (%s); falling back to PyAV", self.path, _describe(e))
                self.decord_error = e
                self.reader.close()
                self.reader = self._open_pyav(e)
                try:
                    return self.reader.read(indices), self.reader.backend
                except Exception as e2:
                    raise VideoDecodeError(self.path, f"decord: {_describe(e)}; PyAV: {_describe(e2)}") from e2
            if failed == "pyav" and self.decord_error is not None:
                reason = f"decord: {_describe(self.decord_error)}; PyAV: {_describe(e)}"
            else:
                reason = f"{'PyAV' if failed == 'pyav' else failed}: {_describe(e)}"
            raise VideoDecodeError(self.path, reason) from e

    def close(self) -> None:
        self.reader.close()


def _prepare(path, backend, size, max_frames, fps, start, end) -> tuple[_Source, np.ndarray]:
    """Validate arguments, open the file, and compute the sampled indices `(T,)` int64."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    validate_sampling_args(max_frames=max_frames, fps=fps, start=start, end=end)
    size_hw = _normalize_size(size)
    path = _check_path(path)
    source = _Source(path, backend, size_hw)
    try:
        info = source.info()
        indices = sample_frame_indices(info.num_frames, info.fps, max_frames=max_frames, fps=fps, start=start, end=end)
        if len(indices) == 0:
            raise VideoDecodeError(
                path, f"no frames in the window start={start} end={end} of a {info.duration:.3f}s video ({info.num_frames} frames)"
            )
    except BaseException:
        source.close()
        raise
    return source, indices


def _clip(source: _Source, frames: np.ndarray, indices: np.ndarray, backend: str) -> VideoClip:
    info = source.info()
    return VideoClip(
        frames=frames,
        timestamps=indices.astype(np.float64) / info.fps,
        frame_indices=indices.astype(np.int64),
        fps=info.fps,
        duration=info.duration,
        num_source_frames=info.num_frames,
        backend=backend,
        path=source.path,
    )


# ---------------------------------------------------------------------------------------------------------------
# public API


def probe_video(path: str | os.PathLike, *, backend: str = "auto") -> VideoInfo:
    """Frame rate, frame count and duration of `path` as `backend` sees it, without decoding frames
    (PyAV scans packets; decord indexes the file). Raises `VideoDecodeError` like `load_video`."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    source = _Source(_check_path(path), backend, None)
    try:
        return source.info()
    finally:
        source.close()


def load_video(
    path: str | os.PathLike,
    *,
    max_frames: int | None = 64,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    size: int | tuple[int, int] | None = None,
    backend: str = "auto",
) -> VideoClip:
    """Decode the uniformly sampled frames of `path` into a `VideoClip` with frames `(T,H,W,3)` uint8 RGB.

    Sampling (`sampling.sample_frame_indices`): frames whose time lies in `[start, end)` seconds, at most
    `fps` frames per second of video on average, then at most `max_frames` (None: no cap), spread with
    linspace. `size`: None keeps the source size; an int resizes to a square `(size, size)`; `(H, W)`
    resizes to that. `backend`: "auto" (decord, else PyAV), "decord" or "pyav".

    Raises `VideoDecodeError` (a RuntimeError) when the file is missing, empty, not a video, corrupt or
    truncated, has no decodable frame, or has no frame in `[start, end)`; `ValueError` for bad arguments;
    `ImportError` for `backend="decord"` without decord installed.
    """
    source, indices = _prepare(path, backend, size, max_frames, fps, start, end)
    try:
        frames, used = source.read(indices)  # (T,H,W,3)
        return _clip(source, frames, indices, used)
    finally:
        source.close()


def iter_video_chunks(
    path: str | os.PathLike,
    *,
    chunk_frames: int,
    max_frames: int | None = 64,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    size: int | tuple[int, int] | None = None,
    backend: str = "auto",
) -> Iterator[VideoClip]:
    """The frames `load_video(path, **same_kwargs)` returns, as consecutive `VideoClip`s of at most
    `chunk_frames` frames each (`(t,H,W,3)`, t <= chunk_frames), so a long video never sits in memory at once.

    Arguments are checked and the file is opened when this is called (errors surface here, not at the first
    `next()`); decoding happens lazily, chunk by chunk, continuing forward in the same decoder. Every chunk
    carries the whole video's metadata (fps, duration, num_source_frames). With `backend="auto"` a decord
    failure mid-way switches the remaining chunks to PyAV (same frame indices; `clip.backend` tells).
    Close the generator (or exhaust it) to release the file early.
    """
    if isinstance(chunk_frames, bool) or int(chunk_frames) != chunk_frames or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
    source, indices = _prepare(path, backend, size, max_frames, fps, start, end)
    return _chunks(source, indices, int(chunk_frames))


def _chunks(source: _Source, indices: np.ndarray, chunk_frames: int) -> Iterator[VideoClip]:
    try:
        for lo in range(0, len(indices), chunk_frames):
            part = indices[lo : lo + chunk_frames]  # (t,)
            frames, used = source.read(part)  # (t,H,W,3)
            yield _clip(source, frames, part, used)
    finally:
        source.close()
