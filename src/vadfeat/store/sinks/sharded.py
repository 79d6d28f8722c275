"""Sharded sinks: videos packed into shard files that become visible whole.

The format is :mod:`vadfeat.store.shards`' (a shard ``OUT/shard-<writer>-<seq>.<suffix>``
plus its index in ``OUT/.vadfeat-index``); :class:`ShardedSink` is the lifecycle common to
the WebDataset sink (``vadfeat.store.sinks.webdataset``) and the Parquet one
(``vadfeat.store.sinks.parquet``), in the spirit of webdataset's ``ShardWriter``:

* :meth:`~ShardedSink.open` takes a fresh writer id, removes the temporaries killed writers
  of this host left, rebuilds missing indexes and loads the folder's catalog;
* :meth:`~ShardedSink.write` adds a video to the open shard, a hidden temporary
  (``atomic.tmp_name`` of its final name); when it holds ``shard_size`` videos or
  ``shard_mb`` MiB it is committed: closed, fsynced, renamed into place, then its index
  written.  The videos of a shard are done only then: :attr:`Sink.buffers` is True and
  :meth:`~ShardedSink.take_committed` hands their keys (the stems) to the engines;
* :meth:`~ShardedSink.commit` commits the last shard, then rewrites each older shard
  holding a video that a newer shard also holds, without that video (under the same
  name, replaced whole, so the order between shards never changes; a shard left empty is
  deleted with its index), so a finished run leaves every video exactly once;
* :meth:`~ShardedSink.abort` drops the open shard.

Resume (:meth:`~ShardedSink.state`) answers from the catalog: the newest shard holding a
stem wins; ``done`` needs the same fingerprint, an unchanged source and (``verify``) the
shard's sha256 equal to its index's (hashed once per shard per sink).  Two sinks (two
processes, two Ray actors) writing one folder never share a shard: each has its own
writer id.  Files named like shards that are not vadfeat's are never read, replaced or
deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from vadfeat._defaults import DEFAULT_SHARD_MB, DEFAULT_SHARD_SIZE
from vadfeat.errors import ConfigError, ShardReadError
from vadfeat.store.atomic import clean_stale_temporaries, tmp_name
from vadfeat.store.fingerprint import same_fingerprint
from vadfeat.store.identity import source_changed
from vadfeat.store.shards import (
    INDEX_DIR,
    SHARD_SUFFIXES,
    ParquetShardWriter,
    ShardCatalog,
    ShardSink,
    ShardWriter,
    index_path,
    iter_shard,
    load_indexes,
    new_writer_id,
    open_shard_writer,
    shard_name,
    write_index,
    writer_ids,
)
from vadfeat.store.sidecar import is_vadfeat_sidecar
from vadfeat.store.sinks.base import OutputState, Sink, VideoFeatures

log = logging.getLogger(__name__)

#: Defaults of ``--shard-size`` (videos) and ``--shard-mb`` (MiB), the package's one value.
SHARD_SIZE = DEFAULT_SHARD_SIZE
SHARD_MB = DEFAULT_SHARD_MB


@dataclass(frozen=True)
class ShardTarget:
    """A video's place in a sharded sink: its output stem (``a/b/clip``), POSIX.  Which shard
    holds it is known once it is written (:meth:`ShardedSink.describe`)."""

    stem: str


class ShardedSink(Sink[ShardTarget]):
    """Packs videos into shards below ``out``; see the module docstring.

    ``shard_size``: videos per shard; ``shard_mb``: MiB per shard (a shard is committed
    when either is reached, and at :meth:`commit`); ``crops``: the run's crop count (its
    features are ``[T, crops, D]``, stored as they are).  Raises :class:`ConfigError` for a
    size below 1.
    """

    #: ``webdataset`` or ``parquet``: the shard format (and ``name``).
    format: ShardSink
    buffers = True

    def __init__(self, out: str | Path, *, shard_size: int = SHARD_SIZE, shard_mb: float = SHARD_MB,
                 crops: int = 1) -> None:
        super().__init__(out)
        if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
            raise ConfigError(f"shard size must be a whole number of videos >= 1, not {shard_size!r}")
        if not isinstance(shard_mb, (int, float)) or isinstance(shard_mb, bool) or not shard_mb > 0:
            raise ConfigError(f"shard MB must be a positive number, not {shard_mb!r}")
        self.name = self.format
        self.shard_size = shard_size
        self.shard_mb = shard_mb
        self.crops = crops
        self._reset()

    def _reset(self) -> None:
        """The state of one opened sink (never copied by :meth:`at`, never pickled)."""
        self._lock = threading.RLock()
        self._writer_id: str | None = None
        self._seq = 0
        self._open: ShardWriter | None = None
        self._open_keys: list[str] = []
        self._committed: list[str] = []
        self._where: dict[str, str] = {}  # stem -> the shard this sink wrote it to
        self._catalog: ShardCatalog | None = None

    # ------------------------------------------------------------------ settings only

    def settings(self) -> dict[str, Any]:
        """What :meth:`at` copies: the sink's options."""
        return {"shard_size": self.shard_size, "shard_mb": self.shard_mb, "crops": self.crops}

    def at(self, out: str | Path) -> ShardedSink:
        """A fresh, unopened sink with this one's settings below ``out`` (no buffers or open
        files: it pickles)."""
        return type(self)(out, **self.settings())

    def __getstate__(self) -> dict[str, Any]:
        return {"out": self.out, **self.settings()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state.pop("out"), **state)  # type: ignore[misc]

    # ------------------------------------------------------------------ planning

    @property
    def suffix(self) -> str:
        """The shards' file suffix (``.tar``, ``.parquet``)."""
        return SHARD_SUFFIXES[self.format]

    def catalog(self) -> ShardCatalog:
        """The folder's shards as of now (loaded on first use, then refreshed when the folder
        changed: one ``stat`` otherwise)."""
        with self._lock:
            if self._catalog is None:
                self._catalog = load_indexes(self.out, sink=self.format, slim=True)
            else:
                self._catalog.refresh()
            return self._catalog

    def plan(self, stem: PurePosixPath) -> ShardTarget:
        return ShardTarget(PurePosixPath(stem).as_posix())

    def key(self, target: ShardTarget) -> str:
        """The stem: a video's claim in a sharded folder."""
        return target.stem

    def describe(self, target: ShardTarget) -> str:
        """``<shard path>:<stem>`` once the shard holding the video is known (written by this
        sink, or found in the folder), else ``<out>/shard-*<suffix>:<stem>``."""
        shard = self._where.get(target.stem)
        if shard is None and self._catalog is not None:
            found = self._catalog.get(target.stem)
            shard = found.shard if found is not None else None
        return f"{self.out / (shard or f'shard-*{self.suffix}')}:{target.stem}"

    def present(self, target: ShardTarget) -> bool:
        """Some committed shard lists the stem (an index lookup)."""
        return self.catalog().get(target.stem) is not None

    def state(self, target: ShardTarget, fingerprint: Mapping[str, Any] | None, *,
              source: Path | str | None = None, verify: bool = True) -> OutputState:
        """The newest committed copy of the video against ``fingerprint``; ``absent`` when no
        committed shard holds it (a video in this sink's open shard is not done yet)."""
        cat = self.catalog()
        found = cat.get(target.stem)
        if found is None:
            return OutputState("absent")
        side = found.sidecar
        fp = side.get("fingerprint") if isinstance(side, dict) else None
        if found.problem is not None:
            return OutputState("redo", found.problem, previous=fp if isinstance(fp, dict) else None)
        # its seal was checked with the index's (which covers it) or, rebuilt, with the shard's record
        if not is_vadfeat_sidecar(side):
            return OutputState("redo", f"its sidecar in {found.shard} is not vadfeat's")
        assert isinstance(fp, dict)
        if fingerprint is None or not same_fingerprint(fp, fingerprint):
            return OutputState("changed", previous=fp)
        problem = cat.verify(found.shard) if verify else None
        if problem is None and source is not None and isinstance(side.get("source_identity"), dict):
            problem = source_changed(side["source_identity"], source)
        if problem is not None:
            return OutputState("redo", problem, previous=fp)
        return OutputState("done", previous=fp)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create ``out``, remove this host's dead writers' temporaries, rebuild missing
        indexes, load the catalog and take a fresh writer id.  Raises OSError, and
        :class:`ConfigError` when ``out/.vadfeat-index`` is not vadfeat's folder."""
        self.out.mkdir(parents=True, exist_ok=True)
        index_dir = self.out / INDEX_DIR
        if os.path.lexists(index_dir) and (index_dir.is_symlink() or not index_dir.is_dir()):
            raise ConfigError(f"{index_dir} is not a folder; vadfeat keeps its shard indexes there, "
                              "so move it away or choose another output folder (-o)")
        clean_stale_temporaries(self.out)
        with self._lock:
            if self._open is not None:
                self._open.abort()
            catalog = self._catalog  # planning may have loaded it: only changes are read again
            self._reset()
            self._writer_id = new_writer_id(after=writer_ids(self.out))
            if catalog is None:
                catalog = load_indexes(self.out, sink=self.format, repair=True, slim=True)
            else:
                catalog.refresh(repair=True, force=True)
            self._catalog = catalog
            for name, why in self._catalog.foreign.items():
                log.warning("%s: not a vadfeat shard, left alone (%s)", self.out / name, why)

    def write(self, target: ShardTarget, result: VideoFeatures, *, stale: Iterable[Path] = ()) -> str:
        """Add the video to the open shard (committed whole once full); returns
        ``<shard path>:<stem>``.  ``stale`` is unused (an older copy is superseded by the
        newer shard and dropped at :meth:`commit`).  On an error (disk full) the open shard
        is dropped with every video in it, none of which is then ever reported committed.
        Raises OSError."""
        stem = target.stem
        with self._lock:
            if self._writer_id is None:
                raise RuntimeError("write before open()")
            writer = self._open
            if writer is not None and (stem in writer.videos or (
                    isinstance(writer, ParquetShardWriter) and not writer.accepts(result.features))):
                self._commit_open()
                writer = None
            if writer is None:
                writer = self._new_shard()
            try:
                writer.add(stem, result.features, result.metadata)
            except BaseException:
                self._drop_open()
                raise
            self._open_keys.append(stem)
            self._where[stem] = writer.shard
            if writer.count >= self.shard_size or writer.nbytes >= self.shard_mb * (1 << 20):
                self._commit_open()
            return f"{self.out / writer.shard}:{stem}"

    def take_committed(self) -> list[str]:
        with self._lock:
            keys, self._committed = self._committed, []
            return keys

    def commit(self) -> None:
        """Commit the open shard, then compact: each shard of the folder holding videos a
        newer shard also holds is rewritten without them.  Raises OSError."""
        with self._lock:
            if self._open is not None:
                if self._open.count:
                    self._commit_open()
                else:
                    self._drop_open()
            if self._writer_id is not None:
                self.compact()

    def abort(self) -> None:
        """Drop the open shard (its videos are not done); committed shards stay."""
        with self._lock:
            self._drop_open()

    # ------------------------------------------------------------------ shards

    def _new_shard(self) -> ShardWriter:
        assert self._writer_id is not None
        name = shard_name(self._writer_id, self._seq, self.format)
        self._seq += 1
        self._open = open_shard_writer(self.format, tmp_name(self.out / name), name)
        self._open_keys = []
        return self._open

    def _drop_open(self) -> None:
        if self._open is not None:
            self._open.abort()
            for stem in self._open_keys:
                self._where.pop(stem, None)
        self._open, self._open_keys = None, []

    def _commit_open(self) -> None:
        writer = self._open
        assert writer is not None
        try:
            self._place(writer, writer.shard)
        except BaseException:
            self._drop_open()
            raise
        self._committed.extend(self._open_keys)
        self._open, self._open_keys = None, []

    def _place(self, writer: ShardWriter, name: str) -> None:
        """Close ``writer``'s temporary, rename it to ``out/name`` whole, write its index."""
        writer.close()
        final = self.out / name
        os.replace(writer.path, final)
        _fsync_dir(self.out)
        mtime = final.stat().st_mtime_ns
        index = writer.index(mtime_ns=mtime)
        try:
            write_index(self.out, index)
        except OSError as exc:  # the shard is in place; the next open rebuilds its index
            log.warning("%s: cannot write its index (%s); it is rebuilt at the next run", final, exc)
        if self._catalog is not None:
            self._catalog.add(index, mtime_ns=mtime)

    def compact(self) -> list[str]:
        """Rewrite each committed shard of the folder that holds a video also in a newer
        shard, without it: the same name, replaced whole (readers see the old or the new
        file), then its index; a shard left with no video is deleted with its index.
        Shards that are damaged or not vadfeat's are left alone.  Returns the shard names
        rewritten or deleted.  Raises OSError."""
        with self._lock:
            cat = (self._catalog if self._catalog is not None
                   else load_indexes(self.out, sink=self.format, slim=True))
            cat.refresh(force=True)
            drop: dict[str, set[str]] = {}
            for shard, stem in cat.superseded:
                drop.setdefault(shard, set()).add(stem)
            done: list[str] = []
            for shard, stems in sorted(drop.items()):
                if shard not in cat.shards or shard in cat.damaged:
                    continue
                if self._rewrite(cat, shard, stems):
                    done.append(shard)
            if done:
                cat.refresh(force=True)
            return done

    def _rewrite(self, cat: ShardCatalog, shard: str, drop: set[str]) -> bool:
        path = self.out / shard
        keep = [s for s in cat.stems_of(shard) if s not in drop]
        if not keep:
            path.unlink(missing_ok=True)
            index_path(self.out, shard).unlink(missing_ok=True)
            log.info("%s: every video in it has a newer copy; deleted", path)
            return True
        writer = open_shard_writer(self.format, tmp_name(path), shard)
        try:
            for rec in iter_shard(path):
                if rec.stem in drop:
                    continue
                if not rec.intact:  # never re-sealed as good: dropped, so a later run redoes it
                    log.warning("%s: %s is damaged (its features do not match their sha256); "
                                "dropped", path, rec.stem)
                    continue
                writer.add(rec.stem, rec.features, rec.sidecar)
        except ShardReadError as exc:
            writer.abort()
            log.warning("%s: not compacted (%s)", path, exc)
            return False
        except BaseException:
            writer.abort()
            raise
        return self._place_rewritten(writer, shard, path, len(drop))

    def _place_rewritten(self, writer: ShardWriter, shard: str, where: object, dropped: int) -> bool:
        """Commit a compacted copy of ``shard`` under its own name (:meth:`_place`); False
        when nothing was kept in it (``writer`` aborted).  ``where``: the shard, for the log."""
        if writer.count == 0:
            writer.abort()
            return False
        try:
            self._place(writer, shard)
        except BaseException:
            writer.abort()
            raise
        log.info("%s: rewritten without %d video(s) that newer shards hold", where, dropped)
        return True


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["SHARD_MB", "SHARD_SIZE", "ShardTarget", "ShardedSink"]
