"""A loaded model plus a resolved config: :class:`FeatureExtractor`, the unit of work of every engine.

It loads the model (:func:`vadfeat.backbones.loading.load_model`, from this module
only), streams a video's snippets (:func:`vadfeat.pipeline.stream.snippet_stream`),
prepares them on the device when ``preprocess="device"`` and runs the model: one
video's features and sidecar (:class:`VideoFeatures`, :meth:`FeatureExtractor.extract_video`).
It writes no file: the engines (:mod:`vadfeat.engines`) schedule many videos and hand
each result to the run's sink (:mod:`vadfeat.store.sinks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vadfeat._version import __version__
from vadfeat.backbones._registry import pick_backbone
from vadfeat.backbones.loading import load_model, parse_dtype
from vadfeat.errors import ConfigError, VideoError
from vadfeat.io.inputs import VideoItem
from vadfeat.io.remote import is_url
from vadfeat.io.video import DEFAULT_FOLDER_FPS, DEFAULT_MAX_PIXELS
from vadfeat.pipeline.config import (
    ExtractConfig,
    ModelIdentity,
    check_fit,
    resolve_device,
    resolve_dtype,
)
from vadfeat.pipeline.presets import Preset
from vadfeat.pipeline.stream import SnippetBatcher, snippet_stream
from vadfeat.pipeline.transforms import build_frame_transform, cut_crops, transform_frames
from vadfeat.store.sinks.base import VideoFeatures  # its home; re-exported here (its old one)


class FeatureExtractor:
    """A loaded model plus a resolved preset: the unit of work for every engine.

    ``preset`` is a registered name or a :class:`Preset`; ``overrides`` replace any
    of its fields (``clip_len=``, ``crops=``, ``pooling=`` ...) and are recorded
    beside the resolved values.  A checkpoint is required unless
    ``random_weights=True`` (then ``model=`` names the size and every output says
    ``random_weights: true``).  The settings become an
    :class:`~vadfeat.pipeline.config.ExtractConfig` (``.config``), validated before
    the model loads; :meth:`from_config` builds an extractor from one.

    ``batch_size`` counts model inputs per forward pass: clips for a clip backbone
    (a k-crop snippet is k; default 8), images for a frame backbone (a 16-frame k-crop
    snippet is 16 * k; default 16, run that many at a time); ``None``: the default
    (:data:`vadfeat._defaults.DEFAULT_BATCH_SIZE`).  It does not change the features
    beyond float32 rounding and is not in the fingerprint.

    ``preprocess="worker"`` (default) resizes, crops and normalises frames on the
    CPU, in the thread that decodes them; ``"device"`` leaves that to
    :meth:`prepare`, which runs it on the model's device for a whole snippet of
    uploaded uint8 frames (same operations, features equal to float32 rounding).
    It pays off on a GPU with high-resolution input; the legacy resize of
    ``fed-wsvad`` cannot use it.
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        *,
        model: str | None = None,
        backbone: str | None = None,
        preset: str | Preset | None = None,
        random_weights: bool = False,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int | None = None,
        num_heads: int | None = None,
        on_corrupt: str = "fail",
        fps: float | None = None,
        frames_colour: str = "normal",
        folder_fps: float = DEFAULT_FOLDER_FPS,
        quantize: str | None = None,
        preprocess: str = "worker",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **overrides: Any,
    ) -> None:
        settings = {k: v for k, v in locals().items() if k not in ("self", "overrides", "__class__")}
        self._build(ExtractConfig.from_settings(settings, **overrides))

    @classmethod
    def from_config(cls, config: ExtractConfig) -> FeatureExtractor:
        """An extractor for ``config`` (made by :meth:`ExtractConfig.from_settings`)."""
        self = cls.__new__(cls)
        self._build(config)
        return self

    def _build(self, config: ExtractConfig) -> None:
        self.config = config
        self.preset = config.preset
        self.overrides = config.override_dict
        self.preprocess = config.preprocess
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.on_corrupt = config.on_corrupt
        self.fps = config.fps
        self.frames_colour = config.frames_colour
        self.folder_fps = config.folder_fps
        self.max_pixels = config.max_pixels
        self.num_heads = config.num_heads
        self.backbone = pick_backbone(checkpoint=config.checkpoint, model=config.model,
                                      backbone=config.backbone)[0]
        self.backbone.check_feature(self.preset.pooling)
        self.model = load_model(
            config.checkpoint, model=config.model, backbone=self.backbone.name,
            pooling=self.preset.pooling, device=self.device, num_heads=config.num_heads,
            quantize=config.quantize, frame_reduce=self.preset.frame_reduce,
        )
        check_fit(self.preset, self.model.spec, backbone=self.backbone)
        if config.pca is not None:  # an audio backbone's postprocessed head (checked in the config)
            self.backbone.attach_pca(self.model, config.pca)  # type: ignore[attr-defined]
        self.batch_size = config.model_batch(self.backbone.input_kind)
        if self.backbone.input_kind == "frame":  # the image model sees batch_size images a pass
            self.model.max_images = self.batch_size
        if getattr(self.model, "quantize", None) and self.dtype != "fp32":
            raise ConfigError(f"int8 layers take fp32 activations; use dtype='fp32', not {self.dtype}")
        self.transform = build_frame_transform(self.preset)
        # A GPU run with 5 or 10 crops: decode workers hand over the scaled frames (a
        # quarter of the bytes) and the crops are cut on the device (same values).
        self.crops_on_device = (self.preprocess == "worker" and self.transform.cuts_at_snippet
                                and self.device.type == "cuda")
        self._autocast_dtype = parse_dtype(self.dtype) if self.dtype != "fp32" else None
        self._copy_stream: torch.cuda.Stream | None = None  # upload(): created on first use

    # ------------------------------------------------------------------ description

    @property
    def crops(self) -> int:
        return self.preset.crops

    @property
    def clips_per_batch(self) -> int:
        """Snippets per batch of the model side: :attr:`batch_size` counts clips (a k-crop
        snippet is k) for clip backbones, images (a k-crop snippet of T frames is k * T)
        for frame backbones, whose model splits a batch into passes of :attr:`batch_size`
        images (:class:`~vadfeat.backbones.frames.SnippetOfFrames`); at least one snippet."""
        return self.config.snippets_per_batch(self.backbone.input_kind)

    def model_record(self) -> dict[str, Any]:
        info = self.model.checkpoint
        return {
            "name": self.backbone.record_name(self.model.spec),
            "backbone": self.backbone.name,
            "spec": self.model.spec.to_dict(),
            "pooling": self.preset.pooling,
            "checkpoint": getattr(info, "path", None),
            "checkpoint_format": getattr(info, "format", None),
            "checkpoint_sha256": getattr(info, "sha256", None),
            "random_weights": self.model.random_weights,
            "quantize": getattr(self.model, "quantize", None),
        }

    def fingerprint(self, layout: str | None = None) -> dict[str, Any]:
        """The settings that decide an output's content: resume skips only on a match.

        ``layout`` defaults to the config's (``flat`` unless built from a config).
        """
        return self.config.fingerprint(ModelIdentity.of_record(self.model_record()), self.device.type,
                                       layout)

    # ------------------------------------------------------------------ the per-video function

    def snippet_stream(
        self, source: str | Path, *, skip: int = 0, on_open: Any = None
    ) -> Generator[tuple[tuple[int, int], torch.Tensor | None], None, dict[str, Any]]:
        """Yield ``((first, last), clip)`` per snippet, in temporal order; return metadata.

        ``clip`` is ``[crops, 3, T, size, size]`` float32 on the CPU; with
        :attr:`crops_on_device` (a CUDA run with 5 or 10 crops) the snippet's scaled
        frames ``[3, T, H', W']`` float32; with ``preprocess="device"`` its raw frames
        ``[T, H, W, 3]`` uint8 RGB.  The latter two are page-locked when the device is
        CUDA (so :meth:`upload` is asynchronous); model-input clips are staged in
        page-locked memory per batch (:class:`~vadfeat.pipeline.feed.DeviceFeed`).
        :meth:`prepare` turns each into model input
        (:func:`vadfeat.pipeline.stream.snippet_stream`).  ``skip``: the first ``skip``
        snippets are decoded but not preprocessed, and yielded with ``None`` for a clip
        (a resumed video); ``on_open`` is called with the estimated snippet count once the
        video is open.
        """
        return snippet_stream(source, self.config, self.transform,
                              pin_memory=self.device.type == "cuda", crops_on_device=self.crops_on_device,
                              skip=skip, on_open=on_open)

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        """A clip from :meth:`snippet_stream` -> model input ``[crops, 3, T, S, S]`` float32.

        With ``preprocess="device"`` the raw frames are uploaded (non-blocking) and
        transformed on the device, all frames of the snippet in one call; the result
        stays there and :meth:`run_model` does not move it again.  With
        :attr:`crops_on_device` the scaled frames are uploaded and the crops cut there
        (:func:`~vadfeat.pipeline.transforms.cut_crops`, the same values).  Otherwise
        (``"worker"``) the clip is already model input and is returned as it is (the
        batch is uploaded whole).
        """
        if self.preprocess == "worker":
            if self.crops_on_device:  # scaled frames [3, T, H', W'] -> crops on the device
                return cut_crops(self.upload(clip), self.preset)
            return clip
        frames = self.upload(clip).permute(0, 3, 1, 2)  # [T, 3, H, W] view
        return transform_frames(frames, self.preset).permute(1, 2, 0, 3, 4)

    @torch.inference_mode()
    def run_model(self, clips: torch.Tensor) -> np.ndarray:
        """``[N, crops, 3, T, S, S]`` -> features ``[N, (crops,) *feature_shape]`` float32.

        Synchronous.  ``clips`` on the CPU are uploaded here; clips already on the
        device (from :meth:`prepare` in device mode) are used where they are.  GPU runs
        batch through :class:`~vadfeat.pipeline.feed.DeviceFeed` instead (same forward,
        copies overlapped with compute; :meth:`batcher`).
        """
        n = clips.shape[0]
        x = clips.flatten(0, 1)
        if self.device.type == "cuda" and not x.is_cuda:
            x = x.pin_memory().to(self.device, non_blocking=True)
        return self.rows(self.forward(x).float().cpu().numpy(), n)

    def upload(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the model's device.  On CUDA the copy runs on a side stream (from
        page-locked memory it is asynchronous), so it overlaps the model's compute; the
        compute stream waits for it before using the result."""
        if self.device.type != "cuda" or x.is_cuda:
            return x.to(self.device)
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(device=self.device)
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._copy_stream):
            y = x.to(self.device, non_blocking=True)
        compute.wait_stream(self._copy_stream)
        y.record_stream(compute)  # allocated on the side stream, used on the compute stream
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model on a flat batch ``[N * crops, 3, T, S, S]`` on its device, under the
        run's autocast dtype: features ``[N * crops, *feature_shape]`` (the compute dtype)."""
        if self._autocast_dtype is not None:
            with torch.autocast(self.device.type, dtype=self._autocast_dtype):
                return self.model(x)
        return self.model(x)

    def rows(self, y: np.ndarray, n: int) -> np.ndarray:
        """Flat features ``[N * crops, ...]`` -> ``[N, (crops,) *feature_shape]``."""
        y = y.reshape(n, self.crops, *self.model.feature_shape)
        return y[:, 0] if self.crops == 1 else y

    def batcher(self) -> SnippetBatcher[Any]:
        """A :class:`~vadfeat.pipeline.stream.SnippetBatcher` of :attr:`clips_per_batch`
        snippets per forward pass: through :meth:`run_model` on the CPU; on a CUDA device
        through a :class:`~vadfeat.pipeline.feed.DeviceFeed` with one batch in flight."""
        if self.device.type == "cuda":
            from vadfeat.pipeline.feed import DeviceFeed

            return SnippetBatcher(submit=DeviceFeed(self).submit, size=self.clips_per_batch, depth=1)
        return SnippetBatcher(lambda clips: self.run_model(clips), self.clips_per_batch)

    def sidecar(self, *, video: str, source: Path | str, meta: dict[str, Any],
                ranges: list[tuple[int, int]], shape: tuple[int, ...], layout: str) -> dict[str, Any]:
        return {
            "vadfeat_version": __version__,
            "video": video,
            "source": source if is_url(source) else str(Path(source).resolve()),
            "preset": self.preset.name,
            "settings": self.preset.resolved().to_dict(),
            "overrides": dict(self.overrides),
            "model": self.model_record(),
            "dtype": self.dtype,
            "device": str(self.device),
            "preprocess": self.preprocess,
            **meta,
            "snippets": [list(r) for r in ranges],
            "crop_order": list(self.transform.crop_names) if self.crops > 1 else None,
            "shape": list(shape),
            "layout": layout,
            "fingerprint": self.fingerprint(layout),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def process(self, item: VideoItem, *, layout: str,
                deliver: Callable[[VideoFeatures], str]) -> dict[str, Any]:
        """Extract one video, hand the result to ``deliver``; return its manifest entry.

        The unit of work for engines that schedule whole videos (Ray).  ``deliver`` is
        the run's sink writing to the video's target (``lambda r: sink.write(target, r,
        stale=...)``, see :class:`~vadfeat.store.sinks.Sink`); it returns where the
        features went.  Per-video failures (:class:`VideoError`, an OSError of the
        delivery) become a ``failed`` entry with the reason.
        """
        t0 = time.perf_counter()
        entry: dict[str, Any] = {"video": str(item.name), "status": "failed", "error": None,
                                 "output": None, "num_frames": None, "num_snippets": None}
        try:
            result = self.extract_video(item.source, video=str(item.name), layout=layout)
            output = deliver(result)
        except VideoError as exc:
            entry["error"] = str(exc)
        except OSError as exc:
            entry["error"] = f"cannot write output: {exc}"
        else:
            entry.update(status="ok", output=output,
                         num_frames=result.metadata["num_frames"],
                         num_snippets=int(result.features.shape[0]),
                         warnings=result.metadata["warnings"] or None)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        return entry

    def extract_video(self, path: str | Path, *, video: str | None = None,
                      layout: str = "memory") -> VideoFeatures:
        """Features and metadata of one video, in memory (nothing written)."""
        source = Path(path)
        ranges: list[tuple[int, int]] = []
        rows: list[np.ndarray] = []
        batcher = self.batcher()
        stream = self.snippet_stream(source)
        while True:
            try:
                rng, clip = next(stream)
            except StopIteration as stop:
                meta = stop.value
                break
            ranges.append(rng)
            assert clip is not None
            rows.extend(row for _, row in batcher.add(len(ranges) - 1, self.prepare(clip)))
        rows.extend(row for _, row in batcher.flush())
        features = np.stack(rows).astype(np.float32, copy=False)
        md = self.sidecar(video=video or source.name, source=source, meta=meta, ranges=ranges,
                          shape=features.shape, layout=layout)
        return VideoFeatures(features, md)


__all__ = ["FeatureExtractor", "VideoFeatures"]
