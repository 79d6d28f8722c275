"""What the decode side of a local run tells the model side: typed events through a bounded queue.

A producer (decode threads, :mod:`vadfeat.engines.local`; decode worker processes,
:mod:`vadfeat.engines.processes`) sends, per video, :class:`VideoStarted`, then
:class:`VideoSized` once the video is open, one :class:`SnippetReady` per snippet in
temporal order, then :class:`VideoDecoded` or :class:`VideoFailed`; a video it did not
take is one :class:`VideoFailed` or :class:`VideoPassed`.  Each of its threads sends a
final :class:`WorkerExited`, however it ends.  The model side
(:class:`~vadfeat.engines.consumer.Consumer`) takes them from an :class:`EventQueue`,
bounded by a count of events and by the bytes of the snippets waiting
(:class:`ByteBudget`); every put of a producer goes through :func:`put_unless_stopped`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch

# How often a producer waiting for room in the event queue checks the stop event.
PUT_POLL_S = 0.5


@dataclass(frozen=True)
class VideoStarted:
    """A producer claimed video ``vid`` and starts decoding it."""

    vid: int


@dataclass(frozen=True)
class VideoSized:
    """Video ``vid`` is open: it should make about ``snippets`` snippets (``None``: unknown)."""

    vid: int
    snippets: int | None


@dataclass(frozen=True)
class SnippetReady:
    """Snippet ``index`` of video ``vid``: source frames ``frames`` (first, last), and
    ``clip`` as :meth:`FeatureExtractor.snippet_stream` gives it (``None``: a snippet
    saved by an interrupted run, decoded only to reach the next ones)."""

    vid: int
    index: int
    frames: tuple[int, int]
    clip: torch.Tensor | None


@dataclass(frozen=True)
class VideoDecoded:
    """Video ``vid`` is decoded: ``snippets`` were sent; ``meta`` is the stream's metadata."""

    vid: int
    snippets: int
    meta: dict[str, Any]


@dataclass(frozen=True)
class VideoFailed:
    """Video ``vid`` failed in its producer (or could not be claimed): ``reason``."""

    vid: int
    reason: str


@dataclass(frozen=True)
class VideoPassed:
    """Video ``vid`` was not extracted by this run: held by another process
    (``elsewhere``), by a sibling of a ``devices=`` run (``sibling``), or done meanwhile
    (``skipped``)."""

    vid: int
    kind: Literal["elsewhere", "sibling", "skipped"]
    reason: str


@dataclass(frozen=True)
class WorkerExited:
    """A producer's thread ended (sent however it ends: the model side counts them)."""


Event = VideoStarted | VideoSized | SnippetReady | VideoDecoded | VideoFailed | VideoPassed | WorkerExited


class ByteBudget:
    """A bound in bytes on what producer threads hand to a consumer.

    :meth:`acquire` waits while the bytes held by earlier items plus ``nbytes``
    would exceed ``limit``; :meth:`release` gives bytes back and wakes waiters.
    An item larger than the whole budget passes once nothing else is held (else it
    could never pass), so the bound is ``limit`` or one item, whichever is larger.
    Waits take a timeout, so a producer can look at a stop event between them.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        self.limit = limit
        self.held = 0
        self._cond = threading.Condition()

    def acquire(self, nbytes: int, timeout: float | None = None) -> bool:
        """Take ``nbytes``; False if there was no room within ``timeout`` seconds."""
        with self._cond:
            fits = self._cond.wait_for(
                lambda: self.held == 0 or self.held + nbytes <= self.limit, timeout)
            if fits:
                self.held += nbytes
            return fits

    def release(self, nbytes: int) -> None:
        with self._cond:
            self.held -= nbytes
            self._cond.notify_all()


def snippet_bytes(event: Event) -> int:
    """The bytes of ``event``'s clip (0 for every other event)."""
    return event.clip.nbytes if isinstance(event, SnippetReady) and event.clip is not None else 0


class EventQueue(queue.Queue):
    """The engine's event queue bounded by a count of events and by the bytes of snippets.

    ``put`` of a snippet waits for room in both bounds (``queue.Full`` after
    ``timeout``, as a full :class:`queue.Queue` does); ``get`` of a snippet gives
    its bytes back.  Other events carry no frames and need only a free slot.
    """

    def __init__(self, maxsize: int, budget: ByteBudget) -> None:
        super().__init__(maxsize)
        self.budget = budget

    def put(self, item: Event, block: bool = True, timeout: float | None = None) -> None:
        nbytes = snippet_bytes(item)
        if not nbytes:
            super().put(item, block, timeout)
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.budget.acquire(nbytes, timeout if block else 0):
            raise queue.Full
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            super().put(item, block, remaining)
        except queue.Full:
            self.budget.release(nbytes)
            raise

    def get(self, block: bool = True, timeout: float | None = None) -> Event:
        item = super().get(block, timeout)
        self.budget.release(snippet_bytes(item))
        return item


def put_unless_stopped(events: queue.Queue, event: Event, stop: threading.Event) -> bool:
    """Put ``event``, waiting for room in slices so that ``stop`` ends the wait.

    Every put of a producer goes through here: a plain blocking ``put`` on a
    full queue that nobody reads any more would keep the thread (and the run's
    shutdown, which waits for it) from ending.

    Returns False when the run was stopped (the event may or may not be queued:
    nobody reads the queue any more).
    """
    while not stop.is_set():
        try:
            events.put(event, timeout=PUT_POLL_S)
            break
        except queue.Full:
            continue
    return not stop.is_set()


__all__ = ["ByteBudget", "Event", "EventQueue", "SnippetReady", "VideoDecoded", "VideoFailed",
           "VideoPassed", "VideoSized", "VideoStarted", "WorkerExited", "put_unless_stopped",
           "snippet_bytes"]
