"""The stream a backbone consumes: what the pipeline must decode and feed it.  No torch.

A backbone declares one (:attr:`vadfeat.backbones._registry.Backbone.stream`):

- :class:`VideoClips`: RGB clips ``[N, 3, T, H, W]`` (VideoMAE V2, I3D);
- :class:`VideoFrames`: RGB frames ``[B, 3, H, W]``, fed as clips through
  :class:`~vadfeat.backbones.frames.SnippetOfFrames` (CLIP);
- :class:`AudioSamples`: mono samples at ``rate`` Hz, cut into examples of
  ``example_seconds`` (VGGish: 16 kHz, 0.96 s).

Image streams (:attr:`Stream.image`) are the ones whose architectures have patch and image
sizes and whose settings (crops, resize, clip length in frames) the pipeline checks against
them; an audio backbone's architecture needs neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vadfeat._types import InputKind


@dataclass(frozen=True)
class VideoClips:
    """RGB clips ``[N, 3, T, H, W]``: one model input per snippet (and crop)."""

    kind: ClassVar[str] = "video"
    image: ClassVar[bool] = True
    input_kind: ClassVar[InputKind] = "clip"

    def describe(self) -> str:
        return "video clips [N, 3, T, H, W]"


@dataclass(frozen=True)
class VideoFrames:
    """RGB frames ``[B, 3, H, W]``: one model input per frame of a snippet."""

    kind: ClassVar[str] = "video"
    image: ClassVar[bool] = True
    input_kind: ClassVar[InputKind] = "frame"

    def describe(self) -> str:
        return "video frames [B, 3, H, W]"


@dataclass(frozen=True)
class AudioSamples:
    """Mono audio at ``rate`` Hz, in examples of ``example_seconds`` (one model input each)."""

    rate: int = 16000
    example_seconds: float = 0.96
    kind: ClassVar[str] = "audio"
    image: ClassVar[bool] = False
    input_kind: ClassVar[InputKind] = "clip"

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, int) or self.rate <= 0:
            raise ValueError(f"AudioSamples rate must be a positive integer (Hz), got {self.rate!r}")
        if not self.example_seconds > 0:
            raise ValueError(f"AudioSamples example_seconds must be positive, got {self.example_seconds!r}")

    def describe(self) -> str:
        return f"audio samples at {self.rate} Hz, {self.example_seconds} s examples"


Stream = VideoClips | VideoFrames | AudioSamples


def stream_of_input_kind(input_kind: str) -> Stream:
    """The video stream an ``input_kind`` (``clip``/``frame``) of a plug-in written before streams names."""
    if input_kind == "frame":
        return VideoFrames()
    if input_kind == "clip":
        return VideoClips()
    raise ValueError(f"input_kind must be 'clip' or 'frame', got {input_kind!r}")


__all__ = ["AudioSamples", "Stream", "VideoClips", "VideoFrames", "stream_of_input_kind"]
