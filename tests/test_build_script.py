"""scripts/build_default_model.sh end to end with tiny step counts: data -> segmenter -> parts -> text warm-up ->
stage 1 / stage 2 under the real `deepspeed` launcher -> held-out evaluation; then a second build reusing the
first one's segmenter and warmed-up Llama (PARTS=, SEGMENTER=). INSTALL=0: the shipped model is never touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trajvlm.testing import free_port

pytest.importorskip("deepspeed")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = {
    "NUM_VIDEOS": "20", "SEG_STEPS": "2", "SEG2_STEPS": "2", "TEXT_SCENES": "20", "TEXT_STEPS": "2", "TEXT2_SCENES": "10",
    "TEXT2_STEPS": "2", "STAGE1_STEPS": "2", "STAGE2_STEPS": "2", "BATCH": "2", "NUM_FRAMES": "8",
    "STAGE2_EXTRA_QA": "1", "INSTALL": "0",
}


def build(**knobs: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("ACCELERATE_USE_CPU", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(TINY, PY=sys.executable, DS=str(BIN / "deepspeed"), MASTER_PORT=str(free_port()), OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), **knobs)
    proc = subprocess.run(["bash", "scripts/build_default_model.sh"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_build_script_from_nothing_then_reusing_its_parts(tmp_path):
    first = tmp_path / "first"
    log = build(WORK=str(first), TEXT_PROBE_STEPS="2", TEXT_PROBE_RECORDS="6")
    for step in ("1/7", "2/7", "2b/7", "3/7", "3b/7", "3c/7", "4/7", "5/7", "6/7"):
        assert f"] {step} " in log, step
    # 2b trained the segmenter further on the same backbone, and the model was built on that segmenter
    tower = load_file(first / "segmenter" / "backbone" / "model.safetensors")
    tower_ft = load_file(first / "segmenter_ft" / "backbone" / "model.safetensors")
    assert tower.keys() == tower_ft.keys() and all(torch.equal(v, tower_ft[k]) for k, v in tower.items())
    seg_ft = load_file(first / "segmenter_ft" / "trajtok" / "trajtok.safetensors")
    built = load_file(first / "stage2" / "model.safetensors")
    assert all(torch.equal(built["connector." + k], v) for k, v in seg_ft.items() if k.startswith("segmenter."))
    assert "7/7 install" not in log
    data = first / "shapesqa"
    result = json.loads((first / "eval_test.json").read_text())
    assert result["total"] == len(json.loads((data / "test_qa.json").read_text())) > 0
    processor = json.loads((first / "stage2" / "trajvlm_processor_config.json").read_text())
    assert processor["num_frames"] == 8  # what the stages trained with
    trajtok = json.loads((first / "stage2" / "config.json").read_text())["trajtok_config"]
    assert trajtok["split_components"] is True and trajtok["roi_size"] == 4  # the recipe's TrajTok knobs
    sft = json.loads((data / "train_sft.json").read_text())
    extra = [r for r in sft if "_x0q" in r["id"]]  # STAGE2_EXTRA_QA=1: one more question draw per train video
    assert extra and len(sft) == len(json.loads((data / "train_qa.json").read_text())) + len(extra)
    assert {"text_warmup_phase1.json", "text_warmup_phase2.json"} <= set(os.listdir(first / "parts" / "llm"))
    phase1 = json.loads((first / "parts" / "llm" / "text_warmup_phase1.json").read_text())
    assert phase1["probe"]["steps"] == 2  # TEXT_PROBE_STEPS reached phase 1 (phase 2 never runs the probe)
    assert "probe" not in json.loads((first / "parts" / "llm" / "text_warmup_phase2.json").read_text())

    second = tmp_path / "second"
    warmed = (first / "parts" / "llm" / "model.safetensors").read_bytes()
    log = build(WORK=str(second), PARTS=str(first / "parts"), SEGMENTER=str(first / "segmenter"), SPLIT_COMPONENTS="0")
    for skipped in ("2/7", "2b/7", "3b/7", "3c/7"):
        assert f"] {skipped} " not in log, skipped
    assert "] 3/7 " in log and (second / "shapesqa" / "train_sft.json").is_file()
    assert not (second / "parts").exists() and not (second / "segmenter").exists()
    assert (first / "parts" / "llm" / "model.safetensors").read_bytes() == warmed  # reused, not retrained
    assert (second / "stage2" / "model.safetensors").is_file() and (second / "eval_test.json").is_file()
    assert json.loads((second / "stage2" / "config.json").read_text())["trajtok_config"]["split_components"] is False
