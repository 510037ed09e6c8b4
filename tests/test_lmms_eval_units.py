"""In-process tests of the lmms-eval plugin, the judge check, the `trajvlm eval` wrapper and the local task
utils (no lmms-eval CLI run: those are in test_lmms_eval.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_lmms_eval import REPO, StandInJudge

TASKS_DIR = REPO / "eval" / "tasks"


def _instance(request_type, arguments, task="videomme", doc_id=0):
    from lmms_eval.api.instance import Instance

    return Instance(request_type=request_type, arguments=arguments, idx=0,
                    metadata={"task": task, "doc_id": doc_id, "repeats": 1})


def _gen(doc_id, doc_to_visual, task="videomme", context="How many squares?\nA. one\nB. two", gen_kwargs=None):
    gen_kwargs = {"max_new_tokens": 4, "until": ["\n\n"]} if gen_kwargs is None else gen_kwargs
    return _instance("generate_until", (context, gen_kwargs, doc_to_visual, doc_id, task, "test"), task, doc_id)


def _load_task_utils(name: str):
    path = TASKS_DIR / name / "utils.py"
    spec = importlib.util.spec_from_file_location(f"test_{name}_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from trajvlm.testing import write_tiny_video

    root = tmp_path_factory.mktemp("unit_videos")
    write_tiny_video(root / "videomme" / "data" / "vm0.mp4", num_frames=8)
    write_tiny_video(root / "long.mp4", num_frames=16, fps=8.0)
    (root / "videomme" / "data" / "bad.mp4").write_bytes(b"this is not an mp4 file" * 10)
    return root


@pytest.fixture(scope="module")
def model(tiny_trajvlm_dir):
    from trajvlm.eval.lmms_model import TrajVLMLmms

    return TrajVLMLmms(pretrained=str(tiny_trajvlm_dir), max_frames=8)


@pytest.fixture
def videomme_visual(videos, monkeypatch):
    """lmms-eval's own videomme doc_to_visual (sys.exit on a missing file), pointed at the test videos."""
    from lmms_eval.tasks.videomme import utils

    monkeypatch.setattr(utils, "base_cache_dir", str(videos))
    return utils.videomme_doc_to_visual


# ---------------------------------------------------------------------------------------------------------------
# registration


def test_entry_point_registered_and_module_adds_no_imports():
    """The entry point names our manifest, and the registration module imports nothing beyond the package."""
    code = textwrap.dedent("""
        import sys, importlib.metadata as md
        eps = [e for e in md.entry_points(group="lmms_eval.models") if e.name == "trajvlm"]
        assert eps and eps[0].value == "trajvlm.eval.lmms_registration:manifest", eps
        import trajvlm
        before = set(sys.modules)
        import trajvlm.eval.lmms_registration
        print(sorted(set(sys.modules) - before))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "['trajvlm.eval', 'trajvlm.eval.lmms_registration']"


def test_entry_point_import_is_light():
    """lmms-eval imports the entry point on every start, for any model: no torch, no transformers."""
    code = "import sys, trajvlm.eval.lmms_registration; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_manifest_resolves_to_the_simple_class():
    from lmms_eval.api.model import lmms
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    registry = ModelRegistryV2()
    registry.load_entrypoint_manifests()
    cls = registry.get_model_class("trajvlm")
    assert issubclass(cls, lmms) and cls.is_simple and cls.__name__ == "TrajVLMLmms"


# ---------------------------------------------------------------------------------------------------------------
# model args


def test_unknown_model_args_rejected_by_name(tiny_trajvlm_dir):
    from trajvlm.eval.lmms_model import ModelArgsError, TrajVLMLmms

    with pytest.raises(ModelArgsError, match="unknown model arg.*max_frame.*tokens_budget"):
        TrajVLMLmms.create_from_arg_string(f"pretrained={tiny_trajvlm_dir},max_frame=8,tokens_budget=3",
                                           {"batch_size": "1", "max_batch_size": None, "device": None})


@pytest.mark.parametrize("args, message", [
    ({"max_frames": 0}, "max_frames=0"),
    ({"fps": -1.0}, "fps=-1.0"),
    ({"breakpoint_unit": "minute"}, "breakpoint_unit='minute'"),
    ({"on_video_error": "ignore"}, "on_video_error='ignore'"),
    ({"dtype": "int8"}, "dtype='int8'"),
    ({"judge_check": "maybe"}, "judge_check='maybe'"),
])
def test_bad_model_arg_values(tiny_trajvlm_dir, args, message):
    from trajvlm.eval.lmms_model import ModelArgsError, TrajVLMLmms

    with pytest.raises(ModelArgsError, match=message.replace("(", r"\(")):
        TrajVLMLmms(pretrained=str(tiny_trajvlm_dir), **args)


def test_unreadable_pretrained_gives_a_clear_error(tmp_path):
    from trajvlm.eval.lmms_model import ModelArgsError, TrajVLMLmms

    with pytest.raises(ModelArgsError, match="pretrained= is required"):
        TrajVLMLmms()
    with pytest.raises(ModelArgsError, match="no such file or directory"):
        TrajVLMLmms(pretrained=str(tmp_path / "nope"))
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ModelArgsError, match="is a file"):
        TrajVLMLmms(pretrained=str(tmp_path / "file.bin"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelArgsError, match="no config.json"):
        TrajVLMLmms(pretrained=str(tmp_path / "empty"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelArgsError, match="cannot load pretrained="):
        TrajVLMLmms(pretrained=str(broken))


# ---------------------------------------------------------------------------------------------------------------
# bad input: missing / corrupt videos


def test_missing_videos_are_all_named_with_doc_id_and_path(model, videomme_visual, videos):
    from trajvlm.eval.lmms_model import EvalDocError

    model.task_dict = {"videomme": {"test": [{"videoID": "vm0"}, {"videoID": "gone1"}, {"videoID": "gone2"}]}}
    with pytest.raises(EvalDocError) as err:
        model.generate_until([_gen(i, videomme_visual) for i in range(3)])
    text = str(err.value)
    assert "2 of 3 requests" in text
    assert "task 'videomme' split 'test' doc 1" in text and str(videos / "videomme" / "data" / "gone1.mp4") in text
    assert "doc 2" in text and "gone2.mp4" in text and "doc 0" not in text


def test_on_video_error_empty_answers_blank_and_goes_on(tiny_trajvlm_dir, videomme_visual):
    from trajvlm.eval.lmms_model import TrajVLMLmms

    lenient = TrajVLMLmms(pretrained=str(tiny_trajvlm_dir), max_frames=8, on_video_error="empty")
    lenient.task_dict = {"videomme": {"test": [{"videoID": "vm0"}, {"videoID": "gone"}, {"videoID": "bad"}]}}
    out = lenient.generate_until([_gen(i, videomme_visual) for i in range(3)])
    assert out[1] == "" and out[2] == "" and isinstance(out[0], str)
    assert len(lenient.failed_docs) == 2
    assert "doc 1" in lenient.failed_docs[0] and "gone.mp4" in lenient.failed_docs[0]
    assert "doc 2" in lenient.failed_docs[1] and "bad.mp4" in lenient.failed_docs[1]


def test_corrupt_video_error_names_doc_and_path(model, videomme_visual):
    from trajvlm.eval.lmms_model import EvalDocError

    model.task_dict = {"videomme": {"test": [{"videoID": "vm0"}, {"videoID": "bad"}]}}
    with pytest.raises(EvalDocError, match=r"task 'videomme' split 'test' doc 1: cannot read video .*bad\.mp4"):
        model.generate_until([_gen(0, videomme_visual), _gen(1, videomme_visual)])


def test_several_videos_per_question_rejected(model, videos):
    from trajvlm.eval.lmms_model import EvalDocError

    model.task_dict = {"multi": {"test": [{}]}}
    path = str(videos / "long.mp4")
    with pytest.raises(EvalDocError, match="one video per question.*2 inputs"):
        model.generate_until([_gen(0, lambda doc: [path, path], task="multi")])


# ---------------------------------------------------------------------------------------------------------------
# visuals, generation, scoring


def test_breakpoint_uses_the_video_up_to_the_timestep(tiny_trajvlm_dir, model, videos):
    from trajvlm.eval.lmms_model import DocRequest, TrajVLMLmms

    path = str(videos / "long.mp4")  # 16 frames at 8 fps
    req = DocRequest(context="", task="moviechat_breakpoint", split="test", doc_id=0)
    whole = model._load_clip(model._to_video_ref([path], req))
    assert whole.frame_indices.max() == 15 and len(whole) == 8  # max_frames=8 spread over the whole video
    assert model._load_clip(model._to_video_ref([path], req)) is whole  # consecutive questions: decoded once
    cut = model._load_clip(model._to_video_ref([{"video_path": path, "timestep": 4}], req))  # MovieChat: a frame index
    assert cut.frame_indices.max() == 4 and cut.frame_indices.min() == 0
    seconds = TrajVLMLmms(pretrained=str(tiny_trajvlm_dir), max_frames=8, breakpoint_unit="second")
    cut = seconds._load_clip(seconds._to_video_ref([{"video_path": path, "timestep": 1.0}], req))
    assert cut.frame_indices.max() == 7  # frames before t = 1 s


def test_generate_until_is_greedy_and_cuts_at_stops(model, videos, monkeypatch):
    calls = []

    def fake_ask(video, question, history=(), **kwargs):
        from trajvlm.chat import ChatResponse

        calls.append(kwargs)
        return ChatResponse(text="B. two\n\nand more", num_visual_tokens=5, num_patch_tokens=16, num_trajectories=2)

    monkeypatch.setattr(model.chat, "ask", fake_ask)
    path = str(videos / "long.mp4")
    model.task_dict = {"t": {"test": [{}]}}
    out = model.generate_until([
        _gen(0, lambda d: [path], task="t", gen_kwargs={"until": ["\n\n"], "do_sample": True, "temperature": 0}),
        _gen(0, lambda d: [path], task="t", gen_kwargs={"until": ["two"], "do_sample": True, "temperature": 0.7, "max_new_tokens": 3}),
        _gen(0, lambda d: [], task="t", gen_kwargs={}),
    ])
    assert out == ["B. two", "B.", "B. two\n\nand more"]
    assert calls[0]["do_sample"] is False and calls[0]["max_new_tokens"] == 128  # temperature 0: greedy
    assert calls[1]["do_sample"] is True and calls[1]["temperature"] == 0.7 and calls[1]["max_new_tokens"] == 3
    assert calls[2]["do_sample"] is False and calls[2]["max_new_tokens"] == 128


def test_loglikelihood_is_the_chat_score(model, videos):
    path = str(videos / "long.mp4")
    model.task_dict = {"t": {"test": [{"answer": "B"}]}}
    dtv = lambda d: [path]  # noqa: E731
    context = "Which way?\nA. left\nB. right\nAnswer with the option's letter from the given choices directly."
    got = model.loglikelihood([
        _instance("loglikelihood", (context, "A", dtv, 0, "t", "test"), "t"),
        _instance("loglikelihood", (context, lambda doc: doc["answer"], dtv, 0, "t", "test"), "t"),  # doc_to_target
        _instance("loglikelihood", ("", "A"), "t"),  # unconditional (no doc, no video)
    ])
    assert got[0] == pytest.approx(model.chat.score(path, context, "A"))
    assert got[1] == pytest.approx(model.chat.score(path, context, "B"))
    assert got[2] == pytest.approx(model.chat.score(None, "", "A"))
    assert all(isinstance(lp, float) and lp < 0 and isinstance(g, bool) for lp, g in got)


def test_multi_round_keeps_history(model, videos, monkeypatch):
    path = str(videos / "long.mp4")
    seen = []
    real_ask = model.chat.ask

    def spy(video, question, history=(), **kwargs):
        seen.append((question, list(history)))
        return real_ask(video, question, history, **kwargs)

    monkeypatch.setattr(model.chat, "ask", spy)

    def doc_to_text(doc, previous_output=None, round_idx=None, previous_round_info=None):
        if round_idx >= 3:
            return None, None, True, previous_output, None
        return [path], f"round {round_idx}?", False, previous_output, {"round": round_idx}

    model.task_dict = {"t": {"test": [{}]}}
    req = _instance("generate_until_multi_round",
                    ("round 0?", {"max_new_tokens": 3}, lambda d: [path], doc_to_text, 0, "t", "test"), "t")
    out = model.generate_until_multi_round([req])
    assert len(out) == 1 and len(out[0]) == 3
    assert [q for q, _ in seen] == ["round 0?", "round 1?", "round 2?"]
    assert seen[2][1] == [("round 0?", out[0][0]), ("round 1?", out[0][1])]


# ---------------------------------------------------------------------------------------------------------------
# the MovieChat judge


def test_judge_check_ok_unreachable_and_malformed():
    from trajvlm.eval.judge import JudgeConfig, JudgeError, check_judge, normalize_url

    with StandInJudge() as server:
        assert check_judge(JudgeConfig(url=server.url, api_key="k", model="m", timeout=10)) == "m"
        bad = JudgeConfig(url=server.url.replace("/chat/completions", "/nothing"), timeout=10)
        with pytest.raises(JudgeError, match="answered HTTP 404"):
            check_judge(bad)
    url = f"http://127.0.0.1:{_closed_port()}/v1/chat/completions"
    with pytest.raises(JudgeError, match=f"judge at {url}.*unreachable"):
        check_judge(JudgeConfig(url=url, timeout=5))
    assert normalize_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert normalize_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert normalize_url("https://h/v1/chat/completions") == "https://h/v1/chat/completions"
    with pytest.raises(JudgeError):
        normalize_url("h:1")


def test_model_stops_before_generating_when_the_judge_is_unreachable(model, videos, monkeypatch):
    from trajvlm.eval.judge import JudgeError

    monkeypatch.setenv("OPENAI_API_URL", f"http://127.0.0.1:{_closed_port()}/v1/chat/completions")
    monkeypatch.setattr(model, "_judge_checked", False)
    monkeypatch.setattr(model.chat, "ask", lambda *a, **k: pytest.fail("generated despite an unreachable judge"))
    model.task_dict = {"moviechat_global": {"test": [{}]}}
    with pytest.raises(JudgeError, match="unreachable"):
        model.generate_until([_gen(0, lambda d: [str(videos / "long.mp4")], task="moviechat_global")])


def test_wrapper_fails_on_unreachable_judge_without_running_lmms_eval(capsys, tmp_path):
    from trajvlm.cli import main

    port = _closed_port()
    code = main(["eval", "--pretrained", str(tmp_path), "--tasks", "@moviechat", "--output", str(tmp_path / "out"),
                 "--judge-url", f"http://127.0.0.1:{port}/v1"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in captured.err and "unreachable" in captured.err
    assert "+ " not in captured.out and not (tmp_path / "out" / "lmms_eval.log").exists()


def test_local_moviechat_scoring_raises_on_failed_judge_call(monkeypatch, tmp_path):
    from trajvlm.eval.judge import JudgeError

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    utils = _load_task_utils("moviechat_local")
    official = utils._official()
    monkeypatch.setattr(official, "API_URL", f"http://127.0.0.1:{_closed_port()}/v1/chat/completions")
    doc = {"video_name": "m.mp4", "question": "What?", "answer": "a cat", "time": 3}
    with pytest.raises(JudgeError, match="failed on video 'm.mp4', question 'What\\?'"):
        utils.moviechat_local_process_results(doc, ["a cat"])


# ---------------------------------------------------------------------------------------------------------------
# `trajvlm eval` against a stand-in lmms-eval


STUB = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    mode, args = sys.argv[1], sys.argv[2:]
    out = Path(args[args.index("--output_path") + 1]) / "model"
    tasks = args[args.index("--tasks") + 1].split(",")
    print("stub lmms-eval", mode)
    if mode == "crash":
        sys.exit(3)
    if mode == "silent_failure":
        print("Traceback (most recent call last):\\nValueError: boom in task utils")
        print("| ERROR | Error during evaluation: boom")
        sys.exit(0)
    out.mkdir(parents=True, exist_ok=True)
    results = {t: {"alias": t, "score,none": 50.0, "score_stderr,none": "N/A"} for t in tasks}
    if mode == "missing_task":
        results.pop(tasks[-1])
    (out / "20260101_000000_results.json").write_text(json.dumps({"results": results, "n-samples": {t: {"effective": 2} for t in tasks}}))
    for t in tasks:
        review = "" if mode == "judge_failed" else "{'pred': 'yes', 'score': 5}"
        sample = {"doc_id": 1, "gpt_eval_score": {"video_name": "v.mp4", "question": "q?", "review": review}}
        (out / f"20260101_000000_samples_{t}.jsonl").write_text(json.dumps(sample) + "\\n")
''')


@pytest.fixture
def stub(tmp_path):
    path = tmp_path / "stub_lmms_eval.py"
    path.write_text(STUB)
    return lambda mode: [sys.executable, str(path), mode]


def _request(tmp_path, tasks, judge=None):
    from trajvlm.eval.run_eval import EvalRequest

    return EvalRequest(tasks=tasks, pretrained="ckpt", output=tmp_path / "out", model_args={"max_frames": "8"}, judge=judge)


def test_wrapper_detects_failures_lmms_eval_exits_0_on(stub, tmp_path):
    from trajvlm.eval.run_eval import EvalRunError, run

    with pytest.raises(EvalRunError, match="no results file(.|\n)*boom in task utils"):
        run(_request(tmp_path / "a", ["videomme"]), stub("silent_failure"))
    with pytest.raises(EvalRunError, match="exited with code 3"):
        run(_request(tmp_path / "b", ["videomme"]), stub("crash"))
    with pytest.raises(EvalRunError, match="no scores for task 'mlvu_dev'"):
        run(_request(tmp_path / "c", ["videomme", "mlvu_dev"]), stub("missing_task"))


def test_wrapper_fails_on_judge_failures_in_samples(stub, tmp_path):
    from trajvlm.eval.judge import JudgeConfig
    from trajvlm.eval.run_eval import EvalRunError, run

    with StandInJudge() as server:
        config = JudgeConfig(url=server.url, api_key="k", model="m", timeout=10)
        with pytest.raises(EvalRunError, match="(?s)judge failed on 1 document.*moviechat_global doc 1 .*v.mp4"):
            run(_request(tmp_path / "a", ["moviechat_global"], config), stub("judge_failed"))
        outcome = run(_request(tmp_path / "b", ["moviechat_global", "videomme"], config), stub("ok"))
    assert outcome.table_file == tmp_path / "b" / "out" / "scores.md"
    table = outcome.table_file.read_text()
    assert "| moviechat_global | score | 50 |  | 2 |" in table and "| videomme | score | 50 |  | 2 |" in table
    assert "pretrained=ckpt,max_frames=8" in table


def test_task_sets_expand():
    from trajvlm.eval.run_eval import EvalRunError, expand_tasks

    assert expand_tasks(["@videomme,shapesqa", "videomme_local"]) == ["videomme", "videomme_w_subtitle", "shapesqa", "videomme_local"]
    assert expand_tasks(["@official", "videomme"])[-1] == "moviechat_breakpoint"
    assert expand_tasks(["videomme", "@shapesqa"]) == ["videomme", "shapesqa", "shapesqa_mc", "shapesqa_cloze"]
    with pytest.raises(EvalRunError, match="unknown task set '@nope'"):
        expand_tasks(["@nope"])
    with pytest.raises(EvalRunError):
        expand_tasks([" , "])


# ---------------------------------------------------------------------------------------------------------------
# local task utils


def test_local_tasks_need_their_data_folder(monkeypatch, tmp_path):
    utils = _load_task_utils("videomme_local")
    monkeypatch.delenv("TRAJVLM_VIDEOMME_DIR", raising=False)
    with pytest.raises(RuntimeError, match="set TRAJVLM_VIDEOMME_DIR"):
        utils.videomme_local_process_docs(None)
    monkeypatch.setenv("TRAJVLM_VIDEOMME_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="no annotation file"):
        utils.videomme_local_process_docs(None)
    (tmp_path / "test.json").write_text(json.dumps([{"videoID": "x", "question": "q"}]))
    docs = utils.videomme_local_process_docs(None)
    assert len(docs) == 1 and utils.videomme_local_doc_to_visual(docs[0]) == [str(tmp_path / "data" / "x.mp4")]


def test_shapesqa_scoring():
    utils = _load_task_utils("shapesqa")
    doc = {"category": "counting", "answer": "C", "options": ["A. 1", "B. 2", "C. 3", "D. 4"], "question": "How many?"}
    assert utils.shapesqa_process_results(doc, ["C"]) == {"shapesqa_acc": 1.0, "shapesqa_counting_acc": 1.0}
    assert utils.shapesqa_process_results(doc, ["The answer is B."])["shapesqa_acc"] == 0.0
    # no letter: the one option named by its text (VLMEvalKit's rule); none or two named -> wrong
    assert utils.shapesqa_process_results(doc, [" 3"])["shapesqa_acc"] == 1.0
    assert utils.shapesqa_process_results(doc, [" 4"])["shapesqa_acc"] == 0.0
    assert utils.shapesqa_process_results(doc, [" 3 or 4"])["shapesqa_acc"] == 0.0
    # an answer that lists what it saw first is read after its last "Answer:"
    assert utils.shapesqa_process_results(doc, [" red star up, 4 crosses. Answer: 3"])["shapesqa_acc"] == 1.0
    assert utils.shapesqa_process_results(doc, [" red star up. Answer: 3 ... Answer: 4"])["shapesqa_acc"] == 0.0
    # log-likelihoods as pairs or as lmms-eval 0.7.3's string form; the highest wins
    results = ["(-3.0, False)", (-0.5, True), "(-inf, False)", (-2.0, False)]
    assert utils.shapesqa_mc_process_results({**doc, "answer": "B"}, results)["shapesqa_mc_acc"] == 1.0
    assert utils.shapesqa_mc_process_results(doc, results) == {"shapesqa_mc_acc": 0.0, "shapesqa_mc_counting_acc": 0.0}
    # cloze: the choices are the option texts; the highest log p(text) wins, scored under its own metric names
    assert utils.shapesqa_cloze_doc_to_choice(doc) == ["1", "2", "3", "4"]
    assert utils.shapesqa_cloze_doc_to_choice({"options": ["A. a red circle", "B. 2. left"]}) == ["a red circle", "2. left"]
    with pytest.raises(ValueError, match="'red'"):
        utils.shapesqa_cloze_doc_to_choice({"options": ["red"]})
    cloze = [(-4.0, False), "(-6.5, False)", "(-1.25, True)", (float("-inf"), False)]
    assert utils.shapesqa_cloze_process_results(doc, cloze) == {"shapesqa_cloze_acc": 1.0, "shapesqa_cloze_counting_acc": 1.0}
    direction = {**doc, "category": "direction", "answer": "A"}
    assert utils.shapesqa_cloze_process_results(direction, cloze) == {"shapesqa_cloze_acc": 0.0,
                                                                       "shapesqa_cloze_direction_acc": 0.0}
    assert utils.shapesqa_cloze_process_results(direction, ["(-0.5, True)", *cloze[1:]])["shapesqa_cloze_acc"] == 1.0
    with pytest.raises(ValueError, match="3 log-likelihoods for 4 options"):
        utils.shapesqa_cloze_process_results(doc, cloze[:3])
    text = utils.shapesqa_doc_to_text(doc, {"pre_prompt": "", "post_prompt": "Answer with the option's letter from the given choices directly."})
    assert text == "How many?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer with the option's letter from the given choices directly."
    assert utils.shapesqa_aggregate([1.0, 0.0, 1.0, 1.0]) == 75.0
