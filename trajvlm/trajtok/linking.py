"""Per-chunk slot statistics and cross-chunk linking of slots into global trajectories.

Memory is bounded: from each chunk only per-frame, per-slot summaries are kept (mask-pooled feature (C),
mask mass, hard area, box), never the pixel features. Slots of a new chunk are linked to the remembered
tracks with Hungarian matching (scipy.optimize.linear_sum_assignment) on a similarity of query embedding,
appearance and spatial continuity, so an object that stays in view keeps its global trajectory id (and one that
leaves and comes back with the same look is usually re-identified).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


@dataclass
class ChunkStats:
    """Summaries of one chunk (B videos, t frames, K slots)."""

    pooled: torch.Tensor  # (B,t,K,C) features pooled inside soft*hard mask (differentiable through soft masks)
    mass: torch.Tensor  # (B,t,K) sum of soft*hard mask weights
    area: torch.Tensor  # (B,t,K) float, hard-assigned cells
    boxes: torch.Tensor  # (B,t,K,4) (x0,y0,x1,y1) in [0,1] of the hard mask; zeros where area == 0
    query_embeds: torch.Tensor  # (B,K,D) normalised query embeddings
    hard_slots: torch.Tensor  # (B,t,h,w) long, argmax slot per cell
    roi: torch.Tensor | None = None  # (B,K,P*P,C) box-aligned features (P x P grid in each frame's box), chunk mean
    roi_frames: torch.Tensor | None = None  # (B,K) float weight of roi: frames it averages (see chunk_stats)


def hard_boxes(onehot: torch.Tensor) -> torch.Tensor:
    """onehot (B,t,h,w,K) {0,1} -> boxes (B,t,K,4) (x0,y0,x1,y1) in [0,1], cell-edge aligned; zeros if empty."""
    B, t, h, w, K = onehot.shape
    rows = onehot.amax(dim=3) > 0  # (B,t,h,K)
    cols = onehot.amax(dim=2) > 0  # (B,t,w,K)
    ys = torch.arange(h, device=onehot.device).view(1, 1, h, 1)
    xs = torch.arange(w, device=onehot.device).view(1, 1, w, 1)
    y0 = torch.where(rows, ys, h).amin(dim=2)
    y1 = torch.where(rows, ys + 1, 0).amax(dim=2)
    x0 = torch.where(cols, xs, w).amin(dim=2)
    x1 = torch.where(cols, xs + 1, 0).amax(dim=2)
    boxes = torch.stack([x0 / w, y0 / h, x1 / w, y1 / h], dim=-1).to(onehot.dtype)  # (B,t,K,4)
    present = rows.any(dim=2).unsqueeze(-1)  # (B,t,K,1)
    return torch.where(present, boxes, torch.zeros_like(boxes))


def box_features(features: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """features (B,t,h,w,C), boxes (B,t,K,4) in [0,1] -> (B,t,K,size*size,C): the features bilinearly sampled at
    a size x size grid of cell centres inside each box (RoIAlign with one sample per bin). Keeps the layout of
    an object -- its shape -- which mask-average pooling loses."""
    B, t, h, w, C = features.shape
    K = boxes.shape[2]
    centre = (torch.arange(size, device=boxes.device, dtype=boxes.dtype) + 0.5) / size  # (P,)
    x = boxes[..., 0:1] + (boxes[..., 2:3] - boxes[..., 0:1]) * centre  # (B,t,K,P)
    y = boxes[..., 1:2] + (boxes[..., 3:4] - boxes[..., 1:2]) * centre  # (B,t,K,P)
    grid = torch.stack(
        [x.unsqueeze(-2).expand(B, t, K, size, size), y.unsqueeze(-1).expand(B, t, K, size, size)], dim=-1
    )  # (B,t,K,P,P,2) (x,y) in [0,1]
    grid = (grid * 2 - 1).reshape(B * t, K * size, size, 2)
    fmap = features.reshape(B * t, h, w, C).permute(0, 3, 1, 2)  # (B*t,C,h,w)
    out = F.grid_sample(fmap, grid.to(fmap.dtype), mode="bilinear", align_corners=False)  # (B*t,C,K*P,P)
    return out.reshape(B, t, C, K, size * size).permute(0, 1, 3, 4, 2)  # (B,t,K,P*P,C)


# Weight of a frame in which the slot touches another object, relative to 1 for a frame in which it does not
# (roi_isolated): small enough that any isolated frame dominates, non-zero so a slot that always touches another
# object still gets the mean over its present frames.
TOUCHING_FRAME_WEIGHT = 1e-3


def touching_frames(onehot: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """onehot (B,t,h,w,K) hard masks, area (B,t,K) cells -> (B,t,K) bool: the slot's mask touches (8-neighbour,
    or shares a cell with) the mask of another object slot in that frame.

    A slot covering at least half the frame is the background (or a region that large): it is nobody's neighbour
    and is never reported as touching.
    """
    B, t, h, w, K = onehot.shape
    is_object = area < 0.5 * h * w  # (B,t,K)
    objects = onehot * is_object[:, :, None, None, :].to(onehot.dtype)  # (B,t,h,w,K)
    others = (objects.sum(-1, keepdim=True) - objects) > 0  # (B,t,h,w,K) cell held by another object slot
    grown = F.max_pool2d(onehot.permute(0, 1, 4, 2, 3).reshape(B * t * K, 1, h, w), 3, stride=1, padding=1)
    grown = grown.reshape(B, t, K, h, w).permute(0, 1, 3, 4, 2) > 0  # (B,t,h,w,K) mask + one-cell ring
    return (grown & others).flatten(2, 3).any(2) & is_object  # (B,t,K)


def chunk_stats(
    features: torch.Tensor,
    logits: torch.Tensor,
    query_embeds: torch.Tensor,
    roi_size: int = 0,
    roi_isolated: bool = False,
) -> ChunkStats:
    """features (B,t,h,w,C), logits (B,t,h,w,K), query_embeds (B,K,D) -> ChunkStats.

    Pooling weights are soft*hard: the soft mask (softmax over K) restricted to the cells the slot wins, so
    the pooled appearance is not polluted by the soft tail over the background, while gradients still reach
    the segmenter through the soft mask. With roi_size = P > 0 each slot also gets box-aligned P x P features,
    averaged over the frames it is present in (``roi``, ``roi_frames``): shape information at O(K*P*P*C) per chunk.
    roi_isolated: average the box features over the frames in which the slot does not touch another object slot
    (``touching_frames``; frames where it touches weigh TOUCHING_FRAME_WEIGHT): where a look-alike object is
    next to it, its box and mask take in part of the other one, and the layout read there is not its shape.
    """
    K = logits.shape[-1]
    soft = logits.softmax(dim=-1)  # (B,t,h,w,K)
    hard_slots = logits.argmax(dim=-1)  # (B,t,h,w)
    onehot = F.one_hot(hard_slots, K).to(soft.dtype)  # (B,t,h,w,K)
    weights = soft * onehot
    mass = weights.sum(dim=(2, 3))  # (B,t,K)
    pooled = torch.einsum("bthwk,bthwc->btkc", weights, features) / mass.clamp_min(1e-6).unsqueeze(-1)
    area = onehot.sum(dim=(2, 3))  # (B,t,K)
    boxes = hard_boxes(onehot)  # (B,t,K,4)
    roi = roi_frames = None
    if roi_size > 0:
        weight = (area > 0).to(features.dtype)  # (B,t,K) present frames
        if roi_isolated:
            touching = touching_frames(onehot, area).to(features.dtype)  # (B,t,K)
            weight = weight * (1 - touching * (1 - TOUCHING_FRAME_WEIGHT))
        roi_frames = weight.sum(1)  # (B,K)
        per_frame = box_features(features, boxes, roi_size)  # (B,t,K,P*P,C)
        roi = (per_frame * weight[..., None, None]).sum(1) / roi_frames.clamp_min(1e-6)[..., None, None]  # (B,K,P*P,C)
    return ChunkStats(
        pooled=pooled,
        mass=mass,
        area=area,
        boxes=boxes,
        query_embeds=query_embeds,
        hard_slots=hard_slots,
        roi=roi,
        roi_frames=roi_frames,
    )


@dataclass
class _Track:
    tid: int
    query: torch.Tensor  # (D,) last query embedding
    appearance: torch.Tensor | None = None  # (C,) last chunk's mean pooled feature
    last_center: torch.Tensor | None = None  # (2,) centre of the last present box
    total_area: float = 0.0


@dataclass
class TrackBank:
    """Tracks of ONE video: links chunk slots to global trajectory ids (incremental, bounded memory). The number of
    slots is each chunk's own (the segmenter's K, more after ``split_components``)."""

    link_threshold: float
    memory: int
    tracks: dict[int, _Track] = field(default_factory=dict)
    next_id: int = 0
    slot_to_track: list[torch.Tensor] = field(default_factory=list)  # per chunk (K,) long track id, -1 = dead slot

    @staticmethod
    def _similarity(track: _Track, q: torch.Tensor, app: torch.Tensor, first_center: torch.Tensor) -> float:
        """Similarity in [0,1] of a track with content and a live slot: weighted mean of query-embedding cosine
        (weight 1), appearance cosine (weight 2, the most telling) and spatial continuity (weight 1,
        exp(-distance/0.25) between the track's last centre and the slot's first centre)."""
        s_q = 0.5 * (1.0 + float(torch.dot(track.query, q)))
        s_a = max(0.0, float(F.cosine_similarity(track.appearance, app, dim=0)))
        s_s = float(torch.exp(-torch.linalg.vector_norm(track.last_center - first_center) / 0.25))
        return (s_q + 2.0 * s_a + s_s) / 4.0

    def link(self, stats: ChunkStats, b: int) -> torch.Tensor:
        """Assign every slot of chunk `stats` (video b) a track id -> (K,) long (-1 for dead slots).

        First chunk: slot k is track k for every k (dead slots become empty placeholder tracks, so a one-chunk
        video has ids 0..K-1 and fixed-K mode always has K tracks). Later chunks: live slots are Hungarian-matched
        to tracks that have content; a match with similarity >= link_threshold continues the track. Any other
        live slot takes an empty placeholder (its own index if still free, else the smallest) or a new id.
        """
        K = stats.area.shape[-1]  # slots of this chunk
        area = stats.area[b].detach()  # (t,K)
        mass = stats.mass[b].detach()  # (t,K)
        pooled = stats.pooled[b].detach()  # (t,K,C)
        boxes = stats.boxes[b].detach()  # (t,K,4)
        queries = stats.query_embeds[b].detach()  # (K,D)
        slot_area = area.sum(dim=0)  # (K,)
        live = slot_area > 0
        app = (pooled * mass.unsqueeze(-1)).sum(0) / mass.sum(0).clamp_min(1e-6).unsqueeze(-1)  # (K,C)
        centers = 0.5 * (boxes[..., :2] + boxes[..., 2:])  # (t,K,2)
        present = area > 0  # (t,K)
        t = area.shape[0]
        tt = torch.arange(t, device=area.device).unsqueeze(1)
        first_idx = torch.where(present, tt, t).amin(0).clamp(max=t - 1)  # (K,)
        last_idx = torch.where(present, tt, -1).amax(0).clamp(min=0)  # (K,)
        ar = torch.arange(K, device=area.device)
        first_c, last_c = centers[first_idx, ar], centers[last_idx, ar]  # (K,2)

        mapping = torch.full((K,), -1, dtype=torch.long)
        if not self.tracks:
            for k in range(K):
                self.tracks[k] = _Track(tid=k, query=queries[k])
            self.next_id = K
            for k in range(K):
                if live[k]:
                    mapping[k] = k
        else:
            live_slots = [k for k in range(K) if live[k]]
            content = [tid for tid, tr in self.tracks.items() if tr.total_area > 0]
            matched: dict[int, int] = {}
            if live_slots and content:
                sim = np.array(
                    [[self._similarity(self.tracks[i], queries[k], app[k], first_c[k]) for i in content] for k in live_slots]
                )  # (L, N)
                rows, cols = linear_sum_assignment(-sim)
                matched = {live_slots[r]: content[c] for r, c in zip(rows, cols) if sim[r, c] >= self.link_threshold}
            free = sorted(tid for tid, tr in self.tracks.items() if tr.total_area == 0)
            for k in sorted(live_slots, key=lambda k: -float(slot_area[k])):
                if k in matched:
                    mapping[k] = matched[k]
                elif free:
                    tid = k if k in free else free[0]
                    free.remove(tid)
                    mapping[k] = tid
                else:
                    self.tracks[self.next_id] = _Track(tid=self.next_id, query=queries[k])
                    mapping[k] = self.next_id
                    self.next_id += 1
        for k in range(K):
            tid = int(mapping[k])
            if tid < 0:
                continue
            tr = self.tracks[tid]
            tr.query, tr.appearance, tr.last_center = queries[k], app[k], last_c[k]
            tr.total_area += float(area[:, k].sum())
        self.slot_to_track.append(mapping)
        self._evict(live_tids={int(m) for m in mapping if m >= 0})
        return mapping

    def _evict(self, live_tids: set[int]) -> None:
        while len(self.tracks) > self.memory:
            candidates = [tr for tid, tr in self.tracks.items() if tid not in live_tids]
            if not candidates:
                return
            victim = min(candidates, key=lambda tr: (tr.total_area, -tr.tid))
            del self.tracks[victim.tid]

    def track_ids(self) -> list[int]:
        return sorted(self.tracks)


def assemble_tracks(
    banks: list[TrackBank], chunks: list[ChunkStats]
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[int], torch.Tensor | None]:
    """Gather per-frame slot summaries of every chunk into per-track sequences over the whole video.

    Returns ids (per video (N_b,) long), and, concatenated over videos (sum N_b rows),
    pooled (R,T,C), mass (R,T), area (R,T), boxes (R,T,4), counts [N_b], and roi (R,P*P,C) -- the box-aligned
    features averaged over every frame the track is present in -- or None when the chunks carry no roi.
    """
    with_roi = all(st.roi is not None for st in chunks)
    ids_out, pooled_rows, mass_rows, area_rows, box_rows, counts, roi_rows = [], [], [], [], [], [], []
    for b, bank in enumerate(banks):
        tids = bank.track_ids()
        pos = {tid: i for i, tid in enumerate(tids)}
        N = len(tids)
        per_chunk, slots = [], []
        for c, st in enumerate(chunks):
            slot_of = torch.full((N,), -1, dtype=torch.long)  # (N,) slot of each track in chunk c, -1 = absent
            for k, tid in enumerate(bank.slot_to_track[c].tolist()):
                if tid in pos:
                    slot_of[pos[tid]] = k
            slots.append(slot_of)
            valid = (slot_of >= 0).to(st.mass.dtype)  # (N,)
            idx = slot_of.clamp_min(0).to(st.mass.device)
            valid = valid.to(st.mass.device)
            per_chunk.append(
                (
                    st.pooled[b][:, idx].transpose(0, 1) * valid[:, None, None],  # (N,t,C)
                    st.mass[b][:, idx].transpose(0, 1) * valid[:, None],  # (N,t)
                    st.area[b][:, idx].transpose(0, 1) * valid[:, None],  # (N,t)
                    st.boxes[b][:, idx].transpose(0, 1) * valid[:, None, None],  # (N,t,4)
                )
            )
        if with_roi:
            roi_sum, roi_n = 0.0, 0.0
            for st, slot_of in zip(chunks, slots):
                idx = slot_of.clamp_min(0).to(st.roi.device)
                n = st.roi_frames[b][idx] * (slot_of >= 0).to(st.roi.device, st.roi.dtype)  # (N,)
                roi_sum = roi_sum + st.roi[b][idx] * n[:, None, None]  # (N,P*P,C)
                roi_n = roi_n + n
            roi_rows.append(roi_sum / torch.as_tensor(roi_n).clamp_min(1e-6)[:, None, None])
        pooled_rows.append(torch.cat([p[0] for p in per_chunk], dim=1))
        mass_rows.append(torch.cat([p[1] for p in per_chunk], dim=1))
        area_rows.append(torch.cat([p[2] for p in per_chunk], dim=1))
        box_rows.append(torch.cat([p[3] for p in per_chunk], dim=1))
        ids_out.append(torch.tensor(tids, dtype=torch.long))
        counts.append(N)
    return (
        ids_out,
        torch.cat(pooled_rows),
        torch.cat(mass_rows),
        torch.cat(area_rows),
        torch.cat(box_rows),
        counts,
        torch.cat(roi_rows) if with_roi else None,
    )
