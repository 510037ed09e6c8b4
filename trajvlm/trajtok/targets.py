"""Ground-truth trajectories (instance masks + graphs) resampled to the feature grid, shared by loss and metrics."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class SegmentationInputError(ValueError):
    """Bad input to the segmentation loss / metrics (shapes, ranks, graph vs mask mismatch)."""


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise SegmentationInputError(f"{name} must be a tensor or ndarray, got {type(x).__name__}")
    return x


def check_masks_graphs(masks, graphs, B: int, T: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Validate masks (B,T,H,W) integer and graphs (list of B (N_b,T) integer); return them as long tensors."""
    masks = _as_tensor(masks, "masks")
    if masks.ndim != 4:
        raise SegmentationInputError(f"masks must have rank 4 (B,T,H,W), got shape {tuple(masks.shape)}")
    if masks.is_floating_point() or masks.dtype == torch.bool:
        raise SegmentationInputError(f"masks must hold integer instance ids, got dtype {masks.dtype}")
    if tuple(masks.shape[:2]) != (B, T):
        raise SegmentationInputError(f"masks (B,T)={tuple(masks.shape[:2])} does not match predictions (B,T)={(B, T)}")
    if not isinstance(graphs, (list, tuple)) or len(graphs) != B:
        n = len(graphs) if isinstance(graphs, (list, tuple)) else type(graphs).__name__
        raise SegmentationInputError(f"graphs must be a list of B={B} (N,T) arrays, got {n}")
    out = []
    for b, g in enumerate(graphs):
        g = _as_tensor(g, f"graphs[{b}]")
        if g.ndim != 2 or g.shape[1] != T or g.is_floating_point():
            raise SegmentationInputError(
                f"graphs[{b}] must be an integer (N,T={T}) array, got shape {tuple(g.shape)} dtype {g.dtype}"
            )
        out.append(g.long())
    return masks.long(), out


def gt_label_map(masks: torch.Tensor, graph: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """One video: masks (T,H,W) instance ids, graph (N,T) -> labels (T,h,w) long.

    Label 0 = background (mask id 0 or an id no trajectory claims), n+1 = GT trajectory n.
    Each grid cell takes the label that covers most of its pixels (majority / plurality downsampling).
    """
    T, H, W = masks.shape
    N = graph.shape[0]
    graph = graph.to(masks.device)
    # (N,T,H,W): trajectory n occupies pixels whose id equals graph[n,t] (graph[n,t] == 0 -> absent)
    occ = (masks.unsqueeze(0) == graph[:, :, None, None]) & (graph[:, :, None, None] != 0)
    onehot = torch.cat([(~occ.any(0)).unsqueeze(0), occ], dim=0).float()  # (N+1,T,H,W)
    cover = F.adaptive_avg_pool2d(onehot, (h, w))  # (N+1,T,h,w)
    return cover.argmax(0)  # (T,h,w)
