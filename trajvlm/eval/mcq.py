"""Reading a multiple-choice answer: the option letter, or else the one option whose text the answer names.

The letter comes first (the first standalone A-D, the rule lmms-eval's multiple-choice tasks use). An answer
without a letter is matched to an option by its text, as VLMEvalKit's ``can_infer_text`` does: when exactly
one option's text occurs in the answer (case-insensitive, whole words), that option is the answer; none or
several give no answer. An answer that reasons first and then writes ``Answer:`` is read after its last such
mark (``final_answer``). The built-in default model answers ShapesQA with the option's text (" cyan"): its
from-scratch 4x256 Llama does not learn to bind an option's text to its letter (eval/results/default_model.md).
"""

from __future__ import annotations

import re

LETTERS = ("A", "B", "C", "D")
_LETTER = re.compile(r"\b([A-D])\b")
ANSWER_MARK = "Answer:"


def final_answer(text: str) -> str:
    """The part of a model answer after its last ``Answer:`` mark (the whole answer when it has none):
    " red circle up, red star left. Answer: left" -> " left"."""
    _, mark, tail = text.rpartition(ANSWER_MARK)
    return tail if mark else text


def parse_letter(text: str) -> str | None:
    """First standalone option letter of a model answer ("B", "B.", "(B) red" -> "B"); None if there is none."""
    m = _LETTER.search(text.strip())
    return m.group(1) if m else None


def option_text(option: str) -> str:
    """"B. red" -> "red" (an option line without its letter)."""
    letter, sep, text = option.partition(". ")
    if letter not in LETTERS or not sep or not text:
        raise ValueError(f"option {option!r} is not of the form 'A. text'")
    return text


def option_named(answer: str, options: list[str]) -> str | None:
    """The letter of the only option ("A. red", ...) whose text the answer contains as whole words; None if no
    option or more than one is named."""
    named = [LETTERS[i] for i, o in enumerate(options)
             if re.search(rf"(?<!\w){re.escape(option_text(o))}(?!\w)", answer, flags=re.IGNORECASE)]
    return named[0] if len(named) == 1 else None


def answer_letter(answer: str, options: list[str]) -> str | None:
    """The option a model answer picks (after its last ``Answer:`` mark, if any): its letter if it writes one, else
    the option it names by text."""
    answer = final_answer(answer)
    return parse_letter(answer) or option_named(answer, options)
