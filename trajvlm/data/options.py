"""Option targets of a multiple-choice sample: at each token of its answer, the tokens that continue one of the
*listed* options (the option loss of `trajvlm.train.option_loss`).

A record qualifies when it has `options` ("A. red", ...), an `answer` letter, exactly one `gpt` turn, the last
turn, and that turn is the answer option's text or its letter (surrounding spaces kept, e.g. " red" or "C").
Each option is then written in its place and tokenized the same way; at answer position i the targets are the
i-th label of every option whose labels agree with the answer's before i (the answer's own token included,
duplicates dropped). Other records (open questions, captions, several answers) get no targets.

    option_targets(...) -> (L, K) long: K = number of options, IGNORE_INDEX where no (more) target
"""

from __future__ import annotations

import torch

from trajvlm.eval.mcq import LETTERS, option_text
from trajvlm.model.processing_trajvlm import IGNORE_INDEX


def option_conversations(record: dict) -> list[list[dict]] | None:
    """The record's conversation once per option (option order), the answer replaced by that option; None when the
    record does not qualify (see the module docstring). A malformed option line raises ValueError."""
    options, answer, turns = record.get("options"), record.get("answer"), record.get("conversations")
    if not isinstance(options, list) or len(options) < 2 or answer not in LETTERS[: len(options)]:
        return None
    if not turns or turns[-1].get("from") != "gpt" or sum(t.get("from") == "gpt" for t in turns) != 1:
        return None
    texts = [option_text(o) for o in options]
    value = turns[-1]["value"]
    said = value.strip()
    if said == texts[LETTERS.index(answer)]:
        fills = texts
    elif said == answer:
        fills = list(LETTERS[: len(options)])
    else:
        return None
    head, _, tail = value.partition(said)
    return [[*turns[:-1], {"from": "gpt", "value": f"{head}{fill}{tail}"}] for fill in fills]


def option_targets(processor, record: dict, labels: torch.Tensor, *, num_videos: int,
                   max_length: int | None = None) -> torch.Tensor | None:
    """(L, K) long targets aligned with `labels` (L,) of the record's answer, or None when it does not qualify.

    `processor.tokenize_conversation` tokenizes each option's conversation exactly as the answer's was.
    """
    convs = option_conversations(record)
    if convs is None:
        return None
    rows = [processor.tokenize_conversation(c, num_videos=num_videos, max_length=max_length).labels for c in convs]
    answer = labels.tolist()
    out = torch.full((len(answer), len(rows)), IGNORE_INDEX, dtype=torch.long)  # (L, K)
    # first position where each option's labels leave the answer's: before it they agree, at it they branch off
    splits = [next((i for i, (a, b) in enumerate(zip(row, answer)) if a != b), min(len(row), len(answer)))
              for row in rows]
    for i, token in enumerate(answer):
        if token == IGNORE_INDEX:
            continue
        allowed = [row[i] for row, split in zip(rows, splits) if i <= split and i < len(row) and row[i] != IGNORE_INDEX]
        allowed = list(dict.fromkeys(allowed))
        if token not in allowed:
            raise ValueError(f"option targets at position {i} miss the answer's own token {token}: the record's "
                             "answer does not tokenize like its option")
        out[i, : len(allowed)] = torch.tensor(allowed)
    return out
