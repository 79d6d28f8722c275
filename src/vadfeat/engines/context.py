"""Run set-up and bookkeeping shared by every engine (local, ``--devices``, Ray).

Before any model exists, :meth:`RunContext.from_inputs` checks the output folder
(:func:`check_output_folder`), discovers the inputs and inspects every video's
outputs (:func:`plan_run`) through the run's one sink (:class:`~vadfeat.store.sinks.Sink`,
``RunContext.sink``): changed settings stop the run here.  :meth:`RunContext.open`
then opens the sink (the output folder), the run's manifest and (local engines) its claims;
:meth:`RunContext.triage` records what needs no work (discovery failures, videos done
before, foreign files) and returns the videos to extract; the ``record_*`` methods
keep the :class:`RunSummary` and ``OUT/manifest.jsonl`` in step, one line per video
per run; :meth:`RunContext.finish_ok` is what an engine calls once a video's write
returned: the video is done then, or, with a sink that buffers (a sharded one,
:attr:`~vadfeat.store.sinks.Sink.buffers`), once its shard is committed
(:meth:`RunContext.settle_committed`); :meth:`RunContext.settle_elsewhere` decides, at
the end, the videos another process held; :meth:`RunContext.close` commits the sink (or
aborts it when the run was stopped: the videos written to it and not committed are then
not done, :meth:`RunContext.stop_uncommitted`).  :func:`recheck` looks at a video again
under its claim.  The engines hold the sink's targets but never look inside them: the
manifest's ``output`` (what the sink's write returned, else its
:meth:`~vadfeat.store.sinks.Sink.describe`) and every message about a target come from
the sink (:meth:`~vadfeat.store.sinks.Sink.label`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from vadfeat._defaults import DEFAULT_SHARD_MB, DEFAULT_SHARD_SIZE
from vadfeat._types import Layout
from vadfeat.engines._signals import signum_of
from vadfeat.engines.progress import progress_bar
from vadfeat.errors import ConfigError
from vadfeat.io.inputs import Discovery, VideoItem, output_stem, scan
from vadfeat.io.remote import is_url, local_path
from vadfeat.pipeline.config import ExtractConfig, ModelIdentity
from vadfeat.store.claims import LOCK_DIR, Claims
from vadfeat.store.fingerprint import fingerprint_changes
from vadfeat.store.manifest import MANIFEST, Manifest
from vadfeat.store.sinks import make_sink
from vadfeat.store.sinks.base import OutputState, Sink

log = logging.getLogger(__name__)


#: Exit codes of ``vadfeat extract`` (and :attr:`RunSummary.exit_code`).
EXIT_OK = 0  # every video done (extracted now or before)
EXIT_FAILED = 1  # some videos failed; each is named with its reason in the summary and manifest
EXIT_USAGE = 2  # bad usage or configuration, changed settings, a foreign file for the whole run
EXIT_ELSEWHERE = 3  # nothing failed, but some videos were in progress in another process
# 128 + signal number when stopped by a signal: 130 SIGINT (Ctrl-C), 143 SIGTERM, 129 SIGHUP


@dataclass
class RunSummary:
    """What an :func:`~vadfeat.extract` run did; ``exit_code`` is what the CLI returns.

    ``elsewhere``: videos another live process was extracting when this run ended
    (not counted as done).  ``signal``: the signal that stopped the run (2 for
    SIGINT / KeyboardInterrupt).  ``snippets``: snippets of the videos extracted, plus,
    in a stopped run, those the model made for the videos it left in progress.
    ``in_progress`` (a stopped run): ``(video, snippets saved for a rerun to resume
    from, snippets the video should have or None)``; ``not_started``: videos to do that
    this run never started.
    """

    out: Path | str  # a URL for a URL output
    run_id: str
    total: int = 0
    ok: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    snippets: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    passed_over: list[str] = field(default_factory=list)  # inputs.Discovery.describe_passed_over
    elsewhere: list[tuple[str, str]] = field(default_factory=list)
    signal: int | None = None
    in_progress: list[tuple[str, int, int | None]] = field(default_factory=list)
    not_started: int = 0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + (self.signal or int(signal.SIGINT))
        if self.failed:
            return EXIT_FAILED
        return EXIT_ELSEWHERE if self.elsewhere else EXIT_OK

    def describe(self) -> str:
        rate = self.snippets / self.seconds if self.seconds > 0 else 0.0
        more = f", {len(self.elsewhere)} in progress elsewhere" if self.elsewhere else ""
        lines = [
            f"{self.total} video(s): {self.ok} extracted, {self.skipped} already done, "
            f"{len(self.failed)} failed{more}; {self.snippets} snippets in {self.seconds:.1f} s "
            f"({rate:.1f} snippets/s); outputs in {self.out}"
        ]
        if self.interrupted:
            name = signal.Signals(self.signal or signal.SIGINT).name
            saved = sum(n for _, n, _ in self.in_progress)
            lines.append(f"  STOPPED by {name}: {len(self.in_progress)} video(s) in progress "
                         f"({saved} snippets saved), {self.not_started} never started; finished "
                         "videos are kept; run again to resume")
            for video, n, size in self.in_progress:
                of = f" of ~{size}" if size is not None else ""
                lines.append(f"  IN PROGRESS {video}: {n}{of} snippets saved"
                             + ("; a rerun resumes from there" if n else ""))
        lines += [f"  FAILED {video}: {reason}" for video, reason in self.failed]
        lines += [f"  {line}" for line in self.passed_over]
        lines += [f"  NOT DONE {video}: {reason}" for video, reason in self.elsewhere]
        if self.elsewhere:
            lines.append("  (another process was extracting these; run again when it has "
                         "finished, or use --wait)")
        return "\n".join(lines)



def record_stop(summary: RunSummary, exc: BaseException) -> int:
    """The run was stopped (``exc``: SIGINT's KeyboardInterrupt, or SIGTERM/SIGHUP's
    :class:`~vadfeat.engines._signals.Interrupted` under
    :func:`~vadfeat.engines._signals.handle_stop_signals`): mark ``summary`` (its exit code
    becomes 128 + the signal's number) and say so.  Every engine's interrupt path starts
    here; returns the signal's number."""
    summary.interrupted = True
    summary.signal = signum_of(exc)
    log.error("stopped by %s: finished videos are kept; run again to resume",
              signal.Signals(summary.signal).name)
    return summary.signal


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def planned_fingerprint(config: ExtractConfig, device_type: str,
                        identity: ModelIdentity | None = None) -> Callable[[], dict[str, Any]]:
    """The fingerprint ``config``'s model will write on ``device_type``, computed once, on the
    first call, from the checkpoint file (no model is built): what every engine plans with.

    ``identity``: the checkpoint already read (:meth:`ExtractConfig.identify`)."""
    cached: list[dict[str, Any]] = []

    def fingerprint() -> dict[str, Any]:
        if not cached:
            cached.append(config.fingerprint(identity or config.identify(), device_type))
        return cached[0]
    return fingerprint


def rate(snippets: int, t0: float) -> str:
    dt = time.perf_counter() - t0
    return f"{snippets / dt:.1f} snippets/s" if dt > 0 else ""


def progress(total: int, *, enabled: bool) -> Any:
    """A bar on a terminal; a plain line every few seconds in a log (vadfeat.engines.progress)."""
    return progress_bar(total, enabled=enabled, desc="extract", unit="video")


def local_checkpoint(cfg: ExtractConfig) -> str | None:
    """The checkpoint file or folder a run reads, when it is a local path (an input too)."""
    ckpt = cfg.checkpoint
    return None if ckpt is None or "://" in str(ckpt) else str(ckpt)


@dataclass
class Uncommitted:
    """A video written to a buffering sink whose shard is not committed yet: what its
    manifest line will say once it is, and what a stopped run says of it.

    ``made``: its snippets the model ran in this run (those resumed from a checkpoint
    are not); ``saved``: the snippets of its checkpoint (:mod:`vadfeat.engines.partial`),
    from which a rerun resumes; ``on_done``: called once the video is durable (removes
    that checkpoint)."""

    vid: int
    output: str
    num_frames: int
    num_snippets: int
    seconds: float
    warnings: list[str] | None
    made: int
    saved: int = 0
    on_done: Callable[[], None] | None = None


class RunContext:
    """One run over one output folder: what was found, what is planned, what was done.

    Made by :meth:`from_inputs` before any model exists; :meth:`open` before any work.
    ``sink``: where the run's outputs go, its one :class:`~vadfeat.store.sinks.Sink`;
    ``stems`` and ``plan``: each video's output stem and the sink's target for it (opaque
    here); ``fingerprint`` is the one the plan was compared with, ``None`` when no output
    existed (then it was never computed).
    """

    def __init__(self, out: Path, items: list[VideoItem], plan: list[Any],
                 states: list[OutputState], *, overwrite: bool, passed_over: list[str],
                 fingerprint: dict[str, Any] | None, sink: Sink[Any],
                 stems: list[PurePosixPath] | None = None) -> None:
        self.out = out
        self.sink = sink
        self.items = items
        self.stems = stems if stems is not None else [output_stem(i) for i in items]
        self.plan = plan
        self.states = states
        self.overwrite = overwrite
        self.passed_over = passed_over
        self.fingerprint = fingerprint
        self.keys = [sink.key(t) for t in plan]  # claim keys
        #: videos written to a buffering sink and not committed yet, by claim key
        self.uncommitted: dict[str, Uncommitted] = {}
        self._sink_closed = False
        self.run_id = ""
        self.manifest: Manifest | None = None
        self.claims: Claims | None = None
        self.summary = RunSummary(out=out, run_id="", total=len(items), passed_over=passed_over)

    @classmethod
    def from_inputs(cls, inputs: Sequence[str | Path], out: str | Path, *, layout: Layout, crops: int,
             fingerprint: Callable[[], dict[str, Any]], root: str | Path | None = None,
             overwrite: bool = False, verify: bool = True,
             found: Discovery | None = None, sink: Sink[Any] | str | None = None,
             shard_size: int = DEFAULT_SHARD_SIZE, shard_mb: float = DEFAULT_SHARD_MB,
             ) -> RunContext:
        """Check ``out``, discover ``inputs`` and plan every video's outputs (:func:`plan_run`).

        ``fingerprint`` is called only when some output exists; ``found``: ``inputs``
        already discovered (:func:`~vadfeat.io.inputs.scan`); ``sink``: where the
        outputs go: a sink's name (default ``npy``:
        :func:`~vadfeat.store.sinks.make_sink` of ``out``, that name, ``layout``,
        ``crops``, ``shard_size`` videos and ``shard_mb`` MiB per shard), or a ready
        :class:`~vadfeat.store.sinks.Sink` writing below ``out``.  Raises
        :class:`ConfigError` (foreign run files, changed settings, bad inputs).  An output
        that is, holds or lies inside an input is refused before, by the engines' entry
        points (with the checkpoint among the inputs: :func:`local_checkpoint`).
        """
        if is_url(out) and local_path(str(out)) is None:
            # A URL output (a sharded sink only): the run's manifest and claims live in the
            # sink's local staging folder, which stands for ``out`` from here on.
            if sink is None or isinstance(sink, str):
                sink = make_sink(str(out), sink=sink or "npy", layout=layout, crops=crops,
                                 shard_size=shard_size, shard_mb=shard_mb)
            sink.prepare_run()
            out = sink.out
        out = Path(local_path(str(out)) or out) if is_url(out) else Path(out)
        check_output_folder(out)
        if found is None:
            found = scan(list(inputs), root=root)
        seen: list[dict[str, Any]] = []

        def fp() -> dict[str, Any]:
            seen.append(fingerprint())
            return seen[-1]
        if sink is None or isinstance(sink, str):
            sink = make_sink(out, sink=sink or "npy", layout=layout, crops=crops,
                             shard_size=shard_size, shard_mb=shard_mb)
        stems = [output_stem(i) for i in found.items]
        plan, states = plan_run(found.items, sink, fp, overwrite=overwrite, verify=verify,
                                stems=stems)
        ctx = cls(out, found.items, plan, states, overwrite=overwrite,
                  passed_over=found.describe_passed_over(), fingerprint=seen[-1] if seen else None,
                  sink=sink, stems=stems)
        url = getattr(sink, "url", None)
        if isinstance(url, str):  # a URL output: the summary names it, not the staging folder
            ctx.summary.out = url
        return ctx

    # ------------------------------------------------------------------ before any work

    def nothing_to_do(self) -> bool:
        """Every video is done (with the planned settings) or blocked by a foreign file."""
        return (not self.overwrite and self.fingerprint is not None
                and all(st.status in ("done", "foreign") for st in self.states))

    def open(self, *, claims: bool = False, run_token: str | None = None) -> None:
        """Open the sink (create ``out``, clean stale temporaries), the manifest (and the claims).

        An output folder that cannot be written is a :class:`ConfigError`, before any work.
        """
        self.run_id = self.summary.run_id = new_run_id()
        if claims and self.sink.buffers:
            room_for_claims(getattr(self.sink, "shard_size", DEFAULT_SHARD_SIZE))
        try:
            self.sink.open()
            if claims:
                self.claims = Claims(self.out, run_token=run_token)
            self.manifest = Manifest(self.out, self.run_id)
        except OSError as exc:
            raise ConfigError(f"cannot write to the output folder {self.out}: {exc}") from exc

    def triage(self) -> list[int]:
        """Record the videos that need no work; return the others' indices, in order."""
        todo: list[int] = []
        for vid, (item, st) in enumerate(zip(self.items, self.states, strict=True)):
            if item.error is not None:  # found by discovery (e.g. output name too long): never opened
                self.record_failed(vid, item.error)
            elif st.status == "done" and not self.overwrite:
                self.record_skipped(vid)
            elif st.status == "foreign":
                self.record_failed(vid, st.reason)
            else:
                if st.status == "redo":
                    log.warning("%s: redoing: %s", item.name, st.reason)
                todo.append(vid)
        if self.summary.skipped:
            log.info("%d video(s) already extracted with these settings: skipped",
                     self.summary.skipped)
        return todo

    def record_nothing_to_do(self) -> RunSummary:
        """Every video is done or blocked by a foreign file: record that, without a model."""
        t0 = time.perf_counter()
        self.run_id = self.summary.run_id = new_run_id()
        self.summary.passed_over = []
        try:
            self.manifest = Manifest(self.out, self.run_id)
        except OSError as exc:
            raise ConfigError(f"cannot write to the output folder {self.out}: {exc}") from exc
        try:
            for vid, st in enumerate(self.states):
                if st.status == "done":
                    self.record_skipped(vid)
                else:
                    self.record_failed(vid, st.reason)
        finally:
            self.manifest.close()
        if self.summary.skipped:
            log.info("%d video(s) already extracted with these settings: skipped",
                     self.summary.skipped)
        self.summary.seconds = time.perf_counter() - t0
        return self.summary

    # ------------------------------------------------------------------ one line per video

    def _record(self, vid: int, **entry: Any) -> None:
        assert self.manifest is not None
        self.manifest.record(video=str(self.items[vid].name), **entry)

    def finish_ok(self, vid: int, *, output: str | None, num_frames: int, num_snippets: int,
                  seconds: float, warnings: list[str] | None, made: int | None = None,
                  saved: int = 0, on_done: Callable[[], None] | None = None) -> bool:
        """The write of video ``vid`` (under its claim) returned ``output`` (where its
        features went, :meth:`~vadfeat.store.sinks.Sink.write`): record it done, or keep
        it until its shard is committed.  Returns whether it is done now.

        A sink that does not buffer: the video is durable, so ``on_done()`` runs, its
        ``ok`` line is recorded and its claim released.  A buffering sink
        (:attr:`~vadfeat.store.sinks.Sink.buffers`): the video waits in
        :attr:`uncommitted`, its claim still held, until the sink reports its key
        committed (:meth:`settle_committed`, asked here after each write and in
        :meth:`close` after the sink's commit); killed before that, nothing says it is
        done and a rerun does it again.  ``made`` (snippets the model ran for it in this
        run, default ``num_snippets``) and ``saved`` (snippets of its checkpoint kept for
        a rerun) are what a stopped run reports of it (:meth:`stop_uncommitted`).  Raises
        OSError (the manifest cannot grow).
        """
        entry = Uncommitted(vid, output if output is not None else self.sink.describe(self.plan[vid]),
                            num_frames, num_snippets, seconds, warnings,
                            num_snippets if made is None else made, saved, on_done)
        if not self.sink.buffers:
            self._done(entry)
            return True
        self.uncommitted[self.keys[vid]] = entry
        self.settle_committed()
        return self.keys[vid] not in self.uncommitted

    def settle_committed(self) -> list[int]:
        """Record ``ok`` (and release the claims of) the written videos whose shard the
        sink has committed since the last call (:meth:`~vadfeat.store.sinks.Sink.take_committed`);
        returns them.  Keys it reports that this run did not write are ignored."""
        done = []
        for key in self.sink.take_committed():
            entry = self.uncommitted.pop(key, None)
            if entry is None:
                log.debug("the sink committed %s, which this run has not written", key)
                continue
            self._done(entry)
            done.append(entry.vid)
        return done

    def _done(self, entry: Uncommitted) -> None:
        """``entry``'s video is durable: clean up after it, record it ok, release its claim."""
        vid = entry.vid
        if entry.on_done is not None:
            try:
                entry.on_done()
            except OSError as exc:  # a later run finds the output done and never reads it
                log.warning("%s: cannot remove its partial extraction: %s", self.items[vid].name, exc)
        try:
            self.record_ok(vid, num_frames=entry.num_frames, num_snippets=entry.num_snippets,
                           seconds=entry.seconds, warnings=entry.warnings, output=entry.output)
        finally:
            if self.claims is not None:
                self.claims.release(self.keys[vid])

    def stop_uncommitted(self, signum: int) -> None:
        """The run was stopped by ``signum`` before the sink committed the videos in
        :attr:`uncommitted` (those committed by now are recorded first): each is not done,
        recorded ``interrupted`` with the snippets saved for a rerun and listed in the
        summary's ``in_progress`` (its snippets made count in ``snippets``, as a video in
        progress's do; not in ``ok``).  Its claim is released with the others at
        :meth:`close`."""
        self.settle_committed()
        for entry in sorted(self.uncommitted.values(), key=lambda e: e.vid):
            self.summary.snippets += entry.made
            self.summary.in_progress.append((str(self.items[entry.vid].name), entry.saved,
                                             entry.num_snippets))
            self.record_interrupted(entry.vid, signum, seconds=entry.seconds, saved=entry.saved,
                                    why="the shard holding it was committed")
        self.uncommitted.clear()

    def _fail_uncommitted(self, reason: str) -> None:
        for entry in sorted(self.uncommitted.values(), key=lambda e: e.vid):
            self.record_failed(entry.vid, reason, seconds=entry.seconds)
        self.uncommitted.clear()

    def record_ok(self, vid: int, *, num_frames: int, num_snippets: int, seconds: float,
                  warnings: list[str] | None, output: str | None = None, **extra: Any) -> None:
        """Video ``vid`` is done (durable): ``output`` says where (default: the sink's
        :meth:`~vadfeat.store.sinks.Sink.describe` of its target); ``extra``: more fields for
        the manifest line (the Ray engine's ``attempts``, ``retried``)."""
        self.summary.ok += 1
        self.summary.snippets += num_snippets
        self._record(vid, status="ok", error=None,
                     output=output if output is not None else self.sink.describe(self.plan[vid]),
                     num_frames=num_frames, num_snippets=num_snippets, seconds=round(seconds, 3),
                     warnings=warnings or None, **extra)

    def record_failed(self, vid: int, reason: str, *, seconds: float = 0.0, **extra: Any) -> None:
        name = str(self.items[vid].name)
        self.summary.failed.append((name, reason))
        log.error("%s: %s", name, reason)
        self._record(vid, status="failed", error=reason, output=None, num_frames=None,
                     num_snippets=None, seconds=round(seconds, 3), **extra)

    def record_skipped(self, vid: int, reason: str | None = None) -> None:
        """Done before (``reason`` None), or held by / done by another run of this folder."""
        self.summary.skipped += 1
        if reason is not None:
            log.info("%s: %s", self.items[vid].name, reason)
        self._record(vid, status="skipped", error=reason, output=self.sink.describe(self.plan[vid]),
                     num_frames=None, num_snippets=None, seconds=0.0)

    def record_interrupted(self, vid: int, signum: int, *, seconds: float, saved: int = 0,
                           why: str = "this video was finished") -> None:
        """A video in progress when the run was stopped; ``saved``: its snippets checkpointed
        (:mod:`vadfeat.engines.partial`), from which a rerun resumes; ``why``: what did not
        happen before the stop."""
        self._record(vid, status="interrupted",
                     error=f"stopped by {signal.Signals(signum).name} before {why}",
                     output=None, num_frames=None, num_snippets=None, seconds=round(seconds, 3),
                     saved_snippets=saved)

    def settle_elsewhere(self, elsewhere: dict[int, str], fingerprint: dict[str, Any]) -> None:
        """Videos another process held: done by now with these settings, or not done."""
        for vid, reason in sorted(elsewhere.items()):
            name = str(self.items[vid].name)
            st = self.sink.state(self.plan[vid], fingerprint, source=self.items[vid].source)
            if st.status == "done":
                self._skipped_meanwhile(vid)
                continue
            self.summary.elsewhere.append((name, reason))
            log.warning("%s: %s; not done by this run", name, reason)
            self._record(vid, status="elsewhere", error=reason, output=None, num_frames=None,
                         num_snippets=None, seconds=0.0)

    def _skipped_meanwhile(self, vid: int) -> None:
        self.summary.skipped += 1
        self._record(vid, status="skipped", error="extracted by another process during this run",
                     output=self.sink.describe(self.plan[vid]), num_frames=None, num_snippets=None,
                     seconds=0.0)

    def close(self, *, failed: bool = False) -> None:
        """End the run: commit the sink (abort it when the run was stopped or ``failed``,
        an error on its way out), close the manifest, release the claims.

        After the commit the videos it made durable are recorded ``ok``
        (:meth:`settle_committed`); those a commit error or an abort left uncommitted
        are not done: ``interrupted`` in a stopped run (:meth:`stop_uncommitted`), else
        ``failed``.  A sink's commit error (OSError) is raised after the manifest and
        claims are closed.  Only the first call acts on the sink."""
        try:
            if self.manifest is not None and not self._sink_closed:
                self._sink_closed = True
                if failed or self.summary.interrupted:
                    self.sink.abort()
                    if self.summary.interrupted:
                        self.stop_uncommitted(self.summary.signal or int(signal.SIGINT))
                    else:
                        self._fail_uncommitted("not written: the run ended on an error before "
                                               "the shard holding it was committed; run again")
                else:
                    try:
                        self.sink.commit()
                    except OSError as exc:
                        self.settle_committed()
                        self._fail_uncommitted(f"cannot write the shard holding it: {exc}")
                        raise
                    self.settle_committed()
                    self._fail_uncommitted("internal error: written, but the sink never "
                                           "committed it; run again")
        finally:
            if self.manifest is not None:
                self.manifest.close()
                try:
                    self.sink.publish_run()
                except OSError as exc:
                    log.warning("cannot upload the run's manifest: %s", exc)
            if self.claims is not None:
                self.claims.release_all()


def room_for_claims(held: int) -> None:
    """Let this process hold ``held`` claims at once (one open file each, kept until a
    shard is committed; :class:`~vadfeat.store.claims.Claims`): raise the soft limit on
    open files towards the hard one when it is lower than that plus a margin, and warn
    when even the hard limit is too low (the videos past it then fail to be claimed)."""
    try:
        import resource
    except ImportError:  # not a Unix: no such limit to raise
        return
    want = held + 256  # the model's libraries, the manifest, a shard being written
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (OSError, ValueError):
        new = soft
    if new < want:
        log.warning("a shard keeps the claims of its videos (one open file each) until it is "
                    "committed; this process may open %d files, fewer than the %d a shard of "
                    "%d videos needs: use a smaller --shard-size or raise `ulimit -n`",
                    new, want, held)


# --------------------------------------------------------------------------- planning


def plan_outputs(items: Sequence[VideoItem], sink: Sink[Any]) -> list[Any]:
    """Each video's target in ``sink`` (pure)."""
    # discover() already made output stems unique (x.mp4 beside x.avi included).
    return [sink.plan(output_stem(i)) for i in items]


def plan_run(items: Sequence[VideoItem], sink: Sink[Any],
             fingerprint: Callable[[], dict[str, Any]], *, overwrite: bool,
             verify: bool = True, stems: Sequence[PurePosixPath] | None = None,
             ) -> tuple[list[Any], list[OutputState]]:
    """Each video's target in ``sink`` and what is there now, before any work (every engine).

    ``fingerprint`` is called only when the sink may hold something of some video
    (:meth:`~vadfeat.store.sinks.Sink.present`; it may read and hash the checkpoint).
    A video with nothing complete at its target but a complete output elsewhere in the
    sink (:meth:`~vadfeat.store.sinks.Sink.previous`: the ``.npy`` sink's other layout,
    flat vs fed-wsvad) counts as ``changed`` and that output becomes ``stale``.  Raises
    :class:`ConfigError` naming every change (``crops: 1 -> 3``) when existing outputs
    were made with other settings, unless ``overwrite``.  ``stems``: the items' output
    stems, when already known.
    """
    if stems is None:
        stems = [output_stem(i) for i in items]
    plan = [sink.plan(stem) for stem in stems]
    states: list[OutputState] = []
    cached: list[dict[str, Any]] = []

    def fp() -> dict[str, Any]:
        if not cached:
            cached.append(fingerprint())
        return cached[0]

    for item, target in zip(items, plan, strict=True):
        if not sink.present(target):
            states.append(OutputState("absent"))
            continue
        st = sink.state(target, fp(), source=item.source, verify=verify)
        if st.status in ("absent", "redo"):
            other = sink.previous(target)
            if other is not None:
                st = OutputState("changed", previous=other.previous, stale=(*st.stale, *other.stale))
        states.append(st)
    changed = [(items[i].name, st) for i, st in enumerate(states) if st.status == "changed"]
    if changed and not overwrite:
        raise ConfigError(_changed_message(changed, fp(), getattr(sink, "url", sink.out)))
    return plan, states


def _changed_message(changed: list[tuple[Any, OutputState]], fingerprint: dict[str, Any],
                     out: Path | str) -> str:
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, st in changed:
        diff = tuple(fingerprint_changes(st.previous or {}, fingerprint)) or ("(unknown)",)
        groups.setdefault(diff, []).append(str(name))
    parts = []
    for diff, names in list(groups.items())[:5]:
        parts.append(f"{len(names)} video(s) (e.g. {names[0]}): {'; '.join(diff)}")
    dtype_note = ""
    if any(d.startswith("dtype:") for diff in groups for d in diff):
        dtype_note = (" Note: dtype auto means bf16 on CUDA and fp32 on the CPU, and these "
                      "give different numbers; pass the dtype the existing outputs were made "
                      "with (--dtype) to continue them on this machine.")
    return (f"{out} holds outputs made with other settings than this run's; nothing was run. "
            + " | ".join(parts) + "." + dtype_note
            + " To replace them, run again with --overwrite; to keep them, choose another "
              "output folder (-o).")


def check_output_folder(out: Path) -> None:
    """Stop (ConfigError) when ``out`` holds, where vadfeat keeps its run files, files it did
    not write: they concern the whole run, so nothing may start."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the output folder {out} is a file")
    manifest = out / MANIFEST
    if os.path.lexists(manifest):
        if manifest.is_symlink() or not manifest.is_file():
            raise ConfigError(f"{manifest} is not a regular file, so it is not vadfeat's run "
                              "manifest; move it away or choose another output folder (-o)")
        try:
            with open(manifest, "rb") as f:
                head = f.read(1 << 16)
        except OSError as exc:
            raise ConfigError(f"cannot read {manifest}: {exc}") from exc
        first = head.split(b"\n", 1)[0].strip()
        ours = False
        if not first:
            ours = not head.strip()
        else:
            try:
                entry = json.loads(first)
                ours = isinstance(entry, dict) and "run" in entry and "video" in entry
            except ValueError:  # a line torn by a full disk is still one of ours
                ours = first.startswith(b'{"run": "')
        if not ours:
            raise ConfigError(f"{manifest} was not written by vadfeat (its first line is not a "
                              "run record); vadfeat appends to it, so move it away or choose "
                              "another output folder (-o)")
    locks = out / LOCK_DIR
    if os.path.lexists(locks) and (locks.is_symlink() or not locks.is_dir()):
        raise ConfigError(f"{locks} is not a folder; vadfeat keeps its claims there, so move it "
                          "away or choose another output folder (-o)")


def recheck(sink: Sink[Any], target: Any, fingerprint: dict[str, Any], *, source: Path | str,
            overwrite: bool, planned: OutputState) -> tuple[str | None, str, tuple[Path, ...]]:
    """Under the video's claim, look again at its ``target`` in ``sink`` (another process may
    have written it meanwhile).

    Returns ``(kind, reason, stale)``: ``kind`` None = go on and write, deleting
    ``stale``; ``"skipped"`` = done meanwhile with these settings; ``"failed"`` =
    a foreign file, or outputs another run wrote meanwhile with other settings.
    """
    st = sink.state(target, fingerprint, source=source)
    if st.status == "done" and not overwrite:
        return "skipped", "extracted by another process during this run", ()
    if st.status == "foreign":
        return "failed", st.reason, ()
    if st.status == "changed" and not overwrite:
        diff = "; ".join(fingerprint_changes(st.previous or {}, fingerprint))
        return "failed", (f"written during this run by another run with other settings ({diff}); "
                          "not replaced (use --overwrite to replace)"), ()
    if st.status == "redo" and planned.status not in ("redo", "changed"):
        log.warning("%s: redoing: %s", sink.label(target), st.reason)
    extra = planned.stale if planned.status == "changed" else ()
    return None, "", tuple(dict.fromkeys((*st.stale, *extra)))


__all__ = ["EXIT_ELSEWHERE", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "RunContext", "RunSummary",
           "Uncommitted", "check_output_folder", "new_run_id", "plan_outputs", "plan_run",
           "planned_fingerprint", "recheck", "record_stop", "room_for_claims"]
