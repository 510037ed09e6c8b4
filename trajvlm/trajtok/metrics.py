"""Hungarian-matched mean IoU of predicted trajectory ids against GT trajectories (on the feature grid)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .targets import SegmentationInputError, _as_tensor, check_masks_graphs, gt_label_map


def video_ious(pred: torch.Tensor, labels: torch.Tensor, num_gt: int) -> np.ndarray:
    """pred (T,h,w) any integer ids, labels (T,h,w) in [0, num_gt) -> IoU (num_gt,) of each GT label under
    a one-to-one Hungarian matching of predicted ids to GT labels (maximising total IoU; unmatched -> 0)."""
    _, pred_c = torch.unique(pred.reshape(-1), return_inverse=True)
    P = int(pred_c.max()) + 1
    lab = labels.reshape(-1)
    joint = torch.bincount(pred_c * num_gt + lab, minlength=P * num_gt).view(P, num_gt).double()
    inter = joint
    union = joint.sum(1, keepdim=True) + joint.sum(0, keepdim=True) - inter
    iou = (inter / union.clamp_min(1)).numpy()  # (P,G)
    rows, cols = linear_sum_assignment(-iou)
    out = np.zeros(num_gt)
    out[cols] = iou[rows, cols]
    return out


def matched_miou(pred_ids, masks, graphs, *, include_background: bool = False) -> float:
    """pred_ids (B,T,h,w) long (e.g. TrajTokOutput.hard_ids), masks (B,T,H,W), graphs list of (N_b,T) -> float.

    GT masks are majority-downsampled to (h,w); background takes part in the matching (so a background slot
    cannot be matched to an object) but is averaged only if include_background. GT trajectories that cover no
    grid cell are skipped. Per video: mean IoU over its GT trajectories; result: mean over videos.
    """
    pred_ids = _as_tensor(pred_ids, "pred_ids")
    if pred_ids.ndim != 4 or pred_ids.is_floating_point():
        raise SegmentationInputError(f"pred_ids must be an integer (B,T,h,w) tensor, got shape {tuple(pred_ids.shape)}")
    B, T, h, w = pred_ids.shape
    masks, graphs = check_masks_graphs(masks, graphs, B, T)
    per_video = []
    for b in range(B):
        labels = gt_label_map(masks[b], graphs[b], h, w)  # (T,h,w)
        G = graphs[b].shape[0] + 1
        ious = video_ious(pred_ids[b].cpu().long(), labels.cpu(), G)
        present = torch.bincount(labels.reshape(-1).cpu(), minlength=G).numpy() > 0
        if not include_background:
            present[0] = False
        if present.any():
            per_video.append(float(ious[present].mean()))
    if not per_video:
        raise SegmentationInputError("matched_miou: no GT trajectory covers any grid cell")
    return float(np.mean(per_video))
