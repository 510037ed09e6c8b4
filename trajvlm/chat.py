"""TrajVLMChat: the one high-level API the demo and the lmms-eval plugin call.

    chat = TrajVLMChat.from_pretrained(path)
    r = chat.ask("clip.mp4", "What colour is the square?")          -> ChatResponse (text, token counts, timings)
    r = chat.ask("clip.mp4", "...", token_budget=32)                 -> this request: at most 32 visual tokens
    for d in chat.ask_stream("clip.mp4", "..."): print(d.text)      -> token-by-token pieces; the last carries .response
    logp, greedy = chat.score("clip.mp4", "Question ...", " A")     -> log p(continuation | video, context)
    vt = chat.tokenize_video("clip.mp4")                             -> VideoTokens (trajectories, boxes, hard ids)
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers.generation import BaseStreamer

from .model.modeling_trajvlm import TrajVLMForConditionalGeneration, VideoEncoding
from .model.processing_trajvlm import IGNORE_INDEX, TrajVLMProcessor


@dataclass
class VideoTokens:
    """What the connector made of one video (for overlays and token statistics)."""

    num_frames: int
    timestamps: np.ndarray  # (T,) seconds (frame index / fps when the source fps is unknown: 0..T-1)
    frames: np.ndarray  # (T,H,W,3) uint8, the sampled frames the model saw (before resizing)
    grid: tuple[int, int]  # (h,w) feature grid
    num_visual_tokens: int  # tokens given to the LLM
    num_patch_tokens: int  # what the patch baseline would use for the same frames
    num_trajectories: int  # 0 for the patch connector
    tokens_per_trajectory: int  # q (0 for the patch connector)
    trajectory_ids: np.ndarray  # (N,) int64 global trajectory ids
    boxes: np.ndarray  # (N,T,4) float (x0,y0,x1,y1) in [0,1], zeros where absent
    presence: np.ndarray  # (N,T) bool
    hard_ids: np.ndarray | None  # (T,h,w) int64 trajectory id of every feature cell (None for the patch connector)
    decode_s: float = 0.0
    encode_s: float = 0.0


@dataclass
class ChatResponse:
    text: str
    num_visual_tokens: int
    num_patch_tokens: int
    num_trajectories: int
    timings: dict[str, float] = field(default_factory=dict)  # decode_s, encode_s, generate_s
    video_tokens: VideoTokens | None = None


@dataclass
class ChatDelta:
    text: str  # a new piece of the answer ("" in the final delta)
    response: ChatResponse | None = None  # set on the last delta only


class _TokenQueue(BaseStreamer):
    """generate()'s streamer: each step's new token ids go into `queue` (the prompt's put is skipped);
    None marks the end. Batch of one: every put after the prompt is a (1,) or (1,1) tensor."""

    def __init__(self):
        self.queue: queue.Queue[list[int] | None] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.queue.put(None)


class IncrementalDecoder:
    """Token ids arriving one step at a time -> text pieces, as soon as they are known.

    Each step decodes ALL the new ids so far (so sentencepiece word-boundary spaces come out right) and emits
    what that text adds to what was already emitted. Held back: trailing U+FFFD (the bytes of a multi-byte
    character that has not fully arrived) and leading / trailing whitespace (the answer is stripped), so the
    pieces followed by `finish()` concatenate to exactly `decode(ids).strip()` whenever the text of a prefix of
    the ids is a prefix of the full text up to a trailing incomplete character (sentencepiece and byte-level
    BPE without `clean_up_tokenization_spaces`). Where a decoder rewrites earlier text -- sentencepiece's
    byte fallback turns a whole run of byte tokens into U+FFFD when the run is not valid UTF-8, e.g. byte
    token "A" followed by stray bytes -- the stream pauses until the text extends what was emitted again,
    and the final ChatResponse (always the full decode) can differ from the pieces.
    """

    def __init__(self, decode):
        self._decode = decode  # list[int] -> str
        self.ids: list[int] = []
        self.sent = ""

    def push(self, ids: Sequence[int]) -> str:
        """Add one step's ids; return the new piece ("" while nothing new is certain)."""
        self.ids.extend(ids)
        return self._emit(self._decode(self.ids).rstrip("\ufffd").strip())

    def finish(self) -> str:
        """The rest of the text (held-back characters included) once generation has ended."""
        return self._emit(self._decode(self.ids).strip())

    def _emit(self, text: str) -> str:
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        piece, self.sent = text[len(self.sent) :], text
        return piece


class TrajVLMChat:
    """Question answering over one video with a TrajVLM checkpoint (model + processor saved in one folder)."""

    def __init__(
        self,
        model: TrajVLMForConditionalGeneration,
        processor: TrajVLMProcessor,
        *,
        max_frames: int | None = 64,
        fps: float | None = None,
        token_budget: int | None = None,
    ):
        self.model = model.eval()
        self.processor = processor
        self.max_frames = max_frames
        self.fps = fps
        self.token_budget = token_budget  # the default for requests that give none (None: the model config's)
        if token_budget is not None:
            self.resolve_token_budget(token_budget)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        max_frames: int | None = 64,
        fps: float | None = None,
        token_budget: int | None = None,
        conv_template: str | None = None,
    ) -> "TrajVLMChat":
        model = TrajVLMForConditionalGeneration.from_pretrained(path, dtype=dtype).to(device)
        overrides = {"chat_template": conv_template} if conv_template else {}
        processor = TrajVLMProcessor.from_pretrained(path, **overrides)
        return cls(model, processor, max_frames=max_frames, fps=fps, token_budget=token_budget)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def resolve_token_budget(self, token_budget: int | None = None) -> int:
        """The visual-token cap a request runs with: `token_budget`, else this chat's default, else the model
        config's. ValueError naming the value unless it is a whole number >= 1.

        The trajtok connector keeps at most budget // q trajectories of q tokens each (at least one trajectory,
        so a budget below q still gives q tokens); the patch connector has a fixed token count and ignores it.
        """
        budget = token_budget
        if budget is None:
            budget = self.token_budget if self.token_budget is not None else self.model.config.token_budget
        if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ValueError(f"token_budget must be a whole number >= 1 (or None for the default), got {budget!r}")
        return int(budget)

    # ---- video ---------------------------------------------------------------------------------------------
    def _load(self, video) -> tuple[np.ndarray, np.ndarray, float]:
        """path | VideoClip | (T,H,W,3) uint8 -> frames, timestamps, decode seconds."""
        t0 = time.perf_counter()
        if isinstance(video, (str, os.PathLike)):
            from .video import load_video

            video = load_video(video, max_frames=self.max_frames, fps=self.fps)
        if hasattr(video, "frames") and hasattr(video, "timestamps"):
            frames, stamps = np.asarray(video.frames), np.asarray(video.timestamps, dtype=np.float64)
        else:
            frames = np.asarray(video)
            stamps = np.arange(len(frames), dtype=np.float64)
        return frames, stamps, time.perf_counter() - t0

    def _encode(self, video, token_budget: int) -> tuple[VideoEncoding, VideoTokens]:
        frames, stamps, decode_s = self._load(video)
        t0 = time.perf_counter()
        vp = self.processor.video_processor
        if len(frames) == 0:
            vp(frames)  # raises VideoProcessorError naming the problem
        step = max(1, vp.chunk_frames)
        pixel_chunks = (vp(frames[i : i + step]) for i in range(0, len(frames), step))  # (t,3,S,S), lazily
        with torch.no_grad():
            enc = self.model.encode_video_chunks(pixel_chunks, token_budget=token_budget)
        encode_s = time.perf_counter() - t0
        cfg = self.model.config
        tt = enc.trajtok
        if tt is not None:
            ids = tt.trajectory_ids[0].cpu().numpy().astype(np.int64)
            boxes = tt.boxes[0].float().cpu().numpy()
            presence = tt.presence[0].cpu().numpy().astype(bool)
            hard = None if tt.hard_ids is None else tt.hard_ids[0, : enc.num_frames[0]].cpu().numpy().astype(np.int64)
            q = cfg.trajtok_config.tokens_per_trajectory
        else:
            ids = np.zeros((0,), np.int64)
            boxes = np.zeros((0, len(frames), 4), np.float32)
            presence = np.zeros((0, len(frames)), bool)
            hard, q = None, 0
        vt = VideoTokens(
            num_frames=int(len(frames)),
            timestamps=stamps,
            frames=frames,
            grid=tuple(enc.grid),
            num_visual_tokens=enc.num_tokens[0],
            num_patch_tokens=enc.num_patch_tokens[0],
            num_trajectories=int(len(ids)),
            tokens_per_trajectory=q,
            trajectory_ids=ids,
            boxes=boxes,
            presence=presence,
            hard_ids=hard,
            decode_s=decode_s,
            encode_s=encode_s,
        )
        return enc, vt

    def tokenize_video(self, video, *, token_budget: int | None = None) -> VideoTokens:
        """Trajectories, boxes, hard ids and token counts of one video (no LLM call)."""
        return self._encode(video, self.resolve_token_budget(token_budget))[1]

    # ---- prompting -----------------------------------------------------------------------------------------
    def _conversation(self, question: str, history: Sequence[tuple[str, str]], has_video: bool) -> list[dict]:
        turns: list[dict] = []
        for user, assistant in history:
            turns += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
        turns.append({"from": "human", "value": question})
        vt = self.processor.video_token
        if has_video and not any(vt in t["value"] for t in turns):
            turns[0] = {"from": "human", "value": f"{vt}\n{turns[0]['value']}"}
        return turns

    def _prepare(self, video, question, history, token_budget):
        budget = self.resolve_token_budget(token_budget)  # checked before any decoding, video or not
        enc = vt = None
        if video is not None:
            enc, vt = self._encode(video, budget)
        conv = self._conversation(question, history, video is not None)
        tok = self.processor.tokenize_conversation(conv, num_videos=int(video is not None), add_generation_prompt=True)
        ids = torch.tensor([tok.input_ids], device=self.device)
        with torch.no_grad():
            spliced, _ = self.model.prepare_inputs_embeds(ids, torch.ones_like(ids), video_encoding=enc, padding_side="left")
        return spliced, vt

    def _gen_kwargs(self, max_new_tokens, do_sample, temperature, top_p) -> dict:
        kw = dict(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            eos_token_id=self.processor.stop_token_ids,
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )
        if do_sample:
            kw.update(temperature=temperature, top_p=top_p)
        return kw

    def _response(self, text: str, vt: VideoTokens | None, generate_s: float) -> ChatResponse:
        return ChatResponse(
            text=text,
            num_visual_tokens=vt.num_visual_tokens if vt else 0,
            num_patch_tokens=vt.num_patch_tokens if vt else 0,
            num_trajectories=vt.num_trajectories if vt else 0,
            timings={
                "decode_s": vt.decode_s if vt else 0.0,
                "encode_s": vt.encode_s if vt else 0.0,
                "generate_s": generate_s,
            },
            video_tokens=vt,
        )

    def ask(self, video, question: str, history: Sequence[tuple[str, str]] = (), **options) -> ChatResponse:
        """Answer `question` about `video` (a path, VideoClip, (T,H,W,3) uint8 frames, or None for text only).

        `options`: the keyword options of `ask_stream` (max_new_tokens, do_sample, temperature, top_p,
        token_budget). The same generation as `ask_stream`, returning only its final ChatResponse.
        """
        for delta in self.ask_stream(video, question, history, **options):
            if delta.response is not None:
                return delta.response
        raise RuntimeError("ask_stream ended without a final ChatResponse")  # unreachable: it always ends with one

    def ask_stream(
        self,
        video,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        *,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        token_budget: int | None = None,
    ) -> Iterator[ChatDelta]:
        """Answer `question` about `video` (a path, VideoClip, (T,H,W,3) uint8 frames, or None for text only),
        yielding the answer token by token as it is generated (generation runs in a thread).

        Each delta is what the latest token(s) added to the decoded answer (see IncrementalDecoder); the pieces
        concatenate to the final ChatResponse's text, carried by the last delta (text ""). `token_budget` caps
        the visual tokens of this request (None: the chat's default, else the model's; ValueError if bad).
        """
        spliced, vt = self._prepare(video, question, history, token_budget)
        streamer = _TokenQueue()
        text = IncrementalDecoder(self._decode)
        result: dict = {}

        def run():
            try:
                result["ids"] = self.model.generate(
                    inputs_embeds=spliced.inputs_embeds,
                    attention_mask=spliced.attention_mask,
                    streamer=streamer,
                    **self._gen_kwargs(max_new_tokens, do_sample, temperature, top_p),
                )  # (1,new)
            except BaseException as e:  # re-raised in the caller's thread below
                result["error"] = e
            finally:
                streamer.end()  # generate ends it too; one more end marker is never read

        t0 = time.perf_counter()
        thread = threading.Thread(target=run, name="trajvlm-generate", daemon=True)
        thread.start()
        for ids in iter(streamer.queue.get, None):
            piece = text.push(ids)
            if piece:
                yield ChatDelta(piece)
        thread.join()
        if "error" in result:
            raise result["error"]
        piece = text.finish()
        if piece:
            yield ChatDelta(piece)
        answer = self._decode(result["ids"][0].tolist()).strip()
        yield ChatDelta("", self._response(answer, vt, time.perf_counter() - t0))

    def _decode(self, ids: list[int]) -> str:
        return self.processor.decode(ids, skip_special_tokens=True)

    # ---- scoring -------------------------------------------------------------------------------------------
    def score(self, video, context: str, continuation: str, *, token_budget: int | None = None) -> tuple[float, bool]:
        """log p(continuation | video, context) summed over the continuation's tokens, and whether greedy
        decoding would produce exactly those tokens (lmms-eval loglikelihood)."""
        budget = self.resolve_token_budget(token_budget)
        enc = self._encode(video, budget)[0] if video is not None else None
        conv = self._conversation(context, (), video is not None)
        conv.append({"from": "gpt", "value": continuation})
        tok = self.processor.tokenize_conversation(
            conv, num_videos=int(video is not None), close_final=False, return_labels=True
        )
        ids = torch.tensor([tok.input_ids], device=self.device)
        labels = torch.tensor([tok.labels], device=self.device)
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, video_encoding=enc)
        logits = out.logits[0, :-1].float()  # (L'-1,V) predicts positions 1..
        target = out.labels[0, 1:]
        sel = target != IGNORE_INDEX
        logp = torch.log_softmax(logits[sel], -1).gather(-1, target[sel, None]).sum()
        greedy = bool((logits[sel].argmax(-1) == target[sel]).all())
        return float(logp), greedy
