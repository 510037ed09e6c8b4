"""Training data pipeline: dataset (lazy, skip-and-count), sidecars, YAML mixtures, collate, tracker, sampler."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from trajvlm.data.collate import (
    IGNORE_INDEX,
    BadSampleTracker,
    TooManyBadSamplesError,
    VideoTextCollator,
    pop_batch_meta,
)
from trajvlm.data.dataset import (
    DataFormatError,
    LazyVideoTextDataset,
    SkippedSample,
    VideoDataConfig,
    validate_record,
)
from trajvlm.data.mixture import load_mixture_spec, load_sources, read_records, sample_indices
from trajvlm.data.sampler import LengthGroupedSampler
from trajvlm.data.sidecars import SidecarError, load_sidecars, sidecar_paths, validate_sidecars
from trajvlm.video import write_video

VIDEO_ID = 1


class FakeProcessor:
    """Word-level stand-in for TrajVLMProcessor's one-sample call: `<video>` -> id 1, labels only on gpt turns."""

    def __init__(self, size: int = 8):
        self.size = size
        self.calls = 0

    def __call__(self, conversations, videos):
        self.calls += 1
        ids, labels = [], []
        for turn in conversations:
            for w in turn["value"].replace("<video>", " <video> ").split():
                tok = VIDEO_ID if w == "<video>" else 2 + sum(map(ord, w)) % 97
                ids.append(tok)
                labels.append(tok if turn["from"] == "gpt" else IGNORE_INDEX)
        if all(v == IGNORE_INDEX for v in labels):
            raise ValueError("zero supervised tokens")
        pixel_values = []
        for v in videos:
            frames = v.frames if hasattr(v, "frames") else v  # (T,H,W,3) uint8
            t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # (T,3,H,W)
            pixel_values.append(torch.nn.functional.interpolate(t, size=(self.size, self.size)))  # (T,3,S,S)
        return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "pixel_values_videos": pixel_values}


def _frames(t: int, h: int = 32, w: int = 32) -> np.ndarray:
    """(T,H,W,3) uint8: a white square whose x position encodes the frame index."""
    f = np.full((t, h, w, 3), 40, np.uint8)
    for i in range(t):
        x = 2 * i % (w - 8)
        f[i, 8:16, x : x + 8] = 230
    return f


def _masks(t: int, h: int = 32, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """masks (T,H,W) uint16 whose id 1 box moves with the frame index; graph (2,T) int32 (object 2 in even frames)."""
    m = np.zeros((t, h, w), np.uint16)
    g = np.zeros((2, t), np.int32)
    for i in range(t):
        x = 2 * i % (w - 8)
        m[i, 8:16, x : x + 8] = 1
        g[0, i] = 1
        if i % 2 == 0:
            m[i, 20:28, 20:28] = 7
            g[1, i] = 7
    return m, g


def _conv(question: str = "What moves?", answer: str = "A white square.", video: bool = True) -> list[dict]:
    q = f"<video>\n{question}" if video else question
    return [{"from": "human", "value": q}, {"from": "gpt", "value": answer}]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A data folder: videos (one with sidecars), an image, a corrupt video, and train.json over them."""
    root = tmp_path_factory.mktemp("data")
    write_video(root / "videos" / "a.mp4", _frames(12), fps=8)
    m, g = _masks(12)
    np.savez(root / "videos" / "a_mask.npz", masks=m)
    np.savez(root / "videos" / "a_graph.npz", graph=g)
    write_video(root / "videos" / "b.mp4", _frames(6), fps=8)
    (root / "images").mkdir()
    Image.fromarray(_frames(1)[0]).save(root / "images" / "c.png")
    (root / "videos" / "bad.mp4").write_bytes(b"this is not a video" * 50)
    records = [
        {"id": "a", "video": "videos/a.mp4", "conversations": _conv()},
        {"id": "b", "video": "videos/b.mp4", "conversations": _conv("Describe the video in a lot of detail please.")},
        {"id": "c", "image": "images/c.png", "conversations": _conv("What is in the image?")},
        {"id": "t", "conversations": _conv("Say hi.", "Hi there, how are you today?", video=False)},
        {"id": "bad", "video": "videos/bad.mp4", "conversations": _conv()},
        {"id": "gone", "video": "videos/missing.mp4", "conversations": _conv()},
    ]
    (root / "train.json").write_text(json.dumps(records))
    return root


def _dataset(root, **cfg):
    return LazyVideoTextDataset(root / "train.json", FakeProcessor(), VideoDataConfig(max_frames=4, **cfg))


# ------------------------------------------------------------------------------------------------------------
# dataset


def test_dataset_reads_video_image_and_text_samples(media):
    ds = _dataset(media)
    assert len(ds) == 6
    a, b, c, t = ds[0], ds[1], ds[2], ds[3]
    assert a["sample_id"] == "a" and a["input_ids"].shape == a["labels"].shape == a["attention_mask"].shape
    assert a["input_ids"].ndim == 1 and int((a["input_ids"] == VIDEO_ID).sum()) == 1
    assert [tuple(v.shape) for v in a["pixel_values_videos"]] == [(4, 3, 8, 8)]
    assert len(b["pixel_values_videos"]) == 1 and b["pixel_values_videos"][0].shape[0] == 4
    assert [tuple(v.shape) for v in c["pixel_values_videos"]] == [(1, 3, 8, 8)]  # image = 1-frame video
    assert t["pixel_values_videos"] == [] and t["video_masks"] == []
    assert b["video_masks"] == [None] and c["video_masks"] == [None]
    assert (a["labels"] != IGNORE_INDEX).any() and (a["labels"][: 3] == IGNORE_INDEX).all()


def test_sidecars_are_sampled_at_the_decoded_frames(media):
    from trajvlm.video import load_video

    ds = _dataset(media)
    item = ds[0]
    clip = load_video(media / "videos" / "a.mp4", max_frames=4)
    full_m, full_g = _masks(12)
    idx = clip.frame_indices
    assert idx.tolist() != list(range(4))  # sampled across the video, not the first 4 frames
    mask, graph = item["video_masks"][0], item["video_graphs"][0]
    assert mask.dtype == torch.long and tuple(mask.shape) == (4, 32, 32)
    np.testing.assert_array_equal(mask.numpy(), full_m[idx])
    keep = (full_g[:, idx] > 0).any(axis=1)
    np.testing.assert_array_equal(graph.numpy(), full_g[:, idx][keep])


def test_unreadable_media_is_skipped_counted_and_logged(media, caplog):
    ds = _dataset(media)
    with caplog.at_level(logging.WARNING, logger="trajvlm.data.dataset"):
        bad, gone = ds[4], ds[5]
    assert isinstance(bad, SkippedSample) and bad.sample_id == "bad" and bad.path.endswith("bad.mp4")
    assert isinstance(gone, SkippedSample) and "file not found" in gone.reason
    assert "bad" in caplog.text and "bad.mp4" in caplog.text and "missing.mp4" in caplog.text
    collate = VideoTextCollator(pad_token_id=0)
    batch = collate([ds[0], bad, ds[3], gone])
    assert batch["num_samples"] == 2 and batch["num_skipped"] == 2
    assert [s["id"] for s in batch["skipped"]] == ["bad", "gone"]
    assert batch["sample_ids"] == ["a", "t"]
    assert batch["input_ids"].shape[0] == 2  # never replaced by another sample


def test_broken_image_is_skipped(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "d.json").write_text(json.dumps([{"id": "img", "image": "x.png", "conversations": _conv()}]))
    item = LazyVideoTextDataset(tmp_path / "d.json", FakeProcessor())[0]
    assert isinstance(item, SkippedSample) and item.sample_id == "img" and "cannot read image" in item.reason


def test_start_end_window_is_read(tmp_path):
    write_video(tmp_path / "v.mp4", _frames(16), fps=8)  # 2 s
    recs = [{"id": "w", "video": "v.mp4", "start": 1.0, "end": 2.0, "conversations": _conv()}]
    (tmp_path / "d.json").write_text(json.dumps(recs))
    seen = []

    class Spy(FakeProcessor):
        def __call__(self, conversations, videos):
            seen.append(videos[0])
            return super().__call__(conversations, videos)

    LazyVideoTextDataset(tmp_path / "d.json", Spy(), VideoDataConfig(max_frames=4))[0]
    assert seen[0].frame_indices.min() >= 8 and len(seen[0].frame_indices) == 4


def test_processor_errors_name_the_sample(tmp_path):
    recs = [{"id": "empty-answer", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": ""}]}]
    (tmp_path / "d.json").write_text(json.dumps(recs))
    ds = LazyVideoTextDataset(tmp_path / "d.json", FakeProcessor())
    with pytest.raises(ValueError, match="zero supervised") as info:
        ds[0]
    assert any("empty-answer" in n and "d.json" in n for n in info.value.__notes__)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"id": "x", "video": "v.mp4"}, "missing 'conversations'"),
        ({"id": "x", "video": "v.mp4", "conversations": _conv(video=False)}, "no '<video>' placeholder"),
        ({"id": "x", "video": "v.mp4", "conversations": [{"from": "human", "value": "<video><video>"},
                                                          {"from": "gpt", "value": "a"}]}, "2 '<video>' placeholder"),
        ({"id": "x", "conversations": _conv()}, "1 '<video>' placeholder\\(s\\) but 0"),
        ({"id": "x", "video": "v.mp4", "conversations": [{"from": "human", "value": "<image>\nq"},
                                                          {"from": "gpt", "value": "a"}]}, "found '<image>'"),
        ({"id": "x", "video": "v.mp4", "image": "i.png", "conversations": _conv()}, "both 'video' and 'image'"),
        ({"id": "x", "video": "v.mp4", "conversations": [{"from": "human", "value": "<video>"}]}, "no 'gpt' turn"),
        ({"id": "x", "video": "v.mp4", "conversations": [{"from": "user", "value": "<video>"}]}, "'from' must be"),
        ({"id": "x", "video": "v.mp4", "start": 3, "end": 2, "conversations": _conv()}, "must be < 'end'"),
        ({"id": "x", "video": ["a.mp4", "b.mp4"], "conversations": _conv()}, "1 '<video>' placeholder\\(s\\) but 2"),
        ({"id": "x", "conversations": [{"value": "hi", "role": "user"}]}, "must be an object with 'from' and 'value'"),
        ({"id": "x", "video": "", "conversations": _conv()}, "must be a non-empty path"),
    ],
)
def test_bad_records_are_clear_errors_naming_id_and_file(tmp_path, record, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"id": "ok", "conversations": _conv(video=False)}, record]))
    with pytest.raises(DataFormatError, match=message) as info:
        LazyVideoTextDataset(path, FakeProcessor())
    assert "bad.json" in str(info.value) and "sample #1" in str(info.value) and "id='x'" in str(info.value)


def test_multi_video_sample(tmp_path):
    write_video(tmp_path / "v1.mp4", _frames(4), fps=4)
    write_video(tmp_path / "v2.mp4", _frames(6), fps=4)
    rec = {"id": "two", "video": ["v1.mp4", "v2.mp4"],
           "conversations": [{"from": "human", "value": "<video> then <video>: same?"}, {"from": "gpt", "value": "No."}]}
    validate_record(rec, where="t")
    (tmp_path / "d.json").write_text(json.dumps([rec]))
    item = LazyVideoTextDataset(tmp_path / "d.json", FakeProcessor(), VideoDataConfig(max_frames=8))[0]
    assert [v.shape[0] for v in item["pixel_values_videos"]] == [4, 6]


def test_lengths_estimate_visual_and_text(media):
    ds = _dataset(media, visual_tokens_per_frame=10)
    lengths = ds.lengths
    assert len(lengths) == len(ds)
    assert lengths[0] > lengths[3]  # a video sample outweighs a short text-only one
    assert lengths[1] > lengths[0]  # same video budget, longer question
    assert lengths[2] < lengths[0]  # an image is one frame
    capped = _dataset(media, visual_tokens_per_frame=10, visual_token_budget=5).lengths
    assert capped[0] == lengths[0] - 40 + 5


# ------------------------------------------------------------------------------------------------------------
# sidecars


def _video_with(tmp_path, t=6, mask=True, graph=True, m=None, g=None):
    path = tmp_path / "v.mp4"
    write_video(path, _frames(t), fps=8)
    mm, gg = _masks(t)
    mp, gp = sidecar_paths(path)
    if mask:
        np.savez(mp, masks=mm if m is None else m)
    if graph:
        np.savez(gp, graph=gg if g is None else g)
    return path


def test_sidecar_paths():
    assert [p.name for p in sidecar_paths("/d/x.mp4")] == ["x_mask.npz", "x_graph.npz"]


def test_sidecar_policies(tmp_path):
    path = tmp_path / "plain.mp4"
    write_video(path, _frames(4), fps=8)
    assert load_sidecars(path, policy="auto") is None
    with pytest.raises(SidecarError, match="required mask sidecars are missing"):
        load_sidecars(path, policy="require")
    with_sc = _video_with(tmp_path)
    assert load_sidecars(with_sc, policy="ignore") is None
    sc = load_sidecars(with_sc, policy="require", num_source_frames=6)
    assert sc.masks.shape == (6, 32, 32) and sc.graph.shape == (2, 6)
    with pytest.raises(ValueError, match="policy"):
        load_sidecars(with_sc, policy="sometimes")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"graph": False}, "without its partner"),
        ({"m": np.zeros((5, 32, 32), np.uint16)}, "has 5 frames but the video has 6"),
        ({"m": np.zeros((6, 32, 32), np.float32)}, "must hold integers"),
        ({"g": np.full((1, 6), 3, np.int32)}, "mask ids \\[3\\] are not in the mask"),
        ({"g": np.ones((2, 6), np.int32)}, "share a mask id"),
        ({"g": np.ones((6,), np.int32)}, "must be \\(N,T\\)"),
    ],
)
def test_bad_sidecars_raise_naming_the_file(tmp_path, kwargs, message):
    path = _video_with(tmp_path, **kwargs)
    with pytest.raises(SidecarError, match=message) as info:
        load_sidecars(path, num_source_frames=6)
    assert "v_mask.npz" in str(info.value) or "v_graph.npz" in str(info.value)


def test_corrupt_sidecar_and_required_missing_are_skipped(tmp_path):
    path = _video_with(tmp_path)
    sidecar_paths(path)[0].write_bytes(b"PK\x03\x04 broken zip")
    write_video(tmp_path / "plain.mp4", _frames(4), fps=8)
    recs = [{"id": "corrupt", "video": "v.mp4", "conversations": _conv()},
            {"id": "nomask", "video": "plain.mp4", "conversations": _conv()}]
    (tmp_path / "d.json").write_text(json.dumps(recs))
    auto = LazyVideoTextDataset(tmp_path / "d.json", FakeProcessor(), VideoDataConfig(max_frames=4))
    assert isinstance(auto[0], SkippedSample) and "cannot read npz" in auto[0].reason
    assert not isinstance(auto[1], SkippedSample) and auto[1]["video_masks"] == [None]
    req = LazyVideoTextDataset(tmp_path / "d.json", FakeProcessor(), VideoDataConfig(max_frames=4, sidecars="require"))
    assert isinstance(req[1], SkippedSample) and "required" in req[1].reason
    ign = LazyVideoTextDataset(tmp_path / "d.json", FakeProcessor(), VideoDataConfig(max_frames=4, sidecars="ignore"))
    assert ign[0]["video_masks"] == [None]


def test_validate_sidecars_accepts_consistent_data():
    m, g = _masks(5)
    validate_sidecars(m, g)


# ------------------------------------------------------------------------------------------------------------
# collate


def _item(n_tokens, t=None, sid="s", masks=False, s=4):
    ids = torch.arange(2, 2 + n_tokens)
    labels = ids.clone()
    labels[0] = IGNORE_INDEX
    videos = [] if t is None else [torch.rand(t, 3, s, s)]
    mk = [None] * len(videos)
    gr = [None] * len(videos)
    if masks and videos:
        mk, gr = [torch.ones(t, 6, 6, dtype=torch.long)], [torch.ones(1, t, dtype=torch.long)]
    return {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids), "pixel_values_videos": videos,
            "video_masks": mk, "video_graphs": gr, "sample_id": sid, "index": 0}


@pytest.mark.parametrize("side", ["right", "left"])
def test_collate_pads_on_the_tokenizer_side(side):
    batch = VideoTextCollator(pad_token_id=0, padding_side=side)([_item(3, 2), _item(5, 2)])
    ids, labels, att = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == att.shape == (2, 5)
    if side == "right":
        assert ids[0].tolist() == [2, 3, 4, 0, 0] and labels[0, 3:].tolist() == [IGNORE_INDEX] * 2
        assert att[0].tolist() == [1, 1, 1, 0, 0]
    else:
        assert ids[0].tolist() == [0, 0, 2, 3, 4] and labels[0, :2].tolist() == [IGNORE_INDEX] * 2
        assert att[0].tolist() == [0, 0, 1, 1, 1]
    assert batch["pixel_values_videos"].shape == (2, 2, 3, 4, 4)  # uniform -> stacked (V,T,3,S,S)


def test_collate_from_tokenizer_follows_padding_side():
    class Tok:
        pad_token_id, padding_side = 9, "left"

    c = VideoTextCollator.from_tokenizer(Tok())
    assert (c.pad_token_id, c.padding_side) == (9, "left")
    Tok.pad_token_id = None
    with pytest.raises(ValueError, match="no pad token"):
        VideoTextCollator.from_tokenizer(Tok())


def test_collate_ragged_videos_text_only_and_masks():
    c = VideoTextCollator(pad_token_id=0)
    batch = c([_item(3, 2, "a", masks=True), _item(4, None, "t"), _item(2, 5, "b")])
    pv = batch["pixel_values_videos"]
    assert isinstance(pv, list) and [v.shape[0] for v in pv] == [2, 5]  # ragged T -> list
    assert batch["video_sample_index"].tolist() == [0, 2]
    assert len(batch["video_masks"]) == 2 and batch["video_masks"][1] is None
    assert batch["video_masks"][0].shape == (2, 6, 6) and batch["video_graphs"][0].shape == (1, 2)
    text_only = c([_item(3, None), _item(4, None)])
    assert text_only["pixel_values_videos"] is None and "video_masks" not in text_only
    assert text_only["video_sample_index"].numel() == 0
    meta = pop_batch_meta(batch)
    assert meta["num_samples"] == 3 and meta["num_skipped"] == 0
    assert set(batch) == {"input_ids", "labels", "attention_mask", "pixel_values_videos", "video_masks", "video_graphs"}


def test_collate_all_skipped_gives_an_empty_batch():
    sk = SkippedSample(0, "x", "/v.mp4", "broken", "d.json")
    batch = VideoTextCollator(pad_token_id=0)([sk, sk])
    assert batch["input_ids"].shape == (2 - 2, 0) and batch["num_skipped"] == 2 and batch["pixel_values_videos"] is None


def test_dataloader_workers_carry_skip_counts(media):
    ds = _dataset(media)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=VideoTextCollator(pad_token_id=0))
    tracker = BadSampleTracker(max_bad_sample_ratio=0.5, min_samples=1)
    ids = []
    for batch in loader:
        tracker.update(batch)
        ids += batch["sample_ids"]
    assert (tracker.seen, tracker.bad) == (6, 2) and tracker.ratio == pytest.approx(1 / 3)
    assert sorted(ids) == ["a", "b", "c", "t"]


# ------------------------------------------------------------------------------------------------------------
# tracker


def test_bad_sample_tracker_raises_past_the_ratio_after_min_samples():
    tr = BadSampleTracker(max_bad_sample_ratio=0.2, min_samples=10)
    bad = {"id": "v9", "path": "/x/v9.mp4", "reason": "corrupt"}
    tr.update({"num_samples": 2, "num_skipped": 2, "skipped": [bad, bad]})  # 50% but only 4 seen: keep going
    assert tr.ratio == 0.5
    tr.update({"num_samples": 12, "num_skipped": 0})  # 2 / 16 = 12.5%
    with pytest.raises(TooManyBadSamplesError, match="v9") as info:
        tr.update({"num_samples": 0, "num_skipped": 2, "skipped": [bad, bad]})  # 4 / 18 = 22%
    assert "4 of 18" in str(info.value)
    state = tr.state_dict()
    again = BadSampleTracker(max_bad_sample_ratio=0.2, min_samples=10)
    again.load_state_dict(state)
    assert (again.seen, again.bad) == (18, 4)
    with pytest.raises(KeyError):
        tr.update({"input_ids": None})
    with pytest.raises(ValueError):
        BadSampleTracker(max_bad_sample_ratio=1.5)


# ------------------------------------------------------------------------------------------------------------
# mixtures


def _write(path, n, prefix):
    recs = [{"id": f"{prefix}{i}", "video": f"{prefix}{i}.mp4", "conversations": _conv()} for i in range(n)]
    path.write_text(json.dumps(recs))


def test_mixture_yaml_strategies_and_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "a.json", 10, "a")
    _write(tmp_path / "b.json", 20, "b")
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps({"id": f"c{i}", "conversations": _conv(video=False)}) for i in range(8)) + "\n\n")
    (tmp_path / "mix.yaml").write_text(
        "video_folder: vids\n"
        "datasets:\n"
        "  - json_path: sub/a.json\n    sampling_strategy: 'first:3'\n    video_folder: /abs/videos\n"
        "  - json_path: b.json\n    sampling_strategy: 'random:25%'\n"
        "  - json_path: c.jsonl\n    sampling_ratio: 1.5\n"
        "  - json_path: b.json\n    sampling_strategy: 'end:2'\n"
    )
    sources = load_sources(tmp_path / "mix.yaml", seed=3)
    ids = [[r["id"] for r in s.records] for s in sources]
    assert ids[0] == ["a0", "a1", "a2"]
    assert len(ids[1]) == 5 and set(ids[1]) <= {f"b{i}" for i in range(20)}
    assert len(ids[2]) == 12 and ids[2][:8] == [f"c{i}" for i in range(8)]
    assert ids[3] == ["b18", "b19"]
    assert sources[0].spec.video_folder == "/abs/videos"
    assert sources[1].spec.video_folder == str((tmp_path / "vids").resolve())
    again = load_sources(tmp_path / "mix.yaml", seed=3)
    assert [r["id"] for r in again[1].records] == ids[1]  # deterministic in the seed
    other = load_sources(tmp_path / "mix.yaml", seed=4)
    assert [r["id"] for r in other[1].records] != ids[1]
    ds = LazyVideoTextDataset(tmp_path / "mix.yaml", FakeProcessor(), video_folder="/fallback")
    assert len(ds) == 3 + 5 + 12 + 2
    assert ds.media_paths(0) == ["/abs/videos/a0.mp4"]
    assert ds.media_paths(3)[0].startswith(str((tmp_path / "vids").resolve()))
    assert ds.media_paths(8) == []  # text-only


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("datasets:\n  - json_path: b.json\n    sampling_stratgy: all\n", "unknown keys \\['sampling_stratgy'\\]"),
        ("datasets:\n  - json_path: b.json\n    sampling_strategy: 'some:3'\n", "sampling_strategy must be"),
        ("datasets:\n  - json_path: b.json\n    sampling_strategy: 'first:x'\n", "not a whole number"),
        ("datasets:\n  - json_path: b.json\n    sampling_strategy: 'first:3'\n    sampling_ratio: 2\n", "not both"),
        ("datasets: []\n", "non-empty top-level `datasets:`"),
        ("data:\n  - json_path: b.json\n", "non-empty top-level"),
    ],
)
def test_mixture_errors(tmp_path, yaml_text, message):
    _write(tmp_path / "b.json", 4, "b")
    (tmp_path / "m.yaml").write_text(yaml_text)
    with pytest.raises(DataFormatError, match=message):
        load_mixture_spec(tmp_path / "m.yaml")


def test_record_file_errors(tmp_path):
    jl = tmp_path / "x.jsonl"
    jl.write_text('{"id": 1}\n{broken\n')
    with pytest.raises(DataFormatError, match="x.jsonl: line 2"):
        read_records(jl)
    js = tmp_path / "x.json"
    js.write_text('{"id": 1}')
    with pytest.raises(DataFormatError, match="must hold a list"):
        read_records(js)
    with pytest.raises(DataFormatError, match="not found"):
        read_records(tmp_path / "nope.json")
    with pytest.raises(DataFormatError, match=".json, .jsonl or .yaml"):
        load_sources(tmp_path / "x.txt")


def test_sample_indices():
    assert sample_indices(10, strategy="first:30%").tolist() == [0, 1, 2]
    assert sample_indices(50, strategy="first:1%").tolist() == [0]  # rounds up
    assert sample_indices(3, strategy="first:10").tolist() == [0, 1, 2]
    assert sample_indices(4, ratio=2.0).tolist() == [0, 1, 2, 3] * 2
    half = sample_indices(10, ratio=0.5, seed=1)
    assert len(half) == 5 and len(set(half.tolist())) == 5
    with pytest.raises(DataFormatError):
        sample_indices(4, ratio=0)


# ------------------------------------------------------------------------------------------------------------
# sampler


def test_length_grouped_sampler_is_a_deterministic_grouped_permutation():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 1000, (403,), generator=g).tolist()
    s = LengthGroupedSampler(lengths, batch_size=4, world_size=2, seed=7, megabatch_mult=8)
    order = list(s)
    assert sorted(order) == list(range(403)) and len(s) == 403
    assert order == list(LengthGroupedSampler(lengths, batch_size=4, world_size=2, seed=7, megabatch_mult=8))
    assert order != list(LengthGroupedSampler(lengths, batch_size=4, world_size=2, seed=8, megabatch_mult=8))
    s.set_epoch(1)
    assert list(s) != order and sorted(s) == list(range(403))
    assert order[0] == int(np.argmax(lengths))  # longest first
    # per-device batches are homogeneous: mean within-batch spread far below that of random batches
    lens = np.asarray(lengths)

    def spread(idx):
        return np.mean([np.ptp(lens[idx[i : i + 4]]) for i in range(0, 400, 4)])

    rand = np.random.default_rng(0).permutation(403).tolist()
    assert spread(order) < 0.25 * spread(rand)


def test_length_grouped_sampler_with_dataset_and_trainer_batches(media):
    ds = _dataset(media)
    s = LengthGroupedSampler(ds.lengths, batch_size=2, seed=0)
    assert sorted(s) == list(range(len(ds)))
    with pytest.raises(ValueError):
        LengthGroupedSampler([], batch_size=2)
    with pytest.raises(ValueError):
        LengthGroupedSampler([1, 2], batch_size=0)


# ------------------------------------------------------------------------------------------------------------
# with the real TrajVLMProcessor (tiny tokenizer)


@pytest.fixture(scope="module")
def real_processor():
    from trajvlm.model.processing_trajvlm import TrajVLMProcessor
    from trajvlm.testing import build_tiny_tokenizer
    from trajvlm.vision.processor import TrajVLMVideoProcessor

    vp = TrajVLMVideoProcessor(size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return TrajVLMProcessor(build_tiny_tokenizer(), vp, chat_template="vicuna_v1")


def test_dataset_and_collate_with_the_real_processor(media, real_processor):
    proc = real_processor
    ds = LazyVideoTextDataset(media / "train.json", proc, VideoDataConfig(max_frames=4, video_token=proc.video_token))
    items = [ds[i] for i in range(len(ds))]
    a, c, t = items[0], items[2], items[3]
    assert int((a["input_ids"] == proc.video_token_id).sum()) == 1 and int((t["input_ids"] == proc.video_token_id).sum()) == 0
    sup = a["labels"] != IGNORE_INDEX
    assert sup.any() and (a["labels"][sup] == a["input_ids"][sup]).all()
    assert "white square" in proc.decode(a["input_ids"][sup]).lower()
    assert tuple(a["pixel_values_videos"][0].shape) == (4, 3, 16, 16)
    assert tuple(c["pixel_values_videos"][0].shape) == (1, 3, 16, 16)
    collate = VideoTextCollator.from_tokenizer(proc.tokenizer)
    batch = collate(items)
    assert batch["num_skipped"] == 2 and batch["input_ids"].shape[0] == 4
    pad_left = proc.tokenizer.padding_side == "left"
    short = int(batch["attention_mask"].sum(1).argmin())
    edge = batch["attention_mask"][short, 0 if pad_left else -1]
    assert int(edge) == 0  # padding sits on the tokenizer's side
    assert isinstance(batch["pixel_values_videos"], list) and [v.shape[0] for v in batch["pixel_values_videos"]] == [4, 4, 1]
    assert batch["video_masks"][0].shape == (4, 32, 32) and batch["video_masks"][1] is None
    # max_length reaches the processor: cutting all supervision is an error naming the sample
    cut = LazyVideoTextDataset(media / "train.json", proc, VideoDataConfig(max_frames=4, max_length=12))
    with pytest.raises(ValueError) as info:
        cut[3]
    assert any("id='t'" in n for n in getattr(info.value, "__notes__", []))
