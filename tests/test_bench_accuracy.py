"""`trajvlm bench accuracy`: two tiny models (TrajTok and patch connector) through the real lmms-eval CLI on a
tiny ShapesQA set; the record and JSON are well-formed and every number follows from lmms-eval's logged samples
(accuracies are never asserted: the models are random)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench import ROOT, _record_ok, _table

from trajvlm.data.synthetic.questions import CATEGORIES


@pytest.fixture(scope="module")
def shapesqa_dir(tmp_path_factory):
    from trajvlm.data.synthetic.__main__ import main

    out = tmp_path_factory.mktemp("shapesqa")
    assert main(["--out", str(out), "--num-videos", "6", "--seed", "0", "--frames", "8", "--needle-frames", "20",
                 "--splits", "0.5,0,0.5", "--max-objects", "3", "--quiet"]) == 0
    return out


def _summary(path: Path, stage: str, wall: float, steps: int) -> Path:
    path.write_text(json.dumps({"stage": stage, "wall_seconds": wall, "global_step": steps, "train_loss": 1.0}))
    return path


def _recount(samples_file: str, docs: list[dict], task: str) -> dict[str, list[int]]:
    """{category: [correct, total]} straight from lmms-eval's samples file and the data's categories."""
    counts = {c: [0, 0] for c in (*CATEGORIES, "overall")}
    for line in Path(samples_file).read_text().splitlines():
        s = json.loads(line)
        for cat in (docs[s["doc_id"]]["category"], "overall"):
            counts[cat][0] += int(s[f"{task}_acc"])
            counts[cat][1] += 1
    return counts


@pytest.mark.parametrize("task,limit", [("shapesqa", 5), ("shapesqa_mc", 8)])
def test_bench_accuracy_tiny(task, limit, tiny_trajvlm_dir, tiny_patch_dir, shapesqa_dir, tmp_path, monkeypatch,
                             capsys):
    """Generation (the default task) and letter log-likelihood (random tiny models: some answers are right)."""
    from trajvlm.cli import main

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))
    md, js, work = tmp_path / "acc.md", tmp_path / "acc.json", tmp_path / "work"
    t1, t2 = _summary(tmp_path / "t1.json", "pretrain", 100.0, 10), _summary(tmp_path / "t2.json", "finetune", 260.0, 30)
    p1 = _summary(tmp_path / "p1.json", "finetune", 360.0, 8)
    assert main(["bench", "accuracy", "--model", str(tiny_trajvlm_dir), "--baseline", str(tiny_patch_dir),
                 "--data", str(shapesqa_dir), "--max-frames", "8", "--limit", str(limit), "--task", task,
                 "--model-train-summary", str(t1), str(t2), "--baseline-train-summary", str(p1),
                 "--work", str(work), "--out", str(md), "--json", str(js)]) == 0
    stdout = capsys.readouterr().out
    text = md.read_text()
    _record_ok(text, "trajvlm bench accuracy")
    raw = json.loads(js.read_text())
    docs = json.loads((shapesqa_dir / "test_qa.json").read_text())
    assert raw["task"] == task and raw["limit"] == limit and set(raw["variants"]) == {"trajvlm", "patch"}

    rows = _table(text)
    assert [r[0] for r in rows] == [*CATEGORIES, "**overall**"]
    assert _table(stdout) == rows
    acc = {}
    for variant, column in (("trajvlm", 2), ("patch", 3)):
        v = raw["variants"][variant]
        assert v["connector"] == {"trajvlm": "trajtok", "patch": "patch"}[variant]
        recount = _recount(v["samples_file"], docs, task)
        assert recount["overall"][1] == limit
        lmms = json.loads(Path(v["results_file"]).read_text())["results"][task]
        assert lmms[f"{task}_acc,none"] == pytest.approx(100.0 * recount["overall"][0] / limit)
        assert [r["doc_id"] for r in v["records"]] == list(range(limit))
        for r in v["records"]:
            assert r["id"] == docs[r["doc_id"]]["id"] and r["category"] == docs[r["doc_id"]]["category"]
        for row in rows:
            cat = row[0].strip("*")
            correct, total = recount[cat]
            assert [v["counts"][cat]["correct"], v["counts"][cat]["total"]] == [correct, total]
            assert int(row[1]) == total
            if total:
                acc[variant, cat] = 100.0 * correct / total
                assert row[column] == f"{acc[variant, cat]:.2f} ({correct}/{total})"
                assert lmms[f"{task}_{cat}_acc,none" if cat != "overall" else f"{task}_acc,none"] == pytest.approx(
                    acc[variant, cat])
            else:
                assert row[column] == "-" and cat not in [d["category"] for d in docs[:limit]]
    for row in rows:
        cat = row[0].strip("*")
        if ("trajvlm", cat) in acc:
            diff = acc["trajvlm", cat] - acc["patch", cat]
            assert row[4] == f"{diff:+.2f}" and raw["difference_points"][cat] == pytest.approx(diff)
    behind = [c for c in CATEGORIES if ("trajvlm", c) in acc and acc["trajvlm", c] < acc["patch", c]]
    assert raw["target_met"] is (not behind)
    assert ("Target (TrajVLM >= patch on every category): **met" in text) is (not behind)
    # training side by side: stages summed, ratio of the sums
    assert "| wall-clock | 360 s (0.10 h) | 360 s (0.10 h) | 1.00 |" in text
    assert "| optimizer steps | 40 | 8 | 5.00 |" in text
    assert raw["train"]["trajvlm"]["global_step"] == 40 and "Smoke run" in text
    assert "TRAJVLM_SHAPESQA_DIR=" in text and "--include_path" in text


def test_wrong_connector_is_a_clear_error(tiny_trajvlm_dir, tiny_patch_dir, shapesqa_dir, capsys):
    from trajvlm.eval.bench.accuracy import main

    # --model and --baseline swapped: refused before lmms-eval runs
    assert main(["--model", str(tiny_patch_dir), "--baseline", str(tiny_trajvlm_dir), "--data", str(shapesqa_dir)]) == 1
    assert "connector='patch'; expected 'trajtok'" in capsys.readouterr().err


def test_samples_that_disagree_with_the_data_are_refused(tmp_path):
    from trajvlm.eval.bench.accuracy import BenchSetupError, question_records

    docs = [{"id": "v0_q0", "category": "counting", "answer": "B"}]
    path = tmp_path / "x_samples_shapesqa.jsonl"
    with pytest.raises(BenchSetupError, match="logged no samples"):
        question_records(path, "shapesqa", docs)
    good = {"doc_id": 0, "target": "B", "filtered_resps": "B", "shapesqa_acc": 1.0, "shapesqa_counting_acc": 1.0}
    path.write_text(json.dumps(good) + "\n")
    assert question_records(path, "shapesqa", docs)[0]["correct"] is True
    for bad in ({"shapesqa_attribute_acc": 1.0, "shapesqa_counting_acc": None}, {"target": "C"}, {"doc_id": 3}):
        path.write_text(json.dumps({**good, **bad}) + "\n")
        with pytest.raises(BenchSetupError):
            question_records(path, "shapesqa", docs)


def test_eval_script_entry_point():
    out = subprocess.run([sys.executable, str(ROOT / "eval" / "bench_accuracy.py"), "--help"], capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert "python eval/bench_accuracy.py" in out.stdout
