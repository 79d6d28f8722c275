"""The process pipeline: decode and per-frame transform in worker processes.

The thread pipeline (:mod:`vadfeat.engines.local`) decodes in threads of the model's
process; the share of per-frame work that holds the GIL caps it far below what a GPU
consumes (BENCHMARKS.md, section 9).  Here ``workers`` processes run
:func:`~vadfeat.pipeline.stream.snippet_stream` instead, as ``torch.utils.data``
workers: a :class:`~torch.utils.data.DataLoader` over an
:class:`~torch.utils.data.IterableDataset` (``batch_size=None``, ``in_order=False``,
``prefetch_factor`` :data:`PREFETCH`, no persistent workers).  Snippets reach the
model's process through torch's shared-memory tensor pickling, so a snippet is
written once by its worker and never copied again on the CPU.  Everything after the
loader is the thread pipeline's: the same typed events through the same bounded queue
into the same :class:`~vadfeat.engines.consumer.Consumer` (batching across videos,
atomic writes, the manifest), so the outputs are the same bytes.

Three threads of the model's process drive it (:class:`ProcessProducer`, this pipeline's
:class:`~vadfeat.engines.producer.Producer`; the model side is the thread pipeline's):

- the **dispatcher** claims a video (:class:`~vadfeat.store.claims.Claims`, an
  ``flock`` held by this process) just before it puts the video in the work queue
  that the workers read, and keeps at most ``workers`` videos claimed and not yet
  decoded (claims are never taken far ahead of the work);
- the **feeder** iterates the loader and turns what the workers send into events;
  when a worker process dies (a segfault or an ``_exit`` inside FFmpeg), the video
  it was decoding fails with the reason (``the decode worker process died (exit
  code N) while decoding it``), its loader is retired once the other workers have
  finished their videos, and a fresh loader does what is left;
- the **model side** (the calling thread) runs :func:`~vadfeat.engines.consumer.drain`.

Workers are started with ``forkserver`` (spawn-like: a fresh interpreter that
imported vadfeat once; every worker is forked from it, not from the model's
process), so they inherit no file descriptor of the model's process: no claim's
``flock`` can outlive its release there, and no CUDA state.  Workers never touch
CUDA (they run with ``CUDA_VISIBLE_DEVICES`` empty); with ``preprocess="device"``
on CUDA the loader pins the raw snippets in the model's process.  Workers ignore
SIGINT (Ctrl-C reaches the whole process group): the model's process decides, sets
a shared stop event that every worker checks between snippets, and shuts the loader
down, so a stopped run leaves no worker process behind; a watchdog thread in each
worker ends it within a second when the model's process died (SIGKILL), and the
forkserver ends with the last of them.

Memory: finished snippets that wait for the model are at most
``PREFETCH * workers`` (results of the loader's outstanding tasks) + the event
queue's depth (``max(2, 2 * clips_per_batch)``, as in the thread pipeline) + 1 (in
the feeder's hands); each worker also holds the frames of the snippet it is making.
The event queue is also bounded by its bytes
(:func:`vadfeat.engines.local.event_queue`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import inspect
import logging
import multiprocessing
import os
import queue
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vadfeat._malloc import tune_malloc
from vadfeat.engines.claiming import Outcome
from vadfeat.engines.context import RunContext
from vadfeat.engines.events import (
    Event,
    SnippetReady,
    VideoDecoded,
    VideoFailed,
    VideoSized,
    VideoStarted,
    WorkerExited,
    put_unless_stopped,
)
from vadfeat.engines.producer import (
    Claim,
    Skip,
    claim_or_report,
    join_threads,
)
from vadfeat.errors import ConfigError, VideoError
from vadfeat.pipeline.config import ExtractConfig, resolve_device
from vadfeat.pipeline.extractor import FeatureExtractor
from vadfeat.pipeline.stream import snippet_stream
from vadfeat.pipeline.transforms import FrameTransform

log = logging.getLogger(__name__)

#: ``prefetch_factor`` of the loader: finished snippets each worker may have waiting.
PREFETCH = 2
#: How workers start: a fresh interpreter (no inherited descriptors, hence no claims).
START_METHOD = "forkserver"
# How often an idle worker looks at the work queue and the stop events.
_POLL_S = 0.2
# Test hook: the name of a video whose worker process exits (os._exit(3), or with the
# signal named after a colon, e.g. "v1.mp4:SIGSEGV") after sending its first snippet.
# Read in the model's process and handed to the workers with the dataset, so it works
# whatever the start method.
CRASH_ENV = "VADFEAT_TEST_WORKER_CRASH"
# Loaders in a row that delivered nothing while their workers died: the workers cannot
# start (e.g. no shared memory); stop trying and fail what is left.
_MAX_BARREN_LOADERS = 2
# Items as they come (torch >= 2.6): a worker busy with a big snippet does not hold back the
# others' (older torch delivers them in task order: slower, the same outputs).
_IN_ORDER: dict[str, Any] = (
    {"in_order": False} if "in_order" in inspect.signature(DataLoader).parameters else {})
#: Where torch's shared-memory tensors live (Linux).
SHM_DIR = "/dev/shm"
#: Why a video failed when shared memory ran out (a worker or the model's process: ENOSPC).
SHM_FULL = (f"shared memory ({SHM_DIR}) is full: the decode workers could not hand snippets to the "
            "model's process; enlarge it (e.g. docker run --shm-size=8g), use fewer --workers, or "
            "--pipeline threads")
# How long a failed fetch waits for its worker to be seen dead.
_DEATH_WAIT_S = 5.0


# --------------------------------------------------------------------------- in the worker processes


def _worker_init(worker_id: int) -> None:
    """Each worker: no CUDA, Ctrl-C left to the model's process, malloc tuned, and a
    watchdog that ends the worker when the model's process is gone."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # an accidental .cuda() fails instead of taking a GPU
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_malloc()
    info = get_worker_info()
    owner = getattr(info.dataset, "owner", None) if info is not None else None
    if owner is not None:
        threading.Thread(target=_watch, args=(owner,), daemon=True, name="vadfeat-watchdog").start()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc to ask: the signal said it exists


def _watch(owner: int) -> None:
    """A worker's watchdog thread: exit when the model's process ``owner`` has ended.

    Neither the worker's parent (the forkserver, which every worker keeps alive: it
    holds the descriptor whose end the forkserver waits for) nor torch's own watchdog
    (it asks for the parent) sees a model process killed with SIGKILL; without this a
    worker waiting for its next task would wait forever.
    """
    while _alive(owner):
        time.sleep(_POLL_S * 2.5)
    os._exit(0)


@dataclass(frozen=True)
class _SharedTransform(FrameTransform):
    """The preset's transform, assembling each snippet straight into shared memory: handing
    it to the model's process then copies nothing (torch shares a storage that is already
    shared as it is)."""

    def assemble(self, prepared: Sequence[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
        if out is None and prepared:
            p = self.preset
            out = torch.empty((p.crops, 3, len(prepared), p.size, p.size)).share_memory_()
        return super().assemble(prepared, out)


def _as_is(item: Any) -> Any:
    """The loader's collate function: items travel as the worker made them."""
    return item


class _Decode(IterableDataset):
    """One worker's stream of items: it takes ``(vid, source, skip)`` from ``work`` and sends

    ``("start", vid, pid)``, ``("size", vid, estimated snippets)`` once the video is open,
    then ``("snippet", vid, index, (first, last), clip)`` per snippet in temporal order
    (``clip`` None for the first ``skip``, saved by an interrupted run), then ``("done",
    vid, snippets, meta)`` or ``("failed", vid, reason)``.  It ends when ``finished`` is
    set and the work queue is empty, when ``retire`` is set (between videos) or when
    ``halt`` is set (between snippets); its watchdog ends it when the model's process is
    gone.  ``made`` counts the snippets
    finished by all workers.
    """

    def __init__(self, config: ExtractConfig, work: Any, *, finished: Any, halt: Any, retire: Any,
                 made: Any, crash: str | None, crops_on_device: bool = False) -> None:
        self.config = config
        self.crops_on_device = crops_on_device
        self.work = work
        self.finished = finished
        self.halt = halt
        self.retire = retire
        self.made = made
        self.crash = crash
        self.owner = os.getpid()  # the model's process (workers watch it: _watch)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        transform = _SharedTransform(self.config.preset)
        while not (self.halt.is_set() or self.retire.is_set()):
            try:
                vid, source, skip = self.work.get(timeout=_POLL_S)
            except queue.Empty:
                if self.finished.is_set():
                    return
                continue
            yield ("start", vid, os.getpid())
            yield from self._video(vid, Path(source), transform, skip)

    def _video(self, vid: int, source: Path, transform: Any, skip: int = 0) -> Iterator[tuple[Any, ...]]:
        count = 0
        sized: list[int | None] = []
        try:
            stream = snippet_stream(source, self.config, transform, pin_memory=False,
                                    crops_on_device=self.crops_on_device, skip=skip,
                                    on_open=sized.append)
            while True:
                try:
                    rng, clip = next(stream)
                    if clip is not None and not clip.is_shared():
                        # Raw frames: into shared memory here, where a full /dev/shm is
                        # caught and named (torch's pickler would do it in its queue thread).
                        clip.share_memory_()
                except StopIteration as done:
                    yield ("done", vid, count, done.value)
                    return
                if sized:
                    yield ("size", vid, sized.pop())
                with self.made.get_lock():
                    self.made.value += 1
                yield ("snippet", vid, count, rng, clip)
                count += 1
                if self.crash is not None:
                    _maybe_crash(self.crash, source)
                if self.halt.is_set():
                    stream.close()
                    return
        except VideoError as exc:
            yield ("failed", vid, str(exc))
        except Exception as exc:  # one video's bug must not end a day-long run
            full = shm_full_segment(exc)
            if full is not None:  # torch left the segment it could not fill: remove it
                release_segment(full)
                yield ("failed", vid, SHM_FULL.replace("the decode workers could not hand snippets",
                                                       "a snippet of this video could not be handed"))
                return
            log.debug("unexpected error on %s", source, exc_info=True)
            yield ("failed", vid, f"unexpected {type(exc).__name__}: {exc}")


_SHM_FULL = re.compile(r"shared memory.*<(/?torch_[\w.-]+)>.*(No space left on device|\(28\))",
                       re.DOTALL)


def shm_full_segment(exc: BaseException) -> str | None:
    """The name of the segment (``torch_<pid>_...``) when ``exc`` is torch's error for a full
    ``/dev/shm`` ("unable to allocate shared memory(shm) for file </torch_...>: No space
    left on device (28)"), else ``None``."""
    if not isinstance(exc, RuntimeError):
        return None
    found = _SHM_FULL.search(str(exc))
    return found.group(1).lstrip("/") if found else None


def release_segment(name: str, *, where: str | None = None) -> bool:
    """Remove the shared-memory segment ``name`` (a ``torch_*`` file) that torch created and
    could not fill: it unlinks a segment only once it is mapped, so this one would stay
    in ``/dev/shm`` (taking its space) after every process had ended."""
    if not name.startswith("torch_") or "/" in name:
        return False
    try:
        os.unlink(os.path.join(where or SHM_DIR, name))
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("cannot remove the shared-memory segment %s: %s", name, exc)
        return False
    return True


def release_segments_of(pids: set[int], *, where: str | None = None) -> list[str]:
    """Remove the ``torch_<pid>_*`` segments of the worker processes ``pids`` (ended):
    what a worker killed while creating one left behind."""
    path = where or SHM_DIR
    try:
        names = os.listdir(path)
    except OSError:
        return []
    removed = []
    for name in names:
        parts = name.split("_")
        if (len(parts) >= 3 and parts[0] == "torch" and parts[1].isdigit()
                and int(parts[1]) in pids and release_segment(name, where=path)):
            removed.append(name)
    if removed:
        log.info("removed %d shared-memory segment(s) left by decode workers", len(removed))
    return removed


def _maybe_crash(spec: str, source: Path) -> None:
    name, _, sig = spec.partition(":")
    if source.name == name:
        if sig:
            os.kill(os.getpid(), signal.Signals[sig])
        os._exit(3)


# --------------------------------------------------------------------------- the model's process


class _Dispatcher:
    """Claims videos in the model's process and hands them to the workers, at most
    ``limit`` claimed and not yet decoded; :meth:`run` is a thread."""

    def __init__(self, ctx: RunContext, todo: list[int], claim: Claim,
                 events: queue.Queue, stop: threading.Event, work: Any, finished: Any,
                 limit: int, skip: Skip | None = None) -> None:
        self.ctx = ctx
        self.skip = skip or (lambda vid: 0)
        self.todo: deque[int] = deque(todo)
        self.claim = claim
        self.events = events
        self.stop = stop
        self.work = work
        self.finished = finished
        self.limit = limit
        self.open: dict[int, int | None] = {}  # claimed, not decoded: vid -> its worker's pid (None: queued)
        self.claiming: int | None = None  # taken from `todo`, its claim not settled yet
        self.cond = threading.Condition()
        self.aborted = False

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # a bug in vadfeat: say so loudly, then end (leftovers are named)
            log.exception("the process pipeline's dispatcher crashed")
        finally:
            self.finished.set()  # idle workers may end
            if not self.stop.is_set():
                self.events.put(WorkerExited())

    def _next(self) -> int | None:
        with self.cond:
            while True:
                if self.stop.is_set() or self.aborted or (not self.todo and not self.open):
                    return None
                if self.todo and len(self.open) < self.limit:
                    self.claiming = self.todo.popleft()
                    return self.claiming
                self.cond.wait(0.5)

    def _run(self) -> None:
        while (vid := self._next()) is not None:
            try:
                self._dispatch(vid)
            finally:
                with self.cond:
                    self.claiming = None
                    self.cond.notify_all()

    def _dispatch(self, vid: int) -> None:
        """Claim ``vid`` and put it on the work queue, or say why not."""
        result = claim_or_report(self.claim, vid, self.ctx.items[vid].source, self.events, self.stop)
        if result is None:
            return
        if result.outcome is Outcome.DEFERRED:  # held elsewhere and we may wait: first do the others
            with self.cond:
                self.todo.append(vid)
            return
        with self.cond:
            self.open[vid] = None
        if put_unless_stopped(self.events, VideoStarted(vid), self.stop):
            self.work.put((vid, str(self.ctx.items[vid].source), self.skip(vid)))

    # ------------------------------------------------------------------ called by the feeder

    def started(self, vid: int, pid: int) -> None:
        with self.cond:
            if vid in self.open:
                self.open[vid] = pid

    def done(self, vid: int) -> None:
        with self.cond:
            self.open.pop(vid, None)
            self.cond.notify_all()

    def lost(self, pids: set[int]) -> list[tuple[int, int]]:
        """The videos the workers ``pids`` were decoding: ``(vid, pid)``, no longer open."""
        with self.cond:
            gone = [(vid, pid) for vid, pid in self.open.items() if pid in pids]
            for vid, _ in gone:
                del self.open[vid]
            self.cond.notify_all()
        return gone

    def untaken(self) -> list[tuple[int, int | None]]:
        """After a loader's end (no worker alive): claimed videos not decoded and not in
        the work queue, ``(vid, pid)``: a worker died without the loader saying so, or
        between taking the video and saying so (``pid`` None)."""
        with self.cond:  # no put meanwhile: what the queue holds is all there is
            queued: list[tuple[int, str, int]] = []
            with contextlib.suppress(queue.Empty):
                while True:
                    queued.append(self.work.get(timeout=0.2))
            for entry in queued:
                self.work.put(entry)
            waiting = {entry[0] for entry in queued}
            gone = [(vid, pid) for vid, pid in self.open.items() if vid not in waiting]
            for vid, _ in gone:
                del self.open[vid]
            self.cond.notify_all()
        return gone

    def complete(self) -> bool:
        """No video left to claim, none being claimed and none claimed and undecoded."""
        with self.cond:
            return not self.todo and not self.open and self.claiming is None

    def abort(self, *, keep: bool = False) -> list[int]:
        """Claim nothing more; return the videos never claimed (``keep``: leave them for a
        later :meth:`abort` to return)."""
        with self.cond:
            self.aborted = True
            left = list(self.todo)
            if not keep:
                self.todo = deque()
            self.cond.notify_all()
        return left


def death_reason(exitcode: int | None) -> str:
    """Why a video failed when its worker process died (``exitcode`` as multiprocessing
    gives it: negative for a signal, ``None`` when unknown)."""
    if exitcode is None:
        how = "unknown exit code"
    elif exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
        if -exitcode == signal.SIGBUS:  # what a full /dev/shm does to the process writing to it
            how += f"; is {SHM_DIR} full?"
    else:
        how = f"exit code {exitcode}"
    return f"the decode worker process died ({how}) while decoding it"


def check_pipeline(config: ExtractConfig, workers: int, devices: Sequence[str] = ()) -> None:
    """Refuse (:class:`ConfigError`, before any work) what the process pipeline cannot do:
    torchcodec decoding on a CUDA device (NVDEC runs in the model's process; worker
    processes never touch CUDA), or snippets that do not fit in shared memory
    (:func:`check_shared_memory`)."""
    if config.decoder == "torchcodec" and any(
            resolve_device(d).type == "cuda" for d in (config.device, *devices)):
        raise ConfigError("--decoder torchcodec on a CUDA device decodes with NVDEC in the model's "
                          "process; --pipeline processes decodes on the CPU in worker processes "
                          "(which never touch CUDA): use --pipeline threads with it")
    check_shared_memory(config, workers)


def check_shared_memory(config: ExtractConfig, workers: int, *, where: str | None = None) -> None:
    """Refuse (:class:`ConfigError`, before any work) a run whose snippets cannot fit in
    shared memory: torch hands tensors over through ``/dev/shm``, which containers keep
    small (Docker: 64 MiB), and a worker that runs out of it dies of SIGBUS.

    Counts :func:`in_flight_bound` snippets, one per worker being made, and one batch of
    the model side, of ``[crops, 3, T, size, size]`` float32.  Raw snippets
    (``preprocess="device"``) depend on each video's frame size and are not counted.
    """
    path = where or SHM_DIR
    if config.preprocess == "device" or not os.path.isdir(path):
        return
    p = config.preset
    snippet = p.crops * 3 * p.clip_len * p.size * p.size * 4
    per_batch = config.snippets_per_batch(config.input_kind())
    count = PREFETCH * workers + max(2, 2 * per_batch) + 1 + workers + per_batch
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    if snippet * count > free:
        mib = 2**20
        raise ConfigError(
            f"the process pipeline hands snippets over through shared memory ({path}): {workers} "
            f"worker(s) may hold up to {snippet * count / mib:,.0f} MiB there ({count} snippets of "
            f"{snippet / mib:,.1f} MiB), but it has {free / mib:,.0f} MiB free; enlarge it (e.g. "
            "docker run --shm-size=8g), use fewer --workers, or --pipeline threads")


def _reported_pids(exc: Exception) -> set[int]:
    """The worker pids the loader's "exited unexpectedly" error names (else none)."""
    if "exited unexpectedly" not in str(exc):
        return set()
    return {int(p) for p in re.findall(r"\d+", str(exc).split("pid", 1)[-1])}


def _dead_workers(it: Any, exc: Exception, known: set[int]) -> dict[int, int | None]:
    """``pid -> exit code`` of the loader's workers that died and are not in ``known``.

    The loader raises when it finds a worker dead; a snippet whose worker died before
    the model's process fetched its shared memory raises too (the descriptor is passed
    by the worker), and then the worker may not be seen dead yet: wait for it a little.
    The exit codes are on the loader's worker process objects (``_workers``, not public
    API: without them the reason says the exit code is unknown).
    """
    reported = _reported_pids(exc)
    if reported and reported <= known:  # the loader's own report of a death handled already
        return {}
    deadline = time.monotonic() + _DEATH_WAIT_S
    while True:
        dead = {w.pid: w.exitcode for w in getattr(it, "_workers", ())
                if w.pid is not None and w.pid not in known and not w.is_alive()}
        if dead or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not dead:
        dead = {p: None for p in reported - known}
    return dead


class _Feeder:
    """Runs loaders over the work queue, one after another, and turns their items into
    events; :meth:`run` is a thread."""

    def __init__(self, ext: FeatureExtractor, dispatcher: _Dispatcher, events: queue.Queue,
                 stop: threading.Event, mp: Any, *, workers: int, work: Any, finished: Any,
                 halt: Any, made: Any) -> None:
        self.ext = ext
        self.dispatcher = dispatcher
        self.events = events
        self.stop = stop
        self.mp = mp
        self.workers = workers
        self.work = work
        self.finished = finished
        self.halt = halt
        self.made = made
        self.crash = os.environ.get(CRASH_ENV) or None
        self.loaders = 0
        # Raw frames for a CUDA device are pinned here (workers never touch CUDA), so
        # that FeatureExtractor.prepare uploads them asynchronously.
        # (5/10 crops on CUDA: the scaled frames, whose crops are cut on the device).
        self.crops_on_device = bool(getattr(ext, "crops_on_device", False))
        self.pin = ext.device.type == "cuda" and (ext.preprocess == "device" or self.crops_on_device)
        self.received: dict[int, int] = {}  # snippets received per open video
        self.pids: set[int] = set()  # every worker process of every loader
        self.failure: str | None = None  # why the videos left were not done, when known

    def run(self) -> None:
        try:
            self._run()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                log.exception("the process pipeline's feeder crashed")
            else:  # no room for a loader's semaphores and queues: say which room
                self.failure = SHM_FULL
                log.error("%s", SHM_FULL)
        except Exception:  # a bug in vadfeat, not a bad video: say so loudly, then end
            log.exception("the process pipeline's feeder crashed")
        finally:
            # Nothing is decoded after this: claim no more (a no-op once all is done), so
            # that the dispatcher ends too; the model side names what was left.
            self.dispatcher.abort(keep=True)
            if not self.stop.is_set():
                self.events.put(WorkerExited())

    def _run(self) -> None:
        barren = 0
        while not self.stop.is_set():
            if self.dispatcher.complete():  # e.g. every video was held elsewhere
                return
            delivered, died = self._one_loader()
            if self.stop.is_set() or self.dispatcher.complete():
                return
            for vid, pid in self.dispatcher.untaken():
                reason = death_reason(None)
                self._put(VideoFailed(vid, reason if pid is not None else
                                      reason.replace("while decoding it", "as it took this video")))
            if self.finished.is_set():  # the dispatcher has ended: nothing more will come
                return
            barren = barren + 1 if died and not delivered else 0
            if barren >= _MAX_BARREN_LOADERS:
                log.error("the decode worker processes die before delivering anything; "
                          "the videos left are not done")
                self.dispatcher.abort(keep=True)  # the model side names them
                return
            if not self.dispatcher.complete():
                log.warning("starting fresh decode worker processes for the videos left")

    def _put(self, event: Event) -> bool:
        return put_unless_stopped(self.events, event, self.stop)

    def _one_loader(self) -> tuple[int, bool]:
        """Run one loader to its end: ``(items delivered, whether a worker died)``."""
        retire = self.mp.Event()
        # Workers decode on the CPU whatever the run's device (check_pipeline refuses
        # torchcodec's NVDEC here); the device is the model's business, not theirs.
        config = dataclasses.replace(self.ext.config, device="cpu")
        dataset = _Decode(config, self.work, finished=self.finished, halt=self.halt, retire=retire,
                          made=self.made, crash=self.crash, crops_on_device=self.crops_on_device)
        # No pin_memory thread: a snippet whose worker died cannot be fetched, and that
        # must surface here (where the death is handled), not end the pin thread.
        loader = DataLoader(dataset, batch_size=None, num_workers=self.workers,
                            prefetch_factor=PREFETCH, persistent_workers=False,
                            multiprocessing_context=self.mp, worker_init_fn=_worker_init,
                            collate_fn=_as_is, **_IN_ORDER)
        self.loaders += 1
        delivered, died = 0, False
        known: set[int] = set()
        t0 = time.perf_counter()
        it = iter(loader)
        self.pids.update(w.pid for w in getattr(it, "_workers", ()) if w.pid is not None)
        try:
            while True:
                try:
                    item = next(it)
                    if not delivered:
                        log.debug("loader %d: first item after %.2f s", self.loaders,
                                  time.perf_counter() - t0)
                except StopIteration:
                    break
                except Exception as exc:  # a worker died (or a snippet it sent died with it)
                    dead = _dead_workers(it, exc, known)
                    if not dead:
                        if _reported_pids(exc) and _reported_pids(exc) <= known:
                            continue  # a death seen first as a lost snippet, now reported
                        raise
                    known.update(dead)
                    died = True
                    self._deaths(dead)
                    retire.set()  # the others finish their videos, then a fresh loader starts
                    continue
                delivered += 1
                if not self._forward(item):
                    break
        finally:
            t1 = time.perf_counter()
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()  # joins the workers (they see `halt` within a snippet)
            del it
            log.debug("loader %d: ended after %.2f s, shut down in %.2f s", self.loaders, t1 - t0,
                      time.perf_counter() - t1)
        return delivered, died

    def _deaths(self, dead: dict[int, int | None]) -> None:
        for vid, pid in self.dispatcher.lost(set(dead)):
            log.error("decode worker process %d died while decoding %s", pid, self.ext_name(vid))
            self._put(VideoFailed(vid, death_reason(dead[pid])))

    def ext_name(self, vid: int) -> str:
        return str(self.dispatcher.ctx.items[vid].name)

    def _forward(self, item: tuple[Any, ...]) -> bool:
        kind, vid = item[0], item[1]
        event: Event
        if kind == "start":
            self.dispatcher.started(vid, item[2])
            self.pids.add(item[2])
            return True
        if kind == "size":
            event = VideoSized(vid, item[2])
        elif kind == "snippet":
            _, _, index, rng, clip = item
            self.received[vid] = self.received.get(vid, 0) + 1
            event = SnippetReady(vid, index, (int(rng[0]), int(rng[1])),
                                 clip.pin_memory() if self.pin and clip is not None else clip)
        elif kind == "done":
            self.dispatcher.done(vid)
            if self.received.pop(vid, 0) == item[2]:
                event = VideoDecoded(vid, item[2], item[3])
            else:  # its worker died after sending a snippet and before it was fetched
                event = VideoFailed(vid, "a snippet was lost when its decode worker process died")
        else:
            self.received.pop(vid, None)
            event = VideoFailed(vid, item[2])
            self.dispatcher.done(vid)
        return self._put(event)


def in_flight_bound(workers: int, ext: FeatureExtractor) -> int:
    """Most finished snippets waiting for the model (see the module docstring)."""
    return PREFETCH * workers + _depth(ext) + 1


def _depth(ext: FeatureExtractor) -> int:
    return max(2, 2 * ext.clips_per_batch)


def _context() -> Any:
    mp = multiprocessing.get_context(START_METHOD)
    # Every worker is forked from one server that imported vadfeat (and torch) once;
    # it has no effect once that server runs.
    mp.set_forkserver_preload([__name__])
    return mp


class ProcessProducer:
    """The :class:`~vadfeat.engines.producer.Producer` of ``pipeline="processes"``: the
    dispatcher and the feeder threads over ``workers`` decode worker processes (see the
    module docstring).  ``unavailable``: why it cannot start at all (no room in shared
    memory for its queues: every video then fails with it), else ``None``."""

    exits = 2  # the dispatcher and the feeder each send one WorkerExited

    def __init__(self, ext: FeatureExtractor, ctx: RunContext, todo: list[int], events: queue.Queue,
                 stop: threading.Event, *, workers: int) -> None:
        self.ext = ext
        self.ctx = ctx
        self.todo = todo
        self.events = events
        self.stop = stop
        self.mp = _context()
        self.n = min(workers, max(1, len(todo)))
        self.unavailable: str | None = None
        try:
            self.work, self.finished, self.halted = self.mp.Queue(), self.mp.Event(), self.mp.Event()
            self.made = self.mp.Value("q", 0)
        except OSError as exc:  # semaphores live in /dev/shm too
            if exc.errno != errno.ENOSPC:
                raise
            self.unavailable = SHM_FULL
        self.taken = 0  # snippets the model side took
        self.peak = 0  # most finished snippets not yet taken, seen when one was taken
        self.threads: list[threading.Thread] = []
        self.dispatcher: _Dispatcher | None = None
        self.feeder: _Feeder | None = None
        self.t0 = time.perf_counter()

    def on_snippet(self) -> None:
        # Waiting snippets only grow between two takes, so their peak is seen at a take.
        self.peak = max(self.peak, self.made.value - self.taken)
        self.taken += 1

    def start(self, claim: Claim, skip: Skip) -> None:
        self.dispatcher = _Dispatcher(self.ctx, self.todo, claim, self.events, self.stop, self.work,
                                      self.finished, limit=self.n, skip=skip)
        self.feeder = _Feeder(self.ext, self.dispatcher, self.events, self.stop, self.mp,
                              workers=self.n, work=self.work, finished=self.finished,
                              halt=self.halted, made=self.made)
        self.threads = [threading.Thread(target=self.dispatcher.run, daemon=True, name="vadfeat-dispatch"),
                        threading.Thread(target=self.feeder.run, daemon=True, name="vadfeat-feeder")]
        self.t0 = time.perf_counter()
        for t in self.threads:
            t.start()

    def leftovers(self) -> tuple[list[int], str | None]:
        assert self.dispatcher is not None and self.feeder is not None
        left = self.dispatcher.abort()  # only if the feeder gave up: no worker was left
        log.debug("process pipeline: %d loader(s), %d snippets in %.1f s; at most %d finished "
                  "snippets waited for the model (bound %d)", self.feeder.loaders, self.taken,
                  time.perf_counter() - self.t0, self.peak, in_flight_bound(self.n, self.ext))
        return left, self.feeder.failure

    def halt(self) -> None:
        self.stop.set()
        self.halted.set()  # workers stop within a snippet; the feeder then shuts its loader down

    def join(self) -> None:
        self.finished.set()
        join_threads(self.threads)
        # Segments of workers killed mid-creation (a full /dev/shm, SIGKILL): their pids
        # are this run's and they have ended, so nothing else can own these names.
        if self.feeder is not None:
            release_segments_of({p for p in self.feeder.pids if not _alive(p)})
        with contextlib.suppress(Exception):
            self.work.close()
            self.work.cancel_join_thread()  # claimed videos nobody will take: do not wait on them


__all__ = [
    "CRASH_ENV",
    "PREFETCH",
    "SHM_DIR",
    "SHM_FULL",
    "START_METHOD",
    "ProcessProducer",
    "check_pipeline",
    "check_shared_memory",
    "death_reason",
    "in_flight_bound",
    "release_segment",
    "release_segments_of",
    "shm_full_segment",
]
