"""trajvlm.train.average: the weight average of models of one config, refused for anything else."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from trajvlm.chat import TrajVLMChat
from trajvlm.testing import build_tiny_trajvlm, write_tiny_video
from trajvlm.train import average


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("average")
    for name, seed in (("a", 0), ("b", 1)):
        build_tiny_trajvlm(root / name, seed=seed, work_dir=root / f"parts_{name}")
    (root / "b" / "connector.safetensors").write_bytes(b"one run's connector checkpoint")  # must not be copied
    assert average.main(["--models", str(root / "a"), str(root / "b"), "--out", str(root / "mean")]) == 0
    return root


def test_every_float_tensor_is_the_mean_and_the_rest_is_copied(folders):
    a, b = (load_file(folders / d / "model.safetensors") for d in ("a", "b"))
    mean = load_file(folders / "mean" / "model.safetensors")
    assert set(mean) == set(a)
    floats = [k for k, v in a.items() if v.is_floating_point()]
    assert floats and any(not torch.equal(a[k], b[k]) for k in floats)  # two different models
    for k, v in a.items():
        assert mean[k].dtype == v.dtype
        if v.is_floating_point():
            torch.testing.assert_close(mean[k], (v.double() + b[k].double()).div(2).to(v.dtype), rtol=0, atol=0)
        else:
            assert torch.equal(mean[k], v), k
    for f in (folders / "a").iterdir():
        if f.is_file() and f.name != "model.safetensors":
            assert (folders / "mean" / f.name).read_bytes() == f.read_bytes(), f.name
    assert not (folders / "mean" / "connector.safetensors").exists()


def test_the_average_loads_and_answers(folders, tmp_path):
    video = write_tiny_video(tmp_path / "v.mp4", num_frames=8)
    reply = TrajVLMChat.from_pretrained(folders / "mean").ask(video, "What colour is the object?", max_new_tokens=6)
    assert reply.text.strip()


def test_bad_arguments_are_refused_and_nothing_is_written(folders, tmp_path):
    a, b = folders / "a", folders / "b"
    with pytest.raises(ValueError, match="at least two"):
        average.average_models([a], tmp_path / "x1")
    with pytest.raises(ValueError, match="twice"):
        average.average_models([a, a], tmp_path / "x2")
    with pytest.raises(FileExistsError, match="not empty"):
        average.average_models([a, b], folders / "mean")
    with pytest.raises(FileNotFoundError, match="nowhere: no config.json"):
        average.average_models([a, tmp_path / "nowhere"], tmp_path / "x3")
    other = tmp_path / "other"  # same weights, another config (a different TrajTok): not the same model
    other.mkdir()
    for f in a.iterdir():
        if f.is_file():
            (other / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((a / "config.json").read_text())
    cfg["trajtok_config"]["min_area"] += 1
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="config.json differs"):
        average.average_models([a, other], tmp_path / "x4")
    cfg["trajtok_config"]["min_area"] -= 1  # same config again, but a tensor is missing
    (other / "config.json").write_text(json.dumps(cfg))
    weights = load_file(a / "model.safetensors")
    weights.pop(min(weights))
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="tensors differ"):
        average.average_models([a, other], tmp_path / "x5")
    (other / "model.safetensors").write_bytes((a / "model.safetensors").read_bytes()[:1000])  # cut short
    with pytest.raises(ValueError, match="other/model.safetensors: not a readable safetensors file"):
        average.average_models([a, other], tmp_path / "x6")
    (other / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="other: no model.safetensors"):
        average.average_models([a, other], tmp_path / "x7")
    assert not any((tmp_path / f"x{i}").exists() for i in range(1, 8))


def test_a_model_and_its_fine_tuned_child_average_despite_use_cache(folders, tmp_path):
    """Training saves the LLM config with use_cache off: a runtime flag, not another model."""
    a = folders / "a"
    child = tmp_path / "child"
    child.mkdir()
    for f in a.iterdir():
        if f.is_file():
            (child / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((a / "config.json").read_text())
    cfg["text_config"]["use_cache"] = not cfg["text_config"].get("use_cache", True)
    (child / "config.json").write_text(json.dumps(cfg))
    weights = {k: (v + 1 if v.is_floating_point() else v) for k, v in load_file(a / "model.safetensors").items()}
    save_file(weights, child / "model.safetensors", metadata={"format": "pt"})
    assert average.average_models([a, child], tmp_path / "mid") == sum(v.is_floating_point() for v in weights.values())
    mid = load_file(tmp_path / "mid" / "model.safetensors")
    k = next(k for k, v in weights.items() if v.is_floating_point())
    torch.testing.assert_close(mid[k], load_file(a / "model.safetensors")[k] + 0.5)
