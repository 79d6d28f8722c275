"""VGGish's presets: ``vggish`` (the plain 0.96 s grid) and ``vggish-xd`` (one window per
16-frame snippet, end-aligned, as XD-Violence's audio features).  No torch.

An audio preset's grid is not a pixel recipe: :data:`AUDIO_GRIDS` says, per preset name, where
the examples lie (:mod:`vadfeat.pipeline.audio_grid`, docs/DESIGN.md "Audio grids"):

- ``plain``: back-to-back 0.96 s examples from the track's first sample, the examples
  torchvggish's and the TensorFlow release's ``waveform_to_examples`` make
  (:func:`vadfeat.pipeline.audio_grid.plain_grid`); the preset's sampling fields are unused;
- ``snippets``: one 0.96 s window per visual snippet of the video, ending where the snippet
  ends (:func:`vadfeat.pipeline.audio_grid.snippet_grid`).  The snippets are those the
  preset's sampling fields (``clip_len``, ``frame_interval``, ``stride``, ``tail``,
  ``lookahead``) cut from the video's frames at its native rate (``--fps``: at that rate), so
  ``vggish-xd`` (16 frames, stride 16, tail dropped) gives the ``T`` of ``i3d-xd`` on the same
  file.  ``first``/``tail`` are the windows' edge rules (``pad``: zeros outside the track;
  :data:`vadfeat._types.AudioEdge`).

Pixel fields keep their defaults (one crop, no JPEG round trip): the pipeline refuses others
for an audio stream (:func:`vadfeat.pipeline.validate.check_model_geometry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from vadfeat._types import AudioEdge
from vadfeat.backbones.recipes import PixelRecipe, Preset, SamplingRecipe, declare_heads
from vadfeat.backbones.vggish.spec import VGGISH_HEADS

declare_heads(VGGISH_HEADS)


@dataclass(frozen=True)
class AudioGridRule:
    """Where an audio preset's examples lie: ``kind`` ``plain`` or ``snippets`` (see the module
    docstring); ``first``/``tail``: what a window reaching before or past the track reads."""

    kind: str
    first: AudioEdge = "pad"
    tail: AudioEdge = "pad"

    def to_dict(self) -> dict[str, str]:
        if self.kind == "plain":  # the reference's: no window before 0, the incomplete tail dropped
            return {"kind": "plain", "first": "none", "tail": "drop"}
        return {"kind": self.kind, "first": self.first, "tail": self.tail}


#: This family's presets, by name, in listing order.
PRESETS: Mapping[str, Preset] = MappingProxyType({
    "vggish": Preset.compose(
        "vggish",
        SamplingRecipe(clip_len=1, frame_interval=1, stride=1, tail="drop"),
        PixelRecipe(),
        pooling="embedding",
    ),
    # XD-Violence: a 0.96 s window end-aligned with each 16-frame snippet at 24 fps
    # (JustinYuu/MACIL_SD#3); the snippets as i3d-xd cuts them (tail dropped), so T agrees.
    "vggish-xd": Preset.compose(
        "vggish-xd",
        SamplingRecipe(clip_len=16, frame_interval=1, stride=16, tail="drop"),
        PixelRecipe(),
        pooling="embedding",
    ),
})

#: Each preset's grid (a preset derived from one by overrides keeps its name, hence its grid).
AUDIO_GRIDS: Mapping[str, AudioGridRule] = MappingProxyType({
    "vggish": AudioGridRule("plain"),
    "vggish-xd": AudioGridRule("snippets", first="pad", tail="pad"),
})

__all__ = ["AUDIO_GRIDS", "PRESETS", "AudioGridRule"]
