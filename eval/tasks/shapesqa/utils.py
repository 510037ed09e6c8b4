"""shapesqa / shapesqa_mc: the ShapesQA test split (`python -m trajvlm.data.synthetic --out DIR ...`).

    $TRAJVLM_SHAPESQA_DIR/test_qa.json      docs: id, video (relative to the folder), conversations,
                                            category, question, options ["A. ..", ..], answer ("A".."D")
    $TRAJVLM_SHAPESQA_DIR/videos/test/<id>.mp4

`shapesqa` generates an answer and scores its letter (lmms-eval's `extract_mcq_answer`, as VideoMME does):
`shapesqa_acc` overall and `shapesqa_<category>_acc` per question category, in percent. `shapesqa_mc`
scores the four letters by the model's log-likelihood instead (`shapesqa_mc_acc`, `shapesqa_mc_<category>_acc`):
the prediction is the letter with the highest log p(letter | video, prompt). It does not use lmms-eval's
default multiple-choice scoring, which takes the argmin (it expects losses, lmms-eval issue #370) and, in
lmms-eval 0.7.3, receives each (logprob, is_greedy) pair as its string form (`unwrap_generation_output`).
The prompt is the training prompt: question, options, then the answer instruction.
"""

from __future__ import annotations

from trajvlm.eval.local_tasks import data_root, local_docs, video_path

ENV = "TRAJVLM_SHAPESQA_DIR"
LETTERS = ("A", "B", "C", "D")
CATEGORIES = ("attribute", "counting", "direction", "temporal_order", "needle")


def shapesqa_process_docs(dataset):
    return local_docs(ENV, "shapesqa", ("test_qa.json",))


def shapesqa_doc_to_visual(doc):
    return [video_path(data_root(ENV, "shapesqa"), doc["video"])]


def shapesqa_doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    body = doc["question"] + "\n" + "\n".join(doc["options"])
    return kwargs.get("pre_prompt", "") + body + "\n" + kwargs.get("post_prompt", "")


def shapesqa_doc_to_choice(doc):
    return list(LETTERS[: len(doc["options"])])


def shapesqa_doc_to_target_index(doc):
    return LETTERS.index(doc["answer"])


def shapesqa_process_results(doc, results):
    from lmms_eval.tasks._task_utils.mcq_extract import extract_mcq_answer

    pred = extract_mcq_answer(results[0], choices=list(LETTERS[: len(doc["options"])]))
    score = 1.0 if pred == doc["answer"] else 0.0
    return {"shapesqa_acc": score, f"shapesqa_{doc['category']}_acc": score}


def _logprob(result) -> float:
    """A loglikelihood response: the (logprob, is_greedy) pair, or its string form (lmms-eval 0.7.3)."""
    import ast

    if isinstance(result, str):
        result = ast.literal_eval(result.replace("-inf", "-1e309"))
    if isinstance(result, (list, tuple)):
        result = result[0]
    return float(result)


def shapesqa_mc_process_results(doc, results):
    logprobs = [_logprob(r) for r in results]  # one per choice, in doc_to_choice order
    pred = max(range(len(logprobs)), key=lambda i: logprobs[i])
    score = 1.0 if LETTERS[pred] == doc["answer"] else 0.0
    return {"shapesqa_mc_acc": score, f"shapesqa_mc_{doc['category']}_acc": score}


def shapesqa_aggregate(results):
    """Percent correct."""
    return 100.0 * sum(results) / len(results)
