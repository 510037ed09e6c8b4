"""TrackSet: linked trajectories of a batch of videos, between TrajTok's segmentation half and its encoder.

Rows are the trajectories of all videos concatenated (video b owns `counts[b]` consecutive rows). A TrackSet
splits into one per video and concatenates back, so per-video results can be cached and re-batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TrackSet:
    ids: list[torch.Tensor]  # per video (N_b,) long global trajectory ids
    pooled: torch.Tensor  # (R,T,C) mask-pooled backbone features per frame, R = sum N_b
    mass: torch.Tensor  # (R,T) soft*hard mask mass
    area: torch.Tensor  # (R,T) hard-assigned cells
    boxes: torch.Tensor  # (R,T,4) (x0,y0,x1,y1) in [0,1], zeros where absent
    counts: list[int]  # [N_b]
    grid: tuple[int, int]  # (h,w) feature grid
    roi: torch.Tensor | None = None  # (R,P*P,C) box-aligned features averaged over the track's frames (shape)
    hard_ids: torch.Tensor | None = None  # (B,T,h,w) long, None when maps were not kept
    assignment_logits: torch.Tensor | None = None  # (B,T,h,w,K)

    @property
    def num_videos(self) -> int:
        return len(self.counts)

    def split(self) -> list[TrackSet]:
        """One TrackSet per video (tensors are views; per-cell maps sliced along the batch)."""
        out, start = [], 0
        for b, n in enumerate(self.counts):
            rows = slice(start, start + n)
            start += n
            out.append(
                TrackSet(
                    ids=[self.ids[b]],
                    pooled=self.pooled[rows],
                    mass=self.mass[rows],
                    area=self.area[rows],
                    boxes=self.boxes[rows],
                    counts=[n],
                    grid=self.grid,
                    roi=None if self.roi is None else self.roi[rows],
                    hard_ids=None if self.hard_ids is None else self.hard_ids[b : b + 1],
                    assignment_logits=None if self.assignment_logits is None else self.assignment_logits[b : b + 1],
                )
            )
        return out

    def detached(self) -> TrackSet:
        """A copy without autograd history and without per-cell maps (what a cache keeps)."""
        return TrackSet(
            ids=[i.clone() for i in self.ids],
            pooled=self.pooled.detach().clone(),
            mass=self.mass.detach().clone(),
            area=self.area.detach().clone(),
            boxes=self.boxes.detach().clone(),
            counts=list(self.counts),
            grid=self.grid,
            roi=None if self.roi is None else self.roi.detach().clone(),
        )

    def to_dtype(self, dtype: torch.dtype) -> TrackSet:
        """The same tracks with every floating tensor in ``dtype`` (ids stay long); self if already so."""
        if self.pooled.dtype == dtype:
            return self

        def cast(t):
            return t.to(dtype) if t is not None and t.is_floating_point() else t

        return TrackSet(ids=self.ids, pooled=cast(self.pooled), mass=cast(self.mass), area=cast(self.area),
                        boxes=cast(self.boxes), counts=self.counts, grid=self.grid, roi=cast(self.roi),
                        hard_ids=self.hard_ids, assignment_logits=cast(self.assignment_logits))

    @staticmethod
    def cat(sets: list[TrackSet]) -> TrackSet:
        """Concatenate TrackSets of videos with the same number of frames and grid (maps kept only if all have them)."""
        if not sets:
            raise ValueError("TrackSet.cat got no track sets")
        frames = {s.pooled.shape[1] for s in sets}
        grids = {s.grid for s in sets}
        if len(frames) != 1 or len(grids) != 1:
            raise ValueError(f"TrackSet.cat: videos differ in frames {sorted(frames)} or grid {sorted(grids)}")
        maps = all(s.hard_ids is not None for s in sets)
        rois = {s.roi is None for s in sets}
        if len(rois) != 1:
            raise ValueError("TrackSet.cat: some track sets carry roi features and some do not")
        return TrackSet(
            ids=[i for s in sets for i in s.ids],
            pooled=torch.cat([s.pooled for s in sets]),
            mass=torch.cat([s.mass for s in sets]),
            area=torch.cat([s.area for s in sets]),
            boxes=torch.cat([s.boxes for s in sets]),
            counts=[n for s in sets for n in s.counts],
            grid=sets[0].grid,
            roi=None if sets[0].roi is None else torch.cat([s.roi for s in sets]),
            hard_ids=torch.cat([s.hard_ids for s in sets]) if maps else None,
            assignment_logits=torch.cat([s.assignment_logits for s in sets]) if maps else None,
        )
