"""The local engine: many videos through one model, decode threads running ahead of it.

:func:`extract` plans the run (:class:`~vadfeat.engines.context.RunContext`, before any
model exists), loads one :class:`~vadfeat.FeatureExtractor` and runs the per-video
snippet stream (:func:`vadfeat.pipeline.stream.snippet_stream`) for many videos in
background worker threads that decode and preprocess ahead of the model through a
bounded queue (memory stays bounded, the model is not idle).  The threads
(:class:`ThreadProducer`; or worker processes,
:class:`~vadfeat.engines.processes.ProcessProducer`: one
:class:`~vadfeat.engines.producer.Producer` interface) talk to the model side in typed
events (:mod:`vadfeat.engines.events`); the model side
(:class:`~vadfeat.engines.consumer.Consumer`) batches snippets across videos
(:class:`~vadfeat.pipeline.stream.SnippetBatcher`), writes each video's outputs
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from vadfeat._malloc import tune_malloc
from vadfeat._types import Pipeline
from vadfeat.engines._signals import handle_stop_signals, signum_of
from vadfeat.engines.claiming import Outcome
from vadfeat.engines.consumer import Consumer, drain
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
    record_stop,
)
from vadfeat.engines.events import (
    ByteBudget,
    EventQueue,
    SnippetReady,
    VideoDecoded,
    VideoFailed,
    VideoPassed,
    VideoSized,
    VideoStarted,
    WorkerExited,
    put_unless_stopped,
)
from vadfeat.engines.producer import (
    Claim,
    Producer,
    Skip,
    claim_or_report,
    join_threads,
)
from vadfeat.errors import ConfigError, VideoError
from vadfeat.io.inputs import VideoItem
from vadfeat.pipeline.config import (
    CONTENT_SETTINGS,
    RUN_SETTINGS,
    ExtractConfig,
    check_sink_settings,
    resolve_device,
)
from vadfeat.pipeline.extractor import FeatureExtractor, VideoFeatures
from vadfeat.store.fingerprint import fingerprint_changes
from vadfeat.store.ownership import refuse_overlap
from vadfeat.store.sinks import check_layout
from vadfeat.store.sinks.base import Sink

log = logging.getLogger(__name__)

# Device preprocessing: most bytes of raw frames that may wait for the model in the
# engine's event queue, over all decode threads (a 1080p 16-frame snippet is ~100 MB).
RAW_QUEUE_BYTES = 512 * 2**20
# Worker preprocessing: most bytes of model-input snippets waiting in the event queue
# (a 10-crop 16-frame 224 px snippet is 96 MiB as float32): a large batch_size, whose
# queue depth is two batches, does not park gigabytes of snippets there.
QUEUE_BYTES = 512 * 2**20


def event_queue(ext: FeatureExtractor) -> EventQueue:
    """The bounded queue between decode and model: at most ``max(2, 2 * clips_per_batch)``
    snippets, and at most :data:`QUEUE_BYTES` of them (:data:`RAW_QUEUE_BYTES` of raw
    frames with ``preprocess="device"``), or one snippet when it is larger."""
    limit = RAW_QUEUE_BYTES if ext.preprocess == "device" else QUEUE_BYTES
    return EventQueue(max(2, 2 * ext.clips_per_batch), ByteBudget(limit))


# --------------------------------------------------------------------------- decode threads


def _no_skip(vid: int) -> int:
    return 0


def _produce(extractor: FeatureExtractor, work: queue.Queue, events: queue.Queue,
             stop: threading.Event, claim: Claim, skip: Skip = _no_skip) -> None:
    """Worker thread: claim, decode and preprocess whole videos; emit their events.

    ``claim(vid)`` is :meth:`Consumer.claim` (a video not taken is reported by
    :func:`~vadfeat.engines.producer.claim_or_report`; a deferred one goes back at the end
    of the work).  The final :class:`WorkerExited` is sent however the thread ends: the
    consumer counts them.  ``skip(vid)``: the snippets of ``vid`` saved by an interrupted
    run (not preprocessed).
    """
    try:
        _produce_videos(extractor, work, events, stop, claim, skip)
    except Exception:  # a bug in vadfeat, not a bad video: say so loudly, then exit
        log.exception("a decode worker crashed")
    finally:
        if not stop.is_set():  # once stopped, nobody reads the queue: a put could block
            events.put(WorkerExited())


def _produce_videos(extractor: FeatureExtractor, work: queue.Queue, events: queue.Queue,
                    stop: threading.Event, claim: Claim, skip: Skip) -> None:
    while not stop.is_set():
        try:
            vid, item = work.get_nowait()
        except queue.Empty:
            break
        result = claim_or_report(claim, vid, item.source, events, stop)
        if result is None:
            continue
        if result.outcome is Outcome.DEFERRED:  # held elsewhere and we may wait: first do the others
            work.put((vid, item))
            continue
        if not put_unless_stopped(events, VideoStarted(vid), stop):
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
            on_open=lambda n: put_unless_stopped(events, VideoSized(vid, n), stop))
        while True:
            try:
                rng, clip = next(stream)
            except StopIteration as done:
                return put_unless_stopped(events, VideoDecoded(vid, count, done.value), stop)
            if not put_unless_stopped(events, SnippetReady(vid, count, rng, clip), stop):
                stream.close()
                return False
            count += 1
    except VideoError as exc:
        return put_unless_stopped(events, VideoFailed(vid, str(exc)), stop)
    except Exception as exc:  # one video's bug must not end a day-long run
        log.debug("unexpected error on %s", item.source, exc_info=True)
        return put_unless_stopped(events, VideoFailed(vid, f"unexpected {type(exc).__name__}: {exc}"),
                                  stop)


class ThreadProducer:
    """The :class:`~vadfeat.engines.producer.Producer` of ``pipeline="threads"``: ``workers``
    decode threads of this process (at most one per video), each taking whole videos from
    one work list in order (:func:`_produce`)."""

    def __init__(self, ext: FeatureExtractor, ctx: RunContext, todo: list[int], events: queue.Queue,
                 stop: threading.Event, *, workers: int) -> None:
        self.ext = ext
        self.events = events
        self.stop = stop
        self.work: queue.Queue = queue.Queue()
        for vid in todo:
            self.work.put((vid, ctx.items[vid]))
        self.exits = min(workers, max(1, len(todo)))
        self.threads: list[threading.Thread] = []

    def on_snippet(self) -> None:
        """Nothing to count here."""

    def start(self, claim: Claim, skip: Skip) -> None:
        self.threads = [threading.Thread(target=_produce,
                                         args=(self.ext, self.work, self.events, self.stop, claim, skip),
                                         daemon=True, name=f"vadfeat-decode-{k}")
                        for k in range(self.exits)]
        for t in self.threads:
            t.start()

    def leftovers(self) -> tuple[list[int], str | None]:
        left: list[int] = []
        while not self.work.empty():
            left.append(self.work.get_nowait()[0])
        return left, None

    def halt(self) -> None:
        self.stop.set()

    def join(self) -> None:
        join_threads(self.threads)


# --------------------------------------------------------------------------- one run


def _producer(pipeline: str, ext: FeatureExtractor, ctx: RunContext, todo: list[int],
              events: queue.Queue, stop: threading.Event, *, workers: int) -> Producer | str:
    """The producer of ``pipeline``, or why it cannot start at all."""
    if pipeline == "processes":
        from vadfeat.engines.processes import ProcessProducer

        processes = ProcessProducer(ext, ctx, todo, events, stop, workers=workers)
        return processes.unavailable or processes
    return ThreadProducer(ext, ctx, todo, events, stop, workers=workers)


def _run_pipeline(ext: FeatureExtractor, ctx: RunContext, todo: list[int], fingerprint: dict[str, Any],
                  *, layout: str, workers: int, wait: bool, progress_on: bool,
                  pipeline: str = "threads") -> None:
    """A producer (decode threads, or with ``pipeline="processes"`` decode worker processes:
    :class:`~vadfeat.engines.processes.ProcessProducer`) -> bounded event queue ->
    :class:`~vadfeat.engines.consumer.Consumer`, for the videos ``todo``.

    Stopped (SIGINT, or SIGTERM/SIGHUP under :func:`handle_stop_signals`): the producer
    halts, the videos claimed and not finished are recorded ``interrupted`` with their
    saved snippets; claims are released in :meth:`RunContext.close` however the run ends.
    """
    events = event_queue(ext)
    stop = threading.Event()
    producer = _producer(pipeline, ext, ctx, todo, events, stop, workers=workers)
    if isinstance(producer, str):  # e.g. no room in shared memory: every video fails, named
        for vid in todo:
            ctx.record_failed(vid, producer)
        ctx.close()
        return
    bar = progress(len(todo), enabled=progress_on)
    consumer = Consumer(ext, ctx, fingerprint, layout=layout, wait=wait, stop=stop, bar=bar,
                        on_snippet=producer.on_snippet)
    failed = True  # an unexpected error on its way out: the sink is aborted, not committed
    try:
        producer.start(consumer.claim, consumer.skip_of)
        drain(events, consumer, producer.exits)
        consumer.workers_gone(*producer.leftovers())
        ctx.settle_elsewhere(consumer.elsewhere, fingerprint)
        failed = False
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM/SIGHUP under handle_stop_signals
        producer.halt()
        consumer.interrupted(record_stop(ctx.summary, exc))
        failed = False  # stopped: close() aborts the sink
    finally:
        producer.halt()
        producer.join()
        bar.close()
        ctx.close(failed=failed)


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
    sink: str | Sink[Any] | None = None,
    shard_size: int | None = None,
    shard_mb: float | None = None,
    **settings: Any,
) -> RunSummary:
    """Extract features for every video in ``inputs`` into ``out``.

    ``settings`` are :class:`FeatureExtractor`'s arguments (``checkpoint``,
    ``model``, ``preset``, ``random_weights``, ``device``, ``dtype``,
    ``batch_size``, preset overrides ...); or pass a ready ``config``
    (:class:`~vadfeat.pipeline.config.ExtractConfig`) or a ready ``extractor``.
    ``layout`` (default ``flat``, or the config's) names where outputs go.  ``sink``:
    what the run writes (default ``"npy"``, or the config's): ``"npy"`` files and
    sidecars per video in ``layout``; ``"webdataset"`` (tar) or ``"parquet"`` shards of
    up to ``shard_size`` videos (default 1000) and ``shard_mb`` MiB of features
    (default 1024) each, committed whole (a video is done, and recorded ``ok``, once
    its shard is; shards have no layouts: ``layout`` must be ``flat``, and ``wait`` is
    refused); or a ready :class:`~vadfeat.store.sinks.Sink` writing below ``out``
    (library only; not with ``devices`` of more than one device): the run plans,
    resumes and writes through it alone (its sidecars still record ``layout``).  The
    sink is not a feature setting: it does not change the settings fingerprint.

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
    store = {"sink": sink if isinstance(sink, str) else None, "shard_size": shard_size,
             "shard_mb": shard_mb}
    ready = None if isinstance(sink, str) else sink
    # every setting refused before any work
    cfg = _config_of(extractor, config, settings, layout, store)
    # every path the run reads: videos, the checkpoint, the PCA file, the grid's visual extraction
    refuse_overlap(out, [*inputs, local_checkpoint(cfg), cfg.pca, cfg.grid_from], command="extract")
    if pipeline not in get_args(Pipeline):
        raise ConfigError(f"pipeline must be one of {', '.join(get_args(Pipeline))}, got {pipeline!r}")
    if pipeline == "processes" and isinstance(workers, int) and workers >= 1:
        from vadfeat.engines.processes import check_pipeline

        check_pipeline(cfg, workers, devices or ())
    if devices and extractor is not None:
        raise ConfigError("devices= builds one extractor per device; pass settings, not one")
    if ready is not None:
        _check_sink(ready, out, devices, cfg)
    if wait and (cfg.sink != "npy" or (ready is not None and ready.buffers)):
        raise ConfigError("--wait cannot be used with a sharded sink: a video's claim is held "
                          "until its shard is committed, so two runs waiting for each other's "
                          "videos would wait forever; run without --wait (videos another run "
                          "holds are reported, exit 3) and run again once it has finished")
    if devices is not None and len(devices) > 1:
        return _extract_on_devices(list(devices), list(inputs), out, cfg, workers=workers,
                                   overwrite=overwrite, root=root, wait=wait, pipeline=pipeline)
    if devices:
        cfg = cfg.replace(device=devices[0])
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    layout = cfg.layout
    planned = _plan(cfg, extractor, inputs, out, root=root, overwrite=overwrite, sink=ready)
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
        ctx.close(failed=True)
        raise
    _run_pipeline(ext, ctx, todo, fp, layout=layout, workers=workers, wait=wait, progress_on=progress,
                  pipeline=pipeline)
    ctx.summary.seconds = time.perf_counter() - t_start
    return ctx.summary


def _check_sink(sink: Sink[Any], out: str | Path, devices: Sequence[str] | None,
                cfg: ExtractConfig) -> None:
    """A given ``sink`` must write below ``out`` (the run's manifest and claims are there),
    in this process, and the config must not name another (ConfigError)."""
    if not isinstance(sink, Sink):
        raise ConfigError(f"sink must be a sink's name or a vadfeat.store.sinks.Sink, got "
                          f"{type(sink).__name__}")
    if cfg.sink != "npy":
        raise ConfigError(f"the config names the {cfg.sink} sink and a ready sink was given too; "
                          "pass one of them")
    if Path(sink.out) != Path(out):
        raise ConfigError(f"the sink writes below {sink.out}, not the output folder {out}")
    if devices is not None and len(devices) > 1:
        raise ConfigError("sink= runs in this process: it cannot be used with devices= of more "
                          "than one device")


def _plan(cfg: ExtractConfig, extractor: FeatureExtractor | None, inputs: Sequence[str | Path],
          out: str | Path, *, root: str | Path | None, overwrite: bool,
          sink: Sink[Any] | None = None,
          ) -> RunSummary | tuple[RunContext, FeatureExtractor, dict[str, Any]]:
    """Plan before the model exists (changed settings stop the run here, in seconds), then
    load it: ``(context, extractor, fingerprint)``, or the summary of a run with nothing to do."""
    layout = cfg.layout
    where: str | Sink[Any] = sink if sink is not None else cfg.sink
    if extractor is not None:
        ext = extractor
        ctx = RunContext.from_inputs(inputs, out, layout=layout, crops=ext.crops,  # type: ignore[arg-type]
                              fingerprint=lambda: ext.fingerprint(layout), root=root,
                              overwrite=overwrite, sink=where, shard_size=cfg.shard_size,
                              shard_mb=cfg.shard_mb)
    else:
        ctx = RunContext.from_inputs(inputs, out, layout=layout, crops=cfg.crops,  # type: ignore[arg-type]
                              fingerprint=planned_fingerprint(cfg, resolve_device(cfg.device).type),
                              root=root, overwrite=overwrite, sink=where,
                              shard_size=cfg.shard_size, shard_mb=cfg.shard_mb)
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
               settings: Mapping[str, Any], layout: str | None,
               store: Mapping[str, Any] | None = None) -> ExtractConfig:
    """The run's config: from ``settings``, or ``config``, or the extractor's; ``layout`` and
    the output settings ``store`` (``sink``, ``shard_size``, ``shard_mb``; None: not given)
    applied."""
    given = {k: v for k, v in (store or {}).items() if v is not None}
    if layout is not None:
        given["layout"] = layout
    if extractor is not None or config is not None:
        if extractor is not None and config is not None:
            raise ConfigError("pass either an extractor or a config, not both")
        if settings:
            raise ConfigError("pass either an extractor or extractor settings, not both"
                              if extractor is not None else
                              "pass either a config or extractor settings, not both")
        cfg = extractor.config if extractor is not None else config
        assert cfg is not None
        if not given:
            return cfg
        cfg = dataclasses.replace(cfg, **given)
        check_layout(cfg.layout)
        check_sink_settings(cfg.sink, cfg.layout, cfg.shard_size, cfg.shard_mb)
        return cfg
    return ExtractConfig.from_settings(settings, **given)


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
                    root=root, overwrite=overwrite, verify=False, sink=cfg.sink,
                    shard_size=cfg.shard_size, shard_mb=cfg.shard_mb)
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


__all__ = ["CONTENT_SETTINGS", "EXIT_ELSEWHERE", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "QUEUE_BYTES",
           "RAW_QUEUE_BYTES", "RUN_SETTINGS", "ByteBudget", "FeatureExtractor", "RunSummary",
           "SnippetReady", "ThreadProducer", "VideoDecoded", "VideoFailed", "VideoFeatures",
           "VideoPassed", "VideoSized", "VideoStarted", "WorkerExited", "event_queue", "extract",
           "handle_stop_signals"]
