"""ZeRO-3-friendly TrajTok (no 0-dim parameters, a ModelOutput segmenter output), loading of old checkpoints with a
0-dim ``log_logit_scale``, and strict loading: a checkpoint that lacks weights fails at load time, naming them."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers.utils import ModelOutput

import trajvlm  # noqa: F401  (registers the Auto classes)
from trajvlm.model import TrajVLMForConditionalGeneration, TrajVLMProcessor
from trajvlm.model.modeling_trajvlm import MissingWeightsError
from trajvlm.testing import make_tiny_video, tiny_trajtok_config
from trajvlm.trajtok import SegmenterOutput, TrajSegmenter, TrajTok
from trajvlm.trajtok.tokenizer import WEIGHTS_NAME

SCALE_KEY = "connector.segmenter.log_logit_scale"
OLD_VALUE = 1.25  # a value no constructor produces (init is log(init_logit_scale) = log(10))


def _make_scalar_0dim(path, key: str, value: float = OLD_VALUE) -> None:
    """Rewrite a safetensors file as an old checkpoint: `key` stored 0-dim."""
    state = load_file(str(path))
    assert key in state, sorted(state)[:5]
    state[key] = torch.tensor(value, dtype=state[key].dtype)
    save_file(state, str(path), metadata={"format": "pt"})
    assert load_file(str(path))[key].dim() == 0


@pytest.fixture(scope="module")
def loaded(tiny_trajvlm_dir):
    return TrajVLMForConditionalGeneration.from_pretrained(tiny_trajvlm_dir)


# ---- shapes / outputs -----------------------------------------------------------------------------------------
def test_log_logit_scale_has_shape_1_and_no_parameter_is_0dim(loaded, tiny_trajvlm_dir):
    seg = TrajSegmenter(tiny_trajtok_config())
    assert seg.log_logit_scale.shape == (1,)
    assert seg.log_logit_scale.item() == pytest.approx(torch.log(torch.tensor(10.0)).item())
    scalars = [n for n, p in loaded.named_parameters() if p.dim() == 0]
    assert not scalars, scalars
    assert loaded.connector.segmenter.log_logit_scale.shape == (1,)
    assert load_file(str(tiny_trajvlm_dir / "model.safetensors"))[SCALE_KEY].shape == (1,)  # saved as (1,)


def test_segmenter_output_is_a_model_output_deepspeed_hooks_reach():
    torch.manual_seed(0)
    cfg = tiny_trajtok_config(feature_dim=12)
    seg = TrajSegmenter(cfg)
    out = seg(torch.randn(2, 3, 4, 4, 12))
    assert isinstance(out, SegmenterOutput) and isinstance(out, ModelOutput)
    assert out.logits.shape == (2, 3, 4, 4, cfg.num_queries) and out.query_embeds.shape == (2, cfg.num_queries, 32)
    assert out["logits"] is out.logits and out[1] is out.query_embeds
    # the scale still multiplies the logits: cosines are in [-1, 1], the scale is 10 at init
    assert out.logits.abs().max() <= 10.0 + 1e-4 and out.logits.abs().max() > 1.0

    # ZeRO-3 wraps module outputs with this function to attach its backward hooks; it must reach both tensors
    utils = pytest.importorskip("deepspeed.runtime.zero.utils", reason="deepspeed is part of .[all] (CI installs it)")
    logits, query_embeds = out.logits, out.query_embeds
    wrapped = utils.apply_to_tensors_only(lambda t: t + 1.0, out)
    assert isinstance(wrapped, SegmenterOutput)
    assert torch.equal(wrapped.logits, logits + 1.0) and torch.equal(wrapped.query_embeds, query_embeds + 1.0)
    assert torch.equal(wrapped["logits"], logits + 1.0)


def test_trajtok_gradient_reaches_the_scale():
    torch.manual_seed(0)
    m = TrajTok(tiny_trajtok_config(feature_dim=12))
    m.segment(torch.randn(1, 4, 4, 4, 12)).logsumexp(-1).sum().backward()
    g = m.segmenter.log_logit_scale.grad
    assert g is not None and g.shape == (1,) and g.abs().item() > 0


# ---- old checkpoints (0-dim log_logit_scale) --------------------------------------------------------------------
def test_trajtok_from_pretrained_loads_an_old_0dim_checkpoint(tmp_path):
    torch.manual_seed(0)
    m = TrajTok(tiny_trajtok_config(feature_dim=12))
    m.save_pretrained(tmp_path)
    _make_scalar_0dim(tmp_path / WEIGHTS_NAME, "segmenter.log_logit_scale")
    back = TrajTok.from_pretrained(tmp_path)
    assert back.segmenter.log_logit_scale.shape == (1,)
    assert back.segmenter.log_logit_scale.item() == pytest.approx(OLD_VALUE)
    assert torch.equal(back.segmenter.queries, m.segmenter.queries)
    # plain load_state_dict too (the segmenter's pre-hook), strict
    seg = TrajSegmenter(m.config)
    seg.load_state_dict({**m.segmenter.state_dict(), "log_logit_scale": torch.tensor(OLD_VALUE)})
    assert seg.log_logit_scale.shape == (1,) and seg.log_logit_scale.item() == pytest.approx(OLD_VALUE)


def test_trajvlm_from_pretrained_loads_an_old_0dim_checkpoint_and_generates(tiny_trajvlm_dir, tmp_path):
    d = tmp_path / "old"
    shutil.copytree(tiny_trajvlm_dir, d)
    _make_scalar_0dim(d / "model.safetensors", SCALE_KEY)
    model, info = TrajVLMForConditionalGeneration.from_pretrained(d, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["unexpected_keys"]
    p = model.connector.segmenter.log_logit_scale
    assert p.shape == (1,) and p.item() == pytest.approx(OLD_VALUE)
    ref = load_file(str(d / "model.safetensors"))
    assert torch.equal(model.state_dict()["connector.segmenter.queries"], ref["connector.segmenter.queries"])
    proc = TrajVLMProcessor.from_pretrained(d)
    batch = proc([{"from": "human", "value": "<video>\nWhat moves?"}], make_tiny_video(), add_generation_prompt=True)
    new = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert new.shape[0] == 1 and 1 <= new.shape[1] <= 3


def test_init_trajtok_from_and_load_connector_accept_old_0dim_files(loaded, tmp_path):
    from trajvlm.train.checkpoint import connector_state_dict, load_connector
    from trajvlm.train.main import init_trajtok_from

    model = TrajVLMForConditionalGeneration(copy.deepcopy(loaded.config))
    # a TrajTok folder (scripts/train_segmenter.py output) from before the change
    loaded.connector.save_pretrained(tmp_path / "trajtok")
    _make_scalar_0dim(tmp_path / "trajtok" / WEIGHTS_NAME, "segmenter.log_logit_scale", 0.5)
    init_trajtok_from(model, str(tmp_path / "trajtok"))
    assert model.connector.segmenter.log_logit_scale.shape == (1,)
    assert model.connector.segmenter.log_logit_scale.item() == pytest.approx(0.5)
    assert torch.equal(model.connector.segmenter.queries, loaded.connector.segmenter.queries)
    # a connector.safetensors from before the change
    save_file(connector_state_dict(loaded), str(tmp_path / "connector.safetensors"))
    _make_scalar_0dim(tmp_path / "connector.safetensors", SCALE_KEY, 0.75)
    load_connector(model, str(tmp_path / "connector.safetensors"))
    assert model.connector.segmenter.log_logit_scale.item() == pytest.approx(0.75)


# ---- strict loading ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "connector.segmenter.queries",  # used to stay on the meta device silently (until generate failed)
        "language_model.model.layers.0.mlp.up_proj.weight",  # used to be initialised randomly with a warning
    ],
)
def test_missing_weight_fails_at_load_time_naming_key_and_folder(tiny_trajvlm_dir, tmp_path, key):
    d = tmp_path / "broken"
    shutil.copytree(tiny_trajvlm_dir, d)
    state = load_file(str(d / "model.safetensors"))
    del state[key]
    save_file(state, str(d / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(MissingWeightsError) as exc:
        TrajVLMForConditionalGeneration.from_pretrained(d)
    assert key in str(exc.value) and str(d) in str(exc.value)

    # opting in: the missing weight is initialised with real values, everything else is the checkpoint's
    model = TrajVLMForConditionalGeneration.from_pretrained(d, allow_missing_weights=True)
    sd = model.state_dict()
    assert not [n for n, t in sd.items() if t.is_meta]
    assert torch.isfinite(sd[key]).all() and sd[key].abs().sum() > 0
    assert all(torch.equal(sd[k], v) for k, v in state.items())
