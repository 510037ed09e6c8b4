"""TrajVLMChat on a tiny generated video: ask, ask_stream, score, tokenize_video (both connectors)."""

from __future__ import annotations

import pytest
import torch

from trajvlm.chat import ChatDelta, ChatResponse, TrajVLMChat, VideoTokens
from trajvlm.model import IGNORE_INDEX
from trajvlm.video import load_video


@pytest.fixture(scope="module", params=["trajtok", "patch"])
def chat(request, tiny_trajvlm_dir, tiny_patch_dir):
    d = tiny_trajvlm_dir if request.param == "trajtok" else tiny_patch_dir
    return TrajVLMChat.from_pretrained(d, max_frames=8)


def test_ask_reports_tokens_and_timings(chat, tiny_video_path):
    r = chat.ask(tiny_video_path, "What moves?", max_new_tokens=5)
    assert isinstance(r, ChatResponse) and isinstance(r.text, str)
    assert r.num_patch_tokens == 8 * 4 * 4  # 8 frames, 8x8 conv grid pooled 2x2
    vt = r.video_tokens
    assert r.num_visual_tokens == vt.num_visual_tokens > 0
    if chat.model.config.connector == "trajtok":
        q = chat.model.config.trajtok_config.tokens_per_trajectory
        assert r.num_visual_tokens == r.num_trajectories * q <= chat.model.config.token_budget
    else:
        assert r.num_visual_tokens == r.num_patch_tokens and r.num_trajectories == 0
    assert set(r.timings) == {"decode_s", "encode_s", "generate_s"} and all(v >= 0 for v in r.timings.values())
    # the same answer from a decoded clip, and a text-only question works too
    clip = load_video(tiny_video_path, max_frames=8)
    assert chat.ask(clip, "What moves?", max_new_tokens=5).text == r.text
    text_only = chat.ask(None, "Say hi.", max_new_tokens=3)
    assert text_only.num_visual_tokens == 0 and text_only.video_tokens is None


def test_ask_stream_matches_ask(chat, tiny_video_path):
    history = [("<video>\nWhat moves?", "A red square.")]
    ref = chat.ask(tiny_video_path, "Which way?", history, max_new_tokens=6)
    deltas = list(chat.ask_stream(tiny_video_path, "Which way?", history, max_new_tokens=6))
    assert all(isinstance(d, ChatDelta) for d in deltas)
    final = deltas[-1].response
    assert final is not None and all(d.response is None for d in deltas[:-1])
    assert final.text == ref.text == "".join(d.text for d in deltas).strip()
    assert final.num_visual_tokens == ref.num_visual_tokens
    sampled = chat.ask(tiny_video_path, "What moves?", max_new_tokens=4, do_sample=True, temperature=0.8, top_p=0.9)
    assert isinstance(sampled.text, str)


def test_score_is_the_continuation_logprob(chat, tiny_video_path):
    logp, greedy = chat.score(tiny_video_path, "What colour is it?", "Red.")
    assert logp < 0 and isinstance(greedy, bool)
    # reference: the same sequence through forward, summed by hand
    proc, model = chat.processor, chat.model
    conv = [{"from": "human", "value": "<video>\nWhat colour is it?"}, {"from": "gpt", "value": "Red."}]
    tok = proc.tokenize_conversation(conv, num_videos=1, close_final=False, return_labels=True)
    sup = [i for i, x in enumerate(tok.labels) if x != IGNORE_INDEX]
    assert proc.decode([tok.input_ids[i] for i in sup]).strip() == "Red."  # no end-of-turn token scored
    batch = proc(conv, tiny_video_path, close_final=False)
    with torch.no_grad():
        out = model(**batch)
    lp = torch.log_softmax(out.logits[0, :-1], -1)
    tgt = out.labels[0, 1:]
    rows = (tgt != IGNORE_INDEX).nonzero().flatten()
    assert abs(float(lp[rows, tgt[rows]].sum()) - logp) < 1e-4
    assert greedy == bool((lp[rows].argmax(-1) == tgt[rows]).all())
    # the model's own greedy first token is, by definition, greedy (when it round-trips through text)
    first = int(model.generate(**proc(conv[:1], tiny_video_path, add_generation_prompt=True), max_new_tokens=1)[0, 0])
    piece = proc.decode([first]).strip()
    conv[1] = {"from": "gpt", "value": piece}
    tok = proc.tokenize_conversation(conv, num_videos=1, close_final=False, return_labels=True)
    if piece and [x for x in tok.labels if x != IGNORE_INDEX] == [first]:
        assert chat.score(tiny_video_path, "What colour is it?", piece)[1] is True


def test_tokenize_video_for_overlays(chat, tiny_video_path):
    vt = chat.tokenize_video(tiny_video_path)
    assert isinstance(vt, VideoTokens)
    assert vt.num_frames == 8 and vt.frames.shape == (8, 32, 32, 3) and vt.timestamps.shape == (8,)
    assert vt.grid == (8, 8) and vt.num_patch_tokens == 128
    if chat.model.config.connector == "trajtok":
        n = vt.num_trajectories
        assert vt.boxes.shape == (n, 8, 4) and vt.presence.shape == (n, 8) and vt.trajectory_ids.shape == (n,)
        assert vt.hard_ids.shape == (8, 8, 8)
        assert set(vt.trajectory_ids.tolist()) <= set(vt.hard_ids.flatten().tolist())
        assert vt.num_visual_tokens == n * vt.tokens_per_trajectory
    else:
        assert vt.hard_ids is None and vt.num_trajectories == 0
