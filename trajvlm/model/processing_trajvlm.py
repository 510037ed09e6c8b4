"""TrajVLMProcessor: conversations + videos -> input_ids / attention_mask / labels / pixel_values_videos.

Labels come from the rendered template: the conversation text is tokenized ONCE (with offsets) and a token is
supervised iff it lies inside an assistant segment. Two checks make a silently wrong loss impossible:
  * a token straddling a supervised/unsupervised boundary, or a prompt whose tokenization alone is not a prefix
    of the full tokenization (what generation would see differs from what training saw) -> TemplateTokenizationError;
  * a training sample with zero supervised tokens -> NoSupervisedTokensError.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, BatchFeature

from ..vision.processor import TrajVLMVideoProcessor
from .chat_templates import ChatTemplate, Message, Segment, get_template, normalize_conversation

IGNORE_INDEX = -100
PROCESSOR_CONFIG_NAME = "trajvlm_processor_config.json"


class ProcessorError(ValueError):
    """Base error of the processor layer."""


class TemplateTokenizationError(ProcessorError):
    """The tokenizer does not split the rendered conversation along the template's turn boundaries."""


class NoSupervisedTokensError(ProcessorError):
    """A training sample in which no token would be supervised (its loss would silently be 0)."""


class VideoPlaceholderError(ProcessorError):
    """The number of video placeholders does not match the number of videos."""


@dataclass
class TokenizedConversation:
    input_ids: list[int]
    labels: list[int] | None  # None when no labels were asked for
    text: str


def _is_video(x) -> bool:
    return isinstance(x, (str, os.PathLike, torch.Tensor)) or hasattr(x, "frames") or hasattr(x, "__array__")


def question_first(msgs: list[Message], video_token: str) -> list[Message]:
    """The first user message holding `video_token` with its text (placeholders removed) also in front:
    "<video>\nQ" -> "Q\n<video>\nQ". Other messages, and a message with no text besides the video, unchanged."""
    out = list(msgs)
    k = next((i for i, m in enumerate(out) if m.role == "user" and video_token in m.content), None)
    if k is not None:
        text = out[k].content.replace(video_token, "").strip()
        if text:
            out[k] = Message("user", f"{text}\n{out[k].content}")
    return out


class TrajVLMProcessor:
    """Tokenizer + :class:`TrajVLMVideoProcessor` + a chat template.

    Args:
        tokenizer: a tokenizers-backed (fast) tokenizer holding ``video_token`` as ONE special token.
        video_processor: resizes / normalizes frames for the vision tower.
        chat_template: "llama3" | "llama2" | "vicuna_v1" | "plain".
        num_frames / fps: sampling used when a video is given as a path.
        system_prompt: overrides the template's default system prompt (None = template default).
        question_before_video: the text of the user turn that holds the video is also put in front of the video
            ("<video>\nQ" is rendered "Q\n<video>\nQ"), so the video's tokens can attend to the question (and its
            options) in a causal LLM. A property of how the model was trained: saved with the processor.
    """

    def __init__(
        self,
        tokenizer,
        video_processor: TrajVLMVideoProcessor,
        chat_template: str = "vicuna_v1",
        *,
        video_token: str = "<video>",
        num_frames: int = 16,
        fps: float | None = None,
        system_prompt: str | None = None,
        question_before_video: bool = False,
    ):
        if not getattr(tokenizer, "is_fast", False):
            raise ProcessorError(f"TrajVLMProcessor needs a tokenizers-backed tokenizer, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        self.video_processor = video_processor
        self.template: ChatTemplate = get_template(chat_template)
        self.video_token = video_token
        self.num_frames = num_frames
        self.fps = fps
        self.system_prompt = system_prompt
        self.question_before_video = bool(question_before_video)
        self.video_token_id = self._single_token_id(video_token, "video placeholder")
        for tok in self.template.special_tokens:
            self._single_token_id(tok, f"{self.template.name} template token")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
        self._adds_eos = bool(tokenizer("a").input_ids[-1:] == [tokenizer.eos_token_id])

    def _single_token_id(self, token: str, what: str) -> int:
        ids = self.tokenizer(token, add_special_tokens=False).input_ids
        if len(ids) != 1 or ids[0] == self.tokenizer.unk_token_id:
            raise ProcessorError(
                f"the {what} {token!r} is not a single token of the tokenizer (it encodes to {ids}); add it as a "
                "special token and resize the LLM embeddings (TrajVLMForConditionalGeneration.from_parts does both)"
            )
        return ids[0]

    # ---- template ------------------------------------------------------------------------------------------
    @property
    def chat_template(self) -> str:
        return self.template.name

    @property
    def stop_token_ids(self) -> list[int]:
        """Token ids generation should stop at (eos + the template's end-of-turn token)."""
        ids = [self.tokenizer.eos_token_id]
        if self.template.stop_token:
            ids.append(self.tokenizer.convert_tokens_to_ids(self.template.stop_token))
        return list(dict.fromkeys(i for i in ids if i is not None))

    def render(
        self, conversation, *, num_videos: int | None = None, add_generation_prompt: bool = False, close_final: bool = True
    ) -> list[Segment]:
        """Conversation (LLaVA or HF format) -> template segments. With `num_videos` > 0 and no placeholder in
        the conversation, one placeholder per video is put in front of the first user message (LLaVA style)."""
        msgs = normalize_conversation(conversation, self.video_token)
        if any(m.role == "assistant" and self.video_token in m.content for m in msgs):
            raise VideoPlaceholderError(f"an assistant turn contains the video placeholder {self.video_token!r}")
        n_ph = sum(m.content.count(self.video_token) for m in msgs)
        if num_videos is not None:
            if n_ph == 0 and num_videos > 0:
                k = next(i for i, m in enumerate(msgs) if m.role == "user")
                msgs[k] = Message("user", (self.video_token + "\n") * num_videos + msgs[k].content)
            elif n_ph != num_videos:
                raise VideoPlaceholderError(
                    f"the conversation has {n_ph} {self.video_token!r} placeholder(s) but {num_videos} video(s) were given"
                )
        if self.question_before_video:
            msgs = question_first(msgs, self.video_token)
        return self.template.render(
            msgs,
            bos=self.tokenizer.bos_token or "",
            eos=self.tokenizer.eos_token,
            video_token=self.video_token,
            add_generation_prompt=add_generation_prompt,
            close_final=close_final,
            system=self.system_prompt,
        )

    def render_prompt(self, conversation, *, num_videos: int | None = None) -> str:
        """The text generation starts from (template applied, generation prompt added)."""
        return "".join(s.text for s in self.render(conversation, num_videos=num_videos, add_generation_prompt=True))

    # ---- tokenization --------------------------------------------------------------------------------------
    def _encode(self, text: str, offsets: bool = False):
        enc = self.tokenizer(text, add_special_tokens=True, return_offsets_mapping=offsets)
        ids = list(enc.input_ids)
        offs = list(enc.offset_mapping) if offsets else None
        if self._adds_eos and ids and ids[-1] == self.tokenizer.eos_token_id:
            ids, offs = ids[:-1], (offs[:-1] if offs else None)
        return ids, offs

    def tokenize_conversation(
        self,
        conversation,
        *,
        num_videos: int | None = None,
        add_generation_prompt: bool = False,
        close_final: bool = True,
        return_labels: bool | None = None,
        max_length: int | None = None,
    ) -> TokenizedConversation:
        """One conversation -> ids (+ labels: IGNORE_INDEX everywhere but assistant replies)."""
        segs = self.render(
            conversation, num_videos=num_videos, add_generation_prompt=add_generation_prompt, close_final=close_final
        )
        text = "".join(s.text for s in segs)
        spans, pos = [], 0
        for s in segs:
            if s.supervised:
                spans.append((pos, pos + len(s.text)))
            pos += len(s.text)
        if return_labels is None:
            return_labels = bool(spans) and not add_generation_prompt
        ids, offsets = self._encode(text, offsets=True)
        n_ph = text.count(self.video_token)
        if ids.count(self.video_token_id) != n_ph:
            raise TemplateTokenizationError(
                f"{n_ph} {self.video_token!r} placeholders in the text became {ids.count(self.video_token_id)} "
                "video token ids: the placeholder must be one special token"
            )
        labels = None
        if return_labels:
            labels = self._labels(text, ids, offsets, spans)
        if max_length is not None and len(ids) > max_length:
            if self.video_token_id in ids[max_length:]:
                raise ProcessorError(f"max_length={max_length} would cut a video placeholder ({len(ids)} tokens)")
            ids = ids[:max_length]
            labels = labels[:max_length] if labels is not None else None
        if labels is not None and all(x == IGNORE_INDEX for x in labels):
            raise NoSupervisedTokensError(
                f"no supervised token in this sample ({len(ids)} tokens, template {self.template.name}, "
                f"max_length={max_length}); text: {text[:200]!r}"
            )
        return TokenizedConversation(ids, labels, text)

    def _labels(self, text: str, ids: list[int], offsets, spans: list[tuple[int, int]]) -> list[int]:
        labels = [IGNORE_INDEX] * len(ids)
        for i, (a, b) in enumerate(offsets):
            if a == b:  # added special token (BOS) or empty piece: never supervised
                continue
            for s, e in spans:
                if s <= a and b <= e:
                    labels[i] = ids[i]
                    break
                if a < e and s < b:  # partial overlap with a supervised span
                    raise TemplateTokenizationError(
                        f"token {self.tokenizer.convert_ids_to_tokens(ids[i])!r} (chars {a}:{b}) straddles the "
                        f"assistant-turn boundary at chars {s}:{e} of {text!r:.300}"
                    )
        # what generation sees (the prompt tokenized alone) must be a prefix of what training sees
        for s, _ in spans:
            prefix, _ = self._encode(text[:s])
            first = next((i for i, (a, b) in enumerate(offsets) if a >= s and a != b), len(ids))
            if ids[: len(prefix)] != prefix or len(prefix) != first:
                raise TemplateTokenizationError(
                    f"the prompt before the assistant turn at char {s} tokenizes to {prefix[-8:]} (last 8 of "
                    f"{len(prefix)}) alone but to {ids[max(0, first - 8):first]} (last 8 of {first}) inside the "
                    f"whole conversation: template {self.template.name} does not fit this tokenizer"
                )
        return labels

    # ---- videos --------------------------------------------------------------------------------------------
    def load_video(self, video):
        if isinstance(video, (str, os.PathLike)):
            from ..video import load_video

            return load_video(video, max_frames=self.num_frames, fps=self.fps)
        return video

    def process_video(self, video) -> torch.Tensor:
        """A path, VideoClip or (T,H,W,3) uint8 frames -> pixel values (T,3,S,S)."""
        return self.video_processor(self.load_video(video))

    # ---- batch ---------------------------------------------------------------------------------------------
    def __call__(
        self,
        conversations,
        videos=None,
        *,
        add_generation_prompt: bool = False,
        close_final: bool = True,
        return_labels: bool | None = None,
        padding_side: str | None = None,
        max_length: int | None = None,
    ) -> BatchFeature:
        """One conversation or a batch -> BatchFeature(input_ids (B,L), attention_mask (B,L), [labels (B,L)],
        pixel_values_videos: list of (T_i,3,S,S), videos of all samples in order).

        videos: for one conversation: None, a video, or a list of videos; for a batch: a list with one such
        entry per conversation. A video is a path, a VideoClip, or (T,H,W,3) uint8 frames.
        """
        single = isinstance(conversations, Sequence) and bool(conversations) and isinstance(conversations[0], dict)
        convs = [conversations] if single else list(conversations)
        if single:
            per_sample = [videos]
        elif videos is None:
            per_sample = [None] * len(convs)
        else:
            per_sample = list(videos)
            if len(per_sample) != len(convs):
                raise VideoPlaceholderError(f"{len(convs)} conversations but {len(per_sample)} video entries")
        per_sample = [[] if v is None else ([v] if _is_video(v) else list(v)) for v in per_sample]

        rows = [
            self.tokenize_conversation(
                c,
                num_videos=len(v),
                add_generation_prompt=add_generation_prompt,
                close_final=close_final,
                return_labels=return_labels,
                max_length=max_length,
            )
            for c, v in zip(convs, per_sample)
        ]
        with_labels = [r.labels is not None for r in rows]
        if any(with_labels) and not all(with_labels):
            raise ProcessorError("some samples of the batch have labels and some do not (mixed prompt/training)")
        side = padding_side or self.tokenizer.padding_side
        length = max(len(r.input_ids) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), length), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.input_ids)
            sl = slice(length - n, length) if side == "left" else slice(0, n)
            ids[i, sl] = torch.tensor(r.input_ids)
            mask[i, sl] = 1
            if r.labels is not None:
                labels[i, sl] = torch.tensor(r.labels)
        data = {"input_ids": ids, "attention_mask": mask}
        if all(with_labels):
            data["labels"] = labels
        data["pixel_values_videos"] = [self.process_video(v) for vs in per_sample for v in vs]
        return BatchFeature(data)

    def decode(self, ids, **kwargs) -> str:
        return self.tokenizer.decode(ids, **kwargs)

    def batch_decode(self, ids, **kwargs) -> list[str]:
        return self.tokenizer.batch_decode(ids, **kwargs)

    # ---- persistence ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "processor_class": type(self).__name__,
            "chat_template": self.template.name,
            "video_token": self.video_token,
            "num_frames": self.num_frames,
            "fps": self.fps,
            "system_prompt": self.system_prompt,
            "question_before_video": self.question_before_video,
        }

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Tokenizer files + video_processor_config.json + trajvlm_processor_config.json."""
        os.makedirs(directory, exist_ok=True)
        self.tokenizer.save_pretrained(directory)
        self.video_processor.save_pretrained(directory)
        with open(Path(directory, PROCESSOR_CONFIG_NAME), "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides) -> "TrajVLMProcessor":
        path = Path(directory, PROCESSOR_CONFIG_NAME)
        if not path.is_file():
            raise FileNotFoundError(f"TrajVLMProcessor.from_pretrained: {path} not found")
        with open(path) as f:
            cfg = json.load(f)
        cfg.pop("processor_class", None)
        cfg.update(overrides)
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        video_processor = TrajVLMVideoProcessor.from_pretrained(directory)
        template = cfg.pop("chat_template")
        return cls(tokenizer, video_processor, template, **cfg)
