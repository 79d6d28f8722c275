"""Decode containers with torchcodec (``decoder="torchcodec"``): CPU, or NVDEC on CUDA runs.

torchcodec (PyTorch's video decoding library) drives the same FFmpeg libraries PyAV
does, and on a CUDA build decodes on the GPU's NVDEC engine with the colour conversion
on the GPU too.  This reader plugs it into :func:`vadfeat.io.video.open_video` behind
the same :class:`~vadfeat.io.source.VideoSource` protocol as the PyAV reader, and keeps
every guarantee of that reader or refuses clearly.  It shares the PyAV reader's parts,
not its class: :func:`~vadfeat.io.container.open_stream` and the first frame through
:func:`~vadfeat.io.corrupt.decode_packets`, the :class:`~vadfeat.io.resample.FrameTimes`
timeline, the display-matrix :class:`~vadfeat.io.orientation.Orientation` and
:func:`~vadfeat.io.counts.check_end`:

* **Metadata, open errors, size limit.**  The file is first opened with PyAV exactly as
  the PyAV reader does (header, first frame): the same :class:`VideoInfo`, the same
  :class:`~vadfeat.errors.VideoOpenError` for a missing, empty, audio-only or
  unreadable file, and the same ``max_pixels`` check on the header and the first frame.
  torchcodec takes no ``max_pixels`` decoder option, so a stream that grows mid-way is
  refused at the chunk that shows it (:class:`DecodeError`), after torchcodec decoded it.
* **Frame counts.**  torchcodec opens in ``seek_mode="exact"``, which scans the packets
  (no decoding: one extra read of the file before the first frame, which approximate
  mode would skip at the price of trusting the header) and counts the frames; they are
  decoded in order, in chunks of
  :data:`CHUNK_FRAMES` (``get_frames_in_range``: never the whole video), and the count
  decoded is checked against the container's declared count (or duration) by the PyAV
  reader's own rule (:func:`~vadfeat.io.counts.check_end`): a clear shortfall is a
  truncated video (:class:`DecodeError`), unless it is the samples before an edit
  list's start (counted with PyAV's demuxer when the counts disagree) or the decoded
  frames span the declared duration.
* **Stream.**  The stream the PyAV reader chose (``stream=``, or the longest video when
  FFmpeg's choice is a still image) is passed to torchcodec as ``stream_index``.
* **Errors.**  Any torchcodec exception becomes a :class:`VideoOpenError` (opening) or
  :class:`DecodeError` (decoding) naming the file, the frames and the first line of the
  cause; the torchcodec exception is chained, never raised as it is.
* **Corrupt packets.**  torchcodec stops at a decoding error and cannot skip a packet
  and go on, so only ``on_corrupt="fail"`` is offered; ``"skip"`` is refused before any
  work (:func:`check_decoder`, a :class:`ConfigError`).
* **Rotation.**  torchcodec < 0.11 returns frames as stored: the display matrix (read
  from the first frame by PyAV) is applied here as the PyAV reader applies it, mirroring
  included.  torchcodec >= 0.11 turns frames itself by the matrix's angle rounded to 90
  degrees (``metadata.rotation``, counter-clockwise) and never mirrors: accepted when
  that is what FFmpeg's autorotate does, refused (:class:`VideoOpenError`) for a
  mirrored matrix, a disagreeing angle, or ``autorotate=False``.
* **``fps`` resampling** uses the same resampler as the PyAV reader on the frames' timestamps,
  made exact again from torchcodec's float seconds with the stream's time base, so the
  same frames are picked.
* **Frame folders** are images, not containers: :func:`open_video` reads them with the
  folder reader whatever the decoder.

On CUDA (``device="cuda[:N]"``) each chunk is decoded on the GPU and copied to host
memory once, as ``[n, H, W, 3]`` uint8, then handed out frame by frame like the CPU
path.  Keeping frames on the GPU (and preprocessing them there) would save that copy
and the upload that follows; it is not done, to keep one frame type in the pipeline.

The API used is torchcodec 0.11's (``VideoDecoder(source, *, dimension_order,
num_ffmpeg_threads, device, seek_mode)``, ``metadata.num_frames`` /
``num_frames_from_header`` / ``rotation``, ``get_frames_in_range(start, stop)`` ->
``FrameBatch(data, pts_seconds, duration_seconds)``); releases without
``num_ffmpeg_threads`` or ``rotation`` are handled as said above.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any, get_args

import numpy as np

from vadfeat._defaults import DEFAULT_MAX_PIXELS
from vadfeat._types import Decoder
from vadfeat.errors import ConfigError, DecodeError, VideoOpenError
from vadfeat.io.container import open_stream
from vadfeat.io.corrupt import PacketCounts, decode_packets
from vadfeat.io.counts import discarded_samples
from vadfeat.io.orientation import UPRIGHT, Orientation
from vadfeat.io.pyav_video import no_frames_error
from vadfeat.io.reader import ContainerReader
from vadfeat.io.resample import FrameTimes
from vadfeat.io.source import DecodedFrame

__all__ = ["CHUNK_FRAMES", "TorchcodecReader", "check_decoder", "load_torchcodec",
           "torchcodec_version"]

logger = logging.getLogger(__name__)

#: Frames decoded per torchcodec call: few enough that a chunk of 1080p frames is
#: 50 MB, enough that the per-call cost (and on CUDA the device-to-host copy) is shared.
CHUNK_FRAMES = 8

_DECODERS = get_args(Decoder)
# Exceptions torchcodec raises for media it cannot handle: RuntimeError from its C++
# core (TORCH_CHECK), ValueError/IndexError from its Python layer; TypeError from a
# release whose API moved (named per video rather than as a traceback).
_TORCHCODEC_ERRORS = (RuntimeError, ValueError, IndexError, OSError, TypeError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_torchcodec() -> ModuleType:
    """Import ``torchcodec.decoders``; a :class:`ConfigError` that says why it cannot be.

    Two causes are told apart: the package is not installed, or it is installed but its
    compiled libraries do not load (a build for another torch, no FFmpeg shared
    libraries, a CUDA build on a CPU-only torch); the latter quotes the first line of
    torchcodec's own message.
    """
    try:
        return importlib.import_module("torchcodec.decoders")
    except ModuleNotFoundError as exc:
        if exc.name in ("torchcodec", "torchcodec.decoders"):
            raise ConfigError(
                "decoder 'torchcodec' asked for, but torchcodec is not installed (pip install "
                "'vadfeat[torchcodec]', a build matching your torch; or use decoder='pyav')"
            ) from None
        raise ConfigError(f"decoder 'torchcodec' asked for, but torchcodec cannot load its "
                          f"libraries: {_first_line(exc)}") from exc
    except (ImportError, OSError, RuntimeError) as exc:  # torchcodec raises RuntimeError
        raise ConfigError(f"decoder 'torchcodec' asked for, but torchcodec cannot load its "
                          f"libraries: {_first_line(exc)}") from exc


def torchcodec_version() -> str | None:
    """The imported torchcodec's ``__version__`` (``None`` when not imported)."""
    module = sys.modules.get("torchcodec")
    return getattr(module, "__version__", None) if module is not None else None


def check_decoder(decoder: object, *, on_corrupt: object = "fail") -> str:
    """Validate a ``decoder`` setting with the corrupt-packet policy it is used with.

    ``"pyav"`` always works.  ``"torchcodec"`` needs the package to load
    (:func:`load_torchcodec`) and ``on_corrupt="fail"``: torchcodec cannot skip corrupt
    packets.  Raises :class:`ConfigError` otherwise, before any video is opened.
    """
    if decoder not in _DECODERS:
        raise ConfigError(f"decoder must be one of {', '.join(repr(d) for d in _DECODERS)}; "
                          f"got {decoder!r}")
    if decoder == "torchcodec":
        if on_corrupt != "fail":
            raise ConfigError(
                f"decoder 'torchcodec' stops at the first decoding error and cannot skip corrupt "
                f"packets, so on_corrupt={on_corrupt!r} cannot be honoured: use on_corrupt='fail', "
                "or decoder='pyav' to skip corrupt packets"
            )
        load_torchcodec()
    return str(decoder)


class TorchcodecReader(ContainerReader):
    """A container decoded by torchcodec; the :class:`~vadfeat.io.source.VideoSource`
    protocol of the PyAV reader.

    Opened by :func:`vadfeat.io.video.open_video` with ``decoder="torchcodec"``.
    ``device``: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"`` (NVDEC; needs torchcodec's CUDA
    build).  Yields :class:`~vadfeat.io.source.VideoFrame` values (``[H, W, 3]`` uint8
    RGB), at most :data:`CHUNK_FRAMES` decoded frames held at a time.  See the module
    docstring for the guarantees.

    Raises:
        ConfigError: torchcodec cannot be imported.
        VideoOpenError: as the PyAV reader, plus torchcodec failing to open the file and
            display matrices torchcodec would apply differently.
        DecodeError: torchcodec fails while decoding, a frame of another size, a
            truncated video (while iterating).
    """

    def __init__(self, path: Path, *, fps: float | None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 autorotate: bool = True, device: str = "cpu", chunk: int = CHUNK_FRAMES,
                 stream: int | None = None) -> None:
        decoders = load_torchcodec()
        super().__init__(path, on_corrupt="fail", fps=fps)
        self._path = path
        # PyAV reads the header and the first frame: metadata, orientation, open errors and
        # the size limit exactly as the PyAV reader; then it lets go of the file.
        opened = open_stream(path, max_pixels=max_pixels, stream=stream)
        try:
            first = next(decode_packets(opened.container, opened.stream, self.policy,
                                        PacketCounts(), warn=self._warn), None)
            if first is None:
                raise no_frames_error(path, self.corrupt_packets)
            layout = opened.layout(first, max_pixels=max_pixels, autorotate=autorotate)
        finally:
            opened.close()
        self.info = layout.info
        for message in opened.warnings():
            self._warn(message)
        self._time_base = opened.time_base
        self._times = FrameTimes(opened.frame_step)
        self._chunk = max(1, int(chunk))
        self.device = str(device)
        self.torchcodec_version = torchcodec_version()
        try:
            self._decoder = self._open(decoders, path)
            meta = self._decoder.metadata
            count = getattr(meta, "num_frames", None)
            self._count = int(count) if count is not None else len(self._decoder)
        except _TORCHCODEC_ERRORS as exc:
            raise VideoOpenError(f"{path}: torchcodec cannot open it: {_first_line(exc)}") from exc
        self._turn = self._own_orientation(meta, layout.orient, autorotate)
        # Frames come from torchcodec as stored when this reader turns them, else at the
        # displayed size (torchcodec turned them, or there is nothing to turn).
        self._shape = ((layout.height, layout.width, 3) if self._turn is not UPRIGHT
                       else (self.info.height, self.info.width, 3))

    def _open(self, decoders: ModuleType, path: Path) -> Any:
        # The stream PyAV chose (torchcodec's own default is FFmpeg's choice, which may be
        # a thumbnail track).
        kwargs: dict[str, Any] = {"dimension_order": "NHWC", "device": self.device, "seek_mode": "exact",
                                  "stream_index": self.info.stream}
        # 0 = FFmpeg picks its threads (PyAV reader: thread_type AUTO); torchcodec advises
        # one CPU thread with NVDEC, which does the work itself.
        try:
            takes_threads = "num_ffmpeg_threads" in inspect.signature(decoders.VideoDecoder).parameters
        except (TypeError, ValueError):  # no signature to read: assume the 0.11 API
            takes_threads = True
        if takes_threads:  # releases before it lacked the option
            kwargs["num_ffmpeg_threads"] = 1 if self.device.startswith("cuda") else 0
        return decoders.VideoDecoder(str(path), **kwargs)

    def _own_orientation(self, meta: Any, wanted: Orientation, autorotate: bool) -> Orientation:
        """What this reader must still turn, given what torchcodec turns itself.

        ``wanted``: what the display matrix asks (upright when autorotate is off).
        """
        if not hasattr(meta, "rotation"):  # torchcodec < 0.11: frames come as stored
            return wanted
        angle = meta.rotation
        # torchcodec: counter-clockwise degrees, rounded to 90; ours: clockwise.
        turned = round(-float(angle)) % 360 if angle is not None else 0
        version = self.torchcodec_version or "?"
        if not autorotate and turned:
            raise VideoOpenError(
                f"{self._path}: torchcodec {version} always turns frames by the display matrix "
                f"({turned} degrees clockwise), so autorotate=False cannot be honoured; use "
                "decoder='pyav'")
        if autorotate and (wanted.mirrored or turned != wanted.rotation):
            found = f"{wanted.rotation} degrees" + (" and mirrored" if wanted.mirrored else "")
            raise VideoOpenError(
                f"{self._path}: the display matrix turns frames {found}; torchcodec {version} "
                f"would turn them {turned} degrees and never mirrors: use decoder='pyav'")
        return UPRIGHT

    def _exact(self, seconds: float) -> Fraction:
        # torchcodec gives pts * time_base as a float; the PyAV reader's exact fraction
        # is recovered through the time base, so resampling compares the same numbers.
        if self._time_base is not None:
            return round(seconds / self._time_base) * self._time_base
        return Fraction(seconds).limit_denominator(1_000_000)

    def _chunks(self) -> Iterator[tuple[np.ndarray, list[float], list[float]]]:
        decoded = 0
        for start in range(0, self._count, self._chunk):
            stop = min(start + self._chunk, self._count)
            try:
                batch = self._decoder.get_frames_in_range(start, stop)
                data = batch.data
                if getattr(data, "device", None) is not None and data.device.type != "cpu":
                    data = data.cpu()  # NVDEC: one device-to-host copy per chunk
                frames = data.numpy()
                pts = [float(x) for x in batch.pts_seconds.tolist()]
                durations = [float(x) for x in batch.duration_seconds.tolist()]
            except _TORCHCODEC_ERRORS as exc:
                raise DecodeError(
                    f"{self._path}: torchcodec failed decoding frames {start}-{stop - 1} after "
                    f"{decoded} decoded frame(s): {_first_line(exc)}") from exc
            if frames.ndim != 4 or frames.shape[1:] != self._shape or frames.dtype != np.uint8:
                got = "x".join(str(n) for n in frames.shape[1:3][::-1])
                raise DecodeError(
                    f"{self._path}: torchcodec returned frames {start}-{stop - 1} as {got} "
                    f"{frames.dtype}, not {self._shape[1]}x{self._shape[0]} uint8 RGB (frame size "
                    "changes mid-stream?); decoder='pyav' rescales such frames")
            decoded += len(frames)
            yield frames, pts, durations
            if len(frames) < stop - start:  # the decoder ran out: the count check says more
                return

    def _source(self) -> Iterator[tuple[int, Fraction, Any]]:
        index = 0
        for frames, pts, durations in self._chunks():
            for k in range(len(frames)):
                t = self._exact(pts[k])
                # The PyAV reader's rule for how long the last frame lasts (FrameTimes): the
                # gap since the previous frame, else the frame's own duration, else one step.
                self._times.add(t, self._exact(durations[k]) if durations[k] > 0 else None)
                self.decoded_frames += 1
                yield index, t, frames[k]
                index += 1

    def _decoded(self, payload: Any, index: int) -> DecodedFrame:
        # A view into its chunk (C-contiguous), as stored when this reader turns it.
        return DecodedFrame(index, payload, self._shape[1], self._shape[0], lambda: payload)

    def _present(self, rgb: np.ndarray) -> np.ndarray:
        # No copy unless a turn is applied here.
        return np.ascontiguousarray(self._turn.apply(rgb))

    def _discarded(self) -> int:
        # torchcodec's scan leaves the samples flagged discard (before an edit list's start)
        # out of its count and says nothing of them: PyAV's demuxer counts them, only when
        # the counts disagree.
        return discarded_samples(self._path, self.info.stream or 0)

    def close(self) -> None:
        self._decoder = None
        self._closed = True
