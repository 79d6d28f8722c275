"""Build a ready-to-run VideoMAE V2 feature model from a checkpoint or a size name."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from vadfeat.backbones.videomae.checkpoints import CheckpointInfo, check_keys, load_checkpoint, resolve_spec
from vadfeat.backbones.videomae.model import FeatureModel, VideoMAEv2, check_pooling, init_random
from vadfeat.errors import CheckpointError

log = logging.getLogger(__name__)




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

    ``checkpoint`` is a path, a checkpoint folder or ``hf://owner/repo[@rev]``;
    ``model`` names a registered size and, with a checkpoint, must agree with it.
    ``checkpoint=None`` with ``model=`` gives deterministic random weights
    (``seed``); the returned model then has ``random_weights=True``, which every
    output records.  ``dtype`` casts the parameters (``None`` keeps fp32; for
    mixed precision prefer autocast and keep fp32 parameters).  ``quantize="int8"``
    makes the Linear layers dynamic int8 (CPU only, :mod:`vadfeat.backbones.videomae.compress`); a
    compressed checkpoint that records int8 gets them without asking.
    """
    check_pooling(pooling)
    info: CheckpointInfo | None = None
    state = None
    if checkpoint is not None:
        state, info = load_checkpoint(checkpoint, num_heads=num_heads)
    spec = resolve_spec(model, info)
    if info is not None and pooling == "fc_norm" and not info.has_fc_norm:
        raise CheckpointError(
            f"{info.path} has no fc_norm weights ({info.detail}): the official fc_norm "
            "feature cannot be computed from it. Use pooling 'mean' or 'stats', which read "
            "the last block's tokens directly."
        )
    encoder = VideoMAEv2(spec)
    if state is None:
        init_random(encoder, seed=seed)
        log.warning("model %s has RANDOM weights: features are for testing only", spec.name)
    else:
        expected = encoder.state_dict()
        allow = ("fc_norm.weight", "fc_norm.bias") if pooling != "fc_norm" else ()
        check_keys(state, expected, allow_missing=allow)
        encoder.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=False)
    fm = FeatureModel(encoder, pooling=pooling, random_weights=state is None, checkpoint=info)
    from vadfeat.backbones.loading import ready

    fm = ready(fm, device=device, dtype=dtype)
    recorded = (info.compression or {}).get("quantize") if info is not None else None
    if quantize is not None or recorded is not None:
        from vadfeat.backbones.videomae.compress import apply_quantization

        fm = apply_quantization(fm, quantize or recorded, explicit=quantize is not None,
                                device=torch.device(device))
    return fm
