"""mlvu_dev_local / mlvu_test_local: MLVU-format data under $TRAJVLM_MLVU_DIR / $TRAJVLM_MLVU_TEST_DIR.

Layout (the official `$HF_HOME/mlvu` and `$HF_HOME/mlvu_test` cache layouts plus the annotation file):
    $TRAJVLM_MLVU_DIR/test.json (or test.jsonl, test.parquet, test-*.parquet)   docs: video_name, question
                                                                                (options inside), answer (letter), task_type
    $TRAJVLM_MLVU_DIR/<video_name>
Prompts and scoring are lmms-eval's own (lmms_eval.tasks.mlvu.utils); only paths differ.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ENV_DEV = "TRAJVLM_MLVU_DIR"
ENV_TEST = "TRAJVLM_MLVU_TEST_DIR"


def _common():
    name = "trajvlm_eval_tasks_common"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "_common.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def mlvu_dev_local_process_docs(dataset):
    return _common().local_docs(ENV_DEV, "mlvu_dev_local")


def mlvu_test_local_process_docs(dataset):
    return _common().local_docs(ENV_TEST, "mlvu_test_local")


def mlvu_dev_local_doc_to_visual(doc):
    return [_common().video_path(_common().data_root(ENV_DEV, "mlvu_dev_local"), doc["video_name"])]


def mlvu_test_local_doc_to_visual(doc):
    return [_common().video_path(_common().data_root(ENV_TEST, "mlvu_test_local"), doc["video_name"])]
