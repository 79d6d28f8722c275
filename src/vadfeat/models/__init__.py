"""Model definitions (no file I/O)."""

from vadfeat.models.videomae import (
    POOLINGS,
    FeatureModel,
    ModelSpec,
    VideoMAEv2,
    build_encoder,
    get_spec,
    list_models,
    register_model,
)

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
