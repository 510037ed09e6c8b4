"""TrajVLMProcessor + chat templates + video processor: labels per turn, formats, errors, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, SiglipVisionConfig

from trajvlm.model import (
    IGNORE_INDEX,
    NoSupervisedTokensError,
    ProcessorError,
    TemplateTokenizationError,
    TrajVLMProcessor,
    VideoPlaceholderError,
)
from trajvlm.model.chat_templates import ConversationError, Segment
from trajvlm.testing import build_tiny_tokenizer, make_tiny_video
from trajvlm.vision.processor import TrajVLMVideoProcessor, VideoProcessorError

Q1, A1, Q2, A2 = "What moves?", "A red square.", "Which way?", "Right."
LLAVA = [
    {"from": "human", "value": f"<video>\n{Q1}"},
    {"from": "gpt", "value": A1},
    {"from": "human", "value": Q2},
    {"from": "gpt", "value": A2},
]
HF = [
    {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": Q1}]},
    {"role": "assistant", "content": A1},
    {"role": "user", "content": [{"type": "text", "text": Q2}]},
    {"role": "assistant", "content": [{"type": "text", "text": A2}]},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def make_proc(tokenizer, template="vicuna_v1", **kw):
    vp = TrajVLMVideoProcessor(32, [0.5] * 3, [0.5] * 3)
    return TrajVLMProcessor(tokenizer, vp, template, **kw)


def supervised_runs(labels: torch.Tensor) -> list[list[int]]:
    runs, cur = [], []
    for x in labels.tolist():
        if x != IGNORE_INDEX:
            cur.append(x)
        elif cur:
            runs, cur = runs + [cur], []
    return runs + ([cur] if cur else [])


@pytest.mark.parametrize("template", ["vicuna_v1", "llama2", "llama3", "plain"])
def test_only_assistant_turns_are_supervised(tokenizer, template):
    proc = make_proc(tokenizer, template)
    out = proc(LLAVA, make_tiny_video())
    runs = supervised_runs(out["labels"][0])
    assert [proc.decode(r, skip_special_tokens=True).strip() for r in runs] == [A1, A2]
    stop = proc.stop_token_ids[-1]
    assert all(r[-1] == stop for r in runs)  # each reply ends with the end-of-turn token, supervised
    text = proc.decode(out["input_ids"][0])
    if template == "plain":
        assert Q1 not in text  # captioning template keeps only the placeholder
    else:
        assert Q1 in text and Q2 in text
    # generation sees exactly the training prefix
    prompt = proc(LLAVA[:1], make_tiny_video(), add_generation_prompt=True)["input_ids"][0]
    first = (out["labels"][0] != IGNORE_INDEX).nonzero()[0, 0]
    assert torch.equal(out["input_ids"][0, : len(prompt)], prompt) and len(prompt) == first


def test_llava_and_hf_message_formats_agree(tokenizer):
    proc = make_proc(tokenizer)
    a, b = proc(LLAVA, make_tiny_video()), proc(HF, make_tiny_video())
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert (a["input_ids"] == proc.video_token_id).sum() == 1


def test_placeholder_is_inserted_or_counted(tokenizer):
    proc = make_proc(tokenizer)
    bare = [{"from": "human", "value": Q1}, {"from": "gpt", "value": A1}]
    out = proc(bare, make_tiny_video())
    assert (out["input_ids"] == proc.video_token_id).sum() == 1
    assert proc.decode(out["input_ids"][0]).count("<video>") == 1
    with pytest.raises(VideoPlaceholderError, match="1 '<video>' placeholder.*2 video"):
        proc(LLAVA, [make_tiny_video(), make_tiny_video()])
    with pytest.raises(VideoPlaceholderError, match="assistant"):
        proc([{"from": "human", "value": "hi"}, {"from": "gpt", "value": "<video>"}])


def test_zero_supervised_and_bad_conversations_raise(tokenizer):
    proc = make_proc(tokenizer)
    with pytest.raises(NoSupervisedTokensError):
        proc(LLAVA[:1], make_tiny_video(), return_labels=True)
    with pytest.raises(ConversationError, match="alternate"):
        proc([{"from": "gpt", "value": "x"}])
    with pytest.raises(ConversationError, match="unknown role"):
        proc([{"from": "robot", "value": "x"}])
    with pytest.raises(ConversationError, match="neither LLaVA"):
        proc([{"text": "x"}])


def test_boundary_straddling_token_raises(tokenizer, monkeypatch):
    proc = make_proc(tokenizer)
    # a template whose prompt ends with a space: SentencePiece glues it to the reply's first word ("▁A")
    monkeypatch.setattr(
        proc, "render", lambda *a, **k: [Segment("USER: hi ASSISTANT: "), Segment("A red square.</s>", True)]
    )
    with pytest.raises(TemplateTokenizationError, match="straddles"):
        proc.tokenize_conversation(LLAVA[:2])


def test_template_tokens_must_exist(tmp_path):
    bare = build_tiny_tokenizer(special_tokens=["<video>"])
    with pytest.raises(ProcessorError, match="<\\|start_header_id\\|>"):
        make_proc(bare, "llama3")
    no_video = build_tiny_tokenizer(special_tokens=())
    with pytest.raises(ProcessorError, match="video placeholder"):
        make_proc(no_video)


def test_batch_padding_sides(tokenizer):
    proc = make_proc(tokenizer)
    convs = [LLAVA[:2], LLAVA]
    vids = [make_tiny_video(4), make_tiny_video(8)]
    for side in ("left", "right"):
        out = proc(convs, vids, padding_side=side)
        mask = out["attention_mask"]
        assert mask[0].sum() < mask[1].sum()
        assert (mask[0, 0] == 0) == (side == "left") and (mask[0, -1] == 0) == (side == "right")
        assert (out["labels"][mask == 0] == IGNORE_INDEX).all()
        assert [v.shape[0] for v in out["pixel_values_videos"]] == [4, 8]
    assert proc.tokenizer.padding_side == "left"  # Llama default, used when no side is given
    assert proc(convs, vids)["attention_mask"][0, 0] == 0


def test_processor_save_load_roundtrip(tokenizer, tmp_path, tiny_video_path):
    proc = make_proc(tokenizer, "llama3", num_frames=4, system_prompt="Be brief.")
    proc.save_pretrained(tmp_path)
    again = TrajVLMProcessor.from_pretrained(tmp_path)
    assert again.to_dict() == proc.to_dict() and again.video_processor.to_dict() == proc.video_processor.to_dict()
    a, b = proc(LLAVA, tiny_video_path), again(LLAVA, tiny_video_path)
    assert a["pixel_values_videos"][0].shape == (4, 3, 32, 32)  # a path is decoded with num_frames
    for k in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(a[k], b[k])
    assert torch.equal(a["pixel_values_videos"][0], b["pixel_values_videos"][0])
    assert "Be brief." in again.decode(b["input_ids"][0])


def test_video_processor_uses_the_towers_statistics(tiny_parts):
    vp = TrajVLMVideoProcessor.from_vision_config(SiglipVisionConfig(image_size=32), tiny_parts["siglip"])
    assert vp.image_mean == [0.5] * 3 and vp.image_std == [0.5] * 3 and vp.size == 32
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    frames[1] = 255
    px = vp(frames)
    assert px.shape == (3, 3, 32, 32) and px.dtype == torch.float32
    assert torch.allclose(px[0], torch.tensor(-1.0)) and torch.allclose(px[1], torch.tensor(1.0))
    chw = torch.from_numpy(frames).permute(0, 3, 1, 2)
    assert torch.equal(vp(chw), px) and torch.equal(vp(list(frames)), px)
    with pytest.raises(VideoProcessorError, match="uint8"):
        vp(frames.astype(np.float32))
    with pytest.raises(VideoProcessorError, match="zero frames"):
        vp(frames[:0])
    unknown = SiglipVisionConfig(image_size=32)
    unknown.model_type = "mystery_vision"
    with pytest.raises(VideoProcessorError, match="no image_mean"):
        TrajVLMVideoProcessor.from_vision_config(unknown)
