"""The extraction engine end to end: presets, real video, layouts, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reference import legacy_features
from vadfeat.cli import main
from vadfeat.engines.local import FeatureExtractor, extract
from vadfeat.errors import ConfigError
from vadfeat.store.manifest import read_manifest
from vadfeat.testing import synth


def npy_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.npy"))


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if "vadfeat-tmp" in p.name]


# --------------------------------------------------------------------------- fed-wsvad parity


def test_fed_wsvad_matches_independent_legacy_pipeline(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """SPEC §1 re-implemented in the test (OpenCV, JPEG frames, transformers model).

    The frame folder is written the way the legacy extraction script wrote it
    (channels swapped).  Shorter side 150 < 226 exercises the enlargement rule;
    53 frames exercise the dropped tail (3 snippets, 5 frames dropped).
    Tolerance 1e-4: the two sides differ only in float32 summation order (SDPA vs
    eager attention, fused qkv) and in float64 vs float32 pixel arithmetic, both
    ~1e-6 here; a wrong channel order, scaling or resize step moves features by >1e-2.
    """
    frames = list(synth.scene_frames(53, width=200, height=150, event_at=30, seed=3))
    folder = tmp_path / "frames" / "vid01"
    synth.write_frame_folder(folder, frames, legacy_swapped=True)
    want = legacy_features(folder, tiny_checkpoint)
    assert want.shape == (3, 3, 64)

    summary = extract([tmp_path / "frames"], tmp_path / "out", checkpoint=tiny_checkpoint,
                      preset="fed-wsvad", frames_colour="legacy-swapped", progress=False,
                      batch_size=2)
    assert summary.exit_code == 0, summary.describe()
    got = np.load(tmp_path / "out" / "vid01.npy")
    meta = json.loads((tmp_path / "out" / "vid01.json").read_text())
    assert got.dtype == np.float32 and got.shape == (3, 3, 64)
    assert meta["snippets"] == [[0, 15], [16, 31], [32, 47]]  # temporal order, tail dropped
    assert meta["num_frames"] == 53 and meta["preset"] == "fed-wsvad"
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # Sanity: the check can fail. The same frames read with true colours differ clearly.
    other = FeatureExtractor(tiny_checkpoint, preset="fed-wsvad").extract_video(folder).features
    assert np.abs(other - want).max() > 1e-3


# --------------------------------------------------------------------------- model inputs


def _reference_v2(frame: np.ndarray) -> np.ndarray:
    """videomae-v2 per SPEC §2, written independently: short side 224 (bilinear, float),
    floor long side, centre crop 224, ImageNet mean/std, RGB. Returns [3, 224, 224]."""
    h, w = frame.shape[:2]
    if h <= w:
        nh, nw = 224, int(224 * w / h)
    else:
        nh, nw = int(224 * h / w), 224
    x = cv2.resize(frame.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = round((nh - 224) / 2), round((nw - 224) / 2)
    x = x[top:top + 224, left:left + 224] / 255.0
    x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return x.transpose(2, 0, 1).astype(np.float32)


def _reference_tad(frame: np.ndarray) -> np.ndarray:
    """videomae-tad: squash to 224x224 bilinear (no antialias), [0, 1], RGB."""
    x = cv2.resize(frame.astype(np.float32), (224, 224), interpolation=cv2.INTER_LINEAR) / 255.0
    return x.transpose(2, 0, 1).astype(np.float32)


@pytest.mark.parametrize(("preset", "reference", "atol"), [
    # torch's bilinear computes source positions in float32 and cv2 in fixed/float64
    # variants: up to ~0.03/255 apart on noisy frames; /std (min 0.224) gives ~5e-4.
    ("videomae-v2", _reference_v2, 1e-3),
    ("videomae-tad", _reference_tad, 2.5e-4),
])
def test_model_input_matches_documented_preprocessing(tmp_path: Path, tiny_checkpoint: Path,
                                                      preset, reference, atol) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 170, 3), dtype=np.uint8) for _ in range(20)]
    # PNG: lossless, so the reference sees exactly the pixels vadfeat decodes.
    folder = tmp_path / "f"
    synth.write_frame_folder(folder, frames, pattern="frame_{:03d}.png", start=0)
    ext = FeatureExtractor(tiny_checkpoint, preset=preset, tail="pad")
    clips = list(ext.snippet_stream(folder))
    assert [rng_ for rng_, _ in clips] == [(0, 15), (16, 19)]
    last = clips[1][1]
    assert last.shape == (1, 3, 16, 224, 224)
    for t in range(16):
        src = min(16 + t, 19)  # the padded snippet repeats the last frame
        np.testing.assert_allclose(last[0, :, t].numpy(), reference(frames[src]), atol=atol, rtol=0)


# --------------------------------------------------------------------------- real video


def test_real_clip_frame_count_and_determinism(tmp_path: Path, tiny_checkpoint: Path,
                                               bigbuckbunny: Path) -> None:
    clip = bigbuckbunny
    cap = cv2.VideoCapture(str(clip))
    independent = 0
    while cap.read()[0]:
        independent += 1
    cap.release()
    assert independent > 100
    a = extract([clip], tmp_path / "a", checkpoint=tiny_checkpoint, progress=False, workers=2)
    b = extract([clip], tmp_path / "b", checkpoint=tiny_checkpoint, progress=False, batch_size=3)
    assert a.exit_code == b.exit_code == 0
    meta = json.loads((tmp_path / "a" / "bigbuckbunny.json").read_text())
    assert meta["num_frames"] == independent
    assert len(meta["snippets"]) == independent // 16
    fa, fb = np.load(tmp_path / "a" / "bigbuckbunny.npy"), np.load(tmp_path / "b" / "bigbuckbunny.npy")
    assert fa.shape == (independent // 16, 64)
    assert np.array_equal(fa, fb)  # same bits whatever the batching and worker count
    assert meta["model"]["checkpoint_sha256"] and meta["model"]["random_weights"] is False
    for key in ("vadfeat_version", "settings", "overrides", "fps", "width", "height", "dtype",
                "device", "source", "shape", "warnings", "declared_frames"):
        assert key in meta, key


# --------------------------------------------------------------------------- outputs and resume


def _three_videos(root: Path) -> Path:
    synth.write_video(root / "in" / "a" / "001.mp4", synth.scene_frames(40, seed=1), fps=25)
    synth.write_video(root / "in" / "b" / "001.mp4", synth.scene_frames(37, seed=2), fps=25)
    synth.write_video(root / "in" / "c.mkv", synth.scene_frames(20, seed=3), fps=25)
    return root / "in"


def test_layouts_crops_and_shapes(tmp_path: Path, tiny_checkpoint: Path) -> None:
    src = _three_videos(tmp_path)
    s = extract([src], tmp_path / "flat", checkpoint=tiny_checkpoint, progress=False)
    assert s.ok == 3
    assert np.load(tmp_path / "flat" / "a" / "001.npy").shape == (2, 64)
    assert np.load(tmp_path / "flat" / "b" / "001.npy").shape == (2, 64)  # same stem, no clash
    extract([src], tmp_path / "fed", checkpoint=tiny_checkpoint, preset="fed-wsvad",
            layout="fed-wsvad", progress=False)
    fed = tmp_path / "fed" / "features_video" / "i3d" / "combine" / "c" / "feature.npy"
    assert np.load(fed).shape == (1, 3, 64)
    assert (fed.parent / "feature.json").exists()
    extract([src], tmp_path / "pc", checkpoint=tiny_checkpoint, crops=5, layout="per-crop",
            progress=False, batch_size=10)
    parts = sorted((tmp_path / "pc").glob("c__*.npy"))
    assert [p.name for p in parts] == [f"c__{k}.npy" for k in range(5)]
    assert np.load(parts[0]).shape == (1, 64)
    meta = json.loads((tmp_path / "pc" / "c.json").read_text())
    assert meta["crop_order"] == ["tl", "tr", "bl", "br", "c"] and meta["shape"] == [1, 5, 64]
    both = FeatureExtractor(tiny_checkpoint, crops=10, pooling="stats").extract_video(src / "c.mkv")
    assert both.features.shape == (1, 10, 3, 64)
    assert both.metadata["overrides"] == {"crops": 10, "pooling": "stats"}


def test_resume_skips_only_matching_outputs(tmp_path: Path, tiny_checkpoint: Path) -> None:
    src = _three_videos(tmp_path)
    out = tmp_path / "out"
    first = extract([src], out, checkpoint=tiny_checkpoint, progress=False)
    before = {p: p.stat().st_mtime_ns for p in npy_files(out)}
    again = extract([src], out, checkpoint=tiny_checkpoint, progress=False)
    assert (first.ok, again.ok, again.skipped) == (3, 0, 3)
    assert {p: p.stat().st_mtime_ns for p in npy_files(out)} == before
    # Different settings are a decision (issue 10): stop before any work, say what differs.
    with pytest.raises(ConfigError, match=r"tail: drop -> pad.*--overwrite"):
        extract([src], out, checkpoint=tiny_checkpoint, tail="pad", progress=False)
    assert {p: p.stat().st_mtime_ns for p in npy_files(out)} == before
    forced = extract([src], out, checkpoint=tiny_checkpoint, tail="pad", overwrite=True,
                     progress=False)
    assert forced.ok == 3 and forced.skipped == 0
    assert np.load(out / "b" / "001.npy").shape == (3, 64)  # ceil(37 / 16)
    # A feature file whose sidecar is missing (killed between the two renames) is redone.
    (out / "c.json").unlink()
    redo = extract([src], out, checkpoint=tiny_checkpoint, tail="pad", progress=False)
    assert (redo.ok, redo.skipped) == (1, 2)
    statuses = [e["status"] for e in read_manifest(out)]
    assert statuses.count("skipped") == 3 + 2


def test_random_weights_flagged_everywhere(tmp_path: Path, capsys, caplog) -> None:
    src = _three_videos(tmp_path)
    code = main(["extract", str(src / "c.mkv"), "-o", str(tmp_path / "o"), "--random-weights",
                 "-m", "vit_tiny_patch16_224", "-q"])
    assert code == 0
    meta = json.loads((tmp_path / "o" / "c.json").read_text())
    assert meta["model"]["random_weights"] is True and meta["model"]["checkpoint"] is None
    assert "RANDOM" in caplog.text
    assert main(["extract", str(src), "-o", str(tmp_path / "p")]) == 2  # no checkpoint: usage error


def test_config_file_maps_onto_flags(tmp_path: Path, tiny_checkpoint: Path) -> None:
    src = _three_videos(tmp_path)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"checkpoint": str(tiny_checkpoint), "tail": "pad", "quiet": True}))
    assert main(["extract", str(src / "c.mkv"), "-o", str(tmp_path / "o"), "--config", str(cfg),
                 "--clip-len", "8"]) == 0
    meta = json.loads((tmp_path / "o" / "c.json").read_text())
    assert meta["overrides"] == {"tail": "pad", "clip_len": 8}
    assert meta["snippets"] == [[0, 7], [8, 15], [16, 19]]
    cfg.write_text(json.dumps({"chekpoint": "x"}))
    assert main(["extract", str(src), "-o", str(tmp_path / "o"), "--config", str(cfg)]) == 2


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_next_to_good_ones(tmp_path: Path, tiny_checkpoint: Path) -> None:
    d = tmp_path / "in"
    good = synth.write_video(d / "good.mp4", synth.scene_frames(48, seed=1), fps=25)
    synth.write_video(d / "tiny_64x48.mp4", synth.scene_frames(32, width=64, height=48), fps=25)
    synth.write_video(d / "portrait.mp4", synth.scene_frames(32, width=96, height=160), fps=25)
    synth.write_video(d / "truncated.mp4", synth.scene_frames(64, seed=4), fps=25)
    synth.truncate(d / "truncated.mp4", 0.5)
    synth.write_video(d / "five_frames.mp4", synth.scene_frames(5), fps=25)
    synth.random_bytes(d / "random.mp4", 20000)
    synth.empty(d / "empty.mp4")
    frames = list(synth.scene_frames(20, seed=5))
    synth.write_frame_folder(d / "frames_bad", frames)
    jpgs = sorted((d / "frames_bad").glob("*.jpg"))
    jpgs[7].write_bytes(b"\xff\xd8\xff not really a jpeg")
    assert good.exists()
    (d / "missing.mp4").symlink_to(tmp_path / "gone.mp4")  # a typed missing path is exit 2 now
    code = main(["extract", str(d), "-o", str(tmp_path / "out"),
                 "--checkpoint", str(tiny_checkpoint), "-q", "-j", "2"])
    assert code == 1
    entries = {e["video"]: e for e in read_manifest(tmp_path / "out")}
    ok = {"good.mp4", "tiny_64x48.mp4", "portrait.mp4"}
    bad = {"truncated.mp4", "five_frames.mp4", "random.mp4", "empty.mp4", "frames_bad",
           "missing.mp4"}
    assert set(entries) == ok | bad
    for name in ok:
        assert entries[name]["status"] == "ok", entries[name]
    for name in bad:
        assert entries[name]["status"] == "failed", entries[name]
        assert entries[name]["error"], name
        assert entries[name]["output"] is None
    assert "16" in entries["five_frames.mp4"]["error"]
    written = {p.relative_to(tmp_path / "out").as_posix() for p in npy_files(tmp_path / "out")}
    assert written == {"good.npy", "tiny_64x48.npy", "portrait.npy"}
    assert not leftovers(tmp_path / "out")


def test_corrupt_middle_fail_or_skip(tmp_path: Path, tiny_checkpoint: Path) -> None:
    path = synth.write_video(tmp_path / "in" / "hurt.mp4", synth.scene_frames(96, seed=6), fps=25)
    synth.corrupt_middle(path, nbytes=4000, seed=1)
    strict = extract([path], tmp_path / "strict", checkpoint=tiny_checkpoint, progress=False)
    assert strict.exit_code == 1
    assert strict.failed[0][0] == "hurt.mp4" and "decoding failed" in strict.failed[0][1]
    assert not npy_files(tmp_path / "strict")
    lenient = extract([path], tmp_path / "skip", checkpoint=tiny_checkpoint, on_corrupt="skip",
                      progress=False)
    assert lenient.exit_code == 0
    meta = json.loads((tmp_path / "skip" / "hurt.json").read_text())
    assert 16 <= meta["num_frames"] < 96 and meta["corrupt_packets"] > 0
    assert any("lost" in w for w in meta["warnings"])
    assert np.load(tmp_path / "skip" / "hurt.npy").shape == (meta["num_frames"] // 16, 64)


def test_sigkill_then_resume_gives_identical_outputs(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Kill -9 mid-run, run again: same bits as an uninterrupted run, no temporaries."""
    import os
    import signal
    import subprocess
    import sys

    src = tmp_path / "in"
    for k in range(8):
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(96 + 16 * k, seed=k), fps=25)
    cmd = [sys.executable, "-m", "vadfeat", "extract", str(src), "--checkpoint",
           str(tiny_checkpoint), "-q", "-b", "1"]
    clean = subprocess.run([*cmd, "-o", str(tmp_path / "clean")], capture_output=True, timeout=300)
    assert clean.returncode == 0, clean.stderr.decode()[-2000:]
    out = tmp_path / "killed"
    # Killed at a known point (the test hook of vadfeat.engines.partial), not after a race:
    # once 2 snippets of v4 are through the model; one decode thread takes the videos in
    # order and the model their snippets in order, so v0..v3 are written by then.
    env = {**os.environ, "VADFEAT_TEST_STOP_AFTER": "v4.mp4:2:SIGKILL"}
    killed = subprocess.run([*cmd, "-o", str(out)], capture_output=True, timeout=300, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    done_before = len(npy_files(out))
    assert done_before == 4
    again = subprocess.run([*cmd, "-o", str(out)], capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert not leftovers(out)
    clean_files = npy_files(tmp_path / "clean")
    assert [p.name for p in npy_files(out)] == [p.name for p in clean_files]
    for p in clean_files:
        assert np.array_equal(np.load(p), np.load(out / p.name)), p.name
    runs = {}
    for e in read_manifest(out):
        runs.setdefault(e["run"], []).append(e["status"])
    assert list(runs.values())[-1].count("skipped") == done_before


def _once_each(out: Path) -> dict[str, int]:
    oks: dict[str, int] = {}
    for e in read_manifest(out):
        if e["status"] == "ok":
            oks[e["video"]] = oks.get(e["video"], 0) + 1
    return oks


def test_devices_share_one_work_list(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """--devices runs one process per device (CPU here: the claim logic is the same
    as on GPUs); every video is extracted exactly once, failures are not retried by
    the sibling, and the files equal a single-process run's."""
    src = tmp_path / "in"
    for k in range(6):
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(48 + 16 * k, seed=k), fps=25)
    synth.random_bytes(src / "broken.mp4", 3000)
    # batch_size=1: which snippets share a default-size batch depends on timing, and float32
    # rounding then differs by ~1e-6 between runs (bytes are compared below)
    single = extract([src], tmp_path / "one", checkpoint=tiny_checkpoint, progress=False,
                     batch_size=1)
    multi = extract([src], tmp_path / "two", checkpoint=tiny_checkpoint, progress=False,
                    devices=["cpu", "cpu"], batch_size=1)
    assert (single.ok, multi.ok) == (6, 6)
    assert [v for v, _ in multi.failed] == ["broken.mp4"] and multi.exit_code == 1
    assert _once_each(tmp_path / "two") == {f"v{k}.mp4": 1 for k in range(6)}
    failures = [e for e in read_manifest(tmp_path / "two") if e["status"] == "failed"]
    assert len(failures) == 1  # the sibling skipped it instead of failing it again
    for p in npy_files(tmp_path / "one"):
        assert np.array_equal(np.load(p), np.load(tmp_path / "two" / p.name))


def test_concurrent_runs_on_one_folder(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Two independent processes on one output folder, as users start one per GPU.

    With --wait each process waits for the videos the other holds, so both end with
    every video done (exit 0); without it a video still held at the end is "in progress
    elsewhere" (exit 3, tests/test_integrity.py)."""
    import subprocess
    import sys

    src = tmp_path / "in"
    for k in range(6):
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(64, seed=k), fps=25)
    cmd = [sys.executable, "-m", "vadfeat", "extract", str(src), "-o", str(tmp_path / "out"),
           "--checkpoint", str(tiny_checkpoint), "-q", "-b", "1", "--wait"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    assert _once_each(tmp_path / "out") == {f"v{k}.mp4": 1 for k in range(6)}
    ref = extract([src], tmp_path / "ref", checkpoint=tiny_checkpoint, progress=False,
                  batch_size=1)  # as the two runs (-b 1): the bytes are compared
    assert ref.ok == 6
    for p in npy_files(tmp_path / "ref"):
        assert np.array_equal(np.load(p), np.load(tmp_path / "out" / p.name))
    assert not leftovers(tmp_path / "out")


def test_gpu_only_options_fail_loudly(tiny_checkpoint: Path) -> None:
    from vadfeat.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="no CUDA device"):
        FeatureExtractor(tiny_checkpoint, device="cuda")
    with pytest.raises(ConfigError, match="layout"):
        extract(["x"], "y", layout="nested", checkpoint=tiny_checkpoint)
