"""Runs into buffering (sharded) sinks: a video is done only once its shard is committed.

The first tests drive the engines through a test-only buffering sink (:class:`PartSink`:
every ``every`` videos go into one ``OUT/part-<writer>-<n>.npz`` with its own index, written
whole when full and at ``commit``), so they check the engines' side of the contract
(:attr:`Sink.buffers`, :meth:`Sink.take_committed`) whatever the real sinks do: claims are
held and nothing is recorded ``ok`` until the commit, a stopped run leaves the uncommitted
videos not done (and resumable from their checkpoints).  The tests after them run
``vadfeat extract --sink webdataset|parquet`` end to end.

Features are compared byte for byte with ``batch_size=1`` and one torch thread (each
forward pass then holds one snippet, whatever else is in flight), as
tests/test_resume_snippets.py does.  Runs are stopped at known points by the test hook of
:mod:`vadfeat.engines.partial` (``VADFEAT_TEST_STOP_AFTER``), never by a timer.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
import torch

import vadfeat
from stress.fault_corpus import locks_free
from vadfeat.engines import partial
from vadfeat.pipeline.extractor import FeatureExtractor
from vadfeat.store.claims import LOCK_DIR
from vadfeat.store.fingerprint import same_fingerprint
from vadfeat.store.manifest import read_manifest
from vadfeat.store.sinks import OutputState, Sink, VideoFeatures
from vadfeat.testing import synth

TINY = {"random_weights": True, "model": "vit_tiny_patch16_224", "device": "cpu", "size": 32,
        "short_side": 32, "batch_size": 1, "progress": False}
SNIPPETS = {"v0.mp4": 2, "v1.mp4": 3, "v2.mp4": 4, "v3.mp4": 2, "v4.mp4": 3}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def five(tmp_path: Path) -> Path:
    """Five short videos, 64x48: 2, 3, 4, 2 and 3 snippets of 16 frames (``SNIPPETS``)."""
    src = tmp_path / "in"
    for k, (name, n) in enumerate(SNIPPETS.items()):
        synth.write_video(src / name, synth.scene_frames(16 * n, width=64, height=48, seed=k),
                          fps=25)
    return src


@pytest.fixture
def forwards(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Snippets of each forward pass of the model in this process."""
    seen: list[int] = []
    real = FeatureExtractor.run_model

    def counting(self: FeatureExtractor, clips: torch.Tensor) -> np.ndarray:
        seen.append(int(clips.shape[0]))
        return real(self, clips)
    monkeypatch.setattr(FeatureExtractor, "run_model", counting)
    return seen


def _lock_held(out: Path, key: str) -> bool:
    """Whether some open file (this process's included) holds the claim ``key`` in ``out``."""
    lock = out / LOCK_DIR / (hashlib.sha1(key.encode()).hexdigest() + ".lock")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _oks(out: Path) -> list[str]:
    return [e["video"] for e in read_manifest(out) if e["status"] == "ok"] if (
        out / "manifest.jsonl").exists() else []


# --------------------------------------------------------------------------- a buffering sink


class _Member:
    __slots__ = ("member",)

    def __init__(self, member: str) -> None:
        self.member = member


class PartSink(Sink[_Member]):
    """Test-only buffering sink: ``every`` videos per ``OUT/part-<writer>-<n>.npz``, its index
    ``OUT/.parts/<part name>.json`` (member -> fingerprint) written after it; read afresh at
    each :meth:`state`, so a run sees parts other writers committed.  At each commit it
    notes, for the videos committed, whether their claims were still held and whether the
    manifest already said ``ok`` (``seen``)."""

    name = "parts"
    buffers = True

    def __init__(self, out: Path, every: int = 2) -> None:
        super().__init__(out)
        self.every = every
        self.writer = uuid.uuid4().hex[:6]
        self.seq = 0
        self.buffer: list[tuple[str, VideoFeatures]] = []
        self.committed: list[str] = []
        self.seen: list[tuple[str, bool, bool]] = []  # (member, claim held, manifest says ok)
        self.calls: list[str] = []

    def _index(self) -> dict[str, tuple[str, Any]]:
        found: dict[str, tuple[str, Any]] = {}
        for p in sorted((self.out / ".parts").glob("*.json")):
            for member, fp in json.loads(p.read_text()).items():
                found[member] = (p.name[: -len(".json")], fp)
        return found

    def plan(self, stem: PurePosixPath) -> _Member:
        return _Member(stem.as_posix())

    def key(self, target: _Member) -> str:
        return "parts:" + target.member

    def describe(self, target: _Member) -> str:
        part = self._index().get(target.member, ("?",))[0]
        return f"{self.out / part}#{target.member}"

    def present(self, target: _Member) -> bool:
        return target.member in self._index()

    def state(self, target: _Member, fingerprint: Mapping[str, Any] | None, *,
              source: Path | None = None, verify: bool = True) -> OutputState:
        entry = self._index().get(target.member)
        if entry is None:
            return OutputState("absent")
        if fingerprint is None or not same_fingerprint(entry[1], fingerprint):
            return OutputState("changed", previous=entry[1])
        return OutputState("done", previous=entry[1])

    def _part(self) -> str:
        return f"part-{self.writer}-{self.seq:05d}.npz"

    def write(self, target: _Member, result: VideoFeatures, *, stale: Iterable[Path] = ()) -> str:
        self.calls.append("write")
        self.buffer.append((target.member, result))
        where = f"{self.out / self._part()}#{target.member}"
        if len(self.buffer) >= self.every:
            self._flush()
        return where

    def _flush(self) -> None:
        if not self.buffer:
            return
        oks = set(_oks(self.out))
        for member, _ in self.buffer:
            self.seen.append((member, _lock_held(self.out, "parts:" + member),
                              f"{member}.mp4" in oks))
        name = self._part()
        np.savez(self.out / f".{name}.tmp.npz", **{m: r.features for m, r in self.buffer})
        os.replace(self.out / f".{name}.tmp.npz", self.out / name)
        (self.out / ".parts").mkdir(exist_ok=True)
        (self.out / ".parts" / f"{name}.json").write_text(json.dumps(
            {m: r.metadata["fingerprint"] for m, r in self.buffer}))
        self.committed += ["parts:" + m for m, _ in self.buffer]
        self.calls.append(f"part {self.seq}")
        self.seq += 1
        self.buffer.clear()

    def take_committed(self) -> list[str]:
        keys, self.committed = self.committed, []
        return keys

    def commit(self) -> None:
        self.calls.append("commit")
        self._flush()

    def abort(self) -> None:
        self.calls.append("abort")
        self.buffer.clear()


def _parts(out: Path) -> dict[str, dict[str, np.ndarray]]:
    found = {}
    for p in sorted(out.glob("part-*.npz")):
        with np.load(p) as z:
            found[p.name] = {k: z[k] for k in z.files}
    return found


def test_a_video_is_done_when_its_part_is_committed(tmp_path: Path, five: Path) -> None:
    out = tmp_path / "out"
    sink = PartSink(out, every=2)
    s = vadfeat.extract([five], out, sink=sink, **TINY)
    assert (s.exit_code, s.ok, s.skipped, s.failed) == (0, 5, 0, [])
    assert s.snippets == sum(SNIPPETS.values())
    # Three parts of 2, 2 and 1 (the last one at the run's commit).
    parts = _parts(out)
    assert [sorted(v) for v in parts.values()] == [["v0", "v1"], ["v2", "v3"], ["v4"]]
    assert sink.calls == ["write", "write", "part 0", "write", "write", "part 1", "write",
                          "commit", "part 2"]
    # At each commit its videos' claims were still held and none was recorded ok yet.
    assert [m for m, held, ok in sink.seen if held and not ok] == ["v0", "v1", "v2", "v3", "v4"]
    assert locks_free(out)
    # The manifest names the part each video is in, ok once each.
    run = [e for e in read_manifest(out) if e["run"] == s.run_id]
    where = {e["video"]: e["output"] for e in run if e["status"] == "ok"}
    assert where == {f"{m}.mp4": f"{out / name}#{m}" for name, members in parts.items()
                     for m in members}
    ref = vadfeat.extract([five], tmp_path / "ref", **TINY)
    assert ref.ok == 5
    for members in parts.values():
        for m, feats in members.items():
            assert np.array_equal(feats, np.load(tmp_path / "ref" / f"{m}.npy")), m

    # A rerun skips every video by the sink's index, writes nothing.
    again_sink = PartSink(out, every=2)
    again = vadfeat.extract([five], out, sink=again_sink, **TINY)
    assert (again.exit_code, again.ok, again.skipped) == (0, 0, 5)
    assert "write" not in again_sink.calls and sorted(_parts(out)) == sorted(parts)
    assert {e["status"] for e in read_manifest(out) if e["run"] == again.run_id} == {"skipped"}


def test_threads_and_processes_write_one_part_at_a_time(tmp_path: Path, five: Path) -> None:
    # Several decode threads (or worker processes) feed one model side, which alone writes:
    # every video once, in parts of two.
    for pipeline in ("threads", "processes"):
        out = tmp_path / pipeline
        sink = PartSink(out, every=2)
        s = vadfeat.extract([five], out, sink=sink, workers=2, pipeline=pipeline, **TINY)
        assert (s.exit_code, s.ok) == (0, 5), pipeline
        members = [m for part in _parts(out).values() for m in part]
        assert sorted(members) == [f"v{k}" for k in range(5)] and len(_parts(out)) == 3
        assert all(held and not ok for _, held, ok in sink.seen)
        assert locks_free(out)


def test_a_stopped_run_leaves_its_uncommitted_videos_to_resume(
        tmp_path: Path, five: Path, monkeypatch: pytest.MonkeyPatch, forwards: list[int]) -> None:
    # Every snippet checkpointed; Ctrl-C once v3's first snippet is through the model: one
    # decode thread takes the videos in order, so v0 and v1 are in a committed part, v2 is
    # written to the open part, v3 in progress, v4 never started.
    monkeypatch.setattr(partial, "CHECKPOINT_SNIPPETS", 1)
    monkeypatch.setenv(partial.STOP_ENV, "v3.mp4:1")
    out = tmp_path / "out"
    sink = PartSink(out, every=2)
    s = vadfeat.extract([five], out, sink=sink, **TINY)
    assert s.interrupted and s.exit_code == 130
    assert sink.calls[-1] == "abort" and "commit" not in sink.calls
    assert [sorted(p) for p in _parts(out).values()] == [["v0", "v1"]]
    # v2 was written but its part never committed: not extracted, in progress, with all of
    # its snippets saved for the rerun; v3 with the one snippet the hook saved.
    # (v4 may be claimed by the decode thread running ahead, nothing saved, or not started.)
    assert s.ok == 2
    assert {("v2.mp4", 4, 4), ("v3.mp4", 1, 2)} <= set(s.in_progress)
    assert set(s.in_progress) - {("v2.mp4", 4, 4), ("v3.mp4", 1, 2)} <= {("v4.mp4", 0, None),
                                                                         ("v4.mp4", 0, 3)}
    assert len(s.in_progress) + s.not_started == 3
    assert s.snippets == 2 + 3 + 4 + 1
    lines = {e["video"]: e for e in read_manifest(out) if e["run"] == s.run_id}
    assert {v: e["status"] for v, e in lines.items() if v != "v4.mp4"} == {
        "v0.mp4": "ok", "v1.mp4": "ok", "v2.mp4": "interrupted", "v3.mp4": "interrupted"}
    assert "shard holding it was committed" in lines["v2.mp4"]["error"]
    assert (lines["v2.mp4"]["saved_snippets"], lines["v3.mp4"]["saved_snippets"]) == (4, 1)
    assert "STOPPED by SIGINT" in s.describe() and "2 extracted" in s.describe()
    assert locks_free(out)
    # The checkpoints of the videos not done are kept; the committed videos' are gone.
    assert len(list((out / partial.PARTIAL_DIR).glob("*.state"))) == 2

    monkeypatch.delenv(partial.STOP_ENV)
    forwards.clear()
    again = vadfeat.extract([five], out, sink=PartSink(out, every=2), **TINY)
    assert (again.exit_code, again.ok, again.skipped) == (0, 3, 2)
    # The model ran only on what was not saved: none of v2's, v3's second, all of v4's.
    assert sum(forwards) == 1 + 3
    assert not list((out / partial.PARTIAL_DIR).iterdir())
    ref = vadfeat.extract([five], tmp_path / "ref", **TINY)
    assert ref.ok == 5
    got = {m: f for part in _parts(out).values() for m, f in part.items()}
    assert sorted(got) == [f"v{k}" for k in range(5)]
    for m, feats in got.items():
        assert np.array_equal(feats, np.load(tmp_path / "ref" / f"{m}.npy")), m


def test_wait_is_refused_with_a_buffering_sink(tmp_path: Path, five: Path) -> None:
    from vadfeat.errors import ConfigError

    with pytest.raises(ConfigError, match="--wait"):
        vadfeat.extract([five], tmp_path / "out", sink=PartSink(tmp_path / "out"), wait=True,
                        **TINY)
    assert not (tmp_path / "out").exists()
