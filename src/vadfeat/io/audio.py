"""Audio decoding with PyAV and streaming resampling with resampy, as VGGish's reference reads audio.

:func:`open_audio` reads the first audio stream of any container FFmpeg opens (mp4/AAC,
mkv/PCM, wav, ...), mixes every channel to mono by their mean and yields typed
:class:`AudioChunk` values (first sample index at the source rate, its time in seconds,
float32 samples in [-1, 1]).  The scaling follows the reference's reading of 16-bit WAV,
``wav_data / 32768.0`` (harritaylor/torchvggish ``torchvggish/vggish_input.py``,
``wavfile_to_examples``; the same line in tensorflow/models
``research/audioset/vggish/vggish_input.py``): integer samples are divided by ``2**(bits-1)``
(``s16``: 32768, ``s32``: 2**31; ``u8``: ``(x - 128) / 128``); float decoders' output (AAC,
Opus, MP3: ``fltp``) is taken as it is.  The mono mix is the mean over channels, as the
reference's ``waveform_to_examples`` does with ``np.mean(data, axis=1)``; it is computed in
float64 and stored as float32 (exact for 16-bit sources with one or two channels).

:func:`resample_chunks` turns a chunk stream into 16 kHz (or any rate) with resampy's
``kaiser_best`` filter, the reference's resampler (``resampy.resample(data, sr, 16000)`` in
``waveform_to_examples``), without holding the whole track: it resamples blocks whose start
is a multiple of ``rate_in / gcd(rate_in, rate_out)`` input samples (so the block's output
grid is the whole signal's grid) with a margin of input on both sides wider than the filter's
support (``num_zeros / min(1, rate_out / rate_in)`` input samples: 50 zero crossings, so 138 for
44.1 kHz -> 16 kHz).
Every output sample then sums the same input samples with the same weights as resampling
the whole signal; the only difference is the floating-point time of each output sample
(``j / ratio`` against ``(m + j) / ratio``), below 1e-9 in practice
(``tests/test_audio.py`` checks 1e-7 absolute).  The output length is the reference's,
``int(n * rate_out / rate_in)``.  resampy is imported when the first block is resampled; a
missing resampy is a :class:`~vadfeat.errors.ConfigError` naming ``pip install resampy``.

Memory: the decoder holds one frame (about 1024 samples), the resampler one block plus its
margins (about 1.5 s of source audio); nothing here holds the whole track.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from vadfeat.errors import ConfigError, DecodeError, NoAudioStreamError, VideoOpenError

__all__ = [
    "AudioChunk",
    "AudioInfo",
    "AudioReader",
    "open_audio",
    "resample_chunks",
    "samples_to_mono",
]

log = logging.getLogger(__name__)

#: Divisor that maps each integer sample format to [-1, 1] (``u8`` is offset by 128 first).
_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2.0**31, "s64": 2.0**63}
_FLOAT_FORMATS = ("flt", "dbl")


@dataclass(frozen=True)
class AudioInfo:
    """What the container declares about the audio stream that :func:`open_audio` reads.

    ``rate``: samples per second; ``channels``: channel count (mixed to mono on reading);
    ``duration``: declared length in seconds (``None`` where the container gives none; the
    decoded length can differ); ``codec``: FFmpeg's codec name (``"aac"``, ``"pcm_s16le"``);
    ``stream_index``: the stream's index in the container; ``start_time``: the stream's first
    timestamp in seconds (0.0 where none is declared).
    """

    path: Path
    rate: int
    channels: int
    duration: float | None
    codec: str
    stream_index: int
    start_time: float


@dataclass(frozen=True)
class AudioChunk:
    """A run of mono samples.

    ``index``: the first sample's index in the decoded sequence at this chunk's rate;
    ``timestamp``: ``index / rate`` in seconds (from the first decoded sample; the stream's
    own start offset is :attr:`AudioInfo.start_time`); ``data``: 1-D float samples
    (float32 from the decoder, float64 from :func:`resample_chunks`, which resamples in
    float64 as the reference does), nominally in [-1, 1].
    """

    index: int
    timestamp: float
    data: np.ndarray

    def __post_init__(self) -> None:
        if self.data.ndim != 1 or not np.issubdtype(self.data.dtype, np.floating):
            raise ValueError(f"AudioChunk.data must be a 1-D float array, got {self.data.dtype} "
                             f"{self.data.shape}")
        if self.index < 0:
            raise ValueError(f"AudioChunk.index must be >= 0, got {self.index}")


def samples_to_mono(planes: np.ndarray, fmt: str, channels: int) -> np.ndarray:
    """One decoded frame's samples -> mono float32 in [-1, 1].

    ``planes``: PyAV's ``AudioFrame.to_ndarray()``: ``[channels, n]`` for planar formats
    (name ending in ``p``), ``[1, n * channels]`` interleaved for packed ones; ``fmt``:
    FFmpeg's sample format name (``s16``, ``fltp``...).  Raises :class:`ValueError` for a
    format this does not know.
    """
    base = fmt[:-1] if fmt.endswith("p") else fmt
    data = np.asarray(planes)
    if not fmt.endswith("p"):
        data = data.reshape(-1, channels).T
    if base in _INT_SCALE:
        values = data.astype(np.float64)
        if base == "u8":
            values -= 128.0
        values /= _INT_SCALE[base]
    elif base in _FLOAT_FORMATS:
        values = data.astype(np.float64)
    else:
        raise ValueError(f"unknown sample format {fmt!r}")
    return values.mean(axis=0).astype(np.float32)


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise VideoOpenError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise VideoOpenError(f"{path}: cannot be examined: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise VideoOpenError(f"{path}: not a regular file; audio is read from media files")
    if st.st_size == 0:
        raise VideoOpenError(f"{path}: empty file (0 bytes)")


def _open(path: Path) -> Any:
    import av

    try:
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.error.PermissionError as exc:
        raise VideoOpenError(f"{path}: permission denied") from exc
    except av.error.InvalidDataError as exc:
        raise VideoOpenError(f"{path}: not a media file FFmpeg can read (invalid data; damaged, "
                             "truncated or not a media file)") from exc
    except av.error.FFmpegError as exc:
        raise VideoOpenError(f"{path}: cannot open: {exc}") from exc


class AudioReader:
    """The first audio stream of one file, as mono :class:`AudioChunk` values.

    Made by :func:`open_audio`; iterate it once (one chunk per decoded frame, in decoding
    order); close it, or use it as a context manager.  Decoding errors raise
    :class:`~vadfeat.errors.DecodeError` naming the file.
    """

    def __init__(self, path: Path, container: Any, stream: Any) -> None:
        self._path = path
        self._container = container
        self._stream = stream
        ctx = stream.codec_context
        duration: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        start = 0.0
        if stream.start_time is not None and stream.time_base is not None:
            start = float(stream.start_time * stream.time_base)
        #: Samples decoded so far (at ``info.rate``); the total once iteration has ended.
        self.decoded = 0
        self.info = AudioInfo(path=path, rate=int(ctx.sample_rate), channels=int(ctx.channels),
                              duration=duration, codec=str(ctx.name), stream_index=int(stream.index),
                              start_time=start)

    def __iter__(self) -> Iterator[AudioChunk]:
        import av

        rate = self.info.rate
        index = 0
        limit = self._end_limit()
        try:
            for frame in self._container.decode(self._stream):
                if frame.samples == 0:
                    continue
                if frame.sample_rate != rate:
                    raise DecodeError(f"{self._path}: the audio sample rate changes mid-stream "
                                      f"({rate} -> {frame.sample_rate} Hz); not supported")
                mono = samples_to_mono(frame.to_ndarray(), frame.format.name, len(frame.layout.channels))
                if limit is not None:
                    mono = mono[: max(0, limit - index)]
                    if mono.shape[0] == 0:
                        continue
                yield AudioChunk(index=index, timestamp=index / rate, data=mono)
                index += mono.shape[0]
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self._path}: audio decoding failed after {index} samples "
                              f"({index / rate:.2f} s): {exc}") from exc
        except ValueError as exc:
            raise DecodeError(f"{self._path}: {exc}") from exc
        self.decoded = index
        declared = self.info.duration
        if declared is not None and declared > 1.0 and index / rate < 0.9 * declared:
            # A damaged Matroska/PCM file resyncs past the damage without an error; say so.
            log.warning("%s: decoded %.2f s of audio, the container declares %.2f s (damaged or "
                        "cut data was skipped)", self._path, index / rate, declared)

    def _end_limit(self) -> int | None:
        """Samples an MP4/MOV track declares (its edit list), or ``None`` for other containers.

        libavcodec drops an AAC track's leading priming samples for both PyAV and the ``ffmpeg``
        command line, but only the command line also cuts the last frame to the track's declared
        length (the encoder's padding: up to 1023 samples of a 1024-sample AAC frame).  The
        reference decodes with the command line (v-iashin/video_features ``utils/utils.py``,
        ``extract_wav_from_mp4``), so the same cut is made here, for the MOV family only: there
        the stream duration is the edit list's; elsewhere (Matroska rounds to milliseconds) the
        command line keeps every decoded sample, and so does this reader.
        """
        if "mp4" not in str(self._container.format.name).split(",") or self._stream.duration is None:
            return None
        return round(self._stream.duration * self._stream.time_base * self.info.rate)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_audio(path: str | os.PathLike[str]) -> AudioReader:
    """Open the first audio stream of ``path`` (any container FFmpeg reads).

    Returns an :class:`AudioReader` (``.info``: :class:`AudioInfo`; iterate for
    :class:`AudioChunk` values, mono float32).  Raises
    :class:`~vadfeat.errors.NoAudioStreamError` (a :class:`~vadfeat.errors.VideoOpenError`)
    naming the file for a file without audio (a per-video failure: the run goes on and exits
    1), or :class:`~vadfeat.errors.VideoOpenError` saying why a missing, empty or unreadable
    file cannot be read.
    """
    p = Path(path)
    _check_file(p)
    container = _open(p)
    streams = list(container.streams.audio)
    if not streams:
        video = len(container.streams.video)
        container.close()
        raise NoAudioStreamError(f"{p}: no audio stream (the file holds {video} video stream(s) "
                                 "and no audio)")
    stream = streams[0]
    if not stream.codec_context.sample_rate:
        container.close()
        raise VideoOpenError(f"{p}: audio stream {stream.index} declares no sample rate")
    return AudioReader(p, container, stream)


def _resampy() -> Any:
    try:
        import resampy  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError("resampling audio needs resampy (the reference's resampler): "
                          "pip install resampy, or pip install 'vadfeat[audio]'") from exc
    return resampy


#: Input samples per resampled block (before rounding to the rate's alignment).
_BLOCK = 1 << 16


def _filter_half_width(resampy: Any, filter_name: str, rate_in: int, rate_out: int) -> int:
    """Input samples on each side of an output sample that the filter weighs (an upper bound)."""
    win, precision, _ = resampy.filters.get_filter(filter_name)
    num_zeros = (len(win) - 1) / precision  # precision: table entries per zero crossing
    return math.ceil(num_zeros / min(1.0, rate_out / rate_in)) + 2


def resample_chunks(chunks: Iterable[AudioChunk], rate_in: int, rate_out: int = 16000, *,
                    filter: str = "kaiser_best", block: int = _BLOCK) -> Iterator[AudioChunk]:
    """Resample a mono chunk stream from ``rate_in`` to ``rate_out`` Hz, block by block.

    Equal to ``resampy.resample(whole, rate_in, rate_out, filter=filter)`` on the
    concatenated input (in float64; the module docstring says why and how close), yielding
    float64 :class:`AudioChunk` values indexed at ``rate_out``.  ``rate_in == rate_out``
    passes the samples through as float64.  Yields nothing for an input shorter than one
    output sample.  A missing resampy raises :class:`~vadfeat.errors.ConfigError`.
    """
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    if rate_in == rate_out:
        for chunk in chunks:
            yield AudioChunk(chunk.index, chunk.index / rate_out, chunk.data.astype(np.float64))
        return
    resampy = _resampy()
    g = math.gcd(rate_in, rate_out)
    step_in, step_out = rate_in // g, rate_out // g  # aligned: step_in inputs -> step_out outputs
    pad = math.ceil(_filter_half_width(resampy, filter, rate_in, rate_out) / step_in) * step_in
    block = max(1, math.ceil(block / step_in)) * step_in

    buf = np.zeros(0, dtype=np.float64)
    buf_start = 0  # input index of buf[0]; always a multiple of step_in
    next_in = 0  # first input sample whose outputs are not yet emitted; a multiple of step_in
    total = 0

    def emit(seg_end: int, upto_in: int | None) -> np.ndarray:
        """Outputs for inputs [next_in, upto_in) (None: to the end of the signal at seg_end)."""
        seg_start = max(0, next_in - pad)
        seg = buf[seg_start - buf_start: seg_end - buf_start]
        n_out = int(seg.shape[0] * rate_out / rate_in)
        if n_out < 1:
            return np.zeros(0, dtype=np.float64)
        y = resampy.resample(seg, rate_in, rate_out, filter=filter)
        lo = (next_in - seg_start) // step_in * step_out
        hi = y.shape[0] if upto_in is None else (upto_in - seg_start) // step_in * step_out
        return np.asarray(y[lo:hi], dtype=np.float64)

    for chunk in chunks:
        buf = np.concatenate([buf, chunk.data.astype(np.float64)])
        total += chunk.data.shape[0]
        while total >= next_in + block + pad:
            upto = next_in + block
            out = emit(upto + pad, upto)
            if out.size:
                first = next_in // step_in * step_out
                yield AudioChunk(first, first / rate_out, out)
            next_in = upto
            keep_from = max(0, next_in - pad)
            buf = buf[keep_from - buf_start:]
            buf_start = keep_from
    if total > next_in or next_in == 0:
        out = emit(total, None)
        if out.size:
            first = next_in // step_in * step_out
            yield AudioChunk(first, first / rate_out, out)
