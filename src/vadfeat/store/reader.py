"""Read a folder of extracted features: feature files, sidecars and video names.

This is the read side of the on-disk contract in ``docs/DESIGN.md``.  Ground
truth, alignment, list files, resampling and the report read features only
through :func:`read_features`, never by globbing on their own.

Layouts (``docs/DESIGN.md``):

``flat``
    ``ROOT/<relative dir>/<stem>.npy`` with a ``<stem>.json`` sidecar.
``fed-wsvad``
    ``ROOT/features_video/i3d/combine/<video>/feature.npy`` with ``feature.json``
    (``ROOT`` may also be the ``combine`` folder itself).
``per-crop``
    ``ROOT/<relative dir>/<stem>__<k>.npy`` (``[T, D]`` each) with one
    ``<stem>.json`` sidecar.  ``<stem>_<k>.npy`` (one underscore, one digit: the
    naming PEL4VAD's ShanghaiTech loader needs, see :mod:`vadfeat.dataset.export`) counts
    as crop ``k`` only when ``<stem>.json`` exists and ``<stem>_<k>.json`` does not,
    so a flat file whose name ends in ``_<digit>`` is never taken for a crop.

``webdataset`` / ``parquet`` shards
    ``ROOT/shard-<writer>-<seq>.tar`` or ``.parquet`` with their index in
    ``ROOT/.vadfeat-index`` (``--sink webdataset|parquet``, :mod:`vadfeat.store.shards`):
    one record per video, the newest copy when several shards hold it.  The record's
    :attr:`FeatureRecord.shard` says where its features lie; its layout is ``flat``
    (what the sidecar inside the shard states) and :meth:`FeatureRecord.load` reads only
    that video's member, when asked.  A shard that cannot be read, and a ``.tar`` or
    ``.parquet`` file beside them that vadfeat did not write, are reported by name.

One folder may hold videos in several layouts (two runs with different ``--layout``
into one ``-o``): with ``layout="auto"`` each video is read in the layout its sidecar
states, and only files no sidecar places fall back on :func:`detect_layout`.  A
sidecar carrying a ``sidecar_sha256`` that no longer matches its content (edited by
hand) is not used: its video is reported, not read.

Video names.  A record's :attr:`FeatureRecord.name` is its path below the layout
root without extension, POSIX-style (``"sub/clip"``).  Ground-truth files name
videos in their own ways (``Abuse028_x264.mp4``, ``Abuse028_x264``,
``Abuse/Abuse028_x264.mp4``), so matching uses :func:`video_key`: the base name
with a *known video extension* removed.  Only known extensions are stripped
because XD-Violence names contain dots (``A.Beautiful.Mind.2001__#00-25-20_...``)
and ``Path.stem`` would cut them in the wrong place.

Feature files without a sidecar are treated in two ways.  In a folder written by
``vadfeat extract`` (it has a ``manifest.jsonl``) the sidecar is written last, so
a feature file without one is an interrupted write: that video is reported, not
read.  Elsewhere (files made by the legacy scripts) they are accepted: their
snippets are assumed to be consecutive, non-overlapping ``clip_len``-frame windows
from frame 0 and their decoded frame count is unknown; a warning says so.

This module also holds the small atomic-write helpers that the post-processing
modules (labels, align, lists, resample, report) share.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import pickle
import re
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, get_args

import numpy as np

from vadfeat._types import Layout, LayoutOrAuto
from vadfeat.errors import (  # FeatureReadError: re-exported (its old home)
    ConfigError,
    FeatureReadError,
    ShardReadError,
    UntrustedSidecar,
)
from vadfeat.io.video import VIDEO_EXTENSIONS as _VIDEO_EXTENSIONS
from vadfeat.store.atomic import NPY_ERRORS, atomic_path
from vadfeat.store.ownership import dump_json
from vadfeat.store.shards import INDEX_DIR, load_indexes, npy_bytes, shard_files, shard_sink
from vadfeat.store.sidecar import SIDECAR_DIGEST, seal_sidecar, sidecar_edited

log = logging.getLogger(__name__)


#: Extensions :func:`video_key` removes: the package's one list (``vadfeat.io.video``).
VIDEO_EXTENSIONS = _VIDEO_EXTENSIONS

_FED_SUBDIR = Path("features_video", "i3d", "combine")
_MANIFEST = "manifest.jsonl"
_CROP_RE = re.compile(r"^(?P<stem>.+)__(?P<k>\d+)\.npy$")
_SHORT_CROP_RE = re.compile(r"^(?P<stem>.+)_(?P<k>\d)\.npy$")


def video_key(name: str | os.PathLike[str]) -> str:
    """The name used to match a video across files: base name minus a video extension.

    ``"Abuse/Abuse028_x264.mp4"`` -> ``"Abuse028_x264"``;
    ``"A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A"`` is returned unchanged
    (``.2001__#00-...`` is not a video extension).
    """
    base = re.split(r"[\\/]", os.fspath(name).strip())[-1]
    root, ext = os.path.splitext(base)
    return root if ext.lower() in VIDEO_EXTENSIONS and root else base


def normalized_name(name: str | os.PathLike[str]) -> str:
    """A relative video name in POSIX form without a video extension (``"sub/clip"``)."""
    text = os.fspath(name).strip().replace("\\", "/").strip("/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts:
        return ""
    parts[-1] = video_key(parts[-1])
    return "/".join(parts)


@dataclass(frozen=True)
class FeatureIssue:
    """Something wrong with one video's feature files, reported by name."""

    video: str
    message: str

    def __str__(self) -> str:
        return f"{self.video}: {self.message}"


@dataclass(frozen=True)
class ShardMember:
    """Where one video's features lie inside a shard (``--sink webdataset|parquet``).

    ``shard``: the shard file; ``member``: the video's key in it (the webdataset sample
    key, the parquet row's stem); ``sink``: ``"webdataset"`` or ``"parquet"``;
    ``features_sha256``: the sha256 of the features' ``.npy`` bytes its sidecar records.
    """

    shard: Path
    member: str
    sink: str
    features_sha256: str | None = None

    def __str__(self) -> str:
        return f"{self.shard}#{self.member}"


@dataclass(frozen=True)
class FeatureRecord:
    """One video's feature file(s) and what its sidecar says about them.

    ``shape`` is the shape :meth:`load` returns: the stored array for ``flat`` and
    ``fed-wsvad``; for ``per-crop`` the crops stacked on axis 1 (``[T, crops, D]``).
    ``file_shape`` is the shape of each stored file.  ``snippets[i]`` is the
    inclusive ``[first, last]`` decoded-frame range of feature row ``i``
    (``(-1, -1)`` for the zero padding rows of uniformly resampled files).

    A video kept in a shard has ``shard`` set: its ``paths`` and ``sidecar`` are then
    the shard file (which holds both), its layout is ``flat`` and its features are read
    from the shard by :meth:`load` / :meth:`features_bytes`; code that copies feature
    files by path must use :meth:`features_bytes` for it (:attr:`in_shard`).
    """

    name: str
    layout: Layout
    root: Path
    paths: tuple[Path, ...]
    sidecar: Path | None
    shape: tuple[int, ...]
    file_shape: tuple[int, ...]
    num_frames: int | None
    snippets: tuple[tuple[int, int], ...]
    fps: float | None
    crop_order: tuple[str, ...] | None
    video: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    shard: ShardMember | None = None

    @property
    def in_shard(self) -> bool:
        """Whether the features lie inside a shard (no ``.npy`` file of their own)."""
        return self.shard is not None

    @property
    def location(self) -> str:
        """Where the features are, for messages: the (first) file, or ``<shard>#<member>``."""
        return str(self.shard) if self.shard is not None else str(self.paths[0])

    @property
    def key(self) -> str:
        """Matching key (:func:`video_key` of the name)."""
        return video_key(self.name)

    @property
    def stem(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def num_snippets(self) -> int:
        return self.shape[0]

    @property
    def settings(self) -> Mapping[str, Any]:
        value = self.metadata.get("settings")
        return value if isinstance(value, Mapping) else {}

    def load(self) -> np.ndarray:
        """The features as one array (per-crop files stacked into ``[T, crops, D]``).

        A shard's member is read from the shard (this video only) and checked against
        the sha256 its sidecar records.  Raises OSError or ValueError (a damaged file or
        member)."""
        if self.shard is not None:
            return np.load(io.BytesIO(self.features_bytes()), allow_pickle=False)
        arrays = [np.load(p, allow_pickle=False) for p in self.paths]
        if self.layout == "per-crop":
            return np.stack(arrays, axis=1)
        return arrays[0]

    def features_bytes(self) -> bytes:
        """The features as the bytes of one ``.npy`` file (``np.save`` of :meth:`load`'s array).

        A flat or fed-wsvad file's bytes as they are; a shard member's bytes, checked
        against the ``features_sha256`` its sidecar records (byte-identical to the
        ``.npy`` file the video was extracted or exported to); per-crop files stacked.
        Raises OSError or ValueError (a damaged file, or a member whose bytes do not
        match its recorded sha256)."""
        if self.shard is not None:
            data = _member_bytes(self.shard)
            want = self.shard.features_sha256
            if want is not None and hashlib.sha256(data).hexdigest() != want:
                raise ValueError(f"{self.shard}: the features do not match the sha256 their "
                                 "sidecar recorded (a damaged shard)")
            return data
        if self.layout == "per-crop":
            buf = io.BytesIO()
            np.save(buf, self.load(), allow_pickle=False)
            return buf.getvalue()
        return self.paths[0].read_bytes()

    def relative_paths(self) -> tuple[Path, ...]:
        """Feature file paths relative to the layout root (for writing derived copies); a
        video in a shard: the flat layout's ``<name>.npy``."""
        if self.shard is not None:
            return (Path(self.name + ".npy"),)
        return tuple(p.relative_to(self.root) for p in self.paths)

    def relative_sidecar(self) -> Path:
        """Where this record's sidecar lives (or would live) relative to the layout root."""
        if self.shard is not None:
            return Path(self.name + ".json")
        if self.sidecar is not None:
            return self.sidecar.relative_to(self.root)
        if self.layout == "fed-wsvad":
            return Path(self.name, "feature.json")
        return Path(self.name + ".json")


@dataclass(frozen=True)
class FeatureSet:
    """All feature records found under a folder, in sorted name order."""

    root: Path
    layout: Layout
    records: tuple[FeatureRecord, ...]
    issues: tuple[FeatureIssue, ...] = ()
    warnings: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[FeatureRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.records)

    def by_name(self) -> dict[str, FeatureRecord]:
        return {r.name: r for r in self.records}

    def by_key(self) -> dict[str, list[FeatureRecord]]:
        """Records grouped by :func:`video_key` (a list longer than 1 is a name collision)."""
        out: dict[str, list[FeatureRecord]] = {}
        for r in self.records:
            out.setdefault(r.key, []).append(r)
        return out

    @cached_property
    def _index(self) -> tuple[dict[str, FeatureRecord], dict[str, list[FeatureRecord]]]:
        # Built once: matching thousands of ground-truth names must not be quadratic.
        return self.by_name(), self.by_key()

    def find(self, name: str) -> list[FeatureRecord]:
        """Records a ground-truth name refers to: exact relative name first, then by key."""
        names, keys = self._index
        exact = names.get(normalized_name(name))
        if exact is not None:
            return [exact]
        return list(keys.get(video_key(name), []))


# --------------------------------------------------------------------------- reading


def _check_layout(layout: str) -> None:
    allowed = get_args(LayoutOrAuto)
    if layout not in allowed:
        raise ConfigError(f"unknown features layout {layout!r}; allowed: {', '.join(allowed)}")


def _fed_base(root: Path) -> Path | None:
    if (root / _FED_SUBDIR).is_dir():
        return root / _FED_SUBDIR
    if root.name == "combine" and any(root.glob("**/feature.npy")):
        return root
    return None


def _visible(path: Path, base: Path) -> bool:
    # Temporary files of atomic writers and hidden folders are not features.
    return not any(part.startswith(".") for part in path.relative_to(base).parts)


def _crop_match(p: Path) -> re.Match[str] | None:
    """``<stem>__<k>.npy``, or ``<stem>_<k>.npy`` beside a ``<stem>.json`` sidecar of its own."""
    m = _CROP_RE.match(p.name)
    if m:
        return m
    m = _SHORT_CROP_RE.match(p.name)
    if m and (p.parent / f"{m['stem']}.json").is_file() and not p.with_suffix(".json").exists():
        return m
    return None


def detect_layout(root: str | os.PathLike[str]) -> Layout:
    """Guess the layout of a features folder (see the module docstring)."""
    base = Path(root)
    if _fed_base(base) is not None:
        return "fed-wsvad"
    for p in sorted(base.rglob("*.npy")):
        m = _crop_match(p)
        if m and not (p.parent / f"{m['stem']}.npy").exists() and _visible(p, base):
            return "per-crop"
    return "flat"


def _npy_shape(path: Path) -> tuple[int, ...]:
    # mmap reads only the header: shapes of large files come for free.
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return tuple(int(s) for s in arr.shape)


def _read_sidecar(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError("sidecar is not a JSON object")
    return data


def _default_snippets(rows: int, clip_len: int) -> tuple[tuple[int, int], ...]:
    return tuple((i * clip_len, i * clip_len + clip_len - 1) for i in range(rows))


def _parse_snippets(value: Any, rows: int) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list) or len(value) != rows:
        n = len(value) if isinstance(value, list) else "no"
        raise ValueError(f"sidecar lists {n} snippets for {rows} feature rows")
    out = []
    for item in value:
        if item is None:  # padding rows of resampled files cover no frames
            out.append((-1, -1))
            continue
        first, last = int(item[0]), int(item[1])
        if first < 0 or last < first:
            raise ValueError(f"bad snippet range {item!r}")
        out.append((first, last))
    return tuple(out)


# A frame count above this in a sidecar is damage, not a video (10**8 frames at 30 fps
# is 38 days); ground-truth readers allocate per-frame arrays of it.
MAX_FRAMES = 10**8


def _frame_count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FRAMES:
        raise ValueError(f"sidecar num_frames must be a frame count (0 to {MAX_FRAMES}), "
                         f"got {value!r}")
    return value


def _make_record(
    *, name: str, layout: Layout, root: Path, paths: Sequence[Path], sidecar: Path | None,
    clip_len: int, warnings: list[str], vadfeat_output: bool,
) -> FeatureRecord:
    if sidecar is None and vadfeat_output:
        raise ValueError("no sidecar next to the feature file: an interrupted or failed write "
                         "(vadfeat writes the sidecar last); extract this video again")
    shapes = [_npy_shape(p) for p in paths]
    if len(set(shapes)) != 1:
        raise ValueError(f"crop files have different shapes: {shapes}")
    file_shape = shapes[0]
    if not file_shape:
        raise ValueError("feature file holds a scalar, not an array of rows")
    shape = (file_shape[0], len(paths), *file_shape[1:]) if layout == "per-crop" else file_shape
    meta: dict[str, Any] = {}
    if sidecar is not None:
        meta = _read_sidecar(sidecar)
        edited = sidecar_edited(meta)
        if edited is not None:
            raise UntrustedSidecar(f"sidecar {sidecar.name}: {edited}; extract this video again")
    return _record_from_meta(name=name, layout=layout, root=root, paths=paths, sidecar=sidecar,
                             shape=shape, file_shape=file_shape, meta=meta, clip_len=clip_len,
                             warnings=warnings)


def _record_from_meta(
    *, name: str, layout: Layout, root: Path, paths: Sequence[Path], sidecar: Path | None,
    shape: tuple[int, ...], file_shape: tuple[int, ...], meta: dict[str, Any], clip_len: int,
    warnings: list[str], shard: ShardMember | None = None,
) -> FeatureRecord:
    """A record from its stored shape and its (trusted) sidecar ``meta`` (``{}``: none)."""
    if sidecar is not None:
        recorded = meta.get("shape")
        if recorded is not None and tuple(recorded) not in (shape, file_shape):
            raise ValueError(f"sidecar shape {list(recorded)} does not match the file's {list(shape)}")
    if "snippets" in meta:
        snippets = _parse_snippets(meta["snippets"], shape[0])
    else:
        what = "sidecar without snippets" if sidecar is not None else "no sidecar"
        warnings.append(f"{name}: {what}; assuming consecutive {clip_len}-frame snippets from "
                        "frame 0" + ("" if meta.get("num_frames") else
                                     " and an unknown decoded frame count"))
        snippets = _default_snippets(shape[0], clip_len)
    num_frames = meta.get("num_frames")
    fps = meta.get("fps")
    crop_order = meta.get("crop_order")
    return FeatureRecord(
        name=name, layout=layout, root=root, paths=tuple(paths), sidecar=sidecar, shape=shape,
        file_shape=file_shape,
        num_frames=_frame_count(num_frames),
        snippets=snippets,
        fps=float(fps) if fps is not None else None,
        crop_order=tuple(crop_order) if crop_order else None,
        video=meta.get("video"),
        metadata=MappingProxyType(meta),
        shard=shard,
    )


def _candidates(root: Path, layout: Layout) -> tuple[Path, list[tuple[str, list[Path], Path | None]]]:
    """(layout root, [(name, feature paths, sidecar or None)]) in sorted order."""
    found: list[tuple[str, list[Path], Path | None]] = []
    if layout == "fed-wsvad":
        base = _fed_base(root) or root
        for p in sorted(base.rglob("feature.npy")):
            if not _visible(p, base):
                continue
            side = p.with_suffix(".json")
            found.append((p.parent.relative_to(base).as_posix(), [p], side if side.is_file() else None))
        return base, found
    if layout == "per-crop":
        groups: dict[Path, dict[int, Path]] = {}
        for p in sorted(root.rglob("*.npy")):
            m = _crop_match(p)
            if m and _visible(p, root):
                groups.setdefault(p.parent / m["stem"], {})[int(m["k"])] = p
        for stem_path in sorted(groups):
            crops = groups[stem_path]
            paths = [crops[k] for k in sorted(crops)]
            side = stem_path.parent / f"{stem_path.name}.json"
            found.append((stem_path.relative_to(root).as_posix(), paths,
                          side if side.is_file() else None))
        return root, found
    for p in sorted(root.rglob("*.npy")):
        if not _visible(p, root):
            continue
        side = p.with_suffix(".json")
        found.append((p.relative_to(root).with_suffix("").as_posix(), [p],
                      side if side.is_file() else None))
    return root, found


def _stated_layout(sidecar: Path, cache: dict[Path, str | None]) -> str | None:
    """The ``layout`` a sidecar states (``None``: no sidecar, unreadable, or none stated)."""
    if sidecar not in cache:
        layout = None
        if sidecar.is_file():
            try:
                layout = _read_sidecar(sidecar).get("layout")
            except (OSError, ValueError, RecursionError):
                layout = None
        cache[sidecar] = layout if isinstance(layout, str) else None
    return cache[sidecar]


Candidates = list[tuple[str, list[Path], Path | None]]


def _auto_groups(base: Path) -> list[tuple[Layout, Path, Candidates]]:
    """Every video of ``base`` in its own layout: ``[(layout, layout root, candidates)]``.

    A fed-wsvad tree is read as such; every other feature file goes by its sidecar's
    ``layout`` (a ``flat`` sidecar of its own, or a ``per-crop`` sidecar of its stem).
    Files no sidecar places (legacy folders) follow :func:`detect_layout` among
    themselves, as before; those not named like crops are then flat.
    """
    groups: list[tuple[Layout, Path, Candidates]] = []
    fed = _fed_base(base)
    if fed is not None:
        groups.append(("fed-wsvad", *_candidates(base, "fed-wsvad")))
        if fed == base:
            return groups
    cache: dict[Path, str | None] = {}
    flat: list[Path] = []
    crops: dict[Path, dict[int, Path]] = {}
    rest: list[Path] = []
    for p in sorted(base.rglob("*.npy")):
        if not _visible(p, base) or (fed is not None and fed in p.parents):
            continue
        if _stated_layout(p.with_suffix(".json"), cache) == "flat":
            flat.append(p)
            continue
        m = _crop_match(p)
        if m and _stated_layout(p.parent / f"{m['stem']}.json", cache) == "per-crop":
            crops.setdefault(p.parent / m["stem"], {})[int(m["k"])] = p
            continue
        rest.append(p)
    rest_per_crop = any((m := _crop_match(p)) and not (p.parent / f"{m['stem']}.npy").exists()
                        for p in rest)
    for p in rest:
        m = _crop_match(p) if rest_per_crop else None
        if m:
            crops.setdefault(p.parent / m["stem"], {})[int(m["k"])] = p
        else:
            flat.append(p)
    if flat:
        found: Candidates = []
        for p in sorted(flat):
            side = p.with_suffix(".json")
            found.append((p.relative_to(base).with_suffix("").as_posix(), [p],
                          side if side.is_file() else None))
        groups.append(("flat", base, found))
    if crops:
        found = []
        for stem_path in sorted(crops):
            paths = [crops[stem_path][k] for k in sorted(crops[stem_path])]
            side = stem_path.parent / f"{stem_path.name}.json"
            found.append((stem_path.relative_to(base).as_posix(), paths,
                          side if side.is_file() else None))
        groups.append(("per-crop", base, found))
    return groups


@functools.lru_cache(maxsize=32)
def _tar_members(path: str, size: int, mtime_ns: int) -> dict[str, tuple[int, int]]:
    """``{member file name: (offset of its data, its size)}`` of a tar shard, read once per
    shard version (``size``, ``mtime_ns``) from the headers alone (``tarfile`` seeks past
    the data), so that reading each video of a shard in turn does not stream the shard
    up to it every time."""
    try:
        with tarfile.open(path, mode="r:") as tf:
            return {m.name: (m.offset_data, m.size) for m in tf.getmembers() if m.isfile()}
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise ShardReadError(f"{path}: damaged or not a tar shard ({type(exc).__name__}: {exc})") from exc


@functools.lru_cache(maxsize=32)
def _parquet_groups(path: str, size: int, mtime_ns: int) -> dict[str, int]:
    """``{stem: row group}`` of a Parquet shard (one video per row group), from its ``stem``
    column read once per shard version (``size``, ``mtime_ns``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        stems = pf.read(columns=["stem"]).column("stem").to_pylist()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ShardReadError(f"{path}: damaged or not a Parquet shard ({exc})") from exc
    if len(stems) != pf.metadata.num_row_groups:
        raise ShardReadError(f"{path}: not one video per row group ({len(stems)} rows, "
                             f"{pf.metadata.num_row_groups} row groups)")
    return {stem: group for group, stem in enumerate(stems)}


def _parquet_features(path: Path, group: int) -> np.ndarray:
    """The ``[T, ...]`` float32 features of one row group of a Parquet shard (``features``
    rows of ``W`` floats, reshaped to the row's ``shape``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path).read_row_group(group, columns=["features", "shape"])
        shape = table.column("shape")[0].as_py()
        flat = table.column("features").combine_chunks().flatten().flatten()  # [T][W] -> T*W
        return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(shape)
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError) as exc:
        raise ShardReadError(f"{path}: row group {group} is damaged ({exc})") from exc


def _member_bytes(member: ShardMember) -> bytes:
    """The ``.npy`` bytes of one video in a shard (that member only is read: a tar member
    at its offset, a Parquet row group).  Raises :class:`~vadfeat.errors.ShardReadError`
    (a ValueError) or OSError."""
    st = member.shard.stat()
    if member.sink == "parquet":
        group = _parquet_groups(str(member.shard), st.st_size, st.st_mtime_ns).get(member.member)
        if group is None:
            raise ShardReadError(f"{member.shard}: no video {member.member!r} in this shard")
        return npy_bytes(_parquet_features(member.shard, group))
    where = _tar_members(str(member.shard), st.st_size, st.st_mtime_ns).get(member.member + ".npy")
    if where is None:
        raise ShardReadError(f"{member.shard}: no video {member.member!r} in this shard")
    offset, size = where
    with open(member.shard, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise ShardReadError(f"{member.shard}: cut short inside {member.member}.npy")
    return data


#: The sidecar fields a sharded sink adds (in place of ``files``): they say where a copy
#: in a shard lies, so a copy written elsewhere (``export``, ``align``) drops them.
SHARD_FIELDS = ("features_sha256", "sink", "shard", "stem")

#: Files beside shards that look like data but are not vadfeat's shards (reported, never read).
_DATA_SUFFIXES = (".tar", ".parquet")


def _has_shards(base: Path) -> bool:
    return bool(shard_files(base)) or (base / INDEX_DIR).is_dir()


def _shard_records(base: Path, *, clip_len: int, warnings: list[str],
                   ) -> tuple[list[FeatureRecord], list[FeatureIssue]]:
    """One record per video of the shards directly in ``base`` (the newest copy), and what
    cannot be read: damaged shards, files that are not vadfeat's shards, videos whose copy
    is damaged or whose sidecar was edited.  Reads only the indexes (and the contents of
    a shard whose index is missing or stale); writes nothing."""
    catalog = load_indexes(base)
    issues: list[FeatureIssue] = []
    names = {p.name for p in shard_files(base)}
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        if entry.name.endswith(_DATA_SUFFIXES) and entry.name not in names and not entry.name.startswith("."):
            issues.append(FeatureIssue(entry.name, "not a vadfeat shard (its name is not "
                                       "shard-<writer>-<seq>.tar/.parquet): not read"))
    for name, why in sorted(catalog.foreign.items()):
        issues.append(FeatureIssue(name, f"not a vadfeat shard, not read: {why}"))
    for name, why in sorted(catalog.damaged.items()):
        issues.append(FeatureIssue(name, f"damaged shard: {why}"))
    records: list[FeatureRecord] = []
    for stem in sorted(catalog.videos):
        video = catalog.videos[stem]
        if video.problem is not None:
            issues.append(FeatureIssue(stem, f"unreadable features: {video.problem}"))
            continue
        path = base / video.shard
        meta = dict(video.sidecar)
        edited = sidecar_edited(meta)
        if edited is not None:
            issues.append(FeatureIssue(stem, f"not trusted: its sidecar in {video.shard}: {edited}"))
            continue
        try:
            shape = tuple(int(n) for n in video.shape)
            if not shape:
                raise ValueError("its shard index records no shape")
            member = ShardMember(path, video.member, shard_sink(path) or "",
                                 video.features_sha256 or None)
            records.append(_record_from_meta(
                name=stem, layout="flat", root=base, paths=(path,), sidecar=path, shape=shape,
                file_shape=shape, meta=meta, clip_len=clip_len, warnings=warnings, shard=member))
        except (TypeError, ValueError, KeyError, IndexError, OverflowError, RecursionError) as exc:
            issues.append(FeatureIssue(stem, f"unreadable features in {video.shard}: {exc}"))
    return records, issues


def read_features(
    root: str | os.PathLike[str], *, layout: LayoutOrAuto = "auto", clip_len: int = 16,
) -> FeatureSet:
    """Find every feature file under ``root`` and read its shape and sidecar.

    ``layout="auto"`` reads every video in its own layout (its sidecar says which; a
    folder may hold flat, per-crop and fed-wsvad videos side by side, e.g. two runs
    with different ``--layout`` into one ``-o``); files without a sidecar follow
    :func:`detect_layout`.  A given ``layout`` reads only that one.  ``clip_len`` is
    only used for files without a sidecar.  A video whose files or sidecar cannot be
    read, whose sidecar disagrees with its file or was edited by hand (its digest does
    not match), or whose name two layouts share, is left out and reported in
    :attr:`FeatureSet.issues`; the folder itself missing or holding no feature file
    raises :class:`FeatureReadError`.  With ``layout="auto"`` the shards directly in
    ``root`` are read too (module docstring): one record per video, its newest copy,
    whose features are read from the shard only when asked (:meth:`FeatureRecord.load`);
    a damaged shard, or a ``.tar`` / ``.parquet`` there that is not vadfeat's shard, is
    an issue named after the file (``layout="flat"`` reads them too: their sidecars say
    flat).  :attr:`FeatureSet.root` is the layout's root
    (the ``combine`` folder for fed-wsvad), ``root`` itself when layouts are mixed.
    """
    _check_layout(layout)
    base = Path(root)
    if not base.is_dir():
        raise FeatureReadError(f"features folder {base} does not exist")
    if layout == "auto":
        groups = _auto_groups(base) or [("flat", base, [])]
    else:
        groups = [(layout, *_candidates(base, layout))]
    homes = {base}
    for _, layout_root, _ in groups:  # fed-wsvad keeps its manifest three levels above combine
        homes.update([layout_root, *layout_root.parents[:3]])
    vadfeat_output = any((h / _MANIFEST).is_file() for h in homes)
    records: list[FeatureRecord] = []
    issues: list[FeatureIssue] = []
    warnings: list[str] = []
    shard_kind: list[Layout] = []
    if layout in ("auto", "flat") and _has_shards(base):  # a shard's videos are flat
        records, issues = _shard_records(base, clip_len=clip_len, warnings=warnings)
        if records or issues:  # the shards' videos: flat (their sidecars say so), a group of their own
            shard_kind.append("flat")
    for chosen, layout_root, candidates in groups:
        for name, paths, sidecar in candidates:
            try:
                records.append(_make_record(name=name, layout=chosen, root=layout_root, paths=paths,
                                            sidecar=sidecar, clip_len=clip_len, warnings=warnings,
                                            vadfeat_output=vadfeat_output))
            except UntrustedSidecar as exc:
                issues.append(FeatureIssue(name, f"not trusted: {exc}"))
            except (*NPY_ERRORS, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
                # An empty placeholder or a torn file is one video's problem, not the folder's.
                issues.append(FeatureIssue(name, f"unreadable features: {exc or type(exc).__name__}"))
    layouts: dict[str, list[FeatureRecord]] = {}
    for r in records:
        layouts.setdefault(r.name, []).append(r)
    twice = {n for n, rs in layouts.items() if len(rs) > 1}
    for n in sorted(twice):
        where = ", ".join(f"{r.shard.sink if r.shard else r.layout} ({r.location})" for r in layouts[n])
        issues.append(FeatureIssue(n, f"found in more than one layout: {where}; remove one"))
    records = [r for r in records if r.name not in twice]
    kinds = [g[0] for g in groups if g[2]] + shard_kind
    if len(kinds) > 1:  # one sorted order across the layouts
        records.sort(key=lambda r: r.name)
        issues.sort(key=lambda i: i.video)
    if not records and not issues:
        raise FeatureReadError(f"no {kinds[0] if len(kinds) == 1 else groups[0][0]} feature files "
                               f"under {base}")
    for w in warnings[:5]:
        log.warning("%s", w)
    if len(warnings) > 5:
        log.warning("... and %d more videos without a sidecar", len(warnings) - 5)
    if len(kinds) > 1:
        counts = {k: sum(r.layout == k for r in records) for k in kinds}
        log.info("%s holds videos in %s layouts: %s", base, len(kinds),
                 ", ".join(f"{n} {k}" for k, n in counts.items()))
        main: Layout = max(kinds, key=lambda k: counts[k])
        return FeatureSet(root=base, layout=main, records=tuple(records), issues=tuple(issues),
                          warnings=tuple(warnings))
    chosen_layout, layout_root, _ = next((g for g in groups if g[2]), groups[0])
    return FeatureSet(root=layout_root, layout=chosen_layout, records=tuple(records),
                      issues=tuple(issues), warnings=tuple(warnings))


def as_feature_set(
    features: FeatureSet | str | os.PathLike[str], *, layout: LayoutOrAuto = "auto",
) -> FeatureSet:
    """Accept either a :class:`FeatureSet` or a folder to read."""
    return features if isinstance(features, FeatureSet) else read_features(features, layout=layout)


# ------------------------------------------------------------------ atomic writing


def _atomic(path: Path, write: Any, mode: str) -> Path:
    # One mechanism for every file vadfeat writes: its temporaries are the ones a
    # later run recognises and removes after a crash (atomic.clean_stale_temporaries).
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        write(f)
    return path


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` atomically (temporary name, then ``os.replace``)."""
    return _atomic(Path(path), lambda f: np.save(f, np.asarray(array), allow_pickle=False), "wb")


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically.

    A file name that is not valid UTF-8 (``os.fsdecode`` of its bytes has lone
    surrogates) is written back as its original bytes, so a list line still opens it.
    """
    return _atomic(Path(path), lambda f: f.write(text.encode("utf-8", "surrogateescape")), "wb")


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write JSON atomically, keys in insertion order.

    Non-ASCII text is kept readable; a name that is not valid UTF-8 is written as
    ``\\udcXX`` escapes (valid JSON that ``json.loads`` turns back into the same name).
    """
    return write_text(path, dump_json(data))


def write_pickle(path: str | os.PathLike[str], data: Any) -> Path:
    """Write a pickle atomically (only for the legacy formats downstream code reads)."""
    return _atomic(Path(path), lambda f: pickle.dump(data, f, protocol=4), "wb")


def derived_sidecar(record: FeatureRecord, *, shape: Sequence[int],
                    snippets: Sequence[tuple[int, int] | None], step: str,
                    details: Mapping[str, Any]) -> dict[str, Any]:
    """A sidecar for a file derived from ``record`` (aligned, resampled).

    Keeps every original field, replaces ``shape`` and ``snippets`` and appends
    ``{"step": ..., **details}`` to a ``derived`` list so the history stays readable.
    """
    meta = dict(record.metadata)
    meta.pop(SIDECAR_DIGEST, None)  # the source's digest does not describe this file
    for key in SHARD_FIELDS:  # where the source was kept, not this file
        meta.pop(key, None)
    meta["shape"] = [int(s) for s in shape]
    meta["snippets"] = [None if s is None else [int(s[0]), int(s[1])] for s in snippets]
    if record.num_frames is not None:
        meta["num_frames"] = record.num_frames
    history = list(meta.get("derived") or [])
    sources = [record.location] if record.shard is not None else [str(p) for p in record.paths]
    history.append({"step": step, "from": sources, **details})
    meta["derived"] = history
    return meta


def derived_names(record: FeatureRecord) -> list[str]:
    """The names (relative POSIX) :func:`write_derived` writes for ``record`` below its ``out_root``."""
    base = PurePosixPath(_FED_SUBDIR.as_posix()) if record.layout == "fed-wsvad" else PurePosixPath()
    return [(base / PurePosixPath(p.as_posix())).as_posix()
            for p in (*record.relative_paths(), record.relative_sidecar())]


def write_derived(record: FeatureRecord, out_root: str | os.PathLike[str], array: np.ndarray,
                  sidecar: Mapping[str, Any]) -> tuple[Path, ...]:
    """Write ``array`` (the whole video's features) in the record's layout below ``out_root``.

    Per-crop records are split back into one ``[T, D]`` file per crop; fed-wsvad
    records go below ``out_root/features_video/i3d/combine`` so that the result
    is again a fed-wsvad folder.
    """
    out = Path(out_root)
    if record.layout == "fed-wsvad":
        out = out / _FED_SUBDIR
    written: list[Path] = []
    rel = record.relative_paths()
    if record.layout == "per-crop":
        for k, p in enumerate(rel):
            written.append(save_npy(out / p, np.ascontiguousarray(array[:, k])))
    else:
        written.append(save_npy(out / rel[0], array))
    write_json(out / record.relative_sidecar(), seal_sidecar(sidecar))
    return tuple(written)
