"""Shared pieces of the benchmarks: machine description, the model under test (+ its patch-baseline twin),
the command line that produced a result, and markdown output."""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

import trajvlm

from .args import canonical_command

DEFAULT_MODEL_DIR = Path(trajvlm.__file__).resolve().parent / "assets" / "default_model"


class BenchSetupError(RuntimeError):
    """The benchmark cannot find or build the model / data it needs (the message says what to pass)."""


# ---------------------------------------------------------------------------------------------------------------
# machine + command


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def git_commit() -> str | None:
    root = Path(trajvlm.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def loadavg() -> tuple[float, ...]:
    """The 1/5/15-minute load average, rounded to 2 decimals."""
    return tuple(round(x, 2) for x in os.getloadavg())


def machine_info() -> dict:
    """What a reader needs to interpret a timing: CPU, cores, threads, load (1/5/15 min), RAM, versions."""
    import transformers

    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "loadavg": loadavg(),
        "ram_gb": None if total_ram_gb() is None else round(total_ram_gb(), 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "git": git_commit(),
    }


def machine_markdown(info: dict, *, end_loadavg: tuple | None = None) -> str:
    load = f"{info['loadavg']}" + (f" at start, {end_loadavg} at end" if end_loadavg is not None else "")
    return "\n".join(
        [
            f"- CPU: {info['cpu']}, {info['logical_cores']} logical cores, {info['ram_gb']} GB RAM",
            f"- torch threads: {info['torch_threads']} (OMP_NUM_THREADS={info['OMP_NUM_THREADS']})",
            f"- load average (1/5/15 min): {load} -- the machine is shared with other jobs",
            f"- python {info['python']}, torch {info['torch']}, transformers {info['transformers']}, git {info['git']}",
        ]
    )


def record_header(title: str, parser: argparse.ArgumentParser, args: argparse.Namespace, info: dict, *,
                  command_label: str = "Command (one run, all rows):", machine_label: str = "Machine:",
                  end_loadavg: bool = True) -> list[str]:
    """The first lines of a benchmark's markdown record: the title, the command that reproduces the run and the
    machine (`info` from `machine_info()`; with the load average now, at the end of the run, unless not `end_loadavg`)."""
    return [
        title,
        "",
        command_label,
        "",
        "```",
        canonical_command(parser, args),
        "```",
        "",
        machine_label,
        "",
        machine_markdown(info, end_loadavg=loadavg() if end_loadavg else None),
    ]


def single_thread() -> None:
    """The benchmarks run with one torch thread (the project rule on this shared 2-core machine)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def write_text(path: str | os.PathLike | None, text: str) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


def print_results(table: str, json_path: str | os.PathLike | None, raw) -> None:
    """Print the results table; write the raw numbers as JSON to `json_path` (--json) when given."""
    print(table)
    if json_path:
        write_text(json_path, json.dumps(raw, indent=1))


# ---------------------------------------------------------------------------------------------------------------
# the model under test


@dataclass
class BenchModel:
    model: torch.nn.Module  # TrajVLMForConditionalGeneration (TrajTok connector)
    processor: object  # TrajVLMProcessor
    source: str  # human-readable: where the weights came from


def default_model_available() -> bool:
    return (DEFAULT_MODEL_DIR / "config.json").is_file() and (DEFAULT_MODEL_DIR / "model.safetensors").is_file()


def load_bench_model(model_dir: Path | None = None, segmenter_dir: Path | None = None, *, seed: int = 0) -> BenchModel:
    """The TrajVLM under test: `model_dir`, else the built-in default model, else parts built around `segmenter_dir`."""
    from ...model import TrajVLMForConditionalGeneration, TrajVLMProcessor, register_auto_classes

    register_auto_classes()
    if model_dir is None and default_model_available():
        model_dir = DEFAULT_MODEL_DIR
    if model_dir is not None:
        if not (Path(model_dir) / "config.json").is_file():
            raise BenchSetupError(f"--model {model_dir}: no config.json (expected a saved TrajVLM folder)")
        model, info = TrajVLMForConditionalGeneration.from_pretrained(model_dir, output_loading_info=True)
        bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
        if bad:  # a checkpoint from another version of the code: benchmarking it would measure random weights
            raise BenchSetupError(f"--model {model_dir} does not match this code's architecture: {bad}")
        model.eval()
        if model.config.connector != "trajtok":
            raise BenchSetupError(f"--model {model_dir} has connector={model.config.connector!r}; give a TrajTok model "
                                  "(the patch baseline is built from it)")
        source = ("the built-in default model (trajvlm/assets/default_model)" if Path(model_dir) == DEFAULT_MODEL_DIR
                  else f"saved model {model_dir}")
        return BenchModel(model, TrajVLMProcessor.from_pretrained(model_dir), source)
    if segmenter_dir is None:
        raise BenchSetupError(
            f"no model: {DEFAULT_MODEL_DIR} does not hold a trained model yet (scripts/build_default_model.sh); "
            "pass --model DIR or --segmenter DIR (scripts/train_segmenter.py output)"
        )
    return build_from_segmenter(Path(segmenter_dir), seed=seed)


def build_from_segmenter(segmenter_dir: Path, *, seed: int = 0, token_budget: int = 16) -> BenchModel:
    """Trained ConvBackbone + TrajTok (train_segmenter.py) + a random Llama 4x256 (the default model's LLM shape)."""
    from ...model.build import from_parts
    from ...testing import build_tiny_llama, build_tiny_tokenizer
    from ...trajtok import TrajTok

    backbone, trajtok_dir = segmenter_dir / "backbone", segmenter_dir / "trajtok"
    if not (backbone / "config.json").is_file() or not (trajtok_dir / "config.json").is_file():
        raise BenchSetupError(f"--segmenter {segmenter_dir}: expected backbone/ and trajtok/ (train_segmenter.py --out)")
    trained = TrajTok.from_pretrained(trajtok_dir)
    with tempfile.TemporaryDirectory(prefix="trajvlm_bench_") as parts:
        tok = build_tiny_tokenizer()
        build_tiny_llama(tok, Path(parts, "llm"), hidden_size=256, num_layers=4, num_heads=4, seed=seed)
        torch.manual_seed(seed)
        model, processor = from_parts(
            backbone, Path(parts, "llm"), trajtok_config=trained.config.to_dict(), connector="trajtok",
            token_budget=token_budget, chat_template="llama3", num_frames=16, vision_chunk_frames=16,
            patch_pool_stride=2,
        )
    model.connector.load_state_dict(trained.state_dict())
    model.eval()
    return BenchModel(model, processor,
                      f"segmenter {segmenter_dir} (trained backbone + TrajTok) + random Llama 4x256 (LLM untrained)")


def patch_twin(model, *, pool_stride: int | None = None, share: bool = True, seed: int = 0):
    """The patch baseline of the same size: the same vision tower and LLM (shared, or deep copies if not `share`),
    the patch connector (pool stride of the config unless given) and a new mlp2x_gelu projector (seeded)."""
    from ...model import TrajVLMConfig, TrajVLMForConditionalGeneration

    cfg = model.config
    vision, llm = model.vision_tower.model, model.language_model
    if not share:
        vision, llm = copy.deepcopy(vision), copy.deepcopy(llm)
    # keep each part's attention implementation (a plain TrajVLMConfig(...) resets the sub-configs' to the default)
    attn = {"": llm.config._attn_implementation, "text_config": llm.config._attn_implementation,
            "vision_config": vision.config._attn_implementation}
    twin_cfg = TrajVLMConfig(
        attn_implementation=attn,
        vision_config=cfg.vision_config, text_config=cfg.text_config, trajtok_config=None, connector="patch",
        projector=cfg.projector, token_budget=cfg.token_budget, video_token=cfg.video_token,
        video_token_id=cfg.video_token_id, num_frames=cfg.num_frames, vision_feature_layer=cfg.vision_feature_layer,
        vision_chunk_frames=cfg.vision_chunk_frames,
        patch_pool_stride=cfg.patch_pool_stride if pool_stride is None else pool_stride, seg_loss_weight=0.0,
    )
    torch.manual_seed(seed)
    twin = TrajVLMForConditionalGeneration(twin_cfg, vision_model=vision, language_model=llm)
    twin.generation_config = copy.deepcopy(model.generation_config)
    return twin.eval()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024


def current_rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1024**2
    except (OSError, ValueError, IndexError):
        return float("nan")
