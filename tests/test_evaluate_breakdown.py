"""trajvlm.train.evaluate: colour_breakdown (ShapesQA accuracy split by videos with / without two objects of the same
colour) and the CLI's decoding bound."""

import json

import pytest

from trajvlm.train.evaluate import colour_breakdown, colour_table


def scene(video, colours):
    return {"video": video, "objects": [{"colour": c, "shape": "circle"} for c in colours]}


def pred(i, video, category, correct):
    return {"id": f"q{i}", "video": video, "category": category, "correct": correct}


def test_breakdown_counts_each_group(tmp_path):
    scenes = [scene("videos/val/a.mp4", ["red", "red", "blue"]), scene("videos/val/b.mp4", ["red", "blue"])]
    (tmp_path / "val_scenes.json").write_text(json.dumps(scenes))
    result = {"split": "val", "predictions": [
        pred(0, "videos/val/a.mp4", "direction", False), pred(1, "videos/val/a.mp4", "direction", True),
        pred(2, "videos/val/a.mp4", "counting", False), pred(3, "videos/val/b.mp4", "direction", True),
        pred(4, "videos/val/b.mp4", "counting", True)]}
    out = colour_breakdown(result, str(tmp_path))
    same, distinct = out["same_colour"], out["distinct_colours"]
    assert (same["direction"]["correct"], same["direction"]["total"]) == (1, 2)
    assert (same["counting"]["correct"], same["counting"]["total"]) == (0, 1)
    assert same["overall"]["accuracy"] == pytest.approx(1 / 3)
    assert distinct["overall"]["accuracy"] == 1.0 and distinct["direction"]["total"] == 1
    table = colour_table(out, ["direction", "counting", "needle"]).splitlines()
    assert table[0] == "| videos | direction | counting | needle | overall |"
    assert table[2] == "| same colour | 50.0% (2) | 0.0% (1) | -- | 33.3% (3) |"
    assert table[3] == "| distinct colours | 100.0% (1) | 100.0% (1) | -- | 100.0% (2) |"


def test_breakdown_refuses_missing_scenes_and_unknown_videos(tmp_path):
    result = {"split": "test", "predictions": [pred(0, "videos/test/x.mp4", "direction", True)]}
    with pytest.raises(FileNotFoundError, match="test_scenes.json"):
        colour_breakdown(result, str(tmp_path))
    (tmp_path / "test_scenes.json").write_text(json.dumps([scene("videos/test/y.mp4", ["red"])]))
    with pytest.raises(KeyError, match="x.mp4"):
        colour_breakdown(result, str(tmp_path))


def test_main_decodes_at_most_max_new_tokens(tmp_path, capsys):
    """The evaluator's CLI on the shipped default model and a small generated ShapesQA folder: --max-new-tokens
    bounds every answer, and the default leaves the shipped model's short answers whole."""
    from trajvlm.data.synthetic.__main__ import main as synth_main
    from trajvlm.demo.settings import default_model_path
    from trajvlm.model import TrajVLMProcessor
    from trajvlm.train.evaluate import main

    data, model = tmp_path / "shapes", str(default_model_path())
    synth_main(["--out", str(data), "--num-videos", "10", "--seed", "3", "--quiet"])
    tok = TrajVLMProcessor.from_pretrained(model).tokenizer
    outputs = {}
    for n in (1, None):
        out = tmp_path / f"n{n}.json"
        assert main(["--model", model, "--data", str(data), "--split", "train", "--limit", "6", "--json", str(out)]
                    + (["--max-new-tokens", str(n)] if n else [])) == 0
        outputs[n] = [p["output"] for p in json.loads(out.read_text())["predictions"]]
    assert len(outputs[1]) == 6 and all(len(tok(o, add_special_tokens=False).input_ids) <= 1 for o in outputs[1])
    assert any(len(tok(o, add_special_tokens=False).input_ids) > 1 for o in outputs[None])  # "red cross", "3 ..."
    with pytest.raises(SystemExit):
        main(["--model", model, "--data", str(data), "--max-new-tokens", "0"])
    assert "--max-new-tokens must be >= 1, got 0" in capsys.readouterr().err
