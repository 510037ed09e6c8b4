"""Training pieces without the launcher: stage freezing, per-module param groups, connector save/load,
resume resolution, argv preparation, the DeepSpeed-enabled guard, the evaluator's answer parsing."""

from __future__ import annotations

import os
import types

import pytest
import torch

from trajvlm.testing import build_tiny_trajvlm
from trajvlm.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_connector,
    resolve_resume,
    save_connector,
)
from trajvlm.train.evaluate import parse_letter
from trajvlm.train.main import TrainingSetupError, check_deepspeed_enabled, prepare_argv
from trajvlm.train.stages import (
    StageError,
    apply_lora,
    apply_stage,
    build_param_groups,
    connector_named_parameters,
    trainable_counts,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, processor = build_tiny_trajvlm(work_dir=tmp_path_factory.mktemp("parts"))
    return model, processor


def _group_lrs(groups):
    return {g["name"]: g["lr"] for g in groups}


def test_pretrain_trains_connector_only(tiny):
    model, _ = tiny
    counts = apply_stage(model, "pretrain")
    assert counts["vision"] == 0 and counts["llm"] == 0 and counts["other"] == 0
    assert counts["connector"] == sum(p.numel() for p in model.connector.parameters()) + sum(
        p.numel() for p in model.projector.parameters()
    )
    assert not any(p.requires_grad for p in model.language_model.parameters())
    assert not any(p.requires_grad for p in model.vision_tower.parameters())


def test_finetune_param_groups_carry_module_lrs(tiny):
    model, _ = tiny
    apply_stage(model, "finetune", tune_vision_tower=True)
    groups = build_param_groups(model, learning_rate=1e-4, weight_decay=0.1, connector_lr=1e-3, vision_lr=1e-5)
    lrs = _group_lrs(groups)
    assert lrs["connector/decay"] == 1e-3 and lrs["vision/decay"] == 1e-5 and lrs["llm/decay"] == 1e-4
    # every trainable parameter in exactly one group; biases/norms without decay
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for p in model.parameters() if p.requires_grad)
    assert all(g["weight_decay"] == 0.0 for g in groups if g["name"].endswith("no_decay"))
    assert all(p.ndim >= 2 for g in groups if g["name"].endswith("/decay") for p in g["params"])
    # vision frozen by default in stage 2
    apply_stage(model, "finetune")
    assert trainable_counts(model)["vision"] == 0
    assert "vision/decay" not in _group_lrs(build_param_groups(model, learning_rate=1e-4, weight_decay=0.0))


def test_finetune_lora_trains_adapters_and_connector(tmp_path):
    model, _ = build_tiny_trajvlm(work_dir=tmp_path)
    apply_stage(model, "finetune", lora=True)
    peft_model = apply_lora(model, r=4, alpha=8, dropout=0.0, target_modules="q_proj,v_proj")
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable)
    assert any(".connector." in n for n in trainable) and any(".projector." in n for n in trainable)
    assert not any(".language_model." in n and "lora_" not in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)
    lrs = _group_lrs(build_param_groups(peft_model, learning_rate=2e-4, weight_decay=0.0, connector_lr=1e-3))
    assert lrs["llm/decay"] == 2e-4 and lrs["connector/decay"] == 1e-3


def test_stage_errors(tiny):
    model, _ = tiny
    with pytest.raises(StageError, match="unknown stage"):
        apply_stage(model, "warmup")
    with pytest.raises(StageError, match="no LLM linear layer"):
        apply_lora(model, r=2, alpha=4, dropout=0.0, target_modules="nonexistent_proj")


def test_connector_roundtrip(tiny, tmp_path):
    model, _ = tiny
    path = save_connector(model, str(tmp_path / "connector.safetensors"))
    before = {n: p.detach().clone() for n, p in connector_named_parameters(model)}
    assert set(before) and all(n.startswith(("connector.", "projector.")) for n in before)
    with torch.no_grad():
        for _, p in connector_named_parameters(model):
            p.add_(1.0)
    names = load_connector(model, path)
    assert sorted(names) == sorted(before)
    for n, p in connector_named_parameters(model):
        assert torch.equal(p, before[n])
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"connector.nope": torch.zeros(1)}, str(bad))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_connector(model, str(bad))


def test_resume_resolution(tmp_path):
    out = tmp_path / "run"
    assert resolve_resume(None, str(out), True) is None
    for step in (5, 20, 100):
        (out / f"checkpoint-{step}").mkdir(parents=True)
    (out / "checkpoint-20" / "trainer_state.json").write_text("{}")
    (out / "checkpoint-5" / "trainer_state.json").write_text("{}")
    # checkpoint-100 has no trainer state (interrupted save): not a resume point
    assert latest_checkpoint(str(out)) == str(out / "checkpoint-20")
    assert resolve_resume(None, str(out), True) == str(out / "checkpoint-20")
    assert resolve_resume(None, str(out), False) is None
    assert resolve_resume("latest", str(out), False) == str(out / "checkpoint-20")
    assert resolve_resume(str(out / "checkpoint-5"), str(out), True) == str(out / "checkpoint-5")
    with pytest.raises(CheckpointError):
        resolve_resume(str(tmp_path / "missing"), str(out), True)
    with pytest.raises(CheckpointError):
        resolve_resume("true", str(tmp_path / "empty"), True)


def test_prepare_argv_and_deepspeed_guard(monkeypatch):
    argv = prepare_argv(["--output_dir", "x"], "pretrain")
    assert argv[argv.index("--stage") + 1] == "pretrain"
    if not torch.cuda.is_available():
        assert argv[argv.index("--use_cpu") + 1] == "True"
    assert prepare_argv(["--use_cpu=False"], "finetune").count("--use_cpu") == 0
    with pytest.raises(TrainingSetupError, match="--stage"):
        prepare_argv(["--stage", "pretrain"], "finetune")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    trainer = types.SimpleNamespace(is_deepspeed_enabled=False)
    with pytest.raises(TrainingSetupError, match="ACCELERATE_USE_CPU"):
        check_deepspeed_enabled(trainer, types.SimpleNamespace(deepspeed="scripts/zero2.json"))
    check_deepspeed_enabled(trainer, types.SimpleNamespace(deepspeed=None))


def test_parse_letter():
    assert parse_letter("B") == "B"
    assert parse_letter(" C. red") == "C"
    assert parse_letter("(D)") == "D"
    assert parse_letter("none") is None


def test_shipped_configs_have_no_optimizer_blocks():
    import json

    root = os.path.join(os.path.dirname(__file__), "..", "scripts")
    for name in ("zero2.json", "zero3.json", "zero3_offload.json"):
        with open(os.path.join(root, name)) as f:
            cfg = json.load(f)
        assert "optimizer" not in cfg and "scheduler" not in cfg, name
        assert cfg["train_micro_batch_size_per_gpu"] == "auto"
        if cfg["zero_optimization"]["stage"] == 3:
            assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    with open(os.path.join(root, "zero3_offload.json")) as f:
        assert json.load(f)["zero_force_ds_cpu_optimizer"] is False


def test_freeze_segmenter_and_track_cache_switch(tiny):
    from trajvlm.train.arguments import ModelArguments
    from trajvlm.train.main import maybe_enable_track_cache

    model, _ = tiny
    counts = apply_stage(model, "finetune", freeze_segmenter=True)
    assert not any(p.requires_grad for p in model.connector.segmenter.parameters())
    assert all(p.requires_grad for p in model.connector.encoder.parameters())
    assert counts["connector"] == sum(p.numel() for p in model.connector.encoder.parameters()) + sum(
        p.numel() for p in model.projector.parameters()
    )
    on = types.SimpleNamespace(seg_loss_weight=0.0)
    try:
        assert maybe_enable_track_cache(model, ModelArguments(), on) and model.track_cache is not None
        model.disable_track_cache()
        # a segmentation loss needs per-cell maps; a trainable segmenter makes cached tracks stale
        assert not maybe_enable_track_cache(model, ModelArguments(), types.SimpleNamespace(seg_loss_weight=0.5))
        assert not maybe_enable_track_cache(model, ModelArguments(cache_frozen_tracks=False), on)
        apply_stage(model, "finetune")
        assert not maybe_enable_track_cache(model, ModelArguments(), on) and model.track_cache is None
    finally:
        model.disable_track_cache()
        apply_stage(model, "pretrain")


def test_time_budget_callback_stops_and_saves(monkeypatch):
    from transformers import TrainerControl, TrainerState

    from trajvlm.train import trainer as trainer_mod
    from trajvlm.train.trainer import TimeBudgetCallback

    now = [100.0]
    monkeypatch.setattr(trainer_mod.time, "monotonic", lambda: now[0])
    cb = TimeBudgetCallback(minutes=0.5)
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(None, state, control)
    now[0] += 29.0
    state.global_step = 7
    cb.on_step_end(None, state, control)
    assert not control.should_training_stop and cb.stopped_at is None
    now[0] += 1.0
    state.global_step = 8
    cb.on_step_end(None, state, control)
    assert control.should_training_stop and control.should_save and cb.stopped_at == 8
    with pytest.raises(ValueError, match="max_train_minutes"):
        TimeBudgetCallback(0)


def test_freeze_segmenter_refuses_a_connector_without_one(tmp_path):
    from trajvlm.train.arguments import ModelArguments
    from trajvlm.train.main import maybe_enable_track_cache

    model, _ = build_tiny_trajvlm(connector="patch", work_dir=tmp_path)
    with pytest.raises(StageError, match="no segmenter"):
        apply_stage(model, "finetune", freeze_segmenter=True)
    apply_stage(model, "finetune")
    assert not maybe_enable_track_cache(model, ModelArguments(), types.SimpleNamespace(seg_loss_weight=0.0))
    with pytest.raises(ValueError, match="only the trajtok connector"):
        model.enable_track_cache()


def test_finetune_saves_the_frame_sampling_it_trained_with(tiny, tmp_path):
    from trajvlm.model import TrajVLMProcessor
    from trajvlm.train.arguments import DataArguments, ModelArguments, TrajVLMTrainingArguments
    from trajvlm.train.main import build_model

    model, processor = tiny
    model.save_pretrained(tmp_path / "stage1")
    processor.save_pretrained(tmp_path / "stage1")
    stage1_frames = TrajVLMProcessor.from_pretrained(tmp_path / "stage1").num_frames
    margs = ModelArguments(model_name_or_path=str(tmp_path / "stage1"))
    targs = TrajVLMTrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True)
    for frames, fps in ((stage1_frames + 3, None), (stage1_frames, 2.0)):
        _, proc = build_model(margs, DataArguments(num_frames=frames, video_fps=fps), targs)
        proc.save_pretrained(tmp_path / "stage2")
        saved = TrajVLMProcessor.from_pretrained(tmp_path / "stage2")
        assert (saved.num_frames, saved.fps) == (frames, fps)
