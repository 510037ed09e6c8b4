"""The shipped default model (trajvlm/assets/default_model) answers the demo's bundled ShapesQA examples correctly.

What a newcomer sees first: the README's command opens the chat on this model with these examples. Each
example's question is asked through TrajVLMChat (greedy) and through the running demo app with its default
settings (gradio_client, the named /ask endpoint), and the answer is graded like ShapesQA (trajvlm.eval.mcq: its
letter, else the one option it names by text).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from trajvlm.chat import TrajVLMChat
from trajvlm.demo.settings import EXAMPLES_DIR, default_model_path
from trajvlm.eval.mcq import answer_letter

ASSET = Path(__file__).resolve().parents[1] / "trajvlm" / "assets" / "default_model"


def _examples() -> list[dict]:
    return json.loads((EXAMPLES_DIR / "examples.json").read_text())


@pytest.fixture(scope="module")
def chat():
    return TrajVLMChat.from_pretrained(default_model_path())


@pytest.mark.parametrize("example", _examples(), ids=lambda e: e["category"])
def test_default_model_answers_the_bundled_example(chat, example):
    options = _options(example)
    assert len(options) == 4
    answer = chat.ask(str(EXAMPLES_DIR / example["video"]), example["question"], max_new_tokens=8).text
    assert answer_letter(answer, options) == example["answer"], (answer, options, example["answer"])


def _options(example: dict) -> list[str]:
    return [line for line in example["question"].split("\n") if line[:3] in ("A. ", "B. ", "C. ", "D. ")]


def test_the_demo_answers_every_bundled_example():
    from gradio_client import Client, handle_file

    from trajvlm.demo.app import launch
    from trajvlm.demo.settings import DemoSettings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = DemoSettings(port=port)  # the default model, default frames / budget, as `trajvlm demo` starts
    demo, url = launch(settings, block=False)
    try:
        client = Client(url, verbose=False, download_files=False)
        for example in _examples():
            job = client.submit(handle_file(str(EXAMPLES_DIR / example["video"])), example["question"],
                                settings.default_frames, 0.0, 0, api_name="/ask")
            job.result(timeout=120)
            answer, stats = job.outputs()[-1]
            assert stats.get("error") is None, stats
            assert stats["trajectories"] >= 2 and stats["visual_tokens"] <= stats["patch_tokens"], stats
            assert answer_letter(answer, _options(example)) == example["answer"], (example["category"], answer)
    finally:
        demo.close()


def test_default_model_fits_the_repo_budget_and_loads_as_float32():
    """Issue #4: the shipped model is safetensors of at most 25 MB, and computes in float32 on a CPU whatever dtype
    its weights are stored in (trajvlm.train.store_dtype)."""
    import torch

    from trajvlm.model import TrajVLMForConditionalGeneration

    folder = ASSET  # the shipped folder itself, whatever $TRAJVLM_DEMO_MODEL says
    weights = folder / "model.safetensors"
    assert weights.is_file() and not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    assert weights.stat().st_size <= 25 * 10**6, weights.stat().st_size
    model = TrajVLMForConditionalGeneration.from_pretrained(folder)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
