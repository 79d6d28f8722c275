"""`vadfeat frames`: true colours, every frame, atomic per video, resumable, failures named."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from vadfeat.cli import main
from vadfeat.store.frames import dump_frames
from vadfeat.store.manifest import read_manifest
from vadfeat.testing import synth


def test_frames_colours_counts_and_resume(tmp_path: Path) -> None:
    src = tmp_path / "in"
    # Pure red, then pure blue: a channel swap (the legacy defect) would show at once.
    frames = list(synth.solid_frames(10, (255, 0, 0), width=64, height=48))
    frames += list(synth.solid_frames(7, (0, 0, 255), width=64, height=48))
    synth.write_video(src / "cam1" / "clip.mp4", frames, fps=25)
    synth.write_video(src / "cam2" / "clip.avi", synth.scene_frames(12, width=96, height=64), fps=25)
    synth.random_bytes(src / "broken.mkv", 3000)
    out = tmp_path / "frames"
    code = main(["frames", str(src), "-o", str(out), "-j", "2"])
    assert code == 1
    files = sorted((out / "cam1" / "clip").iterdir())
    assert [f.name for f in files[:2]] == ["img_00001.jpg", "img_00002.jpg"]
    assert len(files) == 17 and len(list((out / "cam2" / "clip").iterdir())) == 12
    first = cv2.imread(str(files[0]))  # OpenCV reads BGR
    last = cv2.imread(str(files[-1]))
    assert first[..., 2].mean() > 230 and first[..., 0].mean() < 25  # red stays red
    assert last[..., 0].mean() > 230 and last[..., 2].mean() < 25  # blue stays blue
    meta = json.loads((out / "cam1" / "clip.frames.json").read_text())
    assert meta["num_frames"] == 17 and meta["settings"]["pattern"] == "img_{:05d}.jpg"
    entries = {e["video"]: e for e in read_manifest(out)}
    assert entries["broken.mkv"]["status"] == "failed" and entries["broken.mkv"]["error"]
    assert not (out / "broken").exists()
    assert not [p for p in out.rglob("*") if "vadfeat-tmp" in p.name]
    again = dump_frames([src], out)
    assert (again.ok, again.skipped, len(again.failed)) == (0, 2, 1)
    changed = dump_frames([src / "cam1"], tmp_path / "png", pattern="frame_{:06d}.png", start=0,
                          short_side=24)
    png = sorted((tmp_path / "png" / "clip").iterdir())
    assert png[0].name == "frame_000000.png" and cv2.imread(str(png[0])).shape == (24, 32, 3)
    assert changed.exit_code == 0


def test_frames_feed_extract(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A folder written by `frames` is a first-class input of `extract` (PNG: lossless)."""
    from vadfeat.engines.local import FeatureExtractor

    frames = list(synth.scene_frames(33, width=80, height=64, seed=2))
    synth.write_video(tmp_path / "v.mkv", frames, fps=25, codec="ffv1", pix_fmt="bgr0")
    dump_frames([tmp_path / "v.mkv"], tmp_path / "f", pattern="img_{:05d}.png")
    fx = FeatureExtractor(tiny_checkpoint)
    a = fx.extract_video(tmp_path / "v.mkv").features
    b = fx.extract_video(tmp_path / "f" / "v").features
    assert a.shape == b.shape == (2, 64)
    np.testing.assert_allclose(a, b, atol=1e-5)
