"""Continue the segmenter of a saved TrajVLM (train_segmenter.py --init MODEL) and put it back
(scripts/replace_segmenter.py): only the segmenter's tensors change."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trajvlm.model import TrajVLMForConditionalGeneration
from trajvlm.testing import build_tiny_trajvlm, cut_short_model_copy, tiny_trajtok_config
from trajvlm.trajtok import TrajTok

from test_trajtok_train import load_script, write_folder

ROOT = Path(__file__).resolve().parents[1]


def load_replace():
    spec = importlib.util.spec_from_file_location("replace_segmenter", ROOT / "scripts" / "replace_segmenter.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny TrajVLM and its segmenter trained 2 steps further with the backbone frozen."""
    root = tmp_path_factory.mktemp("replace")
    build_tiny_trajvlm(root / "model", work_dir=root / "parts")
    write_folder(root / "data")
    seg = load_script()
    args = ["--data", str(root / "data"), "--init", str(root / "model"), "--freeze-backbone", "--out", str(root / "seg"),
            "--steps", "2", "--eval-every", "2", "--batch", "2", "--clip-frames", "4", "--lr", "1e-2"]
    assert seg.main(args) == 0
    return root, seg


def test_init_from_a_trajvlm_folder_takes_its_tower_and_trajtok(trained):
    root, seg = trained
    model = TrajVLMForConditionalGeneration.from_pretrained(root / "model")
    backbone, trajtok = seg.load_segmenter(root / "model")
    for k, v in model.vision_tower.model.state_dict().items():
        assert torch.equal(backbone.state_dict()[k], v), k
    assert trajtok.config.num_queries == model.config.trajtok_config.num_queries
    # the continued segmenter kept the model's backbone and architecture, and trained
    bb1, tt1 = seg.load_segmenter(root / "seg")
    for k, v in backbone.state_dict().items():
        assert torch.equal(bb1.state_dict()[k], v), k
    before, after = trajtok.segmenter.state_dict(), tt1.segmenter.state_dict()
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_replace_changes_only_the_segmenter(trained):
    root, seg = trained
    rep = load_replace()
    assert rep.main(["--model", str(root / "model"), "--segmenter", str(root / "seg"), "--out", str(root / "new")]) == 0
    old, new = load_file(root / "model" / "model.safetensors"), load_file(root / "new" / "model.safetensors")
    assert old.keys() == new.keys()
    _, tt = seg.load_segmenter(root / "seg")
    wanted = {"connector.segmenter." + k: v for k, v in tt.segmenter.state_dict().items()}
    changed = [k for k in old if not torch.equal(old[k], new[k])]
    assert changed and all(k.startswith("connector.segmenter.") for k in changed)
    for k, v in wanted.items():
        assert torch.equal(new[k], v), k
    for f in (root / "model").iterdir():
        if f.is_file() and f.name != "model.safetensors":
            assert (root / "new" / f.name).read_bytes() == f.read_bytes(), f.name
    loaded = TrajVLMForConditionalGeneration.from_pretrained(root / "new")
    for k, v in tt.segmenter.state_dict().items():
        assert torch.equal(loaded.connector.segmenter.state_dict()[k], v), k


def test_replace_refuses_another_backbone_or_architecture(trained, tmp_path):
    root, seg = trained
    rep = load_replace()
    backbone, trajtok = seg.load_segmenter(root / "seg")
    moved = {k: v + 1 for k, v in backbone.state_dict().items()}
    backbone.load_state_dict(moved)
    seg.save_segmenter(tmp_path / "other_backbone", backbone, trajtok)
    with pytest.raises(ValueError, match="is not .*vision tower"):
        rep.replace_segmenter(root / "model", tmp_path / "other_backbone", tmp_path / "x")
    same_backbone, _ = seg.load_segmenter(root / "model")
    seg.save_segmenter(tmp_path / "wider", same_backbone, TrajTok(tiny_trajtok_config(hidden_dim=48, num_heads=2)))
    with pytest.raises(ValueError, match="architecture"):
        rep.replace_segmenter(root / "model", tmp_path / "wider", tmp_path / "y")
    with pytest.raises(ValueError, match="new folder"):
        rep.replace_segmenter(root / "model", root / "seg", root / "model")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        rep.replace_segmenter(root / "model", root / "seg", tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine" and len(list((tmp_path / "taken").iterdir())) == 1
    with pytest.raises(FileNotFoundError, match="nowhere: no model.safetensors"):
        rep.replace_segmenter(tmp_path / "nowhere", root / "seg", tmp_path / "z")
    assert not (tmp_path / "z").exists()
    cut = cut_short_model_copy(root / "model", tmp_path / "cut")
    with pytest.raises(ValueError, match="cut/model.safetensors: not a readable safetensors file"):
        rep.replace_segmenter(cut, root / "seg", tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_a_patch_connector_model_has_no_segmenter(tmp_path):
    build_tiny_trajvlm(tmp_path / "patch", connector="patch", work_dir=tmp_path / "parts")
    with pytest.raises(ValueError, match="only a TrajVLM with the trajtok connector"):
        load_script().load_segmenter(tmp_path / "patch")
