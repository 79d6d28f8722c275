"""The engine redesign (issue 13): ExtractConfig, the shared run context, typed events,
and a library call that leaves the process's allocator alone.

Expected values are worked out by hand: the default preset takes non-overlapping
16-frame snippets and drops the tail, so 32 frames -> 2 snippets ([0, 15], [16, 31])
and 48 frames -> 3; the tiny model (2-frame tubelets, 16-pixel patches) is 64 wide.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import vadfeat
from vadfeat import _malloc
from vadfeat.cli import main
from vadfeat.engines import local
from vadfeat.errors import ConfigError
from vadfeat.pipeline.config import CONTENT_SETTINGS, RUN_SETTINGS, ExtractConfig
from vadfeat.pipeline.presets import get_preset
from vadfeat.testing import synth

TINY = {"random_weights": True, "model": "vit_tiny_patch16_224"}


@pytest.fixture
def two(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    for k, n in enumerate((32, 48)):  # -> 2 and 3 snippets
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(n, width=64, height=48, seed=k), fps=25)
    return src


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to read weights or build the model fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(importlib.import_module("vadfeat.pipeline.extractor"), "load_model", refuse)
    monkeypatch.setattr(importlib.import_module("vadfeat.backbones.videomae.checkpoints"), "load_checkpoint",
                        refuse)


# --------------------------------------------------------------------------- ExtractConfig


BAD = {
    "on_corrupt": ({"on_corrupt": "maybe"}, "on_corrupt must be one of fail, skip"),
    "frames_colour": ({"frames_colour": "sepia"}, "frames_colour must be one of"),
    "preprocess": ({"preprocess": "gpu"}, "preprocess must be one of worker, device"),
    "dtype": ({"dtype": "fp64"}, "unknown dtype 'fp64'"),
    "device": ({"device": "abacus"}, "unknown device 'abacus'"),
    "batch_size": ({"batch_size": 0}, "batch_size must be a positive integer"),
    "fps": ({"fps": -1.0}, "fps must be a positive number"),
    "max_pixels": ({"max_pixels": 0}, "max_pixels"),
    "layout": ({"layout": "nested"}, "unknown layout 'nested'"),
    "preset": ({"preset": "nope"}, "unknown preset"),
    "override": ({"crops": 7}, "crops"),
    # 2-frame tubelets: an odd clip length is not whole tubelets (nearest 2 or 4).
    "geometry": ({"clip_len": 3}, "clip_len=3 does not fit"),
    "no model size": ({"random_weights": True, "model": None}, "random weights need a model size"),
    "legacy on device": ({"preset": "fed-wsvad", "preprocess": "device"}, "legacy OpenCV path"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_settings_raise_before_any_model(case: str, no_model: None) -> None:
    bad, message = BAD[case]
    with pytest.raises(ConfigError, match=message):
        ExtractConfig.from_settings({**TINY, **bad})
    # The public class refuses the same settings the same way, without loading anything.
    with pytest.raises(ConfigError, match=message):
        vadfeat.FeatureExtractor(**{**TINY, **bad})


def test_config_without_a_model_and_frozen(no_model: None) -> None:
    cfg = ExtractConfig.from_settings(TINY, crops=3, fps=10.0)
    assert cfg.preset == get_preset("videomae-v2").replace(crops=3) and cfg.crops == 3
    assert cfg.overrides == (("crops", 3),) and cfg.layout == "flat"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.batch_size = 4  # type: ignore[misc]
    with pytest.raises(ConfigError, match="batch_size"):
        cfg.replace(batch_size=0)
    assert cfg.replace(batch_size=4).batch_size == 4 and cfg.batch_size is None  # None: per kind
    assert cfg.model_batch("clip") == 8 and cfg.replace(batch_size=4).model_batch("frame") == 4


def test_equal_configs_and_their_fingerprints(tiny_checkpoint: Path) -> None:
    a = ExtractConfig.from_settings(checkpoint=tiny_checkpoint, crops=3, dtype="fp32")
    b = ExtractConfig.from_settings({"dtype": "fp32", "checkpoint": tiny_checkpoint, "crops": 3})
    assert a == b
    ident = a.identify()  # the checkpoint's hash and size, no model
    assert ident.name == "vit_tiny_patch16_224" and ident.random_weights is False
    assert a.fingerprint(ident, "cpu") == b.fingerprint(b.identify(), "cpu")
    # A run setting: another config, the same fingerprint (resume across batch sizes).
    c = a.replace(batch_size=3, device="cpu")
    assert c != a and c.fingerprint(ident, "cpu") == a.fingerprint(ident, "cpu")
    # A content setting: another fingerprint, naming what changed.
    d = a.replace(crops=5)
    assert d.fingerprint(ident, "cpu")["preset"]["crops"] == 5
    assert a.fingerprint(ident, "cpu")["preset"]["crops"] == 3
    # dtype auto resolves per device: fp32 on the CPU, bf16 on CUDA.
    auto = a.replace(dtype="auto")
    assert auto.fingerprint(ident, "cpu")["dtype"] == "fp32"
    assert auto.fingerprint(ident, "cuda")["dtype"] == "bf16"
    # The loaded model reaches the same fingerprint as the file alone.
    fx = vadfeat.FeatureExtractor.from_config(a.replace(device="cpu"))
    assert fx.fingerprint() == a.fingerprint(ident, "cpu")
    assert fx.config.crops == fx.crops == 3


def test_every_config_field_is_classified() -> None:
    fields = {f.name for f in dataclasses.fields(ExtractConfig)} - {"overrides"}
    assert fields <= CONTENT_SETTINGS | RUN_SETTINGS
    assert "config" in RUN_SETTINGS  # extract(config=...) is a way to pass settings


# --------------------------------------------------------------------------- engines share the plan


def test_ray_and_local_engines_plan_with_the_same_fingerprint(tmp_path: Path, two: Path,
                                                              tiny_checkpoint: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The local engine writes two videos; the Ray driver, given the same config (and a
    stand-in for a running one-CPU cluster), must find both done: it skips only on an
    identical fingerprint, and a different one would stop the run with a ConfigError."""
    ray_engine = importlib.import_module("vadfeat.engines.ray")
    cfg = ExtractConfig.from_settings(checkpoint=tiny_checkpoint, device="cpu", crops=3)
    out = tmp_path / "out"
    s = vadfeat.extract([two], out, config=cfg, progress=False)
    assert (s.ok, s.skipped) == (2, 0)
    written = json.loads((out / "v0.json").read_text())["fingerprint"]

    fake = types.SimpleNamespace(is_initialized=lambda: True,
                                 cluster_resources=lambda: {"CPU": 1.0})
    monkeypatch.setattr(ray_engine, "_import_ray", lambda: fake)
    planned: list[dict] = []
    real = ray_engine.planned_fingerprint

    def spy(*args, **kwargs):
        fp = real(*args, **kwargs)()
        planned.append(fp)
        return lambda: fp

    monkeypatch.setattr(ray_engine, "planned_fingerprint", spy)
    r = ray_engine.extract_ray([two], out, config=cfg.replace(device="auto"), progress=False)
    assert (r.ok, r.skipped, r.failed, r.exit_code) == (0, 2, [], 0)
    assert planned == [written]


# --------------------------------------------------------------------------- typed events


def test_typed_events_in_order_for_two_videos(tmp_path: Path, two: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    real = local.drain

    def spy(events, collector, n_threads):
        get = events.get

        def logged(*args, **kwargs):
            event = get(*args, **kwargs)
            seen.append(event)
            return event
        events.get = logged
        return real(events, collector, n_threads)

    monkeypatch.setattr(local, "drain", spy)
    s = vadfeat.extract([two], tmp_path / "out", workers=1, progress=False, device="cpu",
                        size=32, short_side=32, **TINY)
    assert s.ok == 2
    kinds = [(type(e).__name__, getattr(e, "vid", None)) for e in seen]
    assert kinds == [
        ("VideoStarted", 0), ("VideoSized", 0), ("SnippetReady", 0), ("SnippetReady", 0),
        ("VideoDecoded", 0), ("VideoStarted", 1), ("VideoSized", 1), ("SnippetReady", 1),
        ("SnippetReady", 1), ("SnippetReady", 1), ("VideoDecoded", 1), ("WorkerExited", None),
    ]
    # the estimate for the progress bar: the container's frame count (32, 48) in 16-frame snippets
    assert [e.snippets for e in seen if isinstance(e, local.VideoSized)] == [2, 3]
    snippets = [e for e in seen if isinstance(e, local.SnippetReady)]
    assert [(e.vid, e.index, e.frames) for e in snippets] == [
        (0, 0, (0, 15)), (0, 1, (16, 31)), (1, 0, (0, 15)), (1, 1, (16, 31)), (1, 2, (32, 47))]
    decoded = [e for e in seen if isinstance(e, local.VideoDecoded)]
    assert [(e.snippets, e.meta["num_frames"]) for e in decoded] == [(2, 32), (3, 48)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded[0].snippets = 9  # type: ignore[misc]


def test_one_batching_loop(tmp_path: Path, two: Path) -> None:
    """extract_video and the threaded engine batch through the same SnippetBatcher:
    3 snippets with 2 per forward pass -> batches of 2 and 1 in memory; the threaded
    engine also runs a part batch when no snippet is waiting (timing decides where)."""
    fx = vadfeat.FeatureExtractor(**TINY, device="cpu", batch_size=2, size=32, short_side=32)
    calls: list[int] = []
    real = fx.run_model

    def counting(clips):
        calls.append(clips.shape[0])
        return real(clips)

    fx.run_model = counting  # type: ignore[method-assign]
    result = fx.extract_video(two / "v1.mp4")
    assert calls == [2, 1] and result.features.shape == (3, 64)
    calls.clear()
    s = vadfeat.extract([two / "v1.mp4"], tmp_path / "out", extractor=fx, progress=False)
    assert s.ok == 1 and sum(calls) == 3 and max(calls) <= 2
    # Batch composition changes float32 summation order only.
    np.testing.assert_allclose(np.load(tmp_path / "out" / "v1.npy"), result.features, atol=1e-5)


# --------------------------------------------------------------------------- malloc


class _FakeCtypes:
    """Stands in for ctypes inside vadfeat._malloc: records mallopt calls, changes nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.refused: set[tuple[int, int]] = set()  # (param, value) mallopt says 0 to
        self.util = types.SimpleNamespace(find_library=lambda name: "libc.so.6")

    def _mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 0 if (param, value) in self.refused else 1

    def CDLL(self, name: str) -> object:
        return types.SimpleNamespace(mallopt=self._mallopt)


@pytest.fixture
def mallopt(monkeypatch: pytest.MonkeyPatch) -> _FakeCtypes:
    fake = _FakeCtypes()
    monkeypatch.setattr(_malloc, "ctypes", fake)
    monkeypatch.setattr(_malloc, "_done", False)
    monkeypatch.setattr(_malloc, "applied", {})
    for name in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    return fake


def test_library_extract_leaves_malloc_alone(tmp_path: Path, two: Path, mallopt: _FakeCtypes) -> None:
    s = vadfeat.extract([two], tmp_path / "out", progress=False, device="cpu", size=32,
                        short_side=32, **TINY)
    assert s.ok == 2
    assert mallopt.calls == [] and _malloc._done is False


def test_cli_extract_limits_malloc_arenas(tmp_path: Path, two: Path, mallopt: _FakeCtypes) -> None:
    code = main(["extract", str(two), "-o", str(tmp_path / "out"), "-q", "--random-weights",
                 "--model", "vit_tiny_patch16_224", "--device", "cpu", "--size", "32",
                 "--short-side", "32"])
    assert code == 0
    # glibc's malloc.h: M_ARENA_MAX = -8 (1 arena), M_MMAP_THRESHOLD = -3 and
    # M_TRIM_THRESHOLD = -1 (1 GiB each: blocks stay on the heap); once.
    assert mallopt.calls == [(-8, 1), (-3, 1 << 30), (-1, 1 << 30)]


def test_malloc_settings_the_user_made_are_left_alone(mallopt: _FakeCtypes,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert _malloc.tune_malloc() is True
    assert mallopt.calls == [(-8, 1), (-1, 1 << 30)]
    assert _malloc.tune_malloc() is False and len(mallopt.calls) == 2  # once per process
    monkeypatch.setattr(_malloc, "_done", False)
    for name in ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.setenv(name, "1")
    assert _malloc.tune_malloc() is False and len(mallopt.calls) == 2  # all three set: no call


def test_a_glibc_that_refuses_1_gib_gets_the_documented_32_mib(mallopt: _FakeCtypes) -> None:
    # mallopt(3) documents 32 MiB as the largest M_MMAP_THRESHOLD on 64-bit; glibc 2.36
    # takes 1 GiB, an older one may answer 0: then the documented maximum is set.
    mallopt.refused.add((-3, 1 << 30))
    assert _malloc.tune_malloc() is True
    assert mallopt.calls == [(-8, 1), (-3, 1 << 30), (-3, 32 << 20), (-1, 1 << 30)]
    assert _malloc.applied == {"MALLOC_ARENA_MAX": 1, "MALLOC_MMAP_THRESHOLD_": 32 << 20,
                               "MALLOC_TRIM_THRESHOLD_": 1 << 30}


def test_clip_config_defaults_and_fingerprint(no_model: None) -> None:
    """A CLIP model name picks CLIP's default preset (clip-vadclip) without a model; the
    fingerprint names the model as recorded (clip/vit_tiny_16) and dtype auto -> fp32 on CPU."""
    cfg = ExtractConfig.from_settings(random_weights=True, model="clip/vit_tiny_16")
    assert cfg.preset.name == "clip-vadclip"
    fp = cfg.fingerprint(cfg.identify(), "cpu")
    assert (fp["model"], fp["random_weights"], fp["dtype"]) == ("clip/vit_tiny_16", True, "fp32")
    with pytest.raises(ConfigError, match="does not fit"):  # CLIP takes exactly its 224 px
        ExtractConfig.from_settings(random_weights=True, model="clip/vit_tiny_16", size=160,
                                    short_side=160)


def test_clip_extractor_from_config_matches_the_plan() -> None:
    cfg = ExtractConfig.from_settings(random_weights=True, model="clip/vit_tiny_16", device="cpu",
                                      crops=1)
    fx = vadfeat.FeatureExtractor.from_config(cfg)
    assert fx.fingerprint() == cfg.fingerprint(cfg.identify(), "cpu")
    assert fx.model_record()["backbone"] == "clip"


_FAULTS_SCRIPT = """
import resource, sys, torch
import vadfeat
from vadfeat import _malloc
# The heap as it was calibrated: with every public module loaded (`import vadfeat` did that
# before it became lazy); with less, the big blocks land elsewhere for a few rounds.
for name in vadfeat.__all__:
    getattr(vadfeat, name)
if sys.argv[1] == "tuned":
    _malloc.tune_malloc()
    if _malloc.applied.get("MALLOC_MMAP_THRESHOLD_") != 1 << 30:
        print("refused")  # an older glibc: 32 MiB at most (see vadfeat._malloc)
        sys.exit()
for _ in range(2):  # warm-up: the first allocation faults its pages in either way
    torch.empty(24 * 2**20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):  # ten 96 MiB snippets, each written once and freed, as the engine does
    torch.empty(24 * 2**20).fill_(1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_malloc_reuses_pages_of_big_blocks() -> None:
    # A 96 MiB block is 24,576 pages of 4 KiB.  Untuned, glibc maps each such block
    # afresh and every page faults when first written: ~245,760 faults for ten.  Tuned,
    # the block comes from the heap pages the previous one freed (measured: 0 faults in
    # most runs, now and then one or two blocks' worth while the heap settles).
    import subprocess

    def faults(mode: str) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], env=env, check=True,
                             capture_output=True, text=True)
        last = out.stdout.split()[-1]
        return -1 if last == "refused" else int(last)

    untuned, tuned = faults("plain"), faults("tuned")
    if tuned < 0:
        pytest.skip("this glibc refuses a 1 GiB mmap threshold (vadfeat falls back to 32 MiB)")
    assert untuned >= 10 * 24_576 * 0.9, untuned
    assert tuned <= 3 * 24_576 < untuned / 3, tuned


def test_batcher_keeps_one_batch_in_flight_and_returns_rows_in_order() -> None:
    """SnippetBatcher with ``submit`` and ``depth=1`` (how GPU runs batch, DeviceFeed):
    batch i is fetched only after batch i+1 is submitted, rows come back in the order
    added, len() counts waiting and in-flight snippets, flush fetches everything."""
    import torch

    from vadfeat.pipeline.stream import SnippetBatcher

    log: list[str] = []

    def submit(clips):
        batch = [int(c.item()) for c in clips]
        log.append(f"submit {batch}")

        def fetch():
            log.append(f"fetch {batch}")
            return np.asarray(batch) * 10

        return fetch

    b: SnippetBatcher[str] = SnippetBatcher(submit=submit, size=2, depth=1)
    got = []
    for i in range(5):
        got += b.add(f"k{i}", torch.tensor(i))
    # 5 snippets, batches of 2: [0,1] and [2,3] submitted; [0,1] fetched after [2,3] went.
    assert log == ["submit [0, 1]", "submit [2, 3]", "fetch [0, 1]"]
    assert got == [("k0", 0), ("k1", 10)] and len(b) == 3
    got += b.flush()
    assert log[3:] == ["submit [4]", "fetch [2, 3]", "fetch [4]"]
    assert [k for k, _ in got] == [f"k{i}" for i in range(5)]
    assert [int(v) for _, v in got] == [0, 10, 20, 30, 40]
    assert len(b) == 0 and b.flush() == []

    def broken(clips):
        def fetch():
            raise RuntimeError("simulated: device error")
        return fetch

    b = SnippetBatcher(submit=broken, size=1, depth=1)
    assert b.add("a", torch.tensor(0)) == []  # in flight, not fetched yet
    with pytest.raises(RuntimeError, match="device error"):
        b.add("b", torch.tensor(1))
    assert len(b) == 1  # "a" was dropped with its batch; "b" is still in flight
    with pytest.raises(ValueError, match="one of run_model and submit"):
        SnippetBatcher(size=2)


def test_batcher_keeps_rows_fetched_before_a_later_batch_fails() -> None:
    """flush() fetches every batch in flight; when a later batch's fetch raises (a CUDA
    error surfacing at its event), only that batch is dropped: the rows of the batch
    fetched before it are not lost with the exception but returned by the next call."""
    import torch

    from vadfeat.pipeline.stream import SnippetBatcher

    def submit(clips):
        batch = [int(c.item()) for c in clips]

        def fetch():
            if 2 in batch:
                raise RuntimeError("simulated: device error")
            return np.asarray(batch) * 10

        return fetch

    b: SnippetBatcher[str] = SnippetBatcher(submit=submit, size=2, depth=1)
    assert b.add("k0", torch.tensor(0)) == [] and b.add("k1", torch.tensor(1)) == []  # [0, 1] in flight
    assert b.add("k2", torch.tensor(2)) == []  # waits, batch not full
    with pytest.raises(RuntimeError, match="device error"):
        b.flush()  # submits [2], fetches [0, 1] (fine), then [2] (raises)
    # [2] is dropped with its error; [0, 1] was fetched (rows 0 and 10 by hand) and is
    # still owed to the caller: len() counts it, the next flush returns it.
    assert len(b) == 2
    assert [(k, int(v)) for k, v in b.flush()] == [("k0", 0), ("k1", 10)]
    assert len(b) == 0 and b.flush() == []


@pytest.mark.parametrize(("workers", "batch"), [(1, 1), (2, 1), (2, 2)])
def test_engine_with_a_batch_in_flight_finishes_every_video(tmp_path: Path, two: Path,
                                                           workers: int, batch: int) -> None:
    """The engine's loop with a GPU run's batcher (``submit`` + ``depth=1``, as
    DeviceFeed: features come back one batch later), forced on the CPU: a video whose
    last snippets are still in flight when its VideoDecoded arrives is finished once they
    are fetched (batch 1: the run's last batch is in flight while nothing waits); every
    video ends ok with the features of the synchronous path."""
    import torch

    from vadfeat.pipeline.stream import SnippetBatcher

    fx = vadfeat.FeatureExtractor(**TINY, device="cpu", size=32, short_side=32, batch_size=batch)
    want = {name: fx.extract_video(two / name).features for name in ("v0.mp4", "v1.mp4")}
    assert [w.shape[0] for w in want.values()] == [2, 3]  # 5 snippets
    log: list[str] = []

    def submit(clips):
        rows = fx.run_model(torch.stack(clips))  # "computed on the device" now, read later
        log.append("submit")

        def fetch():
            log.append("fetch")
            return rows

        return fetch

    fx.batcher = lambda: SnippetBatcher(submit=submit, size=fx.clips_per_batch, depth=1)  # type: ignore[method-assign]
    s = vadfeat.extract([two], tmp_path / "out", extractor=fx, workers=workers, progress=False)
    assert s.ok == 2 and not s.failed
    assert log.count("submit") == log.count("fetch") >= -(-5 // batch)  # every batch fetched
    for name, w in want.items():
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"{Path(name).stem}.npy"), w, atol=1e-5)


def test_device_feed_is_for_cuda_only() -> None:
    from vadfeat.pipeline.feed import DeviceFeed

    fx = vadfeat.FeatureExtractor(**TINY, device="cpu", size=32, short_side=32)
    with pytest.raises(ValueError, match="feeds a CUDA device, not cpu"):
        DeviceFeed(fx)
    assert fx.batcher().depth == 0  # the CPU path runs each batch at once


def test_crops_cut_on_the_model_side_give_the_same_features(tmp_path: Path, two: Path) -> None:
    """What a CUDA run with 10 crops does (crops_on_device: workers send the scaled frames
    [3, T, H', W'], the model side cuts the crops), forced on the CPU: the snippets, and so
    the features, are those of the ordinary path, bit for bit."""
    common = {**TINY, "device": "cpu", "size": 32, "short_side": 32, "crops": 10, "batch_size": 20}
    plain = vadfeat.FeatureExtractor(**common)
    moved = vadfeat.FeatureExtractor(**common)
    assert plain.crops_on_device is False  # only CUDA runs do it
    moved.crops_on_device = True
    _, clip = next(moved.snippet_stream(two / "v1.mp4"))
    assert clip.shape[:2] == (3, 16) and clip.shape[-1] != 32  # scaled frames, not crops
    want = plain.extract_video(two / "v1.mp4").features
    assert want.shape == (3, 10, 64)
    assert np.array_equal(moved.extract_video(two / "v1.mp4").features, want)
    s = vadfeat.extract([two / "v1.mp4"], tmp_path / "out", extractor=moved, progress=False)
    assert s.ok == 1
    np.testing.assert_allclose(np.load(tmp_path / "out" / "v1.npy"), want, atol=1e-5)  # batch order
