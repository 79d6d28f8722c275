"""Feature files on disk: layouts, atomic writes, sidecars, the run manifest, resume.

Every file is written to a temporary name in its final folder and renamed into
place (``os.replace``), so a reader never sees a partial file and an
interrupted run leaves nothing half-written.  The sidecar is written last: a
feature file without a matching sidecar is treated as not done.

Layouts (SPEC §3):

* ``flat``: ``OUT/<relative dir>/<stem>.npy`` + ``<stem>.json``.
* ``fed-wsvad``: ``OUT/features_video/i3d/combine/<relative dir>/<stem>/feature.npy``
  + ``feature.json``, as the Fed_WSVAD training code reads it (the folder says
  ``i3d`` for historical reasons).
* ``per-crop``: ``<stem>__<k>.npy`` (``[T, D]`` per crop, UR-DMU style) + ``<stem>.json``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

import numpy as np

from vadfeat.errors import ConfigError

log = logging.getLogger(__name__)

# What ``np.load`` raises on a damaged or hostile ``.npy``: besides OSError and
# ValueError, a header may claim any shape (MemoryError) or hold bytes numpy's header
# parser chokes on (SyntaxError, tokenize.TokenError); a cut file gives EOFError.
NPY_ERRORS = (OSError, EOFError, ValueError, MemoryError, SyntaxError, tokenize.TokenError)

Layout = Literal["flat", "fed-wsvad", "per-crop"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
MANIFEST = "manifest.jsonl"
_TMP_TAG = ".vadfeat-tmp"


def check_layout(layout: str) -> Layout:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return layout  # type: ignore[return-value]


@dataclass(frozen=True)
class OutputPaths:
    """Where one video's outputs go.  ``features`` has one path, or one per crop."""

    features: tuple[Path, ...]
    sidecar: Path

    def all(self) -> tuple[Path, ...]:
        return (*self.features, self.sidecar)


def output_paths(out: Path, stem: PurePosixPath, *, layout: Layout, crops: int = 1) -> OutputPaths:
    rel = Path(*stem.parts)
    if layout == "flat":
        base = out / rel
        return OutputPaths((base.with_name(base.name + ".npy"),), base.with_name(base.name + ".json"))
    if layout == "fed-wsvad":
        folder = out / "features_video" / "i3d" / "combine" / rel
        return OutputPaths((folder / "feature.npy",), folder / "feature.json")
    base = out / rel
    feats = tuple(base.with_name(f"{base.name}__{k}.npy") for k in range(crops))
    return OutputPaths(feats, base.with_name(base.name + ".json"))


# --------------------------------------------------------------------------- atomic writes


def tmp_name(path: Path) -> Path:
    """The hidden temporary name beside ``path`` owned by this process (file or folder)."""
    return path.with_name(f".{path.name}{_TMP_TAG}.{socket.gethostname()}.{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the rename must not land before the data does
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def save_json(path: Path, data: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def clean_stale_temporaries(out: Path) -> list[Path]:
    """Remove temporary files left by killed vadfeat processes on this host.

    Temporaries of processes still alive (a concurrent run on the same folder) are
    left alone; so are other hosts' (their owner cannot be checked from here).
    """
    removed: list[Path] = []
    if not out.is_dir():
        return removed
    host = socket.gethostname()
    for tmp in sorted(out.rglob(f"*{_TMP_TAG}.*")):
        owner_host, _, pid = tmp.name.rsplit(_TMP_TAG + ".", 1)[-1].rpartition(".")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed.append(tmp)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run", len(removed))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- claims


LOCK_DIR = ".vadfeat-locks"


class Claims:
    """Per-video locks so that processes sharing one output folder (one per GPU, or
    several runs a user started) never work on the same video at once.

    A claim is an exclusive ``flock`` on ``OUT/.vadfeat-locks/<hash of the video's
    output name>.lock``, held while the video is processed.  The kernel drops it when
    the holder exits however it exits (SIGKILL included), so there are no stale locks
    to clean up.  Lock files are never deleted: deleting one while another process
    waits on it would let two processes lock two different files of the same name.
    (On NFS, Linux maps ``flock`` to byte-range locks, which NFSv4 supports.)
    """

    def __init__(self, out: Path, *, run_token: str | None = None) -> None:
        self.run_token = run_token
        self.dir = out / LOCK_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.owner = f"{socket.gethostname()} {os.getpid()}"
        self._held: dict[str, int] = {}
        self._mutex = threading.Lock()

    def _path(self, key: str) -> Path:
        # surrogateescape: names of files whose names are not UTF-8 hash too.
        return self.dir / (hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest() + ".lock")

    def acquire(self, key: str) -> str | None:
        """``None`` when this process now holds ``key``; else why it cannot have it."""
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            return f"being extracted by another process ({holder or 'unknown'})"
        previous = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        if self.run_token and previous.startswith(f"failed {self.run_token} "):
            # A sibling process of the same run (another device) already failed it.
            os.close(fd)
            return "failed on another device of this run: " + previous.split(" ", 2)[2].strip()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (self.owner + "\n").encode("utf-8"), 0)
        except OSError:  # disk full: a failed claim must not keep the lock (or the descriptor)
            os.close(fd)
            raise
        with self._mutex:
            self._held[key] = fd
        return None

    def mark_failed(self, key: str, reason: str) -> None:
        """Leave the failure in the lock file so sibling processes of this run skip it."""
        fd = self._held.get(key)
        if fd is not None and self.run_token:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"failed {self.run_token} {reason}\n".encode(), 0)

    def release(self, key: str) -> None:
        with self._mutex:
            fd = self._held.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def release_all(self) -> None:
        for key in list(self._held):
            self.release(key)


# --------------------------------------------------------------------------- per-video output


def split_crops(features: np.ndarray, crops: int) -> list[np.ndarray]:
    """``[T, crops, ...]`` -> ``crops`` arrays ``[T, ...]`` (per-crop layout)."""
    if crops == 1:
        return [features]
    return [np.ascontiguousarray(features[:, k]) for k in range(crops)]


def write_outputs(paths: OutputPaths, features: np.ndarray, sidecar: Mapping[str, Any],
                  *, crops: int) -> None:
    """Feature file(s) first, sidecar last; each atomically.

    An existing sidecar goes first: interrupted between the renames, an old sidecar
    would describe the new features and resume would trust it.  On an error (disk
    full) the feature files just written go too, so nothing is left half-done.
    """
    arrays = split_crops(features, crops) if len(paths.features) > 1 else [features]
    with contextlib.suppress(FileNotFoundError):
        paths.sidecar.unlink()
    try:
        for path, array in zip(paths.features, arrays, strict=True):
            save_npy(path, np.asarray(array, dtype=np.float32))
        save_json(paths.sidecar, sidecar)
    except BaseException:
        for path in paths.features:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise


def read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def is_done(paths: OutputPaths, fingerprint: Mapping[str, Any]) -> bool:
    """True when every output exists and the sidecar was made with the same settings."""
    meta = read_sidecar(paths.sidecar)
    if meta is None or meta.get("fingerprint") != dict(fingerprint):
        return False
    shape = meta.get("shape")
    for path in paths.features:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except NPY_ERRORS:  # damaged or torn file: redo
            return False
        expect = shape if len(paths.features) == 1 else [shape[0], *shape[2:]]
        if list(arr.shape) != list(expect):
            return False
    return True


# --------------------------------------------------------------------------- manifest


class Manifest:
    """``OUT/manifest.jsonl``: one line per video per run, appended.

    Each line is one ``write`` on a file opened with ``O_APPEND``, so lines from
    concurrent runs on one folder interleave whole, never mixed.  On a full disk that
    ``write`` can store part of a line without an error: :meth:`record` then raises,
    and the next run starts on a fresh line so the torn one stays alone.
    """

    def __init__(self, out: Path, run_id: str) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / MANIFEST
        self.run_id = run_id
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            os.write(self._fd, b"\n")

    def record(self, **entry: Any) -> None:
        line = json.dumps({"run": self.run_id, **entry}, ensure_ascii=False) + "\n"
        # A file name that is not UTF-8 holds lone surrogates: write them as JSON escapes.
        data = line.encode("utf-8", "backslashreplace")
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(errno.ENOSPC, f"manifest line cut short ({written} of {len(data)} "
                          "bytes written; disk full?)", str(self.path))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def read_manifest(out: Path) -> list[dict[str, Any]]:
    """Every whole line of ``OUT/manifest.jsonl``; a line torn by a full disk is skipped."""
    path = out / MANIFEST
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            if line:
                log.warning("%s: skipping a torn line: %.80s", path, line)
    return entries
