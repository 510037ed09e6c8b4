"""`trajvlm eval`: run lmms-eval task sets on a checkpoint, fail on failed evaluations, write a score table."""

from __future__ import annotations

import argparse

_EPILOG = """\
task sets (usable in --tasks next to task names):
  @official   videomme, videomme_w_subtitle, mlvu_dev, mlvu_test, moviechat_global, moviechat_breakpoint
              (data in the lmms-eval layout under $HF_HOME, see data_recipes/)
  @local      the *_local copies of those (data folders given with --data, see eval/tasks/)
  @shapesqa   shapesqa, shapesqa_mc, shapesqa_cloze (ShapesQA test split, --data shapesqa=DIR)
  @videomme, @mlvu, @moviechat: the two official tasks of each benchmark

examples:
  trajvlm eval --pretrained ckpt/ --tasks videomme --max-frames 64
  trajvlm eval --pretrained ckpt/ --tasks @shapesqa --data shapesqa=data/shapesqa
  trajvlm eval --pretrained ckpt/ --tasks @moviechat --judge-url http://127.0.0.1:8000/v1 --judge-model qwen2.5-7b
  trajvlm eval --pretrained ckpt/ --tasks videomme -- --verbosity DEBUG   (after --: passed to lmms-eval)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="run lmms-eval tasks on a checkpoint and write a markdown score table",
        description="Run lmms-eval (`--model trajvlm`) on a task set; exit non-zero when the evaluation failed "
        "(lmms-eval itself exits 0), when a task has no score, or when the MovieChat judge failed; "
        "write OUTPUT/scores.md.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pretrained", required=True, help="checkpoint folder")
    p.add_argument("--tasks", required=True, action="append", help="comma-separated task names and/or @task-sets (repeatable)")
    p.add_argument("--output", default="results", help="lmms-eval --output_path (default: results)")
    p.add_argument("--model", default="trajvlm", help="lmms-eval model name (default: trajvlm)")
    p.add_argument("--max-frames", type=int, default=None, help="model arg max_frames")
    p.add_argument("--fps", type=float, default=None, help="model arg fps")
    p.add_argument("--token-budget", type=int, default=None, help="model arg token_budget")
    p.add_argument("--conv-template", default=None, help="model arg conv_template")
    p.add_argument("--dtype", default=None, help="model arg dtype")
    p.add_argument("--model-args", default="", help="more model args, k=v,k=v (see trajvlm.eval.lmms_model)")
    p.add_argument("--device", default=None, help="lmms-eval --device")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="docs per task (smoke runs only: scores are not comparable)")
    p.add_argument("--include-path", action="append", default=None,
                   help="task YAML folder for lmms-eval (default: the repository's eval/tasks when present)")
    p.add_argument("--data", action="append", default=[], metavar="NAME=DIR",
                   help="data folder of a local task: videomme, mlvu, mlvu_test, moviechat, shapesqa (repeatable)")
    p.add_argument("--offline", action="store_true", help="set HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 for lmms-eval")
    p.add_argument("--judge-url", default=None, help="MovieChat judge: OpenAI-compatible URL (default: $OPENAI_API_URL)")
    p.add_argument("--judge-key", default=None, help="MovieChat judge API key (default: $OPENAI_API_KEY)")
    p.add_argument("--judge-model", default=None, help="MovieChat judge model name (default: $MODEL_VERSION)")
    p.add_argument("--table", default=None, help="where to write the markdown table (default: OUTPUT/scores.md)")
    p.add_argument("lmms_eval_args", nargs=argparse.REMAINDER, help="after --: extra lmms-eval arguments")
    p.set_defaults(func=_run)


def _parse_pairs(text: str, what: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ValueError(f"{what}: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value.strip()
    return pairs


def _run(args: argparse.Namespace) -> int:
    import os
    import sys
    from pathlib import Path

    from trajvlm.eval import run_eval
    from trajvlm.eval.judge import JudgeConfig, JudgeError, is_judge_task

    try:
        tasks = run_eval.expand_tasks(args.tasks)
        model_args = {}
        for key, value in (("max_frames", args.max_frames), ("fps", args.fps), ("token_budget", args.token_budget),
                           ("conv_template", args.conv_template), ("dtype", args.dtype)):
            if value is not None:
                model_args[key] = str(value)
        model_args.update(_parse_pairs(args.model_args, "--model-args"))
        model_args.pop("pretrained", None)
        env = {}
        for item in args.data:
            name, _, folder = item.partition("=")
            if name not in run_eval.DATA_ENV or not folder:
                raise ValueError(f"--data {item!r}: expected NAME=DIR with NAME one of {', '.join(run_eval.DATA_ENV)}")
            if not os.path.isdir(folder):
                raise ValueError(f"--data {item!r}: {folder!r} is not a directory")
            env[run_eval.DATA_ENV[name]] = str(Path(folder).resolve())
        if args.offline:
            env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        include = args.include_path if args.include_path is not None else [p for p in [run_eval.default_include_path()] if p]
        judge = None
        if any(is_judge_task(t) for t in tasks):
            judge = JudgeConfig.from_args(args.judge_url, args.judge_key, args.judge_model)
        extra = list(args.lmms_eval_args)
        if extra and extra[0] == "--":
            extra = extra[1:]
        request = run_eval.EvalRequest(
            tasks=tasks, pretrained=args.pretrained, output=Path(args.output), model=args.model, model_args=model_args,
            include_path=include, limit=args.limit, batch_size=args.batch_size, device=args.device, judge=judge,
            env=env, extra_args=extra, table=Path(args.table) if args.table else None,
        )
        outcome = run_eval.run(request)
    except (run_eval.EvalRunError, JudgeError, ValueError) as exc:
        print(f"trajvlm eval: error: {exc}", file=sys.stderr)
        return 1
    print(outcome.table)
    print(f"results: {outcome.results_file}\ntable: {outcome.table_file}")
    return 0
