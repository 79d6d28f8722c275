"""What to process: turn command-line inputs into a sorted list of videos.

An input is one of

* a **video file**: one item, named by its file name.  Any file FFmpeg opens works
  when given explicitly, whatever its extension;
* a **folder**: searched recursively; every video file (by extension, the one list
  :data:`vadfeat.io.video.VIDEO_EXTENSIONS`, raw ``.h264`` streams and ``.vob`` files
  included) and every frame folder (see :func:`vadfeat.io.video.is_frame_folder`;
  ``.jpg``, ``.png``, ``.bmp``, ``.tif``/``.tiff``, ``.webp``, ``.ppm``/``.pgm`` ...)
  is an item named by its path relative to the given folder (``Train/001.mp4``,
  ``frames/vid01``).  A folder that is itself a frame folder is one item named by its
  own name.  Hidden files and folders (``.name``, e.g. macOS ``._001.mp4``) are
  skipped;
* a **list file** (``.txt``): one path or name per line (lines end at ``\\r\\n``,
  ``\\r`` or ``\\n``); blank lines and ``#`` comments are ignored.  Relative entries
  are resolved against ``root`` (default: the list file's folder) and named by their
  path relative to ``root``.  An entry
  without an extension that does not exist as written is looked up with each video
  extension (so split files of bare names such as ``01_0014`` work).  An entry that
  is a folder is handled as a folder input, its items named relative to ``root``,
  except the file-system root, the home folder or a folder holding it: a list is
  data, and such an entry (``$DIR/`` with ``DIR`` unset) would search every disk or
  every file a user has, so it is a usage error naming the line.  A folder typed
  on the command line is searched whatever it is.

**Missing inputs are usage errors** (:class:`~vadfeat.errors.ConfigError`, exit 2),
raised here before anything loads: a path given as an input that does not exist, and
list entries that do not exist (the message names a few, says which folder they were
resolved against, and points to ``--root`` when none resolves).  A broken symbolic
link exists (as a link): it is an item that fails with its reason.

**Passed over, with a reason** (:attr:`Discovery.passed_over`, named in the run
summary): files in searched folders that are neither videos nor images, images
beside videos or sub-folders (not a frame folder), videos whose extension is not in
``extensions``, images of a frame folder that do not follow its frames' naming
pattern (see :func:`vadfeat.io.video.frame_files`), and folders that hold nothing to
process.

**Items that fail alone**: a named pipe, socket or device (as an input, a list entry
or, named like a video, in a searched folder: never opened, since opening a pipe
blocks until a writer comes), an entry that cannot be a path (a list line holding a NUL
byte, a name longer than the file system allows), a file or link under a searched
folder that cannot be examined (a link to ``/proc/1/cwd``: permission denied), a
sub-folder that cannot be listed, and an item whose output name would be too long
(below) are items with an :attr:`VideoItem.error`; engines record them as failed
with that reason, without opening them, and the run goes on.

Names decide where outputs go, so they are made safe and unique:

* **Normalisation**: a name is a relative POSIX path; ``.`` and ``..`` components and
  any leading ``/`` are removed (``../other/x.mp4`` -> ``other/x.mp4``).  An entry
  outside ``root`` given as an absolute path is named by its file name.  A NUL byte
  (which no path can hold) becomes U+FFFD.
* **Duplicates**: items with the same resolved source are kept once (first input wins).
* **Output stems**: outputs are named after the name without its video extension
  (``Train/001.mp4`` -> ``Train/001.npy``), see :func:`output_stem`.
* **Collisions**: two items collide when their output stems match ignoring case
  (``a/001.mp4`` vs ``a/001.avi``, or ``001.mp4`` from two folders), because
  case-insensitive file systems exist.  Colliding items from different places are
  prefixed with the names of the folders they were found from (the input folder, a
  file's parent folder, or the list's root), one more folder level at a time until
  they differ (``Train/001.mp4`` in inputs ``A`` and ``B`` -> ``A/Train/001.mp4``,
  ``B/Train/001.mp4``).  Items that still collide (same folder, same stem: ``x.avi``
  and ``x.mp4``) keep their real names, and their outputs keep the extension, so an
  output says which file it came from: ``x.avi.npy`` and ``x.mp4.npy``.  Only names
  that differ in case alone (``x.MP4``, ``x.mp4``) then get ``~2``, ``~3``, ... on the
  output stem, in source-path order (``x.mp4~2.npy``).
* **Length**: a file name holds at most 255 bytes on common file systems, and
  vadfeat writes up to :data:`NAME_RESERVE` bytes around an output stem (the
  temporary ``.<stem>.frames.json.vadfeat-tmp.<host>.<pid>``), so the last component
  of an output stem may have at most ``255 - NAME_RESERVE`` = 157 bytes and every
  folder component 255.  A longer one makes the item fail at discovery (before any
  decoding), not after the model ran.

The result is sorted by name (component-wise, case-sensitive).

**URLs** (``s3://bucket/videos``, ``gs://...``; :mod:`vadfeat.io.remote`) are inputs too,
on the command line, in a list, or as a list (``s3://bucket/splits/train.txt``):

* a URL naming an object is one item named by its file name; a URL prefix is searched
  like a folder (every object below it with a video extension, hidden components
  skipped), each item named by its key below the prefix (``s3://b/videos`` holding
  ``videos/Train/001.mp4`` -> ``Train/001.mp4``, as the folder ``videos`` would give);
  the item's :attr:`VideoItem.source` is then the object's URL (a string), decoded
  streaming from the store;
* list entries may be URLs; relative entries of a list that is itself a URL (or of a
  list whose ``root`` is a URL) are keys below that folder URL, named relative to it,
  and looked up in one listing of it (extension-less names included);
* ``file://`` URLs are the local paths they name, read exactly as those paths;
* frame folders are read from local disk only: images below a prefix are passed over;
* a missing object, prefix or bucket is a usage error naming the URL, as a missing path
  is; naming, de-duplication (by URL) and collisions follow the rules above, the
  bucket and the keys' folders giving the collision prefixes.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import re
import stat
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vadfeat.errors import ConfigError, VideoError
from vadfeat.io.remote import (
    RemoteObject,
    is_url,
    join_url,
    list_objects,
    local_path,
    read_bytes,
    url_parent,
    url_relative,
)
from vadfeat.io.video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    frame_files,
    is_frame_folder,
    not_regular,
)

__all__ = ["NAME_MAX", "NAME_RESERVE", "Discovery", "PassedOver", "VideoItem", "discover",
           "output_stem", "scan"]

logger = logging.getLogger(__name__)

_LIST_SUFFIXES = frozenset({".txt"})
# List lines end at any of these (Windows, old Mac, Unix).
_LINE_END = re.compile(r"\r\n|\r|\n")
# Renaming passes before giving up; each pass lengthens a prefix or adds a counter,
# so real inputs settle in a few passes.
_MAX_RENAME_PASSES = 64
#: Bytes a file name may hold on the file systems vadfeat writes to (ext4, XFS, Btrfs,
#: ZFS, NTFS, APFS).
NAME_MAX = 255
#: Bytes vadfeat may add around an output stem's last component: the longest name it
#: writes is the temporary ``.<stem>.frames.json.vadfeat-tmp.<host>.<pid>``
#: (:func:`vadfeat.store.atomic.tmp_name`), with a host name of up to 64 bytes
#: (HOST_NAME_MAX) and a pid of up to 7 digits.  Outputs proper (``<stem>__9.npy``,
#: ``<stem>.json``) are shorter.
NAME_RESERVE = len(".") + len(".frames.json") + len(".vadfeat-tmp.") + 64 + len(".") + 7
# How many missing list entries a usage error names.
_SHOW_MISSING = 5


@dataclass(frozen=True)
class VideoItem:
    """One video to process.

    ``source`` is the file or frame folder on disk, as an absolute path (it may not
    be readable: the engine reports that), or the URL (a ``str``) of an object in a
    store (:mod:`vadfeat.io.remote`).  ``name`` is the video's id in a run:
    relative, normalised (no ``..``, no leading ``/``) and unique in a
    :func:`discover` result.  ``stem`` is what its outputs are named after
    (default: :func:`output_stem` of the name; for colliding items the name with its
    extension, see the module docstring).  ``error``, when set, is why the item
    cannot be processed, found at discovery: engines record it as failed with that
    reason without opening it.
    """

    source: Path | str
    name: PurePosixPath
    stem: PurePosixPath | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("stem", self.stem)):
            if value is None:
                continue
            if (value.is_absolute() or not value.parts
                    or any(part in ("", ".", "..") for part in value.parts)):
                raise ValueError(f"VideoItem {what} must be a normalised relative path, got {value!r}")
        if self.stem is None:
            object.__setattr__(self, "stem", _strip_extension(self.name))


@dataclass(frozen=True)
class PassedOver:
    """A file or folder (or an object, by URL) discovery saw and did not make an item,
    and why."""

    path: Path | str
    reason: str


@dataclass
class Discovery:
    """What :func:`scan` found: the items, and what it passed over."""

    items: list[VideoItem]
    passed_over: list[PassedOver] = field(default_factory=list)

    def describe_passed_over(self, limit: int = 10) -> list[str]:
        """Summary lines: per reason, the count and up to ``limit`` paths."""
        groups: dict[str, list[Path | str]] = defaultdict(list)
        for p in self.passed_over:
            groups[p.reason].append(p.path)
        lines = []
        for reason, paths in groups.items():
            shown = ", ".join(str(p) for p in paths[:limit])
            more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
            lines.append(f"passed over {len(paths)} ({reason}): {shown}{more}")
        return lines


def _strip_extension(name: PurePosixPath) -> PurePosixPath:
    if name.suffix.lower() in VIDEO_EXTENSIONS and name.stem:
        return name.with_suffix("")
    return name


def output_stem(item: VideoItem | PurePosixPath) -> PurePosixPath:
    """What output files are named after.

    For a :class:`VideoItem`, its ``stem``.  For a name: the name with its video
    extension removed; frame folders have no extension to remove (``frames/vid.01``
    stays as it is).
    """
    if isinstance(item, VideoItem):
        assert item.stem is not None
        return item.stem
    return _strip_extension(item)


def _normalise_name(raw: str, fallback: str) -> PurePosixPath:
    """Relative, ``..``-free POSIX name for ``raw``; ``fallback`` if nothing is left."""
    text = raw.replace(os.sep, "/") if os.sep != "/" else raw
    text = text.replace("\0", "\ufffd")
    parts = [p for p in posixpath.normpath("/" + text).split("/") if p not in ("", ".", "..")]
    if not parts:
        parts = [p for p in fallback.replace("\0", "\ufffd").split("/")
                 if p not in ("", ".", "..")] or ["video"]
    return PurePosixPath(*parts)


@dataclass
class _Candidate:
    source: Path | str  # a URL as a str
    resolved: Path | str
    name: PurePosixPath  # name before collision handling
    base: Path  # folder the name is relative to; collision prefixes come from it
    error: str | None = None


def _normalise_extensions(extensions: Iterable[str]) -> frozenset[str]:
    exts = set()
    for ext in extensions:
        if not isinstance(ext, str) or not ext.strip(". "):
            raise ConfigError(f"bad video extension {ext!r}")
        e = ext.strip().lower()
        exts.add(e if e.startswith(".") else "." + e)
    if not exts:
        raise ConfigError("extensions must name at least one video extension, e.g. '.mp4'")
    return frozenset(exts)


def _absolute(path: Path) -> Path:
    """Absolute and free of ``..`` without following symlinks."""
    return Path(os.path.abspath(path))


def _resolve(path: Path) -> Path:
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError, ValueError):  # a symlink loop (RuntimeError before 3.13)
        return Path(os.path.abspath(path))


def _why_unusable(exc: BaseException) -> str:
    if isinstance(exc, ValueError):
        return "the name holds a NUL byte, which no file name can hold"
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return "file name too long for the file system"
    if isinstance(exc, OSError):
        return f"cannot be examined: {exc.strerror or exc}"
    return f"cannot be examined: {exc}"


def _kind(path: Path) -> tuple[str, str | None]:
    """``("dir"|"file"|"special"|"missing"|"error", reason)`` without raising (stat follows
    links).  ``"special"``: a named pipe, socket or device, which is never opened (opening a
    pipe blocks until a writer comes)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return ("file", None) if os.path.islink(path) else ("missing", None)  # broken link
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            return "file", None  # a link loop: an item the reader reports
        return "error", _why_unusable(exc)
    except RuntimeError:  # a symlink loop before Python 3.13
        return "file", None
    special = not_regular(st.st_mode)
    if special is not None:
        return "special", special
    return ("dir" if stat.S_ISDIR(st.st_mode) else "file"), None


class _Walker:
    """Video files and frame folders under a folder, and what was passed over."""

    def __init__(self, extensions: frozenset[str], passed: list[PassedOver]) -> None:
        self.extensions = extensions
        self.passed = passed
        self.seen: set[Path] = set()

    def walk(self, folder: Path) -> list[tuple[Path, str | None]]:
        """``[(path, error or None)]`` in sorted walk order.

        Follows symlinked folders, but never into a real folder already visited.
        """
        found: list[tuple[Path, str | None]] = []
        self._visit(folder, folder, found)
        return found

    def _visit(self, top: Path, directory: Path, found: list[tuple[Path, str | None]]) -> None:
        real = _resolve(directory)
        if real in self.seen:
            return
        self.seen.add(real)
        try:
            children = sorted(directory.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            if directory == top:  # the folder the user named: a usage error
                raise ConfigError(f"cannot list folder {top}: {exc}") from exc
            # A sub-folder that cannot be listed may hold videos: make it an item, so
            # that the run names it as failed (with the reason) instead of losing it.
            logger.warning("cannot list %s: %s", directory, exc)
            found.append((directory, f"cannot list the folder: {exc.strerror or exc}"))
            return
        before = len(found)
        subfolders = 0
        images: list[Path] = []
        others: list[Path] = []
        for child in children:
            if child.name.startswith("."):
                continue
            kind, reason = _kind(child)
            if kind == "error":
                # A link whose target cannot be examined (-> /proc/1/cwd): it may be a
                # video or a folder; it fails alone, with the reason.
                found.append((child, reason))
            elif kind == "special":
                # Named like a video: an item that fails alone, by name, never opened.
                if child.suffix.lower() in self.extensions:
                    found.append((child, reason))
                else:
                    others.append(child)
            elif kind == "dir":
                subfolders += 1
                if is_frame_folder(child):
                    found.append((child, None))
                    self._frames_left_out(child)
                else:
                    self._visit(top, child, found)
            elif child.suffix.lower() in self.extensions:
                found.append((child, None))
            elif child.suffix.lower() in VIDEO_EXTENSIONS:
                self.passed.append(PassedOver(child, "video extension not among the extensions "
                                                     "asked for"))
            elif child.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(child)
            else:
                others.append(child)
        for image in images:
            self.passed.append(PassedOver(image, "image beside videos or sub-folders, so not a "
                                                 "frame folder"))
        for other in others:
            self.passed.append(PassedOver(other, "neither a video nor an image file"))
        if len(found) == before and not (images or others or subfolders) and directory != top:
            self.passed.append(PassedOver(directory, "folder holds no videos or frames"))

    def _frames_left_out(self, folder: Path) -> None:
        try:
            listing = frame_files(folder)
        except VideoError:
            return  # the reader fails this item with the reason
        for f in listing.left_out:
            self.passed.append(PassedOver(f, f"not the frames' naming pattern {listing.pattern}"))


def _from_folder(folder: Path, name_base: Path, prefix: PurePosixPath | None,
                 walker: _Walker) -> list[_Candidate]:
    """Items under ``folder``; names relative to ``folder``, under ``prefix`` if given."""
    items = []
    found = walker.walk(folder)
    if not found:
        logger.warning("no videos or frame folders found in %s", folder)
        walker.passed.append(PassedOver(folder, "folder holds no videos or frames"))
    for path, error in found:
        rel = path.relative_to(folder).as_posix()
        raw = rel if prefix is None else f"{prefix.as_posix()}/{rel}"
        items.append(_Candidate(path, _resolve(path), _normalise_name(raw, path.name), name_base,
                                error))
    return items


def _from_list(list_file: Path, root: Path | str | None, walker: _Walker) -> list[_Candidate]:
    base = root if root is not None else list_file.parent
    try:
        # Lines end at "\r\n", "\r" (old Mac, some Windows tools) or "\n", and nowhere else:
        # a name may hold "\f" or U+2028, which str.splitlines would cut it at.
        lines = _LINE_END.split(list_file.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read list file {list_file}: {exc}") from exc
    if isinstance(base, str) or any(is_url(line.strip()) for line in lines):
        return _list_lines(str(list_file), lines, base, walker)
    items: list[_Candidate] = []
    missing: list[str] = []
    entries = 0
    base_absolute = _absolute(base)
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        entries += 1
        path, kind, error = _list_entry_path(entry, base, walker.extensions)
        if kind == "missing":
            missing.append(entry)
            continue
        if error is not None:
            error = f"{list_file.name} line {number}: {error}"
        try:
            # Lexical, like the entry itself: a symlink inside root keeps its name.
            raw = _absolute(path).relative_to(base_absolute).as_posix()
            name_base = base
        except ValueError:
            # Outside root: name by the file name; collisions add parent folders.
            raw = path.name
            name_base = path.parent
        name = _normalise_name(raw, path.name)
        if kind == "dir":
            _refuse_wide_folder(list_file, number, entry, path)
        if kind == "dir" and not is_frame_folder(path):
            items.extend(_from_folder(path, name_base, name, walker))
        else:
            resolved = _resolve(path) if error is None else _absolute(path)
            items.append(_Candidate(path, resolved, name, name_base, error))
    if missing:
        assert not isinstance(base, str) and not isinstance(root, str)
        _missing_entries(list_file, base, root, missing, entries)
    return items


def _refuse_wide_folder(list_file: Path, number: int, entry: str, path: Path) -> None:
    """Refuse a list entry naming the file-system root, the home folder or a folder above it.

    A list entry naming a folder is searched for videos like a folder input.  A list is
    data, often generated (``$DIR/`` with ``DIR`` unset gives ``/``), so an entry that
    would search every disk, or everything a user owns, is a mistake, not a dataset:
    a :class:`ConfigError` naming the line, before any work.
    """
    real = _resolve(path)
    where = f"{list_file} line {number}: {entry!r}"
    advice = ("a list entry naming a folder is searched for videos, and this one would search "
              "{what}; list the dataset's folder or its videos instead")
    if real == Path(real.anchor):
        raise ConfigError(f"{where} is the file-system root; "
                          + advice.format(what="every disk"))
    home = _resolve(Path(os.path.expanduser("~")))
    if real == home:
        raise ConfigError(f"{where} is the home folder ({home}); "
                          + advice.format(what="all of it"))
    if real in home.parents:
        raise ConfigError(f"{where} ({real}) holds the home folder {home}; "
                          + advice.format(what="every user's files"))


def _missing_entries(list_file: Path, base: Path, root: Path | None, missing: list[str],
                     entries: int) -> None:
    shown = ", ".join(repr(m) for m in missing[:_SHOW_MISSING])
    more = f" and {len(missing) - _SHOW_MISSING} more" if len(missing) > _SHOW_MISSING else ""
    against = (f"the --root folder {base}" if root is not None
               else f"the list's own folder {base}")
    hint = ""
    if len(missing) == entries:
        hint = (" None of its entries exists: pass --root with the folder its names are "
                "relative to." if root is None else
                " None of its entries exists: is --root the folder its names are relative to?")
    raise ConfigError(
        f"{list_file}: {len(missing)} of {entries} entries do not exist ({shown}{more}); "
        f"relative entries were resolved against {against}, also trying the video "
        f"extensions for names without one.{hint}"
    )


def _list_entry_path(entry: str, base: Path,
                     extensions: frozenset[str]) -> tuple[Path, str, str | None]:
    """``(path, kind, error)`` of a list entry; kind as :func:`_kind`."""
    path = Path(entry)
    if not path.is_absolute():
        path = base / path
    kind, error = _kind(path)
    if kind != "missing":
        return path, kind, error
    if "\\" in entry:  # lists written on Windows
        alt, alt_kind, alt_error = _list_entry_path(entry.replace("\\", "/"), base, extensions)
        if alt_kind != "missing":
            return alt, alt_kind, alt_error
    if path.suffix.lower() not in extensions:
        for ext in sorted(extensions):
            candidate = path.with_name(path.name + ext)
            if _kind(candidate)[0] == "file":
                return candidate, "file", None
    return path, "missing", None


def _candidates(item: str | os.PathLike[str], root: Path | str | None,
                walker: _Walker) -> list[_Candidate]:
    if isinstance(item, str) and not item.strip():
        raise ConfigError("an input is an empty string; give a video, a folder or a .txt list")
    if is_url(item):
        assert isinstance(item, str)
        local = local_path(item)
        if local is None:
            return _from_url(item, root, walker)
        item = local
    path = Path(item)
    kind, error = _kind(path)
    if path.suffix.lower() in _LIST_SUFFIXES and kind != "dir":
        if kind == "special":
            raise ConfigError(f"list file {path}: {error}")
        if kind != "file" or not os.path.isfile(path):
            raise ConfigError(f"list file {path} does not exist")
        return _from_list(path, root, walker)
    if kind == "missing":
        raise ConfigError(f"input {path} does not exist (give a video file, a folder of videos "
                          "or frames, or a .txt list)")
    resolved = _resolve(path)
    # Names and prefixes come from the path as given (made absolute so "." has a
    # name), not from symlink targets: they are what the user sees.
    absolute = _absolute(path)
    if kind == "dir":
        if is_frame_folder(path):
            walker._frames_left_out(path)
            return [_Candidate(path, resolved, _normalise_name(absolute.name, "frames"),
                               absolute.parent)]
        return _from_folder(path, absolute, None, walker)
    # A video file, a broken link, or a path that cannot be examined (fails alone).
    return [_Candidate(path, resolved, _normalise_name(absolute.name, "video"), absolute.parent,
                       error)]


def _url_base(url: str) -> Path:
    """The folder a URL's names are relative to, as a path whose parts give collision
    prefixes: ``s3://bucket/videos`` -> ``/bucket/videos``."""
    return Path("/" + url.split("://", 1)[1].strip("/"))


def _url_objects(objects: list[RemoteObject], base: str, prefix: PurePosixPath | None,
                 walker: _Walker) -> list[_Candidate]:
    """Items of the objects below the prefix URL ``base`` (names relative to it, under
    ``prefix`` if given); the others are passed over."""
    items = []
    for obj in objects:
        rel = PurePosixPath(obj.relative)
        if any(part.startswith(".") for part in rel.parts):
            continue
        ext = rel.suffix.lower()
        if ext in walker.extensions:
            raw = obj.relative if prefix is None else f"{prefix.as_posix()}/{obj.relative}"
            items.append(_Candidate(obj.url, obj.url, _normalise_name(raw, rel.name),
                                    _url_base(base)))
        elif ext in VIDEO_EXTENSIONS:
            walker.passed.append(PassedOver(obj.url, "video extension not among the extensions "
                                                     "asked for"))
        elif ext in IMAGE_EXTENSIONS:
            walker.passed.append(PassedOver(obj.url, "image below a URL: frame folders are read "
                                                     "from local disk only"))
        else:
            walker.passed.append(PassedOver(obj.url, "neither a video nor an image file"))
    if not items:
        logger.warning("no videos found below %s", base)
        walker.passed.append(PassedOver(base, "holds no videos"))
    return items


def _from_url(url: str, root: Path | str | None, walker: _Walker) -> list[_Candidate]:
    """Items of an input URL: a list file, an object or a prefix."""
    if PurePosixPath(url.split("://", 1)[1]).suffix.lower() in _LIST_SUFFIXES:
        return _from_url_list(url, root, walker)
    listed = list_objects(url)
    assert listed is not None
    is_object, objects = listed
    if is_object:
        return [_Candidate(url, url, _normalise_name(objects[0].relative, "video"),
                           _url_base(url_parent(url)))]
    return _url_objects(objects, url, None, walker)


def _url_entry(url: str, base: str | None, listing: dict[str, RemoteObject] | None,
               walker: _Walker) -> list[_Candidate] | None:
    """Items of a list entry that is a URL, named relative to ``base`` when below it
    (``listing``: every object below ``base``, by URL); ``None`` when nothing is there."""
    rel = url_relative(url, base) if base is not None else None
    if rel is None or listing is None or base is None:
        listed = list_objects(url, missing_ok=True)
        if listed is None:
            return None
        is_object, objects = listed
        if rel is None:
            if is_object:
                return [_Candidate(url, url, _normalise_name(objects[0].relative, "video"),
                                   _url_base(url_parent(url)))]
            return _url_objects(objects, url, None, walker)
        found = {o.url: o for o in objects} if not is_object else {url: objects[0]}
    else:
        found = listing
    assert base is not None
    name = _normalise_name(rel, rel)
    candidates = [url] if PurePosixPath(rel).suffix.lower() in walker.extensions else \
        [url] + [url + ext for ext in sorted(walker.extensions)]
    for candidate in candidates:
        if candidate in found:
            cand_rel = url_relative(candidate, base) or rel
            return [_Candidate(candidate, candidate, _normalise_name(cand_rel, rel),
                               _url_base(base))]
    below = url.rstrip("/") + "/"
    inside = [RemoteObject(o.url, o.url[len(below):], o.info) for u, o in found.items()
              if u.startswith(below)]
    if inside:
        return _url_objects(inside, url, name, walker)
    return None


def _from_url_list(list_url: str, root: Path | str | None,
                   walker: _Walker) -> list[_Candidate]:
    """Items of a list file named by URL; relative entries are below ``root`` (default:
    the list's folder URL)."""
    try:
        data = read_bytes(list_url)
    except OSError as exc:
        raise ConfigError(f"cannot read list file {exc}") from exc
    base = root if root is not None else url_parent(list_url)
    return _list_lines(list_url, _LINE_END.split(data.decode("utf-8-sig", "replace")), base,
                       walker)


def _list_lines(list_name: str, lines: list[str], base: Path | str,
                walker: _Walker) -> list[_Candidate]:
    """Items of a list whose ``base`` (what relative entries are below) is a URL, or whose
    entries include URLs; relative entries of a local ``base`` go to the local rules."""
    items: list[_Candidate] = []
    missing: list[str] = []
    entries = 0
    listing: dict[str, RemoteObject] | None = None
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        entries += 1
        if is_url(entry) and local_path(entry) is None:
            url = entry
        elif isinstance(base, str):
            url = join_url(base, entry.replace("\\", "/"))
        else:
            where = (list_name, number, entry)
            found = _local_entry(Path(local_path(entry) or entry), base, walker, where)
            if found is None:
                missing.append(entry)
            items.extend(found or [])
            continue
        if isinstance(base, str) and listing is None and url_relative(url, base) is not None:
            listed = list_objects(base, missing_ok=True)
            listing = {o.url: o for o in listed[1]} if listed is not None else {}
        got = _url_entry(url, base if isinstance(base, str) else None, listing, walker)
        if got is None:
            missing.append(entry)
        else:
            items.extend(got)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:_SHOW_MISSING])
        more = f" and {len(missing) - _SHOW_MISSING} more" if len(missing) > _SHOW_MISSING else ""
        raise ConfigError(f"{list_name}: {len(missing)} of {entries} entries do not exist "
                          f"({shown}{more}); relative entries were looked up below {base}, also "
                          "trying the video extensions for names without one")
    return items


def _local_entry(path: Path, base: Path, walker: _Walker,
                 where: tuple[str, int, str]) -> list[_Candidate] | None:
    """Items of a local entry of a list that also holds URLs (the local list rules)."""
    path, kind, error = _list_entry_path(str(path), base, walker.extensions)
    if kind == "missing":
        return None
    if kind == "dir":
        _refuse_wide_folder(Path(where[0]), where[1], where[2], path)
    try:
        raw = _absolute(path).relative_to(_absolute(base)).as_posix()
        name_base = base
    except ValueError:
        raw, name_base = path.name, path.parent
    name = _normalise_name(raw, path.name)
    if kind == "dir" and not is_frame_folder(path):
        return _from_folder(path, name_base, name, walker)
    resolved = _resolve(path) if error is None else _absolute(path)
    return [_Candidate(path, resolved, name, name_base, error)]


def _collision_key(stem: PurePosixPath) -> str:
    return stem.as_posix().casefold()


def _assign_names(cands: list[_Candidate]) -> list[tuple[PurePosixPath, PurePosixPath]]:
    """Unique ``(name, output stem)`` for ``cands`` following the module docstring."""
    depth = [0] * len(cands)
    keep_ext = [False] * len(cands)
    counter = [0] * len(cands)
    bases = [_absolute(c.base) for c in cands]
    base_parts = [tuple(p.replace("\0", "\ufffd") for p in b.parts if p not in ("/", ""))
                  for b in bases]

    def name_of(i: int) -> PurePosixPath:
        k = depth[i]
        prefix = base_parts[i][len(base_parts[i]) - k:] if k else ()
        return PurePosixPath(*prefix, *cands[i].name.parts)

    def stem_of(i: int) -> PurePosixPath:
        name = name_of(i)
        stem = name if keep_ext[i] else _strip_extension(name)
        return stem.with_name(f"{stem.name}~{counter[i]}") if counter[i] else stem

    for _ in range(_MAX_RENAME_PASSES):
        groups: dict[str, list[int]] = defaultdict(list)
        for i in range(len(cands)):
            groups[_collision_key(stem_of(i))].append(i)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            result = [(name_of(i), stem_of(i)) for i in range(len(cands))]
            if len({n for n, _ in result}) == len(result):
                return result
            break
        for group in clashes:
            distinct_bases = {bases[i] for i in group}
            deeper = [i for i in group if depth[i] < len(base_parts[i])]
            if len(distinct_bases) > 1 and deeper:
                for i in deeper:
                    depth[i] += 1
            elif not all(keep_ext[i] for i in group):
                # Same folder: the outputs keep the extension (x.avi.npy, x.mp4.npy).
                for i in group:
                    keep_ext[i] = True
            else:
                # Names that differ in case only: number all but the first.
                ordered = sorted(group, key=lambda i: str(cands[i].resolved))
                for n, i in enumerate(ordered[1:], start=2):
                    counter[i] = max(counter[i] + 1, n)
    raise ConfigError("could not give the inputs unique output names; rename some videos")


def _name_length_problem(stem: PurePosixPath) -> str | None:
    """Why outputs named after ``stem`` cannot be written, or None (see NAME_RESERVE)."""
    *folders, last = stem.parts
    for part in folders:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            return (f"output folder name too long: {part[:40]!r}... is {size} bytes; a file "
                    f"name holds at most {NAME_MAX}")
    size = len(os.fsencode(last))
    if size > NAME_MAX - NAME_RESERVE:
        return (f"output name too long: {last[:40]!r}... is {size} bytes; with the suffixes "
                f"vadfeat adds (up to {NAME_RESERVE} bytes, e.g. '.json' and temporary names) "
                f"it may have at most {NAME_MAX - NAME_RESERVE}; rename the video")
    return None


def scan(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    root: str | os.PathLike[str] | None = None,
    extensions: Iterable[str] = VIDEO_EXTENSIONS,
) -> Discovery:
    """Expand ``inputs`` (video files, folders, ``.txt`` lists) into sorted items, and
    say what was passed over and why.

    See the module docstring for naming, de-duplication, collision and length rules.
    ``root`` only affects list files: relative entries are resolved against it and
    named relative to it; it may be a URL prefix (see the module docstring).
    ``extensions`` selects video files when searching folders and URL prefixes
    (case-insensitive, with or without the dot).

    Raises:
        ConfigError: no inputs, an empty-string input, an input that does not exist,
            list entries that do not exist, a missing or unreadable list file, an
            input folder that cannot be listed, or an empty ``extensions``; a URL
            input or entry with nothing at or below it, a missing bucket, missing
            credentials, or the store's library not installed (naming the URL and
            ``pip install 'vadfeat[cloud]'``).
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise ConfigError("no inputs given; pass video files, folders or .txt lists")
    exts = _normalise_extensions(extensions)
    root_path: Path | str | None = None
    if root is not None:
        root_path = Path(root) if not is_url(root) else (local_path(str(root)) or str(root))
    passed: list[PassedOver] = []
    walker = _Walker(exts, passed)
    cands: list[_Candidate] = []
    seen: set[Path | str] = set()
    for item in inputs:
        for cand in _candidates(item, root_path, walker):
            if cand.resolved in seen:
                continue
            seen.add(cand.resolved)
            cands.append(cand)
    names = _assign_names(cands)
    # Absolute (but symlinks kept, so errors name the path the user gave) and free of
    # "..": the engine may run in another working directory or process.
    items = []
    for c, (name, stem) in zip(cands, names, strict=True):
        error = c.error or _name_length_problem(stem)
        source = c.source if isinstance(c.source, str) else _absolute(c.source)
        items.append(VideoItem(source=source, name=name, stem=stem, error=error))
    items.sort(key=lambda it: (it.name.parts, str(it.source)))
    found = Discovery(items, passed)
    for line in found.describe_passed_over():
        logger.warning("%s", line)
    for p in passed:
        logger.debug("passed over %s: %s", p.path, p.reason)
    logger.debug("discovered %d video(s) from %d input(s)", len(items), len(inputs))
    return found


def discover(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    root: str | os.PathLike[str] | None = None,
    extensions: Iterable[str] = VIDEO_EXTENSIONS,
) -> list[VideoItem]:
    """The items of :func:`scan` (what was passed over is logged as a warning)."""
    return scan(inputs, root=root, extensions=extensions).items
