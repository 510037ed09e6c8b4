"""Demo building blocks without gradio or a model: overlay drawing, stats, request checks, chunked decoding."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from trajvlm.demo.overlay import (
    TrajectoryLayout,
    contact_sheet,
    draw_frame,
    overlay_frames,
    pick_frames,
    trajectory_color,
)
from trajvlm.demo.pipeline import (
    DemoInputError,
    PreparedVideo,
    Progress,
    check_question,
    check_sampling,
    prepare_video,
    stream_answer,
    tokenize_prepared,
)
from trajvlm.demo.settings import DemoSettings
from trajvlm.demo.stats import DemoStats
from trajvlm.video import VideoDecodeError, write_video


def _layout(t: int = 6) -> TrajectoryLayout:
    ids = np.zeros((t, 4, 4), np.int64)  # (T,h,w)
    ids[:, :2, :2] = 3
    ids[:, 2:, 2:] = 5
    boxes = np.zeros((2, t, 4))
    boxes[0, :] = [0.0, 0.0, 0.5, 0.5]
    boxes[1, :] = [0.5, 0.5, 1.0, 1.0]
    presence = np.ones((2, t), bool)
    presence[1, 0] = False
    return TrajectoryLayout(trajectory_ids=np.array([3, 5]), boxes=boxes, presence=presence, hard_ids=ids)


def test_colors_are_stable_and_distinct():
    assert trajectory_color(3) == trajectory_color(3)
    colours = {trajectory_color(i) for i in range(40)}
    assert len(colours) == 40
    with pytest.raises(ValueError):
        trajectory_color(-1)


def test_draw_frame_tints_each_trajectory_in_its_colour():
    frame = np.full((16, 16, 3), 128, np.uint8)
    out = draw_frame(frame, _layout(), 1, out_size=64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # centre of each quadrant: tinted towards the trajectory's colour; background quadrant untouched
    for (y, x), tid in (((20, 20), 3), ((44, 44), 5)):
        colour = np.array(trajectory_color(tid), float)
        assert np.abs(out[y, x] - colour).sum() < np.abs(np.array([128.0] * 3) - colour).sum()
    assert (out[20, 44] == 128).all()


def test_absent_trajectory_has_no_box():
    frame = np.full((16, 16, 3), 128, np.uint8)
    layout = _layout()
    layout.hard_ids[:] = 0  # no tint: only boxes are drawn
    with_box = draw_frame(frame, layout, 1, out_size=64)
    without = draw_frame(frame, layout, 0, out_size=64)  # trajectory 5 absent at t=0
    assert (with_box[40:, 40:] != 128).any()
    assert (without[40:, 40:] == 128).all()


def test_overlay_frames_and_contact_sheet():
    frames = np.zeros((6, 16, 16, 3), np.uint8)
    shots = overlay_frames(frames, _layout(), timestamps=np.arange(6) / 2, count=4, out_size=32)
    assert len(shots) == 4
    assert shots[0][1].startswith("t=0.0s") and "1 trajectory" in shots[0][1]
    sheet = contact_sheet([im for im, _ in shots], columns=2, pad=2)
    assert sheet.shape == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2, 3)
    with pytest.raises(ValueError):
        overlay_frames(frames[:5], _layout(), count=2)
    assert list(pick_frames(3, 8)) == [0, 1, 2]
    assert list(pick_frames(100, 3)) == [0, 50, 99]


def test_stats_markdown_and_dict():
    s = DemoStats(frames=8, video_seconds=4.0, chunks=2, visual_tokens=10, patch_tokens=400, trajectories=5,
                  decode_s=0.1, encode_s=0.2, generate_s=0.3)
    d = s.to_dict()
    assert d["compression"] == 40.0 and d["visual_tokens"] == 10
    md = s.to_markdown()
    assert "**10**" in md and "400" in md and "40.0× fewer" in md
    assert "–" in DemoStats().to_markdown()


def test_request_checks():
    st = DemoSettings(model_path="unused")
    assert check_question("  hi ", st) == "hi"
    for bad in ("", "   ", None, "x" * (st.max_question_chars + 1)):
        with pytest.raises(DemoInputError):
            check_question(bad, st)
    assert check_sampling(8, 0, 0, st) == (8, None, None)
    assert check_sampling(8, 2, 16, st) == (8, 2.0, 16)
    for args in ((0, None, None), (st.max_frames_limit + 1, None, None), (8, -1, None), (8, None, 10**9), ("x", 1, 1)):
        with pytest.raises(DemoInputError):
            check_sampling(*args, st)
    with pytest.raises(ValueError):
        DemoSettings(model_path="unused", concurrency=0)


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    frames = np.zeros((40, 48, 64, 3), np.uint8)
    for t in range(40):
        frames[t, 10:20, t : t + 10] = (200, 30, 30)
    write_video(path, frames, fps=8)
    return path


def test_prepare_video_decodes_in_bounded_chunks(clip_path):
    st = DemoSettings(model_path="unused", chunk_frames=4)
    events = list(prepare_video(clip_path, max_frames=10, fps=None, size=32, settings=st))
    progress = [e for e in events if isinstance(e, Progress)]
    prepared = events[-1]
    assert isinstance(prepared, PreparedVideo)
    assert prepared.clip.frames.shape == (10, 32, 32, 3)  # max_frames and the square decode size hold
    assert prepared.chunks == 3  # 4 + 4 + 2
    assert [p.done for p in progress] == [0, 4, 8, 10] and progress[-1].total == 10
    assert np.all(np.diff(prepared.clip.timestamps) > 0)
    # the fps cap: a 5 s video at most 1 frame/s
    events = list(prepare_video(clip_path, max_frames=64, fps=1.0, size=32, settings=st))
    assert len(events[-1].clip) == 5


def test_prepare_video_refuses_bad_input(clip_path, tmp_path):
    st = DemoSettings(model_path="unused", max_video_minutes=4 / 60)  # 4 s limit, the clip is 5 s
    with pytest.raises(DemoInputError, match="0:05 long"):
        list(prepare_video(clip_path, max_frames=8, fps=None, size=32, settings=st))
    with pytest.raises(DemoInputError, match="upload a video"):
        list(prepare_video(None, max_frames=8, fps=None, size=32, settings=st))
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoDecodeError):
        list(prepare_video(text, max_frames=8, fps=None, size=32, settings=st))


def test_half_hour_video_is_decoded_in_bounded_chunks(tmp_path):
    """A 30-minute video (1 fps, tiny frames so it is quick to write) never sits in memory whole."""
    path = tmp_path / "half_hour.mp4"
    frames = np.zeros((1800, 32, 32, 3), np.uint8)  # (T,H,W,3) 30 min at 1 fps
    frames[:, :, :, 0] = (np.arange(1800) % 256)[:, None, None]
    write_video(path, frames, fps=1)
    del frames
    st = DemoSettings(model_path="unused", chunk_frames=8, max_video_minutes=31)
    events = prepare_video(path, max_frames=24, fps=None, size=32, settings=st)
    first = next(events)
    assert isinstance(first, Progress) and first.total == 24 and "30:00 video" in first.message, first.message
    seen = []
    for event in events:
        if isinstance(event, Progress):
            seen.append(event.done)
        else:
            prepared = event
    assert seen == [8, 16, 24]  # three chunks of 8 sampled frames
    assert prepared.clip.frames.shape == (24, 32, 32, 3) and prepared.chunks == 3
    assert prepared.clip.duration == pytest.approx(1800, abs=1)
    assert prepared.clip.timestamps[-1] > 1700  # spread over the whole half hour


class _RecordingChat:
    """Stands in for TrajVLMChat: records the options of each call; answers "ab" in two pieces."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.token_budget = None

    def resolve_token_budget(self, token_budget=None):
        return 64 if token_budget is None else token_budget

    def ask_stream(self, video, question, history, **options):
        self.calls.append(("ask_stream", options))
        budget = self.resolve_token_budget(options.get("token_budget"))
        response = SimpleNamespace(text="ab", num_visual_tokens=min(budget, 8), num_patch_tokens=128,
                                   num_trajectories=min(budget, 8) // 2,
                                   timings={"decode_s": 0.0, "encode_s": 0.1, "generate_s": 0.2})
        yield SimpleNamespace(text="a", response=None)
        yield SimpleNamespace(text="b", response=None)
        yield SimpleNamespace(text="", response=response)

    def tokenize_video(self, video, **options):
        self.calls.append(("tokenize_video", options))
        t = len(video)
        return SimpleNamespace(trajectory_ids=np.array([1]), boxes=np.zeros((1, t, 4)), presence=np.ones((1, t), bool),
                               hard_ids=np.ones((t, 4, 4), np.int64), num_visual_tokens=2, num_patch_tokens=128,
                               num_trajectories=1)


def test_the_token_budget_goes_to_the_chat_per_request(clip_path):
    """The demo passes each request's budget to TrajVLMChat; it neither copies nor changes the shared chat."""
    st = DemoSettings(model_path="unused", max_new_tokens=7, gallery_frames=2, overlay_size=32)
    prepared = list(prepare_video(clip_path, max_frames=4, fps=None, size=32, settings=st))[-1]
    chat = _RecordingChat()
    events = list(stream_answer(chat, prepared, "What moves?", [], token_budget=4, settings=st))
    assert [e.piece for e in events if hasattr(e, "piece")] == ["a", "b"]
    done = events[-1]
    assert done.text == "ab" and done.stats.token_budget == 4 and done.stats.visual_tokens == 4
    events = list(stream_answer(chat, prepared, "What moves?", [], token_budget=None, settings=st))
    assert events[-1].stats.token_budget == 64  # None: the chat's default
    tokenize_prepared(chat, prepared, token_budget=6, settings=st)
    assert chat.calls == [("ask_stream", {"max_new_tokens": 7, "token_budget": 4}),
                          ("ask_stream", {"max_new_tokens": 7, "token_budget": None}),
                          ("tokenize_video", {"token_budget": 6})]
    assert chat.token_budget is None
