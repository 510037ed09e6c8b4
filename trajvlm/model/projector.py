"""Projector: connector tokens (.., C_in) -> LLM embeddings (.., d)."""

from __future__ import annotations

import torch
from torch import nn

from .configuration_trajvlm import PROJECTORS


class Projector(nn.Module):
    """``"linear"``: one Linear. ``"mlp2x_gelu"``: Linear -> GELU -> Linear (the LLaVA-1.5 projector).

    Parameter names (``linear_1``, ``linear_2``) match transformers' ``LlavaMultiModalProjector`` so a LLaVA
    projector can be loaded into the patch connector's projector as is.
    """

    def __init__(self, kind: str, in_dim: int, out_dim: int):
        super().__init__()
        if kind not in PROJECTORS:
            raise ValueError(f"Projector: unknown kind {kind!r}; expected one of {PROJECTORS}")
        self.kind = kind
        self.linear_1 = nn.Linear(in_dim, out_dim)
        if kind == "mlp2x_gelu":
            self.act = nn.GELU()
            self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear_1(x)  # (..., d)
        if self.kind == "mlp2x_gelu":
            x = self.linear_2(self.act(x))
        return x  # (..., d)
