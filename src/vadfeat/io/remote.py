"""Inputs and outputs named by URL (``s3://``, ``gs://``, ``file://``), through fsspec.

A *URL* here is ``<scheme>://<path>`` with a scheme fsspec knows (:func:`is_url`):
``s3://bucket/key`` (s3fs), ``gs://bucket/key`` (gcsfs), ``file:///abs/path`` (the
local path itself: :func:`local_path`, read exactly as a path given on the command line)
and any other fsspec protocol.  The object-store libraries are an optional extra: a URL
whose library is missing is a :class:`~vadfeat.errors.ConfigError` saying to
``pip install 'vadfeat[cloud]'``.

What this module gives the layers above (no torch here, any layer may import it):

* :func:`filesystem`: the fsspec file system and the path inside it for a URL, with
  listings never cached (a run sees every object as it is now: an object rewritten
  between two calls is seen rewritten, which resume needs);
* :func:`object_info`: an object's size, ETag, modification time and version, from one
  ``HEAD`` (what :mod:`vadfeat.store.identity` records of a source named by URL);
* :func:`list_objects`: the objects below a URL prefix (``s3://bucket/videos``
  holds ``videos/Train/001.mp4`` ...), each with its path below the prefix, which names
  the video's outputs exactly as a path below a local folder does;
* :func:`open_input`: an object opened for reading as a seekable binary file; PyAV
  decodes from it while it is read (ranged ``GET`` requests of ``block_size`` bytes,
  sequential read-ahead), so a video is never downloaded whole to disk;
* :func:`read_bytes`, :func:`put_file`, :func:`remove`: small objects (a list file, an
  index, a manifest) and whole-file uploads, for the sinks that write to a URL.

Errors name the URL: a missing object or prefix, a missing bucket, missing or refused
credentials.  They are :class:`~vadfeat.errors.ConfigError` when the run cannot go on
(an input prefix or an output bucket that does not exist) and
:class:`~vadfeat.errors.VideoOpenError` when one video cannot be read (the run goes on:
a per-video failure).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from vadfeat.errors import ConfigError, VideoOpenError

__all__ = ["CLOUD_EXTRA", "DEFAULT_BLOCK_SIZE", "ObjectInfo", "RemoteObject", "describe_error",
           "filesystem", "is_url", "iter_chunks", "join_url", "list_objects", "local_path",
           "object_info", "open_input", "put_file", "read_bytes", "remove", "url_parent",
           "url_relative"]

#: What to install for s3:// and gs:// URLs.
CLOUD_EXTRA = "pip install 'vadfeat[cloud]'"

# A scheme as RFC 3986 spells it, then "://".  "C:\\x" and "C:/x" (Windows drives) have
# no "//" after the colon, so they are never URLs.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# The library each common scheme needs, for the error when it is missing.
_LIBRARY = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
            "abfs": "adlfs", "abfss": "adlfs"}

#: Bytes each ranged read of an opened object asks for.  PyAV reads a container in small
#: pieces (32 KiB) and seeks (an mp4's index may sit at its end): a read-ahead of a few
#: MiB keeps the requests few without holding much of a multi-GB video in memory.
DEFAULT_BLOCK_SIZE = 8 << 20


def is_url(value: object) -> bool:
    """Whether ``value`` is a string naming a URL (``scheme://...``), not a local path.

    ``Path`` objects are never URLs (a path cannot hold ``//`` after its first part).
    """
    return isinstance(value, str) and _URL.match(value) is not None


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def local_path(url: str) -> Path | None:
    """The local path a ``file://`` URL names (``file:///data/x.mp4`` -> ``/data/x.mp4``),
    ``None`` for any other URL.  Percent escapes are decoded (``%20`` -> space).

    Raises:
        ConfigError: a ``file://`` URL naming another host (``file://server/x``).
    """
    if _scheme(url) != "file":
        return None
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"{url}: a file:// URL names a local path (file:///data/videos); "
                          f"this one names the host {parts.netloc!r}")
    return Path(unquote(parts.path) or "/")


def _missing_library(url: str, exc: BaseException) -> ConfigError:
    library = _LIBRARY.get(_scheme(url), "the fsspec implementation for this scheme")
    return ConfigError(f"{url}: reading and writing {_scheme(url)}:// URLs needs {library}, "
                       f"which is not installed: {CLOUD_EXTRA} ({exc})")


def filesystem(url: str) -> tuple[Any, str]:
    """``(fs, path)``: the fsspec file system for ``url`` and the path inside it
    (``s3://bucket/a/b`` -> ``bucket/a/b``, no trailing ``/``).

    The file system does not cache listings, so every listing and ``info`` asks the store.

    Raises:
        ConfigError: not a URL; a scheme fsspec does not know; its library (s3fs,
            gcsfs) not installed (the message says ``pip install 'vadfeat[cloud]'``).
    """
    if not is_url(url):
        raise ConfigError(f"{url!r} is not a URL (scheme://...)")
    try:
        import fsspec  # type: ignore[import-untyped]
        from fsspec.core import url_to_fs  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _missing_library(url, exc) from exc
    try:
        fs, path = url_to_fs(url, use_listings_cache=False)
    except ImportError as exc:
        raise _missing_library(url, exc) from exc
    except ValueError as exc:
        known = ", ".join(sorted(p for p in fsspec.available_protocols() if len(p) <= 5))
        raise ConfigError(f"{url}: unknown URL scheme {_scheme(url)!r} ({exc}); "
                          f"known schemes include {known}") from exc
    return fs, str(path).rstrip("/") or str(path)


def _unparse(fs: Any, path: str, like: str) -> str:
    """The URL of ``path`` in ``fs``, with the scheme ``like`` was written with."""
    scheme = _scheme(like)
    if scheme == "file":
        return "file://" + path
    return f"{scheme}://{path.lstrip('/')}"


def _bucket(path: str) -> str:
    return path.split("/", 1)[0]


def describe_error(url: str, exc: BaseException) -> str:
    """A one-line reason, naming ``url``, for an error the store raised on it."""
    text = str(exc) or type(exc).__name__
    name = type(exc).__name__
    low = text.lower()
    if "nocredentials" in name.lower() or "unable to locate credentials" in low \
            or "default credentials" in low:
        where = ("GOOGLE_APPLICATION_CREDENTIALS, or gcloud auth application-default login"
                 if _scheme(url) in ("gs", "gcs") else
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
        return f"{url}: no credentials for the object store (set {where})"
    if "bucket" in low and ("not exist" in low or "nosuchbucket" in low):
        return f"{url}: the bucket {_bucket(url.split('://', 1)[-1])!r} does not exist"
    if isinstance(exc, PermissionError) or "access denied" in low or "forbidden" in low:
        return f"{url}: access denied ({text}); check the credentials and the bucket's policy"
    if isinstance(exc, FileNotFoundError):
        return f"{url}: no such object"
    return f"{url}: {text}"


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says of one object: ``size`` in bytes, ``etag`` (S3's ETag, GCS's
    ETag or MD5; ``None`` when the store gives none), ``mtime`` (its last modification,
    ISO 8601, ``None`` when unknown) and ``version`` (the object version, when the
    bucket keeps versions)."""

    url: str
    size: int
    etag: str | None
    mtime: str | None
    version: str | None = None


def _info_of(url: str, info: dict[str, Any]) -> ObjectInfo:
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    mtime: Any = info.get("LastModified") or info.get("updated") or info.get("mtime")
    if isinstance(mtime, datetime):
        mtime = mtime.isoformat()
    version = info.get("VersionId") or info.get("generation")
    return ObjectInfo(
        url=url, size=int(info.get("size") or 0),
        etag=str(etag).strip('"') if etag else None,
        mtime=str(mtime) if mtime is not None else None,
        version=str(version) if version else None,
    )


def object_info(url: str) -> ObjectInfo:
    """Size, ETag, modification time and version of the object ``url`` (one ``HEAD``).

    Raises:
        FileNotFoundError: no such object (or it is a prefix, not an object), no such
            bucket; the message names the URL.
        OSError: any other error of the store (credentials, access), naming the URL.
        ConfigError: as :func:`filesystem`.
    """
    fs, path = filesystem(url)
    try:
        info = fs.info(path)
    except FileNotFoundError as exc:
        raise FileNotFoundError(describe_error(url, exc)) from exc
    except Exception as exc:  # botocore's NoCredentialsError is no OSError
        raise OSError(describe_error(url, exc)) from exc
    if info.get("type") == "directory":
        raise FileNotFoundError(f"{url}: a prefix (folder), not an object")
    return _info_of(url, info)


@dataclass(frozen=True)
class RemoteObject:
    """One object found below a prefix: its URL, its path below the prefix (POSIX,
    ``Train/001.mp4``) and what the store said of it."""

    url: str
    relative: str
    info: ObjectInfo


def list_objects(url: str, *, missing_ok: bool = False) -> tuple[bool, list[RemoteObject]] | None:
    """``(is_object, objects)``: the object ``url`` itself (``(True, [it])``, its
    ``relative`` the file name), or every object below the prefix ``url`` in key order
    (``(False, [...])``, ``relative`` the path below the prefix).  ``missing_ok``: None
    instead of an error when the bucket does not exist or nothing is at or below ``url``.

    Raises:
        ConfigError: the bucket does not exist, or nothing exists at or below ``url``
            (unless ``missing_ok``); credentials missing or refused (naming the URL), or
            as :func:`filesystem`.
    """
    fs, path = filesystem(url)
    try:
        try:
            info = fs.info(path)
        except FileNotFoundError:
            info = None
        if info is not None and info.get("type") != "directory":
            return True, [RemoteObject(url, posixpath.basename(path), _info_of(url, info))]
        found = fs.find(path, detail=True)
    except FileNotFoundError as exc:
        if missing_ok:
            return None
        raise ConfigError(describe_error(url, exc)) from exc
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(describe_error(url, exc)) from exc
    if info is None and not found:
        if missing_ok:
            return None
        raise ConfigError(f"input {url} does not exist (no object and no objects below it)")
    prefix = path.rstrip("/") + "/"
    objects = []
    for key in sorted(found):
        meta = found[key]
        if meta.get("type") == "directory" or not key.startswith(prefix):
            continue
        rel = key[len(prefix):]
        if not rel or rel.endswith("/"):
            continue
        full = _unparse(fs, key, url)
        objects.append(RemoteObject(full, rel, _info_of(full, meta)))
    return False, objects


def open_input(url: str, *, block_size: int = DEFAULT_BLOCK_SIZE) -> IO[bytes]:
    """The object ``url`` opened for reading: a seekable binary file object that reads
    ranges of ``block_size`` bytes as it is read (never the whole object up front).
    Close it when done.

    Raises:
        VideoOpenError: no such object or bucket, credentials missing or refused, the
            scheme's library missing; the message names the URL.
    """
    try:
        fs, path = filesystem(url)
        opened: IO[bytes] = fs.open(path, "rb", block_size=block_size, cache_type="readahead")
    except ConfigError as exc:
        raise VideoOpenError(str(exc)) from exc
    except Exception as exc:
        raise VideoOpenError(describe_error(url, exc)) from exc
    return opened


def read_bytes(url: str, start: int | None = None, end: int | None = None) -> bytes:
    """The bytes of object ``url`` (``[start, end)`` when given: one ranged ``GET``).

    Raises:
        FileNotFoundError: no such object or bucket (naming the URL).
        OSError: another error of the store (naming the URL).
        ConfigError: as :func:`filesystem`.
    """
    fs, path = filesystem(url)
    try:
        data: bytes = fs.cat_file(path, start=start, end=end)
    except FileNotFoundError as exc:
        raise FileNotFoundError(describe_error(url, exc)) from exc
    except Exception as exc:
        raise OSError(describe_error(url, exc)) from exc
    return data


def iter_chunks(url: str, chunk: int = 1 << 22) -> Iterator[bytes]:
    """The bytes of object ``url`` in pieces of ``chunk`` bytes, streamed.

    Raises:
        FileNotFoundError, OSError, ConfigError: as :func:`read_bytes`.
    """
    fs, path = filesystem(url)
    try:
        with fs.open(path, "rb", block_size=chunk) as f:
            while block := f.read(chunk):
                yield block
    except FileNotFoundError as exc:
        raise FileNotFoundError(describe_error(url, exc)) from exc
    except (ConfigError, GeneratorExit):
        raise
    except Exception as exc:
        raise OSError(describe_error(url, exc)) from exc


def put_file(local: str | Path, url: str) -> None:
    """Upload the local file ``local`` whole as the object ``url``.  An object store makes
    an upload visible only when it is complete, so readers never see part of it.

    Raises:
        OSError: the upload failed (naming the URL); ConfigError: as :func:`filesystem`.
    """
    fs, path = filesystem(url)
    try:
        fs.put_file(str(local), path)
    except Exception as exc:
        raise OSError(describe_error(url, exc)) from exc


def remove(url: str) -> None:
    """Delete the object ``url``; a missing one is no error.

    Raises:
        OSError: the store refused (naming the URL); ConfigError: as :func:`filesystem`.
    """
    fs, path = filesystem(url)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        return
    except Exception as exc:
        raise OSError(describe_error(url, exc)) from exc


def join_url(base: str, name: str) -> str:
    """``base`` + ``/`` + ``name`` (a relative POSIX path), normalised (``a/./b`` -> ``a/b``,
    no ``..`` above ``base``)."""
    parts = [p for p in posixpath.normpath("/" + name).split("/") if p not in ("", ".", "..")]
    return base.rstrip("/") + "/" + "/".join(parts)


def url_parent(url: str) -> str:
    """The URL of the folder holding ``url`` (``s3://b/a/x.txt`` -> ``s3://b/a``)."""
    scheme, rest = url.split("://", 1)
    head = posixpath.dirname(rest.rstrip("/"))
    return f"{scheme}://{head}" if head else f"{scheme}://{rest}"


def url_relative(url: str, base: str) -> str | None:
    """``url``'s path below the prefix ``base`` (``Train/001.mp4``), ``None`` when it is
    not below it (schemes compared case-insensitively, paths exactly)."""
    if _scheme(url) != _scheme(base):
        return None
    u = url.split("://", 1)[1]
    b = base.split("://", 1)[1].rstrip("/") + "/"
    return u[len(b):] if u.startswith(b) and len(u) > len(b) else None
