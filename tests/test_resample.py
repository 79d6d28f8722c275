"""process_feat and uniform sampling on hand-computed cases; folder resampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vadfeat.dataset.resample import process_feat, resample_features, uniform_sample
from vadfeat.errors import ConfigError
from vadfeat.store.reader import read_features


def column(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32).reshape(-1, 1)


def test_process_feat_five_rows_into_two() -> None:
    # linspace(0, 5, 3) = [0, 2.5, 5] -> [0, 2, 5]: rows {0, 1} and {2, 3, 4}.
    out = process_feat(column(0, 1, 2, 3, 4), 2)
    assert out.ravel().tolist() == [0.5, 3.0]


def test_process_feat_seven_rows_into_three() -> None:
    # linspace(0, 7, 4) = [0, 2.33, 4.67, 7] -> [0, 2, 4, 7].
    out = process_feat(column(0, 1, 2, 3, 4, 5, 6), 3)
    assert out.ravel().tolist() == [0.5, 2.5, 5.0]


def test_process_feat_empty_segments_copy_their_start_row() -> None:
    # linspace(0, 2, 5) = [0, .5, 1, 1.5, 2] -> [0, 0, 1, 1, 2]: segments 0 and 2 are empty.
    out = process_feat(column(10, 20), 4)
    assert out.ravel().tolist() == [10.0, 10.0, 20.0, 20.0]


def test_process_feat_single_row_and_dtype() -> None:
    out = process_feat(column(7), 3)
    assert out.ravel().tolist() == [7.0, 7.0, 7.0]
    assert out.dtype == np.float32


@pytest.mark.parametrize("inner", [(3, 4), (10, 2), (1,)])
def test_process_feat_works_along_axis_0_for_any_shape(inner: tuple[int, ...]) -> None:
    # Row t is t everywhere, so every output cell equals the hand value of its segment.
    base = np.arange(5, dtype=np.float32)
    feat = np.broadcast_to(base.reshape(-1, *[1] * len(inner)), (5, *inner)).copy()
    out = process_feat(feat, 2)
    assert out.shape == (2, *inner)
    assert np.all(out[0] == 0.5) and np.all(out[1] == 3.0)


def test_uniform_sample_longer_and_shorter() -> None:
    # linspace(0, 9, 4) = [0, 3, 6, 9].
    out, valid = uniform_sample(column(*range(10)), 4)
    assert out.ravel().tolist() == [0.0, 3.0, 6.0, 9.0] and valid == 4
    # linspace(0, 9, 3) = [0, 4.5, 9] -> rows 0, 4, 9.
    out, _ = uniform_sample(column(*range(10)), 3)
    assert out.ravel().tolist() == [0.0, 4.0, 9.0]
    padded, valid = uniform_sample(np.ones((3, 2, 4), np.float32), 5)
    assert padded.shape == (5, 2, 4) and valid == 3
    assert np.all(padded[:3] == 1) and np.all(padded[3:] == 0)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="segments"):
        process_feat(column(1, 2), 0)
    with pytest.raises(ValueError, match="at least one"):
        process_feat(np.zeros((0, 3)), 2)


def write_features(root: Path, name: str, rows: int, *, per_crop: bool) -> None:
    arr = np.broadcast_to(np.arange(rows, dtype=np.float32).reshape(-1, 1, 1), (rows, 2, 3)).copy()
    side = {"video": f"{name}.mp4", "num_frames": 16 * rows, "fps": 25.0, "shape": [rows, 2, 3],
            "snippets": [[16 * i, 16 * i + 15] for i in range(rows)], "crop_order": ["c", "tl"]}
    root.mkdir(parents=True, exist_ok=True)
    if per_crop:
        for k in range(2):
            np.save(root / f"{name}__{k}.npy", arr[:, k])
    else:
        np.save(root / f"{name}.npy", arr)
    (root / f"{name}.json").write_text(json.dumps(side))


@pytest.mark.parametrize("per_crop", [False, True])
def test_resample_folder_keeps_layout_and_records_history(tmp_path: Path, per_crop: bool) -> None:
    write_features(tmp_path / "f", "long", 7, per_crop=per_crop)
    write_features(tmp_path / "f", "short", 2, per_crop=per_crop)
    res = resample_features(tmp_path / "f", tmp_path / "o", segments=3, method="mean")
    assert res.issues == ()
    out = read_features(tmp_path / "o")
    assert out.layout == ("per-crop" if per_crop else "flat")
    long = out.by_name()["long"]
    assert long.shape == (3, 2, 3)
    assert long.load()[:, 0, 0].tolist() == [0.5, 2.5, 5.0]
    # New rows cover the union of the averaged snippets: rows [0,2), [2,4), [4,7).
    assert list(long.snippets) == [(0, 31), (32, 63), (64, 111)]
    assert long.metadata["derived"][-1]["method"] == "mean"

    res = resample_features(tmp_path / "f", tmp_path / "u", segments=4, method="uniform")
    short = read_features(tmp_path / "u").by_name()["short"]
    assert short.load()[:, 1, 0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert list(short.snippets) == [(0, 15), (16, 31), (-1, -1), (-1, -1)]
    assert short.metadata["derived"][-1]["valid_rows"] == 2
    with pytest.raises(ConfigError, match="allowed: mean, uniform"):
        resample_features(tmp_path / "f", tmp_path / "x", method="max")  # type: ignore[arg-type]


def test_vadclip_rule_means_when_longer_pads_when_shorter() -> None:
    from vadfeat.dataset.resample import resample, vadclip_sample

    # VadCLIP src/utils/tools.py process_feat: T=5 > 2 -> uniform_extract(avg=True), the
    # means over linspace(0, 5, 3) -> [0, 2, 5]: rows {0, 1} and {2, 3, 4} -> 0.5 and 3.
    out, valid = vadclip_sample(column(0, 1, 2, 3, 4), 2)
    assert out.ravel().tolist() == [0.5, 3.0] and valid == 2
    # T=2 <= 4 -> pad with zero rows; 2 real rows (neither `mean`, which would repeat
    # rows, nor `uniform` differ here, but for T > length `uniform` would pick rows 0 and 4).
    out, valid = vadclip_sample(column(10, 20), 4)
    assert out.ravel().tolist() == [10.0, 20.0, 0.0, 0.0] and valid == 2
    assert uniform_sample(column(0, 1, 2, 3, 4), 2)[0].ravel().tolist() == [0.0, 4.0]
    assert resample(column(0, 1, 2, 3, 4), 2, method="vadclip")[0].ravel().tolist() == [0.5, 3.0]


def test_a_failed_write_leaves_no_feature_file_without_its_sidecar(tmp_path: Path, monkeypatch) -> None:
    # Before: the .npy was written, the sidecar failed (a full disk, a name json could not
    # encode) and the .npy stayed alone; `lists` of the output then took it for a legacy file.
    from vadfeat.store import reader

    write_features(tmp_path / "f", "bad", 5, per_crop=True)
    write_features(tmp_path / "f", "good", 5, per_crop=True)
    real = reader.write_json

    def full_disk(path, data):
        if Path(path).name == "bad.json":
            raise OSError(28, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(reader, "write_json", full_disk)
    res = resample_features(tmp_path / "f", tmp_path / "o", segments=2)
    assert [i.video for i in res.issues] == ["bad"] and "No space left" in res.issues[0].message
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if not p.name.startswith(".")) == \
        ["good.json", "good__0.npy", "good__1.npy"]


def test_output_inside_holding_or_being_the_features_is_refused(tmp_path: Path) -> None:
    write_features(tmp_path / "f", "v", 5, per_crop=False)
    for out in (tmp_path / "f", tmp_path / "f" / "sub", tmp_path):
        with pytest.raises(ConfigError, match=r"the input .*/f: `vadfeat resample` never writes"):
            resample_features(tmp_path / "f", out, segments=2)
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["v.json", "v.npy"]
