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

    The frames of all ``N`` snippets go through the frame model as one batch of
    ``N * T`` (``N`` for ``"middle"``); the result is reduced over ``T`` in float32
    (the mean of bf16 features is taken after casting up).  Attributes the pipeline
    reads (``spec``, ``checkpoint``, ``random_weights``, ``quantize``, ``pooling``,
    ``backbone``) are set by the backbone that builds it.
    """

    def __init__(self, frame_model: nn.Module, *, reduce: str = "mean", **attrs: Any) -> None:
        super().__init__()
        self.frame_model = frame_model
        self.reduce = check_frame_reduce(reduce)
        for k, v in attrs.items():
            setattr(self, k, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected clips [N, 3, T, H, W], got shape {tuple(x.shape)}")
        n, c, t, h, w = x.shape
        if self.reduce == "middle":
            return self.frame_model(x[:, :, t // 2])
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        feats = self.frame_model(frames)
        feats = feats.reshape(n, t, *feats.shape[1:])
        return feats.float().mean(dim=1).to(feats.dtype)


__all__ = ["FRAME_REDUCTIONS", "FrameReduce", "SnippetOfFrames", "check_frame_reduce"]
