"""Work-arounds for DeepSpeed behaviour that breaks TrajVLM training (applied by trajvlm.train.main).

- Scalar (0-dim) parameters: ``DeepSpeedEngine._broadcast_model`` broadcasts ``p.data.view(torch.uint8)``,
  which raises "self.dim() cannot be 0 to view Float as Byte" for a 0-dim parameter (TrajTok's segmenter
  has a learnable scalar temperature). During the broadcast each scalar gets a 1-element view of the SAME
  storage, so the broadcast still writes the parameter in place; the 0-dim shape is restored afterwards.
  ZeRO-3's ``zero.Init`` broadcasts the same way when it converts a parameter: the scalar is converted as a
  1-element parameter and its recorded full shape (``ds_shape``) set back to ``()``, so gathering restores a
  0-dim tensor (state dicts, ``save_model`` and ``zero_to_fp32`` see the original shape).
- Dataclass module outputs under ZeRO-3: DeepSpeed attaches its backward hooks (which re-gather a module's
  own parameters before its backward) only to tensors inside tuples/lists/dicts. A module that uses its own
  ``nn.Parameter`` directly and returns a dataclass (TrajTok's segmenter returns ``SegmenterOutput``) then
  fails in backward ("size of tensor a (0) must match ..."). The hook application is extended to the fields
  of dataclass outputs.
"""

from __future__ import annotations

import dataclasses

import torch


def patch_scalar_param_broadcast() -> None:
    """Idempotent. No-op when DeepSpeed is not installed."""
    try:
        from deepspeed.runtime.engine import DeepSpeedEngine
    except ImportError:
        return
    original = DeepSpeedEngine._broadcast_model
    if getattr(original, "_trajvlm_scalar_safe", False):
        return

    def _broadcast_model(self):
        scalars = [p for p in self.module.parameters() if p.dim() == 0]
        saved = [(p, p.data) for p in scalars]
        for p in scalars:
            p.data = p.data.reshape(1)  # (1,) view of the same storage
        try:
            return original(self)
        finally:
            for p, data in saved:
                p.data = data

    _broadcast_model._trajvlm_scalar_safe = True
    DeepSpeedEngine._broadcast_model = _broadcast_model

    from deepspeed.runtime.zero.partition_parameters import Init

    original_init_param = Init._zero_init_param
    if getattr(original_init_param, "_trajvlm_scalar_safe", False):
        return

    def _zero_init_param(self, param):
        if param.dim() != 0 or hasattr(param, "ds_id"):
            return original_init_param(self, param)
        param.data = param.data.reshape(1)
        result = original_init_param(self, param)
        param.ds_shape = torch.Size([])
        return result

    _zero_init_param._trajvlm_scalar_safe = True
    Init._zero_init_param = _zero_init_param

    # GatheredParameters(modifier_rank=r) broadcasts the gathered data the same way on exit (used by
    # save_model's 16-bit consolidation under ZeRO-3)
    from deepspeed.runtime.zero.partition_parameters import GatheredParameters

    original_exit = GatheredParameters._exit

    def _exit(self, *exc):
        scalars = [p for p in (getattr(self, "params", None) or []) if hasattr(p, "ds_id") and p.data.dim() == 0]
        for p in scalars:
            p.data = p.data.reshape(1)  # same storage; partitioning replaces .data anyway
        try:
            return original_exit(self, *exc)
        finally:
            for p in scalars:
                if p.data.numel() == 1 and p.data.dim() == 1 and tuple(p.ds_shape) == ():
                    p.data = p.data.reshape(())

    GatheredParameters._exit = _exit


def patch_dataclass_outputs() -> None:
    """Let ZeRO-3's backward hooks reach tensors inside dataclass module outputs. Idempotent."""
    try:
        from deepspeed.runtime.zero import parameter_offload
    except ImportError:
        return
    original = parameter_offload.apply_to_tensors_only
    if getattr(original, "_trajvlm_dataclass_safe", False):
        return

    def apply_to_tensors_only(function, value, warning_msg_fn=None):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                object.__setattr__(value, f.name, apply_to_tensors_only(function, getattr(value, f.name), warning_msg_fn))
            return value
        if isinstance(value, (tuple, list)) and any(dataclasses.is_dataclass(v) for v in value):
            items = [apply_to_tensors_only(function, v, warning_msg_fn) for v in value]
            return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
        return original(function, value, warning_msg_fn)

    apply_to_tensors_only._trajvlm_dataclass_safe = True
    parameter_offload.apply_to_tensors_only = apply_to_tensors_only


def apply_all() -> None:
    patch_scalar_param_broadcast()
    patch_dataclass_outputs()
