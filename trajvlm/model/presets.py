"""Real-scale TrajVLM configurations, written out in code (no hub access): for FLOP/token accounting on the meta
device and as the starting point of a real-scale build (``TrajVLMForConditionalGeneration(get_preset(n).config)``
under ``torch.device("meta")``, or ``from_parts`` with the matching pretrained parts).

Presets
-------
``so400m-llama3-8b``        SigLIP-so400m-patch14-384 + Llama-3-8B, TrajTok connector (K=128 queries, q=1,
                            token budget 256, 16-frame chunks).
``so400m-llama3-8b-patch``  the same vision tower and LLM with the patch baseline connector at LLaVA-Video scale.
``tiny-default``            the shapes of the built-in default model (ConvBackbone 64 px / stride 4 -> 16x16 grid,
                            TrajTok K=10, q=1, RoI 4x4, budget 16, Llama 4x256): quick checks of the accounting.

Patch baseline at LLaVA-Video scale (the choice, documented)
-----------------------------------------------------------
SigLIP-so400m at 384 px with 14 px patches gives a 27x27 = 729-patch grid per frame. LLaVA-Video pools it 2x2
(bilinear, to ceil(27/2) = 14) -> 14x14 = 196 tokens and, with ``mm_newline_position="grid"``, appends one
learned newline token per pooled row -> 14x(14+1) = **210 tokens per frame**. The project's ``PatchConnector``
does the pooling (``patch_pool_stride=2``, ceil mode -> 14x14) but emits no newline tokens, so the accounting
adds them (``PresetSpec.patch_row_newline``): the "patch 2x2-pooled" row of the efficiency table is the LLaVA-Video
210/frame, the "patch full" row is the unpooled 27x(27+1) = 756/frame with the same newline convention.

TrajTok at real scale (assumptions)
-----------------------------------
K=128 trajectory queries per 16-frame chunk (so one chunk can describe up to 128 objects/regions), q=1 token per
trajectory, TrajTok width 768 (12 heads of 64), 3 segmenter blocks, 2 encoder blocks, mlp_ratio 4, one refinement
layer, ``min_area=4`` feature cells over the whole video (drops specks). ``token_budget=256``: up to 256 linked
trajectories per video (more than K because objects come and go over a long video; the track memory is 4K = 512).
These are this project's choices, not a published checkpoint's.

The ``<video>`` placeholder maps to ``<|reserved_special_token_0|>`` (id 128002) of the Llama-3 tokenizer, so the
vocabulary keeps its 128,256 entries (``from_parts`` with the real tokenizer would add a new token instead:
128,257 rows, the same FLOPs up to the one lm_head row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from transformers import LlamaConfig, SiglipVisionConfig

from ..trajtok import TrajTokConfig
from ..vision.conv_backbone import ConvBackboneConfig
from .configuration_trajvlm import TrajVLMConfig

LLAMA3_VIDEO_TOKEN_ID = 128002  # <|reserved_special_token_0|>


class PresetError(KeyError):
    """Unknown preset name."""


def siglip_so400m_patch14_384() -> SiglipVisionConfig:
    """google/siglip-so400m-patch14-384, vision half (no attention-pooling head: LLaVA uses the patch grid)."""
    return SiglipVisionConfig(
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=27,
        num_attention_heads=16,
        num_channels=3,
        image_size=384,
        patch_size=14,
        hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6,
        attention_dropout=0.0,
        vision_use_head=False,
    )


def llama3_8b() -> LlamaConfig:
    """meta-llama/Meta-Llama-3-8B."""
    return LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        hidden_act="silu",
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        bos_token_id=128000,
        eos_token_id=128001,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
    )


def trajtok_so400m() -> TrajTokConfig:
    """TrajTok on SigLIP-so400m features (see the module docstring for the assumptions)."""
    return TrajTokConfig(
        feature_dim=1152,
        hidden_dim=768,
        num_queries=128,
        segmenter_depth=3,
        num_heads=12,
        tokens_per_trajectory=1,
        encoder_depth=2,
        frames_per_chunk=16,
        min_area=4,
        refine_layers=1,
        mlp_ratio=4,
    )


def _so400m_llama3_8b(connector: str) -> TrajVLMConfig:
    return TrajVLMConfig(
        vision_config=siglip_so400m_patch14_384(),
        text_config=llama3_8b(),
        trajtok_config=trajtok_so400m() if connector == "trajtok" else None,
        connector=connector,
        projector="mlp2x_gelu",
        token_budget=256,
        video_token_id=LLAMA3_VIDEO_TOKEN_ID,
        num_frames=64,
        vision_feature_layer=-2,  # penultimate layer, as LLaVA-Video
        vision_chunk_frames=16,
        patch_pool_stride=2,
        seg_loss_weight=1.0 if connector == "trajtok" else 0.0,
    )


def _tiny_default() -> TrajVLMConfig:
    """Shapes of trajvlm/assets/default_model (scripts/build_default_model.sh), random weights."""
    vision = ConvBackboneConfig(image_size=64, hidden_sizes=[32, 64], hidden_size=64)
    text = LlamaConfig(
        vocab_size=772,
        hidden_size=256,
        intermediate_size=672,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    return TrajVLMConfig(
        vision_config=vision,
        text_config=text,
        trajtok_config=TrajTokConfig(feature_dim=64, hidden_dim=64, num_queries=10, num_heads=4, frames_per_chunk=16,
                                     refine_layers=2, min_area=8, roi_size=4, split_components=True),
        connector="trajtok",
        token_budget=16,
        video_token_id=768,
        num_frames=16,
        patch_pool_stride=2,
    )


@dataclass(frozen=True)
class PresetSpec:
    name: str
    build: Callable[[], TrajVLMConfig]
    description: str
    patch_row_newline: bool  # the patch baseline appends one newline token per pooled row (LLaVA-Video "grid")

    @property
    def config(self) -> TrajVLMConfig:
        return self.build()


PRESETS: dict[str, PresetSpec] = {
    p.name: p
    for p in (
        PresetSpec(
            "so400m-llama3-8b",
            lambda: _so400m_llama3_8b("trajtok"),
            "SigLIP-so400m-patch14-384 + Llama-3-8B, TrajTok (K=128, q=1, budget 256)",
            patch_row_newline=True,
        ),
        PresetSpec(
            "so400m-llama3-8b-patch",
            lambda: _so400m_llama3_8b("patch"),
            "SigLIP-so400m-patch14-384 + Llama-3-8B, patch baseline (2x2 pool + row newline = 210 tokens/frame)",
            patch_row_newline=True,
        ),
        PresetSpec(
            "tiny-default",
            _tiny_default,
            "shapes of the built-in default model (conv 16x16 grid, TrajTok K=10 q=1 split_components budget 16, Llama 4x256)",
            patch_row_newline=False,
        ),
    )
}


def get_preset(name: str) -> PresetSpec:
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]


__all__ = [
    "LLAMA3_VIDEO_TOKEN_ID", "PRESETS", "PresetError", "PresetSpec", "get_preset", "llama3_8b",
    "siglip_so400m_patch14_384", "trajtok_so400m",
]
