"""TrajVLMForConditionalGeneration: vision tower -> connector (TrajTok | patch) -> projector -> spliced into the LLM.

Data flow for one batch:
    pixel_values_videos: list of V videos (T_v,3,S,S)  (or a (V,T,3,S,S) tensor)
      --VisionTower, chunk by chunk-->  features (V,t,h,w,C) per chunk
      --TrajTok.tokenize_chunks (streaming) | PatchConnector-->  per video tokens (N_v*q, D) | (T*h'*w', C)
      --Projector-->  per video embeds (n_v, d)                                   (ragged across videos)
    input_ids (B,L) with ONE <video> id per video --splice--> inputs_embeds (B,L',d), labels (B,L') -100 on video
      --LLM--> logits (B,L',vocab), LM loss (+ weighted segmentation loss when masks are given)
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.utils import ModelOutput

from ..trajtok import TrajTok, TrajTokOutput, segmentation_loss
from ..trajtok import cache as track_cache_module
from ..trajtok.cache import TrackCache, pixel_key, state_fingerprint
from ..trajtok.segmenter import upgrade_legacy_state_dict
from ..trajtok.tracks import TrackSet
from ..vision.hf_tower import VisionTower
from .configuration_trajvlm import TrajVLMConfig
from .patch_connector import PatchConnector, patch_token_count
from .processing_trajvlm import (
    IGNORE_INDEX,
    NoSupervisedTokensError,
)
from .projector import Projector
from .splice import SplicedInputs, splice_video_embeds


class MissingWeightsError(ValueError):
    """A checkpoint lacks weights of the model (or loading left tensors on the meta device). Names keys + folder."""


@dataclass
class VideoEncoding:
    """What the connector made of a batch of videos (ragged: one entry per video, in input order)."""

    embeds: list[torch.Tensor]  # per video (n_v, d) LLM-space visual embeddings, n_v = N_v*q (trajtok) or T*h'*w'
    trajtok: TrajTokOutput | None  # trajectories behind the embeds (None for the patch connector)
    num_frames: list[int]  # T_v per video
    grid: tuple[int, int]  # (h,w) of the vision tower's feature grid
    num_patch_tokens: list[int]  # what the patch baseline would spend on the same frames (pool stride of config)

    @property
    def num_tokens(self) -> list[int]:
        return [int(e.shape[0]) for e in self.embeds]

    @property
    def num_trajectories(self) -> list[int] | None:
        return None if self.trajtok is None else [int(t.shape[0]) for t in self.trajtok.trajectory_ids]


@dataclass
class TrajVLMOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    past_key_values: object | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    lm_loss: torch.FloatTensor | None = None
    seg_loss: torch.FloatTensor | None = None
    attention_mask: torch.LongTensor | None = None  # (B,L') after splicing
    labels: torch.LongTensor | None = None  # (B,L') after splicing


class TrajVLMPreTrainedModel(PreTrainedModel):
    config_class = TrajVLMConfig
    base_model_prefix = "trajvlm"
    main_input_name = "input_ids"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _skip_keys_device_placement = ["past_key_values"]

    def _init_weights(self, module: nn.Module) -> None:
        # Sub-models (vision tower, LLM) initialise themselves. Connector/projector modules keep the init of their
        # constructors (their parameters are flagged as initialised before post_init); only tensors that were NOT
        # loaded by from_pretrained reach here unflagged, and get the module's default init.
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()  # torch.nn.init calls are guarded: flagged tensors are left untouched
            return
        from transformers import initialization as init

        for p in module.parameters(recurse=False):
            init.normal_(p, mean=0.0, std=0.02)


class TrajVLMForConditionalGeneration(TrajVLMPreTrainedModel, GenerationMixin):
    """Video LLM with a trajectory (or patch) connector. See the module docstring for the data flow."""

    def __init__(
        self,
        config: TrajVLMConfig,
        *,
        vision_model: PreTrainedModel | None = None,
        language_model: PreTrainedModel | None = None,
    ):
        """vision_model / language_model: pretrained parts to use as they are (from_parts); by default both are
        built (randomly initialised) from the config, as from_pretrained does before loading the weights."""
        super().__init__(config)
        config.check()
        self.vision_tower = VisionTower(config.vision_config, config.vision_feature_layer, model=vision_model)
        if config.connector == "trajtok":
            self.connector = TrajTok(config.trajtok_config)
            width = config.trajtok_config.token_dim
        else:
            self.connector = PatchConnector(config.patch_pool_stride)
            width = config.vision_width
        self.projector = Projector(config.projector, width, config.text_config.hidden_size)
        if language_model is None:
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.language_model = language_model
        # one config object per part, so resizing / editing a part shows in the saved config
        config.text_config = self.language_model.config
        config.vision_config = self.vision_tower.model.config
        if config.connector == "trajtok":
            self.connector.config = config.trajtok_config
        for p in [*self.connector.parameters(), *self.projector.parameters()]:
            p._is_hf_initialized = True  # keep the constructors' init (see _init_weights)
        self.post_init()

    # ---- embeddings / LLM plumbing -------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self):
        return self.language_model.get_decoder()

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, **kw):
        emb = self.language_model.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, **kw)
        self.config.text_config = self.language_model.config
        return emb

    # ---- vision --------------------------------------------------------------------------------------------
    @staticmethod
    def _video_list(pixel_values_videos) -> list[torch.Tensor]:
        if isinstance(pixel_values_videos, torch.Tensor):
            if pixel_values_videos.ndim != 5:
                raise ValueError(
                    f"pixel_values_videos must be (V,T,3,S,S) or a list of (T,3,S,S), got {tuple(pixel_values_videos.shape)}"
                )
            return list(pixel_values_videos.unbind(0))
        videos = list(pixel_values_videos)
        for i, v in enumerate(videos):
            if not isinstance(v, torch.Tensor) or v.ndim != 4 or v.shape[1] != 3 or v.shape[0] < 1:
                shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise ValueError(f"pixel_values_videos[{i}] must be a (T,3,S,S) tensor with T >= 1, got {shape}")
        return videos

    def _resolve_budget(self, token_budget: int | None) -> int:
        budget = token_budget if token_budget is not None else self.config.token_budget
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"token_budget must be an int >= 1, got {budget!r}")
        return budget

    def _feature_chunks(self, frames: torch.Tensor, chunk: int, tower: nn.Module | None = None) -> Iterator[torch.Tensor]:
        """frames (B,T,3,S,S) -> yields features (B,t,h,w,C), the tower (default: the model's) run on `chunk`
        frames per video at a time."""
        tower = self.vision_tower if tower is None else tower
        b = frames.shape[0]
        for x in frames.split(chunk, dim=1):
            t = x.shape[1]
            feats = tower(x.flatten(0, 1))  # (B*t,h,w,C)
            yield feats.reshape(b, t, *feats.shape[1:])

    def encode_video(
        self,
        pixel_values_videos: Sequence[torch.Tensor] | torch.Tensor,
        *,
        token_budget: int | None = None,
        fixed_k: bool | None = None,
        keep_maps: bool = True,
    ) -> VideoEncoding:
        """Videos (list of (T_v,3,S,S) or (V,T,3,S,S)) -> per-video LLM embeddings + the trajectories behind them.

        Videos with the same shape are batched; the vision tower runs chunk by chunk (TrajTok's
        ``frames_per_chunk`` for the trajtok connector, ``config.vision_chunk_frames`` for the patch one), so
        activation memory is bounded whatever the video length. ``token_budget`` overrides the config's;
        ``keep_maps=False`` drops the per-cell maps (hard_ids, assignment_logits) for long videos.
        """
        cfg = self.config
        videos = self._video_list(pixel_values_videos)
        if not videos:
            raise ValueError("encode_video got no videos")
        param = next(self.vision_tower.parameters())
        budget = self._resolve_budget(token_budget)
        groups: dict[tuple, list[int]] = {}
        for i, v in enumerate(videos):
            groups.setdefault(tuple(v.shape), []).append(i)
        embeds: list[torch.Tensor | None] = [None] * len(videos)
        outs: list[tuple[list[int], TrajTokOutput]] = []
        grid = None
        lm_dtype = self.get_input_embeddings().weight.dtype
        for shape, idx in groups.items():
            frames = torch.stack([videos[i] for i in idx]).to(device=param.device)  # (B,T,3,S,S), dtype: below
            if cfg.connector == "trajtok":
                q = cfg.trajtok_config.tokens_per_trajectory
                tracks = self._make_tracks(frames, keep_maps=keep_maps)
                out = self.connector.encode_tracks(tracks, fixed_k=fixed_k, max_trajectories=max(1, budget // q))
                outs.append((idx, out))
                tokens = out.tokens  # per video (N_b,q,D)
                if out.hard_ids is not None:
                    grid = tuple(out.hard_ids.shape[-2:])
            else:
                frames = frames.to(param.dtype)
                feats = torch.cat(list(self._feature_chunks(frames, cfg.vision_chunk_frames)), dim=1)  # (B,T,h,w,C)
                grid = tuple(feats.shape[2:4])
                tokens = self.connector(feats)  # per video (T*h'*w', C)
            for i, tok in zip(idx, tokens):
                embeds[i] = self.projector(tok.reshape(-1, tok.shape[-1])).to(lm_dtype)  # (n_v, d)
        if grid is None:
            grid = self.vision_tower.grid_size(videos[0].shape[-1])
        num_frames = [int(v.shape[0]) for v in videos]
        patch_counts = [patch_token_count(t, grid[0], grid[1], cfg.patch_pool_stride) for t in num_frames]
        trajtok = _merge_trajtok_outputs(outs, len(videos)) if outs else None
        return VideoEncoding(embeds, trajtok, num_frames, grid, patch_counts)

    # ---- the parts that make tracks: vision tower + TrajTok's segmentation half --------------------------------
    track_cache: TrackCache | None = None
    _float32_tracking: tuple[nn.Module, TrajTok] | None = None  # float32 copies (keep_float32_tracks)
    _float32_state_hook = None

    def trainable_tracking_params(self) -> list[str]:
        """Names of trainable vision tower / segmenter parameters (tracks are a fixed function of frames iff none)."""
        return [n for n, p in self.named_parameters()
                if p.requires_grad and (n.startswith("vision_tower.") or n.startswith("connector.segmenter."))]

    def _require_frozen_tracking(self, what: str) -> None:
        if self.config.connector != "trajtok":
            raise ValueError(f"{what}: only the trajtok connector makes tracks")
        trainable = self.trainable_tracking_params()
        if trainable:
            raise ValueError(f"{what}: the vision tower and segmenter must be frozen; trainable: {trainable[:3]}")

    def _tracking_parts(self) -> tuple[nn.Module, TrajTok]:
        """(vision tower, TrajTok) that make the tracks: the float32 copies when kept, else the model's own."""
        return self._float32_tracking or (self.vision_tower, self.connector)

    @property
    def float32_tracks(self) -> bool:
        return self._float32_tracking is not None

    def keep_float32_tracks(self) -> None:
        """Make tracks with float32 copies of the frozen vision tower and segmenter, whatever the model is cast to.

        A bf16 run (DeepSpeed casts the whole module) would otherwise train on bf16 tracks, which are not the
        tracks float32 inference makes: the shipped model's tower + segmenter give another trajectory count on 11
        of 300 ShapesQA val videos in bf16 (eval/results/default_model.md, session 21). The copies are taken now
        (call this before casting), are not submodules (``.to()`` / ``.bfloat16()`` leave them alone; they are not
        in ``parameters()``), run with autocast off, and their tracks are cast to the trajectory encoder's dtype.
        The state dict (and so ``save_pretrained``) carries their float32 values for ``vision_tower.*`` and
        ``connector.segmenter.*``: a saved bf16 run keeps the exact frozen weights. Call it before
        ``enable_track_cache`` (its folder is keyed by the tracking weights, so a float32 fill is read). Raises
        ValueError unless the connector is trajtok with the tower and segmenter frozen.
        """
        self._require_frozen_tracking("keep_float32_tracks")
        if self.track_cache is not None:
            raise ValueError("keep_float32_tracks: call it before enable_track_cache (the cache is keyed by the "
                             "weights that make the tracks)")
        dtype = next(self.vision_tower.parameters()).dtype
        if dtype != torch.float32:
            raise ValueError(f"keep_float32_tracks: the vision tower is already {dtype}; call it before casting the "
                             "model (its copies would hold the rounded weights)")
        parts = (copy.deepcopy(self.vision_tower).float().eval(), copy.deepcopy(self.connector).float().eval())
        for part in parts:
            part.requires_grad_(False)
        self._float32_tracking = parts
        if self._float32_state_hook is None:
            self._float32_state_hook = self._register_state_dict_hook(_float32_tracking_state)

    def put_float32_tracking_state(self, state_dict: dict, prefix: str = "") -> None:
        """Overwrite the ``prefix + vision_tower.*`` / ``prefix + connector.segmenter.*`` entries of a state dict
        with the float32 copies' tensors (keep_float32_tracks): the state-dict hook, and the trainer for state
        dicts that DeepSpeed gathers itself (ZeRO-3 saves)."""
        tower, tracker = self._float32_tracking
        for name, part in (("vision_tower.", tower), ("connector.segmenter.", tracker.segmenter)):
            for k, v in part.state_dict().items():
                if prefix + name + k in state_dict:
                    state_dict[prefix + name + k] = v

    def drop_float32_tracks(self) -> None:
        self._float32_tracking = None
        if self._float32_state_hook is not None:
            self._float32_state_hook.remove()
            self._float32_state_hook = None

    def _tracking_autocast(self, device_type: str):
        """The context tracks are made in: autocast off for the float32 copies, else whatever the caller runs."""
        return torch.autocast(device_type, enabled=False) if self.float32_tracks else contextlib.nullcontext()

    def _for_encoder(self, tracks: TrackSet) -> TrackSet:
        """Tracks in the trajectory encoder's dtype (the float32 copies' tracks into a bf16 model)."""
        return tracks.to_dtype(next(self.connector.encoder.parameters()).dtype)

    def _make_tracks(self, frames: torch.Tensor, *, keep_maps: bool) -> TrackSet:
        """frames (B,T,3,S,S) -> TrackSet in the trajectory encoder's dtype (through the track cache when on)."""
        tower, tracker = self._tracking_parts()
        frames = frames.to(next(tower.parameters()).dtype)
        with self._tracking_autocast(frames.device.type):
            if self.track_cache is not None:
                tracks = self._cached_tracks(frames)  # per-cell maps are not kept
            else:
                chunks = self._feature_chunks(frames, self.config.trajtok_config.frames_per_chunk, tower)
                tracks = tracker.track_chunks(chunks, keep_maps=keep_maps)
        return self._for_encoder(tracks)

    def enable_track_cache(self, max_videos: int = 20000, directory: str | None = None) -> TrackCache:
        """Cache TrajTok's tracks per video (keyed by pixels) so later epochs skip the vision tower and segmenter.

        Only valid while both are frozen (their outputs are then a fixed function of the frames): raises
        ValueError otherwise. Cached encodings carry no per-cell maps, so no segmentation loss can be computed
        from them. ``directory`` also persists the tracks (safetensors) in ``directory/<fingerprint>/``, where the
        fingerprint covers the weights that make the tracks (the float32 copies under ``keep_float32_tracks``, so
        a bf16 run reads what a float32 run wrote), the TrajTok config and the tracking code's version
        (``trajtok.cache.TRACKS_VERSION``): a later run with the same frozen parts reuses them, a changed part
        gets a fresh folder. ``disable_track_cache()`` drops it.
        """
        self._require_frozen_tracking("enable_track_cache")
        if directory is not None:
            # the config without its bookkeeping fields ("dtype" is filled in by a save/load round trip and the
            # weights' dtype is in the digest anyway), so stage 2 loading stage 1's checkpoint finds its tracks;
            # nor the fields only the trajectory encoder reads (tracks are made before it)
            config = {k: v for k, v in self.config.trajtok_config.to_dict().items()
                      if k not in CONFIG_BOOKKEEPING and k not in _ENCODER_ONLY_FIELDS}
            tower, tracker = self._tracking_parts()
            fingerprint = state_fingerprint(
                tower.state_dict(), tracker.segmenter.state_dict(),
                json.dumps(config, sort_keys=True, default=str), f"tracks-v{track_cache_module.TRACKS_VERSION}")
            directory = os.path.join(directory, fingerprint)
        self.track_cache = TrackCache(max_videos, directory)
        return self.track_cache

    def disable_track_cache(self) -> None:
        self.track_cache = None

    @torch.no_grad()
    def _cached_tracks(self, frames: torch.Tensor) -> TrackSet:
        """frames (B,T,3,S,S) -> TrackSet of the B videos; only cache misses run the vision tower + segmenter."""
        keys = [pixel_key(f) for f in frames]
        first = {}  # key -> index of its first video in the batch (a repeated video is tracked once)
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        found = {k: self.track_cache.get(k) for k in first}
        missing = [first[k] for k, tracks in found.items() if tracks is None]
        if missing:
            tower, tracker = self._tracking_parts()
            chunks = self._feature_chunks(frames[missing], self.config.trajtok_config.frames_per_chunk, tower)
            for i, tracks in zip(missing, tracker.track_chunks(chunks, keep_maps=False).split()):
                found[keys[i]] = self.track_cache.put(keys[i], tracks)
        return TrackSet.cat([found[k] for k in keys])

    def encode_video_chunks(
        self,
        pixel_chunks: Iterable[torch.Tensor],
        *,
        token_budget: int | None = None,
        fixed_k: bool | None = None,
        keep_maps: bool = True,
    ) -> VideoEncoding:
        """ONE video given as an iterable of pixel chunks (t_i,3,S,S) -- e.g. decoded and normalized lazily --
        -> VideoEncoding with V=1. Only one chunk of pixels and backbone activations is alive at a time; the
        result does not depend on how the frames are chunked (they are regrouped by TrajTok's frames_per_chunk)."""
        cfg = self.config
        tower, tracker = self._tracking_parts() if cfg.connector == "trajtok" else (self.vision_tower, None)
        param = next(tower.parameters())
        budget = self._resolve_budget(token_budget)
        step = cfg.trajtok_config.frames_per_chunk if cfg.connector == "trajtok" else cfg.vision_chunk_frames
        seen = {"frames": 0, "size": None}

        def features() -> Iterator[torch.Tensor]:
            for px in _rechunk(pixel_chunks, step):
                seen["frames"] += px.shape[0]
                seen["size"] = px.shape[-1]
                yield tower(px.to(device=param.device, dtype=param.dtype))[None]  # (1,t,h,w,C)

        lm_dtype = self.get_input_embeddings().weight.dtype
        trajtok = None
        if cfg.connector == "trajtok":
            q = cfg.trajtok_config.tokens_per_trajectory
            kwargs = {"fixed_k": fixed_k, "max_trajectories": max(1, budget // q)}
            if self.float32_tracks:  # float32 copies make the tracks, the model's encoder tokenizes them
                with self._tracking_autocast(param.device.type):
                    tracks = tracker.track_chunks(features(), keep_maps=keep_maps)
                trajtok = self.connector.encode_tracks(self._for_encoder(tracks), **kwargs)
            else:
                trajtok = self.connector.tokenize_chunks(features(), keep_maps=keep_maps, **kwargs)
            tokens = trajtok.tokens[0]  # (N,q,D)
        else:
            tokens = self.connector(torch.cat(list(features()), dim=1))[0]  # (T*h'*w', C)
        if seen["frames"] == 0:
            raise ValueError("encode_video_chunks got no frames")
        grid = self.vision_tower.grid_size(seen["size"])
        if trajtok is not None and trajtok.hard_ids is not None:
            grid = tuple(trajtok.hard_ids.shape[-2:])
        embeds = [self.projector(tokens.reshape(-1, tokens.shape[-1])).to(lm_dtype)]  # (n, d)
        t = seen["frames"]
        return VideoEncoding(embeds, trajtok, [t], grid, [patch_token_count(t, grid[0], grid[1], cfg.patch_pool_stride)])

    def _dummy_visual(self) -> torch.Tensor:
        """Run every connector parameter on a blank 1-frame video (text-only batches under ZeRO-3)."""
        s = self.config.image_size
        param = next(self.vision_tower.parameters())
        blank = torch.zeros(1, 1, 3, s, s, device=param.device, dtype=param.dtype)
        enc = self.encode_video(blank, fixed_k=True if self.config.connector == "trajtok" else None)
        return enc.embeds[0]

    # ---- splice --------------------------------------------------------------------------------------------
    def splice(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None,
        video_embeds: Sequence[torch.Tensor],
        labels: torch.LongTensor | None = None,
        padding_side: str | None = None,
    ) -> SplicedInputs:
        """Replace each <video> id (one per video, row-major order) by that video's embeddings; re-pad
        (``splice_video_embeds``; padding_side None -> the input's side, else "right" in training, "left" not)."""
        return splice_video_embeds(self.get_input_embeddings()(input_ids), input_ids, attention_mask, video_embeds,
                                   self.config.video_token_id, labels, padding_side,
                                   default_side="right" if self.training else "left")

    def prepare_inputs_embeds(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos=None,
        labels: torch.LongTensor | None = None,
        *,
        video_encoding: VideoEncoding | None = None,
        padding_side: str | None = None,
    ) -> tuple[SplicedInputs, VideoEncoding | None]:
        """Encode the videos (unless `video_encoding` is given) and splice them into the text embeddings."""
        if video_encoding is None and pixel_values_videos is not None and len(pixel_values_videos) > 0:
            video_encoding = self.encode_video(pixel_values_videos)
        embeds = video_encoding.embeds if video_encoding is not None else []
        spliced = self.splice(input_ids, attention_mask, embeds, labels, padding_side)
        return spliced, video_encoding

    # ---- forward -------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos=None,
        labels: torch.LongTensor | None = None,
        video_masks=None,
        video_graphs=None,
        *,
        inputs_embeds: torch.FloatTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        use_cache: bool | None = None,
        video_encoding: VideoEncoding | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> TrajVLMOutput:
        """input_ids (B,L) with one <video> id per video; pixel_values_videos: videos of all samples in order.

        Returns the LM loss over supervised (label != -100) tokens, plus ``seg_loss_weight * seg_loss`` when
        ``video_masks`` (per video (T,H,W) instance ids, None for a video without masks) and ``video_graphs``
        (per video (N,T)) are given. ``inputs_embeds`` (already spliced) bypasses the vision path.
        """
        if inputs_embeds is not None:
            if input_ids is not None or pixel_values_videos is not None:
                raise ValueError("pass either inputs_embeds (already spliced) or input_ids (+ videos), not both")
            out = self.language_model(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past_key_values,
                labels=labels,
                use_cache=use_cache,
                logits_to_keep=logits_to_keep,
                **kwargs,
            )
            return TrajVLMOutput(
                loss=out.loss, logits=out.logits, past_key_values=out.past_key_values,
                hidden_states=out.hidden_states, attentions=out.attentions, lm_loss=out.loss,
                attention_mask=attention_mask, labels=labels,
            )
        if input_ids is None:
            raise ValueError("forward needs input_ids (or inputs_embeds)")
        spliced, enc = self.prepare_inputs_embeds(
            input_ids, attention_mask, pixel_values_videos, labels, video_encoding=video_encoding
        )
        embeds = spliced.inputs_embeds
        if enc is None and torch.is_grad_enabled():
            # text-only batch: every rank must still touch every connector parameter (ZeRO-3), at zero weight
            embeds = embeds + 0.0 * self._dummy_visual().sum()
        if spliced.labels is not None and not (spliced.labels != IGNORE_INDEX).any():
            raise NoSupervisedTokensError("labels were given but no position of the batch is supervised")
        out = self.language_model(
            inputs_embeds=embeds,
            attention_mask=spliced.attention_mask,
            position_ids=spliced.position_ids,
            past_key_values=past_key_values,
            labels=spliced.labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        lm_loss, loss, seg = out.loss, out.loss, None
        if (video_masks is not None or video_graphs is not None) and self.config.seg_loss_weight > 0:
            seg = self._segmentation_loss(enc, video_masks, video_graphs)
            if seg is not None:
                loss = seg * self.config.seg_loss_weight if loss is None else loss + self.config.seg_loss_weight * seg
        return TrajVLMOutput(
            loss=loss, logits=out.logits, past_key_values=out.past_key_values, hidden_states=out.hidden_states,
            attentions=out.attentions, lm_loss=lm_loss, seg_loss=seg, attention_mask=spliced.attention_mask,
            labels=spliced.labels,
        )

    def _segmentation_loss(self, enc: VideoEncoding | None, video_masks, video_graphs) -> torch.Tensor | None:
        """Mean TrajTok segmentation loss over the videos that carry masks (None if none does)."""
        masks = list(video_masks) if video_masks is not None else []
        graphs = list(video_graphs) if video_graphs is not None else []
        if not any(m is not None for m in masks) and not any(g is not None for g in graphs):
            return None
        if self.config.connector != "trajtok":
            raise ValueError(
                "video_masks/video_graphs were given with seg_loss_weight > 0 but the patch connector has no "
                "segmenter: set seg_loss_weight=0 for the patch baseline"
            )
        n = len(enc.embeds) if enc is not None else 0
        if len(masks) != n or len(graphs) != n:
            raise ValueError(f"{n} videos but {len(masks)} video_masks and {len(graphs)} video_graphs")
        logits = enc.trajtok.assignment_logits  # (V,T_max,h,w,K)
        if logits is None:
            raise ValueError("the segmentation loss needs the per-cell maps (encode_video(keep_maps=True))")
        losses = []
        for v, (m, g) in enumerate(zip(masks, graphs)):
            if (m is None) != (g is None):
                raise ValueError(f"video {v}: video_masks and video_graphs must be given together")
            if m is None:
                continue
            m = torch.as_tensor(m, device=logits.device)
            t = enc.num_frames[v]
            losses.append(
                segmentation_loss(
                    logits[v : v + 1, :t], m[None], [torch.as_tensor(g)],
                    frames_per_chunk=self.config.trajtok_config.frames_per_chunk,
                )
            )
        return torch.stack(losses).mean()

    # ---- generation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos=None,
        *,
        video_encoding: VideoEncoding | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        **kwargs,
    ) -> torch.LongTensor:
        """Generate from the spliced embeddings (left padded). Returns ONLY the new tokens (B, new).

        All GenerationMixin options pass through (max_new_tokens, do_sample, temperature, top_p, streamer,
        eos_token_id, ...). The model's generation_config is used unless one is given.
        """
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("generate needs input_ids (+ videos) or inputs_embeds")
            spliced, _ = self.prepare_inputs_embeds(
                input_ids, attention_mask, pixel_values_videos, video_encoding=video_encoding, padding_side="left"
            )
            inputs_embeds, attention_mask = spliced.inputs_embeds, spliced.attention_mask
        elif attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        if "generation_config" not in kwargs:  # the model's defaults (eos/pad ids, stop tokens) + the call's options
            gen_config = copy.deepcopy(self.generation_config)
            kwargs = gen_config.update(**kwargs)  # returns the kwargs that are not generation options (streamer, ...)
            kwargs["generation_config"] = gen_config
        return self.language_model.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)

    # ---- loading -------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, allow_missing_weights: bool = False, **kwargs):
        """transformers' from_pretrained, strict about missing weights.

        A checkpoint that lacks any weight of the model raises :class:`MissingWeightsError` naming the keys and the
        folder. ``allow_missing_weights=True`` initialises them instead (connector/projector: their module's
        default init; sub-models: their own init). Either way no tensor may be left on the meta device.
        Old checkpoints with a 0-dim ``connector.segmenter.log_logit_scale`` load (reshaped to (1,)).
        """
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(
            pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
        )
        where = f"{cls.__name__}.from_pretrained({str(pretrained_model_name_or_path)!r})"
        missing = sorted(info["missing_keys"])
        if missing and not allow_missing_weights:
            raise MissingWeightsError(
                f"{where}: the checkpoint lacks {len(missing)} weight(s) of the model: {_short_list(missing)} "
                "(pass allow_missing_weights=True to initialise them randomly)"
            )
        on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if on_meta:
            raise MissingWeightsError(
                f"{where}: loading left {len(on_meta)} tensor(s) on the meta device: {_short_list(on_meta)}"
            )
        return (model, info) if want_info else model

    @staticmethod
    def _load_pretrained_model(model, state_dict, checkpoint_files, load_config, expected_keys=None):
        # The constructor flags connector/projector parameters as initialised (from_parts keeps their init). In
        # from_pretrained (expected_keys None; a PEFT adapter load passes them) nothing is loaded yet: clear the flags
        # of the not-yet-loaded (meta / ZeRO-3 partitioned) parameters, so a weight the checkpoint lacks counts as
        # missing and is initialised (or reported) instead of being dropped from missing_keys and left on meta.
        if expected_keys is None:
            for p in model.parameters():
                if (p.is_meta or hasattr(p, "ds_id")) and getattr(p, "_is_hf_initialized", False):
                    p._is_hf_initialized = False
        if state_dict is None and checkpoint_files and _has_legacy_scalars(checkpoint_files):
            from safetensors.torch import load_file

            state_dict = {}
            for f in checkpoint_files:
                state_dict.update(load_file(f))
        if state_dict is not None:
            state_dict = dict(state_dict)
            upgrade_legacy_state_dict(state_dict)
        return PreTrainedModel._load_pretrained_model(model, state_dict, checkpoint_files, load_config, expected_keys)

    # ---- construction from parts (stage 1) ----------------------------------------------------------------
    @classmethod
    def from_parts(cls, vision, llm=None, **kwargs):
        """Build a new model from a pretrained vision tower and LLM (hub ids / local paths) or a LLaVA checkpoint.

        Returns ``(model, processor)``. See :func:`trajvlm.model.build.from_parts` for the arguments.
        """
        from .build import from_parts

        return from_parts(vision, llm, **kwargs)


# config fields that say how a config was saved, not what the model is (also used by trajvlm.train.swap_llm)
CONFIG_BOOKKEEPING = ("transformers_version", "dtype", "torch_dtype", "_name_or_path", "architectures")
# TrajTok fields that change the tokens but not the tracks (the track cache's fingerprint leaves them out)
_ENCODER_ONLY_FIELDS = ("shape_dim",)


def _float32_tracking_state(module, state_dict, prefix, local_metadata):
    """state-dict hook of keep_float32_tracks: the frozen tower / segmenter entries from the float32 copies."""
    module.put_float32_tracking_state(state_dict, prefix)
    return state_dict


def _short_list(keys: Sequence[str], limit: int = 10) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _has_legacy_scalars(checkpoint_files: Sequence[str]) -> bool:
    """Whether a safetensors checkpoint holds a 0-dim ``...log_logit_scale`` (read from the header only)."""
    from safetensors import safe_open

    for path in checkpoint_files:
        if not str(path).endswith(".safetensors"):
            continue
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                if key.endswith(".log_logit_scale") and len(f.get_slice(key).get_shape()) == 0:
                    return True
    return False


def _rechunk(chunks: Iterable[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """Pixel chunks (t_i,3,S,S) of any sizes -> chunks of exactly `size` frames (the last may be shorter)."""
    buf: list[torch.Tensor] = []
    n = 0
    for i, px in enumerate(chunks):
        if not isinstance(px, torch.Tensor) or px.ndim != 4 or px.shape[1] != 3:
            shape = tuple(px.shape) if isinstance(px, torch.Tensor) else type(px).__name__
            raise ValueError(f"pixel chunk {i} must be a (t,3,S,S) tensor, got {shape}")
        buf.append(px)
        n += px.shape[0]
        while n >= size:
            cat = torch.cat(buf) if len(buf) > 1 else buf[0]
            yield cat[:size]
            rest = cat[size:]
            buf, n = ([rest] if rest.shape[0] else []), rest.shape[0]
    if n:
        yield torch.cat(buf)


def _merge_trajtok_outputs(outs: list[tuple[list[int], TrajTokOutput]], n: int) -> TrajTokOutput:
    """Per-shape-group outputs -> one TrajTokOutput in video order; per-cell maps padded along T (-1 / 0)."""
    if len(outs) == 1 and outs[0][0] == list(range(n)):
        return outs[0][1]
    order = [None] * n
    for idx, out in outs:
        for j, i in enumerate(idx):
            order[i] = (out, j)
    lists = {k: [getattr(o, k)[j] for o, j in order] for k in ("tokens", "trajectory_ids", "boxes", "presence", "areas")}
    t_max = max(o.num_frames for o, _ in order)
    hard = logits = None
    if all(o.hard_ids is not None for o, _ in order):
        hard = torch.stack(
            [nn.functional.pad(o.hard_ids[j], (0, 0, 0, 0, 0, t_max - o.num_frames), value=-1) for o, j in order]
        )  # (V,T_max,h,w)
        logits = torch.stack(
            [nn.functional.pad(o.assignment_logits[j], (0, 0, 0, 0, 0, 0, 0, t_max - o.num_frames)) for o, j in order]
        )  # (V,T_max,h,w,K)
    return TrajTokOutput(hard_ids=hard, assignment_logits=logits, num_frames=t_max, **lists)
