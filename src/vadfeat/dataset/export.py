"""Derive any on-disk layout from an existing extraction, without recomputing (docs/REFERENCE.md, section 3).

A ViT-g extraction is days of GPU time; the layout a downstream code base reads is a
numpy slice away.  :func:`export` reads a features folder in any layout (``flat``,
``per-crop``, ``fed-wsvad``) and writes the files one format needs:

========== ======================================================= ===============
format     files per video (below ``OUT``)                         layout
========== ======================================================= ===============
flat       ``<name>.npy`` ``[T, crops, D]`` + ``<name>.json``      flat
rtfm       as ``flat`` (RTFM, MGFN, S3R read one 3-D file a video) flat
fed-wsvad  ``features_video/i3d/combine/<name>/feature.npy``       fed-wsvad
per-crop   ``<name>__<k>.npy`` ``[T, D]`` + ``<name>.json``        per-crop
ur-dmu     as ``per-crop``                                         per-crop
vadclip    as ``per-crop``                                         per-crop
pel4vad    as ``per-crop``; with ``dataset="shanghaitech"``        per-crop
           ``<name>_<k>.npy`` (see below)
========== ======================================================= ===============

Shards.  ``webdataset`` and ``parquet`` pack the videos into shards below ``OUT``
through the sharded sinks (:mod:`vadfeat.store.sinks`, the format of
:mod:`vadfeat.store.shards`): each video's ``.npy`` bytes as they are (a ``crops``
selection: the sliced array, as ``np.save`` writes it) and its sidecar with the
``export`` record; only videos with a vadfeat sidecar can be packed.  The other way,
``features`` may be a folder of shards (:func:`~vadfeat.store.reader.read_features`
reads them): ``flat`` writes each video's ``.npy`` bytes exactly as the shard holds
them, with the sidecar ``extract`` writes (``files`` in place of the shard fields), so
``read_features`` and a resumed ``extract`` take the folder as their own.  A shard
export is resumable too: a video whose newest copy in ``OUT`` has the same settings,
the same feature bytes and an intact shard is skipped; a new copy supersedes an older
one, which the sink drops from its shard at the end.  Files in ``OUT`` vadfeat did not
write (a ``shard-*`` file that is not its shard included) are never read or replaced.

PEL4VAD's ShanghaiTech loader (``dataset.py``, ``SHDataset.__getitem__``) takes the
video name as ``path.split('/')[-1][:-6]``: it cuts exactly ``_<k>.npy``, one
underscore and one digit, and looks the name up in its ``relabel.list``.  A
``__<k>`` suffix would leave a trailing ``_`` and every abnormal video would get the
normal class.  Its UCF-Crime and XD-Violence loaders need the opposite: the XD
loader splits the line on ``__`` to find the class after ``_label_``, so a
``_<k>`` suffix breaks the normal class ``A``.  Hence ``dataset`` matters for
``pel4vad`` only, and ShanghaiTech exports allow at most 10 crops.

How files are made.  When an output file would hold exactly the bytes of a source
file (flat to flat or fed-wsvad, per-crop to any per-crop format) it is a **hard
link** (no copy, no extra disk); when the link cannot be made (another file system)
the bytes are copied.  Otherwise the array is read once (memory-mapped) and sliced
(``[T, crops, D]`` to one ``[T, D]`` file per crop, in the source's dtype, so the
bytes equal what ``extract --layout per-crop`` writes) or stacked.  ``crops``
selects crops by index (e.g. the 5 of a 10-crop extraction that XD-Violence code
expects); then nothing is linked for a multi-crop target.

Every file is written atomically (temporary name, ``os.replace``), feature files
first and the sidecar last.  The sidecar keeps every field of the source sidecar
(unknown keys included), with ``shape``, ``layout`` and ``crop_order`` updated and
an ``export`` record: format, dataset, source files with their sha256 and
``(size, mtime_ns, inode)``, crops, and what was done to each output file.

Resumable: a video whose sidecar's ``export`` record names the same format,
dataset, crops and source hashes, and whose files all still hold the sha256 the
record keeps (``outputs``), is skipped.  (The source's stat tuple is compared first;
its hash is recomputed only when it differs.)  Ownership: a file at a target path is
replaced only when the sidecar's export record lists it or the video's ownership
record (``OUT/.vadfeat-locks/<key>.owned``, written before any of its files is
replaced) names it; any other file in the way fails that video with an issue naming
it, and the run goes on.  Several exports into one folder at once claim each video
(:class:`~vadfeat.store.claims.Claims`), and a run first removes the temporaries of
killed ones.  Sidecars are sealed (``sidecar_sha256``) and written as ASCII JSON, so
names that are not UTF-8 survive.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

import numpy as np

from vadfeat._types import Dataset, ExportFormat
from vadfeat._version import __version__
from vadfeat.errors import ConfigError
from vadfeat.errors import ForeignFileError as _NotOurs
from vadfeat.store.atomic import (
    NPY_ERRORS,
    atomic_path,
    clean_stale_temporaries,
    save_json,
    save_npy,
    sha256_file,
)
from vadfeat.store.claims import Claims
from vadfeat.store.ownership import read_owned, write_owned
from vadfeat.store.reader import (
    SHARD_FIELDS,
    FeatureIssue,
    FeatureRecord,
    FeatureSet,
    Layout,
    as_feature_set,
)
from vadfeat.store.shards import npy_bytes
from vadfeat.store.sidecar import SIDECAR_DIGEST, is_vadfeat_sidecar, seal_sidecar, sidecar_edited
from vadfeat.store.sinks import SHARD_SIZE, ShardedSink, VideoFeatures, make_sink

log = logging.getLogger(__name__)

Action = Literal["linked", "copied", "sliced", "skipped"]

#: The layout each format is written in (the shard formats: what their sidecars state).
FORMAT_LAYOUT: Mapping[str, Layout] = {
    "flat": "flat", "rtfm": "flat", "fed-wsvad": "fed-wsvad",
    "per-crop": "per-crop", "ur-dmu": "per-crop", "vadclip": "per-crop", "pel4vad": "per-crop",
    "webdataset": "flat", "parquet": "flat",
}
#: The formats written as shards by a sharded sink (``vadfeat.store.sinks``).
SHARD_FORMATS = ("webdataset", "parquet")
_FED_SUBDIR = Path("features_video", "i3d", "combine")


def _check(value: object, allowed: tuple[object, ...], what: str) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}")


def crop_suffix(format: str, dataset: str | None) -> str:
    """``"_"`` for PEL4VAD ShanghaiTech (its loader cuts ``_<k>.npy``), else ``"__"``."""
    return "_" if format == "pel4vad" and dataset == "shanghaitech" else "__"


@dataclass(frozen=True)
class Target:
    """Where one video goes: feature files (one, or one per crop) and the sidecar."""

    features: tuple[Path, ...]
    sidecar: Path


def target_paths(out: Path, name: str, *, format: ExportFormat, crops: int,
                 dataset: Dataset | None = None) -> Target:
    """Output paths of video ``name`` (relative POSIX name) for ``format`` below ``out``."""
    rel = Path(*name.split("/"))
    layout = FORMAT_LAYOUT[format]
    if layout == "fed-wsvad":
        folder = out / _FED_SUBDIR / rel
        return Target((folder / "feature.npy",), folder / "feature.json")
    base = out / rel
    sidecar = base.with_name(base.name + ".json")
    if layout == "flat":
        return Target((base.with_name(base.name + ".npy"),), sidecar)
    sep = crop_suffix(format, dataset)
    return Target(tuple(base.with_name(f"{base.name}{sep}{k}.npy") for k in range(crops)), sidecar)


@dataclass(frozen=True)
class ExportedVideo:
    """One video: its output files and what was done (linked, copied, sliced or skipped)."""

    name: str
    paths: tuple[Path, ...]
    action: Action


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote, skipped and had to report."""

    out: Path
    format: ExportFormat
    videos: tuple[ExportedVideo, ...]
    issues: tuple[FeatureIssue, ...]
    seconds: float

    def count(self, action: Action) -> int:
        return sum(v.action == action for v in self.videos)


# ----------------------------------------------------------------------- source identity


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [int(st.st_size), int(st.st_mtime_ns), int(st.st_ino)]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _recorded_sha(record: FeatureRecord, path: Path) -> str | None:
    """A sha256 the source sidecar already states for ``path`` (written by newer extracts)."""
    for key in ("sha256", "files_sha256", "file_sha256"):
        value = record.metadata.get(key)
        if isinstance(value, str) and len(record.paths) == 1:
            return value
        if isinstance(value, Mapping):
            found = value.get(path.name)
            if isinstance(found, str):
                return found
    return None


def _source_identity(record: FeatureRecord, previous: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Per source file: path, stat key and sha256 (reused from ``previous`` if the stat matches)."""
    old = {}
    if previous:
        for item in previous.get("sources") or []:
            if isinstance(item, Mapping) and isinstance(item.get("path"), str):
                old[item["path"]] = item
    if record.shard is not None:  # one member of a shard: its recorded sha256, checked on read
        shard = record.shard
        return [{"path": f"{shard.shard.resolve()}#{shard.member}", "stat": _stat_key(shard.shard),
                 "sha256": shard.features_sha256 or hashlib.sha256(record.features_bytes()).hexdigest()}]
    out = []
    for p in record.paths:
        path = str(p.resolve())
        stat = _stat_key(p)
        prior = old.get(path)
        if prior is not None and prior.get("stat") == stat and isinstance(prior.get("sha256"), str):
            sha = prior["sha256"]
        else:
            sha = _recorded_sha(record, p) or file_sha256(p)
        out.append({"path": path, "stat": stat, "sha256": sha})
    return out


# ----------------------------------------------------------------------- ownership


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _pending(target: Target) -> Path:
    """The marker of an interrupted export by releases before ownership records (read only)."""
    return target.sidecar.with_name(f".{target.sidecar.name}.export-pending")


def _recorded_files(target: Target, record: Mapping[str, Any]) -> set[Path]:
    names = record.get("files")
    if not isinstance(names, list):
        return set()
    return {target.sidecar.with_name(n) for n in names
            if isinstance(n, str) and "/" not in n and n.endswith(".npy")}


def _existing_export(target: Target, owned: set[Path]) -> dict[str, Any] | None:
    """The sidecar already at ``target`` (``{}`` when only files of an interrupted export
    are there, ``None`` when nothing is); raises :class:`_NotOurs`.

    A file at a target path is this export's to replace only when the sidecar's
    ``export`` record lists it (the sidecar itself included) or the video's ownership
    record (``OUT/.vadfeat-locks/<key>.owned``, written before any file of the video is
    replaced) names it.  Releases before ownership records left a pending marker
    instead: with it, every target file counts as theirs.
    """
    existing = [p for p in (*target.features, target.sidecar) if os.path.lexists(p)]
    if not existing:
        return None
    meta = _read_json(target.sidecar) if target.sidecar.is_file() else None
    record = meta.get("export") if meta else None
    if not isinstance(record, dict) and _pending(target).exists():
        return {}
    ours = set(owned)
    if isinstance(record, dict):
        ours |= {target.sidecar, *_recorded_files(target, record)}
    for path in existing:
        if path not in ours or (path.is_symlink() or not path.is_file()):
            why = ("no sidecar with an export record beside it" if not isinstance(record, dict)
                   else "the export record beside it does not list it")
            raise _NotOurs(f"{path} exists and was not written by `vadfeat export` ({why}); not "
                           "replacing it: move it away or choose another output folder")
    return meta if isinstance(record, dict) and meta is not None else {}


# ----------------------------------------------------------------------- writing


def _link_or_copy(src: Path, dst: Path) -> Action:
    """Hard-link ``src`` to ``dst`` atomically; copy when linking is impossible."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
            action: Action = "linked"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            shutil.copyfile(src, tmp)
            action = "copied"
    return action


def _save_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _save_view(path: Path, array: np.ndarray) -> None:
    save_npy(path, np.ascontiguousarray(array))


def source_crops(record: FeatureRecord) -> int:
    """Crops (views) of a source video.

    Per-crop: its files.  A vadfeat sidecar says it with ``crop_order`` (``null`` for one
    view, whose file may still be 3-D: ``stats`` pooling gives ``[T, 3, D]``).  Legacy
    files without one: axis 1 of a 3-D array (RTFM-style ``[T, crops, D]``).
    """
    if record.layout == "per-crop":
        return len(record.paths)
    if "crop_order" in record.metadata:
        return len(record.crop_order) if record.crop_order else 1
    return record.file_shape[1] if len(record.file_shape) >= 3 else 1


def _write_video(record: FeatureRecord, target: Target, *, layout: Layout,
                 crops: Sequence[int] | None) -> Action:
    """Write one video's feature files; returns the main action (linked/copied/sliced)."""
    n_src = source_crops(record)
    chosen = list(range(n_src)) if crops is None else list(crops)
    whole = chosen == list(range(n_src))
    if record.shard is not None:  # in a shard: its .npy bytes, or slices of its array
        if n_src == 1 or (layout != "per-crop" and whole):
            _save_bytes(target.features[0], record.features_bytes())
            return "copied"
        arr = record.load()
        if layout == "per-crop":
            for k, dst in zip(chosen, target.features, strict=True):
                _save_view(dst, arr[:, k])
        else:
            _save_view(target.features[0], arr[:, chosen])
        return "sliced"
    if n_src == 1:  # one view: the file (or crop 0) is every target's single file
        return _link_or_copy(record.paths[0], target.features[0])
    if layout == "per-crop":
        if record.layout == "per-crop":
            actions = {_link_or_copy(record.paths[k], dst)
                       for k, dst in zip(chosen, target.features, strict=True)}
            return "copied" if "copied" in actions else "linked"
        arr = np.load(record.paths[0], mmap_mode="r", allow_pickle=False)
        for k, dst in zip(chosen, target.features, strict=True):
            _save_view(dst, arr[:, k])
        return "sliced"
    # flat / fed-wsvad: one file per video
    if record.layout != "per-crop" and whole:
        return _link_or_copy(record.paths[0], target.features[0])
    if record.layout == "per-crop":
        parts = [np.load(record.paths[k], mmap_mode="r", allow_pickle=False) for k in chosen]
        _save_view(target.features[0], np.stack(parts, axis=1))
    else:
        arr = np.load(record.paths[0], mmap_mode="r", allow_pickle=False)
        _save_view(target.features[0], arr[:, chosen])
    return "sliced"


def _sidecar(record: FeatureRecord, *, format: ExportFormat, dataset: Dataset | None,
             layout: Layout, crops: Sequence[int] | None, n_crops: int,
             sources: list[dict[str, Any]], outputs: dict[str, str], action: Action) -> dict[str, Any]:
    meta = dict(record.metadata)  # unknown keys are carried over untouched
    meta.pop(SIDECAR_DIGEST, None)  # the source sidecar's; this one is sealed anew
    for key in SHARD_FIELDS:  # where a shard kept the source: `files` says where these are
        meta.pop(key, None)
    shape = list(record.shape)
    if source_crops(record) > 1:
        shape[1] = n_crops
    meta["shape"] = [int(s) for s in shape]
    meta["layout"] = layout
    order = record.crop_order
    if order is not None and crops is not None:
        meta["crop_order"] = [order[k] for k in crops if k < len(order)]
    meta["files"] = dict(outputs)
    meta["export"] = {
        "format": format,
        "dataset": dataset,
        "crops": list(crops) if crops is not None else None,
        "sources": sources,
        "source_layout": record.layout,
        "files": list(outputs),
        "outputs": dict(outputs),
        "action": action,
        "vadfeat_version": __version__,
    }
    return seal_sidecar(meta)


def _same_export(meta: Mapping[str, Any], *, format: str, dataset: str | None,
                 crops: Sequence[int] | None, sources: list[dict[str, Any]], target: Target) -> bool:
    """The sidecar ``meta`` at ``target`` records this export, and every output file still
    holds the bytes it recorded (sha256; exports before ``outputs`` was recorded: each
    file loads)."""
    previous = meta.get("export")
    if not isinstance(previous, Mapping) or sidecar_edited(meta) is not None:
        return False
    if previous.get("format") != format or previous.get("dataset") != dataset:
        return False
    if previous.get("crops") != (list(crops) if crops is not None else None):
        return False
    old = [(s.get("path"), s.get("sha256")) for s in previous.get("sources") or []
           if isinstance(s, Mapping)]
    if old != [(s["path"], s["sha256"]) for s in sources]:
        return False
    if _recorded_files(target, previous) != set(target.features):
        return False
    outputs = previous.get("outputs")
    for p in target.features:
        try:
            if isinstance(outputs, Mapping):
                if p.is_symlink() or outputs.get(p.name) != sha256_file(p):
                    return False
            else:
                np.load(p, mmap_mode="r", allow_pickle=False)
        except NPY_ERRORS:
            return False
    return True


def _export_video(record: FeatureRecord, target: Target, *, out: Path, format: ExportFormat,
                  dataset: Dataset | None, crops: Sequence[int] | None, n_out: int) -> Action:
    """Export one video under its claim: skip it when done, else replace its set of files.

    The ownership record first names the old set and the new one, so that whatever a kill
    leaves is known as this export's; then the old sidecar goes, the feature files are
    written, old crop files the new set does not have are deleted, the sidecar comes
    last, and the record is narrowed to the new set.  When a write fails the feature
    files just written go too (no feature file is left without its sidecar).
    """
    key = str(target.sidecar.relative_to(out))
    owned = read_owned(out, key)
    meta = _existing_export(target, owned)
    previous = meta.get("export") if meta else None
    sources = _source_identity(record, previous if isinstance(previous, Mapping) else None)
    if meta and _same_export(meta, format=format, dataset=dataset, crops=crops, sources=sources,
                             target=target):
        return "skipped"
    old = _recorded_files(target, previous) if isinstance(previous, Mapping) else set()
    old |= {p for p in owned if p.suffix == ".npy" and p.parent == target.sidecar.parent}
    write_owned(out, key, [*target.features, target.sidecar, *old, *owned])
    with contextlib.suppress(FileNotFoundError):
        target.sidecar.unlink()
    try:
        action = _write_video(record, target, layout=FORMAT_LAYOUT[format], crops=crops)
        outputs = {p.name: sha256_file(p) for p in target.features}
        # Crop files of an earlier export of this video with more crops are ours: remove
        # them, or a reader would stack them with the new ones.
        for path in sorted(old - set(target.features)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        save_json(target.sidecar, _sidecar(record, format=format, dataset=dataset,
                                           layout=FORMAT_LAYOUT[format], crops=crops, n_crops=n_out,
                                           sources=sources, outputs=outputs, action=action))
    except BaseException:
        for path in target.features:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    with contextlib.suppress(OSError):  # the wider record is still right
        write_owned(out, key, [*target.features, target.sidecar])
    with contextlib.suppress(FileNotFoundError):
        _pending(target).unlink()
    return action


def _shard_metadata(record: FeatureRecord, *, format: ExportFormat, crops: Sequence[int] | None,
                    n_crops: int, sources: list[dict[str, Any]], action: Action) -> dict[str, Any]:
    """The sidecar handed to a sharded sink: the source's fields (unknown keys kept) with
    ``shape`` and ``crop_order`` updated and the ``export`` record; the sink replaces
    ``files`` by the shard fields and seals it."""
    meta = dict(record.metadata)
    for key in (SIDECAR_DIGEST, "files", *SHARD_FIELDS):
        meta.pop(key, None)
    shape = list(record.shape)
    if source_crops(record) > 1:
        shape[1] = n_crops
    meta["shape"] = [int(s) for s in shape]
    order = record.crop_order
    if order is not None and crops is not None:
        meta["crop_order"] = [order[k] for k in crops if k < len(order)]
    meta["export"] = {
        "format": format,
        "dataset": None,
        "crops": list(crops) if crops is not None else None,
        "sources": sources,
        "source_layout": record.layout,
        "action": action,
        "vadfeat_version": __version__,
    }
    return meta


def _shard_features(record: FeatureRecord, crops: Sequence[int] | None) -> tuple[np.ndarray, str, Action]:
    """The array a shard stores for ``record`` (``crops`` selected), the sha256 of its
    ``.npy`` bytes and how it was made (``copied``: the source's bytes as they are)."""
    n_src = source_crops(record)
    if crops is None or list(crops) == list(range(n_src)) or n_src == 1:
        data = record.features_bytes()
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        if arr.dtype == np.float32 and arr.flags.c_contiguous:
            return arr, hashlib.sha256(data).hexdigest(), "copied"
        arr = np.ascontiguousarray(arr, dtype=np.float32)  # what the shard stores (float32)
        return arr, hashlib.sha256(npy_bytes(arr)).hexdigest(), "copied"
    arr = np.ascontiguousarray(record.load()[:, list(crops)], dtype=np.float32)
    return arr, hashlib.sha256(npy_bytes(arr)).hexdigest(), "sliced"


def _export_shards(fs: FeatureSet, out_dir: Path, *, format: ExportFormat,
                   crops: Sequence[int] | None, shard_size: int) -> tuple[list[ExportedVideo],
                                                                           list[FeatureIssue]]:
    """Pack every video of ``fs`` into shards below ``out_dir`` through the sharded sink.

    A video whose newest copy in ``out_dir`` has the same settings fingerprint, an intact
    shard and the same feature bytes is skipped.  Each video is claimed while it is
    checked and until its shard is committed; one another export holds is taken up at the
    end, alone, once that export lets go (then it is usually there and skipped)."""
    sink = make_sink(out_dir, sink=format, shard_size=shard_size)
    assert isinstance(sink, ShardedSink)
    try:
        sink.open()
        claims = Claims(out_dir)
    except OSError as exc:
        raise ConfigError(f"cannot write to the output folder {out_dir}: {exc}") from exc
    done: dict[str, ExportedVideo | FeatureIssue] = {}
    written: list[str] = []

    def one(record: FeatureRecord, *, wait: bool) -> bool:
        """Export one video; False when another process holds it (only when not ``wait``)."""
        try:
            meta = record.metadata
            if not is_vadfeat_sidecar(dict(meta)):
                raise ValueError("has no vadfeat sidecar (settings fingerprint); a shard holds "
                                 "videos with vadfeat's sealed sidecars only: export it to an "
                                 ".npy format instead")
            n_src = source_crops(record)
            if crops is not None and max(crops) >= n_src:
                raise ValueError(f"has {n_src} crop(s); crop index {max(crops)} does not exist")
            target = sink.plan(PurePosixPath(record.name))
            key = sink.key(target)
            if claims.acquire(key, wait=threading.Event() if wait else None) is not None:
                return False
            features, digest, action = _shard_features(record, crops)
            state = sink.state(target, meta["fingerprint"], verify=True)
            found = sink.catalog().get(record.name)
            if state.status == "done" and found is not None and found.features_sha256 == digest:
                done[record.name] = ExportedVideo(record.name, (out_dir / found.shard,), "skipped")
                claims.release(key)
                return True
            sources = _source_identity(record, None)
            metadata = _shard_metadata(record, format=format, crops=crops,
                                       n_crops=len(crops) if crops else n_src, sources=sources,
                                       action=action)
            sink.write(target, VideoFeatures(features, metadata))
            written.append(record.name)
            done[record.name] = ExportedVideo(record.name, (), action)
        except (*NPY_ERRORS, IndexError, KeyError, TypeError) as exc:
            done[record.name] = FeatureIssue(record.name, f"cannot export: {exc}")
        return True

    try:
        held = [r for r in fs.records if not one(r, wait=False)]
        sink.commit()
        claims.release_all()
        if held:
            log.info("%d video(s) are being exported by another process; waiting for them", len(held))
        for record in held:  # one at a time: never wait while holding another claim
            one(record, wait=True)
            sink.commit()
            claims.release_all()
    except BaseException:
        sink.abort()
        raise
    finally:
        claims.release_all()
    catalog = sink.catalog()
    for name in written:
        found = catalog.get(name)
        got = done[name]
        if isinstance(got, ExportedVideo):
            done[name] = ExportedVideo(name, (out_dir / found.shard,) if found is not None else (),
                                       got.action)
    videos = [v for r in fs.records if isinstance(v := done[r.name], ExportedVideo)]
    issues = [i for r in fs.records if isinstance(i := done[r.name], FeatureIssue)]
    return videos, issues


def export(
    features: FeatureSet | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: ExportFormat,
    dataset: Dataset | None = None,
    crops: Sequence[int] | None = None,
    workers: int = 4,
    shard_size: int = SHARD_SIZE,
) -> ExportResult:
    """Write ``features`` in ``format`` below ``out`` (see the module docstring).

    ``features`` is a :class:`~vadfeat.store.reader.FeatureSet` or a folder in any layout.
    ``dataset`` (``ucf``, ``xd``, ``shanghaitech``) changes only ``pel4vad`` crop
    names.  ``crops`` keeps those crop indices (0-based, in the given order).
    ``workers`` threads write videos concurrently (I/O bound: they overlap fsyncs).
    ``webdataset`` / ``parquet``: shards of ``shard_size`` videos (module docstring).
    Several exports into one folder at once share the work: each video is claimed
    (:class:`~vadfeat.store.claims.Claims`) while it is checked and written; a video
    another process holds is taken up again at the end, once that process lets go
    (then it is usually done and skipped).  Temporary files of killed exports are
    removed first.  Returns every video with its files and action; per-video problems
    (an unreadable source, a foreign file in the way, a crop index out of range) are
    issues, and the others go on.  Raises :class:`~vadfeat.errors.ConfigError` for an
    unknown format or dataset, ``out`` equal to the features folder, bad ``crops`` or
    an output folder that cannot be written, before any work.
    """
    t0 = time.perf_counter()
    _check(format, get_args(ExportFormat), "export format")
    if dataset is not None:
        _check(dataset, get_args(Dataset), "dataset")
    if crops is not None:
        crops = list(crops)
        if not crops or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in crops) \
                or len(set(crops)) != len(crops):
            raise ConfigError(f"crops must be distinct non-negative crop indices, got {crops!r}")
    fs = as_feature_set(features)
    out_dir = Path(out)
    src_root = Path(fs.root).resolve()
    out_res = out_dir.resolve()
    if out_res == src_root or src_root in out_res.parents:
        raise ConfigError(f"the output folder {out_dir} must not be the features folder {fs.root} "
                          "or lie inside it (a later read of the features would find the exports)")
    if format in SHARD_FORMATS:
        if dataset is not None:
            raise ConfigError(f"--dataset names pel4vad's crop files; {format} shards have none")
        videos, issues = _export_shards(fs, out_dir, format=format, crops=crops, shard_size=shard_size)
        result = ExportResult(out=out_dir, format=format, videos=tuple(videos),
                              issues=(*fs.issues, *issues), seconds=time.perf_counter() - t0)
        log.debug("exported %d videos as %s shards to %s in %.1f s", len(videos), format, out_dir,
                  result.seconds)
        return result
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(out_dir)
        claims = Claims(out_dir)
    except OSError as exc:
        raise ConfigError(f"cannot write to the output folder {out_dir}: {exc}") from exc
    suffix = crop_suffix(format, dataset)
    issues = list(fs.issues)

    def one(record: FeatureRecord, *, wait: bool) -> ExportedVideo | FeatureIssue | None:
        """``None``: another process holds the video (only when not ``wait``)."""
        try:
            n_src = source_crops(record)
            if crops is not None and max(crops) >= n_src:
                raise ValueError(f"has {n_src} crop(s); crop index {max(crops)} does not exist")
            n_out = len(crops) if crops is not None else n_src
            if suffix == "_" and n_out > 10:
                raise ValueError(f"{n_out} crops: PEL4VAD's ShanghaiTech loader cuts a one-digit "
                                 "`_<k>.npy` suffix, so at most 10 crops can be named")
            target = target_paths(out_dir, record.name, format=format, crops=n_out, dataset=dataset)
            key = str(target.sidecar.relative_to(out_dir))
            if claims.acquire(key, wait=threading.Event() if wait else None) is not None:
                return None
            try:
                action = _export_video(record, target, out=out_dir, format=format, dataset=dataset,
                                       crops=crops, n_out=n_out)
            finally:
                claims.release(key)
        except _NotOurs as exc:
            return FeatureIssue(record.name, str(exc))
        except (*NPY_ERRORS, IndexError) as exc:
            return FeatureIssue(record.name, f"cannot export: {exc}")
        return ExportedVideo(record.name, target.features, action)

    # Threads overlap the fsync of every atomic write (the cost of slicing 19,000 small
    # files); videos never share an output file, and results keep the sorted order.
    done: dict[str, ExportedVideo | FeatureIssue] = {}
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for record, got in zip(fs.records, pool.map(lambda r: one(r, wait=False), fs.records),
                                   strict=True):
                if got is not None:
                    done[record.name] = got
            held = [r for r in fs.records if r.name not in done]
            if held:
                log.info("%d video(s) are being exported by another process; waiting for them",
                         len(held))
            for record, got in zip(held, pool.map(lambda r: one(r, wait=True), held), strict=True):
                assert got is not None  # waiting always ends with the claim
                done[record.name] = got
    finally:
        claims.release_all()
    videos = [v for r in fs.records if isinstance(v := done[r.name], ExportedVideo)]
    issues += [i for r in fs.records if isinstance(i := done[r.name], FeatureIssue)]
    result = ExportResult(out=out_dir, format=format, videos=tuple(videos), issues=tuple(issues),
                          seconds=time.perf_counter() - t0)
    log.debug("exported %d videos as %s to %s in %.1f s (%d linked, %d copied, %d sliced, "
             "%d skipped)", len(videos), format, out_dir, result.seconds, result.count("linked"),
             result.count("copied"), result.count("sliced"), result.count("skipped"))
    return result
