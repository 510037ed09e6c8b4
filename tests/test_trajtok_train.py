"""scripts/train_segmenter.py end to end on a tiny ShapesQA-format folder written here (no generator needed)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trajvlm.trajtok import TrajTok
from trajvlm.video.writer import write_video
from trajvlm.vision.conv_backbone import ConvBackbone

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("train_segmenter", ROOT / "scripts" / "train_segmenter.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def write_folder(root: Path, n_per_split=2, T=8, S=32):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        entries = []
        (root / "videos" / split).mkdir(parents=True)
        for i in range(n_per_split):
            vid = f"{split}_{i}"
            frames = np.full((T, S, S, 3), 60, np.uint8)
            masks = np.zeros((T, S, S), np.uint16)
            graph = np.zeros((2, T), np.int32)
            for t in range(T):
                y, x = 4 + int(rng.integers(0, 2)), 2 + t
                frames[t, y : y + 8, x : x + 8] = (220, 40, 40)
                masks[t, y : y + 8, x : x + 8] = 1
                graph[0, t] = 1
                if t >= 3:
                    frames[t, 20:28, 20:28] = (40, 200, 60)
                    masks[t, 20:28, 20:28] = 2
                    graph[1, t] = 2
            write_video(root / "videos" / split / f"{vid}.mp4", frames)
            np.savez(root / "videos" / split / f"{vid}_mask.npz", masks=masks)
            np.savez(root / "videos" / split / f"{vid}_graph.npz", graph=graph)
            entries.append({"id": vid, "video": f"videos/{split}/{vid}.mp4", "conversations": []})
        (root / f"{split}_captions.json").write_text(json.dumps(entries))


def test_loader_reads_format(tmp_path):
    mod = load_script()
    write_folder(tmp_path)
    clips = mod.load_split(tmp_path, "val")
    assert len(clips) == 2
    c = clips[0]
    assert c.frames.shape == (8, 32, 32, 3) and c.masks.shape == (8, 32, 32) and c.graph.shape == (2, 8)
    assert c.graph[1, :3].sum() == 0 and (c.graph[1, 3:] == 2).all()
    with pytest.raises(FileNotFoundError, match="test_captions.json"):
        mod.load_split(tmp_path, "test")


def test_train_script_runs_and_saves(tmp_path):
    mod = load_script()
    write_folder(tmp_path / "data")
    out = tmp_path / "out"
    rc = mod.main(["--data", str(tmp_path / "data"), "--out", str(out), "--steps", "3", "--eval-every", "2",
                   "--batch", "2", "--clip-frames", "4", "--num-queries", "4", "--hidden-dim", "16"])
    assert rc == 0
    log = json.loads((out / "train_log.json").read_text())
    assert [e["step"] for e in log["curve"]] == [0, 2, 3]
    assert (out / "trajtok" / "trajtok.safetensors").is_file()
    bb = ConvBackbone.from_pretrained(out / "backbone")
    tt = TrajTok.from_pretrained(out / "trajtok")
    feats = bb(torch.zeros(4, 3, 32, 32)).unsqueeze(0)
    assert tt(feats).assignment_logits.shape == (1, 4, 8, 8, 4)


def test_init_and_freeze_backbone_continue_a_saved_segmenter(tmp_path):
    """--init DIR starts from a saved segmenter (its architecture, not the size flags); --freeze-backbone keeps the
    backbone bit-identical while the segmenter trains (a TrajVLM built on that backbone keeps its features)."""
    mod = load_script()
    write_folder(tmp_path / "data")
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--data", str(tmp_path / "data"), "--steps", "2", "--eval-every", "2", "--batch", "2", "--clip-frames", "4"]
    assert mod.main(common + ["--out", str(first), "--num-queries", "4", "--hidden-dim", "16"]) == 0
    assert mod.main(common + ["--out", str(second), "--init", str(first), "--freeze-backbone", "--lr", "1e-2"]) == 0
    bb0, tt0 = mod.load_segmenter(first)
    bb1, tt1 = mod.load_segmenter(second)
    assert tt1.config.num_queries == 4 and tt1.config.hidden_dim == 16  # the saved architecture, not the defaults
    for (k, a), b in zip(bb0.state_dict().items(), bb1.state_dict().values()):
        assert torch.equal(a, b), k
    seg0, seg1 = tt0.segmenter.state_dict(), tt1.segmenter.state_dict()
    assert any(not torch.equal(seg0[k], seg1[k]) for k in seg0)  # the segmenter did train
    # step 0 of the continued run scores the loaded weights, not a fresh initialisation
    log0 = json.loads((first / "train_log.json").read_text())["curve"]
    log1 = json.loads((second / "train_log.json").read_text())["curve"]
    assert log1[0]["video_miou"] == pytest.approx(log0[-1]["video_miou"])


def test_init_refuses_a_mismatched_clip_length(tmp_path, capsys):
    mod = load_script()
    write_folder(tmp_path / "data")
    common = ["--data", str(tmp_path / "data"), "--steps", "1", "--eval-every", "1", "--batch", "2"]
    assert mod.main(common + ["--out", str(tmp_path / "a"), "--clip-frames", "4", "--num-queries", "4",
                              "--hidden-dim", "16"]) == 0
    with pytest.raises(SystemExit):
        mod.main(common + ["--out", str(tmp_path / "b"), "--clip-frames", "8", "--init", str(tmp_path / "a")])
    assert "its TrajTok chunks 4 frames, --clip-frames is 8" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_init_and_eval_only_name_a_folder_that_is_not_a_segmenter(tmp_path):
    mod = load_script()
    write_folder(tmp_path / "data")
    (tmp_path / "half" / "backbone").mkdir(parents=True)
    (tmp_path / "half" / "backbone" / "config.json").write_text("{}")
    for flag, folder, missing in (("--init", tmp_path / "nowhere", "backbone or trajtok"),
                                  ("--eval-only", tmp_path / "half", "trajtok")):
        args = ["--data", str(tmp_path / "data"), flag, str(folder)]
        if flag == "--init":
            args += ["--out", str(tmp_path / "o")]
        with pytest.raises(FileNotFoundError, match=f"is not a saved segmenter.*no {missing}/config.json"):
            mod.main(args)
