"""`trajvlm eval`: run lmms-eval on a task set, check it really produced scores, write a markdown table.

lmms-eval exits 0 when an evaluation fails (it logs the exception and writes no results file), and scores
MovieChat documents 0 when the judge cannot be reached. This wrapper turns both into a failing exit code:

1. MovieChat tasks requested: the judge is checked first (`trajvlm.eval.judge.check_judge`).
2. `lmms-eval --model trajvlm --model_args ... --tasks ... --output_path OUT --log_samples` runs as a
   subprocess; its output is shown and kept in `OUT/lmms_eval.log`.
3. Failure = non-zero exit, no new `*_results.json`, a requested task without a numeric metric, or (MovieChat)
   a logged sample whose judge review failed.
4. `OUT/scores.md`: one row per task and metric.

Imports only the standard library and `trajvlm.eval.judge`: lmms-eval runs in the subprocess.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trajvlm.eval import judge as judge_mod

OFFICIAL_TASKS = ("videomme", "videomme_w_subtitle", "mlvu_dev", "mlvu_test", "moviechat_global", "moviechat_breakpoint")
LOCAL_TASKS = (
    "videomme_local", "videomme_w_subtitle_local", "mlvu_dev_local", "mlvu_test_local",
    "moviechat_global_local", "moviechat_breakpoint_local",
)
SHAPESQA_TASKS = ("shapesqa", "shapesqa_mc", "shapesqa_cloze")
# "@name" in --tasks; the "@" keeps set names apart from task names (`videomme` is one task, `@videomme` two)
TASK_SETS: dict[str, tuple[str, ...]] = {
    "@official": OFFICIAL_TASKS,
    "@local": LOCAL_TASKS,
    "@shapesqa": SHAPESQA_TASKS,
    "@videomme": ("videomme", "videomme_w_subtitle"),
    "@mlvu": ("mlvu_dev", "mlvu_test"),
    "@moviechat": ("moviechat_global", "moviechat_breakpoint"),
}
# --data NAME=DIR -> the environment variable the local task utils read (eval/tasks/*/utils.py)
DATA_ENV = {
    "videomme": "TRAJVLM_VIDEOMME_DIR",
    "mlvu": "TRAJVLM_MLVU_DIR",
    "mlvu_test": "TRAJVLM_MLVU_TEST_DIR",
    "moviechat": "TRAJVLM_MOVIECHAT_DIR",
    "shapesqa": "TRAJVLM_SHAPESQA_DIR",
}


class EvalRunError(RuntimeError):
    """The evaluation did not produce trustworthy scores; the message says why."""


@dataclass
class EvalRequest:
    """Everything `trajvlm eval` passes to lmms-eval."""

    tasks: list[str]
    pretrained: str
    output: Path
    model: str = "trajvlm"
    model_args: dict[str, str] = field(default_factory=dict)  # besides pretrained
    include_path: list[str] = field(default_factory=list)
    limit: int | None = None
    batch_size: int = 1
    device: str | None = None
    judge: judge_mod.JudgeConfig | None = None  # set when a MovieChat task is requested
    env: dict[str, str] = field(default_factory=dict)  # extra environment for lmms-eval
    extra_args: list[str] = field(default_factory=list)  # passed to lmms-eval verbatim
    table: Path | None = None  # default OUTPUT/scores.md


@dataclass
class EvalOutcome:
    results_file: Path
    results: dict
    table: str
    table_file: Path


def expand_tasks(names: Sequence[str]) -> list[str]:
    """Task names and task-set names ("@official", ... see TASK_SETS) -> task names, in order, without duplicates."""
    tasks: list[str] = []
    for name in names:
        for part in (p.strip() for p in name.split(",")):
            if not part:
                continue
            if part.startswith("@") and part not in TASK_SETS:
                raise EvalRunError(f"unknown task set {part!r} (known: {', '.join(TASK_SETS)})")
            for task in TASK_SETS.get(part, (part,)):
                if task not in tasks:
                    tasks.append(task)
    if not tasks:
        raise EvalRunError("no tasks given")
    return tasks


def default_include_path() -> str | None:
    """The repository's eval/tasks (present in a source checkout / editable install)."""
    candidate = Path(__file__).resolve().parents[2] / "eval" / "tasks"
    return str(candidate) if candidate.is_dir() else None


def lmms_eval_command() -> list[str]:
    """The lmms-eval console script of this interpreter's environment (or `python -m lmms_eval`)."""
    script = Path(sys.executable).with_name("lmms-eval")
    if script.exists():
        return [str(script)]
    found = shutil.which("lmms-eval")
    return [found] if found else [sys.executable, "-m", "lmms_eval"]


def format_model_args(pretrained: str, model_args: Mapping[str, str]) -> str:
    args = {"pretrained": pretrained, **model_args}
    for key, value in args.items():
        if "," in str(value) or "=" in str(value):
            raise EvalRunError(f"model arg {key}={value!r}: lmms-eval's --model_args cannot hold ',' or '=' in a value")
    return ",".join(f"{k}={v}" for k, v in args.items())


def build_command(req: EvalRequest, base: Sequence[str]) -> list[str]:
    cmd = [
        *base,
        "--model", req.model,
        "--model_args", format_model_args(req.pretrained, req.model_args),
        "--tasks", ",".join(req.tasks),
        "--batch_size", str(req.batch_size),
        "--output_path", str(req.output),
        "--log_samples",
    ]
    for path in req.include_path:
        cmd += ["--include_path", path]
    if req.limit is not None:
        cmd += ["--limit", str(req.limit)]
    if req.device:
        cmd += ["--device", req.device]
    return cmd + list(req.extra_args)


def _results_files(output: Path) -> set[Path]:
    return set(output.rglob("*_results.json")) if output.exists() else set()


def _tail_errors(log: str, n: int = 25) -> str:
    """The most informative lines of a failed lmms-eval log."""
    lines = log.rstrip().splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith("Traceback")), default=max(0, len(lines) - n))
    picked = lines[start:][-n:]
    errors = [line for line in lines if "| ERROR" in line or "Error" in line.split(":")[0]]
    extra = [line for line in errors[-5:] if line not in picked]
    return "\n".join(extra + picked)


def run_lmms_eval(req: EvalRequest, base_command: Sequence[str] | None = None) -> tuple[int, str, list[str]]:
    """Run lmms-eval, echoing its output; return (exit code, full log, command)."""
    req.output.mkdir(parents=True, exist_ok=True)
    cmd = build_command(req, lmms_eval_command() if base_command is None else base_command)
    env = {**os.environ, **req.env}
    env.setdefault("OMP_NUM_THREADS", "1")
    if req.judge is not None:
        env.update(req.judge.to_env())
    print("+ " + shlex.join(cmd), flush=True)
    # Raw bytes, passed through as they come: progress bars keep their carriage returns (text mode would turn
    # every tqdm update into a line) and output shows up live.
    chunks: list[bytes] = []
    out = getattr(sys.stdout, "buffer", None)
    with open(req.output / "lmms_eval.log", "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(1 << 16):
            if out is not None:
                out.write(chunk)
            else:
                sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
            log_file.write(chunk)
            chunks.append(chunk)
        code = proc.wait()
    return code, b"".join(chunks).decode(errors="replace"), cmd


def _metric_rows(results: dict, tasks: Sequence[str]) -> list[tuple[str, str, object, object]]:
    """(task, metric, value, stderr) for every requested task; EvalRunError when one has no numeric score."""
    per_task = results.get("results", {})
    rows = []
    for task in tasks:
        metrics = per_task.get(task)
        if not isinstance(metrics, dict):
            raise EvalRunError(f"lmms-eval's results hold no scores for task {task!r} (present: {', '.join(per_task) or 'none'})")
        found = False
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key:
                continue
            metric, filter_key = key.split(",", 1)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise EvalRunError(f"task {task!r}: metric {metric} is {value}")
            stderr = metrics.get(f"{metric}_stderr,{filter_key}")
            rows.append((task, metric, value, stderr))
            found = True
        if not found:
            raise EvalRunError(f"task {task!r} has no numeric metric in lmms-eval's results: {metrics}")
    return rows


def check_judge_samples(results_file: Path, tasks: Sequence[str]) -> None:
    """Fail when any MovieChat document's judge call failed (lmms-eval silently scored it 0)."""
    stamp = results_file.name[: -len("_results.json")]
    problems = []
    for task in tasks:
        if not judge_mod.is_judge_task(task):
            continue
        samples_file = results_file.with_name(f"{stamp}_samples_{task}.jsonl")
        if not samples_file.exists():
            raise EvalRunError(f"no logged samples for {task} ({samples_file}); cannot verify its judge calls")
        with open(samples_file, encoding="utf-8") as f:
            samples = [json.loads(line) for line in f if line.strip()]
        problems += [f"{task} {item}" for item in judge_mod.failed_reviews(samples)]
    if problems:
        listed = "\n  ".join(problems[:20])
        raise EvalRunError(f"the MovieChat judge failed on {len(problems)} document(s) (lmms-eval scored them 0):\n  {listed}")


def markdown_table(results: dict, tasks: Sequence[str], req: EvalRequest, command: Sequence[str] = ()) -> str:
    rows = _metric_rows(results, tasks)
    n_samples = results.get("n-samples", {})
    lines = [
        f"# {req.model} scores",
        "",
        f"- checkpoint: `{req.pretrained}`",
        f"- model args: `{format_model_args(req.pretrained, req.model_args)}`",
        f"- date: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}" + (f", limit {req.limit} docs per task" if req.limit else ""),
        *([f"- lmms-eval command: `{shlex.join(command)}`"] if command else []),
        *[f"- data: `{key}={value}`" for key, value in sorted(req.env.items()) if key.startswith("TRAJVLM_")],
        "",
        "| task | metric | score | ± stderr | docs in task |",
        "|---|---|---:|---:|---:|",
    ]
    for task, metric, value, stderr in rows:
        docs = n_samples.get(task, {}).get("effective", "")
        err = f"{stderr:.4g}" if isinstance(stderr, (int, float)) and not isinstance(stderr, bool) else ""
        lines.append(f"| {task} | {metric} | {value:.4g} | {err} | {docs} |")
    return "\n".join(lines) + "\n"


def run(req: EvalRequest, base_command: Sequence[str] | None = None) -> EvalOutcome:
    """The whole `trajvlm eval` flow; EvalRunError (or JudgeError) on any failure."""
    if any(judge_mod.is_judge_task(t) for t in req.tasks):
        if req.judge is None:
            req.judge = judge_mod.JudgeConfig.from_env()
        model_name = judge_mod.check_judge(req.judge)
        print(f"MovieChat judge OK: {req.judge.url} ({model_name})", flush=True)
    before = _results_files(req.output)
    code, log, command = run_lmms_eval(req, base_command)
    if code != 0:
        raise EvalRunError(f"lmms-eval exited with code {code}:\n{_tail_errors(log)}")
    new = sorted(_results_files(req.output) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        raise EvalRunError(f"lmms-eval wrote no results file under {req.output}: the evaluation failed:\n{_tail_errors(log)}")
    results_file = new[-1]
    with open(results_file, encoding="utf-8") as f:
        results = json.load(f)
    table = markdown_table(results, req.tasks, req, command)
    check_judge_samples(results_file, req.tasks)
    table_file = req.table or req.output / "scores.md"
    table_file.parent.mkdir(parents=True, exist_ok=True)
    table_file.write_text(table, encoding="utf-8")
    return EvalOutcome(results_file=results_file, results=results, table=table, table_file=table_file)
