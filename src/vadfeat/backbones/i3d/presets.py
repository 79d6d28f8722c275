"""I3D's presets: ``i3d-rtfm``, ``i3d-gowtham``, ``i3d-rtfm-author``, ``i3d-piergiaj``,
``i3d-video-features``, ``i3d-pel4vad`` and ``i3d-xd``.  No torch.

Where each recipe comes from: :mod:`vadfeat.pipeline.presets`, which registers every
backbone's presets (:attr:`vadfeat.backbones._registry.Backbone.presets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from vadfeat.backbones.recipes import PixelRecipe, Preset, SamplingRecipe

#: This family's presets, by name, in listing order.
PRESETS: Mapping[str, Preset] = MappingProxyType({
    # Sources and what is uncertain: vadfeat.pipeline.presets' docstring.
    "i3d-rtfm": Preset.compose(
        "i3d-rtfm",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=16, tail="drop"),
        PixelRecipe(resize="short_side", size=224, short_side=256, interpolation="bicubic",
                    antialias=True, crops=10, crop_resize=256, crop_order="torchvision",
                    scale="minus_one_one", channel_order="RGB"),
        pooling="pool",
    ),
    # The wrapper, step by step: vadfeat.pipeline.presets' docstring.
    "i3d-gowtham": Preset.compose(
        "i3d-gowtham",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=16, tail="drop"),
        PixelRecipe(jpeg_roundtrip="ffmpeg", resize="fixed", size=224, frame_size=(256, 340),
                    interpolation="pil-lanczos",
                    antialias=True, crops=10, crop_order="reading", scale="minus_one_one",
                    channel_order="RGB"),
        pooling="pool",
    ),
    # What RTFM's author describes: vadfeat.pipeline.presets' docstring.
    "i3d-rtfm-author": Preset.compose(
        "i3d-rtfm-author",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=16, tail="pad"),
        PixelRecipe(resize="short_side", size=224, short_side=256, interpolation="pil-bilinear",
                    antialias=True, crops=10, crop_resize=256, crop_order="torchvision",
                    scale="imagenet", mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225),
                    channel_order="RGB"),
        pooling="pool",
    ),
    # pytorch-i3d's extract_features.py, line by line: vadfeat.pipeline.presets' docstring.
    "i3d-piergiaj": Preset.compose(
        "i3d-piergiaj",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=8, tail="pad"),
        PixelRecipe(resize="min_side", size=224, legacy_min_side=226, interpolation="bilinear",
                    antialias=False, crops=1, centre_rounding="round", scale="minus_one_one",
                    channel_order="RGB"),
        pooling="pool",
    ),
    # v-iashin/video_features' I3D (RGB), stack 16 step 16: vadfeat.pipeline.presets' docstring.
    "i3d-video-features": Preset.compose(
        "i3d-video-features",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=16, tail="drop", lookahead=1),
        PixelRecipe(resize="short_side", size=224, short_side=256, interpolation="pil-bilinear",
                    antialias=True, crops=1, centre_rounding="floor", scale="minus_one_one",
                    channel_order="RGB"),
        pooling="pool",
    ),
    # ... with PEL4VAD's hand-made ten crops (#10): vadfeat.pipeline.presets' docstring.
    "i3d-pel4vad": Preset.compose(
        "i3d-pel4vad",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=16, tail="drop", lookahead=1),
        PixelRecipe(resize="short_side", size=224, short_side=256, interpolation="pil-bilinear",
                    antialias=True, crops=10, crop_resize=256, crop_order="torchvision",
                    centre_rounding="floor", mirror="crop", scale="minus_one_one",
                    channel_order="RGB"),
        pooling="pool",
    ),
    "i3d-xd": Preset.compose(
        "i3d-xd",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=16, tail="drop"),
        PixelRecipe(resize="short_side", size=224, short_side=256, interpolation="bilinear",
                    antialias=False, crops=5, crop_resize=256, crop_order="torchvision",
                    scale="minus_one_one", channel_order="RGB"),
        pooling="pool",
    ),
})

__all__ = ["PRESETS"]
