"""What trains in each stage: freezing, LoRA, and one optimizer parameter group per module and LR.

The model has three parts, found by attribute name on the (unwrapped) TrajVLM model:

- ``vision``    the vision tower (frozen unless ``--tune_vision_tower``);
- ``connector`` TrajTok (segmenter + encoder) or the patch connector, and the projector;
- ``llm``       the language model.

Stage 1 (``pretrain``) trains the connector only. Stage 2 (``finetune``) trains the LLM (full, or LoRA
adapters with ``--lora_enable``) and the connector. Parameter groups give the connector ``connector_lr``,
the vision tower ``vision_lr`` and the LLM ``learning_rate``, each split into decay / no-decay.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

PARTS = ("vision", "connector", "llm")
# Attribute names of each part on TrajVLMForConditionalGeneration (the first that exists wins; a part
# may have several modules, e.g. TrajTok + projector).
PART_ATTRS: dict[str, tuple[str, ...]] = {
    "vision": ("vision_tower",),
    "connector": ("trajtok", "patch_connector", "connector", "projector", "multi_modal_projector"),
    "llm": ("language_model",),
}
_NO_DECAY_PATTERNS = ("bias", "norm", "embed_positions", "logit_scale", "query_embed", "queries")


class StageError(ValueError):
    """A stage cannot be set up on this model (unknown part, nothing to train, bad LoRA setup)."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The TrajVLM model under a PEFT / DeepSpeed / DDP wrapper."""
    seen = 0
    while seen < 8:
        seen += 1
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DeepSpeed engine, DDP
            model = model.module
        elif type(model).__name__.startswith("Peft") and hasattr(model, "get_base_model"):
            model = model.get_base_model()
        else:
            break
    return model


def part_modules(model: nn.Module) -> dict[str, list[tuple[str, nn.Module]]]:
    """{part: [(attribute name, module), ...]} of the unwrapped model."""
    base = unwrap_model(model)
    parts: dict[str, list[tuple[str, nn.Module]]] = {}
    for part, attrs in PART_ATTRS.items():
        found = [(a, getattr(base, a)) for a in attrs if isinstance(getattr(base, a, None), nn.Module)]
        if part != "connector":
            found = found[:1]
        if not found:
            raise StageError(f"{type(base).__name__} has no {part} module (looked for attributes {attrs})")
        parts[part] = found
    return parts


def part_of_parameters(model: nn.Module) -> dict[int, str]:
    """id(parameter) -> part name, for every parameter of the model (shared parameters: first part wins)."""
    owner: dict[int, str] = {}
    for part, modules in part_modules(model).items():
        for _, module in modules:
            for p in module.parameters():
                owner.setdefault(id(p), part)
    return owner


def connector_named_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """(name, parameter) of the connector, names as in the TrajVLM state dict (e.g. ``trajtok.segmenter...``)."""
    for attr, module in part_modules(model)["connector"]:
        for name, p in module.named_parameters():
            yield f"{attr}.{name}", p


def set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def apply_stage(
    model: nn.Module,
    stage: str,
    *,
    tune_vision_tower: bool = False,
    freeze_connector: bool = False,
    freeze_segmenter: bool = False,
    lora: bool = False,
) -> dict[str, int]:
    """Set requires_grad for the stage. Returns the trainable parameter count per part.

    ``freeze_segmenter`` keeps TrajTok's segmenter frozen while the rest of the connector trains.

    With ``lora`` the LLM's own weights stay frozen (apply_lora adds the trainable adapters afterwards).
    """
    if stage not in ("pretrain", "finetune"):
        raise StageError(f"unknown stage {stage!r}")
    parts = part_modules(model)
    train = {
        "vision": tune_vision_tower,
        "connector": not (stage == "finetune" and freeze_connector),
        "llm": stage == "finetune" and not lora,
    }
    set_trainable(unwrap_model(model), False)
    for part, modules in parts.items():
        for _, module in modules:
            set_trainable(module, train[part])
    if freeze_segmenter:
        segmenter = getattr(unwrap_model(model).connector, "segmenter", None)
        if segmenter is None:
            raise StageError("--freeze_segmenter: the model's connector has no segmenter (patch connector?)")
        set_trainable(segmenter, False)
    counts = trainable_counts(model)
    if sum(counts.values()) == 0 and not lora:
        raise StageError(f"stage {stage!r}: nothing to train (every part frozen)")
    return counts


def trainable_counts(model: nn.Module) -> dict[str, int]:
    owner = part_of_parameters(model)
    counts = {p: 0 for p in PARTS}
    counts["other"] = 0
    for p in model.parameters():
        if p.requires_grad:
            counts[owner.get(id(p), "other")] += _numel(p)
    return counts


def _numel(p: torch.Tensor) -> int:
    return int(getattr(p, "ds_numel", p.numel()))  # ZeRO-3 partitioned params have numel() == 0


def apply_lora(model: nn.Module, *, r: int, alpha: int, dropout: float, target_modules: str) -> nn.Module:
    """Wrap the model with PEFT LoRA adapters on the LLM's linear layers only.

    Returns the PeftModel. Parts that were trainable before (connector, vision tower when tuned) stay
    trainable: PEFT freezes everything else, so their flags are restored.
    """
    from peft import LoraConfig, get_peft_model

    base = unwrap_model(model)
    names = [n.strip() for n in target_modules.split(",") if n.strip()]
    if not names:
        raise StageError("--lora_target_modules is empty")
    llm_attr = part_modules(base)["llm"][0][0]
    targets = [
        name for name, m in base.named_modules()
        if name.startswith(llm_attr + ".") and name.rsplit(".", 1)[-1] in names and isinstance(m, nn.Linear)
    ]
    if not targets:
        raise StageError(f"no LLM linear layer named any of {names} under {llm_attr!r}")
    keep = [p for p in base.parameters() if p.requires_grad]
    peft_model = get_peft_model(
        base, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    )
    for p in keep:
        p.requires_grad_(True)
    return peft_model


def build_param_groups(
    model: nn.Module,
    *,
    learning_rate: float,
    weight_decay: float,
    connector_lr: float | None = None,
    vision_lr: float | None = None,
) -> list[dict]:
    """Optimizer groups of the trainable parameters: one per (part, decay) pair that is not empty.

    Every group carries ``name`` (e.g. ``connector/decay``) and its own ``lr``; LoRA adapters and any other
    trainable LLM parameter use ``learning_rate``.
    """
    owner = part_of_parameters(model)
    lrs = {
        "vision": learning_rate if vision_lr is None else vision_lr,
        "connector": learning_rate if connector_lr is None else connector_lr,
        "llm": learning_rate,
    }
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = owner.get(id(p))
        if part is None:  # LoRA adapters are new parameters inside the LLM
            part = "llm" if "lora_" in name else "connector"
        ndim = len(getattr(p, "ds_shape", p.shape))  # ZeRO-3 partitioned params are flat
        decay = ndim >= 2 and not any(s in name.lower() for s in _NO_DECAY_PATTERNS)
        buckets.setdefault((part, decay), []).append(p)
    if not buckets:
        raise StageError("no trainable parameter: nothing to optimize")
    groups = []
    for part in PARTS:
        for decay in (True, False):
            params = buckets.get((part, decay))
            if params:
                groups.append({
                    "name": f"{part}/{'decay' if decay else 'no_decay'}",
                    "params": params,
                    "lr": lrs[part],
                    "weight_decay": weight_decay if decay else 0.0,
                })
    return groups
