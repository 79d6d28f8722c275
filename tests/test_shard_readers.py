"""Everything that reads features reads shards: `read_features`, `labels --features`,
`align`, `compare`, `inspect`, `lists` (refused, naming `export`) and `export` both ways.

The shards are made from a real flat extraction by an independent writer
(``tests/shard_writer.py``: webdataset / pyarrow directly, per the shard format), so the
readers are checked against the format, not against vadfeat's own sinks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from shard_writer import write_shard
from vadfeat.cli import main
from vadfeat.dataset.export import export
from vadfeat.engines.local import extract
from vadfeat.errors import ConfigError
from vadfeat.store.reader import read_features
from vadfeat.testing import synth

STEMS = ("Abuse001_x264", "sub/Normal_Videos.001_x264")  # a dot in a name, a sub-folder
SINKS = ("webdataset", "parquet")
LATER = "20270101T000000Z-def456"  # a writer that opened after the test writer's default


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """Two videos extracted to a flat .npy folder (3 crops: [T, 3, 64] per video)."""
    root = tmp_path_factory.mktemp("flat")
    src = root / "in"
    synth.write_video(src / "Abuse001_x264.mp4", synth.scene_frames(40, seed=1), fps=25)
    synth.write_video(src / "sub" / "Normal_Videos.001_x264.mkv", synth.scene_frames(20, seed=3), fps=25)
    s = extract([src], root / "out", checkpoint=tiny_checkpoint, crops=3, progress=False, batch_size=4)
    assert s.ok == 2
    return root / "out"


@pytest.fixture(scope="module")
def sharded(flat: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same two videos in one shard of each sink (written by the independent writer)."""
    out = {}
    for sink in SINKS:
        folder = tmp_path_factory.mktemp(sink)
        write_shard(flat, folder, STEMS, sink=sink)
        out[sink] = folder
    return out


def _copy(sharded: dict[str, Path], sink: str, tmp_path: Path) -> Path:
    dst = tmp_path / sink
    shutil.copytree(sharded[sink], dst)
    return dst


def _only_shard(folder: Path) -> Path:
    (shard,) = [p for p in folder.iterdir() if p.name.startswith("shard-")]
    return shard


# --------------------------------------------------------------------------- read_features


@pytest.mark.parametrize("sink", SINKS)
def test_read_features_gives_each_video_of_the_shards_lazily(
        sink: str, flat: Path, sharded: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from vadfeat.store import reader

    calls: list[str] = []
    real = reader._member_bytes
    monkeypatch.setattr(reader, "_member_bytes", lambda member: calls.append(member.member) or real(member))
    fs = read_features(sharded[sink])
    assert fs.names() == STEMS and fs.issues == () and fs.layout == "flat"
    assert calls == []  # the indexes say everything read_features returns
    npy = read_features(flat).by_name()
    for r in fs:
        o = npy[r.name]
        assert r.shard is not None and r.shard.sink == sink and r.in_shard
        assert (r.shape, r.snippets, r.num_frames, r.fps, r.crop_order, r.video) == \
            (o.shape, o.snippets, o.num_frames, o.fps, o.crop_order, o.video)
        assert r.metadata["fingerprint"] == o.metadata["fingerprint"]
    first = fs.records[0]
    assert np.array_equal(first.load(), npy[first.name].load())
    assert len(calls) == 1  # one member read, when asked
    for r in fs:  # the .npy bytes, exactly
        assert r.features_bytes() == (flat / f"{r.name}.npy").read_bytes()
    assert read_features(sharded[sink], layout="flat").names() == STEMS  # what their sidecars say


@pytest.mark.parametrize("sink", SINKS)
def test_the_newest_copy_of_a_video_wins(sink: str, flat: Path, sharded: dict[str, Path],
                                         tmp_path: Path) -> None:
    out = _copy(sharded, sink, tmp_path)
    src2 = tmp_path / "src2"
    shutil.copytree(flat, src2)
    arr = np.load(flat / "Abuse001_x264.npy")
    (src2 / "Abuse001_x264.npy").unlink()
    np.save(src2 / "Abuse001_x264.npy", arr + 1)
    write_shard(src2, out, ["Abuse001_x264"], sink=sink, writer=LATER)
    fs = read_features(out)
    assert fs.names() == STEMS and fs.issues == ()
    got = fs.by_name()["Abuse001_x264"]
    assert got.shard is not None and LATER in got.shard.shard.name
    assert np.array_equal(got.load(), arr + 1)


@pytest.mark.parametrize("sink", SINKS)
def test_damaged_shards_and_foreign_files_are_reported_by_name(sink: str, sharded: dict[str, Path],
                                                              tmp_path: Path, flat: Path) -> None:
    out = _copy(sharded, sink, tmp_path)
    # A file that is not vadfeat's shard: a plain tar named like one, and data files beside.
    foreign = out / f"shard-{LATER}-00003.tar"
    with tarfile.open(foreign, "w") as tf:
        tf.add(flat / "Abuse001_x264.npy", arcname="x.npy")
    (out / "notes.parquet").write_bytes(b"not parquet")
    # A second shard, cut short (its index still names its video).
    write_shard(flat, out, ["Abuse001_x264"], sink=sink, writer=LATER, seq=1)
    cut = out / f"shard-{LATER}-00001.{'tar' if sink == 'webdataset' else 'parquet'}"
    cut.write_bytes(cut.read_bytes()[:700])
    fs = read_features(out)
    named = {i.video for i in fs.issues}
    assert {foreign.name, "notes.parquet", cut.name} <= named, fs.issues
    # The damaged newest copy is reported under the video's name; the other video is read.
    assert "Abuse001_x264" in named and fs.names() == ("sub/Normal_Videos.001_x264",)


@pytest.mark.parametrize("sink", SINKS)
def test_a_member_whose_bytes_changed_is_not_read_as_features(sink: str, sharded: dict[str, Path],
                                                             tmp_path: Path, flat: Path) -> None:
    out = _copy(sharded, sink, tmp_path)
    shard = _only_shard(out)
    data = bytearray(shard.read_bytes())
    # One float of the second video's features, found by its bytes (same size, same index).
    arr = np.load(flat / "sub" / "Normal_Videos.001_x264.npy")
    needle = arr.reshape(-1)[5:9].tobytes()
    at = bytes(data).find(needle)
    assert at > 0
    data[at] ^= 0x55
    before = shard.stat()
    shard.write_bytes(bytes(data))
    fs = read_features(out)
    assert fs.names() == ("Abuse001_x264",)
    assert [i.video for i in fs.issues] == ["sub/Normal_Videos.001_x264"]
    # The same change with the shard's mtime put back: its index is trusted, but the member's
    # bytes no longer match their recorded sha256 when read.
    os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    fs = read_features(out)
    assert fs.names() == STEMS
    with pytest.raises(ValueError, match="sha256"):
        fs.by_name()["sub/Normal_Videos.001_x264"].load()
    assert fs.by_name()["Abuse001_x264"].features_bytes() == (flat / "Abuse001_x264.npy").read_bytes()


def test_a_video_both_in_npy_files_and_in_a_shard_is_reported_not_guessed(flat: Path,
                                                                         tmp_path: Path) -> None:
    both = tmp_path / "both"
    shutil.copytree(flat, both)
    write_shard(flat, both, ["Abuse001_x264"], sink="webdataset")
    fs = read_features(both)
    assert fs.names() == ("sub/Normal_Videos.001_x264",)
    (issue,) = fs.issues
    assert issue.video == "Abuse001_x264" and "webdataset" in issue.message and "flat" in issue.message


@pytest.mark.parametrize("sink", SINKS)
def test_an_extraction_through_a_sharded_sink_reads_as_its_npy_extraction(
        sink: str, flat: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    from vadfeat.dataset.compare import compare
    from vadfeat.store.sinks import make_sink

    out = tmp_path / sink
    s = extract([flat.parent / "in"], out, checkpoint=tiny_checkpoint, crops=3, progress=False,
                batch_size=4, sink=make_sink(out, sink=sink, crops=3))
    assert s.ok == 2
    fs = read_features(out)
    assert fs.names() == STEMS and fs.issues == ()
    npy = read_features(flat).by_name()
    for r in fs:
        assert (r.snippets, r.num_frames, r.shape) == (npy[r.name].snippets, npy[r.name].num_frames,
                                                       npy[r.name].shape)
        assert r.features_bytes() == (flat / f"{r.name}.npy").read_bytes()
    assert compare(out, flat, None).verdict.startswith("identical")


# --------------------------------------------------------------------------- commands


def _ucf_annotations(tmp_path: Path) -> Path:
    ann = tmp_path / "Temporal_Anomaly_Annotation.txt"
    ann.write_text("Abuse001_x264.mp4  Abuse  10  30  -1  -1\n"
                   "Normal_Videos.001_x264.mp4  Normal  -1  -1  -1  -1\n")
    return ann


@pytest.mark.parametrize("sink", SINKS)
def test_labels_align_inspect_on_shards_equal_their_npy_runs(sink: str, flat: Path,
                                                            sharded: dict[str, Path],
                                                            tmp_path: Path) -> None:
    ann = _ucf_annotations(tmp_path)
    outs = {}
    for what, feats in (("npy", flat), (sink, sharded[sink])):
        gt = tmp_path / f"gt-{what}"
        assert main(["labels", str(ann), "--format", "ucf", "--features", str(feats), "-o", str(gt)]) == 0
        al = tmp_path / f"al-{what}"
        assert main(["align", str(feats), "--labels", str(gt), "-o", str(al)]) == 0
        rep = tmp_path / f"rep-{what}"
        assert main(["inspect", str(feats), "--labels", str(gt), "-o", str(rep),
                     "--width", "300", "--height", "200"]) == 0
        outs[what] = (gt, al, rep)
    (g1, a1, _), (g2, a2, r2) = outs["npy"], outs[sink]
    index = json.loads((g2 / "labels.json").read_text())
    assert index == json.loads((g1 / "labels.json").read_text())
    assert index["Abuse001_x264"]["num_frames"] == 40  # the synthetic video's frames
    for stem in STEMS:
        assert (g1 / f"{stem}.npy").read_bytes() == (g2 / f"{stem}.npy").read_bytes()
    assert np.load(a1 / "gt-test.npy").tolist() == np.load(a2 / "gt-test.npy").tolist()
    assert np.load(a2 / "gt-test.npy").size == 16 * sum(read_features(flat).by_name()[s].shape[0]
                                                        for s in STEMS)
    for stem in STEMS:
        assert np.array_equal(np.load(a1 / "snippet_labels" / f"{stem}.npy"),
                              np.load(a2 / "snippet_labels" / f"{stem}.npy"))
        assert (r2 / f"{stem}.png").is_file()


@pytest.mark.parametrize("sink", SINKS)
def test_legacy_align_writes_flat_npy_copies_of_shard_features(sink: str, flat: Path,
                                                              sharded: dict[str, Path],
                                                              tmp_path: Path) -> None:
    ann = _ucf_annotations(tmp_path)
    gt = tmp_path / "gt"
    assert main(["labels", str(ann), "--format", "ucf", "--features", str(flat), "-o", str(gt)]) == 0
    for what, feats in (("npy", flat), (sink, sharded[sink])):
        assert main(["align", str(feats), "--labels", str(gt), "--mode", "legacy",
                     "-o", str(tmp_path / what)]) == 0
    for stem in STEMS:
        a = tmp_path / "npy" / "features" / f"{stem}.npy"
        b = tmp_path / sink / "features" / f"{stem}.npy"
        assert a.read_bytes() == b.read_bytes()
        side = json.loads(b.with_suffix(".json").read_text())
        assert "shard" not in side and "sink" not in side  # a flat copy, not a shard member


@pytest.mark.parametrize("sink", SINKS)
def test_compare_a_shard_output_with_its_npy_output_is_identical(
        sink: str, flat: Path, sharded: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from vadfeat.dataset.compare import compare

    result = compare(sharded[sink], flat, None)
    assert result.issues == () and len(result.videos) == 2
    assert result.verdict.startswith("identical"), result.verdict
    assert main(["compare", str(sharded[sink]), str(flat), "-o", str(tmp_path / "cmp"),
                 "--no-plots"]) == 0
    assert "identical" in capsys.readouterr().out


@pytest.mark.parametrize("sink", SINKS)
def test_lists_of_shards_are_refused_naming_export_then_work_after_it(
        sink: str, sharded: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ann = _ucf_annotations(tmp_path)
    gt = tmp_path / "gt"
    assert main(["labels", str(ann), "--format", "ucf", "--features", str(sharded[sink]),
                 "-o", str(gt)]) == 0
    ls = tmp_path / "lists"
    code = main(["lists", str(sharded[sink]), "--labels", str(gt), "--format", "rtfm", "--naming",
                 "ucf", "-o", str(ls)])
    err = caplog.text
    assert code == 2 and "vadfeat export" in err and "--format rtfm" in err, err
    assert not ls.exists() or not any(ls.iterdir())  # nothing written
    npy = tmp_path / "npy"
    assert main(["export", str(sharded[sink]), "--format", "rtfm", "-o", str(npy)]) == 0
    assert main(["lists", str(npy), "--labels", str(gt), "--format", "rtfm", "--naming", "ucf",
                 "-o", str(ls)]) == 0
    lines = (ls / "dataset-test.list").read_text().splitlines()
    assert [Path(p).name for p in lines] == ["Abuse001_x264.npy", "Normal_Videos.001_x264.npy"]


# --------------------------------------------------------------------------- export shards -> npy


def _sidecar_without_export(path: Path) -> dict[str, object]:
    side = json.loads(path.read_text())
    side.pop("export", None)
    side.pop("sidecar_sha256", None)
    return side


@pytest.mark.parametrize("sink", SINKS)
def test_export_shards_to_npy_is_byte_identical_and_resumable(
        sink: str, flat: Path, sharded: dict[str, Path], tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "npy"
    res = export(sharded[sink], out, format="flat")
    assert res.issues == () and res.count("copied") == 2
    for stem in STEMS:
        assert (out / f"{stem}.npy").read_bytes() == (flat / f"{stem}.npy").read_bytes()
        # The sidecar extract wrote, but for the export record (no shard fields left).
        assert _sidecar_without_export(out / f"{stem}.json") == _sidecar_without_export(flat / f"{stem}.json")
    assert read_features(out).issues == ()
    assert export(sharded[sink], out, format="flat").count("skipped") == 2
    # A resume of extract with the same settings takes the exported folder as done.
    s = extract([flat.parent / "in"], out, checkpoint=tiny_checkpoint, crops=3, progress=False, batch_size=4)
    assert (s.ok, s.skipped, s.failed) == (0, 2, [])
    # Slices come out as extract --layout per-crop would write them.
    pc = export(sharded[sink], tmp_path / "pc", format="per-crop")
    assert pc.issues == () and pc.count("sliced") == 2
    arr = np.load(flat / "Abuse001_x264.npy")
    assert np.array_equal(np.load(tmp_path / "pc" / "Abuse001_x264__2.npy"), arr[:, 2])


def test_export_refuses_its_own_shard_folder_as_output(sharded: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="must not be the features folder"):
        export(sharded["webdataset"], sharded["webdataset"], format="flat")
    assert main(["export", str(sharded["webdataset"]), "--format", "flat",
                 "-o", str(sharded["webdataset"])]) == 2
    assert sorted(p.name for p in sharded["webdataset"].iterdir() if not p.name.startswith(".")) == \
        [_only_shard(sharded["webdataset"]).name]


def test_shard_sha_is_what_the_index_records(sharded: dict[str, Path]) -> None:
    # The independent writer's index is the format's: vadfeat's catalog trusts it as is.
    from vadfeat.store.shards import load_indexes

    for sink in SINKS:
        cat = load_indexes(sharded[sink])
        shard = _only_shard(sharded[sink])
        assert cat.damaged == {} and cat.foreign == {}
        assert cat.shards[shard.name]["sha256"] == hashlib.sha256(shard.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- export npy -> shards -> npy


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("sink", SINKS)
def test_export_npy_to_shards_and_back_is_byte_identical(sink: str, flat: Path, tmp_path: Path) -> None:
    sh = tmp_path / "shards"
    assert main(["export", str(flat), "--format", sink, "-o", str(sh)]) == 0
    fs = read_features(sh)
    assert fs.names() == STEMS and fs.issues == ()
    assert all(r.shard is not None and r.shard.sink == sink for r in fs)
    assert [p.suffix for p in sh.iterdir() if p.name.startswith("shard-")] == \
        [".tar" if sink == "webdataset" else ".parquet"]
    back = tmp_path / "back"
    res = export(sh, back, format="flat")
    assert res.issues == () and res.count("copied") == 2
    for stem in STEMS:
        assert _sha(back / f"{stem}.npy") == _sha(flat / f"{stem}.npy")
        side = _sidecar_without_export(back / f"{stem}.json")
        assert side == _sidecar_without_export(flat / f"{stem}.json")
        assert not {"sink", "shard", "features_sha256", "stem"} & set(side)
        shard_side = fs.by_name()[stem].metadata
        assert shard_side["export"]["format"] == sink and shard_side["sink"] == sink
    # Resumable: the same export again skips every video and adds no shard.
    before = sorted(p.name for p in sh.iterdir())
    again = export(flat, sh, format=sink)
    assert again.count("skipped") == 2 and sorted(p.name for p in sh.iterdir()) == before


@pytest.mark.parametrize("sink", SINKS)
def test_export_to_shards_redoes_a_changed_source_and_keeps_one_copy(sink: str, flat: Path,
                                                                    tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(flat, src)
    sh = tmp_path / "shards"
    assert export(src, sh, format=sink).count("copied") == 2
    arr = np.load(src / "Abuse001_x264.npy")
    (src / "Abuse001_x264.npy").unlink()
    np.save(src / "Abuse001_x264.npy", arr + 1)
    res = export(src, sh, format=sink)
    assert {v.name: v.action for v in res.videos} == {"Abuse001_x264": "copied",
                                                      "sub/Normal_Videos.001_x264": "skipped"}
    fs = read_features(sh)
    assert fs.issues == () and np.array_equal(fs.by_name()["Abuse001_x264"].load(), arr + 1)
    from vadfeat.store.shards import load_indexes

    cat = load_indexes(sh)
    assert cat.superseded == []  # the older copy was dropped from its shard at the end
    assert sum(len(i["videos"]) for i in cat.shards.values()) == 2


@pytest.mark.parametrize("sink", SINKS)
def test_export_to_shards_keeps_exports_guarantees(sink: str, flat: Path, sharded: dict[str, Path],
                                                   tmp_path: Path) -> None:
    # Files vadfeat did not write in the output folder are neither read nor replaced.
    out = tmp_path / "out"
    out.mkdir()
    ext = "tar" if sink == "webdataset" else "parquet"
    foreign = out / f"shard-{LATER}-00000.{ext}"
    foreign.write_bytes(b"my own file")
    notes = out / "notes.txt"
    notes.write_text("mine")
    res = export(flat, out, format=sink)
    assert res.issues == () and res.count("copied") == 2
    assert foreign.read_bytes() == b"my own file" and notes.read_text() == "mine"
    assert foreign.name in {i.video for i in read_features(out).issues}
    # Never into its input: the shard folder itself, or a folder inside it.
    with pytest.raises(ConfigError, match="must not be the features folder"):
        export(sharded[sink], sharded[sink], format=sink)
    assert main(["export", str(sharded[sink]), "--format", sink, "-o", str(sharded[sink] / "x")]) == 2
    # A video without a vadfeat sidecar cannot be packed (a shard holds sealed sidecars only);
    # the others are.
    legacy = tmp_path / "legacy"
    shutil.copytree(flat, legacy)
    (legacy / "Abuse001_x264.json").unlink()
    (legacy / "manifest.jsonl").unlink()
    res = export(legacy, tmp_path / "o2", format=sink)
    assert [i.video for i in res.issues] == ["Abuse001_x264"] and "sidecar" in res.issues[0].message
    assert [v.name for v in res.videos] == ["sub/Normal_Videos.001_x264"]


def _export_after_barrier(barrier, queue, src: str, out: str, sink: str) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    res = export(src, out, format=sink)  # type: ignore[arg-type]
    queue.put(({v.name: v.action for v in res.videos}, [str(i) for i in res.issues]))


@pytest.mark.parametrize("sink", SINKS)
def test_two_shard_exports_at_once_write_each_video_once(sink: str, flat: Path, tmp_path: Path) -> None:
    """Two processes released together export into one folder: whatever the interleaving,
    each video is packed by one of them and skipped by the other, and one copy remains."""
    import multiprocessing as mp

    from vadfeat.store.shards import load_indexes

    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    out = tmp_path / "o"
    procs = [ctx.Process(target=_export_after_barrier, args=(barrier, queue, str(flat), str(out), sink))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [issues for _, issues in results] == [[], []]
    for stem in STEMS:
        assert sorted(r[stem] for r, _ in results) == ["copied", "skipped"], results
    cat = load_indexes(out)
    assert cat.superseded == [] and sorted(cat.videos) == sorted(STEMS)
    for stem in STEMS:
        assert read_features(out).by_name()[stem].features_bytes() == (flat / f"{stem}.npy").read_bytes()
