"""The process pipeline (issue 15): decode + transform in worker processes, every guarantee
of the thread pipeline kept.

Expected values are worked out by hand: the default preset takes non-overlapping 16-frame
snippets and drops the tail, so 32 / 48 / 64 frames -> 2 / 3 / 4 snippets with source
frames [16k, 16k + 15]; the tiny model (2-frame tubelets, 16-pixel patches) is 64 wide.
Runs use ``batch_size=1`` where outputs are compared byte for byte, so both pipelines run
the same forward passes (batch composition changes float32 summation order only).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

import vadfeat
from stress.fault_corpus import (
    build_corpus,
    check_run,
    locks_free,
    partial_outputs,
    process_state,
    restore_permissions,
    wait_until_stopped,
)
from vadfeat.engines.consumer import Consumer
from vadfeat.errors import ConfigError
from vadfeat.pipeline.stream import SnippetBatcher
from vadfeat.store.claims import LOCK_DIR, Claims
from vadfeat.store.manifest import read_manifest
from vadfeat.testing import synth

local = importlib.import_module("vadfeat.engines.local")
processes = importlib.import_module("vadfeat.engines.processes")

TINY = {"random_weights": True, "model": "vit_tiny_patch16_224", "device": "cpu"}
SMALL = {"size": 32, "short_side": 32}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc's children lists)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k not in found:
                    found.add(k)
                    todo.append(k)
    return found


def alive(pid: int) -> bool:
    return process_state(pid) not in ("", "Z")


def sidecar(path: Path) -> dict:
    md = json.loads(path.read_text())
    md.pop("created")
    return md


# --------------------------------------------------------------------------- same outputs


@pytest.mark.parametrize("settings", [
    {},                                                  # one crop, frames transformed in the workers
    {"crops": 10, "size": 32, "short_side": 40},         # ten crops of one frame
    {"preprocess": "device"},                            # raw frames; transformed on the "device" (CPU)
], ids=["1-crop", "10-crop", "device"])
def test_same_bytes_as_the_thread_pipeline(tmp_path: Path, three: Path, settings: dict) -> None:
    """Worker processes run torch on one intra-op thread (torch.utils.data sets it).  The
    multi-crop resize (to 256, then cut) is ``F.interpolate`` over more than torch's grain
    size, whose last bit depends on how many threads split it (found here: up to 6e-7), so
    the thread pipeline is run on one torch thread too: then every byte is equal."""
    import torch

    saved = torch.get_num_threads()
    kw = {**TINY, **SMALL, "batch_size": 1, **settings}
    try:
        torch.set_num_threads(1)
        t = vadfeat.extract([three], tmp_path / "threads", workers=2, progress=False, **kw)
    finally:
        torch.set_num_threads(saved)
    p = vadfeat.extract([three], tmp_path / "procs", workers=2, pipeline="processes", progress=False, **kw)
    assert (t.ok, p.ok, p.exit_code) == (3, 3, 0)
    crops = settings.get("crops", 1)
    for k in range(3):
        a, b = np.load(tmp_path / "threads" / f"v{k}.npy"), np.load(tmp_path / "procs" / f"v{k}.npy")
        assert a.shape == ((2 + k, crops, 64) if crops > 1 else (2 + k, 64))
        assert np.array_equal(a, b)
        assert sidecar(tmp_path / "threads" / f"v{k}.json") == sidecar(tmp_path / "procs" / f"v{k}.json")


def test_crops_cut_on_the_device_as_a_cuda_run_does(tmp_path: Path, three: Path) -> None:
    """A CUDA run with 10 crops hands the scaled frames over and cuts the crops on the
    device (crops_on_device, set by hand on the CPU as tests/test_engine.py does): worker
    processes then send scaled frames, and the features are the same bytes."""
    import torch

    kw = {**TINY, "crops": 10, "size": 32, "short_side": 40, "batch_size": 1}
    plain = vadfeat.FeatureExtractor(**kw)
    moved = vadfeat.FeatureExtractor(**kw)
    moved.crops_on_device = True
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as in the worker processes (see above)
        t = vadfeat.extract([three], tmp_path / "threads", extractor=plain, progress=False)
    finally:
        torch.set_num_threads(saved)
    p = vadfeat.extract([three], tmp_path / "procs", extractor=moved, workers=2, pipeline="processes",
                        progress=False)
    assert (t.ok, p.ok) == (3, 3)
    for k in range(3):
        a, b = np.load(tmp_path / "threads" / f"v{k}.npy"), np.load(tmp_path / "procs" / f"v{k}.npy")
        assert a.shape == (2 + k, 10, 64) and np.array_equal(a, b)


def test_torchcodec_on_cuda_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVDEC decodes in the model's process; worker processes never touch CUDA."""
    import torch

    monkeypatch.setattr(processes, "resolve_device", lambda d: torch.device("cuda" if "cuda" in d else "cpu"))
    cfg = types.SimpleNamespace(decoder="torchcodec", device="auto", preprocess="worker")
    with pytest.raises(ConfigError, match="use --pipeline threads"):
        processes.check_pipeline(cfg, 2, ["cuda:0", "cuda:1"])  # type: ignore[arg-type]
    monkeypatch.setattr(processes, "check_shared_memory", lambda *a, **k: None)
    processes.check_pipeline(cfg, 2)  # type: ignore[arg-type]  # auto -> the CPU here: decoded there too


def test_temporal_order_and_interleaved_videos(tmp_path: Path, three: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers, batches of 4 snippets across videos: each video's snippets reach the
    model side in temporal order under their (vid, index) keys, whatever the interleaving,
    and each video's features equal its own single-video extraction."""
    seen: list[tuple[int, int, tuple[int, int]]] = []
    keys: list[tuple[int, int]] = []
    handle, add = Consumer.handle, SnippetBatcher.add

    def spy_handle(self, event):
        if isinstance(event, local.SnippetReady):
            seen.append((event.vid, event.index, event.frames))
        return handle(self, event)

    def spy_add(self, key, clip):
        keys.append(key)
        return add(self, key, clip)

    monkeypatch.setattr(Consumer, "handle", spy_handle)
    monkeypatch.setattr(SnippetBatcher, "add", spy_add)
    s = vadfeat.extract([three], tmp_path / "out", workers=2, pipeline="processes", progress=False,
                        batch_size=4, **TINY, **SMALL)
    assert s.ok == 3 and s.snippets == 2 + 3 + 4
    for vid in range(3):
        mine = [(i, f) for v, i, f in seen if v == vid]
        assert mine == [(i, (16 * i, 16 * i + 15)) for i in range(2 + vid)]
    assert sorted(keys) == sorted((v, i) for v, i, _ in seen) and len(keys) == 9
    monkeypatch.undo()
    fx = vadfeat.FeatureExtractor(**TINY, **SMALL, batch_size=4)
    for vid in range(3):
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"v{vid}.npy"),
                                   fx.extract_video(three / f"v{vid}.mp4").features, atol=1e-5)


# --------------------------------------------------------------------------- bounded memory


def test_snippets_in_flight_are_bounded(tmp_path: Path, three: Path, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """A slow model lets the workers run ahead: the count of finished snippets not yet
    taken by the model side (workers count what they finish in shared memory, the model
    side what it takes) never exceeds PREFETCH * workers + queue depth + 1 = 2 * 2 + 2 + 1
    = 7 (batch_size 1: depth max(2, 2 * 1) = 2), over 2 + 3 + 4 + 5 = 14 snippets."""
    synth.write_video(three / "v3.mp4", synth.scene_frames(80, width=64, height=48, seed=3), fps=25)
    fx = vadfeat.FeatureExtractor(**TINY, **SMALL, batch_size=1)
    assert processes.in_flight_bound(2, fx) == 7
    real = fx.run_model

    def slow(clips):
        time.sleep(0.05)
        return real(clips)

    fx.run_model = slow  # type: ignore[method-assign]
    caplog.set_level("DEBUG", logger="vadfeat.engines.processes")
    s = vadfeat.extract([three], tmp_path / "out", extractor=fx, workers=2, pipeline="processes",
                        progress=False)
    assert s.ok == 4 and s.snippets == 14
    m = re.search(r"(\d+) snippets in .* at most (\d+) finished snippets waited for the model "
                  r"\(bound (\d+)\)", caplog.text)
    assert m is not None, caplog.text
    taken, peak, bound = map(int, m.groups())
    assert taken == 14 and bound == 7 and 1 <= peak <= 7


# --------------------------------------------------------------------------- failures


def test_bad_videos_and_a_dying_worker(tmp_path: Path, three: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """v1's worker process exits (os._exit(3), as a crash inside FFmpeg would end it) after
    sending v1's first snippet; corrupt, truncated and empty files fail as they do with
    threads.  Each bad video is named with its reason, the others are written (equal to
    the thread pipeline's), exit 1, nothing partial, every claim released."""
    synth.write_video(three / "truncated.mp4", synth.scene_frames(64, seed=4), fps=25)
    synth.truncate(three / "truncated.mp4", 0.5)
    synth.random_bytes(three / "random.mp4", 20000)
    synth.empty(three / "empty.mp4")
    kw = {**TINY, **SMALL, "batch_size": 1}
    ref = vadfeat.extract([three], tmp_path / "threads", workers=2, progress=False, **kw)
    monkeypatch.setenv(processes.CRASH_ENV, "v1.mp4")
    s = vadfeat.extract([three], tmp_path / "out", workers=2, pipeline="processes", progress=False, **kw)
    reasons = dict(s.failed)
    assert set(reasons) == {"v1.mp4", "truncated.mp4", "random.mp4", "empty.mp4"}
    assert reasons["v1.mp4"] == "the decode worker process died (exit code 3) while decoding it"
    for name in ("truncated.mp4", "random.mp4", "empty.mp4"):
        assert reasons[name] == dict(ref.failed)[name]
    assert s.ok == 2 and s.exit_code == 1
    entry = next(e for e in read_manifest(tmp_path / "out") if e["video"] == "v1.mp4")
    assert entry["status"] == "failed" and "exit code 3" in entry["error"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npy")) == ["v0.npy", "v2.npy"]
    for name in ("v0.npy", "v2.npy"):
        assert np.array_equal(np.load(tmp_path / "threads" / name), np.load(tmp_path / "out" / name))
    assert not partial_outputs(tmp_path / "out") and locks_free(tmp_path / "out")


@pytest.mark.slow
def test_fault_corpus_with_processes(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """tests/test_faults.py::test_fault_corpus_in_process with worker processes: every
    broken input fails with its reason, every awkward-but-valid one is extracted."""
    cases = build_corpus(tmp_path / "in")
    out = tmp_path / "out"
    try:
        fx = vadfeat.FeatureExtractor(tiny_checkpoint, batch_size=8)
        s = vadfeat.extract([tmp_path / "in"], out, extractor=fx, workers=2, pipeline="processes",
                            progress=False)
        root = os.geteuid() == 0
        problems = check_run(out, cases, read_manifest(out), privileged=root) + partial_outputs(out)
        assert not problems, "\n".join(problems)
        failed = {c.name for c in cases if c.expected(root) == "failed"}
        assert {v for v, _ in s.failed} == failed and s.exit_code == 1 and locks_free(out)
    finally:
        restore_permissions(tmp_path)


def test_the_only_worker_segfaults(tmp_path: Path, three: Path, monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    """One worker, killed by SIGSEGV in v0: v0 fails naming the signal, a second loader
    (fresh worker processes) does v1 and v2."""
    monkeypatch.setenv(processes.CRASH_ENV, "v0.mp4:SIGSEGV")
    caplog.set_level("DEBUG", logger="vadfeat.engines.processes")
    s = vadfeat.extract([three], tmp_path / "out", workers=1, pipeline="processes", progress=False,
                        **TINY, **SMALL)
    assert s.failed == [("v0.mp4", "the decode worker process died (killed by SIGSEGV) while decoding it")]
    assert s.ok == 2 and [np.load(tmp_path / "out" / f"v{k}.npy").shape for k in (1, 2)] == [(3, 64), (4, 64)]
    assert "process pipeline: 2 loader(s)" in caplog.text


def test_too_little_shared_memory_is_refused_before_any_work(tmp_path: Path, three: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A container's 64 MiB /dev/shm: 2 workers, 10 crops of 224 px, batch 20 (2 snippets)
    may hold 2 * 2 + max(2, 4) + 1 + 2 + 2 = 13 snippets of 10 * 3 * 16 * 224 * 224 * 4 bytes
    = 96,337,920 bytes = 91.875 MiB: 13 * 91.875 = 1,194.4 MiB.  Refused before any work,
    naming both sizes."""
    shm = tmp_path / "shm"
    shm.mkdir()
    real = os.statvfs

    def small(path):
        st = real(path)
        if str(path) != str(shm):
            return st
        return type("St", (), {"f_bavail": 64 * 2**20 // st.f_frsize, "f_frsize": st.f_frsize})()

    monkeypatch.setattr(processes, "SHM_DIR", str(shm))
    monkeypatch.setattr(os, "statvfs", small)
    with pytest.raises(ConfigError, match=r"up to 1,194 MiB .*13 snippets of 91.9 MiB.*has 64 MiB free"):
        vadfeat.extract([three], tmp_path / "out", workers=2, pipeline="processes", progress=False,
                        crops=10, batch_size=20, **TINY)
    assert not (tmp_path / "out").exists()


_SHM_RUN = """
import json, os, sys
from pathlib import Path
import vadfeat
from vadfeat.engines import processes
processes.check_shared_memory = lambda *a, **k: None  # the preflight would refuse this /dev/shm
if __name__ == "__main__":
    s = vadfeat.extract([sys.argv[1]], sys.argv[2], random_weights=True, model="vit_tiny_patch16_224",
                        device="cpu", size=64, short_side=64, batch_size=1, workers=2,
                        pipeline="processes", progress=False, preprocess=sys.argv[3])
    print(json.dumps({"failed": s.failed, "ok": s.ok, "exit": s.exit_code}))
"""


@pytest.mark.parametrize("preprocess", ["worker", "device"])
@pytest.mark.parametrize("size", ["64k", "512k"])
def test_full_shared_memory_is_named_and_leaves_no_segment(tmp_path: Path, preprocess: str,
                                                           size: str) -> None:
    """A real full /dev/shm: a small tmpfs mounted over it in a private mount namespace
    (needs root and unshare; skipped otherwise).  512 KiB holds the run's semaphores but
    no snippet (64 px model input: 3 * 16 * 64 * 64 * 4 = 786,432 bytes; raw 160x120
    frames: 921,600); 64 KiB not even the semaphores of a loader.  Every video fails
    naming the full shared memory (not "unexpected RuntimeError"), and no ``torch_*``
    segment is left behind once the run has ended (torch left one per failed snippet)."""
    if not shutil.which("unshare") or not shutil.which("mount"):
        pytest.skip("needs unshare and mount")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /dev/shm"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private mount namespace: {probe.stderr.decode()!r}")
    src = tmp_path / "in"
    for k in range(2):
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(32, seed=k), fps=25)  # 160x120
    (tmp_path / "run.py").write_text(_SHM_RUN)
    script = (f"mount -t tmpfs -o size={size} tmpfs /dev/shm && "
              f"{sys.executable} {tmp_path / 'run.py'} {src} {tmp_path / 'out'} {preprocess}; "
              "echo SHM: $(ls /dev/shm)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, timeout=300, env=env)
    out, err = run.stdout.decode(), run.stderr.decode()
    result = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert result["exit"] == 1 and result["ok"] == 0, err[-3000:]
    assert sorted(v for v, _ in result["failed"]) == ["v0.mp4", "v1.mp4"]
    assert all(reason.startswith("shared memory (/dev/shm) is full: ") for _, reason in result["failed"]), \
        result["failed"]
    left = out.split("SHM:", 1)[1].split()
    assert not [name for name in left if name.startswith("torch_")], left
    assert "Traceback" not in err, err[-3000:]


def test_torch_full_shared_memory_error_and_segment_clean_up(tmp_path: Path) -> None:
    """The error torch raises when it cannot size a segment (its text as torch 2.x words it)
    names the segment; a worker removes it, and the run removes its ended workers'
    segments: only ``torch_<pid>_*`` of the pids given."""
    exc = RuntimeError("unable to allocate shared memory(shm) for file </torch_4871_764198580_0>: "
                       "No space left on device (28)")
    assert processes.shm_full_segment(exc) == "torch_4871_764198580_0"
    assert processes.shm_full_segment(RuntimeError("unable to open shared memory object </torch_1_2_0>: "
                                                   "Permission denied (13)")) is None
    assert processes.shm_full_segment(OSError("No space left on device (28)")) is None
    for name in ("torch_4871_764198580_0", "torch_4871_1_1", "torch_4872_5_0", "sem.mp-x", "torch_x"):
        (tmp_path / name).write_bytes(b"")
    assert sorted(processes.release_segments_of({4871}, where=str(tmp_path))) == [
        "torch_4871_1_1", "torch_4871_764198580_0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sem.mp-x", "torch_4872_5_0", "torch_x"]
    assert not processes.release_segment("../etc", where=str(tmp_path))


def test_a_death_seen_twice_is_handled_once() -> None:
    """A worker dies right after sending a snippet: fetching that snippet fails first (its
    descriptor went with the worker: a ConnectionResetError), then the loader reports the
    same worker as exited.  The first finds the death (pid 7, SIGSEGV), the second is
    known and not raised again (it once ended the feeder and hung the run)."""
    it = types.SimpleNamespace(_workers=[types.SimpleNamespace(pid=7, exitcode=-11, is_alive=lambda: False),
                                         types.SimpleNamespace(pid=8, exitcode=None, is_alive=lambda: True)])
    first = processes._dead_workers(it, ConnectionResetError(104, "Connection reset by peer"), set())
    assert first == {7: -11}
    again = RuntimeError("DataLoader worker (pid(s) 7) exited unexpectedly")
    assert processes._dead_workers(it, again, {7}) == {}
    assert processes._reported_pids(again) == {7} and processes._reported_pids(ValueError("x")) == set()


def test_death_reasons() -> None:
    assert processes.death_reason(3) == "the decode worker process died (exit code 3) while decoding it"
    assert processes.death_reason(-11) == ("the decode worker process died (killed by SIGSEGV) "
                                           "while decoding it")
    assert "unknown exit code" in processes.death_reason(None)
    assert "killed by SIGBUS; is /dev/shm full?" in processes.death_reason(-signal.SIGBUS)


# --------------------------------------------------------------------------- claims, CUDA


def test_both_pipelines_feed_one_consumer(tmp_path: Path, three: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """extract() picks a producer (threads, processes) and runs the same model side on its
    events: one Consumer, drained until each of the producer's threads has exited (two
    decode threads; the dispatcher and the feeder)."""
    seen: list[tuple[type, int]] = []
    real = local.drain

    def spy(events, consumer, exits):
        seen.append((type(consumer), exits))
        return real(events, consumer, exits)

    monkeypatch.setattr(local, "drain", spy)
    for pipeline in ("threads", "processes"):
        s = vadfeat.extract([three], tmp_path / pipeline, workers=2, pipeline=pipeline, progress=False,
                            **TINY, **SMALL)
        assert s.ok == 3
    assert seen == [(Consumer, 2), (Consumer, 2)]  # (their outputs: test_same_bytes_as_the_thread_pipeline)


def test_workers_hold_no_claim(tmp_path: Path, three: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the model side holds claims, no process below this one (forkserver, workers)
    has a descriptor of a lock file: a claim released here is released."""
    checks: list[tuple[int, int, int]] = []  # (lock fds here, processes below, lock fds there)
    handle = Consumer.handle

    def lock_fds(pid: int | str) -> int:
        n = 0
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            with contextlib.suppress(OSError):
                n += LOCK_DIR in os.readlink(fd)
        return n

    def probe(self, event):
        if isinstance(event, local.SnippetReady) and not checks:
            kids = descendants(os.getpid())
            checks.append((lock_fds("self"), len(kids), sum(lock_fds(k) for k in kids)))
        return handle(self, event)

    monkeypatch.setattr(Consumer, "handle", probe)
    s = vadfeat.extract([three], tmp_path / "out", workers=2, pipeline="processes", progress=False,
                        **TINY, **SMALL)
    assert s.ok == 3
    (here, below, there), = checks
    assert here >= 1 and below >= 2 and there == 0


def test_worker_init_hides_cuda_and_leaves_ctrl_c_to_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(processes, "tune_malloc", lambda: None)
    saved = signal.getsignal(signal.SIGINT)
    try:
        processes._worker_init(0)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, saved)


# --------------------------------------------------------------------------- resume, settings, --wait


def test_resume_changed_settings_and_bad_pipeline(tmp_path: Path, three: Path) -> None:
    out = tmp_path / "out"
    kw = {**TINY, **SMALL, "pipeline": "processes", "progress": False}
    (three / "v2.mp4").rename(tmp_path / "later.mp4")
    first = vadfeat.extract([three], out, **kw)
    (tmp_path / "later.mp4").rename(three / "v2.mp4")
    again = vadfeat.extract([three], out, workers=2, **kw)  # v0, v1 done: only v2 is extracted
    assert (first.ok, again.ok, again.skipped, again.exit_code) == (2, 1, 2, 0)
    assert np.load(out / "v2.npy").shape == (4, 64)
    with pytest.raises(ConfigError, match="crops"):  # other settings stop before any work
        vadfeat.extract([three], out, crops=3, **kw)
    with pytest.raises(ConfigError, match="pipeline must be one of threads, processes"):
        vadfeat.extract([three], out, **{**kw, "pipeline": "fibers"})


def test_a_video_held_elsewhere_and_wait(tmp_path: Path, three: Path) -> None:
    """As tests/test_integrity.py::test_a_video_held_elsewhere_is_not_done, with processes."""
    out = tmp_path / "out"
    kw = {**TINY, **SMALL, "pipeline": "processes", "progress": False, "workers": 2}
    other = Claims(out)  # this process plays a concurrent run extracting v1
    assert other.acquire("v1.json") is None
    try:
        s = vadfeat.extract([three], out, **kw)
    finally:
        other.release_all()
    assert (s.ok, s.skipped, [v for v, _ in s.elsewhere], s.exit_code) == (2, 0, ["v1.mp4"], 3)
    assert other.acquire("v1.json") is None
    threading.Timer(1.0, other.release_all).start()
    s = vadfeat.extract([three], out, wait=True, **kw)
    assert (s.ok, s.skipped, s.exit_code) == (1, 2, 0)
    assert np.load(out / "v1.npy").shape == (3, 64)


@pytest.mark.slow
def test_devices_with_processes(tmp_path: Path, three: Path, tiny_checkpoint: Path) -> None:
    """--devices siblings, each with its own worker processes: every video once."""
    synth.random_bytes(three / "broken.mp4", 3000)
    s = vadfeat.extract([three], tmp_path / "out", checkpoint=tiny_checkpoint, progress=False, **SMALL,
                        devices=["cpu", "cpu"], pipeline="processes", workers=2)
    assert s.ok == 3 and [v for v, _ in s.failed] == ["broken.mp4"] and s.exit_code == 1
    oks = [e["video"] for e in read_manifest(tmp_path / "out") if e["status"] == "ok"]
    assert sorted(oks) == ["v0.mp4", "v1.mp4", "v2.mp4"]


# --------------------------------------------------------------------------- interrupts


def stopped_at_the_hook(proc: subprocess.Popen, timeout: float = 300) -> set[int]:
    """Wait until the run stops itself at the test hook (:func:`wait_until_stopped`);
    return its live descendants."""
    wait_until_stopped(proc, timeout)
    return {p for p in descendants(proc.pid) if alive(p)}


def test_sigint_stops_the_workers_and_a_rerun_resumes(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """The run stops itself (SIGSTOP) once 2 snippets of v5 (the last video) are through the
    model: by then v0..v3 are written (v5 is claimed only once at most one other video is
    claimed and not decoded, and with batch 1 the model takes the events in the order the
    feeder sent them).  SIGINT is sent while it is stopped, then SIGCONT: the run cannot
    end before the signal (it once saw exit 0 instead of 130 when the signal came late)."""
    src = tmp_path / "in"
    for k in range(6):
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(96 + 16 * k, seed=k), fps=25)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vadfeat", "extract", str(src), "-o", str(out), "--checkpoint",
           str(tiny_checkpoint), "-q", "-b", "1", "--pipeline", "processes", "-j", "2"]
    env = {**os.environ, "VADFEAT_TEST_STOP_AFTER": "v5.mp4:2:SIGSTOP"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    below = stopped_at_the_hook(proc)
    assert len(below) >= 3  # the forkserver and two workers (at least)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    text = err.decode()
    assert proc.returncode == 130, text[-2000:]
    assert "STOPPED by SIGINT" in text and "Traceback" not in text
    assert "IN PROGRESS v5.mp4: " in text
    deadline = time.monotonic() + 60  # workers see the stop within a snippet; a loaded machine is slower
    while any(alive(p) for p in below) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in below if alive(p)], "a worker process outlived the run"
    lines = read_manifest(out)
    assert {e["video"] for e in lines if e["status"] == "ok"} >= {"v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4"}
    assert any(e["video"] == "v5.mp4" and e["status"] == "interrupted" and "SIGINT" in e["error"]
               and e["saved_snippets"] >= 2 for e in lines)
    assert locks_free(out) and not partial_outputs(out)
    again = subprocess.run(cmd, capture_output=True, timeout=600)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert len(list(out.glob("*.npy"))) == 6


@pytest.mark.slow
def test_sigkill_leaves_no_worker_behind(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """The model's process killed outright (no cleanup runs) while stopped at a known point
    (the test hook, after 2 snippets of v3): the forkserver sees its end, and each worker
    sees its parent gone within a snippet or an idle poll, and exits; a rerun then
    finishes every video."""
    src = tmp_path / "in"
    for k in range(4):
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(96 + 16 * k, seed=k), fps=25)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vadfeat", "extract", str(src), "-o", str(out), "--checkpoint",
           str(tiny_checkpoint), "-q", "-b", "1", "--pipeline", "processes", "-j", "2"]
    env = {**os.environ, "VADFEAT_TEST_STOP_AFTER": "v3.mp4:2:SIGSTOP"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    below = stopped_at_the_hook(proc)
    assert len(below) >= 3
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while any(alive(p) for p in below) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in below if alive(p)], "a worker process outlived a killed run"
    again = subprocess.run(cmd, capture_output=True, timeout=600)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert len(list(out.glob("*.npy"))) == 4
