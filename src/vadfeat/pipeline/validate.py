"""Checks of extraction settings that need no model; :mod:`vadfeat.pipeline.config` applies them.

:class:`~vadfeat.pipeline.config.ExtractConfig` (and :func:`check_settings`) refuses, with a
:class:`~vadfeat.errors.ConfigError`, every setting that would otherwise fail later, per
video or at the first forward pass: frame rates that are not positive numbers, batch sizes
that are not positive integers, preset overrides of the wrong type or range, and a clip that is not a
whole number of the model's tubelets (``clip_len`` a multiple of the tubelet,
``size`` a multiple of the patch).  The model's geometry comes from ``model=`` (a
registered size) or from the checkpoint's header (safetensors header, a hub
folder's ``config.json``, a memory-mapped ``.pth``): no weights are read, no model
is built.  :func:`check_geometry` is the same rule against a loaded model, for
checkpoints whose geometry cannot be peeked at (``hf://``, legacy ``.pth``).

Messages use the library's words (``clip_len=3``); the command line rewrites them
into its flags' words (``--clip-len 3``, :func:`vadfeat.cli.flag_words`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from vadfeat.backbones._registry import MAX_TOKENS, token_limit
from vadfeat.backbones.streams import VideoFrames
from vadfeat.errors import ConfigError, VadfeatError
from vadfeat.pipeline.presets import DEFAULT_PRESET, Preset

log = logging.getLogger(__name__)

# Most clips (images, for a frame backbone) one forward pass takes.  The engine lets up to
# two batches of snippets wait for the model in host memory (a 16-frame 224 px clip is
# 9.6 MB as float32), so a batch of 512 clips already parks about 10 GB (the queue's
# byte bound caps what waits there, not the batch being filled); a batch larger than a
# run's snippets never fills, and every snippet then waits in memory for the end of the run.
MAX_BATCH_SIZE = 512


def check_batch_size(batch_size: Any) -> int:
    """A positive integer; above :data:`MAX_BATCH_SIZE` it is capped, with a warning."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size > MAX_BATCH_SIZE:
        log.warning("batch_size=%d capped to %d clips (or images) per forward pass: up to two "
                    "batches of snippets wait in memory for the model (about 10 GB at %d clips "
                    "of 16x224x224)", batch_size, MAX_BATCH_SIZE, MAX_BATCH_SIZE)
        return MAX_BATCH_SIZE
    return batch_size


def _near(value: int, step: int) -> str:
    """The multiples of ``step`` just below and above ``value`` (at least ``step``)."""
    below, above = (value // step) * step, (value // step + 1) * step
    return f"{below} or {above}" if below >= step else f"{above}"


def check_geometry(preset: Preset, *, tubelet: int, patch: int, model: str,
                   fixed_size: int | None = None, token_limit: bool | int | None = True) -> None:
    """A clip of ``preset`` must be whole tubelets of ``tubelet`` frames and ``patch`` pixels
    (and ``fixed_size`` pixels square, for a model whose position table is not interpolated).
    ``token_limit``: most tokens per clip (attention memory is quadratic); ``True``:
    :data:`~vadfeat.backbones._registry.MAX_TOKENS`; convolutional backbones pass ``False``."""
    limit = MAX_TOKENS if token_limit is True else (token_limit or None)
    if fixed_size is not None and preset.size != fixed_size:
        raise ConfigError(
            f"size={preset.size} does not fit {model}: it takes {fixed_size}x{fixed_size} px "
            f"inputs (its position embedding is not interpolated); use size {fixed_size}"
        )
    if preset.clip_len % tubelet:
        raise ConfigError(
            f"clip_len={preset.clip_len} does not fit {model}: its tubelets are {tubelet} frames, "
            f"so the clip length must be a multiple of {tubelet} (nearest: "
            f"{_near(preset.clip_len, tubelet)}; 16 is the length it was trained with)"
        )
    if preset.size % patch:
        raise ConfigError(
            f"size={preset.size} does not fit {model}: its patches are {patch} pixels, so the "
            f"input side must be a multiple of {patch} (nearest: {_near(preset.size, patch)}; "
            "224 is the size it was trained with)"
        )
    tokens = preset.clip_len // tubelet * (preset.size // patch) ** 2
    if limit is not None and tokens > limit:
        raise ConfigError(
            f"clip_len={preset.clip_len} and size={preset.size} give {tokens} tokens per clip for "
            f"{model}; at most {limit} (attention memory grows with their square)"
        )


def check_model_geometry(preset: Preset, spec: Any, *, backbone: Any) -> None:
    """:func:`check_geometry` for a registered backbone's architecture ``spec``, when the
    backbone's stream is an image stream (:attr:`Backbone.stream`); for another stream
    (audio), the settings that only mean something for images (crops, a JPEG round trip)
    must stay at their defaults, and the feature head must be the backbone's.

    Optional spec attributes: ``fixed_size`` (``True``: inputs must be ``img_size`` square;
    default: only frame-level backbones, whose position tables vadfeat does not
    interpolate), ``token_limit`` (``False`` for convolutional models, an int for a stated
    limit; default :data:`~vadfeat.backbones._registry.MAX_TOKENS`) and ``min_frames`` (the
    shortest clip the network takes; default 1).
    """
    if not backbone.stream.image:
        _check_not_image(preset, spec, backbone=backbone)
        backbone.check_feature(preset.pooling)
        return
    min_frames = getattr(spec, "min_frames", 1)
    if preset.clip_len < min_frames:
        raise ConfigError(
            f"clip_len={preset.clip_len} does not fit {backbone.record_name(spec)}: it takes clips of at "
            f"least {min_frames} frames (its temporal kernels and pools need them)"
        )
    fixed = getattr(spec, "fixed_size", isinstance(backbone.stream, VideoFrames))
    check_geometry(preset, tubelet=spec.tubelet_size, patch=spec.patch_size,
                   model=backbone.record_name(spec), fixed_size=spec.img_size if fixed else None,
                   token_limit=token_limit(spec))
    backbone.check_feature(preset.pooling)


# Settings that act on decoded images: refused for a backbone of another stream.
_IMAGE_ONLY = {"crops": 1, "jpeg_roundtrip": "none"}


def _check_not_image(preset: Preset, spec: Any, *, backbone: Any) -> None:
    for field, default in _IMAGE_ONLY.items():
        value = getattr(preset, field)
        if value != default:
            raise ConfigError(
                f"{field}={value!r} does not fit {backbone.record_name(spec)}: it consumes "
                f"{backbone.stream.describe()}, not images ({field} acts on video frames; leave "
                f"it at {default!r})"
            )


def peek_geometry(checkpoint: Any) -> tuple[int, int] | None:
    """``(tubelet, patch)`` of a checkpoint from its header alone; ``None`` if that cannot be seen.

    The backbone the file belongs to (:func:`~vadfeat.backbones._registry.detect_backbone`,
    from key names only) reads its own header (:meth:`Backbone.peek_geometry`).  Never raises
    for a damaged or unrecognised file: the checkpoint loader says what is wrong with it.
    """
    if checkpoint is None:
        return None
    from vadfeat.backbones._registry import detect_backbone

    try:
        backbone = detect_backbone(checkpoint)
    except VadfeatError:
        return None
    return backbone.peek_geometry(checkpoint)


def default_preset(settings: Mapping[str, Any]) -> Any:
    """``settings["preset"]``, or when none is given the default preset of the backbone the
    settings name (``backbone``, the namespace of ``model``, or the checkpoint's contents)."""
    preset = settings.get("preset")
    if preset is not None:
        return preset
    from vadfeat.backbones._registry import pick_backbone

    checkpoint = settings.get("checkpoint")
    try:
        bb, arch = pick_backbone(checkpoint=checkpoint, model=settings.get("model"),
                                 backbone=settings.get("backbone"))
        if arch is None and checkpoint is None:
            arch = bb.default_arch()  # random weights of the backbone's default size
        return bb.default_preset_for(arch, checkpoint)
    except VadfeatError:
        return DEFAULT_PRESET  # the loader reports what is wrong with the checkpoint or name


def check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse, before any work, every extraction setting that cannot work.

    The checks of :meth:`vadfeat.pipeline.config.ExtractConfig.from_settings` (which
    this calls), for callers that only want to know; missing settings take their
    defaults.  Raises :class:`~vadfeat.errors.ConfigError` (unknown model names included).
    """
    from vadfeat.pipeline.config import ExtractConfig

    ExtractConfig.from_settings(settings)


__all__ = ["MAX_BATCH_SIZE", "check_batch_size", "check_geometry", "check_model_geometry",
           "check_settings", "default_preset", "peek_geometry"]
