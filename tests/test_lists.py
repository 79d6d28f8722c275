"""List files: every line points to an existing file with the shape its method reads."""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from vadfeat.dataset.labels import LabelSet, VideoLabels
from vadfeat.dataset.lists import naming_label, read_video_list, write_lists
from vadfeat.errors import ConfigError

VIDEOS = {  # name: (rows, num_frames)
    "Abuse001_x264": (3, 50),
    "Arson002_x264": (2, 40),
    "Normal_Videos_001_x264": (4, 70),
    "Normal_Videos_002_x264": (2, 33),
}
CROPS = 3
DIM = 5


def write_features(root: Path, *, layout: str, crops: int | None = CROPS) -> Path:
    """One video per entry of VIDEOS in the given layout, sidecars per docs/DESIGN.md."""
    for name, (rows, frames) in VIDEOS.items():
        shape = [rows, DIM] if crops is None else [rows, crops, DIM]
        arr = np.random.default_rng(rows).standard_normal(shape).astype(np.float32)
        side = {"video": f"{name}.mp4", "num_frames": frames, "fps": 30.0, "shape": shape,
                "snippets": [[16 * i, 16 * i + 15] for i in range(rows)],
                "crop_order": ["tl", "tr", "c"] if crops else None}
        if layout == "fed-wsvad":
            d = root / "features_video" / "i3d" / "combine" / name
            d.mkdir(parents=True)
            np.save(d / "feature.npy", arr)
            (d / "feature.json").write_text(json.dumps(side))
        elif layout == "per-crop":
            root.mkdir(parents=True, exist_ok=True)
            for k in range(crops or 1):
                np.save(root / f"{name}__{k}.npy", arr[:, k])
            (root / f"{name}.json").write_text(json.dumps(side))
        else:
            root.mkdir(parents=True, exist_ok=True)
            np.save(root / f"{name}.npy", arr)
            (root / f"{name}.json").write_text(json.dumps(side))
    return root


def test_naming_rules() -> None:
    assert naming_label("Normal_Videos_001_x264.mp4", "ucf") == 0
    assert naming_label("Abuse001_x264", "ucf") == 1
    assert naming_label("A.Movie.2001__#00-00-00_00-01-00_label_A", "xd") == 0
    assert naming_label("A.Movie.2001__#00-00-00_00-01-00_label_B2-0-0", "xd") == 1
    with pytest.raises(ConfigError, match="allowed: ucf, xd, shanghaitech"):
        naming_label("x", "shanghai")  # type: ignore[arg-type]
    # ShanghaiTech: NN_NNN videos come from the original (all normal) training set,
    # NN_NNNN from the original test set, every video of which holds an anomaly.
    assert naming_label("01_001", "shanghaitech") == 0
    assert naming_label("train/01_0014.avi", "shanghaitech") == 1
    assert naming_label("clip", "shanghaitech") is None


def test_read_video_list_folds_crops_csv_and_labels(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("path,label\n/a/b/clip__0.npy,Abuse\n/a/b/clip__1.npy,Abuse\n"
                 "/a/other.npy,Normal\n")
    assert read_video_list(p) == ["a/b/clip", "a/other"]
    q = tmp_path / "l.list"
    q.write_text("train/01_0014_0.npy 1.0\nclip.mp4\n\nclip.mp4\n")
    assert read_video_list(q) == ["train/01_0014_0", "clip"]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_rtfm_lists_one_3d_file_per_video_abnormal_first(tmp_path: Path) -> None:
    feats = write_features(tmp_path / "f", layout="flat")
    split = tmp_path / "test_split.txt"
    split.write_text("Abuse001_x264.mp4\nNormal_Videos_002_x264\n")
    res = write_lists(feats, tmp_path / "out", format="rtfm", naming="ucf", test_split=split,
                      name="ucf-vmae")
    train = lines(tmp_path / "out" / "ucf-vmae-train.list")
    test = lines(tmp_path / "out" / "ucf-vmae-test.list")
    assert [Path(p).stem for p in train] == ["Arson002_x264", "Normal_Videos_001_x264"]
    assert [Path(p).stem for p in test] == ["Abuse001_x264", "Normal_Videos_002_x264"]
    for p in train + test:
        arr = np.load(p)
        assert Path(p).is_absolute()
        assert arr.shape == (VIDEOS[Path(p).stem][0], CROPS, DIM)
    assert res.issues == ()


@pytest.mark.parametrize("fmt", ["ur-dmu", "pel4vad"])
def test_per_crop_lists_one_line_per_crop(tmp_path: Path, fmt: str) -> None:
    feats = write_features(tmp_path / "f", layout="per-crop")
    res = write_lists(feats, tmp_path / "out", format=fmt, naming="ucf", name="UCF")  # type: ignore[arg-type]
    train_file = res.files[0]
    assert train_file.name == ("UCF_Train.list" if fmt == "ur-dmu" else "train.list")
    train = lines(train_file)
    assert len(train) == CROPS * len(VIDEOS)      # no labels: everything is training
    # Abnormal first: UR-DMU takes list[:n_abnormal * crops] as the abnormal videos.
    assert all("Normal_" not in p for p in train[: 2 * CROPS])
    assert all("Normal_" in p for p in train[2 * CROPS:])
    assert train[:CROPS] == [str((feats / f"Abuse001_x264__{k}.npy").resolve())
                             for k in range(CROPS)]
    for p in train:
        stem = Path(p).stem.rsplit("__", 1)[0]
        assert np.load(p).shape == (VIDEOS[stem][0], DIM)
    assert lines(res.files[1]) == []


def test_vadclip_csv_labels_and_gt_split(tmp_path: Path) -> None:
    feats = write_features(tmp_path / "f", layout="per-crop")
    # Frame-level ground truth for two videos: without split files they form the test split.
    gt = LabelSet({
        "Abuse001_x264": VideoLabels(name="Abuse001_x264", frames=np.r_[np.zeros(20), np.ones(30)],
                                     video_label=1, source="t"),
        "Normal_Videos_002_x264": VideoLabels(name="Normal_Videos_002_x264", frames=np.zeros(33),
                                              video_label=0, source="t"),
    })
    res = write_lists(feats, tmp_path / "out", format="vadclip", labels=gt, naming="ucf",
                      name="ucf")
    with open(tmp_path / "out" / "ucf_CLIP_rgbtest.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "label"]
    # VadCLIP's test loop scores one file per video: one row each, crop 0 (issue 12).
    assert [(Path(r[0]).name, r[1]) for r in rows[1:]] == [
        ("Abuse001_x264__0.npy", "Abuse"), ("Normal_Videos_002_x264__0.npy", "Normal")]
    with open(tmp_path / "out" / "ucf_CLIP_rgb.csv", newline="") as f:
        train = list(csv.DictReader(f))
    assert [r["label"] for r in train] == ["Arson"] * CROPS + ["Normal"] * CROPS
    for r in train:
        assert np.load(r["path"]).ndim == 2
    assert {e.name for e in res.split("test")} == {"Abuse001_x264", "Normal_Videos_002_x264"}


def test_fed_wsvad_split_files_and_video_labels(tmp_path: Path) -> None:
    feats = write_features(tmp_path / "f", layout="fed-wsvad")
    test = tmp_path / "test.txt"
    test.write_text("Arson002_x264\nNormal_Videos_002_x264\n")
    res = write_lists(feats, tmp_path / "out", format="fed-wsvad", naming="ucf", test_split=test)
    assert lines(tmp_path / "out" / "test_split.txt") == ["Arson002_x264", "Normal_Videos_002_x264"]
    assert lines(tmp_path / "out" / "train_split.txt") == ["Abuse001_x264", "Normal_Videos_001_x264"]
    combine = feats / "features_video" / "i3d" / "combine"
    for e in res.entries:
        assert np.load(combine / e.name / "feature.npy").shape == (VIDEOS[e.name][0], CROPS, DIM)
    with open(tmp_path / "out" / "GT" / "video_label.pickle", "rb") as f:
        assert pickle.load(f) == {"Abuse001_x264": [1.0], "Arson002_x264": [1.0],
                                  "Normal_Videos_001_x264": [0.0], "Normal_Videos_002_x264": [0.0]}


def test_wrong_layout_is_a_usage_error(tmp_path: Path) -> None:
    flat3d = write_features(tmp_path / "f", layout="flat")
    with pytest.raises(ConfigError, match="per-crop"):
        write_lists(flat3d, tmp_path / "o", format="ur-dmu", naming="ucf")
    with pytest.raises(ConfigError, match="fed-wsvad"):
        write_lists(flat3d, tmp_path / "o", format="fed-wsvad", naming="ucf")
    percrop = write_features(tmp_path / "p", layout="per-crop")
    with pytest.raises(ConfigError, match="rtfm"):
        write_lists(percrop, tmp_path / "o", format="rtfm", naming="ucf")
    with pytest.raises(ConfigError, match="allowed: fed-wsvad, rtfm, ur-dmu, pel4vad, vadclip"):
        write_lists(percrop, tmp_path / "o", format="mgfn")  # type: ignore[arg-type]


def test_flat_single_view_files_serve_per_crop_formats(tmp_path: Path) -> None:
    feats = write_features(tmp_path / "f", layout="flat", crops=None)
    res = write_lists(feats, tmp_path / "o", format="ur-dmu", naming="ucf")
    assert len(lines(res.files[0])) == len(VIDEOS)


def test_videos_without_any_label_are_reported_not_listed(tmp_path: Path) -> None:
    feats = write_features(tmp_path / "f", layout="flat")
    gt = LabelSet({"Abuse001_x264": VideoLabels(name="Abuse001_x264", frames=np.ones(50),
                                                video_label=1, source="t")})
    res = write_lists(feats, tmp_path / "o", format="rtfm", labels=gt)
    assert [e.name for e in res.entries] == ["Abuse001_x264"]
    assert {i.video for i in res.issues if i.kind == "no-labels"} == set(VIDEOS) - {"Abuse001_x264"}


def test_read_video_list_splits_on_newline_only_and_keeps_inner_spaces(tmp_path: Path) -> None:
    # Issue 11: str.splitlines() also breaks at "\r", "\x0b", "\x1c".."\x1e", "\x85" and
    # U+2028, cutting such names in two.  CRLF files still work ("\r\n" ends a line).
    p = tmp_path / "split.txt"
    p.write_bytes("my clip 01.mp4\r\nodd\x0bname\nodd\u2028name2\nlast\r".encode())
    assert read_video_list(p) == ["my clip 01", "odd\x0bname", "odd\u2028name2", "last"]


def test_names_that_cannot_be_list_lines_are_refused(tmp_path: Path) -> None:
    # A file name with a newline would become two list lines; one with bytes that are not
    # UTF-8 (held as lone surrogates) cannot be written; both are reported by name.
    root = tmp_path / "f"
    root.mkdir()
    names = ["Abuse001_x264", "Bad\nname_x264", "Bad\rname2_x264",
             "Latin\udce9_x264"]  # b"Latin\xe9_x264" read with surrogateescape
    side = json.dumps({"shape": [2, 3, 4], "num_frames": 32, "snippets": [[0, 15], [16, 31]]})
    for n in names:
        base = os.fsencode(root) + b"/" + n.encode("utf-8", "surrogateescape")
        with open(base + b".npy", "wb") as f:
            np.save(f, np.zeros((2, 3, 4), np.float32))
        with open(base + b".json", "w") as f:
            f.write(side)
    res = write_lists(root, tmp_path / "o", format="rtfm", naming="ucf")
    assert [e.name for e in res.entries] == ["Abuse001_x264"]
    bad = {i.video: i.message for i in res.issues if i.kind == "bad-name"}
    assert set(bad) == {"Bad\nname_x264", "Bad\rname2_x264", "Latin\udce9_x264"}
    assert "line break" in bad["Bad\nname_x264"] and "not UTF-8" in bad["Latin\udce9_x264"]
    assert len(lines(tmp_path / "o" / "dataset-train.list")) == 1


def test_whitespace_paths_refused_where_the_loader_splits_on_whitespace(tmp_path: Path) -> None:
    feats = write_features(tmp_path / "with space", layout="per-crop")
    res = write_lists(feats, tmp_path / "o", format="ur-dmu", naming="ucf")   # line.split()
    assert res.entries == () and {i.kind for i in res.issues} == {"bad-name"}
    ok = write_lists(feats, tmp_path / "o2", format="vadclip", naming="ucf")  # CSV: spaces are fine
    assert len(ok.entries) == len(VIDEOS)


def test_normal_flag_in_a_folder_name_is_refused_for_whole_line_loaders(tmp_path: Path) -> None:
    # PEL4VAD's UCFDataset labels a line normal when 'Normal' occurs anywhere in it: the
    # abnormal videos of this folder would train as normal; the normal ones are read right.
    feats = write_features(tmp_path / "Normal_stuff", layout="per-crop")
    res = write_lists(feats, tmp_path / "o", format="pel4vad", naming="ucf")
    assert [e.name for e in res.entries] == ["Normal_Videos_001_x264", "Normal_Videos_002_x264"]
    assert {i.video for i in res.issues} == {"Abuse001_x264", "Arson002_x264"}
    assert all(i.kind == "bad-name" and "contains it, but the video is abnormal" in i.message
               for i in res.issues)
    ok = write_lists(feats, tmp_path / "o2", format="ur-dmu", naming="ucf")   # UR-DMU: file name only
    assert len(ok.entries) == len(VIDEOS)
    # Lines relative to the features folder do not hold the folder's name: all four listed.
    rel = write_lists(feats, tmp_path / "o3", format="pel4vad", naming="ucf", relative_to=feats)
    assert len(rel.entries) == len(VIDEOS) and rel.issues == ()


def test_normal_video_whose_line_lacks_the_flag_is_refused(tmp_path: Path) -> None:
    # Ground truth says Arson002 is normal: PEL4VAD would read its line as abnormal.
    feats = write_features(tmp_path / "f", layout="per-crop")
    gt = LabelSet({"Arson002_x264": VideoLabels(name="Arson002_x264", frames=np.zeros(40),
                                                video_label=0, source="t")})
    res = write_lists(feats, tmp_path / "o", format="pel4vad", labels=gt, naming="ucf",
                      test_split=["Arson002_x264"])
    bad = [i for i in res.issues if i.kind == "bad-name"]
    assert [i.video for i in bad] == ["Arson002_x264"] and "lacks it" in bad[0].message


def test_rtfm_advice_for_other_layouts_works(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Issue 21: the advice looped (a 1-crop extraction was sent to `export --format rtfm`,
    which cannot make crops that were never taken).  Each piece of advice is followed here."""
    from vadfeat.cli import main
    from vadfeat.testing import synth

    # per-crop files of a multi-crop extraction: export stacks them, then the lists work
    percrop = write_features(tmp_path / "p", layout="per-crop")
    with pytest.raises(ConfigError, match=r"vadfeat export FEATURES --format rtfm -o DIR") as exc:
        write_lists(percrop, tmp_path / "o1", format="rtfm", naming="ucf")
    assert "--crops 10" not in str(exc.value)
    assert main(["export", str(percrop), "--format", "rtfm", "-o", str(tmp_path / "stacked")]) == 0
    res = write_lists(tmp_path / "stacked", tmp_path / "o1", format="rtfm", naming="ucf")
    assert len(lines(res.files[0])) + len(lines(res.files[1])) == len(VIDEOS)

    # a real 1-crop extraction: `export --format rtfm` is not offered; `--crops 10` is, and works
    synth.write_video(tmp_path / "v" / "Abuse001_x264.mp4", synth.scene_frames(32, width=64, height=48))
    base = ["extract", str(tmp_path / "v"), "--checkpoint", str(tiny_checkpoint), "-q"]
    assert main([*base, "-o", str(tmp_path / "one")]) == 0
    with pytest.raises(ConfigError, match=r"extract again with --crops 10") as exc:
        write_lists(tmp_path / "one", tmp_path / "o2", format="rtfm", naming="ucf")
    assert "export" not in str(exc.value)
    assert main([*base, "--crops", "10", "-o", str(tmp_path / "ten")]) == 0
    res = write_lists(tmp_path / "ten", tmp_path / "o2", format="rtfm", naming="ucf")
    (line,) = lines(res.files[0]) + lines(res.files[1])
    assert np.load(line).shape[1] == 10


# --------------------------------------------------------------------------- issue 21

LAYOUT_OF = {"fed-wsvad": "fed-wsvad", "rtfm": "flat", "ur-dmu": "per-crop", "pel4vad": "per-crop",
             "vadclip": "per-crop"}
# Hand-derived from VIDEOS (CROPS = 3) and the split below: 2 test and 2 training videos.
# rtfm and fed-wsvad write one line per video; ur-dmu and pel4vad one line per crop file;
# vadclip's training CSV one row per crop file, its test CSV one row per video (crop 0).
EXPECTED_LINES = {"fed-wsvad": (2, 2), "rtfm": (2, 2), "ur-dmu": (6, 6), "pel4vad": (6, 6),
                  "vadclip": (6, 2)}


def data_lines(path: Path) -> int:
    """What a reader gets from a list file: CSV rows after the header, or non-empty lines."""
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return len(list(csv.DictReader(f)))
    return len([line for line in lines(path) if line.strip()])


@pytest.mark.parametrize("fmt", list(EXPECTED_LINES))
def test_summary_counts_the_lines_each_list_holds(tmp_path: Path, fmt: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21: `--format vadclip` said "test: 4 videos ..., 40 files" for a 4-row CSV."""
    from vadfeat.cli import main

    feats = write_features(tmp_path / "f", layout=LAYOUT_OF[fmt])
    split = tmp_path / "test_split.txt"
    split.write_text("Abuse001_x264\nNormal_Videos_002_x264\n")
    out = tmp_path / "o"
    assert main(["lists", str(feats), "--format", fmt, "--naming", "ucf", "--test-split", str(split),
                 "-o", str(out)]) == 0
    shown = capsys.readouterr().out
    for split_name, expected in zip(("train", "test"), EXPECTED_LINES[fmt], strict=True):
        found = re.search(rf"^{split_name}: 2 videos \(1 abnormal, 1 normal\), (\d+) (rows|lines) "
                          r"in (\S+)$", shown, re.M)
        assert found, shown
        assert int(found[1]) == expected == data_lines(out / found[3])
        assert found[2] == ("rows" if fmt == "vadclip" else "lines")


def test_rerun_names_the_files_it_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21: a rerun with --codebase-root replaced the checkout's files without a word."""
    from vadfeat.cli import main

    feats = write_features(tmp_path / "f", layout="flat")
    repo = tmp_path / "RTFM"
    argv = ["lists", str(feats), "--format", "rtfm", "--naming", "ucf", "--dataset", "ucf",
            "--codebase-root", str(repo)]
    assert main(argv) == 0
    assert "replaced" not in capsys.readouterr().out          # nothing was there
    assert main(argv) == 0
    shown = capsys.readouterr().out
    # RTFM's UCF names; no labels, so no ground truth: the two lists only.
    replaced = [repo / "list" / "ucf-i3d.list", repo / "list" / "ucf-i3d-test.list"]
    line = next(x for x in shown.splitlines() if x.startswith("replaced"))
    assert all(str(p) in line for p in replaced) and "vadfeat lists" in line
    res = write_lists(feats, None, format="rtfm", naming="ucf", dataset="ucf", codebase_root=repo)
    assert sorted(res.replaced) == sorted(replaced)
    fresh = write_lists(feats, tmp_path / "new", format="rtfm", naming="ucf")
    assert fresh.replaced == ()


def test_relative_to_writes_paths_below_the_root(tmp_path: Path) -> None:
    """Issue 21: lists held absolute paths only; moved features broke them."""
    root = tmp_path / "cluster"
    feats = write_features(root / "feats" / "ucf", layout="per-crop")
    res = write_lists(feats, tmp_path / "o", format="ur-dmu", naming="ucf", relative_to=root)
    train = lines(res.files[0])
    assert train[0] == "feats/ucf/Abuse001_x264__0.npy"      # abnormal first, crop 0 first
    assert len(train) == CROPS * len(VIDEOS) and not any(os.path.isabs(x) for x in train)
    # A features folder linked into the root counts as below it (the link's name is written).
    (tmp_path / "scratch").mkdir()
    (root / "feats" / "ucf").rename(tmp_path / "scratch" / "ucf")
    (root / "linked").symlink_to(tmp_path / "scratch" / "ucf")
    linked = write_lists(root / "linked", tmp_path / "o2", format="ur-dmu", naming="ucf",
                         relative_to=root)
    assert lines(linked.files[0]) == [x.replace("feats/ucf/", "linked/") for x in train]
    (root / "linked").unlink()
    (tmp_path / "scratch" / "ucf").rename(root / "feats" / "ucf")
    moved = tmp_path / "elsewhere"
    root.rename(moved)   # the features move: the lines still open from the new root
    for line in train:
        stem = Path(line).stem.rsplit("__", 1)[0]
        assert np.load(moved / line).shape == (VIDEOS[stem][0], DIM)


def test_relative_to_refuses_files_outside_the_root(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from vadfeat.cli import main

    feats = write_features(tmp_path / "f", layout="per-crop")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ConfigError, match=r"Abuse001_x264__0\.npy is not below the root .*other"):
        write_lists(feats, tmp_path / "o", format="vadclip", naming="ucf", relative_to=other)
    assert not (tmp_path / "o").exists()            # found before anything was written
    assert main(["lists", str(feats), "--format", "ur-dmu", "--naming", "ucf", "--relative-to",
                 str(other), "-o", str(tmp_path / "o")]) == 2
    assert "is not below the root" in caplog.text and not (tmp_path / "o").exists()
    # Fed_WSVAD's lists hold video names, not paths: the option does not apply.
    fed = write_features(tmp_path / "fed", layout="fed-wsvad")
    with pytest.raises(ConfigError, match="video names"):
        write_lists(fed, tmp_path / "o", format="fed-wsvad", naming="ucf", relative_to=tmp_path)
    assert main(["lists", str(feats), "--format", "ur-dmu", "--naming", "ucf", "--relative-to",
                 str(tmp_path), "-o", str(tmp_path / "o")]) == 0
    assert lines(tmp_path / "o" / "dataset_Train.list")[0] == "f/Abuse001_x264__0.npy"


def test_pel4vad_lists_a_real_extraction_of_ucf_crimes_tree(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Issue 21: extract mirrors UCF-Crime's folders; PEL4VAD's lists refused its normal videos
    (`Normal` in Training_Normal_Videos_Anomaly/), which the loader reads right."""
    from vadfeat.cli import main
    from vadfeat.testing import synth

    for rel in ("Abuse/Abuse001_x264.mp4", "Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4"):
        synth.write_video(tmp_path / "UCF_Crime" / rel, synth.scene_frames(32, width=64, height=48))
    assert main(["extract", str(tmp_path / "UCF_Crime"), "-o", str(tmp_path / "f"), "--checkpoint",
                 str(tiny_checkpoint), "-q"]) == 0
    res = write_lists(tmp_path / "f", tmp_path / "o", format="pel4vad", dataset="ucf")
    assert res.issues == ()
    train = lines(tmp_path / "o" / "train.list")
    assert [x.split("/f/", 1)[1] for x in train] == [
        "Abuse/Abuse001_x264.npy", "Training_Normal_Videos_Anomaly/Normal_Videos001_x264.npy"]
    # PEL4VAD's UCFDataset: normal when 'Normal' is in the line; class from the file name.
    assert [0.0 if "Normal" in x else 1.0 for x in train] == [1.0, 0.0]
    assert [x.split("/")[-1].split("_")[0] for x in train] == ["Abuse001", "Normal"]
