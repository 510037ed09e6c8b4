"""Writing a new model folder derived from a saved one (deepen, replace_segmenter): never over an existing folder,
and every file the writer does not produce itself copied unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path


def check_new_folder(source: Path, out: Path) -> None:
    """Refuse OUT when it is SOURCE itself or an existing non-empty folder (nothing is overwritten)."""
    if Path(out).resolve() == Path(source).resolve():
        raise ValueError("--out must be a new folder, not --model itself")
    if Path(out).exists() and any(Path(out).iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: --out must be a new folder (nothing is overwritten)")


def copy_other_files(source: Path, out: Path, written: set[str]) -> None:
    """Copy SOURCE's files (tokenizer, processor configs, ...) to OUT, except the ones named in `written`."""
    Path(out).mkdir(parents=True, exist_ok=True)
    for f in Path(source).iterdir():
        if f.is_file() and f.name not in written:
            shutil.copy2(f, Path(out) / f.name)
