"""Frame-level backbones on the snippet grid: one feature per snippet from per-frame features.

Image models (CLIP ...) map frames ``[B, 3, H, W]`` to ``[B, D]``.  The pipeline
feeds every backbone clips ``[N, 3, T, H, W]`` (the ``T`` frames of a snippet, as
the preset samples them), so a frame model is wrapped in :class:`SnippetOfFrames`,
which runs the frames and reduces them per snippet:

- ``"mean"``: the mean of the ``T`` frame features (the usual recipe for CLIP
  features on a 16-frame snippet grid, e.g. VadCLIP's);
- ``"middle"``: the feature of frame ``T // 2`` only (the other frames are not run).

Per-frame features (``[N_frames, (crops,) D]``) are the snippet grid with
``clip_len=1, stride=1`` (preset ``clip-frames``), where both reductions are the
identity.
"""

from __future__ import annotations

from typing import Any, get_args

import torch
from torch import nn

from vadfeat._types import FrameReduce
from vadfeat.errors import ConfigError

FRAME_REDUCTIONS: tuple[str, ...] = get_args(FrameReduce)


def check_frame_reduce(reduce: str) -> str:
    if reduce not in FRAME_REDUCTIONS:
        raise ConfigError(f"frame_reduce must be one of {', '.join(FRAME_REDUCTIONS)}, got {reduce!r}")
    return reduce


class SnippetOfFrames(nn.Module):
    """Wraps a frame model ``[B, 3, H, W] -> [B, *S]`` as a clip model ``[N, 3, T, H, W] -> [N, *S]``.

    The frames of all ``N`` snippets (``N * T`` images, ``N`` for ``"middle"``) go
    through the frame model in forward passes of at most :attr:`max_images` images
    (``None``: all in one); the result is reduced over ``T`` in float32 (the mean of
    bf16 features is taken after casting up).  Splitting changes nothing but the
    batch the image model sees: each image's feature is its own, so features equal
    one pass's to float32 rounding of the matmuls.  The model's activations grow
    with the images of one pass, so :attr:`max_images` bounds its memory (the
    extractor sets it from ``batch_size``, which counts images for frame backbones).
    Attributes the pipeline reads (``spec``, ``checkpoint``, ``random_weights``,
    ``quantize``, ``pooling``, ``backbone``) are set by the backbone that builds it.
    """

    def __init__(self, frame_model: nn.Module, *, reduce: str = "mean", max_images: int | None = None,
                 **attrs: Any) -> None:
        super().__init__()
        self.frame_model = frame_model
        self.reduce = check_frame_reduce(reduce)
        self.max_images = max_images
        for k, v in attrs.items():
            setattr(self, k, v)

    def images_per_snippet(self, frames: int) -> int:
        """Images one snippet of ``frames`` frames puts through the image model (per crop)."""
        return 1 if self.reduce == "middle" else frames

    def _clip_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Clips ``[N, 3, T, H, W]`` -> features of their ``N * T`` frames in snippet-major
        order, ``[N * T, *S]``; each pass copies only its own frames out of ``x``."""
        n, _, t = x.shape[:3]
        view = x.transpose(1, 2)  # [N, T, 3, H, W], no copy
        total = n * t
        step = self.max_images or total
        feats = []
        for start in range(0, total, step):
            stop, parts, k = min(start + step, total), [], start
            while k < stop:
                i, j = divmod(k, t)
                take = min(t - j, stop - k)
                parts.append(view[i, j:j + take])
                k += take
            feats.append(self.frame_model(torch.cat(parts)))
        return feats[0] if len(feats) == 1 else torch.cat(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected clips [N, 3, T, H, W], got shape {tuple(x.shape)}")
        n, t = x.shape[0], x.shape[2]
        if self.reduce == "middle":
            x, t = x[:, :, t // 2:t // 2 + 1], 1
        feats = self._clip_frames(x)
        feats = feats.reshape(n, t, *feats.shape[1:])
        if t == 1:
            return feats[:, 0]
        return feats.float().mean(dim=1).to(feats.dtype)


__all__ = ["FRAME_REDUCTIONS", "FrameReduce", "SnippetOfFrames", "check_frame_reduce"]
