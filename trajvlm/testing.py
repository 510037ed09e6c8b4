"""Tiny models built in-process (no network): the fixtures every test (and the CI) uses.

    tok  = build_tiny_tokenizer(dir)                  SentencePiece BPE trained in < 1 s, <video> + llama3 tokens
    lm   = build_tiny_llama(tok, dir)                 LlamaForCausalLM (+ the tokenizer saved next to it)
    vit  = build_tiny_siglip(dir)                     SiglipVisionModel + preprocessor_config.json (mean/std 0.5)
    conv = build_tiny_conv(dir)                       ConvBackbone (the built-in tower)
    ckpt = build_tiny_llava(dir, tok, kind="llava")   a transformers LLaVA / LLaVA-NeXT-Video / LLaVA-OneVision checkpoint
    model, processor = build_tiny_trajvlm(dir, connector="trajtok"|"patch", vision="conv"|"siglip")
    frames = make_tiny_video(num_frames=8, size=32)   (T,H,W,3) uint8, a coloured square moving over a gradient
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .model.spm_tokenizer import VIDEO_TOKEN

_COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
_SHAPES = ["square", "circle", "triangle", "star"]
_DIRS = ["left", "right", "up", "down"]


def _corpus() -> list[str]:
    lines = [
        "A chat between a curious user and an artificial intelligence assistant.",
        "The assistant gives helpful, detailed, and polite answers to the user's questions.",
        "USER: ASSISTANT: [INST] [/INST] <<SYS>> <</SYS>> system user assistant",
        "You are a helpful language and vision assistant.",
        "Describe the video. What is in the video? How many objects are there? Answer with the option's letter.",
        "A. B. C. D. 0 1 2 3 4 5 6 7 8 9 yes no first then after before",
    ]
    for c in _COLOURS:
        for s in _SHAPES:
            for d in _DIRS:
                lines.append(f"A {c} {s} moves {d}. The {s} is {c}. Which way does the {c} {s} move? {d.capitalize()}.")
    return lines


def build_tiny_tokenizer(
    save_dir: str | os.PathLike | None = None, *, vocab_size: int = 512, special_tokens: Sequence[str] | None = None
):
    """SentencePiece BPE (byte fallback) trained on a built-in corpus, converted to a (fast) LlamaTokenizer.

    Adds `special_tokens` (default: <video> and the llama3 template tokens) as special tokens; pad = <unk>.
    Saved to `save_dir` if given.
    """
    from trajvlm.model.spm_tokenizer import train_spm_llama_tokenizer

    tok = train_spm_llama_tokenizer(_corpus(), vocab_size=vocab_size, special_tokens=special_tokens)
    if save_dir is not None:
        tok.save_pretrained(save_dir)
    return tok


def build_tiny_llama(
    tokenizer,
    save_dir: str | os.PathLike | None = None,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    intermediate_size: int | None = None,
    num_kv_heads: int | None = None,
    max_positions: int = 1024,
):
    """A randomly initialised LlamaForCausalLM sized to the tokenizer (saved with the tokenizer if `save_dir`).
    Defaults: intermediate 2*hidden, num_heads // 2 key-value heads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or max(1, num_heads // 2),
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    lm = LlamaForCausalLM(cfg)
    if save_dir is not None:
        lm.save_pretrained(save_dir)
        tokenizer.save_pretrained(save_dir)
    return lm


def _siglip_config(image_size: int, patch_size: int, hidden_size: int, num_layers: int):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
    )


def build_tiny_siglip(
    save_dir: str | os.PathLike | None = None,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
):
    """A SiglipVisionModel ((S/p)^2 patches, no CLS) + SigLIP's preprocessor_config.json (mean = std = 0.5)."""
    from transformers import SiglipVisionModel

    torch.manual_seed(seed)
    model = SiglipVisionModel(_siglip_config(image_size, patch_size, hidden_size, num_layers))
    if save_dir is not None:
        model.save_pretrained(save_dir)
        pre = {
            "image_processor_type": "SiglipImageProcessor",
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "size": {"height": image_size, "width": image_size},
        }
        Path(save_dir, "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return model


def build_tiny_conv(
    save_dir: str | os.PathLike | None = None, *, image_size: int = 32, hidden_size: int = 32, seed: int = 0
):
    """The built-in ConvBackbone at tiny size (stride 4 -> an 8x8 grid on 32x32 frames)."""
    from .vision.conv_backbone import ConvBackbone, ConvBackboneConfig

    torch.manual_seed(seed)
    model = ConvBackbone(ConvBackboneConfig(image_size=image_size, hidden_sizes=[16, hidden_size], hidden_size=hidden_size))
    if save_dir is not None:
        model.save_pretrained(save_dir)
    return model


def build_tiny_llava(save_dir: str | os.PathLike, tokenizer, *, kind: str = "llava", seed: int = 0) -> str:
    """Save a tiny transformers LLaVA-family checkpoint (+ tokenizer) to `save_dir`; returns the path.

    kind: "llava" (CLIP tower), "llava_next_video" (CLIP tower), "llava_onevision" (SigLIP tower).
    """
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
    )

    tok = tokenizer
    if "<image>" not in tok.get_vocab():
        from tokenizers import AddedToken

        tok.add_tokens([AddedToken("<image>", special=True, normalized=False)], special_tokens=True)
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    ).to_dict()
    clip = CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    ).to_dict()
    image_id = tok.convert_tokens_to_ids("<image>")
    video_id = tok.convert_tokens_to_ids(VIDEO_TOKEN)
    torch.manual_seed(seed)
    if kind == "llava":
        model = LlavaForConditionalGeneration(
            LlavaConfig(vision_config=clip, text_config=text, image_token_index=image_id, image_seq_length=16)
        )
    elif kind == "llava_next_video":
        model = LlavaNextVideoForConditionalGeneration(
            LlavaNextVideoConfig(
                vision_config=clip, text_config=text, image_token_index=image_id, video_token_index=video_id,
                image_grid_pinpoints=[[32, 32]],
            )
        )
    elif kind == "llava_onevision":
        sig = _siglip_config(32, 8, 32, 2).to_dict()
        model = LlavaOnevisionForConditionalGeneration(
            LlavaOnevisionConfig(
                vision_config=sig, text_config=text, image_token_index=image_id, video_token_index=video_id,
                image_grid_pinpoints=[[32, 32]], vision_feature_layer=-1,
            )
        )
    else:
        raise ValueError(f"build_tiny_llava: unknown kind {kind!r}")
    model.save_pretrained(save_dir)
    tok.save_pretrained(save_dir)
    return str(save_dir)


def tiny_trajtok_config(feature_dim: int = 32, **overrides):
    from .trajtok import TrajTokConfig

    kw = dict(
        feature_dim=feature_dim,
        hidden_dim=32,
        num_queries=4,
        segmenter_depth=2,
        num_heads=2,
        tokens_per_trajectory=2,
        encoder_depth=1,
        frames_per_chunk=4,
        refine_layers=0,
        num_pos_freqs=4,
    )
    kw.update(overrides)
    return TrajTokConfig(**kw)


def build_tiny_trajvlm(
    save_dir: str | os.PathLike | None = None,
    *,
    connector: str = "trajtok",
    vision: str = "conv",
    chat_template: str = "vicuna_v1",
    projector: str = "mlp2x_gelu",
    token_budget: int = 64,
    num_frames: int = 8,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    **trajtok_overrides,
):
    """A tiny TrajVLM assembled by ``from_parts`` from tiny parts saved to disk; returns (model, processor).

    vision: "conv" (ConvBackbone, 8x8 grid) or "siglip" (4x4 grid). The parts are written under `work_dir`
    (default: `save_dir`/parts, or a temp dir); the model + processor are saved to `save_dir` if given.
    """
    import tempfile

    from .model.build import from_parts

    parts = Path(work_dir) if work_dir is not None else (Path(save_dir, "parts") if save_dir else Path(tempfile.mkdtemp()))
    tok = build_tiny_tokenizer()
    build_tiny_llama(tok, parts / "llm", seed=seed)
    if vision == "conv":
        build_tiny_conv(parts / "vision", seed=seed)
    elif vision == "siglip":
        build_tiny_siglip(parts / "vision", seed=seed)
    else:
        raise ValueError(f"build_tiny_trajvlm: unknown vision {vision!r}")
    torch.manual_seed(seed)
    model, processor = from_parts(
        parts / "vision",
        parts / "llm",
        trajtok_config=tiny_trajtok_config(**trajtok_overrides) if connector == "trajtok" else None,
        connector=connector,
        projector=projector,
        token_budget=token_budget,
        chat_template=chat_template,
        num_frames=num_frames,
        vision_chunk_frames=4,
        patch_pool_stride=2,
    )
    if save_dir is not None:
        model.save_pretrained(save_dir)
        processor.save_pretrained(save_dir)
    return model, processor


def make_tiny_video(num_frames: int = 8, size: int = 32, *, seed: int = 0, colour=(220, 40, 40)) -> np.ndarray:
    """(T,size,size,3) uint8: a coloured square moving left to right over a soft gradient background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    bg = np.stack([xx * 3 % 256, yy * 3 % 256, np.full_like(xx, 60)], -1).astype(np.uint8)
    side = max(2, size // 4)
    y0 = int(rng.integers(0, size - side))
    frames = np.repeat(bg[None], num_frames, axis=0).copy()
    for t in range(num_frames):
        x0 = int(round(t * (size - side) / max(1, num_frames - 1)))
        frames[t, y0 : y0 + side, x0 : x0 + side] = colour
    return frames


def write_tiny_video(path: str | os.PathLike, num_frames: int = 8, size: int = 32, *, fps: float = 8.0, seed: int = 0) -> str:
    """Encode make_tiny_video(...) to `path` (mp4, libx264); returns the path."""
    from .video.writer import write_video

    write_video(path, make_tiny_video(num_frames, size, seed=seed), fps=fps)
    return str(path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for test servers and the deepspeed launcher)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_video_answers(model_dirs, work_dir: str | os.PathLike, question: str = "What colour is the object?",
                       max_new_tokens: int = 6) -> list[str]:
    """Each saved model's greedy answer (TrajVLMChat) to one question about one tiny video written to `work_dir`:
    what a model-folder tool that must not change the answers is checked with."""
    from .chat import TrajVLMChat

    video = write_tiny_video(Path(work_dir) / "v.mp4", num_frames=8)
    return [TrajVLMChat.from_pretrained(d).ask(video, question, max_new_tokens=max_new_tokens).text for d in model_dirs]


def cut_short_model_copy(model_dir: str | os.PathLike, dest: str | os.PathLike, keep_bytes: int = 1000) -> Path:
    """A copy of a saved model folder whose model.safetensors is cut to its first `keep_bytes` bytes (a corrupt
    download): for checking that a tool reading it names the file in its error and writes nothing."""
    import shutil

    dest = Path(dest)
    shutil.copytree(model_dir, dest)
    weights = dest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:keep_bytes])
    return dest
