"""TrajVLMForConditionalGeneration: config, splice/labels, ragged batches, generate, save/load, from_parts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForImageTextToText

import trajvlm  # noqa: F401  (registers the Auto classes)
from trajvlm.model import (
    IGNORE_INDEX,
    NoSupervisedTokensError,
    TrajVLMConfig,
    TrajVLMConfigError,
    TrajVLMForConditionalGeneration,
    TrajVLMProcessor,
    VideoPlaceholderError,
)
from trajvlm.model.patch_connector import PatchConnector
from trajvlm.testing import build_tiny_llama, build_tiny_llava, build_tiny_tokenizer, make_tiny_video
from trajvlm.trajtok import TrajTok

ANSWER = "A red square moves right."
CONV = [{"from": "human", "value": "<video>\nWhat moves?"}, {"from": "gpt", "value": ANSWER}]
CONNECTORS = ["trajtok", "patch"]


@pytest.fixture(params=CONNECTORS)
def model_dir(request, tiny_trajvlm_dir, tiny_patch_dir):
    return tiny_trajvlm_dir if request.param == "trajtok" else tiny_patch_dir


def load(d):
    model = AutoModelForImageTextToText.from_pretrained(d).eval()
    assert isinstance(model, TrajVLMForConditionalGeneration)
    return model, TrajVLMProcessor.from_pretrained(d)


_CACHE: dict = {}


@pytest.fixture
def loaded(model_dir):
    """(model, processor) shared by the tests that only read the model (eval mode, no hooks left behind)."""
    if model_dir not in _CACHE:
        _CACHE[model_dir] = load(model_dir)
    return _CACHE[model_dir]


# ---- import / registration ---------------------------------------------------------------------------------
def test_import_is_light_and_auto_classes_still_resolve(tiny_trajvlm_dir):
    code = f"""
import sys, trajvlm
print(sorted(m for m in ("torch", "transformers", "deepspeed", "gradio", "lmms_eval", "decord") if m in sys.modules))
from transformers import AutoConfig, AutoModelForImageTextToText, AutoModelForCausalLM
print(type(AutoConfig.from_pretrained({str(tiny_trajvlm_dir)!r})).__name__)
print(type(AutoModelForImageTextToText.from_pretrained({str(tiny_trajvlm_dir)!r})).__name__)
print(type(AutoModelForCausalLM.from_pretrained({str(tiny_trajvlm_dir)!r})).__name__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:4] == ["[]", "TrajVLMConfig", "TrajVLMForConditionalGeneration", "TrajVLMForConditionalGeneration"]


# ---- config ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(connector="qformer"), "unknown connector 'qformer'"),
        (dict(projector="mlp3x"), "unknown projector 'mlp3x'"),
        (dict(token_budget=0), "token_budget must be an int >= 1"),
        (dict(video_token_id=None), "missing video token"),
        (dict(video_token_id=10**6), "outside the LLM vocabulary"),
    ],
)
def test_config_validation(tiny_trajvlm_dir, kwargs, match):
    base = AutoConfig.from_pretrained(tiny_trajvlm_dir).to_dict()
    base.update(kwargs)
    with pytest.raises(TrajVLMConfigError, match=match):
        TrajVLMConfig(**{k: v for k, v in base.items() if k != "model_type"})


def test_config_roundtrip_with_custom_subconfigs(tiny_trajvlm_dir, tmp_path):
    cfg = AutoConfig.from_pretrained(tiny_trajvlm_dir)
    assert isinstance(cfg, TrajVLMConfig)
    assert cfg.vision_config.model_type == "trajvlm_conv" and cfg.trajtok_config.model_type == "trajtok"
    assert cfg.hidden_size == cfg.text_config.hidden_size == 64
    cfg.save_pretrained(tmp_path)
    again = AutoConfig.from_pretrained(tmp_path)
    a, b = again.to_dict(), cfg.to_dict()
    a.pop("_name_or_path"), b.pop("_name_or_path")
    assert a == b


# ---- training signal -----------------------------------------------------------------------------------------
def test_loss_finite_and_decreasing(model_dir):
    model, proc = load(model_dir)
    model.train()
    conv2 = [{"from": "human", "value": "<video>\nWhich colour?"}, {"from": "gpt", "value": "Blue."}]
    batch = proc([CONV, conv2], [make_tiny_video(8, seed=0), make_tiny_video(4, seed=1, colour=(30, 30, 220))])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        out = model(**batch)
        assert torch.isfinite(out.loss)
        losses.append(out.loss.item())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert losses[-1] < 0.8 * losses[0], losses


def test_labels_ignore_prompt_and_visual_positions(loaded):
    model, proc = loaded
    batch = proc(CONV, make_tiny_video())
    labels = batch["labels"][0]
    sup = (labels != IGNORE_INDEX).nonzero().flatten()
    first = int(sup[0])
    assert (labels[:first] == IGNORE_INDEX).all()  # the whole prompt, <video> included
    assert torch.equal(sup, torch.arange(first, labels.shape[0]))  # the answer is one contiguous block to the end
    assert proc.decode(labels[sup], skip_special_tokens=True).strip() == ANSWER
    assert int(labels[-1]) == proc.tokenizer.eos_token_id  # the end of turn is learned too

    with torch.no_grad():
        enc = model.encode_video(batch["pixel_values_videos"])
        spliced, _ = model.prepare_inputs_embeds(
            batch["input_ids"], batch["attention_mask"], labels=batch["labels"], video_encoding=enc
        )
    (start, end), = spliced.video_spans[0]
    assert end - start == enc.num_tokens[0] > 0
    out_labels = spliced.labels[0]
    assert (out_labels[start:end] == IGNORE_INDEX).all()
    # outside the visual span the labels are the processor's (minus the removed placeholder)
    text_labels = torch.cat([out_labels[:start], out_labels[end:]])
    keep = batch["input_ids"][0] != model.config.video_token_id
    assert torch.equal(text_labels, labels[keep])


def test_ragged_batch_matches_batch_size_one(loaded):
    model, proc = loaded
    convs = [
        CONV,
        [
            {"from": "human", "value": "<video>\nHow many objects are there?"},
            {"from": "gpt", "value": "1."},
            {"from": "human", "value": "Which way does it move?"},
            {"from": "gpt", "value": "Right."},
        ],
    ]
    videos = [make_tiny_video(8, seed=0), make_tiny_video(4, seed=3)]
    for side in ("left", "right"):
        batch = proc(convs, videos, padding_side=side)
        with torch.no_grad():
            out = model(**batch)
            counts = model.encode_video(batch["pixel_values_videos"]).num_tokens
            assert counts[0] != counts[1] or model.config.connector == "trajtok"
            for i in range(2):
                single = proc(convs[i], videos[i])
                ref = model(**single)
                got = out.logits[i][out.attention_mask[i].bool()]
                assert got.shape == ref.logits[0].shape
                torch.testing.assert_close(got, ref.logits[0], atol=2e-4, rtol=1e-4)


def test_generate_equals_manual_greedy_loop(loaded):
    model, proc = loaded
    prompts = [CONV[:1], [{"from": "human", "value": "<video>\nDescribe the video in detail, please."}]]
    videos = [make_tiny_video(8, seed=0), make_tiny_video(4, seed=5)]
    batch = proc(prompts, videos, add_generation_prompt=True)
    assert (batch["attention_mask"][:, 0] == 0).any()  # left padded
    new = model.generate(**batch, max_new_tokens=6, do_sample=False)
    eos = proc.tokenizer.eos_token_id
    for i in range(2):
        single = proc(prompts[i], videos[i], add_generation_prompt=True)
        with torch.no_grad():
            spliced, _ = model.prepare_inputs_embeds(single["input_ids"], single["attention_mask"], single["pixel_values_videos"])
            embeds, manual = spliced.inputs_embeds, []
            for _ in range(6):
                nxt = int(model(inputs_embeds=embeds).logits[0, -1].argmax())
                manual.append(nxt)
                if nxt == eos:
                    break
                embeds = torch.cat([embeds, model.get_input_embeddings()(torch.tensor([[nxt]]))], dim=1)
        assert new[i, : len(manual)].tolist() == manual


def test_generate_stops_at_eos_and_samples(loaded):
    model, proc = loaded
    batch = proc(CONV[:1], make_tiny_video(), add_generation_prompt=True)
    first = int(model.generate(**batch, max_new_tokens=1, do_sample=False)[0, 0])
    stopped = model.generate(**batch, max_new_tokens=8, do_sample=False, eos_token_id=first)
    assert stopped.shape[1] == 1
    torch.manual_seed(0)
    a = model.generate(**batch, max_new_tokens=5, do_sample=True, top_p=0.9, temperature=1.5, eos_token_id=None)
    torch.manual_seed(0)
    b = model.generate(**batch, max_new_tokens=5, do_sample=True, top_p=0.9, temperature=1.5, eos_token_id=None)
    assert a.shape == (1, 5) and torch.equal(a, b)


def test_save_load_identical_logits(loaded, tmp_path):
    model, proc = loaded
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    model2, proc2 = load(tmp_path)
    b1, b2 = proc(CONV, make_tiny_video()), proc2(CONV, make_tiny_video())
    assert torch.equal(b1["input_ids"], b2["input_ids"]) and torch.equal(b1["labels"], b2["labels"])
    assert torch.equal(b1["pixel_values_videos"][0], b2["pixel_values_videos"][0])
    with torch.no_grad():
        assert torch.equal(model(**b1).logits, model2(**b2).logits)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "trajvlm"


# ---- errors ------------------------------------------------------------------------------------------------
def test_placeholder_count_mismatch_raises(tiny_trajvlm_dir):
    model, proc = load(tiny_trajvlm_dir)
    batch = proc(CONV, make_tiny_video())
    vid = model.config.video_token_id
    two = torch.cat([batch["input_ids"][:, :2], torch.tensor([[vid]]), batch["input_ids"][:, 2:]], dim=1)
    with pytest.raises(VideoPlaceholderError, match="2 video placeholder"):
        model(input_ids=two, pixel_values_videos=batch["pixel_values_videos"])
    with pytest.raises(VideoPlaceholderError, match="but 0 video"):
        model(input_ids=batch["input_ids"])
    with pytest.raises(VideoPlaceholderError, match="1 '<video>' placeholder"):
        proc(CONV, [make_tiny_video(), make_tiny_video()])


def test_zero_supervised_tokens_raise(tiny_trajvlm_dir):
    model, proc = load(tiny_trajvlm_dir)
    with pytest.raises(NoSupervisedTokensError):
        proc(CONV[:1], make_tiny_video(), return_labels=True)
    n_prompt = len(proc(CONV[:1], make_tiny_video(), add_generation_prompt=True)["input_ids"][0])
    with pytest.raises(NoSupervisedTokensError):
        proc(CONV, make_tiny_video(), max_length=n_prompt)
    batch = proc(CONV, make_tiny_video())
    with pytest.raises(NoSupervisedTokensError):
        model(**{**batch, "labels": torch.full_like(batch["labels"], IGNORE_INDEX)})


# ---- connectors ----------------------------------------------------------------------------------------------
def test_patch_and_trajtok_share_the_model_class(tiny_trajvlm_dir, tiny_patch_dir):
    (mt, _), (mp, _) = load(tiny_trajvlm_dir), load(tiny_patch_dir)
    assert type(mt) is type(mp) is TrajVLMForConditionalGeneration
    assert isinstance(mt.connector, TrajTok) and isinstance(mp.connector, PatchConnector)
    frames = [torch.zeros(8, 3, 32, 32)]
    et, ep = mt.encode_video(frames), mp.encode_video(frames)
    assert et.trajtok is not None and ep.trajtok is None
    assert ep.num_tokens == ep.num_patch_tokens == [8 * 4 * 4]  # 8x8 conv grid, 2x2 pooling
    assert et.num_patch_tokens == ep.num_patch_tokens
    assert et.num_tokens[0] <= mt.config.token_budget


def test_streaming_encode_matches_batched_encode(loaded):
    model, proc = loaded
    px = proc.video_processor(make_tiny_video(10, seed=4))  # (10,3,32,32)
    with torch.no_grad():
        ref = model.encode_video([px])
        streamed = model.encode_video_chunks(iter(px.split(3)))  # chunking unrelated to the model's
    assert streamed.num_frames == [10] and streamed.num_patch_tokens == ref.num_patch_tokens
    torch.testing.assert_close(streamed.embeds[0], ref.embeds[0])
    if ref.trajtok is not None:
        assert torch.equal(streamed.trajtok.trajectory_ids[0], ref.trajtok.trajectory_ids[0])
        assert torch.equal(streamed.trajtok.hard_ids, ref.trajtok.hard_ids)


def test_text_only_batch_touches_every_connector_parameter(model_dir):
    model, proc = load(model_dir)
    model.train()
    batch = proc([{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi."}])
    assert batch["pixel_values_videos"] == []
    model(**batch).loss.backward()
    params = [*model.connector.named_parameters(), *model.projector.named_parameters()]
    assert params and all(p.grad is not None for _, p in params), [n for n, p in params if p.grad is None]


def test_trajtok_encoding_budget_chunks_and_segmentation_loss(tiny_trajvlm_dir):
    model, proc = load(tiny_trajvlm_dir)
    cfg = model.config
    calls = []
    model.vision_tower.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    long = proc.video_processor(make_tiny_video(12, seed=2))
    enc = model.encode_video([long])
    assert max(calls) <= cfg.trajtok_config.frames_per_chunk and sum(calls) == 12  # backbone ran chunk by chunk
    tt = enc.trajtok
    n = tt.trajectory_ids[0].shape[0]
    assert enc.num_tokens == [n * cfg.trajtok_config.tokens_per_trajectory]
    assert tt.boxes[0].shape == (n, 12, 4) and tt.hard_ids.shape == (1, 12, *enc.grid)
    assert model.encode_video([long], token_budget=2).num_tokens[0] <= 2

    # ragged videos in one call: per-cell maps padded along T
    enc2 = model.encode_video([long, proc.video_processor(make_tiny_video(4))])
    assert enc2.trajtok.hard_ids.shape[:2] == (2, 12) and (enc2.trajtok.hard_ids[1, 4:] == -1).all()

    model.train()
    masks = torch.zeros(8, 32, 32, dtype=torch.long)
    frames = make_tiny_video(8)
    masks[torch.from_numpy((frames == np.array([220, 40, 40], np.uint8)).all(-1))] = 1
    graph = torch.ones(1, 8, dtype=torch.long)
    batch = proc(CONV, frames)
    out = model(**batch, video_masks=[masks], video_graphs=[graph])
    assert torch.isfinite(out.seg_loss) and out.seg_loss > 0
    torch.testing.assert_close(out.loss, out.lm_loss + cfg.seg_loss_weight * out.seg_loss)


def test_patch_connector_refuses_masks_unless_seg_weight_is_zero(tiny_patch_dir):
    model, proc = load(tiny_patch_dir)
    batch = proc(CONV, make_tiny_video())
    masks, graphs = [torch.zeros(8, 32, 32, dtype=torch.long)], [torch.ones(1, 8, dtype=torch.long)]
    with pytest.raises(ValueError, match="no segmenter"):
        model(**batch, video_masks=masks, video_graphs=graphs)
    model.config.seg_loss_weight = 0.0
    out = model(**batch, video_masks=masks, video_graphs=graphs)
    assert out.seg_loss is None and torch.equal(out.loss, out.lm_loss)


# ---- from_parts ----------------------------------------------------------------------------------------------
def test_from_parts_from_paths_adds_video_token(tiny_parts, tmp_path):
    bare = build_tiny_tokenizer(special_tokens=())
    build_tiny_llama(bare, tmp_path / "llm")
    model, proc = TrajVLMForConditionalGeneration.from_parts(
        tiny_parts["siglip"], tmp_path / "llm", connector="trajtok",
        trajtok_config=dict(hidden_dim=32, num_queries=4, num_heads=2, frames_per_chunk=4), chat_template="llama3",
    )
    assert len(proc.tokenizer) == len(bare) + 4  # <video> + 3 llama3 tokens
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == len(proc.tokenizer) == model.config.text_config.vocab_size
    from transformers import LlamaForCausalLM, SiglipVisionModel

    lm = LlamaForCausalLM.from_pretrained(tmp_path / "llm")
    torch.testing.assert_close(emb[: len(bare)], lm.get_input_embeddings().weight, rtol=0, atol=0)
    vit = SiglipVisionModel.from_pretrained(tiny_parts["siglip"])
    for (k, a), (_, b) in zip(model.vision_tower.model.state_dict().items(), vit.state_dict().items()):
        assert torch.equal(a, b), k
    assert proc.video_processor.image_mean == [0.5, 0.5, 0.5] == proc.video_processor.image_std
    assert model.vision_tower.grid_size(32) == (4, 4)
    batch = proc(CONV, make_tiny_video())
    assert torch.isfinite(model(**batch).loss)
    model.save_pretrained(tmp_path / "out")
    proc.save_pretrained(tmp_path / "out")
    again, _ = load(tmp_path / "out")
    with torch.no_grad():
        assert torch.equal(model.eval()(**batch).logits, again(**batch).logits)


@pytest.mark.parametrize("kind", ["llava", "llava_next_video", "llava_onevision"])
def test_from_parts_reuses_a_llava_checkpoint(kind, tmp_path):
    tok = build_tiny_tokenizer()
    path = build_tiny_llava(tmp_path / kind, tok, kind=kind)
    llava = AutoModelForImageTextToText.from_pretrained(path)
    model, proc = TrajVLMForConditionalGeneration.from_parts(path, connector="patch", projector="mlp2x_gelu")
    for (k, a), (_, b) in zip(model.vision_tower.model.state_dict().items(), llava.model.vision_tower.state_dict().items()):
        assert torch.equal(a, b), k
    for (k, a), (_, b) in zip(
        model.language_model.model.state_dict().items(), llava.model.language_model.state_dict().items()
    ):
        assert torch.equal(a, b), k
    assert torch.equal(model.language_model.lm_head.weight, llava.lm_head.weight)
    assert torch.equal(model.projector.linear_1.weight, llava.model.multi_modal_projector.linear_1.weight)
    assert model.config.vision_feature_layer == llava.config.vision_feature_layer
    expected_mean = [0.5] * 3 if kind == "llava_onevision" else [0.48145466, 0.4578275, 0.40821073]
    assert proc.video_processor.image_mean == pytest.approx(expected_mean)
    batch = proc(CONV, make_tiny_video())
    assert torch.isfinite(model(**batch).loss)
    gen = model.generate(**proc(CONV[:1], make_tiny_video(), add_generation_prompt=True), max_new_tokens=3)
    assert gen.shape[0] == 1 and 1 <= gen.shape[1] <= 3
