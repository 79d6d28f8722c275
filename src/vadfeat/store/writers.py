"""Feature files on disk: layouts, atomic writes, sidecars, the run manifest, resume.

Every file is written to a temporary name in its final folder and renamed into
place (``os.replace``), so a reader never sees a partial file and an
interrupted run leaves nothing half-written.  The sidecar is written last: a
feature file without a matching sidecar is treated as not done.

Ownership: vadfeat replaces or deletes only files it wrote itself.  A file is
vadfeat's when the video's sidecar (a JSON object with ``vadfeat_version`` and
``fingerprint``) lists it, or when the video's ownership record
(``OUT/.vadfeat-locks/<key>.owned``, written before any of the video's files is
replaced) names it; anything else at an output path is *foreign*: that video fails
naming the file, with or without ``overwrite``.  Folders are never deleted.

Integrity: the sidecar records the sha256 of each feature file (``files``), what the
source was (``source_identity``: size, mtime, a sha256 of its first and last MiB and
size, and a sha256 of every byte; a frame folder also every frame's name, size and
mtime) and, last, ``sidecar_sha256``, a digest of all its other fields;
:func:`inspect_outputs` checks all three before a video counts as done (an edited
sidecar is redone; the whole source is hashed again only when its size, ends or
mtimes differ from the record).

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
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import tokenize
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeGuard, get_args

import numpy as np

from vadfeat._types import Layout
from vadfeat.errors import ConfigError

log = logging.getLogger(__name__)

# What ``np.load`` raises on a damaged or hostile ``.npy``: besides OSError and
# ValueError, a header may claim any shape (MemoryError) or hold bytes numpy's header
# parser chokes on (SyntaxError, tokenize.TokenError); a cut file gives EOFError.
NPY_ERRORS = (OSError, EOFError, ValueError, MemoryError, SyntaxError, tokenize.TokenError)

LAYOUTS: tuple[str, ...] = get_args(Layout)
MANIFEST = "manifest.jsonl"
_TMP_TAG = ".vadfeat-tmp"
# Bytes hashed at each end of a source for its identity: cheap for multi-GB files
# (2 MiB read per video), and a cut, appended or replaced file changes size or ends.
IDENTITY_BYTES = 1 << 20


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


def _head_tail(path: Path, size: int, h: Any) -> None:
    with open(path, "rb") as f:
        h.update(f.read(IDENTITY_BYTES))
        if size > IDENTITY_BYTES:
            f.seek(max(IDENTITY_BYTES, size - IDENTITY_BYTES))
            h.update(f.read(IDENTITY_BYTES))


def _folder_files(folder: Path) -> list[Path]:
    # Every visible file, a superset of the frames the folder reader uses.
    return sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))


def _name_bytes(path: Path) -> bytes:
    return path.name.encode("utf-8", "surrogateescape")


def content_sha256(path: str | os.PathLike[str], *, chunk: int = 1 << 22) -> str:
    """The sha256 of every byte of a source (hex).

    A file: its bytes.  A frame folder: for each visible file in name order, its name,
    size and bytes, so a renamed, added, removed or rewritten frame changes it.
    Raises OSError.
    """
    p = Path(path)
    if not p.is_dir():
        return sha256_file(p, chunk=chunk)
    h = hashlib.sha256()
    for f in _folder_files(p):
        h.update(_name_bytes(f) + b"\0" + str(f.stat().st_size).encode() + b"\n")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def source_identity(path: str | os.PathLike[str], *, content: bool = False) -> dict[str, Any]:
    """What a source is: ``{"size", "mtime_ns", "sample_sha256"}`` (+ ``"files"`` and
    ``"stat_sha256"`` for a frame folder, + ``"sha256"`` with ``content``).

    ``sample_sha256`` hashes the size and the first and last :data:`IDENTITY_BYTES`
    of the file (a frame folder: every image's name and size, then the first and last
    image's ends).  ``stat_sha256`` (a folder) hashes every file's name, size and
    mtime.  ``sha256`` (:func:`content_sha256`) covers every byte: extraction records
    it, and :func:`same_source` recomputes it whenever the size, sample or modification
    times differ from the record.  Raises OSError.
    """
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256()
    ident: dict[str, Any]
    if p.is_dir():
        files = _folder_files(p)
        stats = hashlib.sha256()
        total, mtime = 0, st.st_mtime_ns
        for f in files:
            fs = f.stat()
            total += fs.st_size
            mtime = max(mtime, fs.st_mtime_ns)
            line = _name_bytes(f) + b"\0" + str(fs.st_size).encode()
            h.update(line + b"\n")
            stats.update(line + b"\0" + str(fs.st_mtime_ns).encode() + b"\n")
        for f in files[:1] + files[-1:]:
            _head_tail(f, f.stat().st_size, h)
        ident = {"size": total, "mtime_ns": mtime, "files": len(files),
                 "sample_sha256": h.hexdigest(), "stat_sha256": stats.hexdigest()}
    else:
        h.update(str(st.st_size).encode() + b"\n")
        _head_tail(p, st.st_size, h)
        ident = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sample_sha256": h.hexdigest()}
    if content:
        ident["sha256"] = content_sha256(p)
    return ident


def _same_stat(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    if "stat_sha256" in current:  # a frame folder: every frame's name, size and mtime
        return recorded.get("stat_sha256") == current["stat_sha256"]
    return recorded.get("mtime_ns") == current["mtime_ns"]


def same_source(recorded: Any, current: Mapping[str, Any], *,
                path: str | os.PathLike[str] | None = None) -> str | None:
    """``None`` when ``current`` (:func:`source_identity` of ``path``) is the source
    ``recorded`` describes, else what differs.

    A record with a whole-content ``sha256`` (and ``path`` given): unchanged size,
    sample and modification times (every frame's, for a folder) mean the same source;
    any other change costs a full hash, so a copied dataset (new mtimes, same bytes)
    still resumes and a rewritten middle does not.  Older records: size and sample
    hash only.  Raises OSError when the full hash cannot be read.
    """
    if not isinstance(recorded, Mapping):
        return "the recorded source identity is malformed"
    if recorded.get("size") != current["size"]:
        return f"source size {recorded.get('size')} -> {current['size']} bytes"
    full = recorded.get("sha256")
    if isinstance(full, str) and path is not None:
        if _same_stat(recorded, current) and recorded.get("sample_sha256") == current["sample_sha256"]:
            return None
        if content_sha256(path) != full:
            return "source content changed (same size, different bytes: its sha256 differs)"
        return None
    if recorded.get("sample_sha256") != current["sample_sha256"]:
        return "source content changed (same size, different bytes)"
    return None


def source_changed(recorded: Any, path: str | os.PathLike[str]) -> str | None:
    """What differs between the source at ``path`` and the identity ``recorded`` for it
    (see :func:`same_source`), or ``None``; a source that cannot be read is ``None``
    (the outputs are all there is).  Never raises."""
    try:
        return same_source(recorded, source_identity(path), path=path)
    except OSError:
        return None


# --------------------------------------------------------------------------- sidecar digest


#: The sidecar field holding the sha256 of the sidecar's other fields (canonical JSON).
SIDECAR_DIGEST = "sidecar_sha256"


# Left out of the digest: the digest itself, and the creation time (so that two runs
# that write the same outputs write the same digest; nothing reads a number from it).
_UNSEALED = (SIDECAR_DIGEST, "created")


def sidecar_digest(meta: Mapping[str, Any]) -> str:
    """The sha256 (hex) of ``meta`` without :data:`SIDECAR_DIGEST` and ``created``, as
    canonical JSON (sorted keys, no spaces, ASCII): what a sidecar says survives a JSON
    round trip unchanged, so any edit of another value changes it."""
    body = {k: v for k, v in meta.items() if k not in _UNSEALED}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal_sidecar(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with a fresh :data:`SIDECAR_DIGEST` (an old one is replaced), last."""
    body = {k: v for k, v in meta.items() if k != SIDECAR_DIGEST}
    return {**body, SIDECAR_DIGEST: sidecar_digest(body)}


def sidecar_edited(meta: Mapping[str, Any]) -> str | None:
    """Why a sidecar's content is not what vadfeat wrote, or ``None``.  Sidecars without a
    digest (written before it existed) are taken as written."""
    value = meta.get(SIDECAR_DIGEST)
    if value is None:
        return None
    if value != sidecar_digest(meta):
        return (f"its content was changed after vadfeat wrote it ({SIDECAR_DIGEST} does not "
                "match), so its numbers are not used")
    return None


def save_json(path: Path, data: Mapping[str, Any]) -> None:
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
            settled = bool(holder) and (owner_host != host or not pid.isdigit() or _alive(int(pid)))
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


# --------------------------------------------------------------------------- per-video output


def split_crops(features: np.ndarray, crops: int) -> list[np.ndarray]:
    """``[T, crops, ...]`` -> ``crops`` arrays ``[T, ...]`` (per-crop layout)."""
    if crops == 1:
        return [features]
    return [np.ascontiguousarray(features[:, k]) for k in range(crops)]


def owned_record_path(out: Path, key: str) -> Path:
    """The ownership record of the video whose claim key is ``key`` (its sidecar, relative)."""
    return out / LOCK_DIR / (hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest() + ".owned")


def read_owned(out: Path, key: str) -> set[Path]:
    """Paths the ownership record of ``key`` names (empty when there is none or it is damaged)."""
    try:
        names = json.loads(owned_record_path(out, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(names, list):
        return set()
    return {out / n for n in names if isinstance(n, str) and not n.startswith("/") and ".." not in n}


def write_owned(out: Path, key: str, paths: Iterable[Path]) -> None:
    names = sorted({str(p.relative_to(out)) for p in paths})
    save_json(owned_record_path(out, key), names)  # type: ignore[arg-type]


def write_outputs(paths: OutputPaths, features: np.ndarray, sidecar: Mapping[str, Any],
                  *, crops: int, out: Path | None = None, stale: Iterable[Path] = ()) -> None:
    """Replace a video's set of files as one unit: feature file(s) first, sidecar last.

    ``stale``: files of the video's previous set (another layout or crop count,
    vadfeat's own, see :func:`inspect_outputs`) that the new set does not overwrite;
    they are deleted before the new files appear, so no file of the old set survives
    beside the new one.  With ``out`` the ownership record is written first (it names
    the old and the new set, so that files left by a kill at any point are known as
    vadfeat's), then narrowed to the new set.

    An existing sidecar goes first: interrupted between the renames, an old sidecar
    would describe the new features and resume would trust it.  On an error (disk
    full) the feature files just written go too, so nothing is left half-done.  The
    sidecar gains ``files``: the sha256 of each feature file, by file name.
    """
    arrays = split_crops(features, crops) if len(paths.features) > 1 else [features]
    stale = [p for p in stale if p not in paths.all()]
    key = str(paths.sidecar.relative_to(out)) if out is not None else None
    if out is not None and key is not None:
        write_owned(out, key, [*paths.all(), *stale, *read_owned(out, key)])
    with contextlib.suppress(FileNotFoundError):
        paths.sidecar.unlink()
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    try:
        hashes = {}
        for path, array in zip(paths.features, arrays, strict=True):
            hashes[path.name] = save_npy(path, np.asarray(array, dtype=np.float32))
        save_json(paths.sidecar, seal_sidecar({**sidecar, "files": hashes}))
    except BaseException:
        for path in paths.features:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    if out is not None and key is not None:
        with contextlib.suppress(OSError):  # the wider record is still right
            write_owned(out, key, paths.all())


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar's JSON object; ``None`` when missing, unreadable, or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def is_vadfeat_sidecar(meta: Any) -> bool:
    """A JSON object vadfeat wrote (every release writes these two keys)."""
    fp = meta.get("fingerprint") if isinstance(meta, dict) else None
    return (isinstance(meta, dict) and isinstance(meta.get("vadfeat_version"), str)
            and isinstance(fp, dict) and isinstance(fp.get("preset"), dict) and "model" in fp)


def sidecar_files(sidecar: Path, meta: Mapping[str, Any]) -> list[Path]:
    """The feature files a vadfeat sidecar describes (sidecars before ``files`` existed
    say it through their layout and crop count)."""
    files = meta.get("files")
    if isinstance(files, dict):
        return [sidecar.with_name(n) for n in files if isinstance(n, str) and "/" not in n]
    layout = meta.get("layout")
    if layout == "fed-wsvad":
        return [sidecar.with_name("feature.npy")]
    base = sidecar.name[: -len(".json")] if sidecar.name.endswith(".json") else sidecar.stem
    if layout == "per-crop":
        preset = meta["fingerprint"].get("preset")
        crops = preset.get("crops") if isinstance(preset, dict) else None
        if isinstance(crops, int) and 0 < crops <= 64:
            return [sidecar.with_name(f"{base}__{k}.npy") for k in range(crops)]
        return []
    return [sidecar.with_name(base + ".npy")]


@dataclass(frozen=True)
class OutputState:
    """What is at a video's output paths, as :func:`inspect_outputs` found it.

    ``status``: ``absent`` (nothing), ``done`` (complete, this run's settings, files
    and source verified), ``redo`` (vadfeat's but stale or damaged: ``reason`` says
    why), ``changed`` (complete, but made with other settings: ``previous`` holds the
    other fingerprint) or ``foreign`` (a file vadfeat did not write is in the way:
    ``reason`` names it).  ``stale``: vadfeat's files of the existing set that a new
    write must delete.
    """

    status: Literal["absent", "done", "redo", "changed", "foreign"]
    reason: str = ""
    previous: dict[str, Any] | None = None
    stale: tuple[Path, ...] = ()


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _shape_ok(shape: Any) -> TypeGuard[list[int]]:
    return (isinstance(shape, list) and len(shape) >= 1
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape))


def inspect_outputs(paths: OutputPaths, fingerprint: Mapping[str, Any] | None, *,
                    out: Path | None = None, source: Path | None = None,
                    verify: bool = True) -> OutputState:
    """Classify what is at ``paths`` for a run with ``fingerprint``; never raises on bad files.

    ``out`` (the output folder) lets the video's ownership record count: files it
    names are vadfeat's even without a sidecar (a run killed between renames).
    ``source``: compare with the identity the sidecar recorded.  ``verify``: check
    each feature file's sha256 against the sidecar (sidecars without ``files``, from
    releases before it, are checked by shape only).  ``fingerprint=None`` stops after
    the ownership checks (``changed`` is then reported for any complete set).
    """
    key = str(paths.sidecar.relative_to(out)) if out is not None else None
    cache: list[set[Path]] = []

    def owned() -> set[Path]:  # read only when needed: most videos have a good sidecar
        if not cache:
            cache.append(read_owned(out, key) if out is not None and key is not None else set())
        return cache[0]

    side = paths.sidecar
    meta: dict[str, Any] | None = None
    damaged = ""
    if _exists(side):
        if side.is_symlink() or not side.is_file():
            what = "a folder" if side.is_dir() else "not a regular file"
            return OutputState("foreign", f"{side} is {what}, not a vadfeat sidecar; move it away "
                                          "(vadfeat never replaces what it did not write)")
        raw = read_sidecar(side)
        if is_vadfeat_sidecar(raw):
            meta = raw
        elif side in owned():
            damaged = f"its sidecar {side.name} is unreadable or not a vadfeat sidecar"
        else:
            return OutputState("foreign", f"{side} exists and was not written by vadfeat; move it "
                                          "away or choose another output folder (-o)")
    old: set[Path] = set()
    if meta is not None:
        old.update(p for p in sidecar_files(side, meta) if _exists(p))
    if meta is None or any(_exists(f) and f not in old for f in paths.features):
        old.update(p for p in owned() if _exists(p))
    for f in paths.features:
        if _exists(f) and f not in old:
            return OutputState("foreign", f"{f} exists and was not written by vadfeat; move it "
                                          "away or choose another output folder (-o)")
        if _exists(f) and (f.is_symlink() or not f.is_file()):
            return OutputState("foreign", f"{f} is not a regular file; move it away")
    stale = tuple(sorted(p for p in old if p not in paths.all() and p.is_file()))
    if meta is None:
        if damaged:
            return OutputState("redo", damaged, stale=stale)
        if any(_exists(f) for f in paths.features) or stale:
            return OutputState("redo", "outputs of an interrupted write (no sidecar)", stale=stale)
        return OutputState("absent")
    fp = meta["fingerprint"]
    edited = sidecar_edited(meta)
    if edited is not None:
        return OutputState("redo", f"its sidecar {side.name}: {edited}", previous=fp, stale=stale)
    if fingerprint is None or not same_fingerprint(fp, fingerprint):
        return OutputState("changed", previous=fp, stale=stale)
    problem = _verify(paths, meta, verify=verify)
    if problem is None and source is not None and isinstance(meta.get("source_identity"), dict):
        problem = source_changed(meta["source_identity"], source)
    if problem is not None:
        return OutputState("redo", problem, previous=fp, stale=stale)
    return OutputState("done", previous=fp)


def _verify(paths: OutputPaths, meta: Mapping[str, Any], *, verify: bool) -> str | None:
    """Why a sidecar with the right settings does not describe complete outputs, or None."""
    shape = meta.get("shape")
    if not _shape_ok(shape) or (len(paths.features) > 1 and len(shape) < 2):
        return f"its sidecar's shape is malformed ({shape!r})"
    files = meta.get("files")
    if files is not None and not isinstance(files, dict):
        return "its sidecar's file list is malformed"
    expect = shape if len(paths.features) == 1 else [shape[0], *shape[2:]]
    for path in paths.features:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except NPY_ERRORS:  # missing, damaged or torn file: redo
            return f"{path.name} is missing or unreadable"
        if list(arr.shape) != list(expect):
            return f"{path.name} has shape {list(arr.shape)}, its sidecar says {expect}"
        if verify and files is not None:
            want = files.get(path.name)
            try:
                got = sha256_file(path)
            except OSError as exc:
                return f"{path.name} is unreadable ({exc})"
            if want != got:
                return f"{path.name} does not match the sha256 its sidecar recorded"
    return None


# Fingerprint keys added after the first release, with the value every earlier output
# was made with; a missing key equals its default, so old outputs still resume.
FINGERPRINT_DEFAULTS: dict[str, Any] = {"quantize": None, "preprocess": "worker",
                                        "folder_fps": 30.0, "num_heads": None, "decoder": "pyav"}


# Preset fields added after the first release, with the value earlier outputs were made with.
PRESET_DEFAULTS: dict[str, Any] = {"frame_reduce": "mean"}


def _normalised(fp: Mapping[str, Any]) -> dict[str, Any]:
    d = {**FINGERPRINT_DEFAULTS, **fp}
    if isinstance(d.get("preset"), Mapping):
        d["preset"] = {**PRESET_DEFAULTS, **d["preset"]}
    if isinstance(d.get("model"), str):
        from vadfeat.backbones._registry import canonical_model_name

        d["model"] = canonical_model_name(d["model"])
    return d


def same_fingerprint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return _normalised(a) == _normalised(b)


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``["crops: 1 -> 3", ...]``: what differs, preset fields by their own names."""
    def flat(fp: Mapping[str, Any]) -> dict[str, Any]:
        d = _normalised(fp)
        preset = d.pop("preset", None)
        if isinstance(preset, dict):
            for k, v in preset.items():
                d.setdefault(k, v)
        return d

    a, b = flat(old), flat(new)
    return [f"{k}: {_show(a.get(k))} -> {_show(b.get(k))}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _show(v: Any) -> str:
    if isinstance(v, str) and len(v) > 16 and all(c in "0123456789abcdef" for c in v):
        return v[:12] + "..."  # a checkpoint hash
    return json.dumps(v) if not isinstance(v, str) else v


def is_done(paths: OutputPaths, fingerprint: Mapping[str, Any]) -> bool:
    """True when every output exists and the sidecar was made with the same settings."""
    return inspect_outputs(paths, fingerprint).status == "done"


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
