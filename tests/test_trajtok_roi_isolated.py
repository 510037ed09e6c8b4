"""roi_isolated: a trajectory's shape features are read in the frames where it does not touch another object."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trajvlm.trajtok import TrajTok, TrajTokConfig
from trajvlm.trajtok.linking import (
    TOUCHING_FRAME_WEIGHT,
    box_features,
    chunk_stats,
    hard_boxes,
    touching_frames,
)
from trajvlm.trajtok.segmenter import SegmenterOutput

H = W = 8


def _logits(labels: torch.Tensor, K: int) -> torch.Tensor:
    """labels (t,h,w) slot ids -> (1,t,h,w,K) logits whose argmax is that slot."""
    return F.one_hot(labels, K).float().unsqueeze(0) * 10.0


def _scene(frames: list[tuple[tuple[int, int], tuple[int, int]]]) -> torch.Tensor:
    """Per frame the top-left (row, col) of a 2x2 square of slot 1 and one of slot 2; slot 0 elsewhere.
    -> labels (t,h,w)."""
    labels = torch.zeros(len(frames), H, W, dtype=torch.long)
    for f, ((r1, c1), (r2, c2)) in enumerate(frames):
        labels[f, r1 : r1 + 2, c1 : c1 + 2] = 1
        labels[f, r2 : r2 + 2, c2 : c2 + 2] = 2
    return labels


def _touching(labels: torch.Tensor, K: int = 3) -> torch.Tensor:
    onehot = F.one_hot(labels, K).float().unsqueeze(0)  # (1,t,h,w,K)
    return touching_frames(onehot, onehot.sum((2, 3)))[0]  # (t,K)


def test_touching_frames_side_diagonal_apart_and_background():
    labels = _scene([
        ((1, 1), (1, 3)),  # side by side: touching
        ((1, 1), (3, 3)),  # corner to corner: touching (8-neighbour)
        ((1, 0), (5, 5)),  # apart
        ((1, 1), (1, 4)),  # one empty column between them: apart
    ])
    touch = _touching(labels)
    assert touch[:, 1].tolist() == [True, True, False, False]
    assert touch[:, 2].tolist() == [True, True, False, False]
    # the background (slot 0, more than half the frame) borders both squares in every frame but is no object:
    # it never makes them touch, and it is not reported as touching either
    assert touch[:, 0].tolist() == [False] * 4


def _roi(labels: torch.Tensor, feats: torch.Tensor, isolated: bool) -> torch.Tensor:
    K = 3
    st = chunk_stats(feats, _logits(labels, K), torch.zeros(1, K, 4), roi_size=2, roi_isolated=isolated)
    return st.roi[0]  # (K,P*P,C)


def _per_frame(labels: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    boxes = hard_boxes(F.one_hot(labels, 3).float().unsqueeze(0))  # (1,t,K,4)
    return box_features(feats, boxes, 2)[0]  # (t,K,P*P,C)


def test_roi_isolated_reads_the_frames_apart_from_the_other_object():
    torch.manual_seed(0)
    labels = _scene([((1, 1), (1, 3)), ((1, 0), (5, 5)), ((4, 1), (0, 5))])  # touching, apart, apart
    feats = torch.randn(1, 3, H, W, 6)
    per_frame = _per_frame(labels, feats)
    got = _roi(labels, feats, isolated=True)
    weights = torch.tensor([TOUCHING_FRAME_WEIGHT, 1.0, 1.0])
    for k in (1, 2):
        expected = (per_frame[:, k] * weights[:, None, None]).sum(0) / weights.sum()
        torch.testing.assert_close(got[k], expected)
        clean = per_frame[1:, k].mean(0)
        assert (got[k] - clean).abs().max() < 1e-2  # the touching frame hardly counts
        # the default (every present frame) is a different average: the touching frame's box is in it
        assert not torch.allclose(_roi(labels, feats, isolated=False)[k], got[k], atol=1e-2)
    torch.testing.assert_close(_roi(labels, feats, isolated=False)[1], per_frame[:, 1].mean(0))


def test_roi_isolated_falls_back_to_every_frame_when_always_touching():
    torch.manual_seed(1)
    labels = _scene([((1, 1), (1, 3)), ((2, 2), (4, 2)), ((5, 5), (3, 5))])  # touching in every frame
    feats = torch.randn(1, 3, H, W, 6)
    assert _touching(labels)[:, 1:].all()
    got, default = _roi(labels, feats, isolated=True), _roi(labels, feats, isolated=False)
    torch.testing.assert_close(got[1:], default[1:])
    torch.testing.assert_close(got[1], _per_frame(labels, feats)[:, 1].mean(0))


class _FixedSegmenter(torch.nn.Module):
    """Stands in for TrajSegmenter: the logits of a given label map (frames taken in call order), fixed queries."""

    def __init__(self, labels: torch.Tensor, K: int):
        super().__init__()
        self.logits, self.K, self.start = _logits(labels, K), K, 0

    def forward(self, features: torch.Tensor) -> SegmenterOutput:
        t = features.shape[1]
        logits = self.logits[:, self.start : self.start + t]
        self.start += t
        return SegmenterOutput(logits=logits, query_embeds=F.normalize(torch.eye(self.K, 4), dim=-1).unsqueeze(0))


@pytest.mark.parametrize("isolated", [True, False])
def test_trajtok_roi_isolated_across_chunks_weights_the_frames_of_the_whole_track(isolated):
    """Through TrajTok (two linked chunks of 2 frames): each square's roi is its frames' box features weighted 1
    where it does not touch the other square and TOUCHING_FRAME_WEIGHT where it does, whichever chunk they are in."""
    torch.manual_seed(0)
    labels = _scene([((1, 1), (1, 3)), ((1, 0), (5, 5)), ((2, 0), (5, 4)), ((3, 1), (5, 3))])  # touch, -, -, touch
    # each slot's own look (so linking follows it) plus per-cell noise (so every frame's box features differ)
    feats = (3 * torch.randn(3, 8)[labels] + torch.randn(4, H, W, 8)).unsqueeze(0)  # (1,T,h,w,C)
    cfg = TrajTokConfig(feature_dim=8, hidden_dim=16, num_queries=3, num_heads=2, roi_size=2, frames_per_chunk=2,
                        roi_isolated=isolated, link_threshold=0.5)
    tt = TrajTok(cfg).eval()
    tt.segmenter = _FixedSegmenter(labels, 3)
    with torch.no_grad():
        tracks = tt.track_chunks(iter([feats]))
    assert tracks.counts == [3]  # background + two squares, linked across the chunks
    per_frame = _per_frame(labels, feats)  # (T,K,P*P,C), slot k of the scene
    weights = torch.tensor([TOUCHING_FRAME_WEIGHT, 1.0, 1.0, TOUCHING_FRAME_WEIGHT]) if isolated else torch.ones(4)
    for k in (1, 2):
        track = int(tracks.hard_ids[0][labels == k].unique().item())  # one track id over all four frames
        expected = (per_frame[:, k] * weights[:, None, None]).sum(0) / weights.sum()
        torch.testing.assert_close(tracks.roi[tracks.ids[0].tolist().index(track)], expected)
        if isolated:  # and that is not the plain mean: the touching frames' boxes read something else
            assert not torch.allclose(expected, per_frame[:, k].mean(0), atol=1e-2)


def test_config_validates_and_round_trips_roi_isolated(tmp_path):
    with pytest.raises(ValueError, match="roi_isolated"):
        TrajTokConfig(roi_isolated="yes")
    assert TrajTokConfig().roi_isolated is False  # configs saved before the field: every present frame
    TrajTokConfig(roi_isolated=True).save_pretrained(tmp_path)
    assert TrajTokConfig.from_pretrained(tmp_path).roi_isolated is True
