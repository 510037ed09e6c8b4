"""TrackCache: per-video TrackSets keyed by the video's pixels, for training with a frozen vision tower + segmenter.

With both frozen (and no augmentation), TrajTok's segmentation half is a fixed function of the frames, so every
epoch after the first recomputes the same tracks. The cache keeps them (detached, without per-cell maps; about
R*T*(C+6) floats per video) and evicts the least recently used video past ``max_videos``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch

from .tracks import TrackSet


def pixel_key(frames: torch.Tensor) -> str:
    """frames (T,3,S,S) -> a digest of shape, dtype and bytes (identical pixels <=> identical key)."""
    x = frames.detach().contiguous().cpu()
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{tuple(x.shape)}|{x.dtype}".encode())
    h.update(x.view(torch.uint8).numpy().tobytes() if x.dtype != torch.uint8 else x.numpy().tobytes())
    return h.hexdigest()


class TrackCache:
    def __init__(self, max_videos: int = 20000):
        if isinstance(max_videos, bool) or not isinstance(max_videos, int) or max_videos < 1:
            raise ValueError(f"TrackCache: max_videos must be an int >= 1, got {max_videos!r}")
        self.max_videos = max_videos
        self._items: OrderedDict[str, TrackSet] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> TrackSet | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item

    def put(self, key: str, tracks: TrackSet) -> TrackSet:
        """Store a detached copy of one video's tracks; returns the stored copy."""
        if tracks.num_videos != 1:
            raise ValueError(f"TrackCache.put expects the TrackSet of one video, got {tracks.num_videos}")
        stored = self._items[key] = tracks.detached()
        self._items.move_to_end(key)
        while len(self._items) > self.max_videos:
            self._items.popitem(last=False)
        return stored
