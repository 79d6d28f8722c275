"""Device-side preprocessing (``preprocess="device"``): same model input, same features.

On the CPU the device path is the same code minus page-locked memory, so every
equivalence check runs without a GPU.  Tolerances: the device path applies the
worker path's operations (``transform_frames``: resize, crop, scale, channel
order) to a whole snippet instead of frame by frame; batched and per-frame
``interpolate`` agree to float32 rounding, ~1e-5 absolute on normalised values
at most.  Measured on the CPU (torch 2.x, the sizes below): 0.0, bit for bit, for
clips and features alike.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stress.fault_corpus import call_with_limit
from vadfeat.cli import main
from vadfeat.engines.events import EventQueue as _EventQueue
from vadfeat.engines.events import put_unless_stopped as _put_unless_stopped
from vadfeat.engines.local import (
    ByteBudget,
    FeatureExtractor,
    SnippetReady,
    VideoDecoded,
    extract,
)
from vadfeat.errors import ConfigError
from vadfeat.testing import synth

CLIP_ATOL = 1e-5  # float32 model input, normalised values (|x| < ~3)
FEATURE_ATOL = 1e-4  # features of the tiny model through extract()

CASES = [("videomae-v2", 1), ("videomae-v2", 3), ("videomae-v2", 10),
         ("videomae-tad", 1), ("videomae-tad", 10)]


def within(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; fail (instead of hanging the suite) if it takes longer than ``seconds``."""
    try:
        return call_with_limit(seconds, fn, *args, **kwargs)
    except TimeoutError as exc:
        pytest.fail(f"deadlock: {exc}")


@pytest.fixture(scope="module")
def frames_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """Random frames of an odd size (every resize and crop offset is non-trivial), lossless."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (127, 171, 3), dtype=np.uint8) for _ in range(20)]
    folder = tmp_path_factory.mktemp("frames") / "f"
    synth.write_frame_folder(folder, frames, pattern="frame_{:03d}.png", start=0)
    return folder, frames


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    synth.write_video(root / "a.mp4", synth.scene_frames(40, width=320, height=240, seed=1), fps=25)
    synth.write_video(root / "b.mp4", synth.scene_frames(20, width=240, height=320, seed=2), fps=25)
    return root


# --------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize(("preset", "crops"), CASES)
def test_device_clips_equal_worker_clips(frames_folder: tuple[Path, list[np.ndarray]],
                                         tiny_checkpoint: Path, preset: str, crops: int) -> None:
    folder, frames = frames_folder
    common = {"preset": preset, "crops": crops, "tail": "pad", "device": "cpu"}
    worker = FeatureExtractor(tiny_checkpoint, **common)
    device = FeatureExtractor(tiny_checkpoint, preprocess="device", **common)
    want = list(worker.snippet_stream(folder))
    raw = list(device.snippet_stream(folder))
    assert [r for r, _ in raw] == [r for r, _ in want] == [(0, 15), (16, 19)]
    for (_, w), (_, r) in zip(want, raw, strict=True):
        assert r.dtype == torch.uint8 and r.shape == (16, 127, 171, 3) and r.is_contiguous()
        got = device.prepare(r)
        assert got.dtype == torch.float32 and got.shape == w.shape == (crops, 3, 16, 224, 224)
        assert worker.prepare(w) is w  # worker clips are already model input
        diff = float((got - w).abs().max())
        assert diff <= CLIP_ATOL, f"max abs difference {diff}"
    # Raw frames are the decoded RGB frames, channels last as decoded; the padded tail
    # repeats frame 19.
    tail = frames[16:] + [frames[19]] * 12
    for (_, r), src in zip(raw, (frames[:16], tail), strict=True):
        assert np.array_equal(r.numpy(), np.stack(src))


@pytest.mark.parametrize(("preset", "crops"), CASES)
def test_extract_features_agree(tmp_path: Path, two_videos: Path, tiny_checkpoint: Path,
                                preset: str, crops: int) -> None:
    common = {"checkpoint": tiny_checkpoint, "preset": preset, "crops": crops, "device": "cpu",
              "progress": False, "workers": 2, "batch_size": 3 * crops}
    a = extract([two_videos], tmp_path / "worker", **common)
    b = extract([two_videos], tmp_path / "device", preprocess="device", **common)
    assert a.ok == b.ok == 2 and b.exit_code == 0, b.describe()
    for name in ("a", "b"):
        want = np.load(tmp_path / "worker" / f"{name}.npy")
        got = np.load(tmp_path / "device" / f"{name}.npy")
        assert got.shape == want.shape and got.dtype == np.float32
        diff = float(np.abs(got - want).max())
        assert diff <= FEATURE_ATOL, f"{name}: max abs difference {diff}"
        meta = json.loads((tmp_path / "device" / f"{name}.json").read_text())
        assert meta["preprocess"] == "device" and meta["fingerprint"]["preprocess"] == "device"
        assert meta["snippets"] == json.loads(
            (tmp_path / "worker" / f"{name}.json").read_text())["snippets"]


def test_extract_video_device_mode(two_videos: Path, tiny_checkpoint: Path) -> None:
    # The path FeatureExtractor.process (the Ray engine) takes.
    want = FeatureExtractor(tiny_checkpoint, device="cpu", batch_size=2)
    got = FeatureExtractor(tiny_checkpoint, device="cpu", batch_size=2, preprocess="device")
    a, b = want.extract_video(two_videos / "a.mp4"), got.extract_video(two_videos / "a.mp4")
    assert float(np.abs(a.features - b.features).max()) <= FEATURE_ATOL
    assert (a.metadata["preprocess"], b.metadata["preprocess"]) == ("worker", "device")


# --------------------------------------------------------------------------- settings


def test_bad_preprocess_settings_are_config_errors(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match="legacy OpenCV"):
        FeatureExtractor(tiny_checkpoint, preset="fed-wsvad", preprocess="device")
    with pytest.raises(ConfigError, match="preprocess must be one of worker, device"):
        FeatureExtractor(tiny_checkpoint, preprocess="gpu")
    with pytest.raises(ConfigError, match="legacy OpenCV"):
        extract([tmp_path], tmp_path / "out", checkpoint=tiny_checkpoint, preset="fed-wsvad",
                preprocess="device")
    # With several crops fed-wsvad's geometry is the torch crop path: that can run on a device.
    assert FeatureExtractor(tiny_checkpoint, preset="fed-wsvad", crops=3,
                            preprocess="device").preprocess == "device"


def test_resume_tells_the_modes_apart(tmp_path: Path, two_videos: Path,
                                      tiny_checkpoint: Path) -> None:
    out = tmp_path / "out"
    common = {"checkpoint": tiny_checkpoint, "device": "cpu", "progress": False}
    worker = extract([two_videos], out, **common)
    meta = json.loads((out / "a.json").read_text())
    # Worker outputs keep the fingerprint they had before the setting existed.
    assert meta["preprocess"] == "worker" and "preprocess" not in meta["fingerprint"]
    # Switching modes over existing outputs needs --overwrite (issue 10).
    device = extract([two_videos], out, preprocess="device", overwrite=True, **common)
    again = extract([two_videos], out, preprocess="device", **common)
    back = extract([two_videos], out, overwrite=True, **common)
    assert (worker.ok, device.ok, device.skipped) == (2, 2, 0)
    assert (again.ok, again.skipped) == (0, 2)
    assert (back.ok, back.skipped) == (2, 0)


def test_cli_preprocess_device(tmp_path: Path, two_videos: Path, tiny_checkpoint: Path) -> None:
    code = main(["extract", str(two_videos / "b.mp4"), "-o", str(tmp_path / "o"), "-c",
                 str(tiny_checkpoint), "--device", "cpu", "--preprocess", "device", "-q"])
    assert code == 0
    meta = json.loads((tmp_path / "o" / "b.json").read_text())
    assert meta["preprocess"] == "device" and meta["fingerprint"]["preprocess"] == "device"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"checkpoint": str(tiny_checkpoint), "preprocess": "device",
                               "device": "cpu", "quiet": True}))
    assert main(["extract", str(two_videos / "b.mp4"), "-o", str(tmp_path / "c"),
                 "--config", str(cfg)]) == 0
    assert json.loads((tmp_path / "c" / "b.json").read_text())["preprocess"] == "device"
    assert main(["extract", str(two_videos), "-o", str(tmp_path / "f"), "-c", str(tiny_checkpoint),
                 "--preset", "fed-wsvad", "--preprocess", "device"]) == 2


# --------------------------------------------------------------------------- the byte bound


def _snippet(nbytes: int) -> SnippetReady:
    return SnippetReady(0, 0, (0, 15), torch.zeros(nbytes, dtype=torch.uint8))


def test_budget_blocks_a_producer_until_a_consumer_releases() -> None:
    budget = ByteBudget(100)
    assert budget.acquire(60)
    entered = threading.Event()
    got: list[bool] = []

    def producer() -> None:
        entered.set()
        got.append(budget.acquire(60))  # 60 + 60 > 100: waits

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    assert entered.wait(5)
    t.join(0.3)
    assert t.is_alive() and not got and budget.held == 60
    budget.release(60)
    t.join(5)
    assert not t.is_alive() and got == [True] and budget.held == 60
    assert not budget.acquire(60, timeout=0.05)  # no room: gives up after the timeout


def test_budget_lets_an_oversized_item_pass_alone() -> None:
    budget = ByteBudget(100)
    assert budget.acquire(500, timeout=0)  # nothing held: it must pass, or never would
    assert not budget.acquire(1, timeout=0)
    budget.release(500)
    assert budget.acquire(1, timeout=0)


def test_event_queue_bounds_bytes_and_stop_wakes_the_producer() -> None:
    events = _EventQueue(10, ByteBudget(100))
    stop = threading.Event()
    assert _put_unless_stopped(events, _snippet(80), stop)
    events.put(VideoDecoded(0, 1, {}))  # no frames: needs only a free slot
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(
        _put_unless_stopped(events, _snippet(80), stop)), daemon=True)
    t.start()
    t.join(0.3)
    assert t.is_alive() and events.qsize() == 2  # waiting for bytes, not for a slot
    stop.set()
    t.join(5)
    assert not t.is_alive() and result == [False]
    assert events.budget.held == 80  # the stopped put did not keep bytes
    # A consumer taking a snippet gives its bytes back; the next one fits.
    assert isinstance(events.get(), SnippetReady) and events.budget.held == 0
    assert _put_unless_stopped(events, _snippet(80), threading.Event())


def test_engine_with_a_tiny_byte_budget(tmp_path: Path, two_videos: Path, tiny_checkpoint: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every snippet is larger than the budget: one raw snippet at a time, no deadlock."""
    common = {"checkpoint": tiny_checkpoint, "device": "cpu", "progress": False, "workers": 2}
    want = extract([two_videos], tmp_path / "ref", **common)
    monkeypatch.setattr(importlib.import_module("vadfeat.engines.local"), "RAW_QUEUE_BYTES", 1)
    got = within(120, extract, [two_videos], tmp_path / "out", preprocess="device", **common)
    assert want.ok == got.ok == 2
    for name in ("a", "b"):
        diff = np.abs(np.load(tmp_path / "ref" / f"{name}.npy")
                      - np.load(tmp_path / "out" / f"{name}.npy")).max()
        assert diff <= FEATURE_ATOL


def test_a_snippet_that_cannot_be_prepared_fails_only_its_video(
        tmp_path: Path, two_videos: Path, tiny_checkpoint: Path) -> None:
    """A transform error raised on the model side fails that video, as in a decode worker."""
    fx = FeatureExtractor(tiny_checkpoint, device="cpu", preprocess="device")
    real = fx.prepare

    def prepare(clip: torch.Tensor) -> torch.Tensor:
        if clip.shape[-2] == 320:  # a.mp4 (frames [T, H, W, 3])
            raise ValueError("simulated: cannot cut crops")
        return real(clip)

    fx.prepare = prepare  # type: ignore[method-assign]
    s = within(120, extract, [two_videos], tmp_path / "out", extractor=fx, progress=False)
    assert s.ok == 1 and dict(s.failed) == {"a.mp4": "unexpected ValueError: simulated: cannot "
                                                     "cut crops"}
    assert not (tmp_path / "out" / "a.npy").exists() and (tmp_path / "out" / "b.npy").exists()


# --------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
def test_cuda_device_preprocessing_matches_cpu(two_videos: Path, tiny_checkpoint: Path) -> None:
    """Pinned upload and CUDA interpolation vs the CPU worker path.

    Tolerances (not measured here, no GPU on the machine these tests were written
    on): CUDA and CPU bilinear differ in float32 rounding of source positions,
    bounded like torch vs OpenCV in test_extract (1e-3 on normalised values); the
    features run in fp32 on the same GPU either way, so they differ only through
    the input (cuDNN may use TF32 for the patch embedding: 5e-3).
    """
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    common = {"device": "cuda", "dtype": "fp32", "crops": 3}
    worker = FeatureExtractor(tiny_checkpoint, **common)
    device = FeatureExtractor(tiny_checkpoint, preprocess="device", **common)
    video = two_videos / "a.mp4"
    for (_, w), (_, r) in zip(worker.snippet_stream(video), device.snippet_stream(video),
                              strict=True):
        assert r.is_pinned() and r.dtype == torch.uint8
        got = device.prepare(r)
        assert got.is_cuda
        assert float((got.cpu() - w).abs().max()) <= 1e-3
    a, b = worker.extract_video(video), device.extract_video(video)
    assert float(np.abs(a.features - b.features).max()) <= 5e-3
