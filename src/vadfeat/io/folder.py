"""Frame folders: a folder of image files (``img_00001.jpg`` ...) read as one video.

The form the legacy pipeline extracted to disk.  One folder is one video; its frames
are the images that follow one naming pattern (:func:`frame_files`), read with OpenCV in
numeric order by :class:`FolderReader`, a :class:`~vadfeat.io.source.VideoSource` like
the container readers (frame indices: position in numeric file order; timestamps:
``index / folder_fps``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vadfeat._defaults import DEFAULT_MAX_PIXELS
from vadfeat._types import FramesColour, OnCorrupt
from vadfeat.errors import DecodeError, VideoOpenError
from vadfeat.io.container import check_pixels
from vadfeat.io.paths import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from vadfeat.io.reader import VideoReader
from vadfeat.io.resample import fraction
from vadfeat.io.source import VideoInfo

__all__ = ["DEFAULT_FOLDER_FPS", "FolderReader", "FrameFiles", "frame_files", "is_frame_folder",
           "list_frame_files"]


#: Frame rate assumed for frame folders, which carry no timing.  It only labels the
#: metadata and sets the timeline for ``fps`` resampling; pass ``folder_fps`` with
#: the dataset's real rate when either matters.
DEFAULT_FOLDER_FPS = 30.0


_DIGITS = re.compile(r"\d+")


def _frame_sort_key(path: Path) -> tuple[int, tuple[int, ...], str]:
    numbers = tuple(int(n) for n in _DIGITS.findall(path.stem))
    return (0 if numbers else 1, numbers, path.name)


@dataclass(frozen=True)
class FrameFiles:
    """The frames of a frame folder, and the image files left out of them.

    ``frames`` are in frame order (see :func:`list_frame_files`).  ``pattern`` is
    their naming pattern with ``#`` for the frame number (``img_#.jpg``), or
    ``None`` when no image name holds a number (then every image is a frame, in name
    order).  ``left_out`` are images that do not follow the pattern (a ``thumb.png``
    beside ``img_00001.jpg`` ...), sorted by name.
    """

    frames: tuple[Path, ...]
    pattern: str | None
    left_out: tuple[Path, ...]


def _naming_pattern(path: Path) -> str | None:
    """``img_00012.JPG`` -> ``img_#.jpg``, ``f_3_cam2.png`` -> ``f_#_cam#.png``; ``None``
    when the stem holds no number."""
    stem, count = _DIGITS.subn("#", path.stem)
    return f"{stem}{path.suffix.lower()}" if count else None


def frame_files(folder: str | os.PathLike[str]) -> FrameFiles:
    """The frames of ``folder``: the image files that follow one naming pattern.

    A frame folder holds one numbered series (``img_00001.jpg`` ... or UCSD's
    ``001.tif`` ...).  Image files are grouped by pattern (the name with its numbers
    replaced, extension lower-cased); the largest group is the frames, and
    every other image (a ``thumb.png``, ``cover.jpg``, a second series) is left out.
    When no name holds a number, all images are frames, in name order.  Hidden
    files and files with other extensions are ignored.

    Raises:
        VideoOpenError: the folder cannot be listed, or two numbered series are
            equally long (``img_#.jpg`` and ``flow_x_#.jpg``): which one is the video
            cannot be told.
    """
    base = Path(folder)
    try:
        files = [
            p for p in base.iterdir()
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
        ]
    except OSError as exc:
        raise VideoOpenError(f"{base}: cannot list the frame folder: {exc}") from exc
    groups: dict[str, list[Path]] = {}
    for file in files:
        pattern = _naming_pattern(file)
        if pattern is not None:
            groups.setdefault(pattern, []).append(file)
    if not groups:
        return FrameFiles(tuple(sorted(files, key=_frame_sort_key)), None, ())
    most = max(len(g) for g in groups.values())
    best = sorted(p for p, g in groups.items() if len(g) == most)
    if len(best) > 1:
        raise VideoOpenError(
            f"{base}: {len(best)} image series of {most} files each ({', '.join(best[:4])}); "
            "a frame folder must hold one naming pattern: move the other series out"
        )
    frames = groups[best[0]]
    chosen = set(frames)
    left_out = sorted((f for f in files if f not in chosen), key=lambda f: f.name)
    return FrameFiles(tuple(sorted(frames, key=_frame_sort_key)), best[0], tuple(left_out))


def list_frame_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The frames of ``folder`` (see :func:`frame_files`), in frame order.

    Order is numeric by the integers in the file stem, left to right (``img_2``
    before ``img_10``, any zero padding; ``f_2_cam1`` before ``f_10_cam1``), ties
    broken by name; in a folder whose names hold no integer, by name.  Images outside
    the folder's naming pattern, hidden files and files with other extensions are left
    out.
    """
    return list(frame_files(folder).frames)


def is_frame_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder of frames: it directly holds image files and
    neither video files nor sub-folders (hidden entries and other files are ignored).

    Sub-folders disqualify it so that a dataset folder with a stray ``cover.jpg`` is
    searched for videos rather than taken as a one-frame video.
    """
    p = Path(path)
    if not p.is_dir():
        return False
    has_image = False
    try:
        for child in p.iterdir():
            if child.name.startswith("."):
                continue
            if child.is_dir():
                return False
            ext = child.suffix.lower()
            if ext in VIDEO_EXTENSIONS:
                return False
            if ext in IMAGE_EXTENSIONS:
                has_image = True
    except OSError:
        return False
    return has_image


class FolderReader(VideoReader):
    """A frame folder read with OpenCV, in frame order; opened by :func:`vadfeat.io.video.open_video`.

    The first readable image is decoded at construction: it fixes the frame size (a
    later image of another size is a :class:`DecodeError`), and a folder with none is
    an open error.  ``frames_colour="legacy-swapped"`` returns images as OpenCV reads
    them (the legacy script's files hold swapped channels, so that is the true RGB).

    Raises:
        VideoOpenError: no image files, two image series, no readable image, a first
            image over ``max_pixels``.
        DecodeError: under ``"fail"``, an unreadable image (at construction for the
            first, else while iterating); an image of another size (while iterating).
    """

    def __init__(
        self,
        path: Path,
        *,
        on_corrupt: OnCorrupt,
        fps: float | None,
        folder_fps: float,
        frames_colour: FramesColour,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(path, on_corrupt=on_corrupt, fps=fps)
        self._path = path
        listing = frame_files(path)
        self._files = list(listing.frames)
        if not self._files:
            raise VideoOpenError(
                f"{path}: folder holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        if listing.left_out:
            names = ", ".join(f.name for f in listing.left_out[:5])
            more = f" and {len(listing.left_out) - 5} more" if len(listing.left_out) > 5 else ""
            self._warn(f"left out {len(listing.left_out)} image(s) that do not follow the frames' "
                       f"naming pattern {listing.pattern}: {names}{more}")
        self._swapped = frames_colour == "legacy-swapped"
        self._folder_fps = fraction(folder_fps)
        self._skipped: list[str] = []
        # Find the first readable image now: it fixes the frame size, and a folder
        # with none is an open error like a container with no decodable frame.
        first: tuple[int, np.ndarray] | None = None
        for position, file in enumerate(self._files):
            try:
                first = (position, self._read(file, position))
                break
            except DecodeError:
                if on_corrupt == "fail":
                    raise
                self._skipped.append(file.name)
        if first is None:
            raise VideoOpenError(f"{path}: none of its {len(self._files)} images is readable")
        self._first: tuple[int, np.ndarray] | None = first
        height, width = first[1].shape[:2]
        # Images carry no size header OpenCV exposes: the first one is decoded (once)
        # and checked; later frames must have its size.
        check_pixels(path, width, height, max_pixels)
        self.info = VideoInfo(
            path=str(path),
            kind="frames",
            width=width,
            height=height,
            fps=float(folder_fps),
            declared_frames=len(self._files),
            codec=None,
            duration=len(self._files) / float(folder_fps),
        )
        self.corrupt_packets = len(self._skipped)

    def _read(self, file: Path, position: int) -> np.ndarray:
        import cv2

        try:
            data = np.fromfile(file, dtype=np.uint8)  # unlike cv2.imread, any unicode path
        except OSError as exc:
            raise DecodeError(f"{file}: cannot read image (frame {position}): {exc}") from exc
        # libjpeg decodes a truncated JPEG to a partly grey image with only a printed
        # warning; the end-of-image marker is missing then (it cannot occur inside
        # entropy-coded data, so looking near the end is safe).
        if file.suffix.lower() in (".jpg", ".jpeg") and b"\xff\xd9" not in data[-64:].tobytes():
            raise DecodeError(
                f"{file}: truncated or corrupt JPEG (no end-of-image marker) at frame {position}"
            )
        try:
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        except cv2.error as exc:  # e.g. a header claiming an image larger than OpenCV allows
            raise DecodeError(f"{file}: not a readable image (frame {position}): {exc}") from exc
        if image is None:
            raise DecodeError(f"{file}: not a readable image (frame {position})")
        if self._swapped:
            # The legacy script stored RGB arrays through a BGR writer, so what OpenCV
            # reads back as "BGR" is in fact RGB already.
            return np.ascontiguousarray(image)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _source(self) -> Iterator[tuple[int, Fraction, np.ndarray]]:
        assert self._first is not None
        start, frame = self._first
        self._first = None
        expected = frame.shape
        self.decoded_frames += 1
        yield start, start / self._folder_fps, frame
        for position in range(start + 1, len(self._files)):
            file = self._files[position]
            try:
                frame = self._read(file, position)
            except DecodeError:
                if self.on_corrupt == "fail":
                    raise
                self._skipped.append(file.name)
                self.corrupt_packets += 1
                continue
            if frame.shape != expected:
                raise DecodeError(
                    f"{file}: frame {position} is {frame.shape[1]}x{frame.shape[0]}, but "
                    f"earlier frames of {self._path} are {expected[1]}x{expected[0]}"
                )
            self.decoded_frames += 1
            yield position, position / self._folder_fps, frame

    def _last_duration(self) -> Fraction:
        return 1 / self._folder_fps

    def _finish_checks(self) -> None:
        if self._skipped:
            names = ", ".join(self._skipped[:5]) + (" ..." if len(self._skipped) > 5 else "")
            self._warn(
                f"skipped {len(self._skipped)} unreadable image(s) of {len(self._files)}: {names}"
            )


