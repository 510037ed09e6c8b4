"""Training-data files: LLaVA-Video JSON / JSONL records and YAML mixtures of several of them.

A mixture is LLaVA-Video's own YAML style, plus per-dataset media folders and `sampling_ratio`:

```yaml
video_folder: /data/videos            # optional default for every entry (relative: to this YAML's folder)
image_folder: /data/images            # optional default for image samples
datasets:
  - json_path: /data/LLaVA-Video-178K/0_30_s_academic_v0_1_cap.json   # .json (list) or .jsonl
    video_folder: /data/LLaVA-Video-178K/0_30_s_academic_v0_1
    sampling_strategy: "first:10%"    # all | first:N | first:N% | end:N | end:N% | random:N | random:N%
  - json_path: shapesqa/train_qa.json # relative paths are relative to the YAML file
    sampling_ratio: 2.0               # 0 < r: floor(r) full copies + a random round(frac(r) * n) subset
```

`sampling_strategy` and `sampling_ratio` are exclusive (use one). Percentages round up (`first:1%` of 50
records is 1 record). `random:*` and fractional ratios draw without replacement, deterministically from the
`seed` and the entry's position; the kept records stay in file order. Unknown keys are an error (a typo
would otherwise be ignored). Every entry's `video_folder`/`image_folder` falls back to the top-level one,
then to the folder passed by the caller (`--video_folder`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


class DataFormatError(ValueError):
    """A training-data file or record is malformed. The message names the file and the record (id, index/line)."""


# ---------------------------------------------------------------------------------------------------------------
# record files


def read_records(path: str | os.PathLike) -> list[dict]:
    """Records of a `.json` file (a list of objects) or a `.jsonl` file (one object per line; blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"data file not found: {str(path)!r}")
    if path.suffix == ".jsonl":
        records = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataFormatError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from e
                if not isinstance(rec, dict):
                    raise DataFormatError(f"{path}: line {lineno} must be a JSON object, got {type(rec).__name__}")
                records.append(rec)
        return records
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: a LLaVA-Video JSON file must hold a list of samples, got {type(data).__name__}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataFormatError(f"{path}: sample #{i} must be a JSON object, got {type(rec).__name__}")
    return data


def write_records(path: str | os.PathLike, records: list[dict]) -> None:
    """Write records as `.jsonl` (one per line) when the suffix says so, else as one JSON list."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        if path.suffix == ".jsonl":
            f.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)
        else:
            json.dump(records, f, ensure_ascii=False)
    os.replace(tmp, path)  # never leave a half-written data file behind


# ---------------------------------------------------------------------------------------------------------------
# sampling


@dataclass(frozen=True)
class SamplingStrategy:
    kind: str  # "all" | "first" | "end" | "random"
    number: float | None = None  # count, or percent when `percent`
    percent: bool = False

    def count(self, total: int) -> int:
        if self.kind == "all":
            return total
        n = math.ceil(self.number * total / 100.0) if self.percent else int(self.number)
        return min(n, total)


def parse_sampling_strategy(text: str) -> SamplingStrategy:
    """'all' | 'first:N' | 'first:N%' | 'end:N' | 'end:N%' | 'random:N' | 'random:N%'."""
    text = str(text).strip()
    if text == "all":
        return SamplingStrategy("all")
    kind, sep, num = text.partition(":")
    if not sep or kind not in ("first", "end", "random"):
        raise DataFormatError(f"sampling_strategy must be all, first:N, end:N or random:N (N may end in %), got {text!r}")
    percent = num.endswith("%")
    num = num[:-1] if percent else num
    try:
        value = float(num) if percent else int(num)
    except ValueError as e:
        raise DataFormatError(f"sampling_strategy {text!r}: {num!r} is not a {'number' if percent else 'whole number'}") from e
    if value <= 0 or (percent and value > 100):
        raise DataFormatError(f"sampling_strategy {text!r}: N must be > 0{' and <= 100%' if percent else ''}")
    return SamplingStrategy(kind, value, percent)


def sample_indices(total: int, *, strategy: str = "all", ratio: float | None = None, seed: int = 0, salt: int = 0) -> np.ndarray:
    """Which of `total` records a mixture entry keeps: `(n,)` int64, possibly with repeats when ratio > 1."""
    rng = np.random.default_rng([seed, salt])
    if ratio is not None:
        if not (isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and math.isfinite(ratio) and ratio > 0):
            raise DataFormatError(f"sampling_ratio must be a positive number, got {ratio!r}")
        copies, frac = int(ratio), ratio - int(ratio)
        extra = np.sort(rng.choice(total, size=round(frac * total), replace=False)) if total else np.zeros(0, np.int64)
        return np.concatenate([np.tile(np.arange(total), copies), extra]).astype(np.int64)
    s = parse_sampling_strategy(strategy)
    n = s.count(total)
    if s.kind != "all" and not s.percent and int(s.number) > total:
        logger.warning("sampling_strategy %r asks for %d records but the file has %d; keeping all", strategy, int(s.number), total)
    if s.kind in ("all",):
        return np.arange(total, dtype=np.int64)
    if s.kind == "first":
        return np.arange(n, dtype=np.int64)
    if s.kind == "end":
        return np.arange(total - n, total, dtype=np.int64)
    return np.sort(rng.choice(total, size=n, replace=False)).astype(np.int64)  # random


# ---------------------------------------------------------------------------------------------------------------
# mixtures


@dataclass
class DatasetSpec:
    """One entry of a mixture YAML (paths already resolved)."""

    json_path: str
    video_folder: str | None = None
    image_folder: str | None = None
    sampling_strategy: str = "all"
    sampling_ratio: float | None = None
    name: str | None = None  # for logs; defaults to the JSON file name


@dataclass
class DataSource:
    """The records one JSON file contributes, after sampling."""

    spec: DatasetSpec
    records: list[dict]
    record_indices: np.ndarray = field(repr=False)  # (n,) position of each record in its file (error messages)
    num_records_in_file: int = 0


_SPEC_KEYS = {f.name for f in fields(DatasetSpec)}
_TOP_KEYS = {"datasets", "video_folder", "image_folder"}


def _resolve(base: Path, p: str | None) -> str | None:
    if p is None:
        return None
    p = os.path.expanduser(str(p))
    return p if os.path.isabs(p) else str(base / p)


def load_mixture_spec(yaml_path: str | os.PathLike) -> list[DatasetSpec]:
    """Parse a mixture YAML into `DatasetSpec`s; relative paths are resolved against the YAML's folder."""
    import yaml  # core dependency, imported here to keep `import trajvlm.data.mixture` light

    yaml_path = Path(yaml_path)
    if not yaml_path.is_file():
        raise DataFormatError(f"mixture file not found: {str(yaml_path)!r}")
    with open(yaml_path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise DataFormatError(f"{yaml_path}: not valid YAML ({e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), list) or not doc["datasets"]:
        raise DataFormatError(f"{yaml_path}: a mixture needs a non-empty top-level `datasets:` list")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise DataFormatError(f"{yaml_path}: unknown top-level keys {sorted(unknown)} (allowed: {sorted(_TOP_KEYS)})")
    base = yaml_path.resolve().parent
    default_video, default_image = _resolve(base, doc.get("video_folder")), _resolve(base, doc.get("image_folder"))
    specs = []
    for i, entry in enumerate(doc["datasets"]):
        where = f"{yaml_path}: datasets[{i}]"
        if not isinstance(entry, dict) or "json_path" not in entry:
            raise DataFormatError(f"{where} must be a mapping with a `json_path`")
        unknown = set(entry) - _SPEC_KEYS
        if unknown:
            raise DataFormatError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_SPEC_KEYS)})")
        if "sampling_ratio" in entry and entry.get("sampling_strategy", "all") != "all":
            raise DataFormatError(f"{where}: give either sampling_strategy or sampling_ratio, not both")
        strategy = str(entry.get("sampling_strategy", "all"))
        try:
            parse_sampling_strategy(strategy)
        except DataFormatError as e:
            raise DataFormatError(f"{where}: {e}") from e
        json_path = _resolve(base, entry["json_path"])
        specs.append(
            DatasetSpec(
                json_path=json_path,
                video_folder=_resolve(base, entry.get("video_folder")) or default_video,
                image_folder=_resolve(base, entry.get("image_folder")) or default_image,
                sampling_strategy=strategy,
                sampling_ratio=entry.get("sampling_ratio"),
                name=entry.get("name") or Path(json_path).name,
            )
        )
    return specs


def load_sources(
    data_path: str | os.PathLike,
    *,
    video_folder: str | None = None,
    image_folder: str | None = None,
    seed: int = 0,
) -> list[DataSource]:
    """The records behind `data_path`: a `.yaml`/`.yml` mixture or a single `.json`/`.jsonl` file.

    `video_folder`/`image_folder` are the fallbacks for entries that name none (the `--video_folder` flag).
    """
    data_path = Path(data_path)
    if data_path.suffix in (".yaml", ".yml"):
        specs = load_mixture_spec(data_path)
    elif data_path.suffix in (".json", ".jsonl"):
        specs = [DatasetSpec(json_path=str(data_path), name=data_path.name)]
    else:
        raise DataFormatError(f"data_path must be a .json, .jsonl or .yaml mixture file, got {str(data_path)!r}")
    sources = []
    for salt, spec in enumerate(specs):
        spec.video_folder = spec.video_folder or video_folder
        spec.image_folder = spec.image_folder or image_folder or spec.video_folder
        records = read_records(spec.json_path)
        idx = sample_indices(
            len(records), strategy=spec.sampling_strategy, ratio=spec.sampling_ratio, seed=seed, salt=salt
        )
        sources.append(DataSource(spec=spec, records=[records[i] for i in idx], record_indices=idx, num_records_in_file=len(records)))
        logger.info("data: %s -> %d of %d records (%s)", spec.name, len(idx), len(records),
                    f"ratio {spec.sampling_ratio}" if spec.sampling_ratio is not None else spec.sampling_strategy)
    return sources
