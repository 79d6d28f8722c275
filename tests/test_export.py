"""`vadfeat export`: one extraction, every layout, byte for byte; resume and ownership."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from vadfeat.cli import main
from vadfeat.dataset.export import export
from vadfeat.engines.local import extract
from vadfeat.errors import ConfigError
from vadfeat.store.reader import read_features
from vadfeat.testing import synth

CROPS = 10


@pytest.fixture(scope="module")
def extractions(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, Path]:
    """The same two videos extracted directly in each of the three layouts (10 crops)."""
    root = tmp_path_factory.mktemp("direct")
    src = root / "in"
    synth.write_video(src / "a" / "001.mp4", synth.scene_frames(40, seed=1), fps=25)
    synth.write_video(src / "c.mkv", synth.scene_frames(20, seed=3), fps=25)
    out = {}
    for layout in ("flat", "per-crop", "fed-wsvad"):
        s = extract([src], root / layout, checkpoint=tiny_checkpoint, crops=CROPS, layout=layout,
                    progress=False, batch_size=4)
        assert s.ok == 2
        out[layout] = root / layout
    return out


def direct_files(extractions: dict[str, Path], layout: str, name: str) -> list[Path]:
    root = extractions[layout]
    if layout == "flat":
        return [root / f"{name}.npy"]
    if layout == "fed-wsvad":
        return [root / "features_video" / "i3d" / "combine" / name / "feature.npy"]
    return [root / f"{name}__{k}.npy" for k in range(CROPS)]


# format -> (direct layout it must equal, crop file name pattern or None)
EXPECTED = {
    "flat": ("flat", None),
    "rtfm": ("flat", None),
    "fed-wsvad": ("fed-wsvad", None),
    "per-crop": ("per-crop", "{}__{}.npy"),
    "ur-dmu": ("per-crop", "{}__{}.npy"),
    "vadclip": ("per-crop", "{}__{}.npy"),
    "pel4vad": ("per-crop", "{}__{}.npy"),
    "pel4vad-sh": ("per-crop", "{}_{}.npy"),  # PEL4VAD ShanghaiTech: its loader cuts `_<k>.npy`
}


@pytest.mark.parametrize("source", ["flat", "per-crop", "fed-wsvad"])
@pytest.mark.parametrize("target", list(EXPECTED))
def test_export_equals_direct_extraction_byte_for_byte(tmp_path: Path, extractions: dict[str, Path],
                                                       source: str, target: str) -> None:
    fmt, dataset = ("pel4vad", "shanghaitech") if target == "pel4vad-sh" else (target, None)
    out = tmp_path / "out"
    res = export(extractions[source], out, format=fmt, dataset=dataset)  # type: ignore[arg-type]
    assert res.issues == ()
    assert sorted(v.name for v in res.videos) == ["a/001", "c"]
    layout, pattern = EXPECTED[target]
    for name in ("a/001", "c"):
        expected = direct_files(extractions, layout, name)
        if pattern is not None:
            got = [out / pattern.format(name, k) for k in range(CROPS)]
        elif layout == "fed-wsvad":
            got = [out / "features_video" / "i3d" / "combine" / name / "feature.npy"]
        else:
            got = [out / f"{name}.npy"]
        for g, e in zip(got, expected, strict=True):
            assert g.read_bytes() == e.read_bytes(), (g, e)
    # What vadfeat exported, vadfeat reads back with the same shapes and frame ranges.
    back = read_features(out)
    orig = read_features(extractions["flat"]).by_name()
    for r in back:
        assert r.shape == orig[r.name].shape and r.snippets == orig[r.name].snippets
        assert r.metadata["export"]["format"] == fmt


def test_same_bytes_are_hard_links_and_sidecars_record_provenance(tmp_path: Path,
                                                                  extractions: dict[str, Path]) -> None:
    src = extractions["flat"]
    res = export(src, tmp_path / "o", format="rtfm")
    assert res.count("linked") == 2
    assert os.path.samefile(tmp_path / "o" / "c.npy", src / "c.npy")
    side = json.loads((tmp_path / "o" / "c.json").read_text())
    source_side = json.loads((src / "c.json").read_text())
    # Every source field is kept (model, preset, snippets...), plus the export record.
    for key in ("model", "preset", "snippets", "num_frames", "crop_order", "video"):
        assert side[key] == source_side[key]
    rec = side["export"]
    assert rec["format"] == "rtfm" and rec["action"] == "linked"
    assert rec["sources"][0]["path"] == str((src / "c.npy").resolve())
    import hashlib
    assert rec["sources"][0]["sha256"] == hashlib.sha256((src / "c.npy").read_bytes()).hexdigest()
    res = export(src, tmp_path / "p", format="ur-dmu")
    assert res.count("sliced") == 2
    assert json.loads((tmp_path / "p" / "c.json").read_text())["layout"] == "per-crop"


def test_resume_skips_same_source_and_redoes_a_changed_one(tmp_path: Path,
                                                         extractions: dict[str, Path]) -> None:
    src = tmp_path / "src"
    export(extractions["flat"], src, format="flat")  # a private copy we may change
    assert export(src, tmp_path / "o", format="per-crop").count("sliced") == 2
    again = export(src, tmp_path / "o", format="per-crop")
    assert again.count("skipped") == 2
    # A new extraction of one video (new bytes, new inode): that video only is redone.
    arr = np.load(src / "c.npy")
    (src / "c.npy").unlink()
    np.save(src / "c.npy", arr + 1)
    third = export(src, tmp_path / "o", format="per-crop")
    assert {v.name: v.action for v in third.videos} == {"a/001": "skipped", "c": "sliced"}
    assert np.array_equal(np.load(tmp_path / "o" / "c__3.npy"), arr[:, 3] + 1)
    # A different format or crop selection into the same folder is not "done".
    assert export(src, tmp_path / "o", format="per-crop", crops=[0, 1]).count("sliced") == 2
    # ... and the crop files of the earlier 10-crop export are gone, so it reads back as 2 crops.
    assert sorted(p.name for p in (tmp_path / "o").glob("c__*.npy")) == ["c__0.npy", "c__1.npy"]
    assert read_features(tmp_path / "o").by_name()["c"].shape[1] == 2


def test_interrupted_export_is_resumed_not_refused(tmp_path: Path, extractions: dict[str, Path]) -> None:
    out = tmp_path / "o"
    export(extractions["flat"], out, format="per-crop")
    # Simulate a kill after the feature files, before the sidecar: marker present.
    (out / "c.json").unlink()
    (out / ".c.json.export-pending").touch()
    res = export(extractions["flat"], out, format="per-crop")
    assert res.issues == () and {v.name: v.action for v in res.videos}["c"] == "sliced"
    assert (out / "c.json").is_file() and not (out / ".c.json.export-pending").exists()


def test_never_replaces_files_it_did_not_write(tmp_path: Path, extractions: dict[str, Path]) -> None:
    out = tmp_path / "o"
    out.mkdir()
    foreign = out / "c__2.npy"
    np.save(foreign, np.zeros(3))
    before = foreign.read_bytes()
    res = export(extractions["flat"], out, format="per-crop")
    assert [i.video for i in res.issues] == ["c"]
    assert str(foreign) in res.issues[0].message
    assert foreign.read_bytes() == before
    assert [v.name for v in res.videos] == ["a/001"]       # the other video went on


def test_crop_selection_and_usage_errors(tmp_path: Path, extractions: dict[str, Path]) -> None:
    res = export(extractions["flat"], tmp_path / "five", format="flat", crops=[0, 1, 2, 3, 4])
    assert res.count("sliced") == 2
    full = np.load(extractions["flat"] / "c.npy")
    assert np.array_equal(np.load(tmp_path / "five" / "c.npy"), full[:, :5])
    side = json.loads((tmp_path / "five" / "c.json").read_text())
    assert side["shape"][1] == 5 and side["crop_order"] == side["crop_order"][:5]
    with pytest.raises(ConfigError, match="export format"):
        export(extractions["flat"], tmp_path / "x", format="mgfn")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must not be the features folder"):
        export(extractions["flat"], extractions["flat"] / "sub", format="flat")
    with pytest.raises(ConfigError, match="crop indices"):
        export(extractions["flat"], tmp_path / "x", format="flat", crops=[1, 1])
    bad = export(extractions["flat"], tmp_path / "y", format="per-crop", crops=[12])
    assert {i.video for i in bad.issues} == {"a/001", "c"} and "crop index 12" in bad.issues[0].message


def test_cli_export(tmp_path: Path, extractions: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", str(extractions["fed-wsvad"]), "--format", "pel4vad", "--dataset",
                 "shanghaitech", "-o", str(tmp_path / "o")])
    assert code == 0
    assert "exported 2 videos as pel4vad" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "o").glob("c*")) == \
        ["c.json", *(f"c_{k}.npy" for k in range(CROPS))]
    assert main(["export", str(extractions["flat"]), "--format", "flat", "--crops", "a,b",
                 "-o", str(tmp_path / "z")]) == 2


def test_one_view_stats_features_are_not_taken_for_crops(tmp_path: Path, tiny_checkpoint: Path) -> None:
    # `--preset fed-wsvad` gives [T, 3, D] (mean/max/std pooling) with crop_order null: axis 1
    # is not crops.  Exported to per-crop it is one file, <stem>__0.npy, equal to a direct
    # `extract --layout per-crop` of the same video (which writes __0 for one crop).
    src = tmp_path / "in"
    synth.write_video(src / "c.mkv", synth.scene_frames(20, seed=3), fps=25)
    for layout in ("fed-wsvad", "per-crop"):
        extract([src], tmp_path / layout, checkpoint=tiny_checkpoint, preset="fed-wsvad",
                layout=layout, progress=False)
    res = export(tmp_path / "fed-wsvad", tmp_path / "o", format="ur-dmu")
    assert res.issues == () and res.count("linked") == 1
    assert sorted(p.name for p in (tmp_path / "o").glob("*.npy")) == ["c__0.npy"]
    assert (tmp_path / "o" / "c__0.npy").read_bytes() == (tmp_path / "per-crop" / "c__0.npy").read_bytes()
    assert read_features(tmp_path / "o").by_name()["c"].file_shape[1:] == (3, 64)


# --------------------------------------------------------------------------- issue 20


def test_an_export_replaced_by_zeros_is_redone(tmp_path: Path, extractions: dict[str, Path]) -> None:
    out = tmp_path / "o"
    export(extractions["flat"], out, format="per-crop")
    good = (out / "c__3.npy").read_bytes()
    np.save(out / "c__3.npy", np.zeros_like(np.load(out / "c__3.npy")))  # loads, same shape
    again = export(extractions["flat"], out, format="per-crop")
    assert {v.name: v.action for v in again.videos} == {"a/001": "skipped", "c": "sliced"}
    assert (out / "c__3.npy").read_bytes() == good


def test_per_crop_never_replaces_a_crop_file_its_record_does_not_list(
        tmp_path: Path, extractions: dict[str, Path]) -> None:
    out = tmp_path / "o"
    assert export(extractions["flat"], out, format="per-crop", crops=[0, 1]).issues == ()
    mine = out / "c__2.npy"  # the user's, beside a sidecar whose record lists c__0 and c__1
    np.save(mine, np.ones((2, 64), dtype=np.float32))
    before = mine.read_bytes()
    res = export(extractions["flat"], out, format="per-crop")  # all 10 crops: c__2 is a target
    assert [i.video for i in res.issues] == ["c"]
    assert str(mine) in res.issues[0].message and "does not list it" in res.issues[0].message
    assert mine.read_bytes() == before
    assert [v.name for v in res.videos] == ["a/001"]
    assert sorted(p.name for p in out.glob("c*")) == ["c.json", "c__0.npy", "c__1.npy", "c__2.npy"]


def _export_after_barrier(barrier, queue, src: str, out: str) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    res = export(src, out, format="per-crop", workers=2)
    queue.put(({v.name: v.action for v in res.videos}, [str(i) for i in res.issues]))


def test_two_exports_at_once_split_the_work(tmp_path: Path, extractions: dict[str, Path]) -> None:
    """Two processes released together by a barrier export the same folder: whatever the
    interleaving, each video is written by exactly one of them and skipped by the other."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    out = tmp_path / "o"
    procs = [ctx.Process(target=_export_after_barrier, args=(barrier, queue, str(extractions["flat"]),
                                                             str(out))) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [issues for _, issues in results] == [[], []]
    for name in ("a/001", "c"):
        actions = sorted(r[name] for r, _ in results)
        assert actions == ["skipped", "sliced"], (name, actions)
    back = read_features(out)
    assert back.issues == () and back.names() == ("a/001", "c")
    assert back.by_name()["c"].shape[1] == CROPS
    assert export(extractions["flat"], out, format="per-crop").count("skipped") == 2


def test_a_video_held_by_another_export_is_taken_up_when_it_is_let_go(
        tmp_path: Path, extractions: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from vadfeat.dataset import export as export_mod
    from vadfeat.store.claims import Claims

    out = tmp_path / "o"
    other = Claims(out)  # another export working on c
    assert other.acquire("c.json") is None
    waited: list[str] = []
    real = Claims.acquire

    def acquire(self, key, *, wait=None):  # type: ignore[no-untyped-def]
        if wait is not None:  # the second pass: the other export finishes now
            waited.append(key)
            other.release(key)
        return real(self, key, wait=wait)

    monkeypatch.setattr(export_mod.Claims, "acquire", acquire)
    res = export(extractions["flat"], out, format="per-crop")
    assert res.issues == () and waited == ["c.json"]
    assert {v.name: v.action for v in res.videos} == {"a/001": "sliced", "c": "sliced"}


_KILL_AT = """
import os, signal, sys
real = os.replace
def replace(src, dst, *a, **k):
    if ".vadfeat-tmp." in os.fspath(src) and os.fspath(dst).endswith(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)  # the temporary is written, not yet renamed
    return real(src, dst, *a, **k)
os.replace = replace
from vadfeat.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_killed_export_leaves_nothing_the_next_run_keeps(tmp_path: Path,
                                                          extractions: dict[str, Path]) -> None:
    import subprocess
    import sys

    out = tmp_path / "o"
    assert export(extractions["flat"], out, format="per-crop", crops=[0, 1]).issues == ()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", _KILL_AT, "c__3.npy", "export",
                           str(extractions["flat"]), "--format", "per-crop", "-o", str(out)],
                          env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    left = sorted(p.name for p in out.rglob("*vadfeat-tmp*"))
    assert any(n.startswith(".c__3.npy.vadfeat-tmp.") for n in left), left
    assert not (out / "c.json").exists()  # the old sidecar went first
    res = export(extractions["flat"], out, format="per-crop")
    assert res.issues == () and {v.name: v.action for v in res.videos}["c"] == "sliced"
    assert list(out.rglob("*vadfeat-tmp*")) == []
    assert read_features(out).by_name()["c"].shape[1] == CROPS
    full = np.load(extractions["flat"] / "c.npy")
    assert np.array_equal(np.load(out / "c__3.npy"), full[:, 3])


def test_a_name_that_is_not_utf8_is_exported_with_its_sidecar(tmp_path: Path,
                                                              tiny_checkpoint: Path) -> None:
    src = tmp_path / "in"
    name = os.fsdecode(b"caf\xe9")  # Latin-1 bytes: not valid UTF-8
    synth.write_video(src / f"{name}.mp4", synth.scene_frames(20, seed=3), fps=25)
    assert extract([src], tmp_path / "f", checkpoint=tiny_checkpoint, progress=False).ok == 1
    res = export(tmp_path / "f", tmp_path / "o", format="per-crop")
    assert res.issues == ()
    assert sorted(os.listdir(os.fsencode(tmp_path / "o"))) == [b".vadfeat-locks", b"caf\xe9.json",
                                                               b"caf\xe9__0.npy"]
    assert read_features(tmp_path / "o").names() == (name,)


def test_the_summary_is_said_once(extractions: dict[str, Path], tmp_path: Path) -> None:
    # Issue 21: the command printed its summary and the library logged it again (INFO).
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "vadfeat", "export", str(extractions["flat"]),
                        "--format", "ur-dmu", "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    said = r.stdout + r.stderr
    assert said.count("exported 2 videos as ur-dmu") == 1, said
