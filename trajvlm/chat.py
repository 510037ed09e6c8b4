"""TrajVLMChat: the one high-level API the demo and the lmms-eval plugin call.

    chat = TrajVLMChat.from_pretrained(path)
    r = chat.ask("clip.mp4", "What colour is the square?")          -> ChatResponse (text, token counts, timings)
    for d in chat.ask_stream("clip.mp4", "..."): print(d.text)      -> ChatDelta pieces; the last one carries .response
    logp, greedy = chat.score("clip.mp4", "Question ...", " A")     -> log p(continuation | video, context)
    vt = chat.tokenize_video("clip.mp4")                             -> VideoTokens (trajectories, boxes, hard ids)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

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
        self.token_budget = token_budget

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

    def _encode(self, video) -> tuple[VideoEncoding, VideoTokens]:
        frames, stamps, decode_s = self._load(video)
        t0 = time.perf_counter()
        vp = self.processor.video_processor
        if len(frames) == 0:
            vp(frames)  # raises VideoProcessorError naming the problem
        step = max(1, vp.chunk_frames)
        pixel_chunks = (vp(frames[i : i + step]) for i in range(0, len(frames), step))  # (t,3,S,S), lazily
        with torch.no_grad():
            enc = self.model.encode_video_chunks(pixel_chunks, token_budget=self.token_budget)
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

    def tokenize_video(self, video) -> VideoTokens:
        """Trajectories, boxes, hard ids and token counts of one video (no LLM call)."""
        return self._encode(video)[1]

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

    def _prepare(self, video, question, history):
        enc = vt = None
        if video is not None:
            enc, vt = self._encode(video)
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

    def ask(
        self,
        video,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        *,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> ChatResponse:
        """Answer `question` about `video` (a path, VideoClip, (T,H,W,3) uint8 frames, or None for text only)."""
        spliced, vt = self._prepare(video, question, history)
        t0 = time.perf_counter()
        out = self.model.generate(
            inputs_embeds=spliced.inputs_embeds,
            attention_mask=spliced.attention_mask,
            **self._gen_kwargs(max_new_tokens, do_sample, temperature, top_p),
        )
        text = self.processor.decode(out[0], skip_special_tokens=True).strip()
        return self._response(text, vt, time.perf_counter() - t0)

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
    ) -> Iterator[ChatDelta]:
        """Like ask, yielding text pieces as they are generated (generation runs in a thread)."""
        from transformers import TextIteratorStreamer

        spliced, vt = self._prepare(video, question, history)
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict = {}

        def run():
            try:
                result["ids"] = self.model.generate(
                    inputs_embeds=spliced.inputs_embeds,
                    attention_mask=spliced.attention_mask,
                    streamer=streamer,
                    **self._gen_kwargs(max_new_tokens, do_sample, temperature, top_p),
                )
            except BaseException as e:  # re-raised in the caller's thread below
                result["error"] = e
                streamer.end()

        t0 = time.perf_counter()
        thread = threading.Thread(target=run, name="trajvlm-generate", daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield ChatDelta(piece)
        thread.join()
        if "error" in result:
            raise result["error"]
        text = self.processor.decode(result["ids"][0], skip_special_tokens=True).strip()
        yield ChatDelta("", self._response(text, vt, time.perf_counter() - t0))

    # ---- scoring -------------------------------------------------------------------------------------------
    def score(self, video, context: str, continuation: str) -> tuple[float, bool]:
        """log p(continuation | video, context) summed over the continuation's tokens, and whether greedy
        decoding would produce exactly those tokens (lmms-eval loglikelihood)."""
        enc = self._encode(video)[0] if video is not None else None
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
