"""Per-user session state and the UI handlers, free of gradio.

Each handler is a generator of *updates*: dicts keyed by UI slot name ("chat", "question", "status",
"gallery", "stats_md", "stats", "state"); a slot left out is left unchanged. `app.py` maps slots to components.
Errors never escape a handler: bad input and unreadable videos become a clear message in the chat (and
in the status line); anything unexpected is logged with its traceback and reported the same way, so one
user's bad file never stops the app serving others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trajvlm.video import VideoDecodeError

from .pipeline import (
    AnswerDelta,
    AnswerDone,
    DemoInputError,
    PreparedVideo,
    Progress,
    TokenizedVideo,
    check_question,
    check_sampling,
    effective_budget,
    model_input_size,
    prepare_video,
    stats_for,
    stream_answer,
    tokenize_prepared,
    tokenized_from_video_tokens,
    video_key,
)
from .settings import DemoSettings
from .stats import DemoStats

logger = logging.getLogger(__name__)

FALLBACK_FRAME_SIZE = 224  # decode size when neither the settings nor the model name one
WARN = "⚠ "  # glyphs chosen from what DejaVu Sans (Debian's default font) has


@dataclass
class SessionState:
    """What one browser session (or one gradio_client) has loaded; kept server-side by gr.State."""

    prepared: PreparedVideo | None = None
    tokenized: TokenizedVideo | None = None
    tokenized_budget: int | None = None  # the token budget `tokenized` was computed with
    history: list[tuple[str, str]] = field(default_factory=list)  # (question, answer) turns the model sees
    stats: DemoStats = field(default_factory=DemoStats)

    def forget_video(self) -> None:
        self.prepared, self.tokenized, self.tokenized_budget = None, None, None
        self.history.clear()
        self.stats = DemoStats()


def user_message(exc: BaseException) -> str:
    """The message shown to the user for a failed request (unexpected errors are logged with traceback)."""
    if isinstance(exc, DemoInputError):
        return str(exc)
    if isinstance(exc, VideoDecodeError):
        name = Path(exc.path).name if getattr(exc, "path", None) else "the file"
        reason = getattr(exc, "reason", str(exc))
        return f"Could not read the video {name!r}: {reason}. Please upload a different video file."
    logger.error("demo request failed", exc_info=exc)
    return f"Something went wrong ({type(exc).__name__}: {exc}). The app is still running: try again or use another video."


def _video_path(video) -> str | None:
    """A filepath from what gradio passes for a video (str path, FileData dict, or {'video': ...})."""
    if video is None:
        return None
    if isinstance(video, dict):
        inner = video.get("video", video)
        if isinstance(inner, dict):
            return inner.get("path")
        return inner
    return getattr(video, "path", None) or str(video)


def _progress_text(p: Progress) -> str:
    if p.total > 1:
        return f"{p.message}  {p.bar()}"
    return p.message


class DemoHandlers:
    """The UI's event handlers, bound to one loaded `TrajVLMChat` shared by every session."""

    def __init__(self, chat, settings: DemoSettings):
        self.chat = chat
        self.settings = settings
        self.frame_size = settings.frame_size or model_input_size(chat) or FALLBACK_FRAME_SIZE

    # -- shared steps ------------------------------------------------------------------------------------------

    def _ensure_prepared(self, state: SessionState, path, max_frames, fps) -> Iterator[Progress]:
        """Decode the video into `state.prepared` unless the same frames are already there."""
        if path is None:
            raise DemoInputError("Please upload a video or pick one of the examples first.")
        try:
            key = video_key(path, max_frames, fps, self.frame_size)
        except OSError:
            raise DemoInputError("The uploaded video is no longer available; please upload it again.") from None
        if state.prepared is not None and state.prepared.key == key:
            return
        if state.prepared is None or state.prepared.key[0] != key[0]:
            state.history.clear()  # a different file: a new conversation for the model
        state.prepared, state.tokenized, state.tokenized_budget = None, None, None
        for event in prepare_video(path, max_frames=max_frames, fps=fps, size=self.frame_size,
                                   settings=self.settings):
            if isinstance(event, PreparedVideo):
                state.prepared = event
            else:
                yield event

    def _stats_update(self, state: SessionState, stats: DemoStats) -> dict:
        state.stats = stats
        return {"stats_md": stats.to_markdown(), "stats": stats.to_dict()}

    # -- events ------------------------------------------------------------------------------------------------

    def process_video(self, video, max_frames, fps, token_budget, state: SessionState | None) -> Iterator[dict]:
        """Video uploaded / example picked / sampling changed: decode in chunks, tokenize, draw the overlays."""
        state = state if state is not None else SessionState()
        path = _video_path(video)
        if path is None:
            state.forget_video()
            yield {"status": "Upload a video or pick an example.", "gallery": [], "state": state,
                   **self._stats_update(state, DemoStats())}
            return
        try:
            max_frames, fps, token_budget = check_sampling(max_frames, fps, token_budget, self.settings)
            for p in self._ensure_prepared(state, path, max_frames, fps):
                yield {"status": _progress_text(p), "state": state}
            yield {"status": f"Tokenizing {state.prepared.num_frames} frames into trajectories…", "state": state}
            if state.tokenized is None or state.tokenized_budget != token_budget:
                state.tokenized = tokenize_prepared(self.chat, state.prepared, token_budget=token_budget,
                                                    settings=self.settings)
                state.tokenized_budget = token_budget
            t = state.tokenized
            stats = stats_for(state.prepared, t, effective_budget(self.chat, token_budget))
            yield {"status": f"✓ {t.num_trajectories} trajectories → {t.num_visual_tokens} visual tokens "
                             f"(patch baseline: {t.num_patch_tokens}). Ask a question!",
                   "gallery": t.gallery, "state": state, **self._stats_update(state, stats)}
        except Exception as e:  # noqa: BLE001 -- the boundary: reported to the user, logged when unexpected
            yield {"status": WARN + user_message(e), "gallery": [], "state": state}

    def chat_turn(self, question, messages, video, max_frames, fps, token_budget,
                  state: SessionState | None) -> Iterator[dict]:
        """One chat turn: (decode + tokenize if needed) then stream the answer into the chat."""
        state = state if state is not None else SessionState()
        messages = list(messages or [])
        try:
            q = check_question(question, self.settings)
        except DemoInputError as e:
            messages.append({"role": "assistant", "content": WARN + str(e)})
            yield {"chat": messages, "status": WARN + str(e), "state": state}
            return
        messages.append({"role": "user", "content": q})
        messages.append({"role": "assistant", "content": "…"})

        def show(text: str) -> dict:
            messages[-1] = {"role": "assistant", "content": text}
            return {"chat": messages, "state": state}

        yield {**show("…"), "question": ""}
        try:
            max_frames, fps, token_budget = check_sampling(max_frames, fps, token_budget, self.settings)
            for p in self._ensure_prepared(state, _video_path(video), max_frames, fps):
                yield {**show(_progress_text(p)), "status": _progress_text(p)}
            prepared = state.prepared
            for event in stream_answer(self.chat, prepared, q, state.history, token_budget=token_budget,
                                       settings=self.settings):
                if isinstance(event, Progress):
                    yield {**show(_progress_text(event)), "status": _progress_text(event)}
                elif isinstance(event, AnswerDelta):
                    yield show(event.text)
                elif isinstance(event, AnswerDone):
                    update = {**show(event.text or "(empty answer)"), "status": "✓ Answered."}
                    state.history.append((q, event.text))
                    response = event.response
                    if response.video_tokens is not None and (state.tokenized is None
                                                              or state.tokenized_budget != token_budget):
                        encode_s = (event.stats.encode_s or 0.0)
                        state.tokenized = tokenized_from_video_tokens(response.video_tokens, prepared, encode_s, self.settings)
                        state.tokenized_budget = token_budget
                        update["gallery"] = state.tokenized.gallery
                    update.update(self._stats_update(state, event.stats))
                    yield update
        except Exception as e:  # noqa: BLE001 -- the boundary: reported to the user, logged when unexpected
            yield {**show(WARN + user_message(e)), "status": WARN + user_message(e)}

    def clear(self, state: SessionState | None) -> dict:
        state = state if state is not None else SessionState()
        state.history.clear()
        return {"chat": [], "question": "", "status": "Conversation cleared.", "state": state}

    def ask(self, video, question, max_frames=None, fps=None, token_budget=None) -> Iterator[tuple[str, dict]]:
        """Stateless API: one question about one video. Streams (answer so far, stats dict).

        Errors come back as the answer text (starting with the warning sign) and `stats["error"]`.
        """
        state = SessionState()
        stats: dict = {}
        try:
            q = check_question(question, self.settings)
            max_frames, fps, token_budget = check_sampling(max_frames, fps, token_budget, self.settings)
            for _ in self._ensure_prepared(state, _video_path(video), max_frames, fps):
                pass
            for event in stream_answer(self.chat, state.prepared, q, [], token_budget=token_budget,
                                       settings=self.settings):
                if isinstance(event, AnswerDelta):
                    yield event.text, stats
                elif isinstance(event, AnswerDone):
                    yield event.text, event.stats.to_dict()
        except Exception as e:  # noqa: BLE001 -- the boundary: reported to the caller, logged when unexpected
            msg = user_message(e)
            yield WARN + msg, {"error": msg}
