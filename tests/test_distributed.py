"""The Ray Data engine: same outputs, manifest, resume and exit codes as the local engine.

The ``ray`` tests start a local Ray cluster (a few seconds) and are skipped when Ray
is not installed (``pip install 'vadfeat[ray]'``).  Both engines run with one torch
thread so that their features can be compared bit for bit: CPU matmuls give
last-bit differences between thread counts, whichever engine runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vadfeat import ConfigError, FeatureExtractor, extract
from vadfeat.engines import ray as distributed
from vadfeat.engines.ray import _ray_config, extract_ray
from vadfeat.store.claims import Claims
from vadfeat.store.manifest import read_manifest
from vadfeat.testing import synth

# Ray Data's own DataContext copies touch its deprecated fields.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    if not ray.is_initialized():  # generous start-up waits: a loaded machine starts Ray slowly
        distributed.init_ray(ray, num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _inputs(root: Path) -> Path:
    folder = root / "in"
    synth.write_video(folder / "a" / "001.mp4", synth.scene_frames(40, seed=1), fps=25)
    synth.write_video(folder / "b.mp4", synth.scene_frames(50, seed=2, event_at=20), fps=30)
    synth.write_video(folder / "c.avi", synth.scene_frames(33, seed=3), fps=25)
    synth.random_bytes(folder / "broken.mp4", 3000)
    return folder


def _same_outputs(local: Path, distributed: Path) -> None:
    npys = sorted(p.relative_to(local) for p in local.rglob("*.npy"))
    assert npys == sorted(p.relative_to(distributed) for p in distributed.rglob("*.npy"))
    assert len(npys) == 3
    for rel in npys:
        a, b = np.load(local / rel), np.load(distributed / rel)
        assert a.dtype == b.dtype == np.float32
        assert np.array_equal(a, b), rel  # bit-identical
        ma = json.loads((local / rel).with_suffix(".json").read_text())
        mb = json.loads((distributed / rel).with_suffix(".json").read_text())
        assert ma.pop("created") and mb.pop("created")
        assert ma == mb, rel


def _by_video(out: Path) -> dict[str, dict]:
    return {e["video"]: e for e in read_manifest(out)}


# --------------------------------------------------------------------------- no cluster needed


def test_import_vadfeat_does_not_import_ray() -> None:
    code = "import sys, vadfeat, vadfeat.engines.ray, vadfeat.cli; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_missing_ray_is_a_config_error_naming_the_extra(tmp_path: Path, tiny_checkpoint: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'vadfeat\[ray\]'"):
        (tmp_path / "in").mkdir()
        extract_ray([tmp_path / "in"], tmp_path / "out", checkpoint=tiny_checkpoint, progress=False)


@pytest.mark.parametrize("settings", [
    {},
    {"preset": "fed-wsvad", "dtype": "bf16", "on_corrupt": "skip"},
    {"crops": 5, "tail": "pad", "fps": 10.0, "frames_colour": "legacy-swapped", "pooling": "mean"},
    {"preprocess": "device", "crops": 3},
])
def test_driver_fingerprint_matches_the_extractor(tiny_checkpoint: Path, settings: dict) -> None:
    # The driver decides what to skip without building the model; it must reach the
    # fingerprint the workers' FeatureExtractor writes into every sidecar.
    driver = _ray_config({"checkpoint": tiny_checkpoint, **settings}, None)
    fx = FeatureExtractor(tiny_checkpoint, device="cpu", **settings)
    for layout in ("flat", "per-crop"):
        assert driver.fingerprint(driver.identify(), "cpu", layout) == fx.fingerprint(layout)
    assert driver.crops == fx.crops


def test_driver_fingerprint_random_weights() -> None:
    driver = _ray_config({"random_weights": True, "model": "vit_tiny_patch16_224"}, None)
    fx = FeatureExtractor(random_weights=True, model="vit_tiny_patch16_224", device="cpu")
    assert driver.fingerprint(driver.identify(), "cpu", "flat") == fx.fingerprint("flat")
    # auto dtype is resolved for the workers' device, not the driver's.
    assert driver.fingerprint(driver.identify(), "cuda", "flat")["dtype"] == "bf16"


def test_bad_settings_fail_before_ray_starts(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match="cuda:1"):
        extract_ray([tmp_path], tmp_path / "o", checkpoint=tiny_checkpoint, device="cuda:1")
    with pytest.raises(ConfigError, match="checkpoint is required"):
        extract_ray([tmp_path], tmp_path / "o")
    with pytest.raises(ConfigError, match="unknown preset"):
        extract_ray([tmp_path], tmp_path / "o", checkpoint=tiny_checkpoint, preset="nope")
    with pytest.raises(ConfigError, match="layout"):
        extract_ray([tmp_path], tmp_path / "o", checkpoint=tiny_checkpoint, layout="nested")
    with pytest.raises(ConfigError, match="legacy OpenCV"):
        extract_ray([tmp_path], tmp_path / "o", checkpoint=tiny_checkpoint, preset="fed-wsvad",
                    preprocess="device")


def test_a_slow_local_cluster_start_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's fixed 30 s wait for its node ("timed out during startup") missed twice on a
    loaded machine: the third start is used; the start-up waits are generous unless the
    environment sets them; any other error, or an address, is not retried."""
    calls: list[dict] = []

    class SlowRay:
        def init(self, **kwargs: object) -> None:
            calls.append(kwargs)
            if sum("num_cpus" in c for c in calls) < 3:
                raise Exception("The current node timed out during startup. This could happen ...")

        def shutdown(self) -> None:
            calls.append({"shutdown": True})

    for name in distributed.SLOW_START_ENV:
        monkeypatch.delenv(name, raising=False)
    register = "RAY_worker_register_timeout_seconds"  # Ray's own spelling
    monkeypatch.setenv(register, "42")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    distributed.init_ray(SlowRay(), num_cpus=2)
    # "local": a cluster another process left on this machine is never joined
    own = {"address": "local", "num_cpus": 2}
    assert calls == [own, {"shutdown": True}, own, {"shutdown": True}, own]
    assert os.environ[register] == "42"  # the user's, kept
    assert os.environ["RAY_NUM_REDIS_GET_RETRIES"] == "300"

    class Broken:
        def init(self, **kwargs: object) -> None:
            calls.append(kwargs)
            raise RuntimeError("no such thing")
    calls.clear()
    with pytest.raises(RuntimeError):
        distributed.init_ray(Broken())
    assert len(calls) == 1
    # RAY_ADDRESS names the cluster: ray.init() reads it, no address is forced
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    calls.clear()
    distributed.init_ray(SlowRay(), num_cpus=2)
    assert calls[-1] == {"num_cpus": 2}


# --------------------------------------------------------------------------- on a local cluster


@pytest.mark.ray
def test_cli_engine_ray(tmp_path: Path, tiny_checkpoint: Path, one_thread: None) -> None:
    pytest.importorskip("ray.data")
    from vadfeat.cli import main

    folder = tmp_path / "in"
    synth.write_video(folder / "x.mp4", synth.scene_frames(36, seed=4), fps=25)
    extract([folder], tmp_path / "local", checkpoint=tiny_checkpoint, progress=False)
    # Run first in this file, so Ray is not initialised yet: the engine starts a
    # local cluster for the run and stops it after.
    code = main(["extract", str(folder), "-o", str(tmp_path / "ray"), "-c", str(tiny_checkpoint),
                 "--engine", "ray", "--ray-actors", "1", "-q"])
    assert code == 0
    assert np.array_equal(np.load(tmp_path / "local" / "x.npy"), np.load(tmp_path / "ray" / "x.npy"))
    assert [e["status"] for e in read_manifest(tmp_path / "ray")] == ["ok"]


@pytest.mark.ray
def test_ray_engine_matches_local_engine_and_resumes(tmp_path: Path, tiny_checkpoint: Path,
                                                     ray_cluster: object, one_thread: None) -> None:
    folder = _inputs(tmp_path)
    local = extract([folder], tmp_path / "local", checkpoint=tiny_checkpoint, progress=False)
    out = tmp_path / "ray"
    first = extract_ray([folder], out, checkpoint=tiny_checkpoint, progress=False)

    assert (first.total, first.ok, first.skipped, first.snippets) == (4, 3, 0, local.snippets)
    assert first.exit_code == local.exit_code == 1
    assert [v for v, _ in first.failed] == ["broken.mp4"]
    _same_outputs(tmp_path / "local", out)

    entries = read_manifest(out)
    assert len(entries) == 4 and len({e["run"] for e in entries}) == 1
    mine, theirs = _by_video(out), _by_video(tmp_path / "local")
    assert set(mine) == {"a/001.mp4", "b.mp4", "c.avi", "broken.mp4"}
    assert mine["broken.mp4"]["status"] == "failed"
    assert "not a video FFmpeg can read" in mine["broken.mp4"]["error"]
    for video, entry in mine.items():
        other = theirs[video]
        assert {k for k in entry if k != "seconds"} == {k for k in other if k != "seconds"}
        for key in ("status", "error", "num_frames", "num_snippets"):
            assert entry[key] == other[key], (video, key)
        # `output` names the file under OUT as given, like the local engine's.
        assert entry["output"] == (None if other["output"] is None
                                   else other["output"].replace(str(tmp_path / "local"), str(out)))

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix in (".npy", ".json")}
    again = extract_ray([folder], out, checkpoint=tiny_checkpoint, progress=False)
    assert (again.ok, again.skipped, [v for v, _ in again.failed]) == (0, 3, ["broken.mp4"])
    assert again.exit_code == 1
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing rewritten
    second = [e for e in read_manifest(out) if e["run"] == again.run_id]
    assert sorted((e["video"], e["status"]) for e in second) == [
        ("a/001.mp4", "skipped"), ("b.mp4", "skipped"), ("broken.mp4", "failed"),
        ("c.avi", "skipped")]


class _CrashOnB(distributed._ExtractActor):
    """Kills its worker process on b.mp4, as a decoder segfault or the OOM killer would."""

    def __call__(self, batch: dict) -> dict:
        if any(str(name) == "b.mp4" for name in batch["name"]):
            os._exit(7)
        return super().__call__(batch)


@pytest.mark.ray
def test_worker_death_and_other_runs_claims_touch_only_their_video(
        tmp_path: Path, tiny_checkpoint: Path, ray_cluster: object,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ray import cloudpickle

    folder = _inputs(tmp_path)
    out = tmp_path / "out"
    other_run = Claims(out)  # this process plays a concurrent run working on c.avi
    assert other_run.acquire("c.json") is None
    # Workers cannot import this test module: ship the subclass by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        monkeypatch.setattr(distributed, "_ExtractActor", _CrashOnB)
        summary = extract_ray([folder], out, checkpoint=tiny_checkpoint, progress=False)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        other_run.release_all()
    # c.avi is held by another live run: "in progress elsewhere", not done (issue 10).
    assert (summary.ok, summary.skipped, summary.exit_code) == (1, 0, 1)
    assert [v for v, _ in summary.elsewhere] == ["c.avi"]
    reasons = dict(summary.failed)
    assert set(reasons) == {"b.mp4", "broken.mp4"}
    assert "worker process died on this video" in reasons["b.mp4"]
    assert len(read_manifest(out)) == 4
    entries = _by_video(out)
    assert entries["a/001.mp4"]["status"] == "ok"
    assert entries["c.avi"]["status"] == "elsewhere"
    assert "in progress elsewhere" in entries["c.avi"]["error"]
    assert not list(out.glob("b.*")) and not list(out.glob("c.*"))


def test_ray_follows_the_ownership_rules(tmp_path: Path, tiny_checkpoint: Path,
                                         ray_cluster: object, one_thread: None) -> None:
    """Issue 10 under Ray, as in the local engine: other settings stop the run before any
    actor starts; a foreign file fails its video; switching crop count with --overwrite
    leaves one set of files."""
    folder = _inputs(tmp_path)
    out = tmp_path / "out"
    first = extract([folder], out, checkpoint=tiny_checkpoint, progress=False, layout="per-crop",
                    crops=5, batch_size=10)
    assert first.ok == 3
    with pytest.raises(ConfigError, match="crops: 5 -> 3"):
        extract_ray([folder], out, checkpoint=tiny_checkpoint, progress=False,
                    layout="per-crop", crops=3)
    (out / "c__0.npy").unlink()
    (out / "c__0.npy").write_bytes(b"mine")  # c's set was vadfeat's; this file is not...
    (out / "c.json").unlink()  # ...once no sidecar or record vouches for it
    for rec in (out / ".vadfeat-locks").glob("*.owned"):
        rec.unlink()
    s = extract_ray([folder], out, checkpoint=tiny_checkpoint, progress=False,
                    layout="per-crop", crops=3, overwrite=True)
    assert "c__0.npy exists and was not written by vadfeat" in dict(s.failed)["c.avi"]
    assert (out / "c__0.npy").read_bytes() == b"mine" and s.ok == 2
    assert sorted(p.name for p in out.glob("b*")) == ["b.json", "b__0.npy", "b__1.npy",
                                                      "b__2.npy"]
