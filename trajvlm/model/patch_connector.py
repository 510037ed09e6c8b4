"""The patch baseline connector (LLaVA-Video style): every (pooled) patch of every frame is a token."""

from __future__ import annotations

import math

import torch
from torch import nn


def pooled_grid(h: int, w: int, stride: int) -> tuple[int, int]:
    """Grid size after ``stride`` x ``stride`` average pooling (ceil mode: no patch is dropped)."""
    return math.ceil(h / stride), math.ceil(w / stride)


def patch_token_count(num_frames: int, h: int, w: int, stride: int) -> int:
    """Tokens the patch connector emits for ``num_frames`` frames of an (h,w) feature grid."""
    ph, pw = pooled_grid(h, w, stride)
    return num_frames * ph * pw


class PatchConnector(nn.Module):
    """features (B,T,h,w,C) -> per video tokens (T*h'*w', C), h' = ceil(h/stride).

    Parameter-free: the projector that follows it is the trainable part (as in LLaVA).
    """

    def __init__(self, pool_stride: int = 1):
        super().__init__()
        if pool_stride < 1:
            raise ValueError(f"PatchConnector: pool_stride must be >= 1, got {pool_stride}")
        self.pool_stride = pool_stride

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        if features.ndim != 5:
            raise ValueError(f"PatchConnector expects features (B,T,h,w,C), got {tuple(features.shape)}")
        b, t, h, w, c = features.shape
        x = features.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # (B*T,C,h,w)
        if self.pool_stride > 1:
            x = nn.functional.avg_pool2d(x, self.pool_stride, self.pool_stride, ceil_mode=True)
        x = x.permute(0, 2, 3, 1).reshape(b, -1, c)  # (B, T*h'*w', C)
        return list(x.unbind(0))
