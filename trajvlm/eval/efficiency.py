"""Efficiency accounting: visual tokens into the LLM and FLOPs for a config and a video length, TrajVLM vs the
patch baseline -- counted on the meta device (no weights, no memory), checked against closed-form formulas.

    from trajvlm.model.presets import get_preset
    spec = get_preset("so400m-llama3-8b")
    rows = efficiency_table(spec.config, [16, 64, 256, 1024], patch_row_newline=spec.patch_row_newline)
    print(format_markdown(rows))

CLI: ``trajvlm bench efficiency --preset so400m-llama3-8b --frames 16 64 256 1024``.

Token counts (T frames, feature grid h x w, K queries, q tokens per trajectory, B token budget, c chunks of
``frames_per_chunk``):

- TrajVLM, default budget: ``min(N_live, B // q) * q``; N_live (linked trajectories alive in the video) is a
  property of the video. Without a measured N_live the table uses the bound ``B // q`` (every budget slot used).
- TrajVLM, fixed-K: ``K * q`` (slots are linked across chunks into global trajectories; the K largest are kept).
- TrajTok per-chunk fixed-K, unlinked: ``c * K * q`` (K tokens for every chunk, no cross-chunk linking; grows
  with the video -- shown to make the role of linking visible).
- Patch baseline: ``T * h' * (w' + n)``, h' = ceil(h/stride) (stride 1 = full, the config's stride = pooled),
  n = 1 when the baseline appends a newline token per row (LLaVA-Video), else 0.

FLOPs are dense matmul FLOPs (2 per multiply-add) as ``torch.utils.flop_counter.FlopCounterMode`` counts them:
attention scores and values are counted for the full L x L square (a causal kernel may skip half; neither side
gets that discount here), element-wise ops, norms and softmax are not counted, and prefill computes logits for
the last position only (as ``generate`` does). ``llm_prefill_flops`` is the same count in closed form.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..model.configuration_trajvlm import TrajVLMConfig

TRAJ_BUDGET = "trajvlm_budget"
TRAJ_FIXED_K = "trajvlm_fixed_k"
TRAJ_PER_CHUNK = "trajtok_per_chunk"
PATCH_FULL = "patch_full"
PATCH_POOLED = "patch_pooled"
VARIANTS = (TRAJ_BUDGET, TRAJ_FIXED_K, TRAJ_PER_CHUNK, PATCH_FULL, PATCH_POOLED)


class EfficiencyError(ValueError):
    """Arguments the accounting cannot work with (unknown variant, missing TrajTok config, bad counts)."""


# ---------------------------------------------------------------------------------------------------------------
# token counts


def feature_grid(config: TrajVLMConfig) -> tuple[int, int]:
    """(h,w) of the vision tower's grid at config.image_size (VisionTower.grid_size on a meta-device tower)."""
    from ..vision.hf_tower import VisionTower

    with torch.device("meta"):
        tower = VisionTower(config.vision_config, config.vision_feature_layer)
    return tower.grid_size(config.image_size)


def patch_tokens_per_frame(grid: tuple[int, int], stride: int, row_newline: bool = False) -> int:
    """Tokens the patch baseline spends on one frame: pooled grid (ceil) + one newline per row if row_newline."""
    from ..model.patch_connector import pooled_grid

    ph, pw = pooled_grid(grid[0], grid[1], stride)
    return ph * (pw + int(row_newline))


def _check_frames(num_frames: int) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise EfficiencyError(f"num_frames must be an int >= 1, got {num_frames!r}")


def visual_tokens(
    config: TrajVLMConfig,
    variant: str,
    num_frames: int,
    *,
    live_trajectories: int | None = None,
    patch_row_newline: bool = False,
    grid: tuple[int, int] | None = None,
) -> int:
    """Visual tokens the LLM receives for one video of `num_frames` frames (see the module docstring)."""
    _check_frames(num_frames)
    if variant in (PATCH_FULL, PATCH_POOLED):
        grid = grid or feature_grid(config)
        stride = 1 if variant == PATCH_FULL else config.patch_pool_stride
        return num_frames * patch_tokens_per_frame(grid, stride, patch_row_newline)
    tt = config.trajtok_config
    if tt is None:
        raise EfficiencyError(f"variant {variant!r} needs a trajtok_config (connector={config.connector!r})")
    q, k = tt.tokens_per_trajectory, tt.num_queries
    if variant == TRAJ_BUDGET:
        cap = max(1, config.token_budget // q)
        if live_trajectories is not None:
            if live_trajectories < 0:
                raise EfficiencyError(f"live_trajectories must be >= 0, got {live_trajectories}")
            cap = min(cap, live_trajectories)
        return cap * q
    if variant == TRAJ_FIXED_K:
        return k * q
    if variant == TRAJ_PER_CHUNK:
        return math.ceil(num_frames / tt.frames_per_chunk) * k * q
    raise EfficiencyError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


# ---------------------------------------------------------------------------------------------------------------
# FLOPs: closed form


@dataclass(frozen=True)
class LLMDims:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, text_config) -> LLMDims:
        heads = text_config.num_attention_heads
        head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // heads
        return cls(
            hidden=text_config.hidden_size,
            intermediate=text_config.intermediate_size,
            layers=text_config.num_hidden_layers,
            heads=heads,
            kv_heads=text_config.num_key_value_heads or heads,
            head_dim=head_dim,
            vocab=text_config.vocab_size,
        )


def llm_prefill_flops(text_config, seq_len: int, *, batch: int = 1, logits_positions: int = 1) -> int:
    """Closed-form prefill FLOPs of a Llama-family decoder over `seq_len` tokens (what FlopCounterMode counts).

    per layer: q/k/v/o projections 2*L*d*(2*H*hd + 2*KV*hd), gated MLP 2*L*3*d*d_ff,
    attention 2 * (2*L*L*H*hd) (scores and weighted values over the full square); + lm_head on
    `logits_positions` positions.
    """
    if seq_len < 1:
        raise EfficiencyError(f"seq_len must be >= 1, got {seq_len}")
    m = LLMDims.of(text_config)
    L = seq_len
    proj = 2 * L * m.hidden * (2 * m.heads * m.head_dim + 2 * m.kv_heads * m.head_dim)
    mlp = 2 * L * 3 * m.hidden * m.intermediate
    attn = 2 * (2 * L * L * m.heads * m.head_dim)
    head = 2 * min(logits_positions, L) * m.hidden * m.vocab
    return batch * (m.layers * (proj + mlp + attn) + head)


# ---------------------------------------------------------------------------------------------------------------
# FLOPs: counted on the meta device


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs FlopCounterMode records while running fn() (under no_grad)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())


def _frozen(module: torch.nn.Module) -> torch.nn.Module:
    """eval mode, no parameter requires grad (views of grad-requiring parameters made under no_grad trip
    FlopCounterMode's module tracker)."""
    return module.eval().requires_grad_(False)


class MetaFlopCounter:
    """FLOPs of each part of a TrajVLM config, counted by running the parts on the meta device.

    Parts are built once (lazily) and results cached per shape, so a whole table costs a few seconds even for
    Llama-3-8B over 10^6 tokens.
    """

    def __init__(self, config: TrajVLMConfig):
        self.config = config
        self._counts: dict[tuple, int] = {}

    # -- parts -------------------------------------------------------------------------------------------------
    @functools.cached_property
    def llm(self) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        text = self.config.text_config
        text._attn_implementation = "sdpa"
        with torch.device("meta"):
            return _frozen(AutoModelForCausalLM.from_config(text))

    @functools.cached_property
    def tower(self) -> torch.nn.Module:
        from ..vision.hf_tower import VisionTower

        with torch.device("meta"):
            return _frozen(VisionTower(self.config.vision_config, self.config.vision_feature_layer))

    @functools.cached_property
    def trajtok(self) -> torch.nn.Module:
        from ..trajtok import TrajTok

        if self.config.trajtok_config is None:
            raise EfficiencyError("this config has no trajtok_config")
        with torch.device("meta"):
            return _frozen(TrajTok(self.config.trajtok_config))

    def _projector(self, in_dim: int) -> torch.nn.Module:
        from ..model.projector import Projector

        with torch.device("meta"):
            return _frozen(Projector(self.config.projector, in_dim, self.config.text_config.hidden_size))

    # -- counts (cached per shape) -------------------------------------------------------------------------
    def _cached(self, key: tuple, fn: Callable[[], int]) -> int:
        if key not in self._counts:
            self._counts[key] = fn()
        return self._counts[key]

    def llm_prefill(self, seq_len: int) -> int:
        """Prefill of `seq_len` embeddings (batch 1), logits for the last position only."""
        d = self.config.text_config.hidden_size
        x = torch.empty(1, seq_len, d, device="meta")  # (1,L,d) inputs_embeds
        # a prepared (1,1,L,L) mask skips transformers' data-dependent mask checks, which meta tensors cannot run
        mask = torch.ones(1, 1, seq_len, seq_len, dtype=torch.bool, device="meta")
        pos = torch.arange(seq_len, device="meta")[None]  # (1,L)
        return self._cached(("llm", seq_len), lambda: count_flops(
            lambda: self.llm(inputs_embeds=x, attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=1)
        ))

    @functools.cached_property
    def vision_per_frame(self) -> int:
        s = self.config.image_size
        px = torch.empty(1, 3, s, s, device="meta")  # (1,3,S,S)
        return count_flops(lambda: self.tower(px))

    def vision(self, num_frames: int) -> int:
        return num_frames * self.vision_per_frame

    def segmenter_chunk(self, frames: int) -> int:
        """TrajSegmenter on one chunk of `frames` frames (+ the per-chunk mask pooling for linking)."""
        from ..trajtok.linking import chunk_stats

        h, w = feature_grid(self.config)
        c = self.config.trajtok_config.feature_dim
        feats = torch.empty(1, frames, h, w, c, device="meta")  # (1,t,h,w,C)

        tcfg = self.config.trajtok_config

        def run():
            seg = self.trajtok.segmenter(feats)
            chunk_stats(feats, seg.logits, seg.query_embeds, roi_size=tcfg.roi_size, roi_isolated=tcfg.roi_isolated)

        return self._cached(("segmenter", frames), lambda: count_flops(run))

    def encoder(self, rows: int, frames: int) -> int:
        """TrajEncoder over `rows` trajectories x `frames` frames."""
        h, w = feature_grid(self.config)
        c = self.config.trajtok_config.feature_dim
        dev = "meta"
        pooled = torch.empty(rows, frames, c, device=dev)  # (R,T,C)
        mass = torch.empty(rows, frames, device=dev)  # (R,T)
        area = torch.empty(rows, frames, device=dev)  # (R,T)
        boxes = torch.empty(rows, frames, 4, device=dev)  # (R,T,4)
        p = self.config.trajtok_config.roi_size
        roi = torch.empty(rows, p * p, c, device=dev) if p else None  # (R,P*P,C)
        return self._cached(("encoder", rows, frames), lambda: count_flops(
            lambda: self.trajtok.encoder(pooled, mass, area, boxes, grid_cells=h * w, roi=roi)))

    def projector(self, num_tokens: int, in_dim: int) -> int:
        """The projector over `num_tokens` connector tokens of width `in_dim`."""
        if num_tokens == 0:
            return 0
        x = torch.empty(num_tokens, in_dim, device="meta")  # (n, in_dim)
        return self._cached(("projector", num_tokens, in_dim), lambda: count_flops(lambda: self._projector(in_dim)(x)))

    def trajtok_connector(self, num_frames: int, num_tokens: int, *, linked: bool = True) -> int:
        """Segmenter over every chunk + encoder over the tracks + projector over the emitted tokens.

        The encoder runs on every remembered track before selection: R = min(K * chunks, track memory) when
        linked (an upper bound), K per chunk when unlinked.
        """
        tt = self.config.trajtok_config
        fpc, k = tt.frames_per_chunk, tt.num_queries
        full, rest = divmod(num_frames, fpc)
        seg = full * self.segmenter_chunk(fpc) + (self.segmenter_chunk(rest) if rest else 0)
        chunks = full + bool(rest)
        if linked:
            enc = self.encoder(min(k * chunks, tt.effective_track_memory), num_frames)
        else:
            enc = full * self.encoder(k, fpc) + (self.encoder(k, rest) if rest else 0)
        return seg + enc + self.projector(num_tokens, tt.token_dim)

    def patch_connector(self, num_frames: int, stride: int) -> int:
        """Pooling is not a matmul (0 FLOPs counted); the projector runs on the pooled patches (not newlines)."""
        from ..model.patch_connector import pooled_grid

        h, w = feature_grid(self.config)
        ph, pw = pooled_grid(h, w, stride)
        return self.projector(num_frames * ph * pw, self.config.vision_width)


# ---------------------------------------------------------------------------------------------------------------
# the table


@dataclass
class EfficiencyRow:
    frames: int
    variant: str
    label: str
    visual_tokens: int
    text_tokens: int
    prefill_flops: int  # LLM prefill over visual + text tokens (counted on meta, or analytic if count=False)
    prefill_flops_analytic: int
    vision_flops: int
    connector_flops: int

    @property
    def total_flops(self) -> int:
        return self.vision_flops + self.connector_flops + self.prefill_flops


def variant_label(config: TrajVLMConfig, variant: str, *, live_trajectories: int | None, patch_row_newline: bool,
                  grid: tuple[int, int]) -> str:
    if variant in (PATCH_FULL, PATCH_POOLED):
        stride = 1 if variant == PATCH_FULL else config.patch_pool_stride
        per = patch_tokens_per_frame(grid, stride, patch_row_newline)
        what = "full" if stride == 1 else f"{stride}x{stride}-pooled"
        return f"patch {what} ({per}/frame)"
    tt = config.trajtok_config
    if variant == TRAJ_BUDGET:
        live = "all budget slots live" if live_trajectories is None else f"{live_trajectories} live trajectories"
        return f"TrajVLM budget {config.token_budget} (q={tt.tokens_per_trajectory}; {live})"
    if variant == TRAJ_FIXED_K:
        return f"TrajVLM fixed-K (K={tt.num_queries}, linked)"
    return f"TrajTok fixed-K per {tt.frames_per_chunk}-frame chunk, unlinked"


def efficiency_table(
    config: TrajVLMConfig,
    frames: Sequence[int],
    *,
    variants: Sequence[str] = VARIANTS,
    text_tokens: int = 64,
    live_trajectories: int | None = None,
    patch_row_newline: bool = False,
    count: bool = True,
    counter: MetaFlopCounter | None = None,
) -> list[EfficiencyRow]:
    """One row per (frames, variant). count=False: analytic LLM FLOPs only, vision/connector FLOPs left at 0."""
    if text_tokens < 0:
        raise EfficiencyError(f"text_tokens must be >= 0, got {text_tokens}")
    for v in variants:
        if v not in VARIANTS:
            raise EfficiencyError(f"unknown variant {v!r}; expected one of {VARIANTS}")
    if config.trajtok_config is None and any(v not in (PATCH_FULL, PATCH_POOLED) for v in variants):
        raise EfficiencyError(
            f"a config with connector={config.connector!r} and no trajtok_config can only give patch variants; "
            "use a TrajTok preset (its patch rows are the baseline of the same size)"
        )
    grid = feature_grid(config)
    counter = counter if counter is not None else (MetaFlopCounter(config) if count else None)
    rows = []
    for t in frames:
        _check_frames(t)
        for v in variants:
            n = visual_tokens(config, v, t, live_trajectories=live_trajectories,
                              patch_row_newline=patch_row_newline, grid=grid)
            seq = n + text_tokens
            analytic = llm_prefill_flops(config.text_config, seq)
            prefill = vision = conn = 0
            if counter is not None:
                prefill = counter.llm_prefill(seq)
                vision = counter.vision(t)
                if v in (PATCH_FULL, PATCH_POOLED):
                    conn = counter.patch_connector(t, 1 if v == PATCH_FULL else config.patch_pool_stride)
                else:
                    conn = counter.trajtok_connector(t, n, linked=v != TRAJ_PER_CHUNK)
            else:
                prefill = analytic
            label = variant_label(config, v, live_trajectories=live_trajectories,
                                  patch_row_newline=patch_row_newline, grid=grid)
            rows.append(EfficiencyRow(t, v, label, n, text_tokens, prefill, analytic, vision, conn))
    return rows


def format_flops(x: float) -> str:
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def format_markdown(rows: Sequence[EfficiencyRow], *, reference: str = PATCH_POOLED) -> str:
    """Markdown table; ratios are reference-variant / this-variant at the same frame count (higher = cheaper)."""
    ref = {r.frames: r for r in rows if r.variant == reference}
    has_total = any(r.vision_flops for r in rows)
    head = ["frames", "variant", "visual tokens", "LLM prefill FLOPs", "tokens: ref ÷ this", "prefill: ref ÷ this"]
    if has_total:
        head += ["vision+connector+LLM FLOPs", "total: ref ÷ this"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---:"] * len(head)) + "|"]
    for r in rows:
        b = ref.get(r.frames)
        tok = f"{b.visual_tokens / r.visual_tokens:,.1f}x" if b and r.visual_tokens else "-"
        pre = f"{b.prefill_flops / r.prefill_flops:,.1f}x" if b else "-"
        cells = [str(r.frames), r.label, f"{r.visual_tokens:,}", format_flops(r.prefill_flops), tok, pre]
        if has_total:
            tot = f"{b.total_flops / r.total_flops:,.1f}x" if b else "-"
            cells += [format_flops(r.total_flops), tot]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def analytic_agreement(rows: Sequence[EfficiencyRow]) -> float:
    """Largest relative difference between counted and closed-form prefill FLOPs over the rows."""
    return max(abs(r.prefill_flops - r.prefill_flops_analytic) / r.prefill_flops for r in rows)


__all__ = [
    "PATCH_FULL",
    "PATCH_POOLED",
    "TRAJ_BUDGET",
    "TRAJ_FIXED_K",
    "TRAJ_PER_CHUNK",
    "VARIANTS",
    "EfficiencyError",
    "EfficiencyRow",
    "LLMDims",
    "MetaFlopCounter",
    "analytic_agreement",
    "count_flops",
    "efficiency_table",
    "feature_grid",
    "format_flops",
    "format_markdown",
    "llm_prefill_flops",
    "patch_tokens_per_frame",
    "variant_label",
    "visual_tokens",
]
