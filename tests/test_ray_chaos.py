"""The Ray engine on a multi-node cluster, and what it does when parts of it die.

One local cluster for the module (``ray.cluster_utils.Cluster``: a head and two worker
nodes, one CPU each, so one actor per node), 12 synthetic videos long enough (~0.3-1 s
of work each) that a kill lands while videos are in flight, and a tiny random model at
batch size 1.  Each failure is triggered on observed progress, never after a sleep: the
test waits for manifest lines, then for a video's attempt record (the worker writes it
before extracting, ``OUT/.vadfeat-locks/*.attempt``), stops that worker with SIGSTOP,
checks that the video is still unwritten, and only then kills (the worker, its node, or
the driver).  After each run: every video exactly once (one ``ok`` line in the run, one
feature file, a sidecar that verifies), features byte-identical to a single-process local
run, no attempt record left, and the manifest says which video was retried and why.

Both engines run the model with one torch thread (each CPU actor uses
``cpus_per_actor`` = 1 thread): CPU matmuls differ in the last bit between thread counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import torch

from vadfeat import extract
from vadfeat.engines import context as run_context
from vadfeat.engines import ray as distributed
from vadfeat.store.atomic import pid_alive
from vadfeat.store.claims import Claims
from vadfeat.store.manifest import read_manifest
from vadfeat.store.sinks import NpySink, VideoFeatures
from vadfeat.testing import synth

pytestmark = [pytest.mark.ray,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")]

N_VIDEOS = 12
SETTINGS: dict[str, Any] = {"random_weights": True, "model": "vit_tiny_patch16_224",
                            "batch_size": 1, "size": 64, "short_side": 64}
CLI_SETTINGS = ["--random-weights", "-m", "vit_tiny_patch16_224", "--batch-size", "1",
                "--size", "64", "--short-side", "64"]
#: A bound on every wait below: reached only when the run is broken (a hang).
DEADLINE_S = 300.0


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chaos") / "in"
    for k in range(N_VIDEOS):  # 400 frames: 25 snippets of 16 each
        synth.write_video(folder / f"v{k:02d}.mp4",
                          synth.scene_frames(400, width=64, height=48, seed=k), fps=25)
    return folder


@pytest.fixture(scope="module")
def reference(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-process local run of the same videos (one torch thread)."""
    out = tmp_path_factory.mktemp("chaos") / "local"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = extract([videos], out, progress=False, **SETTINGS)
    finally:
        torch.set_num_threads(before)
    assert summary.ok == N_VIDEOS
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()  # the engine connects to the cluster itself
    saved = {k: os.environ.get(k) for k in distributed.SLOW_START_ENV}
    os.environ.update({k: os.environ.get(k) or v for k, v in distributed.SLOW_START_ENV.items()})
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(2):
            c.add_node(num_cpus=1)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- observing a run


def _wait_for(what: str, check: Callable[[], Any], proc: subprocess.Popen[bytes] | None = None) -> Any:
    """Poll ``check`` until it returns something true; fail after :data:`DEADLINE_S` (a hang)
    or when the driver ``proc`` ended first."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the driver ended (exit {proc.returncode}) before {what}")
        time.sleep(0.02)
    pytest.fail(f"no {what} within {DEADLINE_S:.0f} s")


def _ok_lines(out: Path) -> int:
    return sum(e["status"] == "ok" for e in read_manifest(out))


def _in_flight(out: Path) -> list[dict[str, Any]]:
    """The attempts under way: records whose latest attempt has no result yet."""
    found = []
    for path in (out / ".vadfeat-locks").glob("*.attempt"):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if data["entry"] is None and data["attempts"]:
                found.append({"path": path, "video": data["video"], **data["attempts"][-1]})
    return found


def _freeze_mid_video(out: Path, proc: subprocess.Popen[bytes], cluster: Any, *,
                      node: str | None = None, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Stop (SIGSTOP) a worker that is extracting a video (on ``node``, if given) and return
    its attempt, with the process's start time (``/proc``) so that it is told apart from a
    later process given the same pid.  Only a live extraction actor of this cluster (Ray's
    actor table) is stopped; the video is checked unwritten *after* the stop, so the kill
    that follows lands mid-video whatever the timing."""
    def candidate() -> dict[str, Any] | None:
        ours = {int(a["Pid"]) for a in _extract_actors(cluster) if a["State"] == "ALIVE"}
        for attempt in _in_flight(out):
            pid = int(attempt["pid"])
            if (attempt["video"] in skip or pid not in ours
                    or (node is not None and attempt["node"] != node)):
                continue
            started = _start_time(pid)
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            still = [a for a in _in_flight(out) if a["path"] == attempt["path"]]
            stem = PurePosixPath(attempt["video"]).with_suffix("").as_posix()
            if (started is not None and _start_time(pid) == started and still
                    and still[0]["pid"] == pid and not (out / f"{stem}.npy").exists()):
                return {**attempt, "process": (pid, started)}
            os.kill(pid, signal.SIGCONT)  # it finished meanwhile: take another
        return None
    return _wait_for("video in flight" + (f" on node {node}" if node else ""), candidate, proc)


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, ``/proc/<pid>/stat``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _kill(victim: dict[str, Any]) -> None:
    """SIGKILL the stopped worker, unless it is gone (its pid may belong to another by now)."""
    pid, started = victim["process"]
    if _start_time(pid) == started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:  # Popen never signals a pid it has already reaped
        proc.kill()
        proc.wait()


def _driver(videos: Path, out: Path, cluster: Any) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "vadfeat", "extract", str(videos), "-o", str(out),
           "--engine", "ray", "--ray-address", cluster.address, *CLI_SETTINGS, "-q"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=DEADLINE_S)
    return proc.returncode, err.decode(errors="replace")


def _extract_actors(cluster: Any) -> list[dict[str, Any]]:
    """Every extraction actor the cluster has known (Ray's actor table, from the GCS)."""
    return [a for a in cluster.global_state.actor_table(None).values()
            if "_ExtractActor" in a["ActorClassName"]]


def _all_gone(cluster: Any, since: float) -> bool:
    """Every extraction actor created since ``since`` (a ``time.time()``) is dead and its
    process has exited (pid 0: it never started one)."""
    return all(a["State"] == "DEAD" and (not a["Pid"] or not pid_alive(int(a["Pid"])))
               for a in _extract_actors(cluster) if a["StartTime"] >= since * 1000 - 1000)


# --------------------------------------------------------------------------- checking a run


def _check_exactly_once(out: Path, reference: Path, run: str | None = None) -> dict[str, dict]:
    """Every video once and right; return the last run's manifest lines by video."""
    entries = read_manifest(out)
    run = run or entries[-1]["run"]
    mine = [e for e in entries if e["run"] == run]
    videos = sorted(e["video"] for e in mine)
    assert videos == [f"v{k:02d}.mp4" for k in range(N_VIDEOS)], "a video missing or twice"
    npys = sorted(p.name for p in out.glob("*.npy"))
    assert npys == sorted(p.name for p in reference.glob("*.npy")) and len(npys) == N_VIDEOS
    sink = NpySink(out)
    for name in npys:
        # bit for bit: the feature file's bytes are the single-process run's
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
        ours = json.loads((out / name).with_suffix(".json").read_text())
        theirs = json.loads((reference / name).with_suffix(".json").read_text())
        for meta in (ours, theirs):
            del meta["created"], meta["sidecar_sha256"]
        assert ours == theirs, name
        stem = PurePosixPath(name).with_suffix("")
        state = sink.state(sink.plan(stem), theirs["fingerprint"], source=Path(ours["source"]))
        assert state.status == "done", (name, state)  # sealed sidecar and feature hash verify
    assert not list((out / ".vadfeat-locks").glob("*.attempt")), "attempt records left"
    assert not list(out.rglob("*.vadfeat-tmp.*")), "temporaries left"
    return {e["video"]: e for e in mine}


def _check_shards_exactly_once(out: Path, reference: Path, run: str) -> dict[str, dict]:
    """Every video once in the committed shards, its feature bytes the single-process
    run's ``.npy`` file, its sidecar verified; return the run's manifest lines by video."""
    from vadfeat.store.shards import iter_shard, npy_bytes, shard_files

    mine = [e for e in read_manifest(out) if e["run"] == run]
    assert sorted(e["video"] for e in mine) == [f"v{k:02d}.mp4" for k in range(N_VIDEOS)]
    stems: list[str] = []
    for shard in shard_files(out):
        for record in iter_shard(shard):
            stems.append(record.stem)
            assert record.intact, record.stem
            assert npy_bytes(record.features) == (reference / f"{record.stem}.npy").read_bytes()
    assert sorted(stems) == [f"v{k:02d}" for k in range(N_VIDEOS)], "a video missing or twice"
    assert not list((out / ".vadfeat-locks").glob("*.attempt")), "attempt records left"
    assert not list(out.rglob("*.vadfeat-tmp.*")), "temporaries left"
    return {e["video"]: e for e in mine}


def _stopped_reason(attempt: dict[str, Any], run: str) -> str:
    return (f"node {attempt['node']}/pid {attempt['pid']} on {attempt['host']} started it at "
            f"{attempt['started']}; its run {run} stopped before the video was done")


def _retried(entries: dict[str, dict]) -> dict[str, list[str]]:
    return {v: e["retried"] for v, e in entries.items() if e.get("retried")}


def _tally(case: str, out: Path, kills: int, seconds: float, log: str = "") -> None:
    """One line for RELIABILITY.md's table (seen with ``pytest -s``); the checks above
    already hold, so duplicates and missing are 0 by then."""
    entries = read_manifest(out)
    last = [e for e in entries if e["run"] == entries[-1]["run"]]
    print(f"\nRay chaos, {case}: {N_VIDEOS} videos, {kills} kill(s), "
          f"{sum(bool(e.get('retried')) for e in last)} retried, 0 duplicates, 0 missing, "
          f"{len({e['run'] for e in entries})} run(s), {seconds:.1f} s"
          + ("; the driver scheduled lost videos again" if "scheduling them again" in log else ""))


class _GroupedNpy(NpySink):
    """Test-only buffering sink (:attr:`Sink.buffers`): the ``.npy`` sink's files, held back
    and written in groups of ``group`` videos, as a sharded sink commits a shard whole.
    ``journal`` (outside OUT) gets one JSON line per write and per committed group: the
    writing process, the keys, and which of them the manifest already called ``ok``."""

    buffers = True

    def __init__(self, out: str | Path, *, layout: str = "flat", crops: int = 1, group: int = 5,
                 journal: Path | None = None) -> None:
        super().__init__(out, layout=layout, crops=crops)
        self.group = group
        self.journal = journal
        self._held: list[tuple[Any, VideoFeatures, tuple[Path, ...]]] = []
        self._committed: list[str] = []

    def at(self, out: str | Path) -> _GroupedNpy:
        clone = super().at(out)
        assert isinstance(clone, _GroupedNpy)
        clone._held, clone._committed = [], []
        return clone

    def write(self, target: Any, result: VideoFeatures, *, stale: Any = ()) -> str:
        self._note("write", [self.key(target)])
        self._held.append((target, result, tuple(stale)))
        if len(self._held) >= self.group:
            self._commit_group()
        return self.describe(target)

    def _commit_group(self) -> None:
        held, self._held = self._held, []
        recorded = {e["output"] for e in read_manifest(self.out) if e["status"] == "ok"}
        early = [self.key(t) for t, _, _ in held if self.describe(t) in recorded]
        for target, result, stale in held:
            NpySink.write(self, target, result, stale=stale)
        keys = [self.key(t) for t, _, _ in held]
        self._committed += keys
        self._note("commit", keys, early=early)

    def take_committed(self) -> list[str]:
        done, self._committed = self._committed, []
        return done

    def commit(self) -> None:
        if self._held:
            self._commit_group()

    def abort(self) -> None:
        self._held.clear()

    def _note(self, kind: str, keys: list[str], **more: Any) -> None:
        if self.journal is not None:
            with open(self.journal, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "kind": kind, "keys": keys,
                                    "held": [_holder(self.out, k) for k in keys], **more}) + "\n")


def _holder(out: Path, key: str) -> str | None:
    """Who holds the video's claim (a second lock from this process conflicts too)."""
    probe = Claims(out)
    try:
        return probe.acquire(key)
    finally:
        probe.release_all()


# --------------------------------------------------------------------------- the tests


def test_three_nodes_split_the_videos(videos: Path, reference: Path, cluster: Any,
                                      tmp_path: Path) -> None:
    """One actor per CPU slot of the three nodes; every video once, as the local run."""
    out = tmp_path / "out"
    t0 = time.time()
    summary = distributed.extract_ray([videos], out, address=cluster.address, progress=False,
                                      **SETTINGS)
    assert (summary.ok, summary.failed, summary.exit_code) == (N_VIDEOS, [], 0)
    entries = _check_exactly_once(out, reference, summary.run_id)
    assert not _retried(entries)
    assert all("attempts" not in e for e in entries.values())  # as the local engine's lines
    actors = [a for a in _extract_actors(cluster) if a["StartTime"] >= t0 * 1000 - 1]
    assert len(actors) == 3
    assert len({a["Address"]["NodeID"] for a in actors}) == 3  # one on each node


@pytest.mark.slow  # ~8 s on the three-node cluster
def test_a_buffering_sink_is_written_by_the_driver_alone(
        videos: Path, reference: Path, cluster: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A buffering sink (a sharded sink's contract): the actors return features and
    sidecars, the driver writes them through the run's one sink, and a video is recorded
    ``ok`` only once the sink reports its group committed, holding the video's claim
    until then."""
    from ray import cloudpickle

    out, journal = tmp_path / "out", tmp_path / "journal.jsonl"
    monkeypatch.setattr(run_context, "make_sink", lambda where, **kw: _GroupedNpy(
        where, layout=kw["layout"], crops=kw["crops"], group=5, journal=journal))
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    try:
        summary = distributed.extract_ray([videos], out, address=cluster.address, progress=False,
                                          **SETTINGS)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert (summary.ok, summary.failed, summary.exit_code) == (N_VIDEOS, [], 0)
    _check_exactly_once(out, reference, summary.run_id)
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert {e["pid"] for e in events} == {os.getpid()}  # no actor wrote: no interleaving
    # each video's claim is the driver's from its write until its group is committed
    held = {h for e in events for h in e["held"]}
    assert held == {f"in progress elsewhere ({socket.gethostname()} {os.getpid()})"}
    commits = [e for e in events if e["kind"] == "commit"]
    assert [len(e["keys"]) for e in commits] == [5, 5, 2]  # two full groups, the rest at commit()
    assert all(e["early"] == [] for e in commits)  # none recorded ok before its group
    order = [k for e in commits for k in e["keys"]]
    assert sorted(order) == [f"v{k:02d}.json" for k in range(N_VIDEOS)]
    lines = [e for e in read_manifest(out) if e["run"] == summary.run_id]
    assert [Path(e["output"]).stem for e in lines] == [Path(k).stem for k in order]


def test_webdataset_shards_from_three_nodes(videos: Path, reference: Path, cluster: Any,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The WebDataset sink on the cluster: one writer (the driver) for every shard."""
    from vadfeat.store.shards import parse_shard_name, shard_files
    from vadfeat.store.sinks import make_sink

    out = tmp_path / "out"
    monkeypatch.setattr(run_context, "make_sink", lambda where, **kw: make_sink(
        where, **{**kw, "sink": "webdataset", "shard_size": 5}))
    summary = distributed.extract_ray([videos], out, address=cluster.address, progress=False,
                                      **SETTINGS)
    assert (summary.ok, summary.failed, summary.exit_code) == (N_VIDEOS, [], 0)
    entries = _check_shards_exactly_once(out, reference, summary.run_id)
    names = [parse_shard_name(p.name) for p in shard_files(out)]
    assert len(names) == 3 and len({n.writer for n in names if n is not None}) == 1
    for video, entry in entries.items():  # the manifest names the shard that holds it
        shard, _, stem = entry["output"].rpartition(":")
        assert Path(shard) in shard_files(out) and stem == video[:-4], entry["output"]


@pytest.mark.slow
def test_killed_actors_are_retried_and_reported(videos: Path, reference: Path, cluster: Any,
                                                tmp_path: Path) -> None:
    """SIGKILL two actors mid-video, one after the other: Ray restarts them and retries
    their videos; each retried video's line says which process died, and when."""
    out, t0 = tmp_path / "out", time.monotonic()
    proc = _driver(videos, out, cluster)
    killed: list[dict[str, Any]] = []
    try:
        for after in (2, 5):
            _wait_for(f"{after} videos done", lambda n=after: _ok_lines(out) >= n, proc)  # type: ignore[misc]
            victim = _freeze_mid_video(out, proc, cluster,
                                       skip=frozenset(k["video"] for k in killed))
            _kill(victim)
            killed.append(victim)
        code, err = _finish(proc)
    finally:
        _stop(proc)
    assert code == 0, err
    entries = _check_exactly_once(out, reference)
    retried = _retried(entries)
    assert set(retried) == {k["video"] for k in killed}
    for victim in killed:
        entry = entries[victim["video"]]
        assert entry["status"] == "ok" and entry["attempts"] == 2
        (reason,) = entry["retried"]
        assert reason == (f"node {victim['node']}/pid {victim['pid']} on {victim['host']} died "
                          f"while extracting (started {victim['started']})")
    _tally("2 actors SIGKILLed", out, len(killed), time.monotonic() - t0, err)


@pytest.mark.slow
def test_killed_driver_then_rerun(videos: Path, reference: Path, cluster: Any,
                                  tmp_path: Path) -> None:
    """SIGKILL the driver mid-run (a worker stopped mid-video), run it again: the videos
    done stay done, the others are done once, and each video the dead run's workers had
    started and not finished is reported retried, naming the dead run."""
    out, t0, since = tmp_path / "out", time.monotonic(), time.time()
    proc = _driver(videos, out, cluster)
    try:
        _wait_for("3 videos done", lambda: _ok_lines(out) >= 3, proc)
        victim = _freeze_mid_video(out, proc, cluster)
        proc.kill()
        proc.wait()
    finally:
        _stop(proc)
    dead_run = read_manifest(out)[0]["run"]
    _kill(victim)
    # Ray ends the dead driver's actors; wait until none is alive, so that no worker of
    # the dead run still holds a claim when the rerun starts.
    _wait_for("end of the dead run's actors", lambda: _all_gone(cluster, since))
    unfinished = {a["video"]: a for a in _in_flight(out)}
    assert victim["video"] in unfinished
    done_before = {e["video"] for e in read_manifest(out) if e["status"] == "ok"}

    again = _driver(videos, out, cluster)
    try:
        code, err = _finish(again)
    finally:
        _stop(again)
    assert code == 0, err
    entries = _check_exactly_once(out, reference)
    assert {v for v, e in entries.items() if e["status"] == "skipped"} >= done_before
    retried = _retried(entries)
    assert set(retried) == set(unfinished)  # exactly the videos left unfinished
    for video, attempt in unfinished.items():
        assert entries[video]["status"] == "ok" and entries[video]["attempts"] == 2
        assert retried[video] == [_stopped_reason(attempt, dead_run)]
    _tally("driver SIGKILLed, then run again", out, 1, time.monotonic() - t0)


_WEBDATASET_DRIVER = (
    "import sys\n"
    "from vadfeat.cli import main\n"
    "from vadfeat.engines import context\n"
    "from vadfeat.store.sinks import make_sink\n"
    "context.make_sink = lambda where, **kw: make_sink(\n"
    "    where, **{**kw, 'sink': 'webdataset', 'shard_size': 4})\n"
    "sys.exit(main(sys.argv[1:]))\n")


@pytest.mark.slow
def test_killed_driver_with_shards_then_rerun(videos: Path, reference: Path, cluster: Any,
                                              tmp_path: Path) -> None:
    """WebDataset shards of 4 videos: the driver is stopped (SIGSTOP, so it commits nothing
    more) once a shard is committed, then SIGKILLed.  The videos of its open shard and those
    in flight were not done: the rerun does each once and reports it retried, naming the
    dead run; the shard committed before the kill is kept and its videos skipped."""
    out, t0, since = tmp_path / "out", time.monotonic(), time.time()
    cmd = [sys.executable, "-c", _WEBDATASET_DRIVER, "extract", str(videos), "-o", str(out),
           "--engine", "ray", "--ray-address", cluster.address, *CLI_SETTINGS, "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for("a shard committed", lambda: _ok_lines(out) >= 4, proc)
        _wait_for("a video after that shard", lambda: len(_in_flight(out)) > 0, proc)
        proc.send_signal(signal.SIGSTOP)
        unfinished = {a["video"]: a for a in _in_flight(out)}  # none can be committed now
        assert unfinished
        proc.kill()
        proc.wait()
    finally:
        _stop(proc)
    dead_run = read_manifest(out)[0]["run"]
    _wait_for("end of the dead run's actors", lambda: _all_gone(cluster, since))
    # Workers still extracting when the driver stopped may have finished meanwhile; their
    # results went nowhere, and their records stay: they too are to redo.
    unfinished = {a["video"]: a for a in _in_flight(out)}
    committed = {e["video"] for e in read_manifest(out) if e["status"] == "ok"}
    assert len(committed) % 4 == 0 and not set(unfinished) & committed

    again = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        code, err = _finish(again)
    finally:
        _stop(again)
    assert code == 0, err
    entries = _check_shards_exactly_once(out, reference, read_manifest(out)[-1]["run"])
    assert {v for v, e in entries.items() if e["status"] == "skipped"} == committed
    retried = _retried(entries)
    assert set(retried) == set(unfinished)
    for video, attempt in unfinished.items():
        assert entries[video]["status"] == "ok" and entries[video]["attempts"] == 2
        assert retried[video] == [_stopped_reason(attempt, dead_run)]
    _tally("driver SIGKILLed with a shard open, then run again", out, 1, time.monotonic() - t0)


@pytest.mark.slow
def test_worker_node_removed_mid_run(videos: Path, reference: Path, cluster: Any,
                                     tmp_path: Path) -> None:
    """A worker node leaves the cluster while its actor is mid-video: the video is done
    again on the nodes left, and its line names the node and process lost.  (Last in the
    module: the cluster keeps two nodes after it.)"""
    out, t0 = tmp_path / "out", time.monotonic()
    node = sorted(cluster.worker_nodes, key=lambda n: n.node_id)[0]
    proc = _driver(videos, out, cluster)
    try:
        _wait_for("2 videos done", lambda: _ok_lines(out) >= 2, proc)
        victim = _freeze_mid_video(out, proc, cluster, node=node.node_id)
        cluster.remove_node(node, allow_graceful=False)
        _kill(victim)  # a real node loss takes its processes with it
        code, err = _finish(proc)
    finally:
        _stop(proc)
    assert code == 0, err
    entries = _check_exactly_once(out, reference)
    retried = _retried(entries)
    assert set(retried) == {victim["video"]}
    (reason,) = retried[victim["video"]]
    where = f"node {victim['node']}/pid {victim['pid']} on {victim['host']}"
    # Whether the retry starts before or after the cluster has marked the node dead
    # decides which of the two is said; both name the node and the process.
    assert reason in (f"{where} was lost with its node while extracting (started {victim['started']})",
                      f"{where} died while extracting (started {victim['started']})")
    _tally("worker node removed", out, 1, time.monotonic() - t0, err)

