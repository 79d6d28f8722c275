"""VGGish's input: the log-mel spectrogram of 16 kHz mono audio, framed into 0.96 s examples.

Own numpy implementation of what tensorflow/models ``research/audioset/vggish/mel_features.py``
computes (``log_mel_spectrogram``, ``spectrogram_to_mel_matrix``, ``periodic_hann``,
``frame``) with the parameters of ``vggish_input.py``'s ``waveform_to_examples``:
400-sample (25 ms) windows every 160 samples (10 ms), a periodic Hann window
(``0.5 - 0.5 cos(2 pi n / 400)``), the magnitude of a 512-point real FFT (257 bins), an
HTK-mel filterbank of 64 triangles between 125 and 7500 Hz (``mel = 1127 ln(1 + f / 700)``,
band edges equally spaced in mel, triangles built in the mel domain, the DC bin given weight
0), then ``log(mel + 0.01)``; frames are grouped into examples of 96 frames every 96 frames,
incomplete frames and examples at the end dropped (no padding), as ``frame`` does.

Computed in float64 like the reference (which receives float64 from ``wav / 32768.0``);
:func:`waveform_to_examples` returns float32 ``[N, 1, 96, 64]``, the network's input.
:class:`ExampleFramer` computes the same examples from a stream of sample chunks, holding
at most one example's span (15600 samples) besides the chunk it is given: example ``k``
covers samples ``[15360 k, 15360 k + 15600)`` and each STFT frame only its own 400 samples,
so the streamed examples equal the whole-signal ones (``tests/test_vggish.py`` checks it).
:class:`WindowFramer` computes examples for 0.96 s windows at any start samples (another
grid, such as windows end-aligned with visual snippets), zeros standing for samples before
the start or after the end of the track; which windows to ask for, and how to treat the first
and the last ones, is the caller's rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

import numpy as np

from vadfeat.backbones.vggish.spec import (
    EXAMPLE_FRAMES,
    EXAMPLE_HOP_SAMPLES,
    EXAMPLE_SAMPLES,
    FFT_LENGTH,
    HOP_SAMPLES,
    LOG_OFFSET,
    MEL_MAX_HZ,
    MEL_MIN_HZ,
    NUM_BANDS,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
)

__all__ = [
    "ExampleFramer",
    "WindowFramer",
    "examples_from_chunks",
    "hertz_to_mel",
    "log_mel",
    "mel_matrix",
    "num_examples",
    "periodic_hann",
    "waveform_to_examples",
]


def periodic_hann(n: int) -> np.ndarray:
    """The periodic Hann window of ``n`` points (one full cosine period of ``n``), float64."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def hertz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=4)
def mel_matrix(num_bands: int = NUM_BANDS, num_bins: int = FFT_LENGTH // 2 + 1,
               rate: int = SAMPLE_RATE, low_hz: float = MEL_MIN_HZ,
               high_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """``[num_bins, num_bands]`` float64 weights that map FFT magnitudes to mel bands (read-only).

    Triangles linear in mel between consecutive edges of ``num_bands + 2`` equally spaced mel
    values from ``low_hz`` to ``high_hz``; FFT bin ``i`` sits at ``i * (rate / 2) / (num_bins - 1)``
    Hz; bin 0 (DC) gets no weight.  Raises :class:`ValueError` for edges out of order or above
    Nyquist.
    """
    nyquist = rate / 2.0
    if not 0.0 <= low_hz < high_hz <= nyquist:
        raise ValueError(f"mel edges must satisfy 0 <= low < high <= Nyquist ({nyquist} Hz), "
                         f"got {low_hz}..{high_hz}")
    bins_mel = hertz_to_mel(np.linspace(0.0, nyquist, num_bins))[:, None]
    edges = np.linspace(hertz_to_mel(low_hz), hertz_to_mel(high_hz), num_bands + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel - lower) / (center - lower)
    falling = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    weights.setflags(write=False)
    return weights


def _frames(samples: np.ndarray, n_frames: int) -> np.ndarray:
    starts = np.arange(n_frames)[:, None] * HOP_SAMPLES
    return samples[starts + np.arange(WINDOW_SAMPLES)[None, :]]


def log_mel(samples: np.ndarray) -> np.ndarray:
    """16 kHz mono samples ``[n]`` -> log-mel frames ``[F, 64]`` float64, ``F = 1 + (n - 400) // 160``
    (0 for ``n < 400``)."""
    x = np.asarray(samples, dtype=np.float64)
    n_frames = 0 if x.shape[0] < WINDOW_SAMPLES else 1 + (x.shape[0] - WINDOW_SAMPLES) // HOP_SAMPLES
    if n_frames == 0:
        return np.zeros((0, NUM_BANDS), dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(_frames(x, n_frames) * periodic_hann(WINDOW_SAMPLES), FFT_LENGTH))
    mel: np.ndarray = np.log(spectrum @ mel_matrix() + LOG_OFFSET)
    return mel


def num_examples(n_samples: int) -> int:
    """How many complete 0.96 s examples ``n_samples`` 16 kHz samples give (the reference's count)."""
    if n_samples < EXAMPLE_SAMPLES:
        return 0
    return 1 + (n_samples - EXAMPLE_SAMPLES) // EXAMPLE_HOP_SAMPLES


def waveform_to_examples(samples: np.ndarray) -> np.ndarray:
    """16 kHz mono samples ``[n]`` -> examples ``[N, 1, 96, 64]`` float32, ``N = num_examples(n)``."""
    mel = log_mel(samples)
    n = mel.shape[0] // EXAMPLE_FRAMES
    return mel[: n * EXAMPLE_FRAMES].reshape(n, 1, EXAMPLE_FRAMES, NUM_BANDS).astype(np.float32)


class ExampleFramer:
    """Streaming :func:`waveform_to_examples`: feed 16 kHz chunks, get complete examples.

    :meth:`push` takes the next samples and returns the examples they complete
    (``[k, 1, 96, 64]`` float32, possibly ``k = 0``); ``emitted`` counts the examples so far.
    The buffer never holds more than 15600 samples plus the last chunk.
    """

    def __init__(self) -> None:
        self._buf = np.zeros(0, dtype=np.float64)
        self.emitted = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float64)])
        k = num_examples(buf.shape[0])
        if k == 0:
            self._buf = buf
            return np.zeros((0, 1, EXAMPLE_FRAMES, NUM_BANDS), dtype=np.float32)
        out = waveform_to_examples(buf[: (k - 1) * EXAMPLE_HOP_SAMPLES + EXAMPLE_SAMPLES])
        self._buf = buf[k * EXAMPLE_HOP_SAMPLES:]
        self.emitted += k
        return out


def examples_from_chunks(chunks: Iterable[np.ndarray], batch: int = 64) -> Iterator[np.ndarray]:
    """16 kHz sample chunks -> batches of at most ``batch`` examples ``[k, 1, 96, 64]`` float32, in order."""
    framer = ExampleFramer()
    pending: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
        got = framer.push(chunk)
        if got.shape[0]:
            pending.append(got)
            held += got.shape[0]
        while held >= batch:
            allx = np.concatenate(pending)
            yield allx[:batch]
            rest = allx[batch:]
            pending, held = ([rest] if rest.shape[0] else []), rest.shape[0]
    if held:
        yield np.concatenate(pending)


class WindowFramer:
    """Log-mel examples of 15600-sample windows starting at given 16 kHz sample indices, streamed.

    ``starts``: non-decreasing window starts (may be negative or run past the end of the track:
    the samples outside it are zeros).  :meth:`push` takes the next samples and returns the
    examples of the windows now complete, ``[k, 1, 96, 64]`` float32, in order; :meth:`finish`
    returns the rest (windows that reach past the end, zero-padded).  A window starting at
    ``15360 k`` inside the track gives exactly :func:`waveform_to_examples`'s example ``k``.
    Holds the samples from the earliest pending window's start on.
    """

    def __init__(self, starts: Iterable[int]) -> None:
        self._starts = [int(s) for s in starts]
        if any(b < a for a, b in zip(self._starts, self._starts[1:], strict=False)):
            raise ValueError("window starts must be non-decreasing")
        self._next = 0
        self._buf = np.zeros(0, dtype=np.float64)
        self._buf_start = 0  # sample index of _buf[0]
        self._total = 0

    def _window(self, start: int) -> np.ndarray:
        out = np.zeros(EXAMPLE_SAMPLES, dtype=np.float64)
        lo, hi = max(start, self._buf_start), min(start + EXAMPLE_SAMPLES, self._total)
        if hi > lo:
            out[lo - start: hi - start] = self._buf[lo - self._buf_start: hi - self._buf_start]
        return out

    def _emit(self, complete_only: bool) -> np.ndarray:
        done = []
        while self._next < len(self._starts):
            start = self._starts[self._next]
            if complete_only and start + EXAMPLE_SAMPLES > self._total:
                break
            done.append(log_mel(self._window(start)))
            self._next += 1
        if self._next < len(self._starts):
            keep = max(self._buf_start, min(self._starts[self._next], self._total))
            self._buf = self._buf[keep - self._buf_start:]
            self._buf_start = keep
        if not done:
            return np.zeros((0, 1, EXAMPLE_FRAMES, NUM_BANDS), dtype=np.float32)
        return np.stack(done)[:, None].astype(np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float64)])
        self._total += int(np.asarray(samples).shape[0])
        return self._emit(complete_only=True)

    def finish(self) -> np.ndarray:
        return self._emit(complete_only=False)
