"""The option loss: keep a multiple-choice answer inside the listed options.

At each answer token of a multiple-choice sample the collator carries the tokens that continue one of the
*listed* options (`trajvlm.data.options`). The loss is the negative log of the probability mass the model puts on
them, averaged over those tokens:

    option_loss = mean_i  -log sum_{t in allowed_i} p(t | prefix_i)

The language-model loss -log p(answer) splits exactly into this term and the choice among the listed options
(-log p(answer) / sum_allowed p); adding it with a weight (`--option_loss_weight`) stresses "name one of these"
over "name what the video shows", the error of a model that answers "which object appears first" with an object
that is not among the options.
"""

from __future__ import annotations

import torch

from trajvlm.model.processing_trajvlm import IGNORE_INDEX


def option_loss(
    logits: torch.Tensor,  # (B,L',V) the model's output, after the video splice
    spliced_labels: torch.Tensor,  # (B,L') the labels the model used (IGNORE_INDEX on video / prompt / padding)
    labels: torch.Tensor,  # (B,L) the collator's labels, before the splice
    option_ids: torch.Tensor,  # (B,L,K) targets aligned with `labels`, IGNORE_INDEX where none
) -> torch.Tensor | None:
    """Mean over the answer tokens that have targets of -log(mass on them); None when the batch has none.

    The splice keeps the order of the supervised tokens, so the n-th supervised position of `spliced_labels[b]`
    is the n-th of `labels[b]`; logits at position p - 1 predict the token at p (the LM loss's shift).
    """
    terms = []
    for b in range(labels.shape[0]):
        supervised = labels[b] != IGNORE_INDEX  # (L,)
        targets = option_ids[b][supervised]  # (n,K)
        positions = (spliced_labels[b] != IGNORE_INDEX).nonzero().squeeze(1)  # (n,)
        if positions.shape[0] != targets.shape[0]:
            raise ValueError(f"row {b}: {targets.shape[0]} supervised tokens before the splice, "
                             f"{positions.shape[0]} after: the option targets cannot be aligned")
        has = (targets != IGNORE_INDEX).any(1)  # (n,)
        if not has.any():
            continue
        targets, positions = targets[has], positions[has]
        logp = torch.log_softmax(logits[b, positions - 1].float(), dim=-1)  # (m,V)
        picked = logp.gather(1, targets.clamp(min=0))  # (m,K)
        picked = picked.masked_fill(targets == IGNORE_INDEX, float("-inf"))
        terms.append(-torch.logsumexp(picked, dim=1))  # (m,)
    if not terms:
        return None
    return torch.cat(terms).mean()
