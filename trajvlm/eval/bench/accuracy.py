r"""ShapesQA accuracy per question category through lmms-eval: TrajVLM vs the patch baseline.

    OMP_NUM_THREADS=1 trajvlm bench accuracy --model TRAJVLM_DIR --baseline PATCH_DIR --data SHAPESQA_DIR \
        --model-train-summary .../stage1/train_summary.json .../stage2/train_summary.json \
        --baseline-train-summary ... --out eval/results/accuracy.md --json eval/results/accuracy.json

Each model folder (``--model``: TrajTok connector, ``--baseline``: patch connector, both trained with the same
recipe and wall-clock budget) is evaluated by the real lmms-eval CLI (``--model trajvlm``, the
``eval/tasks/shapesqa`` task, ``TRAJVLM_SHAPESQA_DIR`` = ``--data``) through ``trajvlm.eval.run_eval`` (which fails
when lmms-eval, exiting 0, wrote no results or no score). Then the logged samples are checked against the data:
one record per evaluated question, each question's category and answer as in ``<split>_qa.json``, and the
per-category accuracies recomputed from the records equal the ones lmms-eval aggregated. The table reports
correct / total per category (attribute, counting, direction, temporal_order, needle) and overall for both models,
and the difference TrajVLM - patch in points; ``--*-train-summary`` adds each model's training wall-clock and
optimizer steps (the ``train_summary.json`` of every training stage, summed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path

from ...data.synthetic.questions import CATEGORIES
from .. import run_eval
from .args import build_parser
from .common import (
    BenchSetupError,
    machine_info,
    print_results,
    record_header,
    single_thread,
    write_text,
)

VARIANTS = {"trajvlm": ("--model", "trajtok"), "patch": ("--baseline", "patch")}  # variant -> (option, connector)
DATA_ENV = run_eval.DATA_ENV["shapesqa"]


# ---------------------------------------------------------------------------------------------------------------
# inputs


def check_model(folder: Path, option: str, connector: str) -> dict:
    """The folder's config.json; BenchSetupError unless it is a saved TrajVLM with the expected connector."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise BenchSetupError(f"{option} {folder}: no config.json (expected a saved TrajVLM folder)")
    cfg = json.loads(path.read_text())
    if cfg.get("connector") != connector:
        raise BenchSetupError(f"{option} {folder} has connector={cfg.get('connector')!r}; expected {connector!r}")
    return cfg


def split_folder(data: Path, split: str, work: Path) -> Path:
    """The folder lmms-eval's ShapesQA task reads (it reads `test_qa.json`): `data` itself for the test split,
    else a view in `work` whose `test_qa.json` links to `<split>_qa.json` (video paths stay relative to it)."""
    qa = Path(data) / f"{split}_qa.json"
    if not qa.is_file():
        raise BenchSetupError(f"--data {data}: no {qa.name} (a ShapesQA folder from python -m trajvlm.data.synthetic)")
    if split == "test":
        return Path(data).resolve()
    view = work / f"shapesqa_{split}"
    view.mkdir(parents=True, exist_ok=True)
    for name, target in (("test_qa.json", qa), ("videos", Path(data) / "videos")):
        if not (view / name).exists():
            (view / name).symlink_to(target.resolve())
    return view


def load_train_summaries(paths: list[Path] | None, option: str) -> dict | None:
    """`train_summary.json` of every stage -> {"stages", "wall_seconds", "global_step", "files"} (sums)."""
    if not paths:
        return None
    stages = []
    for path in paths:
        try:
            s = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BenchSetupError(f"{option} {path}: cannot read a train_summary.json ({exc})") from exc
        for key in ("wall_seconds", "global_step"):
            if not isinstance(s.get(key), (int, float)) or isinstance(s.get(key), bool):
                raise BenchSetupError(f"{option} {path}: no numeric {key!r} (a train_summary.json of trajvlm.train)")
        stages.append({"file": str(path), "stage": s.get("stage"), "wall_seconds": s["wall_seconds"],
                       "global_step": s["global_step"], "train_loss": s.get("train_loss")})
    return {"stages": stages, "wall_seconds": sum(s["wall_seconds"] for s in stages),
            "global_step": sum(s["global_step"] for s in stages)}


# ---------------------------------------------------------------------------------------------------------------
# lmms-eval results -> per-question records -> per-category counts


def samples_file(results_file: Path, task: str) -> Path:
    stamp = results_file.name[: -len("_results.json")]
    return results_file.with_name(f"{stamp}_samples_{task}.jsonl")


def question_records(samples_path: Path, task: str, docs: list[dict]) -> list[dict]:
    """lmms-eval's logged samples of `task` -> one record per question (id, category, answer, prediction,
    correct); BenchSetupError when the file is missing or disagrees with the data (`docs`, in task order)."""
    if not samples_path.is_file():
        raise BenchSetupError(f"lmms-eval logged no samples for {task} ({samples_path})")
    with open(samples_path, encoding="utf-8") as f:
        samples = [json.loads(line) for line in f if line.strip()]
    records, seen = [], set()
    for s in samples:
        doc_id = s.get("doc_id")
        if not isinstance(doc_id, int) or not 0 <= doc_id < len(docs) or doc_id in seen:
            raise BenchSetupError(f"{samples_path}: bad or repeated doc_id {doc_id!r} ({len(docs)} questions)")
        seen.add(doc_id)
        doc = docs[doc_id]
        if str(s.get("target")) not in (doc["answer"], str("ABCD".index(doc["answer"]))):  # letter / choice index
            raise BenchSetupError(f"{samples_path}: doc {doc_id} has target {s.get('target')!r}, the data says "
                                  f"{doc['answer']!r} ({doc['id']})")
        score = s.get(f"{task}_acc")
        cats = [c for c in CATEGORIES if f"{task}_{c}_acc" in s]
        if score not in (0, 1) or cats != [doc["category"]] or s[f"{task}_{doc['category']}_acc"] != score:
            raise BenchSetupError(f"{samples_path}: doc {doc_id} ({doc['id']}, {doc['category']}) has scores "
                                  f"{ {k: v for k, v in s.items() if k.startswith(task)} }")
        records.append({"doc_id": doc_id, "id": doc["id"], "category": doc["category"], "answer": doc["answer"],
                        "prediction": s.get("filtered_resps"), "correct": bool(score)})
    return sorted(records, key=lambda r: r["doc_id"])


def category_counts(records: list[dict]) -> dict:
    """{category: {"correct", "total", "accuracy"}} for every category + "overall" (accuracy in percent, None when
    a category has no questions)."""
    counts = {}
    for cat in (*CATEGORIES, "overall"):
        rs = [r for r in records if cat in ("overall", r["category"])]
        correct = sum(r["correct"] for r in rs)
        counts[cat] = {"correct": correct, "total": len(rs), "accuracy": 100.0 * correct / len(rs) if rs else None}
    return counts


def check_against_lmms(counts: dict, results: dict, task: str) -> None:
    """The per-category accuracies recomputed from the samples must be the ones lmms-eval aggregated."""
    reported = results.get("results", {}).get(task, {})
    n = results.get("n-samples", {}).get(task, {}).get("effective")
    if n is not None and n != counts["overall"]["total"]:
        raise BenchSetupError(f"lmms-eval evaluated {n} {task} docs but logged {counts['overall']['total']} samples")
    for cat, c in counts.items():
        key = f"{task}_acc,none" if cat == "overall" else f"{task}_{cat}_acc,none"
        if c["total"] == 0:
            continue
        value = reported.get(key)
        if not isinstance(value, (int, float)) or not math.isclose(value, c["accuracy"], abs_tol=1e-6):
            raise BenchSetupError(f"{task} {cat}: lmms-eval reports {value!r}, its samples give "
                                  f"{c['correct']}/{c['total']} = {c['accuracy']:.4f}")


def evaluate(variant: str, folder: Path, *, task: str, data: Path, docs: list[dict], work: Path, max_frames: int,
             limit: int | None, include: str) -> dict:
    """One lmms-eval run on `folder`; the checked per-question records and per-category counts."""
    req = run_eval.EvalRequest(
        tasks=[task], pretrained=str(Path(folder).resolve()), output=work / variant,
        model_args={"max_frames": str(max_frames)}, include_path=[include], limit=limit,
        env={DATA_ENV: str(data), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        table=work / variant / "scores.md",
    )
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # lmms-eval's live output; stdout is the benchmark's table
        outcome = run_eval.run(req)
    seconds = time.perf_counter() - t0
    samples = samples_file(outcome.results_file, task)
    records = question_records(samples, task, docs)
    counts = category_counts(records)
    check_against_lmms(counts, outcome.results, task)
    return {
        "model": str(folder),
        "lmms_eval_command": " ".join(f"{k}={shlex.quote(v)}" for k, v in req.env.items()) + " "
        + shlex.join(run_eval.build_command(req, ["lmms-eval"])),
        "results_file": str(outcome.results_file), "samples_file": str(samples), "eval_seconds": round(seconds, 1),
        "counts": counts, "records": records,
    }


# ---------------------------------------------------------------------------------------------------------------
# tables


def _acc(c: dict) -> str:
    return "-" if c["accuracy"] is None else f"{c['accuracy']:.2f} ({c['correct']}/{c['total']})"


def differences(runs: dict) -> dict:
    """TrajVLM - patch accuracy in points per category (None when a category has no questions)."""
    t, p = runs["trajvlm"]["counts"], runs["patch"]["counts"]
    return {cat: None if t[cat]["accuracy"] is None or p[cat]["accuracy"] is None
            else t[cat]["accuracy"] - p[cat]["accuracy"] for cat in t}


def accuracy_table(runs: dict, diff: dict) -> str:
    out = ["| category | questions | TrajVLM % (correct/total) | patch % (correct/total) | TrajVLM - patch (points) |",
           "|---|---:|---:|---:|---:|"]
    for cat, d in diff.items():
        name = "**overall**" if cat == "overall" else cat
        out.append(f"| {name} | {runs['trajvlm']['counts'][cat]['total']} | {_acc(runs['trajvlm']['counts'][cat])} | "
                   f"{_acc(runs['patch']['counts'][cat])} | {'-' if d is None else f'{d:+.2f}'} |")
    return "\n".join(out)


def target_line(diff: dict) -> tuple[bool | None, str]:
    """The issue's target: TrajVLM >= patch on every ShapesQA category (with questions)."""
    present = {c: d for c, d in diff.items() if c != "overall" and d is not None}
    if not present:
        return None, "no category has questions"
    behind = [c for c, d in present.items() if d < 0]
    missing = [c for c in CATEGORIES if c not in present]
    met = not behind
    text = ("met" if met else "NOT met (behind on " + ", ".join(behind) + ")") + (
        f"; categories without questions: {', '.join(missing)}" if missing else "")
    return met, text


def train_table(train: dict) -> str:
    t, p = train["trajvlm"], train["patch"]

    def cell(s, key, fmt):
        return "not given" if s is None else fmt(s[key])

    def ratio(key):
        return f"{t[key] / p[key]:.2f}" if t and p and p[key] else "-"

    def hours(x):
        return f"{x:,.0f} s ({x / 3600:.2f} h)"

    def stages(s):
        return "not given" if s is None else ", ".join(str(x["stage"]) for x in s["stages"])

    steps = (f"| optimizer steps | {cell(t, 'global_step', '{:,}'.format)} | {cell(p, 'global_step', '{:,}'.format)} | "
             f"{ratio('global_step')} |")
    return "\n".join([
        "| training | TrajVLM | patch | TrajVLM ÷ patch |", "|---|---:|---:|---:|",
        f"| wall-clock | {cell(t, 'wall_seconds', hours)} | {cell(p, 'wall_seconds', hours)} | {ratio('wall_seconds')} |",
        steps,
        f"| stages | {stages(t)} | {stages(p)} | |",
    ])


def raw_counts(runs: dict) -> list[str]:
    lines = ["```"]
    for variant, run in runs.items():
        lines.append(f"{variant:>8}: " + "  ".join(f"{cat} {c['correct']}/{c['total']}" for cat, c in run["counts"].items()))
    return lines + ["```"]


# ---------------------------------------------------------------------------------------------------------------
# entry points


def main(argv: list[str] | None = None, prog: str = "trajvlm bench accuracy") -> int:
    parser = build_parser("accuracy", prog, __doc__)
    return run_cli(parser.parse_args(argv), parser)


def run_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        return _run(args, parser)
    except (BenchSetupError, run_eval.EvalRunError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    single_thread()
    info = machine_info()
    configs = {v: check_model(getattr(args, opt.lstrip("-")), opt, conn) for v, (opt, conn) in VARIANTS.items()}
    train = {"trajvlm": load_train_summaries(args.model_train_summary, "--model-train-summary"),
             "patch": load_train_summaries(args.baseline_train_summary, "--baseline-train-summary")}
    include = run_eval.default_include_path()
    if include is None:
        raise BenchSetupError("no eval/tasks folder next to the package (run from a source checkout)")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="trajvlm_bench_accuracy_"))
    print(f"lmms-eval output: {work}", file=sys.stderr)
    data = split_folder(args.data, args.split, work)
    docs = json.loads((data / "test_qa.json").read_text())
    runs = {}
    for variant, (option, _) in VARIANTS.items():
        print(f"== {variant}: lmms-eval {args.task} on {getattr(args, option.lstrip('-'))}", file=sys.stderr, flush=True)
        runs[variant] = evaluate(variant, getattr(args, option.lstrip("-")), task=args.task, data=data, docs=docs,
                                 work=work, max_frames=args.max_frames, limit=args.limit, include=include)
    asked = [r["doc_id"] for r in runs["trajvlm"]["records"]]
    if asked != [r["doc_id"] for r in runs["patch"]["records"]]:
        raise BenchSetupError("the two models were evaluated on different questions")
    diff = differences(runs)
    met, target = target_line(diff)
    tab = accuracy_table(runs, diff)
    raw = {"task": args.task, "split": args.split, "data": str(args.data), "limit": args.limit,
           "max_frames": args.max_frames, "work": str(work), "difference_points": diff, "target_met": met,
           "train": train, "machine": info,
           "variants": {v: {**r, "connector": configs[v].get("connector"), "token_budget": configs[v].get("token_budget")}
                        for v, r in runs.items()}}
    print_results(tab + f"\n\nTarget (TrajVLM >= patch on every category): {target}", args.json, raw)
    if args.out:
        write_text(args.out, "\n".join(record(args, parser, info, runs, train, tab, target, configs)))
    return 0


def record(args, parser, info, runs, train, tab, target, configs) -> list[str]:
    smoke = (f" **Smoke run: only the first {args.limit} questions (`--limit`); not comparable.**"
             if args.limit else "")
    return [
        *record_header("# ShapesQA accuracy per category: TrajVLM vs the patch baseline (lmms-eval)", parser, args,
                       info, command_label="Command (both models, all rows):"),
        "",
        (f"Data: `{args.data}`, {args.split} split, {runs['trajvlm']['counts']['overall']['total']} questions.{smoke} "
         f"lmms-eval task `{args.task}` (`eval/tasks/shapesqa`), `--model trajvlm`, {args.max_frames} frames per video."),
        "",
        *(f"- {v}: `{r['model']}` (connector {configs[v].get('connector')}, token budget "
          f"{configs[v].get('token_budget')}), lmms-eval {r['eval_seconds'] / 60:.1f} min: `{r['lmms_eval_command']}`"
          for v, r in runs.items()),
        "",
        ("Accuracy in percent (correct / total), recomputed from lmms-eval's logged samples and checked against its "
         "aggregated metrics:"),
        "",
        tab,
        "",
        f"Target (TrajVLM >= patch on every category): **{target}**.",
        "",
        "Training (`train_summary.json` of each stage, summed):",
        "",
        train_table(train),
        "",
        "Raw per-category counts (correct/total):",
        "",
        *raw_counts(runs),
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())
