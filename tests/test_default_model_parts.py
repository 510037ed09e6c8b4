"""trajvlm.train.default_model: the stage-2 data (answers 'text (letter)') and the in-process tokenizer."""

from __future__ import annotations

import json

import pytest

from trajvlm.data.synthetic.__main__ import main as synth_main
from trajvlm.eval.mcq import answer_letter, option_text
from trajvlm.train.default_model import (
    extra_mcq_records,
    listed_answer,
    listed_records,
    load_scenes,
    lookalike_records,
    main,
    mc_answer,
    mcq_records,
    object_list,
    open_qa_records,
    sft_records,
    text_then_letter,
)
from trajvlm.train.evaluate import parse_letter


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapesqa")
    synth_main(["--out", str(out), "--num-videos", "10", "--seed", "3", "--quiet"])
    return out


def test_text_then_letter_keeps_the_letter_parseable(shapes):
    records = json.loads((shapes / "train_qa.json").read_text())
    for r in records:
        new = text_then_letter(r)
        answer = new["conversations"][-1]["value"]
        option = r["options"]["ABCD".index(r["answer"])].split(". ", 1)[1]
        assert answer == f" {option} ({r['answer']})"
        assert parse_letter(answer) == r["answer"]
        assert r["conversations"][-1]["value"] == r["answer"]  # the input record is not modified


def test_text_answers_name_the_option_the_graders_pick(shapes):
    records = json.loads((shapes / "train_qa.json").read_text())
    for r in records:
        answer = mc_answer(r, "text")["conversations"][-1]["value"]
        option = r["options"]["ABCD".index(r["answer"])].split(". ", 1)[1]
        assert answer == f" {option}" and parse_letter(answer) is None
        assert answer_letter(answer, r["options"]) == r["answer"]
    assert [x["conversations"] for x in mcq_records(shapes, answer="text")] == \
        [mc_answer(r, "text")["conversations"] for r in records]
    with pytest.raises(ValueError, match="answer format"):
        mc_answer(records[0], "letter")


def test_sft_records_hold_every_question_and_caption_once(shapes):
    qa = json.loads((shapes / "train_qa.json").read_text())
    caps = json.loads((shapes / "train_captions.json").read_text())
    records = sft_records(shapes, seed=1)
    assert sorted(r["id"] for r in records) == sorted([r["id"] for r in qa] + [r["id"] for r in caps])
    assert sft_records(shapes, seed=1) == records and sft_records(shapes, seed=2) != records


def test_main_writes_tokenizer_llm_and_data(shapes, tmp_path):
    from transformers import AutoTokenizer, LlamaForCausalLM

    assert main(["--data", str(shapes), "--out", str(tmp_path), "--hidden", "32", "--layers", "1", "--heads", "2",
                 "--vocab-size", "400"]) == 0
    tok = AutoTokenizer.from_pretrained(tmp_path / "llm")
    lm = LlamaForCausalLM.from_pretrained(tmp_path / "llm")
    assert lm.config.vocab_size == len(tok) and tok.convert_tokens_to_ids("<video>") != tok.unk_token_id
    assert len(tok.tokenize("user")) == 1 and len(tok.tokenize("assistant")) == 1
    assert len(json.loads((shapes / "train_sft.json").read_text())) > 0
    qa = json.loads((shapes / "train_qa.json").read_text())
    mcq = json.loads((shapes / "train_mcq.json").read_text())  # the stage-1 data: the QA records, text then letter
    assert [r["id"] for r in mcq] == [r["id"] for r in qa]
    assert all(m["conversations"][-1]["value"].endswith(f"({q['answer']})") for m, q in zip(mcq, qa))


def test_extra_questions_are_new_draws_about_the_same_videos(shapes):
    scenes = {d["id"]: d for d in json.loads((shapes / "train_scenes.json").read_text())}
    qa = json.loads((shapes / "train_qa.json").read_text())
    extra = extra_mcq_records(shapes, copies=2, answer="text")
    assert len({r["id"] for r in extra}) == len(extra) and len(extra) >= 2 * len(qa) - 2 * len(scenes)
    assert {r["video"] for r in extra} == {d["video"] for d in scenes.values()}
    assert extra_mcq_records(shapes, copies=2, answer="text") == extra  # deterministic
    assert extra_mcq_records(shapes, copies=2, seed=1, answer="text") != extra
    originals = {(r["video"], r["conversations"][0]["value"]) for r in qa}
    assert any((r["video"], r["conversations"][0]["value"]) not in originals for r in extra)
    for r in extra:  # the facts are the video's own
        scene = scenes[r["id"].rsplit("_x", 1)[0]]
        answer = r["conversations"][-1]["value"]
        assert answer_letter(answer, r["options"]) == r["answer"]
        if r["category"] == "counting":
            assert answer == f" {len(scene['objects'])}"
        if r["category"] == "needle":
            needle = scene["objects"][scene["needle"]]
            assert answer.strip() in (needle["colour"], needle["shape"])
    assert len(sft_records(shapes, extra_qa=2, captions=False, answer="text")) == len(qa) + len(extra)
    with pytest.raises(ValueError, match="copies"):
        extra_mcq_records(shapes, copies=-1)


def test_focused_draws_hold_only_their_categories_and_never_repeat_the_unfocused_ones(shapes):
    scenes = {d["id"]: d for d in json.loads((shapes / "train_scenes.json").read_text())}
    extra = extra_mcq_records(shapes, copies=3, answer="text")
    focus = extra_mcq_records(shapes, copies=3, answer="text", categories=["temporal_order"])
    assert focus and {r["category"] for r in focus} == {"temporal_order"}
    assert len(focus) == len({r["id"] for r in focus}) and not {r["id"] for r in focus} & {r["id"] for r in extra}
    # a separate random stream: not the temporal questions of the unfocused draws again
    assert [r["conversations"] for r in focus] != [r["conversations"] for r in extra if r["category"] == "temporal_order"]
    for r in focus:  # every answer is an object of the video that appears first / last by TEMPORAL_MARGIN
        scene = scenes[r["id"].rsplit("_f", 1)[0]]
        starts = {f"{o['colour']} {o['shape']}": o["t_start"] for o in scene["objects"]}
        named = [option_text(t) for t in r["options"] if option_text(t) in starts]
        answer = r["conversations"][-1]["value"].strip()
        first = "first" in r["conversations"][0]["value"]
        assert answer == (min if first else max)(named, key=lambda t: starts[t])
    both = extra_mcq_records(shapes, copies=3, categories=("counting", "direction"))
    assert {r["category"] for r in both} == {"counting", "direction"}
    n = len(sft_records(shapes, extra_qa=1, captions=False))
    assert len(sft_records(shapes, extra_qa=1, focus_qa=3, captions=False)) == n + len(focus)
    with pytest.raises(ValueError, match="categories must be a non-empty subset"):
        extra_mcq_records(shapes, categories=["temporal"])


def test_extra_questions_refuse_a_folder_without_generator_settings(shapes, tmp_path):
    (tmp_path / "train_scenes.json").write_text((shapes / "train_scenes.json").read_text())
    with pytest.raises(FileNotFoundError, match="meta.json not found: is .* a ShapesQA folder"):
        extra_mcq_records(tmp_path, copies=1)


def test_records_only_writes_the_data(shapes, capsys):
    for name in ("train_sft.json", "train_mcq.json"):
        (shapes / name).unlink(missing_ok=True)
    assert main(["--data", str(shapes), "--records-only", "--answer", "text", "--stage2-lookups", "0"]) == 0
    qa = json.loads((shapes / "train_qa.json").read_text())
    assert [r["id"] for r in json.loads((shapes / "train_mcq.json").read_text())] == [r["id"] for r in qa]
    assert len(json.loads((shapes / "train_sft.json").read_text())) == len(qa) + len(
        json.loads((shapes / "train_captions.json").read_text()))
    assert main(["--data", str(shapes), "--records-only", "--answer", "text", "--stage2-lookups", "0",
                 "--no-stage2-captions", "--stage2-focus-qa", "2", "--stage2-focus-categories", "counting,needle"]) == 0
    focused = [r for r in json.loads((shapes / "train_sft.json").read_text()) if "_f" in r["id"]]
    assert focused and {r["category"] for r in focused} <= {"counting", "needle"}
    assert len(focused) == len(extra_mcq_records(shapes, copies=2, categories=["counting", "needle"]))
    before = (shapes / "train_sft.json").read_bytes()
    with pytest.raises(SystemExit):  # a misspelt category is refused before anything is written
        main(["--data", str(shapes), "--records-only", "--stage2-focus-categories", "temporal_order,colour"])
    assert "--stage2-focus-categories: categories must be a non-empty subset" in capsys.readouterr().err
    assert (shapes / "train_sft.json").read_bytes() == before
    with pytest.raises(SystemExit):  # neither --out nor --records-only
        main(["--data", str(shapes)])
    with pytest.raises(SystemExit):  # both: --out would be ignored
        main(["--data", str(shapes), "--records-only", "--out", str(shapes / "parts")])
    assert not (shapes / "parts").exists()


def test_sft_records_without_captions(shapes):
    with_captions = sft_records(shapes, seed=2)
    without = sft_records(shapes, captions=False, seed=2)
    n_captions = len(json.loads((shapes / "train_captions.json").read_text()))
    assert len(with_captions) == len(without) + n_captions
    assert all("Describe" not in r["conversations"][0]["value"] for r in without)


def test_sft_records_mix_in_text_only_option_lookups(shapes):
    plain = sft_records(shapes, seed=1)
    mixed = sft_records(shapes, lookups=12, seed=1)
    extra = [r for r in mixed if r["id"].startswith("lookup_")]
    assert len(mixed) == len(plain) + 12 and len(extra) == 12
    assert all("video" not in r and "<video>" not in r["conversations"][0]["value"] for r in extra)


def test_open_qa_records_ask_every_open_question_of_each_video(shapes):
    from trajvlm.data.synthetic.questions import open_questions
    from trajvlm.data.synthetic.scene import scene_from_dict

    scenes = {d["video"]: d for d in json.loads((shapes / "train_scenes.json").read_text())}
    records = open_qa_records(shapes, seed=1)
    assert sorted(r["video"] for r in records) == sorted(scenes)
    assert [r["video"] for r in open_qa_records(shapes, copies=3, seed=1)] == [r["video"] for r in records for _ in range(3)]
    for r in records:
        turns = r["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert turns[0]["value"].startswith("<video>\n") and all("<video>" not in t["value"] for t in turns[1:])
        asked = {(t["value"].removeprefix("<video>\n"), a["value"]) for t, a in zip(turns[::2], turns[1::2])}
        want = {(q, f" {a}") for _, q, a in open_questions(scene_from_dict(scenes[r["video"]]))}
        assert asked == want and len(turns) == 2 * len(want)
    # copies in sft_records: other question orders, distinct ids
    mixed = sft_records(shapes, open_qa=2, seed=1)
    dense = [r for r in mixed if r.get("category") == "open_qa"]
    assert len(dense) == 2 * len(records) and len({r["id"] for r in mixed}) == len(mixed)
    assert len(mixed) == len(sft_records(shapes, seed=1)) + len(dense)


def test_open_qa_records_refuse_a_folder_without_scenes(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_scenes.json"):
        open_qa_records(tmp_path)


@pytest.mark.parametrize("copies", [-1, 1.5, True])
def test_open_qa_records_refuse_a_bad_copy_count(shapes, copies):
    with pytest.raises(ValueError, match="copies must be an int >= 0"):
        open_qa_records(shapes, copies=copies)


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


def test_lookalike_records_refuse_a_folder_without_scenes_or_generator_settings(shapes, tmp_path):
    with pytest.raises(FileNotFoundError, match="train_scenes.json not found: is .* a ShapesQA folder"):
        lookalike_records(tmp_path)
    (tmp_path / "train_scenes.json").write_text((shapes / "train_scenes.json").read_text())
    with pytest.raises(FileNotFoundError, match="meta.json not found: is .* a ShapesQA folder"):
        lookalike_records(tmp_path)


def test_listing_answers_name_every_object_in_order_then_the_right_option(shapes):
    scenes = dict((d["video"], scene) for d, scene in load_scenes(shapes, "train"))
    records = mcq_records(shapes, answer="text")
    listed = listed_records(records + json.loads((shapes / "train_captions.json").read_text()), shapes)
    assert len(listed) == len(records) + len(json.loads((shapes / "train_captions.json").read_text()))
    for old, new in zip(records, listed):
        scene = scenes[old["video"]]
        answer = new["conversations"][-1]["value"]
        listing, mark, after = answer.rpartition(". Answer:")
        assert mark and after == old["conversations"][-1]["value"]  # the text answer, unchanged, after the mark
        entries = listing.strip().split(", ")
        assert len(entries) == scene.num_objects
        starts = {f"{o.colour} {o.shape}": o.t_start for o in scene.objects}
        named = [" ".join(e.split()[:2]) for e in entries]
        assert sorted(named) == sorted(starts) and [starts[n] for n in named] == sorted(starts.values())
        for o in scene.objects:
            brief = scene.needle is not None and o is scene.objects[scene.needle]
            assert f"{o.colour} {o.shape} {o.direction}" + " briefly" * brief in entries
        assert answer_letter(answer, new["options"]) == old["answer"]
        assert old["conversations"][-1]["value"] != answer  # the input record is not modified
    assert any(s.needle is not None for s in scenes.values())  # the fixture has a needle clip to mark
    assert listed[len(records):] == json.loads((shapes / "train_captions.json").read_text())  # captions as they were


def test_listing_orders_simultaneous_objects_left_to_right(shapes):
    scene = next(s for _, s in load_scenes(shapes, "train") if s.num_objects > 1)
    first = min(o.t_start for o in scene.objects)
    from dataclasses import replace
    objs = tuple(replace(o, t_start=first, x0=float(10 * (len(scene.objects) - i))) for i, o in enumerate(scene.objects))
    text = object_list(replace(scene, objects=objs, needle=None))
    assert text.split(", ")[0].startswith(f"{objs[-1].colour} {objs[-1].shape}")
    assert text.split(", ")[-1] == f"{objs[0].colour} {objs[0].shape} {objs[0].direction}"


def test_listing_refuses_a_record_it_cannot_rewrite(shapes):
    caption = json.loads((shapes / "train_captions.json").read_text())[0]
    scene = load_scenes(shapes, "train")[0][1]
    with pytest.raises(ValueError, match="not a multiple-choice record"):
        listed_answer(caption, scene)
    stray = dict(mcq_records(shapes, answer="text")[0], video="videos/train/elsewhere.mp4", id="stray")
    with pytest.raises(ValueError, match="stray.*not in train_scenes.json"):
        listed_records([stray], shapes)


def test_records_only_can_answer_by_listing_the_objects(shapes):
    assert main(["--data", str(shapes), "--records-only", "--answer", "text", "--stage2-lookups", "5",
                 "--stage2-list-objects", "--seed", "4"]) == 0
    written = json.loads((shapes / "train_sft.json").read_text())
    plain = sft_records(shapes, lookups=5, answer="text", seed=4)
    assert written == sft_records(shapes, lookups=5, answer="text", list_objects=True, seed=4)
    assert [r["id"] for r in written] == [r["id"] for r in plain]  # the same records in the same order
    for new, old in zip(written, plain):
        if "options" in old and "video" in old:
            assert new["conversations"][-1]["value"].endswith(". Answer:" + old["conversations"][-1]["value"])
        else:  # captions and text-only lookups as they were
            assert new == old
    assert any("video" not in r for r in written) and any("options" not in r for r in written)
    # stage 1 (the connector against the LLM it is given) keeps the plain answers
    assert json.loads((shapes / "train_mcq.json").read_text()) == mcq_records(shapes, answer="text")
