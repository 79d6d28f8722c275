"""The sharded sinks writing to a URL (``s3://bucket/features``, ``gs://...``).

:class:`URLWebDatasetSink` and :class:`URLParquetSink` are the WebDataset and Parquet
sinks (:mod:`vadfeat.store.sinks.sharded`) with their folder on an object store
(:mod:`vadfeat.store.remote` says how the folder's guarantees are kept there):

* a shard is written to a local temporary in the sink's staging folder
  (:func:`~vadfeat.store.remote.staging_folder`), then uploaded whole and its index after
  it; the temporary is deleted.  Nothing of a shard is visible on the store before that;
* the catalog (resume, compaction) is the store's (:class:`~vadfeat.store.remote.RemoteCatalog`);
* compaction downloads a shard holding superseded videos, rewrites it locally without
  them and uploads it under its own name (the object is replaced whole), or deletes a
  shard all of whose videos have newer copies, with its index;
* ``out`` (:attr:`Sink.out`) is the staging folder: the run's manifest and claims are kept
  there (:meth:`prepare_run` brings the store's manifest, which is uploaded whole after
  each shard commit and at the end of the run, :meth:`publish_run`).  Claims keep this
  host's processes apart only: two runs must not write one URL at once (a warning says
  so when the sink opens).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

from vadfeat.errors import ShardReadError
from vadfeat.io.remote import is_url, join_url, local_path
from vadfeat.store.atomic import clean_stale_temporaries, tmp_name
from vadfeat.store.remote import CONCURRENCY_WARNING, RemoteCatalog, RemoteFolder
from vadfeat.store.shards import ShardCatalog, ShardWriter, iter_shard, new_writer_id, open_shard_writer
from vadfeat.store.sinks.base import VideoFeatures
from vadfeat.store.sinks.parquet import ParquetSink
from vadfeat.store.sinks.sharded import ShardedSink, ShardTarget
from vadfeat.store.sinks.webdataset import WebDatasetSink

log = logging.getLogger(__name__)

__all__ = ["URLParquetSink", "URLWebDatasetSink", "is_url_output", "url_sink_class"]


def is_url_output(out: object) -> bool:
    """Whether ``out`` names a folder on an object store (a URL other than ``file://``)."""
    return is_url(out) and local_path(str(out)) is None


class _URLShards(ShardedSink):
    """What the URL sinks change of :class:`ShardedSink`; see the module docstring."""

    def __init__(self, out: str | Path, **settings: Any) -> None:
        if not is_url_output(out):
            raise ValueError(f"{out!r} is not a URL output")
        self.url = str(out).rstrip("/")
        self.remote = RemoteFolder(self.url)
        self._publishing = False
        super().__init__(self.remote.staging, **settings)

    def at(self, out: str | Path) -> ShardedSink:
        """A fresh sink with these settings writing the same URL (wherever it runs)."""
        return type(self)(self.url, **self.settings())

    def __getstate__(self) -> dict[str, Any]:
        return {"out": self.url, **self.settings()}

    def _as_url(self, text: str) -> str:
        """A path below the staging folder, as the URL a user sees."""
        prefix = str(self.out)
        return self.url + text[len(prefix):] if text.startswith(prefix) else text

    def describe(self, target: ShardTarget) -> str:
        return self._as_url(super().describe(target))

    def catalog(self) -> ShardCatalog:
        with self._lock:
            if self._catalog is None:
                self._catalog = RemoteCatalog(self.remote, sink=self.format)
            self._catalog.refresh()
            return self._catalog

    def open(self) -> None:
        """Check the bucket, clean this host's dead temporaries in the staging folder, load
        the store's catalog (rebuilding lost indexes) and take a fresh writer id.  Raises
        ConfigError (no bucket, no credentials), OSError."""
        self.remote.check()
        self.out.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(self.out)
        with self._lock:
            if self._open is not None:
                self._open.abort()
            self._reset()
            self._writer_id = new_writer_id(after=self.remote.writer_ids())
            self._catalog = RemoteCatalog(self.remote, sink=self.format)
            self._catalog.refresh(repair=True)
            for name, why in self._catalog.foreign.items():
                log.warning("%s: not a vadfeat shard, left alone (%s)", join_url(self.url, name), why)
        log.warning(CONCURRENCY_WARNING.format(url=self.url))

    def write(self, target: ShardTarget, result: VideoFeatures, *, stale: Any = ()) -> str:
        return self._as_url(super().write(target, result, stale=stale))

    def _place(self, writer: ShardWriter, name: str) -> None:
        """Close ``writer``'s temporary, upload it whole as ``URL/name``, then its index;
        the temporary is deleted; the manifest is uploaded too (driver only)."""
        writer.close()
        index = writer.index(mtime_ns=None)
        try:
            self.remote.commit_shard(writer.path, index)
        finally:
            with contextlib.suppress(OSError):
                writer.path.unlink()
        if self._catalog is not None:
            self._catalog.add(index, mtime_ns=0)
        if self._publishing:
            try:
                self.remote.upload_manifest()
            except OSError as exc:
                log.warning("cannot upload the run's manifest: %s", exc)

    def _rewrite(self, cat: ShardCatalog, shard: str, drop: set[str]) -> bool:
        keep = [s for s in cat.stems_of(shard) if s not in drop]
        where = join_url(self.url, shard)
        if not keep:
            self.remote.delete_shard(shard)
            log.info("%s: every video in it has a newer copy; deleted", where)
            return True
        tmp_dir = Path(tempfile.mkdtemp(prefix=".vadfeat-compact-", dir=self.out))
        local = tmp_dir / shard
        writer = open_shard_writer(self.format, tmp_name(self.out / shard), shard)
        try:
            self.remote.download(shard, local)
            for rec in iter_shard(local):
                if rec.stem in drop:
                    continue
                if not rec.intact:
                    log.warning("%s: %s is damaged (its features do not match their sha256); "
                                "dropped", where, rec.stem)
                    continue
                writer.add(rec.stem, rec.features, rec.sidecar)
        except (ShardReadError, OSError) as exc:
            writer.abort()
            log.warning("%s: not compacted (%s)", where, exc)
            return False
        except BaseException:
            writer.abort()
            raise
        finally:
            with contextlib.suppress(OSError):
                local.unlink()
            with contextlib.suppress(OSError):
                tmp_dir.rmdir()
        return self._place_rewritten(writer, shard, where, len(drop))

    def prepare_run(self) -> None:
        """Check the bucket and bring the store's manifest into the staging folder (the run
        appends to it); from now on each shard commit uploads it.  Raises ConfigError,
        OSError."""
        self.remote.check()
        self.remote.fetch_manifest()
        self._publishing = True

    def publish_run(self) -> None:
        """Upload the run's manifest whole.  Raises OSError."""
        if self._publishing:
            self.remote.upload_manifest()


class URLWebDatasetSink(_URLShards, WebDatasetSink):
    """Tar shards below a URL (``--sink webdataset -o s3://...``)."""


class URLParquetSink(_URLShards, ParquetSink):
    """Parquet shards below a URL (``--sink parquet -o s3://...``)."""


def url_sink_class(sink: str) -> type[ShardedSink]:
    """The URL sink class of the sharded sink ``sink`` (``webdataset``, ``parquet``)."""
    return URLWebDatasetSink if sink == "webdataset" else URLParquetSink
