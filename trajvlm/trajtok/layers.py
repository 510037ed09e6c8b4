"""Small transformer building blocks shared by the segmenter and the encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .rope import apply_rope


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head attention with optional RoPE angles on queries/keys and a boolean key mask.

    q_in (B,Lq,D), kv_in (B,Lk,D); q_angles (B|1,Lq,hd/2), k_angles (B|1,Lk,hd/2); key_mask (B,Lk) True = attend.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        q_in: torch.Tensor,
        kv_in: torch.Tensor,
        *,
        q_angles: torch.Tensor | None = None,
        k_angles: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, Lq, D = q_in.shape
        Lk = kv_in.shape[1]
        q = self.q(q_in).view(B, Lq, self.num_heads, self.head_dim).transpose(1, 2)  # (B,H,Lq,hd)
        k, v = self.kv(kv_in).view(B, Lk, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B,H,Lk,hd)
        if q_angles is not None:
            q = apply_rope(q, q_angles.unsqueeze(1))
        if k_angles is not None:
            k = apply_rope(k, k_angles.unsqueeze(1))
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B,1,1,Lk)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B,H,Lq,hd)
        return self.proj(out.transpose(1, 2).reshape(B, Lq, D))
