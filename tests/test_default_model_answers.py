"""The shipped default model (trajvlm/assets/default_model) answers the demo's bundled ShapesQA examples correctly.

What a newcomer sees first: the README's command opens the chat on this model with these examples. Each
example's question is asked exactly as the demo asks it (TrajVLMChat, the model's own frame sampling, greedy)
and the answer is graded like ShapesQA (trajvlm.eval.mcq: its letter, else the one option it names by text).
"""

from __future__ import annotations

import json

import pytest

from trajvlm.chat import TrajVLMChat
from trajvlm.demo.settings import EXAMPLES_DIR, default_model_path
from trajvlm.eval.mcq import answer_letter


def _examples() -> list[dict]:
    return json.loads((EXAMPLES_DIR / "examples.json").read_text())


@pytest.fixture(scope="module")
def chat():
    return TrajVLMChat.from_pretrained(default_model_path())


@pytest.mark.parametrize("example", _examples(), ids=lambda e: e["category"])
def test_default_model_answers_the_bundled_example(chat, example):
    options = [line for line in example["question"].split("\n") if line[:3] in ("A. ", "B. ", "C. ", "D. ")]
    assert len(options) == 4
    answer = chat.ask(str(EXAMPLES_DIR / example["video"]), example["question"], max_new_tokens=8).text
    assert answer_letter(answer, options) == example["answer"], (answer, options, example["answer"])
