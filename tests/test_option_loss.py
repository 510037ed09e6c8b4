"""The option loss: per-token option targets of multiple-choice samples (trajvlm.data.options), their batching,
the loss itself (trajvlm.train.option_loss) and its place in the trainer's loss."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trajvlm.data.collate import IGNORE_INDEX, VideoTextCollator, pop_batch_meta
from trajvlm.data.dataset import DataFormatError, LazyVideoTextDataset, VideoDataConfig
from trajvlm.data.options import option_conversations, option_targets
from trajvlm.testing import build_tiny_trajvlm, write_tiny_video
from trajvlm.train.option_loss import option_loss

OPTIONS = ["A. red circle", "B. red square", "C. blue square", "D. green star"]


def mc_record(answer_value: str = "red square", answer: str = "B", options=OPTIONS, **extra) -> dict:
    question = "<video>\nWhich of these objects appears first?\n" + "\n".join(options)
    record = {"id": "q", "video": "v.mp4", "options": list(options), "answer": answer,
              "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer_value}]}
    return {**record, **extra}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_trajvlm(work_dir=tmp_path_factory.mktemp("parts"))


def _tokens(processor, ids):
    return processor.tokenizer.convert_ids_to_tokens([int(i) for i in ids])


# ---------------------------------------------------------------------------------------------- targets


def test_option_conversations_replace_the_answer_keeping_its_spaces():
    convs = option_conversations(mc_record(answer_value=" red square"))
    assert [c[-1]["value"] for c in convs] == [" red circle", " red square", " blue square", " green star"]
    assert all(c[0] == mc_record()["conversations"][0] for c in convs)
    letters = option_conversations(mc_record(answer_value="B "))
    assert [c[-1]["value"] for c in letters] == ["A ", "B ", "C ", "D "]


@pytest.mark.parametrize("record", [
    {"id": "cap", "conversations": [{"from": "human", "value": "<video>\nDescribe."}, {"from": "gpt", "value": "x"}]},
    mc_record(answer_value="red square (B)"),  # neither the option's text nor its letter
    mc_record(answer_value="blue square"),  # names another option than the answer letter
    mc_record(answer="E"),
    {**mc_record(), "conversations": mc_record()["conversations"] * 2},  # two answers
], ids=["no-options", "text-and-letter", "wrong-option", "bad-letter", "two-answers"])
def test_records_that_do_not_qualify_get_none(record):
    assert option_conversations(record) is None


def test_a_malformed_option_line_is_an_error():
    with pytest.raises(ValueError, match="not of the form"):
        option_conversations(mc_record(options=["red circle", "B. red square", "C. blue square", "D. green star"]))


def test_targets_branch_where_the_options_do(tiny):
    _, processor = tiny
    rec = mc_record()
    labels = torch.tensor(processor.tokenize_conversation(rec["conversations"], num_videos=1).labels)
    targets = option_targets(processor, rec, labels, num_videos=1)  # (L,K)
    assert targets.shape == (labels.shape[0], 4)
    supervised = (labels != IGNORE_INDEX).nonzero().squeeze(1).tolist()
    # nothing outside the answer
    assert (targets[labels == IGNORE_INDEX] == IGNORE_INDEX).all()
    rows = [processor.tokenize_conversation(c, num_videos=1).labels for c in option_conversations(rec)]
    first = supervised[0]
    # the first answer token: the first token of every option, once each
    expected = list(dict.fromkeys(r[first] for r in rows))
    assert [t for t in targets[first].tolist() if t != IGNORE_INDEX] == expected
    assert len(expected) >= 2
    # every answer token is among its own targets
    for i in supervised:
        assert int(labels[i]) in targets[i].tolist()
    # the last answer token (the turn's end) has one target: no option continues past the answer
    assert [t for t in targets[supervised[-1]].tolist() if t != IGNORE_INDEX] == [int(labels[supervised[-1]])]


def test_targets_of_a_shared_first_word(tiny):
    """"red circle" / "red square": after the answer's "red", the targets are the two shapes listed with red."""
    _, processor = tiny
    rec = mc_record()
    convs = option_conversations(rec)
    labels = torch.tensor(processor.tokenize_conversation(rec["conversations"], num_videos=1).labels)
    targets = option_targets(processor, rec, labels, num_videos=1)
    rows = [processor.tokenize_conversation(c, num_videos=1).labels for c in convs]
    # the first position where "red circle" and "red square" differ
    split = next(i for i, (a, b) in enumerate(zip(rows[0], rows[1])) if a != b)
    allowed = [t for t in targets[split].tolist() if t != IGNORE_INDEX]
    assert sorted(allowed) == sorted({rows[0][split], rows[1][split]})
    # before it, the answer's "red" had the first words of all four options as targets
    assert len([t for t in targets[split - 1].tolist() if t != IGNORE_INDEX]) == 3  # red, blue, green


# ---------------------------------------------------------------------------------------------- dataset + batch


def _write_data(root, records):
    write_tiny_video(root / "v.mp4", num_frames=4, size=32)
    (root / "train.json").write_text(json.dumps(records))
    return root / "train.json"


def test_dataset_and_collator_carry_targets(tiny, tmp_path):
    _, processor = tiny
    caption = {"id": "cap", "video": "v.mp4",
               "conversations": [{"from": "human", "value": "<video>\nDescribe the video."},
                                 {"from": "gpt", "value": "A red square moves right."}]}
    path = _write_data(tmp_path, [mc_record(), caption])
    ds = LazyVideoTextDataset(path, processor, VideoDataConfig(max_frames=4, option_targets=True))
    assert ds.num_option_samples == 1
    mc, cap = ds[0], ds[1]
    assert mc["option_ids"].shape == (mc["input_ids"].shape[0], 4) and cap["option_ids"] is None
    off = LazyVideoTextDataset(path, processor, VideoDataConfig(max_frames=4))
    assert off[0]["option_ids"] is None

    for side in ("left", "right"):
        collator = VideoTextCollator(pad_token_id=0, padding_side=side)
        batch = collator([mc, cap])
        opts = batch["option_ids"]  # (B,L,K)
        assert opts.shape == (2, batch["labels"].shape[1], 4)
        assert (opts[1] == IGNORE_INDEX).all()
        # aligned with the labels: targets only where row 0 is supervised, and its label among them
        has = (opts[0] != IGNORE_INDEX).any(1)
        assert has.any() and (batch["labels"][0][has] != IGNORE_INDEX).all()
        assert all(int(batch["labels"][0][i]) in opts[0][i].tolist() for i in has.nonzero().squeeze(1).tolist())
        meta = pop_batch_meta(batch)
        assert "option_ids" in meta and "option_ids" not in batch
    assert "option_ids" not in VideoTextCollator(pad_token_id=0)([cap])


def test_dataset_names_a_record_with_a_malformed_option(tiny, tmp_path):
    _, processor = tiny
    bad = mc_record(options=["A. red circle", "B. red square", "C blue square", "D. green star"], id="bad7")
    path = _write_data(tmp_path, [mc_record(), bad])
    with pytest.raises(DataFormatError, match=r"sample #1 \(id='bad7'\).*'C blue square'"):
        LazyVideoTextDataset(path, processor, VideoDataConfig(max_frames=4, option_targets=True))
    LazyVideoTextDataset(path, processor, VideoDataConfig(max_frames=4))  # without the option loss it is not read


def test_dataset_without_any_multiple_choice_record_refuses(tiny, tmp_path):
    _, processor = tiny
    caption = {"id": "cap", "video": "v.mp4",
               "conversations": [{"from": "human", "value": "<video>\nDescribe."}, {"from": "gpt", "value": "A square."}]}
    path = _write_data(tmp_path, [caption])
    with pytest.raises(DataFormatError, match="option targets"):
        LazyVideoTextDataset(path, processor, VideoDataConfig(max_frames=4, option_targets=True))


# ---------------------------------------------------------------------------------------------- the loss


def _toy():
    """2 rows; row 0 has a 3-position video span spliced in before its answer; vocabulary of 6."""
    torch.manual_seed(0)
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[0, 3:] = torch.tensor([2, 5])
    labels[1, 2:4] = torch.tensor([1, 4])
    spliced = torch.full((2, 8), IGNORE_INDEX)
    spliced[0, 6:] = torch.tensor([2, 5])  # the same answer, 3 positions later
    spliced[1, 2:4] = torch.tensor([1, 4])
    options = torch.full((2, 5, 3), IGNORE_INDEX)
    options[0, 3, :3] = torch.tensor([2, 3, 0])  # three listed first tokens
    options[0, 4, :1] = 5  # one way to go on
    # row 1: no targets (an open question)
    logits = torch.randn(2, 8, 6, requires_grad=True)
    return logits, spliced, labels, options


def test_option_loss_is_minus_log_mass_on_the_listed_tokens():
    logits, spliced, labels, options = _toy()
    p = torch.softmax(logits.detach(), -1)
    expected = -(math.log(p[0, 5, [2, 3, 0]].sum()) + math.log(p[0, 6, 5])) / 2  # logits at p-1 predict p
    got = option_loss(logits, spliced, labels, options)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    got.backward()
    assert logits.grad[1].abs().sum() == 0  # the row without targets takes no part
    # mass on tokens outside the listed ones is pushed down, mass on listed ones up
    assert (logits.grad[0, 5, [1, 4, 5]] > 0).all() and (logits.grad[0, 5, [2, 3, 0]] < 0).all()


def test_option_loss_with_one_target_is_the_cross_entropy():
    logits, spliced, labels, options = _toy()
    one = torch.full_like(options, IGNORE_INDEX)
    one[..., 0] = torch.where(labels != IGNORE_INDEX, labels, IGNORE_INDEX)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 6), spliced[:, 1:].reshape(-1))
    assert option_loss(logits, spliced, labels, one).item() == pytest.approx(ce.item(), rel=1e-5)


def test_option_loss_none_without_targets_and_error_when_misaligned():
    logits, spliced, labels, options = _toy()
    assert option_loss(logits, spliced, labels, torch.full_like(options, IGNORE_INDEX)) is None
    cut = spliced.clone()
    cut[0, 7] = IGNORE_INDEX
    with pytest.raises(ValueError, match="cannot be aligned"):
        option_loss(logits, cut, labels, options)


def test_trainer_adds_the_weighted_option_loss(tiny, tmp_path):
    from trajvlm.train.arguments import TrajVLMTrainingArguments
    from trajvlm.train.trainer import TrajVLMTrainer

    model, processor = tiny
    path = _write_data(tmp_path, [mc_record(), mc_record(answer_value="green star", answer="D")])
    ds = LazyVideoTextDataset(path, processor, VideoDataConfig(max_frames=4, option_targets=True))
    collator = VideoTextCollator.from_tokenizer(processor.tokenizer)

    def loss_with(weight):
        args = TrajVLMTrainingArguments(output_dir=str(tmp_path / f"out{weight}"), use_cpu=True, report_to=[],
                                        option_loss_weight=weight, seg_loss_weight=0.0)
        trainer = TrajVLMTrainer(model=model, args=args, data_collator=collator, processing_class=processor)
        batch = collator([ds[0], ds[1]])
        options = batch["option_ids"]
        with torch.no_grad():
            loss, out = trainer.compute_loss(model, batch, return_outputs=True)
        return trainer, loss, out, batch, options

    model.eval()
    _, base, _, _, _ = loss_with(0.0)
    trainer, total, out, batch, options = loss_with(2.5)
    term = option_loss(out["logits"], out["labels"], batch["labels"], options)
    assert term.item() > 0
    assert total.item() == pytest.approx(base.item() + 2.5 * term.item(), rel=1e-5)
    assert trainer._loss_parts["option_loss"] == [pytest.approx(term.item(), rel=1e-5)]


def test_negative_weight_is_refused(tmp_path):
    from trajvlm.train.arguments import TrajVLMTrainingArguments

    with pytest.raises(ValueError, match="option_loss_weight"):
        TrajVLMTrainingArguments(output_dir=str(tmp_path), use_cpu=True, option_loss_weight=-1.0)
