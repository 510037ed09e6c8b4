"""TrajTokConfig: every knob of the trajectory tokenizer (segmenter + encoder + linking + token budget)."""

from __future__ import annotations

import inspect

from transformers import PretrainedConfig

# Keys PretrainedConfig itself writes/accepts (to_dict, from_pretrained, nesting in a parent config).
_HF_KEYS = set(inspect.signature(PretrainedConfig.__init__).parameters) | {
    "name_or_path",
    "_name_or_path",
    "model_type",
    "transformers_version",
    "output_attentions",
    "torch_dtype",
    "num_labels",
    "attn_implementation",
    "tie_word_embeddings",
}


class TrajTokConfig(PretrainedConfig):
    """Configuration of :class:`~trajvlm.trajtok.TrajTok`.

    Shapes: features (B,T,h,w,C) -> K trajectory slots per chunk -> N live trajectories x q tokens of width D.

    Args:
        feature_dim: C, width of the backbone grid features.
        hidden_dim: D, TrajTok width (token width).
        num_queries: K, trajectory queries (slots) of the segmenter.
        segmenter_depth: number of (cross-attn, self-attn, MLP) blocks of the segmenter (>= 2).
        num_heads: attention heads (hidden_dim must be divisible by it).
        tokens_per_trajectory: q, tokens emitted per trajectory (>= 1).
        encoder_depth: number of (cross-attn over time, MLP) blocks of the trajectory encoder (>= 1).
        frames_per_chunk: frames segmented in one pass; longer videos are chunked and linked.
        min_area: a trajectory whose hard-assigned area, counted in feature-grid cells summed over ALL
            frames of the video, is <= min_area is dropped (0 = drop only empty trajectories).
        max_trajectories: cap on emitted trajectories per video (the largest by area are kept);
            None = num_queries. Ignored when fixed_k.
        fixed_k: emit exactly num_queries trajectories per video (K*q tokens), empty ones included.
        refine_layers: light residual pixel-feature refinement blocks (depthwise 3x3 conv + MLP) before
            the segmenter's attention (0 = none).
        mlp_ratio: hidden width of every MLP = mlp_ratio * hidden_dim.
        num_pos_freqs: sinusoid frequencies per coordinate for position codes.
        init_logit_scale: initial value of the learnable temperature (scale) of the assignment logits.
        link_threshold: cross-chunk linking. A live slot of a new chunk continues the track it is
            Hungarian-matched to if their similarity (weighted mean 1:2:1 of query-embedding cosine, appearance
            cosine and spatial continuity, each in [0,1]) is >= link_threshold, otherwise it starts a new track.
        track_memory: at most this many tracks are remembered per video while streaming (None = 4*K);
            beyond that the smallest track that is not live in the current chunk is forgotten.
        roi_size: P. Each trajectory's summary also gets its box-aligned P x P backbone features (sampled inside
            its box in every frame it is present in, averaged over time), which keep the object's layout --
            its shape -- that mask-average pooling loses. 0 = off (configs saved before this field existed).
        roi_isolated: average those box-aligned features over the frames in which the trajectory does not touch
            another object's mask (``linking.touching_frames``), falling back to all its frames when it touches
            one in every frame: next to a look-alike object its box takes in part of the other one. False = every
            present frame (configs saved before this field existed).
        refine_dilation: refine block i uses spatial dilation min(refine_dilation**i, refine_max_dilation), a wider
            receptive field so a pixel sees the extent of the object it is on. 1 = every block 3x3 undilated
            (configs saved before this field existed).
        refine_max_dilation: cap on that dilation (>= 1).
        refine_temporal: refine blocks convolve over (t,h,w) (3x3x3 depthwise) instead of each frame alone, so
            pixel embeddings see motion. False = per-frame (configs saved before this field existed).
        split_components: after each segmenter pass, a slot whose hard mask holds several separate space-time
            blobs present in the same frames (two look-alike objects in one slot) is split into one slot per
            blob (``trajtok.components``), so each object gets its own trajectory. False = off (configs saved
            before this field existed).
        component_min_cells: blobs smaller than this (cells summed over the chunk's frames) are never split off.
        component_max_overlap: blobs of one slot sharing at most this many frames are taken for one object (it
            left and came back), not split.
        component_min_piece: with split_components, also cut a blob whose frames show separate pieces of at least
            this many cells (in >= 2 frames) into one blob per object by following the pieces frame to frame
            (``trajtok.touching``): look-alike objects that touch in some frames. None = off (configs saved
            before this field existed).
        shape_dim: S. With roi_size > 0, every token of a trajectory also carries an S-wide code of its box-aligned
            features of its own (``TrajEncoder``), next to the D-wide latent, instead of those features only
            entering the D-wide summary sum: tokens are D + S wide (``token_dim``). 0 = off (configs saved before
            this field existed). ``python -m trajvlm.train.add_shape_code`` adds it to a trained model without
            changing what it answers.
    """

    model_type = "trajtok"

    def __init__(
        self,
        feature_dim: int = 64,
        hidden_dim: int = 64,
        num_queries: int = 8,
        segmenter_depth: int = 2,
        num_heads: int = 4,
        tokens_per_trajectory: int = 1,
        encoder_depth: int = 1,
        frames_per_chunk: int = 16,
        min_area: int = 0,
        max_trajectories: int | None = None,
        fixed_k: bool = False,
        refine_layers: int = 1,
        mlp_ratio: int = 2,
        num_pos_freqs: int = 6,
        init_logit_scale: float = 10.0,
        link_threshold: float = 0.75,
        track_memory: int | None = None,
        roi_size: int = 0,
        roi_isolated: bool = False,
        refine_dilation: int = 1,
        refine_max_dilation: int = 8,
        refine_temporal: bool = False,
        split_components: bool = False,
        component_min_cells: int = 20,
        component_max_overlap: int = 1,
        component_min_piece: int | None = None,
        shape_dim: int = 0,
        **kwargs,
    ):
        unknown = sorted(k for k in kwargs if k not in _HF_KEYS and not k.startswith("_"))
        if unknown:
            raise ValueError(f"TrajTokConfig: unknown field(s) {unknown}")
        super().__init__(**kwargs)

        def _int_at_least(name: str, value, lo: int) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"TrajTokConfig: {name} must be an int >= {lo}, got {value!r}")
            return value

        self.feature_dim = _int_at_least("feature_dim", feature_dim, 1)
        self.hidden_dim = _int_at_least("hidden_dim", hidden_dim, 1)
        self.num_queries = _int_at_least("num_queries", num_queries, 1)
        self.segmenter_depth = _int_at_least("segmenter_depth", segmenter_depth, 2)
        self.num_heads = _int_at_least("num_heads", num_heads, 1)
        if hidden_dim % num_heads:
            raise ValueError(f"TrajTokConfig: hidden_dim={hidden_dim} is not divisible by num_heads={num_heads}")
        if (hidden_dim // num_heads) % 2:
            raise ValueError(
                f"TrajTokConfig: head dim hidden_dim/num_heads={hidden_dim // num_heads} must be even (RoPE)"
            )
        self.tokens_per_trajectory = _int_at_least("tokens_per_trajectory", tokens_per_trajectory, 1)
        self.encoder_depth = _int_at_least("encoder_depth", encoder_depth, 1)
        self.frames_per_chunk = _int_at_least("frames_per_chunk", frames_per_chunk, 1)
        self.min_area = _int_at_least("min_area", min_area, 0)
        if max_trajectories is not None:
            _int_at_least("max_trajectories", max_trajectories, 1)
        self.max_trajectories = max_trajectories
        if not isinstance(fixed_k, bool):
            raise ValueError(f"TrajTokConfig: fixed_k must be a bool, got {fixed_k!r}")
        self.fixed_k = fixed_k
        self.refine_layers = _int_at_least("refine_layers", refine_layers, 0)
        self.mlp_ratio = _int_at_least("mlp_ratio", mlp_ratio, 1)
        self.num_pos_freqs = _int_at_least("num_pos_freqs", num_pos_freqs, 1)
        if not init_logit_scale > 0:
            raise ValueError(f"TrajTokConfig: init_logit_scale must be > 0, got {init_logit_scale!r}")
        self.init_logit_scale = float(init_logit_scale)
        if not 0.0 <= link_threshold <= 1.0:
            raise ValueError(f"TrajTokConfig: link_threshold must be in [0,1], got {link_threshold!r}")
        self.link_threshold = float(link_threshold)
        if track_memory is not None:
            _int_at_least("track_memory", track_memory, num_queries)
        self.track_memory = track_memory
        self.roi_size = _int_at_least("roi_size", roi_size, 0)
        if not isinstance(roi_isolated, bool):
            raise ValueError(f"TrajTokConfig: roi_isolated must be a bool, got {roi_isolated!r}")
        self.roi_isolated = roi_isolated
        self.refine_dilation = _int_at_least("refine_dilation", refine_dilation, 1)
        self.refine_max_dilation = _int_at_least("refine_max_dilation", refine_max_dilation, 1)
        if not isinstance(refine_temporal, bool):
            raise ValueError(f"TrajTokConfig: refine_temporal must be a bool, got {refine_temporal!r}")
        self.refine_temporal = refine_temporal
        if not isinstance(split_components, bool):
            raise ValueError(f"TrajTokConfig: split_components must be a bool, got {split_components!r}")
        self.split_components = split_components
        self.component_min_cells = _int_at_least("component_min_cells", component_min_cells, 1)
        self.component_max_overlap = _int_at_least("component_max_overlap", component_max_overlap, 0)
        self.component_min_piece = (
            None if component_min_piece is None else _int_at_least("component_min_piece", component_min_piece, 1))
        self.shape_dim = _int_at_least("shape_dim", shape_dim, 0)
        if shape_dim and not roi_size:
            raise ValueError(f"TrajTokConfig: shape_dim={shape_dim} needs roi_size > 0 (the code is read from the "
                             "box-aligned features)")

    @property
    def token_dim(self) -> int:
        """Width of an emitted token: hidden_dim (D) + shape_dim (S)."""
        return self.hidden_dim + self.shape_dim

    @property
    def effective_track_memory(self) -> int:
        return self.track_memory if self.track_memory is not None else 4 * self.num_queries
