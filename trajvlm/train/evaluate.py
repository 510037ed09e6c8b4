"""Held-out ShapesQA accuracy per category, greedy decoding (the evaluator of the built-in default model).

    python -m trajvlm.train.evaluate --model trajvlm/assets/default_model --data DIR [--split test] [--json OUT]
        [--by-colour]

Each question is asked exactly as its JSON record's human turn (question, ``A.``-``D.`` options and the
"Answer with the option's letter" instruction; the ``<video>`` placeholder first), the video read with the
processor's frame sampling, and the answer is the first standalone letter A-D of the greedy output (the
rule lmms-eval's multiple-choice tasks use) or, in an answer without a letter, the one option it names by text
(VLMEvalKit's rule; trajvlm.eval.mcq); an answer that lists the objects first is read after its last
"Answer:" (greedy decoding up to ``--max-new-tokens``). Prints a markdown table; ``--json`` writes the numbers.
``--by-colour`` adds the accuracy on videos where two objects share a colour vs the others
(``colour_breakdown``): look-alike objects are where the default model loses most of its points
(eval/results/default_model.md, session 12).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

import torch

from ..eval.mcq import answer_letter, parse_letter

__all__ = ["CATEGORIES", "answer_letter", "colour_breakdown", "colour_table", "evaluate_shapesqa", "load_questions",
           "markdown_table", "parse_letter"]

CATEGORIES = ("attribute", "counting", "direction", "temporal_order", "needle")
MAX_NEW_TOKENS = 48  # an answer ends at the end-of-turn token; one that lists the objects first is up to ~25


def load_questions(data_dir: str, split: str, limit: int | None = None) -> list[dict]:
    path = os.path.join(data_dir, f"{split}_qa.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {data_dir} a ShapesQA folder (python -m trajvlm.data.synthetic)?")
    with open(path) as f:
        records = json.load(f)
    return records[:limit] if limit else records


@torch.no_grad()
def evaluate_shapesqa(
    model,
    processor,
    data_dir: str,
    *,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 16,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> dict:
    """{"overall": acc, "per_category": {cat: {"accuracy", "correct", "total"}}, "predictions": [...]}."""
    model.eval()
    records = load_questions(data_dir, split, limit)
    by_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    predictions = []
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        convs = [[turn for turn in r["conversations"] if turn["from"] == "human"][:1] for r in batch]
        videos = [os.path.join(data_dir, r["video"]) for r in batch]
        inputs = processor(convs, videos, add_generation_prompt=True, padding_side="left")
        out = model.generate(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            pixel_values_videos=inputs["pixel_values_videos"],
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=processor.stop_token_ids,
            pad_token_id=processor.tokenizer.pad_token_id,
        )
        texts = processor.batch_decode(out, skip_special_tokens=True)
        for r, text in zip(batch, texts):
            letter = answer_letter(text, r["options"])
            ok = letter == r["answer"]
            cat = r.get("category", "all")
            by_cat[cat][0] += int(ok)
            by_cat[cat][1] += 1
            predictions.append({"id": r["id"], "video": r["video"], "category": cat, "answer": r["answer"],
                                "output": text, "picked": letter, "correct": ok})
    correct = sum(c for c, _ in by_cat.values())
    total = sum(t for _, t in by_cat.values())
    ordered = [c for c in CATEGORIES if c in by_cat] + sorted(c for c in by_cat if c not in CATEGORIES)
    return {
        "split": split,
        "overall": correct / total if total else 0.0,
        "correct": correct,
        "total": total,
        "per_category": {c: {"accuracy": by_cat[c][0] / by_cat[c][1], "correct": by_cat[c][0], "total": by_cat[c][1]}
                         for c in ordered},
        "predictions": predictions,
    }


def colour_breakdown(result: dict, data_dir: str) -> dict:
    """Accuracy per category split by scene: videos where two objects share a colour (told apart by shape alone)
    vs videos whose colours are all different. Reads ``<split>_scenes.json``.

    -> {"same_colour": {cat: {"accuracy", "correct", "total"}, ..., "overall": {...}}, "distinct_colours": {...}}
    """
    path = os.path.join(data_dir, f"{result['split']}_scenes.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: the colour breakdown needs the generator's scene specs")
    with open(path) as f:
        repeated = {s["video"]: len({o["colour"] for o in s["objects"]}) < len(s["objects"]) for s in json.load(f)}
    counts: dict[str, dict[str, list[int]]] = {"same_colour": defaultdict(lambda: [0, 0]),
                                               "distinct_colours": defaultdict(lambda: [0, 0])}
    for p in result["predictions"]:
        if p["video"] not in repeated:
            raise KeyError(f"{p['video']} (question {p['id']}) is not in {path}")
        group = counts["same_colour" if repeated[p["video"]] else "distinct_colours"]
        for key in (p["category"], "overall"):
            group[key][0] += int(p["correct"])
            group[key][1] += 1
    return {name: {k: {"accuracy": c / t, "correct": c, "total": t} for k, (c, t) in group.items()}
            for name, group in counts.items()}


def colour_table(breakdown: dict, categories: list[str]) -> str:
    """``colour_breakdown``'s result -> a markdown table: one row per video group, "accuracy % (questions)" per
    category and overall ("--" where a group has no question of a category)."""
    columns = [*categories, "overall"]
    lines = ["| videos | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for name, group in breakdown.items():
        cells = [f"{100 * group[c]['accuracy']:.1f}% ({group[c]['total']})" if c in group else "--" for c in columns]
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_table(result: dict) -> str:
    lines = ["| category | accuracy | correct / total |", "| --- | --- | --- |"]
    for cat, r in result["per_category"].items():
        lines.append(f"| {cat} | {100 * r['accuracy']:.1f}% | {r['correct']} / {r['total']} |")
    lines.append(f"| **overall** | **{100 * result['overall']:.1f}%** | {result['correct']} / {result['total']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trajvlm.train.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a saved TrajVLM folder")
    p.add_argument("--data", required=True, help="ShapesQA folder")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="first N questions only")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS,
                   help="greedy decoding stops at the end-of-turn token or after this many tokens (a model that "
                        "lists the objects before its answer writes up to ~25)")
    p.add_argument("--json", default=None, help="write the result (with per-question predictions) here")
    p.add_argument("--by-colour", action="store_true",
                   help="also split the accuracy by videos with / without two objects of the same colour "
                        "(needs <split>_scenes.json)")
    args = p.parse_args(argv)
    if args.max_new_tokens < 1:
        p.error(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")

    from trajvlm.model import TrajVLMForConditionalGeneration, TrajVLMProcessor

    t0 = time.perf_counter()
    model = TrajVLMForConditionalGeneration.from_pretrained(args.model)
    processor = TrajVLMProcessor.from_pretrained(args.model)
    result = evaluate_shapesqa(model, processor, args.data, split=args.split, limit=args.limit,
                               batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(markdown_table(result))
    print(f"({result['total']} {args.split} questions, {result['seconds']} s)")
    if args.by_colour:
        result["by_colour"] = colour_breakdown(result, args.data)
        print(colour_table(result["by_colour"], list(result["per_category"])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
