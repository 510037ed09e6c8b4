"""Segmenter refine blocks: dilation / temporal mixing are opt-in; defaults keep old checkpoints unchanged."""

import json

import pytest
import torch

from trajvlm.trajtok import TrajTok, TrajTokConfig

SMALL = {"feature_dim": 8, "hidden_dim": 16, "num_queries": 4, "num_heads": 2, "frames_per_chunk": 4, "refine_layers": 3}


def refine_out(seg, x):
    for blk in seg.refine:
        x = blk(x)
    return x  # (B,t,h,w,D)


def test_defaults_are_the_original_per_frame_3x3_blocks():
    cfg = TrajTokConfig(**SMALL)
    assert (cfg.refine_dilation, cfg.refine_temporal) == (1, False)
    keys = set(TrajTok(cfg).state_dict())
    assert not any("dw3d" in k for k in keys) and "segmenter.refine.0.dw.weight" in keys
    for blk in TrajTok(cfg).segmenter.refine:
        assert blk.dw.dilation == (1, 1) and blk.dw.kernel_size == (3, 3)


def test_temporal_blocks_mix_frames_and_per_frame_blocks_do_not():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 6, 6, 16)
    y = x.clone()
    y[:, 1] += 1.0  # change frame 1 only
    for temporal, mixes in ((False, False), (True, True)):
        seg = TrajTok(TrajTokConfig(**SMALL, refine_temporal=temporal)).segmenter
        with torch.no_grad():
            d = (refine_out(seg, x) - refine_out(seg, y))[:, 0].abs().max()  # frame 0
        assert (d > 1e-4) == mixes, (temporal, float(d))


def test_dilation_widens_the_receptive_field():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 16, 16, 16)
    y = x.clone()
    y[:, :, 0, 6] += 1.0  # 6 cells away: beyond 3 undilated 3x3 blocks (reach 3), within dilations 1,2,4 (reach 7)
    for dilation, reaches in ((1, False), (2, True)):
        seg = TrajTok(TrajTokConfig(**SMALL, refine_dilation=dilation)).segmenter
        with torch.no_grad():
            d = (refine_out(seg, x) - refine_out(seg, y))[0, 0, 0, 0].abs().max()
        assert (d > 1e-4) == reaches, (dilation, float(d))
    seg = TrajTok(TrajTokConfig(**SMALL, refine_dilation=2, refine_max_dilation=2)).segmenter
    assert [b.dw.dilation[0] for b in seg.refine] == [1, 2, 2]


def test_round_trip_and_configs_saved_before_the_fields(tmp_path):
    torch.manual_seed(0)
    feats = torch.randn(1, 6, 5, 5, 8)
    for extra in ({}, {"refine_dilation": 2, "refine_temporal": True}):
        tt = TrajTok(TrajTokConfig(**SMALL, **extra)).eval()
        d = tmp_path / str(len(extra))
        tt.save_pretrained(d)
        if not extra:  # a config.json written before the fields existed
            cfg = json.loads((d / "config.json").read_text())
            for k in ("refine_dilation", "refine_max_dilation", "refine_temporal"):
                del cfg[k]
            (d / "config.json").write_text(json.dumps(cfg))
        back = TrajTok.from_pretrained(d).eval()
        assert (back.config.refine_dilation, back.config.refine_temporal) == (
            extra.get("refine_dilation", 1), extra.get("refine_temporal", False))
        with torch.no_grad():
            assert torch.equal(tt.segment(feats), back.segment(feats))


def test_bad_values_raise():
    with pytest.raises(ValueError, match="refine_dilation"):
        TrajTokConfig(refine_dilation=0)
    with pytest.raises(ValueError, match="refine_temporal"):
        TrajTokConfig(refine_temporal=1)
