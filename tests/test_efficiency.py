"""Efficiency accounting: token formulas, closed-form prefill FLOPs vs FlopCounterMode on the meta device, presets,
the `trajvlm bench efficiency` command."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig

from trajvlm.eval.efficiency import (
    PATCH_FULL,
    PATCH_POOLED,
    TRAJ_BUDGET,
    TRAJ_FIXED_K,
    TRAJ_PER_CHUNK,
    EfficiencyError,
    MetaFlopCounter,
    analytic_agreement,
    count_flops,
    efficiency_table,
    feature_grid,
    format_markdown,
    llm_prefill_flops,
    visual_tokens,
)
from trajvlm.model.presets import PRESETS, PresetError, get_preset


def _small_llama(**kw) -> LlamaConfig:
    base = {"vocab_size": 300, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 3,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}
    base.update(kw)
    return LlamaConfig(**base)


def _counted(text_config, seq_len: int) -> int:
    from trajvlm.model import TrajVLMConfig
    from trajvlm.vision.conv_backbone import ConvBackboneConfig

    cfg = TrajVLMConfig(vision_config=ConvBackboneConfig(image_size=32, hidden_sizes=[8, 16], hidden_size=16),
                        text_config=text_config, video_token_id=5)
    return MetaFlopCounter(cfg).llm_prefill(seq_len)


@pytest.mark.parametrize("seq_len", [1, 7, 64, 300])
@pytest.mark.parametrize("kw", [{}, {"num_key_value_heads": 4}, {"head_dim": 32}])
def test_closed_form_matches_flop_counter(seq_len, kw):
    text = _small_llama(**kw)
    assert llm_prefill_flops(text, seq_len) == _counted(text, seq_len)


def test_closed_form_matches_flop_counter_llama3_8b():
    text = get_preset("so400m-llama3-8b").config.text_config
    assert llm_prefill_flops(text, 100) == _counted(text, 100)
    # ~2 * 8e9 parameters' worth of matmuls per token (embeddings excluded): sanity of the scale
    per_token = llm_prefill_flops(text, 1000) / 1000
    assert 13e9 < per_token < 16e9


def test_prefill_flops_grow_quadratically_with_attention():
    text = _small_llama()
    f1, f2, f4 = (llm_prefill_flops(text, n) for n in (1000, 2000, 4000))
    assert f4 - f2 > 2 * (f2 - f1)  # the L^2 attention term
    with pytest.raises(EfficiencyError):
        llm_prefill_flops(text, 0)


def test_count_flops_counts_a_matmul():
    a, b = torch.empty(3, 5, device="meta"), torch.empty(5, 7, device="meta")
    assert count_flops(lambda: a @ b) == 2 * 3 * 5 * 7


def test_presets_are_the_published_shapes():
    cfg = get_preset("so400m-llama3-8b").config
    v, t, tt = cfg.vision_config, cfg.text_config, cfg.trajtok_config
    assert (v.hidden_size, v.num_hidden_layers, v.image_size, v.patch_size) == (1152, 27, 384, 14)
    assert (t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads,
            t.vocab_size) == (4096, 14336, 32, 32, 8, 128256)
    assert tt.feature_dim == v.hidden_size and cfg.connector == "trajtok"
    assert feature_grid(cfg) == (27, 27)
    patch = get_preset("so400m-llama3-8b-patch").config
    assert patch.connector == "patch" and patch.trajtok_config is None and patch.patch_pool_stride == 2
    with pytest.raises(PresetError):
        get_preset("nope")


def test_preset_names_in_cli_match_registry():
    from trajvlm.eval.bench.args import PRESET_NAMES

    assert set(PRESET_NAMES) == set(PRESETS)


def test_visual_token_formulas_real_scale():
    spec = get_preset("so400m-llama3-8b")
    cfg = spec.config
    nl = spec.patch_row_newline
    # LLaVA-Video: 27x27 -> 14x14 pooled + 14 row newlines = 210 per frame; full 27 x 28 = 756
    assert visual_tokens(cfg, PATCH_POOLED, 1, patch_row_newline=nl) == 210
    assert visual_tokens(cfg, PATCH_FULL, 64, patch_row_newline=nl) == 64 * 756
    assert visual_tokens(cfg, PATCH_POOLED, 64, patch_row_newline=False) == 64 * 196
    for t in (16, 64, 1024):
        assert visual_tokens(cfg, TRAJ_BUDGET, t) == cfg.token_budget
        assert visual_tokens(cfg, TRAJ_FIXED_K, t) == cfg.trajtok_config.num_queries
    assert visual_tokens(cfg, TRAJ_BUDGET, 64, live_trajectories=9) == 9
    assert visual_tokens(cfg, TRAJ_BUDGET, 64, live_trajectories=10_000) == cfg.token_budget
    assert visual_tokens(cfg, TRAJ_PER_CHUNK, 17) == 2 * 128  # ceil(17/16) chunks x K
    with pytest.raises(EfficiencyError):
        visual_tokens(cfg, "bogus", 16)
    with pytest.raises(EfficiencyError):
        visual_tokens(cfg, TRAJ_BUDGET, 0)
    with pytest.raises(EfficiencyError):
        visual_tokens(get_preset("so400m-llama3-8b-patch").config, TRAJ_FIXED_K, 16)


def test_visual_tokens_q_and_budget():
    from trajvlm.model import TrajVLMConfig
    from trajvlm.testing import tiny_trajtok_config
    from trajvlm.vision.conv_backbone import ConvBackboneConfig

    cfg = TrajVLMConfig(vision_config=ConvBackboneConfig(image_size=32, hidden_sizes=[16, 32], hidden_size=32),
                        text_config=_small_llama(), trajtok_config=tiny_trajtok_config(), token_budget=7,
                        video_token_id=5)
    q, k = 2, 4  # tiny_trajtok_config
    assert visual_tokens(cfg, TRAJ_BUDGET, 40) == (7 // q) * q
    assert visual_tokens(cfg, TRAJ_FIXED_K, 40) == k * q
    assert visual_tokens(cfg, PATCH_FULL, 3) == 3 * 8 * 8
    assert visual_tokens(cfg, PATCH_POOLED, 3) == 3 * 4 * 4


def test_efficiency_table_tiny_counted():
    spec = get_preset("tiny-default")
    rows = efficiency_table(spec.config, [16, 64], text_tokens=10, patch_row_newline=spec.patch_row_newline)
    assert len(rows) == 2 * 5
    assert analytic_agreement(rows) < 1e-12
    by = {(r.frames, r.variant): r for r in rows}
    assert by[16, TRAJ_BUDGET].prefill_flops == by[64, TRAJ_BUDGET].prefill_flops  # bounded by the budget
    assert by[64, PATCH_POOLED].visual_tokens == 4 * by[16, PATCH_POOLED].visual_tokens
    assert by[64, TRAJ_PER_CHUNK].visual_tokens == 4 * by[16, TRAJ_PER_CHUNK].visual_tokens
    for r in rows:
        assert r.vision_flops > 0 and r.connector_flops > 0 and r.total_flops > r.prefill_flops
    # the same frames cost the same vision FLOPs in every variant
    assert len({r.vision_flops for r in rows if r.frames == 64}) == 1
    md = format_markdown(rows)
    lines = md.splitlines()
    assert len(lines) == 2 + len(rows)
    assert len({line.count("|") for line in lines}) == 1


def test_efficiency_table_rejects_bad_input():
    cfg = get_preset("tiny-default").config
    with pytest.raises(EfficiencyError):
        efficiency_table(cfg, [16], variants=["nope"], count=False)
    with pytest.raises(EfficiencyError):
        efficiency_table(get_preset("so400m-llama3-8b-patch").config, [16], count=False)
    only_patch = efficiency_table(get_preset("so400m-llama3-8b-patch").config, [16],
                                  variants=[PATCH_FULL, PATCH_POOLED], count=False)
    assert [r.visual_tokens for r in only_patch] == [16 * 729, 16 * 196]


def test_cli_efficiency_writes_record(tmp_path, capsys):
    from trajvlm.cli import main

    out = tmp_path / "eff.md"
    assert main(["bench", "efficiency", "--preset", "tiny-default", "--frames", "16", "64", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    assert "OMP_NUM_THREADS=1 trajvlm bench efficiency --preset tiny-default --frames 16 64" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 10 and table[0] in printed
    assert "load average" in text


def test_cli_real_scale_analytic_fast(capsys):
    from trajvlm.cli import main

    assert main(["bench", "efficiency", "--frames", "64", "--analytic"]) == 0
    out = capsys.readouterr().out
    assert "13,440" in out  # 64 frames x 210 tokens (patch 2x2-pooled at LLaVA-Video scale)
    assert "48,384" in out  # 64 x 756 (full)


def test_roi_features_are_counted_in_the_connector_flops():
    with_roi = get_preset("tiny-default").config
    without = get_preset("tiny-default").config
    without.trajtok_config.roi_size = 0
    assert with_roi.trajtok_config.roi_size > 0
    kw = dict(text_tokens=10, variants=[TRAJ_BUDGET])
    a = efficiency_table(with_roi, [16], **kw)[0]
    b = efficiency_table(without, [16], **kw)[0]
    assert a.connector_flops > b.connector_flops and a.vision_flops == b.vision_flops
