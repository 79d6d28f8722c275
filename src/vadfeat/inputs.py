"""What to process: turn command-line inputs into a sorted list of videos.

An input is one of

* a **video file**: one item, named by its file name;
* a **folder**: searched recursively; every video file (by extension) and every
  frame folder (see :func:`vadfeat.video.is_frame_folder`) is an item named by its
  path relative to the given folder (``Train/001.mp4``, ``frames/vid01``).  A
  folder that is itself a frame folder is one item named by its own name.  Hidden
  files and folders (``.name``, e.g. macOS ``._001.mp4``) are skipped;
* a **list file** (``.txt``): one path or name per line; blank lines and ``#``
  comments are ignored.  Relative entries are resolved against ``root`` (default:
  the list file's folder) and named by their path relative to ``root``.  An entry
  without an extension that does not exist as written is looked up with each video
  extension (so split files of bare names such as ``01_0014`` work).  An entry that
  is a folder is handled as a folder input, its items named relative to ``root``.

Paths that do not exist are still returned: the engine reports each as a failed
video with its reason instead of stopping the run.

Names decide where outputs go, so they are made safe and unique:

* **Normalisation**: a name is a relative POSIX path; ``.`` and ``..`` components and
  any leading ``/`` are removed (``../other/x.mp4`` -> ``other/x.mp4``).  An entry
  outside ``root`` given as an absolute path is named by its file name.
* **Duplicates**: items with the same resolved source are kept once (first input wins).
* **Collisions**: two items collide when their output stems match ignoring case
  (``a/001.mp4`` vs ``a/001.avi``, or ``001.mp4`` from two folders), because
  writers name outputs by stem and case-insensitive file systems exist.  Colliding
  items from different places are prefixed with the names of the folders they were
  found from (the input folder, a file's parent folder, or the list's root), one
  more folder level at a time until they differ (``Train/001.mp4`` in inputs
  ``A`` and ``B`` -> ``A/Train/001.mp4``, ``B/Train/001.mp4``).  Items that still
  collide (same folder, same stem) get ``~2``, ``~3``, ... appended to the stem in
  source-path order (``001.avi`` -> ``001~2.avi``).

The result is sorted by name (component-wise, case-sensitive).
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vadfeat.errors import ConfigError
from vadfeat.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_frame_folder

__all__ = ["VideoItem", "discover", "output_stem"]

logger = logging.getLogger(__name__)

_LIST_SUFFIXES = frozenset({".txt"})
# Renaming passes before giving up; each pass lengthens a prefix or adds a counter,
# so real inputs settle in a few passes.
_MAX_RENAME_PASSES = 64


@dataclass(frozen=True)
class VideoItem:
    """One video to process.

    ``source`` is the file or frame folder on disk, as an absolute path (it may not
    exist: the engine reports that).  ``name`` is the video's id in a run and decides its output path;
    it is relative, normalised (no ``..``, no leading ``/``) and unique in a
    :func:`discover` result.
    """

    source: Path
    name: PurePosixPath

    def __post_init__(self) -> None:
        name = self.name
        if (
            name.is_absolute()
            or not name.parts
            or any(part in ("", ".", "..") for part in name.parts)
        ):
            raise ValueError(f"VideoItem name must be a normalised relative path, got {name!r}")


def output_stem(name: PurePosixPath) -> PurePosixPath:
    """The name with its video extension removed: what output files are named after.

    Frame folders have no extension to remove (``frames/vid.01`` stays as it is).
    """
    if name.suffix.lower() in VIDEO_EXTENSIONS:
        return name.with_suffix("")
    return name


def _normalise_name(raw: str, fallback: str) -> PurePosixPath:
    """Relative, ``..``-free POSIX name for ``raw``; ``fallback`` if nothing is left."""
    text = raw.replace(os.sep, "/") if os.sep != "/" else raw
    parts = [p for p in posixpath.normpath("/" + text).split("/") if p not in ("", ".", "..")]
    if not parts:
        parts = [p for p in fallback.split("/") if p not in ("", ".", "..")] or ["video"]
    return PurePosixPath(*parts)


@dataclass
class _Candidate:
    source: Path
    resolved: Path
    name: PurePosixPath  # name before collision handling
    base: Path  # folder the name is relative to; collision prefixes come from it


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
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        return Path(os.path.abspath(path))


def _walk(folder: Path, extensions: frozenset[str]) -> list[Path]:
    """Video files and frame folders under ``folder``, in sorted walk order.

    Follows symlinked folders, but never into a real folder already visited.
    """
    found: list[Path] = []
    seen: set[Path] = set()

    def visit(directory: Path) -> None:
        real = _resolve(directory)
        if real in seen:
            return
        seen.add(real)
        try:
            children = sorted(directory.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            if directory == folder:  # the folder the user named: a usage error
                raise ConfigError(f"cannot list folder {folder}: {exc}") from exc
            # A sub-folder that cannot be listed may hold videos: make it an item, so
            # that the run names it as failed (with the reason) instead of losing it.
            logger.warning("cannot list %s: %s", directory, exc)
            found.append(directory)
            return
        ignored_images = 0
        for child in children:
            if child.name.startswith("."):
                continue
            if child.is_dir():
                if is_frame_folder(child):
                    found.append(child)
                else:
                    visit(child)
            elif child.suffix.lower() in extensions:
                found.append(child)
            elif child.suffix.lower() in IMAGE_EXTENSIONS:
                ignored_images += 1
        if ignored_images:
            logger.warning(
                "ignoring %d image(s) in %s: a frame folder must not hold videos or "
                "sub-folders", ignored_images, directory,
            )

    visit(folder)
    return found


def _from_folder(folder: Path, name_base: Path, prefix: PurePosixPath | None,
                 extensions: frozenset[str]) -> list[_Candidate]:
    """Items under ``folder``; names relative to ``folder``, under ``prefix`` if given."""
    items = []
    found = _walk(folder, extensions)
    if not found:
        logger.warning("no videos or frame folders found in %s", folder)
    for path in found:
        rel = path.relative_to(folder).as_posix()
        raw = rel if prefix is None else f"{prefix.as_posix()}/{rel}"
        items.append(_Candidate(path, _resolve(path), _normalise_name(raw, path.name), name_base))
    return items


def _from_list(list_file: Path, root: Path | None, extensions: frozenset[str]) -> list[_Candidate]:
    base = root if root is not None else list_file.parent
    try:
        lines = list_file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read list file {list_file}: {exc}") from exc
    items: list[_Candidate] = []
    base_absolute = _absolute(base)
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = _list_entry_path(entry, base, extensions)
        resolved = _resolve(path)
        try:
            # Lexical, like the entry itself: a symlink inside root keeps its name.
            raw = _absolute(path).relative_to(base_absolute).as_posix()
            name_base = base
        except ValueError:
            # Outside root: name by the file name; collisions add parent folders.
            raw = path.name
            name_base = path.parent
        if path.is_dir() and not is_frame_folder(path):
            items.extend(_from_folder(path, name_base, _normalise_name(raw, path.name),
                                      extensions))
        else:
            items.append(_Candidate(path, resolved, _normalise_name(raw, path.name), name_base))
    return items


def _list_entry_path(entry: str, base: Path, extensions: frozenset[str]) -> Path:
    path = Path(entry)
    if not path.is_absolute():
        path = base / path
    if path.exists():
        return path
    if "\\" in entry:  # lists written on Windows
        alt = _list_entry_path(entry.replace("\\", "/"), base, extensions)
        if alt.exists():
            return alt
    if path.suffix.lower() not in extensions:
        for ext in sorted(extensions):
            candidate = path.with_name(path.name + ext)
            if candidate.is_file():
                return candidate
    return path


def _candidates(item: str | os.PathLike[str], root: Path | None,
                extensions: frozenset[str]) -> list[_Candidate]:
    if isinstance(item, str) and not item.strip():
        raise ConfigError("an input is an empty string; give a video, a folder or a .txt list")
    path = Path(item)
    if path.suffix.lower() in _LIST_SUFFIXES and not path.is_dir():
        if not path.is_file():
            raise ConfigError(f"list file {path} does not exist")
        return _from_list(path, root, extensions)
    resolved = _resolve(path)
    # Names and prefixes come from the path as given (made absolute so "." has a
    # name), not from symlink targets: they are what the user sees.
    absolute = _absolute(path)
    if path.is_dir():
        if is_frame_folder(path):
            return [_Candidate(path, resolved, _normalise_name(absolute.name, "frames"),
                               absolute.parent)]
        return _from_folder(path, absolute, None, extensions)
    # A video file, or a path that does not exist (reported later by the engine).
    return [_Candidate(path, resolved, _normalise_name(absolute.name, "video"), absolute.parent)]


def _collision_key(name: PurePosixPath) -> str:
    return output_stem(name).as_posix().casefold()


def _with_counter(name: PurePosixPath, n: int) -> PurePosixPath:
    suffix = name.suffix if name.suffix.lower() in VIDEO_EXTENSIONS else ""
    stem = name.name[: len(name.name) - len(suffix)] if suffix else name.name
    return name.with_name(f"{stem}~{n}{suffix}")


def _assign_names(cands: list[_Candidate]) -> list[PurePosixPath]:
    """Unique names for ``cands`` following the module docstring's collision rule."""
    depth = [0] * len(cands)
    counter = [0] * len(cands)
    bases = [_absolute(c.base) for c in cands]
    base_parts = [tuple(p for p in b.parts if p not in ("/", "")) for b in bases]

    def name_of(i: int) -> PurePosixPath:
        k = depth[i]
        prefix = base_parts[i][len(base_parts[i]) - k:] if k else ()
        name = PurePosixPath(*prefix, *cands[i].name.parts)
        return _with_counter(name, counter[i]) if counter[i] else name

    for _ in range(_MAX_RENAME_PASSES):
        groups: dict[str, list[int]] = defaultdict(list)
        for i in range(len(cands)):
            groups[_collision_key(name_of(i))].append(i)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            return [name_of(i) for i in range(len(cands))]
        for group in clashes:
            distinct_bases = {bases[i] for i in group}
            deeper = [i for i in group if depth[i] < len(base_parts[i])]
            if len(distinct_bases) > 1 and deeper:
                for i in deeper:
                    depth[i] += 1
            else:
                # Same folder (or no folder left to add): number all but the first.
                ordered = sorted(group, key=lambda i: str(cands[i].resolved))
                for n, i in enumerate(ordered[1:], start=2):
                    counter[i] = max(counter[i] + 1, n)
    raise ConfigError("could not give the inputs unique output names; rename some videos")


def discover(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    root: str | os.PathLike[str] | None = None,
    extensions: Iterable[str] = VIDEO_EXTENSIONS,
) -> list[VideoItem]:
    """Expand ``inputs`` (video files, folders, ``.txt`` lists) into sorted items.

    See the module docstring for naming, de-duplication and collision rules.
    ``root`` only affects list files: relative entries are resolved against it and
    named relative to it.  ``extensions`` selects video files when searching folders
    (case-insensitive, with or without the dot).

    Raises:
        ConfigError: no inputs, an empty-string input, a missing or unreadable list
            file, or an empty ``extensions``.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise ConfigError("no inputs given; pass video files, folders or .txt lists")
    exts = _normalise_extensions(extensions)
    root_path = Path(root) if root is not None else None
    cands: list[_Candidate] = []
    seen: set[Path] = set()
    for item in inputs:
        for cand in _candidates(item, root_path, exts):
            if cand.resolved in seen:
                continue
            seen.add(cand.resolved)
            cands.append(cand)
    names = _assign_names(cands)
    # Absolute (but symlinks kept, so errors name the path the user gave) and free of
    # "..": the engine may run in another working directory or process.
    items = [
        VideoItem(source=_absolute(c.source), name=n)
        for c, n in zip(cands, names, strict=True)
    ]
    items.sort(key=lambda it: (it.name.parts, str(it.source)))
    logger.debug("discovered %d video(s) from %d input(s)", len(items), len(inputs))
    return items
