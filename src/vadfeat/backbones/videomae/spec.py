"""VideoMAE V2 sizes: :class:`ModelSpec` and the registry of named architectures.

Only shapes and numbers, no torch: ``vadfeat models``, ``--help`` and the backbone
registry read these without importing the network (:mod:`vadfeat.backbones.videomae.model`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vadfeat.errors import ConfigError, UnknownModelError


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one fine-tuned VideoMAE V2 ViT (everything shapes depend on)."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    patch_size: int = 16
    tubelet_size: int = 2
    img_size: int = 224
    num_frames: int = 16
    in_chans: int = 3
    norm_eps: float = 1e-6
    fc_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"{self.name}: width {self.embed_dim} is not divisible by {self.num_heads} heads"
            )
        if self.img_size % self.patch_size or self.num_frames % self.tubelet_size:
            raise ConfigError(
                f"{self.name}: {self.num_frames}x{self.img_size}px is not a whole number of "
                f"{self.tubelet_size}x{self.patch_size}px tubelets"
            )

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid ``(T', H', W')`` at the native clip size."""
        side = self.img_size // self.patch_size
        return self.num_frames // self.tubelet_size, side, side

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def num_params(self) -> int:
        """Parameters of the feature model (no classifier head), from the shapes alone."""
        d, m = self.embed_dim, self.mlp_hidden
        patch = self.in_chans * self.tubelet_size * self.patch_size**2 * d + d
        block = (
            2 * d  # norm1
            + 3 * d * d  # qkv (no bias)
            + 2 * d  # q_bias, v_bias
            + d * d + d  # proj
            + 2 * d  # norm2
            + d * m + m  # fc1
            + m * d + d  # fc2
        )
        return patch + self.depth * block + 2 * d  # + fc_norm

    def to_dict(self) -> dict:
        return asdict(self)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


# docs/REFERENCE.md, section 2.  ViT-g's MLP is 6144 = 1408 * 48/11, not a round ratio.
register_model(ModelSpec("vit_small_patch16_224", 384, 12, 6, 1536))
register_model(ModelSpec("vit_base_patch16_224", 768, 12, 12, 3072))
register_model(ModelSpec("vit_large_patch16_224", 1024, 24, 16, 4096))
register_model(ModelSpec("vit_huge_patch16_224", 1280, 32, 16, 5120))
register_model(ModelSpec("vit_giant_patch14_224", 1408, 40, 16, 6144, patch_size=14))
# Not a released model: small enough that tests and the demo run in seconds on a CPU.
register_model(ModelSpec("vit_tiny_patch16_224", 64, 2, 2, 256))


def list_models() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None


def heads_for_width(embed_dim: int) -> int | None:
    """Heads of the registered size with this width (heads are not visible in shapes)."""
    for spec in _REGISTRY.values():
        if spec.embed_dim == embed_dim:
            return spec.num_heads
    return None


def spec_dims(spec: ModelSpec) -> tuple[int, int, int, int, int]:
    """The dimensions visible in a state dict's shapes."""
    return (spec.embed_dim, spec.depth, spec.patch_size, spec.tubelet_size, spec.mlp_hidden)


def find_registered(dims: tuple[int, int, int, int, int]) -> ModelSpec | None:
    for spec in _REGISTRY.values():
        if spec_dims(spec) == dims:
            return spec
    return None
