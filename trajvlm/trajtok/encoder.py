"""TrajEncoder: per-trajectory, per-frame summaries -> q tokens per trajectory.

Input (R trajectories, T frames): mask-pooled backbone features (R,T,C), mask mass (R,T), hard area (R,T),
boxes (R,T,4). Every row is encoded independently of the others (no attention across trajectories), so
dropping a trajectory never changes another one's tokens.

  frame tokens  x_t = LN(W_in pooled_t) + W_pos sinusoid(box_t, tau_t)          (R,T,D), tau_t = t/(T-1)
  summary       s   = W_app mean_t(appearance) + MLP(sinusoid(geometry))         (R,D)
                      [+ W_roi LN(box-aligned P x P features, mean over present frames)]  (shape; roi_size > 0)
                geometry = first/last time, duration, first/last centre, net displacement, velocity
                (least squares), mean box size, mean area, empty flag: motion and timing are explicit
  latents       L   = learned (q,D) + s                                          (R,q,D)
  blocks        L  += CrossAttn(L -> [null; x_present]) with RoPE over time (latent i anchored at (i+.5)/q)
                L  += SelfAttn(L) (q > 1), L += MLP(L)
  tokens        LN(L)                                                            (R,q,D)
                [; LN(W_shape LN(box-aligned features)) on every token]          (R,q,D+S) (shape_dim S > 0)

The shape code gives the box-aligned features a width of their own: in the summary sum they share D dimensions with
appearance, timing and motion, and a probe reads look-alike objects' shapes from the RoI features far better than
from the D-wide token (eval/results/default_model.md, session 13).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import TrajTokConfig
from .layers import MLP, Attention
from .rope import rope_angles, sinusoid_features

NUM_GEOMETRY = 16


def trajectory_geometry(area: torch.Tensor, boxes: torch.Tensor, grid_cells: int) -> torch.Tensor:
    """area (R,T), boxes (R,T,4) -> (R, NUM_GEOMETRY) explicit timing + motion descriptors (no gradient needed).

    [t_first, t_last, duration, cx_first, cy_first, cx_last, cy_last, dx, dy, vx, vy, mean_w, mean_h,
     mean_area_fraction, present_fraction, empty]; times in [0,1] (fraction of the video), coordinates in [0,1].
    """
    R, T = area.shape
    dev, dt = boxes.device, boxes.dtype
    present = area > 0  # (R,T)
    pf = present.to(dt)
    n = pf.sum(1)  # (R,)
    tau = torch.arange(T, device=dev, dtype=dt) / max(T - 1, 1)  # (T,)
    tt = torch.arange(T, device=dev)
    first = torch.where(present, tt, T).amin(1).clamp(max=T - 1)  # (R,)
    last = torch.where(present, tt, -1).amax(1).clamp(min=0)
    centers = 0.5 * (boxes[..., :2] + boxes[..., 2:])  # (R,T,2)
    sizes = boxes[..., 2:] - boxes[..., :2]  # (R,T,2)
    ar = torch.arange(R, device=dev)
    c_first, c_last = centers[ar, first], centers[ar, last]  # (R,2)
    denom = n.clamp_min(1).unsqueeze(-1)
    mean_c = (centers * pf.unsqueeze(-1)).sum(1) / denom  # (R,2)
    mean_t = (tau * pf).sum(1) / n.clamp_min(1)  # (R,)
    dtau = (tau - mean_t.unsqueeze(1)) * pf  # (R,T)
    var_t = (dtau**2).sum(1).clamp_min(1e-6)
    vel = (dtau.unsqueeze(-1) * (centers - mean_c.unsqueeze(1))).sum(1) / var_t.unsqueeze(-1)  # (R,2) per video
    span = (tau[last] - tau[first]).clamp_min(0)  # (R,)
    vel = vel * span.unsqueeze(-1)  # displacement implied by the fitted velocity over the visible span
    mean_size = (sizes * pf.unsqueeze(-1)).sum(1) / denom  # (R,2)
    mean_area = area.sum(1) / n.clamp_min(1) / grid_cells
    empty = (n == 0).to(dt)
    geo = torch.stack(
        [
            tau[first],
            tau[last],
            span,
            c_first[:, 0],
            c_first[:, 1],
            c_last[:, 0],
            c_last[:, 1],
            c_last[:, 0] - c_first[:, 0],
            c_last[:, 1] - c_first[:, 1],
            vel[:, 0],
            vel[:, 1],
            mean_size[:, 0],
            mean_size[:, 1],
            mean_area,
            n / T,
        ],
        dim=-1,
    )  # (R,15)
    return torch.cat([geo * (1.0 - empty).unsqueeze(-1), empty.unsqueeze(-1)], dim=-1)  # (R,16)


class _LatentBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, self_attn: bool):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.cross = Attention(dim, heads)
        self.self_attn = Attention(dim, heads) if self_attn else None
        self.norm_s = nn.LayerNorm(dim) if self_attn else None
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = MLP(dim, hidden)

    def forward(self, lat, keys, q_angles, k_angles, key_mask):
        lat = lat + self.cross(self.norm_q(lat), keys, q_angles=q_angles, k_angles=k_angles, key_mask=key_mask)
        if self.self_attn is not None:
            y = self.norm_s(lat)
            lat = lat + self.self_attn(y, y, q_angles=q_angles, k_angles=q_angles)
        return lat + self.mlp(self.norm_m(lat))


class TrajEncoder(nn.Module):
    def __init__(self, config: TrajTokConfig):
        super().__init__()
        D, F = config.hidden_dim, config.num_pos_freqs
        hidden = config.mlp_ratio * D
        self.config = config
        self.head_dim = D // config.num_heads
        self.in_proj = nn.Linear(config.feature_dim, D)
        self.app_norm = nn.LayerNorm(D)
        self.frame_pos = nn.Linear(5 * (2 * F + 1), D)
        self.frame_norm = nn.LayerNorm(D)
        self.summary_app = nn.Linear(D, D)
        self.summary_geo = MLP(NUM_GEOMETRY * (2 * F + 1), hidden, D)
        P2 = config.roi_size**2
        if P2:  # box-aligned P x P features -> D (shape); LayerNorm per grid point keeps the scale of any backbone
            self.roi_norm = nn.LayerNorm(config.feature_dim)
            self.summary_roi = nn.Linear(P2 * config.feature_dim, D)
        if config.shape_dim:  # the same features -> their own S-wide code on every token
            self.shape_proj = nn.Linear(P2 * config.feature_dim, config.shape_dim)
            self.shape_norm = nn.LayerNorm(config.shape_dim)
        self.latents = nn.Parameter(torch.randn(config.tokens_per_trajectory, D) * 0.02)
        self.null_kv = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        q = config.tokens_per_trajectory
        self.blocks = nn.ModuleList(
            _LatentBlock(D, config.num_heads, hidden, self_attn=q > 1) for _ in range(config.encoder_depth)
        )
        self.out_norm = nn.LayerNorm(D)

    def forward(
        self,
        pooled: torch.Tensor,
        mass: torch.Tensor,
        area: torch.Tensor,
        boxes: torch.Tensor,
        grid_cells: int,
        roi: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """pooled (R,T,C), mass (R,T), area (R,T), boxes (R,T,4), grid_cells = h*w, roi (R,P*P,C) (required when
        config.roi_size > 0) -> tokens (R,q,D+S) (S = config.shape_dim, 0 = off)."""
        R, T, _ = pooled.shape
        cfg = self.config
        dt = pooled.dtype
        present = area > 0  # (R,T)
        tau = torch.arange(T, device=pooled.device, dtype=dt) / max(T - 1, 1)  # (T,)
        app = self.app_norm(self.in_proj(pooled))  # (R,T,D)
        pos_in = torch.cat([boxes * 2 - 1, (tau * 2 - 1).view(1, T, 1).expand(R, T, 1)], dim=-1)  # (R,T,5)
        frames = self.frame_norm(app + self.frame_pos(sinusoid_features(pos_in, cfg.num_pos_freqs)))  # (R,T,D)

        w = mass * present.to(dt)  # (R,T)
        mean_app = (app * w.unsqueeze(-1)).sum(1) / w.sum(1).clamp_min(1e-6).unsqueeze(-1)  # (R,D)
        geo = trajectory_geometry(area, boxes.detach(), grid_cells)  # (R,G)
        summary = self.summary_app(mean_app) + self.summary_geo(sinusoid_features(geo * 2 - 1, cfg.num_pos_freqs))
        if cfg.roi_size:
            if roi is None:
                raise ValueError("TrajEncoder: config.roi_size > 0 but no roi features were given")
            roi_in = self.roi_norm(roi).flatten(1)  # (R,P*P*C)
            summary = summary + self.summary_roi(roi_in)  # (R,D)

        q = cfg.tokens_per_trajectory
        lat = self.latents.unsqueeze(0) + summary.unsqueeze(1)  # (R,q,D)
        anchors = (torch.arange(q, device=pooled.device, dtype=dt) + 0.5) / q  # (q,)
        q_angles = rope_angles(anchors, self.head_dim).unsqueeze(0)  # (1,q,hd/2)
        k_pos = torch.cat([anchors.new_full((1,), 0.5), tau])  # null key sits mid-video
        k_angles = rope_angles(k_pos, self.head_dim).unsqueeze(0)  # (1,1+T,hd/2)
        keys = torch.cat([self.null_kv.expand(R, 1, -1), frames], dim=1)  # (R,1+T,D)
        key_mask = torch.cat([present.new_ones(R, 1), present], dim=1)  # (R,1+T)
        for blk in self.blocks:
            lat = blk(lat, keys, q_angles, k_angles, key_mask)
        tokens = self.out_norm(lat)  # (R,q,D)
        if cfg.shape_dim:
            shape = self.shape_norm(self.shape_proj(roi_in))  # (R,S)
            tokens = torch.cat([tokens, shape.unsqueeze(1).expand(R, q, -1)], dim=-1)  # (R,q,D+S)
        return tokens
