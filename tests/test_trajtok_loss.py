"""Segmentation loss (Hungarian focal+dice) and matched mIoU."""

import torch

from trajvlm.trajtok import gt_label_map, matched_miou, segmentation_loss


def scene(T=4, H=16, W=16):
    masks = torch.zeros(1, T, H, W, dtype=torch.long)
    for t in range(T):
        masks[0, t, 0:8, t : t + 8] = 3
        masks[0, t, 10:16, 8:14] = 5
        if t >= 2:
            masks[0, t, 12:16, 0:4] = 7  # appears at t=2
    graph = torch.tensor([[3] * T, [5] * T, [0, 0, 7, 7]])
    return masks, [graph]


def permute_ids(masks, graph, perm):
    """Relabel GT ids and reorder graph rows: the same scene with permuted trajectory ids."""
    new_masks = masks.clone()
    new_graph = graph[perm].clone()
    ids = sorted(int(i) for i in graph.unique() if i != 0)
    remap = {old: 100 + j for j, old in enumerate(reversed(ids))}
    for old, new in remap.items():
        new_masks[masks == old] = new
        new_graph[graph[perm] == old] = new
    return new_masks, [new_graph]


def test_label_map_majority_and_graph():
    masks, graphs = scene()
    lab = gt_label_map(masks[0], graphs[0], 4, 4)
    assert lab.shape == (4, 4, 4)
    assert lab[0, 0, 0] == 1 and lab[0, 3, 2] == 2 and lab[0, 3, 0] == 0 and lab[2, 3, 0] == 3


def test_loss_invariant_to_gt_permutation():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 4, 4, 6)
    masks, graphs = scene()
    base = segmentation_loss(logits, masks, graphs)
    for perm in ([2, 0, 1], [1, 2, 0]):
        pm, pg = permute_ids(masks, graphs[0], torch.tensor(perm))
        assert not torch.equal(pg[0], graphs[0])
        assert torch.allclose(segmentation_loss(logits, pm, pg), base, atol=1e-6)
        ce = segmentation_loss(logits, masks, graphs, ce_weight=1.0)
        assert ce > base and torch.allclose(segmentation_loss(logits, pm, pg, ce_weight=1.0), ce, atol=1e-6)


def test_loss_low_for_perfect_prediction_and_invariant_to_slot_order():
    masks, graphs = scene()
    lab = gt_label_map(masks[0], graphs[0], 4, 4)  # (T,4,4) in 0..3
    perfect = 30.0 * torch.nn.functional.one_hot(lab, 6).float().unsqueeze(0)  # (1,T,4,4,6)
    good = segmentation_loss(perfect, masks, graphs)
    shuffled = segmentation_loss(perfect[..., [5, 3, 1, 0, 2, 4]], masks, graphs)
    torch.manual_seed(0)
    rand = segmentation_loss(torch.randn(1, 4, 4, 4, 6), masks, graphs)
    assert good < 1e-3 and torch.allclose(good, shuffled) and rand > 100 * good
    assert segmentation_loss(perfect, masks, graphs, ce_weight=1.0) < 1e-3


def test_loss_per_chunk_matching():
    masks, graphs = scene()
    lab = gt_label_map(masks[0], graphs[0], 4, 4)
    logits = 30.0 * torch.nn.functional.one_hot(lab, 6).float().unsqueeze(0)
    # second chunk uses a different slot order: wrong as one space-time mask, right per chunk
    logits[:, 2:] = logits[:, 2:][..., [3, 2, 1, 0, 4, 5]]
    assert segmentation_loss(logits, masks, graphs, frames_per_chunk=2) < 1e-3
    assert segmentation_loss(logits, masks, graphs) > 0.1


def test_matched_miou():
    masks, graphs = scene()
    lab = gt_label_map(masks[0], graphs[0], 4, 4).unsqueeze(0)
    assert matched_miou(lab * 7 + 2, masks, graphs) == 1.0  # ids are arbitrary
    merged = lab.clone()
    merged[merged == 3] = 2  # objects 2 and 3 merged -> object 3 unmatched
    miou = matched_miou(merged, masks, graphs)
    assert 0.3 < miou < 1.0
    assert matched_miou(torch.zeros_like(lab), masks, graphs) == 0.0
