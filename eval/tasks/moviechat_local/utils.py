"""moviechat_global_local / moviechat_breakpoint_local: MovieChat-1K-format data under $TRAJVLM_MOVIECHAT_DIR.

Layout (the official `$HF_HOME/moviechat_1k_test` cache layout plus the annotation file):
    $TRAJVLM_MOVIECHAT_DIR/test.json (or test.jsonl, test.parquet)   docs: video_name, question, answer, time
    $TRAJVLM_MOVIECHAT_DIR/Test_Videos/<video_name>
`time` is the breakpoint (a frame index in MovieChat-1K). Prompt, judge and scoring are lmms-eval's own
(lmms_eval.tasks.moviechat.utils, configured by OPENAI_API_URL / OPENAI_API_KEY / MODEL_VERSION); unlike
the official tasks, a document whose judge call failed stops the run with an error naming it instead of
silently scoring 0.
"""

from __future__ import annotations

import os

from trajvlm.eval.local_tasks import data_root, local_docs, video_path

ENV = "TRAJVLM_MOVIECHAT_DIR"


def _official():
    """lmms_eval.tasks.moviechat.utils (its import reads HF_HOME; default it to the Hugging Face default)."""
    if "HF_HOME" not in os.environ:
        from huggingface_hub import constants

        os.environ["HF_HOME"] = constants.HF_HOME
    from lmms_eval.tasks.moviechat import utils

    return utils


def moviechat_local_process_docs(dataset):
    return local_docs(ENV, "moviechat_local")


def _video(doc):
    root = os.path.join(data_root(ENV, "moviechat_local"), "Test_Videos")
    return video_path(root, doc["video_name"], (".MP4", ".mkv"))


def moviechat_local_doc_to_visual(doc):
    return [_video(doc)]


def moviechat_local_doc_to_visual_breakpoint(doc):
    return [{"video_path": _video(doc), "timestep": doc["time"]}]


def moviechat_local_doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return _official().moviechat_doc_to_text(doc, lmms_eval_specific_kwargs)


def moviechat_local_doc_to_answer(doc):
    return doc["answer"]


def moviechat_local_process_results(doc, result):
    """lmms-eval's `moviechat_process_results_generic`, raising JudgeError when the judge call failed."""
    from trajvlm.eval.judge import FAILED_REVIEWS, JudgeError

    scored = _official().moviechat_process_results_generic(dict(doc), result)
    review = scored["gpt_eval_score"]["review"]
    if review in FAILED_REVIEWS:
        raise JudgeError(
            f"the MovieChat judge at {_official().API_URL} failed on video {doc['video_name']!r}, question {doc['question']!r} "
            "(lmms-eval would have scored it 0; see its log above for the reason)"
        )
    return scored


def moviechat_local_aggregate_score(results, args=None):
    return _official().moviechat_aggregate_score(results, args)


def moviechat_local_aggregate_acc(results, args=None):
    return _official().moviechat_aggregate_acc(results, args)
