"""Sharded outputs: many videos' features in one file, a WebDataset tar or a Parquet file.

The format both the sharded sinks (``vadfeat.store.sinks.webdataset``,
``vadfeat.store.sinks.parquet``) and the readers use.  An output folder ``OUT`` holds:

* shards ``OUT/shard-<writer>-<seq>.tar`` or ``.parquet`` (:func:`shard_name`): ``<writer>``
  (:func:`new_writer_id`) is ``<UTC %Y%m%dT%H%M%SZ>-<6 hex>``, fixed for one opened sink,
  ``<seq>`` five digits, one per shard that writer commits; names sort by the time their
  writer opened, and two writers never share one;
* one index per committed shard, ``OUT/.vadfeat-index/<shard file name>.json``
  (:data:`INDEX_DIR`), sealed like a sidecar: ``{"format": "vadfeat-shard-index",
  "version": 1, "sink", "shard", "size", "sha256", "mtime_ns", "videos": {stem: {"member",
  "shape", "features_sha256", "sidecar"}}, "sidecar_sha256"}``.  The index is a cache, the
  shard is the truth: :func:`load_indexes` rebuilds a missing or stale one from the shard.

A video in a shard: its features ``[T, ...]`` float32 stored as exactly the bytes
``np.save`` writes of the contiguous array (so ``.npy`` and shards hold byte-identical
features), and its sealed sidecar, whose ``files`` field is replaced by
``features_sha256`` (of those bytes), ``sink``, ``shard`` (the shard's file name) and
``stem`` (the video's output stem, ``a/b/clip`` for ``a/b/clip.mp4``).

* WebDataset (`webdataset <https://github.com/webdataset/webdataset>`_): a POSIX tar written
  by ``webdataset.TarWriter``, one sample per video, ``<member>.npy`` + ``<member>.json``;
  ``<member>`` is the stem with ``%``, ``.`` and a leading ``_`` of each path part
  percent-encoded (:func:`member_name`), because webdataset splits a member's name at the
  first dot after the last ``/`` and skips names that look like its ``__meta__`` entries.
  ``webdataset.WebDataset(path).decode()`` yields ``sample["npy"]`` / ``sample["json"]``.
* Parquet: written by ``pyarrow.parquet.ParquetWriter``, one row group per video, one row
  per video; columns :data:`PARQUET_COLUMNS` (``features`` is ``large_list<fixed_size_list
  <float32>[W]>``, ``W`` the product of ``shape[1:]``, restored with ``shape``).  Its member
  is the stem.  Readable by ``pyarrow.parquet.read_table``, pandas, Polars and Ray Data.

A reader takes a video's true stem from its sidecar's ``stem``, never by decoding a member
name.  A ``shard-*`` file whose members are not vadfeat's sealed sidecars naming that shard
is foreign: never read as output, renamed or deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np

from vadfeat._types import ShardSink
from vadfeat.errors import ShardReadError
from vadfeat.store.atomic import NPY_ERRORS, save_json, sha256_file
from vadfeat.store.sidecar import (
    SIDECAR_DIGEST,
    is_vadfeat_sidecar,
    read_sidecar,
    seal_sidecar,
    sidecar_edited,
)

log = logging.getLogger(__name__)


#: The file suffix of each sharded sink's shards.
SHARD_SUFFIXES: dict[str, str] = {"webdataset": ".tar", "parquet": ".parquet"}

#: The folder below ``OUT`` holding one index per committed shard.
INDEX_DIR = ".vadfeat-index"

#: The index's ``format`` value and version.
INDEX_FORMAT = "vadfeat-shard-index"
INDEX_VERSION = 1

_SHARD_RE = re.compile(r"^shard-(\d{8}T\d{6}Z-[0-9a-f]{6})-(\d{5})(\.tar|\.parquet)$")

#: The columns of a Parquet shard, in order.
PARQUET_COLUMNS = ("stem", "video", "features", "shape", "features_sha256", "num_frames", "fps",
                   "num_snippets", "model", "preset", "modality", "vadfeat_version", "sidecar")


# --- names ------------------------------------------------------------------------------------


def new_writer_id(now: datetime | None = None, *, after: Iterable[str] = ()) -> str:
    """A fresh writer id, ``<UTC %Y%m%dT%H%M%SZ>-<6 hex>``: one per opened sink.

    ``after``: the writer ids already in the folder; the new id sorts after every one of
    them (a writer opened in the same second, or a host whose clock is behind, would
    otherwise get a name that sorts first, and its newer copies would lose to older ones)."""
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    wid = f"{stamp.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
    last = max(after, default="")
    if wid > last:
        return wid
    last_stamp, _, last_hex = last.partition("-")
    bumped = int(last_hex, 16) + 1 + secrets.randbelow(256) if re.fullmatch(r"[0-9a-f]{6}", last_hex) else 0
    if not 0 < bumped <= 0xFFFFFF:  # no room left in that second: the next one
        then = datetime.strptime(last_stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        return new_writer_id(then + timedelta(seconds=1), after=())
    return f"{last_stamp}-{bumped:06x}"


def writer_ids(out: str | os.PathLike[str]) -> list[str]:
    """The writer ids of the shard files directly in ``out`` (either sink), sorted."""
    ids = set()
    for path in shard_files(out):
        parsed = parse_shard_name(path.name)
        if parsed is not None:
            ids.add(parsed.writer)
    return sorted(ids)


def shard_name(writer: str, seq: int, sink: str) -> str:
    """``shard-<writer>-<seq:05d><suffix>`` for ``sink`` (``webdataset``: ``.tar``,
    ``parquet``: ``.parquet``).  Raises ValueError for a bad writer id, sequence or sink."""
    if sink not in SHARD_SUFFIXES:
        raise ValueError(f"unknown sharded sink {sink!r}; choose one of {', '.join(SHARD_SUFFIXES)}")
    name = f"shard-{writer}-{seq:05d}{SHARD_SUFFIXES[sink]}"
    if not 0 <= seq <= 99999 or parse_shard_name(name) is None:
        raise ValueError(f"not a shard name: {name!r}")
    return name


@dataclass(frozen=True)
class ShardName:
    """The parts of a shard's file name."""

    writer: str
    seq: int
    sink: ShardSink


def parse_shard_name(name: str) -> ShardName | None:
    """The writer, sequence number and sink of a shard file name; None for any other name."""
    m = _SHARD_RE.match(name)
    if m is None:
        return None
    sink: ShardSink = "webdataset" if m.group(3) == ".tar" else "parquet"
    return ShardName(m.group(1), int(m.group(2)), sink)


def shard_sink(path: str | os.PathLike[str]) -> ShardSink | None:
    """Which sink wrote a file named like a shard (by its name alone), or None."""
    parsed = parse_shard_name(Path(path).name)
    return parsed.sink if parsed is not None else None


def member_name(stem: str | PurePosixPath) -> str:
    """The tar member key of the video whose output stem is ``stem``: ``%`` -> ``%25``, ``.``
    -> ``%2E``, and a ``_`` that starts a path part -> ``%5F`` (webdataset splits a name at
    its first dot after the last ``/`` and skips ``__x__`` parts as metadata); ``/`` stays."""
    parts = []
    for part in PurePosixPath(stem).as_posix().split("/"):
        part = part.replace("%", "%25").replace(".", "%2E")
        if part.startswith("_"):
            part = "%5F" + part[1:]
        parts.append(part)
    return "/".join(parts)


def index_path(out: str | os.PathLike[str], shard: str) -> Path:
    """Where the index of the shard named ``shard`` (a file name) is kept."""
    return Path(out) / INDEX_DIR / f"{shard}.json"


# --- one video ----------------------------------------------------------------------------------


def npy_bytes(features: np.ndarray) -> bytes:
    """What ``np.save`` writes for ``features`` as a contiguous float32 array."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(features, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def shard_sidecar(metadata: Mapping[str, Any], *, sink: str, shard: str, stem: str,
                  features_sha256: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """The sealed sidecar of a video in a shard: ``metadata`` (as the engines make it)
    without ``files``, with ``layout`` flat, ``shape``, ``features_sha256``, ``sink``,
    ``shard`` and ``stem``."""
    body = {k: v for k, v in metadata.items() if k not in ("files", SIDECAR_DIGEST)}
    body.update(shape=list(shape), layout="flat", features_sha256=features_sha256, sink=sink,
                shard=shard, stem=stem)
    return seal_sidecar(body)


@dataclass(frozen=True)
class ShardRecord:
    """One video read from a shard: ``features`` ``[T, ...]`` float32 as written,
    ``sidecar`` (sealed), ``features_sha256`` of the features' ``np.save`` bytes as read
    (compare with ``sidecar["features_sha256"]``: :attr:`intact`)."""

    stem: str
    member: str
    features: np.ndarray
    sidecar: dict[str, Any]
    features_sha256: str

    @property
    def intact(self) -> bool:
        """The features read are the ones the sidecar describes."""
        return self.sidecar.get("features_sha256") == self.features_sha256


def _entry(member: str, shape: tuple[int, ...], features_sha256: str,
           sidecar: dict[str, Any]) -> dict[str, Any]:
    return {"member": member, "shape": list(shape), "features_sha256": features_sha256, "sidecar": sidecar}


# --- writing ------------------------------------------------------------------------------------


class _HashingFile:
    """A write-only file that hashes and counts what goes through it (so a shard's sha256
    needs no second read)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.size = 0
        self.closed = False
        self.discard = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.discard:  # an aborted shard: a library flushing on garbage collection writes nothing
            return len(view)
        self.sha.update(view)
        self.size += len(view)
        self._f.write(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:  # the owner closes the real file
        self.closed = True


class ShardWriter:
    """Writes videos into one shard at ``path`` (a local temporary), to be committed under
    the file name ``shard``; :meth:`add` per video, :meth:`close` once (flushed and
    fsynced), then :meth:`index` is the shard's index.  Raises OSError."""

    sink: ShardSink

    def __init__(self, path: str | os.PathLike[str], shard: str) -> None:
        self.path = Path(path)
        self.shard = shard
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._hash = _HashingFile(self._file)
        self.videos: dict[str, dict[str, Any]] = {}
        self.payload = 0
        self._closed = False

    @property
    def count(self) -> int:
        """Videos added."""
        return len(self.videos)

    @property
    def nbytes(self) -> int:
        """Bytes of the videos added so far (features as ``.npy`` and sidecars as JSON): the
        shard's size less the format's own overhead (the libraries buffer what they write)."""
        return self.payload

    def add(self, stem: str | PurePosixPath, features: np.ndarray, sidecar: Mapping[str, Any]) -> str:
        """Add one video: ``features`` ``[T, ...]`` (stored float32), ``sidecar`` (the engines'
        metadata, sealed here by :func:`shard_sidecar`).  Returns its member name.  Raises
        ValueError for a stem already in this shard, OSError."""
        key = PurePosixPath(stem).as_posix()
        if key in self.videos:
            raise ValueError(f"{key} is already in shard {self.shard}")
        array = np.ascontiguousarray(features, dtype=np.float32)
        data = npy_bytes(array)
        digest = hashlib.sha256(data).hexdigest()
        side = shard_sidecar(sidecar, sink=self.sink, shard=self.shard, stem=key,
                             features_sha256=digest, shape=array.shape)
        member = self._add(key, array, data, side)
        self.payload += len(data) + len(json.dumps(side, ensure_ascii=False).encode("utf-8"))
        self.videos[key] = _entry(member, array.shape, digest, side)
        return member

    def _add(self, stem: str, array: np.ndarray, data: bytes, sidecar: dict[str, Any]) -> str:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file, flush and fsync it.  Raises OSError."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finish()
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()

    def abort(self) -> None:
        """Close without finishing and delete the file (nothing of it is kept)."""
        self._closed = True
        self._hash.discard = True
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def index(self, *, mtime_ns: int | None = None) -> dict[str, Any]:
        """The sealed index of the closed shard; ``mtime_ns``: the committed file's (its
        ``stat().st_mtime_ns``, so a later catalog trusts it without hashing)."""
        if not self._closed:
            raise ValueError("the shard is still open")
        return make_index(self.sink, self.shard, size=self._hash.size, sha256=self._hash.sha.hexdigest(),
                          mtime_ns=mtime_ns, videos=self.videos)


class TarShardWriter(ShardWriter):
    """A WebDataset tar shard, through ``webdataset.TarWriter`` (PAX format, so long and
    non-ASCII member names survive)."""

    sink: ShardSink = "webdataset"

    def __init__(self, path: str | os.PathLike[str], shard: str) -> None:
        super().__init__(path, shard)
        import webdataset

        try:
            self._tar = webdataset.TarWriter(self._hash, encoder=False, format="PAX_FORMAT", mtime=0.0)
        except BaseException:
            self.abort()
            raise

    def _add(self, stem: str, array: np.ndarray, data: bytes, sidecar: dict[str, Any]) -> str:
        member = member_name(stem)
        text = json.dumps(sidecar, ensure_ascii=False).encode("utf-8")
        self._tar.write({"__key__": member, "npy": data, "json": text})
        return member

    def _finish(self) -> None:
        self._tar.close()


def _parquet_schema(width: int) -> Any:
    import pyarrow as pa

    return pa.schema([
        pa.field("stem", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),
        pa.field("features", pa.large_list(pa.list_(pa.float32(), width)), nullable=False),
        pa.field("shape", pa.list_(pa.int64())),
        pa.field("features_sha256", pa.string()),
        pa.field("num_frames", pa.int64()),
        pa.field("fps", pa.float64()),
        pa.field("num_snippets", pa.int64()),
        pa.field("model", pa.string()),
        pa.field("preset", pa.string()),
        pa.field("modality", pa.string()),
        pa.field("vadfeat_version", pa.string()),
        pa.field("sidecar", pa.string()),
    ])


def _opt(value: Any, kind: type) -> Any:
    if kind is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return value if isinstance(value, str) else None


def feature_width(shape: tuple[int, ...] | list[int]) -> int:
    """``W`` of a Parquet shard's ``features`` column: the product of ``shape[1:]``."""
    return int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1


class ParquetShardWriter(ShardWriter):
    """A Parquet shard, through ``pyarrow.parquet.ParquetWriter``: one row group per video.
    Every video of one shard has the same row width ``W`` (:meth:`accepts`)."""

    sink: ShardSink = "parquet"

    def __init__(self, path: str | os.PathLike[str], shard: str) -> None:
        super().__init__(path, shard)
        self._writer: Any = None
        self.width: int | None = None

    def accepts(self, features: np.ndarray) -> bool:
        """Whether a video of this shape fits the shard's schema (the first video sets ``W``)."""
        return self.width is None or feature_width(features.shape) == self.width

    def _add(self, stem: str, array: np.ndarray, data: bytes, sidecar: dict[str, Any]) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        width = feature_width(array.shape)
        if self.width is None:
            self.width = width
            # float features barely compress and snappy halves the read speed: stored plain
            codecs = {c: "none" if c == "features" else "snappy" for c in PARQUET_COLUMNS}
            self._writer = pq.ParquetWriter(self._hash, _parquet_schema(width), compression=codecs,
                                            use_dictionary=False, write_statistics=["stem"])
        elif width != self.width:
            raise ValueError(f"{stem}: rows of {width} values do not fit shard {self.shard} "
                             f"(rows of {self.width})")
        rows = array.shape[0] if array.ndim else 0
        values = pa.array(array.reshape(-1), type=pa.float32())
        fixed = pa.FixedSizeListArray.from_arrays(values, width)
        feats = pa.LargeListArray.from_arrays(pa.array([0, rows], type=pa.int64()), fixed)
        model = sidecar.get("model")
        snippets = sidecar.get("snippets")
        row = {
            "stem": [stem], "video": [str(sidecar.get("video", stem))], "features": feats,
            "shape": [list(array.shape)], "features_sha256": [sidecar["features_sha256"]],
            "num_frames": [_opt(sidecar.get("num_frames"), int)], "fps": [_opt(sidecar.get("fps"), float)],
            "num_snippets": [len(snippets) if isinstance(snippets, list) else rows],
            "model": [model.get("name") if isinstance(model, dict) else _opt(model, str)],
            "preset": [_opt(sidecar.get("preset"), str)], "modality": [_opt(sidecar.get("modality"), str)],
            "vadfeat_version": [_opt(sidecar.get("vadfeat_version"), str)],
            "sidecar": [json.dumps(sidecar, ensure_ascii=False)],
        }
        table = pa.Table.from_pydict(row, schema=self._writer.schema)
        self._writer.write_table(table, row_group_size=1)
        return stem

    def _finish(self) -> None:
        if self._writer is None:  # an empty shard still gets a schema
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self._hash, _parquet_schema(1))
        self._writer.close()


def open_shard_writer(sink: str, path: str | os.PathLike[str], shard: str) -> ShardWriter:
    """A :class:`TarShardWriter` (``webdataset``) or :class:`ParquetShardWriter` (``parquet``)
    writing to ``path``.  Raises ValueError for another sink, OSError."""
    if sink == "webdataset":
        return TarShardWriter(path, shard)
    if sink == "parquet":
        return ParquetShardWriter(path, shard)
    raise ValueError(f"unknown sharded sink {sink!r}; choose one of {', '.join(SHARD_SUFFIXES)}")


# --- reading ------------------------------------------------------------------------------------


def _check_sidecar(side: Any, *, sink: str, shard: str, where: str) -> dict[str, Any]:
    if not is_vadfeat_sidecar(side) or SIDECAR_DIGEST not in side:
        raise ShardReadError(f"{where}: not a vadfeat shard (a member without a vadfeat sidecar)",
                             foreign=True)
    if sidecar_edited(side) is not None:
        raise ShardReadError(f"{where}: a sidecar was changed after vadfeat wrote it", foreign=True)
    if side.get("sink") != sink or side.get("shard") != shard or not isinstance(side.get("stem"), str):
        raise ShardReadError(f"{where}: its sidecars name another shard ({side.get('shard')!r}, "
                             f"sink {side.get('sink')!r})", foreign=True)
    return dict(side)


def _load_npy(data: bytes, where: str) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except NPY_ERRORS as exc:
        raise ShardReadError(f"{where}: unreadable features ({exc})") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype != np.float32:
        raise ShardReadError(f"{where}: features are not a float32 array")
    return arr


def _tar_samples(path: Path, select: str | None = None) -> Iterator[dict[str, Any]]:
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    def files(f: BinaryIO) -> Iterator[dict[str, Any]]:
        wanted = None if select is None else (select + ".npy", select + ".json")
        for item in tar_file_iterator(f, select_files=None if wanted is None else wanted.__contains__):
            item["__url__"] = str(path)
            yield item

    try:
        with open(path, "rb") as f:
            yield from group_by_keys(files(f))
    except ShardReadError:
        raise
    except OSError as exc:
        raise ShardReadError(f"{path}: cannot read ({exc})") from exc
    except Exception as exc:  # tarfile.TarError, EOFError, ValueError from a cut or damaged tar
        raise ShardReadError(f"{path}: damaged or not a tar shard ({type(exc).__name__}: {exc})") from exc


def _tar_record(path: Path, sample: dict[str, Any]) -> ShardRecord:
    member = sample["__key__"]
    where = f"{path}:{member}"
    extra = sorted(k for k in sample if not k.startswith("__") and k not in ("npy", "json"))
    if extra or "npy" not in sample or "json" not in sample:
        raise ShardReadError(f"{where}: not a vadfeat shard (members {extra or sorted(sample)})",
                             foreign=True)
    try:
        side = json.loads(sample["json"].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ShardReadError(f"{where}: unreadable sidecar ({exc})", foreign=True) from exc
    side = _check_sidecar(side, sink="webdataset", shard=path.name, where=where)
    if member_name(side["stem"]) != member:
        raise ShardReadError(f"{where}: member name does not match its stem {side['stem']!r}", foreign=True)
    data = sample["npy"]
    return ShardRecord(side["stem"], member, _load_npy(data, where), side, hashlib.sha256(data).hexdigest())


def _parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except OSError as exc:
        raise ShardReadError(f"{path}: cannot read ({exc})") from exc
    except (pa.ArrowException, ValueError) as exc:
        raise ShardReadError(f"{path}: damaged or not a Parquet shard ({exc})") from exc
    names = pf.schema_arrow.names
    if tuple(names) != PARQUET_COLUMNS:
        raise ShardReadError(f"{path}: not a vadfeat shard (columns {names})", foreign=True)
    return pf


def _parquet_record(path: Path, pf: Any, group: int) -> ShardRecord:
    import pyarrow as pa

    where = f"{path}: row group {group}"
    try:
        table = pf.read_row_group(group)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ShardReadError(f"{where}: damaged ({exc})") from exc
    if table.num_rows != 1:
        raise ShardReadError(f"{where}: not a vadfeat shard ({table.num_rows} rows in a row group)",
                             foreign=True)
    try:
        side = json.loads(table.column("sidecar")[0].as_py())
    except (TypeError, ValueError, RecursionError) as exc:
        raise ShardReadError(f"{where}: unreadable sidecar ({exc})", foreign=True) from exc
    side = _check_sidecar(side, sink="parquet", shard=path.name, where=where)
    stem = table.column("stem")[0].as_py()
    if stem != side["stem"]:
        raise ShardReadError(f"{where}: stem {stem!r} does not match its sidecar", foreign=True)
    shape = table.column("shape")[0].as_py()
    if not isinstance(shape, list) or not shape or any(not isinstance(n, int) or n < 0 for n in shape):
        raise ShardReadError(f"{where}: malformed shape {shape!r}")
    try:
        flat = table.column("features").combine_chunks().flatten().flatten()  # [T][W] -> T*W floats
        features = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(shape)
    except (ValueError, pa.ArrowException) as exc:
        raise ShardReadError(f"{where}: features do not fit shape {shape} ({exc})") from exc
    digest = hashlib.sha256(npy_bytes(features)).hexdigest()
    return ShardRecord(stem, stem, features, side, digest)


def iter_shard(path: str | os.PathLike[str]) -> Iterator[ShardRecord]:
    """Every video of the shard at ``path``, in the order written.

    Features ``[T, ...]`` float32 as written; each record's :attr:`ShardRecord.intact` says
    whether they match its sidecar.  Raises :class:`~vadfeat.errors.ShardReadError`
    (``foreign=True``: the file is not vadfeat's shard; else damaged or unreadable) naming
    the file, for a file whose name is not a shard name too."""
    p = Path(path)
    sink = shard_sink(p)
    if sink is None:
        raise ShardReadError(f"{p}: not a shard name (shard-<writer>-<seq>.tar or .parquet)", foreign=True)
    if sink == "webdataset":
        for sample in _tar_samples(p):
            yield _tar_record(p, sample)
        return
    pf = _parquet_file(p)
    for group in range(pf.num_row_groups):
        yield _parquet_record(p, pf, group)


def read_video(shard: str | os.PathLike[str], member: str) -> ShardRecord:
    """The video stored as ``member`` in the shard at ``shard`` (Parquet: its row group
    alone; tar: streamed up to it).  Raises :class:`~vadfeat.errors.ShardReadError` when the
    shard is damaged, not vadfeat's, or has no such member."""
    p = Path(shard)
    sink = shard_sink(p)
    if sink == "webdataset":
        for sample in _tar_samples(p, select=member):
            if sample["__key__"] == member:
                return _tar_record(p, sample)
    elif sink == "parquet":
        import pyarrow as pa

        pf = _parquet_file(p)
        try:
            stems = pf.read(columns=["stem"]).column("stem").to_pylist()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ShardReadError(f"{p}: damaged ({exc})") from exc
        if member in stems:
            return _parquet_record(p, pf, stems.index(member))
    else:
        raise ShardReadError(f"{p}: not a shard name (shard-<writer>-<seq>.tar or .parquet)", foreign=True)
    raise ShardReadError(f"{p}: no video {member!r} in this shard")


# --- indexes ------------------------------------------------------------------------------------


def make_index(sink: str, shard: str, *, size: int, sha256: str, mtime_ns: int | None,
               videos: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """A shard's sealed index (see the module docstring)."""
    return seal_sidecar({"format": INDEX_FORMAT, "version": INDEX_VERSION, "sink": sink, "shard": shard,
                         "size": size, "sha256": sha256, "mtime_ns": mtime_ns, "videos": dict(videos)})


def index_shard(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Build the index of the shard at ``path`` from its contents (its sha256, size and
    mtime too).  Videos whose features do not match their sidecar are left out of
    ``videos`` and listed in ``damaged`` (stem -> why); such an index is not written to
    disk.  Raises :class:`~vadfeat.errors.ShardReadError` (damaged or foreign shard)."""
    p = Path(path)
    sink = shard_sink(p)
    videos: dict[str, dict[str, Any]] = {}
    damaged: dict[str, str] = {}
    for rec in iter_shard(p):
        if rec.stem in videos or rec.stem in damaged:
            raise ShardReadError(f"{p}: {rec.stem} is in it twice", foreign=True)
        if rec.intact:
            videos[rec.stem] = _entry(rec.member, tuple(rec.features.shape), rec.features_sha256, rec.sidecar)
        else:
            damaged[rec.stem] = f"its features in {p.name} do not match the sha256 their sidecar recorded"
    try:
        st = p.stat()
        digest = sha256_file(p)
    except OSError as exc:
        raise ShardReadError(f"{p}: cannot read ({exc})") from exc
    assert sink is not None
    index = make_index(sink, p.name, size=st.st_size, sha256=digest, mtime_ns=st.st_mtime_ns, videos=videos)
    if damaged:
        index["damaged"] = damaged
    return index


def write_index(out: str | os.PathLike[str], index: Mapping[str, Any]) -> Path:
    """Write a shard's index atomically below ``out``, replacing an index of vadfeat's
    (stale or edited) but never a file that is not one; returns its path.  Raises OSError
    (FileExistsError for such a file)."""
    path = index_path(out, index["shard"])
    path.parent.mkdir(exist_ok=True)
    if os.path.lexists(path):
        old = None if path.is_symlink() or not path.is_file() else read_sidecar(path)
        if not isinstance(old, dict) or old.get("format") != INDEX_FORMAT:
            raise FileExistsError(f"{path} is not a vadfeat shard index; it is left alone")
    save_json(path, index)
    return path


def _index_ok(index: Any, name: str) -> bool:
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or SIDECAR_DIGEST not in index:
        return False
    if index.get("version") != INDEX_VERSION or index.get("shard") != name:
        return False
    if index.get("sink") != shard_sink(name) or not isinstance(index.get("videos"), dict):
        return False
    return sidecar_edited(index) is None


def read_index(out: str | os.PathLike[str], shard: str) -> dict[str, Any] | None:
    """The index of the shard named ``shard``, when it is vadfeat's sealed index for it."""
    path = index_path(out, shard)
    if path.is_symlink() or not path.is_file():
        return None
    index = read_sidecar(path)
    return index if _index_ok(index, shard) else None


def is_vadfeat_shard(path: str | os.PathLike[str], *, index: Mapping[str, Any] | None = None) -> bool:
    """Whether the file at ``path`` is a shard vadfeat wrote: a shard name, and either its
    sealed ``index`` (given, or read from ``path``'s folder) records its size, or its
    contents are vadfeat's (every member a sealed vadfeat sidecar naming this shard)."""
    p = Path(path)
    if parse_shard_name(p.name) is None or p.is_symlink() or not p.is_file():
        return False
    idx = index if index is not None else read_index(p.parent, p.name)
    if idx is not None and idx.get("size") == p.stat().st_size:
        return True
    try:
        for _ in iter_shard(p):
            pass
    except ShardReadError:
        return False
    return True


@dataclass(frozen=True)
class ShardVideo:
    """Where a video is in a folder's shards.  ``problem``: why its copy cannot be trusted
    (a damaged shard or record), else None."""

    shard: str
    stem: str
    member: str
    shape: tuple[int, ...]
    features_sha256: str
    sidecar: dict[str, Any]
    problem: str | None = None


@dataclass
class _Loaded:
    """What :meth:`ShardCatalog.refresh` learnt of one shard file at one (size, mtime)."""

    stat: tuple[int, int]
    index: dict[str, Any] | None = None  # vadfeat's shard: its (possibly rebuilt) index
    problems: dict[str, str] = field(default_factory=dict)  # stem -> why its copy is bad
    foreign: str | None = None
    damaged: str | None = None
    hashed: bool = False  # its sha256 was compared with the index while loading
    unsaved: bool = False  # ``index`` was rebuilt or updated and not written to disk
    slim: bool = False  # ``index``'s sidecars were cut to :data:`SLIM_FIELDS` (never written then)


class ShardCatalog:
    """Every committed shard directly in a folder ``out`` (of one sink's format when ``sink``
    is given): :func:`load_indexes` makes one, :meth:`refresh` brings it up to date.

    ``shards``: shard file name -> its index; ``videos``: stem -> the newest copy
    (:class:`ShardVideo`; the shard later in name order wins); ``superseded``: (shard
    name, stem) of the older copies; ``foreign``: files named like shards that are not
    vadfeat's (never touched), with why; ``damaged``: vadfeat's shards that cannot be
    read, with why.
    """

    def __init__(self, out: str | os.PathLike[str], *, sink: str | None = None, slim: bool = False) -> None:
        self.out = Path(out)
        self.sink = sink
        self.slim = slim
        self.shards: dict[str, dict[str, Any]] = {}
        self.videos: dict[str, ShardVideo] = {}
        self.superseded: list[tuple[str, str]] = []
        self.foreign: dict[str, str] = {}
        self.damaged: dict[str, str] = {}
        self._loaded: dict[str, _Loaded] = {}
        self._verified: dict[str, str | None] = {}
        self._dir_mtime: int | None = None
        self._scanned = False

    def get(self, stem: str | PurePosixPath) -> ShardVideo | None:
        """The newest copy of the video ``stem``, or None."""
        return self.videos.get(stem if isinstance(stem, str) else stem.as_posix())

    def stems_of(self, shard: str) -> list[str]:
        """The stems a shard's index lists."""
        index = self.shards.get(shard)
        return list(index["videos"]) if index is not None else []

    def verify(self, shard: str) -> str | None:
        """Why the shard named ``shard`` does not match the sha256 its index recorded, or
        None; hashed once per shard (memoised, forgotten when the file changes)."""
        if shard not in self._verified:
            index = self.shards.get(shard)
            problem: str | None
            if index is None:
                problem = self.damaged.get(shard, f"{shard} has no index")
            else:
                try:
                    got = sha256_file(self.out / shard)
                except OSError as exc:
                    problem = f"{shard} is unreadable ({exc})"
                else:
                    problem = (None if got == index.get("sha256")
                               else f"{shard} does not match the sha256 its index recorded")
            self._verified[shard] = problem
        return self._verified[shard]

    def refresh(self, *, repair: bool = False, force: bool = False) -> bool:
        """Look at the folder again: load the shards that appeared or changed (size or
        mtime), forget the ones gone.  Cheap when nothing changed: one ``stat`` of the
        folder (its mtime moves with every shard renamed in or deleted), a listing
        otherwise.  ``repair``: write the indexes rebuilt from good shards and remove
        vadfeat's indexes whose shard is gone.  Returns whether anything changed.  Never
        raises on a bad file."""
        try:
            dir_mtime = self.out.stat().st_mtime_ns
        except OSError:
            dir_mtime = None
        # a folder changed within the last 2 s may change again within its mtime's tick
        recent = dir_mtime is not None and time.time_ns() - dir_mtime < 2_000_000_000
        if not force and not repair and dir_mtime == self._dir_mtime and not recent and self._scanned:
            return False
        self._dir_mtime, self._scanned = dir_mtime, True
        changed = False
        seen: set[str] = set()
        for path in shard_files(self.out, self.sink):
            name = path.name
            seen.add(name)
            try:
                st = path.lstat()
            except OSError:
                continue
            key = (st.st_size, st.st_mtime_ns)
            old = self._loaded.get(name)
            if old is not None and old.stat == key:
                if not (repair and old.unsaved and old.index is not None and not old.problems):
                    continue
                if not old.slim:
                    with contextlib.suppress(OSError):
                        write_index(self.out, old.index)
                        old.unsaved = False
                    continue
                # a slim index is not the whole index: read the shard again to write it
            self._loaded[name] = self._load(path, st, repair=repair)
            if self.slim:  # now, so that only one whole index is in memory at a time
                _slim(self._loaded[name])
            self._loaded_again(name)
            changed = True
        changed = self._settle(seen, changed)
        if repair:
            _drop_orphan_indexes(self.out, seen)
        return changed

    def _load(self, path: Path, st: os.stat_result, *, repair: bool) -> _Loaded:
        name = path.name
        loaded = _Loaded((st.st_size, st.st_mtime_ns))
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            loaded.foreign = f"{path} is not a regular file"
            return loaded
        index = read_index(self.out, name)
        if index is not None and index.get("size") == st.st_size:
            if index.get("mtime_ns") == st.st_mtime_ns:
                loaded.index = index
                return loaded
            try:  # same size, other mtime (a copied folder): the same bytes?
                same = sha256_file(path) == index.get("sha256")
            except OSError as exc:
                loaded.damaged = f"{path} is unreadable ({exc})"
                return loaded
            if same:
                loaded.hashed = True
                loaded.index = make_index(index["sink"], name, size=st.st_size, sha256=index["sha256"],
                                          mtime_ns=st.st_mtime_ns, videos=index["videos"])
                loaded.unsaved = True
                if repair:
                    with contextlib.suppress(OSError):
                        write_index(self.out, loaded.index)
                        loaded.unsaved = False
                return loaded
        rebuilt = take_rebuilt(loaded, name, index, lambda: index_shard(path))
        if rebuilt is None:
            return loaded
        loaded.unsaved = True
        if repair and not loaded.problems:
            with contextlib.suppress(OSError):
                write_index(self.out, rebuilt)
                loaded.unsaved = False
                log.info("rebuilt the index of %s", name)
        return loaded

    def _loaded_again(self, name: str) -> None:
        """Shard ``name``'s index was just (re)loaded: forget its verification, unless the
        load itself hashed the shard."""
        self._verified.pop(name, None)
        if self._loaded[name].hashed and self._loaded[name].index is not None:
            self._verified[name] = None

    def _settle(self, present: set[str] | Mapping[str, Any], changed: bool) -> bool:
        """After a refresh: drop the shards no longer ``present``, rebuild the video table when
        anything changed; returns whether anything did."""
        for name in [n for n in self._loaded if n not in present]:
            del self._loaded[name]
            self._verified.pop(name, None)
            changed = True
        if changed or not self.videos:
            self._rebuild()
        return changed

    def _rebuild(self) -> None:
        self.shards, self.videos, self.superseded = {}, {}, []
        self.foreign, self.damaged = {}, {}
        if self.slim:
            for loaded in self._loaded.values():
                _slim(loaded)
        for name in sorted(self._loaded):  # name order: a later shard's copy wins
            loaded = self._loaded[name]
            if loaded.foreign is not None:
                self.foreign[name] = loaded.foreign
                continue
            if loaded.damaged is not None:
                self.damaged[name] = loaded.damaged
            if loaded.index is not None:
                self.shards[name] = loaded.index
                for stem, entry in loaded.index["videos"].items():
                    self._place(stem, _video(name, stem, entry))
            for stem, why in loaded.problems.items():
                entry = (loaded.index or {}).get("videos", {}).get(stem, {})
                self._place(stem, _video(name, stem, entry, problem=why))

    def _place(self, stem: str, video: ShardVideo) -> None:
        old = self.videos.get(stem)
        if old is not None and old.shard != video.shard:
            self.superseded.append((old.shard, stem))
        self.videos[stem] = video

    def add(self, index: Mapping[str, Any], *, mtime_ns: int) -> None:
        """Take in the index of a shard just committed to the folder (by this process)."""
        name = index["shard"]
        self._loaded[name] = _Loaded((int(index["size"]), mtime_ns), index=dict(index))
        self._verified[name] = None  # hashed while written
        self._rebuild()


def shard_files(out: str | os.PathLike[str], sink: str | None = None) -> list[Path]:
    """The files directly in ``out`` named like shards (of ``sink`` only, when given), in
    name order; nothing is read."""
    folder = Path(out)
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        parsed = parse_shard_name(entry.name)
        if parsed is not None and (sink is None or parsed.sink == sink):
            found.append(folder / entry.name)
    return sorted(found, key=lambda p: p.name)


def load_indexes(out: str | os.PathLike[str], *, sink: str | None = None,
                 repair: bool = False, slim: bool = False) -> ShardCatalog:
    """The catalog of every committed shard directly in ``out`` (of ``sink`` only, when given).

    A shard's index is used when it is vadfeat's sealed index for that shard and records
    the shard's size, and its mtime or (when the mtime differs: a copied folder) its
    sha256; otherwise the shard's contents are read (:func:`index_shard`).  No shard is
    read when its index is good.  ``repair``: write the indexes rebuilt from good shards
    and remove vadfeat's indexes whose shard is gone (a writer opening the folder does;
    readers do not).  ``slim``: keep only :data:`SLIM_FIELDS` of each video's sidecar (what
    resume needs: a writer's catalog of 100,000 videos is then a fraction of the memory).
    Never raises on a bad file: damaged and foreign shards are listed.
    """
    cat = ShardCatalog(out, sink=sink, slim=slim)
    cat.refresh(repair=repair, force=True)
    return cat


#: The sidecar fields a slim catalog keeps (:func:`load_indexes`): what resume compares.
SLIM_FIELDS = ("vadfeat_version", "video", "shape", "layout", "fingerprint", "source_identity",
               "features_sha256", "sink", "shard", "stem", SIDECAR_DIGEST)


def _slim(loaded: _Loaded) -> None:
    if loaded.slim or loaded.index is None:
        return
    videos = {}
    for stem, entry in loaded.index["videos"].items():
        side = entry.get("sidecar")
        if isinstance(side, dict):
            entry = {**entry, "sidecar": {k: side[k] for k in SLIM_FIELDS if k in side}}
        videos[stem] = entry
    loaded.index = {**loaded.index, "videos": videos}
    loaded.slim = True


def _video(shard: str, stem: str, entry: Mapping[str, Any], problem: str | None = None) -> ShardVideo:
    side = entry.get("sidecar")
    return ShardVideo(shard, stem, str(entry.get("member", "")), tuple(entry.get("shape") or ()),
                      str(entry.get("features_sha256", "")), side if isinstance(side, dict) else {}, problem)


def take_rebuilt(loaded: _Loaded, name: str, index: Mapping[str, Any] | None,
                 rebuild: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Fill ``loaded`` (shard ``name``) with ``rebuild()``, its index made from its contents,
    and return that index; or, when that raises :class:`ShardReadError`, record why and
    return None: foreign when no index of vadfeat's (``index``) names the shard, else damaged,
    every video its old index lists with the reason.  Shared by the local and the URL
    catalogs."""
    try:
        rebuilt = rebuild()
    except ShardReadError as exc:
        if exc.foreign and index is None:
            loaded.foreign = str(exc)
        else:
            loaded.damaged = str(exc)
            if index is not None:  # vadfeat's (its sealed index says so) but damaged now
                loaded.problems = {stem: f"shard {name} is damaged ({exc})" for stem in index["videos"]}
        return None
    loaded.hashed = True
    loaded.problems = rebuilt.pop("damaged", {})
    loaded.index = rebuilt
    return rebuilt


def _drop_orphan_indexes(out: Path, shards: set[str]) -> None:
    folder = out / INDEX_DIR
    if folder.is_symlink() or not folder.is_dir():
        return
    for entry in os.scandir(folder):
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        name = entry.name[: -len(".json")]
        if parse_shard_name(name) is None or name in shards:
            continue
        if read_index(out, name) is not None:  # vadfeat's sealed index of a shard now gone
            with contextlib.suppress(OSError):
                (folder / entry.name).unlink()



__all__ = ["INDEX_DIR", "INDEX_FORMAT", "INDEX_VERSION", "PARQUET_COLUMNS", "SHARD_SUFFIXES", "SLIM_FIELDS",
           "ParquetShardWriter", "ShardCatalog", "ShardName", "ShardRecord", "ShardSink", "ShardVideo",
           "ShardWriter", "TarShardWriter", "feature_width", "index_path", "index_shard", "is_vadfeat_shard",
           "iter_shard", "load_indexes", "make_index", "member_name", "new_writer_id", "npy_bytes",
           "open_shard_writer", "parse_shard_name", "read_index", "read_video", "shard_files", "shard_name",
           "shard_sidecar", "shard_sink", "write_index", "writer_ids"]
