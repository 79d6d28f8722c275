"""Claiming one video for extraction, the same way in every engine (threads, processes, Ray).

:func:`claim_video` takes the video's claim (:class:`~vadfeat.store.claims.Claims`, the
per-video ``flock`` that keeps two processes off one video), then, under it, looks at
the video's outputs again (:func:`~vadfeat.engines.context.recheck`: another process may
have written them meanwhile).  What it found is a typed :class:`ClaimResult`: claimed
(``outcome`` None, the claim is held), or an :class:`Outcome` with its reason (the
claim is not held).  Each engine maps the outcome to what it reports: an event of the
local producers (:func:`vadfeat.engines.producer.claim_or_report`), a manifest entry of a
Ray actor.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from vadfeat.engines.context import recheck
from vadfeat.store.claims import HELD, Claims
from vadfeat.store.sinks.base import OutputState, Sink


class Outcome(enum.Enum):
    """Why a video was not claimed; ``status`` is how it is reported (manifest status, or
    the kind of :class:`~vadfeat.engines.events.VideoPassed`)."""

    #: Another live process holds the claim (owner in the reason): settled at the run's end.
    HELD_ELSEWHERE = "elsewhere"
    #: A sibling process of this ``devices=`` run holds it: that sibling reports it.
    HELD_BY_SIBLING = "sibling"
    #: Held elsewhere and the run may wait (``wait=True``): try again after the other videos.
    DEFERRED = "defer"
    #: A sibling process of this run failed it already: not retried here.
    FAILED_BY_SIBLING = "failed by sibling"
    #: Another process wrote it with these settings during this run.
    DONE_MEANWHILE = "done meanwhile"
    #: A file vadfeat did not write is at its output path, or another run wrote it meanwhile
    #: with other settings: the video fails.
    REFUSED = "refused"

    @property
    def status(self) -> str:
        """``elsewhere``, ``sibling``, ``defer``, ``skipped`` or ``failed``."""
        return _STATUS[self]


_STATUS = {Outcome.HELD_ELSEWHERE: "elsewhere", Outcome.HELD_BY_SIBLING: "sibling",
           Outcome.DEFERRED: "defer", Outcome.FAILED_BY_SIBLING: "skipped",
           Outcome.DONE_MEANWHILE: "skipped", Outcome.REFUSED: "failed"}


class ClaimResult(NamedTuple):
    """What claiming a video found: ``outcome`` None when this process now holds the claim
    and extracts the video; else why not, and ``reason`` says it in words (the holder,
    the sibling's failure, the changed settings ...)."""

    outcome: Outcome | None
    reason: str = ""

    @property
    def claimed(self) -> bool:
        return self.outcome is None


CLAIMED = ClaimResult(None, "")


def held_result(reason: str, *, may_defer: bool) -> ClaimResult:
    """Classify why :meth:`Claims.acquire` refused a claim (its ``reason``)."""
    if reason.startswith(HELD + " sibling"):
        return ClaimResult(Outcome.HELD_BY_SIBLING, reason)
    if reason.startswith(HELD):
        return ClaimResult(Outcome.DEFERRED if may_defer else Outcome.HELD_ELSEWHERE, reason)
    return ClaimResult(Outcome.FAILED_BY_SIBLING, reason)


def claim_video(claims: Claims | None, key: str, target: Any, fingerprint: dict[str, Any], *,
                sink: Sink[Any], source: Path | str, overwrite: bool, planned: OutputState,
                wait: threading.Event | None = None, may_defer: bool = False,
                lock_error: Callable[[OSError], None] | None = None,
                ) -> tuple[ClaimResult, tuple[Path, ...]]:
    """Claim the video whose claim key is ``key`` (:meth:`Sink.key` of its ``target``), then
    look at its ``target`` in ``sink`` again under the claim.

    Returns ``(result, stale)``: when ``result.claimed`` the claim is held (release it with
    ``claims.release(key)`` when the video is finished) and ``stale`` are the files to delete
    as its outputs are written; otherwise nothing is held and ``stale`` is empty.
    ``claims`` None: no claim is taken (only the outputs are looked at).  ``wait``: block
    while another process holds the claim, until this event is set
    (:meth:`Claims.acquire`).  ``may_defer``: a claim held by another process (not a
    sibling) is :attr:`Outcome.DEFERRED` rather than :attr:`Outcome.HELD_ELSEWHERE`.
    ``lock_error``: called with an :class:`OSError` of the lock itself (a file system
    without ``flock``), after which the video is looked at unclaimed; without it the error
    is raised.  Errors while looking at the outputs are raised, with the claim released.
    """
    if claims is not None:
        try:
            reason = claims.acquire(key, wait=wait)
        except OSError as exc:
            if lock_error is None:
                raise
            lock_error(exc)
            reason = None
        if reason is not None:
            return held_result(reason, may_defer=may_defer), ()
    try:
        kind, why, stale = recheck(sink, target, fingerprint, source=source, overwrite=overwrite,
                                   planned=planned)
    except BaseException:
        if claims is not None:
            claims.release(key)
        raise
    if kind is not None:
        if claims is not None:
            claims.release(key)
        return ClaimResult(Outcome.DONE_MEANWHILE if kind == "skipped" else Outcome.REFUSED, why), ()
    return CLAIMED, stale


__all__ = ["CLAIMED", "ClaimResult", "Outcome", "claim_video", "held_result"]
