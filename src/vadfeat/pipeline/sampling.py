"""Which frames form each snippet: pure index math, no decoding.

A snippet is ``clip_len`` frames taken every ``frame_interval`` frames, so it spans
``span = (clip_len - 1) * frame_interval + 1`` source frames; snippets start every
``stride`` frames (default ``clip_len * frame_interval``: back to back, no overlap).
WSVAD code (docs/REFERENCE.md, section 3) reads 16 consecutive frames per snippet at native fps and
counts snippets either as ``floor(N/16)`` (``tail="drop"``: a partial last window
is dropped, as the legacy pipeline did) or ``ceil(N/16)`` (``tail="pad"``: the last
window is completed by repeating the last frame).

:func:`snippet_indices` does this when the frame count is known;
:class:`SnippetAssembler` does the same while frames stream in and the count is
known only at the end, holding no more than ``span`` frames at a time.
Indices are 0-based positions in the decoded frame sequence (docs/DESIGN.md).

``lookahead`` (default 0; only with ``tail="drop"``) makes a snippet only once that many
frames *follow* its last frame: v-iashin/video_features' I3D reads ``stack_size + 1`` frames
per stack (its flow stream needs the pair) and feeds the first ``stack_size`` to the RGB
stream, so a stack whose last frame ends the video is never made (``lookahead=1``:
``floor((N - 1) / 16)`` snippets of 16 instead of ``floor(N / 16)``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, get_args

import numpy as np

from vadfeat._types import Tail
from vadfeat.errors import ConfigError, VideoTooShortError

__all__ = ["Snippet", "SnippetAssembler", "Tail", "snippet_indices", "snippet_span"]


T = TypeVar("T")


def _positive_int(name: str, value: object) -> int:
    # bool is an int subclass; True as a clip length is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_tail(tail: object) -> Tail:
    allowed = get_args(Tail)
    if tail not in allowed:
        raise ConfigError(f"tail must be one of {', '.join(map(repr, allowed))}; got {tail!r}")
    return tail  # type: ignore[return-value]


def _resolve(
    clip_len: object, frame_interval: object, stride: object, tail: object
) -> tuple[int, int, int, int, Tail]:
    """Validate options; return (clip_len, interval, stride, span, tail)."""
    clip = _positive_int("clip_len", clip_len)
    interval = _positive_int("frame_interval", frame_interval)
    step = clip * interval if stride is None else _positive_int("stride", stride)
    return clip, interval, step, (clip - 1) * interval + 1, _check_tail(tail)


def _lookahead(value: object, tail: Tail) -> int:
    """Validate ``lookahead``: a non-negative integer, and 0 unless ``tail="drop"``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"lookahead must be a non-negative integer, got {value!r}")
    if value and tail != "drop":
        raise ConfigError(f"lookahead ({value}) needs tail='drop': a padded tail snippet has no "
                          "frames after it")
    return int(value)


def snippet_span(clip_len: int = 16, frame_interval: int = 1) -> int:
    """Number of source frames one snippet covers, first to last inclusive."""
    return _resolve(clip_len, frame_interval, None, "drop")[3]


def _too_short(num_frames: int, clip: int, interval: int, span: int,
               lookahead: int = 0) -> VideoTooShortError:
    if not num_frames:
        return VideoTooShortError("video has no frames")
    if lookahead:
        return VideoTooShortError(
            f"video has {num_frames} frame(s), a snippet needs {span + lookahead} "
            f"({clip} frames at interval {interval}, then {lookahead} more: lookahead)")
    return VideoTooShortError(
        f"video has {num_frames} frame(s), a snippet needs {span} "
        f"({clip} frames at interval {interval}); tail='pad' would keep it as one padded "
        "snippet"
    )


def snippet_indices(
    num_frames: int,
    *,
    clip_len: int = 16,
    frame_interval: int = 1,
    stride: int | None = None,
    tail: Tail = "drop",
    lookahead: int = 0,
) -> np.ndarray:
    """Frame indices of every snippet of a ``num_frames`` video, ``[S, clip_len]`` int64.

    Snippet ``k`` starts at ``k * stride`` and takes every ``frame_interval``-th frame.

    * ``tail="drop"``: only windows that fit entirely (``start + span <= num_frames``),
      and with ``lookahead`` frames after them (``start + span + lookahead <= num_frames``).
    * ``tail="pad"``: starts ``< num_frames`` up to and including the first whose
      window reaches or passes the end (``start + span >= num_frames``); indices past
      the end are clamped to ``num_frames - 1`` (the last frame repeats).  With the
      default 16 consecutive frames this gives ``ceil(N / 16)`` snippets.

    Raises:
        VideoTooShortError: ``num_frames == 0``, or ``"drop"`` with fewer than ``span``
            (plus ``lookahead``) frames.  (``"pad"`` turns a short video into one padded
            snippet.)
        ConfigError: a non-positive or non-integer option, an unknown ``tail``, or a
            ``lookahead`` with ``tail="pad"``.
    """
    clip, interval, step, span, mode = _resolve(clip_len, frame_interval, stride, tail)
    ahead = _lookahead(lookahead, mode)
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)):
        raise ConfigError(f"num_frames must be an integer, got {num_frames!r}")
    n = int(num_frames)
    if n < 0:
        raise ConfigError(f"num_frames must be >= 0, got {n}")
    if n == 0 or (mode == "drop" and n < span + ahead):
        raise _too_short(n, clip, interval, span, ahead)
    if mode == "drop":
        count = (n - span - ahead) // step + 1
    else:
        # Smallest k with k*step + span >= n, but never a start at or past the end.
        first_reaching_end = max(0, -(-(n - span) // step))
        last_start_before_end = (n - 1) // step
        count = min(first_reaching_end, last_start_before_end) + 1
    starts = np.arange(count, dtype=np.int64) * step
    offsets = np.arange(clip, dtype=np.int64) * interval
    indices = starts[:, None] + offsets[None, :]
    if mode == "pad":
        np.minimum(indices, n - 1, out=indices)
    return indices


@dataclass(frozen=True)
class Snippet(Generic[T]):
    """One snippet from :class:`SnippetAssembler`.

    ``frame_indices`` are the indices the frames were pushed with (source indices),
    ``items`` the pushed items in the same order; a padded snippet repeats the last.
    """

    frame_indices: tuple[int, ...]
    items: list[T]

    @property
    def first(self) -> int:
        return self.frame_indices[0]

    @property
    def last(self) -> int:
        return self.frame_indices[-1]


class SnippetAssembler(Generic[T]):
    """Streaming :func:`snippet_indices`: group frames into snippets as they arrive.

    Push frames in decoding order with :meth:`push`; it returns the snippets that
    the frame completes (at most one, as windows complete in start order).  At the
    end :meth:`finish` returns the padded tail snippet (``"pad"``) or nothing
    (``"drop"``).  Snippet layout is computed over *push positions* (0, 1, 2, ...,
    the k-th pushed frame), exactly as ``snippet_indices(number_pushed, ...)``; each
    snippet reports the ``index`` values its frames were pushed with, which under
    fps resampling need not be consecutive.

    Memory: a frame is kept only while a not-yet-complete snippet still needs it
    (reference counted per snippet), plus the latest frame under ``"pad"`` (for
    padding), so at most ``span`` items are held, overlapping strides included
    (``span + lookahead`` with a ``lookahead``: a snippet is made that many frames
    after its last one).  ``peak_buffered`` records the maximum.
    """

    def __init__(
        self,
        *,
        clip_len: int = 16,
        frame_interval: int = 1,
        stride: int | None = None,
        tail: Tail = "drop",
        lookahead: int = 0,
    ) -> None:
        clip, interval, step, span, mode = _resolve(clip_len, frame_interval, stride, tail)
        self.lookahead = _lookahead(lookahead, mode)
        self.clip_len = clip
        self.frame_interval = interval
        self.stride = step
        self.span = span
        self.tail: Tail = mode
        self._position = 0  # number of frames pushed so far
        self._pending: deque[int] = deque()  # starts of incomplete snippets, ascending
        # position -> [index, item, number of pending snippets still needing it]
        self._buffer: dict[int, list[Any]] = {}
        self._last: tuple[int, T] | None = None
        self._last_end = -1  # last position of the latest completed snippet
        self._emitted = 0
        self._finished = False
        self.peak_buffered = 0

    @property
    def buffered(self) -> int:
        """Number of distinct items held right now."""
        extra = 1 if self._last is not None and (self._position - 1) not in self._buffer else 0
        return len(self._buffer) + extra

    @property
    def frames_pushed(self) -> int:
        return self._position

    def push(self, index: int, item: T) -> list[Snippet[T]]:
        """Add the next frame (its source ``index`` and any payload ``item``)."""
        if self._finished:
            raise RuntimeError("push() after finish()")
        p = self._position
        self._position += 1
        if p % self.stride == 0:
            self._pending.append(p)
        needed_by = sum(
            1 for s in self._pending if (p - s) % self.frame_interval == 0 and p - s < self.span
        )
        if needed_by:
            self._buffer[p] = [index, item, needed_by]
        # Padding repeats the latest frame, so under "pad" it is kept even when no
        # window's grid lands on it.
        self._last = (index, item) if self.tail == "pad" else None
        self.peak_buffered = max(self.peak_buffered, self.buffered)
        out: list[Snippet[T]] = []
        if self._pending and self._pending[0] + self.span - 1 + self.lookahead == p:
            start = self._pending.popleft()
            out.append(self._take(start, [start + j * self.frame_interval
                                          for j in range(self.clip_len)]))
            self._last_end = p
        return out

    def _take(self, start: int, positions: list[int]) -> Snippet[T]:
        indices: list[int] = []
        items: list[T] = []
        for q in positions:
            entry = self._buffer.get(q)
            if entry is None:
                # Only the clamped last position can be missing: under "pad" the latest
                # frame is kept aside even when no window's grid lands on it.
                assert self._last is not None and q == self._position - 1
                idx, item = self._last
            else:
                idx, item = entry[0], entry[1]
            indices.append(int(idx))
            items.append(item)
        # Release this snippet's claim on its frames (each distinct position once).
        for q in set(positions):
            entry = self._buffer.get(q)
            if entry is not None:
                entry[2] -= 1
                if entry[2] == 0:
                    del self._buffer[q]
        self._emitted += 1
        return Snippet(frame_indices=tuple(indices), items=items)

    def finish(self) -> list[Snippet[T]]:
        """Snippets that only the end of the video completes; releases all frames.

        Raises:
            VideoTooShortError: no frames at all, or ``"drop"`` and not one full window.
        """
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        n = self._position
        out: list[Snippet[T]] = []
        try:
            if n == 0 or (self.tail == "drop" and self._emitted == 0):
                raise _too_short(n, self.clip_len, self.frame_interval, self.span, self.lookahead)
            # Under "pad" the first incomplete window is the one that reaches past the
            # end, unless a completed window already ended exactly on the last frame.
            if self.tail == "pad" and self._pending and self._last_end != n - 1:
                start = self._pending[0]
                positions = [min(start + j * self.frame_interval, n - 1)
                             for j in range(self.clip_len)]
                out.append(self._take(start, positions))
        finally:
            self._pending.clear()
            self._buffer.clear()
            self._last = None
        return out
