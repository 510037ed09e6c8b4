"""Separate look-alike objects that touch: one space-time blob -> one blob per object, by tracking its per-frame pieces.

Two objects of the same colour that pass close to each other fall into one segmenter slot and, because their
masks touch in some frame, into one space-time connected component, so ``components.component_groups`` cannot
split them. Inside such a component the objects are still separate in most frames. This step follows them:

1. per frame, label the component's 2D pieces (8-connectivity); pieces of at least ``min_piece`` cells count;
2. if at least ``min_frames`` frames hold two or more counted pieces, the component holds K objects
   (K = the most counted pieces in a frame); otherwise it is returned whole;
3. seed K tracks with the pieces of a frame that holds K of them (in the longest run of such frames, the one whose
   smallest piece is largest), follow them through that run, then walk forward and backward from it frame by
   frame: each track predicts its centre with a constant-velocity fit of its last ``history`` observations on that
   side (frames where it had a piece of its own preferred); a piece that holds the predicted centres of two or
   more tracks and is larger than the largest of their areas is cut between them (each cell to the track whose
   last own mask, moved to its predicted centre, covers it, else to the nearest predicted centre); the other
   pieces are matched one-to-one to the remaining tracks by centre distance (Hungarian), and a piece left over
   joins its nearest track;
4. each track's cells form one blob (tracks that got no cells are dropped).

Constant velocity is the usual short-horizon motion model of a tracker (SORT's Kalman filter uses it); a chunk is
16 frames here. Pure numpy / scipy on hard masks, no gradient.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity in a frame


def _pieces(frame: np.ndarray) -> list[np.ndarray]:
    """frame (h,w) bool -> the (n,2) cell coordinates of each 8-connected piece."""
    labels, n = ndimage.label(frame, structure=_EIGHT)
    return [np.argwhere(labels == i + 1) for i in range(n)]


class _Track:
    def __init__(self):
        self.obs: dict[int, tuple[np.ndarray, int]] = {}  # frame -> (centre (2,), area) of its cells there
        self.clean: dict[int, np.ndarray] = {}  # frame -> (n,2) cells, frames where it had a piece of its own

    def add(self, f: int, cells: np.ndarray, clean: bool) -> None:
        if f in self.obs:  # a second piece in the same frame (a leftover): merge the centres by area
            c, a = self.obs[f]
            n = len(cells)
            self.obs[f] = ((c * a + cells.mean(0) * n) / (a + n), a + n)
        else:
            self.obs[f] = (cells.mean(0), len(cells))
        if clean:
            self.clean[f] = cells if f not in self.clean else np.concatenate([self.clean[f], cells])

    def predict(self, f: int, forward: bool, history: int) -> np.ndarray | None:
        """Centre at frame f: a constant-velocity fit of the last `history` observations before f (forward) or
        after f (backward), frames where the track had a piece of its own preferred (cut pieces bias centres)."""
        for frames in (self.clean, self.obs):
            seen = sorted(g for g in frames if (g < f if forward else g > f))
            if seen:
                break
        else:
            return None
        seen = seen[-history:] if forward else seen[:history]
        cs = np.stack([self.obs[g][0] for g in seen])  # (n,2)
        if len(seen) == 1:
            return cs[0]
        ts = np.asarray(seen, dtype=float)
        slope = ((ts - ts.mean())[:, None] * (cs - cs.mean(0))).sum(0) / ((ts - ts.mean()) ** 2).sum()  # (2,)
        return cs.mean(0) + slope * (f - ts.mean())

    def template(self, f: int, centre: np.ndarray, forward: bool) -> np.ndarray | None:
        """The cells of its nearest clean frame on the walking side, moved to `centre` -> (n,2) int."""
        seen = [g for g in self.clean if (g < f if forward else g > f)]
        if not seen:
            return None
        g = max(seen) if forward else min(seen)
        cells = self.clean[g]
        return np.rint(cells + (centre - cells.mean(0))).astype(np.int64)

    def area(self) -> int:
        return max(a for _, a in self.obs.values())


def _counts(piece: np.ndarray, frame_pieces: list[np.ndarray], min_piece: int, min_ratio: float) -> bool:
    """Is this piece an object of its own (not a speck or an edge fragment)?"""
    return len(piece) >= max(min_piece, min_ratio * max(len(p) for p in frame_pieces))


def separate_touching(component: np.ndarray, *, min_piece: int, min_ratio: float = 0.25, min_frames: int = 2,
                      history: int = 3) -> list[np.ndarray]:
    """component (t,h,w) bool, one space-time connected blob -> [(t,h,w) bool] one blob per object it holds.

    Returns ``[component]`` when it never shows two separate pieces of >= min_piece cells in >= min_frames frames.
    The returned blobs partition the component's cells.
    """
    t = component.shape[0]
    pieces = [_pieces(component[f]) for f in range(t)]  # per frame: list of (n,2)
    own = [[_counts(p, ps, min_piece, min_ratio) for p in ps] for ps in pieces]  # per frame: is piece an object
    counted = [sum(o) for o in own]
    if sum(c >= 2 for c in counted) < min_frames:
        return [component]
    K = max(counted)
    # the longest run of consecutive frames showing K separate pieces; seed at its frame with the largest smallest piece
    runs, lo = [], None
    for f in range(t + 1):
        if f < t and counted[f] == K:
            lo = f if lo is None else lo
        elif lo is not None:
            runs.append((lo, f - 1))
            lo = None
    smallest = {f: min(len(p) for p, o in zip(pieces[f], own[f]) if o) for f in range(t) if counted[f] == K}
    lo, hi = max(runs, key=lambda r: (r[1] - r[0], max(smallest[f] for f in range(r[0], r[1] + 1))))
    f0 = max(range(lo, hi + 1), key=lambda f: smallest[f])
    tracks = [_Track() for _ in range(K)]
    labels = np.full(component.shape, -1, dtype=np.int64)  # (t,h,w) track of each cell, -1 = not in the blob
    big = [p for p, o in zip(pieces[f0], own[f0]) if o]
    small = [p for p, o in zip(pieces[f0], own[f0]) if not o]
    for k, p in enumerate(big):
        tracks[k].add(f0, p, clean=True)
        labels[f0, p[:, 0], p[:, 1]] = k
    for p in small:  # specks of the seed frame join the nearest seed piece
        k = int(np.argmin([np.linalg.norm(tr.obs[f0][0] - p.mean(0)) for tr in tracks]))
        labels[f0, p[:, 0], p[:, 1]] = k
    # the run first (separate pieces: the tracks learn their velocities), then outwards into the merged frames
    walk = ((range(f0 + 1, hi + 1), True), (range(f0 - 1, lo - 1, -1), False), (range(hi + 1, t), True),
            (range(lo - 1, -1, -1), False))
    for order, forward in walk:
        for f in order:
            if pieces[f]:
                _assign_frame(f, pieces[f], tracks, labels, forward, history)
    blobs = [labels == k for k in range(K)]
    return [b for b in blobs if b.any()]


def _assign_frame(f: int, pieces: list[np.ndarray], tracks: list[_Track], labels: np.ndarray, forward: bool,
                  history: int) -> None:
    """Give every cell of frame f's pieces a track (see the module docstring, step 3); updates tracks and labels."""
    preds = [tr.predict(f, forward, history) for tr in tracks]  # never None: every track was seeded at f0
    live = list(range(len(tracks)))
    free_tracks = set(live)
    free_pieces = []
    for p in pieces:
        # tracks whose predicted centre falls on (or next to) this piece
        inside = [k for k in live if np.min(np.abs(p - preds[k]).max(1)) <= 1.0]
        if len(inside) >= 2 and len(p) > max(tracks[k].area() for k in inside):
            # each cell to the track whose moved template covers it, else to the nearest predicted centre
            d = np.stack([np.linalg.norm(p - preds[k], axis=1) for k in inside])  # (m,n)
            for i, k in enumerate(inside):
                tpl = tracks[k].template(f, preds[k], forward)
                if tpl is not None:
                    covered = (p[:, None, :] == tpl[None, :, :]).all(-1).any(1)  # (n,)
                    d[i, covered] -= 1000.0
            owner = np.asarray(inside)[d.argmin(0)]  # (n,)
            for k in inside:
                cells = p[owner == k]
                if len(cells):
                    tracks[k].add(f, cells, clean=False)
                    labels[f, cells[:, 0], cells[:, 1]] = k
            free_tracks -= set(inside)
        else:
            free_pieces.append(p)
    rest = sorted(free_tracks) or live  # all tracks cut a piece between them: leftovers go to the nearest of all
    cost = np.array([[np.linalg.norm(p.mean(0) - preds[k]) for k in rest] for p in free_pieces]).reshape(
        len(free_pieces), len(rest))  # (pieces, tracks)
    rows, cols = linear_sum_assignment(cost)
    matched = {int(r): rest[int(c)] for r, c in zip(rows, cols)}
    for i, p in enumerate(free_pieces):
        k = matched.get(i)
        if k is None:  # a leftover piece joins its nearest track
            k = rest[int(np.argmin(cost[i]))]
        tracks[k].add(f, p, clean=k == matched.get(i))
        labels[f, p[:, 0], p[:, 1]] = k
