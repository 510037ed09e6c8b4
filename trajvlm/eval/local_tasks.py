"""Helpers shared by the local lmms-eval task utils under eval/tasks/ (`from trajvlm.eval.local_tasks import ...`:
lmms-eval imports each task's `utils.py` as a stand-alone module, so the shared code lives in the installed package).

How a local task finds its data: lmms-eval cannot expand variables in a YAML, so each local YAML loads a
one-row stub (`eval/tasks/_stub.json`) and its `process_docs` replaces it with the real annotation
file found under the folder named by an environment variable (`TRAJVLM_VIDEOMME_DIR`, ...). The same
folder holds the videos, in the layout of the official lmms-eval cache (see data_recipes/*/README.md).
"""

from __future__ import annotations

import glob
import os

ANNOTATION_PATTERNS = ("test.parquet", "test.json", "test.jsonl", "test-*.parquet", "*/test.parquet", "*/test-*.parquet", "*/test.json", "*/test.jsonl")


class LocalDataError(RuntimeError):
    """A local task's data folder is unset, missing, or holds no annotation file."""


def data_root(env_var: str, what: str) -> str:
    """The folder named by `env_var`; LocalDataError when unset or missing."""
    root = os.environ.get(env_var)
    if not root:
        raise LocalDataError(f"{what}: set {env_var} to the folder holding the annotations and videos (see data_recipes/)")
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise LocalDataError(f"{what}: {env_var}={root!r} is not a directory")
    return root


def find_annotations(root: str, what: str, patterns: tuple[str, ...] = ANNOTATION_PATTERNS) -> list[str]:
    """The annotation file(s) in `root` matched by the first pattern that matches anything."""
    for pattern in patterns:
        found = sorted(glob.glob(os.path.join(root, pattern)))
        if found:
            return found
    raise LocalDataError(f"{what}: no annotation file in {root!r} (looked for {', '.join(patterns)})")


def load_docs(files: list[str]):
    """A `datasets.Dataset` from parquet, JSON (list of objects) or JSON-lines files."""
    import datasets

    if all(f.endswith(".parquet") for f in files):
        return datasets.Dataset.from_parquet(files)
    if all(f.endswith((".json", ".jsonl")) for f in files):
        return datasets.Dataset.from_json(files)
    raise LocalDataError(f"annotation files must all be .parquet or all .json/.jsonl, got {files}")


def local_docs(env_var: str, what: str, patterns: tuple[str, ...] = ANNOTATION_PATTERNS):
    """`process_docs` body: ignore the stub, return the docs of the folder named by `env_var`."""
    root = data_root(env_var, what)
    return load_docs(find_annotations(root, what, patterns))


def video_path(root: str, relative: str, alternatives: tuple[str, ...] = ()) -> str:
    """`root/relative`, or the first existing alternative extension; the primary path when none exists
    (the trajvlm model then reports the missing file with the task and doc id)."""
    primary = os.path.join(root, relative)
    if os.path.exists(primary):
        return primary
    stem, _ = os.path.splitext(primary)
    for ext in alternatives:
        if os.path.exists(stem + ext):
            return stem + ext
    return primary
