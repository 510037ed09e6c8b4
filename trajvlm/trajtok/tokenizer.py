"""TrajTok: backbone grid features of a video -> a dynamic number of trajectory tokens.

features (B,T,h,w,C) --chunks of frames_per_chunk--> TrajSegmenter (one pass per chunk) -> logits (B,t,h,w,K)
  -> [split_components: one slot per separate object, K' >= K] -> per-frame slot summaries (linking.chunk_stats)
  -> TrackBank links slots to global trajectory ids
  -> after the last chunk: per-trajectory sequences (R,T,...) -> TrajEncoder -> (R,q,D+S)
  -> selection per video (min_area / max_trajectories / fixed_k) -> TrajTokOutput (ragged per video).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .components import split_slot_components
from .config import TrajTokConfig
from .encoder import TrajEncoder
from .linking import ChunkStats, TrackBank, assemble_tracks, chunk_stats
from .segmenter import TrajSegmenter
from .tracks import TrackSet

WEIGHTS_NAME = "trajtok.safetensors"


class TrajTokInputError(ValueError):
    """Bad input to TrajTok (shape, rank, dtype, inconsistent chunks)."""


@dataclass
class TrajTokOutput:
    tokens: list[torch.Tensor]  # per video (N_b,q,D+S) (S = config.shape_dim)
    trajectory_ids: list[torch.Tensor]  # per video (N_b,) long global trajectory id of each row
    boxes: list[torch.Tensor]  # per video (N_b,T,4) (x0,y0,x1,y1) in [0,1], zeros where absent
    presence: list[torch.Tensor]  # per video (N_b,T) bool
    hard_ids: torch.Tensor | None  # (B,T,h,w) long global trajectory id per cell (None if keep_maps=False)
    assignment_logits: torch.Tensor | None  # (B,T,h,w,K) per-chunk logits (slot order of each chunk)
    areas: list[torch.Tensor]  # per video (N_b,) float, hard-assigned cells over the whole video
    num_frames: int = 0

    @property
    def num_tokens(self) -> list[int]:
        return [int(t.shape[0] * t.shape[1]) for t in self.tokens]


class TrajTok(nn.Module):
    """Trajectory tokenizer. See module docstring; config: :class:`TrajTokConfig`."""

    def __init__(self, config: TrajTokConfig):
        super().__init__()
        if not isinstance(config, TrajTokConfig):
            raise TrajTokInputError(f"TrajTok expects a TrajTokConfig, got {type(config).__name__}")
        self.config = config
        self.segmenter = TrajSegmenter(config)
        self.encoder = TrajEncoder(config)

    # ------------------------------------------------------------------ validation
    def _check_features(self, features, what: str = "features") -> None:
        if not isinstance(features, torch.Tensor):
            raise TrajTokInputError(f"TrajTok: {what} must be a torch.Tensor (B,T,h,w,C), got {type(features).__name__}")
        if features.ndim != 5:
            raise TrajTokInputError(
                f"TrajTok: {what} must have rank 5 (B,T,h,w,C), got shape {tuple(features.shape)}"
            )
        if features.shape[-1] != self.config.feature_dim:
            raise TrajTokInputError(
                f"TrajTok: {what} last dim C={features.shape[-1]} != config.feature_dim={self.config.feature_dim} "
                f"(shape {tuple(features.shape)})"
            )
        if min(features.shape[:4]) < 1:
            raise TrajTokInputError(f"TrajTok: {what} has an empty dimension: shape {tuple(features.shape)}")
        if not features.is_floating_point():
            raise TrajTokInputError(f"TrajTok: {what} must be floating point, got {features.dtype}")

    # ------------------------------------------------------------------ public API
    def segment(self, features: torch.Tensor) -> torch.Tensor:
        """features (B,T,h,w,C), one chunk -> assignment logits (B,T,h,w,K) (one pass over all T frames)."""
        self._check_features(features)
        return self.segmenter(features).logits

    def forward(
        self, features: torch.Tensor, *, fixed_k: bool | None = None, max_trajectories: int | None = None
    ) -> TrajTokOutput:
        """features (B,T,h,w,C) -> TrajTokOutput. T > frames_per_chunk is split into linked chunks."""
        self._check_features(features)
        chunks = features.split(self.config.frames_per_chunk, dim=1)
        return self.tokenize_chunks(chunks, fixed_k=fixed_k, max_trajectories=max_trajectories)

    def tokenize_chunks(
        self,
        chunks: Iterable[torch.Tensor],
        *,
        fixed_k: bool | None = None,
        max_trajectories: int | None = None,
        keep_maps: bool = True,
    ) -> TrajTokOutput:
        """Streaming entry point: an iterable of (B,t,h,w,C) feature chunks (t may vary) -> TrajTokOutput.

        Only per-frame per-slot summaries are kept between chunks (memory O(T*K*C), not O(T*h*w*C)); with
        keep_maps=False the per-cell maps (hard_ids, assignment_logits) are not kept either (returned None).
        """
        self._selection(fixed_k, max_trajectories)  # bad arguments fail before any work
        return self.encode_tracks(
            self.track_chunks(chunks, keep_maps=keep_maps), fixed_k=fixed_k, max_trajectories=max_trajectories
        )

    def _selection(self, fixed_k: bool | None, max_trajectories: int | None) -> tuple[bool, int]:
        """-> (fixed_k, cap) with the config's defaults filled in; TrajTokInputError for bad values."""
        cfg = self.config
        fixed_k = cfg.fixed_k if fixed_k is None else fixed_k
        if not isinstance(fixed_k, bool):
            raise TrajTokInputError(f"TrajTok: fixed_k must be a bool, got {fixed_k!r}")
        cap = max_trajectories if max_trajectories is not None else cfg.max_trajectories
        if cap is None:
            cap = cfg.num_queries
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise TrajTokInputError(f"TrajTok: max_trajectories must be an int >= 1, got {cap!r}")
        return fixed_k, cap

    def track_chunks(self, chunks: Iterable[torch.Tensor], *, keep_maps: bool = True) -> TrackSet:
        """The segmentation half of TrajTok: feature chunks (B,t,h,w,C) -> linked trajectories (TrackSet).

        Segmenter pass per chunk, per-frame slot summaries, cross-chunk linking. Nothing here depends on the
        trajectory encoder, so when the segmenter (and the vision tower) are frozen the result for a video is a
        fixed function of its frames and can be cached (``TrajVLMForConditionalGeneration.enable_track_cache``).
        """
        cfg = self.config
        banks: list[TrackBank] | None = None
        stats: list[ChunkStats] = []
        logits_maps, id_maps = [], []
        shape0 = None
        for i, chunk in enumerate(chunks):
            self._check_features(chunk, what=f"chunk {i}")
            B, t, h, w, C = chunk.shape
            if shape0 is None:
                shape0 = (B, h, w)
                banks = [
                    TrackBank(cfg.link_threshold, cfg.effective_track_memory) for _ in range(B)
                ]
            elif (B, h, w) != shape0:
                raise TrajTokInputError(
                    f"TrajTok: chunk {i} has (B,h,w)={(B, h, w)}, but earlier chunks have {shape0}"
                )
            for sub in chunk.split(cfg.frames_per_chunk, dim=1):
                seg = self.segmenter(sub)
                logits, queries = seg.logits, seg.query_embeds  # (B,t,h,w,K), (B,K,D)
                if cfg.split_components:  # -> K' >= K slots: one per separate object
                    logits, queries = split_slot_components(
                        logits, queries, min_cells=cfg.component_min_cells, max_overlap=cfg.component_max_overlap,
                        min_piece=cfg.component_min_piece)
                st = chunk_stats(sub, logits, queries, roi_size=cfg.roi_size, roi_isolated=cfg.roi_isolated)
                maps = [bank.link(st, b) for b, bank in enumerate(banks)]  # per video (K',) slot -> track id
                if keep_maps:
                    logits_maps.append(seg.logits)
                    lut = torch.stack(maps).to(st.hard_slots.device)  # (B,K')
                    id_maps.append(torch.gather(lut, 1, st.hard_slots.flatten(1)).view_as(st.hard_slots))
                st.hard_slots = None  # never keep per-cell maps inside the summaries
                stats.append(st)
        if shape0 is None:
            raise TrajTokInputError("TrajTok.tokenize_chunks: got no chunks")
        _, h, w = shape0
        ids, pooled, mass, area, boxes, counts, roi = assemble_tracks(banks, stats)
        return TrackSet(
            ids=ids, pooled=pooled, mass=mass, area=area, boxes=boxes, counts=counts, grid=(h, w), roi=roi,
            hard_ids=torch.cat(id_maps, dim=1) if keep_maps else None,
            assignment_logits=torch.cat(logits_maps, dim=1) if keep_maps else None,
        )

    def encode_tracks(
        self, tracks: TrackSet, *, fixed_k: bool | None = None, max_trajectories: int | None = None
    ) -> TrajTokOutput:
        """The encoding half of TrajTok: TrackSet -> trajectory tokens + selection per video (TrajTokOutput)."""
        fixed_k, cap = self._selection(fixed_k, max_trajectories)
        ids, area, boxes, counts = tracks.ids, tracks.area, tracks.boxes, tracks.counts
        T = tracks.pooled.shape[1]
        h, w = tracks.grid
        tokens = self.encoder(tracks.pooled, tracks.mass, area, boxes, grid_cells=h * w, roi=tracks.roi)  # (R,q,D+S)

        out_tokens, out_ids, out_boxes, out_presence, out_areas = [], [], [], [], []
        start = 0
        for b, n in enumerate(counts):
            rows = torch.arange(start, start + n, device=tokens.device)
            start += n
            a = area[rows].detach().sum(1)  # (n,)
            keep = self._select(ids[b], a, area[rows].detach() > 0, fixed_k=fixed_k, cap=cap)  # local row indices
            keep = keep.to(tokens.device)
            sel = rows[keep]
            out_tokens.append(tokens[sel])
            out_ids.append(ids[b][keep.cpu()])
            out_boxes.append(boxes[sel].detach())
            out_presence.append(area[sel].detach() > 0)
            out_areas.append(a[keep])
        return TrajTokOutput(
            tokens=out_tokens,
            trajectory_ids=out_ids,
            boxes=out_boxes,
            presence=out_presence,
            hard_ids=tracks.hard_ids,
            assignment_logits=tracks.assignment_logits,
            areas=out_areas,
            num_frames=T,
        )

    def _select(
        self, ids: torch.Tensor, area: torch.Tensor, present: torch.Tensor, *, fixed_k: bool, cap: int
    ) -> torch.Tensor:
        """ids (n,), area (n,), present (n,T) -> kept row indices, ordered by first appearance then id."""
        n, T = present.shape
        order = sorted(range(n), key=lambda i: (-float(area[i]), int(ids[i])))  # largest first
        if fixed_k:
            kept = order[: self.config.num_queries]
        else:
            kept = [i for i in order if float(area[i]) > self.config.min_area][:cap]
        first = torch.where(present, torch.arange(T, device=present.device), T).amin(1)
        kept.sort(key=lambda i: (int(first[i]), int(ids[i])))
        return torch.tensor(kept, dtype=torch.long)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write config.json + trajtok.safetensors into save_directory."""
        os.makedirs(save_directory, exist_ok=True)
        self.config.save_pretrained(save_directory)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, os.path.join(save_directory, WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **config_overrides) -> "TrajTok":
        """Load what save_pretrained wrote (safetensors only). config_overrides replace config fields."""
        cfg_path = os.path.join(directory, "config.json")
        w_path = os.path.join(directory, WEIGHTS_NAME)
        if not os.path.isfile(cfg_path) or not os.path.isfile(w_path):
            raise FileNotFoundError(f"TrajTok.from_pretrained: {directory} lacks config.json or {WEIGHTS_NAME}")
        with open(cfg_path) as f:
            cfg_dict = json.load(f)
        cfg_dict.update(config_overrides)
        model = cls(TrajTokConfig(**cfg_dict))
        model.load_state_dict(load_file(w_path))
        return model
