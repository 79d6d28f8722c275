"""Faults, bad input and untrusted files: a finished run never loses or corrupts anything.

Every good video's output equals a clean run's bit for bit, every bad video is named
in the manifest with a reason, no partial or temporary file remains, and the exit code
says what happened (issue 6).  The long version, with a 200-video corpus and random
SIGKILLs, is ``tests/stress/fault_corpus.py``; RELIABILITY.md has the table.

Privileges: root ignores file permissions, so the permission tests run the command as
the unprivileged user ``nobody`` (``setpriv``) when the suite runs as root; the tmpfs
tests (real disk full, real read-only mount) need the right to mount and are skipped
without it.  Disk full and read-only are also tested everywhere with patched writes.
"""

from __future__ import annotations

import errno
import importlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stress.fault_corpus import (
    NOBODY,
    build_corpus,
    call_with_limit,
    check_run,
    compare_outputs,
    locks_free,
    partial_outputs,
    restore_permissions,
    temporaries,
)
from vadfeat.cli import main
from vadfeat.dataset.labels import as_label_set, read_labels
from vadfeat.engines.local import FeatureExtractor, extract
from vadfeat.errors import ConfigError, DecodeError
from vadfeat.store.claims import LOCK_DIR
from vadfeat.store.manifest import read_manifest
from vadfeat.store.sinks import npy as writers  # the .npy sink (it writes the sidecar)
from vadfeat.testing import synth

ROOT = os.geteuid() == 0


def within(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; fail (instead of hanging the suite) if it takes longer than ``seconds``."""
    try:
        return call_with_limit(seconds, fn, *args, **kwargs)
    except TimeoutError as exc:
        pytest.fail(f"hang: {exc}")


def videos(folder: Path, n: int = 4, frames: int = 48) -> Path:
    for k in range(n):
        synth.write_video(folder / f"v{k}.mp4", synth.scene_frames(frames + 8 * k, seed=k), fps=25)
    return folder


@pytest.fixture
def extractor(tiny_checkpoint: Path) -> FeatureExtractor:
    return FeatureExtractor(tiny_checkpoint, batch_size=8)


@pytest.fixture
def clean_tree(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    restore_permissions(tmp_path)  # the corpus has chmod-000 entries


# --------------------------------------------------------------------------- the corpus


def test_fault_corpus_in_process(clean_tree: Path, extractor: FeatureExtractor) -> None:
    """One input of every kind the issue lists (broken and awkward-but-valid) in one run."""
    cases = build_corpus(clean_tree / "in")
    out = clean_tree / "out"
    s = within(300, extract, [clean_tree / "in"], out, extractor=extractor, workers=2,
               progress=False)
    problems = check_run(out, cases, read_manifest(out), privileged=ROOT)
    problems += partial_outputs(out)
    assert not problems, "\n".join(problems)
    failed = {c.name for c in cases if c.expected(ROOT) == "failed"}
    assert {v for v, _ in s.failed} == failed and s.exit_code == 1
    # A second run: every output kept as it is, every bad video named again.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    again = within(300, extract, [clean_tree / "in"], out, extractor=extractor, progress=False)
    assert again.ok == 0 and again.skipped == s.ok and {v for v, _ in again.failed} == failed
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")} == stamps
    assert not temporaries(out) and locks_free(out)


# --------------------------------------------------------------------------- as an unprivileged user


def _world_dir() -> Path:
    """A folder ``nobody`` can enter (pytest's tmp_path is private to its owner)."""
    d = Path(tempfile.mkdtemp(prefix="vadfeat-faults-"))
    d.chmod(0o755)
    return d


def _as_user(cmd: list[str]) -> list[str]:
    if not ROOT:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *cmd]


def _vadfeat(*args: str) -> list[str]:
    return [sys.executable, "-m", "vadfeat", *args]


@pytest.fixture
def world(tiny_checkpoint: Path) -> Iterator[Path]:
    d = _world_dir()
    shutil.copy(tiny_checkpoint, d / "tiny.pth")
    (d / "tiny.pth").chmod(0o644)
    try:
        yield d
    finally:
        restore_permissions(d)
        shutil.rmtree(d)


def test_unreadable_inputs_as_unprivileged_user(world: Path) -> None:
    """chmod-000 file and folder, read by a user who really cannot read them."""
    src = world / "in"
    videos(src, n=1, frames=32)
    synth.write_video(src / "secret.mp4", synth.scene_frames(32, seed=9), fps=25).chmod(0)
    synth.write_video(src / "locked" / "inside.mp4", synth.scene_frames(32), fps=25)
    (src / "locked").chmod(0)
    out = world / "out"
    out.mkdir()
    if ROOT:
        os.chown(out, NOBODY, NOBODY)
    r = subprocess.run(_as_user(_vadfeat("extract", str(src), "-o", str(out), "--checkpoint",
                                         str(world / "tiny.pth"), "-q")),
                       capture_output=True, timeout=300, env={**os.environ, "HOME": "/tmp"})
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1, err[-2000:]
    entries = {e["video"]: e for e in read_manifest(out)}
    assert entries["v0.mp4"]["status"] == "ok"
    assert entries["secret.mp4"]["status"] == "failed"
    assert "permission denied" in entries["secret.mp4"]["error"]
    # An unlistable folder cannot be named video by video: the log names the folder.
    assert "locked/inside.mp4" not in entries and "cannot list" in err
    assert sorted(p.name for p in out.glob("*.npy")) == ["v0.npy"]
    assert not partial_outputs(out)


def test_output_folder_not_writable_as_unprivileged_user(world: Path) -> None:
    src = videos(world / "in", n=1, frames=32)
    out = world / "not_mine"
    out.mkdir()
    out.chmod(0o555)  # and owned by root when we are root: nobody may not write here
    r = subprocess.run(_as_user(_vadfeat("extract", str(src), "-o", str(out), "--checkpoint",
                                         str(world / "tiny.pth"), "-q")),
                       capture_output=True, timeout=300, env={**os.environ, "HOME": "/tmp"})
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, err[-2000:]
    assert "cannot write to the output folder" in err and "Traceback" not in err
    assert not any(out.iterdir())


def test_output_folder_not_writable_patched(tmp_path: Path, extractor: FeatureExtractor,
                                            monkeypatch, caplog) -> None:
    """The same refusal without privileges to drop: every open in OUT raises EACCES."""
    src = videos(tmp_path / "in", n=1, frames=32)
    out = tmp_path / "out"
    out.mkdir()

    def guarded(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path, *args, **kwargs):
            if str(path).startswith(str(out)):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", guarded(os.open))
    monkeypatch.setattr(os, "mkdir", guarded(os.mkdir))
    with pytest.raises(ConfigError, match="cannot write to the output folder"):
        extract([src], out, extractor=extractor, progress=False)
    assert not any(out.iterdir())


# --------------------------------------------------------------------------- tmpfs: real full / read-only


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    mounted: list[Path] = []

    def mount(size: str, *, ro: bool = False) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
                           capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_read_only_mount_exit_code_and_message(tmp_path: Path, tmpfs, tiny_checkpoint: Path,
                                               caplog) -> None:
    src = videos(tmp_path / "in", n=1, frames=32)
    ro = tmpfs("1m", ro=True)
    code = main(["extract", str(src), "-o", str(ro / "out"), "--checkpoint", str(tiny_checkpoint),
                 "-q"])
    assert code == 2
    assert "cannot write to the output folder" in caplog.text
    assert "Read-only file system" in caplog.text


def test_disk_full_on_tmpfs_then_freed(tmp_path: Path, tmpfs, extractor: FeatureExtractor) -> None:
    """A real full disk: claims, features, sidecars and manifest lines all hit ENOSPC."""
    src = videos(tmp_path / "in", n=8, frames=32)
    clean = tmp_path / "clean"
    within(300, extract, [src], clean, extractor=extractor, progress=False)
    for size in ("24k", "12k"):  # room for about one video; room for not even the manifest
        mnt = tmpfs(size)
        out = mnt / "out"
        try:
            s = within(300, extract, [src], out, extractor=extractor, progress=False)
        except OSError as exc:  # the manifest itself could not grow: the run stops
            assert exc.errno == errno.ENOSPC
        else:
            assert s.exit_code == 1 and s.failed
            assert all("No space left on device" in reason for _, reason in s.failed)
        assert not partial_outputs(out), partial_outputs(out)
        read_manifest(out)  # a torn last line does not make the manifest unreadable
        assert locks_free(out)
        subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)  # space freed
        again = within(300, extract, [src], out, extractor=extractor, progress=False)
        assert again.exit_code == 0 and again.ok + again.skipped == 8
        assert not compare_outputs(clean, out) and not partial_outputs(out)


# --------------------------------------------------------------------------- patched disk full


def test_disk_full_while_writing_features(tmp_path: Path, extractor: FeatureExtractor,
                                          monkeypatch) -> None:
    """Half of v2's feature file reaches the disk, then ENOSPC: v2 fails, nothing of it remains."""
    src = videos(tmp_path / "in")
    clean, out = tmp_path / "clean", tmp_path / "out"
    within(300, extract, [src], clean, extractor=extractor, progress=False)
    real_save = np.save

    def save(f, array, *args, **kwargs):
        if getattr(f, "name", "").find("v2.npy") >= 0:
            buf = io.BytesIO()
            real_save(buf, array, *args, **kwargs)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(f, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", save)
    s = within(300, extract, [src], out, extractor=extractor, progress=False)
    assert [v for v, _ in s.failed] == ["v2.mp4"] and s.ok == 3 and s.exit_code == 1
    assert "No space left on device" in s.failed[0][1]
    assert not (out / "v2.npy").exists() and not (out / "v2.json").exists()
    assert not partial_outputs(out)
    monkeypatch.undo()  # space freed
    again = within(300, extract, [src], out, extractor=extractor, progress=False)
    assert (again.ok, again.skipped, again.exit_code) == (1, 3, 0)
    assert not compare_outputs(clean, out)


def test_disk_full_while_writing_sidecar(tmp_path: Path, extractor: FeatureExtractor,
                                         monkeypatch) -> None:
    """The feature file made it, the sidecar did not: no orphan feature file is left."""
    src = videos(tmp_path / "in")
    clean, out = tmp_path / "clean", tmp_path / "out"
    within(300, extract, [src], clean, extractor=extractor, progress=False)
    real = writers.save_json

    def save_json(path, data):
        if path.name == "v1.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(writers, "save_json", save_json)
    s = within(300, extract, [src], out, extractor=extractor, progress=False)
    assert [v for v, _ in s.failed] == ["v1.mp4"]
    assert not (out / "v1.npy").exists(), "feature file left without its sidecar"
    assert not partial_outputs(out)
    monkeypatch.undo()
    again = within(300, extract, [src], out, extractor=extractor, progress=False)
    assert (again.ok, again.skipped) == (1, 3) and not compare_outputs(clean, out)


def test_old_sidecar_never_describes_new_features(tmp_path: Path, tiny_checkpoint: Path,
                                                  monkeypatch) -> None:
    """Re-extraction with other settings dies between the feature and the sidecar write:
    the old sidecar must not survive to vouch for the new features (resume would skip)."""
    src = videos(tmp_path / "in", n=2)
    out, reference = tmp_path / "out", tmp_path / "reference"
    a = FeatureExtractor(tiny_checkpoint)
    within(300, extract, [src], out, extractor=a, progress=False)
    within(300, extract, [src], reference, extractor=a, progress=False)

    real = writers.save_json

    def save_json(path, data):
        if LOCK_DIR in path.parts:  # the ownership record (issue 10) is written first
            return real(path, data)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers, "save_json", save_json)
    b = FeatureExtractor(tiny_checkpoint, preset="videomae-tad")
    s = within(300, extract, [src], out, extractor=b, progress=False, overwrite=True)
    assert len(s.failed) == 2
    monkeypatch.undo()
    again = within(300, extract, [src], out, extractor=a, progress=False)
    assert again.ok == 2, "resume trusted an old sidecar over new features"
    assert not compare_outputs(reference, out)


# --------------------------------------------------------------------------- failures mid-video


class _FlakyReader:
    """A real reader whose frame stream raises ``error`` after ``after`` frames."""

    def __init__(self, reader: Any, after: int, error: Exception) -> None:
        self._reader, self._after, self._error = reader, after, error

    def __enter__(self) -> _FlakyReader:
        self._reader.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.__exit__(*exc)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for n, item in enumerate(self._reader):
            if n == self._after:
                raise self._error
            yield item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


@pytest.mark.parametrize("error", [RuntimeError("simulated decoder crash"),
                                   DecodeError("simulated corrupt packet")],
                         ids=["unexpected", "decode-error"])
def test_decode_thread_raises_mid_video(tmp_path: Path, extractor: FeatureExtractor,
                                        monkeypatch, error: Exception) -> None:
    """v1 dies after 40 frames (two snippets already batched with other videos' snippets):
    v1 fails with the reason, nothing of it is written, the others are bit-identical."""
    engine = importlib.import_module("vadfeat.pipeline.stream")  # where videos are opened

    src = videos(tmp_path / "in")
    clean, out = tmp_path / "clean", tmp_path / "out"
    within(300, extract, [src], clean, extractor=extractor, workers=2, progress=False)
    real_open = engine.open_video

    def open_video(path, **kwargs):
        reader = real_open(path, **kwargs)
        return _FlakyReader(reader, 40, error) if Path(path).name == "v1.mp4" else reader

    monkeypatch.setattr(engine, "open_video", open_video)
    s = within(300, extract, [src], out, extractor=extractor, workers=2, progress=False)
    assert [v for v, _ in s.failed] == ["v1.mp4"] and s.ok == 3
    assert str(error) in s.failed[0][1]
    entry = next(e for e in read_manifest(out) if e["video"] == "v1.mp4")
    assert entry["status"] == "failed" and str(error) in entry["error"]
    assert not (out / "v1.npy").exists() and not partial_outputs(out) and locks_free(out)
    for name in ("v0.npy", "v2.npy", "v3.npy"):
        assert (clean / name).read_bytes() == (out / name).read_bytes()


def test_decode_worker_dying_never_hangs_or_loses_a_video(tmp_path: Path,
                                                           extractor: FeatureExtractor,
                                                           monkeypatch) -> None:
    """A decode thread that dies outside the per-video error handling (a bug in vadfeat
    itself) after sending part of a video: the run ends instead of waiting for it, the
    half-sent video and the videos no worker was left to take are named as failed."""
    engine = importlib.import_module("vadfeat.engines.local")
    src = videos(tmp_path / "in", n=3)
    out = tmp_path / "out"

    def dying(ext, work, events, stop, claim, skip):
        vid, item = work.get_nowait()
        assert claim(vid) == (None, "")
        rng, clip = next(ext.snippet_stream(item.source))
        events.put(engine.SnippetReady(vid, 0, rng, clip))
        raise RuntimeError("simulated bug in the worker")

    monkeypatch.setattr(engine, "_produce_videos", dying)
    s = within(300, extract, [src], out, extractor=extractor, workers=1, progress=False)
    assert s.exit_code == 1 and s.ok == 0 and len(s.failed) == 3
    reasons = dict(s.failed)
    assert "stopped before this video was finished" in reasons["v0.mp4"]
    assert all("no decode worker was left" in reasons[v] for v in ("v1.mp4", "v2.mp4"))
    assert {e["video"] for e in read_manifest(out) if e["status"] == "failed"} == set(reasons)
    assert not list(out.rglob("*.npy")) and not partial_outputs(out) and locks_free(out)


def test_model_error_stops_run_cleanly(tmp_path: Path, extractor: FeatureExtractor,
                                       monkeypatch) -> None:
    """The model itself fails (e.g. CUDA out of memory): the run stops with that error,
    keeps what it finished, leaves no partial file or held lock, and resumes."""
    src = videos(tmp_path / "in")
    clean, out = tmp_path / "clean", tmp_path / "out"
    within(300, extract, [src], clean, extractor=extractor, progress=False)
    real = extractor.run_model
    calls = {"n": 0}

    def run_model(clips):
        calls["n"] += 1
        if calls["n"] == 2:  # how many batches a run makes depends on timing; at least 2
            raise RuntimeError("simulated: out of memory")
        return real(clips)

    monkeypatch.setattr(extractor, "run_model", run_model)
    with pytest.raises(RuntimeError, match="out of memory"):
        within(300, extract, [src], out, extractor=extractor, progress=False)
    assert not partial_outputs(out) and locks_free(out)
    monkeypatch.undo()
    again = within(300, extract, [src], out, extractor=extractor, progress=False)
    assert again.exit_code == 0 and not compare_outputs(clean, out)


# --------------------------------------------------------------------------- SIGKILL at chosen points

_KILL_AT = r"""
import os, signal, sys
import vadfeat.store.atomic as w
point, count = sys.argv[1], int(sys.argv[2])
seen = {"replace": 0}
real_replace, real_fsync = os.replace, os.fsync
def replace(src, dst):
    if ".vadfeat-locks" in str(dst) or ".vadfeat-partial" in str(dst):  # ownership records, checkpoints
        return real_replace(src, dst)
    seen["replace"] += 1
    if point == "after-replace" and seen["replace"] == count:
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)
def fsync(fd):  # the temporary feature file is written, not yet renamed
    if point == "before-replace" and ".npy" in os.readlink(f"/proc/self/fd/{fd}"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_fsync(fd)
w.os.replace, w.os.fsync = replace, fsync
from vadfeat.cli import main
sys.exit(main(["extract", *sys.argv[3:]]))
"""


@pytest.mark.parametrize(("point", "count", "preset"), [
    ("before-replace", 1, "videomae-v2"),  # temporary feature file on disk, not renamed
    ("after-replace", 1, "videomae-tad"),  # new feature file in place, old sidecar not yet
    ("after-replace", 2, "videomae-v2"),   # both renamed, manifest line not yet written
])
def test_sigkill_at_the_worst_moments(tmp_path: Path, tiny_checkpoint: Path, point: str,
                                      count: int, preset: str) -> None:
    """SIGKILL exactly inside the write sequence, then resume with the original settings."""
    src = videos(tmp_path / "in", n=2, frames=32)
    out, reference = tmp_path / "out", tmp_path / "reference"
    # One snippet per forward pass in every run: which snippets share a default-size batch
    # depends on timing, and float32 rounding then differs by ~1e-6 (bytes are compared).
    a = FeatureExtractor(tiny_checkpoint, batch_size=1)
    within(300, extract, [src], reference, extractor=a, progress=False)
    if preset != "videomae-v2":  # outputs of other settings are being replaced
        within(300, extract, [src], out, extractor=a, progress=False)
    # Replacing outputs made with other settings is a decision: --overwrite (issue 10).
    more = ["--overwrite"] if preset != "videomae-v2" else []
    r = subprocess.run([sys.executable, "-c", _KILL_AT, point, str(count), str(src), "-o", str(out),
                        "--checkpoint", str(tiny_checkpoint), "-q", "-b", "1", "--preset", preset,
                        *more],
                       capture_output=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr.decode()[-2000:]
    left = temporaries(out)
    assert bool(left) == (point == "before-replace")
    again = within(300, extract, [src], out, extractor=a, progress=False)
    assert again.exit_code == 0
    assert not partial_outputs(out) and not compare_outputs(reference, out)


# --------------------------------------------------------------------------- untrusted files


def test_list_file_entries_never_write_outside_out(tmp_path: Path,
                                                   extractor: FeatureExtractor) -> None:
    """``..`` and absolute entries are resolved as documented (inputs.py): names lose their
    ``..`` parts and leading ``/``; every output lands under OUT."""
    outside = tmp_path / "outside"
    synth.write_video(outside / "x.mp4", synth.scene_frames(32, seed=1), fps=25)
    synth.write_video(outside / "deep" / "y.mp4", synth.scene_frames(32, seed=2), fps=25)
    # Entries that do not exist are a usage error now (issue 11); broken links exist
    # as links, so they keep the "failed, named, nothing written" path tested here.
    (outside / "nope.mp4").symlink_to(tmp_path / "gone.mp4")
    (outside / "hostname.mp4").symlink_to(tmp_path / "gone2.mp4")
    lists = tmp_path / "data" / "lists"
    lists.mkdir(parents=True)
    listing = lists / "split.txt"
    listing.write_text("\n".join([
        "../../outside/x.mp4",
        str(outside / "deep" / "y.mp4"),
        "../lists/../../outside/deep/../x",        # the same file again: kept once
        "../../../../../../../../../.." + str(outside / "nope.mp4"),  # climbs past /
        str(outside / ".." / "outside" / "hostname.mp4"),
    ]) + "\n")
    out = tmp_path / "data" / "out"
    before = {p for p in tmp_path.rglob("*")}
    s = within(300, extract, [listing], out, extractor=extractor, progress=False)
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(out in p.parents or p == out for p in created), \
        sorted(str(p) for p in created if out not in p.parents)
    names = [e["video"] for e in read_manifest(out)]
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names), names
    assert s.ok == 2 and {v for v, _ in s.failed} == {"nope.mp4", "hostname.mp4"}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy")) == ["x.npy", "y.npy"]


class _Payload:
    """What a malicious pickle does: call something when loaded (here: create a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_ground_truth_pickle_loaded_only_when_asked(tmp_path: Path, tiny_checkpoint: Path,
                                                    extractor: FeatureExtractor) -> None:
    src = videos(tmp_path / "in", n=1, frames=32)
    feats = tmp_path / "feats"
    within(300, extract, [src], feats, extractor=extractor, progress=False)
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "frame_label.pickle"
    evil.write_bytes(pickle.dumps({"v0": _Payload(marker)}))
    # Auto-detection never picks pickle.
    with pytest.raises(ConfigError, match="pickle"):
        as_label_set(evil, features=feats)
    assert main(["align", str(feats), "--labels", str(evil), "-o", str(tmp_path / "al")]) == 2
    with pytest.raises(SystemExit):  # `vadfeat labels` has no default format at all
        main(["labels", str(evil), "--features", str(feats), "-o", str(tmp_path / "gt")])
    # A pickled object array disguised as a .npy mask is not unpickled either.
    masks = tmp_path / "masks"
    masks.mkdir()
    np.save(masks / "v0.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    labels = read_labels(masks, format="npy-dir", features=feats)
    assert "v0" not in labels.videos and any(i.kind == "bad-values" for i in labels.issues)
    assert not marker.exists()
    # Naming the format reads the pickle with a restricted unpickler (issue 11): the live
    # payload above is refused, not run.
    with pytest.raises(ConfigError, match="refusing"):
        read_labels(evil, format="pickle", features=feats)
    assert not marker.exists()


def test_ground_truth_names_never_write_outside_out(tmp_path: Path) -> None:
    """A video name in a ground-truth file (``labels.json`` key, pickle key) is not a path
    to write to: ``../x`` would land beside OUT, not in it."""
    src = tmp_path / "gt"
    src.mkdir()
    (src / "labels.json").write_text(json.dumps({"../escaped": {"num_frames": 3}}))
    np.save(tmp_path / "escaped.npy", np.array([0, 1, 0], np.uint8))  # = gt/../escaped.npy
    before = (tmp_path / "escaped.npy").read_bytes()
    out = src / "out"
    assert main(["labels", str(src), "--format", "canonical", "-o", str(out)]) == 2
    assert (tmp_path / "escaped.npy").read_bytes() == before
    assert not (src / "escaped.npy").exists() and not list(out.rglob("*.npy"))


def test_extract_refuses_a_checkpoint_with_a_pickle_payload(tmp_path: Path,
                                                            tiny_checkpoint: Path) -> None:
    """The loader-level test is tests/test_checkpoints.py::test_pickle_payload_refused;
    here the whole command refuses before any work and writes nothing."""
    import torch

    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pth"
    state = torch.load(tiny_checkpoint, weights_only=True)
    torch.save({**state, "extra": _Payload(marker)}, evil)
    src = videos(tmp_path / "in", n=1, frames=32)
    assert main(["extract", str(src), "-o", str(tmp_path / "out"), "--checkpoint", str(evil),
                 "-q"]) == 2
    assert not marker.exists()
    assert not list(tmp_path.rglob("*.npy"))


# --------------------------------------------------------------------------- slow: the stress script, reduced


@pytest.mark.slow
def test_fault_corpus_stress_reduced() -> None:
    """tests/stress/fault_corpus.py at a reduced size: 40 inputs (17 broken: one of each
    kind), 3 random SIGKILLs then a resume, 3 processes on one folder, a device process
    killed under --devices, disk full (tmpfs), read-only output, and the ownership phases of
    issue 10 (foreign files, changed settings, damaged sidecars, changed sources, two runs
    with different settings, SIGTERM).  Every phase's checks hold."""
    from stress import fault_corpus

    d = _world_dir()
    try:
        code = fault_corpus.main(["--videos", "40", "--kills", "3", "--out", str(d / "work"),
                                  "--skip", "memory"])
        assert code == 0, "a phase failed: see the table in the captured output"
    finally:
        restore_permissions(d)
        shutil.rmtree(d)


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_video_length(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """One 10-minute video (15000 frames) against a 1-minute one, each in a fresh process,
    model input 32x32 so that it runs in about a minute: the engine holds a bounded number
    of frames and snippets, so peak RSS must not grow by more than 32 MiB.  (At the default
    224x224 input the allocator adds more; RELIABILITY.md has those figures.)"""
    from stress.fault_corpus import long_video, measure_memory

    flags = ["--size", "32", "--short-side", "32"]
    short = measure_memory(long_video(tmp_path, 1), tiny_checkpoint, tmp_path / "o1", flags)
    long = measure_memory(long_video(tmp_path, 10), tiny_checkpoint, tmp_path / "o10", flags)
    assert short["exit"] == long["exit"] == 0
    assert (short["frames"], long["frames"]) == (1500, 15000)
    assert long["peak_rss_mib"] - short["peak_rss_mib"] < 32, (short, long)
