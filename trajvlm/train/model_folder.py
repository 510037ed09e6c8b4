"""Writing a new model folder derived from a saved one (deepen, add_shape_code, replace_segmenter, store_dtype,
average): never over an existing folder, every file the writer does not produce itself copied unchanged, and the
saved weights read with an error that names the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

WEIGHTS = "model.safetensors"
# the files save_pretrained writes; a tool that re-saves a loaded model copies every other file of the folder
SAVED = {"config.json", "generation_config.json", WEIGHTS}


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


def config_file(model_dir: Path) -> Path:
    """MODEL_DIR/config.json; FileNotFoundError naming the folder if it is absent."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json (a saved TrajVLM folder is expected)")
    return path


def weights_file(model_dir: Path) -> Path:
    """MODEL_DIR/model.safetensors; FileNotFoundError (naming the folder, and a sharded checkpoint) if it is absent."""
    src = Path(model_dir) / WEIGHTS
    if not src.is_file():
        sharded = (Path(model_dir) / f"{WEIGHTS}.index.json").is_file()
        raise FileNotFoundError(f"{model_dir}: no {WEIGHTS}" + (" (sharded checkpoints are not supported)" if sharded else
                                                                  " (a saved TrajVLM folder is expected)"))
    return src


def read_weights(src: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """A safetensors file -> (tensors, metadata); ValueError naming the file if it is not readable safetensors."""
    try:
        with safe_open(src, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118 (a safe_open handle)
    except SafetensorError as e:
        raise _unreadable(src, e) from e


def load_model(model_dir: Path, model_class=None):
    """MODEL_CLASS.from_pretrained(MODEL_DIR) (default TrajVLMForConditionalGeneration), with a missing or
    unreadable model.safetensors reported as weights_file / read_weights do (naming the file) instead of
    safetensors' bare message."""
    if model_class is None:
        from trajvlm.model import TrajVLMForConditionalGeneration as model_class

    src = weights_file(model_dir)
    try:
        return model_class.from_pretrained(model_dir)
    except SafetensorError as e:
        raise _unreadable(src, e) from e


def _unreadable(src: Path, error: Exception) -> ValueError:
    return ValueError(f"{src}: not a readable safetensors file ({error})")
