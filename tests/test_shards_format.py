"""The shard format (``vadfeat.store.shards``): what a WebDataset tar or a Parquet shard holds,
read back by vadfeat and by the libraries' own readers, and the index beside it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vadfeat.errors import ShardReadError
from vadfeat.store import shards as S

FP = {"model": "vit_tiny_patch16_224", "preset": {"clip_len": 16, "crops": 1}, "dtype": "fp32"}
SINKS = ("webdataset", "parquet")
# dots (XD-Violence names), folders, '%', spaces, non-ASCII, a webdataset-looking __meta__ part,
# and a name longer than a plain tar header holds (ustar: 100 + 155 bytes)
STEMS = ["a/b/v=1.Fight.mp4.x264", "50% off/clip one", "ünï/çödé.v2", "__meta__/_x", "plain",
         "ø" * 150 + "/" + "long.name" * 20]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _meta(stem: str, shape: tuple[int, ...]) -> dict[str, Any]:
    # as FeatureExtractor.sidecar makes it (the fields the Parquet columns copy)
    return {"vadfeat_version": "0.0-test", "video": stem + ".mp4", "source": f"/data/{stem}.mp4",
            "preset": "videomae-k400", "model": {"name": "vit_tiny_patch16_224"}, "num_frames": 48,
            "fps": 25.0, "snippets": [[16 * i, 16 * i + 15] for i in range(shape[0])],
            "shape": list(shape), "layout": "flat", "fingerprint": FP, "created": "2026-01-01T00:00:00+00:00"}


def _videos(shape_tail: tuple[int, ...] = (2, 8)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {s: rng.standard_normal((3 + i, *shape_tail)).astype(np.float32) for i, s in enumerate(STEMS)}


def _commit(out: Path, sink: str, videos: dict[str, np.ndarray], *, writer: str | None = None,
            seq: int = 0, index: bool = True) -> Path:
    """Write one shard as a sink does: a temporary, closed, renamed into place, then its index."""
    name = S.shard_name(writer or S.new_writer_id(), seq, sink)
    out.mkdir(parents=True, exist_ok=True)
    w = S.open_shard_writer(sink, out / f".{name}.tmp", name)
    for stem, arr in videos.items():
        w.add(stem, arr, _meta(stem, arr.shape))
    w.close()
    os.replace(w.path, out / name)
    if index:
        S.write_index(out, w.index(mtime_ns=(out / name).stat().st_mtime_ns))
    return out / name


def test_member_names_keep_webdataset_from_splitting_or_skipping_them() -> None:
    assert S.member_name("a/b/v=1.Fight.mp4") == "a/b/v=1%2EFight%2Emp4"
    assert S.member_name("50% off/clip one") == "50%25 off/clip one"
    assert S.member_name("__meta__/_x") == "%5F_meta__/%5Fx"
    assert S.member_name("ünï/çödé.v2") == "ünï/çödé%2Ev2"


def test_shard_names_sort_by_writer_then_sequence() -> None:
    from datetime import datetime, timezone

    w = S.new_writer_id(datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc))
    assert w.startswith("20260304T050607Z-") and len(w) == len("20260304T050607Z-") + 6
    assert S.shard_name(w, 12, "webdataset") == f"shard-{w}-00012.tar"
    assert S.shard_name(w, 0, "parquet") == f"shard-{w}-00000.parquet"
    assert S.parse_shard_name(f"shard-{w}-00012.tar") == S.ShardName(w, 12, "webdataset")
    for other in ("shard-x.tar", f"shard-{w}-1.tar", f"shard-{w}-00001.npy", f".shard-{w}-00001.tar"):
        assert S.parse_shard_name(other) is None
    with pytest.raises(ValueError, match="sink"):
        S.shard_name(w, 0, "npy")


def test_a_new_writer_sorts_after_every_writer_already_in_the_folder() -> None:
    from datetime import datetime, timezone

    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    same_second = "20260304T050607Z-ffff00"  # opened this second, with a high random part
    ahead = "20260304T060000Z-000001"  # a host whose clock is an hour ahead
    for existing in ([same_second], [ahead], [same_second, ahead], ["20260304T050607Z-ffffff"]):
        for _ in range(20):
            w = S.new_writer_id(now, after=existing)
            assert w > max(existing) and S.parse_shard_name(S.shard_name(w, 0, "parquet")) is not None
    assert S.new_writer_id(now, after=["20200101T000000Z-ffffff"]).startswith("20260304T050607Z-")


@pytest.mark.parametrize("sink", SINKS)
def test_a_round_trip_keeps_every_feature_byte_and_the_sidecar(tmp_path: Path, sink: str) -> None:
    videos = _videos()
    shard = _commit(tmp_path, sink, videos)
    records = list(S.iter_shard(shard))
    assert [r.stem for r in records] == STEMS  # write order
    for rec in records:
        want = _npy(videos[rec.stem])
        assert _npy(rec.features) == want  # byte-identical to the .npy sink's file
        assert rec.features.dtype == np.float32 and rec.intact
        assert rec.features_sha256 == hashlib.sha256(want).hexdigest()
        side = rec.sidecar
        expect = _meta(rec.stem, videos[rec.stem].shape)
        assert {k: side[k] for k in expect} == expect
        assert side["features_sha256"] == hashlib.sha256(want).hexdigest()
        assert (side["sink"], side["shard"], side["stem"]) == (sink, shard.name, rec.stem)
        assert side["sidecar_sha256"] and "files" not in side
    one = S.read_video(shard, records[2].member)
    assert one.stem == STEMS[2] and _npy(one.features) == _npy(videos[STEMS[2]])
    with pytest.raises(ShardReadError, match="no video"):
        S.read_video(shard, "missing")


@pytest.mark.parametrize("sink", SINKS)
def test_the_index_written_at_commit_equals_one_rebuilt_from_the_shard(tmp_path: Path, sink: str) -> None:
    shard = _commit(tmp_path, sink, _videos())
    stored = json.loads(S.index_path(tmp_path, shard.name).read_text())
    rebuilt = S.index_shard(shard)
    assert json.loads(json.dumps(rebuilt)) == stored
    assert S.load_indexes(tmp_path).get(STEMS[0]).sidecar == stored["videos"][STEMS[0]]["sidecar"]  # type: ignore[union-attr]
    slim = S.load_indexes(tmp_path, slim=True).get(STEMS[0])  # what resume needs, not the snippets
    assert slim is not None and "snippets" not in slim.sidecar
    full = stored["videos"][STEMS[0]]["sidecar"]
    assert slim.sidecar == {k: v for k, v in full.items() if k in S.SLIM_FIELDS}
    assert stored["size"] == shard.stat().st_size
    assert stored["sha256"] == hashlib.sha256(shard.read_bytes()).hexdigest()
    assert sorted(stored["videos"]) == sorted(STEMS)
    assert S.is_vadfeat_shard(shard)


def test_webdataset_reads_a_tar_shard_with_its_own_decoder(tmp_path: Path) -> None:
    import webdataset as wds

    videos = _videos()
    shard = _commit(tmp_path, "webdataset", videos)
    got = {s["json"]["stem"]: s for s in wds.WebDataset(str(shard), shardshuffle=False).decode()}
    assert sorted(got) == sorted(STEMS)
    for stem, sample in got.items():
        assert sample["__key__"] == S.member_name(stem)
        assert _npy(sample["npy"]) == _npy(videos[stem])


def test_pyarrow_pandas_and_polars_read_a_parquet_shard(tmp_path: Path) -> None:
    import pandas as pd
    import polars as pl
    import pyarrow.parquet as pq

    videos = _videos()
    shard = _commit(tmp_path, "parquet", videos)
    assert pq.ParquetFile(shard).num_row_groups == len(STEMS)  # one row group per video
    table = pq.read_table(shard)
    assert table.column_names == list(S.PARQUET_COLUMNS)
    for row in table.to_pylist():
        arr = np.asarray(row["features"], dtype=np.float32).reshape(row["shape"])
        assert _npy(arr) == _npy(videos[row["stem"]])
        assert json.loads(row["sidecar"])["stem"] == row["stem"]
        assert (row["num_frames"], row["fps"], row["model"], row["preset"]) == (
            48, 25.0, "vit_tiny_patch16_224", "videomae-k400")
        assert row["num_snippets"] == videos[row["stem"]].shape[0] and row["modality"] is None
    df = pd.read_parquet(shard)
    assert list(df["stem"]) == STEMS
    first = np.stack(list(df["features"][0])).reshape(df["shape"][0])
    assert _npy(first) == _npy(videos[STEMS[0]])
    pl_df = pl.read_parquet(shard)
    assert pl_df["stem"].to_list() == STEMS
    arr = pl_df["features"][1].to_numpy().reshape(pl_df["shape"][1].to_list())
    assert _npy(arr) == _npy(videos[STEMS[1]])


@pytest.mark.parametrize("sink", SINKS)
def test_a_missing_or_edited_index_is_rebuilt_from_the_shard(tmp_path: Path, sink: str) -> None:
    shard = _commit(tmp_path, sink, _videos())
    idx = S.index_path(tmp_path, shard.name)
    good = json.loads(idx.read_text())
    idx.unlink()
    cat = S.load_indexes(tmp_path)  # a reader: rebuilt in memory, nothing written
    assert sorted(cat.videos) == sorted(STEMS) and not idx.exists()
    S.load_indexes(tmp_path, repair=True)
    assert json.loads(idx.read_text()) == good
    edited = dict(good, videos={"plain": good["videos"]["plain"]})  # seal no longer matches
    idx.write_text(json.dumps(edited))
    cat = S.load_indexes(tmp_path, repair=True)
    assert sorted(cat.videos) == sorted(STEMS)
    assert json.loads(idx.read_text()) == good


@pytest.mark.parametrize("sink", SINKS)
def test_an_index_of_another_size_is_stale(tmp_path: Path, sink: str) -> None:
    shard = _commit(tmp_path, sink, _videos())
    idx = S.index_path(tmp_path, shard.name)
    good = json.loads(idx.read_text())
    S.write_index(tmp_path, S.make_index(sink, shard.name, size=good["size"] + 1, sha256="0" * 64,
                                         mtime_ns=good["mtime_ns"], videos={}))
    cat = S.load_indexes(tmp_path)
    assert sorted(cat.videos) == sorted(STEMS)


def test_the_newest_shard_wins_and_older_copies_are_superseded(tmp_path: Path) -> None:
    videos = _videos()
    old = _commit(tmp_path, "parquet", videos, writer="20260101T000000Z-aaaaaa")
    newer = {STEMS[0]: videos[STEMS[0]] + 1}
    new = _commit(tmp_path, "parquet", newer, writer="20260101T000000Z-aaaaaa", seq=1)
    cat = S.load_indexes(tmp_path)
    assert cat.videos[STEMS[0]].shard == new.name
    assert cat.videos[STEMS[1]].shard == old.name
    assert cat.superseded == [(old.name, STEMS[0])]
    assert S.load_indexes(tmp_path, sink="webdataset").videos == {}


def _foreign_tar(path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        data = b'{"hello": 1}'
        info = tarfile.TarInfo("x.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _foreign_parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"stem": ["plain"], "x": [1.0]}), path)


def test_a_foreign_shard_named_like_ours_is_never_taken_or_touched(tmp_path: Path) -> None:
    w = S.new_writer_id()
    tar, par = tmp_path / S.shard_name(w, 0, "webdataset"), tmp_path / S.shard_name(w, 0, "parquet")
    _foreign_tar(tar)
    _foreign_parquet(par)
    # a tar of vadfeat's members, copied under another shard's name, is not that shard
    ours = _commit(tmp_path / "elsewhere", "webdataset", {"plain": np.zeros((2, 4), np.float32)})
    renamed = tmp_path / S.shard_name(w, 1, "webdataset")
    renamed.write_bytes(ours.read_bytes())
    before = {p: p.read_bytes() for p in (tar, par, renamed)}
    cat = S.load_indexes(tmp_path, repair=True)
    assert cat.videos == {} and cat.shards == {}
    assert sorted(cat.foreign) == sorted(p.name for p in before)
    assert all(p.read_bytes() == b for p, b in before.items())  # untouched
    assert not (tmp_path / S.INDEX_DIR).exists()  # and no index made for them
    for p in before:
        assert not S.is_vadfeat_shard(p)
        with pytest.raises(ShardReadError) as err:
            list(S.iter_shard(p))
        assert err.value.foreign and str(p) in str(err.value)


@pytest.mark.parametrize("sink", SINKS)
def test_a_cut_shard_is_a_clear_error(tmp_path: Path, sink: str) -> None:
    shard = _commit(tmp_path, sink, _videos(), index=False)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardReadError) as err:
        list(S.iter_shard(shard))
    assert not err.value.foreign and shard.name in str(err.value)
    cat = S.load_indexes(tmp_path, repair=True)
    assert shard.name in cat.damaged and cat.videos == {}
    assert shard.read_bytes() == data[: len(data) // 2]


@pytest.mark.parametrize("sink", SINKS)
def test_a_flipped_feature_byte_marks_that_video(tmp_path: Path, sink: str) -> None:
    rng = np.random.default_rng(3)
    videos = {"a": rng.standard_normal((4, 8)).astype(np.float32),
              "b": rng.standard_normal((4, 8)).astype(np.float32)}
    shard = _commit(tmp_path, sink, videos)
    data = bytearray(shard.read_bytes())
    # b's features as stored (random floats: no compressor shortens them), found by value
    at = data.find(videos["b"][1].tobytes())
    assert at > 0
    data[at + 3] ^= 0x01
    shard.write_bytes(bytes(data))
    cat = S.load_indexes(tmp_path, repair=True)
    assert cat.get("a") is not None and cat.get("a").problem is None  # type: ignore[union-attr]
    b = cat.get("b")
    assert b is not None and b.problem is not None and "sha256" in b.problem


def test_a_foreign_file_at_an_index_path_is_not_replaced(tmp_path: Path) -> None:
    shard = _commit(tmp_path, "webdataset", _videos(), index=False)
    idx = S.index_path(tmp_path, shard.name)
    idx.parent.mkdir()
    idx.write_text('{"mine": true}')
    cat = S.load_indexes(tmp_path, repair=True)
    assert sorted(cat.videos) == sorted(STEMS)  # the shard is read instead
    assert idx.read_text() == '{"mine": true}'


def test_an_orphan_index_goes_and_foreign_index_files_stay(tmp_path: Path) -> None:
    shard = _commit(tmp_path, "webdataset", _videos())
    idx = S.index_path(tmp_path, shard.name)
    note = tmp_path / S.INDEX_DIR / "notes.json"
    note.write_text("{}")
    fake = S.index_path(tmp_path, S.shard_name(S.new_writer_id(), 3, "webdataset"))
    fake.write_text('{"format": "something else"}')
    shard.unlink()
    S.load_indexes(tmp_path, repair=True)
    assert not idx.exists()  # vadfeat's, sealed, and its shard is gone
    assert note.exists() and fake.exists()
