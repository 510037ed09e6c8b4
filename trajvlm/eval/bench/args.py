"""Command-line options of every benchmark (argparse only: `trajvlm --help` must stay light).

``BENCHMARKS`` maps a name to (module, help, add_arguments). ``trajvlm bench <name>`` and the module's own
``main`` (``python eval/bench_<name>.py``) build the same options from here, and each run records
``canonical_command`` -- the options it actually used, as a command that reproduces it.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

VIDEO_SOURCES = ("static", "busy", "bbb")
SEGMENTATION_METHODS = ("felzenszwalb", "slic")
PRESET_NAMES = ("so400m-llama3-8b", "so400m-llama3-8b-patch", "tiny-default")  # == trajvlm.model.presets.PRESETS


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model under test (first that applies: --model, the built-in default model, --segmenter)")
    g.add_argument("--model", type=Path, help="a saved TrajVLM folder (model + processor), TrajTok connector")
    g.add_argument(
        "--segmenter", type=Path,
        help="scripts/train_segmenter.py output (backbone/ + trajtok/), used with a randomly initialised Llama 4x256 "
        "(the default model's LLM shape) when there is no built-in default model",
    )
    g.add_argument("--token-budget", type=int, default=None, help="override the model's token budget")


def efficiency_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="so400m-llama3-8b", choices=PRESET_NAMES)
    p.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256, 1024])
    p.add_argument("--text-tokens", type=int, default=64, help="prompt tokens besides the video (system + question)")
    p.add_argument("--live-trajectories", type=int, default=None,
                   help="linked trajectories alive in the video (default: assume every budget slot is used)")
    p.add_argument("--analytic", action="store_true", help="closed-form LLM FLOPs only (no meta-device count)")
    p.add_argument("--out", type=Path, help="markdown record")


def tokens_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256, 1024, 4096])
    p.add_argument("--videos", nargs="+", choices=VIDEO_SOURCES, default=list(VIDEO_SOURCES))
    p.add_argument("--seed", type=int, default=0, help="scene seed")
    p.add_argument("--out", type=Path, help="markdown record (command, machine, table)")
    p.add_argument("--plot", type=Path, help="PNG: tokens vs frames on log axes")
    p.add_argument("--json", type=Path, help="raw rows as JSON")


def latency_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--frames", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--video", choices=VIDEO_SOURCES, default="busy", help="benchmark video (trajvlm/eval/bench/videos.py)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per subprocess")
    p.add_argument("--out", type=Path, help="markdown record")
    p.add_argument("--json", type=Path, help="raw per-run numbers")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", choices=("trajvlm", "patch"), help=argparse.SUPPRESS)


def train_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--frames", type=int, nargs="+", default=[16, 64])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6, help="timed steps per variant and frame count")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seg-loss", action="store_true", help="TrajVLM also trains with its segmentation loss")
    p.add_argument("--bf16", action="store_true",
                   help="also time the TrajVLM cast to bfloat16 (DeepSpeed's bf16 compute dtype) and report bf16 ÷ float32")
    p.add_argument("--out", type=Path)
    p.add_argument("--json", type=Path)


def segmenter_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--num-videos", type=int, default=8, help="ShapesQA val clips (dataset seed 0)")
    p.add_argument("--methods", nargs="+", choices=SEGMENTATION_METHODS, default=list(SEGMENTATION_METHODS))
    p.add_argument("--bbb-frames", type=int, default=132, help="Big Buck Bunny frames for the speed figure (0 = skip)")
    p.add_argument("--repeats", type=int, default=3, help="best-of repeats per timing")
    p.add_argument("--fz-scale", type=float, default=50.0, help="felzenszwalb scale")
    p.add_argument("--fz-min-size", type=int, default=12, help="felzenszwalb min_size (px)")
    p.add_argument("--slic-segments", type=int, default=64, help="SLIC n_segments")
    p.add_argument("--track-cover", type=float, default=0.25,
                   help="a segment continues a track only if it covers >= this fraction of the track's warped area")
    p.add_argument("--out", type=Path)
    p.add_argument("--json", type=Path)


def accuracy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="the trained TrajVLM folder (TrajTok connector)")
    p.add_argument("--baseline", type=Path, required=True,
                   help="the patch baseline folder (patch connector), trained with the same recipe and wall-clock budget")
    p.add_argument("--data", type=Path, required=True, help="ShapesQA folder (python -m trajvlm.data.synthetic --out)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--task", choices=("shapesqa", "shapesqa_mc", "shapesqa_cloze"), default="shapesqa",
                   help="lmms-eval task: generated letter (shapesqa), letter log-likelihood (shapesqa_mc) or "
                   "option-text log-likelihood (shapesqa_cloze)")
    p.add_argument("--max-frames", type=int, default=16, help="frames per video (the models train on 16)")
    p.add_argument("--limit", type=int, default=None, help="first N questions only (smoke runs: not comparable)")
    p.add_argument("--model-train-summary", type=Path, nargs="+", metavar="JSON",
                   help="train_summary.json of each training stage of --model (wall-clock and steps are summed)")
    p.add_argument("--baseline-train-summary", type=Path, nargs="+", metavar="JSON",
                   help="train_summary.json of each training stage of --baseline")
    p.add_argument("--work", type=Path, help="lmms-eval output folder (logs, results, samples; default: a new temp dir)")
    p.add_argument("--out", type=Path, help="markdown record")
    p.add_argument("--json", type=Path, help="raw numbers + per-question records")


BENCHMARKS = {
    "efficiency": ("trajvlm.eval.bench.efficiency",
                   "visual tokens + LLM prefill FLOPs at real scale (meta device)", efficiency_args),
    "tokens": ("trajvlm.eval.bench.tokens", "visual tokens vs video length, real tiny model (+ log-log plot)",
               tokens_args),
    "latency": ("trajvlm.eval.bench.latency", "time to first token + peak RSS, fresh subprocess per run",
                latency_args),
    "train": ("trajvlm.eval.bench.train_throughput", "finetuning samples/s, variants alternated", train_args),
    "segmenter": ("trajvlm.eval.bench.segmenter_vs_classical", "TrajTok segmenter vs superpixels + optical flow",
                  segmenter_args),
    "accuracy": ("trajvlm.eval.bench.accuracy",
                 "ShapesQA accuracy per category through lmms-eval, TrajVLM vs the patch baseline", accuracy_args),
}


def build_parser(name: str, prog: str, description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    BENCHMARKS[name][2](p)
    return p


def canonical_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """`OMP_NUM_THREADS=1 <prog> <every option that differs from its default>` -- reproduces the run."""
    parts = []
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help",) or action.help == argparse.SUPPRESS:
            continue
        value = getattr(args, action.dest, None)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [flag, *(shlex.quote(str(v)) for v in value)]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(["OMP_NUM_THREADS=1", parser.prog, *parts])
