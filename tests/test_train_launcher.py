"""The real launcher path: `deepspeed scripts/{pretrain,finetune}_trajvlm.py` on a tiny model and a few ShapesQA
videos. Seven launcher runs (each 15-25 s on an idle machine):

1. pretrain, 1 process, ZeRO-2, a corrupt video in the data: frozen parts bit-identical, connector trained,
   segmentation loss logged, the bad sample skipped and counted;
2. finetune, 2 processes, ZeRO-3, per-module LRs, checkpoints every 2 steps;
3. the same command again after removing the last checkpoint: auto-resume gives the same losses;
   then zero_to_fp32 of the checkpoint == the saved model, from_pretrained + generate;
4. finetune with LoRA and the option loss, 1 process, ZeRO-2: merged model loads;
5. too many corrupt videos: the run stops with TooManyBadSamplesError;
6. finetune in bf16, 1 process, ZeRO-2 and ZeRO-3 (two runs), frozen tower + segmenter, a track cache folder: the
   tracks come from float32 copies (the float32 model's cache folder, float32 pixels' keys) and the saved frozen
   parts are the float32 originals.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trajvlm.testing import free_port

pytest.importorskip("deepspeed")
pytest.importorskip("peft")

REPO = Path(__file__).resolve().parents[1]
DEEPSPEED = Path(sys.executable).parent / "deepspeed"
NUM_FRAMES = "4"


def launch(script: str, args: list[str], *, nproc: int = 1, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [str(DEEPSPEED)]
    if nproc > 1:
        cmd += ["--num_gpus", str(nproc)]
    cmd += ["--master_port", str(free_port()), str(REPO / "scripts" / script), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("ACCELERATE_USE_CPU", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def check(proc: subprocess.CompletedProcess) -> None:
    if proc.returncode != 0:
        raise AssertionError(f"launcher exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}\n"
                             f"--- stderr ---\n{proc.stderr[-6000:]}")


def summary(out: Path) -> dict:
    return json.loads((out / "train_summary.json").read_text())


def losses(s: dict) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in s["log_history"] if "loss" in h}


def load_st(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Tiny parts on disk, a few ShapesQA videos, data files with and without corrupt videos."""
    from trajvlm.data.synthetic.generate import generate_dataset
    from trajvlm.testing import build_tiny_conv, build_tiny_llama, build_tiny_tokenizer, tiny_trajtok_config

    root = tmp_path_factory.mktemp("train_launcher")
    data = root / "shapesqa"
    generate_dataset(data, 10, 0, size=32, frames=8, needle_frames=20, needle_fraction=0.0)
    tok = build_tiny_tokenizer()
    build_tiny_llama(tok, root / "parts" / "llm")
    build_tiny_conv(root / "parts" / "vision")
    cfg = tiny_trajtok_config().to_dict()
    fields = ("hidden_dim", "num_queries", "segmenter_depth", "num_heads", "tokens_per_trajectory",
              "encoder_depth", "frames_per_chunk", "refine_layers", "num_pos_freqs")
    (root / "parts" / "trajtok.json").write_text(json.dumps({k: cfg[k] for k in fields}))

    (data / "videos" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 4)

    def corrupt(i: int) -> dict:
        return {"id": f"corrupt{i}", "video": "videos/corrupt.mp4",
                "conversations": [{"from": "human", "value": "<video>\nDescribe the video."},
                                  {"from": "gpt", "value": "Nothing."}]}

    captions = json.loads((data / "train_captions.json").read_text())
    (root / "captions_1bad.json").write_text(json.dumps(captions[:3] + [corrupt(0)]))
    qa = json.loads((data / "train_qa.json").read_text())
    (root / "qa.json").write_text(json.dumps(qa[:8]))
    (root / "qa_2bad.json").write_text(json.dumps([qa[0], corrupt(0), qa[1], corrupt(1)]))
    return root


@pytest.fixture(scope="module")
def stage1(work):
    """Launcher run 1: pretrain under ZeRO-2 (1 process) with a corrupt video among 4 samples."""
    out = work / "stage1"
    proc = launch("pretrain_trajvlm.py", [
        "--deepspeed", str(REPO / "scripts" / "zero2.json"),
        "--vision_tower", str(work / "parts" / "vision"), "--llm", str(work / "parts" / "llm"),
        "--trajtok_config", str(work / "parts" / "trajtok.json"),
        "--data_path", str(work / "captions_1bad.json"), "--video_folder", str(work / "shapesqa"),
        "--num_frames", NUM_FRAMES, "--output_dir", str(out),
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--logging_steps", "1", "--save_strategy", "no",
        "--connector_lr", "5e-3", "--learning_rate", "1e-4", "--seg_loss_weight", "0.5",
        "--max_bad_sample_ratio", "0.5", "--bad_sample_min_samples", "1",
    ])
    check(proc)
    return out


def test_pretrain_freezes_vision_and_llm(work, stage1):
    from trajvlm.model import from_parts

    s = summary(stage1)
    assert s["deepspeed"].endswith("zero2.json") and s["global_step"] == 2
    # the corrupt video was skipped and counted, not replaced
    assert s["bad_samples"] == 1 and s["samples_seen"] == 4
    assert any("seg_loss" in h for h in s["log_history"])

    groups = json.loads((stage1 / "param_groups.json").read_text())
    assert {g["name"].split("/")[0] for g in groups["groups"]} == {"connector"}
    assert all(g["lr"] == 5e-3 for g in groups["groups"])
    assert groups["trainable_per_part"]["vision"] == 0 and groups["trainable_per_part"]["llm"] == 0

    # reference = the same assembly, untrained (the frozen parts are loaded, not initialised)
    ref, _ = from_parts(work / "parts" / "vision", work / "parts" / "llm",
                        trajtok_config=json.loads((work / "parts" / "trajtok.json").read_text()))
    ref_sd = ref.state_dict()
    trained = load_st(stage1 / "model.safetensors")
    frozen = [k for k in ref_sd if k.startswith(("vision_tower.", "language_model."))]
    assert frozen
    for k in frozen:
        assert torch.equal(trained[k], ref_sd[k]), f"frozen weight {k} changed"
    connector = load_st(stage1 / "connector.safetensors")
    assert connector and all(k.startswith(("connector.", "projector.")) for k in connector)
    assert all(torch.equal(connector[k], trained[k]) for k in connector)
    assert any(not torch.equal(trained[k], ref_sd[k]) for k in connector), "the connector did not train"


def _finetune_args(work, stage1, out: Path, *extra: str) -> list[str]:
    return [
        "--deepspeed", str(REPO / "scripts" / "zero3.json"),
        "--model_name_or_path", str(stage1),
        "--data_path", str(work / "qa.json"), "--video_folder", str(work / "shapesqa"),
        "--num_frames", NUM_FRAMES, "--output_dir", str(out),
        "--max_steps", "4", "--per_device_train_batch_size", "1", "--logging_steps", "1", "--save_steps", "2",
        "--learning_rate", "2e-4", "--connector_lr", "1e-3", "--vision_lr", "1e-5", "--tune_vision_tower", "True",
        "--seed", "3", *extra,
    ]


def test_finetune_zero3_two_procs_resume_consolidate_generate(work, stage1):
    out = work / "stage2"
    args = _finetune_args(work, stage1, out)
    check(launch("finetune_trajvlm.py", args, nproc=2))  # launcher run 2
    first = summary(out)
    assert first["world_size"] == 2 and first["deepspeed"].endswith("zero3.json") and first["global_step"] == 4
    lrs = {g["name"]: g["lr"] for g in json.loads((out / "param_groups.json").read_text())["groups"]}
    assert lrs["connector/decay"] == 1e-3 and lrs["vision/decay"] == 1e-5 and lrs["llm/decay"] == 2e-4
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()

    # zero_to_fp32 of the last checkpoint == the gathered model.safetensors
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    fp32 = get_fp32_state_dict_from_zero_checkpoint(str(out / "checkpoint-4"))
    saved = load_st(out / "model.safetensors")
    assert set(fp32) == set(saved)
    for k in saved:
        assert torch.allclose(fp32[k].float(), saved[k].float(), atol=1e-6), k
    connector = load_st(out / "connector.safetensors")
    assert all(torch.equal(connector[k], saved[k]) for k in connector)

    # interrupted after step 2: drop the last checkpoint and the outputs, run the same command again
    shutil.copytree(out, work / "stage2_uninterrupted")
    shutil.rmtree(out / "checkpoint-4")
    for f in ("model.safetensors", "train_summary.json"):
        (out / f).unlink()
    check(launch("finetune_trajvlm.py", args, nproc=2))  # launcher run 3
    second = summary(out)
    assert second["resumed_from"].endswith("checkpoint-2")
    a, b = losses(first), losses(second)
    assert set(b) == {1, 2, 3, 4}  # steps 1-2 come back with the checkpoint's trainer state
    for step in (3, 4):
        assert abs(a[step] - b[step]) < 1e-4 * max(1.0, abs(a[step])), (step, a[step], b[step])
    resumed = load_st(out / "model.safetensors")
    ref = load_st(work / "stage2_uninterrupted" / "model.safetensors")
    assert all(torch.allclose(resumed[k], ref[k], atol=1e-5) for k in ref)

    # the final folder is a normal HF model folder
    from trajvlm.model import TrajVLMForConditionalGeneration, TrajVLMProcessor

    model = TrajVLMForConditionalGeneration.from_pretrained(out)
    processor = TrajVLMProcessor.from_pretrained(out)
    qa = json.loads((work / "qa.json").read_text())[0]
    inputs = processor([qa["conversations"][0]], str(work / "shapesqa" / qa["video"]), add_generation_prompt=True)
    new = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert new.shape[0] == 1 and 1 <= new.shape[1] <= 3


def test_finetune_lora_zero2_one_proc(work, stage1):
    out = work / "stage2_lora"
    args = _finetune_args(work, stage1, out, "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8",
                          "--option_loss_weight", "1.0")
    args[args.index("--deepspeed") + 1] = str(REPO / "scripts" / "zero2.json")
    args[args.index("--max_steps") + 1] = "2"
    args[args.index("--save_steps") + 1] = "100"
    check(launch("finetune_trajvlm.py", args))  # launcher run 4
    # the option loss (the QA answers are option letters) is part of every step's loss
    logged = [h for h in summary(out)["log_history"] if "loss" in h]
    assert len(logged) == 2 and all(0 < h["option_loss"] < h["loss"] for h in logged)
    groups = json.loads((out / "param_groups.json").read_text())
    llm_groups = [g for g in groups["groups"] if g["name"].startswith("llm/")]
    assert llm_groups and all(g["lr"] == 2e-4 for g in llm_groups)
    # only the adapters train in the LLM: rank-4 A/B matrices, a small fraction of its weights
    assert 0 < groups["trainable_per_part"]["llm"] == sum(g["num_params"] for g in llm_groups) < 20000
    assert (out / "lora_adapter" / "adapter_config.json").is_file()

    from trajvlm.model import TrajVLMForConditionalGeneration

    merged = TrajVLMForConditionalGeneration.from_pretrained(out)
    base = load_st(stage1 / "model.safetensors")
    sd = merged.state_dict()
    assert not any("lora_" in k for k in sd)
    q = next(k for k in sd if k.endswith("q_proj.weight"))
    assert not torch.equal(sd[q], base[q]), "LoRA update not merged into the saved weights"


def test_too_many_bad_samples_stops_the_run(work, stage1):
    out = work / "stage2_bad"
    args = _finetune_args(work, stage1, out, "--max_bad_sample_ratio", "0.2", "--bad_sample_min_samples", "2")
    args[args.index("--deepspeed") + 1] = str(REPO / "scripts" / "zero2.json")
    args[args.index("--data_path") + 1] = str(work / "qa_2bad.json")
    args[args.index("--per_device_train_batch_size") + 1] = "2"
    proc = launch("finetune_trajvlm.py", args)  # launcher run 5
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "TooManyBadSamplesError" in text and "corrupt" in text
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_finetune_bf16_makes_float32_tracks(work, stage1, zero):
    from trajvlm.model import TrajVLMForConditionalGeneration

    out, cache = work / f"stage2_bf16_{zero}", work / f"track_cache_{zero}"
    args = _finetune_args(work, stage1, out, "--bf16", "True", "--use_cpu", "True", "--freeze_segmenter", "True",
                          "--track_cache_dir", str(cache), "--seg_loss_weight", "0")
    args[args.index("--deepspeed") + 1] = str(REPO / "scripts" / f"{zero}.json")
    args[args.index("--save_steps") + 1] = "100"
    for flag in ("--tune_vision_tower", "--vision_lr"):
        i = args.index(flag)
        del args[i:i + 2]
    check(launch("finetune_trajvlm.py", args))  # launcher runs 6 and 7
    s = summary(out)
    assert s["global_step"] == 4 and s["track_cache"]["misses"] > 0
    # the folder the run filled is the one a float32 model of the same weights keys its tracks by
    ref = TrajVLMForConditionalGeneration.from_pretrained(stage1, dtype=torch.float32)
    for name, p in ref.named_parameters():
        if name.startswith(("vision_tower.", "connector.segmenter.")):
            p.requires_grad_(False)
    folder = Path(ref.enable_track_cache(directory=str(cache)).directory)
    assert [p.name for p in cache.iterdir()] == [folder.name] and any(folder.glob("*.safetensors"))
    # ... under the keys of the float32 pixels inference reads (not of the bf16-rounded ones DeepSpeed feeds)
    from trajvlm.data.dataset import LazyVideoTextDataset, VideoDataConfig
    from trajvlm.model import TrajVLMProcessor
    from trajvlm.trajtok.cache import pixel_key

    proc = TrajVLMProcessor.from_pretrained(out)
    ds = LazyVideoTextDataset(work / "qa.json", proc, VideoDataConfig(max_frames=int(NUM_FRAMES), fps=None,
                              sidecars="ignore", video_token=proc.video_token), video_folder=work / "shapesqa")
    pixels = [ds[i]["pixel_values_videos"][0] for i in range(len(ds))]
    want = {pixel_key(p.float()) for p in pixels}
    assert {p.stem for p in folder.glob("*.safetensors")} == want
    assert not want & {pixel_key(p.to(torch.bfloat16).float()) for p in pixels}
    saved, base = load_st(out / "model.safetensors"), load_st(stage1 / "model.safetensors")
    frozen = [k for k in base if k.startswith(("vision_tower.", "connector.segmenter."))]
    assert frozen and all(saved[k].dtype == torch.float32 and torch.equal(saved[k], base[k]) for k in frozen)
    q = next(k for k in saved if k.endswith("q_proj.weight"))
    assert saved[q].dtype == torch.bfloat16 and not torch.equal(saved[q].float(), base[q])
