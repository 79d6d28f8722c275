"""Dump every frame of every video as images (legacy step 1, SPEC §1, done right).

``OUT/<relative dir>/<stem>/img_00001.jpg ...`` in true colours (the legacy script
stored channels swapped), from any container, several videos in parallel.  A
video's frames are written into a hidden temporary folder that is renamed into
place when the last frame is written, then a ``<stem>.frames.json`` sidecar
records the source, frame count and settings; a re-run skips videos whose folder
and matching sidecar exist.  Failures are named in ``OUT/manifest.jsonl`` like
``extract``'s.  Feature extraction never needs this: it decodes in memory.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vadfeat._version import __version__
from vadfeat.errors import ConfigError, VideoError
from vadfeat.inputs import VideoItem, discover, output_stem
from vadfeat.video import open_video
from vadfeat.writers import Manifest, clean_stale_temporaries, read_sidecar, save_json, tmp_name

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
        if self.on_corrupt not in ("fail", "skip"):
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


def write_video_frames(source: Path, folder: Path, settings: FrameSettings) -> dict[str, Any]:
    """Write one video's frames into ``folder`` (atomically, as a whole); return its record."""
    params = [cv2.IMWRITE_JPEG_QUALITY, settings.quality]
    tmp = tmp_name(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with open_video(source, on_corrupt=settings.on_corrupt) as reader:  # type: ignore[arg-type]
            count = 0
            for _, frame in reader:
                if settings.short_side:
                    frame = _resize_short(frame, settings.short_side)
                name = settings.pattern.format(settings.start + count)
                ok, buf = cv2.imencode(Path(name).suffix, frame[:, :, ::-1], params)  # RGB -> BGR
                if not ok:
                    raise VideoError(f"{source}: OpenCV could not encode frame {count}")
                buf.tofile(tmp / name)
                count += 1
            record = {"vadfeat_version": __version__, "source": str(source.resolve()),
                      "num_frames": count, "fps": reader.info.fps,
                      "width": reader.info.width, "height": reader.info.height,
                      "settings": settings.to_dict(), "warnings": list(reader.warnings),
                      "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return record
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
    items = discover(list(inputs), root=Path(root) if root is not None else None)
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out)
    summary = FramesSummary(out=out, total=len(items))
    manifest = Manifest(out, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-")
                        + uuid.uuid4().hex[:6])
    t0 = time.perf_counter()

    def one(item: VideoItem) -> dict[str, Any]:
        stem = output_stem(item)
        folder = out / Path(*stem.parts)
        sidecar = folder.with_name(folder.name + ".frames.json")
        entry: dict[str, Any] = {"video": str(item.name), "output": None, "error": None,
                                 "num_frames": None}
        if item.error is not None:  # found by discovery: never opened
            return entry | {"status": "failed", "error": item.error, "seconds": 0.0}
        meta = read_sidecar(sidecar)
        if (not overwrite and meta is not None and meta.get("settings") == fs.to_dict()
                and folder.is_dir()):
            return entry | {"status": "skipped", "output": str(folder),
                            "num_frames": meta.get("num_frames"), "seconds": 0.0}
        start = time.perf_counter()
        try:
            record = write_video_frames(item.source, folder, fs)
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
