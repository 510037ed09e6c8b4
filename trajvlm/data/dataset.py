"""Lazy LLaVA-Video training dataset: JSON/JSONL/YAML-mixture records -> processor inputs, one sample at a time.

A record (LLaVA-Video JSON):

```json
{"id": "v1", "video": "videos/train/v1.mp4",
 "conversations": [{"from": "human", "value": "<video>\\nWhat moves?"}, {"from": "gpt", "value": "A red square."}]}
```

- `video`: a path (or a list of paths, one `<video>` placeholder each) relative to the entry's `video_folder`
  (default: the JSON file's folder). Optional `start`/`end` (seconds, single video) read only that window.
- `image`: the same with an image file, read with PIL as a 1-frame video; the placeholder is `<video>` too.
- neither: a text-only sample (no placeholder allowed).
- `x.mp4` may have `x_mask.npz` / `x_graph.npz` sidecars (`sidecars.py`), loaded per the `sidecars` policy.

Records are validated when the dataset is built (a malformed record raises `DataFormatError` naming its
file, index and id). Videos are decoded in `__getitem__` through the shared `trajvlm.video.load_video`.
A sample whose media cannot be read (`VideoDecodeError`, an unreadable image, a bad sidecar) is not
replaced: `__getitem__` returns a `SkippedSample` marker (logged with id, path and reason), the collator
drops it and reports `num_skipped` in the batch, and `BadSampleTracker` (collate.py) stops the run when
too many are bad. Counts travel with the batches, so this works with DataLoader workers.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trajvlm.data.mixture import DataFormatError, DataSource, load_sources
from trajvlm.data.options import option_conversations, option_targets
from trajvlm.data.sidecars import SidecarError, load_sidecars, validate_policy
from trajvlm.video import VideoDecodeError, load_video

logger = logging.getLogger(__name__)

ROLES = ("human", "gpt")
DEFAULT_VIDEO_TOKEN = "<video>"

__all__ = [
    "DataFormatError",
    "LazyVideoTextDataset",
    "MediaReadError",
    "SkippedSample",
    "VideoDataConfig",
    "estimate_length",
    "normalize_conversations",
    "record_problem",
    "validate_record",
]


class MediaReadError(RuntimeError):
    """An image file cannot be read (missing, not an image, truncated). Names the path and why."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"cannot read image {path!r}: {reason}")


@dataclass(frozen=True)
class SkippedSample:
    """What `__getitem__` returns for a sample whose media cannot be read (the collator drops it)."""

    index: int
    sample_id: str
    path: str  # the media file that failed
    reason: str
    source: str  # the JSON file of the record

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.sample_id, "path": self.path, "reason": self.reason, "source": self.source}


@dataclass
class VideoDataConfig:
    """How samples are read and how long they are estimated to be (for length-grouped sampling)."""

    max_frames: int | None = 16  # frames per video (uniform linspace), load_video's max_frames
    fps: float | None = None  # cap on the sampling rate, load_video's fps
    video_size: int | None = None  # resize at decode time (square side), None = source size
    sidecars: str = "auto"  # "auto" (load when present) | "require" | "ignore"
    video_token: str = DEFAULT_VIDEO_TOKEN
    max_length: int | None = None  # text tokens per sample, passed to the processor (which cuts the tail)
    seed: int = 0  # random:N / sampling_ratio draws of a mixture
    # length estimate = text tokens + visual tokens, visual = min(frames * visual_tokens_per_frame, visual_token_budget)
    visual_tokens_per_frame: int = 16
    visual_token_budget: int | None = None
    chars_per_token: float = 4.0
    # per answer token, the tokens that continue a listed option (`options.option_targets`; the option loss)
    option_targets: bool = False

    def __post_init__(self):
        validate_policy(self.sidecars)
        if self.max_frames is not None and (int(self.max_frames) != self.max_frames or self.max_frames < 1):
            raise ValueError(f"max_frames must be a positive integer or None, got {self.max_frames!r}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive or None, got {self.fps!r}")
        if self.chars_per_token <= 0 or self.visual_tokens_per_frame < 0:
            raise ValueError("chars_per_token must be > 0 and visual_tokens_per_frame >= 0")


# ---------------------------------------------------------------------------------------------------------------
# record validation


def _media(record: dict) -> tuple[str | None, list]:
    """('video' | 'image' | None, list of paths)."""
    kind = "video" if "video" in record else "image" if "image" in record else None
    if kind is None:
        return None, []
    value = record[kind]
    paths = value if isinstance(value, list) else [value]
    return kind, paths


def record_id(record: dict, fallback: str) -> str:
    rid = record.get("id")
    return fallback if rid is None else str(rid)


def record_problem(record: Any, video_token: str = DEFAULT_VIDEO_TOKEN) -> str | None:
    """What is wrong with a record, or None when it is well-formed (see `validate_record`)."""
    if not isinstance(record, dict):
        return f"must be a JSON object, got {type(record).__name__}"
    if "video" in record and "image" in record:
        return "has both 'video' and 'image'; a sample holds one kind of media"
    conv = record.get("conversations")
    if conv is None:
        return "missing 'conversations'"
    if not isinstance(conv, list) or not conv:
        return "'conversations' must be a non-empty list of turns"
    has_gpt, n_placeholders = False, 0
    for t, turn in enumerate(conv):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            return f"turn {t} must be an object with 'from' and 'value', got {turn!r:.120}"
        role, value = turn["from"], turn["value"]
        if role not in ROLES:
            return f"turn {t}: 'from' must be one of {ROLES}, got {role!r}"
        if not isinstance(value, str):
            return f"turn {t}: 'value' must be a string, got {type(value).__name__}"
        has_gpt = has_gpt or role == "gpt"
        n_placeholders += value.count(video_token)
    if not has_gpt:
        return "has no 'gpt' turn: nothing to learn from"
    kind, paths = _media(record)
    if kind is not None and (not paths or not all(isinstance(p, str) and p for p in paths)):
        return f"'{kind}' must be a non-empty path or a list of them, got {record[kind]!r}"
    if n_placeholders != len(paths):
        hint = ""
        if video_token != "<image>" and any("<image>" in turn["value"] for turn in conv):
            hint = f" (found '<image>': images and videos both use {video_token!r}; convert with data_recipes/*/convert.py)"
        if kind is not None and n_placeholders == 0:
            return f"has a {kind} but no {video_token!r} placeholder in its conversations{hint}"
        return f"has {n_placeholders} {video_token!r} placeholder(s) but {len(paths)} {kind or 'video'}(s){hint}"
    if "start" in record or "end" in record:
        for key in ("start", "end"):
            if key in record:
                if kind != "video" or len(paths) != 1:
                    return f"'{key}' needs exactly one 'video'"
                v = record[key]
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                    return f"'{key}' must be a non-negative number of seconds, got {v!r}"
        if "start" in record and "end" in record and record["start"] >= record["end"]:
            return f"'start' ({record['start']}) must be < 'end' ({record['end']})"
    return None


def validate_record(record: Any, *, where: str, video_token: str = DEFAULT_VIDEO_TOKEN) -> None:
    """Raise `DataFormatError` (prefixed with `where`, e.g. "file.json: sample #3 (id='x')") if malformed.

    Checks: conversations is a non-empty list of {"from": human|gpt, "value": str} with at least one gpt
    turn; at most one of video/image, each a non-empty path or list of paths; as many `<video>`
    placeholders in the turns as media; start/end only with one video and start < end.
    """
    problem = record_problem(record, video_token)
    if problem is not None:
        raise DataFormatError(f"{where}: {problem}")


def normalize_conversations(
    conversations: Any, *, where: str, source_tokens: tuple[str, ...] = ("<image>",), video_token: str = DEFAULT_VIDEO_TOKEN
) -> list[dict]:
    """Upstream LLaVA turns -> ours: `{"from","value"}` only, every placeholder (`source_tokens` or `video_token`)
    rewritten to `video_token` and moved to the front of its turn (`"<video>\\n" + rest`), LLaVA's convention.

    Used by the data_recipes converters. A placeholder outside a human turn, or more than one in a turn,
    raises DataFormatError (prefixed with `where`).
    """
    if not isinstance(conversations, list) or not conversations:
        raise DataFormatError(f"{where}: missing or empty 'conversations'")
    tokens = tuple(dict.fromkeys((*source_tokens, video_token)))
    turns = []
    for t, turn in enumerate(conversations):
        if not isinstance(turn, dict) or "from" not in turn or not isinstance(turn.get("value"), str):
            raise DataFormatError(f"{where}: turn {t} must have 'from' and a string 'value'")
        value = turn["value"]
        n = sum(value.count(tok) for tok in tokens)
        if n:
            if turn["from"] != "human" or n != 1:
                raise DataFormatError(f"{where}: turn {t} ({turn['from']}) has {n} placeholder(s); expected one, in a human turn")
            for tok in tokens:
                value = value.replace(tok, "")
            value = value.strip()
            value = f"{video_token}\n{value}" if value else video_token
        turns.append({"from": turn["from"], "value": value})
    return turns


def estimate_length(record: dict, config: VideoDataConfig) -> int:
    """Estimated tokens of a sample: text (chars / chars_per_token) + visual (frames x per-frame, capped by budget)."""
    chars = sum(len(turn["value"]) for turn in record["conversations"])
    text = math.ceil(chars / config.chars_per_token)
    kind, paths = _media(record)
    if kind is None:
        return text
    if kind == "image":
        frames = 1
    else:
        frames = config.max_frames if config.max_frames is not None else 64
        if config.fps is not None and "start" in record and "end" in record:
            frames = min(frames, max(1, math.floor((record["end"] - record["start"]) * config.fps)))
    visual = frames * config.visual_tokens_per_frame
    if config.visual_token_budget is not None:
        visual = min(visual, config.visual_token_budget)
    return text + visual * len(paths)


# ---------------------------------------------------------------------------------------------------------------
# media reading


def read_image(path: str) -> np.ndarray:
    """An image file as a 1-frame video: (1,H,W,3) uint8 RGB. MediaReadError when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise MediaReadError(path, "file not found")
    try:
        with Image.open(path) as im:
            rgb = np.array(im.convert("RGB"), dtype=np.uint8)  # (H,W,3), writable copy
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise MediaReadError(path, f"{type(e).__name__}: {e}") from e
    return rgb[None]  # (1,H,W,3)


def _as_1d_long(value: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(value)
    if t.ndim == 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 1:
        raise ValueError(f"processor returned {name} of shape {tuple(t.shape)}; expected (L,) or (1,L) for one sample")
    return t.long()


def _as_video_list(value: Any) -> list[torch.Tensor]:
    """pixel_values_videos of one sample -> list of (T,3,S,S) tensors."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            out.extend(_as_video_list(v))
        return out
    t = torch.as_tensor(value)
    if t.ndim == 5:  # (V,T,3,S,S)
        return list(t.unbind(0))
    if t.ndim == 4:  # (T,3,S,S)
        return [t]
    raise ValueError(f"processor returned pixel_values_videos of shape {tuple(t.shape)}; expected (T,3,S,S) or (V,T,3,S,S)")


# ---------------------------------------------------------------------------------------------------------------
# the dataset


class LazyVideoTextDataset(torch.utils.data.Dataset):
    """LLaVA-Video JSON/JSONL file or YAML mixture -> tokenized samples with decoded videos, read lazily.

    `processor(conversations=[...turns...], videos=[VideoClip | (T,H,W,3) uint8, ...])` must return a
    mapping with `input_ids`, `labels` ((L,) or (1,L)), optionally `attention_mask`, and
    `pixel_values_videos` ((T,3,S,S), (V,T,3,S,S) or a list) -- `TrajVLMProcessor` does. With
    `config.max_length` set, `max_length=` is passed too. Processor errors (e.g. no supervised token left)
    propagate with a note naming the sample's file, position and id.

    Item (a dict) or a `SkippedSample`:
        input_ids (L,) long, labels (L,) long, attention_mask (L,) long,
        pixel_values_videos: list of V tensors (T,3,S,S) (empty for text-only),
        video_masks / video_graphs: list of V entries, (T,H,W) / (N,T) long or None,
        option_ids: (L,K) long (`options.option_targets`) with `config.option_targets`, else None,
        sample_id: str, index: int
    """

    def __init__(
        self,
        data_path: str | os.PathLike,
        processor,
        config: VideoDataConfig | None = None,
        *,
        video_folder: str | os.PathLike | None = None,
        image_folder: str | os.PathLike | None = None,
    ):
        self.processor = processor
        self.config = config or VideoDataConfig()
        self.data_path = str(data_path)
        sources = load_sources(
            data_path,
            video_folder=None if video_folder is None else str(video_folder),
            image_folder=None if image_folder is None else str(image_folder),
            seed=self.config.seed,
        )
        self._sources: list[DataSource] = sources
        # flat index -> (source, position in source): offsets of each source in the concatenation
        self._offsets = np.cumsum([0] + [len(s.records) for s in sources])  # (S+1,)
        if self._offsets[-1] == 0:
            raise DataFormatError(f"{self.data_path}: no samples (after mixture sampling)")
        token = self.config.video_token
        self.num_option_samples = 0  # records with option targets (counted with config.option_targets only)
        for s in sources:
            for j, rec in enumerate(s.records):
                problem = record_problem(rec, token)
                if problem is None and self.config.option_targets:
                    try:
                        self.num_option_samples += option_conversations(rec) is not None
                    except ValueError as e:  # a malformed option line
                        problem = str(e)
                if problem is not None:  # `where` is only formatted on failure: this loop sees every record
                    raise DataFormatError(f"{self._where(s, j, rec)}: {problem}")
        self._lengths: list[int] | None = None
        if self.config.option_targets:
            if self.num_option_samples == 0:
                raise DataFormatError(
                    f"{self.data_path}: option targets asked for (the option loss) but no record is a multiple-choice "
                    "question answered by its option's text or letter (see trajvlm.data.options)"
                )
            logger.info("option targets for %d of %d samples", self.num_option_samples, len(self))

    # -- indexing helpers

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, index: int) -> tuple[DataSource, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        k = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self._sources[k], index - int(self._offsets[k])

    @staticmethod
    def _where(source: DataSource, j: int, record: dict) -> str:
        pos = int(source.record_indices[j])
        return f"{source.spec.json_path}: sample #{pos} (id={record_id(record, f'#{pos}')!r})"

    def record(self, index: int) -> dict:
        """The raw JSON record of sample `index`."""
        source, j = self._locate(index)
        return source.records[j]

    def media_paths(self, index: int) -> list[str]:
        """Absolute-or-as-given paths of the sample's media files (empty for text-only)."""
        source, j = self._locate(index)
        kind, paths = _media(source.records[j])
        if kind is None:
            return []
        folder = source.spec.video_folder if kind == "video" else source.spec.image_folder
        base = Path(folder) if folder is not None else Path(source.spec.json_path).resolve().parent
        return [p if os.path.isabs(p) else str(base / p) for p in paths]

    @property
    def lengths(self) -> list[int]:
        """Estimated token length of every sample (text + visual), for `LengthGroupedSampler`."""
        if self._lengths is None:
            self._lengths = [estimate_length(rec, self.config) for s in self._sources for rec in s.records]
        return self._lengths

    # -- reading one sample

    def _load_media(self, record: dict, paths: list[str]) -> tuple[list, list]:
        """Decoded videos (VideoClip / (1,H,W,3) frames) and their sidecars. Raises the read errors."""
        kind, _ = _media(record)
        cfg = self.config
        videos, sidecars = [], []
        for p in paths:
            if kind == "image":
                videos.append(read_image(p))  # (1,H,W,3)
                sidecars.append(None)
                continue
            clip = load_video(p, max_frames=cfg.max_frames, fps=cfg.fps, start=record.get("start"),
                              end=record.get("end"), size=cfg.video_size)
            videos.append(clip)
            sidecars.append(load_sidecars(p, policy=cfg.sidecars, frame_indices=clip.frame_indices,
                                          num_source_frames=clip.num_source_frames))
        return videos, sidecars

    def __getitem__(self, index: int) -> dict | SkippedSample:
        index = int(index)
        source, j = self._locate(index)
        record = source.records[j]
        sid = record_id(record, f"#{int(source.record_indices[j])}")
        paths = self.media_paths(index)
        try:
            videos, sidecars = self._load_media(record, paths)
        except (VideoDecodeError, SidecarError, MediaReadError) as e:
            return self._skip(index, sid, e.path, str(e), source)
        try:
            kwargs = {} if self.config.max_length is None else {"max_length": self.config.max_length}
            out = self.processor(conversations=record["conversations"], videos=videos, **kwargs)
            input_ids = _as_1d_long(out["input_ids"], "input_ids")  # (L,)
            labels = _as_1d_long(out["labels"], "labels")  # (L,)
            mask = out.get("attention_mask") if hasattr(out, "get") else None
            attention_mask = torch.ones_like(input_ids) if mask is None else _as_1d_long(mask, "attention_mask")
            pixel_values = _as_video_list(out.get("pixel_values_videos") if hasattr(out, "get") else None)
            options = None
            if self.config.option_targets:
                options = option_targets(self.processor, record, labels, num_videos=len(videos),
                                         max_length=self.config.max_length)  # (L,K) or None
        except Exception as e:
            e.add_note(f"while processing {self._where(source, j, record)}")
            raise
        if not (input_ids.shape == labels.shape == attention_mask.shape):
            raise ValueError(
                f"processor returned input_ids {tuple(input_ids.shape)}, labels {tuple(labels.shape)}, attention_mask "
                f"{tuple(attention_mask.shape)} for {self._where(source, j, record)}; they must match"
            )
        if len(pixel_values) != len(videos):
            raise ValueError(
                f"processor returned {len(pixel_values)} videos for {len(videos)} inputs ({self._where(source, j, record)})"
            )
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention_mask,
            "pixel_values_videos": pixel_values,
            "video_masks": [None if s is None else torch.from_numpy(s.masks) for s in sidecars],  # (T,H,W) long
            "video_graphs": [None if s is None else torch.from_numpy(s.graph) for s in sidecars],  # (N,T) long
            "option_ids": options,  # (L,K) long or None
            "sample_id": sid,
            "index": index,
        }

    def _skip(self, index: int, sid: str, path: str, reason: str, source: DataSource) -> SkippedSample:
        logger.warning("skipping sample %s (index %d, %s): %s", sid, index, source.spec.json_path, reason)
        return SkippedSample(index=index, sample_id=sid, path=str(path), reason=reason, source=source.spec.json_path)
