"""Captions (stage-1 data) and multiple-choice questions (stage-2 data / evaluation) for a ShapesQA scene.

Ground truth comes from the `SceneSpec`; `render.scene_violation` (checked by the sampler) guarantees that it agrees with the
rendered masks (object i is visible exactly in frames [t_start, t_end] and moves along `direction`).

Questions are unambiguous by construction: an object is named by its colour and shape ("the red
circle"; scenes never repeat a pair), "the circle" / "the red object" only when exactly one object
has that shape / colour, "which of these appears first/last" only when the answer appears >= 2 frames
before/after every other listed object of the scene (listed absent objects never appear), and the
four options are always distinct.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from trajvlm.data.synthetic.scene import COLOURS, DIRECTIONS, SHAPES, ObjectSpec, SceneSpec

LETTERS = ("A", "B", "C", "D")
CATEGORIES = ("attribute", "counting", "direction", "temporal_order", "needle")
CAPTION_PROMPT = "Describe the video."
ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly."
TEMPORAL_MARGIN = 2  # frames between the first (last) appearance and the next one
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")


@dataclass(frozen=True)
class Question:
    """One 4-way multiple-choice question about a scene."""

    category: str  # one of CATEGORIES
    question: str
    options: tuple[str, str, str, str]  # option texts without letters, all distinct
    answer_index: int  # 0..3
    target: int | None = None  # index of the object asked about (None: counting)

    @property
    def answer(self) -> str:
        """The answer letter, "A".."D"."""
        return LETTERS[self.answer_index]

    @property
    def option_lines(self) -> list[str]:
        """["A. red", "B. blue", ...]"""
        return [f"{letter}. {text}" for letter, text in zip(LETTERS, self.options)]

    def prompt(self) -> str:
        """Human turn: '<video>\\n{question}\\n{options}\\nAnswer with the option's letter ...'."""
        return "<video>\n" + self.question + "\n" + "\n".join(self.option_lines) + "\n" + ANSWER_INSTRUCTION


def _positions(rng: np.random.Generator) -> Iterator[int]:
    """Answer positions: consecutive random permutations of 0..3 (uniform and balanced per video)."""
    while True:
        yield from (int(p) for p in rng.permutation(4))


def _pick_options(rng: np.random.Generator, answer: str, preferred: Sequence[str], pool: Sequence[str],
                  position: int) -> tuple[tuple[str, str, str, str], int]:
    """Answer at `position` + 3 distinct distractors: `preferred` (hard negatives, e.g. attributes of other
    objects in the scene) first, then the rest of `pool`, each group in random order."""
    chosen: list[str] = []
    for group in (preferred, pool):
        fresh = [v for v in dict.fromkeys(group) if v != answer and v not in chosen]
        chosen += [fresh[int(j)] for j in rng.permutation(len(fresh))][: 3 - len(chosen)]
    if len(chosen) < 3:
        raise ValueError(f"not enough distinct distractors for {answer!r} in {list(pool)}")
    chosen = [chosen[int(j)] for j in rng.permutation(3)]  # hard negatives must not sit in fixed slots
    opts = chosen[:position] + [answer] + chosen[position:]
    return (opts[0], opts[1], opts[2], opts[3]), position


# question texts, shared by the multiple-choice questions and the open ones (same wording, so what is learned
# from one form carries over to the other)
COUNT_QUESTION = "How many different objects appear in the video in total?"
NEEDLE_COLOUR_QUESTION = "One object appears only briefly in the video. What colour is it?"
NEEDLE_SHAPE_QUESTION = "One object appears only briefly in the video. What shape is it?"


def _colour_question(o: ObjectSpec) -> str:
    return f"What colour is the {o.shape}?"  # only asked when o is the only object of its shape


def _shape_question(o: ObjectSpec) -> str:
    return f"What shape is the {o.colour} object?"  # only asked when o is the only object of its colour


def direction_question(description: str) -> str:
    """The direction question about the object named ``description`` (its colour and shape, "red circle")."""
    return f"In which direction does the {description} move?"


def _unique_shape(objs: Sequence[ObjectSpec]) -> list[int]:
    """Indices of the objects "the <shape>" names unambiguously."""
    return [i for i, o in enumerate(objs) if sum(p.shape == o.shape for p in objs) == 1]


def _unique_colour(objs: Sequence[ObjectSpec]) -> list[int]:
    """Indices of the objects "the <colour> object" names unambiguously."""
    return [i for i, o in enumerate(objs) if sum(p.colour == o.colour for p in objs) == 1]


def _attribute(rng: np.random.Generator, scene: SceneSpec, pos: int) -> Question | None:
    objs = scene.objects
    by_shape, by_colour = _unique_shape(objs), _unique_colour(objs)
    kinds = [k for k, c in (("colour", by_shape), ("shape", by_colour)) if c]
    if not kinds:
        return None
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "colour":  # "What colour is the circle?" (the only circle)
        i = by_shape[int(rng.integers(len(by_shape)))]
        opts, a = _pick_options(rng, objs[i].colour, [o.colour for o in objs], list(COLOURS), pos)
        return Question("attribute", _colour_question(objs[i]), opts, a, i)
    i = by_colour[int(rng.integers(len(by_colour)))]  # "What shape is the red object?" (the only red one)
    opts, a = _pick_options(rng, objs[i].shape, [o.shape for o in objs], list(SHAPES), pos)
    return Question("attribute", _shape_question(objs[i]), opts, a, i)


def _counting(rng: np.random.Generator, scene: SceneSpec, pos: int, count_range: tuple[int, int]) -> Question:
    n = scene.num_objects
    lo, hi = count_range
    if hi - lo + 1 == 4:  # the option set is always the possible counts: it leaks nothing
        pool = [str(v) for v in range(lo, hi + 1)]
    else:
        pool = [str(v) for v in range(max(1, n - 3), n + 4)]
    opts, a = _pick_options(rng, str(n), [], pool, pos)
    return Question("counting", COUNT_QUESTION, opts, a, None)


def _direction(rng: np.random.Generator, scene: SceneSpec, pos: int) -> Question:
    i = int(rng.integers(scene.num_objects))
    o = scene.objects[i]
    opts, a = _pick_options(rng, o.direction, [], list(DIRECTIONS), pos)
    return Question("direction", direction_question(o.description), opts, a, i)


def _absent_descriptions(scene: SceneSpec) -> list[str]:
    """Colour+shape pairs not in the scene; pairs mixing attributes seen in the scene first."""
    present = {o.description for o in scene.objects}
    cs, ss = [o.colour for o in scene.objects], [o.shape for o in scene.objects]
    mixed = [f"{c} {s}" for c in dict.fromkeys(cs) for s in dict.fromkeys(ss)]
    every = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    return [d for d in dict.fromkeys(mixed + every) if d not in present]


def _temporal(rng: np.random.Generator, scene: SceneSpec, pos: int) -> Question | None:
    """"Which of these objects appears first/last?": the answer appears >= TEMPORAL_MARGIN frames before
    (after) every other listed object of the scene; absent objects fill the remaining options."""
    objs = scene.objects
    kinds = ["first", "last"]
    kinds = [kinds[int(j)] for j in rng.permutation(2)]
    for kind in kinds:
        sign = 1 if kind == "first" else -1
        # candidates: objects with at least one other object appearing >= margin frames later (earlier)
        later = {i: [j for j, p in enumerate(objs) if sign * (p.t_start - o.t_start) >= TEMPORAL_MARGIN]
                 for i, o in enumerate(objs)}
        cands = [i for i, js in later.items() if js]
        if not cands:
            continue
        i = cands[int(rng.integers(len(cands)))]
        others = [objs[int(j)].description for j in rng.permutation(later[i])][:3]
        return _temporal_question(rng, scene, i, kind, others, pos)
    return None


def _temporal_question(rng: np.random.Generator, scene: SceneSpec, i: int, kind: str, others: Sequence[str],
                       pos: int) -> Question:
    """"Which of these objects appears first/last?" answered by object i, listing `others` (objects of the scene
    that appear >= TEMPORAL_MARGIN frames later / earlier, at most 3) and absent objects for the remaining options."""
    absent = _absent_descriptions(scene)
    fill = [absent[int(j)] for j in rng.permutation(min(len(absent), 12))]
    opts, a = _pick_options(rng, scene.objects[i].description, others, fill, pos)
    text = ("Which of these objects appears first in the video?" if kind == "first"
            else "Which of these objects is the last to appear in the video?")
    return Question("temporal_order", text, opts, a, i)


def _needle(rng: np.random.Generator, scene: SceneSpec, positions: Iterator[int]) -> list[Question]:
    i = scene.needle
    assert i is not None
    o, others = scene.objects[i], [p for j, p in enumerate(scene.objects) if j != i]
    c_opts, c_a = _pick_options(rng, o.colour, [p.colour for p in others], list(COLOURS), next(positions))
    s_opts, s_a = _pick_options(rng, o.shape, [p.shape for p in others], list(SHAPES), next(positions))
    return [
        Question("needle", NEEDLE_COLOUR_QUESTION, c_opts, c_a, i),
        Question("needle", NEEDLE_SHAPE_QUESTION, s_opts, s_a, i),
    ]


def make_questions(scene: SceneSpec, rng: np.random.Generator, *, count_range: tuple[int, int] = (2, 5)) -> list[Question]:
    """Questions of one video.

    Needle videos: two `needle` questions (colour and shape of the briefly visible object).
    Normal clips: one `attribute` (when some shape or colour is unique), one `counting`, one
    `direction` (object chosen uniformly, so directions are as balanced as the sampler's) and one
    `temporal_order` (when some object appears >= TEMPORAL_MARGIN frames before or after another).
    `count_range` is the sampler's (min_objects, max_objects): with 4 values it is the option set.
    Answer positions follow random permutations of A..D (balanced).
    """
    positions = _positions(rng)
    if scene.needle is not None:
        return _needle(rng, scene, positions)
    qs = [
        _attribute(rng, scene, next(positions)),
        _counting(rng, scene, next(positions), count_range),
        _direction(rng, scene, next(positions)),
        _temporal(rng, scene, next(positions)),
    ]
    return [q for q in qs if q is not None]


def _lookalikes(objs: Sequence[ObjectSpec]) -> list[int]:
    """Indices of the objects that share their colour with another object (only their shape tells them apart)."""
    unique = set(_unique_colour(objs))
    return [i for i in range(len(objs)) if i not in unique]


def lookalike_questions(scene: SceneSpec, rng: np.random.Generator) -> list[Question]:
    """Questions about look-alike objects (objects sharing their colour with another one), every one of them.

    Per look-alike object: its `direction` (a same-colour object's direction first among the distractors), and
    "which of these appears first/last" for each of first/last in which it leads (trails) a same-colour object by
    >= TEMPORAL_MARGIN frames, with that object listed (other listed objects of the scene also appear later /
    earlier, absent ones fill the rest). The question families and wording of `make_questions`, but each is
    answered only by reading the object's shape as well as its colour: the conjunction the generic draws ask for
    rarely. Empty for needle clips and for scenes without a shared colour."""
    objs = scene.objects
    if scene.needle is not None:
        return []
    positions = _positions(rng)
    out = []
    for i in _lookalikes(objs):
        o = objs[i]
        siblings = [p.direction for j, p in enumerate(objs) if j != i and p.colour == o.colour]
        opts, a = _pick_options(rng, o.direction, siblings, list(DIRECTIONS), next(positions))
        out.append(Question("direction", direction_question(o.description), opts, a, i))
        for kind, sign in (("first", 1), ("last", -1)):
            later = [j for j, p in enumerate(objs) if sign * (p.t_start - o.t_start) >= TEMPORAL_MARGIN]
            same = [j for j in later if objs[j].colour == o.colour]
            if not same:
                continue
            rest = [j for j in later if j not in same]
            others = [objs[int(j)].description for j in [*rng.permutation(same), *rng.permutation(rest)]][:3]
            out.append(_temporal_question(rng, scene, i, kind, others, next(positions)))
    return out


def open_questions(scene: SceneSpec) -> list[tuple[str, str, str]]:
    """Every open-ended (no options) question the scene answers unambiguously: (category, question, answer text).

    The same facts and naming rules as `make_questions`, asked about every object instead of one: colour of each
    uniquely shaped object, shape of each uniquely coloured one, direction of each object, the count, the first
    (last) object to appear when it leads (trails) the next one by >= TEMPORAL_MARGIN frames; needle videos ask
    the needle's colour and shape. Dense training data: one video answers ~10 of them (trajvlm.train.default_model).
    """
    objs = scene.objects
    if scene.needle is not None:
        o = objs[scene.needle]
        return [("needle", NEEDLE_COLOUR_QUESTION, o.colour), ("needle", NEEDLE_SHAPE_QUESTION, o.shape)]
    by_shape, by_colour = set(_unique_shape(objs)), set(_unique_colour(objs))
    out: list[tuple[str, str, str]] = []
    for i, o in enumerate(objs):
        if i in by_shape:
            out.append(("attribute", _colour_question(o), o.colour))
        if i in by_colour:
            out.append(("attribute", _shape_question(o), o.shape))
        out.append(("direction", direction_question(o.description), o.direction))
    out.append(("counting", COUNT_QUESTION, str(len(objs))))
    by_start = sorted(objs, key=lambda o: o.t_start)
    if len(by_start) > 1 and by_start[1].t_start - by_start[0].t_start >= TEMPORAL_MARGIN:
        out.append(("temporal_order", "Which object appears first in the video?", by_start[0].description))
    if len(by_start) > 1 and by_start[-1].t_start - by_start[-2].t_start >= TEMPORAL_MARGIN:
        out.append(("temporal_order", "Which object is the last to appear in the video?", by_start[-1].description))
    return out


# ----------------------------------------------------------------------------------------- captions
def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _noun_phrase(o: ObjectSpec) -> str:
    words = f"{o.size_name} {o.colour} {o.shape}"
    return ("an " if words[0] in "aeiou" else "a ") + words


def make_caption(scene: SceneSpec, occlusions: Sequence[tuple[int, int]] = ()) -> str:
    """One paragraph naming every object's size, colour, shape and motion direction in order of
    appearance, which objects leave early, the needle (if any), who passes in front of whom
    (`occlusions`: (front, back) object indices, see `render.occlusion_pairs`) and the total count.

    e.g. "At the start, a small red circle moves right and a large blue square moves up. Then a
    medium-sized green star appears and moves left. The blue square disappears before the end.
    The red circle passes in front of the blue square. In total, three objects appear."
    """
    objs, T = scene.objects, scene.num_frames
    starts = sorted({o.t_start for o in objs})
    connectors = ("Then", "After that", "Later", "Next", "Afterwards")
    sentences = []
    for g, t in enumerate(starts):
        group = [i for i, o in enumerate(objs) if o.t_start == t]
        parts = []
        for i in group:
            o = objs[i]
            if i == scene.needle:
                parts.append(f"{_noun_phrase(o)} briefly appears, moves {o.direction} and quickly disappears")
            elif t == 0:
                parts.append(f"{_noun_phrase(o)} moves {o.direction}")
            else:
                parts.append(f"{_noun_phrase(o)} appears and moves {o.direction}")
        lead = ("At the start, " if t == 0 else "First, ") if g == 0 else connectors[min(g - 1, len(connectors) - 1)] + ", "
        body = _join(parts)
        sentences.append(lead + body + ".")
    leaving = [f"the {objs[i].description}" for i in range(len(objs)) if objs[i].t_end < T - 1 and i != scene.needle]
    if leaving:
        verb = "disappears" if len(leaving) == 1 else "disappear"
        sentences.append(f"{_join(leaving)[0].upper()}{_join(leaving)[1:]} {verb} before the end.")
    for front, back in occlusions:
        sentences.append(f"The {objs[front].description} passes in front of the {objs[back].description}.")
    n = len(objs)
    sentences.append(f"In total, {_NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else n} object{'s' if n != 1 else ''} appear{'s' if n == 1 else ''}.")
    return " ".join(sentences)


__all__ = ["ANSWER_INSTRUCTION", "CAPTION_PROMPT", "CATEGORIES", "LETTERS", "Question", "make_caption", "make_questions", "open_questions"]
