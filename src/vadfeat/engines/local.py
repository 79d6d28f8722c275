"""The local engine: many videos through one model, decode threads running ahead of it.

:func:`extract` plans the run (:class:`~vadfeat.engines.context.RunContext`, before any
model exists), loads one :class:`~vadfeat.FeatureExtractor` and runs the per-video
snippet stream (:func:`vadfeat.pipeline.stream.snippet_stream`) for many videos in
background worker threads that decode and preprocess ahead of the model through a
bounded queue (memory stays bounded, the model is not idle).  The threads talk to
the model side in typed events (:class:`VideoStarted`, :class:`SnippetReady`,
:class:`VideoDecoded`, :class:`VideoFailed`, :class:`VideoPassed`,
:class:`WorkerExited`); the model side (:class:`_Collector`) batches snippets across
videos (:class:`~vadfeat.pipeline.stream.SnippetBatcher`), writes each video's outputs
atomically when its last snippet is done, and records every video in
``OUT/manifest.jsonl``.  ``devices=`` runs one such process per device.

Where frames are preprocessed is a setting (``preprocess``): ``"worker"`` runs the
per-frame transform in the decode threads on the CPU; ``"device"`` hands each
snippet's raw uint8 frames to the model side, which uploads them and resizes,
crops and normalises the whole snippet on the model's device
(:meth:`FeatureExtractor.prepare`).

Per-video failures (unreadable, corrupt, too short) are caught only here, named
with their reason, and never leave a file behind; configuration errors are raised
before any work starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from vadfeat._malloc import tune_malloc
from vadfeat._types import Pipeline
from vadfeat.engines._signals import handle_stop_signals, signum_of
from vadfeat.engines.context import (
    EXIT_ELSEWHERE,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    RunContext,
    RunSummary,
    local_checkpoint,
    planned_fingerprint,
    progress,
    rate,
    recheck,
)
from vadfeat.engines.partial import Partial, Resumed, stop_hook
from vadfeat.errors import ConfigError, VideoError
from vadfeat.io.inputs import VideoItem
from vadfeat.pipeline.config import CONTENT_SETTINGS, RUN_SETTINGS, ExtractConfig, resolve_device
from vadfeat.pipeline.extractor import FeatureExtractor, VideoFeatures
from vadfeat.store.claims import HELD
from vadfeat.store.fingerprint import fingerprint_changes
from vadfeat.store.identity import source_identity
from vadfeat.store.ownership import refuse_overlap
from vadfeat.store.sinks import make_sink
from vadfeat.store.sinks.npy import OutputPaths, check_layout

log = logging.getLogger(__name__)

# Device preprocessing: most bytes of raw frames that may wait for the model in the
# engine's event queue, over all decode threads (a 1080p 16-frame snippet is ~100 MB).
RAW_QUEUE_BYTES = 512 * 2**20
# Worker preprocessing: most bytes of model-input snippets waiting in the event queue
# (a 10-crop 16-frame 224 px snippet is 96 MiB as float32): a large batch_size, whose
# queue depth is two batches, does not park gigabytes of snippets there.
QUEUE_BYTES = 512 * 2**20
# How often a decode thread waiting for room in the event queue checks the stop event.
_PUT_POLL_S = 0.5
# How long the model side waits for another snippet before it runs a part batch.
IDLE_FLUSH_S = 0.02
# How long a stopping run waits for its decode threads to finish their current frame.
_JOIN_S = 30.0


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class VideoStarted:
    """A decode thread claimed video ``vid`` and starts decoding it."""

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
    """Video ``vid`` failed in its decode thread (or could not be claimed): ``reason``."""

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
    """A decode thread ended (sent however it ends: the model side counts them)."""


Event = VideoStarted | VideoSized | SnippetReady | VideoDecoded | VideoFailed | VideoPassed | WorkerExited


# --------------------------------------------------------------------------- the bounded queue


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


def _snippet_bytes(event: Event) -> int:
    return event.clip.nbytes if isinstance(event, SnippetReady) and event.clip is not None else 0


class _EventQueue(queue.Queue):
    """The engine's event queue bounded by a count of events and by the bytes of snippets.

    ``put`` of a snippet waits for room in both bounds (``queue.Full`` after
    ``timeout``, as a full :class:`queue.Queue` does); ``get`` of a snippet gives
    its bytes back.  Other events carry no frames and need only a free slot.
    """

    def __init__(self, maxsize: int, budget: ByteBudget) -> None:
        super().__init__(maxsize)
        self.budget = budget

    def put(self, item: Event, block: bool = True, timeout: float | None = None) -> None:
        nbytes = _snippet_bytes(item)
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
        self.budget.release(_snippet_bytes(item))
        return item


def event_queue(ext: FeatureExtractor) -> _EventQueue:
    """The bounded queue between decode and model: at most ``max(2, 2 * clips_per_batch)``
    snippets, and at most :data:`QUEUE_BYTES` of them (:data:`RAW_QUEUE_BYTES` of raw
    frames with ``preprocess="device"``), or one snippet when it is larger."""
    limit = RAW_QUEUE_BYTES if ext.preprocess == "device" else QUEUE_BYTES
    return _EventQueue(max(2, 2 * ext.clips_per_batch), ByteBudget(limit))


# --------------------------------------------------------------------------- decode threads

Claim = Callable[[int], tuple[str | None, str]]


def _no_skip(vid: int) -> int:
    return 0


def _produce(extractor: FeatureExtractor, work: queue.Queue, events: queue.Queue,
             stop: threading.Event, claim: Claim, skip: Callable[[int], int] = _no_skip) -> None:
    """Worker thread: claim, decode and preprocess whole videos; emit their events.

    ``claim(vid)`` returns ``(None, "")`` when this process may work on the video, else
    ``(kind, reason)``: a :class:`VideoPassed` kind (``elsewhere``, ``skipped``,
    ``sibling``), ``failed``, or ``defer`` to put it back at the end of the work.  The
    final :class:`WorkerExited` is sent however the thread ends: the consumer counts them.
    ``skip(vid)``: the snippets of ``vid`` saved by an interrupted run (not preprocessed).
    """
    try:
        _produce_videos(extractor, work, events, stop, claim, skip)
    except Exception:  # a bug in vadfeat, not a bad video: say so loudly, then exit
        log.exception("a decode worker crashed")
    finally:
        if not stop.is_set():  # once stopped, nobody reads the queue: a put could block
            events.put(WorkerExited())


def _produce_videos(extractor: FeatureExtractor, work: queue.Queue, events: queue.Queue,
                    stop: threading.Event, claim: Claim, skip: Callable[[int], int]) -> None:
    while not stop.is_set():
        try:
            vid, item = work.get_nowait()
        except queue.Empty:
            break
        try:
            kind, reason = claim(vid)
        except Exception as exc:  # disk full, unwritable lock folder: fail it, never hang
            log.debug("cannot claim %s", item.source, exc_info=True)
            _put_unless_stopped(events, VideoFailed(vid, f"cannot claim the video: {exc}"), stop)
            continue
        if kind == "defer":  # held elsewhere and we may wait: first do the others
            work.put((vid, item))
            continue
        if kind == "failed":
            _put_unless_stopped(events, VideoFailed(vid, reason), stop)
            continue
        if kind is not None:
            _put_unless_stopped(events, VideoPassed(vid, kind, reason), stop)  # type: ignore[arg-type]
            continue
        if not _put_unless_stopped(events, VideoStarted(vid), stop):
            return
        if not _decode(extractor, vid, item, events, stop, skip=skip(vid)):
            return


def _decode(extractor: FeatureExtractor, vid: int, item: VideoItem, events: queue.Queue,
            stop: threading.Event, *, skip: int = 0) -> bool:
    """Send one video's snippets, then :class:`VideoDecoded` or :class:`VideoFailed`;
    False when the run was stopped meanwhile.  The first ``skip`` are sent without a clip."""
    count = 0
    try:
        stream = extractor.snippet_stream(
            item.source, skip=skip,
            on_open=lambda n: _put_unless_stopped(events, VideoSized(vid, n), stop))
        while True:
            try:
                rng, clip = next(stream)
            except StopIteration as done:
                return _put_unless_stopped(events, VideoDecoded(vid, count, done.value), stop)
            if not _put_unless_stopped(events, SnippetReady(vid, count, rng, clip), stop):
                stream.close()
                return False
            count += 1
    except VideoError as exc:
        return _put_unless_stopped(events, VideoFailed(vid, str(exc)), stop)
    except Exception as exc:  # one video's bug must not end a day-long run
        log.debug("unexpected error on %s", item.source, exc_info=True)
        return _put_unless_stopped(events, VideoFailed(vid, f"unexpected {type(exc).__name__}: {exc}"),
                                   stop)


def _put_unless_stopped(events: queue.Queue, event: Event, stop: threading.Event) -> bool:
    """Put ``event``, waiting for room in slices so that ``stop`` ends the wait.

    Every put of a decode thread goes through here: a plain blocking ``put`` on a
    full queue that nobody reads any more would keep the thread (and the run's
    shutdown, which waits for it) from ending.

    Returns False when the run was stopped (the event may or may not be queued:
    nobody reads the queue any more).
    """
    while not stop.is_set():
        try:
            events.put(event, timeout=_PUT_POLL_S)
            break
        except queue.Full:
            continue
    return not stop.is_set()


# --------------------------------------------------------------------------- the model side


@dataclass
class _Pending:
    item: VideoItem
    paths: OutputPaths
    started: float
    rows: dict[int, np.ndarray] = field(default_factory=dict)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    expected: int | None = None
    meta: dict[str, Any] | None = None


class _Collector:
    """The model side of a local run: takes the decode threads' events, batches snippets
    across videos, runs the model, writes each finished video and records it.

    :meth:`claim` is called by the decode threads (the run's per-video claims,
    :class:`~vadfeat.store.claims.Claims`); everything else runs in the model's thread.
    """

    def __init__(self, ext: FeatureExtractor, ctx: RunContext, fingerprint: dict[str, Any], *,
                 layout: str, wait: bool, stop: threading.Event, bar: Any) -> None:
        self.ext = ext
        self.ctx = ctx
        self.fingerprint = fingerprint
        self.layout = layout
        self.wait = wait
        self.stop = stop
        self.bar = bar
        self.batcher = ext.batcher()
        self.pending: dict[int, _Pending] = {}
        self.failed: set[int] = set()
        self.closed: set[int] = set()
        self.elsewhere: dict[int, str] = {}
        self.stale_of: dict[int, tuple[Path, ...]] = {}
        self.started: dict[int, float] = {}  # claimed by this run (finished ones are in `closed`)
        self.deferred: set[int] = set()
        self.t_start = time.perf_counter()
        self.partials: dict[int, Partial] = {}  # checkpoints of the videos claimed (engines.partial)
        self.resumed: dict[int, Resumed] = {}  # what they held when claimed
        self.sizes: dict[int, int] = {}  # snippets per started video: estimated, then counted
        self.computed = 0  # snippets through the model in this run
        self.hook = stop_hook()

    # ------------------------------------------------------------------ decode threads' side

    def claim(self, vid: int) -> tuple[str | None, str]:
        """``(None, "")``: this run works on ``vid`` now; else ``(kind, reason)`` (see :func:`_produce`)."""
        ctx = self.ctx
        assert ctx.claims is not None
        key = ctx.keys[vid]
        final = vid in self.deferred
        reason = ctx.claims.acquire(key, wait=self.stop if (self.wait and final) else None)
        if reason is not None:
            if reason.startswith(HELD + " sibling"):
                return "sibling", reason  # the sibling of this run reports it
            if reason.startswith(HELD) and self.wait and not final:
                self.deferred.add(vid)
                return "defer", reason
            return ("elsewhere" if reason.startswith(HELD) else "skipped"), reason
        try:
            kind, why, stale = recheck(ctx.plan[vid], self.fingerprint, out=ctx.out,
                                       source=ctx.items[vid].source, overwrite=ctx.overwrite,
                                       planned=ctx.states[vid])
        except BaseException:
            ctx.claims.release(key)
            raise
        if kind is not None:
            ctx.claims.release(key)
            return kind, why
        self.stale_of[vid] = stale
        self._open_partial(vid)
        self.started[vid] = time.perf_counter()
        return None, ""

    def _open_partial(self, vid: int) -> None:
        """Under ``vid``'s claim: its checkpoint, loaded when it matches (else removed)."""
        ctx = self.ctx
        try:
            identity: dict[str, Any] | None = source_identity(ctx.items[vid].source)
        except OSError:
            identity = None  # the decode side says why the source cannot be read
        part = Partial(ctx.out, ctx.keys[vid], video=str(ctx.items[vid].name),
                       fingerprint=self.fingerprint, identity=identity)
        try:
            if ctx.overwrite:  # asked to redo the video: nothing of an earlier run is kept
                part.remove()
            elif (found := part.load()) is not None:
                self.resumed[vid] = found
        except OSError as exc:
            log.warning("%s: cannot read or remove its saved partial extraction: %s",
                        ctx.items[vid].name, exc)
            part.enabled = False
        self.partials[vid] = part

    def skip_of(self, vid: int) -> int:
        """Snippets of ``vid`` saved by an interrupted run: decoded, not preprocessed."""
        found = self.resumed.get(vid)
        return found.count if found is not None else 0

    # ------------------------------------------------------------------ events

    def handle(self, event: Event) -> None:
        """One event of a decode thread (not :class:`WorkerExited`: :func:`_drain` counts those)."""
        if event.vid in self.failed:  # type: ignore[union-attr]
            return  # its model input failed: the rest of the video is dropped
        if isinstance(event, SnippetReady):
            self._snippet(event)
        elif isinstance(event, VideoStarted):
            self._state(event.vid)
        elif isinstance(event, VideoSized):
            if event.snippets is not None:
                self.sizes[event.vid] = event.snippets
                self._show()
        elif isinstance(event, VideoDecoded):
            st = self._state(event.vid)
            st.expected, st.meta = event.snippets, event.meta
            if event.snippets == 0:
                self._finish_failed(event.vid, "no snippets")
            else:
                self._maybe_finish(event.vid)
        elif isinstance(event, VideoFailed):
            self._finish_failed(event.vid, event.reason)
        elif isinstance(event, VideoPassed):
            self._passed(event)

    def _snippet(self, event: SnippetReady) -> None:
        if event.clip is None:  # saved by an interrupted run: its row, without the model
            self._saved_snippet(event)
            return
        try:
            clip = self.ext.prepare(event.clip)
        except Exception as exc:  # as a transform error in a decode worker is
            log.debug("cannot prepare a snippet of %s", self.ctx.items[event.vid].source, exc_info=True)
            self._finish_failed(event.vid, f"unexpected {type(exc).__name__}: {exc}")
            return
        self._state(event.vid).ranges.append(event.frames)
        self._take(self.batcher.add((event.vid, event.index), clip))

    def _saved_snippet(self, event: SnippetReady) -> None:
        found = self.resumed.get(event.vid)
        if found is None or event.index >= found.count or found.ranges[event.index] != event.frames:
            part = self.partials.get(event.vid)
            if part is not None:
                with contextlib.suppress(OSError):
                    part.remove()
            self._finish_failed(event.vid, "internal error: the snippets saved by an interrupted "
                                "run do not match the video's; they were removed, run again")
            return
        st = self._state(event.vid)
        st.ranges.append(event.frames)
        st.rows[event.index] = found.rows[event.index]

    def _passed(self, event: VideoPassed) -> None:
        if event.kind == "elsewhere":  # settled (and recorded) at the end of the run
            self.elsewhere[event.vid] = event.reason
        else:
            self.ctx.record_skipped(event.vid, event.reason)
        self.bar.update(1)

    def waiting(self) -> bool:
        """Snippets wait for the model."""
        return len(self.batcher) > 0

    def flush(self) -> None:
        """Nothing came for a while: submit the snippets that wait, even if fewer than a
        batch (leaving the batcher's batches in flight, as a full batch does); with none
        waiting to be submitted, fetch the batches in flight."""
        if self.batcher.pending():
            self._take(self.batcher.flush(keep=self.batcher.depth))
        elif self.waiting():
            self._take(self.batcher.flush())

    def _take(self, rows: list[tuple[tuple[int, int], np.ndarray]]) -> None:
        if not rows:
            return
        touched: set[int] = set()
        for (vid, idx), row in rows:
            if vid in self.failed:
                continue
            self._state(vid).rows[idx] = row
            touched.add(vid)
            self.computed += 1
        for vid in touched:
            self._maybe_finish(vid)
            if vid in self.pending:
                self._checkpoint(vid)
        self._show()

    def _show(self) -> None:
        """Snippets done (finished videos' and those of videos still open, else one long
        video would show 0 until its end) against the estimate for the videos started."""
        through = self.ctx.summary.snippets + sum(len(st.rows) for st in self.pending.values())
        text = f"{through}/~{sum(self.sizes.values())} snippets" if self.sizes else f"{through} snippets"
        speed = rate(self.computed, self.t_start)
        self.bar.set_postfix_str(f"{text}, {speed}" if speed else text, refresh=False)
        self.bar.update(0)  # redraws, throttled by the bar's own minimum interval

    def _saved_prefix(self, vid: int) -> int:
        """How many of ``vid``'s first snippets have their rows (the part a checkpoint can hold)."""
        st, part = self.pending[vid], self.partials.get(vid)
        n = part.count if part is not None else 0
        while n in st.rows:
            n += 1
        return n

    def _checkpoint(self, vid: int, *, force: bool = False) -> None:
        """Save ``vid``'s finished snippets when due (every so many snippets or seconds)."""
        part = self.partials.get(vid)
        if part is None or not part.enabled:
            return
        st = self.pending[vid]
        n = self._saved_prefix(vid)
        hook = self.hook
        fire = (hook is not None and hook[0] == str(st.item.name) and n >= hook[1])
        if n > part.count and (force or fire or part.due(n - part.count)):
            try:
                part.append([st.rows[i] for i in range(part.count, n)], st.ranges[part.count:n])
            except (OSError, ValueError) as exc:  # a full disk: the video goes on, unsaved
                log.warning("%s: cannot save its finished snippets (%s); an interruption would "
                            "lose them", st.item.name, exc)
                part.enabled = False
        if fire and hook is not None:
            self.hook = None
            log.debug("test hook: stopping with %s after %d snippets of %s", hook[2].name, n, hook[0])
            os.kill(os.getpid(), hook[2])

    # ------------------------------------------------------------------ finishing videos

    def _state(self, vid: int) -> _Pending:
        if vid not in self.pending:
            self.pending[vid] = _Pending(self.ctx.items[vid], self.ctx.plan[vid], time.perf_counter())
        return self.pending[vid]

    def _maybe_finish(self, vid: int) -> None:
        st = self.pending.get(vid)
        if st is not None and st.expected is not None and len(st.rows) == st.expected:
            try:
                self._finish_ok(vid)
            except OSError as exc:  # disk full, read-only output: this video is not written
                self.pending[vid] = st
                self._finish_failed(vid, f"cannot write output: {exc}")

    def _finish_ok(self, vid: int) -> None:
        ctx, ext = self.ctx, self.ext
        st = self.pending.pop(vid)
        self.closed.add(vid)
        assert st.meta is not None and ctx.claims is not None
        feats = np.stack([st.rows[i] for i in range(len(st.rows))]).astype(np.float32, copy=False)
        md = ext.sidecar(video=str(st.item.name), source=st.item.source, meta=st.meta,
                         ranges=st.ranges, shape=feats.shape, layout=self.layout)
        make_sink(ctx.out, layout=self.layout, crops=ext.crops).write(
            st.paths, VideoFeatures(feats, md), stale=self.stale_of.get(vid, ()))
        part = self.partials.pop(vid, None)
        self.resumed.pop(vid, None)
        self.sizes[vid] = int(feats.shape[0])
        if part is not None:
            try:
                part.remove()
            except OSError as exc:  # a later run finds the output done and never reads it
                log.warning("%s: cannot remove its partial extraction: %s", st.item.name, exc)
        ctx.claims.release(ctx.keys[vid])
        ctx.record_ok(vid, num_frames=st.meta["num_frames"], num_snippets=int(feats.shape[0]),
                      seconds=time.perf_counter() - st.started, warnings=st.meta["warnings"])
        self.bar.update(1)

    def _finish_failed(self, vid: int, reason: str) -> None:
        ctx = self.ctx
        assert ctx.claims is not None
        st = self.pending.pop(vid, None)
        self.failed.add(vid)
        self.closed.add(vid)
        self.sizes.pop(vid, None)
        self.resumed.pop(vid, None)
        self.partials.pop(vid, None)  # kept on disk: a rerun with the same source resumes it
        ctx.claims.mark_failed(ctx.keys[vid], reason)
        ctx.claims.release(ctx.keys[vid])
        ctx.record_failed(vid, reason, seconds=time.perf_counter() - st.started if st else 0.0)
        self.bar.update(1)

    def workers_gone(self, work: queue.Queue, reason: str | None = None) -> None:
        """Every worker has exited: anything still open was lost by a worker that died
        (``reason``: why, when known)."""
        for vid in [v for v in self.pending if v not in self.failed]:
            self._finish_failed(vid, reason or "internal error: the decode worker stopped before "
                                               "this video was finished")
        while not work.empty():
            self._finish_failed(work.get_nowait()[0], reason or "internal error: no decode worker "
                                                                "was left")

    def interrupted(self, signum: int) -> None:
        """The run was stopped: save the finished snippets of the videos in progress, record
        those videos (``interrupted``, with their saved snippets) and what was left."""
        summary = self.ctx.summary
        self.hook = None  # a test hook must not stop the stopping
        for vid, t0 in sorted(self.started.items()):
            if vid in self.closed:
                continue
            saved = 0
            if vid in self.pending:
                with contextlib.suppress(OSError):
                    self._checkpoint(vid, force=True)
                part = self.partials.get(vid)
                saved = part.count if part is not None and part.enabled else 0
                resumed = self.skip_of(vid)
                summary.snippets += max(0, len(self.pending[vid].rows) - resumed)
            summary.in_progress.append((str(self.ctx.items[vid].name), saved, self.sizes.get(vid)))
            with contextlib.suppress(OSError):
                self.ctx.record_interrupted(vid, signum, seconds=time.perf_counter() - t0,
                                            saved=saved)
        summary.not_started = max(0, summary.total - summary.ok - summary.skipped - len(summary.failed)
                                  - len(self.elsewhere) - len(summary.in_progress))


def _drain(events: queue.Queue, collector: _Collector, n_threads: int) -> None:
    """The event loop: until every decode thread has exited and no snippet waits.

    While snippets wait for the model, an event is awaited for at most
    :data:`IDLE_FLUSH_S` before they run as a part batch: decode threads that are a
    little behind fill the batch instead of the model running one snippet at a time."""
    alive = n_threads
    while alive or collector.waiting():
        try:
            waiting = collector.waiting()
            event = events.get(block=True, timeout=IDLE_FLUSH_S if waiting else None)
        except queue.Empty:
            collector.flush()
            continue
        if isinstance(event, WorkerExited):
            alive -= 1
        else:
            collector.handle(event)
        if not alive:
            collector.flush()


def _join(threads: Sequence[threading.Thread]) -> None:
    # Wait for the decode threads (they see ``stop`` within a snippet or a 0.5 s
    # queue poll): a process that exits while one is inside FFmpeg or torch can
    # abort ("terminate called without an active exception") instead of
    # returning its exit code.
    deadline = time.monotonic() + _JOIN_S
    for t in threads:
        if t.is_alive() or t.ident is not None:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        log.warning("a decode thread did not stop within %.0f s", _JOIN_S)


def _run_pipeline(ext: FeatureExtractor, ctx: RunContext, todo: list[int], fingerprint: dict[str, Any],
                  *, layout: str, workers: int, wait: bool, progress_on: bool,
                  pipeline: str = "threads") -> None:
    """Decode threads -> bounded event queue -> :class:`_Collector`, for the videos ``todo``
    (``pipeline="processes"``: :func:`vadfeat.engines.processes.run_pipeline`)."""
    if pipeline == "processes":
        from vadfeat.engines.processes import run_pipeline

        return run_pipeline(ext, ctx, todo, fingerprint, layout=layout, workers=workers, wait=wait,
                            progress_on=progress_on)
    work: queue.Queue = queue.Queue()
    for vid in todo:
        work.put((vid, ctx.items[vid]))
    events = event_queue(ext)
    stop = threading.Event()
    bar = progress(len(todo), enabled=progress_on)
    collector = _Collector(ext, ctx, fingerprint, layout=layout, wait=wait, stop=stop, bar=bar)
    threads = [threading.Thread(target=_produce,
                                args=(ext, work, events, stop, collector.claim, collector.skip_of),
                                daemon=True, name=f"vadfeat-decode-{k}")
               for k in range(min(workers, max(1, len(todo))))]
    summary = ctx.summary
    try:
        for t in threads:
            t.start()
        _drain(events, collector, len(threads))
        collector.workers_gone(work)
        ctx.settle_elsewhere(collector.elsewhere, fingerprint)
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM/SIGHUP under handle_stop_signals
        summary.interrupted = True
        summary.signal = signum_of(exc)
        stop.set()
        log.error("stopped by %s: finished videos are kept; run again to resume",
                  signal.Signals(summary.signal).name)
        collector.interrupted(summary.signal)
    finally:
        stop.set()
        _join(threads)
        bar.close()
        ctx.close()


# --------------------------------------------------------------------------- extract()


def extract(
    inputs: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    layout: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    root: str | Path | None = None,
    extractor: FeatureExtractor | None = None,
    config: ExtractConfig | None = None,
    devices: Sequence[str] | None = None,
    run_token: str | None = None,
    wait: bool = False,
    pipeline: str = "threads",
    **settings: Any,
) -> RunSummary:
    """Extract features for every video in ``inputs`` into ``out``.

    ``settings`` are :class:`FeatureExtractor`'s arguments (``checkpoint``,
    ``model``, ``preset``, ``random_weights``, ``device``, ``dtype``,
    ``batch_size``, preset overrides ...); or pass a ready ``config``
    (:class:`~vadfeat.pipeline.config.ExtractConfig`) or a ready ``extractor``.
    ``layout`` (default ``flat``, or the config's) names where outputs go.

    Before any work (and before the model is loaded) inputs are discovered and
    every video's outputs inspected (:func:`~vadfeat.engines.context.plan_run`): a
    video whose outputs exist with a sidecar matching the current settings, verified
    files (sha256) and an unchanged source is skipped unless ``overwrite``; outputs
    vadfeat made with other settings stop the run with :class:`ConfigError` naming
    the changes, unless ``overwrite``; a file vadfeat did not write at a video's
    output path fails that video (``overwrite`` never replaces it); damaged outputs
    of vadfeat's are redone with a warning.  ``devices`` (e.g. ``["cuda:0",
    "cuda:1"]``) runs one process with its own model per device over the same work
    list and output folder; per-video claims make each video done exactly once
    (``run_token`` ties those processes together, so a video one of them failed is
    not retried by another).  A video another live process is extracting is
    reported as in progress elsewhere (:attr:`RunSummary.elsewhere`, exit code 3)
    unless ``wait``, which waits for that process to let go of it.  ``pipeline``:
    ``"threads"`` (default) decodes and transforms in ``workers`` threads of this
    process; ``"processes"`` in ``workers`` worker processes that hand snippets over
    through shared memory (:mod:`vadfeat.engines.processes`; the same outputs, byte for
    byte).  Returns a :class:`RunSummary`.

    Memory: decode threads run at most ``2 * clips_per_batch`` snippets ahead of
    the model (worker processes ``2 * workers`` more, see
    :func:`vadfeat.engines.processes.in_flight_bound`), and the snippets waiting in the
    queue are also bounded by their bytes: :data:`QUEUE_BYTES` (512 MiB) of model
    input, or with ``preprocess="device"`` :data:`RAW_QUEUE_BYTES` (512 MiB) of raw
    frames (a 1080p 16-frame snippet is ~100 MB); a single snippet larger than that
    still passes when nothing else waits.  ``batch_size`` counts clips for clip
    backbones and images for frame backbones (CLIP), whose model runs at most that
    many images per pass (README.md, "Memory").
    This function leaves the process's allocator alone; ``vadfeat extract`` tunes its own
    (:func:`vadfeat._malloc.tune_malloc`: one glibc arena keeps peak memory flat over
    long videos, and big blocks kept on the heap spare a page fault per 4 KiB of every
    snippet; set ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=1073741824
    MALLOC_TRIM_THRESHOLD_=1073741824`` for the same effect).
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    cfg = _config_of(extractor, config, settings, layout)  # every setting refused before any work
    refuse_overlap(out, [*inputs, local_checkpoint(cfg)], command="extract")
    if pipeline not in get_args(Pipeline):
        raise ConfigError(f"pipeline must be one of {', '.join(get_args(Pipeline))}, got {pipeline!r}")
    if pipeline == "processes" and isinstance(workers, int) and workers >= 1:
        from vadfeat.engines.processes import check_pipeline

        check_pipeline(cfg, workers, devices or ())
    if devices and extractor is not None:
        raise ConfigError("devices= builds one extractor per device; pass settings, not one")
    if devices is not None and len(devices) > 1:
        return _extract_on_devices(list(devices), list(inputs), out, cfg, workers=workers,
                                   overwrite=overwrite, root=root, wait=wait, pipeline=pipeline)
    if devices:
        cfg = cfg.replace(device=devices[0])
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    layout = cfg.layout
    planned = _plan(cfg, extractor, inputs, out, root=root, overwrite=overwrite)
    if isinstance(planned, RunSummary):
        return planned
    ctx, ext, fp = planned
    if layout == "per-crop" and ext.crops == 1:
        log.info("layout per-crop with one crop writes <stem>__0.npy files")
    t_start = time.perf_counter()
    ctx.open(claims=True, run_token=run_token)
    try:
        todo = ctx.triage()
    except BaseException:
        ctx.close()
        raise
    _run_pipeline(ext, ctx, todo, fp, layout=layout, workers=workers, wait=wait, progress_on=progress,
                  pipeline=pipeline)
    ctx.summary.seconds = time.perf_counter() - t_start
    return ctx.summary


def _plan(cfg: ExtractConfig, extractor: FeatureExtractor | None, inputs: Sequence[str | Path],
          out: str | Path, *, root: str | Path | None,
          overwrite: bool) -> RunSummary | tuple[RunContext, FeatureExtractor, dict[str, Any]]:
    """Plan before the model exists (changed settings stop the run here, in seconds), then
    load it: ``(context, extractor, fingerprint)``, or the summary of a run with nothing to do."""
    layout = cfg.layout
    if extractor is not None:
        ext = extractor
        ctx = RunContext.from_inputs(inputs, out, layout=layout, crops=ext.crops,  # type: ignore[arg-type]
                              fingerprint=lambda: ext.fingerprint(layout), root=root,
                              overwrite=overwrite)
    else:
        ctx = RunContext.from_inputs(inputs, out, layout=layout, crops=cfg.crops,  # type: ignore[arg-type]
                              fingerprint=planned_fingerprint(cfg, resolve_device(cfg.device).type),
                              root=root, overwrite=overwrite)
        if ctx.nothing_to_do():  # a rerun of a finished folder never loads the model
            return ctx.record_nothing_to_do()
        ext = FeatureExtractor.from_config(cfg)
    fp = ext.fingerprint(layout)
    if ctx.fingerprint is not None and ctx.fingerprint != fp:
        diff = "; ".join(fingerprint_changes(ctx.fingerprint, fp))
        raise ConfigError(f"internal error: the settings fingerprint computed before loading the "
                          f"model differs from the model's ({diff}); nothing was run")
    return ctx, ext, fp


def _config_of(extractor: FeatureExtractor | None, config: ExtractConfig | None,
               settings: Mapping[str, Any], layout: str | None) -> ExtractConfig:
    """The run's config: from ``settings``, or ``config``, or the extractor's; ``layout`` applied."""
    if extractor is not None or config is not None:
        if extractor is not None and config is not None:
            raise ConfigError("pass either an extractor or a config, not both")
        if settings:
            raise ConfigError("pass either an extractor or extractor settings, not both"
                              if extractor is not None else
                              "pass either a config or extractor settings, not both")
        cfg = extractor.config if extractor is not None else config
        assert cfg is not None
        return cfg if layout is None else dataclasses.replace(cfg, layout=check_layout(layout))
    return ExtractConfig.from_settings(settings, **({"layout": layout} if layout is not None else {}))


# --------------------------------------------------------------------------- devices=


def _device_main(results: Any, index: int, device: str, inputs: list, out: str | Path,
                 config: ExtractConfig, kwargs: dict[str, Any]) -> None:
    """One device's process: the ordinary engine on ``device``; its summary goes back."""
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s [{device}] %(message)s")
    tune_malloc()  # a process vadfeat owns: flat memory over long videos
    with handle_stop_signals():
        try:
            summary = extract(inputs, out, config=config, devices=[device], progress=False, **kwargs)
        except KeyboardInterrupt:  # stopped while planning or loading: nothing to report
            return
    results.put((index, summary))


def _extract_on_devices(devices: list[str], inputs: list, out: str | Path, cfg: ExtractConfig, *,
                        workers: int, overwrite: bool, root: str | Path | None,
                        wait: bool, pipeline: str = "threads") -> RunSummary:
    import multiprocessing as mp

    kwargs = {"workers": workers, "overwrite": overwrite, "root": root, "wait": wait,
              "run_token": uuid.uuid4().hex, "pipeline": pipeline}
    for d in devices:  # fail at the boundary, before any process starts
        resolve_device(d)
    # Changed settings and a foreign manifest stop the run here, before any process starts.
    out = Path(out)
    RunContext.from_inputs(inputs, out, layout=cfg.layout, crops=cfg.crops,  # type: ignore[arg-type]
                    fingerprint=planned_fingerprint(cfg, resolve_device(devices[0]).type),
                    root=root, overwrite=overwrite, verify=False)
    ctx = mp.get_context("spawn")  # CUDA cannot be forked into children
    results = ctx.Queue()
    procs = [ctx.Process(target=_device_main, args=(results, i, d, inputs, out, cfg, kwargs),
                         name=f"vadfeat-{d}") for i, d in enumerate(devices)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    got, stopped = _collect_devices(procs, results)
    merged = _merge(got, devices, out, stopped)
    merged.seconds = time.perf_counter() - t0
    return merged


def _collect_devices(procs: list, results: Any) -> tuple[dict[int, RunSummary], int | None]:
    got: dict[int, RunSummary] = {}
    stopped: int | None = None
    while len(got) < len(procs) and (any(p.is_alive() for p in procs) or not results.empty()):
        try:
            index, summary = results.get(timeout=1.0)
        except queue.Empty:
            continue
        except KeyboardInterrupt as exc:  # stop the children as we were stopped; keep reading
            stopped = signum_of(exc)
            for p in procs:
                if p.is_alive():
                    with contextlib.suppress(OSError):
                        os.kill(p.pid, signal.SIGTERM)
            continue
        got[index] = summary
    for p in procs:
        p.join()
    return got, stopped


def _merge(got: dict[int, RunSummary], devices: list[str], out: Path, stopped: int | None) -> RunSummary:
    merged = RunSummary(out=out, run_id="+".join(s.run_id for s in got.values()))
    done: set[str] = set()
    for s in got.values():
        merged.total = max(merged.total, s.total)
        merged.ok += s.ok
        merged.snippets += s.snippets
        merged.failed += s.failed
        merged.interrupted |= s.interrupted
        merged.signal = merged.signal or s.signal
        done.update(v for v, _ in s.failed)
    if stopped is not None:
        merged.interrupted, merged.signal = True, merged.signal or stopped
    for s in got.values():  # held by a process outside this run, and not done by it since
        merged.elsewhere += [(v, r) for v, r in s.elsewhere if v not in done]
        merged.in_progress += s.in_progress
    # A video no sibling started is "not started" in each; one a sibling did is not.
    stopped_ones = [s.not_started for s in got.values() if s.interrupted]
    merged.not_started = min(stopped_ones) if stopped_ones else 0
    merged.elsewhere = list(dict.fromkeys(merged.elsewhere))
    for i, device in enumerate(devices):
        if i not in got:
            merged.failed.append((f"<{device} worker>", "the process for this device died; "
                                  "run again to finish its videos"))
    merged.skipped = max(0, merged.total - merged.ok - len(merged.elsewhere) - len(
        [f for f in merged.failed if not f[0].startswith("<")]))
    return merged


__all__ = ["CONTENT_SETTINGS", "EXIT_ELSEWHERE", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "RUN_SETTINGS",
           "FeatureExtractor", "RunSummary", "SnippetReady", "VideoDecoded", "VideoFailed",
           "VideoFeatures", "VideoPassed", "VideoSized", "VideoStarted", "WorkerExited", "extract",
           "handle_stop_signals"]
