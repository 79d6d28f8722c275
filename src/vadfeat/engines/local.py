"""The extraction engine: decode -> snippets -> batches -> model -> feature files.

One per-video function, :meth:`FeatureExtractor.snippet_stream`, turns a source
into preprocessed snippets; everything else schedules it:

* :meth:`FeatureExtractor.extract_video` runs it synchronously for one video and
  returns the features in memory;
* :func:`extract` runs it for many videos in background worker threads that
  decode and preprocess ahead of the model through a bounded queue (memory stays
  bounded, the model is not idle), batches snippets across videos, writes each
  video's outputs atomically when its last snippet is done, and records every
  video in ``OUT/manifest.jsonl``.

Where frames are preprocessed is a setting (``preprocess``): ``"worker"`` runs the
per-frame transform in the decode threads on the CPU; ``"device"`` hands each
snippet's raw uint8 frames to the model side, which uploads them and resizes,
crops and normalises the whole snippet on the model's device
(:meth:`FeatureExtractor.prepare`).  That moves the resize of high-resolution
frames from a few CPU cores to the GPU, at the cost of uploading (and queueing)
full-size frames instead of 224-pixel clips.

Per-video failures (unreadable, corrupt, too short) are caught only here, named
with their reason, and never leave a file behind; configuration errors are raised
before any work starts.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch

from vadfeat._malloc import limit_arenas
from vadfeat._types import FramesColour, OnCorrupt, Preprocess
from vadfeat._version import __version__
from vadfeat.backbones._registry import pick_backbone, resolve_model
from vadfeat.backbones.loading import load_model, parse_dtype
from vadfeat.engines._signals import handle_stop_signals, signum_of
from vadfeat.engines.progress import progress_bar
from vadfeat.errors import ConfigError, VideoError
from vadfeat.io.inputs import VideoItem, output_stem, scan
from vadfeat.io.video import DEFAULT_FOLDER_FPS, DEFAULT_MAX_PIXELS, check_max_pixels, open_video
from vadfeat.pipeline.presets import Preset, get_preset
from vadfeat.pipeline.sampling import SnippetAssembler
from vadfeat.pipeline.transforms import build_frame_transform, transform_frames
from vadfeat.pipeline.validate import check_batch_size, check_model_geometry, check_settings, default_preset
from vadfeat.store.writers import (
    HELD,
    LAYOUTS,
    LOCK_DIR,
    MANIFEST,
    Claims,
    Layout,
    Manifest,
    OutputPaths,
    OutputState,
    check_layout,
    clean_stale_temporaries,
    fingerprint_changes,
    inspect_outputs,
    is_vadfeat_sidecar,
    output_paths,
    owned_record_path,
    read_sidecar,
    sidecar_files,
    source_identity,
    write_outputs,
)

log = logging.getLogger(__name__)

_ON_CORRUPT = get_args(OnCorrupt)
_FRAMES_COLOUR = get_args(FramesColour)
_PREPROCESS = get_args(Preprocess)

# Device preprocessing: most bytes of raw frames that may wait for the model in the
# engine's event queue, over all decode threads (a 1080p 16-frame snippet is ~100 MB).
RAW_QUEUE_BYTES = 512 * 2**20
# How often a decode thread waiting for room in the event queue checks the stop event.
_PUT_POLL_S = 0.5
# How long a stopping run waits for its decode threads to finish their current frame.
_JOIN_S = 30.0


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` = the first CUDA device if there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA device is available")
    return dev


def check_preprocess(preprocess: str, preset: Preset) -> str:
    """Validate where frames are preprocessed: ``"worker"`` (decode threads) or ``"device"``.

    The legacy one-crop resize (``fed-wsvad``) is OpenCV's 8-bit arithmetic on
    numpy arrays, which its features must match; it cannot run on a device.
    """
    if preprocess not in _PREPROCESS:
        raise ConfigError(f"preprocess must be one of {', '.join(_PREPROCESS)}, got {preprocess!r}")
    if preprocess == "device" and preset.crops == 1 and preset.resize == "legacy":
        raise ConfigError(
            f"preset {preset.name!r} resizes with the legacy OpenCV path, which cannot run on "
            "the device; use preprocess='worker' (the default)"
        )
    return preprocess


def settings_fingerprint(*, preset: Preset, model: str, checkpoint_sha256: str | None,
                         random_weights: bool, dtype: str, fps: float | None,
                         frames_colour: str, on_corrupt: str, layout: str,
                         quantize: str | None = None, preprocess: str = "worker",
                         folder_fps: float = DEFAULT_FOLDER_FPS,
                         num_heads: int | None = None) -> dict[str, Any]:
    """The settings that decide an output's content; resume skips only on a match.

    One function for both engines, computed without a model (:func:`resolve_settings`)
    before any work.  ``quantize``, ``preprocess``, ``folder_fps`` and ``num_heads``
    appear only when not the default, so outputs made before those keys existed
    still resume (:data:`vadfeat.store.writers.FINGERPRINT_DEFAULTS`).  Which settings are
    here and which are not is :data:`CONTENT_SETTINGS` / :data:`RUN_SETTINGS`.
    """
    return {
        "preset": preset.resolved().to_dict(),
        "model": model,
        "checkpoint_sha256": checkpoint_sha256,
        "random_weights": random_weights,
        "dtype": dtype,
        "fps": fps,
        "frames_colour": frames_colour,
        "on_corrupt": on_corrupt,
        "layout": layout,
        **({"quantize": quantize} if quantize else {}),
        **({"preprocess": preprocess} if preprocess == "device" else {}),
        **({"folder_fps": float(folder_fps)} if float(folder_fps) != DEFAULT_FOLDER_FPS else {}),
        **({"num_heads": num_heads} if num_heads is not None else {}),
    }


#: Settings of :func:`extract` (and ``vadfeat extract``'s options) that change the
#: numbers in the feature files: each is in the fingerprint (preset fields through the
#: resolved preset), so resume never mixes outputs of different values.
#: ``on_corrupt`` decides whether a damaged video has features at all; ``layout``
#: decides the files; ``folder_fps`` sets the timeline of frame folders for ``fps``.
CONTENT_SETTINGS = frozenset({
    "checkpoint", "model", "backbone", "random_weights", "num_heads", "preset", "dtype", "fps",
    "frames_colour", "folder_fps", "on_corrupt", "quantize", "preprocess", "layout",
    *Preset.field_names(),
})
#: Settings that do not change the numbers (where the work runs, how fast, what is
#: printed).  ``batch_size`` changes float32 summation order only (below 1e-6 here);
#: ``device`` is not recorded: where it changes the numbers, it is through ``dtype``
#: (``auto`` = bf16 on CUDA, fp32 on the CPU), which is.
RUN_SETTINGS = frozenset({
    "inputs", "out", "device", "devices", "batch_size", "workers", "overwrite", "progress",
    "root", "extractor", "run_token", "wait",
    # Decides only whether a video is refused; an accepted video's features do not depend on it.
    "max_pixels",
})


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """``auto`` = bf16 on CUDA (fast, features within ~1 % of fp32), fp32 on the CPU."""
    if dtype == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    parse_dtype(dtype)
    return dtype


# FeatureExtractor's own keyword arguments; every other setting is a preset override.
def _extractor_params() -> dict[str, Any]:
    return {name: p.default
            for name, p in inspect.signature(FeatureExtractor.__init__).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self"}


@dataclass(frozen=True)
class ResolvedSettings:
    """Extractor settings resolved without building the model (see :func:`resolve_settings`)."""

    kwargs: dict[str, Any]  # FeatureExtractor(**kwargs), checkpoint path made absolute
    preset: Preset
    model_name: str
    checkpoint_sha256: str | None
    quantize: str | None  # asked for, or recorded in a compressed checkpoint

    @property
    def crops(self) -> int:
        return self.preset.crops

    def for_device(self, device_type: str) -> dict[str, Any]:
        """Extractor kwargs with device and dtype fixed (``auto`` resolved for ``device_type``)."""
        dtype = resolve_dtype(self.kwargs["dtype"], torch.device(device_type))
        return {**self.kwargs, "device": device_type, "dtype": dtype}

    def fingerprint(self, layout: str, device_type: str) -> dict[str, Any]:
        """What :meth:`FeatureExtractor.fingerprint` gives on ``device_type``, without a model."""
        kw = self.for_device(device_type)
        return settings_fingerprint(
            preset=self.preset, model=self.model_name, checkpoint_sha256=self.checkpoint_sha256,
            random_weights=self.checkpoint_sha256 is None, dtype=kw["dtype"], fps=kw["fps"],
            frames_colour=kw["frames_colour"], on_corrupt=kw["on_corrupt"], layout=layout,
            quantize=self.quantize, preprocess=kw["preprocess"], folder_fps=kw["folder_fps"],
            num_heads=kw["num_heads"],
        )


def preset_of(settings: Mapping[str, Any]) -> Preset:
    """The preset ``settings`` ask for, with their overrides (cheap: no checkpoint read)."""
    params = _extractor_params()
    base = default_preset(settings)
    preset = get_preset(base) if isinstance(base, str) else base
    overrides = {k: v for k, v in settings.items() if k not in params and v is not None}
    return preset.replace(**overrides) if overrides else preset


def resolve_settings(settings: Mapping[str, Any]) -> ResolvedSettings:
    """Validate extractor settings and read what the fingerprint needs from the checkpoint.

    The checkpoint is hashed and its architecture detected (``.pth`` files are
    memory-mapped, so the tensors are not read); no model is built.  Raises
    :class:`ConfigError` / :class:`~vadfeat.errors.CheckpointError`.
    """
    params = _extractor_params()
    if "extractor" in settings:
        raise ConfigError("pass extractor settings (checkpoint=, model=, ...) or an extractor, "
                          "not both")
    kwargs = {name: settings.get(name, default) for name, default in params.items()}
    overrides = {k: v for k, v in settings.items() if k not in params and v is not None}
    preset = preset_of(settings)
    check_preprocess(kwargs["preprocess"], preset)
    checkpoint, model = kwargs["checkpoint"], kwargs["model"]
    if checkpoint is None and not kwargs["random_weights"]:
        raise ConfigError("a checkpoint is required (--checkpoint); pass random_weights=True "
                          "(--random-weights) to run with random weights for testing")
    if checkpoint is not None and kwargs["random_weights"]:
        raise ConfigError("give either a checkpoint or random_weights=True, not both")
    if checkpoint is not None and not str(checkpoint).startswith("hf://"):
        # Workers may start in another folder (or on another machine).
        checkpoint = str(Path(checkpoint).expanduser().absolute())
        kwargs["checkpoint"] = checkpoint
    if model is None and kwargs["backbone"] is None and checkpoint is None:
        raise ConfigError("random weights need a model size (model=NAME); see `vadfeat models`")
    found = resolve_model(checkpoint, model=model, backbone=kwargs["backbone"],
                          num_heads=kwargs["num_heads"])
    check_model_geometry(preset, found.spec, backbone=found.backbone)
    quantize = kwargs.get("quantize") or found.quantize
    kwargs.update(overrides)
    return ResolvedSettings(kwargs=kwargs, preset=preset, model_name=found.name,
                            checkpoint_sha256=found.checkpoint_sha256, quantize=quantize)


@dataclass(frozen=True)
class VideoFeatures:
    """One video's features ``[T, ...]`` float32 and the sidecar metadata describing them."""

    features: np.ndarray
    metadata: dict[str, Any]


#: Exit codes of ``vadfeat extract`` (and :attr:`RunSummary.exit_code`).
EXIT_OK = 0  # every video done (extracted now or before)
EXIT_FAILED = 1  # some videos failed; each is named with its reason in the summary and manifest
EXIT_USAGE = 2  # bad usage or configuration, changed settings, a foreign file for the whole run
EXIT_ELSEWHERE = 3  # nothing failed, but some videos were in progress in another process
# 128 + signal number when stopped by a signal: 130 SIGINT (Ctrl-C), 143 SIGTERM, 129 SIGHUP


@dataclass
class RunSummary:
    """What an :func:`extract` run did; ``exit_code`` is what the CLI returns.

    ``elsewhere``: videos another live process was extracting when this run ended
    (not counted as done).  ``signal``: the signal that stopped the run (2 for
    SIGINT / KeyboardInterrupt).
    """

    out: Path
    run_id: str
    total: int = 0
    ok: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    snippets: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    passed_over: list[str] = field(default_factory=list)  # inputs.Discovery.describe_passed_over
    elsewhere: list[tuple[str, str]] = field(default_factory=list)
    signal: int | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + (self.signal or int(signal.SIGINT))
        if self.failed:
            return EXIT_FAILED
        return EXIT_ELSEWHERE if self.elsewhere else EXIT_OK

    def describe(self) -> str:
        rate = self.snippets / self.seconds if self.seconds > 0 else 0.0
        more = f", {len(self.elsewhere)} in progress elsewhere" if self.elsewhere else ""
        lines = [
            f"{self.total} video(s): {self.ok} extracted, {self.skipped} already done, "
            f"{len(self.failed)} failed{more}; {self.snippets} snippets in {self.seconds:.1f} s "
            f"({rate:.1f} snippets/s); outputs in {self.out}"
        ]
        if self.interrupted:
            name = signal.Signals(self.signal or signal.SIGINT).name
            lines.append(f"  STOPPED by {name}: finished videos are kept; run again to resume")
        lines += [f"  FAILED {video}: {reason}" for video, reason in self.failed]
        lines += [f"  {line}" for line in self.passed_over]
        lines += [f"  NOT DONE {video}: {reason}" for video, reason in self.elsewhere]
        if self.elsewhere:
            lines.append("  (another process was extracting these; run again when it has "
                         "finished, or use --wait)")
        return "\n".join(lines)


class FeatureExtractor:
    """A loaded model plus a resolved preset: the unit of work for every engine.

    ``preset`` is a registered name or a :class:`Preset`; ``overrides`` replace any
    of its fields (``clip_len=``, ``crops=``, ``pooling=`` ...) and are recorded
    beside the resolved values.  A checkpoint is required unless
    ``random_weights=True`` (then ``model=`` names the size and every output says
    ``random_weights: true``).

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
        batch_size: int = 8,
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
        check_settings({k: v for k, v in locals().items() if k not in ("self", "overrides")} | overrides)
        preset = default_preset({"preset": preset, "checkpoint": checkpoint, "model": model,
                                 "backbone": backbone})
        base = get_preset(preset) if isinstance(preset, str) else preset
        self.overrides = {k: v for k, v in overrides.items() if v is not None}
        self.preset = base.replace(**self.overrides) if self.overrides else base
        if checkpoint is None and not random_weights:
            raise ConfigError(
                "a checkpoint is required: pass checkpoint=PATH, or random_weights=True "
                "to run with random weights for testing"
            )
        if checkpoint is not None and random_weights:
            raise ConfigError("give either a checkpoint or random_weights=True, not both")
        if random_weights and model is None and backbone is None:
            raise ConfigError("random weights need a model size (model=NAME); see `vadfeat models`")
        if on_corrupt not in _ON_CORRUPT:
            raise ConfigError(f"on_corrupt must be one of {', '.join(_ON_CORRUPT)}, got {on_corrupt!r}")
        if frames_colour not in _FRAMES_COLOUR:
            raise ConfigError(
                f"frames_colour must be one of {', '.join(_FRAMES_COLOUR)}, got {frames_colour!r}"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.preprocess = check_preprocess(preprocess, self.preset)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = check_batch_size(batch_size)
        self.on_corrupt = on_corrupt
        self.fps = fps
        self.frames_colour = frames_colour
        self.folder_fps = folder_fps
        self.max_pixels = check_max_pixels(max_pixels)
        self.num_heads = num_heads
        self.backbone = pick_backbone(checkpoint=checkpoint, model=model, backbone=backbone)[0]
        self.backbone.check_feature(self.preset.pooling)
        self.model = load_model(
            checkpoint, model=model, backbone=self.backbone.name, pooling=self.preset.pooling,
            device=self.device, num_heads=num_heads, quantize=quantize,
            frame_reduce=self.preset.frame_reduce,
        )
        check_model_geometry(self.preset, self.model.spec, backbone=self.backbone)
        if getattr(self.model, "quantize", None) and self.dtype != "fp32":
            raise ConfigError(f"int8 layers take fp32 activations; use dtype='fp32', not {self.dtype}")
        self.transform = build_frame_transform(self.preset)
        self._autocast_dtype = parse_dtype(self.dtype) if self.dtype != "fp32" else None

    # ------------------------------------------------------------------ description

    @property
    def crops(self) -> int:
        return self.preset.crops

    @property
    def clips_per_batch(self) -> int:
        """Snippets per forward pass: ``batch_size`` counts clips, a k-crop snippet is k."""
        return max(1, self.batch_size // self.crops)

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

    def fingerprint(self, layout: str = "flat") -> dict[str, Any]:
        """The settings that decide an output's content: resume skips only on a match."""
        rec = self.model_record()
        return settings_fingerprint(
            preset=self.preset, model=rec["name"], checkpoint_sha256=rec["checkpoint_sha256"],
            random_weights=rec["random_weights"], dtype=self.dtype, fps=self.fps,
            frames_colour=self.frames_colour, on_corrupt=self.on_corrupt, layout=layout,
            quantize=rec["quantize"], preprocess=self.preprocess, folder_fps=self.folder_fps,
            num_heads=self.num_heads,
        )

    # ------------------------------------------------------------------ the per-video function

    def snippet_stream(
        self, source: str | Path
    ) -> Generator[tuple[tuple[int, int], torch.Tensor], None, dict[str, Any]]:
        """Yield ``((first, last), clip)`` per snippet, in temporal order; return metadata.

        ``clip`` is ``[crops, 3, T, size, size]`` float32 on the CPU, or with
        ``preprocess="device"`` the snippet's raw frames ``[T, 3, H, W]`` uint8 RGB
        (page-locked when the device is CUDA); :meth:`prepare` turns either into
        model input.  Frames are decoded (and preprocessed) one at a time; only the
        frames a pending snippet still needs are held.
        """
        p = self.preset
        raw = self.preprocess == "device"
        item = (lambda frame: frame) if raw else self.transform
        try:  # before decoding: a file replaced mid-run must not be recorded as the new one
            identity: dict[str, Any] | None = source_identity(source)
        except OSError:
            identity = None  # open_video says why the source cannot be read
        assemble = self._raw_clip if raw else self._clip
        with open_video(source, on_corrupt=self.on_corrupt, fps=self.fps,  # type: ignore[arg-type]
                        frames_colour=self.frames_colour,  # type: ignore[arg-type]
                        folder_fps=self.folder_fps, max_pixels=self.max_pixels) as reader:
            assembler: SnippetAssembler[Any] = SnippetAssembler(
                clip_len=p.clip_len, frame_interval=p.frame_interval, stride=p.stride, tail=p.tail
            )
            for index, frame in reader:
                for snip in assembler.push(index, item(frame)):
                    yield (snip.first, snip.last), assemble(snip.items)
            for snip in assembler.finish():
                yield (snip.first, snip.last), assemble(snip.items)
            info = reader.info
            return {
                "num_frames": reader.decoded_frames,
                "declared_frames": info.declared_frames,
                "fps": reader.fps,
                "native_fps": info.fps,
                "width": info.width,
                "height": info.height,
                "rotation": info.rotation,
                **({"mirrored": True} if info.mirrored else {}),
                "codec": info.codec,
                "corrupt_packets": reader.corrupt_packets,
                "warnings": list(reader.warnings),
                "source_identity": identity,
            }

    @staticmethod
    def _clip(frames: Sequence[torch.Tensor]) -> torch.Tensor:
        """Transformed frames ``[crops, 3, S, S]`` -> ``[crops, 3, T, S, S]``."""
        return torch.stack(list(frames), dim=2)

    def _raw_clip(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Decoded frames ``[H, W, 3]`` uint8 -> one contiguous ``[T, 3, H, W]`` uint8 tensor.

        Written straight into page-locked memory when the device is CUDA, so the
        upload in :meth:`prepare` is asynchronous and needs no staging copy.
        """
        height, width, _ = frames[0].shape
        clip = torch.empty((len(frames), 3, height, width), dtype=torch.uint8,
                           pin_memory=self.device.type == "cuda")
        out = clip.numpy()
        for t, frame in enumerate(frames):  # one copy per frame, also from read-only frames
            out[t] = frame.transpose(2, 0, 1)
        return clip

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        """A clip from :meth:`snippet_stream` -> model input ``[crops, 3, T, S, S]`` float32.

        With ``preprocess="device"`` the raw frames are uploaded (non-blocking) and
        transformed on the device, all frames of the snippet in one call; the result
        stays there and :meth:`run_model` does not move it again.  With
        ``"worker"`` the clip is already model input and is returned as it is
        (:meth:`run_model` uploads the whole batch at once).
        """
        if self.preprocess == "worker":
            return clip
        frames = clip.to(self.device, non_blocking=True)
        return transform_frames(frames, self.preset).permute(1, 2, 0, 3, 4)

    @torch.inference_mode()
    def run_model(self, clips: torch.Tensor) -> np.ndarray:
        """``[N, crops, 3, T, S, S]`` -> features ``[N, (crops,) *feature_shape]`` float32.

        ``clips`` on the CPU are uploaded here; clips already on the device (from
        :meth:`prepare` in device mode) are used where they are.
        """
        n = clips.shape[0]
        x = clips.flatten(0, 1)
        if self.device.type == "cuda" and not x.is_cuda:
            x = x.pin_memory().to(self.device, non_blocking=True)
        if self._autocast_dtype is not None:
            with torch.autocast(self.device.type, dtype=self._autocast_dtype):
                y = self.model(x)
        else:
            y = self.model(x)
        y = y.float().cpu().numpy().reshape(n, self.crops, *self.model.feature_shape)
        return y[:, 0] if self.crops == 1 else y

    def sidecar(self, *, video: str, source: Path, meta: dict[str, Any],
                ranges: list[tuple[int, int]], shape: tuple[int, ...], layout: str) -> dict[str, Any]:
        return {
            "vadfeat_version": __version__,
            "video": video,
            "source": str(source.resolve()),
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

    def process(self, item: VideoItem, paths: OutputPaths, *, layout: str, out: Path | None = None,
                stale: Sequence[Path] = ()) -> dict[str, Any]:
        """Extract one video and write its outputs; return its manifest entry.

        The unit of work for engines that schedule whole videos (Ray): per-video
        failures become a ``failed`` entry with the reason, and nothing is written.
        ``out`` and ``stale`` go to :func:`~vadfeat.store.writers.write_outputs` (ownership
        record, the previous set's files to delete).
        """
        t0 = time.perf_counter()
        entry: dict[str, Any] = {"video": str(item.name), "status": "failed", "error": None,
                                 "output": None, "num_frames": None, "num_snippets": None}
        try:
            result = self.extract_video(item.source, video=str(item.name), layout=layout)
            write_outputs(paths, result.features, result.metadata, crops=self.crops, out=out,
                          stale=stale)
        except VideoError as exc:
            entry["error"] = str(exc)
        except OSError as exc:
            entry["error"] = f"cannot write output: {exc}"
        else:
            entry.update(status="ok", output=str(paths.features[0]),
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
        pending: list[torch.Tensor] = []
        stream = self.snippet_stream(source)
        while True:
            try:
                rng, clip = next(stream)
            except StopIteration as stop:
                meta = stop.value
                break
            ranges.append(rng)
            pending.append(self.prepare(clip))
            if len(pending) == self.clips_per_batch:
                rows.extend(self.run_model(torch.stack(pending)))
                pending.clear()
        if pending:
            rows.extend(self.run_model(torch.stack(pending)))
        features = np.stack(rows).astype(np.float32, copy=False)
        md = self.sidecar(video=video or source.name, source=source, meta=meta, ranges=ranges,
                          shape=features.shape, layout=layout)
        return VideoFeatures(features, md)


# --------------------------------------------------------------------------- multi-video engine


@dataclass
class _Pending:
    item: VideoItem
    paths: OutputPaths
    started: float
    rows: dict[int, np.ndarray] = field(default_factory=dict)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    expected: int | None = None
    meta: dict[str, Any] | None = None


class ByteBudget:
    """A bound in bytes on what producer threads hand to a consumer.

    :meth:`acquire` waits while the bytes held by earlier items plus ``nbytes``
    would exceed ``limit``; :meth:`release` gives bytes back and wakes waiters.
    An item larger than the whole budget passes once nothing else is held (else it
    could never pass), so the bound is ``limit`` or one item, whichever is larger.
    Waits take a timeout, so a producer can look at a stop event between them.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        self.limit = limit
        self.held = 0
        self._cond = threading.Condition()

    def acquire(self, nbytes: int, timeout: float | None = None) -> bool:
        """Take ``nbytes``; False if there was no room within ``timeout`` seconds."""
        with self._cond:
            fits = self._cond.wait_for(
                lambda: self.held == 0 or self.held + nbytes <= self.limit, timeout)
            if fits:
                self.held += nbytes
            return fits

    def release(self, nbytes: int) -> None:
        with self._cond:
            self.held -= nbytes
            self._cond.notify_all()


def _snippet_bytes(event: tuple) -> int:
    kind, _, _, payload = event
    return payload[1].nbytes if kind == "snippet" else 0


class _EventQueue(queue.Queue):
    """The engine's event queue bounded by a count of events and by the bytes of snippets.

    ``put`` of a snippet waits for room in both bounds (``queue.Full`` after
    ``timeout``, as a full :class:`queue.Queue` does); ``get`` of a snippet gives
    its bytes back.  Other events carry no frames and need only a free slot.
    """

    def __init__(self, maxsize: int, budget: ByteBudget) -> None:
        super().__init__(maxsize)
        self.budget = budget

    def put(self, item: tuple, block: bool = True, timeout: float | None = None) -> None:
        nbytes = _snippet_bytes(item)
        if not nbytes:
            super().put(item, block, timeout)
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.budget.acquire(nbytes, timeout if block else 0):
            raise queue.Full
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            super().put(item, block, remaining)
        except queue.Full:
            self.budget.release(nbytes)
            raise

    def get(self, block: bool = True, timeout: float | None = None) -> tuple:
        item = super().get(block, timeout)
        self.budget.release(_snippet_bytes(item))
        return item


def plan_outputs(items: Sequence[VideoItem], out: Path, layout: Layout,
                 crops: int) -> list[OutputPaths]:
    # discover() already made output stems unique (x.mp4 beside x.avi included).
    return [output_paths(out, output_stem(i), layout=layout, crops=crops) for i in items]


def _alt_sidecars(out: Path, item: VideoItem, paths: OutputPaths) -> list[Path]:
    """Where the same video's sidecar would be in the other layouts (flat and per-crop share one)."""
    stem = output_stem(item)
    alts = {output_paths(out, stem, layout=lay, crops=1).sidecar for lay in LAYOUTS}  # type: ignore[arg-type]
    return sorted(a for a in alts if a != paths.sidecar)


def plan_run(items: Sequence[VideoItem], out: Path, layout: Layout, crops: int,
             fingerprint: Callable[[], dict[str, Any]], *, overwrite: bool,
             verify: bool = True) -> tuple[list[OutputPaths], list[OutputState]]:
    """Each video's output paths and what is there now, before any work (both engines).

    ``fingerprint`` is called only when some output exists (it may read and hash the
    checkpoint).  A complete set of this video in another layout's place (flat vs
    fed-wsvad) counts as ``changed`` and its files become ``stale``.  Raises
    :class:`ConfigError` naming every change (``crops: 1 -> 3``) when existing outputs
    were made with other settings, unless ``overwrite``.
    """
    plan = plan_outputs(items, out, layout, crops)
    states: list[OutputState] = []
    cached: list[dict[str, Any]] = []

    def fp() -> dict[str, Any]:
        if not cached:
            cached.append(fingerprint())
        return cached[0]

    any_output = out.is_dir()
    for item, paths in zip(items, plan, strict=True):
        alts = _alt_sidecars(out, item, paths) if any_output else []
        key = str(paths.sidecar.relative_to(out))
        if not any_output or not any(os.path.lexists(p) for p in (
                *paths.all(), *alts, owned_record_path(out, key))):
            states.append(OutputState("absent"))
            continue
        st = inspect_outputs(paths, fp(), out=out, source=item.source, verify=verify)
        if st.status in ("absent", "redo"):
            for alt in alts:  # the video's previous set in another layout's place
                meta = read_sidecar(alt) if alt.is_file() and not alt.is_symlink() else None
                if is_vadfeat_sidecar(meta):
                    assert meta is not None
                    old = tuple(p for p in (*sidecar_files(alt, meta), alt) if p.is_file())
                    st = OutputState("changed", previous=meta["fingerprint"],
                                     stale=(*st.stale, *old))
                    break
        states.append(st)
    changed = [(items[i].name, st) for i, st in enumerate(states) if st.status == "changed"]
    if changed and not overwrite:
        raise ConfigError(_changed_message(changed, fp(), out))
    return plan, states


def _changed_message(changed: list[tuple[Any, OutputState]], fingerprint: dict[str, Any],
                     out: Path) -> str:
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, st in changed:
        diff = tuple(fingerprint_changes(st.previous or {}, fingerprint)) or ("(unknown)",)
        groups.setdefault(diff, []).append(str(name))
    parts = []
    for diff, names in list(groups.items())[:5]:
        parts.append(f"{len(names)} video(s) (e.g. {names[0]}): {'; '.join(diff)}")
    dtype_note = ""
    if any(d.startswith("dtype:") for diff in groups for d in diff):
        dtype_note = (" Note: dtype auto means bf16 on CUDA and fp32 on the CPU, and these "
                      "give different numbers; pass the dtype the existing outputs were made "
                      "with (--dtype) to continue them on this machine.")
    return (f"{out} holds outputs made with other settings than this run's; nothing was run. "
            + " | ".join(parts) + "." + dtype_note
            + " To replace them, run again with --overwrite; to keep them, choose another "
              "output folder (-o).")


def check_output_folder(out: Path) -> None:
    """Stop (ConfigError) when ``out`` holds, where vadfeat keeps its run files, files it did
    not write: they concern the whole run, so nothing may start."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the output folder {out} is a file")
    manifest = out / MANIFEST
    if os.path.lexists(manifest):
        if manifest.is_symlink() or not manifest.is_file():
            raise ConfigError(f"{manifest} is not a regular file, so it is not vadfeat's run "
                              "manifest; move it away or choose another output folder (-o)")
        try:
            with open(manifest, "rb") as f:
                head = f.read(1 << 16)
        except OSError as exc:
            raise ConfigError(f"cannot read {manifest}: {exc}") from exc
        first = head.split(b"\n", 1)[0].strip()
        ours = False
        if not first:
            ours = not head.strip()
        else:
            try:
                entry = json.loads(first)
                ours = isinstance(entry, dict) and "run" in entry and "video" in entry
            except ValueError:  # a line torn by a full disk is still one of ours
                ours = first.startswith(b'{"run": "')
        if not ours:
            raise ConfigError(f"{manifest} was not written by vadfeat (its first line is not a "
                              "run record); vadfeat appends to it, so move it away or choose "
                              "another output folder (-o)")
    locks = out / LOCK_DIR
    if os.path.lexists(locks) and (locks.is_symlink() or not locks.is_dir()):
        raise ConfigError(f"{locks} is not a folder; vadfeat keeps its claims there, so move it "
                          "away or choose another output folder (-o)")


def recheck(paths: OutputPaths, fingerprint: dict[str, Any], *, out: Path, source: Path,
            overwrite: bool, planned: OutputState) -> tuple[str | None, str, tuple[Path, ...]]:
    """Under the video's claim, look again (another process may have written it meanwhile).

    Returns ``(kind, reason, stale)``: ``kind`` None = go on and write, deleting
    ``stale``; ``"skipped"`` = done meanwhile with these settings; ``"failed"`` =
    a foreign file, or outputs another run wrote meanwhile with other settings.
    """
    st = inspect_outputs(paths, fingerprint, out=out, source=source)
    if st.status == "done" and not overwrite:
        return "skipped", "extracted by another process during this run", ()
    if st.status == "foreign":
        return "failed", st.reason, ()
    if st.status == "changed" and not overwrite:
        diff = "; ".join(fingerprint_changes(st.previous or {}, fingerprint))
        return "failed", (f"written during this run by another run with other settings ({diff}); "
                          "not replaced (use --overwrite to replace)"), ()
    if st.status == "redo" and planned.status not in ("redo", "changed"):
        log.warning("%s: redoing: %s", paths.sidecar.name, st.reason)
    extra = planned.stale if planned.status == "changed" else ()
    return None, "", tuple(dict.fromkeys((*st.stale, *extra)))


def _produce(extractor: FeatureExtractor, work: queue.Queue, events: queue.Queue,
             stop: threading.Event, claim: Any) -> None:
    """Worker thread: claim, decode and preprocess whole videos; emit snippets and a final event.

    ``claim(vid)`` returns ``(None, "")`` when this process may work on the video, else
    ``(kind, reason)``: an event kind (``elsewhere``, ``skipped``, ``sibling``,
    ``failed``) to report instead, or ``defer`` to put it back at the end of the work.  The
    final ``exit`` event is sent however the thread ends: the consumer counts them.
    """
    try:
        _produce_videos(extractor, work, events, stop, claim)
    except Exception:  # a bug in vadfeat, not a bad video: say so loudly, then exit
        log.exception("a decode worker crashed")
    finally:
        if not stop.is_set():  # once stopped, nobody reads the queue: a put could block
            events.put(("exit", None, None, None))


def _produce_videos(extractor: FeatureExtractor, work: queue.Queue, events: queue.Queue,
                    stop: threading.Event, claim: Any) -> None:
    while not stop.is_set():
        try:
            vid, item = work.get_nowait()
        except queue.Empty:
            break
        try:
            kind, reason = claim(vid)
        except Exception as exc:  # disk full, unwritable lock folder: fail it, never hang
            log.debug("cannot claim %s", item.source, exc_info=True)
            _put_unless_stopped(events, ("failed", vid, f"cannot claim the video: {exc}", None), stop)
            continue
        if kind == "defer":  # held elsewhere and we may wait: first do the others
            work.put((vid, item))
            continue
        if kind is not None:
            _put_unless_stopped(events, (kind, vid, reason, None), stop)
            continue
        count = 0
        try:
            stream = extractor.snippet_stream(item.source)
            while True:
                try:
                    rng, clip = next(stream)
                except StopIteration as done:
                    _put_unless_stopped(events, ("done", vid, count, done.value), stop)
                    break
                if not _put_unless_stopped(events, ("snippet", vid, count, (rng, clip)), stop):
                    stream.close()
                    return
                count += 1
        except VideoError as exc:
            _put_unless_stopped(events, ("failed", vid, str(exc), None), stop)
        except Exception as exc:  # one video's bug must not end a day-long run
            log.debug("unexpected error on %s", item.source, exc_info=True)
            reason = f"unexpected {type(exc).__name__}: {exc}"
            _put_unless_stopped(events, ("failed", vid, reason, None), stop)


def _put_unless_stopped(events: queue.Queue, event: tuple, stop: threading.Event) -> bool:
    """Put ``event``, waiting for room in slices so that ``stop`` ends the wait.

    Every put of a decode thread goes through here: a plain blocking ``put`` on a
    full queue that nobody reads any more would keep the thread (and the run's
    shutdown, which waits for it) from ending.

    Returns False when the run was stopped (the event may or may not be queued:
    nobody reads the queue any more).
    """
    while not stop.is_set():
        try:
            events.put(event, timeout=_PUT_POLL_S)
            break
        except queue.Full:
            continue
    return not stop.is_set()


def extract(
    inputs: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    layout: str = "flat",
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    root: str | Path | None = None,
    extractor: FeatureExtractor | None = None,
    devices: Sequence[str] | None = None,
    run_token: str | None = None,
    wait: bool = False,
    **settings: Any,
) -> RunSummary:
    """Extract features for every video in ``inputs`` into ``out``.

    ``settings`` are :class:`FeatureExtractor`'s arguments (``checkpoint``,
    ``model``, ``preset``, ``random_weights``, ``device``, ``dtype``,
    ``batch_size``, preset overrides ...), or pass a ready ``extractor``.

    Before any work (and before the model is loaded) inputs are discovered and
    every video's outputs inspected (:func:`plan_run`): a video whose outputs exist
    with a sidecar matching the current settings, verified files (sha256) and an
    unchanged source is skipped unless ``overwrite``; outputs vadfeat made with
    other settings stop the run with :class:`ConfigError` naming the changes, unless
    ``overwrite``; a file vadfeat did not write at a video's output path fails that
    video (``overwrite`` never replaces it); damaged outputs of vadfeat's are redone
    with a warning.  ``devices`` (e.g. ``["cuda:0", "cuda:1"]``) runs one process
    with its own model per device over the same work list and output folder;
    per-video claims make each video done exactly once (``run_token`` ties those
    processes together, so a video one of them failed is not retried by another).
    A video another live process is extracting is reported as in progress
    elsewhere (:attr:`RunSummary.elsewhere`, exit code 3) unless ``wait``, which
    waits for that process to let go of it.  Returns a :class:`RunSummary`.

    Memory: decode threads run at most ``2 * clips_per_batch`` snippets ahead of
    the model.  With ``preprocess="device"`` a snippet is raw frames (a 1080p
    16-frame snippet is ~100 MB), so the snippets waiting for the model are also
    bounded to :data:`RAW_QUEUE_BYTES` (512 MiB) of frames; a single snippet
    larger than that still passes when nothing else waits.  The process's glibc
    malloc arenas are limited to one (:func:`vadfeat._malloc.limit_arenas`; set
    ``MALLOC_ARENA_MAX`` to choose otherwise), which keeps peak memory flat over long
    videos.
    """
    limit_arenas()
    if extractor is None:  # every setting refused before any work (vadfeat.pipeline.validate)
        check_settings(settings)
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if devices is not None and len(devices) > 1:
        if extractor is not None:
            raise ConfigError("devices= builds one extractor per device; pass settings, not one")
        return _extract_on_devices(list(devices), list(inputs), out, layout=layout,
                                   workers=workers, overwrite=overwrite, root=root, wait=wait,
                                   **settings)
    if devices:
        settings["device"] = devices[0]
    layout = check_layout(layout)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if extractor is not None and settings:
        raise ConfigError("pass either an extractor or extractor settings, not both")
    out = Path(out)
    check_output_folder(out)
    found = scan(list(inputs), root=Path(root) if root is not None else None)
    items = found.items
    # Plan before the model exists: changed settings stop the run here, in seconds.
    planned_fp: list[dict[str, Any]] = []
    if extractor is not None:
        crops = extractor.crops

        def fingerprint() -> dict[str, Any]:
            planned_fp.append(extractor.fingerprint(layout))
            return planned_fp[-1]
    else:
        crops = preset_of(settings).crops
        device_type = resolve_device(settings.get("device", "auto")).type

        def fingerprint() -> dict[str, Any]:
            planned_fp.append(resolve_settings(settings).fingerprint(layout, device_type))
            return planned_fp[-1]
    plan, states = plan_run(items, out, layout, crops, fingerprint, overwrite=overwrite)
    if extractor is None and not overwrite and planned_fp and all(
            st.status in ("done", "foreign") for st in states):
        # Nothing to extract: a rerun of a finished folder never loads the model.
        return _nothing_to_do(items, plan, states, out, run_id=_new_run_id())

    ext = extractor if extractor is not None else FeatureExtractor(**settings)
    fp = ext.fingerprint(layout)
    if planned_fp and planned_fp[-1] != fp:
        diff = "; ".join(fingerprint_changes(planned_fp[-1], fp))
        raise ConfigError(f"internal error: the settings fingerprint computed before loading the "
                          f"model differs from the model's ({diff}); nothing was run")
    if layout == "per-crop" and ext.crops == 1:
        log.info("layout per-crop with one crop writes <stem>__0.npy files")
    run_id = _new_run_id()
    try:  # an output folder we cannot write to is a usage error, found before any work
        out.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(out)
        claims = Claims(out, run_token=run_token)
        manifest = Manifest(out, run_id)
    except OSError as exc:
        raise ConfigError(f"cannot write to the output folder {out}: {exc}") from exc
    summary = RunSummary(out=out, run_id=run_id, total=len(items),
                         passed_over=found.describe_passed_over())
    keys = [str(p.sidecar.relative_to(out)) for p in plan]
    stale_of: dict[int, tuple[Path, ...]] = {}
    started: dict[int, float] = {}  # claimed by this run (finished ones are in `closed`)
    closed: set[int] = set()
    deferred: set[int] = set()
    t_start = time.perf_counter()

    def claim(vid: int) -> tuple[str | None, str]:
        final = vid in deferred
        reason = claims.acquire(keys[vid], wait=stop if (wait and final) else None)
        if reason is not None:
            if reason.startswith(HELD + " sibling"):
                return "sibling", reason  # the sibling of this run reports it
            if reason.startswith(HELD) and wait and not final:
                deferred.add(vid)
                return "defer", reason
            return ("elsewhere" if reason.startswith(HELD) else "skipped"), reason
        try:
            kind, why, stale = recheck(plan[vid], fp, out=out, source=items[vid].source,
                                       overwrite=overwrite, planned=states[vid])
        except BaseException:
            claims.release(keys[vid])
            raise
        if kind is not None:
            claims.release(keys[vid])
            return kind, why
        stale_of[vid] = stale
        started[vid] = time.perf_counter()
        return None, ""

    todo: list[int] = []
    for vid, (item, paths, st) in enumerate(zip(items, plan, states, strict=True)):
        if item.error is not None:  # found by discovery (e.g. output name too long): never opened
            summary.failed.append((str(item.name), item.error))
            log.error("%s: %s", item.name, item.error)
            manifest.record(video=str(item.name), status="failed", error=item.error, output=None,
                            num_frames=None, num_snippets=None, seconds=0.0)
        elif st.status == "done" and not overwrite:
            summary.skipped += 1
            manifest.record(video=str(item.name), status="skipped", error=None,
                            output=str(paths.features[0]), num_frames=None, num_snippets=None,
                            seconds=0.0)
        elif st.status == "foreign":
            summary.failed.append((str(item.name), st.reason))
            log.error("%s: %s", item.name, st.reason)
            manifest.record(video=str(item.name), status="failed", error=st.reason, output=None,
                            num_frames=None, num_snippets=None, seconds=0.0)
        else:
            if st.status == "redo":
                log.warning("%s: redoing: %s", item.name, st.reason)
            todo.append(vid)
    if summary.skipped:
        log.info("%d video(s) already extracted with these settings: skipped", summary.skipped)

    work: queue.Queue = queue.Queue()
    for vid in todo:
        work.put((vid, items[vid]))
    # Bounded: at most ~2 batches of preprocessed snippets wait for the model; raw
    # frames (device preprocessing) also by their bytes.
    depth = max(2, 2 * ext.clips_per_batch)
    events: queue.Queue = (_EventQueue(depth, ByteBudget(RAW_QUEUE_BYTES))
                           if ext.preprocess == "device" else queue.Queue(maxsize=depth))
    stop = threading.Event()
    n_workers = min(workers, max(1, len(todo)))
    threads = [threading.Thread(target=_produce, args=(ext, work, events, stop, claim), daemon=True,
                                name=f"vadfeat-decode-{k}") for k in range(n_workers)]
    pending: dict[int, _Pending] = {}
    failed: set[int] = set()
    elsewhere: dict[int, str] = {}
    batch: list[tuple[int, int, torch.Tensor]] = []
    bar = _progress(len(todo), enabled=progress)

    def finish_ok(vid: int) -> None:
        st = pending.pop(vid)
        closed.add(vid)
        assert st.meta is not None
        feats = np.stack([st.rows[i] for i in range(len(st.rows))]).astype(np.float32, copy=False)
        md = ext.sidecar(video=str(st.item.name), source=st.item.source, meta=st.meta,
                         ranges=st.ranges, shape=feats.shape, layout=layout)
        write_outputs(st.paths, feats, md, crops=ext.crops, out=out, stale=stale_of.get(vid, ()))
        claims.release(keys[vid])
        seconds = time.perf_counter() - st.started
        summary.ok += 1
        summary.snippets += feats.shape[0]
        manifest.record(video=str(st.item.name), status="ok", error=None,
                        output=str(st.paths.features[0]), num_frames=st.meta["num_frames"],
                        num_snippets=int(feats.shape[0]), seconds=round(seconds, 3),
                        warnings=st.meta["warnings"] or None)
        bar.update(1)

    def finish_failed(vid: int, reason: str) -> None:
        st = pending.pop(vid, None)
        item = items[vid]
        failed.add(vid)
        closed.add(vid)
        claims.mark_failed(keys[vid], reason)
        claims.release(keys[vid])
        summary.failed.append((str(item.name), reason))
        log.error("%s: %s", item.name, reason)
        manifest.record(video=str(item.name), status="failed", error=reason, output=None,
                        num_frames=None, num_snippets=None,
                        seconds=round(time.perf_counter() - st.started, 3) if st else 0.0)
        bar.update(1)

    def state(vid: int) -> _Pending:
        if vid not in pending:
            pending[vid] = _Pending(items[vid], plan[vid], time.perf_counter())
        return pending[vid]

    def maybe_finish(vid: int) -> None:
        st = pending.get(vid)
        if st is not None and st.expected is not None and len(st.rows) == st.expected:
            try:
                finish_ok(vid)
            except OSError as exc:  # disk full, read-only output: this video is not written
                pending[vid] = st
                finish_failed(vid, f"cannot write output: {exc}")

    def flush() -> None:
        if not batch:
            return
        feats = ext.run_model(torch.stack([clip for _, _, clip in batch]))
        touched = set()
        for (vid, idx, _), row in zip(batch, feats, strict=True):
            if vid in failed:
                continue
            state(vid).rows[idx] = row
            touched.add(vid)
        batch.clear()
        for vid in touched:
            maybe_finish(vid)
        # Snippets through the model: finished videos' and those of videos still open
        # (else one long video would show 0 snippets/s until its end).
        through = summary.snippets + sum(len(st.rows) for st in pending.values())
        bar.set_postfix_str(_rate(through, t_start), refresh=False)
        bar.update(0)  # redraws, throttled by the bar's own minimum interval

    try:
        for t in threads:
            t.start()
        alive = len(threads)
        while alive or batch:
            try:
                kind, vid, a, b = events.get(block=not batch, timeout=None)
            except queue.Empty:
                flush()
                continue
            if kind == "exit":
                alive -= 1
            elif vid in failed:
                continue  # its model input failed: the rest of the video is dropped
            elif kind == "snippet":
                idx, (rng, clip) = a, b
                try:
                    clip = ext.prepare(clip)
                except Exception as exc:  # as a transform error in a decode worker is
                    log.debug("cannot prepare a snippet of %s", items[vid].source, exc_info=True)
                    finish_failed(vid, f"unexpected {type(exc).__name__}: {exc}")
                    continue
                pend = state(vid)
                pend.ranges.append(rng)
                batch.append((vid, idx, clip))
                if len(batch) >= ext.clips_per_batch:
                    flush()
            elif kind == "done":
                pend = state(vid)
                pend.expected, pend.meta = a, b
                if a == 0:
                    finish_failed(vid, "no snippets")
                else:
                    maybe_finish(vid)
            elif kind == "failed":
                finish_failed(vid, a)
            elif kind == "elsewhere":
                elsewhere[vid] = a
                bar.update(1)
            elif kind in ("skipped", "sibling"):
                summary.skipped += 1
                log.info("%s: %s", items[vid].name, a)
                manifest.record(video=str(items[vid].name), status="skipped", error=a,
                                output=str(plan[vid].features[0]), num_frames=None,
                                num_snippets=None, seconds=0.0)
                bar.update(1)
            if not alive:
                flush()
        # Every worker has exited: anything still open was lost by a worker that died.
        for vid in [v for v in pending if v not in failed]:
            finish_failed(vid, "internal error: the decode worker stopped before this video "
                               "was finished")
        while not work.empty():
            finish_failed(work.get_nowait()[0], "internal error: no decode worker was left")
        _settle_elsewhere(elsewhere, items, plan, fp, out, summary, manifest)
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM/SIGHUP under handle_stop_signals
        summary.interrupted = True
        summary.signal = signum_of(exc)
        stop.set()
        log.error("stopped by %s: finished videos are kept; run again to resume",
                  signal.Signals(summary.signal).name)
        for vid, t0 in sorted(started.items()):  # claimed by this run, not finished
            if vid not in closed:
                with contextlib.suppress(OSError):
                    manifest.record(video=str(items[vid].name), status="interrupted",
                                    error=f"stopped by {signal.Signals(summary.signal).name} "
                                          "before this video was finished",
                                    output=None, num_frames=None, num_snippets=None,
                                    seconds=round(time.perf_counter() - t0, 3))
    finally:
        stop.set()
        # Wait for the decode threads (they see ``stop`` within a snippet or a 0.5 s
        # queue poll): a process that exits while one is inside FFmpeg or torch can
        # abort ("terminate called without an active exception") instead of
        # returning its exit code.
        deadline = time.monotonic() + _JOIN_S
        for t in threads:
            if t.is_alive() or t.ident is not None:
                t.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            log.warning("a decode thread did not stop within %.0f s", _JOIN_S)
        bar.close()
        manifest.close()
        claims.release_all()
    summary.seconds = time.perf_counter() - t_start
    return summary


def _new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def _nothing_to_do(items: Sequence[VideoItem], plan: Sequence[OutputPaths],
                   states: Sequence[OutputState], out: Path, *, run_id: str) -> RunSummary:
    """Every video is done or blocked by a foreign file: record that, without a model."""
    t0 = time.perf_counter()
    try:
        manifest = Manifest(out, run_id)
    except OSError as exc:
        raise ConfigError(f"cannot write to the output folder {out}: {exc}") from exc
    summary = RunSummary(out=out, run_id=run_id, total=len(items))
    try:
        for item, paths, st in zip(items, plan, states, strict=True):
            if st.status == "done":
                summary.skipped += 1
                manifest.record(video=str(item.name), status="skipped", error=None,
                                output=str(paths.features[0]), num_frames=None,
                                num_snippets=None, seconds=0.0)
            else:
                summary.failed.append((str(item.name), st.reason))
                log.error("%s: %s", item.name, st.reason)
                manifest.record(video=str(item.name), status="failed", error=st.reason,
                                output=None, num_frames=None, num_snippets=None, seconds=0.0)
    finally:
        manifest.close()
    if summary.skipped:
        log.info("%d video(s) already extracted with these settings: skipped", summary.skipped)
    summary.seconds = time.perf_counter() - t0
    return summary


def _settle_elsewhere(elsewhere: dict[int, str], items: Sequence[VideoItem],
                      plan: Sequence[OutputPaths], fingerprint: dict[str, Any], out: Path,
                      summary: RunSummary, manifest: Manifest) -> None:
    """Videos another process held: done by now with these settings, or not done."""
    for vid, reason in sorted(elsewhere.items()):
        name = str(items[vid].name)
        st = inspect_outputs(plan[vid], fingerprint, out=out, source=items[vid].source)
        if st.status == "done":
            summary.skipped += 1
            manifest.record(video=name, status="skipped", error="extracted by another process "
                            "during this run", output=str(plan[vid].features[0]), num_frames=None,
                            num_snippets=None, seconds=0.0)
            continue
        summary.elsewhere.append((name, reason))
        log.warning("%s: %s; not done by this run", name, reason)
        manifest.record(video=name, status="elsewhere", error=reason, output=None,
                        num_frames=None, num_snippets=None, seconds=0.0)


def _device_main(results: Any, index: int, device: str, inputs: list, out: str | Path,
                 kwargs: dict[str, Any]) -> None:
    """One device's process: the ordinary engine on ``device``; its summary goes back."""
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s [{device}] %(message)s")
    with handle_stop_signals():
        try:
            summary = extract(inputs, out, device=device, progress=False, **kwargs)
        except KeyboardInterrupt:  # stopped while planning or loading: nothing to report
            return
    results.put((index, summary))


def _extract_on_devices(devices: list[str], inputs: list, out: str | Path,
                        **kwargs: Any) -> RunSummary:
    import multiprocessing as mp

    kwargs.pop("device", None)  # each process gets its own
    kwargs.pop("progress", None)
    kwargs["run_token"] = uuid.uuid4().hex
    for d in devices:  # fail at the boundary, before any process starts
        resolve_device(d)
    # Changed settings and a foreign manifest stop the run here, before any process starts.
    out = Path(out)
    check_output_folder(out)
    settings = {k: v for k, v in kwargs.items() if k not in RUN_SETTINGS and k != "layout"}
    items = scan(list(inputs), root=Path(kwargs["root"]) if kwargs.get("root") else None).items
    device_type = resolve_device(devices[0]).type
    plan_run(items, out, check_layout(kwargs.get("layout", "flat")), preset_of(settings).crops,
             lambda: resolve_settings(settings).fingerprint(kwargs.get("layout", "flat"), device_type),
             overwrite=bool(kwargs.get("overwrite")), verify=False)
    ctx = mp.get_context("spawn")  # CUDA cannot be forked into children
    results = ctx.Queue()
    procs = [ctx.Process(target=_device_main, args=(results, i, d, inputs, out, kwargs),
                         name=f"vadfeat-{d}") for i, d in enumerate(devices)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    got: dict[int, RunSummary] = {}
    stopped: int | None = None
    while len(got) < len(procs) and (any(p.is_alive() for p in procs) or not results.empty()):
        try:
            index, summary = results.get(timeout=1.0)
        except queue.Empty:
            continue
        except KeyboardInterrupt as exc:  # stop the children as we were stopped; keep reading
            stopped = signum_of(exc)
            for p in procs:
                if p.is_alive():
                    with contextlib.suppress(OSError):
                        os.kill(p.pid, signal.SIGTERM)  # type: ignore[arg-type]
            continue
        got[index] = summary
    for p in procs:
        p.join()
    merged = RunSummary(out=out, run_id="+".join(s.run_id for s in got.values()))
    done: set[str] = set()
    for s in got.values():
        merged.total = max(merged.total, s.total)
        merged.ok += s.ok
        merged.snippets += s.snippets
        merged.failed += s.failed
        merged.interrupted |= s.interrupted
        merged.signal = merged.signal or s.signal
        done.update(v for v, _ in s.failed)
    if stopped is not None:
        merged.interrupted, merged.signal = True, merged.signal or stopped
    for s in got.values():  # held by a process outside this run, and not done by it since
        merged.elsewhere += [(v, r) for v, r in s.elsewhere if v not in done]
    merged.elsewhere = list(dict.fromkeys(merged.elsewhere))
    for i, device in enumerate(devices):
        if i not in got:
            merged.failed.append((f"<{device} worker>", "the process for this device died; "
                                  "run again to finish its videos"))
    merged.skipped = max(0, merged.total - merged.ok - len(merged.elsewhere) - len(
        [f for f in merged.failed if not f[0].startswith("<")]))
    merged.seconds = time.perf_counter() - t0
    return merged


def _rate(snippets: int, t0: float) -> str:
    dt = time.perf_counter() - t0
    return f"{snippets / dt:.1f} snippets/s" if dt > 0 else ""


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, *, enabled: bool) -> Any:
    # A bar on a terminal; a plain line every few seconds in a log (vadfeat.engines.progress).
    return progress_bar(total, enabled=enabled, desc="extract", unit="video")


__all__ = ["CONTENT_SETTINGS", "RUN_SETTINGS", "FeatureExtractor", "RunSummary", "VideoFeatures",
           "extract", "handle_stop_signals", "resolve_settings"]
