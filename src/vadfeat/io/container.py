"""Opening a container with PyAV: the stream read, the size limit, and what it declares.

Every reader of containers opens the file here first, whatever decodes it afterwards
(:class:`vadfeat.io.pyav_video.PyAVReader`, :class:`vadfeat.io.torchcodec_video.TorchcodecReader`):
:func:`open_stream` opens the file (typed :class:`~vadfeat.errors.VideoOpenError` for a
missing, unreadable, audio-only file), chooses the video stream and refuses a header
over ``max_pixels``; :meth:`ContainerStream.layout` takes the first decoded frame and
gives the stored size, the display-matrix :class:`~vadfeat.io.orientation.Orientation`
and the :class:`~vadfeat.io.source.VideoInfo`, so both readers describe a file alike.

Stream choice: FFmpeg's (``av_find_best_stream``), unless it is a still image (cover
art, a one-frame thumbnail track), then the longest video stream; ``stream=`` names
one.  ``VideoInfo.stream`` records which, and several video streams give a warning.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from vadfeat._defaults import DEFAULT_MAX_PIXELS
from vadfeat.errors import VideoOpenError
from vadfeat.io.orientation import UPRIGHT, Orientation, orientation
from vadfeat.io.remote import is_url, open_input
from vadfeat.io.resample import fraction
from vadfeat.io.source import VideoInfo

__all__ = ["FALLBACK_FPS", "ContainerStream", "StreamLayout", "check_pixels", "choose_stream",
           "open_av", "open_container", "open_stream"]

logger = logging.getLogger(__name__)

# Frame rate assumed for a container that declares none (rare: raw streams).
FALLBACK_FPS = 25.0


def check_pixels(path: str | os.PathLike[str], width: int, height: int, max_pixels: int) -> None:
    """Refuse frames of ``width`` x ``height`` over ``max_pixels`` (:class:`VideoOpenError`)."""
    if width * height > max_pixels:
        raise VideoOpenError(
            f"{path}: frames are {width}x{height} = {width * height:,} pixels, more than the "
            f"limit of {max_pixels:,} (max_pixels, --max-pixels); raise it if this size is meant"
        )


# Streams whose probing decoders get the max_pixels option (video is among the first
# streams in practice; later streams are probed without the limit).
_PROBED_STREAMS = 32


def open_container(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    """Open ``path`` with PyAV for reading (stream probing under ``max_pixels``).

    Raises:
        VideoOpenError: permission denied, no such file, not a media file, any FFmpeg
            error while opening.
    """
    import av

    # Opening probes the streams, which decodes a frame of some files: with
    # max_pixels the decoder refuses a huge one there (a 16000x16000 H.264 took
    # 0.6 GB just to open) and the size still comes from the header.
    probe_options = [{"max_pixels": str(max_pixels)}] * _PROBED_STREAMS
    try:
        try:
            # PyAV's stub types open()'s stream_options as list[str]; it takes one dict per
            # stream, as its own Container.stream_options says (list[dict[str, str]]).
            return open_av(path, metadata_errors="replace", stream_options=probe_options)
        except ValueError:  # PyAV: formats without a header (MPEG-PS, .vob) take no stream options
            return open_av(path, metadata_errors="replace")
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


class _StreamedContainer:
    """A PyAV container reading an object named by URL from an open file object: the
    container's own attributes, and :meth:`close` closes the file too (PyAV leaves a file
    object it was given open)."""

    def __init__(self, container: Any, fileobj: Any) -> None:
        self._container = container
        self._fileobj = fileobj

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            self._fileobj.close()

    def __enter__(self) -> _StreamedContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_av(path: str | os.PathLike[str], **options: Any) -> Any:
    """``av.open(path, mode="r", **options)``; a URL (:func:`vadfeat.io.remote.is_url`) is
    opened with fsspec and decoded from the file object as it is read (nothing is
    downloaded to disk first), and closing the container closes it.

    Raises:
        VideoOpenError: a URL whose object or bucket is missing, or unreadable (naming it).
        av.error.FFmpegError, ValueError: as ``av.open``.
    """
    import av

    if not is_url(path):
        return av.open(str(path), mode="r", **options)
    fileobj = open_input(str(path))
    try:
        container = av.open(fileobj, mode="r", **options)
    except BaseException:
        fileobj.close()
        raise
    return _StreamedContainer(container, fileobj)


@dataclass(frozen=True)
class Chosen:
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
        return int(stream.frames) / (_stream_fps(stream) or FALLBACK_FPS)
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
    return seconds is not None and seconds * (_stream_fps(stream) or FALLBACK_FPS) < 1.5


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


def choose_stream(container: Any, path: Path | str, wanted: int | None = None) -> Chosen:
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
        return Chosen(stream)
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
    return Chosen(chosen, note)


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


def _limit_pixels(stream: Any, path: Path | str, max_pixels: int) -> None:
    """Refuse a stream whose header declares frames over ``max_pixels``, before decoding.

    FFmpeg's own ``max_pixels`` decoder option is set too, so a stream that declares
    no size (raw streams) or grows later fails in the decoder instead of allocating.
    """
    cc = stream.codec_context
    if cc.width and cc.height:
        check_pixels(path, cc.width, cc.height, max_pixels)
    try:
        cc.options = {**dict(cc.options or {}), "max_pixels": str(max_pixels)}
    except (AttributeError, TypeError):  # older PyAV: the header and first-frame checks remain
        logger.debug("cannot set max_pixels on the decoder of %s", path)



@dataclass(frozen=True)
class StreamLayout:
    """What the first decoded frame fixes: the stored size every frame is converted at
    (``width`` x ``height``, before any turn), the display-matrix ``orient`` (upright when
    autorotate is off) and the source's ``info`` (displayed size, rotation)."""

    width: int
    height: int
    orient: Orientation
    info: VideoInfo


class ContainerStream:
    """A container opened with PyAV and the video stream chosen in it (see :func:`open_stream`).

    ``container``, ``stream``: PyAV's objects (``stream.thread_type`` is ``"AUTO"``, its
    decoder limited to ``max_pixels``).  ``note``: a warning naming the streams when the
    file holds several video streams (``None`` otherwise).  ``native_fps``: the declared
    rate, ``None`` when it declares none (then :data:`FALLBACK_FPS` is assumed: ``rate``,
    ``frame_step``).  ``time_base``: the stream's, as an exact fraction (``None`` if none).
    """

    def __init__(self, path: Path | str, container: Any, chosen: Chosen) -> None:
        self.path = path
        self.container = container
        self.stream = chosen.stream
        self.note = chosen.note
        self.time_base = Fraction(self.stream.time_base) if self.stream.time_base else None
        self.native_fps = _stream_fps(self.stream)
        self.rate = fraction(self.native_fps or FALLBACK_FPS)
        self.frame_step = 1 / self.rate

    def time_of(self, frame: Any, previous: Fraction | None) -> Fraction:
        """A decoded frame's time in seconds: ``pts * time_base``, else one frame step after
        ``previous`` (0 for the first)."""
        if frame.pts is not None and self.time_base is not None:
            return frame.pts * self.time_base
        return Fraction(0) if previous is None else previous + self.frame_step

    def own_duration(self, frame: Any) -> Fraction | None:
        """A decoded frame's own duration in seconds (``AVFrame.duration``: PyAV >= 13)."""
        duration = getattr(frame, "duration", None)
        if duration and self.time_base is not None:
            return Fraction(duration * self.time_base)
        return None

    def layout(self, first: Any, *, max_pixels: int, autorotate: bool) -> StreamLayout:
        """The size, orientation and :class:`VideoInfo` that the first decoded frame fixes.

        A codec that reports 0x0 until it decodes gets its real size here.

        Raises:
            VideoOpenError: the first frame is over ``max_pixels``.
        """
        width, height = first.width, first.height
        check_pixels(self.path, width, height, max_pixels)
        orient = orientation(first) if autorotate else UPRIGHT
        shown_w, shown_h = (height, width) if orient.rotation in (90, 270) else (width, height)
        video = self.stream
        info = VideoInfo(
            path=str(self.path),
            kind="container",
            width=shown_w,
            height=shown_h,
            fps=self.native_fps or FALLBACK_FPS,
            declared_frames=int(video.frames) if video.frames else None,
            codec=video.codec_context.name,
            duration=_duration(self.container, video),
            rotation=orient.rotation,
            mirrored=orient.mirrored,
            stream=video.index,
        )
        return StreamLayout(width, height, orient, info)

    def warnings(self) -> list[str]:
        """What opening found worth a warning: several video streams, no declared rate."""
        found = [self.note] if self.note else []
        if self.native_fps is None:
            found.append(f"container declares no frame rate; assuming {FALLBACK_FPS:g} fps")
        return found

    def close(self) -> None:
        self.container.close()


def open_stream(path: Path | str, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                stream: int | None = None) -> ContainerStream:
    """Open ``path`` with PyAV and choose its video stream (``stream``, or as said above).

    The header's size is checked against ``max_pixels`` before anything is decoded, and
    FFmpeg's own ``max_pixels`` decoder option is set.  The container is closed again
    when this raises.

    Raises:
        VideoOpenError: cannot open, no video stream, ``stream`` missing or not video, no
            decoder, a header over ``max_pixels``.
    """
    container = open_container(path, max_pixels)
    try:
        chosen = choose_stream(container, path, stream)
        chosen.stream.thread_type = "AUTO"  # FFmpeg picks frame/slice threads per codec
        _limit_pixels(chosen.stream, path, max_pixels)
        return ContainerStream(path, container, chosen)
    except BaseException:
        container.close()
        raise
