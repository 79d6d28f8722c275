"""What a source (a video file or a frame folder) was, so that a changed source is redone.

The sidecar records ``source_identity``: size, mtime, a sha256 of its first and last
MiB and size, and a sha256 of every byte (a frame folder: also every frame's name,
size and mtime).  :func:`same_source` compares a record with the source as it is now;
the whole source is hashed again only when its size, ends or mtimes differ from the
record, so a copied dataset (new mtimes, same bytes) still resumes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vadfeat.store.atomic import sha256_file

# Bytes hashed at each end of a source for its identity: cheap for multi-GB files
# (2 MiB read per video), and a cut, appended or replaced file changes size or ends.
IDENTITY_BYTES = 1 << 20


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


__all__ = ["IDENTITY_BYTES", "content_sha256", "same_source", "source_changed", "source_identity"]
