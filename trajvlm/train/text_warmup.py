"""Text warm-up of the default model's small Llama: it learns to read ShapesQA prompts before it sees video.

    python -m trajvlm.train.text_warmup --data DIR --llm PARTS/llm [--steps 2000 --lr 3e-4 --batch 32]

A real TrajVLM starts from a pretrained Llama that already reads a multiple-choice prompt and answers with an
option's letter. The default model's 4x256 Llama starts from random weights, and trained only on video QA it
never learned the letter (eval/results/default_model.md: a constant "C", 25 %), while on text alone the same
LLM learns the option-letter binding at lr 3e-4 (and not at 1e-3). This step is its language pretraining, in
the exact chat format of stage 2 so what it learns carries over:

- option lookup: "Which option says "<text>"?" over four option texts of the split -> " <text> (<letter>)":
  the letter binding alone (short prompts, the default);
- scene QA (``--scene-qa``): every QA record of the split with the video replaced by its caption ("Scene:
  <caption>") and the same answer format: reading an answer out of a description of the objects, then its
  letter. Its prompts are ~3x longer; measured on the default model's Llama (bs 16, lr 3e-4, mixed with
  lookups), 950 steps / 26 min left the whole-answer exact match at ~10 %, so the default model does not use it.
- word scenes (``--scene-words N``): "Objects: white circle right cyan star down briefly" (the scene's objects
  as colour-shape-direction words in order of appearance, the text stand-in for trajectory tokens) followed by
  every open question the scene answers, multi-turn, answered " <text>". The same LLM learns these fast
  (held-out exact answers 60 % after 12 min, 68 % after 20, ~70 % after 40), unlike the same facts from video tokens; see
  eval/results/default_model.md (session 4) for how a connector is then trained to write such a scene.
- object vectors (``--object-qa N`` over the split's questions, ``--fresh-scenes N`` over new scenes from the
  ShapesQA sampler; what the default model uses): the multiple-choice questions with the <video> placeholder kept
  and each object given as ONE input vector there, the sum of its word embeddings (``object_words``: colour,
  shape, direction, "briefly" for the needle, plus a "background" vector; ``--spurious p`` adds segmenter-like
  fragments), i.e. exactly where and in the form TrajTok's one token per trajectory arrives. ``--answer text``
  answers " cyan" (the letter binding is not learned by this LLM in our budget). Measured (session 5: 1,200 steps,
  37 min): held-out exact answers 97.5 % attribute, 100 % counting, 93 % direction, 100 % needle, 86 % temporal
  order; stage 1 then trains only the connector to write such vectors from video.
- the look-alike lookup first (``--probe-steps N``, ``--probe-records N``): a fresh Llama trained on the object
  QA learns to find an object by its colour and stops there; two objects of one colour are then told apart by
  nothing (session 16-18: look-alike direction ~60 % from ideal vectors). ``--probe-steps`` trains it first on
  ``trajvlm.train.lookup_probe``'s questions alone (one of two same-coloured objects named by colour + shape;
  batch 32, ``--probe-lr``), and ``--probe-records`` keeps that many of them in the warm-up's mix (half
  look-alike). Session 19: 300 probe steps, then the build's phase 1 and 900 more steps at lr 5e-4, no probe
  records (they slowed the rest down): look-alike direction 95.3 % from ideal vectors, the other categories
  99.5-100 % but temporal order; see eval/results/default_model.md.

The LLM folder is overwritten in place (weights + ``text_warmup.json`` with the loss / accuracy record), and the
records are also written to ``DATA/train_text.json`` so stage 2 can keep mixing them in.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import torch

from ..data.collate import VideoTextCollator
from ..eval.mcq import option_text as line_text
from ..model.processing_trajvlm import IGNORE_INDEX
from ..model.splice import splice_video_embeds
from .default_model import (
    ANSWER_FORMATS,
    answer_text,
    generator_config,
    load_scenes,
    mc_answer,
    open_qa_turns,
    option_text,
    question_record,
)
from .lookalike_scenes import probe_records

TEXT_FILE = "train_text.json"  # written into the ShapesQA folder
ANSWER_HINT = "Answer with the option's letter from the given choices directly."


def _options_block(options: list[str]) -> str:
    return "\n".join(options)


def scene_qa_records(data_dir: str | os.PathLike, split: str = "train") -> list[dict]:
    """The split's QA records with the video replaced by its caption (text-only, answers "text (letter)")."""
    qa = json.loads(Path(data_dir, f"{split}_qa.json").read_text())
    captions = {r["video"]: r["conversations"][-1]["value"]
                for r in json.loads(Path(data_dir, f"{split}_captions.json").read_text())}
    out = []
    for r in qa:
        if r["video"] not in captions:
            raise ValueError(f"{split}_qa.json record {r['id']}: its video {r['video']} has no caption")
        prompt = f"Scene: {captions[r['video']]}\n{r['question']}\n{_options_block(r['options'])}\n{ANSWER_HINT}"
        answer = answer_text(option_text(r), r["answer"])
        out.append({"id": f"{r['id']}_text", "category": r.get("category"),
                    "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]})
    return out


def scene_words(scene) -> str:
    """A scene as words, objects in order of first appearance: "white circle right cyan star down briefly".

    Three words per object (colour, shape, direction; "briefly" after the needle): the text stand-in for a
    video's trajectory tokens, which TrajTok also orders by first appearance.
    """
    needle = scene.objects[scene.needle] if scene.needle is not None else None
    objs = sorted(scene.objects, key=lambda o: o.t_start)
    return " ".join(f"{o.colour} {o.shape} {o.direction}" + (" briefly" if o is needle else "") for o in objs)


def scene_words_records(data_dir: str | os.PathLike, split: str = "train", *, copies: int = 1,
                        seed: int = 0) -> list[dict]:
    """Dense open QA over word scenes: per video (``copies`` times, questions in a new order each time) one
    multi-turn record "Objects: <scene_words>\n<question>" -> " <answer>", then the video's other open questions
    (trajvlm.data.synthetic.questions.open_questions).

    Measured on the default model's 4x256 Llama from scratch (batch 16, lr 5e-4, 5 copies): held-out exact answers
    60 % after 200 steps (12 min), 68 % after 297 (20 min), ~70 % after ~580 (40 min) -- reading facts out of a short text scene is learned
    far faster than out of video tokens (eval/results/default_model.md, session 4).
    """
    rng = random.Random(seed)
    return [{"id": f"{d['id']}_words{c}", "category": "scene_words",
             "conversations": open_qa_turns(scene, rng, f"Objects: {scene_words(scene)}\n")}
            for d, scene in load_scenes(data_dir, split, copies=copies) for c in range(copies)]


BACKGROUND = "background"  # the word of the background pseudo-object (TrajTok keeps the background as a trajectory)


def object_words(scene, rng: random.Random, *, background: bool = True, spurious: float = 0.0) -> list[list[str]]:
    """A scene as one word list per object, in order of first appearance: [colour, shape, direction] (+ "briefly"
    for the needle) -- the text stand-in for one trajectory token each.

    Objects that appear in the same frame are in random order (TrajTok orders ties by trajectory id, which says
    nothing about the scene). With ``background`` a ["background"] pseudo-object is put at a random place among
    the objects present from the first frame: the segmenter keeps the background as a trajectory of its own
    (it is never counted or asked about). With probability ``spurious`` one or two more ["background"] entries go
    anywhere in the list: a real segmenter also leaves small fragments as extra trajectories, and an LLM that
    learned to skip any number of them lets the connector write a fragment as "background".
    """
    if not 0.0 <= spurious <= 1.0:
        raise ValueError(f"spurious must be a probability in [0, 1], got {spurious!r}")
    needle = scene.objects[scene.needle] if scene.needle is not None else None
    objs = [[o.t_start, rng.random(), [o.colour, o.shape, o.direction] + (["briefly"] if o is needle else [])]
            for o in scene.objects]
    if background:
        objs.append([min(o.t_start for o in scene.objects), rng.random(), [BACKGROUND]])
    if spurious and rng.random() < spurious:
        last = max(o.t_start for o in scene.objects)
        objs += [[rng.randint(0, last), rng.random(), [BACKGROUND]] for _ in range(rng.randint(1, 2))]
    return [words for _, _, words in sorted(objs, key=lambda x: (x[0], x[1]))]


def object_qa_records(data_dir: str | os.PathLike, split: str = "train", *, copies: int = 1, seed: int = 0,
                      background: bool = True, answer: str = "text_letter") -> list[dict]:
    """The split's multiple-choice QA records (answered in format ``answer``, ``mc_answer``), each with its
    scene's ``objects`` (``object_words``) in place of the video: the <video> placeholder stays in the prompt and
    ``TextBatcher`` splices one vector per object there -- the sum of the object's word embeddings -- where the
    connector will later put one token per trajectory. ``copies`` times (ties and the background re-drawn)."""
    rng = random.Random(seed)
    scenes = {d["video"]: scene for d, scene in load_scenes(data_dir, split, copies=copies)}
    qa = json.loads(Path(data_dir, f"{split}_qa.json").read_text())
    out = []
    for c in range(copies):
        for r in qa:
            if r["video"] not in scenes:
                raise ValueError(f"{split}_qa.json record {r['id']}: its video {r['video']} is not in {split}_scenes.json")
            rec = mc_answer(r, answer)
            out.append({"id": f"{r['id']}_objects{c}", "category": r.get("category"),
                        "conversations": rec["conversations"],
                        "objects": object_words(scenes[r["video"]], rng, background=background)})
    return out


_FRESH_STREAM = 7  # numpy seed stream of the fresh warm-up scenes (the dataset's streams are 0-2)


def fresh_object_qa_records(data_dir: str | os.PathLike, n_scenes: int, *, seed: int = 0, background: bool = True,
                            spurious: float = 0.0, answer: str = "text_letter") -> list[dict]:
    """Like ``object_qa_records`` over ``n_scenes`` new scenes drawn from the ShapesQA scene sampler with the
    dataset's generator settings (DATA/meta.json), nothing rendered: more language-side data for the warm-up
    than the split's few thousand questions, and none of them a test scene's (a separate seed stream).
    ``spurious``: see ``object_words``.

    The object vectors of the video stages come from the videos; these scenes exist only as words.
    """
    import numpy as np

    from ..data.synthetic.questions import make_questions
    from ..data.synthetic.sampler import sample_scene

    if isinstance(n_scenes, bool) or not isinstance(n_scenes, int) or n_scenes < 0:
        raise ValueError(f"n_scenes must be an int >= 0, got {n_scenes!r}")
    cfg = generator_config(data_dir)
    rng_py = random.Random(seed)
    out = []
    for i in range(n_scenes):
        rng = np.random.default_rng([cfg.seed, _FRESH_STREAM, seed, i])
        scene = sample_scene(rng, cfg.scene_config(), needle=bool(rng.random() < cfg.needle_fraction))
        objects = object_words(scene, rng_py, background=background, spurious=spurious)
        for k, q in enumerate(make_questions(scene, rng, count_range=(cfg.min_objects, cfg.max_objects))):
            out.append({"id": f"fresh{seed}_{i:06d}_q{k}", "category": q.category,
                        "conversations": question_record(q, answer)["conversations"], "objects": objects})
    return out


def option_lookup_records(data_dir: str | os.PathLike, split: str = "train", *, n: int = 4000,
                          seed: int = 0) -> list[dict]:
    """``n`` option lookups over four distinct option texts of the split, answered " X (letter)"; every other
    one names X ('Which option says "X"?'), the rest leave the choice open ("Choose any option.").

    The open half is what carries over to video questions: there the answer's text comes from the video, not
    from the prompt, so the letter must be found from the text the model itself just wrote. Measured: with only
    the named form, the LLM found the letter of its own answer's text in 40 % of stage-1 video questions
    (88 % on held-out text lookups) -- it had learned to look the quoted word up, not its own answer.
    """
    qa = json.loads(Path(data_dir, f"{split}_qa.json").read_text())
    words = sorted({line_text(o) for r in qa for o in r["options"]})
    if len(words) < 4:
        raise ValueError(f"{split}_qa.json has only {len(words)} distinct option texts; need >= 4")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        texts = rng.sample(words, 4)
        k = rng.randrange(4)
        options = [f"{L}. {t}" for L, t in zip("ABCD", texts)]
        question = f'Which option says "{texts[k]}"?' if i % 2 == 0 else "Choose any option."
        prompt = f"{question}\n{_options_block(options)}\n{ANSWER_HINT}"
        out.append({"id": f"lookup_{i:05d}", "category": "lookup" if i % 2 == 0 else "open_lookup",
                    "conversations": [{"from": "human", "value": prompt},
                                      {"from": "gpt", "value": answer_text(texts[k], "ABCD"[k])}]})
    return out


def text_warmup_records(data_dir: str | os.PathLike, split: str = "train", *, lookups: int = 20000,
                        scene_qa: bool = False, scene_words: int = 0, object_qa: int = 0, fresh_scenes: int = 0,
                        spurious: float = 0.0, answer: str = "text_letter", probe: int = 0,
                        seed: int = 0) -> list[dict]:
    """Option lookups (+ the split's scene QA when ``scene_qa``, + ``scene_words`` copies of the word-scene
    records, + ``object_qa`` copies of the object-vector QA records and the QA of ``fresh_scenes`` new scenes,
    answered in format ``answer``, + ``probe`` look-alike lookup questions, half of them look-alike), shuffled."""
    records = option_lookup_records(data_dir, split, n=lookups, seed=seed) if lookups else []
    if scene_qa:
        records += scene_qa_records(data_dir, split)
    if scene_words:
        records += scene_words_records(data_dir, split, copies=scene_words, seed=seed)
    if object_qa:
        records += object_qa_records(data_dir, split, copies=object_qa, seed=seed, answer=answer)
    if fresh_scenes:
        records += fresh_object_qa_records(data_dir, fresh_scenes, seed=seed, spurious=spurious, answer=answer)
    if probe:
        records += probe_records(probe, random.Random(f"{seed}-probe"), 0.5)
    random.Random(seed).shuffle(records)
    return records


class TextBatcher:
    """Records -> padded batches through the processor's chat template (the same tokens stage 2 sees: labels only
    on the assistant reply), right-padded by the training collator (trajvlm.data.collate.VideoTextCollator).

    Text records give (input_ids, attention_mask, labels). Records with ``objects`` (``object_qa_records``) give
    (inputs_embeds, attention_mask, position_ids, labels): their <video> placeholder is replaced by one vector per
    object, the sum of the object's word embeddings under ``embed`` (the LLM's input embeddings, so the
    warm-up trains them through these vectors too), spliced like the model splices trajectory tokens
    (trajvlm.model.splice).
    """

    def __init__(self, processor, records: list[dict], embed: torch.nn.Module | None = None):
        self.embed = embed
        self.video_token_id = processor.video_token_id
        self.items = []
        for r in records:
            tok = processor.tokenize_conversation(r["conversations"])
            ids = torch.tensor(tok.input_ids)  # (L,)
            item = {"input_ids": ids, "labels": torch.tensor(tok.labels), "attention_mask": torch.ones_like(ids)}
            n_video = int((ids == self.video_token_id).sum())
            if "objects" in r:
                if n_video != 1 or not r["objects"]:
                    raise ValueError(f"record {r.get('id')}: an objects record needs exactly one video placeholder "
                                     f"and at least one object (has {n_video} placeholder(s), "
                                     f"{len(r['objects'])} object(s))")
                if embed is None:
                    raise ValueError(f"record {r.get('id')} has objects: TextBatcher needs the LLM's input embeddings")
                item["objects"] = [torch.tensor(processor.tokenizer(" " + " ".join(words),
                                                                    add_special_tokens=False).input_ids)
                                   for words in r["objects"]]  # per object (n_words,)
            elif n_video:
                raise ValueError(f"record {r.get('id')}: a video placeholder but no objects in a text record")
            self.items.append(item)
        self.categories = [r.get("category") for r in records]
        self.collate = VideoTextCollator(pad_token_id=processor.tokenizer.pad_token_id, padding_side="right")

    def __len__(self) -> int:
        return len(self.items)

    def object_vectors(self, objects: list[torch.Tensor]) -> torch.Tensor:
        """per object word ids (n_words,) -> (N,d): each object's summed word embeddings."""
        ids = torch.cat(objects)  # (W,)
        owner = torch.repeat_interleave(torch.arange(len(objects)), torch.tensor([len(o) for o in objects]))  # (W,)
        words = self.embed(ids)  # (W,d)
        return words.new_zeros(len(objects), words.shape[-1]).index_add(0, owner, words)  # (N,d)

    def batch(self, index: list[int]) -> dict[str, torch.Tensor]:
        items = [self.items[i] for i in index]
        b = self.collate([{k: it[k] for k in ("input_ids", "labels", "attention_mask")} for it in items])
        if not any("objects" in it for it in items):
            return {k: b[k] for k in ("input_ids", "attention_mask", "labels")}  # (B,L) each
        vectors = [self.object_vectors(it["objects"]) for it in items if "objects" in it]
        s = splice_video_embeds(self.embed(b["input_ids"]), b["input_ids"], b["attention_mask"], vectors,
                                self.video_token_id, b["labels"], padding_side="right")
        return {"inputs_embeds": s.inputs_embeds, "attention_mask": s.attention_mask,  # (B,L',d), (B,L')
                "position_ids": s.position_ids, "labels": s.labels}  # (B,L') each


def answer_exact_match(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits (B,L,V), labels (B,L) -> (B,) bool: every supervised token is the argmax (teacher-forced)."""
    pred = logits[:, :-1].argmax(-1)  # (B,L-1) predicts position t+1
    gold = labels[:, 1:]
    ok = (pred == gold) | (gold == IGNORE_INDEX)
    return ok.all(-1)


def has_letter(labels: torch.Tensor, letter_ids: torch.Tensor) -> torch.Tensor:
    """labels (B,L), letter_ids (4,) -> (B,) bool: the answer supervises an option letter (open QA does not)."""
    return torch.isin(labels, letter_ids).any(-1)


def letter_correct(logits: torch.Tensor, labels: torch.Tensor, letter_ids: torch.Tensor) -> torch.Tensor:
    """logits (B,L,V), labels (B,L), letter_ids (4,) -> (B,) bool: the last supervised option letter of each
    answer is the argmax (teacher-forced: given the answer's text, is its letter right?)."""
    gold = labels[:, 1:]  # (B,L-1)
    is_letter = torch.isin(gold, letter_ids)
    pos = torch.where(is_letter, torch.arange(gold.shape[1]).expand_as(gold), -1).max(-1).values  # (B,)
    if (pos < 0).any():
        raise ValueError("letter_correct: an answer without an option letter")
    rows = torch.arange(gold.shape[0])
    return logits[rows, pos].argmax(-1) == gold[rows, pos]


@torch.no_grad()
def evaluate(lm, batcher: TextBatcher, letter_ids: torch.Tensor, batch_size: int = 64) -> dict:
    """Teacher-forced, per category: the letter given the answer's text ("letter") and the whole answer
    ("exact"; for open lookups the text is the sample's free choice, so only the letter is meaningful)."""
    lm.eval()
    hits: dict[str, list[tuple[bool, bool]]] = {}
    for s in range(0, len(batcher), batch_size):
        index = list(range(s, min(s + batch_size, len(batcher))))
        b = batcher.batch(index)
        logits = lm(**{k: v for k, v in b.items() if k != "labels"}).logits
        exact = answer_exact_match(logits, b["labels"]).tolist()
        rows = has_letter(b["labels"], letter_ids)  # (B,)
        letter = [None] * len(index)
        if rows.any():
            ok = letter_correct(logits[rows], b["labels"][rows], letter_ids).tolist()
            for j, r in enumerate(rows.nonzero().flatten().tolist()):
                letter[r] = ok[j]
        for i, e, l in zip(index, exact, letter):
            hits.setdefault(batcher.categories[i] or "all", []).append((l, e))
    lm.train()

    def rate(flags: list) -> float | None:
        flags = [f for f in flags if f is not None]
        return sum(flags) / len(flags) if flags else None

    return {"letter": rate([l for v in hits.values() for l, _ in v]), "n": sum(len(v) for v in hits.values()),
            "per_category": {c: {"letter": rate([l for l, _ in v]), "exact": rate([e for _, e in v])}
                             for c, v in sorted(hits.items())}}


def warm_up(lm, train: TextBatcher, val: TextBatcher | None, letter_ids: torch.Tensor, *, steps: int, lr: float,
            batch_size: int, warmup: int = 50, max_minutes: float | None = None, log_every: int = 100,
            seed: int = 0, bf16: bool = False) -> dict:
    """AdamW + linear warm-up + cosine to 10 % over ``steps``; returns the loss / accuracy record.

    ``bf16``: the forward pass runs under CPU bfloat16 autocast (matrix products in bfloat16; the weights, their
    gradients and AdamW's state stay float32). About 2x faster per step on a CPU with AVX512-BF16 (measured in
    eval/results/default_model.md, session 21)."""
    if len(train) == 0:
        raise ValueError("warm_up: no training records")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    lm.train()
    log, order, t0, done = [], [], time.time(), 0
    for step in range(1, steps + 1):
        while len(order) < batch_size:  # epochs in a new order each; a set smaller than a batch repeats
            order += rng.sample(range(len(train)), len(train))
        b = train.batch([order.pop() for _ in range(batch_size)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = lm(**b)
        out.loss.backward()  # float32 under autocast too: the loss is computed from upcast logits
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        done = step
        if step % log_every == 0 or step == steps:
            rows = has_letter(b["labels"], letter_ids)
            row = {"step": step, "loss": round(out.loss.item(), 4), "minutes": round((time.time() - t0) / 60, 2)}
            if rows.any():
                acc = letter_correct(out.logits.detach()[rows], b["labels"][rows], letter_ids).float().mean().item()
                row["batch_letter_acc"] = round(acc, 3)
            log.append(row)
            print(json.dumps(row), flush=True)
        if max_minutes is not None and time.time() - t0 > max_minutes * 60:
            print(f"time budget of {max_minutes} min reached at step {step}", flush=True)
            break
    record = {"steps": done, "lr": lr, "batch_size": batch_size, "bf16": bf16,
              "train_seconds": round(time.time() - t0, 1), "log": log}
    if val is not None:
        record["val"] = evaluate(lm, val, letter_ids)
    return record


def main(argv: list[str] | None = None) -> int:
    from transformers import AutoTokenizer, LlamaForCausalLM

    from ..model.processing_trajvlm import TrajVLMProcessor
    from ..vision.processor import TrajVLMVideoProcessor

    p = argparse.ArgumentParser(prog="python -m trajvlm.train.text_warmup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="ShapesQA folder (train split for training, val for the record)")
    p.add_argument("--llm", required=True, help="LLM folder (weights + tokenizer); overwritten in place")
    p.add_argument("--chat-template", default="llama3")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lookups", type=int, default=20000, help="option-lookup prompts")
    p.add_argument("--scene-qa", action="store_true",
                   help="also train on the split's QA with the video replaced by its caption (long prompts: ~3x "
                        "the compute per sample; not used by the default model, see the module docstring)")
    p.add_argument("--scene-words", type=int, default=0, metavar="N",
                   help="also train on N copies of dense open QA over word scenes ('Objects: red circle left ...'; "
                        "see scene_words_records)")
    p.add_argument("--object-qa", type=int, default=0, metavar="N",
                   help="also train on N copies of the split's multiple-choice QA over object vectors (one vector "
                        "per object = its summed word embeddings, where the video's trajectory tokens go; see "
                        "object_qa_records)")
    p.add_argument("--fresh-scenes", type=int, default=0, metavar="N",
                   help="also train on the QA of N new scenes from the ShapesQA sampler, over object vectors "
                        "(fresh_object_qa_records; ~3.5 questions per scene)")
    p.add_argument("--spurious", type=float, default=0.0,
                   help="--fresh-scenes: probability of 1-2 extra 'background' vectors anywhere in a scene (object_words)")
    p.add_argument("--answer", choices=ANSWER_FORMATS, default="text_letter",
                   help="answer format of the --object-qa records: ' red' (text) or ' red (B)' (text_letter)")
    p.add_argument("--probe-steps", type=int, default=0, metavar="N",
                   help="first train N steps on the lookup probe's questions alone (trajvlm.train.lookup_probe: "
                        "one of two same-coloured objects named by colour + shape; batch 32, fresh every batch)")
    p.add_argument("--probe-lr", type=float, default=5e-4, help="learning rate of --probe-steps")
    p.add_argument("--probe-records", type=int, default=0, metavar="N",
                   help="mix N of the lookup probe's questions (half look-alike) into the warm-up records")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--val", type=int, default=400, help="val records for the final held-out accuracy (0 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action="store_true",
                   help="train under CPU bfloat16 autocast (weights and optimizer state stay float32; ~2x faster "
                        "with AVX512-BF16); the probe steps and the val record run in float32")
    args = p.parse_args(argv)
    for name in ("probe_steps", "probe_records"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.probe_lr <= 0:
        p.error(f"--probe-lr must be > 0, got {args.probe_lr}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tok = AutoTokenizer.from_pretrained(args.llm)
    lm = LlamaForCausalLM.from_pretrained(args.llm)
    # the processor only renders text here; its video processor is never used
    proc = TrajVLMProcessor(tok, TrajVLMVideoProcessor(size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3),
                            args.chat_template)
    records = text_warmup_records(args.data, lookups=args.lookups, scene_qa=args.scene_qa,
                                  scene_words=args.scene_words, object_qa=args.object_qa,
                                  fresh_scenes=args.fresh_scenes, spurious=args.spurious, answer=args.answer,
                                  probe=args.probe_records, seed=args.seed)
    if not records:
        p.error("nothing to train on: --lookups 0 without --scene-qa, --scene-words, --object-qa, --fresh-scenes "
                "or --probe-records")
    Path(args.data, TEXT_FILE).write_text(json.dumps(records))
    val = None
    if args.val:
        val_records = option_lookup_records(args.data, "val", n=args.val, seed=args.seed + 1)
        if args.scene_qa:
            val_records += scene_qa_records(args.data, "val")[: args.val]
        if args.scene_words:  # first question of each held-out word scene
            val_records += [{**r, "conversations": r["conversations"][:2]}
                            for r in scene_words_records(args.data, "val", seed=args.seed + 1)[: args.val]]
        if args.object_qa or args.fresh_scenes:
            val_records += object_qa_records(args.data, "val", seed=args.seed + 1, answer=args.answer)[: args.val]
        val = TextBatcher(proc, val_records, embed=lm.get_input_embeddings())
    print(f"{len(records)} text records -> {Path(args.data, TEXT_FILE)}; warming up {args.llm}", flush=True)
    probe = None
    if args.probe_steps:
        # lookup_probe builds on this module's TextBatcher, so it is imported here, not at the top
        from .lookup_probe import run_probe

        print(f"lookup probe first: {args.probe_steps} steps, lr {args.probe_lr}", flush=True)
        probe = run_probe(lm, proc, steps=args.probe_steps, lr=args.probe_lr, arms=("model",), seed=args.seed)
    letter_ids = torch.tensor(tok.convert_tokens_to_ids(list("ABCD")))
    train = TextBatcher(proc, records, embed=lm.get_input_embeddings())
    record = warm_up(lm, train, val, letter_ids, steps=args.steps, lr=args.lr, batch_size=args.batch,
                     max_minutes=args.max_minutes, log_every=args.log_every, seed=args.seed, bf16=args.bf16)
    if probe is not None:
        record["probe"] = probe
    lm.save_pretrained(args.llm)
    Path(args.llm, "text_warmup.json").write_text(json.dumps(record, indent=1))
    if val is not None:
        print("held-out (val), teacher-forced:", json.dumps(record["val"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
