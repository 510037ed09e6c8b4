"""The LLM judge MovieChat scoring calls: configuration and a reachability check.

lmms-eval's MovieChat tasks (`moviechat_global`, `moviechat_breakpoint`, and our `*_local` copies) score an
answer by POSTing an OpenAI chat-completions request to a judge. Its utils read, once at import:

    OPENAI_API_URL   full chat-completions URL   (default https://api.openai.com/v1/chat/completions)
    OPENAI_API_KEY   bearer token                (default "YOUR_API_KEY")
    MODEL_VERSION    judge model name            (default gpt-4o-2024-11-20)
    API_TYPE         must be "openai"

Any OpenAI-compatible server works (vLLM, llama.cpp server, LM Studio, a proxy): point OPENAI_API_URL at
it. lmms-eval turns every failed judge call into a score of 0 without failing the run; this module makes
that an error instead:

- `check_judge(config)` sends one small request in the exact format the MovieChat scorer uses and raises
  `JudgeError` when the server is unreachable, answers with an HTTP error, or answers something the scorer
  cannot parse. The lmms-eval plugin calls it before generating for a MovieChat task, and `trajvlm eval`
  before launching lmms-eval.
- `failed_reviews(samples)` finds the documents whose judge call failed in a run's logged samples
  (`trajvlm eval` fails the run on any), and `eval/tasks/moviechat/utils.py` raises on them as they happen.

Only the standard library is used (urllib), so this module is cheap to import.
"""

from __future__ import annotations

import ast
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_URL = "https://api.openai.com/v1/chat/completions"
DEFAULT_MODEL = "gpt-4o-2024-11-20"  # lmms-eval's moviechat default when MODEL_VERSION is unset
PLACEHOLDER_KEY = "YOUR_API_KEY"  # what lmms-eval sends when OPENAI_API_KEY is unset

# What lmms-eval's moviechat scorer stores as the review when the judge call failed.
FAILED_REVIEWS = ("", "Failed to Get a Proper Review.")


class JudgeError(RuntimeError):
    """The MovieChat judge cannot be used: unreachable, HTTP error, or an answer the scorer cannot parse."""


@dataclass(frozen=True)
class JudgeConfig:
    """Where the MovieChat judge lives. `url` is the full chat-completions endpoint."""

    url: str = DEFAULT_URL
    api_key: str = PLACEHOLDER_KEY
    model: str = DEFAULT_MODEL
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JudgeConfig:
        """The configuration lmms-eval's MovieChat utils will use, read from the same variables."""
        env = os.environ if env is None else env
        api_type = env.get("API_TYPE", "openai")
        if api_type != "openai":
            raise JudgeError(f"API_TYPE={api_type!r}: lmms-eval's MovieChat scorer only calls a judge with API_TYPE=openai")
        return cls(
            url=env.get("OPENAI_API_URL", DEFAULT_URL),
            api_key=env.get("OPENAI_API_KEY", PLACEHOLDER_KEY),
            model=env.get("MODEL_VERSION", DEFAULT_MODEL),
        )

    @classmethod
    def from_args(cls, url: str | None, api_key: str | None, model: str | None, env: Mapping[str, str] | None = None) -> JudgeConfig:
        """Command-line values over the environment; `url` may be a base URL (`http://host:8000/v1`)."""
        base = cls.from_env(env)
        return cls(
            url=normalize_url(url) if url else base.url,
            api_key=api_key if api_key is not None else base.api_key,
            model=model or base.model,
            timeout=base.timeout,
        )

    def to_env(self) -> dict[str, str]:
        """Environment variables that make lmms-eval's MovieChat utils use this judge."""
        return {"API_TYPE": "openai", "OPENAI_API_URL": self.url, "OPENAI_API_KEY": self.api_key, "MODEL_VERSION": self.model}


def normalize_url(url: str) -> str:
    """`http://host:8000`, `http://host:8000/v1` or the full endpoint -> the full chat-completions URL."""
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise JudgeError(f"judge URL must start with http:// or https://, got {url!r}")
    stripped = url.rstrip("/")
    if stripped.endswith("/chat/completions"):
        return stripped
    if not stripped.endswith("/v1"):
        stripped += "/v1"
    return stripped + "/chat/completions"


def _probe_messages() -> list[dict[str, str]]:
    # Same shape as lmms_eval.tasks.moviechat.utils.get_eval_generic, on a trivially matching pair.
    return [
        {"role": "system", "content": "You evaluate whether a predicted answer matches the correct answer of a video question."},
        {
            "role": "user",
            "content": "Please evaluate the following video-based question-answer pair:\n\n"
            "Question: What colour is the ball?\nCorrect Answer: red\nPredicted Answer: red\n\n"
            "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5. "
            "Please generate the response in the form of a Python dictionary string with keys 'pred' and 'score', "
            "where value of 'pred' is a string of 'yes' or 'no' and value of 'score' is in INTEGER, not STRING. "
            "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
            "For example, your response should look like this: {'pred': 'yes', 'score': 4}.",
        },
    ]


def parse_review(content: str) -> dict:
    """The judge's answer as the MovieChat scorer reads it (`ast.literal_eval` of a dict with pred/score)."""
    try:
        review = ast.literal_eval(content.strip())
    except (ValueError, SyntaxError) as exc:
        raise JudgeError(f"the judge answered {content!r}, which is not a Python dict literal") from exc
    if not isinstance(review, dict) or "pred" not in review or "score" not in review:
        raise JudgeError(f"the judge answered {content!r}; the scorer needs a dict with keys 'pred' and 'score'")
    return review


def check_judge(config: JudgeConfig) -> str:
    """Send one MovieChat-style request; return the judge's model name. Raises `JudgeError` naming the URL."""
    payload = {"model": config.model, "messages": _probe_messages(), "temperature": 0, "max_tokens": 64}
    request = urllib.request.Request(
        config.url,
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {config.api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    where = f"MovieChat judge at {config.url} (model {config.model!r}; set OPENAI_API_URL / OPENAI_API_KEY / MODEL_VERSION)"
    try:
        with urllib.request.urlopen(request, timeout=config.timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise JudgeError(f"{where} answered HTTP {exc.code} {exc.reason}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JudgeError(f"{where} is unreachable: {reason}") from exc
    try:
        data = json.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise JudgeError(f"{where} did not answer in the chat-completions format: {body[:300]!r}") from exc
    try:
        parse_review(content)
    except JudgeError as exc:
        raise JudgeError(f"{where}: {exc}") from exc
    return str(data.get("model", config.model))


def is_judge_task(task_name: str) -> bool:
    """Tasks scored by the MovieChat judge (official names and our local copies)."""
    return task_name.startswith("moviechat")


def failed_reviews(samples: Iterable[Mapping]) -> list[str]:
    """Descriptions of the logged samples (lmms-eval `--log_samples` records) whose judge call failed."""
    failed = []
    for sample in samples:
        for key in ("gpt_eval_score", "gpt_eval_acc"):
            value = sample.get(key)
            if isinstance(value, Mapping) and value.get("review", None) in FAILED_REVIEWS:
                failed.append(f"doc {sample.get('doc_id')} (video {value.get('video_name')!r}, question {value.get('question')!r})")
                break
    return failed
