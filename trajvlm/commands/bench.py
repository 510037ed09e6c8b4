"""`trajvlm bench`: efficiency accounting and the TrajVLM-vs-patch-baseline benchmarks.

    trajvlm bench efficiency --preset so400m-llama3-8b --frames 16 64 256 1024
    trajvlm bench tokens     [--frames ...] [--out eval/results/tokens_vs_frames.md --plot ...png]
    trajvlm bench latency    [--frames 256 1024 --repeats 3]
    trajvlm bench train      [--frames 16 64]
    trajvlm bench segmenter  [--num-videos 8]
    trajvlm bench accuracy   --model TRAJVLM_DIR --baseline PATCH_DIR --data SHAPESQA_DIR   (through lmms-eval)

Each benchmark prints its table and, with --out, writes a markdown record (command, machine, raw numbers).
The same benchmarks run as `python eval/bench_<name>.py ...`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from trajvlm.eval.bench.args import BENCHMARKS  # argparse-only module

    p = subparsers.add_parser("bench", help="efficiency accounting and TrajVLM-vs-patch benchmarks",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="bench", metavar="BENCHMARK")
    for name, (module, help_text, add_arguments) in BENCHMARKS.items():
        b = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(b)
        b.set_defaults(func=_run, bench_module=module, bench_parser=b)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _run(args: argparse.Namespace) -> int:
    import importlib

    return int(importlib.import_module(args.bench_module).run_cli(args, args.bench_parser) or 0)
