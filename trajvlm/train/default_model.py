"""Parts of the built-in default model: a SentencePiece tokenizer and a small Llama, made from ShapesQA text.

    python -m trajvlm.train.default_model --data DIR --out PARTS [--hidden 256 --layers 4 --heads 4]

writes ``PARTS/llm`` (LlamaForCausalLM, randomly initialised, + its tokenizer). The tokenizer is a
SentencePiece BPE trained in-process on the train split's captions and QA turns, so every ShapesQA word and
each option letter is a single token. The vision tower and TrajTok come from scripts/train_segmenter.py; the
whole recipe is scripts/build_default_model.sh.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

# Template tokens of every chat template, so any template can be chosen later without resizing.
from trajvlm.model.chat_templates import TEMPLATES


def shapesqa_corpus(data_dir: str | os.PathLike, split: str = "train") -> list[str]:
    """Every conversation turn of ``<split>_captions.json`` and ``<split>_qa.json`` (placeholder removed)."""
    lines: list[str] = []
    for name in (f"{split}_captions.json", f"{split}_qa.json"):
        path = Path(data_dir, name)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {data_dir} a ShapesQA folder?")
        for record in json.loads(path.read_text()):
            for turn in record["conversations"]:
                lines.extend(x for x in turn["value"].replace("<video>", "").split("\n") if x.strip())
    return lines


def multiturn_records(data_dir: str | os.PathLike, split: str = "train", *, copies: int = 2, seed: int = 0) -> list[dict]:
    """One multi-turn LLaVA-Video record per video (per copy): its caption request and all its questions, in
    a random order per copy, the ``<video>`` placeholder in the first human turn.

    The video is encoded once for 4-5 supervised answers instead of one, and each question is asked first
    (right after the video, as in evaluation) in some copies.
    """
    import random

    rng = random.Random(seed)
    by_video: dict[str, list[list[dict]]] = {}
    for name in (f"{split}_captions.json", f"{split}_qa.json"):
        for record in json.loads(Path(data_dir, name).read_text()):
            human, answer = record["conversations"][0], record["conversations"][1]
            question = human["value"].replace("<video>", "").lstrip("\n")
            by_video.setdefault(record["video"], []).append(
                [{"from": "human", "value": question}, {"from": "gpt", "value": answer["value"]}]
            )
    records = []
    for copy in range(copies):
        for video, turns in by_video.items():
            turns = list(turns)
            rng.shuffle(turns)
            conv = [dict(t) for pair in turns for t in pair]
            conv[0] = {"from": "human", "value": "<video>\n" + conv[0]["value"]}
            stem = Path(video).stem
            records.append({"id": f"{stem}_mt{copy}", "video": video, "conversations": conv})
    rng.shuffle(records)
    return records


def train_tokenizer(lines: list[str], *, vocab_size: int = 768, video_token: str = "<video>"):
    """SentencePiece BPE (byte fallback) -> tokenizers-backed LlamaTokenizer with <video> + template tokens."""
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
        split_digits=True,
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
    specials = [video_token, *sorted({t for tpl in TEMPLATES.values() for t in tpl.special_tokens})]
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in specials], special_tokens=True)
    tok.pad_token = tok.unk_token
    return tok


def build_llm(tokenizer, *, hidden: int = 256, layers: int = 4, heads: int = 4, seed: int = 0):
    """A randomly initialised LlamaForCausalLM sized to the tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3 // 32 * 32 or hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trajvlm.train.default_model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="ShapesQA folder (its train split is the tokenizer corpus)")
    p.add_argument("--out", required=True, help="writes OUT/llm")
    p.add_argument("--vocab-size", type=int, default=768)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--multiturn-copies", type=int, default=2,
                   help="also write DATA/train_multiturn.json with this many shuffled copies (0 = no)")
    args = p.parse_args(argv)
    if args.multiturn_copies > 0:
        records = multiturn_records(args.data, copies=args.multiturn_copies, seed=args.seed)
        Path(args.data, "train_multiturn.json").write_text(json.dumps(records))
        print(f"{len(records)} multi-turn records -> {Path(args.data, 'train_multiturn.json')}")
    tok = train_tokenizer(shapesqa_corpus(args.data), vocab_size=args.vocab_size)
    lm = build_llm(tok, hidden=args.hidden, layers=args.layers, heads=args.heads, seed=args.seed)
    out = Path(args.out, "llm")
    lm.save_pretrained(out)
    tok.save_pretrained(out)
    n = sum(p.numel() for p in lm.parameters())
    print(f"LLM {args.layers}x{args.hidden}, vocab {len(tok)}, {n / 1e6:.2f}M parameters -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
