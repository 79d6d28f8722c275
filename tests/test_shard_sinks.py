"""The sharded sinks (``--sink webdataset``, ``--sink parquet``) at the sink level: what is
visible when, resume from the shards' indexes, killed writers, damaged and foreign files,
concurrent writers and the compaction of superseded videos."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap
import threading
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest

from vadfeat.errors import ConfigError
from vadfeat.store import shards as S
from vadfeat.store.identity import source_identity
from vadfeat.store.sinks import ShardedSink, VideoFeatures, make_sink

FP = {"model": "vit_tiny_patch16_224", "preset": {"clip_len": 16, "crops": 1}, "dtype": "fp32"}
SHARDED = ("webdataset", "parquet")


def _result(stem: str, seed: int = 0, *, fp: dict[str, Any] = FP, shape: tuple[int, ...] = (5, 16),
            source: Path | None = None) -> VideoFeatures:
    feats = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    # as FeatureExtractor.sidecar makes it (the fields the sinks read)
    meta: dict[str, Any] = {"vadfeat_version": "0.0-test", "video": stem + ".mp4", "shape": list(shape),
                            "layout": "flat", "fingerprint": fp, "num_frames": 16 * shape[0], "fps": 25.0,
                            "created": "2026-01-01T00:00:00+00:00"}
    if source is not None:
        meta["source_identity"] = source_identity(source, content=True)
    return VideoFeatures(feats, meta)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _sink(out: Path, kind: str, **kw: Any) -> ShardedSink:
    sink = make_sink(out, sink=kind, **kw)
    assert isinstance(sink, ShardedSink)
    return sink


def _write(sink: ShardedSink, stem: str, seed: int = 0, **kw: Any) -> str:
    return sink.write(sink.plan(PurePosixPath(stem)), _result(stem, seed, **kw))


def _state(sink: ShardedSink, stem: str, fp: dict[str, Any] | None = FP, **kw: Any) -> str:
    return sink.state(sink.plan(PurePosixPath(stem)), fp, **kw).status


def _shards(out: Path, kind: str) -> list[Path]:
    return sorted(out.glob("shard-*" + S.SHARD_SUFFIXES[kind]))


def _stems_in_shards(out: Path, kind: str) -> list[str]:
    """Every video in vadfeat's shards of ``out`` (a stem twice if two shards hold it)."""
    return sorted(rec.stem for shard in _shards(out, kind) if S.is_vadfeat_shard(shard)
                  for rec in S.iter_shard(shard))


@pytest.mark.parametrize("kind", SHARDED)
def test_nothing_is_visible_before_the_shard_commits(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    sink = _sink(out, kind, shard_size=10)
    sink.open()
    _write(sink, "a/one", 1)
    _write(sink, "b/two", 2)
    visible = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert visible == []  # no shard
    assert not (out / S.INDEX_DIR).exists()  # no index
    hidden = [p.name for p in out.iterdir()]
    assert len(hidden) == 1 and ".vadfeat-tmp." in hidden[0]
    assert sink.take_committed() == []
    other = _sink(out, kind)  # another process looking now
    assert _state(other, "a/one") == "absent" and _state(sink, "a/one") == "absent"
    sink.commit()
    assert sink.take_committed() == ["a/one", "b/two"]
    assert sink.take_committed() == []
    (shard,) = _shards(out, kind)
    assert S.index_path(out, shard.name).is_file()
    assert [p.name for p in out.iterdir() if ".vadfeat-tmp." in p.name] == []
    assert _state(_sink(out, kind), "a/one") == "done"
    assert sink.describe(sink.plan(PurePosixPath("b/two"))) == f"{shard}:b/two"


@pytest.mark.parametrize("kind", SHARDED)
def test_a_shard_is_committed_whole_at_shard_size(tmp_path: Path, kind: str) -> None:
    sink = _sink(tmp_path, kind, shard_size=3)
    sink.open()
    stems = [f"v{i}" for i in range(7)]
    seen: list[list[str]] = []
    for i, stem in enumerate(stems):
        where = _write(sink, stem, i)
        seen.append(sink.take_committed())
        assert len(_shards(tmp_path, kind)) == (i + 1) // 3
        assert where.startswith(str(tmp_path / "shard-")) and where.endswith(f":{stem}")
    assert seen == [[], [], stems[:3], [], [], stems[3:6], []]
    sink.commit()
    assert sink.take_committed() == stems[6:]
    shards = _shards(tmp_path, kind)
    assert [len(list(S.iter_shard(p))) for p in shards] == [3, 3, 1]
    writers = {S.parse_shard_name(p.name).writer for p in shards}  # type: ignore[union-attr]
    assert len(writers) == 1
    assert [S.parse_shard_name(p.name).seq for p in shards] == [0, 1, 2]  # type: ignore[union-attr]
    for p in shards:
        for rec in S.iter_shard(p):
            assert _npy(rec.features) == _npy(_result(rec.stem, stems.index(rec.stem)).features)


@pytest.mark.parametrize("kind", SHARDED)
def test_a_shard_is_committed_when_it_reaches_shard_mb(tmp_path: Path, kind: str) -> None:
    sink = _sink(tmp_path, kind, shard_mb=1 / 1024)  # 1 KiB: a [5, 16] float32 video is 320 bytes
    sink.open()
    for i in range(3):
        _write(sink, f"v{i}", i, shape=(5, 64))
    assert sink.take_committed() == ["v0", "v1", "v2"]
    assert len(_shards(tmp_path, kind)) == 3


@pytest.mark.parametrize("kind", SHARDED)
def test_resume_finds_committed_videos_done_and_uncommitted_ones_absent(tmp_path: Path, kind: str) -> None:
    first = _sink(tmp_path, kind, shard_size=2)
    first.open()
    for i, stem in enumerate(["a", "b", "c"]):
        _write(first, stem, i)
    # no commit: the run stops here (its open shard holds c)
    again = _sink(tmp_path, kind, shard_size=2)
    again.open()
    assert [_state(again, s) for s in ("a", "b", "c")] == ["done", "done", "absent"]
    assert again.present(again.plan(PurePosixPath("a")))
    assert not again.present(again.plan(PurePosixPath("c")))
    first.abort()
    assert [p.name for p in tmp_path.iterdir() if ".vadfeat-tmp." in p.name] == []


_KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import PurePosixPath
    import numpy as np
    from vadfeat.store.sinks import VideoFeatures, make_sink
    FP = {"model": "vit_tiny_patch16_224", "preset": {"clip_len": 16, "crops": 1}, "dtype": "fp32"}
    sink = make_sink(sys.argv[1], sink=sys.argv[2], shard_size=10)
    sink.open()
    for i in range(3):
        meta = {"vadfeat_version": "0.0-test", "video": f"v{i}.mp4", "shape": [4, 8], "layout": "flat",
                "fingerprint": FP}
        sink.write(sink.plan(PurePosixPath(f"v{i}")), VideoFeatures(np.ones((4, 8), np.float32), meta))
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("kind", SHARDED)
def test_a_writer_killed_mid_shard_leaves_no_shard_and_its_temporary_goes(tmp_path: Path, kind: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path), kind], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 1 and names[0].startswith(".shard-") and ".vadfeat-tmp." in names[0]
    sink = _sink(tmp_path, kind)
    sink.open()
    assert [p.name for p in tmp_path.iterdir() if ".vadfeat-tmp." in p.name] == []
    assert _shards(tmp_path, kind) == []
    assert [_state(sink, f"v{i}") for i in range(3)] == ["absent"] * 3


@pytest.mark.parametrize("kind", SHARDED)
def test_other_settings_are_changed(tmp_path: Path, kind: str) -> None:
    sink = _sink(tmp_path, kind)
    sink.open()
    _write(sink, "a")
    sink.commit()
    other = {**FP, "dtype": "bf16"}
    st = _sink(tmp_path, kind).state(sink.plan(PurePosixPath("a")), other)
    assert st.status == "changed" and st.previous == FP
    assert _sink(tmp_path, kind).state(sink.plan(PurePosixPath("a")), None).status == "changed"


@pytest.mark.parametrize("kind", SHARDED)
def test_a_changed_source_is_redone(tmp_path: Path, kind: str) -> None:
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x" * 1000)
    out = tmp_path / "out"
    sink = _sink(out, kind)
    sink.open()
    _write(sink, "a", source=video)
    sink.commit()
    assert _state(_sink(out, kind), "a", source=video) == "done"
    video.write_bytes(b"y" * 1001)
    st = _sink(out, kind).state(sink.plan(PurePosixPath("a")), FP, source=video)
    assert st.status == "redo" and "source" in st.reason


def _flip(path: Path, *, keep_mtime: bool) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("kind", SHARDED)
@pytest.mark.parametrize("keep_mtime", [True, False], ids=["same-mtime", "new-mtime"])
def test_a_damaged_shard_is_redone(tmp_path: Path, kind: str, keep_mtime: bool) -> None:
    sink = _sink(tmp_path, kind)
    sink.open()
    stems = [f"v{i}" for i in range(4)]
    for i, stem in enumerate(stems):
        _write(sink, stem, i, shape=(40, 64))  # mostly feature bytes: the middle byte is a feature's
    sink.commit()
    (shard,) = _shards(tmp_path, kind)
    _flip(shard, keep_mtime=keep_mtime)
    states = [_sink(tmp_path, kind).state(sink.plan(PurePosixPath(s)), FP) for s in stems]
    assert any(st.status == "redo" for st in states), states
    assert all(st.status in ("redo", "done") for st in states)
    for st in states:
        if st.status == "redo":
            assert "sha256" in st.reason or "damaged" in st.reason
    if keep_mtime:  # the index still matches size and mtime: only the sha256 check sees it
        assert all(_state(_sink(tmp_path, kind), s, verify=False) == "done" for s in stems)


def _foreign_tar(path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        data = b"not features"
        info = tarfile.TarInfo("a.npy")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("kind", SHARDED)
def test_foreign_files_are_never_deleted_or_read_as_done(tmp_path: Path, kind: str) -> None:
    w = S.new_writer_id()
    theirs = {
        tmp_path / "shard-x.tar": b"someone else's",
        tmp_path / "notes.txt": b"my notes",
        tmp_path / ".shard-y.tar.vadfeat-tmp.otherhost.1": b"another host's temporary",
    }
    for path, data in theirs.items():
        path.write_bytes(data)
    named = tmp_path / S.shard_name(w, 0, kind)  # named like ours, not ours
    if kind == "webdataset":
        _foreign_tar(named)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"stem": ["a"], "x": [1.0]}), named)
    theirs[named] = named.read_bytes()
    sink = _sink(tmp_path, kind, shard_size=1)
    sink.open()
    assert _state(sink, "a") == "absent" and not sink.present(sink.plan(PurePosixPath("a")))
    _write(sink, "a", 1)
    _write(sink, "a", 2)  # a second copy: the first is superseded and compacted away at commit
    sink.commit()
    assert all(p.read_bytes() == data for p, data in theirs.items())
    assert not S.index_path(tmp_path, named.name).exists()
    assert _stems_in_shards(tmp_path, kind) == ["a"]  # the foreign one is not listed as a shard


@pytest.mark.parametrize("kind", SHARDED)
def test_a_file_where_the_index_folder_goes_stops_the_run(tmp_path: Path, kind: str) -> None:
    (tmp_path / S.INDEX_DIR).write_bytes(b"mine")
    with pytest.raises(ConfigError, match=S.INDEX_DIR):
        _sink(tmp_path, kind).open()
    assert (tmp_path / S.INDEX_DIR).read_bytes() == b"mine"


@pytest.mark.parametrize("kind", SHARDED)
def test_two_writers_on_one_folder_write_separate_shards(tmp_path: Path, kind: str) -> None:
    sinks = [_sink(tmp_path, kind, shard_size=2) for _ in range(2)]
    for sink in sinks:
        sink.open()
    stems = [[f"w{k}/v{i}" for i in range(5)] for k in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            barrier.wait()
            for i, stem in enumerate(stems[k]):
                _write(sinks[k], stem, 10 * k + i)
            sinks[k].commit()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    shards = _shards(tmp_path, kind)
    by_writer: dict[str, set[str]] = {}
    for p in shards:
        w = S.parse_shard_name(p.name).writer  # type: ignore[union-attr]
        by_writer.setdefault(w, set()).update(rec.stem for rec in S.iter_shard(p))
    assert sorted(map(sorted, by_writer.values())) == sorted(map(sorted, stems))
    cat = S.load_indexes(tmp_path, sink=kind)
    assert sorted(cat.videos) == sorted(stems[0] + stems[1]) and cat.superseded == []
    reader = _sink(tmp_path, kind)
    assert all(_state(reader, s) == "done" for s in stems[0] + stems[1])


@pytest.mark.parametrize("kind", SHARDED)
def test_superseded_videos_are_compacted_at_commit(tmp_path: Path, kind: str) -> None:
    first = _sink(tmp_path, kind)
    first.open()
    for i, stem in enumerate(["a", "b", "c"]):
        _write(first, stem, i)
    first.commit()
    (old,) = _shards(tmp_path, kind)
    second = _sink(tmp_path, kind, shard_size=1)
    second.open()
    _write(second, "b", 99)  # b redone, its shard committed: the copy in the old shard is superseded
    assert S.load_indexes(tmp_path, sink=kind).superseded == [(old.name, "b")]
    assert _stems_in_shards(tmp_path, kind) == ["a", "b", "b", "c"]  # until commit() compacts
    second.commit()
    assert _stems_in_shards(tmp_path, kind) == ["a", "b", "c"]  # each exactly once
    (new,) = [p for p in _shards(tmp_path, kind) if p != old]
    assert [r.stem for r in S.iter_shard(old)] == ["a", "c"]  # rewritten under its own name
    (b,) = list(S.iter_shard(new))
    assert _npy(b.features) == _npy(_result("b", 99).features)
    cat = S.load_indexes(tmp_path, sink=kind)
    assert cat.superseded == [] and sorted(cat.shards[old.name]["videos"]) == ["a", "c"]
    assert cat.shards[old.name]["sha256"] == hashlib.sha256(old.read_bytes()).hexdigest()
    third = _sink(tmp_path, kind)
    third.open()
    _write(third, "a", 5)
    _write(third, "c", 6)
    third.commit()  # every video of the old shard has a newer copy: it goes, with its index
    assert not old.exists() and not S.index_path(tmp_path, old.name).exists()
    assert _stems_in_shards(tmp_path, kind) == ["a", "b", "c"]
    assert all(_state(_sink(tmp_path, kind), s) == "done" for s in "abc")


@pytest.mark.parametrize("kind", SHARDED)
def test_the_same_video_twice_in_one_run_ends_once(tmp_path: Path, kind: str) -> None:
    sink = _sink(tmp_path, kind)
    sink.open()
    _write(sink, "a", 1)
    _write(sink, "b", 2)
    _write(sink, "a", 3)
    sink.commit()
    assert sink.take_committed() == ["a", "b", "a"]
    assert _stems_in_shards(tmp_path, kind) == ["a", "b"]
    got = {r.stem: r for p in _shards(tmp_path, kind) for r in S.iter_shard(p)}
    assert _npy(got["a"].features) == _npy(_result("a", 3).features)


@pytest.mark.parametrize("kind", SHARDED)
def test_at_copies_settings_only_and_pickles(tmp_path: Path, kind: str) -> None:
    sink = _sink(tmp_path, kind, shard_size=7, shard_mb=3, crops=2)
    sink.open()
    _write(sink, "a", shape=(3, 2, 8))  # an open shard with an open file
    clone = pickle.loads(pickle.dumps(sink.at(tmp_path / "seen-elsewhere")))
    assert type(clone) is type(sink) and clone.out == tmp_path / "seen-elsewhere"
    assert (clone.shard_size, clone.shard_mb, clone.crops) == (7, 3, 2)
    assert clone.take_committed() == []
    again = pickle.loads(pickle.dumps(sink))  # the open sink itself pickles as its settings
    assert again.out == tmp_path and again.shard_size == 7
    sink.abort()


def test_make_sink_names_the_sinks_and_refuses_layouts_for_shards(tmp_path: Path) -> None:
    from vadfeat.store.sinks import SINKS, NpySink, ParquetSink, WebDatasetSink

    assert SINKS == ("npy", "webdataset", "parquet")
    assert isinstance(make_sink(tmp_path), NpySink)
    assert isinstance(make_sink(tmp_path, sink="webdataset"), WebDatasetSink)
    assert isinstance(make_sink(tmp_path, sink="parquet"), ParquetSink)
    assert make_sink(tmp_path, sink="parquet").buffers and not make_sink(tmp_path).buffers
    for layout in ("fed-wsvad", "per-crop"):
        with pytest.raises(ConfigError, match="no layouts"):
            make_sink(tmp_path, sink="webdataset", layout=layout)
    with pytest.raises(ConfigError, match="unknown sink 'hdf5'"):
        make_sink(tmp_path, sink="hdf5")
    with pytest.raises(ConfigError, match="shard size"):
        make_sink(tmp_path, sink="parquet", shard_size=0)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind", SHARDED)
def test_describe_names_the_shard_once_known(tmp_path: Path, kind: str) -> None:
    sink = _sink(tmp_path, kind)
    target = sink.plan(PurePosixPath("a/clip"))
    assert sink.key(target) == "a/clip"
    assert sink.describe(target) == f"{tmp_path}/shard-*{S.SHARD_SUFFIXES[kind]}:a/clip"
    sink.open()
    where = sink.write(target, _result("a/clip"))
    assert sink.describe(target) == where
    sink.commit()
    (shard,) = _shards(tmp_path, kind)
    assert where == f"{shard}:a/clip"
    later = _sink(tmp_path, kind)
    later.open()
    assert later.describe(target) == where


@pytest.mark.parametrize("kind", SHARDED)
def test_open_rebuilds_a_missing_index_and_drops_an_orphan_one(tmp_path: Path, kind: str) -> None:
    sink = _sink(tmp_path, kind, shard_size=2)
    sink.open()
    for i, stem in enumerate("abcd"):
        _write(sink, stem, i)
    sink.commit()
    first, second = _shards(tmp_path, kind)
    kept = S.index_path(tmp_path, first.name).read_bytes()
    S.index_path(tmp_path, first.name).unlink()  # killed between the shard's rename and its index
    second.unlink()  # a shard gone (moved away by hand): its index is vadfeat's, and stale
    again = _sink(tmp_path, kind)
    assert _state(again, "a") == "done"  # planning reads the shard itself, writes nothing
    assert not S.index_path(tmp_path, first.name).exists()
    again.open()
    assert S.index_path(tmp_path, first.name).read_bytes() == kept
    assert not S.index_path(tmp_path, second.name).exists()
    assert [_state(again, s) for s in "abcd"] == ["done", "done", "absent", "absent"]


@pytest.mark.parametrize("kind", SHARDED)
def test_extract_through_a_sharded_sink_stores_the_npy_sinks_bytes(tmp_path: Path, kind: str,
                                                                   tiny_checkpoint: Path) -> None:
    from vadfeat.engines.local import extract
    from vadfeat.testing import synth

    src = tmp_path / "in"
    for k in range(2):  # a dotted name, as XD-Violence's
        synth.write_video(src / f"v.{k}.mp4", synth.scene_frames(32 + 16 * k, width=64, height=48, seed=k),
                          fps=25)
    extract([src], tmp_path / "npy", checkpoint=tiny_checkpoint, progress=False)
    out = tmp_path / kind
    summary = extract([src], out, checkpoint=tiny_checkpoint, progress=False, sink=make_sink(out, sink=kind))
    assert summary.ok == 2
    got = {r.stem: r for p in _shards(out, kind) for r in S.iter_shard(p)}
    assert sorted(got) == ["v.0", "v.1"]
    for stem, rec in got.items():
        assert _npy(rec.features) == (tmp_path / "npy" / f"{stem}.npy").read_bytes()
        assert rec.sidecar["video"] == f"{stem}.mp4" and rec.sidecar["layout"] == "flat"
    again = extract([src], out, checkpoint=tiny_checkpoint, progress=False, sink=make_sink(out, sink=kind))
    assert again.ok == 0 and again.skipped == 2


@pytest.mark.parametrize(("sink", "module"), [("webdataset", "webdataset"),
                                              ("parquet", "pyarrow.parquet")])
def test_a_missing_library_is_a_usage_error_naming_the_extra(tmp_path: Path, sink: str, module: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(ConfigError, match=r"vadfeat\[shards\]"):
        make_sink(tmp_path / "out", sink=sink)
    assert not (tmp_path / "out").exists()
