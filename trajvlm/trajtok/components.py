"""Split segmenter slots that hold several separate objects into one slot per object (followed blobs).

A slot of the segmenter sometimes takes two objects that look alike (same colour) at once: its hard mask is then
two separate blobs in the same frames. This step, between the segmenter's logits and the per-slot summaries
(``linking.chunk_stats``), gives each such blob its own slot:

1. per video and slot (the chunk's largest slot, the background, is left alone), follow the 2-D connected
   components of the slot's hard mask from frame to frame (``frame_tracks``: nearest centre; where two
   followed objects touch in a frame, the joint blob is shared out between them by nearest centre -- a plain
   space-time connected-component labelling would merge them for the whole chunk);
2. drop tracks smaller than ``min_cells`` (cells over the chunk) from consideration (they stay with the slot);
3. group the rest, largest first: a track joins an earlier group it shares at most ``max_overlap`` frames
   with (an object that was hidden for a while and came back; the nearest group in time and space wins),
   otherwise it starts a new group -- two tracks present in the same frames are two objects;
4. every group after the first becomes a new slot: its cells move to a new logit column (the slot's logits
   there, -inf elsewhere), the old slot gets -inf there, and the new slot copies the old slot's query embedding.

The soft mask of every cell is unchanged (the moved logit keeps its value and the slot it left is -inf only on
the moved cells), so pooling inside a group's cells gives exactly what pooling inside the slot gave there.
Runs on the hard masks with scipy (no gradient through the grouping; the logits stay differentiable).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity within a frame


def frame_tracks(mask: np.ndarray, max_dist: float, seed_cells: int) -> tuple[np.ndarray, int]:
    """mask (t,h,w) bool, one slot's hard mask -> (labels (t,h,w) int64, 0 = outside the mask; n tracks).

    The mask's 2-D components (8-connectivity) followed frame to frame. A component continues the active track
    (seen in the last 2 frames) it is Hungarian-matched to on centre distance, if <= max_dist cells. An active
    track left unmatched whose nearest component (<= max_dist) was taken by another track means the two objects
    touch in this frame: that component's cells are shared out between the tracks by nearest last centre.
    Components that continue no track start one if they have >= seed_cells cells, else join the nearest track.
    """
    labels = np.zeros(mask.shape, dtype=np.int64)
    centres: dict[int, np.ndarray] = {}  # track id -> (2,) centre in the track's last frame
    last_seen: dict[int, int] = {}
    n = 0
    for f in range(mask.shape[0]):
        comp, m = ndimage.label(mask[f], structure=_EIGHT)
        if m == 0:
            continue
        cells = [np.argwhere(comp == c + 1) for c in range(m)]  # per component (n_c,2)
        cc = np.array([x.mean(0) for x in cells])  # (m,2)
        active = [k for k in centres if f - last_seen[k] <= 2]
        owners: list[list[int]] = [[] for _ in range(m)]
        if active:
            d = np.linalg.norm(cc[:, None] - np.array([centres[k] for k in active])[None], axis=-1)  # (m,A)
            rows, cols = linear_sum_assignment(d)
            for r, c in zip(rows, cols):
                if d[r, c] <= max_dist:
                    owners[r].append(active[c])
            taken = {k for ks in owners for k in ks}
            for j, k in enumerate(active):
                r = int(np.argmin(d[:, j]))
                if k not in taken and d[r, j] <= max_dist and owners[r]:
                    owners[r].append(k)  # touching: two tracks on one component
        for c, ks in enumerate(owners):
            if not ks:
                if len(cells[c]) < seed_cells and centres:
                    ks = [min(centres, key=lambda k: float(np.linalg.norm(centres[k] - cc[c])))]
                else:
                    n += 1
                    ks = [n]
            if len(ks) == 1:
                labels[f][tuple(cells[c].T)] = ks[0]
                continue
            ref = np.array([centres[k] for k in ks])  # (j,2)
            pick = np.argmin(np.linalg.norm(cells[c][:, None] - ref[None], axis=-1), axis=1)  # (n_c,)
            for j, k in enumerate(ks):
                labels[f][tuple(cells[c][pick == j].T)] = k
        for k in np.unique(labels[f]).tolist():
            if k:
                centres[k] = np.argwhere(labels[f] == k).mean(0)
                last_seen[k] = f
    return labels, n


def component_groups(
    mask: np.ndarray, min_cells: int, max_overlap: int, max_dist: float = 4.0, seed_cells: int = 3
) -> list[np.ndarray]:
    """mask (t,h,w) bool, one slot's hard mask -> boolean masks (t,h,w) of the objects in it, largest first.

    Returns [] when the slot holds at most one object (nothing to split).
    """
    labels, n = frame_tracks(mask, max_dist, seed_cells)
    if n < 2:
        return []
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]  # (n,)
    groups: list[dict] = []  # {"frames": set, "centres": {frame: (2,)}, "mask": (t,h,w)}
    for c in np.argsort(-sizes, kind="stable"):
        if sizes[c] < min_cells:
            break
        part = labels == c + 1
        frames = np.nonzero(part.any(axis=(1, 2)))[0].tolist()
        centres = {f: np.argwhere(part[f]).mean(0) for f in frames}
        best, best_gap = None, None
        for g in groups:
            if len(g["frames"].intersection(frames)) > max_overlap:
                continue
            # distance to the group: frames apart (dominant) then cells apart, over the closest pair of frames
            gap = min(abs(f1 - f2) * 100.0 + float(np.linalg.norm(g["centres"][f1] - centres[f2]))
                      for f1 in g["frames"] for f2 in frames)
            if best_gap is None or gap < best_gap:
                best, best_gap = g, gap
        if best is None:
            groups.append({"frames": set(frames), "centres": centres, "mask": part})
        else:
            best["frames"].update(frames)
            best["centres"].update(centres)
            best["mask"] |= part
    return [g["mask"] for g in groups] if len(groups) > 1 else []


def split_slot_components(
    logits: torch.Tensor, query_embeds: torch.Tensor, *, min_cells: int, max_overlap: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B,t,h,w,K), query_embeds (B,K,D) -> (B,t,h,w,K+E), (B,K+E,D): each extra object of a slot gets
    its own column (see the module docstring). E is the most extra objects of any video in the batch; videos
    with fewer get empty columns (-inf everywhere, never assigned). Unchanged inputs are returned when E = 0."""
    B, t, h, w, K = logits.shape
    hard = logits.detach().argmax(dim=-1).cpu().numpy()  # (B,t,h,w)
    extra: list[list[tuple[int, np.ndarray]]] = []  # per video: (source slot, (t,h,w) mask)
    for b in range(B):
        cells = np.bincount(hard[b].ravel(), minlength=K)  # (K,)
        background = int(cells.argmax())
        found = []
        for k in range(K):
            if k == background or cells[k] < 2 * min_cells:
                continue
            found += [(k, m) for m in component_groups(hard[b] == k, min_cells, max_overlap)[1:]]
        extra.append(found)
    E = max(len(e) for e in extra)
    if E == 0:
        return logits, query_embeds
    neg = torch.finfo(logits.dtype).min / 4  # -inf stand-in that keeps softmax finite
    moved = logits.new_full((B, t, h, w, E), neg)  # (B,t,h,w,E)
    kept = logits.clone()
    queries = query_embeds.new_zeros(B, E, query_embeds.shape[-1])  # (B,E,D)
    for b, found in enumerate(extra):
        for j, (k, m) in enumerate(found):
            cells = torch.from_numpy(m).to(logits.device)  # (t,h,w) bool
            moved[b, ..., j] = torch.where(cells, logits[b, ..., k], neg)
            kept[b, ..., k] = torch.where(cells, neg, kept[b, ..., k])
            queries[b, j] = query_embeds[b, k]
    return torch.cat([kept, moved], dim=-1), torch.cat([query_embeds, queries], dim=1)
