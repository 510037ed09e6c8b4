"""End to end: the real `lmms-eval` CLI (subprocess) with `--model trajvlm` on tiny VideoMME-, MLVU-, MovieChat-
and ShapesQA-format datasets built here (mp4s written by the test, official task names through the offline
layout of data_recipes/, local copies through eval/tasks/), a tiny TrajVLM checkpoint from trajvlm.testing,
and a stand-in OpenAI-compatible judge on 127.0.0.1.

Three lmms-eval runs (each ~20 s of imports), all tasks combined in each:
  1. `trajvlm_oracle` (a test-only subclass registered through a test-only entry point, see ORACLE_MODULE)
     runs the real model on every doc, then answers correctly -> every score is 100 (MovieChat: 5 / 1.0);
  2. the same oracle answering wrongly, through `trajvlm eval` -> every score is 0;
  3. the real `--model trajvlm` on a subset -> the results hold the expected metric keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LMMS_EVAL = BIN / "lmms-eval"
TRAJVLM = BIN / "trajvlm"

OFFICIAL = ["videomme", "videomme_w_subtitle", "mlvu_dev", "mlvu_test", "moviechat_global", "moviechat_breakpoint"]
LOCAL = ["videomme_local", "videomme_w_subtitle_local", "mlvu_dev_local", "mlvu_test_local",
         "moviechat_global_local", "moviechat_breakpoint_local"]
SHAPESQA = ["shapesqa", "shapesqa_mc", "shapesqa_cloze"]
ALL_TASKS = OFFICIAL + LOCAL + SHAPESQA

# task -> the metric keys lmms-eval must report (per-category ShapesQA keys are checked separately)
METRICS = {
    **{t: ["videomme_perception_score"] for t in ("videomme", "videomme_w_subtitle", "videomme_local", "videomme_w_subtitle_local")},
    **{t: ["mlvu_percetion_score"] for t in ("mlvu_dev", "mlvu_test", "mlvu_dev_local", "mlvu_test_local")},
    **{t: ["gpt_eval_score", "gpt_eval_acc"] for t in ("moviechat_global", "moviechat_breakpoint", "moviechat_global_local", "moviechat_breakpoint_local")},
    **{t: [f"{t}_acc"] for t in SHAPESQA},
}
PERFECT = {"gpt_eval_score": 5.0, "gpt_eval_acc": 1.0}  # everything else: 100 (percent)

MLVU_DEV_TYPES = ("anomaly_reco", "count", "ego", "needle", "order", "plotQA", "topic_reasoning")
MLVU_TEST_TYPES = ("anomaly_reco", "count", "ego", "needleQA", "order", "plotQA", "sportsQA", "topic_reasoning", "tutorialQA")


# ---------------------------------------------------------------------------------------------------------------
# tiny datasets in the official layouts


@dataclass
class EvalData:
    root: Path
    hf_home: Path  # $HF_HOME: videos in lmms-eval's cache layout (+ annotations for the local tasks)
    cwd: Path  # folders named like the hub ids, holding the annotations of the official tasks
    shapesqa: Path

    def env(self) -> dict[str, str]:
        return {
            "HF_HOME": str(self.hf_home),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_DATASETS_CACHE": str(self.root / "datasets_cache"),
            "TRAJVLM_VIDEOMME_DIR": str(self.hf_home / "videomme"),
            "TRAJVLM_MLVU_DIR": str(self.hf_home / "mlvu"),
            "TRAJVLM_MLVU_TEST_DIR": str(self.hf_home / "mlvu_test"),
            "TRAJVLM_MOVIECHAT_DIR": str(self.hf_home / "moviechat_1k_test"),
            "TRAJVLM_SHAPESQA_DIR": str(self.shapesqa),
        }


def _write_json(path: Path, docs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(docs, indent=1))


def _options(answers: list[str]) -> list[str]:
    return [f"{letter}. {text}" for letter, text in zip("ABCD", answers)]


def build_eval_data(root: Path) -> EvalData:
    from trajvlm.testing import write_tiny_video

    hf, cwd = root / "hf", root / "cwd"
    # VideoMME: $HF_HOME/videomme/data/<videoID>.mp4, subtitles in $HF_HOME/videomme/subtitle/<videoID>.srt
    videomme = []
    for i, answer in enumerate("AC"):
        vid = f"vm{i}"
        write_tiny_video(hf / "videomme" / "data" / f"{vid}.mp4", num_frames=8, seed=i)
        videomme.append({
            "video_id": f"{i:03d}", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
            "url": "", "videoID": vid, "question_id": f"{i:03d}-1", "task_type": "Counting Problem",
            "question": "How many squares move in the video?", "options": _options(["one", "two", "three", "four"]),
            "answer": answer,
        })
    (hf / "videomme" / "subtitle").mkdir(parents=True)
    (hf / "videomme" / "subtitle" / "vm0.srt").write_text(
        '1\n00:00:00,000 --> 00:00:00,500\n<font color="white" size=".72c">a square starts moving</font>\n\n'
        '2\n00:00:00,500 --> 00:00:01,000\n<font color="white" size=".72c">it reaches the right edge</font>\n'
    )
    _write_json(cwd / "lmms-eval" / "Video-MME" / "test.json", videomme)
    _write_json(hf / "videomme" / "test.json", videomme)

    # MLVU: $HF_HOME/mlvu/<video_name> (dev), $HF_HOME/mlvu_test/<video_name> (test); all task types present
    for folder, hub, types in (("mlvu", "sy1998/MLVU_dev", MLVU_DEV_TYPES), ("mlvu_test", "sy1998/MLVU_Test", MLVU_TEST_TYPES)):
        docs = []
        for i, task_type in enumerate(types):
            name = f"{task_type}_{i}.mp4"
            write_tiny_video(hf / folder / name, num_frames=8, seed=10 + i)
            docs.append({
                "video_name": name, "duration": 1.0, "task_type": task_type, "question_id": f"{folder}_{i}",
                "question": "Which way does the square move?\n(A) left\n(B) right\n(C) up\n(D) down",
                "answer": "ABCD"[i % 4],
            })
        _write_json(cwd / hub / "test.json", docs)
        _write_json(hf / folder / "test.json", docs)

    # MovieChat: $HF_HOME/moviechat_1k_test/Test_Videos/<video_name>; `time` = breakpoint frame index
    moviechat = []
    for i, answer in enumerate(["a red square", "it moves to the right"]):
        name = f"movie{i}.mp4"
        write_tiny_video(hf / "moviechat_1k_test" / "Test_Videos" / name, num_frames=16, seed=20 + i)
        moviechat.append({"video_name": name, "question": f"Question {i} about the movie?", "answer": answer, "time": 4 + i})
    _write_json(cwd / "Enxin" / "lmms_MovieChat_test" / "test.json", moviechat)
    _write_json(hf / "moviechat_1k_test" / "test.json", moviechat)

    # ShapesQA: the real generator, a few tiny videos
    shapesqa = root / "shapesqa"
    subprocess.run(
        [sys.executable, "-m", "trajvlm.data.synthetic", "--out", str(shapesqa), "--num-videos", "4", "--seed", "0",
         "--frames", "8", "--needle-frames", "20", "--splits", "0.5,0,0.5", "--max-objects", "3", "--quiet"],
        check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return EvalData(root=root, hf_home=hf, cwd=cwd, shapesqa=shapesqa)


# ---------------------------------------------------------------------------------------------------------------
# a stand-in OpenAI-compatible judge: "yes"/5 when the prediction equals the correct answer, else "no"/0


class _JudgeHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server API)
        if not self.path.endswith("/chat/completions"):
            self.send_error(404, "only /v1/chat/completions here")
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        answer = text.split("Correct Answer:", 1)[1].split("\n", 1)[0].strip()
        pred = text.split("Predicted Answer:", 1)[1].split("\n", 1)[0].strip()
        verdict = "{'pred': 'yes', 'score': 5}" if pred.lower() == answer.lower() else "{'pred': 'no', 'score': 0}"
        self.server.calls.append({"model": body.get("model"), "auth": self.headers.get("Authorization"), "pred": pred})
        reply = json.dumps({"model": body.get("model"), "choices": [{"message": {"role": "assistant", "content": verdict}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):  # keep pytest output clean
        pass


class StandInJudge:
    """Serve _JudgeHandler on 127.0.0.1:<free port> in a thread; `url` is the chat-completions endpoint."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
        self.server.calls = []
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/chat/completions"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def calls(self) -> list[dict]:
        return self.server.calls

    def env(self) -> dict[str, str]:
        return {"OPENAI_API_URL": self.url, "OPENAI_API_KEY": "test-key", "MODEL_VERSION": "stand-in-judge", "API_TYPE": "openai"}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------------------------
# the test-only oracle model: registered through its own entry point in a temporary site folder, so the real
# `trajvlm` model carries no test switch. It runs the real pipeline (doc_to_visual, video decoding, breakpoint
# cut, TrajVLMChat.ask / .score) on every request, then replaces the answer.

ORACLE_MODULE = '''
"""Test-only lmms-eval model `trajvlm_oracle` (tests/test_lmms_eval.py): trajvlm, then a forced answer."""
from lmms_eval.models.registry_v2 import ModelManifest

from trajvlm.eval.lmms_model import TrajVLMLmms

LETTERS = "ABCD"


def manifest():
    return ModelManifest(model_id="trajvlm_oracle", simple_class_path="trajvlm_test_oracle.TrajVLMOracle")


class TrajVLMOracle(TrajVLMLmms):
    def __init__(self, oracle="correct", **kwargs):
        assert oracle in ("correct", "wrong"), oracle
        self.oracle = oracle
        super().__init__(**kwargs)

    def _respond(self, req, question, history):
        super()._respond(req, question, history)  # the real model on the real (cut) video
        answer = str(req.doc["answer"])
        if self.oracle == "correct":
            return answer
        if answer in LETTERS:
            return LETTERS[(LETTERS.index(answer) + 1) % 4]
        return "something else entirely"

    def _score(self, req, continuation):
        logprob, greedy = super()._score(req, continuation)
        assert logprob <= 0.0, logprob
        answer = str(req.doc["answer"])
        correct = {answer}  # the letter (shapesqa_mc) ...
        if answer in LETTERS and "options" in req.doc:  # ... or its option text, "B. red" -> "red" (shapesqa_cloze)
            correct.add(req.doc["options"][LETTERS.index(answer)].split(". ", 1)[1])
        right = (continuation.strip() in correct) == (self.oracle == "correct")  # cloze: " red"
        return (-0.1, True) if right else (-9.0, False)
'''


def install_oracle(site: Path) -> Path:
    """Write the oracle module + a dist-info declaring its `lmms_eval.models` entry point; returns `site`."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "trajvlm_test_oracle.py").write_text(ORACLE_MODULE)
    info = site / "trajvlm_test_oracle-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: trajvlm-test-oracle\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lmms_eval.models]\ntrajvlm_oracle = trajvlm_test_oracle:manifest\n")
    return site


# ---------------------------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    return build_eval_data(tmp_path_factory.mktemp("lmms_eval_data"))


@pytest.fixture(scope="module")
def judge():
    with StandInJudge() as server:
        yield server


@pytest.fixture(scope="module")
def oracle_site(tmp_path_factory):
    return install_oracle(tmp_path_factory.mktemp("oracle_site"))


def run_env(data: EvalData, judge: StandInJudge | None, site: Path | None = None) -> dict[str, str]:
    env = {**os.environ, **data.env(), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if judge is not None:
        env.update(judge.env())
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_cli(cmd: list[str], data: EvalData, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=data.cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc


def load_results(output: Path) -> dict:
    files = sorted(output.rglob("*_results.json"))
    assert len(files) == 1, f"expected one results file under {output}, found {files}"
    return json.loads(files[0].read_text())


def score(results: dict, task: str, metric: str) -> float:
    return results["results"][task][f"{metric},none"]


def shapesqa_categories(data: EvalData) -> set[str]:
    return {doc["category"] for doc in json.loads((data.shapesqa / "test_qa.json").read_text())}


def check_all_scores(results: dict, data: EvalData, perfect: bool) -> None:
    """Every task holds its metric keys, each at the perfect value (or 0)."""
    for task in ALL_TASKS:
        assert task in results["results"], f"{task} missing from the results: {sorted(results['results'])}"
        for metric in METRICS[task]:
            want = PERFECT.get(metric, 100.0) if perfect else 0.0
            assert score(results, task, metric) == pytest.approx(want), (task, metric, results["results"][task])
    for category in shapesqa_categories(data):
        for prefix in SHAPESQA:
            want = 100.0 if perfect else 0.0
            assert score(results, prefix, f"{prefix}_{category}_acc") == pytest.approx(want), (prefix, category)


# ---------------------------------------------------------------------------------------------------------------
# the three lmms-eval runs


def test_cli_forced_correct_answers_score_100(eval_data, judge, oracle_site, tiny_trajvlm_dir, tmp_path):
    """Raw `lmms-eval`: official task names (offline layout) + local copies + ShapesQA, all at 100."""
    out = tmp_path / "results"
    cmd = [str(LMMS_EVAL), "--model", "trajvlm_oracle",
           "--model_args", f"pretrained={tiny_trajvlm_dir},max_frames=8,oracle=correct",
           "--tasks", ",".join(ALL_TASKS), "--include_path", str(REPO / "eval" / "tasks"),
           "--batch_size", "1", "--output_path", str(out), "--log_samples"]
    before = len(judge.calls)
    proc = run_cli(cmd, eval_data, run_env(eval_data, judge, oracle_site))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = load_results(out)
    check_all_scores(results, eval_data, perfect=True)
    # the judge was asked about every MovieChat doc (4 tasks x 2 docs; + the plugin's reachability check)
    calls = judge.calls[before:]
    assert len(calls) == 9 and all(c["model"] == "stand-in-judge" and c["auth"] == "Bearer test-key" for c in calls)


def test_cli_forced_wrong_answers_score_0(eval_data, judge, oracle_site, tiny_trajvlm_dir, tmp_path):
    """Raw `lmms-eval` again, the oracle answering wrongly: every score is 0 (the scoring can fail)."""
    out = tmp_path / "results"
    cmd = [str(LMMS_EVAL), "--model", "trajvlm_oracle",
           "--model_args", f"pretrained={tiny_trajvlm_dir},max_frames=8,oracle=wrong",
           "--tasks", ",".join(ALL_TASKS), "--include_path", str(REPO / "eval" / "tasks"),
           "--batch_size", "1", "--output_path", str(out), "--log_samples"]
    proc = run_cli(cmd, eval_data, run_env(eval_data, judge, oracle_site))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check_all_scores(load_results(out), eval_data, perfect=False)


def test_trajvlm_eval_wrapper_real_model(eval_data, judge, tiny_trajvlm_dir, tmp_path):
    """`trajvlm eval` with the real `--model trajvlm`: scores for every task, a markdown table, exit 0."""
    out = tmp_path / "results"
    tasks = ["videomme", "mlvu_dev_local", "moviechat_breakpoint", "shapesqa", "shapesqa_mc", "shapesqa_cloze"]
    cmd = [str(TRAJVLM), "eval", "--pretrained", str(tiny_trajvlm_dir), "--tasks", ",".join(tasks),
           "--max-frames", "8", "--output", str(out), "--offline", "--judge-url", judge.url.rsplit("/chat/completions", 1)[0],
           "--judge-key", "test-key", "--judge-model", "stand-in-judge",
           "--data", f"mlvu={eval_data.hf_home / 'mlvu'}", "--data", f"shapesqa={eval_data.shapesqa}"]
    env = run_env(eval_data, None)
    for key in ("TRAJVLM_MLVU_DIR", "TRAJVLM_SHAPESQA_DIR"):
        env.pop(key)  # given by --data
    proc = run_cli(cmd, eval_data, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = load_results(out)
    for task in tasks:
        for metric in METRICS[task]:
            value = score(results, task, metric)
            assert 0.0 <= value <= (5.0 if metric == "gpt_eval_score" else 100.0), (task, metric, value)
    table = (out / "scores.md").read_text()
    for task in tasks:
        assert f"| {task} |" in table
    assert "| videomme | videomme_perception_score |" in table and "| moviechat_breakpoint | gpt_eval_acc |" in table
    assert table in proc.stdout
