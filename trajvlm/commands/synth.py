"""`trajvlm synth`: generate the ShapesQA synthetic dataset (same as `python -m trajvlm.data.synthetic`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="generate ShapesQA videos, masks, captions and QA",
        add_help=False,
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments of `python -m trajvlm.data.synthetic` (try --help)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from trajvlm.data.synthetic.__main__ import main

    return int(main(args.args) or 0)
