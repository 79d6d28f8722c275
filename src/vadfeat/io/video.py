"""Open a video file or a frame folder as a stream of typed frames: :func:`open_video`.

Two kinds of source (docs/DESIGN.md, "Decoders"), both behind the
:class:`~vadfeat.io.source.VideoSource` protocol, yielding
:class:`~vadfeat.io.source.VideoFrame` values (index, timestamp, ``[H, W, 3]`` uint8 RGB):

* **containers** (anything FFmpeg opens: mp4, avi, mkv, mov, webm, ...), decoded with
  PyAV (:class:`~vadfeat.io.pyav_video.PyAVReader`), or with torchcodec (CPU, or NVDEC
  on CUDA: :mod:`vadfeat.io.torchcodec_video`) behind the same contract;
* **frame folders**: a folder of image files (``img_00001.jpg`` ...), the form the
  legacy pipeline extracted to disk (:mod:`vadfeat.io.folder`).  One folder is one video.

Frames are streamed: at most one decoded frame (two while resampling) is held at a
time, however long the video.  Frame indices are 0-based positions in the decoded
frame sequence (frame folders: position in numeric file order), see docs/DESIGN.md.

Damage policy (``on_corrupt``, :mod:`vadfeat.io.corrupt`):

* ``"fail"``: the first decoding error (corrupt packet, unreadable image) raises
  :class:`~vadfeat.errors.DecodeError` naming the file and where it happened.
* ``"skip"``: the bad packet or image is dropped, counted in ``corrupt_packets`` and
  summarised in ``warnings``; decoding goes on.

A file that ends early *without* an error is a warning under ``"skip"`` and a
:class:`~vadfeat.errors.DecodeError` under ``"fail"`` when clearly short
(:mod:`vadfeat.io.counts`).  Stream choice and what a container declares:
:mod:`vadfeat.io.container`; the display matrix: :mod:`vadfeat.io.orientation`;
``fps`` resampling: :mod:`vadfeat.io.resample`; the JPEG round trip of some recipes:
:mod:`vadfeat.io.jpeg`, a wrapper source chosen here.

Every public name this module had before the split is still importable from it (and the
private ones tests import: ``_ContainerReader``, ``_Resampler``, ``_display_matrix``,
``_orientation``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, get_args

from vadfeat._defaults import DEFAULT_MAX_PIXELS  # defined there for --help; re-exported
from vadfeat._types import Decoder, FramesColour, JpegRoundTrip, OnCorrupt
from vadfeat.errors import ConfigError, VideoOpenError
from vadfeat.io.counts import shown_samples
from vadfeat.io.folder import (
    DEFAULT_FOLDER_FPS,
    FolderReader,
    FrameFiles,
    frame_files,
    is_frame_folder,
    list_frame_files,
)
from vadfeat.io.jpeg import JpegRoundTrip as JpegRoundTripSource
from vadfeat.io.orientation import display_matrix, orientation
from vadfeat.io.paths import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, check_path, not_regular
from vadfeat.io.pyav_video import PyAVReader
from vadfeat.io.reader import VideoReader
from vadfeat.io.remote import is_url, local_path
from vadfeat.io.resample import MAX_RESAMPLE_RATIO, MAX_TIMESTAMP_GAP_S, Resampler
from vadfeat.io.source import VideoFrame, VideoInfo, VideoSource

__all__ = [
    "DEFAULT_FOLDER_FPS",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MAX_RESAMPLE_RATIO",
    "MAX_TIMESTAMP_GAP_S",
    "VIDEO_EXTENSIONS",
    "FrameFiles",
    "FramesColour",
    "OnCorrupt",
    "VideoFrame",
    "VideoInfo",
    "VideoReader",
    "VideoSource",
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

# Names from before the split that tests and the torchcodec stand-in import from here.
_ContainerReader = PyAVReader
_Resampler = Resampler
_display_matrix = display_matrix
_orientation = orientation


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
) -> VideoSource:
    """Open a video container or a frame folder for streaming (a :class:`VideoSource`).

    Args:
        path: a video file (any container FFmpeg opens) or a frame folder; or the URL of
            a video in an object store (``s3://bucket/x.mp4``, ``gs://...``: decoded by
            PyAV from the object as it is read, never downloaded whole; ``file://`` is the
            local path).
        on_corrupt: ``"fail"`` raises :class:`DecodeError` at the first corrupt packet
            or unreadable image; ``"skip"`` drops it, counts it and goes on.
        fps: resample to this many frames per second by timestamp (output time k/fps
            gets the latest source frame at or before it; variable-frame-rate input
            comes out evenly timed).  ``None`` yields every decoded frame.
        frames_colour: channel order of frame-folder images.  ``"normal"``: files hold
            true colours.  ``"legacy-swapped"``: written by the legacy script, whose
            files hold swapped channels (docs/REFERENCE.md, section 1); they are returned as OpenCV reads
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
            :class:`~vadfeat.io.jpeg.FfmpegJpeg`), ``"opencv"`` as ``cv2.imwrite`` does
            (quality 95); ``"none"`` (default): as decoded.  PyAV only; frame folders are
            read as they are.  The reader is wrapped in a
            :class:`~vadfeat.io.jpeg.JpegRoundTrip` source.  Applied to the frames read,
            after ``fps`` resampling, and before a display matrix turns them upright (the
            command line turns them first: not the same for rotated phone video).

    Under ``fps``, at most :data:`MAX_RESAMPLE_RATIO` frames per decoded frame plus one
    minute of output are made; more raises :class:`DecodeError` while iterating.

    Returns a :class:`VideoSource` (a :class:`VideoReader`, or a
    :class:`~vadfeat.io.jpeg.JpegRoundTrip` over one) yielding :class:`VideoFrame`
    values, which unpack as ``(index, frame)``; the first frame has already been
    decoded, so a source with no decodable frame fails here.

    Raises:
        VideoOpenError: missing path, permission denied, a name no file can have (NUL
            byte, too long), a named pipe, socket or device (never opened), empty file,
            not a video, no video stream (e.g. audio only), a folder with no images or
            two image series, no decodable frame, frames over ``max_pixels``, ``stream``
            missing from the file or not a video stream.
        DecodeError: under ``"fail"``, the first frame is corrupt.
        ConfigError: a bad option value; torchcodec asked for and not loadable, or with
            ``on_corrupt="skip"``, or for a URL; a URL whose library (s3fs, gcsfs) is not
            installed.
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
    if is_url(path):
        assert isinstance(path, str)
        local = local_path(path)
        if local is None:
            return _open_url(path, on_corrupt=on_corrupt, fps=out_fps, max_pixels=limit,
                             autorotate=bool(autorotate), decoder=decoder, stream=wanted,
                             jpeg_roundtrip=jpeg_roundtrip)
        path = local
    p = Path(path)
    if check_path(p):
        if not is_frame_folder(p):
            raise VideoOpenError(
                f"{p}: a folder that is not a frame folder (it must directly hold image files "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))} and no videos or sub-folders)"
            )
        return FolderReader(
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
    reader = PyAVReader(p, on_corrupt=on_corrupt, fps=out_fps, max_pixels=limit,
                        autorotate=bool(autorotate), stream=wanted)
    if jpeg_roundtrip == "none":
        return reader
    return JpegRoundTripSource(reader, jpeg_roundtrip)


def _open_url(url: str, *, on_corrupt: OnCorrupt, fps: float | None, max_pixels: int,
              autorotate: bool, decoder: Decoder, stream: int | None,
              jpeg_roundtrip: JpegRoundTrip) -> VideoSource:
    """A container named by URL, decoded by PyAV while fsspec reads it (see
    :func:`vadfeat.io.remote.open_input`).  Frame folders are read from local disk only."""
    if decoder != "pyav":
        raise ConfigError(f"{url}: videos named by URL are decoded with PyAV from the object "
                          f"store as they are read; use decoder='pyav' (--decoder pyav)")
    reader = PyAVReader(url, on_corrupt=on_corrupt, fps=fps, max_pixels=max_pixels,
                        autorotate=autorotate, stream=stream)
    if jpeg_roundtrip == "none":
        return reader
    return JpegRoundTripSource(reader, jpeg_roundtrip)


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
