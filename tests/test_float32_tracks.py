"""keep_float32_tracks: a model cast to bf16 makes the tracks a float32 model makes (frozen tower + segmenter kept
as float32 copies), reads a float32 run's persistent track cache, and saves those parts in float32."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, HfArgumentParser

from trajvlm.model import TrajVLMProcessor
from trajvlm.testing import make_tiny_video

FROZEN = ("vision_tower.", "connector.segmenter.")


def _load(path, dtype=torch.float32):
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).eval()
    for name, p in model.named_parameters():
        if name.startswith(FROZEN):
            p.requires_grad_(False)
    return model


def _videos(path, n=3, frames=8):
    proc = TrajVLMProcessor.from_pretrained(path)
    return [proc.video_processor(make_tiny_video(frames, seed=s, colour=(40 * s, 200, 90))) for s in range(n)]


def _bf16_with_float32_tracks(path):
    model = _load(path)
    model.keep_float32_tracks()
    return model.to(torch.bfloat16)


def test_bf16_model_makes_the_float32_tracks(tiny_trajvlm_dir):
    videos = _videos(tiny_trajvlm_dir)
    ref = _load(tiny_trajvlm_dir)
    model = _bf16_with_float32_tracks(tiny_trajvlm_dir)
    plain = _load(tiny_trajvlm_dir, torch.bfloat16)
    assert model.float32_tracks and not plain.float32_tracks
    assert next(model.vision_tower.parameters()).dtype == torch.bfloat16  # the module itself was cast
    frames = torch.stack(videos)  # (3,T,3,S,S) float32
    with torch.no_grad():
        want = ref._make_tracks(frames, keep_maps=True)
        got = model._make_tracks(frames, keep_maps=True)
        bf16 = plain._make_tracks(frames, keep_maps=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the copies run with autocast off
            got_autocast = model._make_tracks(frames, keep_maps=True)
    assert got.pooled.dtype == torch.bfloat16 and want.pooled.dtype == torch.float32
    for tracks in (got, got_autocast):
        assert tracks.counts == want.counts and torch.equal(tracks.hard_ids, want.hard_ids)
        assert torch.equal(tracks.pooled, want.pooled.to(torch.bfloat16))
        assert torch.equal(tracks.boxes, want.boxes.to(torch.bfloat16))
    # what the copies are there for: a bf16 tower + segmenter computes other features
    assert not torch.equal(bf16.pooled, want.pooled.to(torch.bfloat16))

    with torch.no_grad():  # the whole encoding runs (tracks cast to the bf16 encoder), in both entry points
        enc = model.encode_video(videos)
        streamed = model.encode_video_chunks(iter(videos[0].split(3)))
    assert enc.embeds[0].dtype == torch.bfloat16
    assert torch.equal(enc.trajtok.trajectory_ids[0], streamed.trajtok.trajectory_ids[0])
    torch.testing.assert_close(streamed.embeds[0], enc.embeds[0])


def test_bf16_model_reads_the_float32_track_cache(tiny_trajvlm_dir, tmp_path):
    videos = _videos(tiny_trajvlm_dir, n=2)
    ref = _load(tiny_trajvlm_dir)
    filled = ref.enable_track_cache(directory=str(tmp_path))
    with torch.no_grad():
        ref.encode_video(videos)
    assert filled.misses == 2
    model = _bf16_with_float32_tracks(tiny_trajvlm_dir)
    cache = model.enable_track_cache(directory=str(tmp_path))
    plain = _load(tiny_trajvlm_dir, torch.bfloat16)
    assert cache.directory == filled.directory
    assert plain.enable_track_cache(directory=str(tmp_path)).directory != filled.directory
    calls = []
    hook = model._float32_tracking[0].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model.encode_video(videos)
    hook.remove()
    assert calls == [] and cache.disk_hits == 2 and cache.misses == 0


def test_saved_bf16_model_keeps_the_exact_frozen_weights(tiny_trajvlm_dir, tmp_path):
    from safetensors.torch import load_file

    ref = _load(tiny_trajvlm_dir).state_dict()
    model = _bf16_with_float32_tracks(tiny_trajvlm_dir)
    model.save_pretrained(tmp_path / "out")
    saved = load_file(str(tmp_path / "out" / "model.safetensors"))
    frozen = [k for k in saved if k.startswith(FROZEN)]
    assert frozen and all(saved[k].dtype == torch.float32 and torch.equal(saved[k], ref[k]) for k in frozen)
    llm = [k for k in saved if k.startswith("language_model.") and saved[k].is_floating_point()]
    assert llm and all(saved[k].dtype == torch.bfloat16 for k in llm)
    model.drop_float32_tracks()
    assert not model.float32_tracks
    assert model.state_dict()[frozen[0]].dtype == torch.bfloat16  # the hook went with the copies


def test_keep_float32_tracks_refusals(tiny_trajvlm_dir, tiny_patch_dir, tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(tiny_trajvlm_dir)  # nothing frozen
    with pytest.raises(ValueError, match="must be frozen"):
        model.keep_float32_tracks()
    frozen = _load(tiny_trajvlm_dir)
    frozen.enable_track_cache(directory=str(tmp_path))
    with pytest.raises(ValueError, match="before enable_track_cache"):
        frozen.keep_float32_tracks()
    with pytest.raises(ValueError, match="only the trajtok connector"):
        _load(tiny_patch_dir).keep_float32_tracks()
    with pytest.raises(ValueError, match="already torch.bfloat16; call it before casting"):
        _load(tiny_trajvlm_dir, torch.bfloat16).keep_float32_tracks()


def _args(*argv):
    from trajvlm.train.arguments import ModelArguments, TrajVLMTrainingArguments

    parser = HfArgumentParser((ModelArguments, TrajVLMTrainingArguments))
    return parser.parse_args_into_dataclasses(["--output_dir", "unused", "--use_cpu", "True", *argv])


def test_trainer_setting_decides_where_tracks_are_made(tiny_trajvlm_dir):
    from trajvlm.train.main import TrainingSetupError, maybe_keep_float32_tracks

    cases = [  # (args, tower frozen?, float32 copies kept?)
        (("--bf16", "True"), True, True),
        (("--bf16", "True", "--float32_tracks", "False"), True, False),
        (("--bf16", "True"), False, False),  # the tower trains: tracks change every step, bf16 it is
        ((), True, False),  # float32 run: nothing to do, the model stays float32
    ]
    for argv, frozen, kept in cases:
        model = _load(tiny_trajvlm_dir) if frozen else AutoModelForImageTextToText.from_pretrained(tiny_trajvlm_dir)
        model_args, training_args = _args(*argv)
        assert maybe_keep_float32_tracks(model, model_args, training_args) is kept, argv
        assert model.float32_tracks is kept
        want = torch.bfloat16 if training_args.bf16 else torch.float32
        assert next(model.language_model.parameters()).dtype == want
    model = AutoModelForImageTextToText.from_pretrained(tiny_trajvlm_dir)
    with pytest.raises(TrainingSetupError, match="--float32_tracks True, but the vision tower or the segmenter"):
        maybe_keep_float32_tracks(model, *_args("--bf16", "True", "--float32_tracks", "True"))
