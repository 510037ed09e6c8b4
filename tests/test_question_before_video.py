"""`question_before_video`: the processor also puts the user's question in front of the video ("Q\\n<video>\\nQ"),
saved with the processor and set by the training scripts' --question_before_video."""

from __future__ import annotations

import json

import pytest

from trajvlm.model import TrajVLMProcessor
from trajvlm.testing import build_tiny_trajvlm

QUESTION = "Which of these objects appears first?\nA. red circle\nB. blue square\nC. green star\nD. red square"


def conv(question: str = QUESTION, answer: str | None = "red square"):
    turns = [{"from": "human", "value": question}]
    if answer is not None:
        turns.append({"from": "gpt", "value": answer})
    return turns


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_trajvlm(work_dir=tmp_path_factory.mktemp("parts"))


@pytest.fixture
def processor(tiny, tmp_path):
    """A fresh copy (the tests switch the flag)."""
    tiny[1].save_pretrained(tmp_path / "proc")
    return TrajVLMProcessor.from_pretrained(tmp_path / "proc")


def test_off_by_default_and_on_repeats_the_question(processor):
    assert processor.question_before_video is False
    plain = processor.render_prompt(conv("<video>\n" + QUESTION, None), num_videos=1)
    assert plain.count(QUESTION) == 1 and plain.index("<video>") < plain.index(QUESTION)
    processor.question_before_video = True
    both = processor.render_prompt(conv("<video>\n" + QUESTION, None), num_videos=1)
    assert both.count(QUESTION) == 2 and f"{QUESTION}\n<video>\n{QUESTION}" in both
    # the placeholder the processor inserts itself (no placeholder in the text) is treated the same
    assert processor.render_prompt(conv(QUESTION, None), num_videos=1) == both


def test_same_tokens_and_labels_as_the_question_written_twice(processor):
    """Training on LLaVA records with the flag on == training on records that spell the question out twice."""
    processor.question_before_video = True
    on = processor.tokenize_conversation(conv("<video>\n" + QUESTION), num_videos=1)
    processor.question_before_video = False
    spelled = processor.tokenize_conversation(conv(f"{QUESTION}\n<video>\n{QUESTION}"), num_videos=1)
    assert on.input_ids == spelled.input_ids and on.labels == spelled.labels
    supervised = [t for t in on.labels if t != -100]
    assert processor.tokenizer.decode(supervised).strip().startswith("red square")


def test_only_the_turn_with_the_video_and_not_text_only(processor):
    processor.question_before_video = True
    text_only = processor.render_prompt(conv(QUESTION, None), num_videos=0)
    assert text_only.count(QUESTION) == 1
    multi = conv("<video>\n" + QUESTION) + [{"from": "human", "value": "And which one last?"}]
    rendered = processor.render_prompt(multi, num_videos=1)
    assert rendered.count(QUESTION) == 2 and rendered.count("And which one last?") == 1
    only_video = processor.render_prompt(conv("<video>", None), num_videos=1)
    processor.question_before_video = False
    assert only_video == processor.render_prompt(conv("<video>", None), num_videos=1)


def test_saved_with_the_processor_and_old_configs_load_off(processor, tmp_path):
    processor.question_before_video = True
    processor.save_pretrained(tmp_path / "on")
    assert TrajVLMProcessor.from_pretrained(tmp_path / "on").question_before_video is True
    cfg_path = next((tmp_path / "on").glob("*processor_config.json"))
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({k: v for k, v in cfg.items() if k != "question_before_video"}))
    assert TrajVLMProcessor.from_pretrained(tmp_path / "on").question_before_video is False


def test_training_argument_sets_it_and_none_keeps_the_models(tiny, tmp_path):
    from trajvlm.train.arguments import DataArguments, ModelArguments, TrajVLMTrainingArguments
    from trajvlm.train.main import build_model

    model, processor = tiny
    model.save_pretrained(tmp_path / "stage1")
    processor.save_pretrained(tmp_path / "stage1")
    margs = ModelArguments(model_name_or_path=str(tmp_path / "stage1"))
    targs = TrajVLMTrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True)
    loaded, on = build_model(margs, DataArguments(num_frames=4, question_before_video=True), targs)
    assert on.question_before_video is True
    loaded.save_pretrained(tmp_path / "stage2")
    on.save_pretrained(tmp_path / "stage2")
    _, kept = build_model(ModelArguments(model_name_or_path=str(tmp_path / "stage2")), DataArguments(num_frames=4), targs)
    assert kept.question_before_video is True
    _, off = build_model(ModelArguments(model_name_or_path=str(tmp_path / "stage2")),
                         DataArguments(num_frames=4, question_before_video=False), targs)
    assert off.question_before_video is False
