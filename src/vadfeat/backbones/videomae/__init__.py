"""VideoMAE V2 (Wang et al., CVPR 2023): the encoder, its checkpoint formats and compression."""

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
