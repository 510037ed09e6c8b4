"""ShapesQA generator: determinism, exact masks, graph, occlusion, QA ground truth, balance, file format, CLI.

Answers are re-derived here from the rendered masks / graph and pixel colours (not from the generator's
question logic); the scene spec is used only for its inputs (which colour and shape each object has).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from trajvlm.data.synthetic import (
    COLOURS,
    DIRECTIONS,
    SHAPES,
    GeneratorConfig,
    SceneConfig,
    generate_dataset,
    make_example,
    occlusion_pairs,
    render_scene,
    sample_scene,
    scene_from_dict,
    scene_to_dict,
    split_of,
)
from trajvlm.data.synthetic.questions import ANSWER_INSTRUCTION, CATEGORIES, LETTERS, Question, open_questions

REPO = Path(__file__).resolve().parents[1]
CFG = GeneratorConfig(num_videos=1, seed=3)  # defaults: 64x64, 16 frames, 64-frame needles, 20% needles
PALETTE = np.array(list(COLOURS.values()), dtype=np.int64)  # (C,3)


@pytest.fixture(scope="module")
def examples():
    """80 in-memory videos (about 16 needle videos), generated once."""
    return [make_example(CFG.seed, i, CFG) for i in range(80)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small written dataset: 12 videos, half of them needle videos (frames 12, needles 24)."""
    out = tmp_path_factory.mktemp("shapesqa") / "ds"
    meta = generate_dataset(out, 12, seed=5, frames=12, needle_frames=24, needle_fraction=0.5)
    return out, meta


# ------------------------------------------------------------------------------------ independent ground truth
def colour_name_of(frames: np.ndarray, masks: np.ndarray, k: int) -> str:
    """The palette colour of instance k's pixels (they must all have exactly that colour)."""
    px = frames[masks == k].astype(np.int64)  # (P,3)
    assert px.size, f"instance {k} has no pixels"
    first = px[0]
    assert (px == first).all(), f"instance {k} is not flat-coloured before encoding"
    match = np.flatnonzero((PALETTE == first).all(axis=1))
    assert match.size == 1, f"instance {k} colour {first} is not a palette colour"
    return list(COLOURS)[int(match[0])]


def first_frames(graph: np.ndarray) -> np.ndarray:
    """(N,) first frame each instance is present in (from the graph)."""
    return np.array([np.flatnonzero(row)[0] for row in graph])


def direction_from_masks(masks: np.ndarray, k: int, min_travel: float | None = None) -> str:
    """Dominant axis and sign of the centroid motion between the first and last nearly unoccluded frames."""
    area = (masks == k).sum(axis=(1, 2))  # (T,)
    good = np.flatnonzero(area >= 0.9 * area.max())
    assert good.size >= 2

    def centroid(t):
        ys, xs = np.nonzero(masks[t] == k)
        return xs.mean(), ys.mean()

    (x0, y0), (x1, y1) = centroid(good[0]), centroid(good[-1])
    dx, dy = x1 - x0, y1 - y0
    travel = 0.2 * masks.shape[1] - 1 if min_travel is None else min_travel
    assert max(abs(dx), abs(dy)) >= travel, "motion too small to be unambiguous"
    assert min(abs(dx), abs(dy)) <= 2.0, "motion is not along one axis"
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def instance_by_description(ex, text: str) -> int | None:
    """Instance id (1-based) of the object called '<colour> <shape>', None if absent."""
    colour, shape = text.split(" ")
    ids = [i + 1 for i, o in enumerate(ex.scene.objects) if o.shape == shape and colour_name_of(ex.frames, ex.masks, i + 1) == colour]
    assert len(ids) <= 1, f"{text!r} is ambiguous"
    return ids[0] if ids else None


def check_question(ex, q) -> None:
    """Re-derive the answer of question q about example ex from masks/graph/pixels."""
    opts = list(q.options)
    assert len(opts) == 4 and len(set(opts)) == 4, f"options not 4 distinct: {opts}"
    answer_text = opts[q.answer_index]
    masks, graph, T = ex.masks, ex.graph, ex.masks.shape[0]
    n = graph.shape[0]
    colours = {k: colour_name_of(ex.frames, masks, k) for k in range(1, n + 1)}
    shapes = {k: ex.scene.objects[k - 1].shape for k in range(1, n + 1)}
    if q.category == "counting":
        count = len(np.unique(masks)) - 1
        assert count == int((graph > 0).any(axis=1).sum()) == n
        assert answer_text == str(count)
    elif q.category == "direction":
        text = q.question.removeprefix("In which direction does the ").removesuffix(" move?")
        k = instance_by_description(ex, text)
        assert k is not None
        assert set(opts) == set(DIRECTIONS)
        assert answer_text == direction_from_masks(masks, k)
    elif q.category == "attribute":
        if q.question.startswith("What colour is the "):
            shape = q.question.removeprefix("What colour is the ").removesuffix("?")
            ks = [k for k in shapes if shapes[k] == shape]
            assert len(ks) == 1, f"'the {shape}' is ambiguous or absent"
            assert answer_text == colours[ks[0]] and set(opts) <= set(COLOURS)
        else:
            colour = q.question.removeprefix("What shape is the ").removesuffix(" object?")
            ks = [k for k in colours if colours[k] == colour]
            assert len(ks) == 1, f"'the {colour} object' is ambiguous or absent"
            assert answer_text == shapes[ks[0]] and set(opts) <= set(SHAPES)
    elif q.category == "temporal_order":
        starts = first_frames(graph)
        listed = {t: instance_by_description(ex, t) for t in opts}
        k = listed[answer_text]
        assert k is not None, "the answer must be in the video"
        others = [starts[j - 1] for t, j in listed.items() if j is not None and t != answer_text]
        assert others, "the answer must be compared with at least one other object of the video"
        if "first" in q.question:
            assert all(starts[k - 1] < s for s in others)
        else:
            assert "last to appear" in q.question
            assert all(starts[k - 1] > s for s in others)
    elif q.category == "needle":
        present = (graph > 0).sum(axis=1)  # (N,)
        k = int(np.argmin(present)) + 1
        assert present[k - 1] <= 0.1 * T, "the needle must be visible for <= 10% of the frames"
        assert np.sort(present)[1:].min() >= 0.5 * T if n > 1 else True, "other objects must be long-lived"
        want = colours[k] if "colour" in q.question else shapes[k]
        assert answer_text == want
    else:
        raise AssertionError(f"unknown category {q.category}")


# -------------------------------------------------------------------------------------------------- tests
def test_render_shapes_and_dtypes(examples):
    for ex in examples[:10]:
        T, S, N = ex.scene.num_frames, ex.scene.size, ex.scene.num_objects
        assert ex.frames.shape == (T, S, S, 3) and ex.frames.dtype == np.uint8
        assert ex.masks.shape == (T, S, S) and ex.masks.dtype == np.uint16
        assert ex.graph.shape == (N, T) and ex.graph.dtype == np.int32
        assert T == (CFG.needle_frames if ex.scene.needle is not None else CFG.frames)
        for o in ex.scene.objects:
            assert o.size >= 12  # smaller objects are unlearnable at 64x64


def test_determinism():
    a = make_example(11, 4, CFG)
    b = make_example(11, 4, GeneratorConfig(num_videos=500, seed=11))  # independent of num_videos
    assert a.caption == b.caption and a.questions == b.questions
    for x, y in ((a.frames, b.frames), (a.masks, b.masks), (a.graph, b.graph)):
        assert np.array_equal(x, y)
    c = make_example(12, 4, CFG)
    assert not np.array_equal(a.masks, c.masks) or a.caption != c.caption
    # the stored scene record reproduces the scene exactly
    frames, masks, graph = render_scene(scene_from_dict(json.loads(json.dumps(scene_to_dict(a.scene)))))
    assert np.array_equal(frames, a.frames) and np.array_equal(masks, a.masks) and np.array_equal(graph, a.graph)


def test_dataset_files_are_byte_identical(tmp_path, dataset):
    out, _ = dataset
    again = tmp_path / "again"
    generate_dataset(again, 12, seed=5, frames=12, needle_frames=24, needle_fraction=0.5, workers=2)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.suffix in (".json", ".npz"))
    assert names == sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.suffix in (".json", ".npz"))
    assert len(names) == 10 + 2 * 12
    for name in names:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    other = tmp_path / "other"
    generate_dataset(other, 12, seed=6, frames=12, needle_frames=24, needle_fraction=0.5)
    assert (other / "train_qa.json").read_bytes() != (out / "train_qa.json").read_bytes()
    assert (other / "train_captions.json").read_bytes() != (out / "train_captions.json").read_bytes()


def test_masks_agree_with_frames(examples):
    for ex in examples[:30]:
        bg = ex.frames[ex.masks == 0].astype(np.int64)  # (P,3)
        for i, o in enumerate(ex.scene.objects):
            px = ex.frames[ex.masks == i + 1].astype(np.int64)
            assert px.size > 0
            assert np.abs(px - np.array(COLOURS[o.colour])).max() <= 0  # exact before encoding
            # background pixels are far from every object colour (max-channel distance)
            assert np.abs(bg - np.array(COLOURS[o.colour])).max(axis=1).min() > 40


def test_graph_consistent_with_masks(examples):
    for ex in examples:
        n = ex.scene.num_objects
        assert set(np.unique(ex.masks).tolist()) <= set(range(n + 1))
        present = np.stack([(ex.masks == k).any(axis=(1, 2)) for k in range(1, n + 1)])  # (N,T)
        assert np.array_equal(ex.graph > 0, present)
        assert np.array_equal(ex.graph[present], np.broadcast_to(np.arange(1, n + 1)[:, None], present.shape)[present])
        assert present.any(axis=1).all(), "every object is visible somewhere"


def test_occlusion_hides_part_of_the_back_object(examples):
    found = 0
    for ex in examples:
        for front, back in occlusion_pairs(ex.scene):
            assert ex.scene.objects[front].depth > ex.scene.objects[back].depth
            alone = dataclasses.replace(ex.scene, objects=(ex.scene.objects[back],), needle=None)
            _, alone_masks, _ = render_scene(alone)
            full = (alone_masks == 1).sum(axis=(1, 2))  # (T,) area with nothing in front
            visible = (ex.masks == back + 1).sum(axis=(1, 2))
            assert (visible <= full).all()
            assert (visible < full).any(), "an occluded object must lose visible area"
            hidden = (alone_masks == 1) & (ex.masks != back + 1)
            assert (ex.masks[hidden] != 0).all(), "hidden pixels are covered by another object"
            assert (ex.masks[hidden] == front + 1).any()
            found += 1
    assert found >= 10, "occlusions should be common"


def test_entering_and_leaving_objects(examples):
    normal = [ex for ex in examples if ex.scene.needle is None]
    starts = [s for ex in normal for s in first_frames(ex.graph)]
    ends = [np.flatnonzero(row)[-1] for ex in normal for row in ex.graph]
    assert sum(s > 0 for s in starts) >= 10, "objects appear at later frames"
    assert sum(e < CFG.frames - 1 for e in ends) >= 10, "objects leave before the end"


def test_needle_is_brief_and_caught_by_16_frame_sampling(examples):
    from trajvlm.video.sampling import sample_frame_indices

    needles = [ex for ex in examples if ex.scene.needle is not None]
    assert len(needles) >= 5
    picked = sample_frame_indices(CFG.needle_frames, CFG.fps, max_frames=16)  # what the model sees by default
    for ex in needles:
        row = ex.graph[ex.scene.needle]
        assert 0 < (row > 0).sum() <= 0.1 * CFG.needle_frames
        assert (row[picked] > 0).any(), "a uniform 16-frame sample must show the needle"


def test_questions_match_ground_truth(examples):
    seen = Counter()
    for ex in examples:
        for q in ex.questions:
            check_question(ex, q)
            seen[q.category] += 1
            assert q.prompt() == "<video>\n" + q.question + "\n" + "\n".join(q.option_lines) + "\n" + ANSWER_INSTRUCTION
            assert q.option_lines[q.answer_index] == f"{q.answer}. {q.options[q.answer_index]}"
    assert set(seen) == set(CATEGORIES), seen


def test_captions_mention_every_object_in_order(examples):
    for ex in examples[:30]:
        cap = ex.caption
        order = sorted(range(ex.scene.num_objects), key=lambda i: (first_frames(ex.graph)[i], cap.find(ex.scene.objects[i].colour + " " + ex.scene.objects[i].shape)))
        positions = [cap.find(f"{ex.scene.objects[i].colour} {ex.scene.objects[i].shape} ") for i in order]
        assert min(positions) >= 0, cap
        assert positions == sorted(positions), f"objects not in order of appearance: {cap}"
        for i in order:
            o = ex.scene.objects[i]
            if i == ex.scene.needle:  # a few frames only: small but visible motion
                assert f"{o.colour} {o.shape} briefly appears, moves {direction_from_masks(ex.masks, i + 1, min_travel=3)}" in cap
            else:
                assert f"{o.colour} {o.shape}" in cap and f"moves {direction_from_masks(ex.masks, i + 1)}" in cap


def test_balanced_answers():
    letters, counts, directions, cats = Counter(), Counter(), Counter(), Counter()
    for i in range(120):
        ex = make_example(21, i, CFG)
        for q in ex.questions:
            letters[q.answer] += 1
            cats[q.category] += 1
            if q.category == "counting":
                counts[q.options[q.answer_index]] += 1
    total = sum(letters.values())
    assert total >= 300
    for letter in LETTERS:
        assert abs(letters[letter] / total - 0.25) < 0.05, letters
    # object counts 2..5 and directions uniform (checked on the sampler, many draws)
    rng = np.random.default_rng(0)
    scfg = SceneConfig()
    for _ in range(400):
        scene = sample_scene(rng, scfg)
        counts[str(scene.num_objects)] += 1
        directions.update(o.direction for o in scene.objects)
    assert set(counts) == {"2", "3", "4", "5"}
    for c in counts.values():
        assert abs(c / sum(counts.values()) - 0.25) < 0.06, counts
    for d in DIRECTIONS:
        assert abs(directions[d] / sum(directions.values()) - 0.25) < 0.04, directions


def test_splits_fixed_by_seed():
    splits = [split_of(0, i, (0.8, 0.1, 0.1)) for i in range(100)]
    assert Counter(splits) == {"train": 80, "val": 10, "test": 10}
    for b in range(10):  # exact in every block of 10
        assert Counter(splits[10 * b : 10 * b + 10]) == {"train": 8, "val": 1, "test": 1}
    assert splits != [split_of(1, i, (0.8, 0.1, 0.1)) for i in range(100)]
    assert Counter(split_of(0, i, (0.5, 0.0, 0.5)) for i in range(10)) == {"train": 5, "test": 5}


def test_dataset_json_schema_and_sidecars(dataset):
    from trajvlm.video import load_video

    out, meta = dataset
    assert meta == json.loads((out / "meta.json").read_text())
    assert sum(s["videos"] for s in meta["splits"].values()) == 12
    ids = []
    for split in ("train", "val", "test"):
        caps = json.loads((out / f"{split}_captions.json").read_text())
        qa = json.loads((out / f"{split}_qa.json").read_text())
        scenes = {s["id"]: s for s in json.loads((out / f"{split}_scenes.json").read_text())}
        assert len(caps) == meta["splits"][split]["videos"] == len(scenes)
        assert len(qa) == meta["splits"][split]["questions"]
        for c in caps:
            ids.append(c["id"])
            assert set(c) == {"id", "video", "conversations"}
            assert c["conversations"][0] == {"from": "human", "value": "<video>\nDescribe the video."}
            assert c["conversations"][1]["from"] == "gpt" and len(c["conversations"]) == 2
            video = out / c["video"]
            assert video.is_file() and c["video"] == f"videos/{split}/{c['id']}.mp4"
            masks = np.load(out / f"videos/{split}/{c['id']}_mask.npz")["masks"]
            graph = np.load(out / f"videos/{split}/{c['id']}_graph.npz")["graph"]
            clip = load_video(video, max_frames=None)
            scene = scene_from_dict(scenes[c["id"]])
            assert masks.dtype == np.uint16 and graph.dtype == np.int32
            assert masks.shape == clip.frames.shape[:3] == (scene.num_frames, 64, 64)
            assert graph.shape == (scene.num_objects, clip.frames.shape[0])
            # decoded colours still match the masks (interior pixels, after lossy encoding)
            for i, o in enumerate(scene.objects):
                inner = masks == i + 1
                inner[:, 1:-1, 1:-1] &= (masks[:, :-2, 1:-1] == i + 1) & (masks[:, 2:, 1:-1] == i + 1) & \
                    (masks[:, 1:-1, :-2] == i + 1) & (masks[:, 1:-1, 2:] == i + 1)
                if inner.any():
                    mean = clip.frames[inner].astype(np.float64).mean(axis=0)
                    assert np.abs(mean - COLOURS[o.colour]).max() < 30, (o.colour, mean)
        for s in qa:
            assert {"id", "video", "conversations", "category", "question", "options", "answer"} <= set(s)
            human, gpt = s["conversations"]
            assert human["from"] == "human" and gpt == {"from": "gpt", "value": s["answer"]}
            assert human["value"].count("<video>") == 1 and human["value"].startswith("<video>\n")
            assert human["value"] == "<video>\n" + s["question"] + "\n" + "\n".join(s["options"]) + "\n" + ANSWER_INSTRUCTION
            assert [o[:3] for o in s["options"]] == ["A. ", "B. ", "C. ", "D. "]
            assert s["answer"] in LETTERS and s["category"] in CATEGORIES
            assert (out / s["video"]).is_file()
    assert len(ids) == len(set(ids)) == 12


def test_cli(tmp_path, capsys):
    from trajvlm.data.synthetic.__main__ import main

    out = tmp_path / "cli"
    args = ["--out", str(out), "--num-videos", "3", "--seed", "1", "--frames", "8", "--needle-frames", "20",
            "--splits", "0.4,0.3,0.3", "--quiet"]
    run = subprocess.run([sys.executable, "-m", "trajvlm.data.synthetic", *args], capture_output=True, text=True, check=False,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "ShapesQA -> " in run.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["generator"]["num_videos"] == 3 and meta["generator"]["frames"] == 8
    assert len(list((out / "videos").rglob("*.mp4"))) == 3
    capsys.readouterr()
    assert main(args) == 0 and "up to date" in capsys.readouterr().out  # same arguments: nothing to do
    with pytest.raises(SystemExit) as clash:
        main(args[:5] + ["2"] + args[6:])  # another seed into the same folder
    assert clash.value.code == 2 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(args + ["--size", "63", "--overwrite"])
    assert bad.value.code == 2 and "63" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 63}, {"size": 16}, {"frames": 4}, {"splits": (0.5, 0.5, 0.5)}, {"needle_fraction": 2.0},
     {"min_objects": 4, "max_objects": 3}, {"num_videos": 0}],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        GeneratorConfig(**{"num_videos": 2, "seed": 0, **kwargs})


def test_open_questions_match_ground_truth(examples):
    """Every open question's answer, re-derived from the masks / pixels as for the multiple-choice ones."""
    seen = Counter()
    for ex in examples:
        asked = open_questions(ex.scene)
        assert len({q for _, q, _ in asked}) == len(asked), "a question is asked twice"
        for category, question, answer in asked:
            seen[category] += 1
            if category == "temporal_order":
                starts = first_frames(ex.graph)
                k = instance_by_description(ex, answer)
                others = [s for j, s in enumerate(starts) if j != k - 1]
                assert k is not None and others
                if "first" in question:
                    assert all(starts[k - 1] + 2 <= s for s in others)
                else:
                    assert all(starts[k - 1] - 2 >= s for s in others)
                continue
            # the other categories: check as a multiple-choice question whose option A is the answer
            if category == "direction":
                pool = list(DIRECTIONS)
            elif category == "counting":
                pool = [str(v) for v in range(1, 9)]
            else:
                pool = list(COLOURS) if "colour" in question else list(SHAPES)
            distractors = [v for v in pool if v != answer][:3]
            check_question(ex, Question(category, question, (answer, *distractors), 0))
    assert set(seen) == set(CATEGORIES), seen
    assert sum(seen.values()) > 4 * len(examples)  # dense: several facts per video
