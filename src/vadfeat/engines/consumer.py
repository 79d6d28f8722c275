"""The model side of a local run: one consumer for every producer (threads, processes).

:class:`Consumer` takes a producer's typed events (:mod:`vadfeat.engines.events`),
batches snippets across videos (:class:`~vadfeat.pipeline.stream.SnippetBatcher`), runs
the model, writes each video through the run's sink (``RunContext.sink``) when its last
snippet is done, and records every video in ``OUT/manifest.jsonl`` once it is durable
(:meth:`~vadfeat.engines.context.RunContext.finish_ok`: at once, or with a sharded sink
when its shard is committed); it checkpoints the finished snippets of
long videos (:mod:`vadfeat.engines.partial`) and, when the run is stopped, records the
videos in progress.  :meth:`Consumer.claim` is what the producers call to claim a video
(:func:`vadfeat.engines.claiming.claim_video`).  :func:`drain` is the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vadfeat.engines.claiming import ClaimResult, Outcome, claim_video
from vadfeat.engines.context import RunContext, rate
from vadfeat.engines.events import (
    Event,
    SnippetReady,
    VideoDecoded,
    VideoFailed,
    VideoPassed,
    VideoSized,
    VideoStarted,
    WorkerExited,
)
from vadfeat.engines.partial import Partial, Resumed, stop_hook
from vadfeat.io.inputs import VideoItem
from vadfeat.pipeline.extractor import FeatureExtractor
from vadfeat.store.identity import source_identity
from vadfeat.store.sinks.base import VideoFeatures

log = logging.getLogger(__name__)

# How long the model side waits for another snippet before it runs a part batch.
IDLE_FLUSH_S = 0.02


@dataclass
class Pending:
    """A video the model side has started: its rows so far, and what its producer said of it.
    ``target``: the run's sink's target for it (opaque)."""

    item: VideoItem
    target: Any
    started: float
    rows: dict[int, np.ndarray] = field(default_factory=dict)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    expected: int | None = None
    meta: dict[str, Any] | None = None


class Consumer:
    """The model side of a local run: takes a producer's events, batches snippets across
    videos, runs the model, writes each finished video and records it.

    :meth:`claim` and :meth:`skip_of` are called by the producer's threads (the run's
    per-video claims, :class:`~vadfeat.store.claims.Claims`); everything else runs in the
    model's thread.  ``on_snippet`` is called each time a snippet is taken
    (:attr:`vadfeat.engines.producer.Producer.on_snippet`).
    """

    def __init__(self, ext: FeatureExtractor, ctx: RunContext, fingerprint: dict[str, Any], *,
                 layout: str, wait: bool, stop: threading.Event, bar: Any,
                 on_snippet: Callable[[], None] | None = None) -> None:
        self.ext = ext
        self.on_snippet = on_snippet
        self.ctx = ctx
        self.fingerprint = fingerprint
        self.layout = layout
        self.wait = wait
        self.stop = stop
        self.bar = bar
        self.batcher = ext.batcher()
        self.pending: dict[int, Pending] = {}
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

    # ------------------------------------------------------------------ the producer's side

    def claim(self, vid: int) -> ClaimResult:
        """Claim ``vid`` for this run (called by the producers, :class:`~vadfeat.engines.producer.Claim`).

        A video held by another process is :attr:`~Outcome.DEFERRED` once when the run may
        wait (``wait``); taken again after the others, its claim then waits for the holder
        (until the run stops).  Claimed: its checkpoint is opened and its clock started.
        """
        ctx = self.ctx
        assert ctx.claims is not None
        final = vid in self.deferred
        result, stale = claim_video(
            ctx.claims, ctx.keys[vid], ctx.plan[vid], self.fingerprint, sink=ctx.sink,
            source=ctx.items[vid].source, overwrite=ctx.overwrite, planned=ctx.states[vid],
            wait=self.stop if (self.wait and final) else None, may_defer=self.wait and not final)
        if result.outcome is Outcome.DEFERRED:
            self.deferred.add(vid)
        if result.claimed:
            self.stale_of[vid] = stale
            self._open_partial(vid)
            self.started[vid] = time.perf_counter()
        return result

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
        """One event of a producer (not :class:`WorkerExited`: :func:`drain` counts those)."""
        if self.on_snippet is not None and isinstance(event, SnippetReady):
            self.on_snippet()
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

    def _state(self, vid: int) -> Pending:
        if vid not in self.pending:
            self.pending[vid] = Pending(self.ctx.items[vid], self.ctx.plan[vid], time.perf_counter())
        return self.pending[vid]

    def _maybe_finish(self, vid: int) -> None:
        st = self.pending.get(vid)
        if st is not None and st.expected is not None and len(st.rows) == st.expected:
            try:
                self._finish_ok(vid)
            except OSError as exc:  # disk full, read-only output: this video is not written
                self.ctx.uncommitted.pop(self.ctx.keys[vid], None)
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
        output = ctx.sink.write(st.target, VideoFeatures(feats, md), stale=self.stale_of.get(vid, ()))
        part = self.partials.pop(vid, None)
        found = self.resumed.pop(vid, None)
        self.sizes[vid] = int(feats.shape[0])
        # Its checkpoint goes once the video is durable: at once, or (a buffering sink) when
        # its shard is committed; a run stopped before that resumes the video from it.
        ctx.finish_ok(vid, output=output, num_frames=st.meta["num_frames"],
                      num_snippets=int(feats.shape[0]), seconds=time.perf_counter() - st.started,
                      warnings=st.meta["warnings"],
                      made=int(feats.shape[0]) - (found.count if found is not None else 0),
                      saved=part.count if part is not None and part.enabled else 0,
                      on_done=part.remove if part is not None else None)
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

    def workers_gone(self, left: list[int], reason: str | None = None) -> None:
        """Every worker has exited: anything still open was lost by a worker that died, and
        the videos ``left`` were never taken (``reason``: why, when known)."""
        for vid in [v for v in self.pending if v not in self.failed]:
            self._finish_failed(vid, reason or "internal error: the decode worker stopped before "
                                               "this video was finished")
        for vid in left:
            self._finish_failed(vid, reason or "internal error: no decode worker was left")

    def interrupted(self, signum: int) -> None:
        """The run was stopped: save the finished snippets of the videos in progress, record
        those videos (``interrupted``, with their saved snippets) and what was left.  A
        video written to a buffering sink whose shard is not committed is in progress too
        (:meth:`~vadfeat.engines.context.RunContext.stop_uncommitted`)."""
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
        with contextlib.suppress(OSError):  # written, but their shard is not committed
            self.ctx.stop_uncommitted(signum)
        summary.not_started = max(0, summary.total - summary.ok - summary.skipped - len(summary.failed)
                                  - len(self.elsewhere) - len(summary.in_progress))


def drain(events: queue.Queue, collector: Consumer, n_threads: int) -> None:
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



__all__ = ["IDLE_FLUSH_S", "Consumer", "Pending", "drain"]
