"""The demo's work, free of gradio: check a request, decode a video chunk by chunk, tokenize it, stream an answer.

Every long step is a generator of events, so the UI (and the CLI) can show progress while it runs:

    Progress(stage, done, total, message)    decode chunk i/n, tokenizing, generating
    PreparedVideo                            the sampled frames (at most `max_frames`, `size` x `size` px)
    AnswerDelta(text, piece)                 the answer so far / the new piece
    AnswerDone(text, response, stats)        the final answer and its numbers

Memory stays bounded for any video length: frames are decoded `chunk_frames` at a time by
`iter_video_chunks`, resized by the decoder to `size` x `size`, and at most `max_frames` are kept.
Bad requests raise `DemoInputError` (message meant for the user); unreadable videos raise
`trajvlm.video.VideoDecodeError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trajvlm.video import (
    VideoClip,
    iter_video_chunks,
    probe_video,
    sample_frame_indices,
)

from .overlay import TrajectoryLayout, overlay_frames
from .settings import DemoSettings
from .stats import DemoStats


class DemoInputError(ValueError):
    """A request the demo refuses (empty question, video too long, bad setting); the message is shown to the user."""


@dataclass
class Progress:
    stage: str  # "decode" | "tokenize" | "generate"
    done: int
    total: int
    message: str

    def bar(self, width: int = 12) -> str:
        filled = 0 if self.total <= 0 else round(width * min(self.done, self.total) / self.total)
        return "▓" * filled + "░" * (width - filled)


@dataclass
class PreparedVideo:
    """The sampled frames of one video, ready for the model (what every later turn reuses)."""

    clip: VideoClip  # frames (T,H,W,3) uint8, T <= max_frames
    key: tuple  # video_key(...): same key = same frames
    chunks: int
    decode_s: float

    @property
    def num_frames(self) -> int:
        return len(self.clip)


@dataclass
class TokenizedVideo:
    """The trajectories of a prepared video and the overlay pictures drawn from them."""

    layout: TrajectoryLayout
    num_visual_tokens: int
    num_patch_tokens: int
    num_trajectories: int
    encode_s: float
    gallery: list[tuple[np.ndarray, str]] = field(default_factory=list)  # [(image (H,W,3) uint8, caption)]


@dataclass
class AnswerDelta:
    text: str  # the whole answer so far
    piece: str  # what this step added


@dataclass
class AnswerDone:
    text: str
    response: object  # trajvlm.chat.ChatResponse
    stats: DemoStats


# ---------------------------------------------------------------------------------------------------------------
# request checks


def check_question(question: str | None, settings: DemoSettings) -> str:
    """The stripped question; DemoInputError when it is empty or too long."""
    q = (question or "").strip()
    if not q:
        raise DemoInputError("Please type a question about the video.")
    if len(q) > settings.max_question_chars:
        raise DemoInputError(f"The question is {len(q)} characters long; the limit is {settings.max_question_chars}.")
    return q


def check_sampling(max_frames, fps, token_budget, settings: DemoSettings) -> tuple[int, float | None, int | None]:
    """Clamp-free validation of the UI knobs: (max_frames, fps or None, token_budget or None)."""
    try:
        max_frames = int(max_frames) if max_frames is not None else settings.default_frames
    except (TypeError, ValueError):
        raise DemoInputError(f"frames must be a whole number, got {max_frames!r}") from None
    if not 1 <= max_frames <= settings.max_frames_limit:
        raise DemoInputError(f"frames must be between 1 and {settings.max_frames_limit}, got {max_frames}")
    if fps in (None, "", 0, 0.0):
        fps = None
    else:
        try:
            fps = float(fps)
        except (TypeError, ValueError):
            raise DemoInputError(f"fps must be a number, got {fps!r}") from None
        if not (math.isfinite(fps) and 0 < fps <= settings.max_fps):
            raise DemoInputError(f"fps must be in (0, {settings.max_fps}], got {fps}")
    if token_budget in (None, "", 0):
        token_budget = settings.default_token_budget
    else:
        try:
            token_budget = int(token_budget)
        except (TypeError, ValueError):
            raise DemoInputError(f"token budget must be a whole number, got {token_budget!r}") from None
        if not 1 <= token_budget <= settings.max_token_budget:
            raise DemoInputError(f"token budget must be between 1 and {settings.max_token_budget}, got {token_budget}")
    return max_frames, fps, token_budget


def video_key(path: str | Path, max_frames: int, fps: float | None, size: int) -> tuple:
    """Identifies the sampled frames: same file (path, size, mtime) and same sampling. OSError if it is gone."""
    p = Path(path)
    st = p.stat()
    return (str(p.resolve()), st.st_size, st.st_mtime_ns, max_frames, fps, size)


def _format_duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def model_input_size(chat) -> int | None:
    """The square frame side the model's video processor resizes to, when the chat exposes it."""
    processor = getattr(chat, "processor", None)
    size = getattr(getattr(processor, "video_processor", None), "size", None)
    return int(size) if isinstance(size, int) and size > 0 else None


# ---------------------------------------------------------------------------------------------------------------
# decoding


def prepare_video(
    path: str | Path | None, *, max_frames: int, fps: float | None, size: int, settings: DemoSettings
) -> Iterator[Progress | PreparedVideo]:
    """Decode the sampled frames of `path` chunk by chunk: Progress events, then one PreparedVideo.

    Frames are resized by the decoder to `size` x `size` (the model's input is square), so memory is at most
    `max_frames * size * size * 3` bytes whatever the video's length and resolution.

    Raises DemoInputError (no video, too long) and VideoDecodeError (unreadable) before any frame is decoded
    when it can tell from the metadata.
    """
    if path is None or str(path).strip() == "":
        raise DemoInputError("Please upload a video or pick one of the examples first.")
    path = Path(path)
    t0 = time.perf_counter()
    info = probe_video(path)  # VideoDecodeError for a missing / empty / non-video / corrupt file
    if info.duration > settings.max_video_seconds:
        raise DemoInputError(
            f"The video is {_format_duration(info.duration)} long; this demo accepts videos up to "
            f"{_format_duration(settings.max_video_seconds)}."
        )
    total = len(sample_frame_indices(info.num_frames, info.fps, max_frames=max_frames, fps=fps))
    n_chunks = max(1, -(-total // settings.chunk_frames))
    yield Progress("decode", 0, total, f"Decoding {total} frames from a {_format_duration(info.duration)} video "
                                       f"in {n_chunks} chunk(s)…")
    parts: list[VideoClip] = []
    done = 0
    for chunk in iter_video_chunks(path, chunk_frames=settings.chunk_frames, max_frames=max_frames, fps=fps, size=size):
        parts.append(chunk)
        done += len(chunk)
        yield Progress("decode", done, total, f"Decoded {done}/{total} frames (chunk {len(parts)}/{n_chunks})")
    if not parts:
        raise DemoInputError(f"No frames could be sampled from {path.name}.")
    first = parts[0]
    clip = VideoClip(
        frames=np.concatenate([c.frames for c in parts]),  # (T,H,W,3)
        timestamps=np.concatenate([c.timestamps for c in parts]),  # (T,)
        frame_indices=np.concatenate([c.frame_indices for c in parts]),  # (T,)
        fps=first.fps,
        duration=first.duration,
        num_source_frames=first.num_source_frames,
        backend=parts[-1].backend,
        path=first.path,
    )
    yield PreparedVideo(clip=clip, key=video_key(path, max_frames, fps, size), chunks=len(parts),
                        decode_s=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------------------
# tokenizing and answering (the model side goes through trajvlm.chat.TrajVLMChat only)


def load_chat(model_path: str | Path, *, device: str = "cpu", max_frames: int = 64):
    """Load a TrajVLMChat from a folder written by `save_pretrained` (FileNotFoundError naming it if absent)."""
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no TrajVLM model folder at {str(path)!r} (no config.json there): pass --model PATH (a folder written "
            f"by save_pretrained) or set TRAJVLM_DEMO_MODEL"
        )
    from trajvlm.chat import (
        TrajVLMChat,  # torch + transformers: only when a model is actually loaded
    )

    return TrajVLMChat.from_pretrained(str(path), device=device, max_frames=max_frames)


def layout_from_video_tokens(video_tokens) -> TrajectoryLayout:
    """`VideoTokens` (tensors or arrays) -> TrajectoryLayout (numpy)."""

    def arr(x):
        if x is None:
            return None
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return np.asarray(x)

    hard_ids = arr(getattr(video_tokens, "hard_ids", None))
    if hard_ids is not None and hard_ids.ndim == 4:  # (1,T,h,w) batch of one
        hard_ids = hard_ids[0]
    return TrajectoryLayout(
        trajectory_ids=arr(video_tokens.trajectory_ids),
        boxes=arr(video_tokens.boxes),
        presence=arr(video_tokens.presence),
        hard_ids=hard_ids,
    )


def tokenized_from_video_tokens(video_tokens, prepared: PreparedVideo, encode_s: float, settings: DemoSettings) -> TokenizedVideo:
    layout = layout_from_video_tokens(video_tokens)
    clip = prepared.clip
    gallery = overlay_frames(clip.frames, layout, timestamps=clip.timestamps, count=settings.gallery_frames,
                             out_size=settings.overlay_size)
    return TokenizedVideo(
        layout=layout,
        num_visual_tokens=int(video_tokens.num_visual_tokens),
        num_patch_tokens=int(video_tokens.num_patch_tokens),
        num_trajectories=int(video_tokens.num_trajectories),
        encode_s=encode_s,
        gallery=gallery,
    )


def effective_budget(chat, token_budget: int | None) -> int:
    """The visual-token cap in force for a request: TrajVLMChat's resolution (the request's, else the chat's
    default, else the model config's)."""
    return chat.resolve_token_budget(token_budget)


def tokenize_prepared(chat, prepared: PreparedVideo, *, token_budget: int | None, settings: DemoSettings) -> TokenizedVideo:
    """Run TrajTok on the prepared frames (no LLM) and draw the overlays."""
    t0 = time.perf_counter()
    video_tokens = chat.tokenize_video(prepared.clip, token_budget=token_budget)
    return tokenized_from_video_tokens(video_tokens, prepared, time.perf_counter() - t0, settings)


def stats_for(prepared: PreparedVideo | None, tokenized: TokenizedVideo | None, token_budget: int | None,
              response=None) -> DemoStats:
    """The stats row for what is known so far (a response's numbers win over the tokenize-only ones)."""
    s = DemoStats(token_budget=token_budget)
    if prepared is not None:
        s.frames, s.video_seconds = prepared.num_frames, float(prepared.clip.duration)
        s.chunks, s.decode_s = prepared.chunks, prepared.decode_s
    if tokenized is not None:
        s.visual_tokens, s.patch_tokens = tokenized.num_visual_tokens, tokenized.num_patch_tokens
        s.trajectories, s.encode_s = tokenized.num_trajectories, tokenized.encode_s
    if response is not None:
        s.visual_tokens, s.patch_tokens = int(response.num_visual_tokens), int(response.num_patch_tokens)
        s.trajectories = int(response.num_trajectories)
        timings = response.timings if isinstance(response.timings, dict) else vars(response.timings)
        s.encode_s = timings.get("encode_s", s.encode_s)
        s.generate_s = timings.get("generate_s")
    return s


def stream_answer(
    chat, prepared: PreparedVideo, question: str, history: Sequence[tuple[str, str]], *,
    token_budget: int | None, settings: DemoSettings,
) -> Iterator[Progress | AnswerDelta | AnswerDone]:
    """Stream the answer to `question` about the prepared video (`history`: earlier (question, answer) turns)."""
    yield Progress("generate", 0, 1, f"Tokenizing {prepared.num_frames} frames and generating…")
    text, response = "", None
    for delta in chat.ask_stream(prepared.clip, question, list(history), max_new_tokens=settings.max_new_tokens,
                                 token_budget=token_budget):
        piece = delta.text or ""
        if piece:
            text += piece
            yield AnswerDelta(text=text, piece=piece)
        if getattr(delta, "response", None) is not None:
            response = delta.response
    if response is None:
        raise RuntimeError("TrajVLMChat.ask_stream ended without a final ChatResponse")
    final = response.text if response.text is not None else text
    stats = stats_for(prepared, None, effective_budget(chat, token_budget), response)
    yield AnswerDone(text=final, response=response, stats=stats)
