"""`trajvlm chat`, `trajvlm tokenize` and `trajvlm demo` (argument handling) with a tiny model, in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from trajvlm.cli import build_parser, main


def test_help_lists_the_demo_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("demo", "chat", "tokenize"):
        assert name in out


def test_demo_arguments_default_to_localhost(tmp_path):
    from trajvlm.commands.demo import settings_from_args

    args = build_parser().parse_args(["demo", "--model", str(tmp_path), "--port", "7999", "--max-frames", "16"])
    s = settings_from_args(args)
    assert s.host == "127.0.0.1" and s.port == 7999 and s.model_path == tmp_path
    assert s.max_frames_limit == 16 and s.default_frames <= 16


def test_demo_without_a_model_says_how_to_get_one(tmp_path, capsys):
    assert main(["demo", "--model", str(tmp_path / "missing")]) == 1
    assert "no TrajVLM model folder" in capsys.readouterr().err


def test_tokenize_prints_counts_and_writes_the_overlay(tiny_trajvlm_dir, tiny_video_path, tmp_path, capsys):
    out = tmp_path / "overlay.png"
    code = main(["tokenize", tiny_video_path, "--model", str(tiny_trajvlm_dir), "--out", str(out), "--json",
                 "--sheet-frames", "4"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 8 and report["trajectories"] == len(report["trajectory_list"]) >= 1
    assert 0 < report["visual_tokens"] <= report["token_budget"]
    assert report["patch_tokens"] > 0
    image = np.asarray(Image.open(out))
    assert image.ndim == 3 and image.shape[0] > 64 and image.shape[1] > 4 * 64  # 4 overlaid frames in one row
    # the table form
    assert main(["tokenize", tiny_video_path, "--model", str(tiny_trajvlm_dir), "--out", str(out),
                 "--token-budget", "2"]) == 0
    text = capsys.readouterr().out
    assert "trajectories:" in text and ("visual tokens: 2 " in text or "visual tokens: 1 " in text), text


def test_chat_streams_the_answer(tiny_trajvlm_dir, tiny_video_path, capsys):
    code = main(["chat", tiny_video_path, "What moves?", "--model", str(tiny_trajvlm_dir), "--max-new-tokens", "6"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.strip()  # the answer
    assert "[decode]" in captured.err and "[stats]" in captured.err and "visual tokens" in captured.err


def test_chat_bad_input_is_a_clear_error(tiny_trajvlm_dir, tiny_video_path, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    assert main(["chat", str(bad), "What moves?", "--model", str(tiny_trajvlm_dir)]) == 1
    assert "cannot read video" in capsys.readouterr().err
    assert main(["chat", tiny_video_path, "  ", "--model", str(tiny_trajvlm_dir)]) == 1
    assert "Please type a question" in capsys.readouterr().err
    assert main(["chat", tiny_video_path, "q", "--model", str(tiny_trajvlm_dir), "--max-minutes", "0.001"]) == 1
    assert "accepts videos up to" in capsys.readouterr().err
