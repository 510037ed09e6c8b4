"""Hungarian-matched segmentation loss (focal + dice) of TrajSegmenter assignment logits.

For every video: GT trajectories (from masks + graph) are resampled to the (h,w) grid by majority vote;
background is its own GT trajectory by default (the slots partition every cell, so the background needs a
slot too; set background_as_trajectory=False to leave background cells as negatives for every slot).
Each slot's whole space-time soft mask (softmax over K) is matched to one GT trajectory's space-time mask by
scipy.optimize.linear_sum_assignment on cost = focal_weight * focal + dice_weight * dice; matched slots get
focal + dice against their trajectory, unmatched slots are pushed to empty (focal with an all-zero target).
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from .targets import SegmentationInputError, check_masks_graphs, gt_label_map


def _focal_terms(logp: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """logp (M,K) log soft-mask -> per-cell focal loss if the target is 1 (pos) or 0 (neg), each (M,K)."""
    p = logp.exp()
    log1mp = torch.log1p(-p.clamp(max=1 - 1e-6))
    pos = -((1 - p) ** gamma) * logp
    neg = -(p**gamma) * log1mp
    return pos, neg


def match_slots(
    logits: torch.Tensor, target: torch.Tensor, *, focal_weight: float, dice_weight: float, gamma: float
) -> tuple[list[int], list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits (M,K) cell x slot, target (M,G) {0,1} -> (slot rows, gt cols, p (M,K), focal pos, focal neg)."""
    logp = logits.log_softmax(-1)  # (M,K)
    p = logp.exp()
    pos, neg = _focal_terms(logp, gamma)
    M = logits.shape[0]
    with torch.no_grad():
        focal_cost = ((pos - neg).T @ target + neg.sum(0, keepdim=True).T) / M  # (K,G)
        inter = p.T @ target  # (K,G)
        dice_cost = 1 - (2 * inter + 1) / (p.sum(0)[:, None] + target.sum(0)[None, :] + 1)
        cost = focal_weight * focal_cost + dice_weight * dice_cost
        rows, cols = linear_sum_assignment(cost.cpu().double().numpy())
    return rows.tolist(), cols.tolist(), p, pos, neg


def segmentation_loss(
    assignment_logits: torch.Tensor,
    masks,
    graphs,
    *,
    frames_per_chunk: int | None = None,
    background_as_trajectory: bool = True,
    focal_weight: float = 20.0,
    dice_weight: float = 1.0,
    ce_weight: float = 0.0,
    gamma: float = 2.0,
) -> torch.Tensor:
    """assignment_logits (B,T,h,w,K), masks (B,T,H,W) int ids, graphs list of B (N_b,T) -> scalar loss.

    frames_per_chunk: when the logits are the concatenation of independently segmented chunks (TrajTok on a
    long video), slot k of one chunk is not slot k of the next, so matching is done per chunk and averaged.
    ce_weight: optional extra cross-entropy over K on cells covered by a matched GT trajectory (the matched
    slot is the class); dense and not down-weighted like focal, it speeds up early training.
    """
    if not isinstance(assignment_logits, torch.Tensor) or assignment_logits.ndim != 5:
        shape = tuple(assignment_logits.shape) if isinstance(assignment_logits, torch.Tensor) else type(assignment_logits).__name__
        raise SegmentationInputError(f"assignment_logits must be a (B,T,h,w,K) tensor, got {shape}")
    B, T, h, w, K = assignment_logits.shape
    masks, graphs = check_masks_graphs(masks, graphs, B, T)
    if frames_per_chunk is not None and (not isinstance(frames_per_chunk, int) or frames_per_chunk < 1):
        raise SegmentationInputError(f"frames_per_chunk must be an int >= 1 or None, got {frames_per_chunk!r}")
    step = frames_per_chunk or T
    losses = []
    for b in range(B):
        labels = gt_label_map(masks[b].to(assignment_logits.device), graphs[b], h, w)  # (T,h,w)
        G = graphs[b].shape[0] + 1
        for s in range(0, T, step):
            lab = labels[s : s + step].reshape(-1)  # (M,)
            lg = assignment_logits[b, s : s + step].reshape(-1, K)  # (M,K)
            onehot = torch.nn.functional.one_hot(lab, G).to(lg.dtype)  # (M,G)
            if not background_as_trajectory:
                onehot = onehot[:, 1:]
            onehot = onehot[:, onehot.sum(0) > 0]  # drop trajectories absent from this chunk / grid
            rows, cols, p, pos, neg = match_slots(
                lg, onehot, focal_weight=focal_weight, dice_weight=dice_weight, gamma=gamma
            )
            target = torch.zeros_like(p)
            if rows:
                target[:, rows] = onehot[:, cols]
            M = lg.shape[0]
            focal = (target * pos + (1 - target) * neg).sum() / M
            if rows:
                pm, tm = p[:, rows], target[:, rows]
                dice = (1 - (2 * (pm * tm).sum(0) + 1) / (pm.sum(0) + tm.sum(0) + 1)).mean()
            else:
                dice = p.new_zeros(())
            total = focal_weight * focal + dice_weight * dice
            if ce_weight and rows:
                covered = target.sum(1) > 0  # (M,) cells whose GT trajectory got a slot
                if covered.any():
                    logp = lg.log_softmax(-1)
                    total = total - ce_weight * (target * logp).sum(1)[covered].mean()
            losses.append(total)
    return torch.stack(losses).mean()
