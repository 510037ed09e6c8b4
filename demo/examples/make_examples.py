"""Regenerate the demo's bundled example videos from the ShapesQA generator (deterministic).

    python demo/examples/make_examples.py            # writes demo/examples/*.mp4 + examples.json

Picks test-split videos (never trained on) of a few question categories, including a long "needle"
video, and stores each with one of its multiple-choice questions, worded exactly as in the QA data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 2024
NUM_VIDEOS = 60  # enough for the test split to hold every category
WANTED = ("direction", "counting", "needle")  # one example video per category, in this order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the mp4s and examples.json")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    from trajvlm.data.synthetic.generate import generate_dataset

    with tempfile.TemporaryDirectory(prefix="shapesqa_examples_") as tmp:
        generate_dataset(tmp, NUM_VIDEOS, args.seed)
        qa = json.loads((Path(tmp) / "test_qa.json").read_text())
        examples, used_videos = [], set()
        for category in WANTED:
            sample = next((s for s in qa if s["category"] == category and s["video"] not in used_videos), None)
            if sample is None:
                print(f"no test-split {category} question with seed {args.seed}", file=sys.stderr)
                return 1
            used_videos.add(sample["video"])
            name = f"shapes_{category}.mp4"
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / sample["video"], args.out / name)
            human = sample["conversations"][0]["value"]
            examples.append({
                "video": name,
                "question": human.replace("<video>", "").strip(),
                "answer": sample["answer"],
                "category": category,
                "source_id": sample["id"],
            })
    (args.out / "examples.json").write_text(json.dumps(examples, indent=2) + "\n")
    total = sum((args.out / e["video"]).stat().st_size for e in examples)
    print(f"wrote {len(examples)} examples ({total / 1024:.0f} KB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
