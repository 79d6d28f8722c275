"""The ``.npy`` sink: each video's features as ``.npy`` file(s) beside a JSON sidecar.

Layouts (``docs/DESIGN.md``, "Outputs"):

* ``flat``: ``OUT/<relative dir>/<stem>.npy`` + ``<stem>.json``.
* ``fed-wsvad``: ``OUT/features_video/i3d/combine/<relative dir>/<stem>/feature.npy``
  + ``feature.json``, as the Fed_WSVAD training code reads it (the folder says
  ``i3d`` for historical reasons).
* ``per-crop``: ``<stem>__<k>.npy`` (``[T, D]`` per crop, UR-DMU style) + ``<stem>.json``.

A video's files are replaced as one unit (:meth:`NpySink.write`): feature file(s)
first, each written to a temporary name and renamed into place, the sidecar last; a
feature file without a matching sidecar is not done.

Ownership: vadfeat replaces or deletes only files it wrote itself.  A file is
vadfeat's when the video's sidecar lists it, or when the video's ownership record
(:func:`~vadfeat.store.ownership.write_owned`, written before any of the video's files
is replaced) names it; anything else at an output path is *foreign*: that video fails
naming the file, with or without ``overwrite``.  Folders are never deleted.

Integrity: the sidecar records the sha256 of each feature file (``files``), the
source's identity (:mod:`vadfeat.store.identity`) and, last, its own digest
(:mod:`vadfeat.store.sidecar`); :meth:`NpySink.state` checks all three before a video
counts as done.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeGuard, get_args

import numpy as np

from vadfeat._types import Layout
from vadfeat.errors import ConfigError
from vadfeat.store.atomic import NPY_ERRORS, save_json, save_npy, sha256_file
from vadfeat.store.fingerprint import same_fingerprint
from vadfeat.store.identity import source_changed
from vadfeat.store.ownership import owned_record_path, read_owned, write_owned
from vadfeat.store.remote import refuse_url
from vadfeat.store.sidecar import is_vadfeat_sidecar, read_sidecar, seal_sidecar, sidecar_edited
from vadfeat.store.sinks.base import OutputState, Sink, VideoFeatures

LAYOUTS: tuple[str, ...] = get_args(Layout)


def check_layout(layout: str) -> Layout:
    """``layout`` when it is one of :data:`LAYOUTS`; else :class:`ConfigError` naming them."""
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return layout  # type: ignore[return-value]


@dataclass(frozen=True)
class OutputPaths:
    """Where one video's outputs go.  ``features`` has one path, or one per crop; ``stem``:
    the video's output stem they were planned from (None when built by hand)."""

    features: tuple[Path, ...]
    sidecar: Path
    stem: PurePosixPath | None = field(default=None, compare=False)

    def all(self) -> tuple[Path, ...]:
        return (*self.features, self.sidecar)


def output_paths(out: Path, stem: PurePosixPath, *, layout: Layout, crops: int = 1) -> OutputPaths:
    rel = Path(*stem.parts)
    if layout == "flat":
        base = out / rel
        return OutputPaths((base.with_name(base.name + ".npy"),), base.with_name(base.name + ".json"),
                           stem)
    if layout == "fed-wsvad":
        folder = out / "features_video" / "i3d" / "combine" / rel
        return OutputPaths((folder / "feature.npy",), folder / "feature.json", stem)
    base = out / rel
    feats = tuple(base.with_name(f"{base.name}__{k}.npy") for k in range(crops))
    return OutputPaths(feats, base.with_name(base.name + ".json"), stem)


def other_sidecars(out: Path, paths: OutputPaths) -> list[Path]:
    """Where the same video's sidecar would be in the other layouts (flat and per-crop share
    one), sorted; none for ``paths`` built without a stem."""
    if paths.stem is None:
        return []
    alts = {output_paths(out, paths.stem, layout=lay, crops=1).sidecar  # type: ignore[arg-type]
            for lay in LAYOUTS}
    return sorted(a for a in alts if a != paths.sidecar)


def split_crops(features: np.ndarray, crops: int) -> list[np.ndarray]:
    """``[T, crops, ...]`` -> ``crops`` arrays ``[T, ...]`` (per-crop layout)."""
    if crops == 1:
        return [features]
    return [np.ascontiguousarray(features[:, k]) for k in range(crops)]



def sidecar_files(sidecar: Path, meta: Mapping[str, Any]) -> list[Path]:
    """The feature files a vadfeat sidecar describes (sidecars before ``files`` existed
    say it through their layout and crop count)."""
    files = meta.get("files")
    if isinstance(files, dict):
        return [sidecar.with_name(n) for n in files if isinstance(n, str) and "/" not in n]
    layout = meta.get("layout")
    if layout == "fed-wsvad":
        return [sidecar.with_name("feature.npy")]
    base = sidecar.name[: -len(".json")] if sidecar.name.endswith(".json") else sidecar.stem
    if layout == "per-crop":
        preset = meta["fingerprint"].get("preset")
        crops = preset.get("crops") if isinstance(preset, dict) else None
        if isinstance(crops, int) and 0 < crops <= 64:
            return [sidecar.with_name(f"{base}__{k}.npy") for k in range(crops)]
        return []
    return [sidecar.with_name(base + ".npy")]



def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _shape_ok(shape: Any) -> TypeGuard[list[int]]:
    return (isinstance(shape, list) and len(shape) >= 1
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape))


def inspect_outputs(paths: OutputPaths, fingerprint: Mapping[str, Any] | None, *,
                    out: Path | None = None, source: Path | str | None = None,
                    verify: bool = True) -> OutputState:
    """Classify what is at ``paths`` for a run with ``fingerprint``; never raises on bad files.

    ``out`` (the output folder) lets the video's ownership record count: files it
    names are vadfeat's even without a sidecar (a run killed between renames).
    ``source``: compare with the identity the sidecar recorded.  ``verify``: check
    each feature file's sha256 against the sidecar (sidecars without ``files``, from
    releases before it, are checked by shape only).  ``fingerprint=None`` stops after
    the ownership checks (``changed`` is then reported for any complete set).
    """
    key = str(paths.sidecar.relative_to(out)) if out is not None else None
    cache: list[set[Path]] = []

    def owned() -> set[Path]:  # read only when needed: most videos have a good sidecar
        if not cache:
            cache.append(read_owned(out, key) if out is not None and key is not None else set())
        return cache[0]

    side = paths.sidecar
    meta: dict[str, Any] | None = None
    damaged = ""
    if _exists(side):
        if side.is_symlink() or not side.is_file():
            what = "a folder" if side.is_dir() else "not a regular file"
            return OutputState("foreign", f"{side} is {what}, not a vadfeat sidecar; move it away "
                                          "(vadfeat never replaces what it did not write)")
        raw = read_sidecar(side)
        if is_vadfeat_sidecar(raw):
            meta = raw
        elif side in owned():
            damaged = f"its sidecar {side.name} is unreadable or not a vadfeat sidecar"
        else:
            return OutputState("foreign", f"{side} exists and was not written by vadfeat; move it "
                                          "away or choose another output folder (-o)")
    old: set[Path] = set()
    if meta is not None:
        old.update(p for p in sidecar_files(side, meta) if _exists(p))
    if meta is None or any(_exists(f) and f not in old for f in paths.features):
        old.update(p for p in owned() if _exists(p))
    for f in paths.features:
        if _exists(f) and f not in old:
            return OutputState("foreign", f"{f} exists and was not written by vadfeat; move it "
                                          "away or choose another output folder (-o)")
        if _exists(f) and (f.is_symlink() or not f.is_file()):
            return OutputState("foreign", f"{f} is not a regular file; move it away")
    stale = tuple(sorted(p for p in old if p not in paths.all() and p.is_file()))
    if meta is None:
        if damaged:
            return OutputState("redo", damaged, stale=stale)
        if any(_exists(f) for f in paths.features) or stale:
            return OutputState("redo", "outputs of an interrupted write (no sidecar)", stale=stale)
        return OutputState("absent")
    fp = meta["fingerprint"]
    edited = sidecar_edited(meta)
    if edited is not None:
        return OutputState("redo", f"its sidecar {side.name}: {edited}", previous=fp, stale=stale)
    if fingerprint is None or not same_fingerprint(fp, fingerprint):
        return OutputState("changed", previous=fp, stale=stale)
    problem = _verify(paths, meta, verify=verify)
    if problem is None and source is not None and isinstance(meta.get("source_identity"), dict):
        problem = source_changed(meta["source_identity"], source)
    if problem is not None:
        return OutputState("redo", problem, previous=fp, stale=stale)
    return OutputState("done", previous=fp)


def _verify(paths: OutputPaths, meta: Mapping[str, Any], *, verify: bool) -> str | None:
    """Why a sidecar with the right settings does not describe complete outputs, or None."""
    shape = meta.get("shape")
    if not _shape_ok(shape) or (len(paths.features) > 1 and len(shape) < 2):
        return f"its sidecar's shape is malformed ({shape!r})"
    files = meta.get("files")
    if files is not None and not isinstance(files, dict):
        return "its sidecar's file list is malformed"
    expect = shape if len(paths.features) == 1 else [shape[0], *shape[2:]]
    for path in paths.features:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except NPY_ERRORS:  # missing, damaged or torn file: redo
            return f"{path.name} is missing or unreadable"
        if list(arr.shape) != list(expect):
            return f"{path.name} has shape {list(arr.shape)}, its sidecar says {expect}"
        if verify and files is not None:
            want = files.get(path.name)
            try:
                got = sha256_file(path)
            except OSError as exc:
                return f"{path.name} is unreadable ({exc})"
            if want != got:
                return f"{path.name} does not match the sha256 its sidecar recorded"
    return None


def is_done(paths: OutputPaths, fingerprint: Mapping[str, Any]) -> bool:
    """True when every output exists and the sidecar was made with the same settings."""
    return inspect_outputs(paths, fingerprint).status == "done"



class NpySink(Sink[OutputPaths]):
    """``.npy`` feature files and a JSON sidecar per video, in one of :data:`LAYOUTS`.

    ``crops``: the number of crops of the run (``per-crop`` writes one file per crop).
    ``records``: keep per-video ownership records in ``OUT/.vadfeat-locks`` (an
    extraction does; a scratch folder another command owns as a whole does not need them).
    """

    def __init__(self, out: str | Path, *, layout: str = "flat", crops: int = 1,
                 records: bool = True) -> None:
        refuse_url(out, "the npy sink (a .npy file and a sidecar per video, renamed into place)")
        super().__init__(out)
        self.layout: Layout = check_layout(layout)
        self.name = self.layout
        self.crops = crops
        self.records = records

    def plan(self, stem: PurePosixPath) -> OutputPaths:
        return output_paths(self.out, stem, layout=self.layout, crops=self.crops)

    def key(self, target: OutputPaths) -> str:
        return str(target.sidecar.relative_to(self.out))

    def describe(self, target: OutputPaths) -> str:
        """The (first) feature file: the manifest's ``output``."""
        return str(target.features[0])

    def label(self, target: OutputPaths) -> str:
        """The sidecar's file name."""
        return target.sidecar.name

    def present(self, target: OutputPaths) -> bool:
        """A file of the set, a sidecar of another layout's place or the video's ownership
        record exists (stats only)."""
        if not self.out.is_dir():
            return False
        key = self.key(target)
        return any(os.path.lexists(p) for p in (*target.all(), *other_sidecars(self.out, target),
                                                owned_record_path(self.out, key)))

    def previous(self, target: OutputPaths) -> OutputState | None:
        """A complete set of this video in another layout's place (flat vs fed-wsvad): the
        first vadfeat sidecar found there, as ``changed`` with its files ``stale``."""
        for alt in other_sidecars(self.out, target):
            meta = read_sidecar(alt) if alt.is_file() and not alt.is_symlink() else None
            if is_vadfeat_sidecar(meta):
                assert meta is not None
                old = tuple(p for p in (*sidecar_files(alt, meta), alt) if p.is_file())
                return OutputState("changed", previous=meta["fingerprint"], stale=old)
        return None

    def state(self, target: OutputPaths, fingerprint: Mapping[str, Any] | None, *,
              source: Path | str | None = None, verify: bool = True) -> OutputState:
        return inspect_outputs(target, fingerprint, out=self.out if self.records else None,
                               source=source, verify=verify)

    def write(self, target: OutputPaths, result: VideoFeatures, *, stale: Iterable[Path] = ()) -> str:
        """Replace a video's set of files as one unit: feature file(s) first, sidecar last.

        ``stale``: files of the video's previous set (another layout or crop count,
        vadfeat's own, see :meth:`state`) that the new set does not overwrite; they are
        deleted before the new files appear, so no file of the old set survives beside
        the new one.  With ``records`` the ownership record is written first (it names
        the old and the new set, so that files left by a kill at any point are known as
        vadfeat's), then narrowed to the new set.

        An existing sidecar goes first: interrupted between the renames, an old sidecar
        would describe the new features and resume would trust it.  On an error (disk
        full) the feature files just written go too, so nothing is left half-done.  The
        sidecar gains ``files``: the sha256 of each feature file, by file name.  Returns
        the first feature file's path.  Raises OSError.
        """
        paths = target
        features = result.features
        arrays = split_crops(features, len(paths.features)) if len(paths.features) > 1 else [features]
        stale = [p for p in stale if p not in paths.all()]
        key = self.key(paths) if self.records else None
        if key is not None:
            write_owned(self.out, key, [*paths.all(), *stale, *read_owned(self.out, key)])
        with contextlib.suppress(FileNotFoundError):
            paths.sidecar.unlink()
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        try:
            hashes = {}
            for path, array in zip(paths.features, arrays, strict=True):
                hashes[path.name] = save_npy(path, np.asarray(array, dtype=np.float32))
            save_json(paths.sidecar, seal_sidecar({**result.metadata, "files": hashes}))
        except BaseException:
            for path in paths.features:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            raise
        if key is not None:
            with contextlib.suppress(OSError):  # the wider record is still right
                write_owned(self.out, key, paths.all())
        return str(paths.features[0])


__all__ = ["LAYOUTS", "NpySink", "OutputPaths", "check_layout", "inspect_outputs", "is_done",
           "other_sidecars", "output_paths", "sidecar_files", "split_crops"]
