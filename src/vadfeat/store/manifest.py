"""``OUT/manifest.jsonl``: one JSON line per video per run, appended, never rewritten."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


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


__all__ = ["MANIFEST", "Manifest", "read_manifest"]
