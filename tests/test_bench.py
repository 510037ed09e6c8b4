"""Benchmarks: each runs end to end on a tiny setting and writes well-formed output (timings are never asserted),
plus the pieces they are built from (benchmark videos, classical tracker, patch twin, recorded command)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trajvlm.eval.bench import videos

ROOT = Path(__file__).resolve().parents[1]


def _table(text: str) -> list[list[str]]:
    """The first markdown table of `text` as rows of cells; checks every row has the header's width."""
    lines, started = [], False
    for line in text.splitlines():
        if line.startswith("|"):
            lines.append(line)
            started = True
        elif started:
            break
    assert len(lines) >= 3, text
    widths = {line.count("|") for line in lines}
    assert len(widths) == 1, lines
    assert set(lines[1].replace("|", "").replace("-", "").replace(":", "").strip()) == set()
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def _record_ok(text: str, prog: str) -> None:
    assert f"OMP_NUM_THREADS=1 {prog}" in text
    assert "load average" in text and "torch threads: 1" in text


# ---- videos --------------------------------------------------------------------------------------------------
def test_static_scene_objects_do_not_move():
    frames, masks, graph = videos.static_scene(40, size=32)
    assert frames.shape == (40, 32, 32, 3) and frames.dtype == np.uint8
    assert (masks == masks[0]).all() and masks[0].max() >= 1
    assert (graph > 0).all()  # every object visible in every frame


def test_busy_scene_and_bbb_lengths():
    busy = videos.busy_scene(70, size=32)
    assert busy.shape == (70, 32, 32, 3)
    assert not np.array_equal(busy[31], busy[32])  # a cut between two scenes
    bbb = videos.bigbuckbunny(300, size=32)
    assert bbb.shape == (300, 32, 32, 3) and bbb.std() > 5
    with pytest.raises(videos.BenchVideoError):
        videos.make_video("nope", 8)
    with pytest.raises(videos.BenchVideoError):
        videos.make_video("static", 0)


def test_shapesqa_val_examples_are_val():
    from trajvlm.data.synthetic import split_of

    ex = videos.shapesqa_val_examples(2, size=32)
    assert len(ex) == 2 and all(split_of(0, e.index, (0.8, 0.1, 0.1)) == "val" for e in ex)
    assert ex[0].masks.shape[0] == ex[0].frames.shape[0]


# ---- building blocks -----------------------------------------------------------------------------------------
def test_classical_tracker_follows_a_moving_square():
    from trajvlm.eval.bench.segmenter_vs_classical import ClassicalParams, classical_track
    from trajvlm.testing import make_tiny_video

    frames = make_tiny_video(num_frames=6, size=32)  # a red 8x8 square moving right over a gradient
    ids = classical_track(frames, ClassicalParams(method="felzenszwalb", fz_scale=50, fz_min_size=8))
    assert ids.shape == (6, 32, 32)
    red = (frames[..., 0] > 200) & (frames[..., 1] < 80)
    square_ids = [np.bincount(ids[t][red[t]]).argmax() for t in range(6)]
    assert len(set(square_ids)) == 1  # one track for the square over the whole clip


def test_patch_twin_shares_weights_and_keeps_attention(tiny_trajvlm_dir):
    from trajvlm.eval.bench.common import load_bench_model, patch_twin

    bm = load_bench_model(tiny_trajvlm_dir)
    impl = bm.model.language_model.config._attn_implementation
    twin = patch_twin(bm.model)
    assert twin.config.connector == "patch"
    assert twin.language_model is bm.model.language_model
    assert twin.language_model.config._attn_implementation == impl == "sdpa"
    copy = patch_twin(bm.model, share=False)
    assert copy.language_model is not bm.model.language_model
    x = torch.zeros(1, 3, 3, 32, 32)
    with torch.no_grad():
        enc = twin.encode_video(x)
    assert enc.num_tokens == [3 * 4 * 4]


def test_canonical_command_round_trip(tmp_path):
    from trajvlm.eval.bench.args import build_parser, canonical_command

    p = build_parser("tokens", "trajvlm bench tokens")
    argv = ["--frames", "8", "16", "--videos", "static", "--out", str(tmp_path / "a b.md")]
    args = p.parse_args(argv)
    cmd = canonical_command(p, args)
    assert cmd.startswith("OMP_NUM_THREADS=1 trajvlm bench tokens --frames 8 16 --videos static --out ")
    import shlex

    again = p.parse_args(shlex.split(cmd)[4:])  # drop "OMP_NUM_THREADS=1 trajvlm bench tokens"
    assert vars(again) == vars(args)


def test_missing_model_is_a_clear_error(monkeypatch):
    from trajvlm.eval.bench import common

    monkeypatch.setattr(common, "DEFAULT_MODEL_DIR", Path("/nonexistent/default_model"))
    with pytest.raises(common.BenchSetupError, match="--segmenter"):
        common.load_bench_model(None, None)


# ---- the benchmarks, tiny settings ---------------------------------------------------------------------------
def test_bench_tokens(tiny_trajvlm_dir, tmp_path, capsys):
    from trajvlm.cli import main

    md, png, js = tmp_path / "t.md", tmp_path / "t.png", tmp_path / "t.json"
    assert main(["bench", "tokens", "--model", str(tiny_trajvlm_dir), "--frames", "8", "64", "--videos", "static",
                 "bbb", "--out", str(md), "--plot", str(png), "--json", str(js)]) == 0
    text = md.read_text()
    _record_ok(text, "trajvlm bench tokens")
    rows = _table(text)
    assert len(rows) == 4 and "Targets" in text and "t.png" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    raw = json.loads(js.read_text())
    for r in raw:  # tiny model: 32 px frames -> 8x8 grid, pooled 4x4; K=4, q=2, budget 64
        assert r["patch_full"] == r["frames"] * 64 and r["patch_pooled"] == r["frames"] * 16
        assert r["fixed_k_tokens"] == 8
        assert 0 < r["budget_tokens"] <= 64 and r["budget_tokens"] == 2 * r["budget_trajectories"]
    assert _table(capsys.readouterr().out)


def test_bench_latency(tiny_trajvlm_dir, tmp_path):
    from trajvlm.eval.bench.latency import main

    md, js = tmp_path / "lat.md", tmp_path / "lat.json"
    assert main(["--model", str(tiny_trajvlm_dir), "--frames", "8", "--repeats", "1", "--out", str(md),
                 "--json", str(js)], prog="python eval/bench_latency.py") == 0
    text = md.read_text()
    _record_ok(text, "python eval/bench_latency.py")
    rows = _table(text)
    assert [r[1] for r in rows] == ["trajvlm", "patch"]
    raw = json.loads(js.read_text())
    assert {r["variant"] for r in raw} == {"trajvlm", "patch"}
    for r in raw:
        assert r["ttft_s"] > 0 and r["peak_rss_mb"] >= r["rss_before_mb"] > 0
    assert {r["variant"]: r["visual_tokens"] for r in raw}["patch"] == 8 * 16


def test_bench_train(tiny_trajvlm_dir, tmp_path):
    from trajvlm.cli import main

    md, js = tmp_path / "train.md", tmp_path / "train.json"
    assert main(["bench", "train", "--model", str(tiny_trajvlm_dir), "--frames", "8", "--batch", "2", "--steps", "1",
                 "--warmup", "0", "--seg-loss", "--out", str(md), "--json", str(js)]) == 0
    text = md.read_text()
    _record_ok(text, "trajvlm bench train")
    assert len(_table(text)) == 2
    raw = json.loads(js.read_text())
    assert [r["variant"] for r in raw] == ["trajvlm", "patch"]
    assert all(r["samples_per_s"] > 0 and np.isfinite(r["losses"]).all() for r in raw)


def test_bench_segmenter(tiny_trajvlm_dir, tmp_path):
    from trajvlm.cli import main

    md, js = tmp_path / "seg.md", tmp_path / "seg.json"
    assert main(["bench", "segmenter", "--model", str(tiny_trajvlm_dir), "--num-videos", "1", "--repeats", "1",
                 "--bbb-frames", "8", "--out", str(md), "--json", str(js)]) == 0
    text = md.read_text()
    _record_ok(text, "trajvlm bench segmenter")
    rows = _table(text)
    assert [r[0] for r in rows] == ["TrajTok (trained)", "felzenszwalb + Farneback", "SLIC + Farneback"]
    raw = json.loads(js.read_text())
    v = raw["videos"][0]
    for k in ("trajtok", "felzenszwalb", "slic"):
        assert 0.0 <= v[k]["miou_grid"] <= 1.0
    assert set(raw["speed"]) == {"shapesqa", "bbb"}


@pytest.mark.parametrize("script", ["bench_efficiency", "bench_tokens", "bench_latency", "bench_train_throughput",
                                    "bench_segmenter_vs_classical"])
def test_eval_scripts_entry_points(script):
    out = subprocess.run([sys.executable, str(ROOT / "eval" / f"{script}.py"), "--help"], capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert f"python eval/{script}.py" in out.stdout


def test_bench_train_bf16_variant(tiny_trajvlm_dir, tmp_path):
    """--bf16 times a bfloat16 copy of the TrajVLM next to float32 and reports their ratio (the float32 model is not
    cast: its row and the patch row are as without the flag)."""
    from trajvlm.cli import main

    md, js = tmp_path / "train.md", tmp_path / "train.json"
    assert main(["bench", "train", "--model", str(tiny_trajvlm_dir), "--frames", "8", "--batch", "2", "--steps", "2",
                 "--warmup", "0", "--bf16", "--out", str(md), "--json", str(js)]) == 0
    raw = json.loads(js.read_text())
    assert [r["variant"] for r in raw] == ["trajvlm", "trajvlm_bf16", "patch"]
    assert all(r["samples_per_s"] > 0 and np.isfinite(r["losses"]).all() for r in raw)
    rows = _table(md.read_text())
    assert len(rows) == 3
    by = {r["variant"]: r for r in raw}
    assert rows[1][-1] == f"{by['trajvlm_bf16']['samples_per_s'] / by['trajvlm']['samples_per_s']:.2f}x"
    assert rows[0][-1] == "" and rows[2][-1] == ""
