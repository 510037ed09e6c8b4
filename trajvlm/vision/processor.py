"""TrajVLMVideoProcessor: frames (T,H,W,3) uint8 -> pixel_values (T,3,S,S) float, normalized for the vision tower.

Mean/std come from the vision tower itself (its preprocessor_config.json, or its config for the conv tower), so
a SigLIP tower gets SigLIP's 0.5/0.5, a CLIP tower CLIP's statistics -- never a silent ImageNet default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CONFIG_NAME = "video_processor_config.json"
# Statistics of towers that ship no preprocessor_config.json (same values as their official processors).
_KNOWN_STATS = {
    "siglip_vision_model": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "siglip2_vision_model": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "clip_vision_model": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}
RESAMPLE = ("bilinear", "bicubic", "nearest", "area")


class VideoProcessorError(ValueError):
    """Frames the video processor cannot turn into pixel values (type, rank, dtype, channels)."""


class TrajVLMVideoProcessor:
    """Resize every frame to (size,size), scale to [0,1], normalize with the tower's mean/std.

    Input: (T,H,W,3) uint8 ndarray/tensor, a (T,3,H,W) uint8 tensor, a list of (H,W,3) uint8 frames or PIL
    images, or a ``VideoClip`` (its ``frames``). Output: (T,3,size,size) float32.
    """

    def __init__(
        self,
        size: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        resample: str = "bilinear",
        chunk_frames: int = 32,
    ):
        if not isinstance(size, int) or size < 1:
            raise VideoProcessorError(f"TrajVLMVideoProcessor: size must be an int >= 1, got {size!r}")
        if len(image_mean) != 3 or len(image_std) != 3 or min(image_std) <= 0:
            raise VideoProcessorError(
                f"TrajVLMVideoProcessor: need 3 means and 3 positive stds, got {image_mean!r}, {image_std!r}"
            )
        if resample not in RESAMPLE:
            raise VideoProcessorError(f"TrajVLMVideoProcessor: resample must be one of {RESAMPLE}, got {resample!r}")
        self.size = size
        self.image_mean = [float(x) for x in image_mean]
        self.image_std = [float(x) for x in image_std]
        self.resample = resample
        self.chunk_frames = chunk_frames

    # ---- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_vision_config(cls, vision_config, vision_path: str | os.PathLike | None = None, **overrides):
        """Processor for a vision tower: its preprocessor_config.json (if `vision_path` has one) or its config."""
        size = getattr(vision_config, "image_size", None)
        size = size[0] if isinstance(size, (list, tuple)) else size
        mean = std = None
        if vision_path is not None and Path(vision_path, "preprocessor_config.json").is_file():
            with open(Path(vision_path, "preprocessor_config.json")) as f:
                pre = json.load(f)
            mean, std = pre.get("image_mean"), pre.get("image_std")
        if mean is None and getattr(vision_config, "image_mean", None) is not None:  # the conv tower
            mean, std = vision_config.image_mean, vision_config.image_std
        if mean is None and vision_config.model_type in _KNOWN_STATS:
            mean, std = _KNOWN_STATS[vision_config.model_type]
        if mean is None or std is None:
            raise VideoProcessorError(
                f"TrajVLMVideoProcessor: no image_mean/image_std for vision tower {vision_config.model_type!r} "
                f"(no preprocessor_config.json at {vision_path!r}); pass image_mean= and image_std= explicitly"
            )
        kwargs = dict(size=size, image_mean=mean, image_std=std)
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return dict(size=self.size, image_mean=self.image_mean, image_std=self.image_std, resample=self.resample)

    @classmethod
    def from_dict(cls, d: dict) -> "TrajVLMVideoProcessor":
        return cls(**d)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        os.makedirs(directory, exist_ok=True)
        with open(Path(directory, CONFIG_NAME), "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "TrajVLMVideoProcessor":
        path = Path(directory, CONFIG_NAME)
        if not path.is_file():
            raise FileNotFoundError(f"TrajVLMVideoProcessor.from_pretrained: {path} not found")
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def __repr__(self) -> str:
        return f"TrajVLMVideoProcessor({self.to_dict()})"

    # ---- processing --------------------------------------------------------------------------------------
    def __call__(self, video) -> torch.Tensor:
        frames = _as_uint8_tchw(video)  # (T,3,H,W) uint8
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        out = []
        for chunk in frames.split(self.chunk_frames):  # bounded float memory on long / large videos
            x = chunk.float().div_(255.0)  # (t,3,H,W) in [0,1]
            if x.shape[-2:] != (self.size, self.size):
                antialias = self.resample in ("bilinear", "bicubic")
                x = F.interpolate(x, size=(self.size, self.size), mode=self.resample, antialias=antialias)
                x = x.clamp_(0.0, 1.0)
            out.append((x - mean) / std)
        return torch.cat(out)  # (T,3,S,S) float32

    def preprocess(self, videos: Sequence) -> list[torch.Tensor]:
        return [self(v) for v in videos]


def _as_uint8_tchw(video) -> torch.Tensor:
    if hasattr(video, "frames") and not isinstance(video, (np.ndarray, torch.Tensor)):
        video = video.frames  # VideoClip
    if isinstance(video, (list, tuple)):
        if not video:
            raise VideoProcessorError("TrajVLMVideoProcessor: got an empty list of frames")
        video = np.stack([np.asarray(f) for f in video])  # PIL images / (H,W,3) arrays
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
    if not isinstance(video, torch.Tensor):
        raise VideoProcessorError(
            f"TrajVLMVideoProcessor: expected frames (T,H,W,3) uint8 (ndarray, tensor, list, VideoClip), "
            f"got {type(video).__name__}"
        )
    if video.dtype != torch.uint8:
        raise VideoProcessorError(f"TrajVLMVideoProcessor: frames must be uint8 RGB, got dtype {video.dtype}")
    if video.ndim != 4 or (video.shape[-1] != 3 and video.shape[1] != 3):
        raise VideoProcessorError(
            f"TrajVLMVideoProcessor: frames must be (T,H,W,3) or (T,3,H,W), got shape {tuple(video.shape)}"
        )
    if video.shape[0] == 0:
        raise VideoProcessorError("TrajVLMVideoProcessor: got zero frames")
    if video.shape[-1] == 3:
        video = video.permute(0, 3, 1, 2)
    return video  # (T,3,H,W)
