"""The `trajvlm` console script.

Each subcommand lives in its own module under `trajvlm/commands/` exposing
`register(subparsers)`, which adds an argparse sub-parser and sets `func(args) -> int`.
Those modules import only argparse at module level; heavy imports (torch, gradio,
lmms_eval) happen inside `func`, so `trajvlm --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order = order in `trajvlm --help`. Add a subcommand by adding its module here.
SUBCOMMAND_MODULES: list[str] = [
    "trajvlm.commands.synth",
    "trajvlm.commands.demo",
    "trajvlm.commands.chat",
    "trajvlm.commands.tokenize",
    "trajvlm.commands.eval",
    "trajvlm.commands.bench",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trajvlm", description="TrajVLM: trajectory-token video LLM.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
