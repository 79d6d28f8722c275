"""Where each VGGish example lies on the audio: pure index math, no decoding, no model.

VGGish (Hershey et al., ICASSP 2017; the AudioSet release, tensorflow/models
``research/audioset/vggish``) reads 16 kHz mono audio as a log-mel spectrogram of
25 ms windows every 10 ms (``mel_features.log_mel_spectrogram``: 400-sample windows,
160-sample hop), and embeds examples of 96 consecutive log-mel frames (0.96 s).
Units here are **log-mel frame indices** at 100 per second: frame ``k`` is the STFT
window over samples ``[160 k, 160 k + 400)`` of the 16 kHz track, so an example of
frames ``[start, stop)`` reads samples ``[160 start, 160 (stop - 1) + 400)``
(15,600 samples, 0.975 s) and stands for the nominal span ``[start / 100,
stop / 100)`` s (0.96 s).  Negative indices and indices past the track's last frame
are allowed: they read zero samples (silence; a frame of zeros has log-mel
``log(0.01)`` in every band), see :func:`padding`.

Grids (docs/DESIGN.md, "Audio grids", for the sources and which parts are choices):

* :func:`plain_grid`: the examples ``vggish_input.waveform_to_examples`` makes:
  back to back, ``1 + (F - 96) // 96`` of them for ``F = 1 + (n - 400) // 160``
  log-mel frames of ``n`` samples, none when ``F < 96`` (under 0.975 s of audio:
  exactly 0.96 s gives 94 frames and no example).
* :func:`snippet_grid`: one example per visual snippet, ending at the snippet's
  end time (XD-Violence's audio features, "960-ms overlapped audio segments ...
  only the end time aligned" with 16-frame snippets at 24 fps), so audio ``T``
  equals visual ``T`` by construction; ``first`` and ``tail`` say what happens to
  an example that would start before the audio (the first snippet at 24 fps ends
  at 0.667 s) or run past its end.
* :func:`xd_grid`: :func:`snippet_grid` on 16-frame snippets at 24 fps.
* :func:`snippet_end_times` / :func:`sidecar_grid`: the snippet end times of any
  vadfeat visual extraction, read from its sidecar.

:func:`coverage` records how the audio track's length compared with the grid (the
padded and unused seconds), for the audio sidecar.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, get_args

import numpy as np

from vadfeat._types import AudioEdge
from vadfeat.errors import AudioGridError, ConfigError

__all__ = [
    "EXAMPLE_FRAMES",
    "FRAMES_PER_SECOND",
    "HOP_SAMPLES",
    "SAMPLE_RATE",
    "WINDOW_SAMPLES",
    "XD_CLIP_LEN",
    "XD_FPS",
    "AudioCoverage",
    "AudioEdge",
    "AudioGridError",
    "AudioWindow",
    "coverage",
    "gather_examples",
    "log_mel_frames",
    "padding",
    "plain_grid",
    "read_sidecar",
    "sidecar_grid",
    "snippet_end_times",
    "snippet_grid",
    "video_seconds",
    "xd_grid",
]

#: Sample rate VGGish reads (``vggish_params.SAMPLE_RATE``), Hz.
SAMPLE_RATE = 16000
#: STFT window, samples: 25 ms at 16 kHz (``STFT_WINDOW_LENGTH_SECONDS``).
WINDOW_SAMPLES = 400
#: STFT hop, samples: 10 ms at 16 kHz (``STFT_HOP_LENGTH_SECONDS``): one log-mel frame.
HOP_SAMPLES = 160
#: Log-mel frames per second.
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_SAMPLES
#: Log-mel frames per example (``NUM_FRAMES``; ``EXAMPLE_WINDOW_SECONDS`` = 0.96).
EXAMPLE_FRAMES = 96
#: XD-Violence's visual snippet: 16 frames at the videos' 24 fps.
XD_CLIP_LEN = 16
XD_FPS = 24

# First and tail rules (:data:`vadfeat._types.AudioEdge`): an example that would start
# before the audio track (``first``) or end after it (``tail``) either stays where its
# snippet puts it and reads zero samples (silence) outside the track (``"pad"``), or is
# shifted inside the track (``"clamp"``, no longer end-aligned with its snippet).
# Whatever the rule, a track shorter than one example is padded.


@dataclass(frozen=True)
class AudioWindow:
    """One VGGish example: log-mel frames ``[start, stop)`` (10 ms each, 0-based from the
    audio track's first sample; may be negative or past the track's end, read as silence).

    ``start_s``/``stop_s`` give the nominal span in seconds (``frame / 100``);
    ``sample_start``/``sample_stop`` the 16 kHz samples the STFT windows read,
    ``[160 start, 160 (stop - 1) + 400)``, 15 ms past ``stop_s``.
    """

    start: int
    stop: int

    def __post_init__(self) -> None:
        for name in ("start", "stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"AudioWindow.{name} must be an int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.stop <= self.start:
            raise ValueError(f"AudioWindow needs stop > start, got [{self.start}, {self.stop})")

    @property
    def frames(self) -> int:
        """Log-mel frames in the window (96 for VGGish)."""
        return self.stop - self.start

    @property
    def start_s(self) -> float:
        """Nominal start, seconds from the track's first sample."""
        return self.start / FRAMES_PER_SECOND

    @property
    def stop_s(self) -> float:
        """Nominal end, seconds (the time a snippet grid aligns with the snippet's end)."""
        return self.stop / FRAMES_PER_SECOND

    @property
    def sample_start(self) -> int:
        """First 16 kHz sample the window's STFT reads."""
        return self.start * HOP_SAMPLES

    @property
    def sample_stop(self) -> int:
        """One past the last 16 kHz sample the window's STFT reads."""
        return (self.stop - 1) * HOP_SAMPLES + WINDOW_SAMPLES

    def to_list(self) -> list[int]:
        """``[start, stop]`` for a sidecar."""
        return [self.start, self.stop]


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _edge(name: str, value: object) -> AudioEdge:
    allowed = get_args(AudioEdge)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value  # type: ignore[return-value]


def log_mel_frames(num_samples: int) -> int:
    """Log-mel frames ``mel_features.log_mel_spectrogram`` makes of ``num_samples``
    samples: ``1 + (n - 400) // 160`` complete 400-sample windows every 160 samples,
    0 when ``n < 400`` (the reference's ``frame`` then yields none, or fails with a
    negative dimension below 240 samples)."""
    n = _count("num_samples", num_samples)
    return 0 if n < WINDOW_SAMPLES else 1 + (n - WINDOW_SAMPLES) // HOP_SAMPLES


def plain_grid(num_samples: int) -> tuple[AudioWindow, ...]:
    """The examples torchvggish and the TensorFlow release compute of a ``num_samples``
    16 kHz track: frames ``[96 k, 96 k + 96)`` for ``k < 1 + (F - 96) // 96``, ``F``
    from :func:`log_mel_frames`; none when ``F < 96`` (under 0.975 s of audio).

    Raises:
        ConfigError: ``num_samples`` is not a non-negative integer.
    """
    f = log_mel_frames(num_samples)
    count = 0 if f < EXAMPLE_FRAMES else 1 + (f - EXAMPLE_FRAMES) // EXAMPLE_FRAMES
    return tuple(AudioWindow(k * EXAMPLE_FRAMES, (k + 1) * EXAMPLE_FRAMES) for k in range(count))


def _exact(name: str, value: object) -> Fraction:
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return Fraction(value)


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def snippet_grid(
    end_times_s: Iterable[float | Fraction],
    *,
    num_samples: int | None = None,
    first: AudioEdge = "pad",
    tail: AudioEdge = "pad",
    frames: int = EXAMPLE_FRAMES,
) -> tuple[AudioWindow, ...]:
    """One example per visual snippet, ending where the snippet ends.

    Window ``k`` is ``[e_k - frames, e_k)`` with ``e_k = round(end_times_s[k] * 100)``
    (the nearest whole log-mel frame, halves up, computed on exact fractions: the
    reference rounds its example hop to whole frames the same way).  Then:

    * ``tail="clamp"`` (needs ``num_samples``): a window ending after the track's
      last complete log-mel frame (:func:`log_mel_frames`) is shifted back to end
      there; ``"pad"`` leaves it, reading silence past the end.
    * ``first="clamp"``: a window starting before frame 0 is shifted to start at 0;
      ``"pad"`` leaves it, reading silence before the start (it stays end-aligned).
      Applied after ``tail``, so a track shorter than one example is padded at its
      end either way.

    Args:
        end_times_s: each snippet's end time, seconds from the first frame, ascending
            (floats or exact fractions).
        num_samples: the 16 kHz track's length; needed by ``tail="clamp"`` only.
        first, tail: the rules above (:data:`AudioEdge`).
        frames: log-mel frames per window (96 for VGGish).

    Returns:
        One :class:`AudioWindow` per end time, in order.

    Raises:
        ConfigError: a negative or non-finite end time, end times that go back, an
            unknown rule, ``tail="clamp"`` without ``num_samples``.
    """
    first = _edge("first", first)
    tail = _edge("tail", tail)
    width = _count("frames", frames)
    if width < 1:
        raise ConfigError("frames must be at least 1")
    limit: int | None = None
    if tail == "clamp":
        if num_samples is None:
            raise ConfigError("tail='clamp' needs num_samples (the audio track's length)")
        limit = log_mel_frames(num_samples)
    elif num_samples is not None:
        _count("num_samples", num_samples)
    windows: list[AudioWindow] = []
    previous = Fraction(0)
    for k, t in enumerate(end_times_s):
        end = _exact(f"end_times_s[{k}]", t)
        if end < 0 or end < previous:
            raise ConfigError(f"end_times_s[{k}] = {float(end):g} s: end times must be >= 0 and "
                              "ascending")
        previous = end
        stop = _round_half_up(end * FRAMES_PER_SECOND)
        if limit is not None and stop > limit:
            stop = limit
        start = stop - width
        if first == "clamp" and start < 0:
            start, stop = 0, width
        windows.append(AudioWindow(start, stop))
    return tuple(windows)


def xd_grid(
    num_frames: int,
    *,
    fps: float = XD_FPS,
    clip_len: int = XD_CLIP_LEN,
    lookahead: int = 0,
    num_samples: int | None = None,
    first: AudioEdge = "pad",
    tail: AudioEdge = "pad",
) -> tuple[AudioWindow, ...]:
    """The ``vggish-xd`` grid: :func:`snippet_grid` on back-to-back ``clip_len``-frame
    snippets of a ``num_frames`` video at ``fps`` (XD-Violence: 16 at 24 fps), the
    trailing partial snippet dropped: ``T = (num_frames - lookahead) // clip_len``
    windows, window ``k`` ending at ``(k + 1) * clip_len / fps`` s.

    ``lookahead=1`` gives ``floor((N - 1) / 16)``, the ``T`` XD-Violence's ground
    truth script implies (its ``make_gt.py`` keeps ``16 * floor((N - 1) / 16)``
    frames); the default 0 matches the ``i3d-xd`` preset's ``floor(N / 16)``.

    Raises:
        ConfigError: a bad count, rate or rule.
    """
    n = _count("num_frames", num_frames)
    clip = _count("clip_len", clip_len)
    ahead = _count("lookahead", lookahead)
    if clip < 1:
        raise ConfigError("clip_len must be at least 1")
    rate = _exact("fps", fps)
    if rate <= 0:
        raise ConfigError(f"fps must be positive, got {fps!r}")
    count = max(0, (n - ahead) // clip)
    ends = [Fraction((k + 1) * clip) / rate for k in range(count)]
    return snippet_grid(ends, num_samples=num_samples, first=first, tail=tail)


# --------------------------------------------------------------------------- sidecars


def _field(sidecar: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in sidecar:
        raise AudioGridError(f"{where}: the sidecar has no {key!r}: cannot place audio windows")
    return sidecar[key]


def _positive(value: object, what: str, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or (
            isinstance(value, float) and not math.isfinite(value)):
        raise AudioGridError(f"{where}: {what} must be a positive number, got {value!r}")
    return Fraction(value)


def _int_setting(settings: Mapping[str, Any], key: str, default: int | None, where: str) -> int:
    value = settings.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "lookahead"
                                                                         else 1):
        raise AudioGridError(f"{where}: settings.{key} = {value!r} is not a valid {key}")
    return value


def snippet_end_times(sidecar: Mapping[str, Any], *, where: str = "sidecar") -> tuple[Fraction, ...]:
    """Each feature row's end time, seconds from the first frame, from a vadfeat visual
    extraction's sidecar (docs/DESIGN.md, "Feature files and sidecars").

    Without ``--fps`` resampling (the fingerprint's ``fps`` null) a row's ``[first, last]`` are
    positions in the decoded sequence and the row ends when its last frame does:
    ``(last + 1) / fps`` (nominal times: a variable-frame-rate source is placed as if
    constant).  Under resampling (``fps`` is then the run's rate) the ranges name
    *source* frames (a frame may repeat), so the positions on the resampled timeline
    come from the sampling ``settings`` instead: row ``k``'s last frame is at ``k * stride + (clip_len - 1) *
    frame_interval`` and the row ends at ``(that + 1) / fps``, capped at the source's
    duration ``num_frames / native_fps`` (a tail-padded last row ends with the video).

    Args:
        sidecar: the parsed JSON object.
        where: names the file in errors.

    Raises:
        AudioGridError: a missing or malformed field.
    """
    if not isinstance(sidecar, Mapping):
        raise AudioGridError(f"{where}: a sidecar must be a JSON object")
    snippets = _field(sidecar, "snippets", where)
    fps = _positive(_field(sidecar, "fps", where), "fps", where)
    settings = sidecar.get("settings") or {}
    if not isinstance(settings, Mapping) or not isinstance(snippets, list):
        raise AudioGridError(f"{where}: 'settings' must be an object and 'snippets' a list")
    lasts: list[int] = []
    for k, rng in enumerate(snippets):
        if (not isinstance(rng, list) or len(rng) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in rng)
                or rng[1] < rng[0]):
            raise AudioGridError(f"{where}: snippets[{k}] = {rng!r} is not a [first, last] pair")
        lasts.append(rng[1])
    if not _resampled(sidecar, where):
        return tuple(Fraction(last + 1) / fps for last in lasts)
    clip = _int_setting(settings, "clip_len", 16, where)
    interval = _int_setting(settings, "frame_interval", 1, where)
    stride = _int_setting(settings, "stride", clip * interval, where)
    native = sidecar.get("native_fps")
    num_frames = sidecar.get("num_frames")
    cap: Fraction | None = None
    if native is not None and num_frames is not None:
        cap = Fraction(_count_field(num_frames, "num_frames", where)) / _positive(
            native, "native_fps", where)
    ends = []
    for k in range(len(lasts)):
        end = Fraction(k * stride + (clip - 1) * interval + 1) / fps
        ends.append(end if cap is None else min(end, cap))
    return tuple(ends)


def _resampled(sidecar: Mapping[str, Any], where: str) -> bool:
    """Whether the extraction ran under ``--fps``: its fingerprint's ``fps`` (the run's
    setting) is set; a sidecar without a fingerprint is resampled when its ``fps``
    differs from its ``native_fps``."""
    fingerprint = sidecar.get("fingerprint")
    if isinstance(fingerprint, Mapping) and "fps" in fingerprint:
        return fingerprint["fps"] is not None
    if fingerprint is not None and not isinstance(fingerprint, Mapping):
        raise AudioGridError(f"{where}: 'fingerprint' must be an object")
    native = sidecar.get("native_fps")
    return native is not None and native != sidecar.get("fps")


def _count_field(value: object, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AudioGridError(f"{where}: {what} must be a non-negative integer, got {value!r}")
    return value


def video_seconds(sidecar: Mapping[str, Any]) -> float | None:
    """The source video's nominal duration from its sidecar, ``num_frames / native_fps``
    (``fps`` when the sidecar predates ``native_fps``), for :func:`coverage`; ``None``
    when a field is missing or not a positive number."""
    frames = sidecar.get("num_frames")
    rate = sidecar.get("native_fps", sidecar.get("fps"))
    if (isinstance(frames, bool) or not isinstance(frames, int) or frames < 0
            or isinstance(rate, bool) or not isinstance(rate, (int, float))
            or not math.isfinite(rate) or rate <= 0):
        return None
    return frames / rate


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON object of a visual extraction's sidecar (``<stem>.json``).

    Raises:
        AudioGridError: unreadable, not JSON, or not an object; the message names the file.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AudioGridError(f"{p}: cannot read the sidecar: {exc}") from exc
    if not isinstance(data, dict):
        raise AudioGridError(f"{p}: a sidecar must be a JSON object")
    return data


def sidecar_grid(
    sidecar: Mapping[str, Any] | str | Path,
    *,
    num_samples: int | None = None,
    first: AudioEdge = "pad",
    tail: AudioEdge = "pad",
) -> tuple[AudioWindow, ...]:
    """:func:`snippet_grid` on a visual extraction's rows: one window per row of its
    ``[T, ...]`` features, ending at the row's end time (:func:`snippet_end_times`).

    Raises:
        AudioGridError: the sidecar cannot be read or lacks the fields (names the file).
        ConfigError: an unknown rule.
    """
    where = "sidecar"
    if isinstance(sidecar, (str, Path)):
        where = str(sidecar)
        sidecar = read_sidecar(sidecar)
    ends = snippet_end_times(sidecar, where=where)
    return snippet_grid(ends, num_samples=num_samples, first=first, tail=tail)


# --------------------------------------------------------------------------- padding


def padding(windows: Sequence[AudioWindow], num_samples: int) -> tuple[int, int]:
    """Zero samples to put before and after a ``num_samples`` track so that every window
    reads real or padded samples: ``(before, after)``.  ``before`` is a multiple of 160,
    so the padded track's log-mel frame ``k + before // 160`` is the window's frame
    ``k`` (:func:`gather_examples`).  ``(0, 0)`` when every window lies inside."""
    n = _count("num_samples", num_samples)
    if not windows:
        return 0, 0
    before = max(0, -min(w.start for w in windows)) * HOP_SAMPLES
    after = max(0, max(w.sample_stop for w in windows) - n)
    return before, after


def gather_examples(log_mel: np.ndarray, windows: Sequence[AudioWindow], *,
                    frame_offset: int = 0) -> np.ndarray:
    """The examples ``[N, frames, bands]`` of a log-mel ``[F, bands]`` for ``windows``;
    window frame ``k`` is ``log_mel[k + frame_offset]`` (``frame_offset = before // 160``
    when the track was padded by :func:`padding`).

    Raises:
        ValueError: a window outside ``log_mel`` after the offset, or windows of
            different lengths.
    """
    if log_mel.ndim != 2:
        raise ValueError(f"log_mel must be [frames, bands], got shape {log_mel.shape}")
    if not windows:
        return np.zeros((0, EXAMPLE_FRAMES, log_mel.shape[1]), dtype=log_mel.dtype)
    widths = {w.frames for w in windows}
    if len(widths) != 1:
        raise ValueError(f"windows of different lengths: {sorted(widths)}")
    rows = []
    for w in windows:
        a, b = w.start + frame_offset, w.stop + frame_offset
        if a < 0 or b > log_mel.shape[0]:
            raise ValueError(f"window [{w.start}, {w.stop}) + offset {frame_offset} lies outside "
                             f"the {log_mel.shape[0]} log-mel frames")
        rows.append(log_mel[a:b])
    return np.stack(rows)


@dataclass(frozen=True)
class AudioCoverage:
    """How an audio track's length compared with its grid, for the audio sidecar.

    ``padded_before_seconds``/``padded_after_seconds``: silence (zero samples) the
    windows read before the track's start and after its end; ``unused_seconds``: audio
    after the last sample any window reads (a track longer than the video is cut
    there); ``video_seconds`` as given (``None`` when unknown).
    """

    audio_seconds: float
    video_seconds: float | None
    padded_before_seconds: float
    padded_after_seconds: float
    unused_seconds: float

    @property
    def padded_seconds(self) -> float:
        return self.padded_before_seconds + self.padded_after_seconds

    def to_dict(self) -> dict[str, float | None]:
        return {"audio_seconds": self.audio_seconds, "video_seconds": self.video_seconds,
                "padded_seconds": self.padded_seconds,
                "padded_before_seconds": self.padded_before_seconds,
                "padded_after_seconds": self.padded_after_seconds,
                "unused_seconds": self.unused_seconds}


def coverage(windows: Sequence[AudioWindow], num_samples: int, *,
             video_seconds: float | None = None) -> AudioCoverage:
    """The :class:`AudioCoverage` of ``windows`` over a ``num_samples`` 16 kHz track.

    The rule it records: samples outside the track read as zeros (silence, before the
    log-mel), so a track shorter than the video still gives one row per snippet; audio
    past the last window is not read (cut).  Seconds are rounded to 1e-6.
    """
    n = _count("num_samples", num_samples)
    before, after = padding(windows, n)
    last = max((w.sample_stop for w in windows), default=0)
    unused = max(0, n - last)

    def s(samples: int) -> float:
        return round(samples / SAMPLE_RATE, 6)

    return AudioCoverage(audio_seconds=s(n),
                         video_seconds=None if video_seconds is None else float(video_seconds),
                         padded_before_seconds=s(before), padded_after_seconds=s(after),
                         unused_seconds=s(unused))
