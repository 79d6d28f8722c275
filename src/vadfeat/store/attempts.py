"""Attempt records: which process is extracting a video, so that the next attempt knows it
is a retry, and whose death it retries.

A cluster engine's scheduler retries a video's task when the worker or the node running
it dies, without telling the driver (Ray Data does so).  So each attempt leaves its own
trace: before extracting a video, the worker adds an :class:`Attempt` (run, host, pid,
node, start time) to ``OUT/.vadfeat-locks/<hash of the claim key>.attempt``; when the
attempt ends with a result it stores the result there (:meth:`Attempts.finish`), and the
driver deletes the record once the video's manifest line is written
(:meth:`Attempts.end`).  A record that is still there when a new attempt begins therefore
lists attempts that ended without a result: their process, or their node, or the run
that started them, died.  The new attempt reads them (:meth:`Attempts.begin`) while it
holds the video's claim, so none of them can still be running.

A record is one small JSON file written atomically (:func:`~vadfeat.store.atomic.save_json`);
it is vadfeat's own file in its own hidden folder, so vadfeat deletes it.  A record that
cannot be parsed counts as empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vadfeat.store.atomic import save_json
from vadfeat.store.claims import LOCK_DIR

ATTEMPT_SUFFIX = ".attempt"
_FORMAT = "vadfeat-attempts"


@dataclass(frozen=True)
class Attempt:
    """One process's try at one video: ``run`` (the run id of the driver that scheduled
    it), ``host`` and ``pid`` of the worker process, ``node`` (the cluster's id of the
    worker's node, or None) and ``started`` (UTC, ISO 8601, seconds)."""

    run: str
    host: str
    pid: int
    node: str | None
    started: str

    @classmethod
    def here(cls, run: str, node: str | None = None) -> Attempt:
        """An attempt by this process, starting now."""
        return cls(run=run, host=socket.gethostname(), pid=os.getpid(), node=node,
                   started=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    @classmethod
    def from_json(cls, data: Any) -> Attempt | None:
        """The attempt ``data`` (a parsed record entry) describes; None when it is not one."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(run=str(data["run"]), host=str(data["host"]), pid=int(data["pid"]),
                       node=None if data.get("node") is None else str(data["node"]),
                       started=str(data["started"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class AttemptRecord:
    """A video's record: its attempts in order (the last is the latest) and, once that
    attempt produced one, its result (``entry``: the manifest entry it returned)."""

    attempts: tuple[Attempt, ...] = ()
    entry: dict[str, Any] | None = None


class Attempts:
    """The attempt records of the output folder ``out`` (kept in ``OUT/.vadfeat-locks``).

    Keys are the videos' claim keys (:meth:`~vadfeat.store.sinks.Sink.key`).  Raises
    OSError when the folder cannot be made or a record cannot be written.
    """

    def __init__(self, out: Path) -> None:
        self.dir = Path(out) / LOCK_DIR
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The record of the video whose claim key is ``key`` (named as its claim's lock)."""
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
        return self.dir / (digest + ATTEMPT_SUFFIX)

    def read(self, key: str) -> AttemptRecord:
        """The video's record; an empty one when there is none or it cannot be read."""
        try:
            data = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return AttemptRecord()
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return AttemptRecord()
        found = [Attempt.from_json(a) for a in data.get("attempts") or []]
        entry = data.get("entry")
        return AttemptRecord(tuple(a for a in found if a is not None),
                             entry if isinstance(entry, dict) else None)

    def begin(self, key: str, video: str, attempt: Attempt) -> tuple[Attempt, ...]:
        """Record that ``attempt`` starts on the video; return the earlier attempts that
        ended without a result (oldest first).  Call it while holding the video's claim.
        A finished record of another run (its driver died before deleting it) is not a
        retry: it starts afresh."""
        record = self.read(key)
        earlier = record.attempts if record.entry is None else ()
        self._save(key, video, (*earlier, attempt), None)
        return earlier

    def finish(self, key: str, video: str, entry: Mapping[str, Any]) -> None:
        """The latest attempt produced ``entry``: keep it, so that the same run scheduling
        the video again (a result lost with its node) gets it back instead of a retry."""
        record = self.read(key)
        self._save(key, video, record.attempts, dict(entry))

    def end(self, key: str) -> None:
        """The video's outcome is recorded: forget its attempts."""
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def pending(self) -> list[str]:
        """The file names of the records present (``<hash>.attempt``)."""
        try:
            return sorted(p.name for p in self.dir.glob("*" + ATTEMPT_SUFFIX))
        except OSError:
            return []

    def _save(self, key: str, video: str, attempts: tuple[Attempt, ...],
              entry: dict[str, Any] | None) -> None:
        save_json(self.path(key), {"format": _FORMAT, "version": 1, "video": video,
                                   "attempts": [asdict(a) for a in attempts], "entry": entry})


__all__ = ["ATTEMPT_SUFFIX", "Attempt", "AttemptRecord", "Attempts"]
