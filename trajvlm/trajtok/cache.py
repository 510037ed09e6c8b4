"""TrackCache: per-video TrackSets keyed by the video's pixels, for training with a frozen vision tower + segmenter.

With both frozen (and no augmentation), TrajTok's segmentation half is a fixed function of the frames, so every
epoch after the first recomputes the same tracks. The cache keeps them (detached, without per-cell maps; about
R*T*(C+6) floats per video) and evicts the least recently used video past ``max_videos``.

With a ``directory`` the cache also persists: every stored video is written to ``<directory>/<key>.safetensors``
and a miss in memory is looked up there first, so a second run (stage 2 after stage 1, a rebuild, a twin
experiment) skips the tower and segmenter from its first step. The caller owns the directory's validity: the
model puts the cache in a subfolder named by a fingerprint of the frozen weights and the TrajTok config
(``TrajVLMForConditionalGeneration.enable_track_cache``), so a changed segmenter never reads stale tracks.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .tracks import TrackSet

# Version of the code that turns frames into tracks (segmenter pass, split_components, linking). It is part of
# the persistent cache's folder name, so bump it whenever that code gives different tracks for the same weights
# and config: cached tracks of the old code are then never read. 2: split_components followed blobs frame by
# frame (never released); 3: split_components by space-time components; 4: component_min_piece (touching
# look-alike objects followed frame to frame, trajtok.touching).
TRACKS_VERSION = "4"


def _update(h, name: str, t: torch.Tensor) -> None:
    x = t.detach().contiguous().cpu()
    h.update(f"{name}|{tuple(x.shape)}|{x.dtype}".encode())
    h.update(x.numpy().tobytes() if x.dtype == torch.uint8 else x.view(torch.uint8).numpy().tobytes())


def pixel_key(frames: torch.Tensor) -> str:
    """frames (T,3,S,S) -> a digest of shape, dtype and bytes (identical pixels <=> identical key)."""
    h = hashlib.blake2b(digest_size=20)
    _update(h, "", frames)
    return h.hexdigest()


def state_fingerprint(*parts) -> str:
    """A digest of state dicts (names, shapes, dtypes, bytes) and strings: identical inputs <=> identical digest."""
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        if isinstance(part, str):
            h.update(part.encode())
            continue
        for name, t in sorted(part.items()):
            _update(h, name, t)
    return h.hexdigest()


def _to_file(tracks: TrackSet, path: str) -> None:
    """Write one video's (detached) TrackSet as safetensors, atomically (tmp file + rename)."""
    tensors = {"ids": tracks.ids[0], "pooled": tracks.pooled, "mass": tracks.mass, "area": tracks.area,
               "boxes": tracks.boxes}
    if tracks.roi is not None:
        tensors["roi"] = tracks.roi
    meta = {"format": "trajvlm-trackset-v1", "grid": f"{tracks.grid[0]},{tracks.grid[1]}"}
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _from_file(path: str) -> TrackSet:
    with safe_open(path, framework="pt") as f:  # one open: header check, then the tensors
        meta = f.metadata() or {}
        if meta.get("format") != "trajvlm-trackset-v1":
            raise ValueError(f"TrackCache: {path} is not a cached track file (format {meta.get('format')!r})")
        t = {k: f.get_tensor(k) for k in f.keys()}
    missing = {"ids", "pooled", "mass", "area", "boxes"} - set(t)
    if missing:
        raise ValueError(f"TrackCache: {path} lacks tensors {sorted(missing)}")
    h, w = (int(v) for v in meta["grid"].split(","))
    return TrackSet(ids=[t["ids"]], pooled=t["pooled"], mass=t["mass"], area=t["area"], boxes=t["boxes"],
                    counts=[int(t["ids"].shape[0])], grid=(h, w), roi=t.get("roi"))


class TrackCache:
    def __init__(self, max_videos: int = 20000, directory: str | None = None):
        if isinstance(max_videos, bool) or not isinstance(max_videos, int) or max_videos < 1:
            raise ValueError(f"TrackCache: max_videos must be an int >= 1, got {max_videos!r}")
        self.max_videos = max_videos
        self.directory = directory
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
        self._items: OrderedDict[str, TrackSet] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.safetensors")

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> TrackSet | None:
        item = self._items.get(key)
        if item is None and self.directory is not None and os.path.exists(self._path(key)):
            item = self._remember(key, _from_file(self._path(key)))
            self.disk_hits += 1
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
        stored = self._remember(key, tracks.detached())
        if self.directory is not None:
            _to_file(stored, self._path(key))
        return stored

    def _remember(self, key: str, tracks: TrackSet) -> TrackSet:
        self._items[key] = tracks
        self._items.move_to_end(key)
        while len(self._items) > self.max_videos:
            self._items.popitem(last=False)
        return tracks
