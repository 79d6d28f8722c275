"""The decode side of a local run, behind one interface: a :class:`Producer`.

:func:`vadfeat.engines.local.extract` picks a producer (decode threads,
:class:`vadfeat.engines.local.ThreadProducer`; decode worker processes,
:class:`vadfeat.engines.processes.ProcessProducer`) and runs the same model side
(:class:`~vadfeat.engines.consumer.Consumer`) on its events, with the same interrupt
handling.  A producer claims each video through the consumer (:meth:`Consumer.claim`,
a :class:`~vadfeat.engines.claiming.ClaimResult`) just before it decodes it and reports
a video it does not take with :func:`claim_or_report`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from vadfeat.engines.claiming import ClaimResult, Outcome
from vadfeat.engines.events import Event, VideoFailed, VideoPassed, put_unless_stopped

log = logging.getLogger(__name__)

#: ``claim(vid)``: claim video ``vid`` for this run (:meth:`Consumer.claim`).
Claim = Callable[[int], ClaimResult]
#: ``skip(vid)``: the snippets of ``vid`` saved by an interrupted run (decoded, not preprocessed).
Skip = Callable[[int], int]

# How long a stopping run waits for its producer's threads to finish their current frame.
JOIN_S = 30.0


class Producer(Protocol):
    """Decodes the run's videos and feeds their events into the run's event queue.

    Made with the run's event queue and stop event; then :meth:`start`; the model side
    reads events until it has seen ``exits`` :class:`~vadfeat.engines.events.WorkerExited`
    and no snippet waits; then :meth:`leftovers`.  :meth:`halt` (the run stops, or has
    ended) and :meth:`join` are called however the run ends.
    """

    #: The :class:`WorkerExited` events it sends in all (one per thread that feeds the queue).
    exits: int

    def on_snippet(self) -> None:
        """Called by the model side each time it takes a snippet (the producer's statistics)."""

    def start(self, claim: Claim, skip: Skip) -> None:
        """Start feeding events; each video is claimed with ``claim`` just before it is decoded."""

    def leftovers(self) -> tuple[list[int], str | None]:
        """After the last :class:`WorkerExited`: the videos never taken, and why (``None``: unknown)."""
        ...

    def halt(self) -> None:
        """Stop: no new video, no more events; workers end within a snippet."""

    def join(self) -> None:
        """Wait for the producer's threads and processes and free what it holds."""


def claim_or_report(claim: Claim, vid: int, source: Path | str, events: queue.Queue,
                    stop: threading.Event) -> ClaimResult | None:
    """Claim ``vid`` for a producer: the result when it is claimed or
    :attr:`Outcome.DEFERRED` (put it back after the others); ``None`` when it is not
    taken, once the event that says so is sent (:class:`VideoPassed`, or
    :class:`VideoFailed` for a refused video or a claim that raised: a full disk, an
    unwritable lock folder fails the video, never hangs the run)."""
    try:
        result = claim(vid)
    except Exception as exc:
        log.debug("cannot claim %s", source, exc_info=True)
        put_unless_stopped(events, VideoFailed(vid, f"cannot claim the video: {exc}"), stop)
        return None
    if result.outcome is None or result.outcome is Outcome.DEFERRED:
        return result
    event: Event
    if result.outcome is Outcome.REFUSED:
        event = VideoFailed(vid, result.reason)
    else:
        event = VideoPassed(vid, result.outcome.status, result.reason)  # type: ignore[arg-type]
    put_unless_stopped(events, event, stop)
    return None


def join_threads(threads: Sequence[threading.Thread]) -> None:
    """Wait (at most :data:`JOIN_S` in all) for ``threads``, which see the stop event within a
    snippet or a queue poll: a process that exits while one is inside FFmpeg or torch can
    abort ("terminate called without an active exception") instead of returning its exit
    code."""
    deadline = time.monotonic() + JOIN_S
    for t in threads:
        if t.is_alive() or t.ident is not None:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        log.warning("a decode thread did not stop within %.0f s", JOIN_S)


__all__ = ["JOIN_S", "Claim", "Producer", "Skip", "claim_or_report", "join_threads"]
