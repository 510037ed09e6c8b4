"""Split segmenter slots that hold several separate objects into one slot per object (space-time components).

A slot of the segmenter sometimes takes two objects that look alike (same colour) at once: its hard mask is then
two separate blobs in the same frames. This step, between the segmenter's logits and the per-slot summaries
(``linking.chunk_stats``), gives each such blob its own slot:

1. per video and slot (the chunk's largest slot, the background, is left alone), label the space-time connected
   components of the slot's hard mask (26-connectivity over (t,h,w), so an object moving by a cell per frame
   stays one component);
2. drop components smaller than ``min_cells`` from consideration (they stay with the slot: noise, edges);
3. group the rest, largest first: a component joins an earlier group it shares at most ``max_overlap`` frames
   with (an object that was hidden for a while and came back; the nearest group in time and space wins),
   otherwise it starts a new group -- two components present in the same frames are two objects;
4. every group after the first becomes a new slot: its cells move to a new logit column (the slot's logits
   there, -inf elsewhere), the old slot gets -inf there, and the new slot copies the old slot's query embedding.

The soft mask of every cell is unchanged (the moved logit keeps its value and the slot it left is -inf only on
the moved cells), so pooling inside a group's cells gives exactly what pooling inside the slot gave there.
With ``min_piece`` (``TrajTokConfig.component_min_piece``) a component whose frames show separate pieces is first
cut into one blob per object by following the pieces frame to frame (``touching.separate_touching``), so objects
that touch in a few frames are separated too; off by default (see that module for what it costs).
Runs on the hard masks with scipy (no gradient through the grouping; the logits stay differentiable).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from .touching import separate_touching

_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity over (t,h,w)


def component_groups(mask: np.ndarray, min_cells: int, max_overlap: int,
                     min_piece: int | None = None) -> list[np.ndarray]:
    """mask (t,h,w) bool, one slot's hard mask -> boolean masks (t,h,w) of the objects in it, largest first.

    min_piece: when set, a connected component whose frames show separate pieces of >= min_piece cells is first cut
    into one blob per object (``touching.separate_touching``: look-alike objects that touch in some frames).
    Returns [] when the slot holds at most one object (nothing to split).
    """
    labels, n = ndimage.label(mask, structure=_CONNECTIVITY)
    if n == 0 or (n < 2 and min_piece is None):
        return []
    blobs = []  # (t,h,w) bool per object candidate
    for c in range(n):
        comp = labels == c + 1
        if min_piece is not None and comp.sum() >= 2 * min_cells:
            blobs += separate_touching(comp, min_piece=min_piece)
        else:
            blobs.append(comp)
    if len(blobs) < 2:
        return []
    sizes = np.array([b.sum() for b in blobs])  # (len(blobs),)
    groups: list[dict] = []  # {"frames": set, "centres": {frame: (2,)}, "mask": (t,h,w)}
    for c in np.argsort(-sizes, kind="stable"):
        if sizes[c] < min_cells:
            break
        comp = blobs[c]
        frames = np.nonzero(comp.any(axis=(1, 2)))[0].tolist()
        centres = {f: np.argwhere(comp[f]).mean(0) for f in frames}
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
            groups.append({"frames": set(frames), "centres": centres, "mask": comp})
        else:
            best["frames"].update(frames)
            best["centres"].update(centres)
            best["mask"] |= comp
    return [g["mask"] for g in groups] if len(groups) > 1 else []


def split_slot_components(
    logits: torch.Tensor, query_embeds: torch.Tensor, *, min_cells: int, max_overlap: int,
    min_piece: int | None = None,
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
            found += [(k, m) for m in component_groups(hard[b] == k, min_cells, max_overlap, min_piece)[1:]]
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
