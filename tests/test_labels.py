"""Ground-truth readers on small handwritten files in each real format."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from vadfeat.dataset.labels import (
    LabelError,
    as_label_set,
    detect_label_format,
    label_spans,
    read_labels,
    write_labels,
)
from vadfeat.errors import ConfigError
from vadfeat.store.reader import normalized_name, read_features, video_key


def write_features(root: Path, name: str, rows: int, *, num_frames: int | None,
                   dim: int = 4, clip_len: int = 16) -> None:
    """A flat feature file and its sidecar as docs/DESIGN.md describes them."""
    path = root / f"{name}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ones((rows, dim), dtype=np.float32))
    side = {"video": f"{name}.mp4", "num_frames": num_frames, "fps": 30.0,
            "snippets": [[i * clip_len, i * clip_len + clip_len - 1] for i in range(rows)],
            "shape": [rows, dim], "crop_order": None}
    path.with_suffix(".json").write_text(json.dumps(side))


def kinds(issues) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for i in issues:
        out.setdefault(i.kind, set()).add(i.video)
    return out


def test_video_key_keeps_dots_that_are_not_extensions() -> None:
    xd = "A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A"
    assert video_key(xd) == xd
    assert video_key(xd + ".mp4") == xd
    assert video_key("Abuse/Abuse028_x264.mp4") == "Abuse028_x264"
    assert video_key("clip.AVI") == "clip"
    assert normalized_name("sub\\dir/clip.mkv") == "sub/dir/clip"


def test_label_spans_half_open() -> None:
    assert label_spans(np.array([0, 1, 1, 0, 1])) == [(1, 3), (4, 5)]
    assert label_spans(np.zeros(3)) == []


UCF_TXT = """\
Abuse028_x264.mp4  Abuse  3  5  -1  -1
Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1
Arson011_x264.mp4  Arson  2  3  7  8
Fighting003_x264.mp4  Fighting  8  12  -1  -1
Broken_x264.mp4  Abuse  5
Bad_x264.mp4  Abuse  x  y  -1  -1
Zero_x264.mp4  Abuse  0  4  -1  -1
Ghost_x264.mp4  Abuse  1  2  -1  -1
"""


@pytest.fixture
def ucf(tmp_path: Path) -> tuple[Path, Path]:
    feats = tmp_path / "feat"
    for name, frames in [("Abuse028_x264", 10), ("Normal_Videos_003_x264", 10),
                         ("Arson011_x264", 8), ("Fighting003_x264", 10), ("Extra_x264", 40)]:
        write_features(feats, name, max(frames // 16, 1), num_frames=frames)
    ann = tmp_path / "Temporal_Anomaly_Annotation.txt"
    ann.write_text(UCF_TXT)
    return ann, feats


def test_ucf_one_based_inclusive_intervals(ucf: tuple[Path, Path]) -> None:
    ann, feats = ucf
    gt = read_labels(ann, format="ucf", features=feats)
    # 1-based inclusive 3..5 is decoded index 2, 3, 4.
    assert gt.videos["Abuse028_x264"].frames.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert gt.videos["Arson011_x264"].frames.tolist() == [0, 1, 1, 0, 0, 0, 1, 1]
    assert gt.videos["Normal_Videos_003_x264"].frames.tolist() == [0] * 10
    assert gt.videos["Normal_Videos_003_x264"].video_label == 0
    assert gt.videos["Abuse028_x264"].video_label == 1
    # 8..12 on a 10-frame video: indices 7..9 kept, the rest reported.
    assert gt.videos["Fighting003_x264"].frames.tolist() == [0] * 7 + [1, 1, 1]
    assert gt.videos["Abuse028_x264"].source.endswith(":1")
    k = kinds(gt.issues)
    assert k["malformed-line"] == {"Broken_x264.mp4", "Bad_x264.mp4", "Zero_x264.mp4"}
    assert k["unknown-video"] == {"Ghost_x264.mp4"}
    assert k["no-labels"] == {"Extra_x264"}
    assert k["span-out-of-range"] == {"Fighting003_x264"}
    assert set(gt.videos) == {"Abuse028_x264", "Normal_Videos_003_x264", "Arson011_x264",
                              "Fighting003_x264"}


def test_span_formats_need_frame_counts(ucf: tuple[Path, Path]) -> None:
    ann, _ = ucf
    with pytest.raises(ConfigError, match="frame counts"):
        read_labels(ann, format="ucf")


def test_ucf_missing_decoded_count_is_reported(tmp_path: Path) -> None:
    write_features(tmp_path / "f", "Abuse028_x264", 1, num_frames=None)
    ann = tmp_path / "a.txt"
    ann.write_text("Abuse028_x264.mp4  Abuse  3  5  -1  -1\n")
    gt = read_labels(ann, format="ucf", features=tmp_path / "f")
    assert len(gt) == 0
    assert kinds(gt.issues) == {"no-frame-count": {"Abuse028_x264"}}


XD_TXT = """\
A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_B1-0-0 2 5
Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6.mp4 0 3 6 8
Odd.Line__#00-00-00_label_B1-0-0 4
Neg__#00-00-01_label_B1-0-0 5 2
"""


def test_xd_zero_based_end_exclusive_and_normal_by_name(tmp_path: Path) -> None:
    feats = tmp_path / "feat"
    names = {"A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_B1-0-0": 10,
             "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6": 10,
             "Normal.Movie.2010__#00-01-00_00-02-00_label_A": 6,
             "Unlisted__#00-00-02_label_B2-0-0": 6}
    for name, n in names.items():
        write_features(feats, name, 1, num_frames=n)
    ann = tmp_path / "annotations.txt"
    ann.write_text(XD_TXT)
    gt = read_labels(ann, format="xd", features=feats)
    mind = gt.videos["A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_B1-0-0"]
    assert mind.frames.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]  # [2, 5)
    boys = gt.videos["Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6"]  # listed with .mp4
    assert boys.frames.tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 0, 0]
    normal = gt.videos["Normal.Movie.2010__#00-01-00_00-02-00_label_A"]
    assert normal.frames.tolist() == [0] * 6 and normal.video_label == 0
    k = kinds(gt.issues)
    assert k["malformed-line"] == {"Odd.Line__#00-00-00_label_B1-0-0",
                                   "Neg__#00-00-01_label_B1-0-0"}
    assert k["no-labels"] == {"Unlisted__#00-00-02_label_B2-0-0"}


def test_pickle_reader_reports_lengths_values_and_unknowns(tmp_path: Path) -> None:
    feats = tmp_path / "feat"
    for name, n in [("01_0014", 4), ("01_0015", 5), ("01_0016", 3), ("01_0017", 3)]:
        write_features(feats, name, 1, num_frames=n)
    gt_path = tmp_path / "frame_label.pickle"
    with open(gt_path, "wb") as f:
        pickle.dump({"01_0014": np.array([0, 0, 1, 1]), "01_0015": [0.0, 1.0, 0.0],
                     "01_0016": np.array([0, 2, 1]), "gone": np.zeros(2)}, f)
    gt = read_labels(gt_path, format="pickle", features=feats)
    assert gt.videos["01_0014"].frames.tolist() == [0, 0, 1, 1]
    assert gt.videos["01_0014"].frames.dtype == np.uint8
    # Shorter than the decoded count: kept as given and reported.
    assert gt.videos["01_0015"].frames.tolist() == [0, 1, 0]
    assert gt.videos["01_0015"].decoded_frames == 5
    k = kinds(gt.issues)
    assert k == {"length-mismatch": {"01_0015"}, "bad-values": {"01_0016"},
                 "unknown-video": {"gone"}, "no-labels": {"01_0016", "01_0017"}}


def test_pickle_is_never_guessed(tmp_path: Path) -> None:
    p = tmp_path / "frame_label.pickle"
    with open(p, "wb") as f:
        pickle.dump({"a": [0, 1]}, f)
    with pytest.raises(ConfigError, match="pickle"):
        detect_label_format(p)
    with pytest.raises(ConfigError, match="pickle"):
        as_label_set(p)


def test_pickle_that_is_not_a_dict(tmp_path: Path) -> None:
    p = tmp_path / "x.pickle"
    with open(p, "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(LabelError, match="expected a dict"):
        read_labels(p, format="pickle")


def test_npy_dir_reader_is_safe_and_reports_bad_files(tmp_path: Path) -> None:
    masks = tmp_path / "test_frame_mask"
    masks.mkdir()
    np.save(masks / "01_0014.npy", np.array([0, 1, 1, 0], dtype=np.int64))
    np.save(masks / "01_0015.npy", np.array([[0, 1], [1, 0]]))
    np.save(masks / "01_0016.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    gt = read_labels(masks, format="npy-dir")
    assert gt.videos["01_0014"].frames.tolist() == [0, 1, 1, 0]
    assert gt.videos["01_0014"].video_label == 1
    assert kinds(gt.issues) == {"bad-values": {"01_0015", "01_0016"}}


def test_canonical_round_trip_and_index(tmp_path: Path) -> None:
    feats = tmp_path / "feat"
    write_features(feats / "sub", "clip", 2, num_frames=40)
    write_features(feats, "other", 1, num_frames=20)
    masks = tmp_path / "masks"
    masks.mkdir()
    np.save(masks / "clip.npy", np.r_[np.zeros(30), np.ones(10)].astype(np.uint8))
    np.save(masks / "other.npy", np.zeros(20, dtype=np.uint8))
    gt = read_labels(masks, format="npy-dir", features=feats)
    assert set(gt.videos) == {"sub/clip", "other"}
    index_path = write_labels(gt, tmp_path / "canon")
    index = json.loads(index_path.read_text())
    assert index["sub/clip"] == {"num_frames": 40, "video_label": 1,
                                 "source": "npy-dir:clip.npy", "decoded_frames": 40}
    assert np.load(tmp_path / "canon" / "sub" / "clip.npy").dtype == np.uint8
    again = read_labels(tmp_path / "canon", format="canonical", features=feats)
    assert detect_label_format(tmp_path / "canon") == "canonical"
    for name, v in gt.videos.items():
        assert np.array_equal(again.videos[name].frames, v.frames)
        assert again.videos[name].video_label == v.video_label
    assert again.issues == ()
    assert again.get("clip.mp4") is again.videos["sub/clip"]


def test_ambiguous_stems_are_reported(tmp_path: Path) -> None:
    feats = tmp_path / "feat"
    write_features(feats / "a", "clip", 1, num_frames=16)
    write_features(feats / "b", "clip", 1, num_frames=16)
    masks = tmp_path / "masks"
    masks.mkdir()
    np.save(masks / "clip.npy", np.zeros(16, dtype=np.uint8))
    gt = read_labels(masks, format="npy-dir", features=read_features(feats))
    assert kinds(gt.issues)["ambiguous-name"] == {"clip"}
    assert len(gt) == 0


def test_unknown_format_names_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="allowed: canonical, pickle, npy-dir, ucf, xd"):
        read_labels(tmp_path, format="json")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- damaged inputs (issue 11)

DAMAGED = Path(__file__).parent / "data" / "damaged_pickles"


# numpy reports an internal error from a half-built array's destructor on one of them.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind", ["TypeError", "MemoryError", "OverflowError", "IndexError",
                                  "SystemError", "LookupError"])
def test_damaged_pickle_is_a_label_error(kind: str) -> None:
    # Each file is a legacy frame_label.pickle ({name: numpy array}, protocol 2 or 4) with
    # one to three bytes overwritten, found by mutating it; pickle.load raises `kind` on it.
    path = DAMAGED / f"{kind}.pickle"
    with pytest.raises(BaseException) as raw:
        pickle.loads(path.read_bytes())
    assert type(raw.value).__name__ == kind  # the file still shows the failure it was kept for
    # The reader never runs numpy's reconstruction: a damaged record is a LabelError for
    # the file, or, where the damage is only in what numpy would have checked, labels whose
    # values and lengths were checked against the bytes (the 4, 40 and 2 labels written).
    try:
        gt = read_labels(path, format="pickle")
    except LabelError as exc:
        assert kind not in ("TypeError", "SystemError")
        assert "not a readable pickle" in str(exc)
    else:
        assert kind in ("TypeError", "SystemError")
        assert {k: v.num_frames for k, v in gt.videos.items()} == {"01_0014": 4, "01_0015": 40,
                                                                  "v3": 2}


def test_pickle_reader_runs_no_code_from_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "frame_label.pickle"
    path.write_bytes(pickle.dumps({"a": Payload()}))
    with pytest.raises(LabelError, match=r"refusing posix\.system"):
        read_labels(path, format="pickle")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_reader_rebuilds_numpy_values(tmp_path: Path, protocol: int) -> None:
    # Arrays of several dtypes, byte orders and memory orders, numpy scalars in a list.
    data = {"f32": np.array([0, 1, 1], np.float32), "big": np.array([1, 0, 1], ">i8"),
            "col": np.array([[1], [0]], np.uint8), "fortran": np.asfortranarray([[0, 1]]),
            "bool": np.array([True, False]), "scalars": [np.float64(1.0), 0.0, 1]}
    path = tmp_path / "gt.pickle"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    gt = read_labels(path, format="pickle")
    assert {k: v.frames.tolist() for k, v in gt.videos.items()} == {
        "f32": [0, 1, 1], "big": [1, 0, 1], "col": [1, 0], "fortran": [0, 1], "bool": [1, 0],
        "scalars": [1, 0, 1]}
    assert not gt.issues


def test_pickle_whose_names_cannot_be_printed_is_a_label_error(tmp_path: Path) -> None:
    # A dict keyed by a 1-tuple nested 100 000 deep (TUPLE1 opcodes): str() of the key,
    # which sorting by name needs, raises RecursionError, a RuntimeError.
    path = tmp_path / "deep.pickle"
    path.write_bytes(b"\x80\x02}q\x00K\x01" + b"\x85" * 100_000 + b"K\x00s.")
    with pytest.raises(LabelError, match="RecursionError"):
        read_labels(path, format="pickle")


def test_sidecar_frame_count_beyond_any_video(tmp_path: Path) -> None:
    # num_frames 2**63 in a sidecar made `labels --format xd` allocate 2**63 labels and raise.
    feats = tmp_path / "feats"
    write_features(feats, "Riot.2001__#00-00-10_label_B1-0-0", 2, num_frames=2**63)
    write_features(feats, "Fight.Club.1999__#01-02-03_label_B1-0-0", 2, num_frames=40)
    ann = tmp_path / "annotations.txt"
    ann.write_text("Riot.2001__#00-00-10_label_B1-0-0 3 9\n"
                   "Fight.Club.1999__#01-02-03_label_B1-0-0 0 8\n")
    fs = read_features(feats)
    assert [i.video for i in fs.issues] == ["Riot.2001__#00-00-10_label_B1-0-0"]
    assert "num_frames" in fs.issues[0].message
    gt = read_labels(ann, format="xd", features=fs)
    # The other video is read as usual: frames 0..7 of 40 abnormal.
    assert gt.videos["Fight.Club.1999__#01-02-03_label_B1-0-0"].frames.sum() == 8
    from vadfeat.cli import main

    assert main(["labels", str(ann), "--format", "xd", "--features", str(feats),
                 "-o", str(tmp_path / "gt")]) == 1  # reported, not raised


def test_canonical_index_nested_too_deep(tmp_path: Path) -> None:
    # json raises RecursionError (not ValueError) on 100 000 nested lists.
    (tmp_path / "labels.json").write_text("[" * 100_000)
    with pytest.raises(LabelError, match="not valid JSON"):
        read_labels(tmp_path, format="canonical")


def test_dataset_modules_import_one_another_without_a_cycle() -> None:
    # Before: lists imported fit_frame_labels from align (inside a function), and align
    # imported abnormal_first and read_video_list from lists.  Every import counts, at
    # module or function level.
    import ast

    import vadfeat.dataset

    folder = Path(vadfeat.dataset.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                       [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            deps |= {m.split(".")[2] for m in modules if m.startswith("vadfeat.dataset.")}
        graph[path.stem] = deps - {path.stem}
    assert "lists" in graph and "align" in graph and "labels" in graph

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d}))
                   for d in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m, {m})] == []
    from vadfeat.dataset import align, labels

    assert align.fit_frame_labels is labels.fit_frame_labels  # the old import path still works
