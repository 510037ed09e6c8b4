"""TrajVLMTrainer: the HF Trainer with per-module learning rates and loss-part logging.

The DeepSpeed JSON files carry no optimizer/scheduler block, so HF builds the optimizer through
``create_optimizer`` (a torch AdamW: no DeepSpeed op compile) from the groups of
:func:`trajvlm.train.stages.build_param_groups`, and DeepSpeed wraps it.
"""

from __future__ import annotations

import json
import os
import time

import torch
from transformers import Trainer, TrainerCallback

from trajvlm.data.collate import pop_batch_meta

from trajvlm.train.option_loss import option_loss
from trajvlm.train.stages import build_param_groups, trainable_counts, unwrap_model

PARAM_GROUPS_FILE = "param_groups.json"
BAD_SAMPLES_FILE = "bad_samples.json"  # tracker state, inside every checkpoint-* folder


def _output(outputs, key: str):
    """A field of the model's output (a ModelOutput, a dict or an object with attributes); None when absent."""
    return outputs.get(key) if hasattr(outputs, "get") else getattr(outputs, key, None)


def _to_device(data, device):
    """A tensor or a (nested) list of tensors moved to ``device``, dtype unchanged."""
    if isinstance(data, (list, tuple)):
        return type(data)(_to_device(v, device) for v in data)
    return data.to(device)


class TrajVLMTrainer(Trainer):
    """HF Trainer for both stages.

    - ``create_optimizer``: one group per (vision / connector / llm) x (decay / no decay) with
      ``--vision_lr`` / ``--connector_lr`` / ``--learning_rate``; the groups are written to
      ``<output_dir>/param_groups.json`` (name, lr, weight decay, parameter count) on rank 0.
    - ``compute_loss``: logs the language-model and segmentation parts when the model returns them; with
      ``--option_loss_weight`` > 0 adds that times the option loss (`trajvlm.train.option_loss`) of the batch's
      multiple-choice answers and logs it as ``option_loss``.
    """

    def __init__(self, *args, bad_sample_tracker=None, **kwargs):
        super().__init__(*args, **kwargs)
        # The LM loss is a per-micro-batch token mean (LLaVA style) and the segmentation loss is added to it:
        # do not let the Trainer pass num_items_in_batch into the model and skip its own averaging.
        self.model_accepts_loss_kwargs = False
        self.bad_sample_tracker = bad_sample_tracker
        self._loss_parts: dict[str, list[float]] = {}

    # ---- inputs -------------------------------------------------------------------------------------------
    def _prepare_inputs(self, inputs: dict) -> dict:
        """HF's preparation, except that with float32 tracks (``keep_float32_tracks``) the video pixels keep their
        float32 values: under DeepSpeed HF casts every floating input to the engine's dtype, and the float32
        tracking copies given bf16-rounded pixels make other tracks (and other track-cache keys) than inference."""
        pixels = inputs.get("pixel_values_videos")
        if pixels is None or not getattr(unwrap_model(self.model), "float32_tracks", False):
            return super()._prepare_inputs(inputs)
        prepared = super()._prepare_inputs({k: v for k, v in inputs.items() if k != "pixel_values_videos"})
        prepared["pixel_values_videos"] = _to_device(pixels, self.args.device)
        return prepared

    def _save(self, output_dir: str | None = None, state_dict=None):
        """HF's save; a state dict DeepSpeed gathered itself (ZeRO-3: read from the parameters, no state-dict
        hooks) gets the float32 frozen parts too, as ``model.state_dict()`` gives them under float32 tracks."""
        base = unwrap_model(self.model)
        if state_dict is not None and getattr(base, "float32_tracks", False):
            for prefix in ("", "base_model.model."):  # the model, or under a PEFT wrapper
                base.put_float32_tracking_state(state_dict, prefix)
        super()._save(output_dir, state_dict=state_dict)

    # ---- optimizer ----------------------------------------------------------------------------------------
    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        groups = build_param_groups(
            opt_model,
            learning_rate=self.args.learning_rate,
            weight_decay=self.args.weight_decay,
            connector_lr=getattr(self.args, "connector_lr", None),
            vision_lr=getattr(self.args, "vision_lr", None),
        )
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        optimizer_kwargs.pop("lr", None)  # every group carries its own lr
        for key in ("params", "model", "optimizer_dict"):
            if key in optimizer_kwargs:
                raise ValueError(f"--optim {self.args.optim} builds its own parameter groups; use adamw_torch")
        self.optimizer = optimizer_cls(groups, lr=self.args.learning_rate, **optimizer_kwargs)
        self._write_param_groups(groups, opt_model)
        return self.optimizer

    def _write_param_groups(self, groups: list[dict], model) -> None:
        if not self.is_world_process_zero() or not self.args.output_dir:
            return
        summary = {
            "groups": [
                {
                    "name": g["name"],
                    "lr": g["lr"],
                    "weight_decay": g["weight_decay"],
                    "num_params": int(sum(getattr(p, "ds_numel", p.numel()) for p in g["params"])),
                }
                for g in groups
            ],
            "trainable_per_part": trainable_counts(model),
        }
        os.makedirs(self.args.output_dir, exist_ok=True)
        with open(os.path.join(self.args.output_dir, PARAM_GROUPS_FILE), "w") as f:
            json.dump(summary, f, indent=2)

    # ---- loss -----------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        meta = pop_batch_meta(inputs)
        self._track_bad_samples(meta)
        inputs.setdefault("use_cache", False)  # no KV cache while training
        if meta.get("num_samples", 1) == 0:
            loss, outputs = self._empty_batch_loss(model)
        else:
            loss, outputs = super().compute_loss(
                model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
            loss = self._add_option_loss(loss, outputs, inputs, meta.get("option_ids"))
        for key in ("lm_loss", "seg_loss"):
            value = _output(outputs, key)
            if value is not None:
                self._loss_parts.setdefault(key, []).append(float(value.detach().float().mean()))
        return (loss, outputs) if return_outputs else loss

    def _add_option_loss(self, loss, outputs, inputs, option_ids):
        weight = float(getattr(self.args, "option_loss_weight", 0.0) or 0.0)
        if weight == 0 or option_ids is None:
            return loss
        spliced = _output(outputs, "labels")
        if spliced is None:
            raise ValueError("--option_loss_weight needs the model's spliced labels in its output (TrajVLM returns them)")
        term = option_loss(_output(outputs, "logits"), spliced, inputs["labels"], option_ids.to(loss.device))
        if term is None:
            return loss
        self._loss_parts.setdefault("option_loss", []).append(float(term.detach()))
        return loss + weight * term

    def _empty_batch_loss(self, model):
        """Every sample of this rank's micro-batch was skipped (unreadable video).

        The rank still runs forward + backward (on one pad token, text-only: the model runs its connector on a
        dummy video) with a zero loss, so every rank touches every trainable parameter and ZeRO stays in step.
        """
        pad = self.data_collator.pad_token_id if hasattr(self.data_collator, "pad_token_id") else 0
        device = self.args.device
        dummy = {
            "input_ids": torch.full((1, 1), int(pad), dtype=torch.long, device=device),
            "attention_mask": torch.ones((1, 1), dtype=torch.long, device=device),
        }
        outputs = model(**dummy)
        logits = _output(outputs, "logits")
        return logits.float().sum() * 0.0, outputs

    def _track_bad_samples(self, meta: dict) -> None:
        """Add this step's kept/skipped counts, summed over ranks so every rank stops at the same step."""
        tracker = self.bad_sample_tracker
        if tracker is None or "num_samples" not in meta:
            return
        counts = torch.tensor([int(meta["num_samples"]), int(meta["num_skipped"])], dtype=torch.long)
        if torch.distributed.is_available() and torch.distributed.is_initialized() and self.args.world_size > 1:
            counts = counts.to(self.args.device)
            torch.distributed.all_reduce(counts)
        tracker.update({"num_samples": int(counts[0]), "num_skipped": int(counts[1]), "skipped": meta.get("skipped")})

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:
            for key, values in self._loss_parts.items():
                if values:
                    logs[key] = round(sum(values) / len(values), 6)
            self._loss_parts = {}
            if self.bad_sample_tracker is not None:
                logs["bad_samples"] = self.bad_sample_tracker.bad
        super().log(logs, *args, **kwargs)


class BadSampleStateCallback(TrainerCallback):
    """Writes the bad-sample tracker's counts into every checkpoint-* folder (read back on resume)."""

    def __init__(self, tracker):
        self.tracker = tracker

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if os.path.isdir(folder):
                with open(os.path.join(folder, BAD_SAMPLES_FILE), "w") as f:
                    json.dump(self.tracker.state_dict(), f)
        return control


def load_bad_sample_state(tracker, checkpoint: str | None) -> bool:
    """Restore the tracker's counts from a checkpoint folder; False when it holds none."""
    if tracker is None or not checkpoint:
        return False
    path = os.path.join(checkpoint, BAD_SAMPLES_FILE)
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        tracker.load_state_dict(json.load(f))
    return True


class TimeBudgetCallback(TrainerCallback):
    """Stops training (with a final save) once ``minutes`` of wall-clock have passed since training began.

    Every rank must stop at the same step: with several processes the decision is rank 0's, broadcast each step.
    For same-wall-clock comparisons (TrajVLM vs the patch baseline): ``--max_train_minutes``.
    """

    def __init__(self, minutes: float):
        if not minutes > 0:
            raise ValueError(f"--max_train_minutes must be > 0, got {minutes!r}")
        self.seconds = 60.0 * float(minutes)
        self.start: float | None = None
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        over = torch.tensor([float(time.monotonic() - self.start >= self.seconds)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.broadcast(over, src=0)
        if over.item() > 0:
            control.should_training_stop = True
            control.should_save = True
            self.stopped_at = state.global_step
        return control
