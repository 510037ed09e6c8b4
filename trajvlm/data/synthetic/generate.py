"""Write a ShapesQA dataset folder (layout fixed in docs/CONTRACTS.md "data/synthetic").

```
DIR/videos/<split>/<id>.mp4          libx264 video, (T,H,W,3) frames
DIR/videos/<split>/<id>_mask.npz     "masks": (T,H,W) uint16 instance ids, 0 = background
DIR/videos/<split>/<id>_graph.npz    "graph": (N,T) int32, row n = instance n's mask id (n+1) in frame t, 0 = absent
DIR/<split>_captions.json            LLaVA-Video JSON, stage 1 ("<video>\\nDescribe the video." -> caption)
DIR/<split>_qa.json                  LLaVA-Video JSON, one sample per question, + category/question/options/answer
DIR/<split>_scenes.json              (extra) each video's scene spec: objects, timings, directions, background
DIR/meta.json                        generator arguments, split sizes, question counts, vocabulary
```

Video `index` is generated from its own random streams seeded by (seed, index), so a video does not
depend on `num_videos` or on the split it lands in, and `workers` does not change any output byte.
Splits: indices are cut into blocks (10 for 0.8/0.1/0.1) whose slots are assigned to splits by a
seeded permutation, so split sizes are exact per block and a larger N keeps the earlier assignment.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from trajvlm.data.synthetic.questions import (
    ANSWER_INSTRUCTION,
    CAPTION_PROMPT,
    CATEGORIES,
    LETTERS,
    Question,
    make_caption,
    make_questions,
)
from trajvlm.data.synthetic.render import occlusion_pairs, render_scene
from trajvlm.data.synthetic.sampler import sample_scene
from trajvlm.data.synthetic.scene import SceneConfig, SceneSpec, describe_vocabulary, scene_to_dict

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1
# tags that separate the random streams derived from (seed, tag, index)
_SCENE_STREAM, _QUESTION_STREAM, _SPLIT_STREAM = 0, 1, 2


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that determines a dataset's bytes (stored in meta.json["generator"])."""

    num_videos: int
    seed: int
    size: int = 64
    frames: int = 16
    needle_frames: int = 64
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    needle_fraction: float = 0.2  # share of videos that are long needle videos
    fps: float = 8.0
    crf: int = 12
    min_objects: int = 2
    max_objects: int = 5

    def __post_init__(self) -> None:
        if self.num_videos < 1:
            raise ValueError(f"num_videos must be >= 1, got {self.num_videos}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if len(self.splits) != 3 or min(self.splits) < 0 or not math.isclose(sum(self.splits), 1.0, abs_tol=1e-6):
            raise ValueError(f"splits must be 3 non-negative fractions (train,val,test) summing to 1, got {self.splits}")
        if not 0.0 <= self.needle_fraction <= 1.0:
            raise ValueError(f"needle_fraction must be in [0, 1], got {self.needle_fraction}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        self.scene_config()  # validates size / frames / object counts

    def scene_config(self) -> SceneConfig:
        return SceneConfig(size=self.size, num_frames=self.frames, needle_frames=self.needle_frames,
                           min_objects=self.min_objects, max_objects=self.max_objects)


@dataclass
class VideoExample:
    """One generated video in memory (what `generate_dataset` writes for an index)."""

    index: int
    video_id: str
    scene: SceneSpec
    frames: np.ndarray  # (T,H,W,3) uint8 RGB, before encoding
    masks: np.ndarray  # (T,H,W) uint16
    graph: np.ndarray  # (N,T) int32
    caption: str
    questions: list[Question]


def video_id(seed: int, index: int) -> str:
    return f"s{seed}_{index:06d}"


def make_example(seed: int, index: int, cfg: GeneratorConfig) -> VideoExample:
    """Scene, render, caption and questions of video `index` (independent of num_videos and split)."""
    rng = np.random.default_rng([seed, _SCENE_STREAM, index])
    needle = bool(rng.random() < cfg.needle_fraction)
    scene = sample_scene(rng, cfg.scene_config(), needle=needle)
    frames, masks, graph = render_scene(scene)
    caption = make_caption(scene, occlusion_pairs(scene))
    questions = make_questions(scene, np.random.default_rng([seed, _QUESTION_STREAM, index]),
                               count_range=(cfg.min_objects, cfg.max_objects))
    return VideoExample(index, video_id(seed, index), scene, frames, masks, graph, caption, questions)


def _block(fractions: tuple[float, ...]) -> list[int]:
    """Split counts within one block: the smallest block where the fractions are whole (<= 100)."""
    fr = [Fraction(f).limit_denominator(100) for f in fractions]
    size = math.lcm(*(f.denominator for f in fr))
    counts = [int(f * size) for f in fr]
    counts[0] += size - sum(counts)
    return counts


def split_of(seed: int, index: int, fractions: tuple[float, float, float]) -> str:
    """The split ("train"/"val"/"test") of video `index`: fixed by seed and index only."""
    counts = _block(fractions)
    block, slot = divmod(index, sum(counts))
    return _block_labels(seed, tuple(counts), block)[slot]


@lru_cache(maxsize=64)
def _block_labels(seed: int, counts: tuple[int, ...], block: int) -> tuple[str, ...]:
    """Split of every slot of one block: counts[k] slots of SPLITS[k], in a seeded random order."""
    labels = np.repeat(np.arange(len(counts)), counts)
    perm = np.random.default_rng([seed, _SPLIT_STREAM, block]).permutation(len(labels))
    return tuple(SPLITS[int(labels[j])] for j in perm)


def save_npz(path: Path, key: str, array: np.ndarray) -> None:
    """Like np.savez_compressed(path, **{key: array}) but with a fixed zip timestamp (equal arrays give
    byte-identical files) and fast deflate (level 1: masks are mostly runs of zeros)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, buf.getvalue(), compresslevel=1)


def _write_example(out_dir: Path, split: str, ex: VideoExample, cfg: GeneratorConfig) -> dict:
    """Write the mp4 + sidecars of one example; return its JSON records."""
    from trajvlm.video.writer import write_video

    rel = f"videos/{split}/{ex.video_id}"
    folder = out_dir / "videos" / split
    folder.mkdir(parents=True, exist_ok=True)
    write_video(out_dir / f"{rel}.mp4", ex.frames, fps=cfg.fps, codec="libx264", crf=cfg.crf)
    save_npz(out_dir / f"{rel}_mask.npz", "masks", ex.masks)
    save_npz(out_dir / f"{rel}_graph.npz", "graph", ex.graph)
    video = f"{rel}.mp4"
    caption = {
        "id": ex.video_id,
        "video": video,
        "conversations": [{"from": "human", "value": f"<video>\n{CAPTION_PROMPT}"}, {"from": "gpt", "value": ex.caption}],
    }
    qa = [
        {
            "id": f"{ex.video_id}_q{k}",
            "video": video,
            "conversations": [{"from": "human", "value": q.prompt()}, {"from": "gpt", "value": q.answer}],
            "category": q.category,
            "question": q.question,
            "options": q.option_lines,
            "answer": q.answer,
        }
        for k, q in enumerate(ex.questions)
    ]
    scene = {"id": ex.video_id, "video": video, "mask": f"{rel}_mask.npz", "graph": f"{rel}_graph.npz",
             "fps": cfg.fps, **scene_to_dict(ex.scene)}
    return {"split": split, "caption": caption, "qa": qa, "scene": scene}


def _job(args: tuple[str, int, GeneratorConfig]) -> dict:
    out_dir, index, cfg = args
    ex = make_example(cfg.seed, index, cfg)
    return _write_example(Path(out_dir), split_of(cfg.seed, index, cfg.splits), ex, cfg)


def _generator_record(cfg: GeneratorConfig) -> dict:
    return {**asdict(cfg), "splits": list(cfg.splits)}


def _dump(path: Path, obj) -> None:
    """JSON with one list item (sample) per line: readable, and written by the fast C encoder."""
    if isinstance(obj, list):
        text = "[\n" + ",\n".join(json.dumps(item) for item in obj) + "\n]\n" if obj else "[]\n"
    else:
        text = json.dumps(obj, indent=1) + "\n"
    path.write_text(text, encoding="utf-8")


def generate_dataset(
    out_dir: str | Path,
    num_videos: int,
    seed: int,
    *,
    size: int = 64,
    frames: int = 16,
    needle_frames: int = 64,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    needle_fraction: float = 0.2,
    fps: float = 8.0,
    crf: int = 12,
    min_objects: int = 2,
    max_objects: int = 5,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate ShapesQA into `out_dir` and return the meta dict (also written to meta.json).

    Deterministic from `seed`: same arguments give byte-identical JSON and npz files (whatever
    `workers`). `workers` > 1 renders/encodes in a process pool (fork on Linux, else spawn). If `out_dir` already holds a
    complete dataset (meta.json) made with the same arguments, nothing is done and its meta is returned;
    one made with other arguments raises FileExistsError unless `overwrite`, which first deletes its
    videos/ and JSON files.
    `progress(done, total)` is called after each video.
    """
    cfg = GeneratorConfig(num_videos=num_videos, seed=seed, size=size, frames=frames, needle_frames=needle_frames,
                          splits=tuple(float(s) for s in splits), needle_fraction=needle_fraction, fps=fps, crf=crf,
                          min_objects=min_objects, max_objects=max_objects)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    if (out / "meta.json").exists():
        old = json.loads((out / "meta.json").read_text(encoding="utf-8"))
        if not overwrite and old.get("format_version") == FORMAT_VERSION and old.get("generator") == _generator_record(cfg):
            return old  # already generated with exactly these arguments (meta.json is written last)
        if not overwrite:
            raise FileExistsError(f"{out} already holds a ShapesQA dataset made with other arguments "
                                  f"({old.get('generator')}); pass overwrite=True / --overwrite to replace it")
        shutil.rmtree(out / "videos", ignore_errors=True)
        for split in SPLITS:
            for kind in ("captions", "qa", "scenes"):
                (out / f"{split}_{kind}.json").unlink(missing_ok=True)
        (out / "meta.json").unlink()
    out.mkdir(parents=True, exist_ok=True)

    jobs = [(str(out), i, cfg) for i in range(num_videos)]
    if workers == 1:
        results = map(_job, jobs)
        pool = None
    else:
        import multiprocessing as mp

        # fork where available: workers inherit the imported modules (`import trajvlm` loads torch, slow to
        # re-import) and only use numpy + PyAV, so no torch/OpenMP state is touched after the fork
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(workers)
        results = pool.imap(_job, jobs, chunksize=4)
    records: dict[str, dict[str, list]] = {s: {"captions": [], "qa": [], "scenes": []} for s in SPLITS}
    try:
        for done, rec in enumerate(results, 1):
            bucket = records[rec["split"]]
            bucket["captions"].append(rec["caption"])
            bucket["qa"].extend(rec["qa"])
            bucket["scenes"].append(rec["scene"])
            if progress is not None:
                progress(done, num_videos)
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    files, split_meta = {}, {}
    for split in SPLITS:
        files[split] = {}
        for kind in ("captions", "qa", "scenes"):
            name = f"{split}_{kind}.json"
            _dump(out / name, records[split][kind])
            files[split][kind] = name
        qa = records[split]["qa"]
        split_meta[split] = {
            "videos": len(records[split]["captions"]),
            "needle_videos": sum(s["needle"] is not None for s in records[split]["scenes"]),
            "questions": len(qa),
            "questions_by_category": {c: sum(q["category"] == c for q in qa) for c in CATEGORIES},
            "answer_letters": {letter: sum(q["answer"] == letter for q in qa) for letter in LETTERS},
        }
    meta = {
        "dataset": "ShapesQA",
        "format_version": FORMAT_VERSION,
        "generator": _generator_record(cfg),
        "split_names": list(SPLITS),
        "splits": split_meta,
        "files": files,
        "prompts": {"caption": CAPTION_PROMPT, "answer_instruction": ANSWER_INSTRUCTION},
        "vocabulary": describe_vocabulary(cfg.scene_config()),
        "needle_visible_frames": list(cfg.scene_config().needle_length_range),
    }
    _dump(out / "meta.json", meta)
    return meta


__all__ = [
    "SPLITS",
    "GeneratorConfig",
    "VideoExample",
    "generate_dataset",
    "make_example",
    "save_npz",
    "split_of",
    "video_id",
]
