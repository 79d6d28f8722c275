"""VideoMAE V2 (Wang et al., CVPR 2023): the encoder, its checkpoint formats and compression.

The names below are read from :mod:`~vadfeat.backbones.videomae.model` on first use
(PEP 562): registering the backbone (``vadfeat --help``, ``vadfeat models``) reads only
the torch-free :mod:`~vadfeat.backbones.videomae.spec`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "POOLINGS",
    "FeatureModel",
    "ModelSpec",
    "VideoMAEv2",
    "build_encoder",
    "get_spec",
    "list_models",
    "register_model",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("vadfeat.backbones.videomae.model"), name)


if TYPE_CHECKING:
    from vadfeat.backbones.videomae.model import (
        POOLINGS,
        FeatureModel,
        ModelSpec,
        VideoMAEv2,
        build_encoder,
        get_spec,
        list_models,
        register_model,
    )
