"""Convert LLaVA-Pretrain (LCS-558K, `blip_laion_cc_sbu_558k.json`) into TrajVLM image samples.

Upstream (https://huggingface.co/datasets/liuhaotian/LLaVA-Pretrain): a JSON list of

    {"id": "004539375", "image": "00453/004539375.jpg",
     "conversations": [{"from": "human", "value": "Render a clear and concise summary of the photo.\\n<image>"},
                       {"from": "gpt", "value": "select luxury furniture 3 - inch gel memory foam mattress topper"}]}

with `image` relative to the folder `images.zip` is extracted to. Each becomes an image sample (a 1-frame
video for TrajVLM): `image` kept, `<image>` replaced by `<video>` and moved to the front of the turn
(`"<video>\\nRender a clear ..."`), ids kept.

    python data_recipes/llava_558k/convert.py --input blip_laion_cc_sbu_558k.json --out llava_558k.json \\
        [--image_folder /data/LLaVA-Pretrain/images --check_images]

Malformed records stop the conversion with their record number (or are counted with `--skip_bad_rows`).
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


def convert_record(rec: dict, *, where: str, fallback_id: str) -> dict:
    if not isinstance(rec, dict):
        raise DataFormatError(f"{where}: not a JSON object")
    image = rec.get("image")
    if not isinstance(image, str) or not image:
        raise DataFormatError(f"{where}: missing 'image' path")
    if not isinstance(rec.get("conversations"), list) or len(rec["conversations"]) < 2:
        raise DataFormatError(f"{where}: 'conversations' must hold a human turn and a gpt turn")
    turns = normalize_conversations(rec["conversations"], where=where, source_tokens=(SOURCE_TOKEN,), video_token=VIDEO_TOKEN)
    out = {"id": str(rec.get("id") or fallback_id), "image": image, "conversations": turns}
    validate_record(out, where=where, video_token=VIDEO_TOKEN)
    return out


def convert(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    image_folder: str | os.PathLike | None = None,
    check_images: bool = False,
    skip_bad_rows: bool = False,
) -> dict:
    if check_images and image_folder is None:
        raise DataFormatError("--check_images needs --image_folder")
    records = read_records(input_path)
    samples, bad, missing = [], [], []
    for i, rec in enumerate(records):
        where = f"{input_path}: record #{i}" + (f" (id={rec.get('id')!r})" if isinstance(rec, dict) else "")
        try:
            sample = convert_record(rec, where=where, fallback_id=f"{Path(input_path).stem}-{i}")
        except DataFormatError as e:
            if not skip_bad_rows:
                raise
            bad.append(str(e))
            continue
        if check_images and not (Path(image_folder) / sample["image"]).is_file():
            missing.append(sample["image"])
            continue
        samples.append(sample)
    if not samples:
        raise DataFormatError(f"no sample converted from {input_path} ({len(bad)} bad, {len(missing)} missing images)")
    write_records(out, samples)
    return {"records": len(records), "converted": len(samples), "bad_rows": len(bad), "missing_images": len(missing),
            "bad_examples": bad[:10], "missing_examples": missing[:10], "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="blip_laion_cc_sbu_558k.json")
    ap.add_argument("--out", required=True, help="output .json (or .jsonl)")
    ap.add_argument("--image_folder", help="where images.zip was extracted (for --check_images)")
    ap.add_argument("--check_images", action="store_true", help="drop (and count) records whose image file is missing")
    ap.add_argument("--skip_bad_rows", action="store_true", help="count and list malformed records instead of stopping")
    args = ap.parse_args(argv)
    return run_conversion(lambda: convert(args.input, args.out, image_folder=args.image_folder,
                                          check_images=args.check_images, skip_bad_rows=args.skip_bad_rows))


if __name__ == "__main__":
    sys.exit(main())
