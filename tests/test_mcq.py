"""trajvlm.eval.mcq: the letter of a multiple-choice answer, or the one option it names by text."""

from __future__ import annotations

import pytest

from trajvlm.eval.mcq import answer_letter, final_answer, option_named, option_text, parse_letter

OPTIONS = ["A. red cross", "B. red diamond", "C. cyan star", "D. blue cross"]


def test_letter_wins_over_text():
    assert answer_letter(" cyan star (D)", OPTIONS) == "D"
    assert answer_letter("B", OPTIONS) == "B"
    assert parse_letter(" red diamond") is None


def test_text_names_exactly_one_option():
    assert answer_letter(" cyan star", OPTIONS) == "C"
    assert answer_letter("Red Diamond.", OPTIONS) == "B"  # case-insensitive, punctuation is a word boundary
    assert option_named(" red", OPTIONS) is None  # a word of two options' texts, not a whole option text
    assert option_named(" red cross or blue cross", OPTIONS) is None  # two options named
    assert option_named(" purple", OPTIONS) is None
    assert answer_letter("", OPTIONS) is None


def test_a_listing_answer_is_read_after_its_last_mark():
    listing = " red cross up, cyan star left, red diamond down. Answer: red diamond"
    assert final_answer(listing) == " red diamond"
    assert answer_letter(listing, OPTIONS) == "B"  # the list names three options; the answer after the mark one
    assert option_named(listing, OPTIONS) is None
    assert answer_letter(" Answer: cyan star. Answer: blue cross", OPTIONS) == "D"  # the last mark
    assert answer_letter(" red cross up, cyan star left. Answer:", OPTIONS) is None  # cut off: nothing after it
    assert final_answer(" cyan star") == " cyan star"  # no mark: the whole answer


def test_whole_words_only():
    opts = ["A. 2", "B. 3", "C. 4", "D. 5"]
    assert option_named(" 4", opts) == "C"
    assert option_named(" 45", opts) is None
    assert option_named(" stars", ["A. star", "B. cross", "C. circle", "D. square"]) is None


def test_option_text_refuses_a_malformed_option():
    assert option_text("B. red") == "red"
    with pytest.raises(ValueError, match="not of the form"):
        option_text("red")
    with pytest.raises(ValueError, match="not of the form"):
        option_named(" red", ["E. red"])
