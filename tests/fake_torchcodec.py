"""A stand-in for torchcodec's decoding API, backed by PyAV, for machines where torchcodec
cannot load (this one: its PyPI wheels are CUDA builds or the wrong torch ABI).

It models the public surface of torchcodec 0.11 that vadfeat uses, as documented there:

* ``torchcodec.__version__``; ``torchcodec.Frame`` (``data``, ``pts_seconds``,
  ``duration_seconds``) and ``torchcodec.FrameBatch`` (the same, batched);
* ``torchcodec.decoders.VideoDecoder(source, *, stream_index=None, dimension_order="NCHW",
  num_ffmpeg_threads=1, device="cpu", seek_mode="exact", transforms=None,
  custom_frame_mappings=None)`` with ``metadata`` (``VideoStreamMetadata``: the
  ``*_from_header`` / ``*_from_content`` fields and the computed ``num_frames``,
  ``average_fps``, ``begin_stream_seconds``, ``end_stream_seconds``, ``duration_seconds``,
  ``width``/``height`` after rotation, ``rotation`` in counter-clockwise degrees rounded to
  90, ``None`` without a display matrix), ``len()``, ``[int]`` / ``[slice]``,
  ``get_frame_at(i)`` and ``get_frames_in_range(start, stop, step=1)`` (frames in
  ``[start, stop)``);
* frames are uint8 RGB, ``NHWC`` or ``NCHW``; 0.11 turns frames by ``rotation`` itself
  (``torch.rot90``-style, never mirrored); set ``version="0.10.0"`` for the earlier
  behaviour (no ``rotation`` field, frames as stored);
* errors: ``RuntimeError`` from the C++ core (decoding, opening), ``ValueError`` for bad
  arguments, ``IndexError`` for frames out of range.

Frames are PyAV's: each file is decoded once, with the PyAV reader's own conversion
(``VideoReformatter`` to ``rgb24``), so the stand-in's pixels equal vadfeat's PyAV path
unless a test changes them (``FakeConfig.alter``).  ``seek_mode="exact"`` counts what
decodes (the scan of real torchcodec counts packets; for the files here that is the
same number).  ``FakeConfig`` sets the knobs tests need and records every call.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from vadfeat.io.video import _display_matrix


@dataclass
class FakeConfig:
    version: str = "0.11.0"
    #: override ``num_frames_from_header`` (``...`` = what the container says)
    num_frames_from_header: Any = ...
    #: override ``num_frames_from_content`` (``...`` = the frames that decode)
    num_frames_from_content: Any = ...
    #: ``RuntimeError`` when a request reaches this frame index
    fail_at: int | None = None
    #: ``RuntimeError`` with this message when a decoder is created
    fail_open: str | None = None
    #: applied to every frame (HWC uint8 numpy) before it is returned
    alter: Callable[[int, np.ndarray], np.ndarray] | None = None
    #: what was asked: ``("open", source, kwargs)`` and ``("range", start, stop)``
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def rotates(self) -> bool:
        return tuple(int(p) for p in self.version.split(".")[:2]) >= (0, 11)


@dataclass
class Frame:
    data: torch.Tensor
    pts_seconds: float
    duration_seconds: float


@dataclass
class FrameBatch:
    data: torch.Tensor
    pts_seconds: torch.Tensor
    duration_seconds: torch.Tensor


@dataclass
class VideoStreamMetadata:
    duration_seconds_from_header: float | None
    begin_stream_seconds_from_header: float | None
    bit_rate: float | None
    codec: str | None
    stream_index: int
    duration_seconds: float | None
    begin_stream_seconds: float | None
    begin_stream_seconds_from_content: float | None
    end_stream_seconds_from_content: float | None
    width: int | None
    height: int | None
    num_frames_from_header: int | None
    num_frames_from_content: int | None
    average_fps_from_header: float | None
    pixel_aspect_ratio: Fraction | None
    end_stream_seconds: float | None
    num_frames: int | None
    average_fps: float | None


@dataclass
class VideoStreamMetadata011(VideoStreamMetadata):
    rotation: float | None = None


def _rotation_ccw(frame: Any) -> float | None:
    """av_display_rotation_get, rounded to 90 degrees: what torchcodec 0.11 reports."""
    m = _display_matrix(frame)
    if m is None:
        return None
    s0, s1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if s0 == 0 or s1 == 0:
        return None
    angle = -math.degrees(math.atan2(m[1] / s1, m[0] / s0))
    return float(90 * round(angle / 90))


def _decode(path: str, stream_index: int | None = None
            ) -> tuple[list[np.ndarray], list[float], list[float], dict[str, Any]]:
    with av.open(path) as container:
        # torchcodec: stream_index None is FFmpeg's best video stream.
        stream = (container.streams.best("video") if stream_index is None
                  else container.streams[stream_index])
        tb = stream.time_base
        reformatter = VideoReformatter()
        frames, pts, durations = [], [], []
        rotation = None
        for i, frame in enumerate(container.decode(stream)):
            if i == 0:
                rotation = _rotation_ccw(frame)
                width, height = frame.width, frame.height
            rgb = reformatter.reformat(frame, width=width, height=height, format="rgb24").to_ndarray()
            frames.append(np.ascontiguousarray(rgb))
            pts.append(float(frame.pts * tb))
            durations.append(float((frame.duration or 0) * tb))
        header = {
            "frames": int(stream.frames) or None,
            "duration": float(stream.duration * tb) if stream.duration else None,
            "fps": float(stream.average_rate) if stream.average_rate else None,
            "codec": stream.codec_context.name,
            "rotation": rotation,
        }
    return frames, pts, durations, header


def make_modules(config: FakeConfig) -> dict[str, types.ModuleType]:
    """``{"torchcodec": ..., "torchcodec.decoders": ...}`` to put in ``sys.modules``."""

    class VideoDecoder:
        def __init__(self, source: Any, *, stream_index: int | None = None,
                     dimension_order: str = "NCHW", num_ffmpeg_threads: int = 1,
                     device: Any = "cpu", seek_mode: str = "exact", transforms: Any = None,
                     custom_frame_mappings: Any = None) -> None:
            config.calls.append(("open", source, {
                "dimension_order": dimension_order, "num_ffmpeg_threads": num_ffmpeg_threads,
                "device": str(device), "seek_mode": seek_mode, "stream_index": stream_index}))
            if seek_mode not in ("exact", "approximate"):
                raise ValueError(f"Invalid seek mode ({seek_mode}).")
            if dimension_order not in ("NCHW", "NHWC"):
                raise ValueError(f"Invalid dimension order ({dimension_order}).")
            if config.fail_open is not None:
                raise RuntimeError(config.fail_open)
            try:
                frames, pts, durations, header = _decode(str(source), stream_index)
            except av.error.FFmpegError as exc:
                raise RuntimeError(f"Could not open input file: {source} {exc}") from None
            rotation = header["rotation"] if config.rotates else None
            k = round(rotation / 90) if rotation else 0
            if k:  # counter-clockwise quarter turns, never a mirror
                frames = [np.ascontiguousarray(np.rot90(f, k)) for f in frames]
            if config.alter is not None:
                frames = [config.alter(i, f) for i, f in enumerate(frames)]
            self._frames, self._pts, self._durations = frames, pts, durations
            self._order = dimension_order
            from_header = (header["frames"] if config.num_frames_from_header is ...
                           else config.num_frames_from_header)
            from_content = (len(frames) if config.num_frames_from_content is ...
                            else config.num_frames_from_content)
            n = from_content if seek_mode == "exact" else from_header
            h, w = frames[0].shape[:2] if frames else (None, None)
            begin = min(pts) if pts else None
            end = max(p + d for p, d in zip(pts, durations, strict=True)) if pts else None
            fields: dict[str, Any] = dict(
                duration_seconds_from_header=header["duration"], begin_stream_seconds_from_header=0.0,
                bit_rate=None, codec=header["codec"], stream_index=0,
                duration_seconds=(end - begin) if pts else header["duration"],
                begin_stream_seconds=begin if begin is not None else 0.0,
                begin_stream_seconds_from_content=begin, end_stream_seconds_from_content=end,
                width=w, height=h, num_frames_from_header=from_header,
                num_frames_from_content=from_content, average_fps_from_header=header["fps"],
                pixel_aspect_ratio=None, end_stream_seconds=end, num_frames=n,
                average_fps=(n / (end - begin)) if pts and n and end > begin else header["fps"],
            )
            if config.rotates:
                self.metadata: VideoStreamMetadata = VideoStreamMetadata011(**fields, rotation=rotation)
            else:
                self.metadata = VideoStreamMetadata(**fields)
            if n is None:
                raise ValueError("The number of frames is unknown.")
            self._n = n

        def __len__(self) -> int:
            return self._n

        def _data(self, indices: list[int]) -> torch.Tensor:
            for i in indices:
                if config.fail_at is not None and i >= config.fail_at:
                    raise RuntimeError(f"Decoding error: Invalid data found when processing input "
                                       f"(frame {i})")
                if not 0 <= i < len(self._frames):
                    raise RuntimeError("Requested next frame while there are no more frames left "
                                       "to decode.")
            data = torch.from_numpy(np.stack([self._frames[i] for i in indices]))
            return data if self._order == "NHWC" else data.permute(0, 3, 1, 2)

        def __getitem__(self, key: int | slice) -> torch.Tensor:
            if isinstance(key, slice):
                return self._data(list(range(*key.indices(self._n))))
            if not -self._n <= key < self._n:
                raise IndexError(f"Index {key} is out of bounds; length is {self._n}")
            return self._data([key % self._n])[0]

        def get_frame_at(self, index: int) -> Frame:
            if not 0 <= index < self._n:
                raise IndexError(f"Index {index} is out of bounds; must be in [0, {self._n}).")
            return Frame(self._data([index])[0], self._pts[index], self._durations[index])

        def get_frames_in_range(self, start: int, stop: int, step: int = 1) -> FrameBatch:
            config.calls.append(("range", start, stop))
            start, stop, step = slice(start, stop, step).indices(self._n)
            indices = list(range(start, stop, step))
            return FrameBatch(self._data(indices),
                              torch.tensor([self._pts[i] for i in indices], dtype=torch.float64),
                              torch.tensor([self._durations[i] for i in indices], dtype=torch.float64))

    top = types.ModuleType("torchcodec")
    top.__version__ = config.version  # type: ignore[attr-defined]
    top.Frame = Frame  # type: ignore[attr-defined]
    top.FrameBatch = FrameBatch  # type: ignore[attr-defined]
    top.__path__ = []  # a package, so that ``import torchcodec.decoders`` resolves
    decoders = types.ModuleType("torchcodec.decoders")
    decoders.VideoDecoder = VideoDecoder  # type: ignore[attr-defined]
    decoders.VideoStreamMetadata = VideoStreamMetadata  # type: ignore[attr-defined]
    top.decoders = decoders  # type: ignore[attr-defined]
    return {"torchcodec": top, "torchcodec.decoders": decoders}
