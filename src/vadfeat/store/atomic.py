"""Atomic files: every file vadfeat writes goes to a temporary name beside it, then ``os.replace``.

A reader never sees a partial file and an interrupted run leaves nothing half-written:
at worst a hidden temporary (``.<name>.vadfeat-tmp.<host>.<pid>``), which the next run
on the same host removes once its writer is dead (:func:`clean_stale_temporaries`).
Also here: the sha256 of a file (:func:`sha256_file`), used for feature files and
checkpoints alike, and what ``np.load`` raises on a damaged ``.npy`` (:data:`NPY_ERRORS`).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import tokenize
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# What ``np.load`` raises on a damaged or hostile ``.npy``: besides OSError and
# ValueError, a header may claim any shape (MemoryError) or hold bytes numpy's header
# parser chokes on (SyntaxError, tokenize.TokenError); a cut file gives EOFError.
NPY_ERRORS = (OSError, EOFError, ValueError, MemoryError, SyntaxError, tokenize.TokenError)

_TMP_TAG = ".vadfeat-tmp"


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


class _HashingWriter:
    """A write-only file wrapper that hashes what goes through it (numpy calls ``write``
    in chunks on anything that is not a real file, so nothing is buffered twice)."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.sha = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.sha.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()

    @property
    def name(self) -> str:
        return self._f.name


def save_npy(path: Path, array: np.ndarray) -> str:
    """Write ``array`` atomically; return the sha256 (hex) of the file's bytes."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        w = _HashingWriter(f)
        np.save(w, array, allow_pickle=False)
        return w.sha.hexdigest()


def sha256_file(path: Path, *, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` atomically as indented JSON (keys in their given order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def clean_stale_temporaries(out: Path, *, of: str | None = None) -> list[Path]:
    """Remove temporary files left by killed vadfeat processes on this host.

    Temporaries of processes still alive (a concurrent run on the same folder) are
    left alone; so are other hosts' (their owner cannot be checked from here).
    ``of``: only the temporaries of the file of that name directly in ``out`` (a
    single-file output, whose folder may hold anything), not every one below ``out``.
    """
    removed: list[Path] = []
    if not out.is_dir():
        return removed
    host = socket.gethostname()
    found = out.glob(f".{glob.escape(of)}{_TMP_TAG}.*") if of is not None else out.rglob(f"*{_TMP_TAG}.*")
    for tmp in sorted(found):
        owner_host, _, pid = tmp.name.rsplit(_TMP_TAG + ".", 1)[-1].rpartition(".")
        if owner_host != host or not pid.isdigit() or pid_alive(int(pid)):
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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is alive (one of another user's counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["NPY_ERRORS", "atomic_path", "clean_stale_temporaries", "pid_alive", "save_json", "save_npy",
           "sha256_file", "tmp_name"]
