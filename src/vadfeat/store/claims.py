"""Claims: per-video locks in ``OUT/.vadfeat-locks`` shared by every process writing one folder."""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

from vadfeat.store.atomic import pid_alive

LOCK_DIR = ".vadfeat-locks"
#: How a claim held by another live process is reported (manifest status ``elsewhere``).
HELD = "in progress elsewhere"
_WAIT_POLL_S = 0.5
#: How long a reader waits for a just-taken claim's owner line (see ``Claims._holder``).
_HOLDER_SETTLE_S = 2.0


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
        self.owner = f"{socket.gethostname()} {os.getpid()}" + (f" token={run_token}" if run_token else "")
        self._held: dict[str, int] = {}
        self._mutex = threading.Lock()

    def _path(self, key: str) -> Path:
        # surrogateescape: names of files whose names are not UTF-8 hash too.
        return self.dir / (hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest() + ".lock")

    def acquire(self, key: str, *, wait: threading.Event | None = None) -> str | None:
        """``None`` when this process now holds ``key``; else why it cannot have it.

        The reason starts with :data:`HELD` when another live process holds it (with
        ``sibling`` after it when that process belongs to this run, see ``run_token``).
        ``wait``: block until the holder lets go, polling every 0.5 s, and give up
        (returning the reason) once the event is set.
        """
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if wait is not None and not wait.wait(_WAIT_POLL_S):
                    continue
                holder = self._holder(fd)
                os.close(fd)
                host_pid, _, token = holder.partition(" token=")
                if self.run_token and token == self.run_token:
                    return f"{HELD} sibling ({host_pid})"
                return f"{HELD} ({host_pid or 'unknown'})"
        previous = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        if self.run_token and previous.startswith(f"failed {self.run_token} "):
            # A sibling process of the same run (another device) already failed it.
            os.close(fd)
            return "failed on another device of this run: " + previous.split(" ", 2)[2].strip()
        try:
            line = (self.owner + "\n").encode("utf-8")
            os.pwrite(fd, line, 0)  # then cut: never an empty file while the lock is held
            os.ftruncate(fd, len(line))
        except OSError:  # disk full: a failed claim must not keep the lock (or the descriptor)
            os.close(fd)
            raise
        with self._mutex:
            self._held[key] = fd
        return None

    def _holder(self, fd: int) -> str:
        """The owner line of a claim another process holds.

        The holder writes its line just after it locks, so a reader can see the file still
        empty or naming a previous, dead holder: it reads again (every 10 ms, at most
        :data:`_HOLDER_SETTLE_S`) until the line names a live process of this host or one of
        another host.  Without that, a sibling device of this run that had just locked the
        video was reported as another run's (exit 3).
        """
        deadline = time.monotonic() + _HOLDER_SETTLE_S
        host = socket.gethostname()
        while True:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            owner_host, _, rest = holder.partition(" ")
            pid = rest.split(" ", 1)[0]
            settled = bool(holder) and (owner_host != host or not pid.isdigit() or pid_alive(int(pid)))
            if settled or time.monotonic() >= deadline:
                return holder
            time.sleep(0.01)

    def mark_failed(self, key: str, reason: str) -> None:
        """Leave the failure in the lock file so sibling processes of this run skip it."""
        fd = self._held.get(key)
        if fd is not None and self.run_token:
            line = f"failed {self.run_token} {reason}\n".encode()
            os.pwrite(fd, line, 0)  # then cut, as acquire writes its owner line
            os.ftruncate(fd, len(line))

    def release(self, key: str) -> None:
        with self._mutex:
            fd = self._held.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def release_all(self) -> None:
        for key in list(self._held):
            self.release(key)


__all__ = ["HELD", "LOCK_DIR", "Claims"]
