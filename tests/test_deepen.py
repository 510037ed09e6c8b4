"""trajvlm.train.deepen: a TrajVLM with identity-initialised extra Llama blocks answers exactly as before."""

import pytest
import torch
from safetensors.torch import load_file

from trajvlm.model import TrajVLMForConditionalGeneration
from trajvlm.testing import build_tiny_trajvlm, cut_short_model_copy, tiny_video_answers
from trajvlm.train import deepen
from trajvlm.train.model_folder import SAVED


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("deepen")
    build_tiny_trajvlm(root / "model", work_dir=root / "parts")
    assert deepen.main(["--model", str(root / "model"), "--out", str(root / "deep"), "--every", "1"]) == 0
    return root


def test_deeper_model_computes_the_same(folders):
    old = TrajVLMForConditionalGeneration.from_pretrained(folders / "model").eval()
    new = TrajVLMForConditionalGeneration.from_pretrained(folders / "deep").eval()
    n = old.config.text_config.num_hidden_layers
    assert new.config.text_config.num_hidden_layers == len(new.language_model.model.layers) == 2 * n
    ids = torch.randint(3, old.config.text_config.vocab_size, (2, 12))
    with torch.no_grad():
        a, b = old.language_model(input_ids=ids).logits, new.language_model(input_ids=ids).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # the copies are real blocks (trainable), only their output projections start at zero
    twin = new.language_model.model.layers[1]
    assert torch.count_nonzero(twin.self_attn.o_proj.weight) == 0 and torch.count_nonzero(twin.mlp.down_proj.weight) == 0
    assert torch.equal(twin.self_attn.q_proj.weight, old.language_model.model.layers[0].self_attn.q_proj.weight)
    assert [blk.self_attn.layer_idx for blk in new.language_model.model.layers] == list(range(2 * n))


def test_deeper_model_answers_a_video_question_the_same(folders, tmp_path):
    answers = tiny_video_answers([folders / "model", folders / "deep"], tmp_path)
    assert answers[0] == answers[1]


def test_only_the_llm_changes_and_the_other_files_are_copied(folders):
    old, new = load_file(folders / "model" / "model.safetensors"), load_file(folders / "deep" / "model.safetensors")
    for k, v in old.items():
        if not k.startswith("language_model.model.layers."):
            assert torch.equal(new[k], v), k
    assert len(new) > len(old)
    for f in (folders / "model").iterdir():
        if f.is_file() and f.name not in SAVED:
            assert (folders / "deep" / f.name).read_bytes() == f.read_bytes(), f.name


def test_every_two_and_bad_arguments(folders, tmp_path):
    old, new = deepen.deepen_model(folders / "deep", tmp_path / "d2", every=2)
    assert new == old + old // 2
    with pytest.raises(SystemExit):
        deepen.main(["--model", str(folders / "model"), "--out", str(tmp_path / "x"), "--every", "0"])
    with pytest.raises(ValueError, match="new folder"):
        deepen.deepen_model(folders / "model", folders / "model", every=1)
    assert not (tmp_path / "x").exists()
    with pytest.raises(FileExistsError, match="not empty"):
        deepen.deepen_model(folders / "model", folders / "deep", every=1)
    with pytest.raises(FileNotFoundError, match="nowhere: no config.json"):
        deepen.deepen_model(tmp_path / "nowhere", tmp_path / "z", every=1)
    cut = cut_short_model_copy(folders / "model", tmp_path / "cut")
    with pytest.raises(ValueError, match="cut/model.safetensors: not a readable safetensors file"):
        deepen.deepen_model(cut, tmp_path / "c1", every=1)
    (cut / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="cut: no model.safetensors"):
        deepen.deepen_model(cut, tmp_path / "c2", every=1)
    assert not any((tmp_path / d).exists() for d in ("z", "c1", "c2"))
