"""trajvlm.train.swap_llm: a fresh LLM of a model's shape, and a model given another LLM with nothing else changed."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaForCausalLM

from trajvlm.model import TrajVLMForConditionalGeneration
from trajvlm.testing import build_tiny_trajvlm, cut_short_model_copy, tiny_video_answers
from trajvlm.train import swap_llm
from trajvlm.train.model_folder import SAVED

LLM_PREFIX = "language_model."


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("swap")
    build_tiny_trajvlm(root / "model", work_dir=root / "parts")
    assert swap_llm.main(["fresh", "--model", str(root / "model"), "--out", str(root / "fresh"), "--seed", "3"]) == 0
    assert swap_llm.main(["put", "--model", str(root / "model"), "--llm", str(root / "fresh"),
                          "--out", str(root / "swapped")]) == 0
    return root


def test_fresh_llm_has_the_models_shape_and_tokenizer_and_new_weights(folders, tmp_path):
    model = TrajVLMForConditionalGeneration.from_pretrained(folders / "model")
    fresh = LlamaForCausalLM.from_pretrained(folders / "fresh")
    assert swap_llm._shape(fresh.config) == swap_llm._shape(model.config.text_config)
    old = model.language_model.state_dict()
    new = fresh.state_dict()
    assert old.keys() == new.keys()
    assert not torch.equal(old["model.layers.0.self_attn.q_proj.weight"], new["model.layers.0.self_attn.q_proj.weight"])
    assert (AutoTokenizer.from_pretrained(folders / "fresh").get_vocab()
            == AutoTokenizer.from_pretrained(folders / "model").get_vocab())
    # the seed decides the weights
    swap_llm.write_fresh_llm(folders / "model", tmp_path / "same", seed=3)
    swap_llm.write_fresh_llm(folders / "model", tmp_path / "other", seed=4)
    a, b, c = (load_file(d / "model.safetensors") for d in (folders / "fresh", tmp_path / "same", tmp_path / "other"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_put_changes_exactly_the_llm_and_copies_the_other_files(folders):
    old = load_file(folders / "model" / "model.safetensors")
    new = load_file(folders / "swapped" / "model.safetensors")
    fresh = load_file(folders / "fresh" / "model.safetensors")
    assert old.keys() == new.keys()
    llm_keys = [k for k in new if k.startswith(LLM_PREFIX)]
    assert llm_keys
    for k, v in new.items():
        if k.startswith(LLM_PREFIX):
            name = k[len(LLM_PREFIX):]
            # a tied head is saved once, under the embedding's name
            assert torch.equal(v, fresh[name] if name in fresh else fresh["model.embed_tokens.weight"]), k
        else:
            assert torch.equal(v, old[k]), k
    for f in (folders / "model").iterdir():
        if f.is_file() and f.name not in SAVED:
            assert (folders / "swapped" / f.name).read_bytes() == f.read_bytes(), f.name


def test_putting_back_the_models_own_llm_answers_the_same(folders, tmp_path):
    model = TrajVLMForConditionalGeneration.from_pretrained(folders / "model")
    model.language_model.save_pretrained(tmp_path / "own")
    AutoTokenizer.from_pretrained(folders / "model").save_pretrained(tmp_path / "own")
    swap_llm.put_llm(folders / "model", tmp_path / "own", tmp_path / "back")
    answers = tiny_video_answers([folders / "model", tmp_path / "back", folders / "swapped"], tmp_path)
    assert answers[0] == answers[1]
    assert isinstance(answers[2], str)  # the swapped model loads and answers


def test_refusals_write_nothing(folders, tmp_path):
    # another shape: one block fewer
    cfg = LlamaForCausalLM.from_pretrained(folders / "fresh").config
    cfg.num_hidden_layers -= 1
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "short")
    with pytest.raises(ValueError, match="num_hidden_layers"):
        swap_llm.put_llm(folders / "model", tmp_path / "short", tmp_path / "x")
    # another vocabulary
    LlamaForCausalLM.from_pretrained(folders / "fresh").save_pretrained(tmp_path / "vocab")
    tok = AutoTokenizer.from_pretrained(folders / "model")
    tok.add_tokens(["zebrafish"])
    tok.save_pretrained(tmp_path / "vocab")
    with pytest.raises(ValueError, match="vocabulary"):
        swap_llm.put_llm(folders / "model", tmp_path / "vocab", tmp_path / "x")
    # a cut-short weights file, a folder without weights, an existing output
    cut_short_model_copy(folders / "fresh", tmp_path / "cut")
    with pytest.raises(ValueError, match="model.safetensors"):
        swap_llm.put_llm(folders / "model", tmp_path / "cut", tmp_path / "x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text((folders / "fresh" / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        swap_llm.put_llm(folders / "model", tmp_path / "empty", tmp_path / "x")
    with pytest.raises(FileExistsError):
        swap_llm.put_llm(folders / "model", folders / "fresh", folders / "swapped")
    with pytest.raises(FileExistsError):
        swap_llm.write_fresh_llm(folders / "model", folders / "swapped")
    with pytest.raises(SystemExit):
        swap_llm.main(["put", "--model", str(folders / "model"), "--out", str(tmp_path / "x")])  # no --llm
    assert not (tmp_path / "x").exists()
