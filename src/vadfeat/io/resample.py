"""Frame-rate resampling by timestamp, and the timeline of decoded frames.

:class:`Resampler` turns decoded frames with exact timestamps into frames at ``k / fps``
(variable frame rate in, even timing out); :class:`FrameTimes` keeps the first and last
timestamps and how long the last frame lasts, which resampling (the last frame's end)
and the end-of-video coverage check (:func:`vadfeat.io.counts.check_end`) need.  Both
readers of containers (PyAV, torchcodec) and the frame-folder reader use them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from vadfeat.errors import DecodeError

__all__ = ["MAX_RESAMPLE_RATIO", "MAX_TIMESTAMP_GAP_S", "FrameTimes", "Resampler", "fraction"]


def fraction(value: float) -> Fraction:
    """A rate or time in seconds as an exact fraction (denominator at most 10^6)."""
    return Fraction(value).limit_denominator(1_000_000)


# Longest forward jump between consecutive frames' timestamps that resampling accepts.
MAX_TIMESTAMP_GAP_S = 3600
#: Under ``fps`` resampling a video may yield at most this many frames per decoded
#: frame, plus one minute of output (``60 * fps`` frames) for short clips with a pause;
#: more is damaged timestamps (a 3.6 KB mkv with eleven jumps of 3,599 s asked for
#: 1.2 million frames at 30 fps), a :class:`DecodeError`.
MAX_RESAMPLE_RATIO = 100


class Resampler:
    """Pick, for output times k/fps, the latest source frame at or before that time.

    "Latest at or before" (not "nearest") keeps causality — an output frame never
    shows something that has not happened yet — and makes the output of a constant
    rate source at its own rate the identity.  Times are exact fractions relative to
    the first frame.  A timestamp that goes backwards (broken files) is treated as
    equal to the previous one.  The last source frame lasts until its own end
    (timestamp + duration), so a 2 s clip gives 2*fps output frames.  A jump forward
    of more than :data:`MAX_TIMESTAMP_GAP_S` is a damaged timestamp, not a pause
    (found by fuzzing: one bogus pts asked for billions of repeated frames), and
    raises :class:`DecodeError`, and so does asking for more output frames than
    :data:`MAX_RESAMPLE_RATIO` per decoded frame plus one minute (checked as frames
    are made, against the frames decoded so far).  Output frames are generated one
    at a time; ``output_time`` is the time of the one just yielded.
    """

    def __init__(self, fps: float) -> None:
        self._step = 1 / fraction(fps)
        self._fps = fps
        self._floor = math.ceil(60 * fps)
        self._pushed = 0
        self._k = 0
        self._t0: Fraction | None = None
        self._last_t = Fraction(0)
        self._held: tuple[int, Any] | None = None
        #: Time of the frame just yielded, on the source's clock: ``first + k / fps``.
        self.output_time = Fraction(0)

    def push(self, index: int, time: Fraction, frame: Any) -> Iterator[tuple[int, Any]]:
        if self._t0 is None:
            self._t0 = time
        t0 = self._t0
        rel = max(time - t0, self._last_t)
        if rel - self._last_t > MAX_TIMESTAMP_GAP_S:
            raise DecodeError(
                f"timestamp jumps {float(rel - self._last_t):.0f} s forward at frame {index} "
                f"(more than {MAX_TIMESTAMP_GAP_S} s: damaged timestamps); resampling to a "
                "frame rate would repeat one frame for all of it"
            )
        if self._held is not None:
            while self._k * self._step < rel:
                self._check_budget(index)
                self.output_time = t0 + self._k * self._step
                yield self._held
                self._k += 1
        self._held = (index, frame)
        self._pushed += 1
        self._last_t = rel

    def _check_budget(self, index: int) -> None:
        limit = MAX_RESAMPLE_RATIO * self._pushed + self._floor
        if self._k >= limit:
            raise DecodeError(
                f"resampling to {self._fps:g} fps asks for more than {limit} frames from "
                f"{self._pushed} decoded (at most {MAX_RESAMPLE_RATIO} per decoded frame plus "
                f"one minute) before frame {index}: damaged timestamps?  Extract without fps, "
                "or with a lower one"
            )

    def finish(self, last_duration: Fraction) -> Iterator[tuple[int, Any]]:
        if self._held is None:
            return
        end = self._last_t + min(max(last_duration, Fraction(0)), Fraction(MAX_TIMESTAMP_GAP_S))
        assert self._t0 is not None
        while self._k * self._step < end:
            self._check_budget(self._held[0])
            self.output_time = self._t0 + self._k * self._step
            yield self._held
            self._k += 1
        self._held = None


class FrameTimes:
    """The decoded frames' timeline: first and last timestamp, and the last frame's length.

    How long the (so far) last frame lasts: the gap since the previous frame; else the
    frame's own duration (``own``, when the decoder gives one); else one frame step of
    the native rate.  Decoded frames' own durations are not used while there is a gap:
    with B-frames FFmpeg attaches the durations of packets in decode order, so they
    belong to other frames.
    """

    def __init__(self, frame_step: Fraction) -> None:
        self.frame_step = frame_step
        self.first: Fraction | None = None
        self.last: Fraction | None = None
        self._last_duration: Fraction | None = None

    def add(self, t: Fraction, own: Fraction | None = None) -> None:
        """Record the next decoded frame's time ``t`` (and its own duration, if any)."""
        previous, self.last = self.last, t
        if self.first is None:
            self.first = t
        if previous is not None and t > previous:
            self._last_duration = t - previous
        elif own:
            self._last_duration = own
        else:
            self._last_duration = self.frame_step

    @property
    def last_duration(self) -> Fraction:
        """How long the last frame lasts (one frame step before any frame)."""
        return self._last_duration or self.frame_step

    @property
    def span(self) -> tuple[Fraction, Fraction] | None:
        """``(first, last)`` timestamps, ``None`` before any frame."""
        if self.first is None or self.last is None:
            return None
        return self.first, self.last
