"""Build a ready-to-run feature model of any registered backbone from a checkpoint or a name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vadfeat.backbones._files import TORCH_DTYPES, torch_dtype
from vadfeat.backbones._registry import list_backbones, pick_backbone
from vadfeat.backbones.streams import VideoFrames
from vadfeat.errors import ConfigError

DTYPES = TORCH_DTYPES  # the one map, in vadfeat.backbones._files


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    return torch_dtype(dtype)


def ready(model: torch.nn.Module, *, device: str | torch.device,
          dtype: str | torch.dtype | None = None) -> Any:
    """``model`` in eval mode without gradients, on ``device``, its parameters cast to ``dtype``
    (``None`` keeps them): the last step of every backbone's ``load_model``."""
    model.eval().requires_grad_(False)
    target = parse_dtype(dtype)
    return model.to(device=device, dtype=target) if target is not None else model.to(device)


def load_model(
    checkpoint: str | Path | None = None,
    *,
    model: str | None = None,
    backbone: str | None = None,
    pooling: str | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    num_heads: int | None = None,
    seed: int = 0,
    quantize: str | None = None,
    frame_reduce: str = "mean",
) -> Any:
    """A feature model in eval mode mapping ``[N, 3, T, H, W]`` float clips to ``[N, *feature_shape]``.

    The backbone is detected from ``checkpoint``'s contents (``checkpoint inspect``
    shows what was found), or named by ``model`` (``clip/vit_b_16``,
    ``videomae_v2/vit_g_14``, or an unambiguous bare name such as
    ``vit_giant_patch14_224``) or ``backbone``.  ``checkpoint`` is a path, a
    checkpoint folder or ``hf://owner/repo[@rev]``; with both, ``model`` must agree with
    the checkpoint.  ``checkpoint=None`` with ``model=`` gives deterministic random
    weights (``seed``); the model then has ``random_weights=True``, which every
    output records.  ``pooling`` names the backbone's feature head (``None``: its
    default: VideoMAE V2 ``fc_norm``, CLIP ``embedding``).  ``dtype`` casts the
    parameters (``None`` keeps fp32).  ``quantize="int8"``: dynamic int8 Linear
    layers (backbones that support it: VideoMAE V2; CPU).  ``frame_reduce`` (``mean`` or ``middle``): how a
    frame-level backbone makes one feature per snippet (clip-level ones ignore it).

    The model carries ``spec``, ``checkpoint`` (the loader's record or ``None``),
    ``random_weights``, ``quantize``, ``pooling`` and ``backbone`` (its name).

    Raises :class:`~vadfeat.errors.ConfigError` (unknown model or feature, model and
    checkpoint of different backbones) and :class:`~vadfeat.errors.CheckpointError`
    (unreadable file, keys missing or unexpected, shapes that do not fit).
    """
    bb, arch = pick_backbone(checkpoint=checkpoint, model=model, backbone=backbone)
    if checkpoint is None and arch is None:
        arch = bb.default_arch()
        if arch is None:
            raise ConfigError("give a checkpoint, or a model name for random weights (see `vadfeat models`)")
    feature = bb.check_feature(pooling if pooling is not None else bb.default_feature)
    if quantize is not None and not bb.supports_quantize:
        able = ", ".join(b.name for b in list_backbones() if b.supports_quantize) or "no backbone"
        raise ConfigError(f"quantize={quantize!r} is implemented for {able} only, not {bb.name}")
    # frame_reduce only where it means something: a plug-in's own load_model written before
    # the template may not take it.
    extra = {"frame_reduce": frame_reduce} if isinstance(bb.stream, VideoFrames) else {}
    return bb.load_model(checkpoint, arch=arch, feature=feature, device=device, dtype=dtype,
                         num_heads=num_heads, seed=seed, quantize=quantize, **extra)


__all__ = ["DTYPES", "load_model", "parse_dtype", "ready"]
