"""The lookup probe's questions: pick one of two same-coloured objects by its shape.

A scene of 2-5 objects (distinct colour + shape pairs of the ShapesQA vocabulary, each moving in one of the four
directions), given as text-warm-up records (``objects``: one word list per object, ``text_warmup.TextBatcher``
splices each as ONE vector, the sum of its word embeddings) with the ShapesQA direction question about one of them
and the four directions as options, answered with the option's text. In a "lookalike" record two objects share a
colour and the question is about one of them: only its shape tells it from the other. Used by
``trajvlm.train.lookup_probe`` (the probe) and ``trajvlm.train.text_warmup`` (``--probe-steps`` /
``--probe-records``: a fresh Llama learns this lookup first, see eval/results/default_model.md, session 19).
"""

from __future__ import annotations

import random

from ..data.synthetic.questions import Question, direction_question
from ..data.synthetic.scene import COLOURS, DIRECTIONS, SHAPES
from .default_model import question_record

KINDS = ("lookalike", "other")


def probe_scene(rng: random.Random, lookalike: bool) -> tuple[list[tuple[str, str, str]], int]:
    """(colour, shape, direction) of 2-5 objects with distinct colour + shape pairs, and the index of the object
    asked about. ``lookalike``: at least two objects share a colour and the target is one of them; otherwise
    every colour is different (the colour alone finds the target)."""
    n = rng.randint(2, 5)
    colours = rng.sample(list(COLOURS), n)
    if lookalike:
        colours[1] = colours[0]
    pairs: list[tuple[str, str]] = []
    for c in colours:
        pairs.append((c, rng.choice([s for s in SHAPES if (c, s) not in pairs])))
    order = rng.sample(range(n), n)
    objects = [(pairs[i][0], pairs[i][1], rng.choice(DIRECTIONS)) for i in order]
    target = order.index(rng.randint(0, 1)) if lookalike else rng.randrange(n)
    return objects, target


def probe_record(rng: random.Random, lookalike: bool, index: int) -> dict:
    """One text-warm-up record (``objects`` + a direction question answered with the option's text)."""
    objects, t = probe_scene(rng, lookalike)
    colour, shape, direction = objects[t]
    options = tuple(rng.sample(DIRECTIONS, len(DIRECTIONS)))
    q = Question("direction", direction_question(f"{colour} {shape}"), options, options.index(direction), t)
    return {"id": f"probe{index}", "category": KINDS[0] if lookalike else KINDS[1],
            "conversations": question_record(q, "text")["conversations"], "objects": [list(o) for o in objects]}


def probe_records(n: int, rng: random.Random, lookalike_fraction: float = 0.5, *, start: int = 0) -> list[dict]:
    """``n`` records, each a look-alike question with probability ``lookalike_fraction``."""
    if not 0.0 <= lookalike_fraction <= 1.0:
        raise ValueError(f"lookalike_fraction must be in [0, 1], got {lookalike_fraction!r}")
    return [probe_record(rng, rng.random() < lookalike_fraction, start + i) for i in range(n)]
