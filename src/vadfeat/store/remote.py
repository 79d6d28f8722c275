"""An output folder named by URL (``s3://bucket/features``): sharded outputs on an object store.

Only the sharded sinks (``--sink webdataset|parquet``) write to a URL: a shard is one
object, written once.  The ``.npy`` sink (two files per video, renamed into place) is
refused with a :class:`~vadfeat.errors.ConfigError`.  The layout below the URL is the
local one (:mod:`vadfeat.store.shards`): ``URL/shard-<writer>-<seq>.tar|.parquet``,
``URL/.vadfeat-index/<shard>.json`` and ``URL/manifest.jsonl``.

How a folder's guarantees are kept without renames and locks (an object store has
neither ``rename`` nor ``flock``):

* **A shard appears whole.**  It is written to a local temporary file, then uploaded
  whole (:func:`vadfeat.io.remote.put_file`): an object becomes visible only when its
  upload is complete, so no reader sees part of one, and a writer killed mid-upload
  leaves nothing.  Its index is uploaded after it (a shard without an index gets its
  index rebuilt by the next writer, as locally).
* **The catalog** (:meth:`RemoteFolder.catalog`) lists the shard objects directly below
  the URL and their indexes: an index is used when it is vadfeat's sealed index for the
  shard and records the object's size; otherwise the shard is downloaded to a temporary
  file (deleted after) and indexed from its contents.  ``verify`` (a resumed video's
  shard against its index's sha256) streams the shard once per run, never to disk.
  Objects not named like shards are never read, replaced or deleted; a shard-named
  object that is not vadfeat's is listed as foreign and never touched.
* **The manifest** lives in a local staging folder during the run (the engines append to
  it as to a local one) and is uploaded whole to ``URL/manifest.jsonl`` at each shard
  commit and at the end of the run.  It starts from the store's copy, so runs keep
  appending; two runs writing one URL at once would each upload their own copy, and the
  last upload wins.
* **Claims** (``.vadfeat-locks``, ``flock``) stay in the local staging folder
  (:func:`staging_folder`, one per URL under the system's temporary folder): they keep
  the processes of one host apart, not two hosts.  Two runs must not write one URL at
  once; opening a URL output logs a warning saying so.  (Two writers never share a
  shard name, so concurrent runs would still not damage each other's shards: they would
  do videos twice, and the newest copy wins.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vadfeat.errors import ConfigError, ShardReadError
from vadfeat.io.remote import (
    describe_error,
    filesystem,
    is_url,
    iter_chunks,
    join_url,
    put_file,
    read_bytes,
    remove,
)
from vadfeat.store.atomic import save_json
from vadfeat.store.manifest import MANIFEST
from vadfeat.store.shards import (
    INDEX_DIR,
    ShardCatalog,
    _index_ok,
    _Loaded,
    index_shard,
    make_index,
    parse_shard_name,
    take_rebuilt,
)

log = logging.getLogger(__name__)

__all__ = ["CONCURRENCY_WARNING", "RemoteCatalog", "RemoteFolder", "refuse_url", "staging_folder"]

#: What a run writing a URL output warns about once.
CONCURRENCY_WARNING = ("{url}: an object store has no locks; vadfeat keeps this run's claims on "
                       "this host only. Two runs must not write one URL output at once (each "
                       "would do the same videos, and the manifest uploaded last wins)")


def refuse_url(out: object, what: str) -> None:
    """ConfigError when ``out`` is a URL: ``what`` (a sink, a command) writes local folders
    only."""
    if is_url(out) and not str(out).lower().startswith("file://"):
        raise ConfigError(f"{out}: {what} writes a local folder; to write features to a URL "
                          "use a sharded sink: --sink webdataset or --sink parquet")


def staging_folder(url: str) -> Path:
    """The local folder standing for the URL output ``url`` during a run on this host: the
    manifest being written and the claims.  One per URL (a hash of it) below the system's
    temporary folder, shared by this host's processes writing that URL."""
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "vadfeat-url-outputs" / digest


class RemoteCatalog(ShardCatalog):
    """A :class:`~vadfeat.store.shards.ShardCatalog` of the shards below a URL
    (:meth:`RemoteFolder.catalog`).  :meth:`refresh` lists the store (only when forced or
    repairing: a sink's own commits come in through :meth:`add`, and one listing per
    video planned would cost a request each); :meth:`verify` streams a shard from the
    store once per shard."""

    def __init__(self, folder: RemoteFolder, *, sink: str | None = None) -> None:
        super().__init__(folder.staging, sink=sink)
        self.folder = folder
        self.url = folder.url
        self._listed = False

    def refresh(self, *, repair: bool = False, force: bool = False) -> bool:
        """List the URL again (when ``force``, ``repair`` or never listed): load the shards
        that appeared or changed (size or ETag), forget the ones gone.  ``repair``: upload
        the indexes rebuilt from good shards, delete vadfeat's indexes whose shard is gone.
        Returns whether anything changed.  Raises OSError when the store cannot be listed."""
        if self._listed and not force and not repair:
            return False
        self._listed = True
        listing = self.folder.shard_objects(self.sink)
        changed = False
        todo: dict[str, tuple[int, int]] = {}
        for name, (size, etag) in listing.items():
            key = (size, etag)
            old = self._loaded.get(name)
            if old is not None and old.stat == key and not (repair and old.index is None):
                continue
            if old is not None and old.stat[0] == size and old.index is not None and \
                    old.stat[1] == -1:  # committed by this sink (add): its ETag is new to us
                old.stat = key
                continue
            todo[name] = key
        indexes = self.folder.read_indexes(list(todo))  # one concurrent batch
        for name, key in todo.items():
            self._loaded[name] = self._load_object(name, key, indexes[name], repair=repair)
            self._loaded_again(name)
            changed = True
        changed = self._settle(listing, changed)
        if repair:
            self.folder.drop_orphan_indexes(set(self.folder.shard_objects()))
        return changed

    def _load_object(self, name: str, key: tuple[int, int], index: dict[str, Any] | None, *,
                     repair: bool) -> _Loaded:
        loaded = _Loaded(key)
        if index is not None and index.get("size") == key[0]:
            loaded.index = index
            return loaded
        rebuilt = take_rebuilt(loaded, name, index, lambda: self.folder.index_from_contents(name))
        if rebuilt is None:
            return loaded
        if repair and not loaded.problems:
            with contextlib.suppress(OSError):
                self.folder.upload_index(rebuilt)
                log.info("rebuilt the index of %s", join_url(self.url, name))
        return loaded

    def add(self, index: Mapping[str, Any], *, mtime_ns: int = 0) -> None:
        """Take in the index of a shard this process just uploaded."""
        name = index["shard"]
        self._loaded[name] = _Loaded((int(index["size"]), -1), index=dict(index))
        self._verified[name] = None  # hashed while written
        self._rebuild()

    def verify(self, shard: str) -> str | None:
        """Why the shard object ``shard`` does not match the sha256 its index recorded, or
        None; streamed from the store once per shard (memoised)."""
        if shard not in self._verified:
            index = self.shards.get(shard)
            problem: str | None
            if index is None:
                problem = self.damaged.get(shard, f"{shard} has no index")
            else:
                h = hashlib.sha256()
                try:
                    for block in iter_chunks(join_url(self.url, shard)):
                        h.update(block)
                except OSError as exc:
                    problem = f"{shard} is unreadable ({exc})"
                else:
                    problem = (None if h.hexdigest() == index.get("sha256")
                               else f"{shard} does not match the sha256 its index recorded")
            self._verified[shard] = problem
        return self._verified[shard]


class RemoteFolder:
    """The output folder ``url`` on an object store: listing its shards, committing one,
    deleting vadfeat's own, and the manifest's copy.  ``staging``: the local folder for
    temporaries, the manifest being written and the claims (default
    :func:`staging_folder`)."""

    def __init__(self, url: str, staging: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.staging = staging if staging is not None else staging_folder(self.url)

    def check(self) -> None:
        """Stop (ConfigError naming the URL) when the bucket does not exist or cannot be
        reached with the credentials at hand; the folder itself need not exist."""
        fs, path = filesystem(self.url)
        bucket = path.split("/", 1)[0]
        try:
            fs.ls(bucket, detail=False)
        except Exception as exc:
            raise ConfigError(f"cannot write to the output URL {self.url}: "
                              f"{describe_error(self.url, exc)}") from exc

    def _ls(self, url: str) -> dict[str, dict[str, Any]]:
        fs, path = filesystem(url)
        try:
            entries = fs.ls(path, detail=True)
        except FileNotFoundError:
            return {}
        except Exception as exc:
            raise OSError(describe_error(url, exc)) from exc
        return {posixpath.basename(str(e["name"]).rstrip("/")): e for e in entries
                if e.get("type") != "directory"}

    def shard_objects(self, sink: str | None = None) -> dict[str, tuple[int, int]]:
        """Shard-named objects directly below the URL (of ``sink`` only, when given):
        name -> (size in bytes, a number standing for its ETag, else its modification
        time), in name order."""
        found = {}
        for name, entry in self._ls(self.url).items():
            parsed = parse_shard_name(name)
            if parsed is not None and (sink is None or parsed.sink == sink):
                tag = entry.get("ETag") or entry.get("etag") or entry.get("LastModified") or ""
                number = int(hashlib.sha256(str(tag).encode()).hexdigest()[:15], 16)
                found[name] = (int(entry.get("size") or 0), number)
        return dict(sorted(found.items()))

    def writer_ids(self) -> list[str]:
        """The writer ids of the shards below the URL (either sink), sorted."""
        ids = {p.writer for p in map(parse_shard_name, self.shard_objects()) if p is not None}
        return sorted(ids)

    def read_index(self, shard: str) -> dict[str, Any] | None:
        """The store's index of ``shard`` when it is vadfeat's sealed index of it."""
        return self.read_indexes([shard]).get(shard)

    def read_indexes(self, shards: list[str]) -> dict[str, dict[str, Any] | None]:
        """The store's indexes of ``shards`` (each: vadfeat's sealed index of it, else
        None), fetched concurrently in one call (fsspec's ``cat`` of many paths).  Raises
        OSError when the store fails as a whole (credentials, network)."""
        if not shards:
            return {}
        fs, base = filesystem(join_url(self.url, INDEX_DIR))
        paths = {f"{base}/{shard}.json": shard for shard in shards}
        try:
            got = fs.cat(list(paths), on_error="return")
        except Exception as exc:  # the store itself failed (missing objects come back as errors)
            raise OSError(describe_error(join_url(self.url, INDEX_DIR), exc)) from exc
        found: dict[str, dict[str, Any] | None] = {}
        for path, shard in paths.items():
            data = got.get(path)
            index = None
            if isinstance(data, bytes):
                with contextlib.suppress(ValueError):
                    index = json.loads(data)
            found[shard] = index if _index_ok(index, shard) else None
        return found

    def _temporary(self, name: str) -> Path:
        self.staging.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".vadfeat-tmp", dir=self.staging)
        os.close(fd)
        return Path(tmp)

    def download(self, shard: str, local: Path) -> None:
        """Download the object ``URL/shard`` to the local file ``local``.  Raises OSError
        naming the URL."""
        url = join_url(self.url, shard)
        fs, path = filesystem(url)
        try:
            fs.get_file(path, str(local))
        except Exception as exc:
            raise OSError(describe_error(url, exc)) from exc

    def index_from_contents(self, shard: str) -> dict[str, Any]:
        """Download ``shard`` to a temporary file (deleted after) and index it from its
        contents (:func:`~vadfeat.store.shards.index_shard`).  Raises ShardReadError."""
        tmp_dir = Path(tempfile.mkdtemp(prefix=".vadfeat-shard-", dir=self._ensure_staging()))
        local = tmp_dir / shard
        try:
            try:
                self.download(shard, local)
            except OSError as exc:
                raise ShardReadError(str(exc)) from exc
            try:
                index = index_shard(local)
            except ShardReadError as exc:  # name the object, not the temporary
                raise ShardReadError(str(exc).replace(str(local), join_url(self.url, shard)),
                                     foreign=exc.foreign) from exc
        finally:
            with contextlib.suppress(OSError):
                local.unlink()
            with contextlib.suppress(OSError):
                tmp_dir.rmdir()
        # Sealed again without the temporary's mtime (meaningless for the object).
        resealed = make_index(index["sink"], shard, size=index["size"], sha256=index["sha256"],
                              mtime_ns=None, videos=index["videos"])
        if "damaged" in index:
            resealed["damaged"] = index["damaged"]
        return resealed

    def _ensure_staging(self) -> Path:
        self.staging.mkdir(parents=True, exist_ok=True)
        return self.staging

    def upload_index(self, index: dict[str, Any]) -> None:
        """Upload a shard's sealed index whole (after its shard).  Raises OSError."""
        tmp = self._temporary("index")
        try:
            save_json(tmp, index)
            put_file(tmp, join_url(self.url, f"{INDEX_DIR}/{index['shard']}.json"))
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def commit_shard(self, local: Path, index: dict[str, Any]) -> None:
        """Upload the finished shard file ``local`` whole as ``URL/<index["shard"]>``, then
        its index.  Raises OSError (the shard may then be there without its index: the
        next writer rebuilds it)."""
        put_file(local, join_url(self.url, index["shard"]))
        self.upload_index(index)

    def delete_shard(self, shard: str) -> None:
        """Delete vadfeat's shard ``shard`` and its index (a shard whose videos all have a
        newer copy).  Raises OSError."""
        remove(join_url(self.url, shard))
        remove(join_url(self.url, f"{INDEX_DIR}/{shard}.json"))

    def catalog(self, *, sink: str | None = None, repair: bool = False) -> RemoteCatalog:
        """The catalog of every committed shard below the URL (of ``sink`` only, when
        given); see the module docstring and :class:`RemoteCatalog`.  ``repair``: upload
        the indexes rebuilt from good shards and delete vadfeat's indexes whose shard is
        gone.  Never raises on a bad object: damaged and foreign shards are listed.
        Raises OSError when the store cannot be listed."""
        cat = RemoteCatalog(self, sink=sink)
        cat.refresh(repair=repair)
        return cat

    def drop_orphan_indexes(self, shards: set[str]) -> None:
        """Delete vadfeat's sealed indexes whose shard is not in ``shards``."""
        for name in self._ls(join_url(self.url, INDEX_DIR)):
            if not name.endswith(".json"):
                continue
            shard = name[: -len(".json")]
            if parse_shard_name(shard) is None or shard in shards:
                continue
            if self.read_index(shard) is not None:  # vadfeat's sealed index, its shard gone
                with contextlib.suppress(OSError):
                    remove(join_url(self.url, f"{INDEX_DIR}/{name}"))

    # --- the manifest ---------------------------------------------------------------------

    def fetch_manifest(self) -> Path:
        """Put the store's ``manifest.jsonl`` (if any) in the staging folder, replacing the
        local copy, so this run appends to it; returns the staging folder.  Raises OSError,
        and ConfigError when the store's file is not vadfeat's manifest."""
        staging = self._ensure_staging()
        local = staging / MANIFEST
        try:
            data = read_bytes(join_url(self.url, MANIFEST))
        except FileNotFoundError:
            data = b""
        first = data.split(b"\n", 1)[0].strip()
        if first and not first.startswith(b'{"run": '):
            raise ConfigError(f"{join_url(self.url, MANIFEST)} was not written by vadfeat (its first "
                              "line is not a run record); vadfeat appends to it, so move it away "
                              "or choose another output URL (-o)")
        tmp = self._temporary("manifest")
        tmp.write_bytes(data)
        os.replace(tmp, local)
        return staging

    def upload_manifest(self) -> None:
        """Upload the staging folder's ``manifest.jsonl`` whole to the URL.  Raises OSError."""
        local = self.staging / MANIFEST
        if local.is_file():
            put_file(local, join_url(self.url, MANIFEST))

