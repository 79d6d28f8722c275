"""What a source (a video file or a frame folder) was, so that a changed source is redone.

The sidecar records ``source_identity``: size, mtime, a sha256 of its first and last
MiB and size, and a sha256 of every byte (a frame folder: also every frame's name,
size and mtime).  :func:`same_source` compares a record with the source as it is now;
the whole source is hashed again only when its size, ends or mtimes differ from the
record, so a copied dataset (new mtimes, same bytes) still resumes.

A source named by URL (``s3://bucket/x.mp4``, :mod:`vadfeat.io.remote`) is described by
what the object store says of it and its ends: ``{"url", "size", "etag", "mtime",
"sample_sha256"}`` (+ ``"version"`` in a versioned bucket), from one ``HEAD`` and two
ranged reads of :data:`IDENTITY_BYTES`.  The ETag stands for the whole content (it
changes whenever the object is written again with other bytes), so no full hash is
made: decoding streams the object once.  An object whose size or ETag differs from the
record is changed; without an ETag on either side, the size and ends decide, as for an
old record.  A local file's record against the same bytes uploaded (or the reverse)
compares size and ends, then the full hash when the record has one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vadfeat.errors import ConfigError
from vadfeat.io.remote import is_url, iter_chunks, local_path, object_info, read_bytes
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
    size and bytes, so a renamed, added, removed or rewritten frame changes it.  A URL:
    the object's bytes, streamed.  Raises OSError.
    """
    if is_url(path):
        assert isinstance(path, str)
        h = hashlib.sha256()
        for block in iter_chunks(path, chunk):
            h.update(block)
        return h.hexdigest()
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
    times differ from the record.

    A URL: ``{"url", "size", "etag", "mtime", "sample_sha256"}`` (+ ``"version"``), see
    the module docstring; ``content`` is ignored (the ETag stands for the content).

    Raises:
        OSError: the source cannot be read (FileNotFoundError: a missing file, object or
            bucket, naming it).
        ConfigError: a URL whose library (s3fs, gcsfs) is not installed.
    """
    if is_url(path):
        assert isinstance(path, str)
        local = local_path(path)
        if local is None:
            return _url_identity(path)
        path = local
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


def _url_identity(url: str) -> dict[str, Any]:
    info = object_info(url)
    h = hashlib.sha256()
    h.update(str(info.size).encode() + b"\n")
    h.update(read_bytes(url, 0, min(info.size, IDENTITY_BYTES)) if info.size else b"")
    if info.size > IDENTITY_BYTES:
        h.update(read_bytes(url, max(IDENTITY_BYTES, info.size - IDENTITY_BYTES), info.size))
    ident: dict[str, Any] = {"url": url, "size": info.size, "etag": info.etag,
                             "mtime": info.mtime, "sample_sha256": h.hexdigest()}
    if info.version is not None:
        ident["version"] = info.version
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
    if "url" in current or "url" in recorded:
        # An object named by URL on at least one side: its ETag stands for its content.
        old_etag, new_etag = recorded.get("etag"), current.get("etag")
        if old_etag and new_etag:
            if old_etag != new_etag:
                return (f"source object changed (ETag {old_etag} -> {new_etag}"
                        f"{', modified ' + str(current['mtime']) if current.get('mtime') else ''})")
            return None
        if recorded.get("sample_sha256") != current.get("sample_sha256"):
            return "source content changed (same size, different bytes)"
        full = recorded.get("sha256")
        if isinstance(full, str) and path is not None and content_sha256(path) != full:
            return "source content changed (same size, different bytes: its sha256 differs)"
        return None
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
    except (OSError, ConfigError):
        return None


__all__ = ["IDENTITY_BYTES", "content_sha256", "same_source", "source_changed", "source_identity"]
