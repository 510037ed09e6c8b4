"""TrajVLMChat on a tiny generated video: ask, ask_stream (token by token), score, tokenize_video, per-request
token budgets (both connectors)."""

from __future__ import annotations

import pytest
import torch

from trajvlm.chat import ChatDelta, ChatResponse, IncrementalDecoder, TrajVLMChat, VideoTokens
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
    assert final is not None and all(d.response is None for d in deltas[:-1]) and deltas[-1].text == ""
    assert final.text == ref.text == "".join(d.text for d in deltas)  # exactly, greedy
    assert final.num_visual_tokens == ref.num_visual_tokens
    sampled = chat.ask(tiny_video_path, "What moves?", max_new_tokens=4, do_sample=True, temperature=0.8, top_p=0.9)
    assert isinstance(sampled.text, str)


def test_ask_stream_yields_token_by_token(chat, tiny_video_path):
    """Not word by word: the untrained tiny LM emits no spaces, so a word-level streamer sends one piece."""
    ref = chat.ask(tiny_video_path, "What moves?", max_new_tokens=8)
    tokens = chat.processor.tokenizer(ref.text, add_special_tokens=False).input_ids
    assert len(tokens) >= 2, f"the tiny model's answer {ref.text!r} should be several tokens long"
    pieces = [d.text for d in chat.ask_stream(tiny_video_path, "What moves?", max_new_tokens=8) if d.text]
    assert len(pieces) >= 2, pieces
    assert "".join(pieces) == ref.text


def test_incremental_decoder_streams_each_character_when_complete(tiny_tokenizer_dir):
    """Byte-fallback pieces of multi-byte characters are held back until the character is whole; spaces
    between sentencepiece words come out right; the pieces join to the stripped full decode."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    text = "Größe → 東京 ok"
    ids = tok(text, add_special_tokens=False).input_ids
    assert len(ids) > len(text.split())  # several byte pieces per character: the case under test
    dec = IncrementalDecoder(lambda i: tok.decode(i, skip_special_tokens=True))
    pieces = [dec.push([i]) for i in ids]
    pieces.append(dec.finish())
    assert "".join(pieces) == tok.decode(ids, skip_special_tokens=True).strip() == text
    assert [p for p in pieces if p] == ["G", "r", "ö", "ß", "e", " →", " 東", "京", " o", "k"]
    # a byte sequence that never completes is flushed at the end, not lost
    dec = IncrementalDecoder(lambda i: tok.decode(i, skip_special_tokens=True))
    partial = tok("ok", add_special_tokens=False).input_ids + tok.convert_tokens_to_ids(["<0xE6>", "<0x9D>"])
    assert "".join(dec.push([i]) for i in partial) == "ok"  # 2 of the 3 bytes of 東: held back
    assert dec.finish() == "\ufffd\ufffd" and dec.sent == tok.decode(partial) == "ok\ufffd\ufffd"


def test_token_budget_per_request(chat, tiny_video_path):
    default = chat.tokenize_video(tiny_video_path)
    small = chat.tokenize_video(tiny_video_path, token_budget=4)
    r = chat.ask(tiny_video_path, "What moves?", max_new_tokens=2, token_budget=4)
    final = list(chat.ask_stream(tiny_video_path, "What moves?", max_new_tokens=2, token_budget=4))[-1].response
    if chat.model.config.connector == "trajtok":
        q = chat.model.config.trajtok_config.tokens_per_trajectory
        assert default.num_visual_tokens > 4, "the default budget should allow more than the small one"
        assert small.num_visual_tokens <= 4 and small.num_visual_tokens == small.num_trajectories * q
        assert r.num_visual_tokens == final.num_visual_tokens == small.num_visual_tokens
        assert r.video_tokens.num_trajectories == small.num_trajectories
        # score encodes with the request's budget too: fewer visual tokens, a different log-prob
        assert chat.score(tiny_video_path, "What?", " Red.", token_budget=4) != chat.score(tiny_video_path, "What?", " Red.")
    else:  # the patch connector's token count does not depend on a budget
        assert small.num_visual_tokens == default.num_visual_tokens == r.num_visual_tokens == default.num_patch_tokens
    assert chat.token_budget is None  # per request: the chat's own default is untouched
    assert chat.tokenize_video(tiny_video_path).num_visual_tokens == default.num_visual_tokens
    assert chat.resolve_token_budget() == chat.model.config.token_budget and chat.resolve_token_budget(4) == 4


@pytest.mark.parametrize("bad", [0, -3, 2.5, "8", True, None])
def test_bad_token_budget_is_a_clear_value_error(chat, tiny_video_path, bad):
    calls = {
        "ask": lambda b: chat.ask(tiny_video_path, "What moves?", max_new_tokens=1, token_budget=b),
        "ask_stream": lambda b: next(chat.ask_stream(tiny_video_path, "What moves?", max_new_tokens=1, token_budget=b)),
        "ask (text only)": lambda b: chat.ask(None, "Hi.", max_new_tokens=1, token_budget=b),
        "score": lambda b: chat.score(tiny_video_path, "What?", " Red.", token_budget=b),
        "tokenize_video": lambda b: chat.tokenize_video(tiny_video_path, token_budget=b),
    }
    if bad is None:  # None is the default, not an error: the chat's own default is checked when it is made
        with pytest.raises(ValueError, match=r"token_budget must be a whole number >= 1.*got 0"):
            TrajVLMChat(chat.model, chat.processor, token_budget=0)
        return
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"token_budget must be a whole number >= 1") as info:
            call(bad)
        assert repr(bad) in str(info.value), (name, str(info.value))


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
