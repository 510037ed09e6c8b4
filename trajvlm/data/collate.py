"""Batching: pad the token sequences, gather the ragged videos and masks, account for skipped samples.

`VideoTextCollator(features)` takes what `LazyVideoTextDataset.__getitem__` returns -- sample dicts and
`SkippedSample` markers -- and builds

    input_ids       (B,L) long, padded with the tokenizer's pad id on its padding side
    labels          (B,L) long, padded with IGNORE_INDEX
    attention_mask  (B,L) long, 0 on padding
    pixel_values_videos  (V,T,3,S,S) when every video of the batch has the same shape, else a list of V
                    (T_v,3,S,S) tensors; None when the batch holds no video. V counts the videos of all samples
                    in batch order, one per `<video>` placeholder (text-only samples contribute none).
    video_masks / video_graphs  (only when some video has sidecars) lists of V entries, (T,H,W) / (N,T) long or None
    option_ids      (B,L,K) long (only when some sample has option targets), IGNORE_INDEX where none; for the
                    trainer's option loss, not a model input (a META_KEY)
    + bookkeeping (META_KEYS, not model inputs; pop them with `pop_batch_meta` before `model(**batch)`):
    num_samples (int, kept), num_skipped (int), skipped (list of {index,id,path,reason,source}),
    sample_ids (list of B str), video_sample_index ((V,) long: the batch row of each video)

When every sample of a batch was skipped, the token tensors have shape (0,0) and the trainer must not step on it.
`BadSampleTracker.update(batch)` accumulates the counts (they travel inside the batches, so DataLoader
workers need no shared state) and raises `TooManyBadSamplesError` past `max_bad_sample_ratio`.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from trajvlm.data.dataset import SkippedSample

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
META_KEYS = ("num_samples", "num_skipped", "skipped", "sample_ids", "video_sample_index", "option_ids")


def _pad(seqs: list[torch.Tensor], value: int, side: str) -> torch.Tensor:
    """list of (L_i,) -> (B, max L_i) padded with `value` on `side`."""
    length = max((s.shape[0] for s in seqs), default=0)
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if side == "left":
            out[i, length - s.shape[0] :] = s
        else:
            out[i, : s.shape[0]] = s
    return out


def _stack_or_list(tensors: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    if tensors and all(t.shape == tensors[0].shape for t in tensors):
        return torch.stack(tensors)
    return list(tensors)


@dataclass
class VideoTextCollator:
    """Collate `LazyVideoTextDataset` items (see the module docstring for the batch layout).

    Build it from the tokenizer (`VideoTextCollator.from_tokenizer(tok)`) so the pad id and padding side
    follow it (Llama tokenizers pad left in transformers 5).
    """

    pad_token_id: int
    padding_side: str = "right"
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self):
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")
        if self.pad_token_id is None:
            raise ValueError("pad_token_id is None: give the tokenizer a pad token (e.g. tokenizer.pad_token = eos)")

    @classmethod
    def from_tokenizer(cls, tokenizer, *, ignore_index: int = IGNORE_INDEX) -> VideoTextCollator:
        pad = tokenizer.pad_token_id
        if pad is None:
            raise ValueError(f"{type(tokenizer).__name__} has no pad token; set tokenizer.pad_token before collating")
        return cls(pad_token_id=int(pad), padding_side=tokenizer.padding_side, ignore_index=ignore_index)

    def __call__(self, features: list[dict | SkippedSample]) -> dict[str, Any]:
        skipped = [f for f in features if isinstance(f, SkippedSample)]
        kept = [f for f in features if not isinstance(f, SkippedSample)]
        batch: dict[str, Any] = {
            "input_ids": _pad([f["input_ids"] for f in kept], self.pad_token_id, self.padding_side),  # (B,L)
            "labels": _pad([f["labels"] for f in kept], self.ignore_index, self.padding_side),  # (B,L)
            "attention_mask": _pad([f["attention_mask"] for f in kept], 0, self.padding_side),  # (B,L)
        }
        videos, masks, graphs, rows = [], [], [], []
        for row, f in enumerate(kept):
            pv = f.get("pixel_values_videos") or []
            n = len(pv)
            videos.extend(pv)  # (T,3,S,S) each
            masks.extend(f.get("video_masks") or [None] * n)
            graphs.extend(f.get("video_graphs") or [None] * n)
            rows.extend([row] * n)
        batch["pixel_values_videos"] = _stack_or_list(videos) if videos else None
        options = [f.get("option_ids") for f in kept]
        if any(o is not None for o in options):
            batch["option_ids"] = self._pad_options(options, [f["input_ids"].shape[0] for f in kept])  # (B,L,K)
        if any(m is not None for m in masks):
            batch["video_masks"] = masks  # V x (T,H,W) long | None
            batch["video_graphs"] = graphs  # V x (N,T) long | None
        batch["num_samples"] = len(kept)
        batch["num_skipped"] = len(skipped)
        batch["skipped"] = [s.as_dict() for s in skipped]
        batch["sample_ids"] = [f.get("sample_id") for f in kept]
        batch["video_sample_index"] = torch.tensor(rows, dtype=torch.long)  # (V,)
        return batch


    def _pad_options(self, options: list[torch.Tensor | None], lengths: list[int]) -> torch.Tensor:
        """B x ((L_i,K_i) | None) -> (B, max L_i, max K_i), padded like the labels."""
        length, k = max(lengths), max(o.shape[1] for o in options if o is not None)
        out = torch.full((len(options), length, k), self.ignore_index, dtype=torch.long)
        for i, (o, n) in enumerate(zip(options, lengths)):
            if o is None:
                continue
            rows = slice(length - n, length) if self.padding_side == "left" else slice(0, n)
            out[i, rows, : o.shape[1]] = o
        return out


def pop_batch_meta(batch: dict[str, Any]) -> dict[str, Any]:
    """Remove the bookkeeping keys (META_KEYS) from `batch` in place and return them."""
    return {k: batch.pop(k) for k in META_KEYS if k in batch}


class TooManyBadSamplesError(RuntimeError):
    """Too large a fraction of the samples read so far could not be read."""


@dataclass
class BadSampleTracker:
    """Counts samples seen / skipped across batches and stops the run past a bad-sample ratio.

    `update(batch_or_meta)` reads `num_samples`, `num_skipped` and `skipped` (from the collator's batch or
    from `pop_batch_meta`). After at least `min_samples` samples, a ratio `bad / seen` above
    `max_bad_sample_ratio` raises `TooManyBadSamplesError` listing the latest bad samples. In distributed
    training each rank tracks its own share. `state_dict()`/`load_state_dict()` carry the counts across resumes.
    """

    max_bad_sample_ratio: float = 0.01
    min_samples: int = 100
    keep_last: int = 10
    seen: int = 0
    bad: int = 0
    recent: deque = field(default_factory=deque, repr=False)

    def __post_init__(self):
        if not 0.0 <= self.max_bad_sample_ratio <= 1.0:
            raise ValueError(f"max_bad_sample_ratio must be in [0, 1], got {self.max_bad_sample_ratio!r}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {self.min_samples!r}")
        self.recent = deque(self.recent, maxlen=self.keep_last)

    @property
    def ratio(self) -> float:
        return self.bad / self.seen if self.seen else 0.0

    def update(self, batch: dict[str, Any]) -> None:
        if "num_samples" not in batch or "num_skipped" not in batch:
            raise KeyError("BadSampleTracker.update needs the collator's 'num_samples' and 'num_skipped' keys")
        kept, skipped = int(batch["num_samples"]), int(batch["num_skipped"])
        self.seen += kept + skipped
        self.bad += skipped
        for s in batch.get("skipped") or []:
            self.recent.append(s)
        self.check()

    def check(self) -> None:
        if self.seen >= self.min_samples and self.ratio > self.max_bad_sample_ratio:
            examples = "; ".join(f"{s.get('id')!r} ({s.get('path')}): {s.get('reason')}" for s in self.recent)
            raise TooManyBadSamplesError(
                f"{self.bad} of {self.seen} samples ({self.ratio:.1%}) could not be read, above max_bad_sample_ratio="
                f"{self.max_bad_sample_ratio:g}. Latest: {examples or 'n/a'}"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "bad": self.bad, "recent": list(self.recent)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen, self.bad = int(state["seen"]), int(state["bad"])
        self.recent = deque(state.get("recent", []), maxlen=self.keep_last)
