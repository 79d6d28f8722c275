"""The Ray Data engine: the local engine's per-video work spread over a Ray cluster.

:func:`extract_ray` does what :func:`vadfeat.engines.local` does, with the same
outputs, sidecars, ``OUT/manifest.jsonl`` and resume rules, but each video is
one task of a Ray Data pipeline (``ray.data.from_items`` -> ``map_batches``
with a pool of actors).  Each actor holds one :class:`~vadfeat.FeatureExtractor`
(the model is loaded once per actor, not per video) and runs
:meth:`FeatureExtractor.process` on one whole video at a time: decode,
model, then the feature file and sidecar written atomically by the worker
straight into the shared output folder.  Only the small manifest entry travels
back; the driver writes every manifest line, so each video gets exactly one
line per run.

A sink that buffers (:attr:`Sink.buffers`: a sharded sink packs videos into shards
that appear whole) is never written by the workers, so two actors never interleave in
one shard: each actor returns the video's features and sidecar (``[T, D]`` float32,
kilobytes) and the driver writes them through the run's one sink, holding the video's
claim and recording it ``ok`` only once :meth:`Sink.take_committed` gives its key (the
last shard's after :meth:`Sink.commit`).

Actors: one per GPU (``num_gpus=1``) when the cluster has GPUs and the device is
``auto`` or ``cuda``; otherwise one per CPU slot (``cpus_per_actor`` CPUs each,
default 1, with that many torch threads).  ``num_actors`` overrides the count.

Resume: the driver computes the settings fingerprint *without building the
model* (preset and overrides, the checkpoint's hash and architecture read from
the file, dtype as resolved for the workers' device) and skips videos whose
outputs already carry it; each actor checks on start that its real
fingerprint is the one the driver used, so a skip decision can never disagree
with what the workers would write.  Workers also take the local engine's
per-video claim (a ``flock`` in ``OUT/.vadfeat-locks``) before extracting, so a
local run or another Ray run on the same folder at the same time never extracts
the same video at once (across machines this needs a shared file system with
``flock``, e.g. NFSv4; without it a warning says so and the run goes on).

Failures: a video that cannot be decoded becomes a ``failed`` manifest entry
with its reason, as in the local engine; so does an unexpected error inside
one video.  A worker process that dies (segfault, out of memory, SIGKILL) is
restarted by Ray and its video retried up to ``_MAX_TASK_RETRIES`` times; a video
whose task Ray gave up on (its node left the cluster) is scheduled again by the
driver on the nodes left; a video this run's workers died on ``_MAX_ATTEMPTS``
times is recorded as failed; the run goes on.  Ray does not tell the driver about
its retries, so each attempt leaves an attempt record
(:mod:`vadfeat.store.attempts`: run, host, pid, node, start time) in
``OUT/.vadfeat-locks`` before extracting; the next attempt finds the records of
the attempts that ended without a result, and the video's manifest line says
``"attempts": N`` and, in ``"retried"``, why each earlier one ended (the process
died, its node was lost, or its run stopped: a rerun after a killed driver reports
each video that run had started and not finished).  Bad settings stop the run
before any work (exit 2).

Running on a cluster of many machines
-------------------------------------

1. Put the inputs, the output folder and the checkpoint on a file system every
   node mounts **at the same path** (NFS, Lustre, CephFS, ...): workers read the
   videos and write the features themselves.
2. Install the same environment on every node: ``pip install 'vadfeat[ray]'``
   (plus the same torch build).
3. Start the cluster: on the head node ``ray start --head --port=6379``, on
   every other node ``ray start --address=HEAD_IP:6379``.  GPUs are detected
   by Ray; ``ray status`` lists what the cluster has.
4. On the head node (or any node of the cluster) run::

       vadfeat extract /shared/videos -o /shared/features \\
           --checkpoint /shared/vit_g_k710.pth --engine ray --ray-address auto

   ``--ray-address auto`` joins the running cluster (``ray://HOST:10001``
   works from outside it); without it, a ``RAY_ADDRESS`` environment variable
   is honoured, else a single-machine cluster is started for the run.
5. Interrupted or crashed runs resume: run the same command again.  Each
   worker removes temporaries left on its own host by killed processes.

Ray is imported only inside these functions: ``import vadfeat`` never imports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import pickle
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from vadfeat._malloc import tune_malloc
from vadfeat.engines.claiming import ClaimResult, claim_video
from vadfeat.engines.context import (
    RunContext,
    RunSummary,
    check_output_folder,
    local_checkpoint,
    planned_fingerprint,
    record_stop,
)
from vadfeat.engines.context import progress as progress_bar
from vadfeat.errors import ConfigError, VadfeatError
from vadfeat.io.inputs import VideoItem, scan
from vadfeat.io.remote import is_url, local_path
from vadfeat.pipeline.config import ExtractConfig
from vadfeat.pipeline.extractor import FeatureExtractor
from vadfeat.store.attempts import Attempt, Attempts
from vadfeat.store.claims import Claims
from vadfeat.store.ownership import refuse_overlap
from vadfeat.store.sinks import check_layout
from vadfeat.store.sinks.base import OutputState, Sink, VideoFeatures

log = logging.getLogger(__name__)

# Attempts after a worker *process* dies on a video (segfault, OOM kill).  Ray
# Data's default is to retry forever, which turns one poisonous file into a
# run that never ends.  Python exceptions are not retried: they are failures.
_MAX_TASK_RETRIES = 2
#: Attempts of one run at one video, counting Ray's own task retries and the driver's
#: passes over videos whose task was lost (its node died): more fail the video.
_MAX_ATTEMPTS = 1 + _MAX_TASK_RETRIES

_INSTALL_HINT = "the Ray engine needs Ray Data: pip install 'vadfeat[ray]'"

# --------------------------------------------------------------------------- driver-side settings


def _ray_config(settings: Mapping[str, Any], config: ExtractConfig | None) -> ExtractConfig:
    """The run's :class:`ExtractConfig` (validated as for the local engine) plus the Ray
    engine's own rules."""
    if "extractor" in settings:
        raise ConfigError("the Ray engine builds a model on every worker: pass extractor settings "
                          "(checkpoint=, model=, ...), not a FeatureExtractor")
    if config is not None and settings:
        raise ConfigError("pass either a config or extractor settings, not both")
    cfg = config if config is not None else ExtractConfig.from_settings(settings)
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device {cfg.device!r} cannot be used with the Ray engine: each actor gets "
                          "its own GPU from Ray; use auto, cuda or cpu")
    return cfg.portable()  # workers may start in another folder (or on another machine)


# --------------------------------------------------------------------------- the actor


class _ExtractActor:
    """Ray Data UDF: one loaded model; turns a batch of video rows into manifest entries.

    Each video is claimed first (:class:`~vadfeat.store.claims.Claims`, as the local engine
    does), so a concurrent run on the same output folder never works on it at once.  The
    actor gets its own copy of the run's sink (``sink``: :meth:`~vadfeat.store.sinks.Sink.at`
    the absolute ``out``) and plans each video's target again from its output stem: no
    target crosses the wire.  An actor has no end of its own in Ray Data, so it commits
    its sink after each video.

    ``buffering`` (the run's sink buffers, :attr:`Sink.buffers`): the actor writes nothing;
    it returns each video's features and sidecar (pickled :class:`VideoFeatures`, a few
    KiB) for the driver to write through the run's one sink; the driver claims the video
    again when the result arrives and holds the claim until the video's shard is committed.

    Before extracting a video the actor adds its :class:`~vadfeat.store.attempts.Attempt`
    (``run``: the driver's run id; host, pid, node, time) to the video's attempt record;
    earlier attempts found there ended without a result (their process, node or run
    died), and the entry says so: ``attempts`` (this one's number) and ``retried`` (why
    each earlier one ended).
    """

    def __init__(self, config: ExtractConfig, layout: str, fingerprint: dict[str, Any],
                 out: str, overwrite: bool, threads: int, sink: Sink[Any], run: str = "",
                 buffering: bool = False) -> None:
        tune_malloc()  # a worker process vadfeat owns: flat memory over long videos
        torch.set_num_threads(max(1, threads))
        self.out = Path(out)
        self.sink = sink
        self.run = run
        self.buffering = buffering
        # The driver cannot check another host's temporaries: each worker cleans its host's.
        # A buffering sink is opened and written by the driver alone: a worker that opened it
        # would only load its catalog (hundreds of MB at 100,000 videos) for nothing.
        if not buffering:
            try:
                self.sink.open()
            except OSError:  # an unwritable folder: the claims and each video's write say so
                log.debug("cannot open the sink in %s", self.out, exc_info=True)
        self.layout = layout
        self.fingerprint = fingerprint
        self.overwrite = overwrite
        self.claims: Claims | None = None
        try:
            self.claims = Claims(self.out)
        except OSError as exc:
            self._no_locks(exc)
        self.attempts: Attempts | None = None
        try:
            self.attempts = Attempts(self.out)
        except OSError as exc:
            log.warning("cannot keep attempt records in %s (%s): retries will not be reported",
                        self.out, exc)
        self.node = _node_id()
        self.extractor = FeatureExtractor.from_config(config)
        actual = self.extractor.fingerprint(layout)
        if actual != fingerprint:
            diff = sorted(k for k in {*actual, *fingerprint} if actual.get(k) != fingerprint.get(k))
            raise ConfigError(
                "the Ray driver and its workers disagree on the settings fingerprint "
                f"(keys: {', '.join(diff)}); resume decisions would be wrong, so nothing was run"
            )

    def _no_locks(self, exc: OSError) -> None:
        # Ray already gives each video to one actor; locks only keep *other* runs out,
        # so a shared file system without flock must not fail every video.
        log.warning("cannot lock videos in %s (%s): another run on this folder at the same "
                    "time could repeat work", self.out, exc)
        self.claims = None

    def _claim(self, key: str, target: Any, source: Path | str,
               planned: OutputState) -> tuple[ClaimResult, tuple[Path, ...]]:
        """:func:`~vadfeat.engines.claiming.claim_video`, the local engine's claim; a lock
        that cannot be taken (no ``flock``) lets the video go on unclaimed."""
        return claim_video(self.claims, key, target, self.fingerprint, sink=self.sink,
                           source=source, overwrite=self.overwrite, planned=planned,
                           lock_error=self._no_locks)

    def _release(self, key: str) -> None:
        if self.claims is not None:
            self.claims.release(key)

    def _begin(self, key: str, video: str) -> dict[str, Any] | None:
        """Record this attempt; return the retry fields of the entry (None: a first attempt),
        or, when this run's workers already died on the video :data:`_MAX_ATTEMPTS` times,
        raise :class:`_GiveUp`."""
        if self.attempts is None:
            return None
        try:
            earlier = self.attempts.begin(key, video, Attempt.here(self.run, self.node))
        except OSError as exc:
            log.warning("%s: cannot write its attempt record (%s)", video, exc)
            return None
        if not earlier:
            return None
        fields = retry_fields(earlier, self.run)
        if sum(a.run == self.run for a in earlier) >= _MAX_ATTEMPTS:
            raise _GiveUp(fields)
        return fields

    def _finish(self, key: str, video: str, entry: dict[str, Any]) -> None:
        if self.attempts is not None:
            try:
                self.attempts.finish(key, video, entry)
            except OSError as exc:
                log.warning("%s: cannot update its attempt record (%s)", video, exc)

    def _finished(self, key: str) -> dict[str, Any] | None:
        """This run's result for the video, kept by an attempt whose returned row was lost
        (a node died after the video was written): given back, not extracted again."""
        if self.attempts is None or self.buffering:  # the lost row held the features
            return None
        record = self.attempts.read(key)
        if record.entry is not None and record.attempts and record.attempts[-1].run == self.run:
            return record.entry
        return None

    def _one(self, item: VideoItem, target: Any, key: str,
             planned: OutputState) -> tuple[dict[str, Any], bytes, bool]:
        """One video: ``(manifest entry, pickled VideoFeatures or b"", whether this run's
        attempt record for it may be ended by the driver)``.  With a buffering sink the
        result goes back to the driver (``b""`` unless ``ok``) and the entry lists, under
        ``stale``, the files of the video's previous output the driver's write deletes."""
        sink, video = self.sink, str(item.name)
        kept = self._finished(key)
        if kept is not None:
            return kept, b"", True
        claimed, stale = self._claim(key, target, item.source, planned)
        if claimed.outcome is not None:
            kind = claimed.outcome.status
            return {"video": video, "status": kind, "error": claimed.reason,
                    "output": sink.describe(target) if kind == "skipped" else None,
                    "num_frames": None, "num_snippets": None, "seconds": 0.0}, b"", False
        results: list[VideoFeatures] = []

        def deliver(result: VideoFeatures) -> str:
            if self.buffering:  # the driver writes, through the run's one sink
                results.append(result)
                return sink.describe(target)
            return sink.write(target, result, stale=stale)
        try:
            try:
                retry = self._begin(key, video)
            except _GiveUp as stop:
                entry = _gave_up(video, stop.fields)
            else:
                entry = self.extractor.process(item, layout=self.layout, deliver=deliver)
                if not self.buffering:
                    sink.commit()
                entry.update(retry or {})
            if not self.buffering:
                self._finish(key, video, entry)
            elif results and entry["status"] == "ok":
                entry["stale"] = [str(p) for p in stale]
                return entry, pickle.dumps(results[0]), True
        finally:
            self._release(key)
        return entry, b"", True

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entries, payloads, attempted = [], [], []
        for source, name, stem, planned in zip(batch["source"], batch["name"],
                                               batch["stem"], batch["planned"], strict=True):
            item = VideoItem(Path(str(source)), PurePosixPath(str(name)))
            target = self.sink.plan(PurePosixPath(str(stem)))
            plan = json.loads(str(planned))
            planned_state = OutputState(plan["status"], stale=tuple(Path(p) for p in plan["stale"]))
            key = self.sink.key(target)  # the local engine's claim key
            t0 = time.perf_counter()
            try:
                entry, payload, mine = self._one(item, target, key, planned_state)
            except Exception as exc:  # one video's bug must not end a day-long run
                log.debug("unexpected error on %s", item.source, exc_info=True)
                entry = {"video": str(item.name), "status": "failed",
                         "error": f"unexpected {type(exc).__name__}: {exc}", "output": None,
                         "num_frames": None, "num_snippets": None,
                         "seconds": round(time.perf_counter() - t0, 3)}
                payload, mine = b"", True
            entries.append(json.dumps(entry))
            payloads.append(payload)
            attempted.append(mine)
        return {"index": np.asarray(batch["index"]), "entry": np.asarray(entries, dtype=object),
                "payload": np.asarray(payloads, dtype=object),
                "attempted": np.asarray(attempted, dtype=bool)}


class _GiveUp(Exception):
    """This run's workers died on the video :data:`_MAX_ATTEMPTS` times: fail it."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self.fields = fields


def _gave_up(video: str, fields: dict[str, Any]) -> dict[str, Any]:
    tried = fields["attempts"] - 1  # the attempt that gives up does not count
    return {"video": video, "status": "failed", "error": _died_reason(tried),
            "output": None, "num_frames": None, "num_snippets": None, "seconds": 0.0,
            **fields, "attempts": tried}


def _died_reason(n: int) -> str:
    return (f"no result after {n} attempts: the worker process died on this video (crash, or "
            "killed for memory); see the Ray logs")


def _node_id() -> str | None:
    """This worker's Ray node id (hex), or None outside Ray."""
    try:
        import ray

        if not ray.is_initialized():  # asking the runtime context would start a cluster
            return None
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # not in a Ray worker (tests call the actor directly)
        log.debug("no Ray node id", exc_info=True)
        return None


def _alive_nodes() -> set[str] | None:
    """The ids of the cluster's live nodes, or None when Ray cannot say."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        return {str(n["NodeID"]) for n in ray.nodes() if n.get("Alive")}
    except Exception:
        log.debug("cannot list the Ray nodes", exc_info=True)
        return None


def describe_attempt(attempt: Attempt, run: str, alive: set[str] | None) -> str:
    """Why ``attempt`` (one that ended without a result) ended, in words for the manifest:
    its run stopped (``attempt.run`` is not ``run``), its node left the cluster (not in
    ``alive``, the live nodes' ids), or its process died."""
    where = (f"node {attempt.node}/pid {attempt.pid}" if attempt.node
             else f"pid {attempt.pid}") + f" on {attempt.host}"
    if attempt.run != run:  # extracting, or extracted and not yet committed by its driver
        return (f"{where} started it at {attempt.started}; its run {attempt.run} stopped "
                "before the video was done")
    if attempt.node and alive is not None and attempt.node not in alive:
        return f"{where} was lost with its node while extracting (started {attempt.started})"
    return f"{where} died while extracting (started {attempt.started})"


def retry_fields(earlier: Sequence[Attempt], run: str) -> dict[str, Any]:
    """The manifest fields of an attempt after ``earlier`` ones that ended without a result:
    ``attempts`` (its number, counting every run's) and ``retried`` (one reason each)."""
    alive = _alive_nodes() if any(a.run == run and a.node for a in earlier) else None
    return {"attempts": len(earlier) + 1,
            "retried": [describe_attempt(a, run, alive) for a in earlier]}


# --------------------------------------------------------------------------- cluster


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # Ray Data needs the ray[data] extra (pyarrow, pandas)
    except ImportError as exc:
        raise ConfigError(f"{_INSTALL_HINT} ({exc})") from exc
    return ray


#: Ray's start-up waits, for the local cluster the engine starts, unless set in the
#: environment: a loaded machine (a 2-core CI runner, a busy login node) starts worker
#: processes (Python, torch) and the GCS slowly, and Ray's defaults (60 s for a worker
#: to register, 20 tries to reach the GCS, 60 s per GCS request) then fail the run.
SLOW_START_ENV = {
    "RAY_worker_register_timeout_seconds": "600",
    "RAY_NUM_REDIS_GET_RETRIES": "300",
    "RAY_gcs_server_request_timeout_seconds": "300",
}
#: Starts of a local cluster tried: Ray waits a fixed 30 s for its node to register
#: ("The current node timed out during startup"), which a loaded machine can miss.
START_TRIES = 3


def init_ray(ray: Any, *, address: str | None = None, **kwargs: Any) -> None:
    """``ray.init``, robust to a slow start.  ``address`` None: the cluster ``RAY_ADDRESS``
    names, else a new local one (never one another process left running), which gets
    :data:`SLOW_START_ENV`'s waits (where the environment sets none) and up to
    :data:`START_TRIES` starts when its node misses Ray's fixed start-up wait."""
    if address is not None:
        ray.init(address=address, **kwargs)
        return
    for name, value in SLOW_START_ENV.items():
        os.environ.setdefault(name, value)
    # Without an address, ray.init() joins a cluster that `ray start` (or another session)
    # left running on this machine; a run asked to start its own must say "local".
    where = {} if os.environ.get("RAY_ADDRESS") else {"address": "local"}
    for attempt in range(1, START_TRIES + 1):
        try:
            ray.init(**where, **kwargs)
            return
        except Exception as exc:  # Ray raises a bare Exception for this
            if "timed out during startup" not in str(exc) or attempt == START_TRIES:
                raise
            log.warning("the local Ray cluster did not start in time (try %d of %d); trying again",
                        attempt, START_TRIES)
            with contextlib.suppress(Exception):
                ray.shutdown()


@contextlib.contextmanager
def _cluster(ray: Any, address: str | None) -> Iterator[bool]:
    """Connect to ``address`` (or reuse an initialised Ray); yields whether we started it."""
    if ray.is_initialized():
        if address is not None:
            log.info("Ray is already initialised in this process; ignoring address %r", address)
        yield False
        return
    t0 = time.perf_counter()
    try:
        init_ray(ray, address=address, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=False)
    except ConnectionError as exc:
        raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from exc
    log.info("Ray %s: %s in %.1f s", ray.__version__,
             f"connected to {address}" if address else "cluster ready", time.perf_counter() - t0)
    try:
        yield True
    finally:
        ray.shutdown()


def _workers(resources: Mapping[str, float], device: str, num_actors: int | None,
             cpus_per_actor: float | None) -> tuple[str, int, float, int]:
    """``(device type, actors, CPUs per actor, GPUs per actor)`` for this cluster."""
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 0))
    if device == "cuda" and gpus == 0:
        raise ConfigError("device cuda asked for, but the Ray cluster has no GPUs (see `ray status`)")
    use_gpu = gpus > 0 and device in ("auto", "cuda")
    per_actor = 1.0 if cpus_per_actor is None else float(cpus_per_actor)
    if per_actor <= 0:
        raise ConfigError(f"cpus_per_actor must be positive, got {cpus_per_actor!r}")
    if num_actors is None:
        num_actors = gpus if use_gpu else max(1, int(cpus // per_actor))
    if not isinstance(num_actors, int) or num_actors < 1:
        raise ConfigError(f"num_actors must be a positive integer, got {num_actors!r}")
    return ("cuda" if use_gpu else "cpu"), num_actors, per_actor, (1 if use_gpu else 0)


def _vadfeat_cause(exc: BaseException) -> VadfeatError | None:
    """The vadfeat error (bad settings, unreadable checkpoint) inside a Ray error, if any."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        err = todo.pop(0)
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, VadfeatError):
            return err
        todo += [getattr(err, "cause", None), err.__cause__, err.__context__, *err.args]
    return None


@contextlib.contextmanager
def _data_context(ray: Any, **fields: Any) -> Iterator[None]:
    ctx = ray.data.DataContext.get_current()
    saved = {k: getattr(ctx, k) for k in fields}
    for k, v in fields.items():
        setattr(ctx, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(ctx, k, v)


# --------------------------------------------------------------------------- the engine


def extract_ray(
    inputs: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    address: str | None = None,
    layout: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    root: str | Path | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float | None = None,
    config: ExtractConfig | None = None,
    **settings: Any,
) -> RunSummary:
    """Extract features for every video in ``inputs`` into ``out`` on a Ray cluster.

    Same inputs, settings (``checkpoint``, ``model``, ``preset``, ``random_weights``,
    ``device``, ``dtype``, ``batch_size``, preset overrides ...), outputs, manifest,
    resume rules and :class:`~vadfeat.RunSummary` as :func:`vadfeat.extract` (or a ready
    ``config``, :class:`~vadfeat.pipeline.config.ExtractConfig`).
    ``address``: a running cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``);
    ``None`` reuses Ray if this process already initialised it, else honours
    ``RAY_ADDRESS``, else starts a local cluster for the run and stops it after.
    ``num_actors`` (default: one per GPU, else one per ``cpus_per_actor`` CPUs) and
    ``cpus_per_actor`` (default 1; also the torch threads of a CPU actor) size the
    actor pool.  ``device`` is ``auto``, ``cuda`` or ``cpu``: Ray hands each actor
    its own GPU.  ``inputs``, ``out`` and the checkpoint must be at the same
    paths on every node.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if layout is not None:
        layout = check_layout(layout)
        if config is not None:
            config = dataclasses.replace(config, layout=layout)
        else:
            settings["layout"] = layout
    cfg = _ray_config(settings, config)
    identity = cfg.identify()  # an unreadable checkpoint stops the run before Ray starts
    if is_url(out) and local_path(str(out)) is None:
        raise ConfigError(f"{out}: the Ray engine writes to a folder (local or shared by the "
                          "nodes); write features to a URL with the local engine "
                          "(vadfeat extract ... -o URL --sink webdataset|parquet)")
    out = Path(local_path(str(out)) or out) if is_url(out) else Path(out)
    # every path the run reads: videos, the checkpoint, the PCA file, the grid's visual extraction
    refuse_overlap(out, [*inputs, local_checkpoint(cfg), cfg.pca, cfg.grid_from], command="extract")
    check_output_folder(out)
    found = scan(list(inputs), root=root)
    ray = _import_ray()
    # The workers get absolute paths; the manifest records outputs under `out` as given,
    # as the local engine does.
    out_abs = out.expanduser().absolute()
    with _cluster(ray, address):
        device, n_actors, actor_cpus, actor_gpus = _workers(
            ray.cluster_resources(), cfg.device, num_actors, cpus_per_actor)
        fingerprint = planned_fingerprint(cfg, device, identity)()
        # Before any actor (and model) starts: changed settings stop the run here.
        ctx = RunContext.from_inputs(inputs, out, layout=cfg.layout, crops=cfg.crops,  # type: ignore[arg-type]
                              fingerprint=lambda: fingerprint, found=found, overwrite=overwrite,
                              sink=cfg.sink, shard_size=cfg.shard_size, shard_mb=cfg.shard_mb)
        buffering = ctx.sink.buffers
        ctx.open(claims=buffering)  # the driver holds a buffering sink's videos till committed
        t_start = time.perf_counter()
        failed = True  # an error on its way out: the run's sink is aborted, not committed
        try:
            todo = ctx.triage()
            bar = progress_bar(len(todo), enabled=progress)
            try:
                run = _Recorder(ctx, _attempt_records(out), fingerprint, bar=bar)
                run.forget_done(todo)
                if todo:
                    log.info("Ray engine: %d video(s) on %d %s actor(s)", len(todo),
                             min(n_actors, len(todo)), device)
                    planned = [json.dumps({"status": st.status, "stale": [
                        str(out_abs / p.relative_to(out)) for p in st.stale]}) for st in ctx.states]
                    worker_cfg = cfg.replace(device=device)
                    _run(ray, todo, run, planned,
                         actor_args={"config": worker_cfg, "layout": cfg.layout,
                                     "fingerprint": fingerprint, "out": str(out_abs),
                                     "overwrite": overwrite,
                                     "threads": max(1, int(actor_cpus)),
                                     "sink": ctx.sink.at(out_abs), "run": ctx.run_id,
                                     "buffering": buffering},
                         pool=lambda: _workers(ray.cluster_resources(), cfg.device, num_actors,
                                               cpus_per_actor)[1],
                         actor_cpus=actor_cpus, actor_gpus=actor_gpus)
                if not ctx.summary.interrupted:
                    run.commit()
                    ctx.settle_elsewhere(run.elsewhere, fingerprint)
            finally:
                bar.close()
            failed = False
        finally:
            ctx.close(failed=failed)
        ctx.summary.seconds = time.perf_counter() - t_start
    return ctx.summary


def _attempt_records(out: Path) -> Attempts | None:
    try:
        return Attempts(out)
    except OSError as exc:  # the claims' folder: the run would have stopped on it already
        log.warning("cannot keep attempt records in %s (%s): retries will not be reported",
                    out, exc)
        return None


class _Recorder:
    """The driver's side of a Ray run: turns the actors' results into manifest lines.

    One line per video per run (a result received twice keeps the first).  With a
    buffering sink (:attr:`Sink.buffers`), the driver claims each returned video (the
    worker released its claim on returning; another run that took it meanwhile keeps it:
    ``elsewhere``), writes it through the run's one sink and records it ``ok`` only when
    :meth:`Sink.take_committed` gives its key (the rest after :meth:`commit`); a video's
    claim is released and its attempt record deleted once its line is written, so the
    driver holds the claims of one shard's videos at most, not the run's.
    """

    def __init__(self, ctx: RunContext, attempts: Attempts | None, fingerprint: dict[str, Any],
                 *, bar: Any) -> None:
        self.ctx = ctx
        self.attempts = attempts
        self.fingerprint = fingerprint
        self.bar = bar
        self.done: set[int] = set()
        self.elsewhere: dict[int, str] = {}
        self.pending: dict[int, dict[str, Any]] = {}  # written to the sink, not yet committed
        self.by_key = {key: vid for vid, key in enumerate(ctx.keys)}

    def forget_done(self, todo: list[int]) -> None:
        """Delete the attempt records of videos that need no work (done before: a run
        killed after writing a video and before deleting its record)."""
        if self.attempts is None or not self.attempts.pending():
            return
        left = set(todo)
        for vid, st in enumerate(self.ctx.states):
            if vid not in left and st.status == "done":
                self.attempts.end(self.ctx.keys[vid])

    def _no_locks(self, exc: OSError) -> None:
        log.warning("cannot lock videos in %s (%s): another run on this folder at the same "
                    "time could repeat work", self.ctx.out, exc)
        self.ctx.claims = None

    def take(self, vid: int, entry: dict[str, Any], payload: bytes = b"", *,
             attempted: bool) -> None:
        """Record ``entry``, an actor's result for video ``vid`` (``payload``: its pickled
        :class:`VideoFeatures` when the driver writes; ``attempted``: the entry comes from
        this run's attempt, whose record is deleted once the line is written)."""
        ctx = self.ctx
        if vid in self.done:  # a retried task cannot produce a second manifest line
            log.warning("%s: result received twice; keeping the first", ctx.items[vid].name)
            return
        self.done.add(vid)
        status = entry["status"]
        if status == "elsewhere":  # settled (and recorded) at the end of the run
            self.elsewhere[vid] = entry["error"]
        elif status == "skipped":  # another run holds it or has just done it
            ctx.record_skipped(vid, entry["error"])
            self._release(vid)
        elif status == "ok" and payload:
            held = self._claim(vid)
            if held is not None:  # another run took it after our worker let it go
                self.elsewhere[vid] = held
                self._end(vid, attempted)
                self.bar.update(1)
                return
            stale = tuple(Path(p) for p in entry.pop("stale", ()))
            try:
                ctx.sink.write(ctx.plan[vid], pickle.loads(payload), stale=stale)
            except OSError as exc:
                self._failed(vid, f"cannot write output: {exc}", entry, attempted)
            else:
                self.pending[vid] = entry
                self.drain()
        elif status == "ok" and ctx.sink.buffers:  # never: a buffering sink's ok has features
            self._failed(vid, "internal error: the worker returned no features", entry, attempted)
        elif status == "ok":
            self._ok(vid, entry, attempted)
        else:
            self._failed(vid, entry["error"], entry, attempted)
        self.bar.update(1)

    def drain(self) -> None:
        """Record ``ok`` the videos whose writes the sink reports committed."""
        for key in self.ctx.sink.take_committed():
            vid = self.by_key.get(key)
            entry = self.pending.pop(vid, None) if vid is not None else None
            if vid is None or entry is None:
                log.warning("the sink reported %r committed, which this run did not write", key)
                continue
            self._ok(vid, entry, True)

    def commit(self) -> None:
        """After the last result: commit the sink and record what it committed.  Raises
        OSError (the sink's)."""
        if not self.pending:
            return
        self.ctx.sink.commit()
        self.drain()
        for vid, entry in sorted(self.pending.items()):  # a sink that broke its contract
            self._failed(vid, "written, but the sink never reported it committed", entry, True)
        self.pending.clear()

    def _ok(self, vid: int, entry: dict[str, Any], attempted: bool) -> None:
        self.ctx.record_ok(vid, num_frames=entry["num_frames"],
                           num_snippets=int(entry["num_snippets"]), seconds=entry["seconds"],
                           warnings=entry.get("warnings"), **_retries(entry))
        self._end(vid, attempted)

    def _failed(self, vid: int, reason: str, entry: dict[str, Any], attempted: bool) -> None:
        self.ctx.record_failed(vid, reason, seconds=entry.get("seconds") or 0.0, **_retries(entry))
        self._end(vid, attempted)

    def _end(self, vid: int, attempted: bool) -> None:
        if attempted and self.attempts is not None:
            try:
                self.attempts.end(self.ctx.keys[vid])
            except OSError as exc:
                log.warning("%s: cannot delete its attempt record (%s)", self.ctx.items[vid].name, exc)
        self._release(vid)

    def _claim(self, vid: int) -> str | None:
        """Take video ``vid``'s claim in the driver, to hold until its shard is committed;
        None when held (or when claims cannot be taken), else who holds it."""
        if self.ctx.claims is None:
            return None
        try:
            return self.ctx.claims.acquire(self.ctx.keys[vid])
        except OSError as exc:
            self._no_locks(exc)
            return None

    def _release(self, vid: int) -> None:
        if self.ctx.claims is not None:
            self.ctx.claims.release(self.ctx.keys[vid])

    def lost(self, vid: int, passes: int) -> bool:
        """The task of ``vid`` gave no result in ``passes`` passes (its worker or node died
        on every Ray retry): whether to schedule it again; if not, it is recorded failed."""
        record = self.attempts.read(self.ctx.keys[vid]) if self.attempts is not None else None
        tried = record.attempts if record is not None else ()
        mine = sum(a.run == self.ctx.run_id for a in tried)
        # No attempt of this run on record: its worker died before starting the video,
        # on every Ray retry (a crash in the task itself); nothing says another pass helps.
        if 0 < mine < _MAX_ATTEMPTS and passes < _MAX_ATTEMPTS:
            return True
        fields: dict[str, Any] = {}
        if tried:
            fields = {**retry_fields(tried, self.ctx.run_id), "attempts": len(tried)}
        self.take(vid, {"status": "failed", "error": _died_reason(max(mine, passes)),
                        "seconds": 0.0, **fields}, attempted=True)
        return False


def _retries(entry: dict[str, Any]) -> dict[str, Any]:
    """The retry fields of an actor's entry, for its manifest line."""
    return {k: entry[k] for k in ("attempts", "retried") if k in entry}


def _run(ray: Any, todo: list[int], run: _Recorder, planned: list[str], *,
         actor_args: dict[str, Any], pool: Any, actor_cpus: float, actor_gpus: int) -> None:
    """Run the actors over ``todo``; ``run`` records each result.  Videos whose task gave
    no result (its worker or node died on every Ray retry: Ray Data drops the block) are
    scheduled again in a new pass, on what is left of the cluster (``pool()``: how many
    actors fit now), while this run's attempts at them (their attempt records) number at
    least one and fewer than :data:`_MAX_ATTEMPTS`."""
    ctx = run.ctx
    remaining = todo
    for passes in range(1, _MAX_ATTEMPTS + 1):
        n_actors = min(pool(), len(remaining))
        if passes > 1:
            n_actors = min(n_actors, _free_slots(ray, actor_cpus, actor_gpus))
            if n_actors == 0:
                for vid in remaining:
                    run.take(vid, {"status": "failed", "seconds": 0.0,
                                   "error": f"its worker or node died, and no slot of the cluster "
                                            f"was free for another try within {_FREE_WAIT_S:.0f} s"},
                             attempted=True)
                return
        _one_pass(ray, remaining, run, planned, actor_args=actor_args, n_actors=n_actors,
                  first=passes == 1, actor_cpus=actor_cpus, actor_gpus=actor_gpus)
        if ctx.summary.interrupted:
            return
        remaining = [vid for vid in remaining if vid not in run.done and run.lost(vid, passes)]
        if not remaining:
            return
        log.warning("%d video(s) lost their worker or node on every try; scheduling them "
                    "again (pass %d of %d)", len(remaining), passes + 1, _MAX_ATTEMPTS)


#: How long a later pass waits for the cluster to free a slot (the last pass's actors
#: leave asynchronously; a node may have gone with its slots).
_FREE_WAIT_S = 120.0


def _free_slots(ray: Any, actor_cpus: float, actor_gpus: int) -> int:
    """Actors that fit in the cluster's free resources now, waiting up to
    :data:`_FREE_WAIT_S` for at least one: Ray Data lets the last pass's actors go only
    once nothing refers to them, and a pool that waits for a slot held by them never starts."""
    gc.collect()  # the last pass's dataset and executor sit in reference cycles
    deadline = time.monotonic() + _FREE_WAIT_S
    while True:
        free = ray.available_resources()
        slots = int(free.get("CPU", 0) // actor_cpus) if actor_cpus > 0 else 1
        if actor_gpus:
            slots = min(slots, int(free.get("GPU", 0) // actor_gpus))
        if slots > 0 or time.monotonic() >= deadline:
            return slots
        time.sleep(0.5)


def _one_pass(ray: Any, todo: list[int], run: _Recorder, planned: list[str], *,
              actor_args: dict[str, Any], n_actors: int, first: bool, actor_cpus: float,
              actor_gpus: int) -> None:
    ctx = run.ctx
    items, summary = ctx.items, ctx.summary
    rows = [{"index": vid, "source": str(items[vid].source), "name": str(items[vid].name),
             "stem": ctx.stems[vid].as_posix(),
             "planned": planned[vid]} for vid in todo]
    # Every video is its own block and an actor takes one at a time: videos differ
    # in length by orders of magnitude, so no actor should queue work another could take.
    # max_errored_blocks=-1: a video whose worker died on every retry is reported
    # below, not allowed to end the run.  A later pass (after a node died) may start
    # with fewer actors than asked for: min_size=1 never waits for a slot that is gone.
    compute = (ray.data.ActorPoolStrategy(size=n_actors, max_tasks_in_flight_per_actor=1)
               if first else
               ray.data.ActorPoolStrategy(min_size=1, max_size=n_actors,
                                          max_tasks_in_flight_per_actor=1))
    with _data_context(ray, enable_progress_bars=False, print_on_execution_start=False,
                       max_errored_blocks=-1):
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        with warnings.catch_warnings():
            # Ray 2.60 deprecates **ray_remote_args but has no named parameter for
            # max_task_retries yet; the bound matters more than the warning.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            ds = ds.map_batches(
                _ExtractActor, fn_constructor_kwargs=actor_args, batch_size=1,
                batch_format="numpy", udf_modifying_row_count=False, compute=compute,
                num_cpus=actor_cpus, num_gpus=actor_gpus, max_task_retries=_MAX_TASK_RETRIES,
            )
        try:
            for row in ds.iter_rows():
                run.take(int(row["index"]), json.loads(row["entry"]), bytes(row["payload"]),
                         attempted=bool(row["attempted"]))
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM/SIGHUP (handle_stop_signals)
            record_stop(summary, exc)
        except ray.exceptions.RayError as exc:
            cause = _vadfeat_cause(exc)
            if cause is None:
                raise
            raise type(cause)(f"on a Ray worker: {cause}") from exc


__all__ = ["extract_ray"]
