"""TrajTokConfig.shape_dim: a shape code of its own on every trajectory token, and trajvlm.train.add_shape_code,
which adds it to a trained model without changing what it answers."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

from trajvlm.model import TrajVLMProcessor
from trajvlm.testing import (
    build_tiny_trajvlm,
    cut_short_model_copy,
    make_tiny_video,
    tiny_trajtok_config,
    tiny_video_answers,
)
from trajvlm.train import add_shape_code
from trajvlm.train.model_folder import SAVED
from trajvlm.trajtok import TrajTokConfig
from trajvlm.trajtok.encoder import TrajEncoder

CONV = [{"from": "human", "value": "<video>\nWhat shape is it?"}, {"from": "gpt", "value": "A square."}]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("shape_code")
    build_tiny_trajvlm(root / "model", work_dir=root / "parts", roi_size=2)
    assert add_shape_code.main(["--model", str(root / "model"), "--out", str(root / "shape"), "--shape-dim", "8"]) == 0
    return root


def _load(d):
    return AutoModelForImageTextToText.from_pretrained(d).eval(), TrajVLMProcessor.from_pretrained(d)


# ---- config + encoder -------------------------------------------------------------------------------------------
def test_config_validates_and_round_trips(tmp_path):
    cfg = tiny_trajtok_config(roi_size=2, shape_dim=8)
    assert cfg.token_dim == cfg.hidden_dim + 8 and tiny_trajtok_config(roi_size=2).token_dim == cfg.hidden_dim
    cfg.save_pretrained(tmp_path)
    assert TrajTokConfig.from_pretrained(tmp_path).shape_dim == 8
    for bad in (-1, True, 2.0):
        with pytest.raises(ValueError, match="shape_dim must be an int >= 0"):
            tiny_trajtok_config(roi_size=2, shape_dim=bad)
    with pytest.raises(ValueError, match="needs roi_size > 0"):
        tiny_trajtok_config(shape_dim=8)


def _encoder_inputs(R=3, T=5, C=32, P=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    pooled = torch.randn(R, T, C, generator=g)  # (R,T,C)
    mass = torch.rand(R, T, generator=g) + 0.1  # (R,T)
    area = torch.full((R, T), 4.0)  # (R,T)
    xy = torch.rand(R, T, 2, generator=g) * 0.5
    boxes = torch.cat([xy, xy + 0.25], -1)  # (R,T,4)
    roi = torch.randn(R, P * P, C, generator=g)  # (R,P*P,C)
    return pooled, mass, area, boxes, roi


def test_encoder_appends_a_code_read_from_the_box_aligned_features_only():
    cfg = tiny_trajtok_config(roi_size=2, shape_dim=8)  # q = 2 tokens per trajectory
    torch.manual_seed(0)
    enc = TrajEncoder(cfg).eval()
    pooled, mass, area, boxes, roi = _encoder_inputs()
    with torch.no_grad():
        tok = enc(pooled, mass, area, boxes, grid_cells=16, roi=roi)  # (R,q,D+S)
        moved = enc(pooled + 1.0, mass, area, boxes.flip(1), grid_cells=16, roi=roi)  # other appearance / motion
        other_shape = enc(pooled, mass, area, boxes, grid_cells=16, roi=roi.flip(1))
    D = cfg.hidden_dim
    assert tok.shape == (3, cfg.tokens_per_trajectory, D + 8)
    torch.testing.assert_close(tok[:, 0, D:], tok[:, 1, D:])  # one code per trajectory, on each of its tokens
    torch.testing.assert_close(moved[..., D:], tok[..., D:])  # the code reads nothing but the RoI
    assert not torch.allclose(moved[..., :D], tok[..., :D])
    assert not torch.allclose(other_shape[..., D:], tok[..., D:], atol=1e-3)
    # the latent part is computed as without a code (the same weights give the same D-wide tokens)
    plain = TrajEncoder(tiny_trajtok_config(roi_size=2)).eval()
    missing, unexpected = plain.load_state_dict(enc.state_dict(), strict=False)
    assert not missing and sorted(unexpected) == sorted(k for k in enc.state_dict() if k.startswith("shape_"))
    with torch.no_grad():
        torch.testing.assert_close(plain(pooled, mass, area, boxes, grid_cells=16, roi=roi), tok[..., :D])


# ---- add_shape_code ---------------------------------------------------------------------------------------------
def test_new_model_computes_the_same_and_has_the_code(folders):
    (old, proc), (new, _) = _load(folders / "model"), _load(folders / "shape")
    tt = new.config.trajtok_config
    assert tt.shape_dim == 8 and tt.token_dim == tt.hidden_dim + 8
    assert new.projector.linear_1.in_features == tt.token_dim
    assert torch.count_nonzero(new.projector.linear_1.weight[:, tt.hidden_dim:]) == 0
    batch = proc([CONV], [make_tiny_video(8, seed=3)])
    with torch.no_grad():
        a, b = old(**batch), new(**batch)
        ea, eb = old.encode_video([batch["pixel_values_videos"][0]]), new.encode_video([batch["pixel_values_videos"][0]])
    torch.testing.assert_close(b.logits, a.logits, rtol=0, atol=1e-5)
    assert eb.trajtok.tokens[0].shape[-1] == tt.token_dim and ea.trajtok.tokens[0].shape[-1] == tt.hidden_dim
    assert eb.trajtok.tokens[0][..., tt.hidden_dim:].abs().sum() > 0  # the code is there, only not read yet


def test_new_model_answers_a_video_question_the_same(folders, tmp_path):
    answers = tiny_video_answers([folders / "model", folders / "shape"], tmp_path, "What shape is it?")
    assert answers[0] == answers[1]


def test_the_code_learns_from_the_first_step(folders):
    model, proc = _load(folders / "shape")
    model.train()
    model(**proc([CONV], [make_tiny_video(8, seed=1)])).loss.backward()
    D = model.config.trajtok_config.hidden_dim
    assert model.projector.linear_1.weight.grad[:, D:].abs().sum() > 0  # the zero columns get a gradient
    # a text-only batch still reaches every connector parameter, the code's included (ZeRO / DDP need that)
    model.zero_grad()
    model(**proc([{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi."}])).loss.backward()
    code = [p for n, p in model.connector.named_parameters() if ".shape_" in n]
    assert len(code) == 4 and all(p.grad is not None for p in code)


def test_only_the_encoder_code_and_projector_change(folders):
    old, new = load_file(folders / "model" / "model.safetensors"), load_file(folders / "shape" / "model.safetensors")
    added = sorted(set(new) - set(old))
    assert added and all(".encoder.shape_" in k for k in added) and not set(old) - set(new)
    for k, v in old.items():
        if k != "projector.linear_1.weight":
            assert torch.equal(new[k], v), k
    for f in (folders / "model").iterdir():
        if f.is_file() and f.name not in SAVED:
            assert (folders / "shape" / f.name).read_bytes() == f.read_bytes(), f.name


def test_track_cache_folder_is_shared_with_the_model_without_code(folders, tmp_path):
    dirs = []
    for d in ("model", "shape"):
        model, _ = _load(folders / d)
        for name, p in model.named_parameters():
            if name.startswith(("vision_tower.", "connector.segmenter.")):
                p.requires_grad_(False)
        dirs.append(model.enable_track_cache(directory=str(tmp_path)).directory)
    assert dirs[0] == dirs[1]


def test_refusals_write_nothing(folders, tmp_path):
    with pytest.raises(ValueError, match="already has a shape code"):
        add_shape_code.add_shape_code_folder(folders / "shape", tmp_path / "a", 8)
    build_tiny_trajvlm(tmp_path / "no_roi", work_dir=tmp_path / "parts")
    with pytest.raises(ValueError, match="roi_size 0"):
        add_shape_code.add_shape_code_folder(tmp_path / "no_roi", tmp_path / "b", 8)
    with pytest.raises(ValueError, match="must be an int >= 1"):
        add_shape_code.add_shape_code_folder(folders / "model", tmp_path / "c", 0)
    with pytest.raises(SystemExit):
        add_shape_code.main(["--model", str(folders / "model"), "--out", str(tmp_path / "d"), "--shape-dim", "0"])
    with pytest.raises(FileExistsError, match="not empty"):
        add_shape_code.add_shape_code_folder(folders / "model", folders / "shape", 8)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        add_shape_code.add_shape_code_folder(tmp_path / "nowhere", tmp_path / "e", 8)
    cut = cut_short_model_copy(folders / "model", tmp_path / "cut")
    with pytest.raises(ValueError, match="cut/model.safetensors: not a readable safetensors file"):
        add_shape_code.add_shape_code_folder(cut, tmp_path / "f", 8)
    (cut / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="cut: no model.safetensors"):
        add_shape_code.add_shape_code_folder(cut, tmp_path / "g", 8)
    assert not any((tmp_path / x).exists() for x in "abcdefg")


def test_patch_connector_is_refused(tiny_patch_dir):
    model, _ = _load(tiny_patch_dir)
    with pytest.raises(ValueError, match="'patch' connector"):
        add_shape_code.add_shape_code(model, 8)


def test_the_code_init_is_seeded_and_leaves_the_random_state_alone(folders):
    codes = []
    for seed in (0, 0, 1):
        model, _ = _load(folders / "model")
        state = torch.random.get_rng_state()
        add_shape_code.add_shape_code(model, 8, seed=seed)
        assert torch.equal(torch.random.get_rng_state(), state)
        codes.append(model.connector.encoder.shape_proj.weight)
    assert torch.equal(codes[0], codes[1]) and not torch.equal(codes[0], codes[2])
