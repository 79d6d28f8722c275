"""The Ray engine against the local engine on many short videos: throughput, scaling, overhead.

Writes ``--videos`` short synthetic videos (``vadfeat.testing.synth``: 25 to 50 frames at
25 fps, i.e. 1 to 2 s, 64x48, H.264) and extracts them with a tiny random model
(``vit_tiny_patch16_224`` with random weights, input side ``--size``, default 32, so that a
snippet costs milliseconds and what is left is the engines' own cost per video) in three
ways, side by side:

* ``local``: :func:`vadfeat.extract`, one process (one decode thread, the model's thread);
* ``ray N=1`` and ``ray N=2``: :func:`vadfeat.engines.ray.extract_ray` with 1 and 2 actors
  of 1 CPU each on one Ray cluster started once, before the timings (``--cluster single``:
  one local node with 2 CPUs; ``--cluster two-nodes``: ``ray.cluster_utils.Cluster``, a head
  and a second node of 1 CPU each, both on this machine).

Every run writes into a fresh, empty output folder; torch runs one thread everywhere. The
rounds alternate the order of the three runs; figures are medians over the rounds.

Per run it prints wall time, videos/s and snippets/s, and splits the Ray runs' wall time:

* ``plan s``: the driver's discovery and planning (``scan`` + ``RunContext.from_inputs``,
  timed by wrapping them);
* ``work s``: the actors' own time on the videos (the sum of the manifest's per-video
  ``seconds``: decode, model, write, measured inside the actor), divided by the actors;
* ``overhead ms/video``: ``(wall - plan - work) / videos``: what Ray Data's scheduling, the
  actors' start (model load), the claims, the hand-over of rows and the driver's manifest
  cost per video;
Ray's worker processes run at niceness ``--ray-niceness`` (default 0, the local run's;
Ray's own default is 15).

* ``CPU s``: CPU time of this process and every process it started (the Ray cluster's GCS,
  raylet and workers), sampled from ``/proc`` every 0.2 s (a process that ends between two
  samples loses at most 0.2 s): the machine is shared and noisy, and CPU time moves less
  with the neighbours' load than wall time.

    python bench/ray_scale.py                        # 1,000 videos, 2 rounds
    python bench/ray_scale.py --videos 100 --rounds 1
    python bench/ray_scale.py --cluster two-nodes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import _common as C
import vadfeat
from vadfeat.engines import ray as ray_engine
from vadfeat.engines.context import RunContext
from vadfeat.store.manifest import read_manifest
from vadfeat.testing import synth

TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- CPU of a process tree


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user + system CPU seconds) of every process readable in /proc."""
    table: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
        table[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return table


def _tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of ``root`` and each of its descendants, by pid."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out[pid] = table[pid][1]
            todo += children.get(pid, [])
    return out


class TreeCPU:
    """CPU seconds used by this process tree between ``start`` and ``stop`` (sampled)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        for pid, cpu in _tree_cpu(os.getpid()).items():
            self.last[pid] = cpu

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self.first = _tree_cpu(os.getpid())
        self.last = dict(self.first)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._sample()
        return sum(cpu - self.first.get(pid, 0.0) for pid, cpu in self.last.items())


# --------------------------------------------------------------------------- inputs and runs


def make_videos(work: Path, n: int) -> Path:
    """``n`` videos of 25 to 50 frames (1 to 2 s at 25 fps), 64x48, cached."""
    folder = work / f"ray_scale_x{n}"
    if folder.exists() and len(list(folder.glob("*.mp4"))) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    tmp = work / f".tmp-ray_scale_x{n}"
    shutil.rmtree(tmp, ignore_errors=True)
    for k in range(n):
        synth.write_video(tmp / f"v{k:05d}.mp4",
                          synth.scene_frames(25 + (k * 7) % 26, width=64, height=48, seed=k), fps=25)
    tmp.rename(folder)
    return folder


class PlanTimer:
    """Wraps the driver's ``scan`` and ``RunContext.from_inputs`` to time them."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed


def run_once(kind: str, src: Path, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    timer = PlanTimer()
    stamps: list[float] = []
    orig_record_ok = RunContext.record_ok

    def record_ok(self: RunContext, *a: Any, **k: Any) -> None:
        stamps.append(time.perf_counter())
        orig_record_ok(self, *a, **k)
    RunContext.record_ok = record_ok  # type: ignore[method-assign]
    orig_scan, orig_from_inputs = ray_engine.scan, RunContext.__dict__["from_inputs"]
    ray_engine.scan = timer.wrap(orig_scan)  # type: ignore[assignment]
    RunContext.from_inputs = classmethod(timer.wrap(orig_from_inputs.__func__))  # type: ignore[method-assign,assignment]
    cpu = TreeCPU()
    driver0 = time.process_time()
    cpu.start()
    t0 = time.perf_counter()
    try:
        if kind == "local":
            s = vadfeat.extract([src], out, workers=1, progress=False, **settings)
            actors = 1
        else:
            actors = int(kind.split("=")[1])
            s = ray_engine.extract_ray([src], out, num_actors=actors, cpus_per_actor=1.0,
                                       progress=False, **settings)
        wall = time.perf_counter() - t0
    finally:
        ray_engine.scan = orig_scan  # type: ignore[assignment]
        RunContext.from_inputs = orig_from_inputs  # type: ignore[method-assign]
        RunContext.record_ok = orig_record_ok  # type: ignore[method-assign]
    tree_cpu = cpu.stop()
    driver_cpu = time.process_time() - driver0
    if s.exit_code != 0:
        raise SystemExit(f"{kind}: exit {s.exit_code}: {s.describe()}")
    entries = [e for e in read_manifest(out) if e["status"] == "ok"]
    videos = len(entries)
    snippets = sum(int(e["num_snippets"]) for e in entries)
    work = sum(float(e["seconds"]) for e in entries) / actors
    # steady state: the interval between results once every actor runs, against the work
    interval = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    per_video_work = work / max(1, videos)
    return {"first": stamps[0] - t0, "interval_ms": 1000 * interval,
            "steady_overhead_ms": 1000 * (interval - per_video_work),
            "kind": kind, "wall": wall, "videos": videos, "snippets": snippets,
            "plan": timer.seconds, "work": work, "cpu": tree_cpu, "driver_cpu": driver_cpu,
            "overhead_ms": 1000 * (wall - timer.seconds - work) / max(1, videos)}


def work_cols(kind: str, res: dict[str, Any]) -> list[str]:
    """The local engine's per-video seconds overlap (decode and model run side by side): no split."""
    if kind == "local":
        return ["-", "-"]
    return [f"{res['work']:.1f}", f"{res['overhead_ms']:.1f}"]


def start_cluster(kind: str, niceness: int) -> tuple[Any, Any]:
    import ray

    # Ray starts its worker processes at niceness 15 (RAY_worker_niceness): on a machine
    # shared with other work, the actors would then get less CPU than the local run at 0.
    os.environ["RAY_worker_niceness"] = str(niceness)  # noqa: SIM112 (Ray's own spelling)

    if kind == "single":
        # address "local": a cluster of its own, even when another one runs on this machine
        # (ray.init() without an address would join that one)
        for name, value in ray_engine.SLOW_START_ENV.items():
            os.environ.setdefault(name, value)
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        return ray, None
    from ray.cluster_utils import Cluster

    for name, value in ray_engine.SLOW_START_ENV.items():
        os.environ.setdefault(name, value)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
    return ray, cluster


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=1000, help="number of videos (1,000)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the three runs (2)")
    ap.add_argument("--size", type=int, default=32, help="model input side (32: a tiny model)")
    ap.add_argument("--cluster", choices=["single", "two-nodes"], default="single",
                    help="single: one local Ray node with 2 CPUs; two-nodes: ray.cluster_utils.Cluster, "
                         "two nodes of 1 CPU")
    ap.add_argument("--ray-niceness", type=int, default=0,
                    help="niceness of Ray's worker processes (0, as the local run; Ray's own default is "
                         "15, which on a shared machine gives the actors less CPU than the local run)")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("vadfeat").setLevel(logging.ERROR)
    logging.getLogger("ray").setLevel(logging.WARNING)
    C.header("Ray engine (1 and 2 actors) against the local engine: many short videos")
    t0 = time.perf_counter()
    src = make_videos(args.work, args.videos)
    print(f"inputs  : {args.videos} videos of 25-50 frames (1-2 s at 25 fps), 64x48 H.264, in {src} "
          f"({time.perf_counter() - t0:.1f} s to make or find)")
    settings = {"random_weights": True, "model": "vit_tiny_patch16_224", "device": "cpu",
                "size": args.size, "short_side": args.size}
    print(f"model   : vit_tiny_patch16_224, random weights, input {args.size}x{args.size}, 16-frame "
          "snippets, CPU, 1 torch thread per process")
    t0 = time.perf_counter()
    ray, cluster = start_cluster(args.cluster, args.ray_niceness)
    print(f"cluster : {args.cluster} ({ray.cluster_resources().get('CPU')} CPUs, "
          f"{len(ray.nodes())} node(s), worker niceness {args.ray_niceness}), "
          f"started in {time.perf_counter() - t0:.1f} s (not in the timings)")
    print("note    : a shared 2-core machine; other tenants' load slows every figure, the CPU "
          "columns less than the wall ones\n", flush=True)
    out = args.work / "ray_scale_out"
    kinds = ["local", "ray N=1", "ray N=2"]
    # A warm-up of each kind on a few videos: imports, Ray Data's first pipeline, the forkserver.
    warm = make_videos(args.work, 4)
    for kind in kinds:
        run_once(kind, warm, out, settings)
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    rows = [["round", "run", "wall s", "videos/s", "snippets/s", "plan s", "first result s",
             "work s (per actor)", "overhead ms/video", "steady interval ms", "steady overhead ms/video",
             "CPU s (tree)", "driver CPU ms/video", "load"]]
    for r in range(args.rounds):
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            res = run_once(kind, src, out, settings)
            results[kind].append(res)
            rows.append([str(r + 1), kind, f"{res['wall']:.1f}", f"{res['videos'] / res['wall']:.1f}",
                         f"{res['snippets'] / res['wall']:.1f}", f"{res['plan']:.2f}",
                         f"{res['first']:.1f}", *work_cols(kind, res), f"{res['interval_ms']:.1f}",
                         *( ["-"] if kind == "local" else [f"{res['steady_overhead_ms']:.1f}"]),
                         f"{res['cpu']:.1f}",
                         f"{1000 * res['driver_cpu'] / max(1, res['videos']):.1f}", C.load().split()[0]])
            print(C.table([rows[0], rows[-1]]), flush=True)
    print()
    print(C.table(rows))
    med = {k: {f: C.median([x[f] for x in v]) for f in ("wall", "plan", "work", "cpu", "overhead_ms", "first",
                                                        "interval_ms", "steady_overhead_ms")}
           for k, v in results.items()}
    n = results["local"][0]["videos"]
    snip = results["local"][0]["snippets"]
    print(f"\nmedians over {args.rounds} round(s), {n} videos, {snip} snippets:")
    summary = [["run", "videos/s", "snippets/s", "CPU s per video", "x local (wall)", "x ray N=1 (wall)",
                "x ray N=1 (CPU/video)"]]
    for k in kinds:
        m = med[k]
        summary.append([k, f"{n / m['wall']:.1f}", f"{snip / m['wall']:.1f}", f"{m['cpu'] / n:.4f}",
                        f"{med['local']['wall'] / m['wall']:.2f}",
                        f"{med['ray N=1']['wall'] / m['wall']:.2f}",
                        f"{med['ray N=1']['cpu'] / m['cpu']:.2f}"])
    print(C.table(summary))
    ratio = med["ray N=1"]["wall"] / med["ray N=2"]["wall"]
    print(f"\nscaling ray N=2 / N=1 (throughput): {ratio:.2f} (target >= 1.8 = 0.9 x 2)")
    for k in ("ray N=1", "ray N=2"):
        print(f"{k}: overhead {med[k]['overhead_ms']:.1f} ms/video beyond the actors' work (whole run, actor "
              f"start included; first result after {med[k]['first']:.1f} s), "
              f"{med[k]['steady_overhead_ms']:.1f} ms/video in the steady state; driver planning "
              f"{med[k]['plan']:.2f} s ({1000 * med[k]['plan'] / n:.2f} ms/video)")
    print(json.dumps({"medians": med, "videos": n, "snippets": snip}))
    ray.shutdown()
    if cluster is not None:
        cluster.shutdown()
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
