"""The training entry shared by scripts/pretrain_trajvlm.py (stage 1) and scripts/finetune_trajvlm.py (stage 2).

    deepspeed scripts/pretrain_trajvlm.py --deepspeed scripts/zero2.json --vision_tower V --llm L \
        --data_path D.json --video_folder DIR --output_dir OUT ...
    deepspeed scripts/finetune_trajvlm.py --deepspeed scripts/zero3.json --model_name_or_path OUT \
        --data_path D.json --video_folder DIR --output_dir OUT2 ...

Output folder: a full HF model folder (``model.safetensors`` + config + processor files, loadable with
``TrajVLMForConditionalGeneration.from_pretrained``), ``connector.safetensors`` (TrajTok + projector only,
gathered under ZeRO-3), ``param_groups.json``, ``train_summary.json`` and the trainer's ``checkpoint-*``
folders (DeepSpeed state; resumed automatically when the same command runs again).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import time

import torch

from trajvlm.train.arguments import DataArguments, ModelArguments, TrajVLMTrainingArguments
from trajvlm.train.checkpoint import CONNECTOR_FILE, load_connector, resolve_resume, save_connector
from trajvlm.train.stages import apply_lora, apply_stage, part_modules, unwrap_model

logger = logging.getLogger("trajvlm.train")
SUMMARY_FILE = "train_summary.json"


class TrainingSetupError(ValueError):
    """The command line cannot describe a training run (missing model source, DeepSpeed silently off, ...)."""


# ---- process setup ------------------------------------------------------------------------------------------
def _has_flag(argv: list[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in argv)


def prepare_argv(argv: list[str], stage: str) -> list[str]:
    """Fill in what the command line may omit: the stage and, on a machine without CUDA, ``--use_cpu``.

    HF Trainer needs ``use_cpu=True`` on CPU with bf16 or more than one process; it does not turn DeepSpeed off
    (the env var ACCELERATE_USE_CPU does: see ``check_deepspeed_enabled``).
    """
    argv = list(argv)
    if _has_flag(argv, "--stage"):
        raise TrainingSetupError("--stage is set by the script (pretrain_trajvlm.py / finetune_trajvlm.py)")
    argv += ["--stage", stage]
    if not torch.cuda.is_available() and not _has_flag(argv, "--use_cpu"):
        argv += ["--use_cpu", "True"]
    return argv


def skip_deepspeed_shm_build() -> None:
    """Do not compile DeepSpeed's shared-memory comm op (80-100 s of g++ on first use).

    On CPU ``deepspeed.init_distributed()`` builds it, yet it only serves inference all-reduce. Must run
    before the process group is created (i.e. before TrainingArguments is built).
    """
    if torch.cuda.is_available():
        return
    try:
        comm = importlib.import_module("deepspeed.comm.torch")  # `import a.b as x` would bind the wrong object
    except ImportError:
        return
    comm.build_shm_op = lambda: None


def parse_args(argv: list[str] | None, stage: str):
    from transformers import HfArgumentParser

    argv = sys.argv[1:] if argv is None else list(argv)
    argv = prepare_argv(argv, stage)
    if _has_flag(argv, "--deepspeed"):
        skip_deepspeed_shm_build()
    parser = HfArgumentParser((ModelArguments, DataArguments, TrajVLMTrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    check_args(model_args, data_args, training_args)
    return model_args, data_args, training_args


def check_args(model_args: ModelArguments, data_args: DataArguments, training_args: TrajVLMTrainingArguments) -> None:
    if model_args.model_name_or_path and (model_args.vision_tower or model_args.llm):
        raise TrainingSetupError("give either --model_name_or_path or --vision_tower + --llm, not both")
    if not model_args.model_name_or_path and not (model_args.vision_tower and model_args.llm):
        raise TrainingSetupError("no model: give --model_name_or_path, or --vision_tower and --llm")
    if not data_args.data_path:
        raise TrainingSetupError("--data_path is required")
    if not training_args.output_dir:
        raise TrainingSetupError("--output_dir is required")
    if model_args.lora_enable and training_args.stage != "finetune":
        raise TrainingSetupError("--lora_enable is a stage-2 (finetune) option")
    if not 0.0 <= data_args.max_bad_sample_ratio <= 1.0:
        raise TrainingSetupError(f"--max_bad_sample_ratio must be in [0, 1], got {data_args.max_bad_sample_ratio}")


def check_deepspeed_enabled(trainer, training_args) -> None:
    """--deepspeed given but the Trainer runs without it (e.g. ACCELERATE_USE_CPU=true): refuse to go on."""
    if training_args.deepspeed and not trainer.is_deepspeed_enabled:
        raise TrainingSetupError(
            f"--deepspeed {training_args.deepspeed} was given but the Trainer did not enable DeepSpeed "
            f"(ACCELERATE_USE_CPU={os.environ.get('ACCELERATE_USE_CPU')!r} turns it off silently: unset it)"
        )


# ---- model ----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def materialized_loading():
    """Load weights whole on every rank (no ZeRO-3 ``zero.Init`` partitioning while loading).

    DeepSpeed partitions the model when the engine is created. Loading under ``zero.Init`` broadcasts every
    parameter as ``p.data.view(torch.uint8)``, which fails for 0-dim parameters (TrajTok's scalar logit
    temperature); the cost here is one full copy of the weights per rank while loading.
    """
    from transformers.integrations import deepspeed as hf_ds

    ref = hf_ds._hf_deepspeed_config_weak_ref
    held = ref() if ref is not None else None
    hf_ds.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if held is not None:
            hf_ds.set_hf_deepspeed_config(held)


def build_model(model_args: ModelArguments, data_args: DataArguments, training_args: TrajVLMTrainingArguments):
    """(model, processor) for the stage: loaded from --model_name_or_path or assembled from parts."""
    with materialized_loading():
        return _build_model(model_args, data_args, training_args)


def _build_model(model_args: ModelArguments, data_args: DataArguments, training_args: TrajVLMTrainingArguments):
    from trajvlm.model import TrajVLMForConditionalGeneration, TrajVLMProcessor, from_parts

    # --bf16 loads float32 unless --float32_tracks False: configure_stage keeps float32 copies of the frozen
    # tracking parts (maybe_keep_float32_tracks) and then casts the model to bf16
    bf16_load = training_args.bf16 and model_args.float32_tracks is False
    dtype = torch.bfloat16 if bf16_load else torch.float32
    if model_args.model_name_or_path:
        kwargs = {"dtype": dtype}
        if model_args.attn_implementation:
            kwargs["attn_implementation"] = model_args.attn_implementation
        model = TrajVLMForConditionalGeneration.from_pretrained(model_args.model_name_or_path, **kwargs)
        processor = TrajVLMProcessor.from_pretrained(model_args.model_name_or_path)
        adopt_frame_sampling(processor, data_args)
    else:
        kwargs = {}
        trajtok_config = _trajtok_config_dict(model_args)
        if trajtok_config is not None:
            kwargs["trajtok_config"] = trajtok_config
        if model_args.token_budget is not None:
            kwargs["token_budget"] = model_args.token_budget
        if model_args.conv_template:
            kwargs["chat_template"] = model_args.conv_template
        model, processor = from_parts(
            model_args.vision_tower,
            model_args.llm,
            connector=model_args.connector,
            projector=model_args.projector,
            num_frames=data_args.num_frames,
            fps=data_args.video_fps,
            seg_loss_weight=training_args.seg_loss_weight,
            dtype=dtype,
            attn_implementation=model_args.attn_implementation,
            **kwargs,
        )
    if data_args.question_before_video is not None:
        processor.question_before_video = bool(data_args.question_before_video)
    if model_args.init_trajtok:
        init_trajtok_from(model, model_args.init_trajtok)
    if model_args.pretrain_connector:
        names = load_connector(model, model_args.pretrain_connector)
        logger.info("loaded %d connector tensors from %s", len(names), model_args.pretrain_connector)
    model.config.seg_loss_weight = float(training_args.seg_loss_weight)
    if model_args.token_budget is not None:
        model.config.token_budget = int(model_args.token_budget)
    return model, processor


def adopt_frame_sampling(processor, data_args: DataArguments) -> None:
    """The saved processor samples videos as this run trained on them (--num_frames, --video_fps), not as the
    loaded checkpoint did: a stage 2 at 32 frames from a 16-frame stage 1 saves a 32-frame processor."""
    if (processor.num_frames, processor.fps) != (data_args.num_frames, data_args.video_fps):
        logger.info("frame sampling: num_frames %s -> %s, fps %s -> %s (this run's --num_frames/--video_fps)",
                    processor.num_frames, data_args.num_frames, processor.fps, data_args.video_fps)
    processor.num_frames = data_args.num_frames
    processor.fps = data_args.video_fps


def _trajtok_config_dict(model_args: ModelArguments) -> dict | None:
    """TrajTok fields for a new model: --trajtok_config JSON, else the config of an --init_trajtok folder."""
    path = model_args.trajtok_config
    if path is None and model_args.init_trajtok and os.path.isdir(model_args.init_trajtok):
        path = os.path.join(model_args.init_trajtok, "config.json")
    if path is None:
        return None
    with open(path) as f:
        cfg = json.load(f)
    from trajvlm.trajtok import TrajTokConfig

    allowed = set(TrajTokConfig().to_dict()) - {"model_type", "transformers_version", "architectures", "dtype"}
    return {k: v for k, v in cfg.items() if k in allowed and not k.startswith("_") and k != "feature_dim"}


def init_trajtok_from(model, path: str) -> None:
    """Initialise TrajTok from scripts/train_segmenter.py's output.

    ``path`` is a TrajTok folder (``TrajTok.save_pretrained``: config.json + trajtok.safetensors; its tensors go
    into the model's connector, every key must exist with the same shape) or a safetensors file with TrajVLM
    state-dict names (``connector.*``, optionally ``vision_tower.*``).
    """
    from safetensors.torch import load_file

    base = unwrap_model(model)
    if os.path.isdir(path):
        from trajvlm.trajtok.tokenizer import WEIGHTS_NAME

        state = {f"connector.{k}": v for k, v in load_file(os.path.join(path, WEIGHTS_NAME)).items()}
    else:
        state = load_file(path)
    from trajvlm.trajtok.segmenter import upgrade_legacy_state_dict

    upgrade_legacy_state_dict(state)  # checkpoints from before log_logit_scale became (1,)
    own = base.state_dict()
    unknown = sorted(k for k in state if k not in own)
    if unknown:
        raise TrainingSetupError(f"--init_trajtok {path}: keys the model does not have: {unknown[:5]}")
    bad = [k for k in state if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise TrainingSetupError(f"--init_trajtok {path}: shape mismatch for {bad[:5]}")
    from trajvlm.train.checkpoint import _gather

    params = dict(base.named_parameters())
    with _gather([params[k] for k in state if k in params], modifier_rank=0):
        with torch.no_grad():
            for k, v in state.items():
                target = params.get(k)
                if target is None:  # a buffer
                    target = dict(base.named_buffers())[k]
                target.copy_(v.to(dtype=target.dtype))
    logger.info("initialised %d tensors from %s", len(state), path)


def configure_stage(model, model_args: ModelArguments, training_args: TrajVLMTrainingArguments):
    counts = apply_stage(
        model,
        training_args.stage,
        tune_vision_tower=model_args.tune_vision_tower,
        freeze_connector=model_args.freeze_connector,
        freeze_segmenter=model_args.freeze_segmenter,
        lora=model_args.lora_enable,
    )
    maybe_keep_float32_tracks(model, model_args, training_args)
    if model_args.lora_enable:
        model = apply_lora(
            model,
            r=model_args.lora_r,
            alpha=model_args.lora_alpha,
            dropout=model_args.lora_dropout,
            target_modules=model_args.lora_target_modules,
        )
    if training_args.gradient_checkpointing:
        # on the inner LLM: a plain wrapper's gradient_checkpointing_enable does not reach the decoder layers
        llm = part_modules(model)["llm"][0][1]
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        training_args.gradient_checkpointing = False
    logger.info("stage %s: trainable parameters per part %s", training_args.stage, counts)
    maybe_enable_track_cache(model, model_args, training_args)
    return model


def maybe_keep_float32_tracks(model, model_args: ModelArguments, training_args: TrajVLMTrainingArguments) -> bool:
    """--bf16 runs: float32 copies of the frozen vision tower + segmenter make the tracks (``--float32_tracks``,
    default on where it applies), then the model is cast to bf16. Returns whether the copies are kept."""
    if not training_args.bf16:
        return False
    why_not = None
    if model_args.float32_tracks is False:
        why_not = "--float32_tracks False"
    elif getattr(model.config, "connector", None) != "trajtok":
        why_not = "the connector is not trajtok"
    elif model.trainable_tracking_params():
        why_not = "the vision tower or the segmenter trains"
    if why_not is None:
        model.keep_float32_tracks()
        logger.info("float32 tracks: the frozen vision tower + segmenter make the tracks in float32 (model in bf16)")
    elif model_args.float32_tracks:
        raise TrainingSetupError(f"--float32_tracks True, but {why_not}")
    else:
        logger.info("tracks made in bf16: %s", why_not)
    model.to(torch.bfloat16)
    return why_not is None


MEMORY_TRACK_CACHE = 20000  # videos kept in memory when the cache has no folder
FOLDER_TRACK_CACHE = 512  # ... and when a folder holds them all


def track_cache_size(model_args: ModelArguments) -> int:
    """Videos the track cache keeps in memory: --track_cache_size, else 20000 (memory only) or 512 (with a folder).

    With a folder the in-memory LRU only saves a sub-millisecond file read, and many small long-lived entries
    fragment the heap (measured: resident memory grew ~3 MB per cached 86 KB entry over 500 videos with a
    20000 LRU, and stayed flat with 50)."""
    if model_args.track_cache_size is not None:
        return model_args.track_cache_size
    return FOLDER_TRACK_CACHE if model_args.track_cache_dir else MEMORY_TRACK_CACHE


def maybe_enable_track_cache(model, model_args: ModelArguments, training_args: TrajVLMTrainingArguments) -> bool:
    """Turn on the frozen-track cache when it cannot change the result: trajtok connector, vision tower and
    segmenter frozen, no segmentation loss. Returns whether it is on."""
    base = unwrap_model(model)
    if not model_args.cache_frozen_tracks or getattr(base.config, "connector", None) != "trajtok":
        return False
    if training_args.seg_loss_weight > 0:
        logger.info("track cache off: the segmentation loss (--seg_loss_weight > 0) needs the per-cell maps")
        return False
    if base.trainable_tracking_params():
        logger.info("track cache off: the vision tower or the segmenter trains")
        return False
    size = track_cache_size(model_args)
    cache = base.enable_track_cache(size, model_args.track_cache_dir)
    logger.info("track cache on (up to %d videos in memory%s): tower + segmenter run once per video",
                size, f", every video persisted in {cache.directory}" if cache.directory else "")
    return True


# ---- data -----------------------------------------------------------------------------------------------------
def build_data(processor, data_args: DataArguments, training_args: TrajVLMTrainingArguments):
    """(train_dataset, data_collator, bad_sample_tracker) from the data pipeline (trajvlm.data)."""
    from trajvlm.data.collate import BadSampleTracker, VideoTextCollator
    from trajvlm.data.dataset import LazyVideoTextDataset, VideoDataConfig

    config = VideoDataConfig(
        max_frames=data_args.num_frames,
        fps=data_args.video_fps,
        sidecars="auto" if data_args.use_masks else "ignore",
        video_token=processor.video_token,
        seed=training_args.seed,
        option_targets=training_args.option_loss_weight > 0,
    )
    dataset = LazyVideoTextDataset(data_args.data_path, processor, config, video_folder=data_args.video_folder)
    collator = VideoTextCollator.from_tokenizer(processor.tokenizer)
    tracker = BadSampleTracker(
        max_bad_sample_ratio=data_args.max_bad_sample_ratio, min_samples=data_args.bad_sample_min_samples
    )
    return dataset, collator, tracker


# ---- save -----------------------------------------------------------------------------------------------------
def save_outputs(trainer, model, processor, model_args: ModelArguments, training_args) -> None:
    """Final model folder (+ processor), and the connector-only file. Collective under ZeRO-3."""
    out = training_args.output_dir
    if model_args.lora_enable:
        _save_merged_lora(trainer, model, out)
    else:
        trainer.save_model(out)  # gathers 16-bit weights under ZeRO-3 (stage3_gather_16bit_weights_on_model_save)
    if training_args.save_connector:
        save_connector(trainer.model_wrapped if trainer.is_deepspeed_enabled else model, os.path.join(out, CONNECTOR_FILE))
    if trainer.is_world_process_zero():
        processor.save_pretrained(out)


def _save_merged_lora(trainer, model, out: str) -> None:
    """Save the adapter (``<out>/lora_adapter``) and the LoRA-merged full model in ``<out>``."""
    trainer.save_model(os.path.join(out, "lora_adapter"))
    params = list(model.parameters())
    ctx = contextlib.nullcontext()
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        ctx = deepspeed.zero.GatheredParameters(params, modifier_rank=0)
    with ctx:
        merged = model.merge_and_unload()
        if trainer.is_world_process_zero():
            merged.save_pretrained(out, safe_serialization=True)


# ---- entry ----------------------------------------------------------------------------------------------------
def run(stage: str, argv: list[str] | None = None) -> dict:
    """Train one stage from a command line. Returns the summary written to ``<output_dir>/train_summary.json``."""
    from transformers import set_seed

    model_args, data_args, training_args = parse_args(argv, stage)
    logging.basicConfig(
        level=logging.INFO if training_args.process_index == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Create the process group now (accelerate's PartialState): ZeRO-3's zero.Init inside from_pretrained
    # needs the real world size, else DeepSpeed's batch-size check fails.
    _ = training_args.device
    if training_args.deepspeed:
        import deepspeed

        # on CPU accelerate creates a plain torch (gloo) group; register it with deepspeed.comm too
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    set_seed(training_args.seed)
    started = time.time()
    try:
        model, processor = build_model(model_args, data_args, training_args)
        model = configure_stage(model, model_args, training_args)
        train_dataset, collator, tracker = build_data(processor, data_args, training_args)

        from trajvlm.train.trainer import (
            BadSampleStateCallback,
            TimeBudgetCallback,
            TrajVLMTrainer,
            load_bad_sample_state,
        )

        callbacks = [BadSampleStateCallback(tracker)]
        budget = None
        if training_args.max_train_minutes is not None:
            budget = TimeBudgetCallback(training_args.max_train_minutes)
            callbacks.append(budget)
        trainer = TrajVLMTrainer(
            model=model,
            args=training_args,
            train_dataset=train_dataset,
            data_collator=collator,
            processing_class=processor,
            bad_sample_tracker=tracker,
            callbacks=callbacks,
        )
        check_deepspeed_enabled(trainer, training_args)
        resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir, training_args.auto_resume)
        if resume:
            load_bad_sample_state(tracker, resume)
            logger.info("resuming from %s (bad samples so far: %d of %d)", resume, tracker.bad, tracker.seen)
        result = trainer.train(resume_from_checkpoint=resume)
        save_outputs(trainer, model, processor, model_args, training_args)
        summary = {
            "stage": stage,
            "global_step": trainer.state.global_step,
            "train_loss": result.training_loss,
            "resumed_from": resume,
            "deepspeed": training_args.deepspeed,
            "world_size": training_args.world_size,
            "wall_seconds": round(time.time() - started, 1),
            "train_seconds": round(result.metrics.get("train_runtime", float("nan")), 1),
            "stopped_by_time_budget": budget is not None and budget.stopped_at is not None,
            "track_cache": _track_cache_stats(model),
            "bad_samples": tracker.bad,
            "samples_seen": tracker.seen,
            "log_history": trainer.state.log_history,
        }
        if trainer.is_world_process_zero():
            with open(os.path.join(training_args.output_dir, SUMMARY_FILE), "w") as f:
                json.dump(summary, f, indent=2)
        return summary
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _track_cache_stats(model) -> dict | None:
    cache = getattr(unwrap_model(model), "track_cache", None)
    if cache is None:
        return None
    return {"videos": len(cache), "hits": cache.hits, "misses": cache.misses, "disk_hits": cache.disk_hits,
            "directory": cache.directory}


def main(stage: str, argv: list[str] | None = None) -> int:
    run(stage, argv)
    return 0
