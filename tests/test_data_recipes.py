"""Data-recipe converters on small fake inputs written in each upstream format, end to end into the dataset."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data_pipeline import FakeProcessor

from trajvlm.data.dataset import DataFormatError, LazyVideoTextDataset, SkippedSample, VideoDataConfig
from trajvlm.data.mixture import read_records
from trajvlm.video import write_video

RECIPES = Path(__file__).resolve().parents[1] / "data_recipes"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / name / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _frames(t: int) -> np.ndarray:
    f = np.zeros((t, 16, 16, 3), np.uint8)
    f[:, :, :, 1] = np.arange(t, dtype=np.uint8)[:, None, None] * 10
    return f


def test_recipe_folders_have_readme_and_converter():
    for name in ("llava_video_178k", "llava_558k", "panda70m"):
        text = (RECIPES / name / "README.md").read_text()
        for word in ("Licen", "Size", "layout", "convert.py"):
            assert word.lower() in text.lower(), (name, word)
    assert "sampling_strategy" in (RECIPES / "README.md").read_text()


# ------------------------------------------------------------------------------------------------------------
# LLaVA-Video-178K


def _llava_video_root(tmp_path):
    root = tmp_path / "LLaVA-Video-178K"
    sub = root / "0_30_s_academic_v0_1"
    (sub / "academic_source" / "Charades").mkdir(parents=True)
    write_video(sub / "academic_source" / "Charades" / "ABC12.mp4", _frames(8), fps=4)
    cap = [
        {"id": "ABC12", "data_source": "0_30_s_academic_v0_1", "video": "academic_source/Charades/ABC12.mp4",
         "conversations": [{"from": "human", "value": "<image>\nDescribe this video in detail."},
                           {"from": "gpt", "value": "A person opens a door."}]},
        {"id": "XYZ99", "data_source": "0_30_s_academic_v0_1", "video": "academic_source/Charades/XYZ99.mp4",
         "conversations": [{"from": "human", "value": "Describe.\n<image>"}, {"from": "gpt", "value": "Nothing."}]},
    ]
    (sub / "0_30_s_academic_v0_1_cap_processed.json").write_text(json.dumps(cap))
    oe = {"id": "ABC12", "data_source": "0_30_s_academic_v0_1", "video": "academic_source/Charades/ABC12.mp4",
          "conversations": [{"from": "human", "value": "<image>\nWho is there?"}, {"from": "gpt", "value": "A person."},
                            {"from": "human", "value": "What do they do?"}, {"from": "gpt", "value": "Open a door."}]}
    (sub / "0_30_s_academic_oe_v0_1_qa_processed.jsonl").write_text(json.dumps(oe) + "\n")
    return root, sub


def test_llava_video_178k_converter(tmp_path):
    conv = _load("llava_video_178k")
    root, sub = _llava_video_root(tmp_path)
    out = tmp_path / "out.json"
    inputs = [sub / "0_30_s_academic_v0_1_cap_processed.json", sub / "0_30_s_academic_oe_v0_1_qa_processed.jsonl"]
    report = conv.convert(inputs, out, root=root)
    assert report["converted"] == 3 and report["bad_rows"] == 0
    recs = read_records(out)
    first = recs[0]
    assert first["video"] == "0_30_s_academic_v0_1/academic_source/Charades/ABC12.mp4"
    assert first["conversations"][0]["value"] == "<video>\nDescribe this video in detail."
    assert recs[1]["conversations"][0]["value"] == "<video>\nDescribe."  # placeholder moved to the front
    assert len(recs[2]["conversations"]) == 4 and first["data_source"] == "0_30_s_academic_v0_1"
    # --check_videos drops the record whose archive was not extracted
    report = conv.convert(inputs, out, root=root, check_videos=True)
    assert report["converted"] == 2 and report["missing_videos"] == 1
    # end to end: the dataset reads it with --video_folder = root
    ds = LazyVideoTextDataset(out, FakeProcessor(), VideoDataConfig(max_frames=4), video_folder=root)
    item = ds[0]
    assert not isinstance(item, SkippedSample) and item["pixel_values_videos"][0].shape[0] == 4


@pytest.mark.parametrize(
    "record, message",
    [
        ({"id": "n", "video": "a.mp4"}, "missing or empty 'conversations'"),
        ({"id": "n", "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]}, "missing 'video'"),
        ({"id": "n", "video": "a.mp4", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}]},
         "no '<video>' placeholder"),
        ({"id": "n", "video": "a.mp4", "conversations": [{"from": "human", "value": "<image><image>"},
                                                          {"from": "gpt", "value": "x"}]}, "has 2 placeholder"),
        ({"id": "n", "video": "v_123", "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]},
         "frame folders"),
    ],
)
def test_llava_video_178k_rejects_malformed_records(tmp_path, record, message):
    conv = _load("llava_video_178k")
    root, sub = _llava_video_root(tmp_path)
    bad = sub / "bad_processed.json"
    good = json.loads((sub / "0_30_s_academic_v0_1_cap_processed.json").read_text())[0]
    bad.write_text(json.dumps([good, record]))
    with pytest.raises(DataFormatError, match=message) as info:
        conv.convert([bad], tmp_path / "o.json", root=root)
    assert "bad_processed.json: record #1" in str(info.value)
    report = conv.convert([bad], tmp_path / "o.json", root=root, skip_bad_rows=True)
    assert report["converted"] == 1 and report["bad_rows"] == 1 and "record #1" in report["bad_examples"][0]


def test_llava_video_178k_cli(tmp_path, capsys):
    conv = _load("llava_video_178k")
    root, sub = _llava_video_root(tmp_path)
    out = tmp_path / "cli.jsonl"
    assert conv.main(["--root", str(root), "--inputs", str(sub / "0_30_s_academic_v0_1_cap_processed.json"), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["converted"] == 2 and len(read_records(out)) == 2
    assert conv.main(["--root", str(tmp_path / "elsewhere"), "--inputs", str(sub / "0_30_s_academic_v0_1_cap_processed.json"),
                      "--out", str(out)]) == 2
    assert "not inside --root" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# LLaVA-558K


def _llava_558k(tmp_path, extra=()):
    images = tmp_path / "images" / "00453"
    images.mkdir(parents=True)
    Image.fromarray(_frames(1)[0]).save(images / "004539375.jpg")
    recs = [
        {"id": "004539375", "image": "00453/004539375.jpg",
         "conversations": [{"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>"},
                           {"from": "gpt", "value": "select luxury furniture 3 - inch gel memory foam mattress topper"}]},
        {"id": "GCC_train_002582585", "image": "00258/002582585.jpg",
         "conversations": [{"from": "human", "value": "<image>\nWrite a terse but informative summary of the picture."},
                           {"from": "gpt", "value": "a view of the city from the river"}]},
        *extra,
    ]
    path = tmp_path / "blip_laion_cc_sbu_558k.json"
    path.write_text(json.dumps(recs))
    return path


def test_llava_558k_converter(tmp_path):
    conv = _load("llava_558k")
    src = _llava_558k(tmp_path)
    out = tmp_path / "out.json"
    report = conv.convert(src, out)
    assert report == {**report, "records": 2, "converted": 2, "bad_rows": 0}
    recs = read_records(out)
    assert recs[0] == {"id": "004539375", "image": "00453/004539375.jpg", "conversations": [
        {"from": "human", "value": "<video>\nRender a clear and concise summary of the photo."},
        {"from": "gpt", "value": "select luxury furniture 3 - inch gel memory foam mattress topper"}]}
    report = conv.convert(src, out, image_folder=tmp_path / "images", check_images=True)
    assert report["converted"] == 1 and report["missing_images"] == 1
    ds = LazyVideoTextDataset(out, FakeProcessor(), image_folder=tmp_path / "images")
    assert tuple(ds[0]["pixel_values_videos"][0].shape[:2]) == (1, 3)  # an image is a 1-frame video


def test_llava_558k_rejects_malformed_records(tmp_path):
    conv = _load("llava_558k")
    src = _llava_558k(tmp_path, extra=[{"id": "nope", "conversations": [{"from": "human", "value": "<image>"},
                                                                         {"from": "gpt", "value": "x"}]}])
    with pytest.raises(DataFormatError, match="record #2 \\(id='nope'\\): missing 'image'"):
        conv.convert(src, tmp_path / "o.json")
    report = conv.convert(src, tmp_path / "o.json", skip_bad_rows=True)
    assert report["converted"] == 2 and report["bad_rows"] == 1
    src.write_text(json.dumps([{"id": "g", "image": "a.jpg", "conversations": [
        {"from": "human", "value": "hi"}, {"from": "gpt", "value": "<image> there"}]}]))
    with pytest.raises(DataFormatError, match="expected one, in a human turn"):
        conv.convert(src, tmp_path / "o.json")


# ------------------------------------------------------------------------------------------------------------
# Panda-70M


PANDA_HEADER = ["videoID", "url", "timestamp", "caption", "matching_score"]


def _panda_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PANDA_HEADER)
        for r in rows:
            w.writerow(r)


def _panda_row(vid, spans, captions, scores):
    return [vid, f"https://www.youtube.com/watch?v={vid}", str([list(s) for s in spans]), str(captions), str(scores)]


def test_panda70m_csv_full_layout_end_to_end(tmp_path):
    conv = _load("panda70m")
    write_video(tmp_path / "videos" / "--0K3Dkgjzg.mp4", _frames(16), fps=8)  # 2 s
    _panda_csv(tmp_path / "panda70m_validation.csv", [
        _panda_row("--0K3Dkgjzg", [("0:00:00.000", "0:00:00.750"), ("0:00:01.000", "0:00:02.000")],
                   ["A man is talking.", "A dog runs on the grass."], [0.51, 0.40]),
        _panda_row("abcdEFGhijk", [("0:01:05.500", "0:01:09.009")], ["Waves crash on a beach."], [0.47]),
    ])
    out = tmp_path / "panda.json"
    report = conv.convert_csv(tmp_path / "panda70m_validation.csv", out)
    assert (report["rows"], report["converted"], report["bad_rows"]) == (2, 3, 0)
    recs = read_records(out)
    assert recs[1] == {"id": "--0K3Dkgjzg_00001", "video": "--0K3Dkgjzg.mp4", "start": 1.0, "end": 2.0,
                       "conversations": [{"from": "human", "value": "<video>"},
                                         {"from": "gpt", "value": "A dog runs on the grass."}],
                       "matching_score": 0.40}
    assert (recs[2]["start"], recs[2]["end"]) == (65.5, 69.009)
    report = conv.convert_csv(tmp_path / "panda70m_validation.csv", out, min_score=0.45, prompt="Describe the video.")
    assert report["converted"] == 2 and report["below_min_score"] == 1
    assert read_records(out)[0]["conversations"][0]["value"] == "<video>\nDescribe the video."
    # the dataset decodes only the clip's window
    seen = []

    class Spy(FakeProcessor):
        def __call__(self, conversations, videos):
            seen.append(videos[0].frame_indices)
            return super().__call__(conversations, videos)

    conv.convert_csv(tmp_path / "panda70m_validation.csv", out)
    ds = LazyVideoTextDataset(out, Spy(), VideoDataConfig(max_frames=4), video_folder=tmp_path / "videos")
    ds[1]
    assert seen[0].min() >= 8 and seen[0].max() < 16
    assert isinstance(ds[2], SkippedSample)  # abcdEFGhijk was never downloaded: skipped, not replaced


def test_panda70m_csv_clips_layout(tmp_path):
    conv = _load("panda70m")
    _panda_csv(tmp_path / "p.csv", [_panda_row("vid1", [("0:00:00.000", "0:00:05.005"), ("0:00:05.005", "0:00:10.010")],
                                                ["One.", "Two."], [0.5, 0.5])])
    conv.convert_csv(tmp_path / "p.csv", tmp_path / "o.json", layout="clips")
    recs = read_records(tmp_path / "o.json")
    assert [r["video"] for r in recs] == ["vid1/vid1_00000.mp4", "vid1/vid1_00001.mp4"]
    assert "start" not in recs[0]
    with pytest.raises(DataFormatError, match="needs \\{clip\\}"):
        conv.convert_csv(tmp_path / "p.csv", tmp_path / "o.json", layout="clips", video_template="{videoID}.mp4")
    with pytest.raises(DataFormatError, match="may only use"):
        conv.convert_csv(tmp_path / "p.csv", tmp_path / "o.json", video_template="{video}.mp4")


@pytest.mark.parametrize(
    "row, message",
    [
        (_panda_row("v2", [("0:00:00.000", "0:00:01.000")], ["a", "b"], [0.5, 0.5]), "1 timestamps but 2 captions"),
        (_panda_row("v2", [("0:00:02.000", "0:00:01.000")], ["a"], [0.5]), "is not before end"),
        (_panda_row("v2", [("soon", "0:00:01.000")], ["a"], [0.5]), "bad time 'soon'"),
        (_panda_row("v2", [("0:00:00.000", "0:00:01.000")], [""], [0.5]), "empty caption"),
        (["v2", "u", "[[0, 1]", "['a']", "[0.5]"], "'timestamp' is not a list literal"),
        (_panda_row("", [("0:00:00.000", "0:00:01.000")], ["a"], [0.5]), "empty videoID"),
    ],
)
def test_panda70m_rejects_malformed_rows_with_line_number(tmp_path, row, message):
    conv = _load("panda70m")
    good = _panda_row("v1", [("0:00:00.000", "0:00:01.000")], ["fine"], [0.5])
    _panda_csv(tmp_path / "p.csv", [good, row])
    with pytest.raises(DataFormatError, match=message) as info:
        conv.convert_csv(tmp_path / "p.csv", tmp_path / "o.json")
    assert "p.csv: line 3 (data row 2" in str(info.value)
    report = conv.convert_csv(tmp_path / "p.csv", tmp_path / "o.json", skip_bad_rows=True)
    assert report["converted"] == 1 and report["bad_rows"] == 1


def test_panda70m_missing_columns(tmp_path):
    conv = _load("panda70m")
    (tmp_path / "p.csv").write_text("videoID,url,caption\nv,u,['a']\n")
    with pytest.raises(DataFormatError, match="missing column\\(s\\) \\['timestamp'\\]"):
        conv.convert_csv(tmp_path / "p.csv", tmp_path / "o.json")


def test_panda70m_downloaded_folder(tmp_path, capsys):
    conv = _load("panda70m")
    shard = tmp_path / "dl" / "00000"
    for key, caption, score in [("0000000_00000", "A cat sleeps.", "0.5"), ("0000000_00001", "A cat wakes up.", "0.3")]:
        write_video(shard / f"{key}.mp4", _frames(4), fps=4)
        (shard / f"{key}.txt").write_text(caption)
        (shard / f"{key}.json").write_text(json.dumps({"key": key, "status": "success", "caption": caption,
                                                       "matching_score": score}))
    write_video(shard / "0000001_00000.mp4", _frames(4), fps=4)  # no caption file
    out = tmp_path / "o.json"
    assert conv.main(["--downloaded", str(tmp_path / "dl"), "--out", str(out), "--min_score", "0.4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["clips"], report["converted"], report["without_caption"], report["below_min_score"]) == (3, 1, 1, 1)
    assert read_records(out)[0]["video"] == "00000/0000000_00000.mp4"
    ds = LazyVideoTextDataset(out, FakeProcessor(), VideoDataConfig(max_frames=2), video_folder=tmp_path / "dl")
    assert ds[0]["pixel_values_videos"][0].shape[0] == 2


def test_panda70m_time_parsing():
    conv = _load("panda70m")
    assert conv.parse_time("0:00:10.644") == pytest.approx(10.644)
    assert conv.parse_time("1:02:03.5") == pytest.approx(3723.5)
    assert conv.parse_time(4.25) == 4.25
    with pytest.raises(ValueError):
        conv.parse_time("-0:00:01")
