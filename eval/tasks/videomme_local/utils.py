"""videomme_local / videomme_w_subtitle_local: VideoMME-format data under $TRAJVLM_VIDEOMME_DIR.

Layout (the official `$HF_HOME/videomme` cache layout plus the annotation file):
    $TRAJVLM_VIDEOMME_DIR/test.parquet (or test-*.parquet, test.json, test.jsonl, videomme/test-*.parquet)
    $TRAJVLM_VIDEOMME_DIR/data/<videoID>.mp4        (.MP4 / .mkv accepted)
    $TRAJVLM_VIDEOMME_DIR/subtitle/<videoID>.srt    (only for videomme_w_subtitle_local; optional per video)
Prompts and scoring are lmms-eval's own (lmms_eval.tasks.videomme.utils); only paths differ.
"""

from __future__ import annotations

import os

from trajvlm.eval.local_tasks import data_root, local_docs, video_path

ENV = "TRAJVLM_VIDEOMME_DIR"


def videomme_local_process_docs(dataset):
    return local_docs(ENV, "videomme_local")


def videomme_local_doc_to_visual(doc):
    root = data_root(ENV, "videomme_local")
    return [video_path(root, os.path.join("data", doc["videoID"] + ".mp4"), (".MP4", ".mkv"))]


def videomme_local_doc_to_text_subtitle(doc, lmms_eval_specific_kwargs=None):
    """lmms-eval's `videomme_doc_to_text_subtitle` with the subtitle/video paths of the local folder."""
    import re

    import numpy as np
    from lmms_eval.tasks.videomme.utils import extract_subtitles, videomme_doc_to_text_qwen3vl

    kwargs = lmms_eval_specific_kwargs or {}
    root = data_root(ENV, "videomme_w_subtitle_local")
    video_file = videomme_local_doc_to_visual(doc)[0]
    subtitle_path = os.path.join(root, "subtitle", doc["videoID"] + ".srt")
    subtitle = "No subtitles available"
    if os.path.exists(subtitle_path):
        pattern = r'<font color="white" size=".72c">(.*?)</font>'
        if "frame_num" in kwargs:
            subtitle_by_frame, total_frame = extract_subtitles(video_file, subtitle_path)
            frame_num = total_frame if kwargs["frame_num"] == -1 else kwargs["frame_num"]
            sampled = np.linspace(0, total_frame - 1, frame_num, dtype=int).tolist()
            picked = sorted({idx for f in sampled for idx, (start, end, _) in enumerate(subtitle_by_frame) if start <= f < end})
            lines = []
            for idx in picked:
                text = subtitle_by_frame[idx][2]
                found = re.findall(pattern, text)
                lines.append(found[0] if found else text)  # plain .srt text when not VideoMME's <font> markup
        else:
            with open(subtitle_path, encoding="utf-8") as f:
                raw = f.read().split("\n\n")
            lines = [" ".join(block.strip().split("\n")[2:]) for block in raw if len(block.strip().split("\n")) >= 3]
        subtitle = "\n".join(lines)
    subtitles_prompt = "This video's subtitles are listed below: \n"
    if kwargs.get("format") == "qwen3_vl":
        return subtitles_prompt + subtitle + "\n" + videomme_doc_to_text_qwen3vl(doc, kwargs)
    option_prompt = (
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        "Respond with only the letter (A, B, C, or D) of the correct option."
    )
    question = doc["question"] + "\n" + "\n".join(doc["options"])
    return subtitles_prompt + subtitle + "\n" + option_prompt + "\n" + question + "\n" + "The best answer is:"
