"""A Llama tokenizer trained in-process: SentencePiece BPE (byte fallback) on a list of lines, converted to the
tokenizers-backed ``LlamaTokenizer``, with ``<video>`` and every chat template's special tokens added.

Used by the tiny test models (trajvlm.testing) and the built-in default model (trajvlm.train.default_model).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from .chat_templates import TEMPLATES

VIDEO_TOKEN = "<video>"


def default_special_tokens(video_token: str = VIDEO_TOKEN) -> list[str]:
    """<video> + the special tokens of every chat template (any template can be chosen later, no resize)."""
    return [video_token, *sorted({t for tpl in TEMPLATES.values() for t in tpl.special_tokens})]


def train_spm_llama_tokenizer(
    lines: Iterable[str],
    *,
    vocab_size: int,
    special_tokens: Sequence[str] | None = None,
    split_digits: bool = False,
):
    """lines -> LlamaTokenizer (pad = <unk>, BOS added). ``special_tokens`` None = ``default_special_tokens()``."""
    import sentencepiece as spm
    from tokenizers import AddedToken
    from transformers import LlamaTokenizer

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        hard_vocab_limit=False,
        split_digits=split_digits,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "tokenizer.model").write_bytes(buf.getvalue())
        tok = LlamaTokenizer.from_pretrained(tmp, add_bos_token=True, legacy=False)
    specials = default_special_tokens() if special_tokens is None else list(special_tokens)
    if specials:
        tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in specials], special_tokens=True)
    tok.pad_token = tok.unk_token
    return tok
