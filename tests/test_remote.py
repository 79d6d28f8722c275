"""Inputs and outputs named by URL (``vadfeat.io.remote``), against a local S3 server.

The server is moto's (``tests/s3server.py``), started for the session on a free localhost
port; every test gets its own bucket.  Videos are tiny synthetic clips.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pytest

from vadfeat.errors import ConfigError, VideoOpenError
from vadfeat.io import remote
from vadfeat.io.inputs import scan
from vadfeat.io.video import open_video
from vadfeat.store.identity import same_source, source_changed, source_identity
from vadfeat.testing import synth

if TYPE_CHECKING:
    from s3server import S3Bucket

pytest_plugins = ["s3server"]  # the s3_server and s3 fixtures


def _video(path: Path, frames: int = 24, seed: int = 0) -> Path:
    synth.write_video(path, synth.scene_frames(frames, width=64, height=48, seed=seed), fps=25)
    return path


def _decode(source: str | Path) -> tuple[list[int], list[float], np.ndarray]:
    with open_video(source) as reader:
        got = [(f.index, f.timestamp, f.data.copy()) for f in reader]
    return [g[0] for g in got], [g[1] for g in got], np.stack([g[2] for g in got])


# --- URL parsing (no server) -------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("s3://bucket/videos", True), ("gs://b/x.mp4", True), ("file:///data/x.mp4", True),
    ("S3://Bucket/x", True), ("/data/s3://x", False), ("videos/a.mp4", False),
    ("C:\\data\\a.mp4", False), ("C:/data/a.mp4", False), ("s3:/bucket/x", False), ("", False),
    (Path("s3://bucket/x"), False),  # a Path collapses "//": it names a local path
])
def test_is_url_tells_urls_from_paths(value: object, expected: bool) -> None:
    assert remote.is_url(value) is expected


def test_file_urls_are_local_paths() -> None:
    assert remote.local_path("file:///data/my%20videos/a.mp4") == Path("/data/my videos/a.mp4")
    assert remote.local_path("file://localhost/x") == Path("/x")
    assert remote.local_path("s3://b/x") is None
    with pytest.raises(ConfigError, match="names the host 'server'"):
        remote.local_path("file://server/x")


def test_url_helpers() -> None:
    assert remote.join_url("s3://b/out/", "a/../b/./c.json") == "s3://b/out/b/c.json"
    assert remote.url_parent("s3://b/lists/train.txt") == "s3://b/lists"
    assert remote.url_relative("s3://b/v/Train/1.mp4", "s3://b/v") == "Train/1.mp4"
    assert remote.url_relative("s3://b/vx/1.mp4", "s3://b/v") is None  # not below: a sibling
    assert remote.url_relative("gs://b/v/1.mp4", "s3://b/v") is None


def test_a_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec.core

    def no_library(url: str, **kwargs: object) -> None:
        raise ImportError("Install gcsfs to access Google Storage")

    monkeypatch.setattr(fsspec.core, "url_to_fs", no_library)
    with pytest.raises(ConfigError, match=r"gs://b/v.*needs gcsfs.*pip install 'vadfeat\[cloud\]'"):
        remote.filesystem("gs://b/v")


def test_an_unknown_scheme_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="unknown URL scheme 'nosuchscheme'"):
        remote.filesystem("nosuchscheme://x/y")


def test_file_url_inputs_are_read_as_the_paths_they_name(tmp_path: Path) -> None:
    _video(tmp_path / "in" / "Train" / "a.mp4")
    by_path = scan([tmp_path / "in"]).items
    by_url = scan([f"file://{tmp_path / 'in'}"]).items
    assert by_url == by_path
    assert isinstance(by_url[0].source, Path)


# --- listing and naming --------------------------------------------------------------------

def _upload_tree(bucket: S3Bucket, tmp_path: Path, prefix: str) -> Path:
    """The same tree locally (returned) and under s3://bucket/prefix."""
    local = tmp_path / "local" / prefix
    _video(local / "Train" / "001.mp4", seed=1)
    _video(local / "Train" / "002.avi", seed=2)
    _video(local / "Test" / "x.y.mp4", seed=3)
    (local / "Test" / "notes.txt").write_text("not a video")
    _video(local / ".hidden" / "h.mp4", seed=4)
    bucket.fs.put(str(local) + "/", f"{bucket.name}/{prefix}/", recursive=True)
    return local


def test_a_prefix_is_searched_like_a_folder_and_names_match(s3: S3Bucket, tmp_path: Path) -> None:
    local = _upload_tree(s3, tmp_path, "videos")
    remote_found = scan([f"{s3.url}/videos"])
    local_found = scan([local])
    assert [(i.name, i.stem) for i in remote_found.items] == \
        [(i.name, i.stem) for i in local_found.items]
    assert [i.name.as_posix() for i in remote_found.items] == \
        ["Test/x.y.mp4", "Train/001.mp4", "Train/002.avi"]  # hidden skipped, notes passed over
    assert [i.source for i in remote_found.items] == \
        [f"{s3.url}/videos/{n}" for n in ("Test/x.y.mp4", "Train/001.mp4", "Train/002.avi")]
    assert [(p.path, p.reason) for p in remote_found.passed_over] == \
        [(f"{s3.url}/videos/Test/notes.txt", "neither a video nor an image file")]
    # The bucket itself: names below it.
    assert [i.name.as_posix() for i in scan([s3.url]).items] == \
        ["videos/Test/x.y.mp4", "videos/Train/001.mp4", "videos/Train/002.avi"]
    # An object named directly: one item named by its file name.
    one = scan([f"{s3.url}/videos/Train/001.mp4"]).items
    assert [(i.name.as_posix(), i.source) for i in one] == [("001.mp4", f"{s3.url}/videos/Train/001.mp4")]


def test_colliding_stems_from_two_prefixes_get_folder_prefixes(s3: S3Bucket, tmp_path: Path) -> None:
    for part in ("A", "B"):
        path = _video(tmp_path / part / "001.mp4")
        s3.fs.put_file(str(path), f"{s3.name}/{part}/001.mp4")
    items = scan([f"{s3.url}/A", f"{s3.url}/B", f"{s3.url}/A/001.mp4"]).items
    assert [i.stem for i in items] == [PurePosixPath("A/001"), PurePosixPath("B/001")]  # de-duplicated


def test_lists_of_urls_and_lists_on_the_store(s3: S3Bucket, tmp_path: Path) -> None:
    _upload_tree(s3, tmp_path, "videos")
    local_list = tmp_path / "urls.txt"
    local_list.write_text(f"{s3.url}/videos/Train/001.mp4\n# comment\n\n{s3.url}/videos/Test\n")
    items = scan([local_list]).items
    assert [(i.name.as_posix(), i.source) for i in items] == [
        ("001.mp4", f"{s3.url}/videos/Train/001.mp4"),
        ("x.y.mp4", f"{s3.url}/videos/Test/x.y.mp4"),
    ]
    # A list on the store: relative entries below its folder, extension-less names found.
    s3.fs.pipe_file(f"{s3.name}/videos/split.txt", b"Train/001\r\nTest/x.y.mp4\n")
    items = scan([f"{s3.url}/videos/split.txt"]).items
    assert [(i.name.as_posix(), i.source) for i in items] == [
        ("Test/x.y.mp4", f"{s3.url}/videos/Test/x.y.mp4"),
        ("Train/001.mp4", f"{s3.url}/videos/Train/001.mp4"),
    ]
    # A local list of relative names with a URL root.
    names = tmp_path / "names.txt"
    names.write_text("Train/002.avi\n")
    items = scan([names], root=f"{s3.url}/videos").items
    assert [(i.name.as_posix(), i.source) for i in items] == \
        [("Train/002.avi", f"{s3.url}/videos/Train/002.avi")]
    s3.fs.pipe_file(f"{s3.name}/videos/bad.txt", b"Train/001\nTrain/nope\n")
    with pytest.raises(ConfigError, match=r"bad.txt: 1 of 2 entries do not exist \('Train/nope'\)"):
        scan([f"{s3.url}/videos/bad.txt"])


def test_missing_inputs_name_the_url(s3: S3Bucket) -> None:
    with pytest.raises(ConfigError, match=rf"input {s3.url}/nothing does not exist"):
        scan([f"{s3.url}/nothing"])
    with pytest.raises(ConfigError, match=r"s3://no-such-bucket-vadfeat/v: the bucket "
                                          r"'no-such-bucket-vadfeat' does not exist"):
        scan(["s3://no-such-bucket-vadfeat/v"])


# --- streaming decode -------------------------------------------------------------------

def test_a_video_decoded_from_s3_equals_the_local_decode(s3: S3Bucket, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = _video(tmp_path / "a.mp4", frames=40)
    url = f"{s3.url}/in/a.mp4"
    s3.fs.put_file(str(path), f"{s3.name}/in/a.mp4")
    # Streamed: the file object PyAV reads is fsspec's, nothing is written to disk.
    opened: list[object] = []
    real_open = remote.open_input

    def spy(u: str, **kwargs: int) -> object:
        f = real_open(u, **kwargs)
        opened.append(f)
        return f

    monkeypatch.setattr("vadfeat.io.container.open_input", spy)
    idx_l, ts_l, px_l = _decode(path)
    idx_r, ts_r, px_r = _decode(url)
    assert idx_r == idx_l and ts_r == ts_l  # same frames at the same times
    np.testing.assert_array_equal(px_r, px_l)  # bit-identical pixels (tolerance 0)
    assert len(opened) >= 1 and all(f.closed for f in opened)  # type: ignore[attr-defined]
    with open_video(url) as reader:
        assert reader.info.path == url


def test_a_missing_or_corrupt_object_fails_naming_the_url(s3: S3Bucket) -> None:
    with pytest.raises(VideoOpenError, match=rf"{s3.url}/in/none.mp4: no such object"):
        open_video(f"{s3.url}/in/none.mp4")
    s3.fs.pipe_file(f"{s3.name}/in/junk.mp4", b"\x00not a video" * 100)
    with pytest.raises(VideoOpenError, match=rf"{s3.url}/in/junk.mp4: not a video"):
        open_video(f"{s3.url}/in/junk.mp4")


# --- source identity ---------------------------------------------------------------------

def test_a_rewritten_object_is_a_changed_source(s3: S3Bucket, tmp_path: Path) -> None:
    a = _video(tmp_path / "a.mp4", seed=1)
    b = _video(tmp_path / "b.mp4", seed=2)
    url = f"{s3.url}/in/a.mp4"
    s3.fs.put_file(str(a), f"{s3.name}/in/a.mp4")
    ident = source_identity(url, content=True)
    assert ident["url"] == url and ident["size"] == a.stat().st_size
    assert ident["etag"] and ident["mtime"] and "sha256" not in ident  # no full read
    assert source_changed(ident, url) is None
    s3.fs.put_file(str(a), f"{s3.name}/in/a.mp4")  # same bytes written again: same ETag
    assert source_changed(ident, url) is None
    s3.fs.put_file(str(b), f"{s3.name}/in/a.mp4")
    assert source_changed(ident, url) is not None
    same_size = bytearray(a.read_bytes())
    same_size[len(same_size) // 2] ^= 0xFF
    s3.fs.pipe_file(f"{s3.name}/in/a.mp4", bytes(same_size))
    assert "ETag" in (source_changed(ident, url) or "")  # same size, other bytes
    # The same bytes locally and on the store: the same source (size and ends, then content).
    local = source_identity(a, content=True)
    s3.fs.put_file(str(a), f"{s3.name}/in/a.mp4")
    assert same_source(local, source_identity(url), path=url) is None
    s3.fs.put_file(str(b), f"{s3.name}/in/a.mp4")
    assert same_source(local, source_identity(url), path=url) is not None


def test_identity_of_a_missing_object_names_it(s3: S3Bucket) -> None:
    with pytest.raises(FileNotFoundError, match=rf"{s3.url}/gone.mp4"):
        source_identity(f"{s3.url}/gone.mp4")
    assert source_changed({"size": 1}, f"{s3.url}/gone.mp4") is None  # unreadable: no verdict


# --- outputs below a URL: the store layer ------------------------------------------------

SHARD_FP = {"model": "vit_tiny_patch16_224", "preset": {"clip_len": 16, "crops": 1}, "dtype": "fp32"}


def _shard_meta(stem: str, shape: tuple[int, ...]) -> dict[str, object]:
    return {"vadfeat_version": "0.0-test", "video": stem + ".mp4", "source": f"/data/{stem}.mp4",
            "preset": "videomae-k400", "model": {"name": "vit_tiny_patch16_224"}, "num_frames": 48,
            "fps": 25.0, "snippets": [[16 * i, 16 * i + 15] for i in range(shape[0])],
            "shape": list(shape), "layout": "flat", "fingerprint": SHARD_FP,
            "created": "2026-01-01T00:00:00+00:00"}


def _local_shard(tmp: Path, sink: str, videos: dict[str, np.ndarray], seq: int = 0,
                 writer: str | None = None) -> tuple[Path, dict[str, object]]:
    from vadfeat.store import shards as S

    name = S.shard_name(writer or S.new_writer_id(), seq, sink)
    tmp.mkdir(parents=True, exist_ok=True)
    w = S.open_shard_writer(sink, tmp / f".{name}.tmp", name)
    for stem, arr in videos.items():
        w.add(stem, arr, _shard_meta(stem, arr.shape))
    w.close()
    return w.path, w.index()


@pytest.mark.parametrize("sink", ["webdataset", "parquet"])
def test_a_shard_committed_to_s3_is_read_back_by_the_catalog(s3: S3Bucket, tmp_path: Path,
                                                             sink: str) -> None:
    from vadfeat.store import shards as S
    from vadfeat.store.remote import RemoteFolder

    rng = np.random.default_rng(3)
    videos = {"a/x.y": rng.standard_normal((3, 8)).astype(np.float32),
              "b": rng.standard_normal((2, 8)).astype(np.float32)}
    folder = RemoteFolder(f"{s3.url}/out", staging=tmp_path / "staging")
    folder.check()
    local, index = _local_shard(tmp_path / "w", sink, videos)
    assert s3.keys() == []  # written locally: nothing on the store before the commit
    folder.commit_shard(local, index)
    name = str(index["shard"])
    assert s3.keys() == [f"out/.vadfeat-index/{name}.json", f"out/{name}"]
    cat = folder.catalog(sink=sink)
    assert sorted(cat.videos) == ["a/x.y", "b"]
    assert cat.verify(name) is None  # streamed and hashed against the index
    # the object is the local shard's bytes, read back by the format's own reader
    got = tmp_path / "got" / name
    got.parent.mkdir()
    s3.fs.get_file(f"{s3.name}/out/{name}", str(got))
    assert got.read_bytes() == local.read_bytes()
    for stem, arr in videos.items():
        rec = S.read_video(got, cat.videos[stem].member)
        np.testing.assert_array_equal(rec.features, arr)


def test_the_catalog_rebuilds_lost_indexes_and_leaves_foreign_objects(s3: S3Bucket, tmp_path: Path) -> None:
    from vadfeat.store import shards as S
    from vadfeat.store.remote import RemoteFolder

    folder = RemoteFolder(f"{s3.url}/out", staging=tmp_path / "staging")
    arr = np.ones((2, 4), np.float32)
    local, index = _local_shard(tmp_path / "w", "webdataset", {"v": arr})
    name = str(index["shard"])
    s3.fs.put_file(str(local), f"{s3.name}/out/{name}")  # a kill between shard and index
    foreign = S.shard_name(S.new_writer_id(), 0, "webdataset")
    s3.fs.pipe_file(f"{s3.name}/out/{foreign}", b"not a tar, not vadfeat's" * 40)
    s3.fs.pipe_file(f"{s3.name}/out/notes.txt", b"mine")
    orphan = S.shard_name(S.new_writer_id(), 7, "parquet")
    orphan_index = S.make_index("parquet", orphan, size=1, sha256="0" * 64, mtime_ns=None, videos={})
    folder.upload_index(orphan_index)
    cat = folder.catalog(repair=True)
    assert list(cat.videos) == ["v"] and cat.verify(name) is None
    assert foreign not in cat.shards  # not vadfeat's: listed (foreign or damaged), never read as output
    assert f"{s3.url}/out/{foreign}" in {**cat.foreign, **cat.damaged}[foreign]
    keys = s3.keys("out")
    assert f"out/.vadfeat-index/{name}.json" in keys  # rebuilt and uploaded
    assert f"out/.vadfeat-index/{orphan}.json" not in keys  # vadfeat's, its shard gone
    assert f"out/{foreign}" in keys and "out/notes.txt" in keys  # never touched
    # a damaged shard (same size, other bytes) fails verify
    data = bytearray(local.read_bytes())
    data[-600] ^= 0xFF
    s3.fs.pipe_file(f"{s3.name}/out/{name}", bytes(data))
    again = folder.catalog()
    assert again.verify(name) is not None


def test_an_output_url_on_a_missing_bucket_is_a_usage_error() -> None:
    from vadfeat.store.remote import RemoteFolder

    with pytest.raises(ConfigError, match=r"s3://no-such-bucket-vadfeat/out.*bucket "
                                          r"'no-such-bucket-vadfeat' does not exist"):
        RemoteFolder("s3://no-such-bucket-vadfeat/out").check()


def test_the_manifest_continues_the_stores_copy(s3: S3Bucket, tmp_path: Path) -> None:
    from vadfeat.store.manifest import Manifest, read_manifest
    from vadfeat.store.remote import RemoteFolder

    s3.fs.pipe_file(f"{s3.name}/out/manifest.jsonl", b'{"run": "r0", "video": "old"}\n')
    folder = RemoteFolder(f"{s3.url}/out", staging=tmp_path / "staging")
    staging = folder.fetch_manifest()
    m = Manifest(staging, "r1")
    m.record(video="new", status="ok")
    m.close()
    folder.upload_manifest()
    lines = s3.fs.cat_file(f"{s3.name}/out/manifest.jsonl").decode().splitlines()
    assert [json.loads(x)["video"] for x in lines] == ["old", "new"]
    assert [e["video"] for e in read_manifest(staging)] == ["old", "new"]


# --- the sharded sinks writing to a URL ----------------------------------------------------

def _features(stem: str, seed: int = 0, *, fp: dict[str, object] | None = None,
              source: str | Path | None = None) -> object:
    from vadfeat.store.sinks import VideoFeatures

    feats = np.random.default_rng(seed).standard_normal((4, 8)).astype(np.float32)
    meta: dict[str, object] = {"vadfeat_version": "0.0-test", "video": stem + ".mp4", "shape": [4, 8],
                               "layout": "flat", "fingerprint": fp or SHARD_FP, "num_frames": 64,
                               "fps": 25.0, "created": "2026-01-01T00:00:00+00:00"}
    if source is not None:
        meta["source_identity"] = source_identity(source, content=True)
    return VideoFeatures(feats, meta)


def _url_sink(url: str, kind: str, staging: Path, **kw: object) -> object:
    from vadfeat.store.sinks import make_sink
    from vadfeat.store.sinks.url import URLParquetSink, URLWebDatasetSink

    sink = make_sink(url, sink=kind, **kw)  # type: ignore[arg-type]
    assert isinstance(sink, URLWebDatasetSink if kind == "webdataset" else URLParquetSink)
    sink.remote.staging = staging  # one staging folder per test
    sink.out = staging
    return sink


@pytest.mark.parametrize("kind", ["webdataset", "parquet"])
def test_a_sharded_sink_round_trips_through_s3(s3: S3Bucket, tmp_path: Path, kind: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    from vadfeat.store import shards as S

    url = f"{s3.url}/feats"
    sink = _url_sink(url, kind, tmp_path / "staging", shard_size=2)
    sink.open()  # type: ignore[attr-defined]
    assert f"{url}: an object store has no locks" in caplog.text
    assert "Two runs must not write one URL output at once" in caplog.text
    out = {}
    for k, stem in enumerate(["a/x.y", "b", "c"]):
        target = sink.plan(PurePosixPath(stem))  # type: ignore[attr-defined]
        out[stem] = sink.write(target, _features(stem, k))  # type: ignore[attr-defined]
    # two videos filled the first shard: uploaded whole with its index; "c" is not on S3 yet
    assert [k for k in s3.keys("feats") if not k.startswith("feats/.")] == \
        [f"feats/{out['a/x.y'].rsplit(':', 1)[0].rsplit('/', 1)[-1]}"]
    assert sorted(sink.take_committed()) == ["a/x.y", "b"]  # type: ignore[attr-defined]
    assert out["a/x.y"].startswith(f"{url}/shard-") and out["a/x.y"].endswith(":a/x.y")
    sink.commit()  # type: ignore[attr-defined]
    assert sink.take_committed() == ["c"]  # type: ignore[attr-defined]
    shards = [k for k in s3.keys("feats") if k.startswith("feats/shard-")]
    assert len(shards) == 2 and len([k for k in s3.keys("feats/.vadfeat-index")]) == 2
    assert not any((tmp_path / "staging").glob("*vadfeat-tmp*"))  # local temporaries deleted
    # read back with the format's reader from a downloaded copy: the features written
    for key in shards:
        local = tmp_path / "dl" / key
        local.parent.mkdir(parents=True, exist_ok=True)
        s3.fs.get_file(f"{s3.name}/{key}", str(local))
        for rec in S.iter_shard(local):
            want = _features(rec.stem, ["a/x.y", "b", "c"].index(rec.stem)).features  # type: ignore[attr-defined]
            np.testing.assert_array_equal(rec.features, want)
    # a new sink on the URL (another run) finds them done, verified from the store
    again = _url_sink(url, kind, tmp_path / "staging2")
    again.open()  # type: ignore[attr-defined]
    for stem in ("a/x.y", "b", "c"):
        assert again.state(again.plan(PurePosixPath(stem)), SHARD_FP).status == "done"  # type: ignore[attr-defined]
    other = {**SHARD_FP, "dtype": "fp16"}
    assert again.state(again.plan(PurePosixPath("b")), other).status == "changed"  # type: ignore[attr-defined]


def test_a_changed_source_object_is_redone_and_the_old_copy_compacted(s3: S3Bucket, tmp_path: Path) -> None:
    a = _video(tmp_path / "a.mp4", seed=1)
    s3.fs.put_file(str(a), f"{s3.name}/in/a.mp4")
    src = f"{s3.url}/in/a.mp4"
    url = f"{s3.url}/feats"
    sink = _url_sink(url, "webdataset", tmp_path / "staging")
    sink.open()  # type: ignore[attr-defined]
    target = sink.plan(PurePosixPath("a"))  # type: ignore[attr-defined]
    sink.write(target, _features("a", source=src))  # type: ignore[attr-defined]
    sink.write(sink.plan(PurePosixPath("b")), _features("b"))  # type: ignore[attr-defined]
    sink.commit()  # type: ignore[attr-defined]
    first = [k for k in s3.keys("feats") if k.startswith("feats/shard-")]
    assert sink.state(target, SHARD_FP, source=src).status == "done"  # type: ignore[attr-defined]
    # rewritten with twice the frames: a new size for certain (two 24-frame videos of other
    # seeds can encode to the same number of bytes, and then the ETag names the change)
    s3.fs.put_file(str(_video(tmp_path / "b.mp4", frames=48, seed=2)), f"{s3.name}/in/a.mp4")
    again = _url_sink(url, "webdataset", tmp_path / "staging2")
    again.open()  # type: ignore[attr-defined]
    st = again.state(target, SHARD_FP, source=src)  # type: ignore[attr-defined]
    assert st.status == "redo" and "source size" in st.reason
    again.write(target, _features("a", 5, source=src))  # type: ignore[attr-defined]
    again.commit()  # type: ignore[attr-defined]
    # the new shard holds "a"; the old one was rewritten under its own name without it
    shards = [k for k in s3.keys("feats") if k.startswith("feats/shard-")]
    assert len(shards) == 2 and first[0] in shards
    cat = again.remote.catalog()  # type: ignore[attr-defined]
    assert cat.stems_of(first[0].split("/")[-1]) == ["b"] and not cat.superseded
    assert again.state(target, SHARD_FP, source=src).status == "done"  # type: ignore[attr-defined]


def test_the_npy_sink_refuses_a_url(tmp_path: Path) -> None:
    from vadfeat.store.sinks import make_sink

    with pytest.raises(ConfigError, match=r"s3://b/out: the npy sink .* --sink webdataset or --sink parquet"):
        make_sink("s3://b/out")


# --- end to end: vadfeat extract from and to S3 ---------------------------------------------

TINY_CLI = ["--random-weights", "-m", "vit_tiny_patch16_224", "--size", "32", "--short-side", "32",
            "-q"]


def test_extract_from_s3_to_s3_resumes_and_stops_on_other_settings(s3: S3Bucket, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from vadfeat.cli import main
    from vadfeat.store import shards as S

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the staging folder of the URL output
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    for k, name in enumerate(["Train/v0.mp4", "Train/v1.mp4", "Test/v2.mp4"]):
        path = _video(tmp_path / "src" / name, frames=32, seed=k)
        s3.fs.put_file(str(path), f"{s3.name}/in/{name}")
    s3.fs.pipe_file(f"{s3.name}/in/Test/broken.mp4", b"\x00not a video" * 50)
    args = ["extract", f"{s3.url}/in", "-o", f"{s3.url}/out", "--sink", "webdataset", *TINY_CLI]
    assert main(args) == 1  # the broken object fails alone, naming its URL
    entries = read_manifest_from(s3, "out")
    failed = [e for e in entries if e["status"] == "failed"]
    assert [e["video"] for e in failed] == ["Test/broken.mp4"]
    assert f"{s3.url}/in/Test/broken.mp4" in failed[0]["error"]
    assert sorted(e["video"] for e in entries if e["status"] == "ok") == \
        ["Test/v2.mp4", "Train/v0.mp4", "Train/v1.mp4"]
    shards = [k for k in s3.keys("out") if k.startswith("out/shard-")]
    assert len(shards) == 1 and shards[0].endswith(".tar")
    local = tmp_path / "dl" / shards[0].rsplit("/", 1)[-1]
    local.parent.mkdir()
    s3.fs.get_file(f"{s3.name}/{shards[0]}", str(local))
    recs = {r.stem: r for r in S.iter_shard(local)}
    assert sorted(recs) == ["Test/v2", "Train/v0", "Train/v1"]  # stems as for a local folder
    assert recs["Train/v0"].sidecar["source"] == f"{s3.url}/in/Train/v0.mp4"
    assert recs["Train/v0"].sidecar["source_identity"]["etag"]
    # the same features as a local run of the same videos into a local folder
    assert main(["extract", str(tmp_path / "src"), "-o", str(tmp_path / "ref"), "--sink", "webdataset",
                 *TINY_CLI]) == 0
    ref_shard = next((tmp_path / "ref").glob("shard-*.tar"))
    ref = {r.stem: r for r in S.iter_shard(ref_shard)}
    for stem, rec in recs.items():
        np.testing.assert_array_equal(rec.features, ref[stem].features)  # bit-identical
    # a rerun skips the done videos (the broken one fails again); nothing new is written
    s3.fs.rm_file(f"{s3.name}/in/Test/broken.mp4")
    assert main(args) == 0
    assert [k for k in s3.keys("out") if k.startswith("out/shard-")] == shards
    assert read_manifest_from(s3, "out")[:len(entries)] == entries  # the store's copy kept
    # other settings: the run stops before any work, naming the change
    assert main([*args, "--clip-len", "8"]) == 2
    assert [k for k in s3.keys("out") if k.startswith("out/shard-")] == shards


def read_manifest_from(s3: S3Bucket, prefix: str) -> list[dict[str, object]]:
    lines = s3.fs.cat_file(f"{s3.name}/{prefix}/manifest.jsonl").decode().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def test_no_credentials_is_a_usage_error_naming_the_url(tmp_path: Path) -> None:
    # A fresh process with no credentials anywhere (and no metadata service to ask).
    import os
    import subprocess
    import sys
    import textwrap

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL_S3="http://127.0.0.1:9")
    code = textwrap.dedent("""
        from vadfeat.errors import ConfigError
        from vadfeat.io.inputs import scan
        from vadfeat.store.remote import RemoteFolder
        for call in (lambda: scan(["s3://some-bucket/in"]), lambda: RemoteFolder("s3://some-bucket/out").check()):
            try:
                call()
            except ConfigError as exc:
                print(exc)
    """)
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert len(got) == 2
    assert got[0].startswith("s3://some-bucket/in: no credentials") and "AWS_ACCESS_KEY_ID" in got[0]
    assert "s3://some-bucket/out" in got[1] and "no credentials" in got[1]


def test_gs_urls_without_gcsfs_name_the_extra() -> None:
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed: the missing-library path is tested with a stand-in above")
    with pytest.raises(ConfigError, match=r"gs://b/videos.*needs gcsfs.*pip install 'vadfeat\[cloud\]'"):
        scan(["gs://b/videos"])


def test_an_output_url_inside_an_input_url_is_refused() -> None:
    from vadfeat.store.ownership import refuse_overlap

    with pytest.raises(ConfigError, match=r"output s3://b/in/out lies inside the input s3://b/in"):
        refuse_overlap("s3://b/in/out", ["s3://b/in/"], command="extract")
    with pytest.raises(ConfigError, match=r"output S3://b/in is the input s3://b/in"):
        refuse_overlap("S3://b/in", ["s3://b/in"], command="extract")
    refuse_overlap("s3://b/out", ["s3://b/in", "/data/in"], command="extract")  # apart: no error
    refuse_overlap("s3://b/input2", ["s3://b/input"], command="extract")  # a sibling, not inside


def test_a_manifest_on_the_store_vadfeat_did_not_write_stops_the_run(s3: S3Bucket, tmp_path: Path) -> None:
    from vadfeat.store.remote import RemoteFolder

    s3.fs.pipe_file(f"{s3.name}/out/manifest.jsonl", b"somebody else's log\n")
    with pytest.raises(ConfigError, match=rf"{s3.url}/out/manifest.jsonl was not written by vadfeat"):
        RemoteFolder(f"{s3.url}/out", staging=tmp_path / "staging").fetch_manifest()
    assert s3.fs.cat_file(f"{s3.name}/out/manifest.jsonl") == b"somebody else's log\n"  # untouched


def test_the_ray_engine_refuses_a_url_output_before_starting() -> None:
    from vadfeat.engines.ray import extract_ray

    with pytest.raises(ConfigError, match=r"s3://b/out: the Ray engine writes to a folder"):
        extract_ray(["s3://b/in"], "s3://b/out", random_weights=True, model="vit_tiny_patch16_224")
