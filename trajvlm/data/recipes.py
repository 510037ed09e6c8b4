"""Shared command-line ending of the data_recipes/*/convert.py converters."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from .mixture import DataFormatError


def run_conversion(convert: Callable[[], dict]) -> int:
    """Run `convert()` and print its report as JSON (exit code 0); a DataFormatError is printed to stderr as
    `error: ...` instead (exit code 2)."""
    try:
        report = convert()
    except DataFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0
