"""The engines are sink-agnostic: a run plans, resumes, refuses changed settings and writes
through the run's one sink (``RunContext.sink``), whatever its targets are.

The sink here is a test-only one in the manner of a shard sink: every video goes into one
``OUT/features.npz`` with the sink's own index ``OUT/index.json``; :meth:`write` only
buffers, :meth:`commit` writes both files whole.  Its targets are an opaque class with no
path in it, so an engine that looked inside a target (``.features``, ``.sidecar``) would
fail here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest

from vadfeat.engines.local import extract
from vadfeat.errors import ConfigError
from vadfeat.store.fingerprint import same_fingerprint
from vadfeat.store.manifest import read_manifest
from vadfeat.store.sinks import OutputState, Sink, VideoFeatures
from vadfeat.testing import synth


class _Member:
    """A video's place in the archive: a member name, nothing an engine could open."""

    __slots__ = ("member",)

    def __init__(self, member: str) -> None:
        self.member = member


class NpzSink(Sink[_Member]):
    """All videos in ``OUT/features.npz``, indexed by ``OUT/index.json`` (member -> the
    fingerprint it was made with); nothing per video on disk."""

    name = "npz"

    def __init__(self, out: Path) -> None:
        super().__init__(out)
        index = self.out / "index.json"
        self.index: dict[str, Any] = json.loads(index.read_text()) if index.is_file() else {}
        self.buffer: dict[str, VideoFeatures] = {}
        self.calls: list[str] = []

    def open(self) -> None:
        super().open()
        self.calls.append("open")

    def plan(self, stem: PurePosixPath) -> _Member:
        return _Member(stem.as_posix())

    def key(self, target: _Member) -> str:
        return "npz:" + target.member

    def describe(self, target: _Member) -> str:
        return f"{self.out / 'features.npz'}#{target.member}"

    def present(self, target: _Member) -> bool:
        return target.member in self.index

    def state(self, target: _Member, fingerprint: Mapping[str, Any] | None, *,
              source: Path | None = None, verify: bool = True) -> OutputState:
        self.calls.append("state")
        entry = self.index.get(target.member)
        if entry is None:
            return OutputState("absent")
        if fingerprint is None or not same_fingerprint(entry, fingerprint):
            return OutputState("changed", previous=entry)
        return OutputState("done", previous=entry)

    def write(self, target: _Member, result: VideoFeatures, *, stale: Iterable[Path] = ()) -> str:
        self.calls.append("write")
        self.buffer[target.member] = result
        return self.describe(target)

    def commit(self) -> None:
        self.calls.append("commit")
        path = self.out / "features.npz"
        arrays: dict[str, np.ndarray] = {}
        if path.is_file():
            with np.load(path) as old:
                arrays = {k: old[k] for k in old.files}
        for member, result in self.buffer.items():
            arrays[member] = result.features
            self.index[member] = result.metadata["fingerprint"]
        tmp = self.out / "features.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        (self.out / "index.json").write_text(json.dumps(self.index))
        self.buffer.clear()

    def abort(self) -> None:
        self.calls.append("abort")
        self.buffer.clear()


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    for k in range(3):  # 32, 48, 64 frames -> 2, 3, 4 snippets of 16
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(32 + 16 * k, width=64, height=48,
                                                                 seed=k), fps=25)
    return src


def _files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and ".vadfeat-locks" not in p.parts)


def test_a_run_plans_resumes_and_refuses_through_its_sink(tmp_path: Path, videos: Path,
                                                           tiny_checkpoint: Path) -> None:
    out = tmp_path / "out"
    sink = NpzSink(out)
    first = extract([videos], out, checkpoint=tiny_checkpoint, progress=False, sink=sink)
    assert (first.exit_code, first.ok, first.skipped, first.failed) == (0, 3, 0, [])
    # One sink for the run: opened once, every video written through it, committed once,
    # last; each video looked at once, under its claim (nothing was there at planning).
    assert sink.calls[0] == "open" and sink.calls[-1] == "commit"
    assert sink.calls.count("open") == 1 and sink.calls.count("commit") == 1
    assert sink.calls.count("state") == 3 and sink.calls.count("write") == 3
    assert "abort" not in sink.calls
    # Nothing per video on disk: the archive, its index and the run's manifest.
    assert _files(out) == ["features.npz", "index.json", "manifest.jsonl"]
    # The features are the ones the .npy sink writes for the same run (same model, CPU).
    ref = tmp_path / "ref"
    extract([videos], ref, checkpoint=tiny_checkpoint, progress=False)
    with np.load(out / "features.npz") as got:
        assert sorted(got.files) == ["v0", "v1", "v2"]
        for k in range(3):
            want = np.load(ref / f"v{k}.npy")
            assert got[f"v{k}"].dtype == np.float32 and got[f"v{k}"].shape == (2 + k, 64)
            assert np.array_equal(got[f"v{k}"], want)
    # The manifest names each output as the sink describes it.
    lines = read_manifest(out)
    assert sorted((e["video"], e["status"], e["output"]) for e in lines) == [
        (f"v{k}.mp4", "ok", f"{out / 'features.npz'}#v{k}") for k in range(3)]
    archive = (out / "features.npz").read_bytes()

    # Resume: a new run's sink answers from its index; everything is skipped, nothing written.
    again_sink = NpzSink(out)
    again = extract([videos], out, checkpoint=tiny_checkpoint, progress=False, sink=again_sink)
    assert (again.exit_code, again.ok, again.skipped) == (0, 0, 3)
    assert "write" not in again_sink.calls and (out / "features.npz").read_bytes() == archive
    run2 = [e for e in read_manifest(out) if e["run"] == again.run_id]
    assert sorted((e["status"], e["output"]) for e in run2) == [
        ("skipped", f"{out / 'features.npz'}#v{k}") for k in range(3)]

    # A new video beside them: only it is extracted, and the commit keeps the others.
    synth.write_video(videos / "v3.mp4", synth.scene_frames(16, width=64, height=48, seed=3), fps=25)
    more_sink = NpzSink(out)
    more = extract([videos], out, checkpoint=tiny_checkpoint, progress=False, sink=more_sink)
    assert (more.exit_code, more.ok, more.skipped) == (0, 1, 3)
    assert more_sink.calls.count("write") == 1 and more_sink.calls[-1] == "commit"
    with np.load(out / "features.npz") as got:
        assert sorted(got.files) == ["v0", "v1", "v2", "v3"]
        assert np.array_equal(got["v0"], np.load(ref / "v0.npy"))
    archive = (out / "features.npz").read_bytes()

    # Changed settings: refused before any work, by the sink's own record of them.
    refused_sink = NpzSink(out)
    with pytest.raises(ConfigError, match=r"tail: drop -> pad.*--overwrite"):
        extract([videos], out, checkpoint=tiny_checkpoint, tail="pad", progress=False,
                sink=refused_sink)
    assert refused_sink.calls.count("open") == 0 and "write" not in refused_sink.calls
    assert (out / "features.npz").read_bytes() == archive


def test_the_process_pipeline_writes_through_the_same_sink(tmp_path: Path, videos: Path,
                                                          tiny_checkpoint: Path) -> None:
    # Decode worker processes feed the same consumer, which writes through the run's sink:
    # the archive holds what the .npy sink gets from the same pipeline (one snippet per
    # batch, so the order the workers deliver in cannot change a bit).
    kw = {"checkpoint": tiny_checkpoint, "progress": False, "workers": 2, "pipeline": "processes",
          "batch_size": 1}
    sink = NpzSink(tmp_path / "procs")
    got = extract([videos], sink.out, sink=sink, **kw)
    ref = extract([videos], tmp_path / "ref", **kw)
    assert (got.ok, got.exit_code, ref.ok) == (3, 0, 3)
    assert sink.calls.count("write") == 3 and sink.calls[-1] == "commit"
    assert _files(sink.out) == ["features.npz", "index.json", "manifest.jsonl"]
    with np.load(sink.out / "features.npz") as archive:
        assert sorted(archive.files) == ["v0", "v1", "v2"]
        for k in range(3):
            assert np.array_equal(archive[f"v{k}"], np.load(tmp_path / "ref" / f"v{k}.npy"))


class _StoppedAtSecondWrite(NpzSink):
    """Ctrl-C arrives while the second video is being written."""

    def write(self, target: _Member, result: VideoFeatures, *, stale: Iterable[Path] = ()) -> str:
        if self.calls.count("write") == 1:
            self.calls.append("write")
            raise KeyboardInterrupt
        return super().write(target, result, stale=stale)


def test_a_stopped_run_aborts_its_sink_and_a_rerun_does_everything(
        tmp_path: Path, videos: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "out"
    sink = _StoppedAtSecondWrite(out)
    stopped = extract([videos], out, checkpoint=tiny_checkpoint, progress=False, sink=sink)
    assert stopped.interrupted and stopped.exit_code == 130
    assert sink.calls[-1] == "abort" and "commit" not in sink.calls
    assert not (out / "features.npz").exists()  # the buffered video was dropped, not written
    again = extract([videos], out, checkpoint=tiny_checkpoint, progress=False, sink=NpzSink(out))
    assert (again.exit_code, again.ok, again.skipped) == (0, 3, 0)
    with np.load(out / "features.npz") as archive:
        assert sorted(archive.files) == ["v0", "v1", "v2"]


def test_a_sink_below_another_folder_is_a_usage_error(tmp_path: Path, videos: Path,
                                                       tiny_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match="sink writes below"):
        extract([videos], tmp_path / "out", checkpoint=tiny_checkpoint, progress=False,
                sink=NpzSink(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError, match="devices"):
        extract([videos], tmp_path / "out", checkpoint=tiny_checkpoint, progress=False,
                sink=NpzSink(tmp_path / "out"), devices=["cpu", "cpu"])
    assert not (tmp_path / "out").exists()
