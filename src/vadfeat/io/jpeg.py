"""The JPEG round trip: a video source's frames as a script's JPEG dump holds them.

Some reference scripts read their videos from a dump of JPEG files rather than from
the video (``ffmpeg -i VIDEO %d.jpg``, or ``cv2.imwrite`` per frame).  To reproduce
their features from the video itself, :class:`JpegRoundTrip` wraps a video source and
makes each frame's pixels as that dump holds them, in memory:

* ``"ffmpeg"``: FFmpeg's MJPEG encoder at the command line's defaults, run on the
  decoded frame itself (:class:`FfmpegJpeg`; needs a PyAV-decoded source, whose
  :class:`~vadfeat.io.source.DecodedFrame` carries the ``av.VideoFrame``);
* ``"opencv"``: ``cv2.imencode`` at OpenCV's defaults (quality 95), decoded back
  (:func:`opencv_jpeg_roundtrip`).

The wrapper works through the source's pixel stage (:meth:`VideoSource.frames`), so the
source still resamples (the round trip is applied to the frames read, after ``fps``
resampling, each chosen frame once) and still turns frames upright *after* the round
trip (the command line turns them first: not the same for rotated phone video).  It is
chosen where sources are opened (:func:`vadfeat.io.video.open_video`'s
``jpeg_roundtrip``).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any, get_args

import numpy as np

from vadfeat._types import JpegRoundTrip as JpegMode
from vadfeat.errors import ConfigError, DecodeError
from vadfeat.io.resample import fraction
from vadfeat.io.source import DecodedFrame, PixelStage, VideoFrame, VideoInfo, VideoSource

__all__ = ["FfmpegJpeg", "JpegMode", "JpegRoundTrip", "opencv_jpeg_roundtrip"]


class FfmpegJpeg:
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


def opencv_jpeg_roundtrip(rgb: np.ndarray) -> np.ndarray:
    """An ``[H, W, 3]`` RGB frame as ``cv2.imwrite("n.jpg", bgr_frame)`` stores it (OpenCV's
    JPEG defaults: quality 95, 4:2:0) and a JPEG decoder reads it back (OpenCV and Pillow
    give the same pixels)."""
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    if image is None:
        raise DecodeError("OpenCV's JPEG round trip of a frame gave no image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class JpegRoundTrip:
    """A video source whose frames went through a JPEG dump (``mode``) on the way.

    Wraps ``source`` (any :class:`VideoSource`; ``"ffmpeg"`` needs frames decoded by PyAV)
    and is itself one: ``info``, counts, ``warnings``, ``fps`` and closing are the
    source's; iterating it iterates the source with the round trip as its pixel stage.
    ``mode="none"`` passes the frames through unchanged.

    Raises:
        ConfigError: an unknown ``mode``.
        DecodeError: while iterating, a frame the round trip cannot encode, or
            ``"ffmpeg"`` over a source whose frames are not PyAV's.
    """

    def __init__(self, source: VideoSource, mode: JpegMode) -> None:
        allowed = get_args(JpegMode)
        if mode not in allowed:
            raise ConfigError(f"jpeg_roundtrip must be one of {', '.join(map(repr, allowed))}; "
                              f"got {mode!r}")
        self.source = source
        self.mode: JpegMode = mode
        self._stage: PixelStage | None = None
        if mode == "ffmpeg":
            self._stage = _FfmpegStage(FfmpegJpeg(fraction(source.info.fps)), source.info.path)
        elif mode == "opencv":
            self._stage = _opencv_stage

    @property
    def info(self) -> VideoInfo:
        return self.source.info

    @property
    def warnings(self) -> list[str]:
        return self.source.warnings

    @property
    def corrupt_packets(self) -> int:
        return self.source.corrupt_packets

    @property
    def decoded_frames(self) -> int:
        return self.source.decoded_frames

    @property
    def yielded_frames(self) -> int:
        return self.source.yielded_frames

    @property
    def fps(self) -> float:
        return self.source.fps

    @property
    def on_corrupt(self) -> str:
        return self.source.on_corrupt

    def frames(self, pixels: PixelStage | None = None) -> Iterator[VideoFrame]:
        """Iterate the source with the round trip as its pixel stage.

        Raises:
            ValueError: ``pixels`` given (a round trip makes the pixels itself).
        """
        if pixels is not None:
            raise ValueError("a JPEG round trip makes the frames' pixels itself; wrap the "
                             "other stage around the source instead")
        return self.source.frames(self._stage)

    def __iter__(self) -> Iterator[VideoFrame]:
        return self.frames()

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> JpegRoundTrip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JpegRoundTrip({self.source!r}, {self.mode!r})"


class _FfmpegStage:
    """FFmpeg's dump made from each decoded ``av.VideoFrame`` at the source's stored size."""

    def __init__(self, encoder: FfmpegJpeg, path: str) -> None:
        self._encoder = encoder
        self._path = path

    def __call__(self, decoded: DecodedFrame) -> np.ndarray:
        if not hasattr(decoded.native, "reformat"):
            raise DecodeError(f"{self._path}: the 'ffmpeg' JPEG round trip runs FFmpeg's MJPEG "
                              "encoder on PyAV's decoded frames; this source's frames are not "
                              "PyAV's (use decoder='pyav')")
        return self._encoder(decoded.native, decoded.width, decoded.height)


def _opencv_stage(decoded: DecodedFrame) -> np.ndarray:
    return opencv_jpeg_roundtrip(decoded.rgb())
