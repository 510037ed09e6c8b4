"""split_components: a slot holding two look-alike objects becomes one trajectory per object.

The segmenter is replaced by a fixed map "feature channel c -> slot c" (channel 0 = background), so two objects
drawn with the same channel -- the same colour -- always share a slot, as the real segmenter's merges do.
"""

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from trajvlm.trajtok import TrajTok, TrajTokConfig
from trajvlm.trajtok.components import component_groups, split_slot_components
from trajvlm.trajtok.segmenter import SegmenterOutput

H = W = 12
C = K = 4


class ChannelSegmenter(nn.Module):
    """features (B,t,h,w,C) -> logits (B,t,h,w,K=C): slot = the feature's channel; fixed query per slot."""

    def forward(self, features):
        B = features.shape[0]
        queries = torch.eye(K).expand(B, K, K)  # (B,K,D=K) unit vectors
        return SegmenterOutput(logits=10.0 * features, query_embeds=queries)


def render(T, objects):
    """objects: (channel, fn t -> (y, x) top-left of a 2x2 square, or None) -> features (T,H,W,C)."""
    feats = torch.zeros(T, H, W, C)
    feats[..., 0] = 1.0
    for ch, fn in objects:
        for t in range(T):
            pos = fn(t)
            if pos is not None:
                y, x = pos
                feats[t, y : y + 2, x : x + 2] = 0.0
                feats[t, y : y + 2, x : x + 2, ch] = 1.0
    return feats


def tokenizer(split: bool, frames_per_chunk: int = 8, **kw) -> TrajTok:
    cfg = TrajTokConfig(feature_dim=C, hidden_dim=16, num_queries=K, num_heads=2, frames_per_chunk=frames_per_chunk,
                        split_components=split, component_min_cells=4, **kw)
    tok = TrajTok(cfg).eval()
    tok.segmenter = ChannelSegmenter()
    return tok


def two_red_objects(T):
    """Two channel-1 ('red') squares moving right on separate rows, plus a channel-2 square."""
    return [(1, lambda t: (1, min(t, 9))), (1, lambda t: (8, max(9 - t, 0))), (2, lambda t: (5, 5))]


def test_component_groups_splits_only_simultaneous_blobs():
    mask = np.zeros((6, H, W), dtype=bool)
    mask[:, 1:3, 1:3] = True  # object A in every frame
    mask[:, 8:10, 8:10] = True  # object B in the same frames
    groups = component_groups(mask, min_cells=4, max_overlap=1)
    assert len(groups) == 2 and sorted(int(g.sum()) for g in groups) == [24, 24]

    gone_and_back = np.zeros((6, H, W), dtype=bool)
    gone_and_back[:2, 1:3, 1:3] = True  # hidden in frames 2-3, back elsewhere: one object
    gone_and_back[4:, 6:8, 6:8] = True
    assert component_groups(gone_and_back, min_cells=4, max_overlap=1) == []

    moving = np.zeros((6, H, W), dtype=bool)
    for t in range(6):
        moving[t, 3:5, t : t + 2] = True  # one cell per frame: one space-time component
    assert component_groups(moving, min_cells=4, max_overlap=1) == []

    speck = mask.copy()
    speck[:, 8:10, 8:10] = False
    speck[0, 8, 8] = True  # a 1-cell speck is not an object
    assert component_groups(speck, min_cells=4, max_overlap=1) == []


def test_objects_that_touch_in_one_frame_stay_one_trajectory():
    """Space-time components: two squares that touch in frames 3-4 are one blob of the chunk and are not split.
    Deliberate by default: following blobs frame by frame and sharing out the joint blob separated more merged
    pairs, but it guessed identities where objects crossed and swapped them (eval/results/default_model.md,
    session 8). ``component_min_piece`` turns that on (tests/test_trajtok_touching.py)."""
    T = 8
    mask = np.zeros((T, H, W), dtype=bool)
    xs_a = [0, 1, 2, 3, 3, 2, 1, 0]
    for t in range(T):
        mask[t, 4:7, xs_a[t] : xs_a[t] + 3] = True  # A: 3x3, x0 0..3..0
        mask[t, 4:7, 9 - xs_a[t] : 12 - xs_a[t]] = True  # B: mirror image, touches A when x0 = 3
    assert all(ndimage.label(mask[t])[1] == 1 for t in (3, 4))
    assert component_groups(mask, min_cells=4, max_overlap=1) == []
    apart = mask.copy()
    apart[3:5] = False  # the same two squares, hidden while they would touch: two objects
    assert len(component_groups(apart, min_cells=4, max_overlap=1)) == 2


def test_split_moves_cells_to_a_new_slot_and_keeps_soft_masks():
    feats = torch.stack([render(6, two_red_objects(6)), render(6, [(1, lambda t: (2, 2))])])  # (2,6,H,W,C)
    out = ChannelSegmenter()(feats)
    logits, queries = split_slot_components(out.logits, out.query_embeds, min_cells=4, max_overlap=1)
    assert logits.shape == (2, 6, H, W, K + 1) and queries.shape == (2, K + 1, K)
    hard = logits.argmax(-1)  # (2,6,H,W)
    new = hard[0] == K
    assert new.any() and (hard[0] == 1).any()  # both red objects keep a slot of their own
    assert not (new & (hard[0] == 1)).any()
    rows_new = new.nonzero()[:, 1].unique().tolist()
    rows_old = (hard[0] == 1).nonzero()[:, 1].unique().tolist()
    assert set(rows_new).isdisjoint(rows_old)  # one object each, not a mix
    assert torch.equal(queries[0, K], out.query_embeds[0, 1])  # the new slot copies its source's query
    assert not (hard[1] == K).any()  # video 1 (one red object) gets an empty padding slot
    # soft masks unchanged: the winning probability of every cell is what it was before the split
    assert torch.allclose(logits.softmax(-1).amax(-1), out.logits.softmax(-1).amax(-1), atol=1e-6)
    # nothing to split -> the inputs come back unchanged
    same = split_slot_components(out.logits[1:], out.query_embeds[1:], min_cells=4, max_overlap=1)
    assert torch.equal(same[0], out.logits[1:]) and torch.equal(same[1], out.query_embeds[1:])


def test_background_slot_is_never_split():
    feats = render(4, [(0, lambda t: None)]).unsqueeze(0)  # background only
    feats[0, :, :, 5:7, 0] = 0.0
    feats[0, :, :, 5:7, 3] = 1.0  # a wall cuts the background into two halves
    out = ChannelSegmenter()(feats)
    logits, _ = split_slot_components(out.logits, out.query_embeds, min_cells=4, max_overlap=1)
    assert logits.shape[-1] == K


@pytest.mark.parametrize("frames_per_chunk", [16, 8])  # one chunk; two chunks linked
def test_tokenizer_gives_each_look_alike_object_its_own_trajectory(frames_per_chunk):
    T = 16
    feats = render(T, two_red_objects(T)).unsqueeze(0)  # (1,T,H,W,C)
    merged = tokenizer(False, frames_per_chunk)(feats)
    split = tokenizer(True, frames_per_chunk)(feats)
    assert len(merged.trajectory_ids[0]) == 3  # background, the two reds as one, the other object
    assert len(split.trajectory_ids[0]) == 4
    # every kept trajectory is one object: its box never spans both red rows (1-2 and 8-9 of 12)
    for boxes, present in zip(split.boxes[0], split.presence[0]):
        heights = (boxes[present, 3] - boxes[present, 1]) * H
        assert heights.max() <= 2 or heights.min() >= H  # an object (2 cells) or the background (whole frame)
    # each red object keeps one id over the whole video (linked across chunks): present in all T frames
    objects = [p for b, p in zip(split.boxes[0], split.presence[0]) if ((b[p, 3] - b[p, 1]) * H).max() <= 2]
    assert len(objects) == 3 and all(bool(p.all()) for p in objects)
    # the per-cell id map agrees: the two red squares carry different ids in every frame
    ids = split.hard_ids[0]  # (T,H,W)
    for t in range(T):
        assert ids[t, 1, min(t, 9)] != ids[t, 8, max(9 - t, 0)]


def test_split_components_is_off_by_default_and_validated():
    assert TrajTokConfig().split_components is False
    cfg = TrajTokConfig(split_components=True, component_min_cells=7, component_max_overlap=0)
    back = TrajTokConfig.from_dict(cfg.to_dict())
    assert (back.split_components, back.component_min_cells, back.component_max_overlap) == (True, 7, 0)
    with pytest.raises(ValueError, match="split_components"):
        TrajTokConfig(split_components="yes")
    with pytest.raises(ValueError, match="component_min_cells"):
        TrajTokConfig(component_min_cells=0)
    with pytest.raises(ValueError, match="component_max_overlap"):
        TrajTokConfig(component_max_overlap=-1)
