"""Chat templates (llama3, llama2, vicuna_v1, plain) rendered as text segments with a "supervised" flag.

A conversation is first normalized to ``[Message(role, content)]`` (roles system/user/assistant) from either
LLaVA format (``{"from": "human"|"gpt"|"system", "value": ...}``) or HF messages format
(``{"role": ..., "content": str | [{"type": "text", "text": ...}, {"type": "video"}]}``). A template renders it
to segments; the processor tokenizes the concatenated text once and supervises exactly the tokens that fall in
supervised segments (assistant replies + their end-of-turn marker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAMA2_SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)


class ConversationError(ValueError):
    """A conversation that cannot be rendered (unknown format or role, roles out of order, empty)."""


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Segment:
    text: str
    supervised: bool = False


_LLAVA_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def normalize_conversation(conversation: Sequence[dict], video_token: str = "<video>") -> list[Message]:
    """LLaVA or HF messages -> [Message]. A ``{"type": "video"}`` content item becomes ``video_token``."""
    if isinstance(conversation, (str, bytes)) or not isinstance(conversation, Sequence) or not conversation:
        raise ConversationError(f"a conversation must be a non-empty list of turns, got {conversation!r:.200}")
    out: list[Message] = []
    for i, turn in enumerate(conversation):
        if not isinstance(turn, dict):
            raise ConversationError(f"turn {i} must be a dict, got {type(turn).__name__}")
        if "from" in turn and "value" in turn:
            role = _LLAVA_ROLES.get(turn["from"])
            content = turn["value"]
        elif "role" in turn and "content" in turn:
            role = _LLAVA_ROLES.get(turn["role"])
            content = turn["content"]
        else:
            raise ConversationError(f"turn {i} is neither LLaVA ('from'/'value') nor HF ('role'/'content'): {turn!r:.200}")
        if role is None:
            raise ConversationError(f"turn {i} has unknown role {turn.get('from', turn.get('role'))!r}")
        out.append(Message(role, _content_text(content, video_token, i)))
    body = [m for m in out if m.role != "system"]
    if any(m.role == "system" for m in out[1:]) or not body:
        raise ConversationError("a system turn may only come first, and at least one user turn is needed")
    for j, m in enumerate(body):
        want = "user" if j % 2 == 0 else "assistant"
        if m.role != want:
            raise ConversationError(f"turns must alternate user/assistant starting with user; turn {j} is {m.role}")
    return out


def _content_text(content, video_token: str, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for item in content:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                parts.append(item["text"])
            elif kind == "video":
                parts.append(video_token)
            else:
                raise ConversationError(f"turn {i}: content item must be {{'type': 'text'|'video'}}, got {item!r:.200}")
        return "\n".join(parts)
    raise ConversationError(f"turn {i}: content must be a string or a list of items, got {type(content).__name__}")


@dataclass(frozen=True)
class ChatTemplate:
    """Renders [Message] to [Segment]. ``bos``/``eos`` are the tokenizer's strings (templates that need them)."""

    name: str
    default_system: str | None = None
    # tokens that must be single special tokens of the tokenizer for this template to tokenize as intended
    special_tokens: tuple[str, ...] = field(default_factory=tuple)
    # end-of-turn marker generation should stop at, besides the tokenizer's eos ("" = eos only)
    stop_token: str = ""

    def render(
        self,
        messages: Sequence[Message],
        *,
        bos: str,
        eos: str,
        video_token: str = "<video>",
        add_generation_prompt: bool = False,
        close_final: bool = True,
        system: str | None = None,
    ) -> list[Segment]:
        """Render to segments. Only assistant replies (plus their end-of-turn marker) are supervised.

        add_generation_prompt: end with the assistant prefix (what generation continues from).
        close_final=False leaves a final assistant message open (no end-of-turn): scoring a continuation.
        """
        system = system if system is not None else self.default_system
        if messages and messages[0].role == "system":
            system, messages = messages[0].content, messages[1:]
        if add_generation_prompt and messages and messages[-1].role == "assistant":
            raise ConversationError("add_generation_prompt=True but the conversation already ends with the assistant")
        end = self.stop_token or ((" " if self.name == "llama2" else "") + eos)
        segs = [Segment(self._system_block(system))] if system and self.name != "plain" else []
        for j, m in enumerate(messages):
            last = j == len(messages) - 1
            if m.role == "user":
                text = self._user_block(m.content, j, system, bos, video_token)
                if not last or add_generation_prompt:
                    text += self._assistant_prefix()
                segs.append(Segment(text))
            else:
                close = not last or close_final
                segs.append(Segment(self._assistant_block(m.content) + (end if close else ""), True))
        return [s for s in segs if s.text]

    # ---- per-template pieces -----------------------------------------------------------------------------
    def _system_block(self, system: str) -> str:
        if self.name == "vicuna_v1":
            return system + " "
        if self.name == "llama3":
            return f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"
        return ""  # llama2 puts the system prompt inside the first [INST]

    def _user_block(self, content: str, j: int, system: str | None, bos: str, video_token: str) -> str:
        if self.name == "plain":  # LLaVA "plain" (captioning): the user turn keeps only its placeholders
            return video_token * content.count(video_token) + "\n"
        if self.name == "vicuna_v1":
            return f"USER: {content}"
        if self.name == "llama2":
            sys_block = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if (system and j == 0) else ""
            return f"{bos if j > 0 else ''}[INST] {sys_block}{content} [/INST]"  # the tokenizer adds the first BOS
        return f"<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"  # llama3

    def _assistant_prefix(self) -> str:
        if self.name == "vicuna_v1":
            return " ASSISTANT:"
        if self.name == "llama3":
            return "<|start_header_id|>assistant<|end_header_id|>\n\n"
        return ""

    def _assistant_block(self, content: str) -> str:
        if self.name in ("vicuna_v1", "llama2"):
            return " " + content
        return content


TEMPLATES: dict[str, ChatTemplate] = {
    "plain": ChatTemplate("plain"),
    "vicuna_v1": ChatTemplate("vicuna_v1", default_system=VICUNA_SYSTEM),
    "llama2": ChatTemplate("llama2", default_system=LLAMA2_SYSTEM),
    "llama3": ChatTemplate(
        "llama3",
        default_system=None,
        special_tokens=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        stop_token="<|eot_id|>",
    ),
}


def get_template(name: str) -> ChatTemplate:
    if name not in TEMPLATES:
        raise ConversationError(f"unknown chat template {name!r}; known: {sorted(TEMPLATES)}")
    return TEMPLATES[name]
