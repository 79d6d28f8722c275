"""Which files a writing command may replace, and which outputs it must refuse.

One rule for every command that writes (``labels``, ``align``, ``lists``, ``resample``,
``inspect``, ``compare``, ``export``, ``checkpoint convert``, ``compress``; ``extract`` and
``frames`` keep per-video records, :func:`write_owned`, see the end of this module):

* :func:`refuse_overlap`: an output that *is* one of the command's inputs, *holds* one
  (an input lies below it) or *lies inside* one is refused with
  :class:`~vadfeat.errors.ConfigError` (exit 2) before any work.  Paths are compared
  after resolving symlinks, ``..`` and relative parts; two names of one file (a hard
  link) count as the same file.
* :func:`claim_outputs`: a folder's ownership record, ``OUT/.vadfeat-owned.json``, lists
  per command the files (relative POSIX names) it wrote there.  Before writing, a command
  claims the names it will write: a file already at one of them is replaced only when the
  record lists it for that command; otherwise ConfigError names it and nothing is
  written.  The record is updated *before* the files are written, so an interrupted run
  is still the command's to redo.  Names that are not valid UTF-8 (``os.fsdecode`` gives
  lone surrogates) round-trip through the record's JSON ``\\udcXX`` escapes.
* :func:`claim_file`: the same for a single-file output (a checkpoint): an existing file
  is replaced only when ``written_by_vadfeat`` says vadfeat wrote it.

Report folders of the previous release carry ``.vadfeat-report.json`` (``{"files": [...]}``);
its names still count as ``inspect``'s and ``compare``'s.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from vadfeat.errors import ConfigError
from vadfeat.io.remote import is_url, local_path
from vadfeat.store.atomic import atomic_path, clean_stale_temporaries, save_json
from vadfeat.store.claims import LOCK_DIR

#: The ownership record of an output folder: ``{"format": ..., "files": {command: [names]}}``.
RECORD = ".vadfeat-owned.json"
_FORMAT = "vadfeat-owned/1"
#: The report record of the previous release (read only; its files are inspect's and compare's).
LEGACY_REPORT_RECORD = ".vadfeat-report.json"
_REPORT_COMMANDS = ("inspect", "compare")

PathLike = str | os.PathLike[str]


def _real(path: PathLike) -> Path:
    """``path`` absolute, with symlinks and ``..`` resolved (missing tails kept as written)."""
    return Path(os.path.abspath(os.fspath(path))).resolve()


def _same_file(a: PathLike, b: PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def refuse_overlap(out: PathLike, inputs: Iterable[PathLike | None], *, command: str,
                   what: str = "output") -> None:
    """Raise :class:`ConfigError` when ``out`` is, holds or lies inside one of ``inputs``.

    ``inputs``: every path the command reads (features folder, labels file or folder,
    list file, checkpoint...); ``None`` entries are skipped.  The message names both
    paths.  Called before any work: nothing is written when it raises.
    """
    out = _as_path(out)
    o = _real(out) if not is_url(out) else None
    for given in inputs:
        if given is None:
            continue
        given = _as_path(given)
        if o is None or is_url(given):  # a URL on either side: compared as URLs
            how_url = _url_overlap(os.fspath(out), os.fspath(given))
            if how_url is None:
                continue
            raise ConfigError(f"the {what} {os.fspath(out)} {how_url} the input {os.fspath(given)}: "
                              f"`vadfeat {command}` never writes over or among its inputs; "
                              "choose an output outside every input")
        i = _real(given)
        if o == i or _same_file(out, given):
            how = "is"
        elif i in o.parents:
            how = "lies inside"
        elif o in i.parents:
            how = "holds"
        else:
            continue
        raise ConfigError(f"the {what} {os.fspath(out)} {how} the input {os.fspath(given)}: "
                          f"`vadfeat {command}` never writes over or among its inputs; "
                          "choose an output outside every input")


def _as_path(value: PathLike) -> PathLike:
    """A ``file://`` URL as the local path it names; anything else as it is."""
    if is_url(value):
        local = local_path(str(value))
        if local is not None:
            return local
    return value


def _url_overlap(out: str, given: str) -> str | None:
    """How the URL (or path) ``out`` overlaps ``given`` (``is``, ``lies inside``, ``holds``),
    or None; a URL and a local path never overlap."""
    if not (is_url(out) and is_url(given)):
        return None
    a = out.split("://", 1)[0].lower() + "://" + out.split("://", 1)[1].strip("/")
    b = given.split("://", 1)[0].lower() + "://" + given.split("://", 1)[1].strip("/")
    if a == b:
        return "is"
    if a.startswith(b + "/"):
        return "lies inside"
    if b.startswith(a + "/"):
        return "holds"
    return None


def _check_name(out: Path, name: str) -> str:
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or ".." in rel.parts or rel.as_posix() in (".", ""):
        raise ConfigError(f"refusing to write {name!r} outside the output folder {out}")
    return rel.as_posix()


def dump_json(data: Any) -> str:
    """``data`` as indented JSON text: readable UTF-8, or ``\\udcXX`` escapes for names that are not UTF-8."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=2, ensure_ascii=True) + "\n"
    return text


def read_record(out: PathLike) -> dict[str, set[str]]:
    """The names each command recorded in ``out`` (``{}`` without a record).

    Raises :class:`ConfigError` naming the record when it exists but is not one of
    vadfeat's (not JSON, wrong shape).
    """
    out_dir = Path(out)
    owned: dict[str, set[str]] = {}
    path = out_dir / RECORD
    if os.path.lexists(path):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != _FORMAT or not isinstance(data.get("files"), dict):
                raise ValueError(f"not a {_FORMAT} record")
            for command, names in data["files"].items():
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise ValueError(f"files of {command!r} are not a list of names")
                owned[str(command)] = set(names)
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{path} is not a vadfeat ownership record ({exc}); vadfeat will "
                              "not write into this folder: choose another output") from exc
    legacy = out_dir / LEGACY_REPORT_RECORD
    if os.path.lexists(legacy):
        try:
            names = {str(n) for n in json.loads(legacy.read_text(encoding="utf-8"))["files"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{legacy} is not a vadfeat report record ({exc}); choose another "
                              "output folder (-o)") from exc
        for command in _REPORT_COMMANDS:
            owned.setdefault(command, set()).update(names)
    return owned


def claim_outputs(out: PathLike, names: Iterable[str], *, command: str,
                  check: Iterable[str] = ()) -> Path:
    """Make folder ``out`` ready for ``command`` to write ``names`` (relative POSIX names).

    A file (or link, or folder) already at one of those names is replaced only when the
    ownership record of ``out`` lists it for ``command``; otherwise
    :class:`ConfigError` names it (and how many more), nothing written.  The record
    is a file of its own: a user's file at its name is refused the same way.  Then
    the record gains ``names`` (written before the files) and ``out`` exists.
    ``check``: names checked the same way now but recorded only when claimed later
    (``compare`` draws the worst videos, known after the work).  Returns ``out``.
    """
    out_dir = Path(out)
    wanted = sorted({_check_name(out_dir, n) for n in names})
    checked = sorted({*wanted, *(_check_name(out_dir, n) for n in check)})
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise ConfigError(f"the output folder {out_dir} exists and is not a folder; "
                          f"`vadfeat {command}` never replaces it: choose another output")
    owned = read_record(out_dir)
    mine = owned.get(command, set())
    foreign = [n for n in checked if n not in mine and os.path.lexists(out_dir / n)]
    # A file (or a link) where one of the names needs a folder is not the command's either.
    foreign += sorted({p.as_posix() for n in checked for p in PurePosixPath(n).parents
                       if p.parts and os.path.lexists(out_dir / p) and
                       (os.path.islink(out_dir / p) or not (out_dir / p).is_dir())})
    if foreign:
        others = [c for c, files in owned.items() if foreign[0] in files]
        who = f" (`vadfeat {others[0]}` wrote it)" if others else ""
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise ConfigError(f"{out_dir / foreign[0]}{more} exists and was not written by "
                          f"`vadfeat {command}`{who}; it never replaces a file it did not write: "
                          "choose another output folder or move the file away")
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir)  # a killed earlier run's, never a live one's
    # A legacy report record's names are carried into this record (for inspect and compare).
    files = {c: sorted(n) for c, n in owned.items()}
    files[command] = sorted(mine | set(wanted))
    with atomic_path(out_dir / RECORD) as tmp:
        Path(tmp).write_bytes(dump_json({"format": _FORMAT, "files": files}).encode("utf-8"))
    return out_dir


def claim_file(out: PathLike, inputs: Iterable[PathLike | None], *, command: str,
               written_by_vadfeat: Callable[[Path], bool]) -> Path:
    """Check a single-file output: not an input (:func:`refuse_overlap`), not someone else's.

    An existing file at ``out`` is replaced only when ``written_by_vadfeat(out)`` is
    true (for checkpoints: its safetensors header says vadfeat wrote it); otherwise
    :class:`ConfigError` names it.  The temporaries of ``out`` that a killed earlier run
    left beside it are removed.  Returns ``out`` as a :class:`Path`.
    """
    path = Path(out)
    refuse_overlap(path, inputs, command=command)
    clean_stale_temporaries(path.parent, of=path.name)  # a killed earlier run's, never a live one's
    if os.path.lexists(path):
        if path.is_dir():
            raise ConfigError(f"the output {path} is a folder; `vadfeat {command}` writes a file")
        if not written_by_vadfeat(path):
            raise ConfigError(f"{path} exists and was not written by vadfeat; `vadfeat {command}` "
                              "never replaces a file it did not write: choose another output name")
    return path


# --------------------------------------------------------------------------- per-video records
# ``extract`` and ``frames`` write many videos into one folder, possibly from several
# processes at once: each video has its own record, ``OUT/.vadfeat-locks/<key>.owned``
# (a JSON list of relative names), written before any of the video's files is replaced,
# so that the files a kill leaves at any point are still known as vadfeat's.


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
    """Replace the ownership record of ``key`` by ``paths`` (below ``out``).  Raises OSError."""
    names = sorted({str(p.relative_to(out)) for p in paths})
    save_json(owned_record_path(out, key), names)  # type: ignore[arg-type]


__all__ = ["LEGACY_REPORT_RECORD", "RECORD", "claim_file", "claim_outputs", "dump_json",
           "owned_record_path", "read_owned", "read_record", "refuse_overlap", "write_owned"]
