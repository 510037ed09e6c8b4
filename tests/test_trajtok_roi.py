"""Box-aligned (RoI) features of trajectories: sampling geometry, per-track averaging, effect on the tokens."""

from __future__ import annotations

import pytest
import torch

from trajvlm.trajtok import TrajTok, TrajTokConfig
from trajvlm.trajtok.linking import box_features


def test_box_features_sample_cell_centres_inside_the_box():
    h = w = 8
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    feats = torch.stack([xs, ys], dim=-1)[None, None]  # (1,1,h,w,2): feature = (column, row) of the cell
    boxes = torch.tensor([[[[0.25, 0.5, 0.75, 1.0]]]])  # (1,1,1,4): columns 2..5, rows 4..7
    out = box_features(feats, boxes, size=2)  # (1,1,1,4,2)
    assert out.shape == (1, 1, 1, 4, 2)
    got = out[0, 0, 0]
    # a 2x2 grid in the box samples at x = 2+1 -0.5 +- ... : bin centres 0.25 / 0.75 of the box -> cells 2.5 / 4.5
    expected = torch.tensor([[2.5, 4.5], [4.5, 4.5], [2.5, 6.5], [4.5, 6.5]])
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("roi_size", [0, 3])
def test_tokens_depend_on_the_roi_features_only_when_enabled(roi_size):
    torch.manual_seed(0)
    tt = TrajTok(TrajTokConfig(feature_dim=8, hidden_dim=16, num_queries=4, num_heads=2, roi_size=roi_size)).eval()
    with torch.no_grad():
        tracks = tt.track_chunks(iter([torch.randn(1, 4, 6, 6, 8)]))
        ref = tt.encode_tracks(tracks).tokens[0]
        if roi_size == 0:
            assert tracks.roi is None
            return
        assert tracks.roi.shape == (tracks.pooled.shape[0], roi_size * roi_size, 8)
        tracks.roi = tracks.roi.flip(1)  # same features, other layout (e.g. a shape mirrored)
        other = tt.encode_tracks(tracks).tokens[0]
    assert ref.shape == other.shape and not torch.allclose(ref, other)


def test_encoder_requires_roi_when_configured():
    tt = TrajTok(TrajTokConfig(feature_dim=8, hidden_dim=16, num_queries=4, num_heads=2, roi_size=2))
    with pytest.raises(ValueError, match="roi"):
        tt.encoder(torch.zeros(2, 3, 8), torch.ones(2, 3), torch.ones(2, 3), torch.zeros(2, 3, 4), grid_cells=16)
    with pytest.raises(ValueError, match="roi_size"):
        TrajTokConfig(roi_size=-1)


def test_roi_is_averaged_over_chunks_by_present_frames():
    """A track spanning two chunks gets the frame-weighted mean of the per-chunk roi features."""
    torch.manual_seed(0)
    cfg = TrajTokConfig(feature_dim=8, hidden_dim=16, num_queries=4, num_heads=2, roi_size=2, frames_per_chunk=2)
    tt = TrajTok(cfg).eval()
    feats = torch.randn(1, 4, 6, 6, 8)
    with torch.no_grad():
        whole = tt.track_chunks(iter([feats]))
    # every track: roi equals the mean over its present frames of the per-frame box features
    area, boxes = whole.area, whole.boxes  # (R,T), (R,T,4)
    per_frame = box_features(feats.expand(whole.pooled.shape[0], -1, -1, -1, -1).reshape(-1, 1, 6, 6, 8),
                             boxes.reshape(-1, 1, 1, 4), 2).reshape(whole.pooled.shape[0], 4, 4, 8)  # (R,T,P*P,C)
    present = (area > 0).float()
    expected = (per_frame * present[..., None, None]).sum(1) / present.sum(1).clamp_min(1)[:, None, None]
    torch.testing.assert_close(whole.roi, expected)
