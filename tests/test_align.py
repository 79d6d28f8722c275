"""Snippet labels, 16*T frame labels, legacy row alignment and the files align writes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from vadfeat.dataset.align import (
    align,
    evaluation_positions,
    fit_frame_labels,
    legacy_row_index,
    snippet_labels,
)
from vadfeat.dataset.labels import LabelSet, VideoLabels
from vadfeat.errors import ConfigError
from vadfeat.store.reader import read_features


def write_features(root: Path, name: str, rows: int, *, num_frames: int | None,
                   crops: int | None = None, dim: int = 4, layout: str = "flat") -> np.ndarray:
    """Features whose row i is filled with the value i (easy to follow through alignment)."""
    shape = (rows, dim) if crops is None else (rows, crops, dim)
    arr = np.broadcast_to(np.arange(rows, dtype=np.float32).reshape(-1, *[1] * (len(shape) - 1)),
                          shape).copy()
    side = {"video": f"{name}.mp4", "num_frames": num_frames, "fps": 25.0,
            "snippets": [[16 * i, 16 * i + 15] for i in range(rows)], "shape": list(shape)}
    if layout == "fed-wsvad":
        d = root / "features_video" / "i3d" / "combine" / name
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "feature.npy", arr)
        (d / "feature.json").write_text(json.dumps(side))
    else:
        root.mkdir(parents=True, exist_ok=True)
        np.save(root / f"{name}.npy", arr)
        (root / f"{name}.json").write_text(json.dumps(side))
    return arr


def labels_of(**videos: list[int] | np.ndarray) -> LabelSet:
    return LabelSet({n: VideoLabels(name=n, frames=np.asarray(f), video_label=int(np.any(f)),
                                    source="test") for n, f in videos.items()})


# ------------------------------------------------------------------ pure functions


def test_snippet_rules_by_hand() -> None:
    frames = np.array([0] * 10 + [1] * 6 + [0] * 8 + [1] * 8 + [1] * 9 + [0] * 7)
    snips = [(0, 15), (16, 31), (32, 47)]
    assert snippet_labels(frames, snips, rule="max").tolist() == [1.0, 1.0, 1.0]
    assert snippet_labels(frames, snips, rule="mean").tolist() == [6 / 16, 8 / 16, 9 / 16]
    # majority needs more than half: 8 of 16 is a tie and counts as normal.
    assert snippet_labels(frames, snips, rule="majority").tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ConfigError, match="allowed: max, mean, majority"):
        snippet_labels(frames, snips, rule="median")  # type: ignore[arg-type]


def test_snippet_past_the_end_uses_the_last_label() -> None:
    # A padded tail snippet [16, 31] on 20 frames: frames 20..31 repeat frame 19.
    frames = np.array([0] * 19 + [1])
    assert snippet_labels(frames, [(16, 31)], rule="mean").tolist() == [13 / 16]


def test_fit_cuts_the_tail_that_formed_no_snippet() -> None:
    frames = np.arange(40) % 2
    fitted, cut, padded = fit_frame_labels(frames, [(0, 15), (16, 31)])
    assert fitted.tolist() == (np.arange(32) % 2).tolist()
    assert (cut, padded) == (8, 0)


def test_fit_pads_with_the_last_label() -> None:
    frames = np.array([0] * 18 + [1, 1])
    fitted, cut, padded = fit_frame_labels(frames, [(0, 15), (16, 31)])
    assert fitted.tolist() == [0] * 18 + [1] * 14
    assert (cut, padded) == (0, 12)


def test_positions_for_long_and_overlapping_snippets() -> None:
    # A frame-interval-2 snippet covers frames 0, 2, ..., 30: exactly those are used.
    assert evaluation_positions([(0, 30)]).tolist() == list(range(0, 31, 2))
    # A padded tail recorded as [32, 39] (8 real frames) runs on to 47.
    assert evaluation_positions([(32, 39)]).tolist() == list(range(32, 48))
    # Overlapping snippets (stride 8) each contribute their own 16 frames.
    pos = evaluation_positions([(0, 15), (8, 23)])
    assert pos.tolist() == list(range(16)) + list(range(8, 24))
    _, cut, padded = fit_frame_labels(np.zeros(30), [(0, 15), (8, 23)])
    assert (cut, padded) == (6, 0)


@pytest.mark.parametrize(("rows", "num_labels", "expected"), [
    (5, 50, [0, 1, 2]),              # longer: 50 // 16 = 3, truncate
    (3, 48, [0, 1, 2]),              # equal
    (3, 63, [0, 1, 2]),              # equal (63 // 16 = 3)
    (2, 80, [0, 0, 0, 1, 1]),        # shorter: np.repeat by 5 // 2 + 1 = 3, cut to 5
    (3, 64, [0, 0, 1, 1]),           # shorter by one: repeat by 2, cut to 4
])
def test_legacy_row_index(rows: int, num_labels: int, expected: list[int]) -> None:
    assert legacy_row_index(rows, num_labels).tolist() == expected


# ----------------------------------------------------------------------- end to end


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, LabelSet]:
    feats = tmp_path / "feat"
    write_features(feats, "normal_a", 2, num_frames=40)    # 8 tail frames cut
    write_features(feats, "abn_b", 3, num_frames=48)       # exact
    write_features(feats, "abn_c", 2, num_frames=36)       # GT shorter than decoded: padded
    write_features(feats, "unlabelled", 1, num_frames=16)
    gt = labels_of(normal_a=np.zeros(40, np.uint8),
                   abn_b=np.r_[np.zeros(20), np.ones(10), np.zeros(18)].astype(np.uint8),
                   abn_c=np.r_[np.zeros(10), np.ones(10)].astype(np.uint8),
                   stranger=np.zeros(16, np.uint8))
    return feats, gt


def test_align_exact_writes_16T_ground_truth(dataset: tuple[Path, LabelSet], tmp_path: Path) -> None:
    feats, gt = dataset
    out = tmp_path / "out"
    res = align(feats, gt, out, name="mini")
    assert res.test_order == ("abn_b", "abn_c", "normal_a")   # abnormal first, then by name
    got = np.load(out / "gt-mini.npy")
    assert got.dtype == np.float64
    assert got.size == 16 * (3 + 2 + 2)
    b = res.video("abn_b")
    assert (b.frames_cut, b.frames_padded) == (0, 0)
    assert np.load(out / "snippet_labels" / "abn_b.npy").tolist() == [0.0, 1.0, 0.0]
    c = res.video("abn_c")
    assert (c.gt_frames, c.target_frames, c.frames_cut, c.frames_padded) == (20, 32, 0, 12)
    # abn_c's labels end inside the anomaly, so padding continues it.
    assert got[48:80].tolist() == [0.0] * 10 + [1.0] * 22
    a = res.video("normal_a")
    assert (a.frames_cut, a.frames_padded) == (8, 0)
    with open(out / "GT" / "video_label.pickle", "rb") as f:
        assert pickle.load(f) == {"normal_a": [0.0], "abn_b": [1.0], "abn_c": [1.0]}
    with open(out / "GT" / "frame_label.pickle", "rb") as f:
        frame_labels = pickle.load(f)
    assert {k: len(v) for k, v in frame_labels.items()} == {"normal_a": 32, "abn_b": 48, "abn_c": 32}
    assert {(i.video, i.kind) for i in res.issues} == {("unlabelled", "no-labels"),
                                                      ("stranger", "unknown-video")}
    summary = json.loads((out / "align.json").read_text())
    assert summary["videos"]["abn_c"]["frames_padded"] == 12
    offsets = (out / "gt-mini.videos.txt").read_text().splitlines()
    assert offsets == ["abn_b\t0\t48", "abn_c\t48\t80", "normal_a\t80\t112"]
    # Features are untouched in exact mode.
    assert not (out / "features").exists()


def test_test_list_fixes_order_and_reports_strangers(dataset: tuple[Path, LabelSet],
                                                     tmp_path: Path) -> None:
    feats, gt = dataset
    test_list = tmp_path / "test.list"
    test_list.write_text("/x/normal_a__0.npy\n/x/normal_a__1.npy\n/x/abn_c__0.npy\n/x/nobody.npy\n")
    res = align(feats, gt, tmp_path / "out", test_list=test_list)
    assert res.test_order == ("normal_a", "abn_c")
    assert np.load(res.gt_path).size == 16 * 4
    assert [i.kind for i in res.issues if i.video.endswith("nobody")] == ["unknown-video"]
    # Outside the test list a video without labels is a training video, not a problem;
    # without a test list it is reported.
    assert "unlabelled" not in {i.video for i in res.issues}
    assert "unlabelled" in {i.video for i in align(feats, gt, tmp_path / "o2").issues}


@pytest.mark.parametrize(("rows", "gt_frames", "expected_rows"), [
    (6, 50, [0, 1, 2]),          # features longer than len(labels) // 16: truncated
    (3, 55, [0, 1, 2]),          # equal
    (2, 80, [0, 0, 0, 1, 1]),    # shorter: repeated in place
])
def test_legacy_mode_rewrites_feature_rows(tmp_path: Path, rows: int, gt_frames: int,
                                           expected_rows: list[int]) -> None:
    feats = tmp_path / "feat"
    write_features(feats, "v01", rows, num_frames=16 * rows + 5, crops=3, layout="fed-wsvad")
    labels = np.zeros(gt_frames, np.uint8)
    labels[16:20] = 1
    out = tmp_path / "out"
    res = align(feats, labels_of(v01=labels), out, mode="legacy")
    v = res.video("v01")
    target = gt_frames // 16
    assert (v.rows_in, v.rows_out) == (rows, target)
    assert (v.target_frames, v.frames_cut, v.frames_padded) == (16 * target, gt_frames % 16, 0)
    new = read_features(out / "features")
    assert new.layout == "fed-wsvad"
    rec = new.records[0]
    assert rec.shape == (target, 3, 4)
    arr = rec.load()
    assert arr[:, 0, 0].tolist() == [float(r) for r in expected_rows]  # row i holds value i
    assert list(rec.snippets) == [(16 * r, 16 * r + 15) for r in expected_rows]
    assert rec.metadata["derived"][-1]["rows_out"] == target
    # Legacy snippet labels use the 16-frame blocks row i stands for.
    assert np.load(out / "snippet_labels" / "v01.npy").tolist() == [0.0, 1.0] + [0.0] * (target - 2)
    assert np.load(res.gt_path).size == 16 * target


def test_align_rejects_bad_options(dataset: tuple[Path, LabelSet], tmp_path: Path) -> None:
    feats, gt = dataset
    with pytest.raises(ConfigError, match="allowed: exact, legacy"):
        align(feats, gt, tmp_path / "o", mode="paper")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="frames_per_snippet"):
        align(feats, gt, tmp_path / "o", frames_per_snippet=0)


def test_bare_names_matching_two_folders_are_not_guessed(tmp_path: Path) -> None:
    write_features(tmp_path / "f" / "a", "clip", 1, num_frames=16)
    write_features(tmp_path / "f" / "b", "clip", 1, num_frames=16)
    res = align(tmp_path / "f", labels_of(clip=np.zeros(16, np.uint8)), tmp_path / "o")
    assert res.videos == ()
    assert {(i.video, i.kind) for i in res.issues} == {("clip", "ambiguous-name")}


def test_legacy_files_without_sidecars_and_empty_placeholders(tmp_path: Path) -> None:
    # What the legacy scripts leave behind: feature.npy without sidecar, and the empty
    # placeholder files of their step 2 for videos that were never extracted.
    combine = tmp_path / "shanghaitech" / "features_video" / "i3d" / "combine"
    (combine / "01_0014").mkdir(parents=True)
    np.save(combine / "01_0014" / "feature.npy", np.zeros((4, 3, 2), np.float32))
    (combine / "01_0015").mkdir()
    (combine / "01_0015" / "feature.npy").write_bytes(b"")
    fs = read_features(tmp_path / "shanghaitech")
    assert fs.layout == "fed-wsvad" and fs.names() == ("01_0014",)
    assert fs.records[0].snippets[-1] == (48, 63) and fs.records[0].num_frames is None
    assert [i.video for i in fs.issues] == ["01_0015"]
    res = align(fs, labels_of(**{"01_0014": np.zeros(40, np.uint8)}), tmp_path / "o", mode="legacy")
    assert res.video("01_0014").rows_out == 2
    assert {(i.video, i.kind) for i in res.issues} == {("01_0015", "bad-features")}


def test_missing_sidecar_in_vadfeat_output_is_an_interrupted_write(tmp_path: Path) -> None:
    write_features(tmp_path / "f", "done", 2, num_frames=32)
    np.save(tmp_path / "f" / "torn.npy", np.zeros((2, 4), np.float32))  # sidecar never written
    (tmp_path / "f" / "manifest.jsonl").write_text("")
    fs = read_features(tmp_path / "f")
    assert fs.names() == ("done",)
    assert [i.video for i in fs.issues] == ["torn"] and "interrupted" in fs.issues[0].message
