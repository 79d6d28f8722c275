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
one video.  A worker process that dies (segfault, out of memory) is restarted
and its video retried up to ``_MAX_TASK_RETRIES`` times, then recorded as
failed; the run goes on.  Bad settings stop the run before any work (exit 2).

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
import json
import logging
import os
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
    progress,
    record_stop,
)
from vadfeat.errors import ConfigError, VadfeatError
from vadfeat.io.inputs import VideoItem, scan
from vadfeat.io.remote import is_url, local_path
from vadfeat.pipeline.config import ExtractConfig
from vadfeat.pipeline.extractor import FeatureExtractor
from vadfeat.store.claims import Claims
from vadfeat.store.ownership import refuse_overlap
from vadfeat.store.sinks import check_layout
from vadfeat.store.sinks.base import OutputState, Sink

log = logging.getLogger(__name__)

# Attempts after a worker *process* dies on a video (segfault, OOM kill).  Ray
# Data's default is to retry forever, which turns one poisonous file into a
# run that never ends.  Python exceptions are not retried: they are failures.
_MAX_TASK_RETRIES = 2

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
    """

    def __init__(self, config: ExtractConfig, layout: str, fingerprint: dict[str, Any],
                 out: str, overwrite: bool, threads: int, sink: Sink[Any]) -> None:
        tune_malloc()  # a worker process vadfeat owns: flat memory over long videos
        torch.set_num_threads(max(1, threads))
        self.out = Path(out)
        self.sink = sink
        # The driver cannot check another host's temporaries: each worker cleans its host's.
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

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entries = []
        sink = self.sink
        for source, name, stem, planned in zip(batch["source"], batch["name"],
                                               batch["stem"], batch["planned"], strict=True):
            item = VideoItem(Path(str(source)), PurePosixPath(str(name)))
            target = sink.plan(PurePosixPath(str(stem)))
            plan = json.loads(str(planned))
            planned_state = OutputState(plan["status"], stale=tuple(Path(p) for p in plan["stale"]))
            key = sink.key(target)  # the local engine's claim key
            t0 = time.perf_counter()
            try:
                claimed, stale = self._claim(key, target, item.source, planned_state)
                if claimed.outcome is not None:
                    kind = claimed.outcome.status
                    entry = {"video": str(item.name), "status": kind, "error": claimed.reason,
                             "output": sink.describe(target) if kind == "skipped" else None,
                             "num_frames": None, "num_snippets": None, "seconds": 0.0}
                else:
                    try:
                        entry = self.extractor.process(
                            item, layout=self.layout,
                            deliver=lambda r: sink.write(target, r, stale=stale))  # noqa: B023 (called at once)
                        sink.commit()
                    finally:
                        self._release(key)
            except Exception as exc:  # one video's bug must not end a day-long run
                log.debug("unexpected error on %s", item.source, exc_info=True)
                entry = {"video": str(item.name), "status": "failed",
                         "error": f"unexpected {type(exc).__name__}: {exc}", "output": None,
                         "num_frames": None, "num_snippets": None,
                         "seconds": round(time.perf_counter() - t0, 3)}
            entries.append(json.dumps(entry))
        return {"index": np.asarray(batch["index"]), "entry": np.asarray(entries, dtype=object)}


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
    """``ray.init``, robust to a slow start: a local cluster (``address`` None) gets
    :data:`SLOW_START_ENV`'s waits (where the environment sets none) and up to
    :data:`START_TRIES` starts when its node misses Ray's fixed start-up wait."""
    if address is not None:
        ray.init(address=address, **kwargs)
        return
    for name, value in SLOW_START_ENV.items():
        os.environ.setdefault(name, value)
    for attempt in range(1, START_TRIES + 1):
        try:
            ray.init(**kwargs)
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
                              fingerprint=lambda: fingerprint, found=found, overwrite=overwrite)
        ctx.open()
        t_start = time.perf_counter()
        failed = True  # an error on its way out: the run's sink is aborted, not committed
        try:
            todo = ctx.triage()
            if todo:
                log.info("Ray engine: %d video(s) on %d %s actor(s)", len(todo),
                         min(n_actors, len(todo)), device)
                planned = [json.dumps({"status": st.status, "stale": [
                    str(out_abs / p.relative_to(out)) for p in st.stale]}) for st in ctx.states]
                worker_cfg = cfg.replace(device=device)
                elsewhere = _run(ray, todo, ctx, planned,
                                 actor_args={"config": worker_cfg, "layout": cfg.layout,
                                             "fingerprint": fingerprint, "out": str(out_abs),
                                             "overwrite": overwrite,
                                             "threads": max(1, int(actor_cpus)),
                                             "sink": ctx.sink.at(out_abs)},
                                 n_actors=min(n_actors, len(todo)), actor_cpus=actor_cpus,
                                 actor_gpus=actor_gpus, progress_on=progress)
                if not ctx.summary.interrupted:
                    ctx.settle_elsewhere(elsewhere, fingerprint)
            failed = False
        finally:
            ctx.close(failed=failed)
        ctx.summary.seconds = time.perf_counter() - t_start
    return ctx.summary


def _run(ray: Any, todo: list[int], ctx: RunContext, planned: list[str], *,
         actor_args: dict[str, Any], n_actors: int, actor_cpus: float,
         actor_gpus: int, progress_on: bool) -> dict[int, str]:
    """Run the actors; return the videos another process held (for :meth:`RunContext.settle_elsewhere`)."""
    items, summary = ctx.items, ctx.summary
    rows = [{"index": vid, "source": str(items[vid].source), "name": str(items[vid].name),
             "stem": ctx.stems[vid].as_posix(),
             "planned": planned[vid]} for vid in todo]
    done: set[int] = set()
    elsewhere: dict[int, str] = {}
    bar = progress(len(todo), enabled=progress_on)

    def record(vid: int, entry: dict[str, Any]) -> None:
        done.add(vid)
        if entry["status"] == "elsewhere":  # settled (and recorded) at the end of the run
            elsewhere[vid] = entry["error"]
        elif entry["status"] == "ok":
            ctx.record_ok(vid, num_frames=entry["num_frames"], num_snippets=int(entry["num_snippets"]),
                          seconds=entry["seconds"], warnings=entry.get("warnings"))
        elif entry["status"] == "skipped":  # another run holds it or has just done it
            ctx.record_skipped(vid, entry["error"])
        else:
            ctx.record_failed(vid, entry["error"], seconds=entry["seconds"])
        bar.update(1)

    # Every video is its own block and an actor takes one at a time: videos differ
    # in length by orders of magnitude, so no actor should queue work another could take.
    # max_errored_blocks=-1: a video whose worker died on every retry is reported
    # below, not allowed to end the run.
    with _data_context(ray, enable_progress_bars=False, print_on_execution_start=False,
                       max_errored_blocks=-1):
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        with warnings.catch_warnings():
            # Ray 2.60 deprecates **ray_remote_args but has no named parameter for
            # max_task_retries yet; the bound matters more than the warning.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            ds = ds.map_batches(
                _ExtractActor, fn_constructor_kwargs=actor_args, batch_size=1,
                batch_format="numpy", udf_modifying_row_count=False,
                compute=ray.data.ActorPoolStrategy(size=n_actors, max_tasks_in_flight_per_actor=1),
                num_cpus=actor_cpus, num_gpus=actor_gpus, max_task_retries=_MAX_TASK_RETRIES,
            )
        try:
            for row in ds.iter_rows():
                vid = int(row["index"])
                if vid in done:  # a retried task cannot produce a second manifest line
                    log.warning("%s: result received twice; keeping the first", items[vid].name)
                    continue
                record(vid, json.loads(row["entry"]))
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM/SIGHUP (handle_stop_signals)
            record_stop(summary, exc)
        except ray.exceptions.RayError as exc:
            cause = _vadfeat_cause(exc)
            if cause is None:
                raise
            raise type(cause)(f"on a Ray worker: {cause}") from exc
        finally:
            bar.close()
    if not summary.interrupted:
        for vid in todo:
            if vid not in done:
                record(vid, {"video": str(items[vid].name), "status": "failed",
                             "error": f"no result after {1 + _MAX_TASK_RETRIES} attempts: the "
                                      "worker process died on this video (crash, or killed for "
                                      "memory); see the Ray logs",
                             "output": None, "num_frames": None, "num_snippets": None,
                             "seconds": 0.0})
    return elsewhere


__all__ = ["extract_ray"]
