"""shapesqa / shapesqa_mc / shapesqa_cloze: the ShapesQA test split (`python -m trajvlm.data.synthetic --out DIR ...`).

    $TRAJVLM_SHAPESQA_DIR/test_qa.json      docs: id, video (relative to the folder), conversations,
                                            category, question, options ["A. ..", ..], answer ("A".."D")
    $TRAJVLM_SHAPESQA_DIR/videos/test/<id>.mp4

Three protocols on the same docs, videos and prompt (the training prompt: question, options, then the answer
instruction); every metric is percent correct, overall (`<task>_acc`) and per question category
(`<task>_<category>_acc`, absent when the category has no docs):

- `shapesqa` generates an answer and scores its letter (lmms-eval's `extract_mcq_answer`, as VideoMME does; it
  also takes the letter of an answer like "red (B)"); an answer with no letter picks the one option whose text
  it names (VLMEvalKit's `can_infer_text` rule, `trajvlm.eval.mcq.option_named`: the built-in default model
  answers with the option's text). An answer that lists the objects first is read after its last "Answer:"
  (`trajvlm.eval.mcq.final_answer`).
- `shapesqa_mc` scores the four letters by the model's log-likelihood: the prediction is the letter with the
  highest log p(letter | video, prompt). Meaningful for a model that answers with the bare letter.
- `shapesqa_cloze` scores the four option texts (the options without "A. "): the prediction is the option with
  the highest log p(text | video, prompt), summed over the text's tokens (the standard "cloze" multiple-choice
  protocol; each continuation is " <option text>" (target_delimiter " "), the built-in default model's answer format).

The two log-likelihood tasks do not use lmms-eval's default multiple-choice scoring, which takes the argmin (it
expects losses, lmms-eval issue #370) and, in lmms-eval 0.7.3, receives each (logprob, is_greedy) pair as its
string form (`unwrap_generation_output`): their `process_results` take the argmax and accept both forms.
"""
from __future__ import annotations

from trajvlm.eval.local_tasks import data_root, local_docs, video_path
from trajvlm.eval.mcq import final_answer, option_named, option_text

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


def shapesqa_cloze_doc_to_choice(doc):
    return [option_text(option) for option in doc["options"]]


def shapesqa_doc_to_target_index(doc):
    return LETTERS.index(doc["answer"])


def shapesqa_process_results(doc, results):
    from lmms_eval.tasks._task_utils.mcq_extract import extract_mcq_answer

    answer = final_answer(results[0])  # after the last "Answer:" of an answer that lists the objects first
    pred = extract_mcq_answer(answer, choices=list(LETTERS[: len(doc["options"])])) or \
        option_named(answer, doc["options"])
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


def _argmax_scores(task: str, doc, results) -> dict:
    """{task}_acc and {task}_{category}_acc of the choice with the highest log-likelihood (one result per choice,
    in doc_to_choice order = option order; ties go to the first)."""
    logprobs = [_logprob(r) for r in results]
    if len(logprobs) != len(doc["options"]):
        raise ValueError(f"{task}: {len(logprobs)} log-likelihoods for {len(doc['options'])} options ({doc.get('id')})")
    pred = max(range(len(logprobs)), key=lambda i: logprobs[i])
    score = 1.0 if LETTERS[pred] == doc["answer"] else 0.0
    return {f"{task}_acc": score, f"{task}_{doc['category']}_acc": score}


def shapesqa_mc_process_results(doc, results):
    return _argmax_scores("shapesqa_mc", doc, results)  # results: log p(letter), A..D


def shapesqa_cloze_process_results(doc, results):
    return _argmax_scores("shapesqa_cloze", doc, results)  # results: log p(option text), in option order


def shapesqa_aggregate(results):
    """Percent correct."""
    return 100.0 * sum(results) / len(results)
