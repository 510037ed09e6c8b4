"""VisionTower: any vision model (SigLIP, CLIP, ... via AutoModel, or the built-in ConvBackbone) -> grid features.

frames (N,3,S,S) -> features (N,h,w,C). CLS / register tokens in front of the patch tokens are dropped.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig

from .conv_backbone import ConvBackbone, ConvBackboneConfig


class VisionTowerError(ValueError):
    """A vision model whose output cannot be read as a patch grid."""


def build_vision_model(vision_config: PretrainedConfig) -> nn.Module:
    """A randomly initialised vision model for `vision_config` (weights are loaded by the caller)."""
    if isinstance(vision_config, ConvBackboneConfig):
        return ConvBackbone(vision_config)
    return AutoModel.from_config(vision_config)


class VisionTower(nn.Module):
    """Wraps a vision model so every tower gives (N,h,w,C) grid features.

    feature_layer: None -> the model's last_hidden_state; an int -> hidden_states[feature_layer]
    (e.g. -2, the penultimate layer LLaVA uses for CLIP). The conv tower ignores it.
    """

    def __init__(self, vision_config: PretrainedConfig, feature_layer: int | None = None, model: nn.Module | None = None):
        super().__init__()
        self.model = model if model is not None else build_vision_model(vision_config)  # `model`: pretrained, as is
        self.feature_layer = feature_layer

    @property
    def patch_size(self) -> int | None:
        cfg = self.model.config
        if isinstance(cfg, ConvBackboneConfig):
            return cfg.stride
        size = getattr(cfg, "patch_size", None)
        return size[0] if isinstance(size, (list, tuple)) else size

    def grid_size(self, image_size: int) -> tuple[int, int]:
        """(h,w) of the feature grid for (S,S) frames."""
        p = self.patch_size
        if p is None:
            raise VisionTowerError(f"{type(self.model).__name__}: config has no patch_size; cannot infer the grid")
        if isinstance(self.model, ConvBackbone):
            return -(-image_size // p), -(-image_size // p)
        return image_size // p, image_size // p

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.ndim != 4:
            raise VisionTowerError(f"VisionTower expects pixel_values (N,3,S,S), got {tuple(pixel_values.shape)}")
        if isinstance(self.model, ConvBackbone):
            return self.model(pixel_values)  # (N,h,w,C)
        dtype = next(self.model.parameters()).dtype
        want_hidden = self.feature_layer is not None
        out = self.model(pixel_values=pixel_values.to(dtype), output_hidden_states=want_hidden)
        x = out.hidden_states[self.feature_layer] if want_hidden else out.last_hidden_state
        if x.ndim == 4:  # convolutional towers: (N,C,h,w)
            return x.permute(0, 2, 3, 1)
        n, length, c = x.shape  # (N,L,C) token sequence
        h, w = pixel_values.shape[-2] // self.patch_size, pixel_values.shape[-1] // self.patch_size
        extra = length - h * w
        if extra < 0:
            raise VisionTowerError(
                f"{type(self.model).__name__}: {length} tokens cannot form a {h}x{w} patch grid "
                f"(pixel_values {tuple(pixel_values.shape)}, patch_size {self.patch_size})"
            )
        return x[:, extra:].reshape(n, h, w, c)  # (N,h,w,C), CLS/register tokens dropped
