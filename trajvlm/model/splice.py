"""Splicing visual embeddings into a text sequence: each <video> placeholder id becomes that video's embeddings.

Shared by TrajVLMForConditionalGeneration (the connector's tokens) and the default model's text warm-up
(trajvlm.train.text_warmup: word-made object vectors standing in for trajectory tokens), so both put the
visual positions, labels and position ids in exactly the same places.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .processing_trajvlm import IGNORE_INDEX, VideoPlaceholderError


@dataclass
class SplicedInputs:
    inputs_embeds: torch.Tensor  # (B,L',d)
    attention_mask: torch.Tensor  # (B,L') long
    position_ids: torch.Tensor  # (B,L') long, counted over attended positions only
    labels: torch.Tensor | None  # (B,L') IGNORE_INDEX on padding, prompt and visual positions
    video_spans: list[list[tuple[int, int]]] = field(default_factory=list)  # per sample [(start,end)) of each video


def splice_video_embeds(
    text_embeds: torch.Tensor,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None,
    video_embeds: Sequence[torch.Tensor],
    video_token_id: int,
    labels: torch.LongTensor | None = None,
    padding_side: str | None = None,
    *,
    default_side: str = "right",
) -> SplicedInputs:
    """text_embeds (B,L,d) of input_ids (B,L) -> each <video> id (one per video, row-major order) replaced by that
    video's embeddings (n_v,d); rows re-padded to the longest.

    padding_side: None -> the side the input is padded on, ``default_side`` if it is not padded.
    """
    vid = video_token_id
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    keep_all = attention_mask.bool()
    is_video = (input_ids == vid) & keep_all
    n_placeholders = int(is_video.sum())
    if n_placeholders != len(video_embeds):
        per_row = is_video.sum(1).tolist()
        raise VideoPlaceholderError(
            f"{n_placeholders} video placeholder(s) (token id {vid}; per sample {per_row}) but "
            f"{len(video_embeds)} video(s): each video needs exactly one placeholder"
        )
    if padding_side is None:
        if (~keep_all[:, 0]).any():
            padding_side = "left"
        elif (~keep_all[:, -1]).any():
            padding_side = "right"
        else:
            padding_side = default_side
    rows, row_labels, spans = [], [], []
    k = 0
    for b in range(input_ids.shape[0]):
        keep = keep_all[b]
        ids_b, emb_b = input_ids[b][keep], text_embeds[b][keep]
        lab_b = labels[b][keep] if labels is not None else None
        pieces, lab_pieces, row_spans, prev, length = [], [], [], 0, 0
        for p in (ids_b == vid).nonzero().flatten().tolist():
            v = video_embeds[k].to(emb_b.dtype)
            pieces += [emb_b[prev:p], v]
            if lab_b is not None:
                lab_pieces += [lab_b[prev:p], lab_b.new_full((v.shape[0],), IGNORE_INDEX)]
            length += p - prev
            row_spans.append((length, length + v.shape[0]))
            length += v.shape[0]
            prev, k = p + 1, k + 1
        pieces.append(emb_b[prev:])
        rows.append(torch.cat(pieces))  # (L_b',d)
        if lab_b is not None:
            lab_pieces.append(lab_b[prev:])
            row_labels.append(torch.cat(lab_pieces))
        spans.append(row_spans)
    max_len = max(r.shape[0] for r in rows)
    bsz, d = len(rows), text_embeds.shape[-1]
    embeds = text_embeds.new_zeros(bsz, max_len, d)
    mask = attention_mask.new_zeros(bsz, max_len)
    out_labels = input_ids.new_full((bsz, max_len), IGNORE_INDEX) if labels is not None else None
    for b, r in enumerate(rows):
        n = r.shape[0]
        off = max_len - n if padding_side == "left" else 0
        embeds[b, off : off + n] = r
        mask[b, off : off + n] = 1
        if out_labels is not None:
            out_labels[b, off : off + n] = row_labels[b]
        if off:
            spans[b] = [(s + off, e + off) for s, e in spans[b]]
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (B,L') positions over real tokens
    return SplicedInputs(embeds, mask, position_ids, out_labels, spans)
