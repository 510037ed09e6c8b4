"""ShapesQA scene specifications: constants and frozen dataclasses (sampling: `sampler.py`, rendering: `render.py`).

A scene is a list of objects, each a flat-coloured shape moving in a straight line along one
axis (left/right/up/down) during an active interval of frames, drawn in a depth order over a
static textured background with a little per-frame noise. Everything the renderer and the
question writer need is in the frozen dataclasses below, so a scene can be stored as JSON
(`asdict`) and re-rendered bit-exactly.

Coordinates: pixels, origin at the top-left corner, x to the right, y down ("up" = -y).
Instance ids: object `i` of `SceneSpec.objects` has mask id `i + 1`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Well-separated, saturated colours (each has a channel far from any grey level, so they
# never blend into the low-saturation backgrounds). name -> RGB.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 35, 35),
    "orange": (250, 140, 20),
    "yellow": (240, 230, 40),
    "green": (40, 200, 60),
    "cyan": (40, 210, 230),
    "blue": (50, 90, 240),
    "purple": (165, 60, 225),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross")
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
# unit motion vector (dx, dy) of each direction, image coordinates (y down)
DIRECTION_VECTORS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SIZE_NAMES: tuple[str, ...] = ("small", "medium-sized", "large")
BACKGROUND_KINDS: tuple[str, ...] = ("blobs", "stripes", "checker", "gradient")

MIN_OBJECT_PX = 12  # smaller objects were unlearnable for a patch model at 64x64


@dataclass(frozen=True)
class ObjectSpec:
    """One moving shape. Its top-left corner at frame t (t_start <= t <= t_end) is
    (x0, y0) + speed * (t - t_start) * DIRECTION_VECTORS[direction], rounded to the nearest pixel."""

    shape: str  # one of SHAPES
    colour: str  # one of COLOURS
    size: int  # side of the square template, px
    size_name: str  # one of SIZE_NAMES
    direction: str  # one of DIRECTIONS
    speed: float  # px per frame
    x0: float  # top-left corner at t_start, px
    y0: float
    t_start: int  # first frame drawn (inclusive)
    t_end: int  # last frame drawn (inclusive)
    depth: int  # draw order: larger = nearer the camera (drawn on top)

    @property
    def description(self) -> str:
        """'red circle' -- unique within a scene (scenes never repeat a colour+shape pair)."""
        return f"{self.colour} {self.shape}"

    def positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames and integer top-left corners of the active interval: ts, xs, ys each (L,) int64."""
        ts = np.arange(self.t_start, self.t_end + 1, dtype=np.int64)
        dx, dy = DIRECTION_VECTORS[self.direction]
        steps = self.speed * (ts - self.t_start)
        xs = np.floor(self.x0 + dx * steps + 0.5).astype(np.int64)
        ys = np.floor(self.y0 + dy * steps + 0.5).astype(np.int64)
        return ts, xs, ys


@dataclass(frozen=True)
class BackgroundSpec:
    """Static low-contrast texture + per-frame Gaussian noise (values before clipping to [8, 160])."""

    kind: str  # one of BACKGROUND_KINDS
    base: tuple[float, float, float]  # mean RGB level (grey-ish, 45..110 + tint)
    amplitude: float  # texture amplitude (grey levels)
    period: float  # texture scale, px (stripe period, checker cell, blob spacing)
    angle: float  # radians (stripes, gradient)
    grain: float  # std of the static per-pixel grain
    noise: float  # std of the per-frame noise
    seed: int  # seed of the background's own random numbers


@dataclass(frozen=True)
class SceneSpec:
    """A full video: `num_frames` frames of `size` x `size` pixels."""

    size: int
    num_frames: int
    objects: tuple[ObjectSpec, ...]
    background: BackgroundSpec
    needle: int | None = None  # index into `objects` of the briefly visible object (needle videos)

    @property
    def num_objects(self) -> int:
        return len(self.objects)


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the scene sampler. Frame counts/sizes come from the CLI; the rest are defaults."""

    size: int = 64  # frame side, px (even, >= 32)
    num_frames: int = 16  # frames of a normal clip (>= 8)
    needle_frames: int = 64  # frames of a needle (long) video (>= 20)
    min_objects: int = 2  # objects per normal clip, drawn uniformly from [min, max] (counting answers)
    max_objects: int = 5
    needle_other_objects: tuple[int, int] = (1, 3)  # long-lived objects besides the needle, inclusive range
    size_fractions: tuple[float, float, float] = (0.2, 0.26, 0.32)  # small/medium/large side / frame side
    min_displacement: float = 0.32  # travel over an object's visible interval, fraction of the frame
    p_late: float = 0.4  # an object appears after the first frames
    p_early_exit: float = 0.3  # an object disappears before the end
    p_occlusion: float = 0.6  # force two objects' paths to cross (one hides part of the other)
    min_visible_fraction: float = 0.3  # every visible frame shows >= this fraction of the object
    needle_max_fraction: float = 0.1  # the needle is visible for at most this fraction of the frames
    max_tries: int = 200  # rejection-sampling budget per scene
    max_repairs: int = 8  # new paths for offending objects before a scene is redrawn from scratch
    margin: int = 1  # px kept free at the frame border

    def __post_init__(self) -> None:
        if self.size < 32 or self.size % 2:
            raise ValueError(f"size must be even and >= 32 (libx264 needs even sizes), got {self.size}")
        if self.num_frames < 8:
            raise ValueError(f"frames must be >= 8, got {self.num_frames}")
        if self.needle_frames < 20:
            raise ValueError(f"needle_frames must be >= 20 (the needle is <= 10% of them), got {self.needle_frames}")
        if not 1 <= self.min_objects <= self.max_objects <= 6:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 6, got {self.min_objects}, {self.max_objects}")

    @property
    def sizes_px(self) -> tuple[int, ...]:
        """Object template sides, px, one per SIZE_NAMES entry (>= MIN_OBJECT_PX)."""
        return tuple(max(MIN_OBJECT_PX, round(f * self.size)) for f in self.size_fractions)

    @property
    def needle_length_range(self) -> tuple[int, int]:
        """Inclusive range of needle visible frames: [7.5%, 10%] of needle_frames (5..6 of 64 frames),
        so a uniform 16-frame sample of a 64-frame video (gaps of 4-5 frames) always catches it."""
        hi = max(2, math.floor(self.needle_max_fraction * self.needle_frames))
        lo = min(hi, max(2, math.ceil(0.075 * self.needle_frames)))
        return lo, hi


def scene_to_dict(scene: SceneSpec) -> dict:
    """JSON-ready record (inverse: `scene_from_dict`)."""
    return {
        "size": scene.size,
        "num_frames": scene.num_frames,
        "needle": scene.needle,
        "background": {**scene.background.__dict__, "base": list(scene.background.base)},
        "objects": [{"instance_id": i + 1, **o.__dict__} for i, o in enumerate(scene.objects)],
    }


def scene_from_dict(d: dict) -> SceneSpec:
    objs = tuple(ObjectSpec(**{k: v for k, v in o.items() if k != "instance_id"}) for o in d["objects"])
    bg = BackgroundSpec(**{**d["background"], "base": tuple(d["background"]["base"])})
    return SceneSpec(int(d["size"]), int(d["num_frames"]), objs, bg, d.get("needle"))


def describe_vocabulary(cfg: SceneConfig) -> dict:
    """Colours, shapes, directions and sizes (for meta.json)."""
    return {
        "colours": {k: list(v) for k, v in COLOURS.items()},
        "shapes": list(SHAPES),
        "directions": list(DIRECTIONS),
        "sizes_px": dict(zip(SIZE_NAMES, cfg.sizes_px)),
        "background_kinds": list(BACKGROUND_KINDS),
    }


__all__ = [
    "BACKGROUND_KINDS", "COLOURS", "DIRECTIONS", "DIRECTION_VECTORS", "SHAPES", "SIZE_NAMES",
    "BackgroundSpec", "ObjectSpec", "SceneConfig", "SceneSpec",
    "describe_vocabulary", "scene_from_dict", "scene_to_dict",
]
