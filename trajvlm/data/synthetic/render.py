"""Render a `SceneSpec` to frames, exact instance masks and the trajectory graph (vectorised numpy).

Objects are flat-coloured binary templates pasted back to front (by `depth`), so before video
encoding every pixel of instance i has exactly `COLOURS[colour_i]` and the masks hold the visible
(unoccluded) part of each object. Backgrounds are low-saturation and clipped to [8, 160], which keeps
every object colour >= 65 grey levels away (max-channel distance) from any background pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from trajvlm.data.synthetic.scene import COLOURS, BackgroundSpec, SceneConfig, SceneSpec

BACKGROUND_RANGE = (8.0, 160.0)  # background pixel values are clipped to this range (every channel)


@cache
def shape_template(shape: str, side: int) -> np.ndarray:
    """Binary template (side, side) bool of `shape`, sampled at pixel centres (no anti-aliasing,
    so masks are exact). Read-only (cached)."""
    c = (np.arange(side, dtype=np.float64) + 0.5) / side * 2.0 - 1.0  # pixel centres in [-1, 1]
    v, u = np.meshgrid(c, c, indexing="ij")  # v: rows (down), u: columns (right)
    if shape == "circle":
        m = u**2 + v**2 <= 0.96
    elif shape == "square":
        m = (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    elif shape == "triangle":  # apex up
        m = (v <= 0.85) & (np.abs(u) <= 0.98 * (v + 0.95) / 1.8)
    elif shape == "diamond":
        m = np.abs(u) + np.abs(v) <= 1.0
    elif shape == "cross":  # plus sign
        m = ((np.abs(u) <= 0.34) & (np.abs(v) <= 0.98)) | ((np.abs(v) <= 0.34) & (np.abs(u) <= 0.98))
    elif shape == "star":  # five points, one pointing up; radius linear in angle between tips and notches
        r = np.hypot(u, v)
        phi = np.mod(np.arctan2(u, -v), 2 * math.pi / 5)  # angle from the upward tip, folded per point
        t = np.abs(phi - math.pi / 5) / (math.pi / 5)  # 1 at a tip, 0 at a notch
        m = r <= 0.45 + 0.57 * t
    else:
        raise ValueError(f"unknown shape {shape!r}")
    m = np.ascontiguousarray(m)
    m.setflags(write=False)
    return m


@cache
def _template_offsets(shape: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets (P,) int64 of the template's pixels, row-major."""
    ty, tx = np.nonzero(shape_template(shape, side))
    ty.setflags(write=False)
    tx.setflags(write=False)
    return ty, tx


def _footprint(scene: SceneSpec, i: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels object i would cover with nothing in front of it, over its L active frames.

    Returns flat indices into masks.ravel() (L,P) int64 (P = template pixels) and, if part of the
    object leaves the frame, an (L,P) bool `inside` (outside pixels point at the dump slot T*H*W)."""
    o, S, T = scene.objects[i], scene.size, scene.num_frames
    ty, tx = _template_offsets(o.shape, o.size)
    ts, xs, ys = o.positions()  # (L,)
    base = (ts * S + ys) * S + xs  # (L,) flat index of the top-left corner
    flat = base[:, None] + (ty * S + tx)[None, :]  # (L,P)
    if xs.min() >= 0 and ys.min() >= 0 and xs.max() + o.size <= S and ys.max() + o.size <= S:
        return flat, None
    yy, xx = ys[:, None] + ty[None, :], xs[:, None] + tx[None, :]
    inside = (yy >= 0) & (yy < S) & (xx >= 0) & (xx < S)
    return np.where(inside, flat, T * S * S), inside


@dataclass
class _Painted:
    masks: np.ndarray  # (T,H,W) uint16, visible instance ids
    visible: np.ndarray  # (N,T) int64 visible pixels per object and frame
    occlusions: list[tuple[int, int]]  # (front, back): front hides some pixels of back ([] unless asked for)
    footprints: list[tuple[int, np.ndarray]]  # (object, flat pixel indices (P',)), back to front


def _paint(scene: SceneSpec, *, occlusions: bool = False) -> _Painted:
    """Paint instance ids back to front (by depth) with one fancy-index write per object."""
    T, S, N = scene.num_frames, scene.size, scene.num_objects
    flat_masks = np.zeros(T * S * S + 1, dtype=np.uint16)  # + a dump slot for off-frame pixels
    prints, pairs = [], set()
    for i in sorted(range(N), key=lambda j: scene.objects[j].depth):  # back to front
        flat, inside = _footprint(scene, i)
        if occlusions:
            under = flat_masks[flat]
            pairs.update((i, int(b) - 1) for b in np.unique(under[under > 0]))
        flat_masks[flat] = i + 1
        flat_masks[-1] = 0
        prints.append((i, flat, inside))
    visible = np.zeros((N, T), dtype=np.int64)
    for i, flat, _ in prints:
        o = scene.objects[i]
        visible[i, o.t_start : o.t_end + 1] = np.count_nonzero(flat_masks[flat] == i + 1, axis=1)
    footprints = [(i, flat.ravel() if inside is None else flat[inside]) for i, flat, inside in prints]
    return _Painted(flat_masks[:-1].reshape(T, S, S), visible, sorted(pairs), footprints)


def render_masks(scene: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """masks (T,H,W) uint16 (0 background, i+1 = object i, visible part only) and
    graph (N,T) int32 (graph[i,t] = i+1 where object i has visible pixels in frame t, else 0)."""
    p = _paint(scene)
    masks, visible = p.masks, p.visible
    ids = np.arange(1, scene.num_objects + 1, dtype=np.int32)[:, None]
    graph = np.where(visible > 0, ids, 0).astype(np.int32)
    return masks, graph


def render_background(bg: BackgroundSpec, size: int, num_frames: int) -> np.ndarray:
    """Static low-contrast texture + per-frame noise: (T,H,W,3) uint8 in BACKGROUND_RANGE."""
    rng = np.random.default_rng(bg.seed)
    c = np.arange(size, dtype=np.float32) + 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")  # (H,W)
    proj = xx * math.cos(bg.angle) + yy * math.sin(bg.angle)
    if bg.kind == "blobs":  # smooth value noise: a coarse random grid, bilinearly upsampled
        k = max(2, round(size / bg.period) + 2)
        grid = rng.uniform(-1.0, 1.0, size=(k, k)).astype(np.float32)
        pos = np.linspace(0.0, k - 1.0, size, dtype=np.float32)
        i0 = np.minimum(pos.astype(np.int64), k - 2)
        f = pos - i0
        rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]  # (H,k)
        tex = rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]  # (H,W)
    elif bg.kind == "stripes":
        tex = np.sin(2 * math.pi * proj / bg.period)
    elif bg.kind == "checker":
        cell = bg.period / 2
        tex = (np.mod(np.floor(xx / cell) + np.floor(yy / cell), 2) * 2 - 1).astype(np.float32)
    elif bg.kind == "gradient":
        tex = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6) * 2 - 1
    else:
        raise ValueError(f"unknown background kind {bg.kind!r}")
    chroma = rng.uniform(0.6, 1.0, size=3).astype(np.float32)  # slightly coloured texture
    static = (np.asarray(bg.base, dtype=np.float32) + bg.amplitude * tex[..., None] * chroma
              + bg.grain * rng.standard_normal((size, size, 3), dtype=np.float32))  # (H,W,3)
    # per-frame noise: random windows of one larger noise field (much cheaper than T fresh fields)
    pad = 16
    field = bg.noise * rng.standard_normal((size + pad, size + pad, 3), dtype=np.float32)
    offs = rng.integers(0, pad + 1, size=(num_frames, 2))
    frames = np.empty((num_frames, size, size, 3), dtype=np.float32)
    for t, (dy, dx) in enumerate(offs.tolist()):
        np.add(static, field[dy : dy + size, dx : dx + size], out=frames[t])
    np.clip(frames, *BACKGROUND_RANGE, out=frames)
    return np.rint(frames, out=frames).astype(np.uint8)


def render_scene(scene: SceneSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a scene.

    Returns frames (T,H,W,3) uint8 RGB, masks (T,H,W) uint16 (0 = background, i+1 = visible part
    of object i) and graph (N,T) int32 (i+1 where object i is visible in frame t, 0 = absent).
    Deterministic: the same scene always gives the same arrays.
    """
    p = _paint(scene)
    ids = np.arange(1, scene.num_objects + 1, dtype=np.int32)[:, None]
    graph = np.where(p.visible > 0, ids, 0).astype(np.int32)  # (N,T)
    frames = render_background(scene.background, scene.size, scene.num_frames)
    flat = frames.reshape(-1, 3)  # (T*H*W,3) view
    for i, fp in p.footprints:  # back to front, like the masks
        flat[fp] = COLOURS[scene.objects[i].colour]
    return frames, p.masks, graph


def occlusion_pairs(scene: SceneSpec) -> list[tuple[int, int]]:
    """Sorted (front, back) object index pairs such that `front` hides pixels of `back` in some frame."""
    return _paint(scene, occlusions=True).occlusions


def scene_violation(scene: SceneSpec, cfg: SceneConfig) -> tuple[int, str] | None:
    """The first object breaking the dataset's constraints and why, or None if the scene is valid.

    - every object is visible in every frame of [t_start, t_end] with >= cfg.min_visible_fraction of
      its template area (so visibility == active interval and no object is hidden for good);
    - every normal object has >= 2 frames showing >= 90% of it, >= 20% of the frame apart along its
      motion (its direction is recoverable from the masks' centroids);
    - the needle is fully visible in all its frames.
    """
    visible = _paint(scene).visible
    for i, o in enumerate(scene.objects):
        area = len(_template_offsets(o.shape, o.size)[0])
        vis = visible[i, o.t_start : o.t_end + 1]
        if vis.min() < cfg.min_visible_fraction * area:
            return i, f"object {i} ({o.description}) mostly hidden in some frame"
        if scene.needle == i:
            if (vis != area).any():
                return i, f"needle {i} ({o.description}) not fully visible"
            continue
        clean = np.flatnonzero(vis >= 0.9 * area)
        if clean.size < 2 or o.speed * (clean[-1] - clean[0]) < 0.2 * scene.size:
            return i, f"object {i} ({o.description}) has too few mostly visible frames"
    return None


__all__ = [
    "BACKGROUND_RANGE", "occlusion_pairs", "render_background", "render_masks", "render_scene",
    "scene_violation", "shape_template",
]
