"""Checkpoints of a video in progress, so that a stopped run resumes it from its last saved snippet.

An hour-long video is thousands of snippets; a run stopped in its middle (Ctrl-C,
SIGTERM, SIGKILL, a crash) would otherwise lose them all.  While the model side works
on a video it appends the features of its finished snippets, in temporal order, to
``OUT/.vadfeat-partial/<sha1 of the claim key>.rows`` (raw float32 rows, one per
snippet) and then replaces, atomically, the small ``<same>.state`` (JSON) beside it, which
says how many rows are valid and names what they were made from: the settings
fingerprint, the source's identity (:func:`~vadfeat.store.identity.source_identity`,
compared field by field, mtime included), the snippets' source frame ranges, the row
shape and the sha256 of the valid rows.  The JSON is the commit point: rows past its
count (an append cut short by a kill) are ignored and overwritten.

A run that claims the video (:class:`~vadfeat.store.claims.Claims`: partial files are
only read or written under the video's claim) loads the checkpoint when everything
matches; the decode side then still decodes the saved snippets (so the frames after
them are the same) but neither transforms them nor runs the model on them, and the
saved rows take their place.  A checkpoint that does not match (other settings,
another source, a torn or edited file) is vadfeat's own file and is removed.  The
final ``.npy`` is written as in an uninterrupted run and the checkpoint removed after
it; readers never see the checkpoints (a hidden folder, and no ``.npy`` name).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vadfeat.store.atomic import save_json

log = logging.getLogger(__name__)

#: The folder of the output folder that holds the checkpoints (hidden: readers skip it).
PARTIAL_DIR = ".vadfeat-partial"
#: A checkpoint is saved once this many new snippets are through the model ...
CHECKPOINT_SNIPPETS = 64
#: ... or this many seconds after the last one (with at least one new snippet).
CHECKPOINT_S = 20.0
#: Test hook: ``"<video name>:<k>[:<SIGNAL>]"``: once ``k`` snippets of that video are
#: through the model, save its checkpoint and stop the run with the signal (SIGINT by
#: default; SIGKILL kills the process outright), so tests stop a run at a known point.
STOP_ENV = "VADFEAT_TEST_STOP_AFTER"
_FORMAT = 1


def partial_paths(out: Path, key: str) -> tuple[Path, Path]:
    """``(rows, meta)``: where the checkpoint of the video with claim key ``key`` lives."""
    name = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
    folder = out / PARTIAL_DIR
    return folder / f"{name}.rows", folder / f"{name}.state"


def _plain(data: Any) -> Any:
    """``data`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(data))


@dataclass
class Resumed:
    """A checkpoint that matched: ``rows`` ``[count, *row_shape]`` float32 and their
    source frame ranges ``(first, last)``."""

    rows: np.ndarray
    ranges: list[tuple[int, int]]

    @property
    def count(self) -> int:
        return len(self.ranges)


class Partial:
    """One video's checkpoint in ``out`` (used by the model side, under the video's claim).

    ``fingerprint``: the run's settings fingerprint; ``identity``: the source's identity
    taken when the video was claimed (``None``: unknown, then nothing is saved or loaded).
    """

    def __init__(self, out: Path, key: str, *, video: str, fingerprint: dict[str, Any],
                 identity: dict[str, Any] | None) -> None:
        self.rows_path, self.meta_path = partial_paths(out, key)
        self.key = key
        self.video = video
        self.fingerprint = _plain(fingerprint)
        self.identity = _plain(identity) if identity is not None else None
        self.count = 0  # rows saved (and committed by the JSON)
        self.ranges: list[list[int]] = []
        self.row_shape: list[int] | None = None
        self._sha = hashlib.sha256()
        self.saved_at = time.monotonic()
        self.enabled = identity is not None

    # ------------------------------------------------------------------ resume

    def load(self) -> Resumed | None:
        """The saved rows when the checkpoint is this video's with these settings and this
        source; otherwise ``None``, and a checkpoint that does not match is removed."""
        if not self.enabled or not os.path.lexists(self.meta_path):
            if os.path.lexists(self.rows_path):
                self.remove()
            return None
        try:
            found: Resumed | str = self._read()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            found = f"unreadable ({exc})"
        if isinstance(found, Resumed):
            log.info("%s: resuming from snippet %d (saved by an interrupted run)", self.video,
                     found.count)
            return found
        log.info("%s: a saved partial extraction is not used (%s); starting from the first "
                 "snippet", self.video, found)
        self.remove()
        return None

    def _read(self) -> Resumed | str:
        meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("vadfeat_partial") != _FORMAT:
            return "not a checkpoint of this version"
        if meta["key"] != self.key:
            return "it belongs to another video"
        if meta["fingerprint"] != self.fingerprint:
            return "made with other settings"
        if meta["source_identity"] != self.identity:
            return "the source changed since"
        count, shape, ranges = int(meta["count"]), [int(d) for d in meta["row_shape"]], meta["ranges"]
        if count < 1 or len(ranges) != count:
            return "malformed"
        row_bytes = int(np.prod(shape)) * 4
        with open(self.rows_path, "rb") as f:
            data = f.read(count * row_bytes)
        if len(data) != count * row_bytes:
            return "its rows file is shorter than it says"
        sha = hashlib.sha256(data)
        if sha.hexdigest() != meta["sha256"]:
            return "its rows do not match their sha256"
        rows = np.frombuffer(data, dtype="<f4").reshape(count, *shape).astype(np.float32)
        self.count, self.row_shape, self._sha = count, shape, sha
        self.ranges = [[int(a), int(b)] for a, b in ranges]
        return Resumed(rows, [(a, b) for a, b in self.ranges])

    # ------------------------------------------------------------------ save

    def due(self, new: int) -> bool:
        """Whether ``new`` unsaved snippets are worth a checkpoint now."""
        return new >= CHECKPOINT_SNIPPETS or (new > 0 and time.monotonic() - self.saved_at >= CHECKPOINT_S)

    def append(self, rows: list[np.ndarray], ranges: list[tuple[int, int]]) -> None:
        """Save ``rows`` (the next snippets' features, in order) and commit them.

        Raises OSError (e.g. a full disk); the checkpoint then still says what it said."""
        if not self.enabled or not rows:
            return
        block = np.ascontiguousarray(np.stack(rows), dtype="<f4")
        shape = list(block.shape[1:])
        if self.row_shape is None:
            self.row_shape = shape
        elif shape != self.row_shape:
            raise ValueError(f"row shape {shape} != {self.row_shape}")
        self.rows_path.parent.mkdir(parents=True, exist_ok=True)
        data = block.tobytes()
        offset = self.count * (len(data) // len(rows))
        with open(self.rows_path, "r+b" if self.count and self.rows_path.exists() else "wb") as f:
            f.seek(offset)
            f.truncate()
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the rows must be on disk before the JSON that counts them
        sha = self._sha.copy()
        sha.update(data)
        ranges_all = self.ranges + [[int(a), int(b)] for a, b in ranges]
        save_json(self.meta_path, {
            "vadfeat_partial": _FORMAT, "key": self.key, "video": self.video,
            "fingerprint": self.fingerprint, "source_identity": self.identity,
            "count": self.count + len(rows), "row_shape": shape, "dtype": "float32",
            "ranges": ranges_all, "sha256": sha.hexdigest(),
        })
        self.count += len(rows)
        self.ranges, self._sha = ranges_all, sha
        self.saved_at = time.monotonic()

    def remove(self) -> None:
        """Delete the checkpoint (JSON first: rows without it are never used)."""
        for p in (self.meta_path, self.rows_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        self.count, self.ranges, self.row_shape, self._sha = 0, [], None, hashlib.sha256()


def stop_hook() -> tuple[str, int, signal.Signals] | None:
    """The parsed :data:`STOP_ENV` test hook, or ``None``."""
    spec = os.environ.get(STOP_ENV)
    if not spec:
        return None
    parts = spec.split(":")
    sig = signal.Signals[parts.pop()] if parts[-1].startswith("SIG") else signal.SIGINT
    return ":".join(parts[:-1]), int(parts[-1]), sig


__all__ = ["CHECKPOINT_S", "CHECKPOINT_SNIPPETS", "PARTIAL_DIR", "STOP_ENV", "Partial", "Resumed",
           "partial_paths", "stop_hook"]
