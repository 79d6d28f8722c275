"""Build a ready-to-run VideoMAE V2 feature model from a checkpoint or a size name."""

from __future__ import annotations

from pathlib import Path

import torch

from vadfeat.backbones.videomae.model import FeatureModel, check_pooling


def load_videomae(
    checkpoint: str | Path | None = None,
    *,
    model: str | None = None,
    pooling: str = "fc_norm",
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    num_heads: int | None = None,
    seed: int = 0,
    quantize: str | None = None,
) -> FeatureModel:
    """A feature model in eval mode mapping ``[B, 3, T, H, W]`` floats to features.

    :meth:`vadfeat.backbones._registry.Backbone.load_model` (the one template) with VideoMAE
    V2's hooks.  ``checkpoint`` is a path, a checkpoint folder or ``hf://owner/repo[@rev]``;
    ``model`` names a registered size and, with a checkpoint, must agree with it.
    ``checkpoint=None`` with ``model=`` gives deterministic random weights (``seed``); the
    returned model then has ``random_weights=True``, which every output records.  ``dtype``
    casts the parameters (``None`` keeps fp32; for mixed precision prefer autocast and keep
    fp32 parameters).  ``quantize="int8"`` makes the Linear layers dynamic int8 (CPU only,
    :mod:`vadfeat.backbones.videomae.compress`); a compressed checkpoint that records int8
    gets them without asking.
    """
    from vadfeat.backbones.videomae.backbone import BACKBONE

    check_pooling(pooling)
    fm: FeatureModel = BACKBONE.load_model(checkpoint, arch=model, feature=pooling, device=device,
                                           dtype=dtype, num_heads=num_heads, seed=seed, quantize=quantize)
    return fm
