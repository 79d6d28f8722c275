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
import io
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest

import vadfeat
from stress.fault_corpus import locks_free, wait_until_stopped
from vadfeat.cli import main
from vadfeat.engines import partial
from vadfeat.store.claims import LOCK_DIR
from vadfeat.store.fingerprint import same_fingerprint
from vadfeat.store.manifest import read_manifest
from vadfeat.store.sinks import OutputState, Sink, VideoFeatures
from vadfeat.testing import synth

TINY = {"random_weights": True, "model": "vit_tiny_patch16_224", "device": "cpu", "size": 32,
        "short_side": 32, "batch_size": 1, "progress": False}
SNIPPETS = {"v0.mp4": 2, "v1.mp4": 3, "v2.mp4": 4, "v3.mp4": 2, "v4.mp4": 3}


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here on one torch thread (conftest's ``one_thread``)."""


@pytest.fixture
def five(tmp_path: Path) -> Path:
    """Five short videos, 64x48: 2, 3, 4, 2 and 3 snippets of 16 frames (``SNIPPETS``)."""
    src = tmp_path / "in"
    for k, (name, n) in enumerate(SNIPPETS.items()):
        synth.write_video(src / name, synth.scene_frames(16 * n, width=64, height=48, seed=k),
                          fps=25)
    return src


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


def _stored(out: Path, kind: str) -> list[dict[str, np.ndarray]]:
    """The videos of each committed part (``kind`` "parts") or shard, in name order."""
    if kind == "parts":
        return list(_parts(out).values())
    return [{stem: f for stem, (f, _) in videos.items()} for videos in read_shards(out).values()]


@pytest.mark.parametrize("kind", ["parts", "parquet"])
def test_a_stopped_run_leaves_its_uncommitted_videos_to_resume(
        tmp_path: Path, five: Path, monkeypatch: pytest.MonkeyPatch, forwards: list[int],
        kind: str) -> None:
    # Every snippet checkpointed; Ctrl-C once v3's first snippet is through the model: one
    # decode thread takes the videos in order, so v0 and v1 are in a committed part (or
    # shard), v2 is written to the open one, v3 in progress, v4 never started.
    monkeypatch.setattr(partial, "CHECKPOINT_SNIPPETS", 1)
    monkeypatch.setenv(partial.STOP_ENV, "v3.mp4:1")
    out = tmp_path / "out"

    def run() -> tuple[vadfeat.RunSummary, PartSink | None]:
        if kind == "parts":
            sink = PartSink(out, every=2)
            return vadfeat.extract([five], out, sink=sink, **TINY), sink
        return vadfeat.extract([five], out, sink=kind, shard_size=2, **TINY), None

    s, sink = run()
    assert s.interrupted and s.exit_code == 130
    if sink is not None:
        assert sink.calls[-1] == "abort" and "commit" not in sink.calls
    assert [sorted(p) for p in _stored(out, kind)] == [["v0", "v1"]]
    assert not [p for p in out.rglob("*") if "vadfeat-tmp" in p.name]
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
    again, _ = run()
    assert (again.exit_code, again.ok, again.skipped) == (0, 3, 2)
    # The model ran only on what was not saved: none of v2's, v3's second, all of v4's.
    assert sum(forwards) == 1 + 3
    assert not list((out / partial.PARTIAL_DIR).iterdir())
    ref = vadfeat.extract([five], tmp_path / "ref", **TINY)
    assert ref.ok == 5
    stored = _stored(out, kind)
    got = {m: f for part in stored for m, f in part.items()}
    assert sorted(got) == [f"v{k}" for k in range(5)] and sum(len(p) for p in stored) == 5
    for m, feats in got.items():
        assert np.array_equal(feats, np.load(tmp_path / "ref" / f"{m}.npy")), m


def test_wait_is_refused_with_a_buffering_sink(tmp_path: Path, five: Path) -> None:
    from vadfeat.errors import ConfigError

    with pytest.raises(ConfigError, match="--wait"):
        vadfeat.extract([five], tmp_path / "out", sink=PartSink(tmp_path / "out"), wait=True,
                        **TINY)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- vadfeat extract --sink

SHARDED = ("webdataset", "parquet")
_SHARD_NAME = re.compile(r"^shard-(\d{8}T\d{6}Z-[0-9a-f]{6})-(\d{5})\.(tar|parquet)$")
_EXT = {"webdataset": "tar", "parquet": "parquet"}


def _cli(*args: str) -> list[str]:
    return ["extract", *args, "--random-weights", "--model", "vit_tiny_patch16_224",
            "--device", "cpu", "--size", "32", "--short-side", "32", "-b", "1", "-q"]


def _subprocess(*args: str) -> list[str]:
    return [sys.executable, "-m", "vadfeat", *_cli(*args)]


def _env(**more: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path), **more}


def read_shards(out: Path, *, skip: Iterable[str] = ()
                ) -> dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]]:
    """``{shard file name: {stem: (features, sidecar)}}`` of every shard in ``out`` but
    ``skip``, read with tarfile / pyarrow (not vadfeat's reader); the stem is the sidecar's."""
    import tarfile

    import pyarrow.parquet as pq

    found: dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]] = {}
    for p in sorted(out.iterdir()):
        if not _SHARD_NAME.match(p.name) or p.name in skip:
            continue
        videos: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
        if p.suffix == ".tar":
            members: dict[str, dict[str, bytes]] = {}
            with tarfile.open(p) as tar:
                for info in tar.getmembers():
                    base, _, ext = info.name.rpartition(".")
                    data = tar.extractfile(info)
                    assert data is not None
                    members.setdefault(base, {})[ext] = data.read()
            for parts in members.values():
                side = json.loads(parts["json"])
                videos[side["stem"]] = (np.load(io.BytesIO(parts["npy"])), side)
        else:
            table = pq.read_table(p)
            for row in table.to_pylist():
                side = json.loads(row["sidecar"])
                feats = np.asarray(row["features"], dtype=np.float32).reshape(row["shape"])
                videos[row["stem"]] = (feats, side)
        found[p.name] = videos
    return found


def _listing(out: Path) -> dict[str, bytes]:
    """Every file below ``out`` (hidden folders included) with its bytes."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def _once(shards: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``{stem: shard}``, asserting each stem is in exactly one shard."""
    where: dict[str, str] = {}
    for shard, videos in shards.items():
        for stem in videos:
            assert stem not in where, f"{stem} in {where[stem]} and {shard}"
            where[stem] = shard
    return where


@pytest.fixture
def reference(tmp_path: Path, five: Path) -> dict[str, np.ndarray]:
    """The features of one clean ``.npy`` run over the ``five`` videos (batch size 1; the
    same files: two encodings of the same frames need not be the same bytes)."""
    s = vadfeat.extract([five], tmp_path / "reference", **TINY)
    assert s.ok == 5
    return {name[: -len(".mp4")]: np.load(tmp_path / "reference" / (name[: -len(".mp4")] + ".npy"))
            for name in SNIPPETS}


@pytest.mark.parametrize("sink", SHARDED)
def test_a_sharded_run_writes_shards_and_a_rerun_skips_them(
        tmp_path: Path, five: Path, sink: str, reference: dict[str, np.ndarray]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # Files vadfeat did not write, one of them named like a shard: never read, moved or touched.
    (out / "notes.txt").write_text("mine\n")
    foreign = f"shard-20200101T000000Z-abcdef-00000.{_EXT[sink]}"
    (out / foreign).write_bytes(b"not a shard of vadfeat's\n" * 10)
    mine = {n: (out / n).read_bytes() for n in ("notes.txt", foreign)}
    assert main(_cli(str(five), "-o", str(out), "--sink", sink, "--shard-size", "2")) == 0
    shards = read_shards(out, skip=[foreign])
    # 5 videos, 2 per shard: 3 shards of one writer, numbered from 00000.
    names = [_SHARD_NAME.match(n) for n in shards]
    assert len(shards) == 3 and all(m is not None for m in names)
    assert len({m.group(1) for m in names if m}) == 1
    assert [m.group(2) for m in names if m] == ["00000", "00001", "00002"]
    assert sorted(len(v) for v in shards.values()) == [1, 2, 2]
    where = _once(shards)
    assert sorted(where) == sorted(reference)
    for shard, videos in shards.items():
        for stem, (feats, side) in videos.items():
            assert feats.dtype == np.float32 and np.array_equal(feats, reference[stem]), stem
            assert side["sink"] == sink and side["shard"] == shard and side["stem"] == stem
            assert side["layout"] == "flat"
    # The manifest's output of each ok names the shard that holds the video.
    first = read_manifest(out)
    assert sorted(e["video"] for e in first if e["status"] == "ok") == sorted(SNIPPETS)
    for e in first:
        assert where[e["video"][: -len(".mp4")]] in e["output"], e
    before = _listing(out)

    # A rerun: every video skipped by the shards' index, nothing written but its manifest lines.
    assert main(_cli(str(five), "-o", str(out), "--sink", sink, "--shard-size", "2")) == 0
    again = read_manifest(out)[len(first):]
    assert sorted((e["video"], e["status"]) for e in again) == [(v, "skipped") for v in sorted(SNIPPETS)]
    for e in again:
        assert where[e["video"][: -len(".mp4")]] in e["output"], e
    after = _listing(out)
    assert {k: v for k, v in after.items() if k != "manifest.jsonl"} == {
        k: v for k, v in before.items() if k != "manifest.jsonl"}
    assert {n: (out / n).read_bytes() for n in mine} == mine


@pytest.mark.parametrize("sink", SHARDED)
def test_the_sink_is_not_a_feature_setting(tmp_path: Path, five: Path, sink: str) -> None:
    # The shards' sidecars carry the same settings fingerprint as the .npy sink's.
    ref = vadfeat.extract([five / "v0.mp4"], tmp_path / "npy", **TINY)
    got = vadfeat.extract([five / "v0.mp4"], tmp_path / "shards", sink=sink, shard_size=2, **TINY)
    assert ref.ok == got.ok == 1
    (videos,) = read_shards(tmp_path / "shards").values()
    npy_side = json.loads((tmp_path / "npy" / "v0.json").read_text())
    assert videos["v0"][1]["fingerprint"] == npy_side["fingerprint"]


@pytest.mark.parametrize("sink", SHARDED)
def test_other_settings_stop_before_any_work_and_touch_nothing(
        tmp_path: Path, five: Path, sink: str, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(_cli(str(five), "-o", str(out), "--sink", sink, "--shard-size", "2")) == 0
    before = _listing(out)
    assert main(_cli(str(five), "-o", str(out), "--sink", sink, "--shard-size", "2",
                     "--tail", "pad")) == 2
    assert "tail: drop -> pad" in caplog.text and "--overwrite" in caplog.text
    assert _listing(out) == before


def test_a_layout_with_a_sharded_sink_is_a_usage_error(tmp_path: Path, five: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(_cli(str(five), "-o", str(out), "--sink", "webdataset", "--layout", "per-crop")) == 2
    assert "--layout per-crop" in caplog.text and "--sink webdataset" in caplog.text
    assert main(_cli(str(five), "-o", str(out), "--sink", "parquet", "--shard-size", "0")) == 2
    assert "--shard-size" in caplog.text
    assert main(_cli(str(five), "-o", str(out), "--sink", "parquet", "--wait")) == 2
    assert "--wait cannot be used with a sharded sink" in caplog.text
    assert not out.exists()


def test_sigkill_mid_shard_then_rerun(tmp_path: Path, five: Path,
                                      reference: dict[str, np.ndarray]) -> None:
    """Killed with v2 written to the open shard and v3 in progress: the rerun does them
    again (v3 from its checkpoint); every video ends in exactly one shard."""
    out = tmp_path / "out"
    # One decode thread takes the videos in order: when one snippet of v3 is through the
    # model, v0 and v1 are in the first (committed) shard and v2 in the second, open one.
    killed = subprocess.run(_subprocess(str(five), "-o", str(out), "--sink", "webdataset",
                                        "--shard-size", "2"),
                            capture_output=True, timeout=300,
                            env=_env(**{partial.STOP_ENV: "v3.mp4:1:SIGKILL"}))
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    (first,) = read_shards(out).values()
    assert sorted(first) == ["v0", "v1"]
    assert sorted(e["video"] for e in read_manifest(out) if e["status"] == "ok") == [
        "v0.mp4", "v1.mp4"]
    again = subprocess.run(_subprocess(str(five), "-o", str(out), "--sink", "webdataset",
                                       "--shard-size", "2"),
                           capture_output=True, timeout=300, env=_env())
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    shards = read_shards(out)
    where = _once(shards)
    assert sorted(where) == sorted(reference)
    for videos in shards.values():
        for stem, (feats, _) in videos.items():
            assert np.array_equal(feats, reference[stem]), stem
    last = [e for e in read_manifest(out)][-5:]
    assert sorted((e["video"], e["status"]) for e in last) == [
        ("v0.mp4", "skipped"), ("v1.mp4", "skipped"), ("v2.mp4", "ok"), ("v3.mp4", "ok"),
        ("v4.mp4", "ok")]
    assert not [p for p in out.rglob("*") if "vadfeat-tmp" in p.name]
    assert locks_free(out)


def test_two_concurrent_runs_share_one_output(tmp_path: Path) -> None:
    """Run A stops itself (SIGSTOP, the test hook) in the middle of its first shard, holding
    the claims of the videos it has written or taken; run B does the others meanwhile, then
    A goes on: every video ends in one shard, each shard holds one run's videos only."""
    src = tmp_path / "in"
    for k in range(8):
        synth.write_video(src / f"c{k}.mp4", synth.scene_frames(32, width=64, height=48, seed=k),
                          fps=25)
    out = tmp_path / "out"
    cmd = _subprocess(str(src), "-o", str(out), "--sink", "webdataset", "--shard-size", "2")
    a = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=_env(**{partial.STOP_ENV: "c1.mp4:1:SIGSTOP"}))
    try:
        wait_until_stopped(a)  # c0 written to A's open shard, c1 in progress
        b = subprocess.run(cmd, capture_output=True, timeout=300, env=_env())
        # B: A's videos are in progress elsewhere (exit 3); it did the rest in its own shards.
        assert b.returncode == 3, b.stderr.decode()[-2000:]
        assert "c0.mp4: in progress elsewhere" in b.stderr.decode()
    finally:
        a.send_signal(signal.SIGCONT)
    _, err = a.communicate(timeout=300)
    assert a.returncode == 0, err.decode()[-2000:]  # A: finished its own, skipped B's
    shards = read_shards(out)
    where = _once(shards)
    assert sorted(where) == [f"c{k}" for k in range(8)]
    oks: dict[str, list[str]] = {}
    for e in read_manifest(out):
        if e["status"] == "ok":
            oks.setdefault(e["run"], []).append(e["video"][: -len(".mp4")])
    assert len(oks) == 2 and sorted(s for stems in oks.values() for s in stems) == sorted(where)
    writers = []
    for stems in oks.values():
        named = {where[s] for s in stems}
        ids = {_SHARD_NAME.match(n).group(1) for n in named}  # type: ignore[union-attr]
        assert len(ids) == 1, named  # one writer per run ...
        writers.append(ids.pop())
        # ... and its shards hold the videos this run recorded ok, no other run's
        assert {s for n in named for s in shards[n]} == set(stems)
    assert writers[0] != writers[1]
    # A third run finds everything done.
    assert main(_cli(str(src), "-o", str(out), "--sink", "webdataset", "--shard-size", "2")) == 0
    assert sorted(read_shards(out)) == sorted(shards)
    assert locks_free(out)


def test_devices_write_their_own_shards(tmp_path: Path, five: Path,
                                        reference: dict[str, np.ndarray]) -> None:
    # One process per device, each with its own sink: its own writer id, its own shards.
    # (parquet here; the tar sink's writers are the same code, sinks.sharded)
    out, sink = tmp_path / "out", "parquet"
    s = vadfeat.extract([five], out, sink=sink, shard_size=2, devices=["cpu", "cpu"], **TINY)
    assert (s.exit_code, s.ok) == (0, 5)
    shards = read_shards(out)
    where = _once(shards)
    assert sorted(where) == sorted(reference)
    by_run: dict[str, set[str]] = {}
    for e in read_manifest(out):
        if e["status"] == "ok":
            by_run.setdefault(e["run"], set()).add(where[e["video"][: -len(".mp4")]])
    ids = [{_SHARD_NAME.match(n).group(1) for n in named} for named in by_run.values()]  # type: ignore[union-attr]
    assert all(len(i) == 1 for i in ids) and len(set.union(*ids)) == len(ids)
    for videos in shards.values():
        for stem, (feats, _) in videos.items():
            assert np.array_equal(feats, reference[stem]), stem
    again = vadfeat.extract([five], out, sink=sink, shard_size=2, **TINY)
    assert (again.ok, again.skipped) == (0, 5)


def test_a_shard_of_claims_fits_in_the_open_file_limit(caplog: pytest.LogCaptureFixture) -> None:
    # A shard's videos keep their claims (one open file each) until it is committed: the
    # run raises its soft limit to fit them, up to the hard limit, and warns past that.
    import resource

    from vadfeat.engines.context import room_for_claims

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2000:
        pytest.skip(f"the hard limit on open files is {hard}")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        room_for_claims(1000)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 1000 + 256
        room_for_claims(100)  # never lowered
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 1000 + 256
        assert "ulimit" not in caplog.text
        if hard != resource.RLIM_INFINITY:
            room_for_claims(hard)
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
            assert "--shard-size" in caplog.text and "ulimit -n" in caplog.text
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
