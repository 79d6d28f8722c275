"""Frame-level ground truth: readers for the WSVAD formats and one canonical form.

Formats (docs/REFERENCE.md, section 3), always named explicitly by the caller:

``pickle``
    The legacy Fed_WSVAD ``GT/frame_label.pickle``: a dict ``{video: per-frame
    0/1 labels}``.  Used only when the caller asks for ``format="pickle"``; it is
    never chosen by sniffing.  Read by a restricted unpickler
    (:class:`_LabelUnpickler`) that builds dicts, lists, numbers, strings and
    numpy arrays of numbers and nothing else: no code named by the file runs, not
    even numpy's own array reconstruction (which crashes the process on some
    damaged files); array bytes are checked against their dtype and shape and
    copied with ``np.frombuffer``.
``npy-dir``
    A folder of per-video frame masks ``<video>.npy`` (ShanghaiTech
    ``test_frame_mask``), read with ``allow_pickle=False``.
``ucf``
    UCF-Crime ``Temporal_Anomaly_Annotation.txt``: ``name class s1 e1 s2 e2``
    (whitespace separated), frame numbers **1-based and inclusive** as in the
    authors' MATLAB evaluation (``GT(st:end) = 1``), ``-1 -1`` for an absent
    interval, class ``Normal`` for normal videos.  Frame ``n`` of the file is
    decoded frame index ``n - 1`` here.  Frame counts come from the feature
    sidecars (``num_frames``), so ``features`` is required.
``xd``
    XD-Violence ``annotations.txt``: ``name s1 e1 [s2 e2 ...]``, one line per
    violent test video.  The numbers are **0-based frame indices with an exclusive
    end**: the dataset authors' ``make_gt.py`` (Roc-Ng/XDVioDet) marks
    ``gt[s:e] = 1`` on decoded frames.  Names usually lack the extension but some
    carry ``.mp4``.  Normal videos (``_label_A`` in the name) are not listed: every
    feature video with ``_label_A`` in its name that the file does not list gets
    all-zero labels, as in ``make_gt.py``.  ``features`` is required.
``canonical``
    What :func:`write_labels` writes: a folder with ``labels.json`` =
    ``{video: {"num_frames", "video_label", "source", "decoded_frames"}}`` and one
    ``<video>.npy`` (uint8, one 0/1 value per frame) per video.  Safe to read (JSON
    and ``allow_pickle=False``), and, being a folder of ``.npy`` masks, also
    readable as ``npy-dir``.

Video names are matched to feature files by :func:`vadfeat.store.reader.video_key`
(base name without a video extension); a ground-truth name with folders
(``Abuse/Abuse028_x264.mp4``) first tries the exact relative name.  Labels are
keyed by the feature record's name.

Nothing is dropped silently.  Every problem becomes a :class:`LabelIssue` naming
the video: ground-truth videos without features (``unknown-video``), feature
videos without ground truth (``no-labels``), arrays longer or shorter than the
decoded frame count (``length-mismatch``: the array is *kept as given* and the
mismatch is resolved and reported per video by :mod:`vadfeat.dataset.align`), intervals
past the last decoded frame (``span-out-of-range``: clipped), malformed lines,
non-binary values, duplicates and ambiguous names.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

import numpy as np

from vadfeat._types import LabelFormat
from vadfeat.errors import ConfigError, LabelError  # LabelError: re-exported (its old home)
from vadfeat.store.atomic import NPY_ERRORS
from vadfeat.store.ownership import claim_outputs, refuse_overlap
from vadfeat.store.reader import (
    FeatureSet,
    as_feature_set,
    normalized_name,
    save_npy,
    video_key,
    write_json,
)

log = logging.getLogger(__name__)

IssueKind = Literal[
    "unknown-video", "no-labels", "length-mismatch", "malformed-line", "bad-values",
    "duplicate", "ambiguous-name", "span-out-of-range", "no-frame-count", "inconsistent",
    "bad-features", "bad-name", "no-audio",
]

INDEX_NAME = "labels.json"
_SPAN_FORMATS = ("ucf", "xd")


@dataclass(frozen=True)
class LabelIssue:
    """One problem with one video's ground truth, reported by name."""

    video: str
    kind: IssueKind
    message: str

    def __str__(self) -> str:
        return f"{self.video}: [{self.kind}] {self.message}"


@dataclass(frozen=True)
class VideoLabels:
    """Per-frame 0/1 labels of one video (``frames[i]`` is decoded frame ``i``).

    ``decoded_frames`` is the frame count recorded in the feature sidecar (``None``
    when unknown); it may differ from ``num_frames`` (see ``length-mismatch``).
    """

    name: str
    frames: np.ndarray = field(repr=False, compare=False)
    video_label: int
    source: str
    decoded_frames: int | None = None

    def __post_init__(self) -> None:
        raw = np.asarray(self.frames)
        if raw.size and not np.isin(raw, (0, 1)).all():
            raise ValueError(f"{self.name}: frame labels must be 0 or 1")
        arr = raw.astype(np.uint8)
        if arr.ndim != 1:
            raise ValueError(f"{self.name}: frame labels must be 1-D, got shape {arr.shape}")
        arr = arr.copy()
        arr.flags.writeable = False
        object.__setattr__(self, "frames", arr)
        if self.video_label not in (0, 1):
            raise ValueError(f"{self.name}: video_label must be 0 or 1, got {self.video_label!r}")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def key(self) -> str:
        return video_key(self.name)

    def spans(self) -> list[tuple[int, int]]:
        """Abnormal intervals as 0-based ``(start, end)`` with ``end`` exclusive."""
        return label_spans(self.frames)


@dataclass(frozen=True)
class LabelSet:
    """Ground truth for a set of videos plus every issue found while reading it."""

    videos: Mapping[str, VideoLabels]
    issues: tuple[LabelIssue, ...] = ()
    format: str = "canonical"
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "videos", MappingProxyType(dict(self.videos)))

    def __len__(self) -> int:
        return len(self.videos)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    @cached_property
    def _by_key(self) -> dict[str, list[VideoLabels]]:
        # Built once: looking up every feature record must not be quadratic.
        out: dict[str, list[VideoLabels]] = {}
        for v in self.videos.values():
            out.setdefault(v.key, []).append(v)
        return out

    def get(self, name: str) -> VideoLabels | None:
        """Labels for a video by exact name, else by unique :func:`video_key` match."""
        if name in self.videos:
            return self.videos[name]
        norm = normalized_name(name)
        if norm in self.videos:
            return self.videos[norm]
        hits = self._by_key.get(video_key(name), [])
        return hits[0] if len(hits) == 1 else None


def label_spans(frames: np.ndarray) -> list[tuple[int, int]]:
    """Runs of non-zero values as ``(start, end)`` half-open index pairs."""
    x = (np.asarray(frames).reshape(-1) > 0).astype(np.int8)
    if x.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], x, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


# --------------------------------------------------------------------- fitted to feature rows


def check_frames_per_snippet(frames_per_snippet: int) -> None:
    """:class:`ConfigError` unless ``frames_per_snippet`` is a positive integer."""
    if not isinstance(frames_per_snippet, int) or frames_per_snippet < 1:
        raise ConfigError(f"frames_per_snippet must be a positive integer, got {frames_per_snippet!r}")


def evaluation_positions(snippets: Sequence[tuple[int, int]], *,
                         frames_per_snippet: int = 16) -> np.ndarray:
    """Decoded-frame index behind each of the ``F * T`` evaluation positions (int64, ``[F * T]``).

    Snippet ``i`` (inclusive frame range ``[first_i, last_i]``) contributes ``F`` positions,
    ``k = 0..F-1``: ``first_i + k`` when it spans at most ``F`` frames, else
    ``first_i + floor(k * (last_i - first_i) / (F - 1))`` (evenly from first to last).  The
    rule is set out in :mod:`vadfeat.dataset.align`'s module docstring.
    """
    check_frames_per_snippet(frames_per_snippet)
    f = frames_per_snippet
    if len(snippets) == 0:
        return np.zeros(0, dtype=np.int64)
    snip = np.asarray(snippets, dtype=np.int64).reshape(-1, 2)
    first, extent = snip[:, :1], (snip[:, 1] - snip[:, 0])[:, None]
    k = np.arange(f, dtype=np.int64)[None, :]
    # Short snippets (a padded tail) run on frame by frame past their end; longer ones
    # are sampled evenly from first to last, which hits exactly the frames a
    # frame_interval snippet was built from.
    spread = (k * extent) // max(f - 1, 1)
    pos = np.where(extent + 1 < f, first + k, first + spread)
    return pos.reshape(-1)


def fit_frame_labels(frames: np.ndarray, snippets: Sequence[tuple[int, int]], *,
                     frames_per_snippet: int = 16) -> tuple[np.ndarray, int, int]:
    """Frame labels of exactly ``F * len(snippets)`` values, plus (frames cut, frames padded).

    ``frames``: one 0/1 label per decoded frame; ``snippets``: each feature row's inclusive
    frame range.  Returns uint8 ``[F * T]`` labels taken at :func:`evaluation_positions`
    (past the end: the last label), the number of labels no position refers to and the
    number of positions past the end.  Raises :class:`ValueError` for no labels.
    """
    labels = np.asarray(frames, dtype=np.uint8).reshape(-1)
    if labels.size == 0:
        raise ValueError("no frame labels")
    pos = evaluation_positions(snippets, frames_per_snippet=frames_per_snippet)
    padded = int(np.count_nonzero(pos >= labels.size))
    used = np.unique(pos[pos < labels.size])
    cut = int(labels.size - used.size)
    return labels[np.minimum(pos, labels.size - 1)], cut, padded


# --------------------------------------------------------------------- raw entries


@dataclass
class _Entry:
    """One video as a ground-truth file states it, before matching to features."""

    name: str
    source: str
    frames: np.ndarray | None = None         # array formats
    spans: list[tuple[int, int]] | None = None  # span formats: 0-based, end exclusive
    video_label: int | None = None           # stated by the file (class column, index)


def _binary(value: Any) -> np.ndarray:
    """A 1-D uint8 0/1 array, or ValueError saying what is wrong with ``value``."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not an array: {type(exc).__name__}: {exc}") from exc
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(f"values of type {arr.dtype} are not numeric")
    if arr.ndim == 2 and 1 in arr.shape:  # column or row vectors saved by some scripts
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"expected one value per frame, got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = np.unique(arr[~np.isin(arr, (0, 1))])[:5]
        raise ValueError(f"labels must be 0 or 1; found {bad.tolist()}")
    return arr.astype(np.uint8)


def _array_entry(name: str, value: Any, source: str, issues: list[LabelIssue],
                 video_label: int | None = None) -> _Entry | None:
    try:
        return _Entry(name=name, source=source, frames=_binary(value), video_label=video_label)
    except ValueError as exc:
        issues.append(LabelIssue(name, "bad-values", f"{source}: {exc}"))
        return None


# --- the restricted unpickler: stand-ins record what numpy's reconstruction would get


# Class-level defaults: NEWOBJ builds an instance without calling __init__.
class _ArrayStub:
    """Stands in for ``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``."""

    state: Any = None

    def __init__(self, *args: Any) -> None:
        self.state = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _DTypeStub:
    """Stands in for ``numpy.dtype(descr, align, copy)`` plus its ``__setstate__``."""

    args: Any = ()
    state: Any = None

    def __init__(self, *args: Any) -> None:
        self.args, self.state = args, None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _BufferStub:
    """Stands in for ``numpy._core.numeric._frombuffer(buf, dtype, shape, order)`` (protocol 5)."""

    args: Any = ()

    def __init__(self, *args: Any) -> None:
        self.args = args


class _ScalarStub:
    """Stands in for ``numpy.core.multiarray.scalar(dtype, bytes)`` (np.float64(1.0) ...)."""

    args: Any = ()

    def __init__(self, *args: Any) -> None:
        self.args = args


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    # Protocol 2 writes bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only for latin1 bytes")
    return text.encode("latin1")


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric", "numpy")
_STUBS: dict[str, Any] = {
    "_reconstruct": _ArrayStub, "ndarray": _ArrayStub, "dtype": _DTypeStub,
    "_frombuffer": _BufferStub, "scalar": _ScalarStub,
}
MAX_PICKLE_VALUES = 2**31  # elements of one label array
MAX_PICKLE_BYTES = 2**31  # a label pickle of every frame of a large dataset is tens of MB
_TYPE_CODE = re.compile(r"[biuf][1248]")


class _LabelUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, tuples, numbers, strings and the numpy stand-ins above."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _NUMPY_MODULES and name in _STUBS:
            return _STUBS[name]
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a label pickle holds dicts, lists, "
                                     "numbers and numpy arrays only")


def _real_dtype(stub: Any) -> np.dtype:
    if not isinstance(stub, _DTypeStub) or not isinstance(stub.args, tuple) or not stub.args or \
            not isinstance(stub.args[0], str):
        raise ValueError("array without a numeric dtype")
    # numpy pickles a dtype by its type code ('f4', 'u1', 'b1' ...); np.dtype() of other
    # strings parses them (comma lists, sub-arrays), so only those codes are taken.
    if not _TYPE_CODE.fullmatch(stub.args[0]):
        raise ValueError(f"values of type {stub.args[0]!r} are not numeric")
    dtype = np.dtype(stub.args[0])
    state = stub.state
    if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
        dtype = dtype.newbyteorder(state[1]) if dtype.itemsize > 1 else dtype
    return dtype


def _real_array(data: Any, dtype: np.dtype, shape: Any, fortran: bool) -> np.ndarray:
    if isinstance(data, str):
        data = data.encode("latin1")  # Python 2 pickles
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError("array data is not a byte string")
    if not isinstance(shape, tuple) or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError(f"bad array shape {shape!r}")
    count = 1
    for n in shape:
        count *= n
    if count > MAX_PICKLE_VALUES or count * dtype.itemsize != len(data):
        raise ValueError(f"array of shape {shape} and type {dtype} cannot hold {len(data)} bytes")
    return np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _from_stubs(value: Any, depth: int = 0) -> Any:
    """Numpy stand-ins -> real arrays and scalars (``ValueError`` for damaged ones)."""
    if depth > 100:
        raise ValueError("values nested too deep")
    if isinstance(value, _ArrayStub):
        state = value.state
        if not isinstance(state, tuple) or len(state) != 5:
            raise ValueError("damaged numpy array record")
        _, shape, dtype, fortran, data = state
        return _real_array(data, _real_dtype(dtype), shape, bool(fortran))
    if isinstance(value, _BufferStub):
        if not isinstance(value.args, tuple) or len(value.args) != 4:
            raise ValueError("damaged numpy array record")
        data, dtype, shape, order = value.args
        if isinstance(dtype, _DTypeStub):
            dtype = _real_dtype(dtype)
        else:
            raise ValueError("array without a numeric dtype")
        return _real_array(data, dtype, shape, order == "F")
    if isinstance(value, _ScalarStub):
        if not isinstance(value.args, tuple) or len(value.args) != 2:
            raise ValueError("damaged numpy scalar record")
        return _real_array(value.args[1], _real_dtype(value.args[0]), (), False)[()]
    if isinstance(value, _DTypeStub):
        raise ValueError("a dtype where values belong")
    if isinstance(value, list):
        return [_from_stubs(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_from_stubs(v, depth + 1) for v in value)
    return value


def _read_pickle(path: Path, issues: list[LabelIssue]) -> list[_Entry]:
    if not path.is_file():
        raise LabelError(f"ground-truth pickle {path} does not exist")
    try:
        if path.stat().st_size > MAX_PICKLE_BYTES:
            raise LabelError(f"{path} is {path.stat().st_size} bytes, more than a label pickle "
                             f"({MAX_PICKLE_BYTES})")
        # From memory, not the file: a damaged length field then cannot make the unpickler
        # read (and allocate) more than the file holds.
        blob = io.BytesIO(path.read_bytes())
        data = _LabelUnpickler(blob).load()  # only reached when the user named format='pickle'
        # A damaged pickle fails in any type the opcodes it holds can raise (TypeError,
        # MemoryError, OverflowError, IndexError, SystemError, RuntimeError ...).
        if not isinstance(data, Mapping):
            raise LabelError(f"{path} holds a {type(data).__name__}, expected a dict "
                             "{video: per-frame labels}")
        items = [(str(name), data[name]) for name in sorted(data, key=str)]
    except LabelError:
        raise
    except Exception as exc:  # re-raised as the reader's documented error
        raise LabelError(f"{path} is not a readable pickle: {type(exc).__name__}: {exc}") from exc
    entries = []
    for name, value in items:
        try:
            value = _from_stubs(value)
        except (ValueError, TypeError, OverflowError, MemoryError) as exc:
            issues.append(LabelIssue(name, "bad-values", f"pickle:{path.name}: {exc}"))
            continue
        e = _array_entry(name, value, f"pickle:{path.name}", issues)
        if e is not None:
            entries.append(e)
    return entries


def _read_npy_dir(path: Path, issues: list[LabelIssue]) -> list[_Entry]:
    if not path.is_dir():
        raise LabelError(f"{path} is not a folder of per-video .npy masks")
    entries = []
    for p in sorted(path.rglob("*.npy")):
        rel = p.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue
        name = rel.with_suffix("").as_posix()
        try:
            value = np.load(p, allow_pickle=False)
        except NPY_ERRORS as exc:
            issues.append(LabelIssue(name, "bad-values", f"{rel}: unreadable: {exc}"))
            continue
        e = _array_entry(name, value, f"npy-dir:{rel.as_posix()}", issues)
        if e is not None:
            entries.append(e)
    if not entries and not issues:
        raise LabelError(f"no .npy label files in {path}")
    return entries


def _read_canonical(path: Path, issues: list[LabelIssue]) -> list[_Entry]:
    index_path = path / INDEX_NAME
    if not index_path.is_file():
        raise LabelError(f"{path} has no {INDEX_NAME}: not a canonical labels folder "
                         "(write one with `vadfeat labels`)")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, EOFError, ValueError, RecursionError) as exc:  # JSON nested too deep
        raise LabelError(f"{index_path} is not valid JSON: {exc or type(exc).__name__}") from exc
    if not isinstance(index, dict):
        raise LabelError(f"{index_path} must hold a JSON object {{video: {{...}}}}")
    entries = []
    for name, info in index.items():
        if not isinstance(info, dict):
            issues.append(LabelIssue(name, "malformed-line", f"{INDEX_NAME}: entry is not an object"))
            continue
        file = path / f"{name}.npy"
        try:
            value = np.load(file, allow_pickle=False)
        except NPY_ERRORS as exc:
            issues.append(LabelIssue(name, "bad-values", f"{file.name}: unreadable: {exc}"))
            continue
        stated = info.get("video_label")
        e = _array_entry(name, value, str(info.get("source") or f"canonical:{path.name}"), issues,
                         video_label=int(stated) if stated in (0, 1) else None)
        if e is None:
            continue
        stated_n = info.get("num_frames")
        held = e.frames.shape[0] if e.frames is not None else None  # always an array entry here
        if stated_n is not None and stated_n != held:  # JSON: any type at all
            issues.append(LabelIssue(name, "inconsistent",
                                     f"{INDEX_NAME} says {stated_n!r} frames, "
                                     f"{file.name} holds {held}"))
        entries.append(e)
    return entries


def _read_lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise LabelError(f"annotation file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read {path}: {exc}") from exc
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]


def _ints(tokens: list[str]) -> list[int]:
    try:
        return [int(t) for t in tokens]
    except ValueError as exc:
        raise ValueError(f"frame numbers must be integers ({exc})") from exc


def _read_ucf(path: Path, issues: list[LabelIssue]) -> list[_Entry]:
    entries = []
    for lineno, line in _read_lines(path):
        tokens = line.split()
        where = f"ucf:{path.name}:{lineno}"
        name = tokens[0]
        try:
            if len(tokens) < 4 or (len(tokens) - 2) % 2:
                raise ValueError(f"expected `name class start1 end1 start2 end2`, got "
                                 f"{len(tokens)} fields")
            numbers = _ints(tokens[2:])
            spans = []
            for s, e in zip(numbers[0::2], numbers[1::2], strict=True):
                if s == -1 and e == -1:
                    continue
                if s < 1 or e < s:
                    raise ValueError(f"bad 1-based inclusive interval {s} {e}")
                spans.append((s - 1, e))  # 1-based inclusive -> 0-based half-open
        except ValueError as exc:
            issues.append(LabelIssue(name, "malformed-line", f"{where}: {exc}: {line!r}"))
            continue
        normal = tokens[1].lower() == "normal"
        if normal == bool(spans):
            issues.append(LabelIssue(name, "inconsistent",
                                     f"{where}: class {tokens[1]!r} but "
                                     f"{len(spans)} anomalous interval(s)"))
        entries.append(_Entry(name=name, source=where, spans=spans,
                              video_label=0 if normal else 1))
    return entries


def _read_xd(path: Path, issues: list[LabelIssue]) -> list[_Entry]:
    entries = []
    for lineno, line in _read_lines(path):
        tokens = line.split()
        where = f"xd:{path.name}:{lineno}"
        name = tokens[0]
        try:
            if len(tokens) < 3 or (len(tokens) - 1) % 2:
                raise ValueError(f"expected `name start1 end1 [start2 end2 ...]`, got "
                                 f"{len(tokens) - 1} numbers")
            numbers = _ints(tokens[1:])
            spans = []
            for s, e in zip(numbers[0::2], numbers[1::2], strict=True):
                if s < 0 or e <= s:
                    raise ValueError(f"bad 0-based interval [{s}, {e})")
                spans.append((s, e))
        except ValueError as exc:
            issues.append(LabelIssue(name, "malformed-line", f"{where}: {exc}: {line!r}"))
            continue
        if "_label_A" in video_key(name):
            issues.append(LabelIssue(name, "inconsistent",
                                     f"{where}: a `_label_A` (normal) video has violent intervals"))
        entries.append(_Entry(name=name, source=where, spans=spans, video_label=1))
    return entries


_READERS = {
    "canonical": _read_canonical,
    "pickle": _read_pickle,
    "npy-dir": _read_npy_dir,
    "ucf": _read_ucf,
    "xd": _read_xd,
}


# ----------------------------------------------------------------------- matching


def _spans_to_frames(entry: _Entry, n: int, issues: list[LabelIssue], name: str) -> np.ndarray:
    frames = np.zeros(n, dtype=np.uint8)
    for s, e in entry.spans or []:
        if s >= n:
            issues.append(LabelIssue(name, "span-out-of-range",
                                     f"{entry.source}: interval starting at frame index {s} "
                                     f"begins after the last decoded frame ({n} frames); ignored"))
            continue
        if e > n:
            issues.append(LabelIssue(name, "span-out-of-range",
                                     f"{entry.source}: interval ends at frame index {e - 1}, "
                                     f"past the last decoded frame ({n} frames); clipped"))
        frames[s:min(e, n)] = 1
    return frames


def _finish(entry: _Entry, name: str, frames: np.ndarray, decoded: int | None,
            issues: list[LabelIssue]) -> VideoLabels:
    label = entry.video_label if entry.video_label is not None else int(frames.any())
    if entry.video_label is not None and entry.spans is None and label != int(frames.any()):
        issues.append(LabelIssue(name, "inconsistent",
                                 f"{entry.source}: video label {label} but frame labels "
                                 f"{'have' if frames.any() else 'have no'} abnormal frames"))
    return VideoLabels(name=name, frames=frames, video_label=label, source=entry.source,
                       decoded_frames=decoded)


def _match(entries: list[_Entry], features: FeatureSet, fmt: str,
           issues: list[LabelIssue]) -> dict[str, VideoLabels]:
    assigned: dict[str, _Entry] = {}
    for e in entries:
        hits = features.find(e.name)
        if not hits:
            issues.append(LabelIssue(e.name, "unknown-video",
                                     f"{e.source}: in the ground truth but no feature file "
                                     f"matches (by name without extension)"))
        elif len(hits) > 1:
            issues.append(LabelIssue(e.name, "ambiguous-name",
                                     f"{e.source}: matches {len(hits)} feature files "
                                     f"({', '.join(r.name for r in hits)}); give the relative path"))
        elif hits[0].name in assigned:
            issues.append(LabelIssue(hits[0].name, "duplicate",
                                     f"{e.source}: second ground-truth entry for this video "
                                     f"(first: {assigned[hits[0].name].source}); first kept"))
        else:
            assigned[hits[0].name] = e
    videos: dict[str, VideoLabels] = {}
    for r in features:
        hit = assigned.get(r.name)
        if hit is not None:
            e = hit
        else:
            if fmt == "xd" and "_label_A" in r.key:
                if r.num_frames is None:
                    issues.append(LabelIssue(r.name, "no-frame-count",
                                             "normal by name, but its sidecar has no num_frames"))
                    continue
                e = _Entry(name=r.name, source="xd:_label_A (not listed: normal)", spans=[],
                           video_label=0)
            else:
                issues.append(LabelIssue(r.name, "no-labels",
                                         "feature file has no ground truth in the given file"))
                continue
        if e.spans is not None:
            if r.num_frames is None:
                issues.append(LabelIssue(r.name, "no-frame-count",
                                         f"{e.source}: intervals need the decoded frame count, "
                                         "and this video's sidecar has none"))
                continue
            frames = _spans_to_frames(e, r.num_frames, issues, r.name)
        else:
            assert e.frames is not None
            frames = e.frames
            if r.num_frames is not None and frames.shape[0] != r.num_frames:
                diff = frames.shape[0] - r.num_frames
                issues.append(LabelIssue(r.name, "length-mismatch",
                                         f"{e.source}: {frames.shape[0]} frame labels for "
                                         f"{r.num_frames} decoded frames ({diff:+d}); kept as given"))
        videos[r.name] = _finish(e, r.name, frames, r.num_frames, issues)
    return videos


def _unmatched(entries: list[_Entry], issues: list[LabelIssue]) -> dict[str, VideoLabels]:
    videos: dict[str, VideoLabels] = {}
    sources: dict[str, str] = {}
    for e in entries:
        name = normalized_name(e.name)
        if name in videos:
            issues.append(LabelIssue(name, "duplicate", f"{e.source}: second entry for this video "
                                     f"(first: {sources[name]}); first kept"))
            continue
        assert e.frames is not None
        videos[name] = _finish(e, name, e.frames, None, issues)
        sources[name] = e.source
    return videos


# ----------------------------------------------------------------------- public API


def read_labels(
    path: str | os.PathLike[str], *, format: LabelFormat,
    features: FeatureSet | str | os.PathLike[str] | None = None,
) -> LabelSet:
    """Read ground truth in ``format`` and, with ``features``, match it to the feature files.

    ``features`` (a :class:`~vadfeat.store.reader.FeatureSet` or a folder) supplies the
    decoded frame counts (required for ``ucf`` and ``xd``) and the names labels are
    keyed by.  Without it, array formats are keyed by their own names.  Per-video
    problems are returned in :attr:`LabelSet.issues`; a file that cannot be read as
    ``format`` at all raises :class:`LabelError`.
    """
    if format not in _READERS:
        raise ConfigError(f"unknown label format {format!r}; allowed: {', '.join(get_args(LabelFormat))}")
    src = Path(path)
    issues: list[LabelIssue] = []
    entries = _READERS[format](src, issues)
    if features is None:
        if format in _SPAN_FORMATS:
            raise ConfigError(f"{format} annotations give intervals, not per-frame labels: pass the "
                              "features folder so that frame counts come from the sidecars")
        videos = _unmatched(entries, issues)
    else:
        videos = _match(entries, as_feature_set(features), format, issues)
    for issue in issues:
        log.debug("label issue: %s", issue)
    return LabelSet(videos=videos, issues=tuple(issues), format=format, source=str(src))


def detect_label_format(path: str | os.PathLike[str]) -> Literal["canonical", "npy-dir"]:
    """The safe formats that can be recognised from the path alone.

    Pickles and text annotations are never guessed: pickle because loading it can
    run code, the text formats because UCF and XD lines can look alike.
    """
    p = Path(path)
    if (p / INDEX_NAME).is_file():
        return "canonical"
    if p.is_dir():
        return "npy-dir"
    allowed = ", ".join(get_args(LabelFormat))
    if p.suffix.lower() in (".pickle", ".pkl"):
        raise ConfigError(f"{p} looks like a pickle; pickles can run code when loaded, so say so "
                          "explicitly with format 'pickle' (--labels-format pickle)")
    raise ConfigError(f"cannot tell the ground-truth format of {p}; name it ({allowed})")


def as_label_set(
    labels: LabelSet | str | os.PathLike[str], *,
    format: LabelFormat | Literal["auto"] = "auto",
    features: FeatureSet | str | os.PathLike[str] | None = None,
) -> LabelSet:
    """Accept a :class:`LabelSet` or a path (``format="auto"``: canonical or npy-dir only)."""
    if isinstance(labels, LabelSet):
        return labels
    fmt = detect_label_format(labels) if format == "auto" else format
    return read_labels(labels, format=fmt, features=features)


def write_labels(labels: LabelSet, out: str | os.PathLike[str], *,
                 inputs: Iterable[str | os.PathLike[str] | None] = ()) -> Path:
    """Write the canonical form: ``out/<video>.npy`` (uint8) and ``out/labels.json``.

    Returns the path of ``labels.json``.  Videos are written in sorted name order;
    every file is written atomically.  Raises :class:`~vadfeat.errors.ConfigError`
    before writing anything when ``out`` is, holds or lies inside the ground truth
    it was read from or one of ``inputs`` (the features folder), or when a file at
    one of its names was not written by ``vadfeat labels``
    (:mod:`vadfeat.store.ownership`).
    """
    root = Path(out)
    refuse_overlap(root, [labels.source or None, *inputs], command="labels")
    names = sorted(labels.videos)
    for name in names:
        rel = Path(f"{name}.npy")
        if rel.is_absolute() or ".." in rel.parts:  # names come from untrusted files
            raise LabelError(f"refusing to write labels of video {name!r} outside {root}")
    claim_outputs(root, [f"{n}.npy" for n in names] + [INDEX_NAME], command="labels")
    index: dict[str, dict[str, Any]] = {}
    for name in names:
        v = labels.videos[name]
        save_npy(root / f"{name}.npy", v.frames)
        index[name] = {"num_frames": v.num_frames, "video_label": v.video_label,
                       "source": v.source, "decoded_frames": v.decoded_frames}
    return write_json(root / INDEX_NAME, index)


def issues_by_kind(issues: Iterable[LabelIssue]) -> dict[str, int]:
    """Count of issues per kind (for summaries)."""
    counts: dict[str, int] = {}
    for i in issues:
        counts[i.kind] = counts.get(i.kind, 0) + 1
    return counts
