"""Dump every frame of every video as images (legacy step 1, docs/REFERENCE.md section 1, done right).

``OUT/<relative dir>/<stem>/img_00001.jpg ...`` in true colours (the legacy script
stored channels swapped), from any container, several videos in parallel.  A
video's frames are written into a hidden temporary folder that is renamed into
place when the last frame is written, then a ``<stem>.frames.json`` sidecar
records the source, frame count and settings; a re-run skips videos whose folder
and matching sidecar exist.  Failures are named in ``OUT/manifest.jsonl`` like
``extract``'s.  Feature extraction never needs this: it decodes in memory.

Ownership: a frame folder is vadfeat's only when its ``.frames.json`` sidecar is
(``vadfeat_version``, ``settings``, ``num_frames``).  A folder or sidecar at an
output path that vadfeat did not write fails that video, naming it (``overwrite``
included); a folder of vadfeat's is replaced only when it holds nothing but the
frames its sidecar lists.  A video whose folder would hold another video's outputs
(``clip.mp4`` beside ``clip/inner.mkv``) fails naming the other.  A failed video
leaves no folder behind, not even an empty parent.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

import cv2
import numpy as np

from vadfeat._types import OnCorrupt
from vadfeat._version import __version__
from vadfeat.errors import ConfigError, VideoError
from vadfeat.io.inputs import VideoItem, discover, output_stem
from vadfeat.io.remote import is_url
from vadfeat.io.video import open_video
from vadfeat.store.atomic import clean_stale_temporaries, save_json, tmp_name
from vadfeat.store.identity import same_source, source_identity
from vadfeat.store.manifest import Manifest
from vadfeat.store.ownership import refuse_overlap
from vadfeat.store.sidecar import read_sidecar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameSettings:
    """How frames are written; recorded in each video's sidecar."""

    pattern: str = "img_{:05d}.jpg"
    start: int = 1
    quality: int = 95
    short_side: int | None = None
    on_corrupt: str = "fail"

    def __post_init__(self) -> None:
        try:
            name = self.pattern.format(self.start)
        except (IndexError, KeyError, ValueError) as exc:
            raise ConfigError(f"pattern {self.pattern!r} must hold one {{}} field for the "
                              f"frame number, e.g. img_{{:05d}}.jpg") from exc
        if Path(name).suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp"):
            raise ConfigError(f"pattern {self.pattern!r} must end in .jpg, .jpeg, .png or .bmp")
        if "/" in name or os.sep in name:
            raise ConfigError(f"pattern {self.pattern!r} must be a file name, not a path")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"quality must be 1..100, got {self.quality}")
        if self.short_side is not None and self.short_side < 1:
            raise ConfigError(f"short_side must be positive, got {self.short_side}")
        if self.on_corrupt not in get_args(OnCorrupt):
            raise ConfigError(f"on_corrupt must be fail or skip, got {self.on_corrupt!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "start": self.start, "quality": self.quality,
                "short_side": self.short_side, "on_corrupt": self.on_corrupt}


@dataclass
class FramesSummary:
    out: Path
    total: int = 0
    ok: int = 0
    skipped: int = 0
    frames: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def describe(self) -> str:
        lines = [f"{self.total} video(s): {self.ok} written ({self.frames} frames), "
                 f"{self.skipped} already done, {len(self.failed)} failed in {self.seconds:.1f} s; "
                 f"frames in {self.out}"]
        lines += [f"  FAILED {v}: {r}" for v, r in self.failed]
        return "\n".join(lines)


def _resize_short(frame: np.ndarray, short: int) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = short / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


# Creating and removing parent folders is serialised: one thread's clean-up of an empty
# parent must not race another thread creating its temporary folder inside it.
_DIRS = threading.Lock()


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder``'s missing parents; return those created (deepest last)."""
    created = []
    for parent in reversed(folder.parents):
        if not parent.exists():
            parent.mkdir()
            created.append(parent)
    return created


def _remove_if_empty(created: list[Path]) -> None:
    for parent in reversed(created):
        try:
            parent.rmdir()
        except OSError:  # not empty (another video's output) or gone: keep it
            break


def expected_files(record: dict[str, Any]) -> list[str] | None:
    """The frame file names a vadfeat frames sidecar says its folder holds (None: malformed)."""
    settings, n = record.get("settings"), record.get("num_frames")
    if not isinstance(settings, dict) or not isinstance(n, int) or n < 0:
        return None
    try:
        start, pattern = int(settings.get("start", 1)), str(settings["pattern"])
        return [pattern.format(start + k) for k in range(n)]
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def is_frames_sidecar(record: Any) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("vadfeat_version"), str)
            and expected_files(record) is not None)


def write_video_frames(source: Path | str, folder: Path, settings: FrameSettings,
                       previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write one video's frames into ``folder`` (atomically, as a whole); return its record.

    ``previous``: the vadfeat sidecar of the folder already there, which may then be
    replaced if it holds only the frames that sidecar lists; any other existing folder
    raises :class:`VideoError` naming it.  Parents this call creates are removed again
    when it fails.
    """
    params = [cv2.IMWRITE_JPEG_QUALITY, settings.quality]
    tmp = tmp_name(folder)
    with _DIRS:
        created = _make_parents(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    ok = False
    try:
        try:
            identity: dict[str, Any] | None = source_identity(source, content=True)
        except OSError:
            identity = None
        with open_video(source, on_corrupt=settings.on_corrupt) as reader:  # type: ignore[arg-type]
            count = 0
            for _, frame in reader:
                if settings.short_side:
                    frame = _resize_short(frame, settings.short_side)
                name = settings.pattern.format(settings.start + count)
                ok_, buf = cv2.imencode(Path(name).suffix, frame[:, :, ::-1], params)  # RGB -> BGR
                if not ok_:
                    raise VideoError(f"{source}: OpenCV could not encode frame {count}")
                buf.tofile(tmp / name)
                count += 1
            where = source if is_url(source) else str(Path(source).resolve())
            record = {"vadfeat_version": __version__, "source": where,
                      "num_frames": count, "fps": reader.info.fps,
                      "width": reader.info.width, "height": reader.info.height,
                      "settings": settings.to_dict(), "warnings": list(reader.warnings),
                      "source_identity": identity,
                      "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _replace_folder(tmp, folder, previous)
        ok = True
        return record
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            with _DIRS:
                _remove_if_empty(created)


def _replace_folder(tmp: Path, folder: Path, previous: dict[str, Any] | None) -> None:
    if not os.path.lexists(folder):
        os.replace(tmp, folder)
        return
    if previous is None or folder.is_symlink() or not folder.is_dir():
        raise VideoError(f"{folder} exists and was not written by vadfeat; not replaced "
                         "(move it away or choose another output folder)")
    ours = set(expected_files(previous) or [])
    foreign = sorted(e.name for e in os.scandir(folder) if e.name not in ours or not e.is_file())
    if foreign:
        raise VideoError(f"{folder} holds files vadfeat did not write ({', '.join(foreign[:3])}"
                         f"{' ...' if len(foreign) > 3 else ''}); not replaced")
    old = folder.with_name(tmp.name + ".old")
    os.replace(folder, old)  # now only vadfeat's frames: safe to delete
    try:
        os.replace(tmp, folder)
    except OSError:
        os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _is_done(item: VideoItem, folder: Path, meta: dict[str, Any], fs: FrameSettings) -> bool:
    """Same settings, every listed frame there, and the source is the one recorded."""
    if meta.get("settings") != fs.to_dict() or not folder.is_dir() or folder.is_symlink():
        return False
    names = expected_files(meta) or []
    if not all((folder / n).is_file() for n in names):
        return False
    recorded = meta.get("source_identity")
    if isinstance(recorded, dict):
        with contextlib.suppress(OSError):
            if same_source(recorded, source_identity(item.source), path=item.source) is not None:
                return False
    return True


def dump_frames(
    inputs: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    workers: int = 2,
    overwrite: bool = False,
    root: str | Path | None = None,
    **settings: Any,
) -> FramesSummary:
    """Write all frames of all videos in ``inputs`` under ``out``; see the module doc."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    fs = FrameSettings(**settings)
    if workers < 1:
        raise ConfigError(f"workers must be positive, got {workers}")
    out = Path(out)
    # Frame folders inside the videos' folder would be found as videos by the next run.
    refuse_overlap(out, inputs, command="frames")
    items = discover(list(inputs), root=Path(root) if root is not None else None)
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out)
    summary = FramesSummary(out=out, total=len(items))
    manifest = Manifest(out, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-")
                        + uuid.uuid4().hex[:6])
    t0 = time.perf_counter()

    folders = {i: out / Path(*output_stem(i).parts) for i in items}
    # A folder that would hold another video's outputs (clip.mp4 vs clip/inner.mkv).
    by_folder = sorted(folders.items(), key=lambda kv: kv[1].parts)
    nested: dict[VideoItem, str] = {}
    for (a, fa), (b, fb) in itertools.pairwise(by_folder):
        if fb.is_relative_to(fa) and fb != fa:
            nested[a] = (f"its frame folder {fa} would hold the outputs of {b.name}; rename one "
                         "of them (nothing was written)")

    def one(item: VideoItem) -> dict[str, Any]:
        folder = folders[item]
        sidecar = folder.with_name(folder.name + ".frames.json")
        entry: dict[str, Any] = {"video": str(item.name), "output": None, "error": None,
                                 "num_frames": None}
        if item.error is not None:  # found by discovery: never opened
            return entry | {"status": "failed", "error": item.error, "seconds": 0.0}
        if item in nested:
            return entry | {"status": "failed", "error": nested[item], "seconds": 0.0}
        meta = read_sidecar(sidecar)
        if os.path.lexists(sidecar) and not is_frames_sidecar(meta):
            return entry | {"status": "failed", "seconds": 0.0,
                            "error": f"{sidecar} exists and was not written by vadfeat; not "
                                     "replaced (move it away or choose another output folder)"}
        if meta is not None and not overwrite and _is_done(item, folder, meta, fs):
            return entry | {"status": "skipped", "output": str(folder),
                            "num_frames": meta.get("num_frames"), "seconds": 0.0}
        start = time.perf_counter()
        try:
            record = write_video_frames(item.source, folder, fs, previous=meta)
            save_json(sidecar, record | {"video": str(item.name)})
        except (VideoError, OSError) as exc:
            return entry | {"status": "failed", "error": str(exc),
                            "seconds": round(time.perf_counter() - start, 3)}
        return entry | {"status": "ok", "output": str(folder), "num_frames": record["num_frames"],
                        "seconds": round(time.perf_counter() - start, 3)}

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vadfeat-frames") as pool:
            for item, entry in zip(items, pool.map(one, items), strict=True):
                manifest.record(**entry)
                if entry["status"] == "ok":
                    summary.ok += 1
                    summary.frames += entry["num_frames"]
                elif entry["status"] == "skipped":
                    summary.skipped += 1
                else:
                    summary.failed.append((str(item.name), entry["error"]))
                    log.error("%s: %s", item.name, entry["error"])
    finally:
        manifest.close()
    summary.seconds = time.perf_counter() - t0
    return summary
