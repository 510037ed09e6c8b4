"""TrajVLMTrainer: the HF Trainer with per-module learning rates and loss-part logging.

The DeepSpeed JSON files carry no optimizer/scheduler block, so HF builds the optimizer through
``create_optimizer`` (a torch AdamW: no DeepSpeed op compile) from the groups of
:func:`trajvlm.train.stages.build_param_groups`, and DeepSpeed wraps it.
"""

from __future__ import annotations

import json
import os

import torch
from transformers import Trainer

from trajvlm.train.stages import build_param_groups, trainable_counts

PARAM_GROUPS_FILE = "param_groups.json"


class TrajVLMTrainer(Trainer):
    """HF Trainer for both stages.

    - ``create_optimizer``: one group per (vision / connector / llm) x (decay / no decay) with
      ``--vision_lr`` / ``--connector_lr`` / ``--learning_rate``; the groups are written to
      ``<output_dir>/param_groups.json`` (name, lr, weight decay, parameter count) on rank 0.
    - ``compute_loss``: logs the language-model and segmentation parts when the model returns them.
    """

    def __init__(self, *args, bad_sample_tracker=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad_sample_tracker = bad_sample_tracker
        self._loss_parts: dict[str, list[float]] = {}

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
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        for key in ("lm_loss", "seg_loss"):
            value = outputs.get(key) if hasattr(outputs, "get") else getattr(outputs, key, None)
            if value is not None:
                self._loss_parts.setdefault(key, []).append(float(value.detach().float().mean()))
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:
            for key, values in self._loss_parts.items():
                if values:
                    logs[key] = round(sum(values) / len(values), 6)
            self._loss_parts = {}
            tracker = self.bad_sample_tracker
            if tracker is not None:
                logs["bad_samples"] = getattr(tracker, "num_bad", None) or 0
        super().log(logs, *args, **kwargs)
