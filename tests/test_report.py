"""`inspect`: the pictures exist, have the asked size, are not blank; index.html lists them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vadfeat.dataset.labels import LabelSet, VideoLabels
from vadfeat.dataset.report import feature_norms, first_component, inspect
from vadfeat.errors import ConfigError


def write_features(root: Path, name: str, rows: int, *, num_frames: int, seed: int,
                   model: dict | None = None, arr: np.ndarray | None = None) -> None:
    if arr is None:
        rng = np.random.default_rng(seed)
        arr = rng.standard_normal((rows, 3, 8)).astype(np.float32)
        arr[rows // 2:] += 2.0  # a visible change half-way
    path = root / f"{name}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    side = {"video": f"{name}.mp4", "num_frames": num_frames, "fps": 25.0, "shape": list(arr.shape),
            "snippets": [[16 * i, 16 * i + 15] for i in range(rows)], "crop_order": None}
    if model is not None:  # what `vadfeat extract` records
        side |= {"model": model, "preset": "videomae-v2", "crop_order": ["tl", "tr", "c"],
                 "settings": {"name": "videomae-v2", "crops": 3, "pooling": "fc_norm"}, "dtype": "fp32"}
    path.with_suffix(".json").write_text(json.dumps(side))


def test_first_component_recovers_a_known_direction() -> None:
    t = np.linspace(-1, 1, 20)
    direction = np.zeros(6)
    direction[2] = 3.0
    rows = t[:, None] * direction[None, :] + 0.01 * np.random.default_rng(1).standard_normal((20, 6))
    pc = first_component(rows)
    # Sign fixed by the largest loading (+3 at index 2): the projection grows with t.
    assert np.corrcoef(pc, t)[0, 1] > 0.999
    # The norm of each crop's vector (last axis), averaged over the crops: ones of length 4 -> 2.
    assert np.allclose(feature_norms(np.ones((2, 3, 4))), [2.0] * 2)
    assert np.allclose(feature_norms(np.stack([np.ones((2, 4)), 2 * np.ones((2, 4))], axis=1)), [3.0] * 2)
    assert first_component(np.ones((4, 3))).tolist() == [0.0] * 4


@pytest.fixture
def report(tmp_path: Path):
    feats = tmp_path / "feat"
    write_features(feats, "abn", 6, num_frames=100, seed=0)
    write_features(feats / "sub", "normal", 4, num_frames=64, seed=1)
    labels = np.zeros(100, np.uint8)
    labels[30:70] = 1
    gt = LabelSet({"abn": VideoLabels(name="abn", frames=labels, video_label=1, source="t")})
    return inspect(feats, tmp_path / "report", labels=gt, width_px=640, height_px=400, dpi=80)


def test_pngs_have_the_asked_size_and_are_not_blank(report) -> None:
    assert [v.name for v in report.videos] == ["abn", "sub/normal"]
    for v in report.videos:
        assert v.png.is_file()
        with Image.open(v.png) as im:
            assert im.size == (640, 400)
            pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
        assert pixels.var() > 0
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    # The shaded anomaly span puts red-tinted pixels into the labelled video's picture only.
    with Image.open(report.videos[0].png) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
    reddish = (rgb[..., 0] - rgb[..., 2] > 20).sum()
    assert reddish > 1000


def test_index_lists_every_picture_with_its_numbers(report) -> None:
    html = report.index.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert srcs == ["abn.png", "sub/normal.png"]
    for src in srcs:
        assert (report.out / src).is_file()
    abn = report.videos[0]
    # 100 GT frames, 6 snippets -> 96 evaluation frames: 4 cut, none padded.
    assert (abn.num_frames, abn.snippets, abn.frames_cut, abn.frames_padded) == (100, 6, 4, 0)
    assert "<td>100</td><td>6</td>" in html
    assert report.videos[1].frames_cut is None  # no labels for it: shown as a dash


def test_selection_and_unknown_names(tmp_path: Path) -> None:
    feats = tmp_path / "feat"
    write_features(feats, "one", 3, num_frames=48, seed=2)
    write_features(feats, "two", 3, num_frames=48, seed=3)
    res = inspect(feats, tmp_path / "r", videos=["two.mp4", "three"], width_px=300, height_px=200)
    assert [v.name for v in res.videos] == ["two"]
    assert [i.video for i in res.issues] == ["three"]
    assert not (tmp_path / "r" / "one.png").exists()


def test_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    feats = tmp_path / "feat"
    write_features(feats, "one", 3, num_frames=48, seed=2)
    out = tmp_path / "r"
    out.mkdir()
    (out / "index.html").write_text("my notes")
    with pytest.raises(ConfigError, match=r"index\.html exists and was not written by `vadfeat inspect`"):
        inspect(feats, out, width_px=300, height_px=200)
    assert (out / "index.html").read_text() == "my notes" and not (out / "one.png").exists()
    # Its own files are replaced on a second run.
    mine = tmp_path / "mine"
    inspect(feats, mine, width_px=300, height_px=200)
    first = (mine / "one.png").stat().st_mtime_ns
    inspect(feats, mine, width_px=300, height_px=200)
    assert (mine / "one.png").stat().st_mtime_ns >= first and (mine / "index.html").exists()
    record = json.loads((mine / ".vadfeat-owned.json").read_text())
    assert record["files"] == {"inspect": ["index.html", "one.png"]}


def test_a_report_folder_of_the_previous_release_is_still_its_own(tmp_path: Path) -> None:
    # 0.x report folders carry .vadfeat-report.json; the files it lists stay inspect's to replace.
    feats = tmp_path / "feat"
    write_features(feats, "one", 3, num_frames=48, seed=2)
    out = tmp_path / "r"
    out.mkdir()
    (out / "index.html").write_text("old report")
    (out / ".vadfeat-report.json").write_text('{"files": ["index.html"]}')
    inspect(feats, out, width_px=300, height_px=200)
    assert (out / "index.html").read_text() != "old report"
    record = json.loads((out / ".vadfeat-owned.json").read_text())
    assert record["files"]["inspect"] == ["index.html", "one.png"]


# ------------------------------------------------------------- what the page says (issue 21)

RANDOM = {"name": "vit_tiny_patch16_224", "backbone": "videomae_v2", "checkpoint": None,
          "checkpoint_sha256": None, "random_weights": True}
TRAINED = {"name": "vit_giant_patch14_224", "backbone": "videomae_v2", "checkpoint": "/ckpt/vit_g_ft.pth",
           "checkpoint_sha256": "ab" * 32, "random_weights": False}


def test_page_names_model_preset_checkpoint_crops_and_warns_about_random_weights(tmp_path: Path) -> None:
    feats = tmp_path / "feat"
    write_features(feats, "one", 4, num_frames=70, seed=2, model=RANDOM)
    page = inspect(feats, tmp_path / "r", width_px=300, height_px=200).index.read_text()
    top = page[:page.index("<table")]  # said before the numbers
    assert "vit_tiny_patch16_224" in top and "videomae-v2" in top and "tl, tr, c" in top
    assert "RANDOM WEIGHTS" in top
    assert "1 of 1 videos drawn" in top
    trained = tmp_path / "feat2"
    write_features(trained, "two", 4, num_frames=70, seed=3, model=TRAINED)
    page = inspect(trained, tmp_path / "r2", width_px=300, height_px=200).index.read_text()
    assert "RANDOM WEIGHTS" not in page
    assert "vit_g_ft.pth" in page and "abababababab" in page
    # Sidecars without the model (written by hand): said, not left blank.
    plain = tmp_path / "feat3"
    write_features(plain, "three", 4, num_frames=70, seed=4)
    page = inspect(plain, tmp_path / "r3", width_px=300, height_px=200).index.read_text()
    assert "not recorded" in page


def test_norm_panel_has_no_offset_and_says_crops_spread_and_dropped_tail(tmp_path: Path) -> None:
    from vadfeat.dataset.report import relative_spread, video_figure
    from vadfeat.store.reader import read_features

    # LayerNorm'd features: every crop vector has norm ~ 25.3, varying by 0.03 %.
    rows = 4
    base = np.ones((rows, 3, 8)) * (25.3 / np.sqrt(8))
    base[:, :, 0] *= 1 + 0.0003 * np.arange(rows)[:, None] / (rows - 1) * 8
    feats = tmp_path / "feat"
    write_features(feats, "one", rows, num_frames=70, seed=0, model=RANDOM, arr=base.astype(np.float32))
    rec = read_features(feats).by_name()["one"]
    norms = feature_norms(rec.load())
    spread = relative_spread(norms)
    assert spread == pytest.approx((norms.max() - norms.min()) / norms.mean())
    assert 0 < spread < 1e-3
    fig = video_figure(rec, rec.load(), None, width_px=600, height_px=400, dpi=80)
    fig.canvas.draw()
    norm_ax, pc_ax = fig.axes[0], fig.axes[1]
    assert norm_ax.yaxis.get_offset_text().get_text() == ""  # no "+2.53e1" above the axis
    assert norm_ax.yaxis.get_major_formatter().get_useOffset() is False
    label = norm_ax.get_ylabel() + norm_ax.get_title(loc="left")
    assert "mean of 3 crops" in label and f"{100 * spread:.2g} %" in label
    # A flat norm looks flat: the panel shows at least 1 % of the mean (tolerance 1e-9).
    low, high = norm_ax.get_ylim()
    assert high - low >= 0.01 * norms.mean() - 1e-9 and low <= norms.min() and high >= norms.max()
    # One legend for both panels, outside them (below the x axis), not over the last snippet.
    assert norm_ax.get_legend() is None and pc_ax.get_legend() is None and len(fig.legends) == 1
    box = fig.legends[0].get_window_extent()
    for ax in (norm_ax, pc_ax):
        assert not box.overlaps(ax.get_window_extent())
    # Frames 64..69 follow the last snippet [48, 63]: shaded and labelled.
    tail = [p for p in norm_ax.patches if "after the last snippet" in (p.get_label() or "")]
    assert len(tail) == 1
    x0, x1 = tail[0].get_x(), tail[0].get_x() + tail[0].get_width()
    assert (x0, x1) == (64, 70)
