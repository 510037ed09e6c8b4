"""Draw trajectories over sampled frames: one colour per trajectory (mask tint + box + id label).

Pure numpy + Pillow; used by the demo's gallery and by `trajvlm tokenize` (overlay PNG).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

# A fixed, well separated palette for the first ids; further ids continue with golden-ratio hues.
_BASE_PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
)


def trajectory_color(trajectory_id: int) -> tuple[int, int, int]:
    """The RGB colour of a trajectory id (stable across frames, chunks and calls)."""
    trajectory_id = int(trajectory_id)
    if trajectory_id < 0:
        raise ValueError(f"trajectory ids are >= 0, got {trajectory_id}")
    if trajectory_id < len(_BASE_PALETTE):
        return _BASE_PALETTE[trajectory_id]
    hue = (trajectory_id * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


@dataclass
class TrajectoryLayout:
    """What is drawn: the live trajectories of one video over its T sampled frames.

    `hard_ids` may be None (boxes only); cells whose id is not in `trajectory_ids` (background, dropped
    trajectories, negative ids) are not tinted.
    """

    trajectory_ids: np.ndarray  # (N,) int64 global trajectory ids
    boxes: np.ndarray  # (N,T,4) float (x0,y0,x1,y1) in [0,1]
    presence: np.ndarray  # (N,T) bool
    hard_ids: np.ndarray | None = None  # (T,h,w) int64 global trajectory id per feature cell

    def __post_init__(self) -> None:
        self.trajectory_ids = np.asarray(self.trajectory_ids, dtype=np.int64).reshape(-1)
        self.boxes = np.asarray(self.boxes, dtype=np.float64)
        self.presence = np.asarray(self.presence, dtype=bool)
        n = self.trajectory_ids.shape[0]
        if self.boxes.ndim != 3 or self.boxes.shape[0] != n or self.boxes.shape[2] != 4:
            raise ValueError(f"boxes must be (N,T,4) with N={n}, got {self.boxes.shape}")
        if self.presence.shape != self.boxes.shape[:2]:
            raise ValueError(f"presence must be (N,T)={self.boxes.shape[:2]}, got {self.presence.shape}")
        if self.hard_ids is not None:
            self.hard_ids = np.asarray(self.hard_ids, dtype=np.int64)
            if self.hard_ids.ndim != 3:
                raise ValueError(f"hard_ids must be (T,h,w), got {self.hard_ids.shape}")
            if n and self.hard_ids.shape[0] != self.boxes.shape[1]:
                raise ValueError(f"hard_ids has {self.hard_ids.shape[0]} frames but boxes have {self.boxes.shape[1]}")

    @property
    def num_frames(self) -> int:
        if self.hard_ids is not None:
            return int(self.hard_ids.shape[0])
        return int(self.boxes.shape[1])


def _resize_long_side(frame: np.ndarray, long_side: int) -> np.ndarray:
    """(H,W,3) uint8 -> (H',W',3) with max(H',W') == long_side (nearest when enlarging: crisp small videos)."""
    from PIL import Image

    h, w = frame.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return frame
    resample = Image.NEAREST if scale > 1 else Image.BILINEAR
    return np.asarray(Image.fromarray(frame).resize(size, resample))


def _font(pixels: int):
    """Pillow's bundled font at `pixels` height (the fixed bitmap font when Pillow lacks FreeType)."""
    from PIL import ImageFont, features

    if features.check("freetype2"):
        return ImageFont.load_default(size=max(8, pixels))
    return ImageFont.load_default()


def draw_frame(
    frame: np.ndarray, layout: TrajectoryLayout, t: int, *, out_size: int | None = 256, alpha: float = 0.45,
    label: str | None = None,
) -> np.ndarray:
    """Overlay frame `t`: tint each live trajectory's cells, outline its box, write its id. Returns (H',W',3) uint8."""
    from PIL import Image, ImageDraw

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H,W,3) uint8, got {frame.shape} {frame.dtype}")
    img = _resize_long_side(frame, out_size) if out_size else frame
    height, width = img.shape[:2]
    out = img.astype(np.float32)
    live = {int(i) for i in layout.trajectory_ids}
    if layout.hard_ids is not None and live:
        ids = layout.hard_ids[t]  # (h,w)
        rows = (np.arange(height) * ids.shape[0]) // height  # nearest cell per output pixel
        cols = (np.arange(width) * ids.shape[1]) // width
        full = ids[rows[:, None], cols[None, :]]  # (H',W')
        for tid in np.unique(full):
            if int(tid) not in live:
                continue
            sel = full == tid
            out[sel] = (1 - alpha) * out[sel] + alpha * np.asarray(trajectory_color(int(tid)), dtype=np.float32)
    canvas = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    line = max(1, round(max(height, width) / 128))
    font = _font(round(max(height, width) / 18))
    for n, tid in enumerate(layout.trajectory_ids):
        if layout.boxes.shape[1] <= t or not layout.presence[n, t]:
            continue
        x0, y0, x1, y1 = np.clip(layout.boxes[n, t], 0.0, 1.0)
        if x1 <= x0 or y1 <= y0:
            continue
        color = trajectory_color(int(tid))
        box = (x0 * (width - 1), y0 * (height - 1), x1 * (width - 1), y1 * (height - 1))
        draw.rectangle(box, outline=color, width=line)
        text = f"#{int(tid)}"
        l, t_, r, b = draw.textbbox((0, 0), text, font=font)
        tx = min(box[0] + line, width - (r - l) - 2)  # keep the label inside the picture
        ty = min(box[1] + line, height - (b - t_) - 2)
        l, t_, r, b = draw.textbbox((tx, ty), text, font=font)
        draw.rectangle((l - 1, t_ - 1, r + 1, b + 1), fill=(0, 0, 0))
        draw.text((tx, ty), text, fill=color, font=font)
    if label:
        l, t_, r, b = draw.textbbox((0, 0), label, font=font)
        draw.rectangle((0, height - (b - t_) - 6, r - l + 6, height), fill=(0, 0, 0))
        draw.text((3 - l, height - (b - t_) - 3 - t_), label, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def pick_frames(num_frames: int, count: int) -> np.ndarray:
    """`count` evenly spread frame positions in [0, num_frames) (all of them when there are fewer)."""
    if num_frames <= 0:
        return np.zeros((0,), dtype=np.int64)
    if num_frames <= count:
        return np.arange(num_frames, dtype=np.int64)
    return np.unique(np.linspace(0, num_frames - 1, count).round().astype(np.int64))


def overlay_frames(
    frames: np.ndarray, layout: TrajectoryLayout, *, timestamps: np.ndarray | None = None, count: int = 8,
    out_size: int = 256, stamp: bool = False,
) -> list[tuple[np.ndarray, str]]:
    """Overlays of `count` evenly spread frames: [(image (H',W',3) uint8, caption)].

    `frames` (T,H,W,3) must be the frames the trajectories were computed on (same T). `stamp` also writes
    the time into the picture (for a contact sheet, which has no captions).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] != layout.num_frames:
        raise ValueError(f"frames must be (T,H,W,3) with T={layout.num_frames}, got {frames.shape}")
    result = []
    for t in pick_frames(frames.shape[0], count):
        t = int(t)
        n_here = int(layout.presence[:, t].sum()) if layout.presence.size else 0
        when = f"t={float(timestamps[t]):.1f}s" if timestamps is not None else f"frame {t}"
        caption = f"{when} · {n_here} trajector{'y' if n_here == 1 else 'ies'}"
        result.append((draw_frame(frames[t], layout, t, out_size=out_size, label=when if stamp else None), caption))
    return result


def contact_sheet(images: list[np.ndarray], *, columns: int = 4, pad: int = 4) -> np.ndarray:
    """Tile images (each (H,W,3) uint8, sizes may differ) into one (H',W',3) uint8 picture, row-major."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    cell_h = max(im.shape[0] for im in images)
    cell_w = max(im.shape[1] for im in images)
    sheet = np.full((rows * cell_h + (rows + 1) * pad, columns * cell_w + (columns + 1) * pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        y, x = pad + r * (cell_h + pad), pad + c * (cell_w + pad)
        sheet[y : y + im.shape[0], x : x + im.shape[1]] = im
    return sheet
