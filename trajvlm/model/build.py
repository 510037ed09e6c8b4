"""from_parts: a new TrajVLM from a pretrained vision tower + LLM (hub ids / local paths) or a LLaVA checkpoint.

The entry point of stage-1 training. Pretrained weights are reused as they are; only the connector and the
projector are new (and, for a LLaVA checkpoint with the patch connector + mlp2x_gelu, even the projector is
reused). The <video> token (and the chat template's special tokens) are added to the tokenizer if missing and
the LLM embeddings resized.
"""

from __future__ import annotations

import os

import torch
from tokenizers import AddedToken
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
    PreTrainedModel,
)

from ..trajtok import TrajTokConfig
from ..vision.conv_backbone import ConvBackbone, ConvBackboneConfig
from ..vision.processor import TrajVLMVideoProcessor
from .chat_templates import get_template
from .configuration_trajvlm import TrajVLMConfig
from .modeling_trajvlm import TrajVLMForConditionalGeneration
from .processing_trajvlm import TrajVLMProcessor

LLAVA_MODEL_TYPES = ("llava", "llava_next_video", "llava_onevision")
_VISION_OF_FULL = {"siglip": "vision_config", "siglip2": "vision_config", "clip": "vision_config"}


class BuildError(ValueError):
    """Parts that cannot be assembled into a TrajVLM."""


def _load_vision(vision, load_kw: dict) -> tuple[PreTrainedModel, str | None, dict]:
    """-> (vision model, path for its preprocessor config, extras (llava model / feature layer))."""
    if isinstance(vision, PreTrainedModel):
        return vision, getattr(vision.config, "_name_or_path", None) or None, {}
    path = os.fspath(vision)
    cfg = AutoConfig.from_pretrained(path)
    if cfg.model_type in LLAVA_MODEL_TYPES:
        llava = AutoModelForImageTextToText.from_pretrained(path, **load_kw)
        layer = getattr(cfg, "vision_feature_layer", -1)
        if isinstance(layer, (list, tuple)):
            raise BuildError(f"{path}: multi-layer vision_feature_layer={layer} is not supported")
        return llava.model.vision_tower, path, {"llava": llava, "feature_layer": layer}
    if isinstance(cfg, ConvBackboneConfig):
        return ConvBackbone.from_pretrained(path, dtype=load_kw.get("dtype")), path, {}
    if cfg.model_type in _VISION_OF_FULL:  # a full SigLIP/CLIP checkpoint: keep its vision half
        sub = getattr(cfg, _VISION_OF_FULL[cfg.model_type])
        return AutoModel.from_pretrained(path, config=sub, **load_kw), path, {}
    return AutoModel.from_pretrained(path, **load_kw), path, {}


def _llm_from_llava(llava) -> PreTrainedModel:
    """LLaVA's (base LM + lm_head) -> an AutoModelForCausalLM holding the same weights."""
    from transformers.initialization import no_init_weights

    text_config = llava.config.text_config
    text_config.tie_word_embeddings = bool(getattr(llava.config, "tie_word_embeddings", False))
    with no_init_weights():  # real tensors (buffers computed as usual), no random init: the weights are copied in
        lm = AutoModelForCausalLM.from_config(text_config)
    lm.to(llava.dtype)
    base = getattr(lm, lm.base_model_prefix)
    missing, unexpected = base.load_state_dict(llava.model.language_model.state_dict(), strict=False)
    if missing or unexpected:
        raise BuildError(f"LLaVA language model does not fit {type(lm).__name__}: missing {missing}, unexpected {unexpected}")
    lm.get_output_embeddings().load_state_dict(llava.lm_head.state_dict())
    lm.tie_weights()
    lm.generation_config = llava.generation_config
    return lm


def _mark_initialised(model: torch.nn.Module) -> None:
    """Flag every module / tensor of a pretrained part so transformers' init_weights never re-initialises it."""
    for m in model.modules():
        m._is_hf_initialized = True
    for t in [*model.parameters(), *model.buffers()]:
        t._is_hf_initialized = True


def add_special_tokens(tokenizer, tokens: list[str]) -> int:
    """Add the tokens the tokenizer lacks as special tokens; returns how many were added."""
    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    if not missing:
        return 0
    return tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)


def from_parts(
    vision,
    llm=None,
    *,
    tokenizer=None,
    trajtok_config: TrajTokConfig | dict | None = None,
    connector: str = "trajtok",
    projector: str = "mlp2x_gelu",
    token_budget: int = 256,
    chat_template: str = "vicuna_v1",
    system_prompt: str | None = None,
    num_frames: int = 16,
    fps: float | None = None,
    vision_feature_layer: int | None = None,
    vision_chunk_frames: int = 16,
    patch_pool_stride: int = 2,
    seg_loss_weight: float = 1.0,
    video_token: str = "<video>",
    image_mean=None,
    image_std=None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> tuple[TrajVLMForConditionalGeneration, TrajVLMProcessor]:
    """Assemble ``(model, processor)``.

    vision: a vision tower (SigLIP / CLIP / any AutoModel vision model, full SigLIP/CLIP checkpoints included,
        or a saved ConvBackbone) or a transformers LLaVA checkpoint (llava, llava_next_video, llava_onevision),
        as a hub id, a local path, or a loaded PreTrainedModel.
    llm: an AutoModelForCausalLM (hub id / path / model). None only with a LLaVA checkpoint (its LLM is used).
    tokenizer: hub id / path / tokenizer; default: the llm's (or the LLaVA checkpoint's).
    trajtok_config: TrajTokConfig or a dict of its fields (feature_dim is filled from the tower).
    Other arguments: the TrajVLMConfig fields of the same name; image_mean/std override the tower's statistics.
    """
    load_kw = {"dtype": dtype}
    if attn_implementation is not None:
        load_kw["attn_implementation"] = attn_implementation
    vision_model, vision_path, extras = _load_vision(vision, load_kw)
    llava = extras.get("llava")
    if llm is None and llava is None:
        raise BuildError("from_parts needs an llm unless `vision` is a LLaVA checkpoint")
    if llm is None:
        lm, tok_source = _llm_from_llava(llava), vision_path
    elif isinstance(llm, PreTrainedModel):
        lm, tok_source = llm, getattr(llm.config, "_name_or_path", None)
    else:
        lm = AutoModelForCausalLM.from_pretrained(os.fspath(llm), **load_kw)
        tok_source = os.fspath(llm)
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        source = tokenizer if tokenizer is not None else tok_source
        if not source:
            raise BuildError("from_parts: pass tokenizer= (cannot infer where the LLM's tokenizer lives)")
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(source))
    if vision_feature_layer is None:
        vision_feature_layer = extras.get("feature_layer")

    template = get_template(chat_template)
    add_special_tokens(tokenizer, [video_token, *template.special_tokens])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    if len(tokenizer) > lm.config.vocab_size:
        lm.resize_token_embeddings(len(tokenizer))
    video_token_id = tokenizer.convert_tokens_to_ids(video_token)

    width = vision_model.config.hidden_size
    if trajtok_config is None:
        trajtok_config = TrajTokConfig(feature_dim=width) if connector == "trajtok" else None
    elif isinstance(trajtok_config, dict):
        trajtok_config = TrajTokConfig(**{"feature_dim": width, **trajtok_config})
    # keep each part's attention implementation (a plain TrajVLMConfig(...) would reset the sub-configs' to None)
    attn = {
        "": lm.config._attn_implementation,
        "text_config": lm.config._attn_implementation,
        "vision_config": vision_model.config._attn_implementation,
    }
    config = TrajVLMConfig(
        attn_implementation=attn,
        vision_config=vision_model.config,
        text_config=lm.config,
        trajtok_config=trajtok_config,
        connector=connector,
        projector=projector,
        token_budget=token_budget,
        video_token=video_token,
        video_token_id=video_token_id,
        num_frames=num_frames,
        fps=fps,
        vision_feature_layer=vision_feature_layer,
        vision_chunk_frames=vision_chunk_frames,
        patch_pool_stride=patch_pool_stride,
        seg_loss_weight=seg_loss_weight,
    )
    # The pretrained parts go in as they are (flagged as initialised so post_init leaves them alone); only the
    # connector and the projector are new.
    _mark_initialised(vision_model)
    _mark_initialised(lm)
    model = TrajVLMForConditionalGeneration(config, vision_model=vision_model, language_model=lm)
    if llava is not None and connector == "patch" and projector == "mlp2x_gelu":
        src = llava.model.multi_modal_projector.state_dict()
        dst = model.projector.state_dict()
        if all(k in src and src[k].shape == v.shape for k, v in dst.items()):
            model.projector.load_state_dict({k: src[k] for k in dst})
    if dtype is not None:
        model.to(dtype)

    model.generation_config = lm.generation_config
    video_processor = TrajVLMVideoProcessor.from_vision_config(
        vision_model.config,
        vision_path,
        **{k: v for k, v in dict(image_mean=image_mean, image_std=image_std).items() if v is not None},
    )
    processor = TrajVLMProcessor(
        tokenizer,
        video_processor,
        chat_template,
        video_token=video_token,
        num_frames=num_frames,
        fps=fps,
        system_prompt=system_prompt,
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.stop_token_ids
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model, processor
