"""CLIP's presets: ``clip-vadclip``, ``clip-frames``, ``clip-anomalyclip``,
``clip-video-features`` and ``clip-tsa``.  No torch.

Where each recipe comes from: :mod:`vadfeat.pipeline.presets`, which registers every
backbone's presets (:attr:`vadfeat.backbones._registry.Backbone.presets`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from vadfeat.backbones.recipes import CLIP_MEAN, CLIP_STD, PixelRecipe, Preset, SamplingRecipe

# openai/CLIP's ``_transform`` (Resize(224, BICUBIC) of a PIL image = Pillow's bicubic on 8 bits,
# CenterCrop(224), ToTensor, Normalize with CLIP's mean/std): the CLIP recipes that use it exactly.
_CLIP_TRANSFORM = PixelRecipe(resize="short_side", size=224, short_side=224,
                              interpolation="pil-bicubic", antialias=True, crops=1, scale="imagenet",
                              mean=CLIP_MEAN, std=CLIP_STD, channel_order="RGB")
# One row per frame, every frame.
_EVERY_FRAME = SamplingRecipe(clip_len=1, frame_interval=1, stride=1, tail="drop")


#: This family's presets, by name, in listing order.
PRESETS: Mapping[str, Preset] = MappingProxyType({
    "clip-vadclip": Preset.compose(
        "clip-vadclip",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=16, tail="drop"),
        PixelRecipe(resize="short_side", size=224, short_side=224, interpolation="bicubic",
                    antialias=True, crops=10, crop_resize=224, crop_order="centre-first",
                    scale="imagenet", mean=CLIP_MEAN, std=CLIP_STD, channel_order="RGB"),
        pooling="embedding", frame_reduce="mean",
    ),
    "clip-frames": Preset.compose(
        "clip-frames",
        SamplingRecipe(clip_len=1, frame_interval=1, stride=1, tail="drop"),
        PixelRecipe(resize="short_side", size=224, short_side=224, interpolation="bicubic",
                    antialias=True, crops=1, scale="imagenet", mean=CLIP_MEAN, std=CLIP_STD,
                    channel_order="RGB"),
        pooling="embedding", frame_reduce="mean",
    ),
    # AnomalyCLIP's and CLIP-TSA's recipes, line by line: vadfeat.pipeline.presets' docstring.
    "clip-anomalyclip": Preset.compose(
        "clip-anomalyclip", _EVERY_FRAME,
        dataclasses.replace(_CLIP_TRANSFORM, jpeg_roundtrip="opencv"),
        pooling="embedding", frame_reduce="mean",
    ),
    # v-iashin/video_features' CLIP: vadfeat.pipeline.presets' docstring.
    "clip-video-features": Preset.compose(
        "clip-video-features", _EVERY_FRAME, _CLIP_TRANSFORM,
        pooling="embedding", frame_reduce="mean",
    ),
    "clip-tsa": Preset.compose(
        "clip-tsa",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=16, tail="drop"),
        _CLIP_TRANSFORM,
        pooling="embedding", frame_reduce="middle",
    ),
})

#: What is known and what is not about the recipe behind VadCLIP's released CLIP features
#: (preset ``clip-vadclip``).  Sources: the VadCLIP paper (Wu et al., AAAI 2024) and the
#: authors' answers in github.com/nwpu-zxr/VadCLIP issues; no extraction code was released.
CLIP_VADCLIP_NOTES = (
    "known: 'standard CLIP (ViT-B/16)' image encoder, 10-crop features, 512-d projected "
    "embeddings, one feature per 16 frames (nwpu-zxr/VadCLIP issue #1, authors, 2024-01-02)",
    "known: crop files _0 = centre, _1.._4 = corners, _5.._9 = their mirrored counterparts "
    "(issue #2, authors): crop_order 'centre-first'",
    "uncertain: whether a snippet's feature is the mean of its 16 frame features or one frame's "
    "(users report neither reproduces the files exactly: issues #17, #29); frame_reduce 'mean' "
    "here, 'middle' is the other reading",
    "uncertain: the resize before the ten crops (224 short side as CLIP's own preprocessing, "
    "bicubic: crop_resize 224 here) and how a trailing partial snippet is handled (dropped here)",
    "uncertain: the frame rate (the datasets' native 30 fps for UCF-Crime, 24 for XD-Violence "
    "assumed; no resampling)",
)

__all__ = ["CLIP_VADCLIP_NOTES", "PRESETS"]
