"""component_min_piece: look-alike objects that touch in some frames are followed frame to frame and separated.

Masks are drawn on a 16x16 grid: each object a square moving at constant velocity; the test knows which cells
belong to which object and checks that every returned blob is mostly one object, over all its frames (where two
squares overlap, a mask cannot tell whose cells they are, so a few go to the other one).
"""

import numpy as np
import pytest
import torch

from trajvlm.trajtok import TrajTokConfig
from trajvlm.trajtok.components import component_groups, split_slot_components
from trajvlm.trajtok.touching import separate_touching

T, H, W = 12, 16, 16


def draw(objects):
    """objects: list of (size, fn t -> (y, x) top-left or None) -> (mask (T,H,W) bool, owner (T,H,W) int, -1 none).
    Later objects are drawn on top (they own the cells they cover)."""
    owner = np.full((T, H, W), -1, dtype=np.int64)
    for i, (size, fn) in enumerate(objects):
        for t in range(T):
            pos = fn(t)
            if pos is not None:
                y, x = pos
                owner[t, max(y, 0) : y + size, max(x, 0) : x + size] = i
    return owner >= 0, owner


def purity(blob, owner):
    """Share of the blob's cells owned by its main object, and that object."""
    ids = owner[blob]
    counts = np.bincount(ids, minlength=owner.max() + 1)
    return counts.max() / counts.sum(), int(counts.argmax())


def passing_pair():
    """A 3x3 square standing still and a 3x3 one moving right past it, one row lower, drawn on top: they touch or
    overlap in frames 3-9."""
    return [(3, lambda t: (6, 7)), (3, lambda t: (7, t))]


def crossing_pair():
    """Two 3x3 squares on neighbouring rows crossing each other (one right, one left) at constant speed."""
    return [(3, lambda t: (5, t)), (3, lambda t: (7, 13 - t))]


@pytest.mark.parametrize("objects", [passing_pair(), crossing_pair()], ids=["pass", "cross"])
def test_touching_objects_become_one_blob_each(objects):
    mask, owner = draw(objects)
    assert len(component_groups(mask, min_cells=4, max_overlap=1)) == 0  # one space-time blob: not split before
    blobs = separate_touching(mask, min_piece=3)
    assert len(blobs) == 2
    assert not (blobs[0] & blobs[1]).any() and np.array_equal(blobs[0] | blobs[1], mask)  # a partition
    mains = []
    for b in blobs:
        share, main = purity(b, owner)
        assert share >= 0.85, share  # each blob is mostly one object (cells where they overlap are ambiguous) ...
        mains.append(main)
        assert b[0].any() and b[-1].any()  # ... followed through the contact to the last frame
    assert sorted(mains) == [0, 1]
    groups = component_groups(mask, min_cells=4, max_overlap=1, min_piece=3)
    assert len(groups) == 2 and sorted(purity(g, owner)[1] for g in groups) == [0, 1]


def test_crossing_objects_keep_their_identity():
    """Constant velocity carries each track through the crossing: the square that starts on the left ends on the
    right (a nearest-centre guess alone could swap them)."""
    mask, owner = draw(crossing_pair())
    for b in separate_touching(mask, min_piece=3):
        first, last = owner[0][b[0]], owner[-1][b[-1]]
        assert len(set(first.tolist())) == 1 and set(first.tolist()) == set(last.tolist())


def test_one_object_is_never_cut():
    mask, _ = draw([(4, lambda t: (2 + t // 2, t))])
    assert separate_touching(mask, min_piece=3) == [mask]
    speck = mask.copy()
    speck[3:6, 15, 15] = True  # a 1-cell speck in 3 frames: below min_piece, not an object
    assert len(separate_touching(speck, min_piece=3)) == 1
    edge = mask.copy()
    edge[4, 14:16, 14:16] = True  # a 4-cell piece in one frame only: fewer than min_frames frames
    assert len(separate_touching(edge, min_piece=3)) == 1
    assert component_groups(mask, min_cells=4, max_overlap=1, min_piece=3) == []


def test_split_slot_components_uses_min_piece():
    mask, owner = draw(passing_pair())
    K = 3
    logits = torch.full((1, T, H, W, K), -5.0)
    logits[..., 0] = 5.0  # background slot
    logits[0, torch.from_numpy(mask), 0] = -5.0
    logits[0, torch.from_numpy(mask), 1] = 5.0  # both squares in slot 1 (the same colour)
    logits[0, :, 0, 0, 2] = 10.0  # a third slot with one cell per frame
    logits[0, :, 0, 0, 0] = -5.0
    queries = torch.eye(K).unsqueeze(0)  # (1,K,K)
    same, _ = split_slot_components(logits, queries, min_cells=4, max_overlap=1)
    assert same.shape[-1] == K  # space-time components: the touching pair stays one slot
    split, q = split_slot_components(logits, queries, min_cells=4, max_overlap=1, min_piece=3)
    assert split.shape[-1] == K + 1 and torch.equal(q[0, K], queries[0, 1])
    hard = split.argmax(-1)[0].numpy()  # (T,H,W)
    for slot in (1, K):
        share, _ = purity(hard == slot, owner)
        assert share >= 0.85  # one slot held both (share 0.5) before


def test_component_min_piece_config():
    assert TrajTokConfig().component_min_piece is None
    back = TrajTokConfig.from_dict(TrajTokConfig(split_components=True, component_min_piece=3).to_dict())
    assert back.component_min_piece == 3
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match="component_min_piece"):
            TrajTokConfig(component_min_piece=bad)


def test_tokenizer_follows_touching_objects_when_configured():
    """TrajTok end to end with a segmenter that puts both squares in one slot: one trajectory for the pair without
    component_min_piece, one per square with it."""
    from torch import nn

    from trajvlm.trajtok import TrajTok
    from trajvlm.trajtok.segmenter import SegmenterOutput

    class ChannelSegmenter(nn.Module):  # slot = feature channel (channel 1: both squares, the same colour)
        def forward(self, features):
            B, K = features.shape[0], features.shape[-1]
            return SegmenterOutput(logits=10.0 * features, query_embeds=torch.eye(K).expand(B, K, K))

    mask, _ = draw(crossing_pair())
    feats = torch.zeros(1, T, H, W, 2)
    feats[0, ..., 0] = torch.from_numpy(~mask).float()
    feats[0, ..., 1] = torch.from_numpy(mask).float()
    kept = []
    for min_piece in (None, 3):
        cfg = TrajTokConfig(feature_dim=2, hidden_dim=16, num_queries=2, num_heads=2, frames_per_chunk=T,
                            max_trajectories=4, split_components=True, component_min_cells=4,
                            component_min_piece=min_piece)
        tok = TrajTok(cfg).eval()
        tok.segmenter = ChannelSegmenter()
        with torch.no_grad():
            kept.append(len(tok(feats).trajectory_ids[0]))
    assert kept == [2, 3]  # background + the pair; background + each square
