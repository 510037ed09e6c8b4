"""Connector-only checkpoints (gathered under ZeRO-3) and finding the checkpoint to resume from.

``connector.safetensors`` holds TrajTok + projector weights with their TrajVLM state-dict names
(``trajtok.…``, ``projector.…``). Stage 1 writes it next to the full model folder; stage 2 can load it over a
freshly assembled model with ``--pretrain_connector``.
"""

from __future__ import annotations

import contextlib
import os
import re

import torch
from torch import nn

from trajvlm.train.stages import connector_named_parameters
from trajvlm.trajtok.segmenter import upgrade_legacy_state_dict

CONNECTOR_FILE = "connector.safetensors"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(RuntimeError):
    """A connector file or resume checkpoint is missing or does not fit the model."""


def _is_partitioned(params: list[torch.Tensor]) -> bool:
    return any(hasattr(p, "ds_id") for p in params)


def _gather(params: list[torch.Tensor], modifier_rank: int | None = None):
    """Context in which ZeRO-3 partitioned params hold their full data (a no-op otherwise)."""
    if not _is_partitioned(params):
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank)


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def connector_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full (gathered) connector weights on CPU. Under ZeRO-3 every rank must call this (collective)."""
    named = list(connector_named_parameters(model))
    if not named:
        raise CheckpointError("the model has no connector parameters")
    with _gather([p for _, p in named]):
        return {name: p.detach().to("cpu", copy=True).contiguous() for name, p in named}


def save_connector(model: nn.Module, path: str) -> str | None:
    """Write the connector weights to ``path`` (safetensors) on rank 0. Collective under ZeRO-3.

    Returns the path on rank 0, None on the other ranks.
    """
    from safetensors.torch import save_file

    state = connector_state_dict(model)  # every rank takes part in the gather
    if _rank() != 0:
        return None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(state, path, metadata={"format": "pt", "content": "trajvlm-connector"})
    return path


def load_connector(model: nn.Module, path: str) -> list[str]:
    """Load ``connector.safetensors`` into the model's connector (strict: names and shapes must match).

    Returns the loaded names. Works on partitioned (ZeRO-3) models: the full tensors are written from rank 0.
    """
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise CheckpointError(f"connector checkpoint not found: {path}")
    state = load_file(path)
    upgrade_legacy_state_dict(state)  # connector files from before log_logit_scale became (1,)
    named = dict(connector_named_parameters(model))
    missing = sorted(set(named) - set(state))
    unexpected = sorted(set(state) - set(named))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit the model's connector: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    with _gather(list(named.values()), modifier_rank=0):
        for name, p in named.items():
            src = state[name]
            if tuple(src.shape) != tuple(p.shape):
                raise CheckpointError(f"{path}: {name} has shape {tuple(src.shape)}, the model {tuple(p.shape)}")
            with torch.no_grad():
                p.copy_(src.to(dtype=p.dtype, device=p.device))
    return sorted(named)


def latest_checkpoint(output_dir: str | None) -> str | None:
    """The ``checkpoint-<step>`` folder with the highest step in ``output_dir`` that holds a trainer state."""
    if not output_dir or not os.path.isdir(output_dir):
        return None
    found = []
    for name in os.listdir(output_dir):
        m = _CHECKPOINT_RE.match(name)
        full = os.path.join(output_dir, name)
        if m and os.path.isfile(os.path.join(full, "trainer_state.json")):
            found.append((int(m.group(1)), full))
    return max(found)[1] if found else None


def resolve_resume(resume_from_checkpoint: str | None, output_dir: str | None, auto_resume: bool) -> str | None:
    """The checkpoint to resume from: the explicit one, else (auto_resume) the latest in output_dir, else None.

    ``--resume_from_checkpoint true`` means "the latest in output_dir" and fails if there is none.
    """
    if resume_from_checkpoint:
        if resume_from_checkpoint.lower() in ("true", "latest"):
            found = latest_checkpoint(output_dir)
            if found is None:
                raise CheckpointError(f"--resume_from_checkpoint {resume_from_checkpoint}: no checkpoint-* in {output_dir}")
            return found
        if not os.path.isdir(resume_from_checkpoint):
            raise CheckpointError(f"--resume_from_checkpoint: {resume_from_checkpoint} is not a folder")
        return resume_from_checkpoint
    return latest_checkpoint(output_dir) if auto_resume else None
