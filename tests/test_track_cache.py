"""Frozen-track cache: TrajTok split into track_chunks + encode_tracks, TrackSet split/cat, TrackCache in the model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText

from trajvlm.model import TrajVLMProcessor
from trajvlm.testing import make_tiny_video
from trajvlm.trajtok.cache import TrackCache, pixel_key
from trajvlm.trajtok.tracks import TrackSet


@pytest.fixture
def model_proc(tiny_trajvlm_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_trajvlm_dir).eval()
    return model, TrajVLMProcessor.from_pretrained(tiny_trajvlm_dir)


def _videos(proc, n=3, frames=10):
    return [proc.video_processor(make_tiny_video(frames, seed=s, colour=(40 * s, 200, 90))) for s in range(n)]


def _freeze_tower_and_segmenter(model):
    for name, p in model.named_parameters():
        if name.startswith("vision_tower.") or name.startswith("connector.segmenter."):
            p.requires_grad_(False)


def test_tokenize_chunks_is_track_then_encode(model_proc):
    model, proc = model_proc
    px = torch.stack(_videos(proc, 2))  # (2,10,3,S,S)
    with torch.no_grad():
        feats = model.vision_tower(px.flatten(0, 1))
        feats = feats.reshape(2, 10, *feats.shape[1:])  # (2,10,h,w,C)
        ref = model.connector.tokenize_chunks(feats.split(4, dim=1))
        tracks = model.connector.track_chunks(feats.split(4, dim=1))
        parts = [model.connector.encode_tracks(t) for t in tracks.split()]
    assert tracks.num_videos == 2 and sum(tracks.counts) == tracks.pooled.shape[0]
    for b, part in enumerate(parts):
        torch.testing.assert_close(part.tokens[0], ref.tokens[b])
        assert torch.equal(part.trajectory_ids[0], ref.trajectory_ids[b])
        assert torch.equal(part.hard_ids[0], ref.hard_ids[b])
    again = TrackSet.cat(tracks.split())
    torch.testing.assert_close(again.pooled, tracks.pooled)
    assert again.counts == tracks.counts and torch.equal(again.hard_ids, tracks.hard_ids)


def test_trackset_cat_refuses_mismatched_videos(model_proc):
    model, proc = model_proc
    with torch.no_grad():
        a = model.connector.track_chunks(iter([model.vision_tower(_videos(proc, 1, 4)[0])[None]]))
        b = model.connector.track_chunks(iter([model.vision_tower(_videos(proc, 1, 6)[0])[None]]))
    with pytest.raises(ValueError, match="differ in frames"):
        TrackSet.cat([a, b])
    with pytest.raises(ValueError, match="no track sets"):
        TrackSet.cat([])


def test_cached_encoding_equals_uncached_and_skips_the_tower(model_proc):
    model, proc = model_proc
    videos = _videos(proc, 3)
    with torch.no_grad():
        ref = model.encode_video(videos)
    _freeze_tower_and_segmenter(model)
    cache = model.enable_track_cache(max_videos=8)
    calls = []
    hook = model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            first = model.encode_video([videos[0], videos[1], videos[0]])  # a repeated video is tracked once
            n_first = len(calls)
            second = model.encode_video(videos)  # only video 2 is new
    finally:
        hook.remove()
        model.disable_track_cache()
    assert len(cache) == 3 and n_first > 0 and len(calls) > n_first
    torch.testing.assert_close(first.embeds[0], ref.embeds[0])
    torch.testing.assert_close(first.embeds[2], ref.embeds[0])
    for i in range(3):
        torch.testing.assert_close(second.embeds[i], ref.embeds[i])
        assert torch.equal(second.trajtok.trajectory_ids[i], ref.trajtok.trajectory_ids[i])
    assert second.trajtok.hard_ids is None  # cached tracks carry no per-cell maps


def test_cached_encoding_still_trains_the_encoder(model_proc):
    model, proc = model_proc
    _freeze_tower_and_segmenter(model)
    model.enable_track_cache()
    try:
        videos = _videos(proc, 2)
        for _ in range(2):  # miss, then hit: both must give gradients to the trajectory encoder + projector
            model.zero_grad()
            enc = model.encode_video(videos)
            torch.stack([e.sum() for e in enc.embeds]).sum().backward()
            grads = [p.grad for n, p in model.named_parameters() if n.startswith("connector.encoder.")]
            assert any(g is not None and g.abs().sum() > 0 for g in grads)
            assert model.projector.linear_1.weight.grad.abs().sum() > 0
    finally:
        model.disable_track_cache()


def test_cache_refuses_trainable_segmenter_and_bad_size(model_proc):
    model, _ = model_proc
    for p in model.parameters():
        p.requires_grad_(True)
    with pytest.raises(ValueError, match="must be frozen"):
        model.enable_track_cache()
    with pytest.raises(ValueError, match="max_videos"):
        TrackCache(0)


def test_cache_evicts_least_recently_used(model_proc):
    model, proc = model_proc
    with torch.no_grad():
        tracks = model.connector.track_chunks(iter([model.vision_tower(_videos(proc, 1, 4)[0])[None]]))
    cache = TrackCache(max_videos=2)
    for key in ("a", "b"):
        cache.put(key, tracks)
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", tracks)
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    with pytest.raises(ValueError, match="one video"):
        cache.put("d", TrackSet.cat([tracks, tracks]))


def test_pixel_key_depends_on_pixels_and_shape():
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[1, 0, 0, 0] = 1e-3
    assert pixel_key(x) == pixel_key(x.clone())
    assert pixel_key(x) != pixel_key(y)
    assert pixel_key(x) != pixel_key(x.reshape(1, 6, 4, 4))


def test_persistent_cache_reloads_identical_tracks_in_a_new_cache(model_proc, tmp_path):
    model, proc = model_proc
    videos = _videos(proc, 2)
    _freeze_tower_and_segmenter(model)
    try:
        first = model.enable_track_cache(max_videos=8, directory=str(tmp_path))
        with torch.no_grad():
            ref = model.encode_video(videos)
        files = sorted(p.name for p in (tmp_path).rglob("*.safetensors"))
        assert len(files) == 2 and first.misses == 2 and first.disk_hits == 0
        # a fresh cache (a new run) over the same folder: no tower call, same embeddings
        second = model.enable_track_cache(max_videos=8, directory=str(tmp_path))
        calls = []
        hook = model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
        try:
            with torch.no_grad():
                again = model.encode_video(videos)
        finally:
            hook.remove()
    finally:
        model.disable_track_cache()
    assert calls == [] and second.disk_hits == 2 and second.misses == 0
    assert second.directory == first.directory
    for a, b in zip(again.embeds, ref.embeds):
        torch.testing.assert_close(a, b)


def test_persistent_cache_folder_changes_with_the_frozen_weights(model_proc, tmp_path):
    model, _ = model_proc
    _freeze_tower_and_segmenter(model)
    try:
        before = model.enable_track_cache(directory=str(tmp_path)).directory
        with torch.no_grad():
            next(model.connector.segmenter.parameters()).add_(0.01)
        after = model.enable_track_cache(directory=str(tmp_path)).directory
    finally:
        model.disable_track_cache()
    assert before != after and before.startswith(str(tmp_path))


def test_persistent_cache_folder_changes_with_the_tracking_code_version(model_proc, tmp_path, monkeypatch):
    """Same weights and config, different tracking code (TRACKS_VERSION bumped): never the old code's tracks."""
    from trajvlm.trajtok import cache as cache_module

    model, _ = model_proc
    _freeze_tower_and_segmenter(model)
    try:
        before = model.enable_track_cache(directory=str(tmp_path)).directory
        monkeypatch.setattr(cache_module, "TRACKS_VERSION", cache_module.TRACKS_VERSION + "-next")
        after = model.enable_track_cache(directory=str(tmp_path)).directory
    finally:
        model.disable_track_cache()
    assert before != after


def test_persistent_cache_refuses_a_foreign_file(tmp_path):
    cache = TrackCache(4, directory=str(tmp_path))
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "abc.safetensors"))
    with pytest.raises(ValueError, match="not a cached track file"):
        cache.get("abc")


def test_persistent_cache_folder_survives_a_save_load_round_trip(tmp_path):
    """Stage 2 loads stage 1's checkpoint: same frozen parts -> same folder (config bookkeeping such as the
    dtype a save fills in must not change it)."""
    from trajvlm.testing import build_tiny_trajvlm

    built, _ = build_tiny_trajvlm(tmp_path / "saved", connector="trajtok")
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "saved")
    folders = []
    for model in (built, loaded):
        _freeze_tower_and_segmenter(model)
        folders.append(model.enable_track_cache(directory=str(tmp_path / "cache")).directory)
        model.disable_track_cache()
    assert folders[0] == folders[1]


def test_trainer_keeps_few_videos_in_memory_when_a_folder_holds_them(tmp_path):
    from transformers import HfArgumentParser

    from trajvlm.train.arguments import ModelArguments
    from trajvlm.train.main import FOLDER_TRACK_CACHE, MEMORY_TRACK_CACHE, track_cache_size

    parser = HfArgumentParser(ModelArguments)

    def size(*argv):
        (args,) = parser.parse_args_into_dataclasses(list(argv))
        return track_cache_size(args)

    assert size() == MEMORY_TRACK_CACHE
    assert size("--track_cache_dir", str(tmp_path)) == FOLDER_TRACK_CACHE < MEMORY_TRACK_CACHE
    assert size("--track_cache_dir", str(tmp_path), "--track_cache_size", "7") == 7
    assert size("--track_cache_size", "9") == 9
