"""`vadfeat labels|align|lists|resample|inspect` through the dispatcher `vadfeat.cli.main`."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from vadfeat.cli import main

VIDEOS = {"Abuse001_x264": (4, 70), "Normal_Videos_001_x264": (3, 50)}  # rows, decoded frames


def write_features(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, (rows, frames) in VIDEOS.items():
        arr = np.random.default_rng(rows).standard_normal((rows, 2, 6)).astype(np.float32)
        np.save(root / f"{name}.npy", arr)
        side = {"video": f"{name}.mp4", "num_frames": frames, "fps": 30.0, "shape": [rows, 2, 6],
                "snippets": [[16 * i, 16 * i + 15] for i in range(rows)], "crop_order": ["c", "tl"]}
        (root / f"{name}.json").write_text(json.dumps(side))
    return root


@pytest.fixture
def feats(tmp_path: Path) -> Path:
    return write_features(tmp_path / "feat")


@pytest.fixture
def gt(tmp_path: Path, feats: Path) -> Path:
    ann = tmp_path / "Temporal_Anomaly_Annotation.txt"
    ann.write_text("Abuse001_x264.mp4  Abuse  20  40  -1  -1\n"
                   "Normal_Videos_001_x264.mp4  Normal  -1  -1  -1  -1\n")
    out = tmp_path / "gt"
    assert main(["labels", str(ann), "--format", "ucf", "--features", str(feats),
                 "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize("command", ["labels", "align", "lists", "export", "resample", "inspect"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"vadfeat {command}" in capsys.readouterr().out


def test_labels_writes_canonical_folder(gt: Path) -> None:
    index = json.loads((gt / "labels.json").read_text())
    assert index["Abuse001_x264"]["video_label"] == 1
    assert index["Abuse001_x264"]["num_frames"] == 70
    assert np.load(gt / "Abuse001_x264.npy")[19:40].tolist() == [1] * 21


def test_labels_prints_issues_and_exits_1(tmp_path: Path, feats: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    ann = tmp_path / "a.txt"
    ann.write_text("Abuse001_x264.mp4  Abuse  20  40  -1  -1\nGhost.mp4 Abuse 1 2 -1 -1\n"
                   "broken line\n")
    code = main(["labels", str(ann), "--format", "ucf", "--features", str(feats),
                 "-o", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 1
    assert "Ghost.mp4: [unknown-video]" in out
    assert "broken: [malformed-line]" in out
    # The feature video the file does not mention is one summary line, not an issue.
    assert "[no-labels]" not in out
    assert "1 feature video(s) without frame labels" in out
    assert "2 issue(s) reported" in out


def test_labels_normal_ucf_flow_exits_0(tmp_path: Path, feats: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # The README flow: a folder of train and test features, annotations for the test
    # videos only (UCF-Crime annotates 290 of 1900).  Issue 12: this exited 1 with one
    # [no-labels] line per training video, which stopped `set -e` scripts.
    ann = tmp_path / "a.txt"
    ann.write_text("Abuse001_x264.mp4  Abuse  20  40  -1  -1\n")
    code = main(["labels", str(ann), "--format", "ucf", "--features", str(feats),
                 "-o", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0
    # VIDEOS holds 2 videos, 1 annotated: 1 without frame labels, in one line.
    assert out.count("without frame labels") == 1
    assert "1 feature video(s) without frame labels" in out


def test_usage_errors_exit_2(tmp_path: Path, feats: Path) -> None:
    pkl = tmp_path / "frame_label.pickle"
    with open(pkl, "wb") as f:
        pickle.dump({"Abuse001_x264": np.zeros(70)}, f)
    # A pickle is only loaded when named; auto-detection refuses it.
    assert main(["align", str(feats), "--labels", str(pkl), "-o", str(tmp_path / "o")]) == 2
    assert main(["align", str(tmp_path / "missing"), "--labels", str(pkl),
                 "-o", str(tmp_path / "o")]) == 2
    assert main(["labels", str(tmp_path / "a.txt"), "--format", "ucf",
                 "-o", str(tmp_path / "o")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["lists", str(feats), "--format", "mgfn", "-o", str(tmp_path / "o")])
    assert exc.value.code == 2


def test_align_with_explicit_pickle(tmp_path: Path, feats: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    pkl = tmp_path / "frame_label.pickle"
    with open(pkl, "wb") as f:
        pickle.dump({"Abuse001_x264": np.r_[np.zeros(60), np.ones(10)],
                     "Normal_Videos_001_x264": np.zeros(50)}, f)
    code = main(["align", str(feats), "--labels", str(pkl), "--labels-format", "pickle",
                 "--mode", "legacy", "-o", str(tmp_path / "al"), "--name", "ucf"])
    assert code == 0
    assert np.load(tmp_path / "al" / "gt-ucf.npy").size == 16 * (4 + 3)
    assert "Abuse001_x264: rows 4, GT 70 frames -> 64 (cut 6, padded 0)" in capsys.readouterr().out


def test_pipeline_align_lists_resample_inspect(tmp_path: Path, feats: Path, gt: Path) -> None:
    al = tmp_path / "al"
    assert main(["align", str(feats), "--labels", str(gt), "-o", str(al), "--rule", "mean"]) == 0
    assert np.load(al / "gt-test.npy").size == 16 * (4 + 3)
    assert np.load(al / "snippet_labels" / "Abuse001_x264.npy").tolist() == [
        0.0, 13 / 16, 8 / 16, 0.0]

    ls = tmp_path / "lists"
    assert main(["lists", str(feats), "--labels", str(gt), "--format", "rtfm", "--naming", "ucf",
                 "-o", str(ls), "--name", "ucf"]) == 0
    test_lines = (ls / "ucf-test.list").read_text().splitlines()
    assert [Path(p).stem for p in test_lines] == ["Abuse001_x264", "Normal_Videos_001_x264"]
    # The list written by `lists` fixes the order of the ground truth written by `align`.
    assert main(["align", str(feats), "--labels", str(gt), "-o", str(al),
                 "--test-list", str(ls / "ucf-test.list")]) == 0

    rs = tmp_path / "rs"
    assert main(["resample", str(feats), "-o", str(rs), "--segments", "5"]) == 0
    assert np.load(rs / "Abuse001_x264.npy").shape == (5, 2, 6)

    rep = tmp_path / "rep"
    assert main(["inspect", str(feats), "--labels", str(gt), "-o", str(rep),
                 "--width", "400", "--height", "300"]) == 0
    assert (rep / "Abuse001_x264.png").is_file()
    assert "Normal_Videos_001_x264.png" in (rep / "index.html").read_text()


def test_lists_reports_unlabelled_videos_and_exits_1(tmp_path: Path, feats: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["lists", str(feats), "--format", "rtfm", "-o", str(tmp_path / "l")])
    assert code == 1
    assert "[no-labels]" in capsys.readouterr().out


def test_lists_codebase_root_writes_where_the_repo_reads(tmp_path: Path, feats: Path, gt: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "RTFM"
    # Without --dataset the upstream file names are unknown: usage error, nothing written.
    assert main(["lists", str(feats), "--format", "rtfm", "--codebase-root", str(repo)]) == 2
    assert not repo.exists()
    assert main(["lists", str(feats), "--format", "rtfm"]) == 2          # neither -o nor a root
    assert main(["lists", str(feats), "--format", "rtfm", "--labels", str(gt), "--dataset", "ucf",
                 "--codebase-root", str(repo)]) == 0
    out = capsys.readouterr().out
    # RTFM's dataset.py opens list/ucf-i3d.list, list/ucf-i3d-test.list; test_10crop.py list/gt-ucf.npy.
    assert (repo / "list" / "ucf-i3d.list").is_file() and (repo / "list" / "ucf-i3d-test.list").is_file()
    # Both videos have ground truth, so both are test videos: Abuse001 (4 rows) then
    # Normal_Videos_001 (3 rows): 16 * 7 = 112 frames.
    assert np.load(repo / "list" / "gt-ucf.npy").shape == (112,)
    assert "frame ground truth: 112 frames" in out
    assert "the first 0 lines are abnormal" in out


# ------------------------------------------------- names that are not UTF-8 (issue 20)

CAFE = os.fsdecode(b"caf\xe9")  # what os.listdir gives for a Latin-1 file name; extract accepts it


@pytest.fixture
def latin1(tmp_path: Path) -> dict[str, Path]:
    """Features and masks of two videos, one named with the byte 0xE9 (not UTF-8)."""
    names = {CAFE: (4, 64), "plain": (3, 48)}
    feats, gt = tmp_path / "feat", tmp_path / "gt"
    feats.mkdir()
    gt.mkdir()
    for name, (rows, frames) in names.items():
        arr = np.random.default_rng(rows).standard_normal((rows, 2, 6)).astype(np.float32)
        np.save(feats / f"{name}.npy", arr)
        (feats / f"{name}.json").write_text(json.dumps({
            "video": f"{name}.mp4", "num_frames": frames, "shape": [rows, 2, 6],
            "snippets": [[16 * i, 16 * i + 15] for i in range(rows)]}, ensure_ascii=True))
        mask = np.zeros(frames, dtype=np.uint8)
        mask[10:30] = name == CAFE
        np.save(gt / f"{name}.npy", mask)
    return {"feat": feats, "gt": gt}


@pytest.mark.parametrize("command", ["labels", "align", "inspect", "compare", "resample", "lists"])
def test_a_name_that_is_not_utf8_is_written_not_a_traceback(command: str, latin1: dict[str, Path],
                                                            tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    feat, gt, out = latin1["feat"], latin1["gt"], tmp_path / "out"
    argv = {
        "labels": ["labels", str(gt), "--format", "npy-dir", "--features", str(feat), "-o", str(out)],
        "align": ["align", str(feat), "--labels", str(gt), "-o", str(out)],
        "inspect": ["inspect", str(feat), "--width", "200", "--height", "100", "-o", str(out)],
        "compare": ["compare", str(feat), str(feat), "-o", str(out)],
        "resample": ["resample", str(feat), "--segments", "2", "-o", str(out)],
        "lists": ["lists", str(feat), "--format", "rtfm", "--labels", str(gt), "-o", str(out)],
    }[command]
    # lists leaves such a video out by design (list readers open lines as UTF-8) and says so.
    assert main(argv) == (1 if command == "lists" else 0)
    written = {
        "labels": out / f"{CAFE}.npy", "align": out / "frame_labels" / f"{CAFE}.npy",
        "inspect": out / f"{CAFE}.png", "compare": out / f"{CAFE}.png", "resample": out / f"{CAFE}.npy",
        "lists": out / "dataset-test.list",
    }[command]
    assert written.is_file()
    if command == "labels":  # the index names the video as the file system does
        from vadfeat.dataset.labels import read_labels

        assert set(read_labels(out, format="canonical").videos) == {CAFE, "plain"}
    if command == "align":
        assert set(json.loads((out / "align.json").read_text())["videos"]) == {CAFE, "plain"}
    if command == "lists":
        assert "issue  caf\\xe9: [bad-name]" in capsys.readouterr().out  # printed, not a traceback
        assert (out / "dataset-test.list").read_text().splitlines() == [str(feat / "plain.npy")]
    if command in ("inspect", "compare"):  # a valid UTF-8 page linking the file's bytes
        page = (out / "index.html").read_bytes().decode("utf-8")
        assert "caf%E9.png" in page
    if command == "resample":
        assert json.loads((out / f"{CAFE}.json").read_text())["shape"] == [2, 2, 6]
