"""Containers decoded with PyAV (``decoder="pyav"``, the default and the reference).

PyAV was chosen over OpenCV and decord because it reports damage as typed errors
(OpenCV returns wrong frames after a truncation without complaint; decord's batch reads
use up to 1 GB) and can skip corrupt packets and go on.  Decoding uses FFmpeg's own
threads (``thread_type="AUTO"``) and one reused
:class:`~av.video.reformatter.VideoReformatter` for the conversion to ``rgb24``, about
1.5x the speed of a fresh conversion per frame.

:class:`PyAVReader` is composed of the ``io`` parts it shares with the torchcodec
reader: :func:`~vadfeat.io.container.open_stream` (opening, stream choice, size limit,
``VideoInfo``), :func:`~vadfeat.io.corrupt.decode_packets` under a
:class:`~vadfeat.io.corrupt.CorruptPolicy`, the :class:`~vadfeat.io.resample.FrameTimes`
timeline, the display-matrix :class:`~vadfeat.io.orientation.Orientation` and
:func:`~vadfeat.io.counts.check_end`.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vadfeat._defaults import DEFAULT_MAX_PIXELS
from vadfeat._types import OnCorrupt
from vadfeat.errors import VideoOpenError
from vadfeat.io.container import open_stream
from vadfeat.io.corrupt import PacketCounts, decode_packets
from vadfeat.io.reader import ContainerReader
from vadfeat.io.resample import FrameTimes
from vadfeat.io.source import DecodedFrame

__all__ = ["PyAVReader", "no_frames_error"]


def no_frames_error(path: Path | str, corrupt_packets: int) -> VideoOpenError:
    """The open error of a container none of whose frames decodes."""
    detail = f" ({corrupt_packets} corrupt packet(s) skipped)" if corrupt_packets else ""
    return VideoOpenError(f"{path}: no decodable video frames{detail}")


class PyAVReader(ContainerReader):
    """A container decoded by PyAV; opened by :func:`vadfeat.io.video.open_video`.

    The first frame is decoded at construction: a file with no decodable frame fails
    here, and a codec that reports 0x0 until it decodes gets a real size.  Frames of
    another size later on are rescaled to the first size (with a warning).

    Raises:
        VideoOpenError: see :func:`~vadfeat.io.container.open_stream`; no decodable frame;
            a first frame over ``max_pixels``.
        DecodeError: under ``"fail"``, a corrupt packet before the first frame (and,
            while iterating, any corrupt packet or a truncated video).
    """

    def __init__(self, path: Path | str, *, on_corrupt: OnCorrupt, fps: float | None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, autorotate: bool = True,
                 stream: int | None = None) -> None:
        from av.video.reformatter import VideoReformatter

        super().__init__(path, on_corrupt=on_corrupt, fps=fps)
        self._path = path
        self._size_warned = False
        self._packets = PacketCounts()
        self._opened = open_stream(path, max_pixels=max_pixels, stream=stream)
        try:
            self._times = FrameTimes(self._opened.frame_step)
            self._reformatter = VideoReformatter()
            self._frames = self._decode()
            first = next(self._frames, None)
            if first is None:
                raise no_frames_error(path, self.corrupt_packets)
            self._first: Any = first
            layout = self._opened.layout(first, max_pixels=max_pixels, autorotate=autorotate)
        except BaseException:
            self._opened.close()
            raise
        self._width, self._height, self._orient = layout.width, layout.height, layout.orient
        self.info = layout.info
        for message in self._opened.warnings():
            self._warn(message)

    def _decode(self) -> Iterator[Any]:
        """Decoded ``av.VideoFrame``\\ s under this reader's ``on_corrupt`` policy."""
        return decode_packets(self._opened.container, self._opened.stream, self.policy,
                              self._packets, warn=self._warn)

    def _source(self) -> Iterator[tuple[int, Fraction, Any]]:
        index = 0
        t: Fraction | None = None
        frame = self._first
        self._first = None
        while frame is not None:
            t = self._opened.time_of(frame, t)
            self._times.add(t, self._opened.own_duration(frame))
            self.decoded_frames += 1
            yield index, t, frame
            index += 1
            frame = next(self._frames, None)

    def _decoded(self, payload: Any, index: int) -> DecodedFrame:
        frame = payload
        if (frame.width, frame.height) != (self._width, self._height) and not self._size_warned:
            self._size_warned = True
            self._warn(
                f"frame size changes at frame {index} from {self._width}x{self._height} to "
                f"{frame.width}x{frame.height}; later frames are rescaled to the first size"
            )

        def rgb() -> np.ndarray:
            converted = self._reformatter.reformat(frame, width=self._width, height=self._height,
                                                   format="rgb24")
            # FFmpeg pads rows to SIMD alignment; to_ndarray strips the padding with a view.
            return converted.to_ndarray()

        return DecodedFrame(index, frame, self._width, self._height, rgb)

    def _present(self, rgb: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._orient.apply(rgb))

    def _discarded(self) -> int:
        return self._packets.discarded

    def close(self) -> None:
        if not self._closed:
            self._opened.close()
        super().close()
