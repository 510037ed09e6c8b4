"""`--model trajvlm` for lmms-eval: a simple-interface `lmms` subclass over `trajvlm.chat.TrajVLMChat`.

    lmms-eval --model trajvlm --model_args pretrained=PATH,max_frames=64 --tasks videomme --output_path results/

Model args (anything else is rejected by name):

    pretrained      checkpoint folder (required)
    max_frames      frames sampled per video (uniform), default 64
    fps             cap on the sampling rate (frames per second of video), default none
    token_budget    cap on visual tokens per video, default: the checkpoint's
    conv_template   chat template name (llama3 | llama2 | vicuna | plain), default: the checkpoint's
    device          cpu | cuda | cuda:N, default cuda when available (also lmms-eval's --device)
    dtype           float32 | bfloat16 | float16 | auto, default: the checkpoint's
    max_new_tokens  default generation length when a task sets none, default 128
    breakpoint_unit unit of MovieChat breakpoint `timestep`s: frame (MovieChat-1K's unit, default) | second
    on_video_error  raise (default): the first unreadable video ends the run naming task, doc id and path;
                    empty: that doc gets an empty answer (scores 0), every such doc is logged, the run goes on
    judge_check     true (default): before generating for a MovieChat task, check the judge answers
                    (trajvlm.eval.judge); lmms-eval would otherwise score every doc 0 on an unreachable judge

Visual inputs (`doc_to_visual(doc)`): `[]`/None (text only), `[path]`, or MovieChat breakpoint's
`[{"video_path": path, "timestep": t}]`, for which only the video up to `t` is sampled. Videos are read with
`trajvlm.video.load_video` (the sampler training and the demo use, with this run's max_frames/fps) and handed
to TrajVLMChat as a VideoClip; the last clip is reused while consecutive requests ask about the same video. Generation is greedy unless a
task asks for `do_sample: true` with a positive temperature. `batch_size` is accepted; requests run one at a
time (TrajVLMChat answers one video at a time).

Before generating, every request's `doc_to_visual` is resolved once, so missing videos are all reported
together (task, doc id, path) instead of lmms-eval's `sys.exit` on the first one.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from trajvlm.eval import judge as judge_mod

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 128
BREAKPOINT_UNITS = ("frame", "second")
ON_VIDEO_ERROR = ("raise", "empty")
_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}
_MAX_LISTED = 20  # missing videos listed in one error message


class ModelArgsError(ValueError):
    """A bad `--model_args` value for `--model trajvlm` (unknown name, wrong value, unreadable checkpoint)."""


class EvalDocError(RuntimeError):
    """One or more evaluation documents cannot be run (missing/unreadable video, unsupported visual).

    The message names the task, split, doc id and path of each document.
    """


@dataclass(frozen=True)
class VideoRef:
    """A video a document asks for: the file, and for MovieChat breakpoints the time it stops at."""

    path: str
    end_seconds: float | None = None  # None: the whole video


@dataclass
class DocRequest:
    """One lmms-eval request resolved against its document."""

    context: str
    task: str
    split: str | None
    doc_id: int | None
    doc: Any = None
    video: VideoRef | None = None
    error: str | None = None  # why the visual could not be resolved (on_video_error=empty)
    gen_kwargs: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"task {self.task!r} split {self.split!r} doc {self.doc_id}"


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ModelArgsError(f"model arg {name}={value!r}: expected true or false")


def _parse_positive(name: str, value: Any, kind: type, allow_none: bool = True):
    if value is None or (isinstance(value, str) and value.lower() in ("none", "")):
        if allow_none:
            return None
        raise ModelArgsError(f"model arg {name} is required")
    try:
        number = kind(value)
    except (TypeError, ValueError) as exc:
        raise ModelArgsError(f"model arg {name}={value!r}: expected a positive {kind.__name__}") from exc
    if isinstance(value, float) and kind is int and not float(value).is_integer():
        raise ModelArgsError(f"model arg {name}={value!r}: expected a positive integer")
    if not number > 0 or (isinstance(number, float) and not math.isfinite(number)):
        raise ModelArgsError(f"model arg {name}={value!r}: expected a positive {kind.__name__}")
    return number


def _parse_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ModelArgsError(f"model arg {name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _check_pretrained(pretrained: Any) -> str:
    """A readable checkpoint folder, or a clear ModelArgsError."""
    if pretrained is None or pretrained == "":
        raise ModelArgsError("model arg pretrained= is required (a TrajVLM checkpoint folder)")
    path = os.path.expanduser(str(pretrained))
    if not os.path.exists(path):
        raise ModelArgsError(f"pretrained={pretrained!r}: no such file or directory")
    if not os.path.isdir(path):
        raise ModelArgsError(f"pretrained={pretrained!r} is a file; expected a checkpoint folder (config.json + *.safetensors)")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ModelArgsError(f"pretrained={pretrained!r}: folder is not readable (permission denied)")
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        raise ModelArgsError(f"pretrained={pretrained!r} is not a TrajVLM checkpoint: no config.json in the folder")
    if not os.access(config, os.R_OK):
        raise ModelArgsError(f"pretrained={pretrained!r}: {config} is not readable (permission denied)")
    return path


class TrajVLMLmms(lmms):
    """lmms-eval simple model: generate_until, loglikelihood and generate_until_multi_round over TrajVLMChat."""

    is_simple = True

    def __init__(
        self,
        pretrained: str | None = None,
        max_frames: int = 64,
        fps: float | None = None,
        token_budget: int | None = None,
        conv_template: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        breakpoint_unit: str = "frame",
        on_video_error: str = "raise",
        judge_check: bool = True,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            known = "pretrained, max_frames, fps, token_budget, conv_template, device, dtype, max_new_tokens, breakpoint_unit, on_video_error, judge_check"
            raise ModelArgsError(f"unknown model arg(s) for --model trajvlm: {', '.join(sorted(unknown))} (accepted: {known})")
        path = _check_pretrained(pretrained)
        self.max_frames = _parse_positive("max_frames", max_frames, int)
        self.fps = _parse_positive("fps", fps, float)
        self.token_budget = _parse_positive("token_budget", token_budget, int)
        self.max_new_tokens = _parse_positive("max_new_tokens", max_new_tokens, int, allow_none=False)
        self.breakpoint_unit = _parse_choice("breakpoint_unit", breakpoint_unit, BREAKPOINT_UNITS)
        self.on_video_error = _parse_choice("on_video_error", on_video_error, ON_VIDEO_ERROR)
        self.judge_check = _parse_bool("judge_check", judge_check)
        self.conv_template = None if conv_template in (None, "") else str(conv_template)
        self.batch_size_per_gpu = self._parse_batch_size(batch_size)
        self._judge_checked = False
        self._clip_cache: tuple[tuple[str, float | None], Any] | None = None
        self.failed_docs: list[str] = []  # on_video_error=empty: the docs answered "" and why (whole run)
        self._failed_before = 0
        self.visual_token_counts: list[int] = []  # per video answered in the current lmms-eval call

        import torch

        if dtype in (None, "", "auto"):
            torch_dtype = None
        elif isinstance(dtype, str) and dtype.lower() in _DTYPES:
            torch_dtype = getattr(torch, _DTYPES[dtype.lower()])
        else:
            raise ModelArgsError(f"model arg dtype={dtype!r}: expected one of float32, bfloat16, float16, auto")
        if device in (None, ""):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(str(device)) if not isinstance(device, torch.device) else device

        self.chat = self._load_chat(path, torch_dtype)

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _parse_batch_size(batch_size: Any) -> int:
        if isinstance(batch_size, str) and batch_size.startswith("auto"):
            logger.warning("trajvlm: batch_size=%s: requests run one at a time; using 1", batch_size)
            return 1
        size = _parse_positive("batch_size", batch_size, int, allow_none=False)
        if size != 1:
            logger.warning("trajvlm: batch_size=%d accepted; requests still run one at a time", size)
        return size

    def _load_chat(self, path: str, torch_dtype):
        from trajvlm.chat import TrajVLMChat

        try:
            return TrajVLMChat.from_pretrained(
                path,
                device=str(self._device),
                dtype=torch_dtype,
                max_frames=self.max_frames,
                fps=self.fps,
                token_budget=self.token_budget,
                conv_template=self.conv_template,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelArgsError(f"cannot load pretrained={path!r}: {type(exc).__name__}: {exc}") from exc

    @property
    def device(self):
        return self._device

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    # ------------------------------------------------------------------ visual resolution

    def _doc(self, task: str, split: str | None, doc_id: int | None):
        if task is None or doc_id is None:
            return None
        return self.task_dict[task][split][doc_id]

    def _to_video_ref(self, visuals: Any, req: DocRequest) -> VideoRef | None:
        """`doc_to_visual(doc)` output -> one VideoRef or None (text only). EvalDocError on other shapes."""
        if visuals is None:
            return None
        if isinstance(visuals, (str, os.PathLike, dict)):
            visuals = [visuals]
        visuals = list(visuals)
        if not visuals:
            return None
        if len(visuals) > 1:
            raise EvalDocError(f"{req.where}: trajvlm answers about one video per question; doc_to_visual gave {len(visuals)} inputs")
        visual = visuals[0]
        if isinstance(visual, (str, os.PathLike)):
            path, timestep = os.fspath(visual), None
        elif isinstance(visual, dict) and "video_path" in visual:
            path, timestep = os.fspath(visual["video_path"]), visual.get("timestep")
        else:
            raise EvalDocError(f"{req.where}: unsupported visual input {type(visual).__name__} (trajvlm takes video files)")
        if not os.path.isfile(path):
            raise EvalDocError(f"{req.where}: video {path!r} does not exist")
        return VideoRef(path=path, end_seconds=self._breakpoint_seconds(path, timestep, req))

    def _breakpoint_seconds(self, path: str, timestep: Any, req: DocRequest) -> float | None:
        """MovieChat breakpoint `timestep` -> the end (exclusive, seconds) of the part of the video to use."""
        if timestep is None:
            return None
        try:
            t = float(timestep)
        except (TypeError, ValueError) as exc:
            raise EvalDocError(f"{req.where}: breakpoint timestep {timestep!r} of {path!r} is not a number") from exc
        if not math.isfinite(t) or t < 0:
            raise EvalDocError(f"{req.where}: breakpoint timestep {timestep!r} of {path!r} is negative or not finite")
        if self.breakpoint_unit == "second":
            return max(t, 1e-6)
        from trajvlm.video import VideoDecodeError, probe_video

        try:
            fps = probe_video(path).fps
        except VideoDecodeError as exc:
            raise EvalDocError(f"{req.where}: {exc}") from exc
        return (math.floor(t) + 1) / fps  # include the frame at the breakpoint itself

    def _resolve(self, doc_to_visual: Callable | None, req: DocRequest) -> None:
        """Fill `req.video` (or `req.error` with on_video_error=empty)."""
        try:
            req.doc = self._doc(req.task, req.split, req.doc_id)
            if doc_to_visual is None or req.doc is None:
                req.video = None
                return
            try:
                visuals = doc_to_visual(req.doc)
            except SystemExit as exc:  # lmms-eval's task utils sys.exit() on a missing video
                raise EvalDocError(f"{req.where}: {exc.code}") from None
            except (OSError, KeyError, ValueError) as exc:
                raise EvalDocError(f"{req.where}: doc_to_visual failed: {type(exc).__name__}: {exc}") from exc
            req.video = self._to_video_ref(visuals, req)
        except EvalDocError as exc:
            if self.on_video_error == "raise":
                raise
            req.error = str(exc)

    def _resolve_all(self, pairs: list[tuple[Callable | None, DocRequest]]) -> None:
        """Resolve every request's visual before any generation; report all failures at once."""
        problems: list[str] = []
        for doc_to_visual, req in pairs:
            try:
                self._resolve(doc_to_visual, req)
            except EvalDocError as exc:
                problems.append(str(exc))
        if problems:
            listed = "\n  ".join(problems[:_MAX_LISTED])
            more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
            raise EvalDocError(
                f"{len(problems)} of {len(pairs)} requests cannot be run "
                f"(fix the data, or pass on_video_error=empty to answer them with ''):\n  {listed}{more}"
            )
        for _, req in pairs:
            if req.error is not None:
                self._record_failure(req, req.error)

    def _record_failure(self, req: DocRequest, reason: str) -> None:
        reason = reason if req.where in reason else f"{req.where}: {reason}"
        logger.error("trajvlm: answering '' (on_video_error=empty): %s", reason)
        self.failed_docs.append(reason)

    # ------------------------------------------------------------------ the chat calls (tests subclass these)

    def _load_clip(self, video: VideoRef):
        """The sampled frames TrajVLMChat gets (a VideoClip: the whole video, or cut at a breakpoint).

        The last clip is kept: lmms-eval sends the questions of one video (VideoMME's three, the four choices
        of a multiple-choice doc) one after the other, and decoding is the slow part for long videos."""
        key = (video.path, video.end_seconds)
        if self._clip_cache is not None and self._clip_cache[0] == key:
            return self._clip_cache[1]
        from trajvlm.video import load_video

        self._clip_cache = None  # free the previous clip before decoding the next one
        clip = load_video(video.path, max_frames=self.max_frames, fps=self.fps, end=video.end_seconds)
        self._clip_cache = (key, clip)
        return clip

    def _respond(self, req: DocRequest, question: str, history: list[tuple[str, str]]) -> str:
        """One answer from the model (greedy unless the task samples)."""
        from trajvlm.video import VideoDecodeError

        gen = req.gen_kwargs
        max_new_tokens = int(gen.get("max_new_tokens") or self.max_new_tokens)
        temperature = float(gen.get("temperature", 0.0) or 0.0)
        do_sample = bool(gen.get("do_sample", False)) and temperature > 0
        top_p = float(gen.get("top_p", 1.0) or 1.0)
        if int(gen.get("num_beams", 1) or 1) > 1:
            logger.warning("trajvlm: num_beams>1 is not supported; decoding %s without beams", req.where)
        try:
            video = None if req.video is None else self._load_clip(req.video)
            response = self.chat.ask(
                video,
                question,
                history,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature if do_sample else 1.0,
                top_p=top_p if do_sample else 1.0,
            )
        except VideoDecodeError as exc:
            raise EvalDocError(f"{req.where}: {exc}") from exc
        if response.num_visual_tokens is not None and req.video is not None:
            self.visual_token_counts.append(int(response.num_visual_tokens))
        return _cut_at_stops(response.text, gen.get("until"))

    def _score(self, req: DocRequest, continuation: str) -> tuple[float, bool]:
        from trajvlm.video import VideoDecodeError

        try:
            video = None if req.video is None else self._load_clip(req.video)
            logprob, is_greedy = self.chat.score(video, req.context, continuation)
        except VideoDecodeError as exc:
            raise EvalDocError(f"{req.where}: {exc}") from exc
        return float(logprob), bool(is_greedy)

    def _answer_or_empty(self, req: DocRequest, fn: Callable[[], Any], empty: Any) -> Any:
        if req.error is not None:
            return empty
        try:
            return fn()
        except EvalDocError as exc:
            if self.on_video_error == "raise":
                raise
            self._record_failure(req, str(exc))
            return empty

    # ------------------------------------------------------------------ lmms API

    def _maybe_check_judge(self, requests: list[Instance]) -> None:
        if not self.judge_check or self._judge_checked:
            return
        tasks = sorted({req.args[-2] for req in requests if len(req.args) >= 6 and isinstance(req.args[-2], str)})
        judged = [t for t in tasks if judge_mod.is_judge_task(t)]
        if not judged:
            return
        config = judge_mod.JudgeConfig.from_env()
        model = judge_mod.check_judge(config)  # JudgeError: stop before hours of generation
        logger.info("trajvlm: MovieChat judge for %s answers at %s (model %s)", ", ".join(judged), config.url, model)
        self._judge_checked = True

    def generate_until(self, requests: list[Instance]) -> list[str]:
        self._maybe_check_judge(requests)
        self._start_call()
        pairs = []
        for instance in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = instance.args
            req = DocRequest(context=context, task=task, split=split, doc_id=doc_id, gen_kwargs=dict(gen_kwargs or {}))
            pairs.append((doc_to_visual, req))
        self._resolve_all(pairs)
        outputs = []
        for _, req in _progress(pairs, "trajvlm generate"):
            outputs.append(self._answer_or_empty(req, lambda req=req: self._respond(req, req.context, []), ""))
        self._log_summary()
        return outputs

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """(log p(continuation | video, context), is_greedy) per request: the log-probability (<= 0, higher is
        more likely), as lmms-eval's API documents, summed over the continuation's tokens by TrajVLMChat.score."""
        self._start_call()
        pairs = []
        for instance in requests:
            args = instance.args
            if len(args) == 2:  # unconditional choice scoring (multiple_choice + acc_mutual_info): no doc, no video
                context, continuation = args
                req = DocRequest(context=context, task=None, split=None, doc_id=None)
                pairs.append((None, req, continuation))
                continue
            context, continuation, doc_to_visual, doc_id, task, split = args
            req = DocRequest(context=context, task=task, split=split, doc_id=doc_id)
            pairs.append((doc_to_visual, req, continuation))
        self._resolve_all([(dtv, req) for dtv, req, _ in pairs])
        outputs = []
        for _, req, continuation in _progress(pairs, "trajvlm loglikelihood"):
            if callable(continuation):  # output_type loglikelihood passes the task's doc_to_target
                continuation = continuation(req.doc)
            if isinstance(continuation, (list, tuple)):
                continuation = continuation[0]
            outputs.append(self._answer_or_empty(req, lambda req=req, c=str(continuation): self._score(req, c), (-math.inf, False)))
        self._log_summary()
        return outputs

    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        """Rounds of one conversation per doc: round 0 answers `context` on doc_to_visual(doc); round i asks
        `doc_to_text(doc, previous_output=answers, round_idx=i, previous_round_info=info)` for
        `(visuals, text, terminal, previous_output, info)` and stops at `terminal`. Earlier rounds are the history."""
        self._maybe_check_judge(requests)
        self._start_call()
        outputs = []
        for instance in _progress(requests, "trajvlm multi-round"):
            context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = instance.args
            req = DocRequest(context=context, task=task, split=split, doc_id=doc_id, gen_kwargs=dict(gen_kwargs or {}))
            self._resolve_all([(doc_to_visual, req)])
            if req.error is not None:
                outputs.append([""])
                continue
            answers: list[str] = []
            history: list[tuple[str, str]] = []
            question, info, round_idx = context, None, 0
            while True:
                if round_idx > 0:
                    visuals, question, terminal, previous, info = doc_to_text(
                        req.doc, previous_output=list(answers), round_idx=round_idx, previous_round_info=info
                    )
                    if terminal:
                        break
                    if previous is not None:
                        answers = list(previous)
                    if visuals is not None:
                        try:
                            req.video = self._to_video_ref(visuals, req)
                        except EvalDocError as exc:
                            if self.on_video_error == "raise":
                                raise
                            self._record_failure(req, str(exc))
                            answers.append("")
                            break
                answer = self._answer_or_empty(req, lambda q=question, h=list(history): self._respond(req, q, h), "")
                answers.append(answer)
                history.append((question, answer))
                round_idx += 1
            outputs.append(answers)
        self._log_summary()
        return outputs

    def _start_call(self) -> None:
        self.visual_token_counts = []
        self._failed_before = len(self.failed_docs)

    def _log_summary(self) -> None:
        if self.visual_token_counts:
            counts = self.visual_token_counts
            logger.warning(
                "trajvlm: visual tokens per video over %d answers: mean %.1f, min %d, max %d",
                len(counts), sum(counts) / len(counts), min(counts), max(counts),
            )
        failed = self.failed_docs[self._failed_before :]
        if failed:
            logger.error("trajvlm: %d request(s) answered with '' because their video could not be read:\n  %s",
                         len(failed), "\n  ".join(failed))


def _cut_at_stops(text: str, until: Any) -> str:
    """The generation up to the first stop string of the task's `until`."""
    if until is None:
        stops: list[str] = []
    elif isinstance(until, str):
        stops = [until]
    else:
        stops = [s for s in until if isinstance(s, str) and s]
    for stop in stops:
        index = text.find(stop)
        if index != -1:
            text = text[:index]
    return text.strip()


def _progress(items: list, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with lmms-eval; keep working without it
        return items
    return tqdm(items, desc=desc)
