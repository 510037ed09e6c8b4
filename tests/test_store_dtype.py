"""trajvlm.train.store_dtype: weights stored as bfloat16 load back into a float32 model, rounded and nothing else."""

import json

import pytest
import torch
from safetensors.torch import load_file

from trajvlm.chat import TrajVLMChat
from trajvlm.model import TrajVLMForConditionalGeneration
from trajvlm.testing import build_tiny_trajvlm, write_tiny_video
from trajvlm.train import store_dtype


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("store_dtype")
    build_tiny_trajvlm(root / "model", work_dir=root / "parts")
    assert store_dtype.main(["--model", str(root / "model"), "--out", str(root / "bf16")]) == 0
    return root


def test_weights_are_stored_rounded_and_the_rest_is_copied(folders):
    old, new = load_file(folders / "model" / "model.safetensors"), load_file(folders / "bf16" / "model.safetensors")
    assert set(old) == set(new)
    floats = [k for k, v in old.items() if v.is_floating_point()]
    assert floats and all(new[k].dtype == torch.bfloat16 for k in floats)
    for k, v in old.items():
        assert torch.equal(new[k], v.to(torch.bfloat16) if v.is_floating_point() else v), k
    sizes = {d: (folders / d / "model.safetensors").stat().st_size for d in ("model", "bf16")}
    assert sizes["bf16"] < 0.55 * sizes["model"]
    for f in (folders / "model").iterdir():
        if f.is_file() and f.name != "model.safetensors":
            assert (folders / "bf16" / f.name).read_bytes() == f.read_bytes(), f.name
    assert json.loads((folders / "bf16" / "config.json").read_text())["dtype"] == "float32"


def test_loads_as_float32_with_the_rounded_values(folders):
    old = TrajVLMForConditionalGeneration.from_pretrained(folders / "model")
    new = TrajVLMForConditionalGeneration.from_pretrained(folders / "bf16")
    assert {p.dtype for p in new.parameters()} == {torch.float32}
    for (name, p), q in zip(old.named_parameters(), new.parameters()):
        torch.testing.assert_close(q, p.to(torch.bfloat16).float(), rtol=0, atol=0, msg=name)
    assert any(not torch.equal(p, q) for p, q in zip(old.parameters(), new.parameters()))  # really rounded


def test_the_stored_model_computes_nearly_the_same(folders, tmp_path):
    old = TrajVLMForConditionalGeneration.from_pretrained(folders / "model").eval()
    new = TrajVLMForConditionalGeneration.from_pretrained(folders / "bf16").eval()
    ids = torch.randint(3, old.config.text_config.vocab_size, (2, 12))
    with torch.no_grad():
        a, b = old.language_model(input_ids=ids).logits, new.language_model(input_ids=ids).logits
    assert not torch.equal(a, b)
    assert (a - b).abs().max() < 0.02 * a.abs().max()  # bfloat16 keeps 8 significant bits
    video = write_tiny_video(tmp_path / "v.mp4", num_frames=8)
    reply = TrajVLMChat.from_pretrained(folders / "bf16").ask(video, "What colour is the object?", max_new_tokens=6)
    assert reply.text.strip()


def test_bad_arguments_are_refused(folders, tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        store_dtype.store_dtype(folders / "model", tmp_path / "a", "int8")
    with pytest.raises(FileExistsError, match="not empty"):
        store_dtype.store_dtype(folders / "model", folders / "bf16")
    with pytest.raises(FileNotFoundError, match="nowhere: no model.safetensors"):
        store_dtype.store_dtype(tmp_path / "nowhere", tmp_path / "b")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((folders / "model" / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(ValueError, match="broken/model.safetensors: not a readable safetensors file"):
        store_dtype.store_dtype(broken, tmp_path / "d")
    with pytest.raises(SystemExit):
        store_dtype.main(["--model", str(folders / "model"), "--out", str(tmp_path / "c"), "--dtype", "int8"])
    assert not any((tmp_path / d).exists() for d in ("a", "b", "c", "d"))
