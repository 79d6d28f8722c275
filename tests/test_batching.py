"""``batch_size`` per backbone kind (issue 21): frame backbones (CLIP) batch images, clip
backbones clips; the queue between decode and model is bounded in bytes too.

A 10-crop CLIP snippet of 16 frames is 160 images; counting clips, every forward pass
of the image model took all of them at once (4.8 GB peak for ViT-B/16 on the CPU,
BENCHMARKS.md).  The image model is watched with a forward pre-hook that records the
batch of every pass (the tiny CLIP size, on generated videos); memory is not measured
here (bench/peak_memory.py does).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import vadfeat
from vadfeat import FeatureExtractor
from vadfeat._defaults import DEFAULT_BATCH_SIZE
from vadfeat.engines import local
from vadfeat.pipeline.config import ExtractConfig
from vadfeat.testing import synth

CLIP = {"model": "clip/vit_tiny_16", "random_weights": True, "device": "cpu"}
SNIPPETS = 3  # 48 frames, 16 per snippet
# Splitting a batch into passes changes only the M dimension of the image model's
# matmuls: float32 rounding, far below this (the tiny model's features are ~1e-1).
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batching") / "scene.mp4"
    synth.write_video(path, synth.scene_frames(16 * SNIPPETS, width=64, height=48, seed=4), fps=25)
    return path


def _record(ext: FeatureExtractor) -> list[int]:
    """The batch (images) of every pass of ``ext``'s image model, appended as they run."""
    seen: list[int] = []
    ext.model.frame_model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    return seen


@pytest.mark.parametrize(("settings", "most", "images"), [
    ({"crops": 10}, DEFAULT_BATCH_SIZE["frame"], 16 * 10),          # the default: 16 images
    ({"crops": 10, "batch_size": 8}, 8, 16 * 10),
    ({"crops": 1, "batch_size": 24}, 24, 16),                       # 1 snippet (16) per batch
    ({"crops": 10, "frame_reduce": "middle", "batch_size": 25}, 25, 10),
])
def test_frame_backbone_passes_hold_at_most_batch_size_images(
        video: Path, tmp_path: Path, settings: dict[str, Any], most: int, images: int) -> None:
    """Through the engine (decode thread, queue, batcher): every pass of the image model
    holds at most ``batch_size`` images, and every image of every snippet runs once."""
    ext = FeatureExtractor(**CLIP, **settings)
    seen = _record(ext)
    summary = vadfeat.extract([video], tmp_path / "out", extractor=ext, progress=False)
    assert summary.ok == 1
    assert seen and max(seen) <= most, seen
    assert sum(seen) == SNIPPETS * images


def test_image_passes_keep_features_to_float_rounding(video: Path) -> None:
    """Same video: one pass per batch of snippets (the batching before issue 21) against
    passes of 7 images, which split snippets and crops mid-way."""
    one_pass = FeatureExtractor(**CLIP, crops=10, batch_size=512)  # 3 snippets, 480 images
    one_pass.model.max_images = None  # no split at all, as before
    split = FeatureExtractor(**CLIP, crops=10, batch_size=7)
    seen = _record(split)
    want = one_pass.extract_video(video).features
    got = split.extract_video(video).features
    assert max(seen) == 7 and got.shape == want.shape == (SNIPPETS, 10, 32)
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(want), rtol=RTOL, atol=ATOL)
    assert float(np.abs(want).max()) > 100 * ATOL  # features that would show a mistake


def test_batch_size_counts_clips_for_clip_backbones_and_images_for_frame_backbones() -> None:
    tiny_mae = {"model": "videomae_v2/vit_tiny_patch16_224", "random_weights": True}
    for crops, clip_snippets, frame_snippets in ((1, 8, 1), (10, 1, 1)):
        mae = ExtractConfig.from_settings(tiny_mae, crops=crops)
        clip = ExtractConfig.from_settings(CLIP, crops=crops)
        assert mae.batch_size is None and mae.model_batch("clip") == DEFAULT_BATCH_SIZE["clip"] == 8
        assert mae.snippets_per_batch(mae.input_kind()) == clip_snippets  # unchanged: 8 // crops
        assert clip.input_kind() == "frame" and clip.model_batch("frame") == DEFAULT_BATCH_SIZE["frame"]
        assert clip.snippets_per_batch("frame") == frame_snippets  # 16 // (16 * crops), at least 1
        assert clip.replace(batch_size=64).snippets_per_batch("frame") == max(1, 64 // (16 * crops))
    frames = ExtractConfig.from_settings(CLIP, preset="clip-frames", batch_size=48)
    assert frames.snippets_per_batch("frame") == 48  # one frame per snippet


def test_batch_size_stays_out_of_the_fingerprint(video: Path) -> None:
    """Old outputs resume: the default changed from 8 to per-kind, the fingerprint did not."""
    prints = [FeatureExtractor(**CLIP, crops=10, batch_size=b).fingerprint() for b in (None, 8, 160)]
    assert prints[0] == prints[1] == prints[2]
    assert "batch_size" not in str(prints[0])


def test_worker_snippets_waiting_for_the_model_are_bounded_in_bytes(
        video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 1-byte budget at most one preprocessed snippet waits in the queue at a time
    (a larger one passes alone), and the run completes with the same features."""
    want = FeatureExtractor(**CLIP, crops=10).extract_video(video).features
    held: list[int] = []
    acquire = local.ByteBudget.acquire

    def recording(self: local.ByteBudget, nbytes: int, timeout: float | None = None) -> bool:
        ok = acquire(self, nbytes, timeout)
        if ok:
            held.append(self.held)
        return ok

    # raising=False: before issue 21 there was no such bound (and the test fails below).
    monkeypatch.setattr(importlib.import_module("vadfeat.engines.local"), "QUEUE_BYTES", 1, raising=False)
    monkeypatch.setattr(local.ByteBudget, "acquire", recording)
    ext = FeatureExtractor(**CLIP, crops=10)
    summary = vadfeat.extract([video], tmp_path / "out", extractor=ext, progress=False)
    assert summary.ok == 1
    snippet = 10 * 3 * 16 * 224 * 224 * 4  # [crops, 3, T, 224, 224] float32
    assert len(held) == SNIPPETS and max(held) == snippet  # one at a time
    got = np.load(tmp_path / "out" / "scene.npy")
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_a_batch_of_one_snippet_is_not_copied() -> None:
    """A 10-crop snippet is 96 MiB: the batch of one is a view of it, a batch of two one copy."""
    from vadfeat.pipeline.stream import stack_batch

    a, b = torch.rand(10, 3, 2, 4, 4), torch.rand(10, 3, 2, 4, 4)
    one = stack_batch([a])
    assert one.shape == (1, *a.shape) and one.data_ptr() == a.data_ptr()
    two = stack_batch([a, b])
    assert torch.equal(two[1], b) and two.data_ptr() not in (a.data_ptr(), b.data_ptr())


def test_batch_size_help_is_made_from_the_registry_and_states_the_budget() -> None:
    from vadfeat._defaults import MEMORY_BUDGET
    from vadfeat.backbones._registry import list_backbones
    from vadfeat.cli.extract_cmds import batch_help

    text = batch_help()
    for b in list_backbones():
        assert b.name in text
    for kind in ("clip", "frame"):
        assert f"default {DEFAULT_BATCH_SIZE[kind]}" in text
    assert "images for frame backbones" in text and MEMORY_BUDGET in text
