"""Position codes: sinusoid features of continuous coordinates, and rotary embeddings (RoPE) over time."""

from __future__ import annotations

import math

import torch


def sinusoid_features(x: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """x (..., P) coordinates, roughly in [-1,1] -> (..., P*(2*num_freqs+1)) [x, sin(2^i pi x), cos(2^i pi x)]."""
    freqs = (2.0 ** torch.arange(num_freqs, device=x.device, dtype=x.dtype)) * math.pi  # (F,)
    ang = x.unsqueeze(-1) * freqs  # (...,P,F)
    out = torch.cat([x.unsqueeze(-1), ang.sin(), ang.cos()], dim=-1)  # (...,P,2F+1)
    return out.flatten(-2)


def grid_coords(t: int, h: int, w: int, *, device=None, dtype=torch.float32, t_scale: float | None = None) -> torch.Tensor:
    """(t,h,w,3) coordinates (tau, y, x): y, x are cell centres in [0,1]; tau = frame index / t_scale."""
    t_scale = float(t_scale) if t_scale else float(max(t, 1))
    tt = torch.arange(t, device=device, dtype=dtype) / t_scale
    yy = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    xx = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    return torch.stack(torch.meshgrid(tt, yy, xx, indexing="ij"), dim=-1)  # (t,h,w,3)


def rope_angles(pos: torch.Tensor, head_dim: int, max_freq: float = 64.0) -> torch.Tensor:
    """pos (...,) continuous positions (normalised time in [0,1]) -> angles (..., head_dim/2).

    Frequencies are geometric in [1, max_freq] radians per unit time, so both "early vs late" and
    frame-to-frame differences (1/T) are resolvable.
    """
    half = head_dim // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), half, device=pos.device, dtype=pos.dtype))
    return pos.unsqueeze(-1) * freqs  # (...,half)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., :half], x[..., half:]) of x (..., L, head_dim) by angles broadcastable to (..., L, half)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = angles.cos(), angles.sin()
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
