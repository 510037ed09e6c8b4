"""trajvlm.train.lookup_probe: look-alike lookup on ideal object vectors, the model's LLM beside a fresh one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from trajvlm.data.synthetic.scene import DIRECTIONS
from trajvlm.testing import build_tiny_llama
from trajvlm.train.lookalike_scenes import probe_record, probe_records, probe_scene
from trajvlm.train.lookup_probe import fresh_like, main, run_probe

SHIPPED = Path(__file__).resolve().parents[1] / "trajvlm" / "assets" / "default_model"


@pytest.fixture(scope="module")
def processor():
    from trajvlm.model.processing_trajvlm import TrajVLMProcessor

    return TrajVLMProcessor.from_pretrained(SHIPPED)


def test_probe_scenes_share_a_colour_exactly_when_asked():
    rng = random.Random(0)
    for lookalike in (True, False) * 200:
        objects, t = probe_scene(rng, lookalike)
        assert 2 <= len(objects) <= 5
        assert len({(c, s) for c, s, _ in objects}) == len(objects)  # colour + shape names one object
        colours = [c for c, _, _ in objects]
        same = [i for i, c in enumerate(colours) if c == colours[t] and i != t]
        if lookalike:
            assert len(same) == 1  # exactly one same-coloured neighbour: only the shape tells them apart
        else:
            assert len(set(colours)) == len(colours)


def test_probe_record_asks_the_targets_direction():
    rng = random.Random(1)
    for i in range(100):
        lookalike = i % 2 == 0
        r = probe_record(rng, lookalike, i)
        prompt, answer = (t["value"] for t in r["conversations"])
        asked = [o for o in r["objects"] if f"does the {o[0]} {o[1]} move?" in prompt]
        assert len(asked) == 1
        assert answer == f" {asked[0][2]}"
        assert sorted(line.split(". ", 1)[1] for line in prompt.splitlines() if line[:3] in ("A. ", "B. ", "C. ", "D. ")) \
            == sorted(DIRECTIONS)
        assert prompt.startswith("<video>\n") and r["category"] == ("lookalike" if lookalike else "other")
    share = [r["category"] for r in probe_records(400, random.Random(2), 0.25)].count("lookalike") / 400
    assert 0.18 < share < 0.32
    with pytest.raises(ValueError, match="lookalike_fraction"):
        probe_records(4, random.Random(0), 1.5)


def test_run_probe_trains_the_model_and_a_fresh_copy_on_the_same_batches(processor):
    lm = build_tiny_llama(processor.tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0)
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    res = run_probe(lm, processor, steps=3, lr=1e-3, batch_size=4, eval_every=2, eval_samples=16, log=lambda s: None)
    assert [(r["step"], r["arm"]) for r in res["rows"]] == [(s, a) for s in (0, 2, 3) for a in ("model", "fresh")]
    assert all(0.0 <= r[k] <= 1.0 for r in res["rows"] for k in ("lookalike", "other"))
    assert any(not torch.equal(before[k], v) for k, v in lm.state_dict().items())  # the model arm trained in place

    lm2 = build_tiny_llama(processor.tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0)
    run_probe(lm2, processor, steps=2, lr=1e-3, batch_size=4, eval_every=2, eval_samples=8, arms=("fresh",),
              log=lambda s: None)
    assert all(torch.equal(before[k], v) for k, v in lm2.state_dict().items())  # the fresh arm is a copy of its own
    with pytest.raises(ValueError, match="arms"):
        run_probe(lm2, processor, steps=1, lr=1e-3, arms=("shipped",))
    with pytest.raises(ValueError, match=">= 1"):
        run_probe(lm2, processor, steps=0, lr=1e-3)


def test_fresh_blocks_keep_only_the_embeddings(processor):
    lm = build_tiny_llama(processor.tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=3)
    for keep in (False, True):
        new = fresh_like(lm, 0, keep_embeddings=keep)
        same = {k for k, v in new.state_dict().items() if torch.equal(v, lm.state_dict()[k])}
        embeddings = {"model.embed_tokens.weight", "lm_head.weight"}
        assert embeddings <= same if keep else not embeddings & same
        blocks = [k for k in lm.state_dict() if ".layers." in k and "proj" in k]
        assert blocks and not any(k in same for k in blocks)  # every projection drawn anew
        assert new.config.to_dict() == lm.config.to_dict()


def test_run_probe_puts_the_mix_records_into_the_batches(processor):
    lm = build_tiny_llama(processor.tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0)
    good = probe_records(3, random.Random(5))
    bad = [dict(good[0], id="empty", objects=[])]  # TextBatcher refuses it: only a batch that takes it fails
    with pytest.raises(ValueError, match="at least one object"):
        run_probe(lm, processor, steps=1, lr=1e-3, batch_size=4, eval_samples=4, arms=("fresh",), mix=bad,
                  mix_share=1, log=lambda s: None)
    res = run_probe(lm, processor, steps=1, lr=1e-3, batch_size=4, eval_samples=4, arms=("fresh",), mix=good,
                    mix_share=3, log=lambda s: None)
    assert res["mix_share"] == 3
    for share, mix in ((1, None), (4, good), (-1, good)):
        with pytest.raises(ValueError, match="mix_share"):
            run_probe(lm, processor, steps=1, lr=1e-3, batch_size=4, arms=("fresh",), mix=mix, mix_share=share)


def test_cli_on_the_shipped_model_tells_the_kinds_apart(tmp_path, capsys):
    out, js = tmp_path / "probe.md", tmp_path / "probe.json"
    assert main(["--model", str(SHIPPED), "--arms", "model", "fresh", "--steps", "1", "--batch-size", "2",
                 "--eval-samples", "48", "--out", str(out), "--json", str(js)]) == 0
    rows = json.loads(js.read_text())["rows"]
    start = {r["arm"]: r for r in rows if r["step"] == 0}
    # the shipped Llama (session 22: taught the lookup first, `text_warmup --probe-steps`) finds an object by its
    # colour and one of two same-coloured objects by its shape (the session-13 Llama: look-alike below 90 %,
    # eval/results/default_model.md sessions 16-18); a fresh Llama of its shape finds neither
    assert start["model"]["other"] == 1.0 and start["model"]["lookalike"] >= 0.85
    assert start["fresh"]["other"] < 0.6 and start["fresh"]["lookalike"] < 0.6
    assert "| step | model: look-alike | model: other | fresh: look-alike | fresh: other |" in out.read_text()
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path), "--steps", "1"])
    assert "no config.json" in capsys.readouterr().err
    for bad, message in ((["--steps", "0"], "--steps must be >= 1"),
                         (["--lookalike-fraction", "2"], "--lookalike-fraction must be in [0, 1]"),
                         (["--mix-data", str(tmp_path), "--mix-share", "32"], "--mix-share must be in")):
        with pytest.raises(SystemExit):
            main(["--model", str(SHIPPED), *bad])
        assert message in capsys.readouterr().err


def test_cli_mixes_shapesqa_questions_in(tmp_path):
    from trajvlm.data.synthetic.__main__ import main as synth_main

    data = tmp_path / "shapesqa"
    synth_main(["--out", str(data), "--num-videos", "4", "--seed", "3", "--quiet"])
    out = tmp_path / "probe.md"
    assert main(["--model", str(SHIPPED), "--arms", "fresh", "--steps", "1", "--batch-size", "3", "--eval-samples",
                 "4", "--mix-data", str(data), "--mix-share", "2", "--mix-scenes", "3", "--out", str(out)]) == 0
    assert "batch 3 (2 of them --mix-data records)" in out.read_text()
