"""Hungarian-matched mean IoU of predicted trajectory ids against GT trajectories (on the feature grid), and the
object-level count / recall of the trajectories TrajTok keeps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .targets import (
    SegmentationInputError,
    _as_tensor,
    check_masks_graphs,
    gt_label_map,
)


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


@dataclass(frozen=True)
class VideoObjectCount:
    """Object-level score of one video: does TrajTok give one kept trajectory per GT object?

    num_gt: GT object trajectories covering >= 1 grid cell (background excluded).
    num_kept: kept trajectories minus the one matched to the GT background (if that one is kept).
    num_matched: GT objects whose one-to-one (Hungarian) matched kept trajectory has IoU >= the threshold.
    """

    num_gt: int
    num_kept: int
    num_matched: int

    @property
    def count_error(self) -> int:
        return self.num_kept - self.num_gt


def object_counts(pred_ids, kept_ids, masks, graphs, *, iou_threshold: float = 0.5) -> list[VideoObjectCount]:
    """pred_ids (B,T,h,w) long trajectory id per cell (TrajTokOutput.hard_ids), kept_ids list of B (N_b,) ids
    that survived TrajTok's selection (TrajTokOutput.trajectory_ids), masks (B,T,H,W), graphs list of (N_b,T)
    -> one VideoObjectCount per video.

    Only kept trajectories are predictions: cells of dropped trajectories belong to no prediction. Kept ids are
    matched one-to-one to GT labels (background included) by Hungarian matching on IoU over the whole video;
    the kept id matched to the background is the background trajectory and is not counted as an object.
    """
    pred_ids = _as_tensor(pred_ids, "pred_ids")
    if pred_ids.ndim != 4 or pred_ids.is_floating_point():
        raise SegmentationInputError(f"pred_ids must be an integer (B,T,h,w) tensor, got shape {tuple(pred_ids.shape)}")
    B, T, h, w = pred_ids.shape
    if not isinstance(kept_ids, (list, tuple)) or len(kept_ids) != B:
        raise SegmentationInputError(f"kept_ids must be a list of {B} id tensors, got {type(kept_ids).__name__}")
    if not 0.0 < iou_threshold <= 1.0:
        raise SegmentationInputError(f"iou_threshold must be in (0,1], got {iou_threshold!r}")
    masks, graphs = check_masks_graphs(masks, graphs, B, T)
    out = []
    for b in range(B):
        G = graphs[b].shape[0] + 1
        labels = gt_label_map(masks[b], graphs[b], h, w).reshape(-1).cpu()  # (T*h*w,) in [0,G)
        present = torch.bincount(labels, minlength=G) > 0  # (G,)
        num_gt = int(present[1:].sum())
        kept = _as_tensor(kept_ids[b], f"kept_ids[{b}]").reshape(-1).long().cpu()  # (N,)
        if kept.numel() != kept.unique().numel():
            raise SegmentationInputError(f"kept_ids[{b}] has repeated ids: {kept.tolist()}")
        if kept.numel() == 0:
            out.append(VideoObjectCount(num_gt=num_gt, num_kept=0, num_matched=0))
            continue
        pred = pred_ids[b].reshape(-1).cpu().long()  # (T*h*w,)
        match = pred.unsqueeze(1) == kept.unsqueeze(0)  # (T*h*w, N)
        row = torch.where(match.any(1), match.float().argmax(1), kept.numel())  # N = "no kept trajectory"
        N = kept.numel()
        joint = torch.bincount(row * G + labels, minlength=(N + 1) * G).view(N + 1, G).double()
        pred_area = joint.sum(1, keepdim=True)[:N]  # (N,1)
        gt_area = joint.sum(0, keepdim=True)  # (1,G)
        inter = joint[:N]  # (N,G)
        iou = (inter / (pred_area + gt_area - inter).clamp_min(1)).numpy()  # (N,G)
        iou[:, ~present.numpy()] = 0.0
        rows, cols = linear_sum_assignment(-iou)
        # the background trajectory: the kept one matched to the GT background, if it overlaps it enough
        background_kept = any(c == 0 and iou[r, c] >= iou_threshold for r, c in zip(rows, cols))
        matched = sum(1 for r, c in zip(rows, cols) if c > 0 and iou[r, c] >= iou_threshold)
        out.append(VideoObjectCount(num_gt=num_gt, num_kept=N - int(background_kept), num_matched=matched))
    return out


def summarize_object_counts(counts: list[VideoObjectCount]) -> dict[str, float]:
    """-> count_match (fraction of videos with num_kept == num_gt), object_recall (matched / all GT objects,
    pooled over videos) and mean_abs_count_error."""
    if not counts:
        raise SegmentationInputError("summarize_object_counts: no videos")
    total_gt = sum(c.num_gt for c in counts)
    return {
        "count_match": float(np.mean([c.count_error == 0 for c in counts])),
        "object_recall": float(sum(c.num_matched for c in counts) / total_gt) if total_gt else float("nan"),
        "mean_abs_count_error": float(np.mean([abs(c.count_error) for c in counts])),
    }
