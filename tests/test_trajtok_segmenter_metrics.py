"""Object-level segmenter metric: kept non-background trajectories vs GT objects, and object recall."""

import pytest
import torch

from trajvlm.trajtok import SegmentationInputError, gt_label_map
from trajvlm.trajtok.metrics import object_counts, summarize_object_counts


def scene(T=4, H=16, W=16):
    """Background + 3 objects: two large (ids 3, 5) and one (7) that appears at t=2. Grid 4x4 = stride 4."""
    masks = torch.zeros(1, T, H, W, dtype=torch.long)
    for t in range(T):
        masks[0, t, 0:8, 0:8] = 3
        masks[0, t, 8:16, 8:16] = 5
        if t >= 2:
            masks[0, t, 12:16, 0:4] = 7
    graph = torch.tensor([[3] * T, [5] * T, [0, 0, 7, 7]])
    return masks, [graph]


def perfect_ids(masks, graphs, offset=10):
    lab = gt_label_map(masks[0], graphs[0], 4, 4)  # (T,4,4) in 0..3, 0 = background
    return (lab + offset).unsqueeze(0)  # (1,T,4,4) arbitrary trajectory ids


def test_perfect_prediction_counts_and_recall():
    masks, graphs = scene()
    ids = perfect_ids(masks, graphs)
    [c] = object_counts(ids, [torch.tensor([10, 11, 12, 13])], masks, graphs)
    assert (c.num_gt, c.num_kept, c.num_matched, c.count_error) == (3, 3, 3, 0)
    s = summarize_object_counts([c])
    assert s["count_match"] == 1.0 and s["object_recall"] == 1.0 and s["mean_abs_count_error"] == 0.0


def test_merge_split_and_drop_are_caught():
    masks, graphs = scene()
    ids = perfect_ids(masks, graphs)
    merged = ids.clone()
    merged[merged == 12] = 11  # objects 3 and 5 -> one trajectory
    [m] = object_counts(merged, [torch.tensor([10, 11, 13])], masks, graphs)
    assert (m.num_kept, m.num_matched) == (2, 2)  # 7 + one of the merged pair (IoU exactly 0.5); 5 is lost

    split = ids.clone()
    split[0, :, 0, 0] = 20  # a fragment of object 3 becomes its own trajectory
    [s] = object_counts(split, [torch.tensor([10, 11, 12, 13, 20])], masks, graphs)
    assert (s.num_kept, s.num_matched, s.count_error) == (4, 3, 1)

    [d] = object_counts(ids, [torch.tensor([10, 11, 12])], masks, graphs)  # object 7 dropped by the selection
    assert (d.num_kept, d.num_matched, d.count_error) == (2, 2, -1)

    [nb] = object_counts(ids, [torch.tensor([11, 12, 13])], masks, graphs)  # background not kept: 3 objects
    assert (nb.num_kept, nb.num_matched) == (3, 3)

    s = summarize_object_counts([m, s, d, nb])
    assert s["count_match"] == 0.25
    assert s["object_recall"] == pytest.approx((2 + 3 + 2 + 3) / 12)
    assert s["mean_abs_count_error"] == pytest.approx((1 + 1 + 1 + 0) / 4)


def test_bad_input_raises():
    masks, graphs = scene()
    ids = perfect_ids(masks, graphs)
    with pytest.raises(SegmentationInputError):
        object_counts(ids.float(), [torch.tensor([10])], masks, graphs)
    with pytest.raises(SegmentationInputError):
        object_counts(ids, [], masks, graphs)
    with pytest.raises(SegmentationInputError):
        object_counts(ids, [torch.tensor([10, 10])], masks, graphs)
    with pytest.raises(SegmentationInputError):
        summarize_object_counts([])
