"""CLIP vision sizes: :class:`ClipVisionSpec`, the released architectures and the formats read.

Only shapes and names, no torch: the backbone registry, ``vadfeat models`` and
``--help`` read these without importing the network (:mod:`vadfeat.backbones.clip.model`)
or the checkpoint reader (:mod:`vadfeat.backbones.clip.checkpoints`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vadfeat._types import ClipFeature
from vadfeat.errors import ConfigError

FEATURES: tuple[ClipFeature, ...] = ("embedding", "token")
"""Feature heads: ``"embedding"`` = ``ln_post(cls) @ proj`` ``[B, output_dim]`` (default);
``"token"`` = ``ln_post(cls)`` before the projection, ``[B, width]``."""

HEAD_WIDTH = 64
"""OpenAI derives the head count as ``width // 64`` (``vision_heads`` in ``CLIP.__init__``)."""


@dataclass(frozen=True)
class ClipVisionSpec:
    """Size of one CLIP vision transformer.

    ``image_size`` and ``patch_size`` in pixels (square); ``width`` is the token
    dimension, ``layers`` the number of residual blocks, ``heads`` the attention heads
    (``width`` must be divisible by it), ``output_dim`` the projected embedding size.
    """

    name: str
    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    output_dim: int

    def __post_init__(self) -> None:
        for field in ("image_size", "patch_size", "width", "layers", "heads", "output_dim"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"ClipVisionSpec {self.name!r}: {field} must be a positive int, got {value!r}"
                )
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"ClipVisionSpec {self.name!r}: image_size {self.image_size} is not a multiple of "
                f"patch_size {self.patch_size}"
            )
        if self.width % self.heads:
            raise ConfigError(
                f"ClipVisionSpec {self.name!r}: width {self.width} not divisible by heads {self.heads}"
            )

    @property
    def grid(self) -> int:
        """Patches per side (``image_size // patch_size``)."""
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """Sequence length: ``1 + grid**2`` (class token first)."""
        return 1 + self.grid**2

    # What the pipeline asks of every backbone's architecture (vadfeat.backbones._registry.ArchSpec).
    @property
    def img_size(self) -> int:
        return self.image_size

    @property
    def tubelet_size(self) -> int:
        """Frames per token: 1 (an image model; a snippet's frames are run one by one)."""
        return 1

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


# The released OpenAI sizes (clip/clip.py _MODELS; widths/layers from the checkpoints).
CLIP_ARCHS: dict[str, ClipVisionSpec] = {
    spec.name: spec
    for spec in (
        ClipVisionSpec("vit_b_16", 224, 16, 768, 12, 12, 512),
        ClipVisionSpec("vit_b_32", 224, 32, 768, 12, 12, 512),
        ClipVisionSpec("vit_l_14", 224, 14, 1024, 24, 16, 768),
        ClipVisionSpec("vit_l_14_336", 336, 14, 1024, 24, 16, 768),
    )
}


CLIP_FORMATS: tuple[str, ...] = (
    "openai-torchscript",
    "openai-state-dict",
    "openai-safetensors",
    "open_clip",
    "transformers",
    "transformers-state-dict",
)
