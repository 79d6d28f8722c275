"""VideoMAE V2's presets: ``videomae-v2`` (the official feature), ``videomae-tad`` and
``fed-wsvad``.  No torch.

Where each recipe comes from: :mod:`vadfeat.pipeline.presets`, which registers every
backbone's presets (:attr:`vadfeat.backbones._registry.Backbone.presets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from vadfeat.backbones.recipes import Preset

#: This family's presets, by name, in listing order.
PRESETS: Mapping[str, Preset] = MappingProxyType({
    "videomae-v2": Preset(
        name="videomae-v2",
        resize="short_side",
        short_side=224,
        size=224,
        scale="imagenet",
        channel_order="RGB",
        pooling="fc_norm",
    ),
    "videomae-tad": Preset(
        name="videomae-tad",
        resize="squash",
        size=224,
        antialias=False,
        scale="unit",
        channel_order="RGB",
        pooling="fc_norm",
        # The official TAD script uses 4 (dense) or 16; 16 gives one feature per
        # non-overlapping 16-frame snippet, which WSVAD code expects.
        stride=16,
    ),
    "fed-wsvad": Preset(
        name="fed-wsvad",
        resize="legacy",
        size=224,
        legacy_min_side=226,
        antialias=False,
        scale="minus_one_one",
        channel_order="BGR",
        pooling="stats",
        stride=16,
    ),
})

__all__ = ["PRESETS"]
