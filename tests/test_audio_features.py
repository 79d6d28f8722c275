"""export, compare and inspect on audio features: ``[T, 128]`` per video (one "crop")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vadfeat.dataset.compare import compare
from vadfeat.dataset.export import export
from vadfeat.dataset.labels import LabelSet, VideoLabels
from vadfeat.dataset.report import inspect
from vadfeat.store.reader import read_features

ROWS = {"Fight.2001__#00-01-00_00-02-00_label_B1-0-0": 6, "Walk.2002__#00-03-00_00-04-00_label_A": 5}


def write_audio(root: Path) -> dict[str, np.ndarray]:
    """Random ``[T, 128]`` float32 features with vadfeat-style sidecars (24 fps, 16-frame grid)."""
    root.mkdir(parents=True)
    arrays = {}
    for i, (name, rows) in enumerate(ROWS.items()):
        arr = np.random.default_rng(i).standard_normal((rows, 128)).astype(np.float32)
        np.save(root / f"{name}.npy", arr)
        (root / f"{name}.json").write_text(json.dumps({
            "video": f"{name}.mp4", "num_frames": 16 * rows, "fps": 24.0, "shape": [rows, 128],
            "snippets": [[16 * r, 16 * r + 15] for r in range(rows)], "crop_order": None}))
        arrays[name] = arr
    return arrays


@pytest.mark.parametrize("fmt", ["flat", "per-crop", "ur-dmu", "pel4vad", "vadclip"])
def test_export_keeps_audio_features_as_they_are(tmp_path: Path, fmt: str) -> None:
    arrays = write_audio(tmp_path / "vggish")
    res = export(tmp_path / "vggish", tmp_path / "out", format=fmt)
    assert res.issues == ()
    out = read_features(tmp_path / "out")
    assert sorted(out.names()) == sorted(ROWS)
    for rec in out:
        assert rec.file_shape == (ROWS[rec.name], 128) and len(rec.paths) == 1
        assert np.array_equal(np.load(rec.paths[0]), arrays[rec.name])
        assert rec.snippets == tuple((16 * r, 16 * r + 15) for r in range(ROWS[rec.name]))


def test_compare_pairs_the_xd_release_vggish_file_names(tmp_path: Path) -> None:
    # XD-Violence's released audio features are <video>__vggish.npy without sidecars; before,
    # compare paired none of them with vadfeat's <video>.npy ("no video in both").
    arrays = write_audio(tmp_path / "mine")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    for name, arr in arrays.items():
        np.save(theirs / f"{name}__vggish.npy", arr)
    res = compare(tmp_path / "mine", theirs, plots=False)
    assert res.only_mine == () and res.only_theirs == ()
    assert sorted(v.name for v in res.videos) == sorted(ROWS)
    assert {v.theirs_name for v in res.videos} == {f"{n}__vggish" for n in ROWS}
    assert res.verdict == "identical"
    assert all((v.crops_mine, v.crops_theirs) == (1, 1) for v in res.videos)


def test_compare_finds_a_one_row_shift_in_audio_features(tmp_path: Path) -> None:
    arrays = write_audio(tmp_path / "mine")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    for name, arr in arrays.items():  # theirs starts one window later
        np.save(theirs / f"{name}.npy", arr[1:])
    res = compare(tmp_path / "mine", theirs, plots=False)
    assert [v.offset for v in res.videos] == [1, 1]
    assert all(v.rel_l2 is not None and v.rel_l2 < 1e-6 for v in res.videos)  # exact rows once shifted


def test_inspect_draws_audio_features_with_their_labels(tmp_path: Path) -> None:
    write_audio(tmp_path / "vggish")
    fight, walk = ROWS
    gt = LabelSet({fight: VideoLabels(name=fight, frames=np.r_[np.zeros(40), np.ones(56)],
                                      video_label=1, source="t"),
                   walk: VideoLabels(name=walk, frames=np.zeros(80), video_label=0, source="t")})
    res = inspect(tmp_path / "vggish", tmp_path / "r", labels=gt, width_px=300, height_px=200)
    assert sorted(p.name for p in (tmp_path / "r").glob("*.png")) == sorted(f"{n}.png" for n in ROWS)
    page = res.index.read_text()
    assert all(n in page for n in ROWS)
