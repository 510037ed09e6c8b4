"""Efficiency accounting at real scale: visual tokens and FLOPs of a preset, TrajVLM vs the patch baseline.

    OMP_NUM_THREADS=1 trajvlm bench efficiency --preset so400m-llama3-8b --frames 16 64 256 1024 \
        --out eval/results/efficiency.md

Counts only (meta device, no weights): see ``trajvlm.eval.efficiency`` for the formulas and what is counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from ...model.patch_connector import pooled_grid
from ...model.presets import PRESETS
from ..efficiency import (
    analytic_agreement,
    efficiency_table,
    feature_grid,
    format_markdown,
    patch_tokens_per_frame,
)
from .args import build_parser
from .common import machine_info, record_header, write_text


def main(argv: list[str] | None = None, prog: str = "trajvlm bench efficiency") -> int:
    parser = build_parser("efficiency", prog, __doc__)
    return run_cli(parser.parse_args(argv), parser)


def run_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = PRESETS[args.preset]
    cfg = spec.config
    if cfg.trajtok_config is None:
        parser.error(f"--preset {args.preset} has no TrajTok connector; use its TrajTok sibling (the table includes the "
                "patch baseline of the same size)")
    t0 = time.perf_counter()
    rows = efficiency_table(cfg, args.frames, text_tokens=args.text_tokens, live_trajectories=args.live_trajectories,
                            patch_row_newline=spec.patch_row_newline, count=not args.analytic)
    wall = time.perf_counter() - t0
    tab = format_markdown(rows)
    agree = analytic_agreement(rows)
    print(tab)
    how = "closed form" if args.analytic else f"FlopCounterMode on the meta device; closed form agrees to {agree:.1e}"
    print(f"\nLLM prefill FLOPs: {how}. ({wall:.0f} s)", file=sys.stderr)
    if args.out:
        tt, grid, stride = cfg.trajtok_config, feature_grid(cfg), cfg.patch_pool_stride
        ph, pw = pooled_grid(grid[0], grid[1], stride)
        pooled = patch_tokens_per_frame(grid, stride, spec.patch_row_newline)
        full = patch_tokens_per_frame(grid, 1, spec.patch_row_newline)
        text = cfg.text_config
        md = [
            *record_header(f"# Efficiency accounting: preset `{spec.name}`", parser, args, machine_info(),
                           command_label="Command:", end_loadavg=False,
                           machine_label="Machine (the numbers below are counts, not timings; they do not depend on it):"),
            "",
            (f"Preset `{spec.name}`: {spec.description} (`trajvlm/model/presets.py`). Vision: "
            f"{cfg.vision_config.model_type}, {cfg.vision_config.hidden_size}-wide, {cfg.image_size} px frames "
            f"-> {grid[0]}x{grid[1]} grid. LLM: {text.num_hidden_layers} layers, d={text.hidden_size}, "
            f"d_ff={text.intermediate_size}, {text.num_attention_heads} heads / {text.num_key_value_heads} KV heads, "
            f"vocab {text.vocab_size:,}. TrajTok: K={tt.num_queries} queries per {tt.frames_per_chunk}-frame chunk, "
            f"q={tt.tokens_per_trajectory}, token budget {cfg.token_budget}, track memory {tt.effective_track_memory}."),
            "",
            "Assumptions:",
            "",
            (f"- Every sequence also holds {args.text_tokens} text tokens (system prompt + question); prefill computes "
            "logits for the last position only."),
            "- **TrajVLM budget**: min(live trajectories, budget/q) x q tokens. "
            + ("The real-scale table assumes the worst case, every budget slot live (a long, busy video); a simple "
               "scene uses fewer (the measured tiny-model counts are in tokens_vs_frames.md)."
               if args.live_trajectories is None else f"{args.live_trajectories} live trajectories assumed."),
            (f"- **TrajVLM fixed-K**: K x q = {tt.num_queries * tt.tokens_per_trajectory} tokens whatever the length "
            "(slots are linked across chunks into global trajectories; the K largest are kept)."),
            (f"- **TrajTok fixed-K per chunk, unlinked**: K x q tokens for EVERY {tt.frames_per_chunk}-frame chunk "
            "(the per-chunk accounting without cross-chunk linking): it grows linearly with the video, shown for "
            "comparison."),
            f"- **Patch baseline**: {grid[0]}x{grid[1]} features per frame, {stride}x{stride}-pooled to {ph}x{pw}"
            + (f" plus one newline token per row (LLaVA-Video) = {pooled}/frame; full = {grid[0]}x({grid[1]}+1) = "
               f"{full}/frame." if spec.patch_row_newline else f" = {pooled}/frame; full = {full}/frame.")
            + " Ratios are `patch pooled ÷ this` at the same frame count (higher = cheaper than the baseline).",
            ("- FLOPs = 2 x multiply-adds of matmuls as FlopCounterMode counts them (attention over the full LxL "
            "square for every variant; norms, softmax, element-wise ops not counted). vision+connector+LLM adds "
            "the vision tower (all frames, identical for every variant), the connector (TrajTok segmenter over "
            "every chunk + trajectory encoder over the remembered tracks + projector; patch: projector) and the "
            "prefill."),
            "",
            tab,
            "",
            f"LLM prefill FLOPs: {how}. Wall time {wall:.0f} s.",
            "",
        ]
        write_text(args.out, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
