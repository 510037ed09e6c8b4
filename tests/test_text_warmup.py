"""trajvlm.train.text_warmup: the default model's LLM reads ShapesQA prompts (scene QA, option lookup) in text."""

from __future__ import annotations

import json

import pytest
import torch

from trajvlm.data.synthetic.__main__ import main as synth_main
from trajvlm.model.processing_trajvlm import IGNORE_INDEX
from trajvlm.train.default_model import main as parts_main
from trajvlm.train.text_warmup import (
    TextBatcher,
    answer_exact_match,
    BACKGROUND,
    fresh_object_qa_records,
    main,
    object_qa_records,
    object_words,
    option_lookup_records,
    scene_qa_records,
    scene_words,
    scene_words_records,
    text_warmup_records,
)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapesqa_text")
    synth_main(["--out", str(out), "--num-videos", "12", "--seed", "5", "--quiet"])
    return out


@pytest.fixture(scope="module")
def parts(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("parts")
    assert parts_main(["--data", str(shapes), "--out", str(out), "--hidden", "64", "--layers", "2", "--heads", "2",
                       "--vocab-size", "400"]) == 0
    return out / "llm"


def test_scene_qa_puts_the_caption_in_place_of_the_video(shapes):
    qa = json.loads((shapes / "train_qa.json").read_text())
    caps = {r["video"]: r["conversations"][-1]["value"] for r in json.loads((shapes / "train_captions.json").read_text())}
    records = scene_qa_records(shapes)
    assert len(records) == len(qa)
    for src, rec in zip(qa, records):
        prompt, answer = (t["value"] for t in rec["conversations"])
        assert "<video>" not in prompt and caps[src["video"]] in prompt and src["question"] in prompt
        letter = src["answer"]
        assert answer == f" {src['options']['ABCD'.index(letter)].split('. ', 1)[1]} ({letter})"


def test_scene_qa_refuses_a_question_without_caption(shapes, tmp_path):
    for name in ("train_qa.json", "train_captions.json"):
        (tmp_path / name).write_text((shapes / name).read_text())
    caps = json.loads((tmp_path / "train_captions.json").read_text())
    (tmp_path / "train_captions.json").write_text(json.dumps(caps[1:]))
    with pytest.raises(ValueError, match="has no caption"):
        scene_qa_records(tmp_path)


def test_option_lookup_answers_the_option_that_says_the_text(shapes):
    records = option_lookup_records(shapes, n=50, seed=1)
    assert len(records) == 50 and records == option_lookup_records(shapes, n=50, seed=1)
    letters = set()
    for i, r in enumerate(records):
        prompt, answer = (t["value"] for t in r["conversations"])
        text, letter = answer[1:-4], answer[-2]
        assert answer.startswith(" ")
        letters.add(letter)
        assert f"\n{letter}. {text}\n" in prompt
        if i % 2 == 0:  # named
            assert f'says "{text}"' in prompt and r["category"] == "lookup"
        else:  # open: the text appears only as an option
            assert f'"{text}"' not in prompt and "any option" in prompt and r["category"] == "open_lookup"
    assert letters == set("ABCD")


def test_batches_supervise_only_the_answer(shapes, parts):
    from transformers import AutoTokenizer

    from trajvlm.model.processing_trajvlm import TrajVLMProcessor
    from trajvlm.vision.processor import TrajVLMVideoProcessor

    tok = AutoTokenizer.from_pretrained(parts)
    proc = TrajVLMProcessor(tok, TrajVLMVideoProcessor(size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3), "llama3")
    records = text_warmup_records(shapes, lookups=8, scene_qa=True)
    assert len(records) == 8 + len(scene_qa_records(shapes))
    batcher = TextBatcher(proc, records)
    b = batcher.batch([0, 1, 2])
    assert b["input_ids"].shape == b["labels"].shape == b["attention_mask"].shape
    for row, r in enumerate(records[:3]):
        supervised = tok.decode(b["labels"][row][b["labels"][row] != IGNORE_INDEX])
        assert r["conversations"][-1]["value"].strip() in supervised and "Scene" not in supervised


def test_letter_correct_reads_the_last_letter_position():
    from trajvlm.train.text_warmup import letter_correct

    letters = torch.tensor([3, 4])
    labels = torch.tensor([[IGNORE_INDEX, 7, 3, 8], [IGNORE_INDEX, 7, 4, 8]])  # letter at position 2
    logits = torch.zeros(2, 4, 10)
    logits[0, 1, 3] = 1  # predicts the letter (position 2) from position 1: right
    logits[1, 1, 3] = 1  # wrong letter
    assert letter_correct(logits, labels, letters).tolist() == [True, False]
    with pytest.raises(ValueError, match="without an option letter"):
        letter_correct(logits, torch.full((2, 4), 7), letters)


def test_exact_match_needs_every_answer_token():
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 5, 6], [IGNORE_INDEX, IGNORE_INDEX, 5, 6]])
    logits = torch.zeros(2, 4, 10)
    logits[0, 1, 5] = logits[0, 2, 6] = 1  # both answer tokens predicted
    logits[1, 1, 5] = logits[1, 2, 7] = 1  # second one wrong
    assert answer_exact_match(logits, labels).tolist() == [True, False]


def _llm_copy(parts, tmp_path):
    """A copy of the parts' LLM folder to warm up in place, and its weights before."""
    import shutil

    from safetensors.torch import load_file

    llm = tmp_path / "llm"
    shutil.copytree(parts, llm)
    return llm, load_file(str(llm / "model.safetensors"))


def test_main_trains_in_place_and_records_the_curve(shapes, parts, tmp_path):
    from safetensors.torch import load_file

    llm, before = _llm_copy(parts, tmp_path)
    assert main(["--data", str(shapes), "--llm", str(llm), "--steps", "30", "--batch", "8", "--lr", "3e-3",
                 "--lookups", "40", "--val", "8", "--log-every", "10"]) == 0
    record = json.loads((llm / "text_warmup.json").read_text())
    assert record["steps"] == 30 and record["log"][-1]["step"] == 30
    assert [r["step"] for r in record["log"]] == [10, 20, 30]
    assert record["log"][-1]["loss"] < record["log"][0]["loss"]
    assert 0.0 <= record["val"]["letter"] <= 1.0
    assert list(record["val"]["per_category"]) == ["lookup", "open_lookup"]
    after = load_file(str(llm / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert len(json.loads((shapes / "train_text.json").read_text())) == 40  # lookups only by default


def test_answer_words_tokenize_like_the_option_words(shapes, parts):
    """The reason answers start with a space: the answer's option text must be the same tokens as in the prompt."""
    from transformers import AutoTokenizer

    from trajvlm.model.processing_trajvlm import TrajVLMProcessor
    from trajvlm.vision.processor import TrajVLMVideoProcessor

    tok = AutoTokenizer.from_pretrained(parts)
    proc = TrajVLMProcessor(tok, TrajVLMVideoProcessor(size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3), "llama3")
    for r in option_lookup_records(shapes, n=20, seed=3):
        item = proc.tokenize_conversation(r["conversations"])
        answer = [i for i, lab in zip(item.input_ids, item.labels) if lab != IGNORE_INDEX]
        text = r["conversations"][-1]["value"][1:-4]
        option_ids = tok(f"A. {text}", add_special_tokens=False).input_ids[2:]  # after "A", "."
        assert answer[: len(option_ids)] == option_ids, (tok.convert_ids_to_tokens(answer), text)


def test_lookups_refuse_a_missing_or_too_small_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_qa.json"):
        option_lookup_records(tmp_path / "nowhere")
    (tmp_path / "train_qa.json").write_text(json.dumps([{"options": ["A. red", "B. up", "C. red"], "answer": "A"}]))
    with pytest.raises(ValueError, match="only 2 distinct option texts"):
        option_lookup_records(tmp_path)


def test_scene_words_list_objects_in_order_of_appearance(shapes):
    from trajvlm.data.synthetic.scene import scene_from_dict

    for d in json.loads((shapes / "train_scenes.json").read_text()):
        scene = scene_from_dict(d)
        words = scene_words(scene).split(" ")
        objs = sorted(scene.objects, key=lambda o: o.t_start)
        assert len(words) == 3 * len(objs) + (scene.needle is not None)
        triples = [w for w in words if w != "briefly"]
        assert [tuple(triples[i:i + 3]) for i in range(0, len(triples), 3)] == \
            [(o.colour, o.shape, o.direction) for o in objs]
        if scene.needle is not None:
            n = scene.objects[scene.needle]
            i = words.index("briefly")
            assert words[i - 3:i] == [n.colour, n.shape, n.direction]


def test_scene_words_records_ask_the_open_questions_after_the_scene(shapes):
    from trajvlm.data.synthetic.questions import open_questions
    from trajvlm.data.synthetic.scene import scene_from_dict

    scenes = json.loads((shapes / "train_scenes.json").read_text())
    records = scene_words_records(shapes, copies=2, seed=3)
    assert len(records) == 2 * len(scenes) and len({r["id"] for r in records}) == len(records)
    for r in records:
        d = next(d for d in scenes if r["id"].startswith(d["id"] + "_words"))
        scene = scene_from_dict(d)
        turns = r["conversations"]
        head = f"Objects: {scene_words(scene)}\n"
        assert turns[0]["value"].startswith(head) and "video" not in r
        asked = {(t["value"].removeprefix(head), a["value"]) for t, a in zip(turns[::2], turns[1::2])}
        assert asked == {(q, f" {a}") for _, q, a in open_questions(scene)}
    with pytest.raises(FileNotFoundError, match="scenes"):
        scene_words_records(shapes / "nope")
    with pytest.raises(ValueError, match="copies must be an int >= 0"):
        scene_words_records(shapes, copies=-2)


def test_main_trains_on_word_scenes_alone(shapes, parts, tmp_path):
    import shutil

    llm = tmp_path / "llm"
    shutil.copytree(parts, llm)
    assert main(["--data", str(shapes), "--llm", str(llm), "--steps", "6", "--batch", "4", "--lookups", "0",
                 "--scene-words", "1", "--val", "6", "--log-every", "3"]) == 0
    record = json.loads((llm / "text_warmup.json").read_text())
    assert [r["step"] for r in record["log"]] == [3, 6]
    assert all("batch_letter_acc" not in r for r in record["log"])  # open answers carry no letter
    words = record["val"]["per_category"]["scene_words"]
    assert words["letter"] is None and 0.0 <= words["exact"] <= 1.0
    assert record["val"]["per_category"]["lookup"]["letter"] is not None
    train = json.loads((shapes / "train_text.json").read_text())
    assert train and all(r["category"] == "scene_words" for r in train)
    with pytest.raises(SystemExit):
        main(["--data", str(shapes), "--llm", str(llm), "--lookups", "0"])


def _processor(llm):
    from transformers import AutoTokenizer

    from trajvlm.model.processing_trajvlm import TrajVLMProcessor
    from trajvlm.vision.processor import TrajVLMVideoProcessor

    tok = AutoTokenizer.from_pretrained(llm)
    return TrajVLMProcessor(tok, TrajVLMVideoProcessor(size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3), "llama3")


def test_object_words_one_list_per_object_in_order_of_appearance(shapes):
    import random

    from trajvlm.data.synthetic.scene import scene_from_dict

    for d in json.loads((shapes / "train_scenes.json").read_text()):
        scene = scene_from_dict(d)
        objs = object_words(scene, random.Random(0))
        assert objs.count([BACKGROUND]) == 1 and len(objs) == len(scene.objects) + 1
        first = min(o.t_start for o in scene.objects)
        starts = {o.t_start for o in scene.objects}
        # the background sits among the objects of the first frame
        assert objs.index([BACKGROUND]) <= sum(o.t_start == first for o in scene.objects)
        real = [w for w in objs if w != [BACKGROUND]]
        by_words = {(o.colour, o.shape, o.direction): o for o in scene.objects}
        times = [by_words[tuple(w[:3])].t_start for w in real]
        assert times == sorted(times) and set(times) == starts
        for w in real:
            o = by_words[tuple(w[:3])]
            assert (w[3:] == ["briefly"]) == (scene.needle is not None and o is scene.objects[scene.needle])
        assert [BACKGROUND] not in object_words(scene, random.Random(0), background=False)


def test_object_qa_records_keep_the_placeholder_and_the_mc_answer(shapes, tmp_path):
    import shutil

    qa = json.loads((shapes / "train_qa.json").read_text())
    records = object_qa_records(shapes, copies=2, seed=1)
    assert len(records) == 2 * len(qa) and len({r["id"] for r in records}) == len(records)
    for r, q in zip(records, qa + qa):
        assert r["conversations"][0]["value"] == q["conversations"][0]["value"]
        assert r["conversations"][0]["value"].startswith("<video>")
        letter = r["conversations"][1]["value"].strip()[-2]
        assert letter == q["answer"] and r["category"] == q["category"] and "video" not in r
        assert len(r["objects"]) >= 2
    bad = tmp_path / "shapes_bad"
    shutil.copytree(shapes, bad)
    scenes = json.loads((bad / "train_scenes.json").read_text())
    (bad / "train_scenes.json").write_text(json.dumps(scenes[1:]))  # a question whose scene is missing
    with pytest.raises(ValueError, match="not in train_scenes.json"):
        object_qa_records(bad)


def test_object_batches_splice_summed_word_embeddings_at_the_placeholder(shapes, parts):
    from transformers import LlamaForCausalLM

    proc = _processor(parts)
    lm = LlamaForCausalLM.from_pretrained(parts)
    emb = lm.get_input_embeddings()
    records = object_qa_records(shapes)[:2] + option_lookup_records(shapes, n=1)
    batcher = TextBatcher(proc, records, embed=emb)
    b = batcher.batch([0, 1, 2])
    assert set(b) == {"inputs_embeds", "attention_mask", "position_ids", "labels"}
    tok = proc.tokenizer
    for row in range(2):
        ids = torch.tensor(proc.tokenize_conversation(records[row]["conversations"]).input_ids)
        p = int((ids == proc.video_token_id).nonzero())
        n = len(records[row]["objects"])
        for j, words in enumerate(records[row]["objects"]):
            want = emb(torch.tensor(tok(" " + " ".join(words), add_special_tokens=False).input_ids)).sum(0)
            assert torch.allclose(b["inputs_embeds"][row, p + j], want, atol=1e-6)
        # text after the objects is shifted by n - 1 positions; labels follow it
        assert torch.equal(b["inputs_embeds"][row, p + n], emb(ids[p + 1]))
        sup = b["labels"][row][b["labels"][row] != IGNORE_INDEX]
        assert records[row]["conversations"][1]["value"].strip() in tok.decode(sup)
        assert int(b["attention_mask"][row].sum()) == len(ids) - 1 + n
    # the text-only row is unchanged
    ids = torch.tensor(proc.tokenize_conversation(records[2]["conversations"]).input_ids)
    assert torch.equal(b["inputs_embeds"][2, : len(ids)], emb(ids))
    # gradients reach the word embeddings through the object vectors
    lm(**{k: v for k, v in b.items() if k != "labels"}).logits.sum().backward()
    obj_ids = tok(" " + " ".join(records[0]["objects"][-1]), add_special_tokens=False).input_ids
    assert emb.weight.grad[obj_ids].abs().sum() > 0
    with pytest.raises(ValueError, match="input embeddings"):
        TextBatcher(proc, records[:1])
    with pytest.raises(ValueError, match="exactly one video placeholder"):
        TextBatcher(proc, [{**records[0], "objects": []}], embed=emb)
    with pytest.raises(ValueError, match="no objects"):
        TextBatcher(proc, [{k: v for k, v in records[0].items() if k != "objects"}], embed=emb)


def test_main_trains_on_object_qa(shapes, parts, tmp_path):
    from safetensors.torch import load_file

    llm, before = _llm_copy(parts, tmp_path)
    assert main(["--data", str(shapes), "--llm", str(llm), "--steps", "4", "--batch", "4", "--lookups", "4",
                 "--object-qa", "1", "--val", "6", "--log-every", "2"]) == 0
    record = json.loads((llm / "text_warmup.json").read_text())
    assert [r["step"] for r in record["log"]] == [2, 4]
    cats = record["val"]["per_category"]
    assert {"lookup", "attribute"} <= set(cats) or {"lookup", "counting"} <= set(cats)
    after = load_file(str(llm / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    train = json.loads((shapes / "train_text.json").read_text())
    assert sum("objects" in r for r in train) == len(json.loads((shapes / "train_qa.json").read_text()))


def test_fresh_object_qa_records_are_new_scenes_with_consistent_answers(shapes, tmp_path):
    from trajvlm.eval.mcq import answer_letter

    recs = fresh_object_qa_records(shapes, 30, seed=4, answer="text")
    assert recs == fresh_object_qa_records(shapes, 30, seed=4, answer="text")  # deterministic
    assert recs != fresh_object_qa_records(shapes, 30, seed=5, answer="text")
    assert len({r["id"].rsplit("_q", 1)[0] for r in recs}) == 30 and len({r["id"] for r in recs}) == len(recs)
    for r in recs:
        human, answer = r["conversations"][0]["value"], r["conversations"][1]["value"]
        options = [line for line in human.split("\n") if line[:3] in ("A. ", "B. ", "C. ", "D. ")]
        assert human.startswith("<video>\n") and len(options) == 4
        assert answer_letter(answer, options) is not None and answer.startswith(" ")
        assert r["objects"].count([BACKGROUND]) == 1
        if r["category"] == "counting":
            assert int(answer) == len(r["objects"]) - 1
        if r["category"] == "needle":
            needle = [o for o in r["objects"] if o[-1] == "briefly"]
            assert len(needle) == 1 and answer.strip() in needle[0]
    lettered = fresh_object_qa_records(shapes, 3, seed=4)
    assert all(r["conversations"][1]["value"].endswith(")") for r in lettered)
    with pytest.raises(ValueError, match="n_scenes"):
        fresh_object_qa_records(shapes, -1)
    with pytest.raises(FileNotFoundError, match="meta.json"):
        fresh_object_qa_records(tmp_path, 2)


def test_spurious_backgrounds_leave_the_objects_in_order(shapes):
    import random

    from trajvlm.data.synthetic.scene import scene_from_dict

    scenes = [scene_from_dict(d) for d in json.loads((shapes / "train_scenes.json").read_text())]
    rng = random.Random(0)
    extra = []
    for scene in scenes * 5:
        objs = object_words(scene, rng, spurious=0.5)
        real = [o for o in objs if o != [BACKGROUND]]
        start = {(o.colour, o.shape, o.direction): o.t_start for o in scene.objects}
        times = [start[tuple(o[:3])] for o in real]
        assert len(real) == len(scene.objects) and times == sorted(times)
        extra.append(objs.count([BACKGROUND]) - 1)
    assert set(extra) == {0, 1, 2}  # none, one or two fragments
    assert all(object_words(s, rng, spurious=0.0).count([BACKGROUND]) == 1 for s in scenes)
    with pytest.raises(ValueError, match="probability"):
        object_words(scenes[0], rng, spurious=1.5)


def test_warm_up_with_fewer_records_than_a_batch(shapes, parts):
    """A batch larger than the whole set repeats records (it used to pop from an empty list); no records is refused."""
    from transformers import LlamaForCausalLM

    from trajvlm.train.text_warmup import warm_up

    lm = LlamaForCausalLM.from_pretrained(parts)
    proc = _processor(parts)
    records = text_warmup_records(shapes, lookups=3)
    before = [p.detach().clone() for p in lm.parameters()]
    record = warm_up(lm, TextBatcher(proc, records), None, torch.tensor([0]), steps=2, lr=1e-3, batch_size=8,
                     log_every=1)
    assert record["steps"] == 2 and len(record["log"]) == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, lm.parameters()))
    with pytest.raises(ValueError, match="no training records"):
        warm_up(lm, TextBatcher(proc, []), None, torch.tensor([0]), steps=1, lr=1e-3, batch_size=2)


def test_probe_records_join_the_mix(shapes):
    records = text_warmup_records(shapes, lookups=0, probe=40, seed=3)
    assert len(records) == 40 and all(r["id"].startswith("probe") and r["objects"] for r in records)
    kinds = [r["category"] for r in records]
    assert set(kinds) == {"lookalike", "other"}  # half look-alike on average, both present in 40
    with_lookups = text_warmup_records(shapes, lookups=8, probe=5, seed=3)
    assert sum(r["id"].startswith("probe") for r in with_lookups) == 5 and len(with_lookups) == 13


def test_main_runs_the_lookup_probe_first_and_mixes_its_questions(shapes, parts, tmp_path):
    from safetensors.torch import load_file

    llm, before = _llm_copy(parts, tmp_path)
    assert main(["--data", str(shapes), "--llm", str(llm), "--steps", "2", "--batch", "4", "--lookups", "0",
                 "--probe-steps", "3", "--probe-lr", "1e-3", "--probe-records", "10", "--val", "0",
                 "--log-every", "1"]) == 0
    record = json.loads((llm / "text_warmup.json").read_text())
    assert record["steps"] == 2
    probe = record["probe"]
    assert probe["steps"] == 3 and probe["lr"] == 1e-3
    assert [(r["step"], r["arm"]) for r in probe["rows"]] == [(0, "model"), (3, "model")]
    assert all(0.0 <= r["lookalike"] <= 1.0 for r in probe["rows"])
    train = json.loads((shapes / "train_text.json").read_text())
    assert len(train) == 10 and all(r["id"].startswith("probe") for r in train)
    after = load_file(str(llm / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("flag, value, message", [("--probe-steps", "-1", "--probe-steps must be >= 0"),
                                                  ("--probe-records", "-2", "--probe-records must be >= 0"),
                                                  ("--probe-lr", "0", "--probe-lr must be > 0")])
def test_main_refuses_bad_probe_options(shapes, parts, tmp_path, capsys, flag, value, message):
    llm, _ = _llm_copy(parts, tmp_path)
    with pytest.raises(SystemExit):
        main(["--data", str(shapes), "--llm", str(llm), "--steps", "1", flag, value])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("bf16", [False, True])
def test_warm_up_bf16_autocasts_the_products_and_keeps_float32_weights(shapes, parts, bf16):
    """--bf16: the LLM's linear layers compute in bfloat16, the weights it updates stay float32."""
    from transformers import LlamaForCausalLM

    from trajvlm.train.text_warmup import warm_up

    lm = LlamaForCausalLM.from_pretrained(parts)
    proc = _processor(parts)
    seen = []
    lm.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = [p.detach().clone() for p in lm.parameters()]
    record = warm_up(lm, TextBatcher(proc, text_warmup_records(shapes, lookups=8)), None, torch.tensor([0]),
                     steps=3, lr=1e-3, batch_size=4, log_every=1, bf16=bf16)
    assert seen == [torch.bfloat16 if bf16 else torch.float32] * 3
    assert all(p.dtype == torch.float32 for p in lm.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, lm.parameters()))
    assert record["bf16"] is bf16 and all(r["loss"] > 0 for r in record["log"])


def test_main_bf16_flag_reaches_the_record(shapes, parts, tmp_path):
    llm, _ = _llm_copy(parts, tmp_path)
    assert main(["--data", str(shapes), "--llm", str(llm), "--steps", "3", "--batch", "4", "--lookups", "8",
                 "--val", "0", "--log-every", "1", "--bf16"]) == 0
    record = json.loads((llm / "text_warmup.json").read_text())
    assert record["bf16"] is True and record["steps"] == 3
