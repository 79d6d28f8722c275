"""The one source protocol: what every reader of ``io/`` offers, and the values it yields.

A *source* is one opened input streamed once: open it (a factory such as
:func:`vadfeat.io.video.open_video` returns it, having read enough to fill ``info``),
iterate it (typed values, in order), close it (or use it as a context manager).  After
iteration, what each kind of source adds says what decoding found (a video source: its
counts and ``warnings``).  :class:`Source` is
generic over the value type and the info type, so a video reader (``VideoFrame``,
:class:`VideoInfo`) and an audio reader (chunks of samples, its own info) satisfy the
same protocol; :class:`VideoSource` adds what video consumers read.

Values are small frozen dataclasses like torchcodec's ``Frame`` (``data``,
``pts_seconds``, ``duration_seconds``): :class:`VideoFrame` carries its index in the
decoded sequence, its presentation time in seconds and its pixels.

A video source is built from parts that each reader composes rather than inherits
(docs/DESIGN.md, "Decoders"): opening and stream choice with PyAV
(:mod:`vadfeat.io.container`), the corrupt-packet policy (:mod:`vadfeat.io.corrupt`),
the frame-rate resampler (:mod:`vadfeat.io.resample`), the display matrix
(:mod:`vadfeat.io.orientation`) and the end-of-video count checks
(:mod:`vadfeat.io.counts`).  A wrapper source such as
:class:`vadfeat.io.jpeg.JpegRoundTrip` changes how each frame's pixels are made through
:meth:`VideoSource.frames`'s ``pixels`` stage.

No torch here: any layer may import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

__all__ = ["DecodedFrame", "PixelStage", "Source", "VideoFrame", "VideoInfo", "VideoSource"]

V_co = TypeVar("V_co", covariant=True)
I_co = TypeVar("I_co", covariant=True)


@dataclass(frozen=True)
class VideoInfo:
    """What a source declares about itself (not what decoding found; see VideoSource).

    ``fps`` is the native rate (frame folders: the assumed rate, default 30).
    ``declared_frames`` is the container's frame count, ``None`` when it declares
    none (mkv, webm); for a frame folder, the number of image files.  ``duration`` is
    in seconds, ``None`` when unknown.  ``codec`` is FFmpeg's decoder name, ``None``
    for frame folders.  ``width`` and ``height`` are the displayed size: a container
    whose display matrix turns its frames (phone video) is decoded upright, as
    FFmpeg's command line does (autorotate), and ``rotation`` says by how many degrees
    clockwise (0, 90, 180 or 270) the stored frames were turned; ``mirrored`` that
    they were also flipped.  ``stream`` is the index of the container stream read (see
    :func:`~vadfeat.io.video.open_video`'s ``stream``), ``None`` for frame folders.
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


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One frame a video source yields.

    ``index``: 0-based position of the source frame in the decoded sequence (frame
    folders: position in numeric file order); under ``fps`` resampling a source frame
    may come several times or not at all, always under its source index.
    ``timestamp``: seconds on the source's clock (a container's ``pts * time_base``, a
    frame folder's ``index / folder_fps``); under ``fps`` resampling, the output time
    ``first + k / fps`` of the k-th yielded frame.  ``data``: ``[H, W, 3]`` uint8 RGB,
    C-contiguous, at the displayed size (``info.width`` x ``info.height``); a repeated
    frame is the *same* array: do not modify it in place.

    It unpacks (and indexes) as the pair ``(index, data)`` that readers yielded before
    typed values, so ``for index, frame in reader`` keeps working.  Compared by identity
    (pixel arrays have no single truth value).
    """

    index: int
    timestamp: float
    data: np.ndarray

    def __iter__(self) -> Iterator[Any]:
        yield self.index
        yield self.data

    def __len__(self) -> int:
        return 2

    def __getitem__(self, item: int) -> Any:
        return (self.index, self.data)[item]


@dataclass(frozen=True)
class DecodedFrame:
    """A decoded frame before it becomes pixels: what a :data:`PixelStage` receives.

    ``native`` is the decoder's own frame object (PyAV: an ``av.VideoFrame``; other
    decoders: their array, or ``None``); ``width`` x ``height`` the stored size every
    frame of the source is converted at (before any display-matrix turn); ``rgb()``
    the source's own conversion to ``[height, width, 3]`` uint8 RGB, made when called.
    """

    index: int
    native: Any
    width: int
    height: int
    rgb: Callable[[], np.ndarray]


#: Makes a frame's pixels ``[height, width, 3]`` uint8 RGB, as stored (the source turns
#: them upright afterwards): the default stage is ``lambda decoded: decoded.rgb()``.
PixelStage = Callable[[DecodedFrame], np.ndarray]


@runtime_checkable
class Source(Protocol[V_co, I_co]):
    """One input, opened, streamed once: the protocol every reader of ``io/`` satisfies.

    Open: a factory returns it with ``info`` read (what the input declares; the factory
    raises a typed :class:`~vadfeat.errors.VideoOpenError` naming the file when it
    cannot be read).  Iterate once, in order (a second iteration raises
    ``RuntimeError``); iteration closes it at its end.  Close: :meth:`close`, or the
    ``with`` statement.  What decoding found is read after iteration, in the attributes
    each kind of source adds (:class:`VideoSource`: ``decoded_frames``,
    ``yielded_frames``, ``corrupt_packets``, ``warnings``; an audio source: its samples
    decoded).
    """

    @property
    def info(self) -> I_co: ...

    def __iter__(self) -> Iterator[V_co]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source[V_co, I_co]: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> bool | None: ...


@runtime_checkable
class VideoSource(Source[VideoFrame, VideoInfo], Protocol):
    """A source of :class:`VideoFrame` values: the PyAV and torchcodec readers, frame
    folders, and wrappers over any of them (:class:`vadfeat.io.jpeg.JpegRoundTrip`).

    ``fps``: rate of the yielded frames (the ``fps`` asked for, else the native rate).
    ``on_corrupt``: the damage policy it was opened with.  After iteration:
    ``decoded_frames`` (source frames decoded), ``yielded_frames``, ``corrupt_packets``
    (packets or images dropped under ``on_corrupt="skip"``) and ``warnings``
    (human-readable, also logged).

    :meth:`frames` iterates with ``pixels`` making each frame's pixels from its
    :class:`DecodedFrame` (``None``: the source's own conversion); the source still
    resamples, turns frames upright and counts.  ``iter(source)`` is ``source.frames()``.
    """

    @property
    def fps(self) -> float: ...

    @property
    def warnings(self) -> list[str]: ...

    @property
    def corrupt_packets(self) -> int: ...

    @property
    def on_corrupt(self) -> str: ...

    @property
    def decoded_frames(self) -> int: ...

    @property
    def yielded_frames(self) -> int: ...

    def frames(self, pixels: PixelStage | None = None) -> Iterator[VideoFrame]: ...

    def __enter__(self) -> VideoSource: ...

