"""mlvu_dev_local / mlvu_test_local: MLVU-format data under $TRAJVLM_MLVU_DIR / $TRAJVLM_MLVU_TEST_DIR.

Layout (the official `$HF_HOME/mlvu` and `$HF_HOME/mlvu_test` cache layouts plus the annotation file):
    $TRAJVLM_MLVU_DIR/test.json (or test.jsonl, test.parquet, test-*.parquet)   docs: video_name, question
                                                                                (options inside), answer (letter), task_type
    $TRAJVLM_MLVU_DIR/<video_name>
Prompts and scoring are lmms-eval's own (lmms_eval.tasks.mlvu.utils); only paths differ.
"""

from __future__ import annotations

from trajvlm.eval.local_tasks import data_root, local_docs, video_path

ENV_DEV = "TRAJVLM_MLVU_DIR"
ENV_TEST = "TRAJVLM_MLVU_TEST_DIR"


def mlvu_dev_local_process_docs(dataset):
    return local_docs(ENV_DEV, "mlvu_dev_local")


def mlvu_test_local_process_docs(dataset):
    return local_docs(ENV_TEST, "mlvu_test_local")


def mlvu_dev_local_doc_to_visual(doc):
    return [video_path(data_root(ENV_DEV, "mlvu_dev_local"), doc["video_name"])]


def mlvu_test_local_doc_to_visual(doc):
    return [video_path(data_root(ENV_TEST, "mlvu_test_local"), doc["video_name"])]
