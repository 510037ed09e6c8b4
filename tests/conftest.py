"""Shared fixtures: tiny models built in-process (trajvlm.testing), saved once per session, loaded by path."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    from trajvlm.testing import build_tiny_tokenizer

    d = tmp_path_factory.mktemp("tokenizer")
    build_tiny_tokenizer(d)
    return d


@pytest.fixture(scope="session")
def tiny_parts(tmp_path_factory):
    """Paths of a tiny Llama (+ tokenizer), a tiny SigLIP tower and a tiny conv tower."""
    from trajvlm.testing import build_tiny_conv, build_tiny_llama, build_tiny_siglip, build_tiny_tokenizer

    root = tmp_path_factory.mktemp("parts")
    tok = build_tiny_tokenizer()
    build_tiny_llama(tok, root / "llm")
    build_tiny_siglip(root / "siglip")
    build_tiny_conv(root / "conv")
    return {"llm": root / "llm", "siglip": root / "siglip", "conv": root / "conv"}


@pytest.fixture(scope="session")
def tiny_trajvlm_dir(tmp_path_factory):
    """A saved tiny TrajVLM (conv tower + TrajTok connector + tiny Llama) with its processor."""
    from trajvlm.testing import build_tiny_trajvlm

    d = tmp_path_factory.mktemp("trajvlm_trajtok")
    build_tiny_trajvlm(d, connector="trajtok")
    return d


@pytest.fixture(scope="session")
def tiny_patch_dir(tmp_path_factory):
    """The same tiny TrajVLM with the patch baseline connector."""
    from trajvlm.testing import build_tiny_trajvlm

    d = tmp_path_factory.mktemp("trajvlm_patch")
    build_tiny_trajvlm(d, connector="patch")
    return d


@pytest.fixture(scope="session")
def tiny_video_path(tmp_path_factory):
    from trajvlm.testing import write_tiny_video

    return write_tiny_video(tmp_path_factory.mktemp("videos") / "tiny.mp4", num_frames=8, size=32)
