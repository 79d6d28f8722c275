"""Long videos (issue 20): a stopped video resumes from its last saved snippet.

The runs here are stopped at a known point by the test hook of
:mod:`vadfeat.engines.partial` (``VADFEAT_TEST_STOP_AFTER=<video>:<k>[:<SIGNAL>]``: once
``k`` snippets of that video are through the model, its checkpoint is saved and the
process signals itself), never by a timer.  Expected counts are worked out by hand: the
default preset takes non-overlapping 16-frame snippets and drops the tail, so the
192-frame ``long.mp4`` makes 12 snippets and the ``three`` fixture's videos 2, 3 and 4.
Outputs are compared byte for byte with ``batch_size=1`` and one torch thread, as
tests/test_process_pipeline.py does (the forward passes are then the same whatever
else shares a batch); ``batch_size=4`` is compared to 1e-6.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vadfeat
from stress.fault_corpus import locks_free
from vadfeat.engines import partial
from vadfeat.engines.progress import LineProgress
from vadfeat.pipeline.config import ExtractConfig
from vadfeat.pipeline.extractor import FeatureExtractor
from vadfeat.pipeline.stream import snippet_stream
from vadfeat.pipeline.transforms import build_frame_transform
from vadfeat.store.claims import Claims
from vadfeat.store.manifest import read_manifest
from vadfeat.store.reader import read_features
from vadfeat.testing import synth

TINY = {"random_weights": True, "model": "vit_tiny_patch16_224", "device": "cpu", "size": 32,
        "short_side": 32}
LONG = 12  # snippets of long.mp4


@pytest.fixture
def videos(three: Path) -> Path:
    """``three`` plus ``long.mp4``: 192 frames, 12 snippets."""
    synth.write_video(three / "long.mp4", synth.scene_frames(192, width=64, height=48, seed=9), fps=25)
    return three


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here on one torch thread (conftest's ``one_thread``)."""


def checkpoint_of(out: Path, video: str = "long.mp4") -> dict:
    metas = [json.loads(p.read_text()) for p in (out / partial.PARTIAL_DIR).glob("*.state")]
    found = [m for m in metas if m["video"] == video]
    assert len(found) == 1, metas
    return found[0]


def stop_after(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv(partial.STOP_ENV, spec)


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("pipeline", ["threads", "processes"])
def test_stopped_then_resumed_gives_the_same_bytes(tmp_path: Path, videos: Path, pipeline: str,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   forwards: list[int]) -> None:
    kw = {**TINY, "batch_size": 1, "progress": False, "workers": 2, "pipeline": pipeline}
    clean = vadfeat.extract([videos], tmp_path / "clean", **kw)
    assert clean.ok == 4 and sum(forwards) == LONG + 2 + 3 + 4
    out = tmp_path / "out"
    stop_after(monkeypatch, "long.mp4:5")
    s = vadfeat.extract([videos], out, **kw)
    assert s.exit_code == 130 and not (out / "long.npy").exists()
    saved = checkpoint_of(out)
    assert saved["video"] == "long.mp4" and 5 <= saved["count"] < LONG
    assert [tuple(r) for r in saved["ranges"]] == [(16 * k, 16 * k + 15) for k in range(saved["count"])]
    assert ("long.mp4", saved["count"], LONG) in s.in_progress
    monkeypatch.delenv(partial.STOP_ENV)
    done_before = {p.stem for p in out.glob("*.npy")}
    # every video in progress was saved: (long.mp4 and the one the other worker had)
    saved_all = {m["video"]: m["count"] for m in (json.loads(p.read_text()) for p in
                                                  (out / partial.PARTIAL_DIR).glob("*.state"))}
    sizes = {"long.mp4": LONG, "v0.mp4": 2, "v1.mp4": 3, "v2.mp4": 4}
    # (a video claimed by the other worker may not be open yet: its size is then unknown)
    assert all(n == saved_all.get(v, 0) and size in (sizes[v], None) for v, n, size in s.in_progress)
    assert set(saved_all) <= {v for v, _, _ in s.in_progress}
    forwards.clear()
    r = vadfeat.extract([videos], out, **kw)
    assert r.exit_code == 0 and r.ok == 4 - len(done_before)
    # the model ran on the snippets after the saved ones of each video not done
    assert sum(forwards) == sum(n - saved_all.get(f"{v}.mp4", 0) for v, n in
                                (("long", LONG), ("v0", 2), ("v1", 3), ("v2", 4)) if v not in done_before)
    for name in ("long", "v0", "v1", "v2"):
        assert (out / f"{name}.npy").read_bytes() == (tmp_path / "clean" / f"{name}.npy").read_bytes()
    a = json.loads((out / "long.json").read_text())
    b = json.loads((tmp_path / "clean" / "long.json").read_text())
    assert a["snippets"] == b["snippets"] and a["num_frames"] == b["num_frames"] == 192
    assert not list((out / partial.PARTIAL_DIR).iterdir())  # removed once the video is written
    assert locks_free(out)


def test_killed_then_resumed_gives_the_same_bytes(tmp_path: Path, videos: Path,
                                                  forwards: list[int]) -> None:
    """SIGKILL: no clean-up runs; the checkpoint saved before it is all there is."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vadfeat", "extract", str(videos / "long.mp4"), "-o", str(out),
           "--random-weights", "--model", "vit_tiny_patch16_224", "--device", "cpu", "--size", "32",
           "--short-side", "32", "-b", "1", "-q"]
    env = {**os.environ, partial.STOP_ENV: "long.mp4:7:SIGKILL", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run(cmd, capture_output=True, timeout=300, env=env)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    saved = checkpoint_of(out)
    assert saved["count"] == 7  # batch_size 1: the hook fires at exactly 7 rows
    assert not (out / "long.npy").exists()
    r = vadfeat.extract([videos / "long.mp4"], out, **TINY, batch_size=1, progress=False)
    assert r.exit_code == 0 and sum(forwards) == LONG - 7
    clean = vadfeat.extract([videos / "long.mp4"], tmp_path / "clean", **TINY, batch_size=1,
                            progress=False)
    assert clean.ok == 1 and sum(forwards) == 2 * LONG - 7
    assert (out / "long.npy").read_bytes() == (tmp_path / "clean" / "long.npy").read_bytes()
    assert not list((out / partial.PARTIAL_DIR).iterdir())


def test_batches_of_several_videos(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snippets of different videos share forward passes of 4: the resumed rows equal an
    uninterrupted run's to 1e-6 (float32 summation order may depend on the batch)."""
    kw = {**TINY, "batch_size": 4, "progress": False, "workers": 2}
    vadfeat.extract([videos], tmp_path / "clean", **kw)
    stop_after(monkeypatch, "long.mp4:4")
    assert vadfeat.extract([videos], tmp_path / "out", **kw).exit_code == 130
    assert checkpoint_of(tmp_path / "out")["count"] >= 4
    monkeypatch.delenv(partial.STOP_ENV)
    assert vadfeat.extract([videos], tmp_path / "out", **kw).exit_code == 0
    for name in ("long", "v0", "v1", "v2"):
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"{name}.npy"),
                                   np.load(tmp_path / "clean" / f"{name}.npy"), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- what is not resumed


def _stopped(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "out"
    stop_after(monkeypatch, "long.mp4:5")
    assert vadfeat.extract([videos / "long.mp4"], out, **TINY, batch_size=1,
                           progress=False).exit_code == 130
    monkeypatch.delenv(partial.STOP_ENV)
    assert checkpoint_of(out)["count"] >= 5
    return out


def test_another_source_is_not_resumed(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch,
                                       forwards: list[int]) -> None:
    out = _stopped(tmp_path, videos, monkeypatch)
    synth.write_video(videos / "long.mp4", synth.scene_frames(192, width=64, height=48, seed=10), fps=25)
    forwards.clear()
    assert vadfeat.extract([videos / "long.mp4"], out, **TINY, batch_size=1, progress=False).ok == 1
    assert sum(forwards) == LONG  # every snippet through the model: the saved ones were another video's
    vadfeat.extract([videos / "long.mp4"], tmp_path / "clean", **TINY, batch_size=1, progress=False)
    assert (out / "long.npy").read_bytes() == (tmp_path / "clean" / "long.npy").read_bytes()


def test_other_settings_are_not_resumed(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch,
                                        forwards: list[int]) -> None:
    out = _stopped(tmp_path, videos, monkeypatch)
    forwards.clear()
    other = {**TINY, "size": 48, "short_side": 48}
    assert vadfeat.extract([videos / "long.mp4"], out, **other, batch_size=1, progress=False).ok == 1
    assert sum(forwards) == LONG
    assert np.load(out / "long.npy").shape == (LONG, 64)
    assert not list((out / partial.PARTIAL_DIR).iterdir())


@pytest.mark.parametrize("damage", ["rows cut", "rows changed", "json torn", "overwrite"])
def test_a_damaged_checkpoint_is_discarded(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch,
                                           forwards: list[int], damage: str) -> None:
    out = _stopped(tmp_path, videos, monkeypatch)
    rows = next((out / partial.PARTIAL_DIR).glob("*.rows"))
    meta = rows.with_suffix(".state")
    if damage == "rows cut":
        rows.write_bytes(rows.read_bytes()[:100])
    elif damage == "rows changed":
        data = bytearray(rows.read_bytes())
        data[10] ^= 0xFF
        rows.write_bytes(bytes(data))
    elif damage == "json torn":
        meta.write_text(meta.read_text()[:40])
    forwards.clear()
    assert vadfeat.extract([videos / "long.mp4"], out, **TINY, batch_size=1, progress=False,
                           overwrite=damage == "overwrite").ok == 1
    assert sum(forwards) == LONG
    vadfeat.extract([videos / "long.mp4"], tmp_path / "clean", **TINY, batch_size=1, progress=False)
    assert (out / "long.npy").read_bytes() == (tmp_path / "clean" / "long.npy").read_bytes()
    assert not list((out / partial.PARTIAL_DIR).iterdir())


def test_checkpoints_are_never_read_as_outputs(tmp_path: Path, videos: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    vadfeat.extract([videos / "v0.mp4"], out, **TINY, batch_size=1, progress=False)
    stop_after(monkeypatch, "long.mp4:5")
    vadfeat.extract([videos / "long.mp4"], out, **TINY, batch_size=1, progress=False)
    (out / partial.PARTIAL_DIR / "decoy.npy").write_bytes((out / "v0.npy").read_bytes())  # even so
    assert read_features(out).names() == ("v0",)


# --------------------------------------------------------------------------- the stream


def test_skipped_snippets_are_decoded_not_prepared(tmp_path: Path, videos: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ExtractConfig.from_settings(TINY)
    transform = build_frame_transform(cfg.preset)
    full = list(snippet_stream(videos / "long.mp4", cfg, transform))
    prepared: list[int] = []
    real = type(transform).prepare

    def counting(self, frame):  # type: ignore[no-untyped-def]
        prepared.append(1)
        return real(self, frame)
    monkeypatch.setattr(type(transform), "prepare", counting)
    part = list(snippet_stream(videos / "long.mp4", cfg, transform, skip=5))
    assert [r for r, _ in part] == [r for r, _ in full]
    assert all(c is None for _, c in part[:5])
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(part[5:], full[5:], strict=True))
    assert len(prepared) == 192 - 5 * 16  # the frames of the skipped snippets were not transformed


# --------------------------------------------------------------------------- the stop summary


def test_the_stop_summary_names_what_was_done_and_left(tmp_path: Path, videos: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker, videos in sorted order: long.mp4 is the first, so v0..v2 never start."""
    stop_after(monkeypatch, "long.mp4:5")
    s = vadfeat.extract([videos], tmp_path / "out", **TINY, batch_size=1, progress=False, workers=1)
    saved = checkpoint_of(tmp_path / "out")["count"]
    assert s.exit_code == 130 and s.ok == 0
    assert s.in_progress == [("long.mp4", saved, LONG)] and s.not_started == 3
    assert s.snippets == saved  # the model's work on the video left in progress counts
    text = s.describe()
    assert "1 video(s) in progress" in text and "3 never started" in text
    assert f"IN PROGRESS long.mp4: {saved} of ~{LONG} snippets saved; a rerun resumes" in text
    lines = read_manifest(tmp_path / "out")
    assert [(e["video"], e["status"], e["saved_snippets"]) for e in lines] == [
        ("long.mp4", "interrupted", saved)]


def test_progress_counts_snippets(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar's text: snippets done of the estimate for the videos started (their declared
    frame counts), as well as videos."""
    local = importlib.import_module("vadfeat.engines.local")
    bars: list[LineProgress] = []
    posts: list[str] = []

    class Recording(LineProgress):
        def set_postfix_str(self, s: str, refresh: bool = True) -> None:
            posts.append(s)
            super().set_postfix_str(s, refresh)

    def recording(total: int, *, enabled: bool) -> LineProgress:
        bars.append(Recording(total, desc="extract", unit="video", interval=1e9))
        return bars[-1]
    monkeypatch.setattr(local, "progress", recording)
    s = vadfeat.extract([videos / "long.mp4"], tmp_path / "out", **TINY, batch_size=1, workers=1)
    assert s.ok == 1
    assert posts[0].split(",")[0] == f"0/~{LONG} snippets"  # the video is open: its estimate is known
    assert [p.split(",")[0] for p in posts[1:]] == [f"{k}/~{LONG} snippets" for k in range(1, LONG + 1)]
    assert bars[0].line().startswith(f"extract: 1/1 videos, {LONG}/~{LONG} snippets, ")


@pytest.mark.slow  # two spawned processes, each loading a model: ~26 s here
def test_devices_resume_as_one_process_does(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch,
                                            tiny_checkpoint: Path) -> None:
    """``devices=``: the sibling that claims long.mp4 is stopped after 5 of its snippets (the
    other finishes what it can); the run exits 130 naming long.mp4 in progress, and a rerun
    resumes it: the same bytes as one uninterrupted process."""
    kw = {"checkpoint": tiny_checkpoint, "size": 32, "short_side": 32, "batch_size": 1,
          "progress": False}
    vadfeat.extract([videos / "long.mp4"], tmp_path / "clean", device="cpu", **kw)
    out = tmp_path / "out"
    stop_after(monkeypatch, "long.mp4:5")
    s = vadfeat.extract([videos], out, devices=["cpu", "cpu"], **kw)
    assert s.exit_code == 130
    saved = checkpoint_of(out)["count"]
    assert ("long.mp4", saved, LONG) in s.in_progress and saved >= 5
    monkeypatch.delenv(partial.STOP_ENV)
    r = vadfeat.extract([videos], out, devices=["cpu", "cpu"], **kw)
    assert r.exit_code == 0
    assert (out / "long.npy").read_bytes() == (tmp_path / "clean" / "long.npy").read_bytes()
    assert not list((out / partial.PARTIAL_DIR).iterdir())


@pytest.mark.parametrize("settings", [
    {"crops": 10, "size": 32, "short_side": 40},   # ten crops cut at the snippet
    {"preprocess": "device"},                      # raw frames, transformed on the model side
], ids=["10-crop", "device"])
def test_resume_with_other_snippet_kinds(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch,
                                         forwards: list[int], settings: dict) -> None:
    kw = {**TINY, "batch_size": 1, "progress": False, **settings}
    vadfeat.extract([videos / "long.mp4"], tmp_path / "clean", **kw)
    stop_after(monkeypatch, "long.mp4:5")
    assert vadfeat.extract([videos / "long.mp4"], tmp_path / "out", **kw).exit_code == 130
    saved = checkpoint_of(tmp_path / "out")["count"]
    monkeypatch.delenv(partial.STOP_ENV)
    forwards.clear()
    assert vadfeat.extract([videos / "long.mp4"], tmp_path / "out", **kw).ok == 1
    assert sum(forwards) == LONG - saved
    assert (tmp_path / "out" / "long.npy").read_bytes() == (tmp_path / "clean" / "long.npy").read_bytes()


def test_checkpoints_every_so_many_snippets(tmp_path: Path, videos: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a stop: a checkpoint after every 4 new snippets (batch 1, time never due),
    the 12th included (the model takes it before the event saying the video is decoded,
    which comes after it in the queue), and none left once the video is written."""
    monkeypatch.setattr(partial, "CHECKPOINT_SNIPPETS", 4)
    monkeypatch.setattr(partial, "CHECKPOINT_S", 1e9)
    counts: list[int] = []
    real = partial.Partial.append

    def spy(self: partial.Partial, rows: list, ranges: list) -> None:
        real(self, rows, ranges)
        counts.append(self.count)
    monkeypatch.setattr(partial.Partial, "append", spy)
    s = vadfeat.extract([videos / "long.mp4"], tmp_path / "out", **TINY, batch_size=1, progress=False)
    assert s.ok == 1 and counts == [4, 8, 12]
    assert not list((tmp_path / "out" / partial.PARTIAL_DIR).iterdir())


def test_a_checkpoint_is_only_touched_under_the_claim(tmp_path: Path, videos: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds long.mp4's claim: this run neither reads, resumes nor removes
    its checkpoint (it is that process's), and reports the video in progress elsewhere."""
    out = _stopped(tmp_path, videos, monkeypatch)
    files = {p: p.read_bytes() for p in (out / partial.PARTIAL_DIR).iterdir()}
    other = Claims(out)
    assert other.acquire("long.json") is None
    try:
        s = vadfeat.extract([videos / "long.mp4"], out, **TINY, batch_size=1, progress=False)
    finally:
        other.release_all()
    assert s.exit_code == 3 and [v for v, _ in s.elsewhere] == ["long.mp4"]
    assert {p: p.read_bytes() for p in (out / partial.PARTIAL_DIR).iterdir()} == files


def test_resume_with_a_batch_in_flight(tmp_path: Path, videos: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """As on CUDA (DeviceFeed): one submitted batch left unfetched while the next is
    assembled, so rows come back a batch late; what is saved is still the run of rows
    from the first snippet, and the resumed file the same bytes."""
    from vadfeat.pipeline.stream import SnippetBatcher

    def late(self: FeatureExtractor) -> SnippetBatcher:
        def submit(clips: list[torch.Tensor]):  # type: ignore[no-untyped-def]
            rows = self.run_model(torch.stack(clips))
            return lambda: rows
        return SnippetBatcher(submit=submit, size=self.clips_per_batch, depth=1)
    monkeypatch.setattr(FeatureExtractor, "batcher", late)
    kw = {**TINY, "batch_size": 1, "progress": False, "workers": 2}
    vadfeat.extract([videos], tmp_path / "clean", **kw)
    stop_after(monkeypatch, "long.mp4:6")
    assert vadfeat.extract([videos], tmp_path / "out", **kw).exit_code == 130
    saved = checkpoint_of(tmp_path / "out")["count"]
    assert saved >= 6
    monkeypatch.delenv(partial.STOP_ENV)
    assert vadfeat.extract([videos], tmp_path / "out", **kw).exit_code == 0
    for name in ("long", "v0", "v1", "v2"):
        assert (tmp_path / "out" / f"{name}.npy").read_bytes() == \
            (tmp_path / "clean" / f"{name}.npy").read_bytes()
