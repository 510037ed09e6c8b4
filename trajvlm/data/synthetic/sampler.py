"""Random ShapesQA scenes: rejection sampling of `SceneSpec`s that satisfy the dataset's constraints."""

from __future__ import annotations

import math

import numpy as np

from trajvlm.data.synthetic.render import scene_violation
from trajvlm.data.synthetic.scene import (
    BACKGROUND_KINDS,
    COLOURS,
    DIRECTION_VECTORS,
    DIRECTIONS,
    SHAPES,
    SIZE_NAMES,
    BackgroundSpec,
    ObjectSpec,
    SceneConfig,
    SceneSpec,
)


class SceneSamplingError(RuntimeError):
    """No valid scene within `SceneConfig.max_tries` attempts (names the constraint settings)."""


def _sample_background(rng: np.random.Generator) -> BackgroundSpec:
    level = rng.uniform(45.0, 110.0)
    tint = rng.uniform(-10.0, 10.0, size=3)
    return BackgroundSpec(
        kind=str(BACKGROUND_KINDS[rng.integers(len(BACKGROUND_KINDS))]),
        base=tuple(float(round(level + c, 3)) for c in tint),
        amplitude=float(round(rng.uniform(6.0, 18.0), 3)),
        period=float(round(rng.uniform(6.0, 20.0), 3)),
        angle=float(round(rng.uniform(0.0, math.pi), 4)),
        grain=float(round(rng.uniform(1.0, 4.0), 3)),
        noise=float(round(rng.uniform(0.0, 1.5), 3)),
        seed=int(rng.integers(2**31)),
    )


def _sample_attributes(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """n distinct (colour, shape) pairs; colours and shapes may repeat across objects."""
    colours, pairs = list(COLOURS), []
    while len(pairs) < n:
        pair = (colours[rng.integers(len(colours))], SHAPES[rng.integers(len(SHAPES))])
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def _sample_motion(
    rng: np.random.Generator, cfg: SceneConfig, size_idx: int, t_start: int, t_end: int, *,
    speed_range: tuple[float, float] | None = None,
) -> tuple[int, str, float, float, float]:
    """Side (px), direction, speed (px/frame) and start corner (x0, y0) of a path that stays inside the frame.

    Travel over [t_start, t_end] is >= cfg.min_displacement of the frame (or the whole free span, if
    smaller), unless `speed_range` sets the speed instead (needles)."""
    side = cfg.sizes_px[size_idx]
    span = cfg.size - side - 2 * cfg.margin  # free travel along an axis, px
    steps = max(t_end - t_start, 1)
    if speed_range is not None:
        disp = min(rng.uniform(*speed_range) * steps, span)
    else:
        lo = min(cfg.min_displacement * cfg.size, span)
        disp = rng.uniform(lo, span)
    direction = DIRECTIONS[rng.integers(4)]
    along = cfg.margin + rng.uniform(0.0, span - disp)  # low end of the path along the motion axis
    cross = cfg.margin + rng.uniform(0.0, span)
    dx, dy = DIRECTION_VECTORS[direction]
    start_along = along if dx + dy > 0 else along + disp
    x0, y0 = (start_along, cross) if dx else (cross, start_along)
    return side, direction, disp / steps, x0, y0


def _timings(rng: np.random.Generator, cfg: SceneConfig, n: int) -> list[tuple[int, int]]:
    """Active intervals [t_start, t_end] of a normal clip: each >= T/2 frames; at least one
    object starts at frame 0 and, with >= 2 objects, at least one starts later (>= frame 2)."""
    T = cfg.num_frames
    min_len = math.ceil(T / 2)
    late = rng.random(n) < cfg.p_late
    order = rng.permutation(n)
    late[order[0]] = False
    if n >= 2 and not late.any():
        late[order[1]] = True
    out = []
    for i in range(n):
        t0 = int(rng.integers(2, T // 2 + 1)) if late[i] else 0
        t1 = T - 1
        if rng.random() < cfg.p_early_exit and t0 + min_len - 1 <= T - 3:
            t1 = int(rng.integers(t0 + min_len - 1, T - 2))  # last visible frame <= T-3
        out.append((t0, t1))
    return out


def _force_crossing(
    rng: np.random.Generator, cfg: SceneConfig, objs: list[ObjectSpec], a: int, b: int
) -> ObjectSpec | None:
    """Move object b's path so that b's centre passes near a's centre at a shared frame. Returns the new b, or None if no such path stays inside the frame."""
    oa, ob = objs[a], objs[b]
    lo, hi = max(oa.t_start, ob.t_start), min(oa.t_end, ob.t_end)
    if lo > hi:
        return None
    dxb, dyb = DIRECTION_VECTORS[ob.direction]
    dxa, dya = DIRECTION_VECTORS[oa.direction]
    limit = cfg.size - ob.size - cfg.margin
    for _ in range(8):
        tm = int(rng.integers(lo, hi + 1))
        # centres 0.4-0.7 of the mean side apart: a partial overlap, not a full eclipse
        r, ang = rng.uniform(0.4, 0.7) * (oa.size + ob.size) / 2, rng.uniform(0.0, 2 * math.pi)
        off = (r * math.cos(ang), r * math.sin(ang))
        ca = (oa.x0 + dxa * oa.speed * (tm - oa.t_start) + oa.size / 2, oa.y0 + dya * oa.speed * (tm - oa.t_start) + oa.size / 2)
        xm, ym = ca[0] + off[0] - ob.size / 2, ca[1] + off[1] - ob.size / 2  # b's corner at tm
        back = ob.speed * (tm - ob.t_start)
        x0, y0 = xm - dxb * back, ym - dyb * back
        travel = ob.speed * (ob.t_end - ob.t_start)
        x1, y1 = x0 + dxb * travel, y0 + dyb * travel
        if all(cfg.margin <= v <= limit for v in (x0, y0, x1, y1)):
            return ObjectSpec(**{**ob.__dict__, "x0": float(x0), "y0": float(y0)})
    return None


def _redraw_motion(rng: np.random.Generator, cfg: SceneConfig, o: ObjectSpec, needle: bool) -> ObjectSpec:
    """Same object (attributes, interval, depth) on a new random path."""
    side, direction, speed, x0, y0 = _sample_motion(rng, cfg, SIZE_NAMES.index(o.size_name), o.t_start, o.t_end,
                                                    speed_range=(1.0, 2.0) if needle else None)
    return _round_obj(ObjectSpec(**{**o.__dict__, "size": side, "direction": direction, "speed": speed, "x0": x0, "y0": y0}))


def _round_obj(o: ObjectSpec) -> ObjectSpec:
    """Round float fields so that the JSON record reproduces the scene exactly."""
    return ObjectSpec(**{**o.__dict__, "speed": round(o.speed, 6), "x0": round(o.x0, 4), "y0": round(o.y0, 4)})


def _propose_normal(rng: np.random.Generator, cfg: SceneConfig, n: int) -> list[ObjectSpec]:
    pairs, times, depths = _sample_attributes(rng, n), _timings(rng, cfg, n), rng.permutation(n)
    objs = []
    for i in range(n):
        size_idx = int(rng.integers(len(SIZE_NAMES)))
        side, direction, speed, x0, y0 = _sample_motion(rng, cfg, size_idx, *times[i])
        objs.append(ObjectSpec(pairs[i][1], pairs[i][0], side, SIZE_NAMES[size_idx], direction, speed, x0, y0,
                               times[i][0], times[i][1], int(depths[i])))
    if n >= 2 and rng.random() < cfg.p_occlusion:
        a, b = (int(v) for v in rng.choice(n, size=2, replace=False))
        moved = _force_crossing(rng, cfg, objs, a, b)
        if moved is not None:
            objs[b] = moved
    return [_round_obj(o) for o in objs]


def _propose_needle(rng: np.random.Generator, cfg: SceneConfig) -> tuple[list[ObjectSpec], int]:
    T = cfg.needle_frames
    n_other = int(rng.integers(cfg.needle_other_objects[0], cfg.needle_other_objects[1] + 1))
    pairs = _sample_attributes(rng, n_other)
    used_c, used_s = {c for c, _ in pairs}, {s for _, s in pairs}
    # the needle's colour AND shape differ from every other object: "its colour" is then a real
    # test of having seen the needle, and the other objects' attributes make hard distractors
    colour = [c for c in COLOURS if c not in used_c][rng.integers(len(COLOURS) - len(used_c))]
    shape = [s for s in SHAPES if s not in used_s][rng.integers(len(SHAPES) - len(used_s))]
    objs = []
    for i in range(n_other):
        t0 = int(rng.integers(0, T // 4 + 1)) if rng.random() < cfg.p_late else 0
        t1 = T - 1 if rng.random() >= cfg.p_early_exit else int(rng.integers(max(t0 + T // 2, 3 * T // 4), T))
        size_idx = int(rng.integers(len(SIZE_NAMES)))
        side, direction, speed, x0, y0 = _sample_motion(rng, cfg, size_idx, t0, t1)
        objs.append(ObjectSpec(pairs[i][1], pairs[i][0], side, SIZE_NAMES[size_idx], direction, speed, x0, y0, t0, t1, i))
    lo, hi = cfg.needle_length_range
    length = int(rng.integers(lo, hi + 1))
    t0 = int(rng.integers(int(0.1 * T), int(0.9 * T) - length + 1))
    size_idx = int(rng.integers(1, len(SIZE_NAMES)))  # medium or large: the needle must be visible
    side, direction, speed, x0, y0 = _sample_motion(rng, cfg, size_idx, t0, t0 + length - 1, speed_range=(1.0, 2.0))
    objs.append(ObjectSpec(shape, colour, side, SIZE_NAMES[size_idx], direction, speed, x0, y0, t0, t0 + length - 1, n_other))
    # shuffle so the needle's instance id is not always the last one
    perm = rng.permutation(len(objs))
    objs = [objs[int(j)] for j in perm]
    return [_round_obj(o) for o in objs], int(np.flatnonzero(perm == n_other)[0])


def sample_scene(rng: np.random.Generator, cfg: SceneConfig, *, needle: bool = False) -> SceneSpec:
    """Draw a valid scene (rejection sampling + repair against `render.scene_violation`).

    Normal clip: `cfg.num_frames` frames, min_objects..max_objects objects (uniform), each visible for
    >= half the clip and travelling >= cfg.min_displacement of the frame. Needle video:
    `cfg.needle_frames` frames, 1-3 long-lived objects plus one needle visible for
    `cfg.needle_length_range` frames, drawn on top, with a colour and shape no other object has.
    """
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    for _ in range(cfg.max_tries):
        background = _sample_background(rng)
        if needle:
            objs, needle_idx = _propose_needle(rng, cfg)
            frames = cfg.needle_frames
        else:
            objs, needle_idx, frames = _propose_normal(rng, cfg, n), None, cfg.num_frames
        # repair: give the first offending object a new path a few times before starting over
        for _ in range(cfg.max_repairs + 1):
            scene = SceneSpec(cfg.size, frames, tuple(objs), background, needle_idx)
            bad = scene_violation(scene, cfg)
            if bad is None:
                return scene
            objs[bad[0]] = _redraw_motion(rng, cfg, objs[bad[0]], bad[0] == needle_idx)
    raise SceneSamplingError(
        f"no valid {'needle' if needle else 'normal'} scene with {n} objects in {cfg.max_tries} tries "
        f"(size={cfg.size}, sizes_px={cfg.sizes_px}, min_visible_fraction={cfg.min_visible_fraction})"
    )
