"""Look-alike questions: direction and first/last of objects that share their colour with another one
(trajvlm.data.synthetic.questions.lookalike_questions; the stage-2 records made of them are tested in
tests/test_default_model_parts.py)."""

from __future__ import annotations

import numpy as np

from trajvlm.data.synthetic.questions import TEMPORAL_MARGIN, lookalike_questions
from trajvlm.data.synthetic.scene import BackgroundSpec, ObjectSpec, SceneSpec

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
