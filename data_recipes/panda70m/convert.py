"""Convert Panda-70M into TrajVLM caption samples (stage 1, "plain" style: `<video>` then the caption).

Two inputs, pick the one matching how the videos were obtained:

1. `--csv panda70m_*.csv` -- the upstream list (https://github.com/snap-research/Panda-70M, dataset_dataloading).
   One row per source YouTube video, columns `videoID,url,timestamp,caption,matching_score` (the training
   CSVs may carry more columns, ignored). `timestamp`, `caption` and `matching_score` are Python-literal lists,
   one entry per clip:
       timestamp:      "[['0:00:00.000', '0:00:05.005'], ['0:00:05.005', '0:00:10.010']]"
       caption:        "['A man is talking.', 'A dog runs on grass.']"
       matching_score: "[0.45, 0.51]"
   `--layout full` (default): the whole source video is `<video_folder>/<videoID>.mp4` (`--video_template`)
   and each clip becomes a sample with `start`/`end` seconds (the dataset decodes only that window).
   `--layout clips`: every clip is its own file, `--video_template` default `{videoID}/{videoID}_{clip:05d}.mp4`.
2. `--downloaded DIR` -- the output of Panda-70M's video2dataset (`DIR/<shard>/<key>_<clip>.mp4` with a
   `.txt` caption and a `.json` meta file next to each clip). Every mp4 with a caption becomes a sample.

    python data_recipes/panda70m/convert.py --csv panda70m_validation.csv --out panda70m_val.json [--min_score 0.43]
    python data_recipes/panda70m/convert.py --downloaded /data/panda70m_val --out panda70m_val.json

Sample: {"id": "<videoID>_<clip:05d>", "video": ..., ["start": s, "end": e,] "conversations":
[{"from": "human", "value": "<video>"}, {"from": "gpt", "value": caption}]} (`--prompt` adds an instruction
after the placeholder). Malformed rows stop the conversion naming their CSV line (or are counted and listed
with `--skip_bad_rows`).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import math
import os
import sys
from pathlib import Path

from trajvlm.data.dataset import validate_record
from trajvlm.data.mixture import DataFormatError, write_records
from trajvlm.data.recipes import run_conversion

VIDEO_TOKEN = "<video>"
REQUIRED_COLUMNS = ("videoID", "timestamp", "caption")
LAYOUTS = ("full", "clips")
DEFAULT_TEMPLATES = {"full": "{videoID}.mp4", "clips": "{videoID}/{videoID}_{clip:05d}.mp4"}


def parse_time(value) -> float:
    """'H:MM:SS.fff' (or 'MM:SS', or a number) -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        parts = value.strip().split(":")
        try:
            if not 1 <= len(parts) <= 3 or any(p.strip().startswith(("-", "+")) for p in parts):
                raise ValueError
            nums = [float(p) for p in parts]
            if any(not math.isfinite(n) or n < 0 for n in nums) or any(n >= 60 for n in nums[1:]):
                raise ValueError
        except ValueError:
            raise ValueError(f"bad time {value!r} (expected H:MM:SS.fff)") from None
        seconds = 0.0
        for n in nums:
            seconds = seconds * 60 + n
    else:
        raise ValueError(f"bad time {value!r} (expected H:MM:SS.fff)")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"bad time {value!r}")
    return seconds


def _literal_list(text: str, column: str) -> list:
    try:
        value = ast.literal_eval(text) if isinstance(text, str) else None
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"column {column!r} is not a list literal ({type(e).__name__})") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"column {column!r} must be a list, got {text!r:.80}")
    return list(value)


def _conversation(caption: str, prompt: str | None) -> list[dict]:
    human = f"{VIDEO_TOKEN}\n{prompt}" if prompt else VIDEO_TOKEN
    return [{"from": "human", "value": human}, {"from": "gpt", "value": caption}]


def row_to_samples(row: dict, *, layout: str, template: str, prompt: str | None, min_score: float | None) -> tuple[list[dict], int]:
    """One CSV row -> (samples, clips dropped by min_score). Raises ValueError with the reason."""
    vid = (row.get("videoID") or "").strip()
    if not vid:
        raise ValueError("empty videoID")
    stamps = _literal_list(row.get("timestamp"), "timestamp")
    captions = _literal_list(row.get("caption"), "caption")
    if len(stamps) != len(captions):
        raise ValueError(f"{len(stamps)} timestamps but {len(captions)} captions")
    scores = None
    if row.get("matching_score") not in (None, ""):
        scores = _literal_list(row["matching_score"], "matching_score")
        if len(scores) != len(captions):
            raise ValueError(f"{len(scores)} matching scores but {len(captions)} captions")
    samples, dropped = [], 0
    for k, (span, caption) in enumerate(zip(stamps, captions)):
        if not (isinstance(span, (list, tuple)) and len(span) == 2):
            raise ValueError(f"clip {k}: timestamp must be [start, end], got {span!r}")
        start, end = parse_time(span[0]), parse_time(span[1])
        if start >= end:
            raise ValueError(f"clip {k}: start {span[0]} is not before end {span[1]}")
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"clip {k}: empty caption")
        if min_score is not None and scores is not None and float(scores[k]) < min_score:
            dropped += 1
            continue
        sample = {"id": f"{vid}_{k:05d}", "video": template.format(videoID=vid, clip=k)}
        if layout == "full":
            sample["start"], sample["end"] = round(start, 3), round(end, 3)
        sample["conversations"] = _conversation(caption.strip(), prompt)
        if scores is not None:
            sample["matching_score"] = float(scores[k])
        samples.append(sample)
    return samples, dropped


def convert_csv(
    csv_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    layout: str = "full",
    video_template: str | None = None,
    prompt: str | None = None,
    min_score: float | None = None,
    skip_bad_rows: bool = False,
) -> dict:
    if layout not in LAYOUTS:
        raise DataFormatError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    template = video_template or DEFAULT_TEMPLATES[layout]
    try:
        template.format(videoID="v", clip=0)
    except (KeyError, IndexError, ValueError) as e:
        raise DataFormatError(f"video_template {template!r} may only use {{videoID}} and {{clip}} ({e!r})") from e
    if layout == "clips" and template.format(videoID="v", clip=0) == template.format(videoID="v", clip=1):
        raise DataFormatError(f"--layout clips needs {{clip}} in video_template, got {template!r}")
    samples, bad, rows, dropped = [], [], 0, 0
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(f"{csv_path}: missing column(s) {missing}; header is {reader.fieldnames}")
        for row in reader:
            rows += 1
            try:
                new, n_drop = row_to_samples(row, layout=layout, template=template, prompt=prompt, min_score=min_score)
                for s in new:
                    validate_record(s, where=f"{csv_path}: line {reader.line_num}", video_token=VIDEO_TOKEN)
            except (ValueError, KeyError, IndexError) as e:  # DataFormatError is a ValueError
                msg = f"{csv_path}: line {reader.line_num} (data row {rows}, videoID={row.get('videoID')!r}): {e}"
                if not skip_bad_rows:
                    raise DataFormatError(msg) from e
                bad.append(msg)
                continue
            samples.extend(new)
            dropped += n_drop
    if not samples:
        raise DataFormatError(f"no sample converted from {csv_path} ({rows} rows, {len(bad)} bad, {dropped} below min_score)")
    write_records(out, samples)
    return {"rows": rows, "converted": len(samples), "bad_rows": len(bad), "below_min_score": dropped,
            "bad_examples": bad[:10], "layout": layout, "out": str(out)}


def convert_downloaded(
    folder: str | os.PathLike, out: str | os.PathLike, *, prompt: str | None = None, min_score: float | None = None
) -> dict:
    """video2dataset output folder -> samples with `video` relative to `folder` (the training --video_folder)."""
    folder = Path(folder)
    samples, no_caption, dropped, clips = [], [], 0, 0
    for mp4 in sorted(folder.rglob("*.mp4")):
        clips += 1
        txt, meta_path = mp4.with_suffix(".txt"), mp4.with_suffix(".json")
        caption = txt.read_text(encoding="utf-8").strip() if txt.is_file() else ""
        meta = {}
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{meta_path}: not valid JSON ({e.msg})") from e
            caption = caption or str(meta.get("caption") or "").strip()
        if not caption:
            no_caption.append(str(mp4.relative_to(folder)))
            continue
        score = meta.get("matching_score")
        if min_score is not None and score is not None and float(score) < min_score:
            dropped += 1
            continue
        sample = {"id": mp4.stem, "video": mp4.relative_to(folder).as_posix(), "conversations": _conversation(caption, prompt)}
        if score is not None:
            sample["matching_score"] = float(score)
        validate_record(sample, where=str(mp4), video_token=VIDEO_TOKEN)
        samples.append(sample)
    if not samples:
        raise DataFormatError(f"no captioned .mp4 clip found under {folder} ({clips} mp4 files, {len(no_caption)} without caption)")
    write_records(out, samples)
    return {"clips": clips, "converted": len(samples), "without_caption": len(no_caption), "below_min_score": dropped,
            "without_caption_examples": no_caption[:10], "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", help="panda70m_{training_*,validation,testing}.csv")
    src.add_argument("--downloaded", help="output folder of Panda-70M's video2dataset")
    ap.add_argument("--out", required=True, help="output .json (or .jsonl)")
    ap.add_argument("--layout", choices=LAYOUTS, default="full", help="--csv: whole source videos + start/end, or one file per clip")
    ap.add_argument("--video_template", help="--csv: video path pattern with {videoID} and {clip}")
    ap.add_argument("--prompt", help="instruction after <video> in the human turn (default: none, plain style)")
    ap.add_argument("--min_score", type=float, help="drop clips whose matching_score is below this")
    ap.add_argument("--skip_bad_rows", action="store_true", help="--csv: count and list malformed rows instead of stopping")
    args = ap.parse_args(argv)
    if args.csv:
        return run_conversion(lambda: convert_csv(args.csv, args.out, layout=args.layout, video_template=args.video_template,
                                                  prompt=args.prompt, min_score=args.min_score, skip_bad_rows=args.skip_bad_rows))
    return run_conversion(lambda: convert_downloaded(args.downloaded, args.out, prompt=args.prompt, min_score=args.min_score))


if __name__ == "__main__":
    sys.exit(main())
