"""Can an LLM find an object by its colour AND its shape? A probe on ideal object vectors.

Each sample is a scene of 2-5 objects (distinct colour + shape pairs of the ShapesQA vocabulary, each moving in
one of the four directions), given to the LLM as one vector per object -- the sum of the input embeddings of its
colour, shape and direction words, the text warm-up's stand-in for a trajectory token
(``text_warmup.TextBatcher``) -- followed by the ShapesQA direction question about one of them with the four
directions as options, answered with the option's text (the shipped model's answer format). In a share of the
samples (``lookalike_fraction``) two objects have the same colour and the question is about one of them: only
its shape tells it from the other ("look-alike"; the questions: ``lookalike_scenes``). Scenes are drawn fresh
for every batch, so nothing can be learned by heart. ``text_warmup --probe-steps`` runs this training first on a
new Llama.

Up to three arms are trained side by side on the same batches with the same optimizer settings: the given
model's own LLM ("model"), a freshly initialised LLM of the same configuration ("fresh") and one with the model's
input embeddings and output head but new decoder blocks ("fresh_blocks": a trained connector still writes into
its embedding space). Every ``eval_every`` steps each
is scored teacher-forced (every answer token the argmax) on one fixed held-out set, look-alike and other
questions apart. The question this answers: is a failure to pick one of two same-coloured objects a limit of
the LLM's size and shape, or of what the trained LLM has already learned?

    python -m trajvlm.train.lookup_probe --model trajvlm/assets/default_model --steps 400 --out probe.md
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

import torch

from ..demo.settings import default_model_path
from .lookalike_scenes import KINDS, probe_records
from .text_warmup import TextBatcher, answer_exact_match, fresh_object_qa_records

ARMS = ("model", "fresh", "fresh_blocks")


@torch.no_grad()
def probe_accuracy(lm, processor, records: list[dict], batch_size: int = 64) -> dict[str, float]:
    """Teacher-forced exact-answer accuracy of ``lm`` per record category (look-alike / other)."""
    was_training = lm.training
    lm.eval()
    batcher = TextBatcher(processor, records, embed=lm.get_input_embeddings())
    hits: dict[str, list[bool]] = {}
    for s in range(0, len(batcher), batch_size):
        idx = list(range(s, min(s + batch_size, len(batcher))))
        b = batcher.batch(idx)
        logits = lm(**{k: v for k, v in b.items() if k != "labels"}).logits  # (B,L,V)
        for i, ok in zip(idx, answer_exact_match(logits, b["labels"]).tolist()):
            hits.setdefault(batcher.categories[i], []).append(ok)
    lm.train(was_training)
    return {k: sum(v) / len(v) for k, v in sorted(hits.items())}


def fresh_like(lm, seed: int, *, keep_embeddings: bool = False):
    """A randomly initialised model of ``lm``'s class and configuration; ``keep_embeddings``: with copies of
    ``lm``'s input embeddings and output head (only the decoder blocks and the final norm are new), so vectors
    written for ``lm``'s embedding space -- a trained connector's -- still mean the same words."""
    torch.manual_seed(seed)
    new = type(lm)(copy.deepcopy(lm.config))
    if keep_embeddings:
        with torch.no_grad():
            new.get_input_embeddings().weight.copy_(lm.get_input_embeddings().weight)
            new.get_output_embeddings().weight.copy_(lm.get_output_embeddings().weight)
    return new


def run_probe(lm, processor, *, steps: int, lr: float, batch_size: int = 32, eval_every: int = 100,
              eval_samples: int = 512, lookalike_fraction: float = 0.5, seed: int = 0, arms=ARMS[:2],
              mix: list[dict] | None = None, mix_share: int = 0, log=print) -> dict:
    """Train the arms side by side (AdamW, 10-step linear warm-up, constant lr, clip 1.0) on the same batches;
    returns {"rows": [{"step", "arm", "lookalike", "other", "loss"}...], settings...}.

    ``mix``: other object-vector records (e.g. ``text_warmup.fresh_object_qa_records``, the warm-up's ShapesQA
    questions), ``mix_share`` of them in every batch (taken in a shuffled cycle), the probe's questions the rest:
    does learning the other questions at the same time keep the LLM from learning the look-alike lookup?"""
    if steps < 1 or eval_every < 1 or batch_size < 1 or eval_samples < 1:
        raise ValueError("steps, eval_every, batch_size and eval_samples must be >= 1")
    if not 0 <= mix_share < batch_size or (mix_share and not mix):
        raise ValueError(f"mix_share must be in [0, batch_size) and needs mix records, got {mix_share} "
                         f"with {len(mix or [])} records")
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise ValueError(f"arms must be a non-empty subset of {ARMS}, got {list(arms)}")
    models = {a: (lm if a == "model" else fresh_like(lm, seed, keep_embeddings=a == "fresh_blocks")) for a in arms}
    opts = {a: torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0) for a, m in models.items()}
    held_out = probe_records(eval_samples, random.Random(f"{seed}-eval"), lookalike_fraction)
    stream = random.Random(f"{seed}-train")
    mixed: list[dict] = []
    rows, t0 = [], time.time()

    def score(step: int, losses: dict[str, float]) -> None:
        for a, m in models.items():
            acc = probe_accuracy(m, processor, held_out)
            rows.append({"step": step, "arm": a, **acc, "loss": losses.get(a)})
            log(f"step {step:5d}  {a:5s}  look-alike {100 * acc.get('lookalike', float('nan')):5.1f} %  "
                f"other {100 * acc.get('other', float('nan')):5.1f} %  ({time.time() - t0:.0f} s)")

    score(0, {})
    for m in models.values():
        m.train()
    for step in range(1, steps + 1):
        records = probe_records(batch_size - mix_share, stream, lookalike_fraction, start=step * batch_size)
        for _ in range(mix_share):
            if not mixed:
                mixed = stream.sample(mix, len(mix))
            records.append(mixed.pop())
        losses = {}
        for a, m in models.items():
            for g in opts[a].param_groups:
                g["lr"] = lr * min(1.0, step / 10)
            b = TextBatcher(processor, records, embed=m.get_input_embeddings()).batch(list(range(len(records))))
            loss = m(**b).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opts[a].step()
            opts[a].zero_grad(set_to_none=True)
            losses[a] = round(loss.item(), 4)
        if step % eval_every == 0 or step == steps:
            score(step, losses)
    return {"steps": steps, "lr": lr, "batch_size": batch_size, "mix_share": mix_share, "eval_samples": eval_samples,
            "lookalike_fraction": lookalike_fraction, "seed": seed, "seconds": round(time.time() - t0, 1),
            "rows": rows}


def markdown(result: dict, command: str) -> str:
    """The probe's record: command, settings and the accuracy table (one row per evaluation step)."""
    arms = list(dict.fromkeys(r["arm"] for r in result["rows"]))
    head = "| step | " + " | ".join(f"{a}: look-alike | {a}: other" for a in arms) + " |"
    lines = [f"    {command}", "",
             (f"lr {result['lr']}, batch {result['batch_size']}"
              f"{f' ({m} of them --mix-data records)' if (m := result['mix_share']) else ''}, "
              f"{result['steps']} steps, "
              f"{result['eval_samples']} held-out questions ({100 * result['lookalike_fraction']:.0f} % look-alike), "
              f"{result['seconds']:.0f} s"), "", head, "| ---: |" + " ---: | ---: |" * len(arms)]
    by_step: dict[int, dict] = {}
    for r in result["rows"]:
        by_step.setdefault(r["step"], {})[r["arm"]] = r
    for step, per_arm in by_step.items():
        cells = [f"{100 * per_arm[a][k]:.1f} %" if a in per_arm else "--" for a in arms for k in KINDS]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from ..model import TrajVLMForConditionalGeneration
    from ..model.processing_trajvlm import TrajVLMProcessor

    p = argparse.ArgumentParser(prog="python -m trajvlm.train.lookup_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=default_model_path(),
                   help="a saved TrajVLM folder (default: the built-in default model, or $TRAJVLM_DEMO_MODEL)")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["model", "fresh"])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-samples", type=int, default=512)
    p.add_argument("--lookalike-fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mix-data", type=Path,
                   help="a ShapesQA folder: mix the text warm-up's questions on fresh scenes of its generator "
                        "(every category, one vector per object) into every batch")
    p.add_argument("--mix-share", type=int, default=16, help="records per batch from --mix-data")
    p.add_argument("--mix-scenes", type=int, default=6000, help="fresh scenes drawn for --mix-data")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--json", type=Path, help="raw rows as JSON")
    p.add_argument("--out", type=Path, help="markdown record (command, settings, table)")
    args = p.parse_args(argv)
    if not (args.model / "config.json").is_file():
        p.error(f"--model {args.model}: no config.json there (not a saved TrajVLM folder)")
    for name in ("steps", "batch_size", "eval_every", "eval_samples"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0.0 <= args.lookalike_fraction <= 1.0:
        p.error(f"--lookalike-fraction must be in [0, 1], got {args.lookalike_fraction}")
    if args.mix_data and not 0 <= args.mix_share < args.batch_size:
        p.error(f"--mix-share must be in [0, --batch-size), got {args.mix_share}")
    torch.set_num_threads(args.threads)
    model = TrajVLMForConditionalGeneration.from_pretrained(args.model)
    processor = TrajVLMProcessor.from_pretrained(args.model)
    mix = (fresh_object_qa_records(args.mix_data, args.mix_scenes, seed=args.seed, answer="text")
           if args.mix_data else None)
    result = run_probe(model.language_model, processor, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                       eval_every=args.eval_every, eval_samples=args.eval_samples,
                       lookalike_fraction=args.lookalike_fraction, seed=args.seed, arms=args.arms,
                       mix=mix, mix_share=args.mix_share if mix else 0)
    command = "python -m trajvlm.train.lookup_probe " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.json:
        args.json.write_text(json.dumps({"command": command, **result}, indent=1))
    if args.out:
        args.out.write_text(markdown(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
