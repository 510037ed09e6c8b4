"""TrajSegmenter: K learned trajectory queries -> space-time assignment logits for one chunk of frames.

features (B,t,h,w,C) --in_proj + refine--> pixels (B,t,h,w,D) (+ (t,h,w) position code)
queries (K,D) --[cross-attn to all t*h*w pixels, self-attn, MLP] x depth--> (B,K,D)
logits (B,t,h,w,K) = scale * cos(pixel_embed, query_embed), scale = exp(learnable log-temperature, shape (1,)).

Softmax over K = soft masks; argmax = hard slot ids. A query index is the same trajectory in every frame of
the chunk, so tracking inside a chunk is implicit.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from .config import TrajTokConfig
from .layers import MLP, Attention
from .rope import grid_coords, sinusoid_features


# Parameters that older checkpoints stored 0-dim. They are (1,) now: DeepSpeed (ZeRO-3 partitioning, the engine's
# broadcast) views every parameter as bytes, which a 0-dim tensor cannot do.
_LEGACY_SCALAR_PARAMS = ("log_logit_scale",)


def upgrade_legacy_state_dict(state: MutableMapping[str, torch.Tensor]) -> list[str]:
    """Reshape 0-dim legacy scalars (``...log_logit_scale``) of a state dict to (1,), in place.

    Works on any key prefix (a TrajTok, a TrajVLM or a connector state dict). Returns the reshaped keys.
    """
    changed = []
    for key, value in state.items():
        if key.rpartition(".")[2] in _LEGACY_SCALAR_PARAMS and isinstance(value, torch.Tensor) and value.dim() == 0:
            changed.append(key)
    for key in changed:
        state[key] = state[key].reshape(1)
    return changed


@dataclass
class SegmenterOutput(ModelOutput):
    """A ModelOutput (a dict as well as a dataclass), so DeepSpeed ZeRO-3's backward hooks reach its tensors."""

    logits: torch.Tensor | None = None  # (B,t,h,w,K)
    query_embeds: torch.Tensor | None = None  # (B,K,D) L2-normalised query embeddings (used for cross-chunk linking)


class _RefineBlock(nn.Module):
    """Depthwise conv + pointwise MLP, residual. (B,t,h,w,D) -> (B,t,h,w,D).

    temporal=False: per-frame 3x3 conv (attribute ``dw``, the original block). temporal=True: 3x3x3 conv over
    (t,h,w) (attribute ``dw3d``), so a pixel also sees the neighbouring frames -- how the thing under it moves.
    dilation spreads the spatial taps (receptive field) without more parameters.
    """

    def __init__(self, dim: int, hidden: int, *, dilation: int = 1, temporal: bool = False):
        super().__init__()
        self.temporal = temporal
        if temporal:
            self.dw3d = nn.Conv3d(dim, dim, 3, padding=(1, dilation, dilation), dilation=(1, dilation, dilation), groups=dim)
        else:
            self.dw = nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = MLP(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, t, h, w, D = x.shape
        if self.temporal:
            y = self.dw3d(x.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)  # (B,D,t,h,w) -> (B,t,h,w,D)
        else:
            y = self.dw(x.reshape(B * t, h, w, D).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(B, t, h, w, D)
        return x + self.mlp(self.norm(y))


class _QueryBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm_q1 = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.cross = Attention(dim, heads)
        self.norm_q2 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm_q3 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, hidden)

    def forward(self, q: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        q = q + self.cross(self.norm_q1(q), self.norm_kv(pixels))  # (B,K,D) <- (B,L,D)
        y = self.norm_q2(q)
        q = q + self.self_attn(y, y)
        return q + self.mlp(self.norm_q3(q))


class TrajSegmenter(nn.Module):
    def __init__(self, config: TrajTokConfig):
        super().__init__()
        D, K = config.hidden_dim, config.num_queries
        hidden = config.mlp_ratio * D
        self.config = config
        self.in_proj = nn.Linear(config.feature_dim, D)
        self.in_norm = nn.LayerNorm(D)
        self.refine = nn.ModuleList(
            _RefineBlock(
                D,
                hidden,
                dilation=min(config.refine_dilation**i, config.refine_max_dilation),
                temporal=config.refine_temporal,
            )
            for i in range(config.refine_layers)
        )
        self.pos_proj = nn.Linear(3 * (2 * config.num_pos_freqs + 1), D)
        self.queries = nn.Parameter(torch.randn(K, D))
        self.blocks = nn.ModuleList(_QueryBlock(D, config.num_heads, hidden) for _ in range(config.segmenter_depth))
        self.pixel_norm = nn.LayerNorm(D)
        self.pixel_embed = MLP(D, hidden)
        self.query_norm = nn.LayerNorm(D)
        self.query_embed = nn.Linear(D, D)
        self.log_logit_scale = nn.Parameter(torch.full((1,), math.log(config.init_logit_scale)))  # (1,)
        self.register_load_state_dict_pre_hook(_upgrade_legacy_keys)

    def forward(self, features: torch.Tensor) -> SegmenterOutput:
        """features (B,t,h,w,C) -> SegmenterOutput(logits (B,t,h,w,K), query_embeds (B,K,D))."""
        B, t, h, w, _ = features.shape
        x = self.in_norm(self.in_proj(features))  # (B,t,h,w,D)
        for blk in self.refine:
            x = blk(x)
        coords = grid_coords(t, h, w, device=x.device, dtype=x.dtype, t_scale=self.config.frames_per_chunk)
        x = x + self.pos_proj(sinusoid_features(coords, self.config.num_pos_freqs))  # (B,t,h,w,D)
        pixels = x.reshape(B, t * h * w, -1)  # (B,L,D)
        q = self.queries.unsqueeze(0).expand(B, -1, -1)  # (B,K,D)
        for blk in self.blocks:
            q = blk(q, pixels)
        pe = F.normalize(self.pixel_embed(self.pixel_norm(x)), dim=-1)  # (B,t,h,w,D)
        qe = F.normalize(self.query_embed(self.query_norm(q)), dim=-1)  # (B,K,D)
        scale = self.log_logit_scale.clamp(max=math.log(100.0)).exp()  # (1,)
        logits = scale * torch.einsum("bthwd,bkd->bthwk", pe, qe)  # (B,t,h,w,K)
        return SegmenterOutput(logits=logits, query_embeds=qe)


def _upgrade_legacy_keys(module, state_dict, prefix, *args) -> None:
    """load_state_dict pre-hook of TrajSegmenter: a 0-dim ``log_logit_scale`` of an old checkpoint -> (1,)."""
    own = {prefix + name: state_dict[prefix + name] for name in _LEGACY_SCALAR_PARAMS if prefix + name in state_dict}
    for key in upgrade_legacy_state_dict(own):
        state_dict[key] = own[key]
