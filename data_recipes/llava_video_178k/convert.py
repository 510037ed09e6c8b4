"""Convert LLaVA-Video-178K annotation files into TrajVLM's LLaVA-Video JSON.

Upstream (https://huggingface.co/datasets/lmms-lab/LLaVA-Video-178K), per subset folder such as
`0_30_s_academic_v0_1/`: caption / open-ended / multiple-choice files (`*cap*.json`, `*oe*.json`, `*mc*.json`,
e.g. `0_30_s_youtube_v0_1_cap_processed.json`, `0_30_s_youtube_oe_v0_1_qa_processed.json`; lists of records,
`.jsonl` is read too) and `*_videos_<k>.tar.gz` archives extracted in that folder. A record:

    {"id": "...", "data_source": "0_30_s_academic_v0_1", "video": "academic_source/Charades/ABC12.mp4",
     "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]}

`video` is relative to the subset folder. The output keeps id/data_source/conversations, rewrites the `<image>`
placeholder to `<video>` (moved to the front of its turn, LLaVA's convention) and makes `video` relative to
`--root` (the dataset's top folder), so one `--video_folder <root>` serves every subset.

    python data_recipes/llava_video_178k/convert.py --root /data/LLaVA-Video-178K \\
        --inputs /data/LLaVA-Video-178K/0_30_s_academic_v0_1/*_processed.json --out llava_video_0_30_academic.json

Malformed records (no conversations, no video, placeholder count != 1, ...) stop the conversion with their
file and record number, or are counted and listed with `--skip_bad_rows`. `--check_videos` drops (and
counts) records whose video file is missing, e.g. an archive that was not downloaded.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trajvlm.data.dataset import normalize_conversations, validate_record
from trajvlm.data.mixture import DataFormatError, read_records, write_records
from trajvlm.data.recipes import run_conversion

SOURCE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"


def convert_record(rec: dict, *, prefix: str, where: str, fallback_id: str) -> dict:
    """One upstream record -> ours. Raises DataFormatError (prefixed with `where`)."""
    if not isinstance(rec, dict):
        raise DataFormatError(f"{where}: not a JSON object")
    video = rec.get("video")
    if not isinstance(video, str) or not video:
        raise DataFormatError(f"{where}: missing 'video' path")
    if not Path(video).suffix:
        raise DataFormatError(
            f"{where}: 'video' {video!r} has no file extension; frame folders (LLaVA-Hound) are not supported by load_video"
        )
    turns = normalize_conversations(rec.get("conversations"), where=where, source_tokens=(SOURCE_TOKEN,), video_token=VIDEO_TOKEN)
    out = {"id": str(rec.get("id") or fallback_id), "video": f"{prefix}/{video}" if prefix else video, "conversations": turns}
    if "data_source" in rec:
        out["data_source"] = rec["data_source"]
    validate_record(out, where=where, video_token=VIDEO_TOKEN)  # placeholder count, roles, gpt turn
    return out


def convert(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    root: str | os.PathLike,
    skip_bad_rows: bool = False,
    check_videos: bool = False,
) -> dict:
    """Convert `inputs` (json/jsonl under `root`) into one file `out`. Returns the report (counts)."""
    root = Path(root).resolve()
    samples, bad, missing = [], [], []
    per_file = {}
    for path in map(Path, inputs):
        try:
            prefix = path.resolve().parent.relative_to(root).as_posix()
        except ValueError as e:
            raise DataFormatError(f"{path} is not inside --root {root}; videos are resolved relative to the root") from e
        prefix = "" if prefix == "." else prefix
        records = read_records(path)
        kept = 0
        for i, rec in enumerate(records):
            where = f"{path}: record #{i}" + (f" (id={rec.get('id')!r})" if isinstance(rec, dict) else "")
            try:
                sample = convert_record(rec, prefix=prefix, where=where, fallback_id=f"{path.stem}-{i}")
            except DataFormatError as e:
                if not skip_bad_rows:
                    raise
                bad.append(str(e))
                continue
            if check_videos and not (root / sample["video"]).is_file():
                missing.append(sample["video"])
                continue
            samples.append(sample)
            kept += 1
        per_file[str(path)] = {"records": len(records), "converted": kept}
    if not samples:
        raise DataFormatError(f"no sample converted from {len(per_file)} file(s) ({len(bad)} bad, {len(missing)} missing videos)")
    write_records(out, samples)
    return {
        "converted": len(samples),
        "bad_rows": len(bad),
        "missing_videos": len(missing),
        "files": per_file,
        "bad_examples": bad[:10],
        "missing_examples": missing[:10],
        "out": str(out),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="LLaVA-Video-178K top folder (becomes --video_folder for training)")
    ap.add_argument("--inputs", nargs="+", required=True, help="*_processed.json / .jsonl annotation files under --root")
    ap.add_argument("--out", required=True, help="output .json (or .jsonl)")
    ap.add_argument("--skip_bad_rows", action="store_true", help="count and list malformed records instead of stopping")
    ap.add_argument("--check_videos", action="store_true", help="drop records whose video file is missing under --root")
    args = ap.parse_args(argv)
    return run_conversion(lambda: convert(args.inputs, args.out, root=args.root, skip_bad_rows=args.skip_bad_rows,
                                          check_videos=args.check_videos))


if __name__ == "__main__":
    sys.exit(main())
