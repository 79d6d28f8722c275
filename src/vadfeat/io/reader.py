"""The iteration loop every video reader shares: :class:`VideoReader`.

A reader supplies the decoder-specific steps (its decoded frames with their times, how
a decoded frame becomes RGB pixels, how they are turned upright, its end-of-video
check); this class runs them the same way for all: the single-pass guard, ``fps``
resampling (:class:`~vadfeat.io.resample.Resampler`: only the frames chosen are
converted, a repeated frame once), the optional pixel stage of
:meth:`VideoReader.frames`, the typed :class:`~vadfeat.io.source.VideoFrame` values,
the counts and warnings of the :class:`~vadfeat.io.source.VideoSource` protocol.
The parts a reader reuses from another (opening with PyAV, the display matrix, the
timeline, the count checks) are components it holds, not a base class it extends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vadfeat._types import OnCorrupt
from vadfeat.io.corrupt import CorruptPolicy
from vadfeat.io.counts import check_end
from vadfeat.io.resample import FrameTimes, Resampler
from vadfeat.io.source import DecodedFrame, PixelStage, VideoFrame, VideoInfo

__all__ = ["ContainerReader", "VideoReader"]

logger = logging.getLogger("vadfeat.io.video")


def _own_pixels(decoded: DecodedFrame) -> np.ndarray:
    return decoded.rgb()


class VideoReader:
    """A single-pass stream of :class:`VideoFrame` from one source (a :class:`VideoSource`).

    ``frame.data`` is an ``HxWx3`` uint8 RGB, C-contiguous array of the size in
    ``info``.  Use as a context manager (the file is closed on exit) and iterate
    once; a second iteration raises ``RuntimeError``.  Under ``fps`` resampling a
    source frame may be yielded several times (its data as the *same* array object: do
    not modify yielded frames in place) or not at all.

    After iteration: ``decoded_frames`` (source frames actually decoded),
    ``yielded_frames``, ``corrupt_packets`` (dropped packets or images, ``"skip"``
    only) and ``warnings`` (human-readable, also logged at WARNING level).

    A reader implements ``_source`` (decoded frames: ``(index, time in seconds,
    payload)``), ``_decoded`` (a payload as a :class:`DecodedFrame`, converted only when
    chosen), ``_present`` (stored pixels -> the yielded array: turned upright,
    contiguous), ``_last_duration`` and ``_finish_checks``, and sets ``info`` once it has
    read the first frame.
    """

    info: VideoInfo

    def __init__(self, path: Path | str, *, on_corrupt: OnCorrupt, fps: float | None) -> None:
        self._label = str(path)
        self.policy = CorruptPolicy(path, on_corrupt)
        self._resample_fps = fps
        self.decoded_frames = 0
        self.yielded_frames = 0
        self.warnings: list[str] = []
        self._iterated = False
        self._closed = False

    @property
    def on_corrupt(self) -> OnCorrupt:
        """The damage policy: ``"fail"`` or ``"skip"``."""
        return self.policy.on_corrupt

    @property
    def corrupt_packets(self) -> int:
        """Packets (or images) dropped under ``on_corrupt="skip"``."""
        return self.policy.count

    @corrupt_packets.setter
    def corrupt_packets(self, value: int) -> None:
        self.policy.count = value

    @property
    def fps(self) -> float:
        """Rate of the yielded frames: the ``fps`` asked for, else the native rate."""
        return self._resample_fps if self._resample_fps is not None else self.info.fps

    # -- what a reader supplies
    def _source(self) -> Iterator[tuple[int, Fraction, Any]]:  # pragma: no cover
        """Yield (index, time in seconds, payload) for each decoded source frame."""
        raise NotImplementedError

    def _decoded(self, payload: Any, index: int) -> DecodedFrame:
        """A payload as the pixel stage sees it; conversion deferred to ``rgb()``."""
        return DecodedFrame(index, payload, self.info.width, self.info.height, lambda: payload)

    def _present(self, rgb: np.ndarray) -> np.ndarray:
        """Stored pixels -> the yielded array (turned upright, C-contiguous)."""
        return np.ascontiguousarray(rgb)

    def _last_duration(self) -> Fraction:  # pragma: no cover
        raise NotImplementedError

    def _finish_checks(self) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- the protocol
    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning("%s: %s", self._label, message)

    def __iter__(self) -> Iterator[VideoFrame]:
        return self.frames()

    def frames(self, pixels: PixelStage | None = None) -> Iterator[VideoFrame]:
        """Iterate (once), each chosen frame's pixels made by ``pixels`` from its
        :class:`DecodedFrame` (``None``: this reader's own conversion), then presented.

        Raises:
            RuntimeError: iterated before, or closed.
        """
        if self._iterated:
            raise RuntimeError(f"{self._label}: a VideoReader can be iterated only once")
        if self._closed:
            raise RuntimeError(f"{self._label}: reader is closed")
        self._iterated = True
        return self._iterate(pixels or _own_pixels)

    def _iterate(self, stage: PixelStage) -> Iterator[VideoFrame]:
        def convert(index: int, payload: Any) -> np.ndarray:
            return self._present(stage(self._decoded(payload, index)))

        try:
            if self._resample_fps is None:
                for index, t, payload in self._source():
                    self.yielded_frames += 1
                    yield VideoFrame(index, float(t), convert(index, payload))
            else:
                resampler = Resampler(self._resample_fps)
                # A repeated frame is emitted consecutively: convert it once.
                cached: tuple[int, np.ndarray] | None = None
                for index, payload in self._resampled(resampler):
                    if cached is None or cached[0] != index:
                        cached = (index, convert(index, payload))
                    self.yielded_frames += 1
                    yield VideoFrame(index, float(resampler.output_time), cached[1])
            self._finish_checks()
        finally:
            self.close()

    def _resampled(self, resampler: Resampler) -> Iterator[tuple[int, Any]]:
        for index, t, payload in self._source():
            yield from resampler.push(index, t, payload)
        yield from resampler.finish(self._last_duration())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._label!r})"


class ContainerReader(VideoReader):
    """The end of a container's decode, shared by the PyAV and torchcodec readers: frame
    times kept in ``_times`` (:class:`~vadfeat.io.resample.FrameTimes`, set by the reader
    once its stream is open) and the end-of-video checks of
    :func:`~vadfeat.io.counts.check_end` (declared against decoded count, truncation).  A
    reader supplies ``_discarded`` (the samples flagged discard, counted only when the
    counts disagree)."""

    _times: FrameTimes

    def _discarded(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def _last_duration(self) -> Fraction:
        return self._times.last_duration

    def _finish_checks(self) -> None:
        check_end(self.info, label=self._label, decoded=self.decoded_frames,
                  corrupt_packets=self.corrupt_packets, first_corrupt_at=self.policy.first_at,
                  span=self._times.span, last_duration=self._times.last_duration,
                  on_corrupt=self.on_corrupt, discarded=self._discarded, warn=self._warn)
