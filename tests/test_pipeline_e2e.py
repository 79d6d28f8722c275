"""The whole pipeline from the command line on a generated mini dataset (issue 4).

frames -> extract (from the frame folders) -> labels -> lists -> align -> resample
-> inspect, on videos of different lengths (most not multiples of 16) whose
abnormal spans are known because the test generated them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vadfeat.cli import main
from vadfeat.testing import synth

# name: (frames, abnormal span [start, end) or None, split)
VIDEOS = {
    "train_n1": (70, None, "train"),
    "train_a1": (90, (40, 70), "train"),
    "test_n1": (100, None, "test"),
    "test_a1": (121, (64, 112), "test"),
    "test_a2": (57, (0, 20), "test"),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    masks = root / "masks"
    masks.mkdir()
    for k, (name, (n, span, _)) in enumerate(VIDEOS.items()):
        synth.write_video(root / "videos" / f"{name}.mp4",
                          synth.scene_frames(n, width=96, height=72, event_at=span[0] if span else None,
                                             seed=k), fps=25)
        mask = np.zeros(n, dtype=np.uint8)
        if span:
            mask[span[0]:span[1]] = 1
        np.save(masks / f"{name}.npy", mask)
    for split in ("train", "test"):
        (root / f"{split}.txt").write_text(
            "".join(f"{n}\n" for n, v in VIDEOS.items() if v[2] == split))

    assert main(["frames", str(root / "videos"), "-o", str(root / "frames"), "-j", "2"]) == 0
    assert main(["extract", str(root / "frames"), "-o", str(root / "feats"), "--checkpoint",
                 str(tiny_checkpoint), "--crops", "5", "-b", "20", "-q"]) == 0
    assert main(["extract", str(root / "frames"), "-o", str(root / "percrop"), "--checkpoint",
                 str(tiny_checkpoint), "--crops", "5", "--layout", "per-crop", "-b", "20",
                 "-q"]) == 0
    assert main(["labels", str(masks), "--format", "npy-dir", "--features", str(root / "feats"),
                 "-o", str(root / "gt")]) == 0
    return {"root": root, "ckpt": tiny_checkpoint}


def test_frames_and_features_line_up(dataset) -> None:
    root = dataset["root"]
    for name, (n, _, _) in VIDEOS.items():
        assert len(list((root / "frames" / name).glob("img_*.jpg"))) == n
        feats = np.load(root / "feats" / f"{name}.npy")
        assert feats.shape == (n // 16, 5, 64)
        # the per-crop layout holds the same numbers, one file per crop
        for k in range(5):
            np.testing.assert_array_equal(np.load(root / "percrop" / f"{name}__{k}.npy"), feats[:, k])


def test_rtfm_lists_and_gt_length(dataset) -> None:
    root = dataset["root"]
    assert main(["lists", str(root / "feats"), "--labels", str(root / "gt"), "--format", "rtfm",
                 "--train-split", str(root / "train.txt"), "--test-split", str(root / "test.txt"),
                 "--name", "mini", "-o", str(root / "lists")]) == 0
    test_lines = (root / "lists" / "mini-test.list").read_text().split()
    train_lines = (root / "lists" / "mini-train.list").read_text().split()
    # abnormal videos first (RTFM splits normal/abnormal by index)
    assert [Path(p).stem for p in test_lines] == ["test_a1", "test_a2", "test_n1"]
    assert [Path(p).stem for p in train_lines] == ["train_a1", "train_n1"]
    for line in test_lines + train_lines:
        arr = np.load(line)
        assert arr.ndim == 3 and arr.shape[1:] == (5, 64)  # [T, crops, D] as RTFM reads it

    assert main(["align", str(root / "feats"), "--labels", str(root / "gt"), "--test-list",
                 str(root / "lists" / "mini-test.list"), "--name", "mini",
                 "-o", str(root / "aligned")]) == 0
    gt = np.load(root / "aligned" / "gt-mini.npy")
    t_total = sum(np.load(p).shape[0] for p in test_lines)
    assert len(gt) == 16 * t_total  # what RTFM's evaluation multiplies out
    # the concatenation follows the test list, and each piece is the video's first 16*T labels
    offset = 0
    for line in test_lines:
        name = Path(line).stem
        n, span, _ = VIDEOS[name]
        t = n // 16
        want = np.zeros(16 * t)
        if span:
            want[span[0]:min(span[1], 16 * t)] = 1
        np.testing.assert_array_equal(gt[offset:offset + 16 * t], want)
        offset += 16 * t

    # snippet labels (rule max): snippet i is abnormal iff [16i, 16i+15] meets the span
    for name, (n, span, _) in VIDEOS.items():
        labels = np.load(root / "aligned" / "snippet_labels" / f"{name}.npy")
        want = [float(bool(span) and span[0] <= 16 * i + 15 and 16 * i < span[1])
                for i in range(n // 16)]
        assert labels.tolist() == want, name


def test_per_crop_lists_point_to_files(dataset) -> None:
    root = dataset["root"]
    assert main(["labels", str(root / "masks"), "--format", "npy-dir", "--features",
                 str(root / "percrop"), "-o", str(root / "gt_pc")]) == 0
    assert main(["lists", str(root / "percrop"), "--labels", str(root / "gt_pc"), "--format",
                 "ur-dmu", "--train-split", str(root / "train.txt"), "--test-split",
                 str(root / "test.txt"), "--name", "MINI", "-o", str(root / "urdmu")]) == 0
    lines = (root / "urdmu" / "MINI_Test.list").read_text().split()
    assert len(lines) == 3 * 5  # one line per crop
    for line in lines:
        arr = np.load(line)
        assert arr.ndim == 2 and arr.shape[1] == 64  # [T, D] per crop


def test_resample_and_inspect(dataset) -> None:
    root = dataset["root"]
    assert main(["resample", str(root / "feats"), "--segments", "32", "-o", str(root / "r32")]) == 0
    for name in VIDEOS:
        arr = np.load(root / "r32" / f"{name}.npy")
        assert arr.shape == (32, 5, 64)
    assert main(["inspect", str(root / "feats"), "--labels", str(root / "gt"),
                 "-o", str(root / "report")]) == 0
    from PIL import Image

    for name in VIDEOS:
        img = np.asarray(Image.open(root / "report" / f"{name}.png").convert("RGB"))
        assert img.shape == (600, 1200, 3)
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20  # not blank
    html = (root / "report" / "index.html").read_text()
    assert all(f"{name}.png" in html for name in VIDEOS)


def test_demo_runs_and_says_where_everything_went(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21: the demo wrote export-ur-dmu/ without naming it, and printed the
    extraction summary after its "finished" block.  Its printed text is followed here."""
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "-q"]) == 0
    shown = capsys.readouterr().out.strip().splitlines()
    finished = next(i for i, line in enumerate(shown) if line.startswith("vadfeat demo finished"))
    assert "RANDOM WEIGHTS" in shown[finished]
    # The extraction's summary comes before the block, which ends the output.
    assert any(line.startswith("extract: 4 video(s): 4 extracted") for line in shown[:finished])
    block = shown[finished + 1:]
    assert block and all(line.startswith("  ") for line in block)
    named = [w.rstrip(",:") for line in block for w in line.split() if w.startswith(str(out))]
    assert named and all(Path(w).exists() for w in named)          # every path printed exists
    for entry in sorted(out.iterdir()):                            # every output is named
        assert any(w == str(entry) or w.startswith(f"{entry}/") for w in named), entry.name
    lists = [Path(w) for w in named if w.endswith(".list")]
    assert len(lists) == 4 and all(p.read_text().strip() for p in lists)
    assert (out / "export-ur-dmu" / "test_event__0.npy").is_file()
