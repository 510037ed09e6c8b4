"""Mask supervision stored next to a video: `x.mp4` -> `x_mask.npz` + `x_graph.npz`.

- `x_mask.npz`, key `"masks"`: `(T,H,W)` integer instance ids per *source* frame, 0 = background.
- `x_graph.npz`, key `"graph"`: `(N,T)` integer, row n = the mask id of trajectory n in frame t, 0 = absent.

`T` is the number of frames of the video file. When the video is read with frame sampling
(`load_video(..., max_frames, fps)`), the sidecars are sampled at the same `clip.frame_indices`, so
masks/graph line up with the decoded frames.

Every problem with a sidecar (missing under `policy="require"`, only one of the pair present, unreadable
npz, missing key, wrong rank/dtype, frame-count mismatch, graph ids absent from the masks) raises
`SidecarError` naming the file and the reason. The dataset treats it like an unreadable video: the sample
is skipped and counted, never silently trained without its masks.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIDECAR_POLICIES = ("auto", "require", "ignore")
MASK_SUFFIX = "_mask.npz"
GRAPH_SUFFIX = "_graph.npz"


class SidecarError(RuntimeError):
    """A mask/graph sidecar is missing (when required), unreadable or inconsistent. Names the path and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"bad sidecar {self.path!r}: {reason}")


@dataclass
class Sidecars:
    """Mask supervision of one video, aligned with the decoded frames."""

    masks: np.ndarray  # (T,H,W) int64 instance ids, 0 = background
    graph: np.ndarray  # (N,T) int64 mask id of trajectory n in frame t, 0 = absent
    mask_path: str
    graph_path: str


def sidecar_paths(video_path: str | os.PathLike) -> tuple[Path, Path]:
    """`dir/x.mp4` -> (`dir/x_mask.npz`, `dir/x_graph.npz`)."""
    p = Path(video_path)
    stem = p.with_suffix("") if p.suffix else p
    return stem.parent / (stem.name + MASK_SUFFIX), stem.parent / (stem.name + GRAPH_SUFFIX)


def validate_policy(policy: str) -> str:
    if policy not in SIDECAR_POLICIES:
        raise ValueError(f"sidecar policy must be one of {SIDECAR_POLICIES}, got {policy!r}")
    return policy


def _read_array(path: Path, key: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if key not in npz.files:
                raise SidecarError(path, f"no key {key!r} (keys: {sorted(npz.files)})")
            arr = npz[key]
    except SidecarError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SidecarError(path, f"cannot read npz ({type(e).__name__}: {e})") from e
    if not np.issubdtype(arr.dtype, np.integer):
        raise SidecarError(path, f"{key!r} must hold integers, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise SidecarError(path, f"{key!r} holds negative ids (min {arr.min()})")
    return arr


def validate_sidecars(masks: np.ndarray, graph: np.ndarray, *, mask_path="masks", graph_path="graph") -> None:
    """Check shapes and that every non-zero graph entry is an id present in that frame's mask.

    masks (T,H,W), graph (N,T). Raises SidecarError naming the offending file.
    """
    if masks.ndim != 3:
        raise SidecarError(mask_path, f"'masks' must be (T,H,W), got shape {masks.shape}")
    if graph.ndim != 2:
        raise SidecarError(graph_path, f"'graph' must be (N,T), got shape {graph.shape}")
    t = masks.shape[0]
    if graph.shape[1] != t:
        raise SidecarError(graph_path, f"'graph' covers {graph.shape[1]} frames but 'masks' has {t}")
    for f in range(t):
        ids = graph[:, f]
        ids = ids[ids > 0]  # (n_present,)
        if ids.size == 0:
            continue
        if np.unique(ids).size != ids.size:
            raise SidecarError(graph_path, f"frame {f}: two trajectories share a mask id ({ids.tolist()})")
        missing = np.setdiff1d(ids, np.unique(masks[f]))
        if missing.size:
            raise SidecarError(graph_path, f"frame {f}: mask ids {missing.tolist()} are not in the mask of that frame")


def load_sidecars(
    video_path: str | os.PathLike,
    *,
    policy: str = "auto",
    frame_indices: np.ndarray | None = None,
    num_source_frames: int | None = None,
) -> Sidecars | None:
    """The sidecars of `video_path`, sampled at `frame_indices` `(T',)`, or None when absent/ignored.

    policy: "auto" loads them when present, "require" raises SidecarError when absent, "ignore" never reads.
    num_source_frames: the video's frame count; the masks must cover exactly that many frames.
    After sampling, graph rows of trajectories absent from every sampled frame are dropped.
    """
    validate_policy(policy)
    if policy == "ignore":
        return None
    mask_path, graph_path = sidecar_paths(video_path)
    has_mask, has_graph = mask_path.is_file(), graph_path.is_file()
    if not has_mask and not has_graph:
        if policy == "require":
            raise SidecarError(mask_path, f"required mask sidecars are missing (looked for {mask_path.name} and {graph_path.name})")
        return None
    if not (has_mask and has_graph):
        present, absent = (mask_path, graph_path) if has_mask else (graph_path, mask_path)
        raise SidecarError(present, f"found without its partner {absent.name}")
    masks = _read_array(mask_path, "masks")  # (T,H,W)
    graph = _read_array(graph_path, "graph")  # (N,T)
    if masks.ndim == 3 and num_source_frames is not None and masks.shape[0] != num_source_frames:
        raise SidecarError(mask_path, f"'masks' has {masks.shape[0]} frames but the video has {num_source_frames}")
    validate_sidecars(masks, graph, mask_path=mask_path, graph_path=graph_path)
    if frame_indices is not None:
        idx = np.asarray(frame_indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= masks.shape[0]):
            raise SidecarError(mask_path, f"frame index {int(idx.max())} out of range for {masks.shape[0]} mask frames")
        masks, graph = masks[idx], graph[:, idx]  # (T',H,W), (N,T')
        graph = graph[(graph > 0).any(axis=1)]  # (N',T') trajectories never visible in the sampled frames dropped
    return Sidecars(
        masks=masks.astype(np.int64, copy=False),
        graph=graph.astype(np.int64, copy=False),
        mask_path=str(mask_path),
        graph_path=str(graph_path),
    )
