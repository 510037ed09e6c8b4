"""Parts of the built-in default model: a SentencePiece tokenizer and a small Llama, made from ShapesQA text.

    python -m trajvlm.train.default_model --data DIR --out PARTS [--hidden 256 --layers 4 --heads 4]
    python -m trajvlm.train.default_model --data DIR --records-only   # the two JSON files only (reusing PARTS)

writes ``PARTS/llm`` (LlamaForCausalLM, randomly initialised, + its tokenizer), ``DATA/train_sft.json`` (the
stage-2 data: QA records answered " text (letter)" + caption records + option lookups, see ``sft_records``) and
``DATA/train_mcq.json`` (the stage-1 data: the QA records alone, ``mcq_records``). The tokenizer is a
SentencePiece BPE trained in-process on the train split's captions and QA turns, so every ShapesQA word and
each option letter is a single token. The vision tower and TrajTok come from scripts/train_segmenter.py; the
whole recipe is scripts/build_default_model.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..eval.mcq import ANSWER_MARK

SFT_FILE = "train_sft.json"  # written into the ShapesQA folder: the stage-2 data
MCQ_FILE = "train_mcq.json"  # written into the ShapesQA folder: the stage-1 data (the QA records alone)


def shapesqa_corpus(data_dir: str | os.PathLike, split: str = "train") -> list[str]:
    """Every conversation turn of ``<split>_captions.json`` and ``<split>_qa.json`` (placeholder removed), plus
    the words of the chat templates' role headers (so "user" / "assistant" are single tokens)."""
    lines: list[str] = ["user", "assistant", "system"] * 200
    for name in (f"{split}_captions.json", f"{split}_qa.json"):
        path = Path(data_dir, name)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {data_dir} a ShapesQA folder?")
        for record in json.loads(path.read_text()):
            for turn in record["conversations"]:
                lines.extend(x for x in turn["value"].replace("<video>", "").split("\n") if x.strip())
    return lines


def option_text(record: dict) -> str:
    """The text of a QA record's correct option ("B. red" -> "red"; the option line is parsed by
    trajvlm.eval.mcq.option_text, as the graders do)."""
    from ..eval.mcq import option_text as line_text

    return line_text(record["options"]["ABCD".index(record["answer"])])


def answer_text(text: str, letter: str) -> str:
    """The default model's answer to a multiple-choice question: " <option text> (<letter>)".

    The leading space is deliberate: the Llama tokenizer marks a word that follows a space ("A. red" -> "▁red")
    differently from one at the start of a message ("red" -> "r", "ed"), so without it the answer's words and the
    option's words are different tokens and a from-scratch LLM must first learn they are the same word before it
    can find the option's letter.
    """
    return f" {text} ({letter})"


ANSWER_FORMATS = ("text", "text_letter")


def mc_answer(record: dict, answer: str = "text_letter") -> dict:
    """A ShapesQA QA record with the answer rewritten as the option's text, " red" (``answer="text"``), or as the
    text then its letter, " red (B)" (``"text_letter"``).

    Recalling the attribute ("red") is the visual lookup; the letter is then the option that says "red", a copy
    from the prompt -- but one the default model's from-scratch 4x256 Llama does not learn in the time we can
    give it (eval/results/default_model.md), so the default model answers with the text alone and the graders
    read the option it names (trajvlm.eval.mcq: the letter when there is one, else the one option named by
    text). With a letter it is the first standalone capital A-D of the answer, which every grader here parses.
    """
    if answer not in ANSWER_FORMATS:
        raise ValueError(f"answer format must be one of {ANSWER_FORMATS}, got {answer!r}")
    out = dict(record)
    turns = [dict(t) for t in record["conversations"]]
    text = option_text(record)
    turns[-1]["value"] = answer_text(text, record["answer"]) if answer == "text_letter" else f" {text}"
    out["conversations"] = turns
    return out


def object_list(scene) -> str:
    """The scene's objects as a listing answer writes them: colour, shape and direction of each, in order of first
    appearance (objects that appear in the same frame left to right), the briefly visible one marked:
    "white circle down, yellow square up briefly"."""
    needle = scene.objects[scene.needle] if scene.needle is not None else None
    objs = sorted(scene.objects, key=lambda o: (o.t_start, o.x0))
    return ", ".join(f"{o.colour} {o.shape} {o.direction}" + (" briefly" if o is needle else "") for o in objs)


def listed_answer(record: dict, scene) -> dict:
    """A multiple-choice record whose answer (" red", any ``mc_answer`` format) is rewritten to first list what the
    video shows, then answer after ``ANSWER_MARK``: " white circle down, red square up. Answer: red".

    With one vector per trajectory the LLM has to find an object by a colour *and* a shape inside one summed vector,
    which it does not learn (eval/results/default_model.md, session 16); written out as words, the objects could be
    looked up in text -- but trained this way the default model describes the same trajectory twice more often than
    it lists the objects right (session 17), so the shipped model answers directly. Graders read the answer after
    the mark (trajvlm.eval.mcq.final_answer)."""
    if "options" not in record:
        raise ValueError(f"record {record.get('id')!r} is not a multiple-choice record (no options)")
    out = dict(record)
    turns = [dict(t) for t in record["conversations"]]
    turns[-1]["value"] = f" {object_list(scene)}. {ANSWER_MARK}{turns[-1]['value']}"
    out["conversations"] = turns
    return out


def listed_records(records: list[dict], data_dir: str | os.PathLike, split: str = "train") -> list[dict]:
    """``listed_answer`` of every multiple-choice video record (by its ``video``'s scene in
    ``<split>_scenes.json``); other records (captions, open questions, text-only option lookups) unchanged."""
    scenes = {d["video"]: scene for d, scene in load_scenes(data_dir, split)}
    out = []
    for r in records:
        if "options" not in r or "video" not in r:
            out.append(r)
            continue
        if r["video"] not in scenes:
            raise ValueError(f"record {r.get('id')!r}: video {r['video']!r} is not in {split}_scenes.json")
        out.append(listed_answer(r, scenes[r["video"]]))
    return out


def text_then_letter(record: dict) -> dict:
    """``mc_answer(record, "text_letter")``: " red (B)"."""
    return mc_answer(record, "text_letter")


def load_scenes(data_dir: str | os.PathLike, split: str = "train", *, copies: int = 1) -> list[tuple[dict, object]]:
    """``DATA/<split>_scenes.json`` -> [(record, SceneSpec)], in file order (``copies`` is checked here for the
    record builders that make that many records per scene)."""
    from ..data.synthetic.scene import scene_from_dict

    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 0:
        raise ValueError(f"copies must be an int >= 0, got {copies!r}")
    path = Path(data_dir, f"{split}_scenes.json")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {data_dir} a ShapesQA folder (python -m trajvlm.data.synthetic)?")
    return [(d, scene_from_dict(d)) for d in json.loads(path.read_text())]


def generator_config(data_dir: str | os.PathLike):
    """The GeneratorConfig a ShapesQA folder was made with (``DATA/meta.json``)."""
    from ..data.synthetic.generate import GeneratorConfig

    path = Path(data_dir, "meta.json")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {data_dir} a ShapesQA folder (python -m trajvlm.data.synthetic)?")
    g = json.loads(path.read_text())["generator"]
    return GeneratorConfig(**{**g, "splits": tuple(g["splits"])})


def open_qa_turns(scene, rng, head: str) -> list[dict]:
    """Every open question of ``scene`` (trajvlm.data.synthetic.questions.open_questions) in ``rng``'s order as
    alternating human / gpt turns answered " <text>"; ``head`` goes before the first question."""
    from ..data.synthetic.questions import open_questions

    qs = open_questions(scene)
    rng.shuffle(qs)
    turns = []
    for _, question, answer in qs:
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": f" {answer}"}]
    turns[0]["value"] = head + turns[0]["value"]
    return turns


def open_qa_records(data_dir: str | os.PathLike, split: str = "train", *, copies: int = 1,
                    seed: int = 0) -> list[dict]:
    """``copies`` multi-turn records per video of the split: every open question its scene answers, in a new
    random order each copy, answered " <text>" (no options; ``open_qa_turns``).

    Dense supervision for the from-scratch LLM: a multiple-choice record spends ~60 text tokens (options, the
    instruction, the template) on one answered fact, an open turn ~15, and a video answers ~10 of them.
    """
    import random

    rng = random.Random(seed)
    return [{"id": f"{d['id']}_open{c}", "video": d["video"], "category": "open_qa",
             "conversations": open_qa_turns(scene, rng, "<video>\n")}
            for d, scene in load_scenes(data_dir, split, copies=copies) for c in range(copies)]


def question_record(q, answer: str = "text_letter") -> dict:
    """One generated multiple-choice question (trajvlm.data.synthetic.questions.Question) -> a QA record without
    video or id (category, question, options, answer, single-turn conversation answered in format ``answer``)."""
    rec = {"category": q.category, "question": q.question, "options": q.option_lines, "answer": q.answer,
           "conversations": [{"from": "human", "value": q.prompt()}, {"from": "gpt", "value": q.answer}]}
    return mc_answer(rec, answer)


_EXTRA_QA_STREAM = 8  # numpy seed stream of the extra question draws (the dataset's streams are 0-2, the warm-up's 7)
_FOCUS_QA_STREAM = 9  # the same for draws restricted to some categories (extra_mcq_records(categories=...))
_LOOKALIKE_QA_STREAM = 10  # the same for the look-alike questions (lookalike_records)


def question_categories(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple after checking it is a non-empty subset of the generator's question categories."""
    from ..data.synthetic.questions import CATEGORIES

    names = tuple(names)
    if not names or set(names) - set(CATEGORIES):
        raise ValueError(f"categories must be a non-empty subset of {CATEGORIES}, got {list(names)!r}")
    return names


def extra_mcq_records(data_dir: str | os.PathLike, split: str = "train", *, copies: int = 1, seed: int = 0,
                      answer: str = "text_letter", categories: Sequence[str] | None = None) -> list[dict]:
    """``copies`` more multiple-choice question sets per video of the split, drawn by the generator's own
    ``make_questions`` with new random streams: other objects asked about, the other of first/last, new
    distractors and answer positions. The videos and their facts are the split's; only the questions are new,
    so the held-out splits stay untouched. Records look like ``<split>_qa.json``'s (ids ``<video>_x<copy>q<k>``).

    ``categories``: keep only the questions of these categories (``questions.CATEGORIES``), drawn from their own
    random streams (ids ``<video>_f<copy>q<k>``), so a focused draw never repeats an unfocused one -- more practice
    on a weak category (temporal order) without more of the others.
    """
    from ..data.synthetic.questions import make_questions

    if categories is not None:
        categories = question_categories(categories)
    stream, tag = (_EXTRA_QA_STREAM, "x") if categories is None else (_FOCUS_QA_STREAM, "f")

    def draw(scene, rng, cfg):
        questions = make_questions(scene, rng, count_range=(cfg.min_objects, cfg.max_objects))
        return [(k, q) for k, q in enumerate(questions) if categories is None or q.category in categories]

    return _drawn_records(data_dir, split, draw, copies=copies, seed=seed, answer=answer, stream=stream, tag=tag)


def lookalike_records(data_dir: str | os.PathLike, split: str = "train", *, copies: int = 1, seed: int = 0,
                      answer: str = "text_letter") -> list[dict]:
    """``copies`` draws per video of the split of ``questions.lookalike_questions``: the direction of every object
    that shares its colour with another one, and "which of these appears first/last" with its same-colour
    neighbour listed (ids ``<video>_l<copy>q<k>``, their own random stream). Videos without a shared colour give
    none. Practice on the conjunction of colour and shape, which the shipped model answers at chance on val
    (eval/results/default_model.md, session 16)."""
    from ..data.synthetic.questions import lookalike_questions

    return _drawn_records(data_dir, split, lambda scene, rng, cfg: list(enumerate(lookalike_questions(scene, rng))),
                          copies=copies, seed=seed, answer=answer, stream=_LOOKALIKE_QA_STREAM, tag="l")


def _drawn_records(data_dir, split: str, draw, *, copies: int, seed: int, answer: str, stream: int,
                   tag: str) -> list[dict]:
    """QA records of ``draw(scene, rng, generator config) -> [(k, Question)]`` for ``copies`` draws per video of the
    split, each draw from its own stream ``[generator seed, stream, seed, video index, copy]``; ids
    ``<video>_<tag><copy>q<k>``."""
    import numpy as np

    scenes = load_scenes(data_dir, split, copies=copies)
    cfg = generator_config(data_dir)
    out = []
    for i, (d, scene) in enumerate(scenes):
        for c in range(copies):
            rng = np.random.default_rng([cfg.seed, stream, seed, i, c])
            for k, q in draw(scene, rng, cfg):
                out.append({"id": f"{d['id']}_{tag}{c}q{k}", "video": d["video"], **question_record(q, answer)})
    return out


def mcq_records(data_dir: str | os.PathLike, split: str = "train", *, answer: str = "text_letter") -> list[dict]:
    """Every multiple-choice QA record of the split, answered in format ``answer`` (``mc_answer``)."""
    path = Path(data_dir, f"{split}_qa.json")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {data_dir} a ShapesQA folder?")
    return [mc_answer(r, answer) for r in json.loads(path.read_text())]


def sft_records(data_dir: str | os.PathLike, split: str = "train", *, lookups: int = 0, open_qa: int = 0,
                extra_qa: int = 0, focus_qa: int = 0, focus_categories: Sequence[str] = ("temporal_order",),
                lookalike_qa: int = 0, captions: bool = True, answer: str = "text_letter", list_objects: bool = False,
                seed: int = 0) -> list[dict]:
    """Stage-2 data of the default model: every QA record of the split (``mcq_records``), ``extra_qa`` more
    question sets per video (``extra_mcq_records``), ``focus_qa`` more draws of only the ``focus_categories``
    questions, ``lookalike_qa`` draws of the look-alike questions (``lookalike_records``), every caption record (``captions``), ``open_qa`` copies of the dense open-question records
    (``open_qa_records``, multi-turn) and ``lookups`` text-only option lookups (trajvlm.train.text_warmup: they
    keep the letter binding the LLM learned in its text warm-up), shuffled; all but the open-question records are
    single-turn (as in evaluation). With ``list_objects`` every multiple-choice video record is answered by first
    listing the video's objects (``listed_records``)."""
    import random

    from .text_warmup import option_lookup_records

    records = mcq_records(data_dir, split, answer=answer)
    if extra_qa:
        records += extra_mcq_records(data_dir, split, copies=extra_qa, seed=seed, answer=answer)
    if focus_qa:
        records += extra_mcq_records(data_dir, split, copies=focus_qa, seed=seed, answer=answer,
                                     categories=focus_categories)
    if lookalike_qa:
        records += lookalike_records(data_dir, split, copies=lookalike_qa, seed=seed, answer=answer)
    if captions:
        records += json.loads(Path(data_dir, f"{split}_captions.json").read_text())
    if open_qa:
        records += open_qa_records(data_dir, split, copies=open_qa, seed=seed)
    if lookups:
        records += option_lookup_records(data_dir, split, n=lookups, seed=seed + 1000)
    if list_objects:
        records = listed_records(records, data_dir, split)
    random.Random(seed).shuffle(records)
    return records


def train_tokenizer(lines: list[str], *, vocab_size: int = 768, video_token: str = "<video>"):
    """SentencePiece BPE (byte fallback, digits split) -> LlamaTokenizer with <video> + template tokens."""
    from trajvlm.model.spm_tokenizer import (
        default_special_tokens,
        train_spm_llama_tokenizer,
    )

    return train_spm_llama_tokenizer(lines, vocab_size=vocab_size, special_tokens=default_special_tokens(video_token),
                                     split_digits=True)


def build_llm(tokenizer, *, hidden: int = 256, layers: int = 4, heads: int = 4, seed: int = 0):
    """A randomly initialised LlamaForCausalLM sized to the tokenizer (SwiGLU width ~8/3 hidden, full MHA)."""
    from trajvlm.testing import build_tiny_llama

    return build_tiny_llama(tokenizer, hidden_size=hidden, num_layers=layers, num_heads=heads, seed=seed,
                            intermediate_size=hidden * 8 // 3 // 32 * 32 or hidden, num_kv_heads=heads,
                            max_positions=512)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trajvlm.train.default_model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="ShapesQA folder (its train split is the tokenizer corpus)")
    p.add_argument("--out", help="writes OUT/llm (required unless --records-only)")
    p.add_argument("--records-only", action="store_true",
                   help="write only the stage-1/2 JSON files into --data (for a tokenizer + LLM made earlier, e.g. "
                        "a warmed-up one reused on a larger ShapesQA folder)")
    p.add_argument("--vocab-size", type=int, default=768)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--stage2-lookups", type=int, default=2000,
                   help="text-only option lookups mixed into the stage-2 data")
    p.add_argument("--stage2-open-qa", type=int, default=0,
                   help="copies of the dense open-question records (one multi-turn record per video, see "
                        "open_qa_records) mixed into the stage-2 data")
    p.add_argument("--stage2-extra-qa", type=int, default=0,
                   help="more multiple-choice question sets per train video (new draws of the generator's "
                        "questions, extra_mcq_records) mixed into the stage-2 data")
    p.add_argument("--stage2-focus-qa", type=int, default=0,
                   help="more question draws per train video restricted to --stage2-focus-categories "
                        "(extra_mcq_records(categories=...)): practice on a weak category")
    p.add_argument("--stage2-focus-categories", default="temporal_order",
                   help="comma-separated question categories of the --stage2-focus-qa draws")
    p.add_argument("--stage2-lookalike-qa", type=int, default=0,
                   help="draws per train video of the look-alike questions (lookalike_records: direction and "
                        "first/last of every object sharing its colour with another one)")
    p.add_argument("--stage2-list-objects", action="store_true",
                   help="stage-2 multiple-choice answers first list the video's objects, then answer after "
                        "'Answer:' (listed_answer)")
    p.add_argument("--answer", choices=ANSWER_FORMATS, default="text_letter",
                   help="how the QA records are answered: ' red' (text) or ' red (B)' (text_letter), see mc_answer")
    p.add_argument("--no-stage2-captions", dest="stage2_captions", action="store_false",
                   help="leave the caption records out of the stage-2 data")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if (args.out is None) != args.records_only:
        p.error("give either --out (tokenizer + LLM + data) or --records-only (the stage-1/2 JSON files alone)")
    try:
        focus = question_categories(args.stage2_focus_categories.split(","))
    except ValueError as e:
        p.error(f"--stage2-focus-categories: {e}")
    records = sft_records(args.data, lookups=args.stage2_lookups, open_qa=args.stage2_open_qa,
                          extra_qa=args.stage2_extra_qa, focus_qa=args.stage2_focus_qa, focus_categories=focus,
                          lookalike_qa=args.stage2_lookalike_qa, captions=args.stage2_captions, answer=args.answer,
                          list_objects=args.stage2_list_objects, seed=args.seed)
    Path(args.data, SFT_FILE).write_text(json.dumps(records))
    print(f"{len(records)} stage-2 records (QA, answer format {args.answer}{' + captions' * args.stage2_captions} + "
          f"{args.stage2_extra_qa} x extra questions + {args.stage2_focus_qa} x {args.stage2_focus_categories} + {args.stage2_lookalike_qa} x look-alike questions + {args.stage2_open_qa} x open questions + {args.stage2_lookups} option lookups{', answers listing the objects' * args.stage2_list_objects}) -> {Path(args.data, SFT_FILE)}")
    mcq = mcq_records(args.data, answer=args.answer)
    Path(args.data, MCQ_FILE).write_text(json.dumps(mcq))
    print(f"{len(mcq)} stage-1 records (QA, answer format {args.answer}) -> {Path(args.data, MCQ_FILE)}")
    if args.records_only:
        return 0
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
