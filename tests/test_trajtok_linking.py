"""Long video: chunks are linked so an object that stays in view keeps one trajectory id."""

import torch

from trajvlm.trajtok import TrajTok, TrajTokConfig, segmentation_loss

H = W = 8
C = 4  # channel 0 background, 1..3 objects: one-hot-ish features make the segmentation learnable in seconds


def render(T, objects, noise, gen):
    """objects: list of (channel, fn t -> (y, x) top-left or None). -> features (T,H,W,C), masks (T,H,W), graph."""
    feats = torch.zeros(T, H, W, C)
    feats[..., 0] = 1.0
    masks = torch.zeros(T, H, W, dtype=torch.long)
    graph = torch.zeros(len(objects), T, dtype=torch.long)
    for n, (ch, fn) in enumerate(objects):
        for t in range(T):
            pos = fn(t)
            if pos is None:
                continue
            y, x = pos
            feats[t, y : y + 2, x : x + 2] = 0.0
            feats[t, y : y + 2, x : x + 2, ch] = 1.0
            masks[t, y : y + 2, x : x + 2] = n + 1
            graph[n, t] = n + 1
    return feats + noise * torch.randn(feats.shape, generator=gen), masks, graph


def random_clip(gen, T=4):
    def rnd(n):
        return int(torch.randint(0, n, (1,), generator=gen))

    ya, xa, dy, dx = rnd(7), rnd(4), rnd(2) - 0, 1
    yb, xb = rnd(6), rnd(6)
    objs = [(1, lambda t: (ya, min(xa + dx * t, 6))), (2, lambda t: (yb, xb))]
    if rnd(2):
        yc, xc, t0 = rnd(6), rnd(6), rnd(T)
        objs.append((3, lambda t: (yc, xc) if t >= t0 else None))
    return render(T, objs, 0.05, gen)


def trained_model():
    torch.manual_seed(0)
    cfg = TrajTokConfig(feature_dim=C, hidden_dim=16, num_queries=5, num_heads=2, frames_per_chunk=4)
    model = TrajTok(cfg)
    opt = torch.optim.Adam(model.segmenter.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        clips = [random_clip(gen) for _ in range(4)]
        feats = torch.stack([c[0] for c in clips])
        masks = torch.stack([c[1] for c in clips])
        loss = segmentation_loss(model.segment(feats), masks, [c[2] for c in clips])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def long_video():
    gen = torch.Generator().manual_seed(1)
    objs = [
        (1, lambda t: (1, t // 2)),  # A: in view the whole time, moving right
        (2, lambda t: (5, 5)),  # B: static, whole time
        (3, lambda t: (5, 1) if t >= 8 else None),  # C: enters in the third chunk
    ]
    return render(12, objs, 0.05, gen)


def ids_of(hard_ids, masks, n):
    return set(hard_ids[masks == n].tolist())


def test_object_keeps_its_id_across_chunks_even_when_slots_permute():
    model = trained_model()
    feats, masks, _ = long_video()
    feats = feats.unsqueeze(0)
    with torch.no_grad():
        out = model(feats)
    hid = out.hard_ids[0]
    a, b, c = ids_of(hid, masks, 1), ids_of(hid, masks, 2), ids_of(hid, masks, 3)
    assert len(a) == 1 and len(b) == 1 and len(c) == 1, (a, b, c)
    assert len(a | b | c | ids_of(hid, masks, 0)) == 4
    pa, pb = out.presence[0][out.trajectory_ids[0] == a.pop()], out.presence[0][out.trajectory_ids[0] == b.pop()]
    assert pa.all() and pb.all()  # one trajectory each, present in all 12 frames
    pc = out.presence[0][out.trajectory_ids[0] == c.pop()][0]
    assert not pc[:8].any() and pc[8:].all()

    # Same video, but the segmenter's query slots are permuted before chunks 2 and 3 (what an independent
    # segmentation of each chunk may do). Linking must undo it: the per-cell ids stay exactly the same.
    q0 = model.segmenter.queries.data.clone()
    perms = [torch.arange(5), torch.tensor([3, 0, 4, 1, 2]), torch.tensor([2, 4, 1, 0, 3])]

    def chunks():
        for i in range(3):
            model.segmenter.queries.data = q0[perms[i]]
            yield feats[:, 4 * i : 4 * i + 4]

    with torch.no_grad():
        permuted = model.tokenize_chunks(chunks())
    model.segmenter.queries.data = q0
    # sanity: the permutation really changed the raw slot assignment of the later chunks
    assert not torch.equal(permuted.assignment_logits[:, 4:].argmax(-1), out.assignment_logits[:, 4:].argmax(-1))
    for n in (1, 2):
        assert ids_of(permuted.hard_ids[0], masks, n) == ids_of(hid, masks, n)


def _stats(queries, objects, t=2, h=4, w=4, C=3):
    """ChunkStats for hand-made slots. objects: {slot: (feature (C,), (y, x) cell)}; other slots are dead."""
    from trajvlm.trajtok.linking import chunk_stats

    K = queries.shape[0]
    feats = torch.zeros(1, t, h, w, C)
    logits = torch.full((1, t, h, w, K), -10.0)
    logits[..., K - 1] = 0.0  # the last slot takes the background
    feats[..., 0] = 1.0
    for k, (f, (y, x)) in objects.items():
        feats[0, :, y, x] = f
        logits[0, :, y, x, k] = 10.0
    return chunk_stats(feats, logits, queries.unsqueeze(0))


def test_linking_prefers_the_continuing_track_over_an_empty_placeholder():
    from trajvlm.trajtok.linking import TrackBank

    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)  # slot queries (same in every chunk)
    red, green = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    bank = TrackBank(link_threshold=0.75, memory=16)
    first = bank.link(_stats(q, {0: (red, (0, 0)), 2: (green, (3, 3))}), 0)
    assert first.tolist() == [0, -1, 2, 3]
    # next chunk: the red object is now won by slot 1, whose query exactly matches placeholder track 1
    second = bank.link(_stats(q, {1: (red, (0, 1)), 2: (green, (3, 3))}), 0)
    assert second.tolist() == [-1, 0, 2, 3]
    # a new-looking object far away starts a trajectory (an empty placeholder id), not a continuation
    third = bank.link(_stats(q, {1: (red, (0, 1)), 0: (torch.tensor([1.0, 1.0, 1.0]), (3, 0))}), 0)
    assert third[1] == 0 and third[0] not in (0, 2, 3) and third[0] >= 0
