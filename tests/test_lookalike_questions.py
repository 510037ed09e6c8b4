"""Look-alike questions: direction and first/last of objects that share their colour with another one
(trajvlm.data.synthetic.questions.lookalike_questions, trajvlm.train.default_model.lookalike_records)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trajvlm.data.synthetic.__main__ import main as synth_main
from trajvlm.data.synthetic.questions import TEMPORAL_MARGIN, lookalike_questions
from trajvlm.data.synthetic.scene import BackgroundSpec, ObjectSpec, SceneSpec
from trajvlm.eval.mcq import answer_letter, option_text
from trajvlm.train.default_model import extra_mcq_records, lookalike_records, main, sft_records

BG = BackgroundSpec("stripes", (60.0, 60.0, 60.0), 5.0, 8.0, 0.0, 1.0, 1.0, 0)


def _obj(shape, colour, direction, t_start):
    return ObjectSpec(shape, colour, 10, "medium", direction, 1.0, 20.0, 20.0, t_start, 15, 0)


def _scene(*objects, needle=None):
    return SceneSpec(64, 16, tuple(objects), BG, needle)


def _answer_text(q):
    return q.options[q.answer_index]


def test_every_lookalike_object_is_asked_about_and_only_those():
    circle, square, star = _obj("circle", "red", "right", 0), _obj("square", "red", "up", 4), _obj("star", "blue", "left", 0)
    qs = lookalike_questions(_scene(circle, square, star), np.random.default_rng(0))
    direction = {q.question: _answer_text(q) for q in qs if q.category == "direction"}
    assert direction == {"In which direction does the red circle move?": "right",
                         "In which direction does the red square move?": "up"}
    temporal = {(q.question, _answer_text(q)): q for q in qs if q.category == "temporal_order"}
    # the circle leads the square by 4 >= TEMPORAL_MARGIN frames, so the square trails it: one of each, sibling listed
    first = temporal["Which of these objects appears first in the video?", "red circle"]
    last = temporal["Which of these objects is the last to appear in the video?", "red square"]
    assert len(temporal) == 2
    assert "red square" in first.options and "red circle" in last.options
    assert "blue star" in last.options  # appears 4 frames before the square: a valid listed object
    assert "blue star" not in first.options  # as early as the circle: listing it would make two answers
    for q in qs:
        assert len(set(q.options)) == 4 and q.target in (0, 1)


def test_listed_objects_always_leave_one_right_answer():
    rng = np.random.default_rng(1)
    objs = [_obj("circle", "red", "right", 0), _obj("square", "red", "up", 1), _obj("cross", "red", "down", 6),
            _obj("star", "green", "left", 3), _obj("diamond", "green", "up", 9)]
    scene = _scene(*objs)
    starts = {o.description: o.t_start for o in objs}
    qs = lookalike_questions(scene, rng)
    assert sum(q.category == "direction" for q in qs) == 5
    temporal = [q for q in qs if q.category == "temporal_order"]
    assert temporal
    for q in temporal:
        listed = [t for t in q.options if t in starts]
        answer = _answer_text(q)
        sign = 1 if "first" in q.question else -1
        assert all(sign * (starts[t] - starts[answer]) >= TEMPORAL_MARGIN for t in listed if t != answer)
        colour = answer.split()[0]
        assert any(t.split()[0] == colour for t in listed if t != answer)  # a same-colour object is listed


def test_no_questions_without_a_shared_colour_or_for_a_needle_clip():
    distinct = _scene(_obj("circle", "red", "right", 0), _obj("square", "blue", "up", 4))
    assert lookalike_questions(distinct, np.random.default_rng(0)) == []
    needle = _scene(_obj("circle", "red", "right", 0), _obj("square", "red", "up", 4), needle=1)
    assert lookalike_questions(needle, np.random.default_rng(0)) == []


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapesqa")
    synth_main(["--out", str(out), "--num-videos", "40", "--seed", "5", "--quiet"])
    return out


def test_lookalike_records_ask_about_the_videos_own_lookalikes(shapes):
    scenes = {d["id"]: d for d in json.loads((shapes / "train_scenes.json").read_text())}
    recs = lookalike_records(shapes, copies=2, answer="text")
    shared = {k for k, d in scenes.items() if d["needle"] is None
              and len({o["colour"] for o in d["objects"]}) < len(d["objects"])}
    assert shared, "the fixture needs a video with two objects of one colour"
    assert {r["id"].rsplit("_l", 1)[0] for r in recs} == shared
    assert len({r["id"] for r in recs}) == len(recs)
    assert lookalike_records(shapes, copies=2, answer="text") == recs  # deterministic
    assert lookalike_records(shapes, copies=2, seed=1, answer="text") != recs
    for r in recs:
        objs = scenes[r["id"].rsplit("_l", 1)[0]]["objects"]
        answer = r["conversations"][-1]["value"].strip()
        assert answer_letter(" " + answer, r["options"]) == r["answer"]
        if r["category"] == "direction":
            [o] = [o for o in objs if f"in which direction does the {o['colour']} {o['shape']} move?"
                   == r["question"].lower()]
            assert answer == o["direction"] and sum(p["colour"] == o["colour"] for p in objs) > 1
        else:
            starts = {f"{o['colour']} {o['shape']}": o["t_start"] for o in objs}
            named = [option_text(t) for t in r["options"] if option_text(t) in starts]
            first = "first" in r["question"]
            assert answer == (min if first else max)(named, key=lambda t: starts[t])
    extra = extra_mcq_records(shapes, copies=2)
    assert not {r["id"] for r in recs} & {r["id"] for r in extra}
    n = len(sft_records(shapes, extra_qa=1, captions=False))
    assert len(sft_records(shapes, extra_qa=1, lookalike_qa=2, captions=False)) == n + len(recs)


def test_records_only_mixes_in_lookalike_draws(shapes):
    assert main(["--data", str(shapes), "--records-only", "--answer", "text", "--stage2-lookups", "0",
                 "--no-stage2-captions", "--stage2-lookalike-qa", "3"]) == 0
    written = [r for r in json.loads((shapes / "train_sft.json").read_text()) if "_l" in r["id"]]
    assert sorted(r["id"] for r in written) == sorted(r["id"] for r in lookalike_records(shapes, copies=3))
    with pytest.raises(ValueError, match="copies"):
        lookalike_records(shapes, copies=-1)
