"""The size description shared by the I3D architectures (what the pipeline asks of a spec)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FAMILIES: tuple[str, ...] = ("resnet", "inception")


@dataclass(frozen=True)
class I3DSpec:
    """One I3D architecture.

    ``family``: ``"resnet"`` (inflated ResNet-50, ``non_local`` blocks optional) or
    ``"inception"`` (InceptionV1).  ``feature_dim``: width of the pooled feature
    (2048 / 1024).  ``img_size``: the side the released weights were trained and
    tested at (224).  Convolutional: ``patch_size`` and ``tubelet_size`` are 1 (every
    pixel and frame is an input), ``token_limit`` is off; ``fixed_size`` is true for
    InceptionV1, whose final average pool is a fixed ``[2, 7, 7]`` window (other sizes
    change the feature or fail), false for the ResNet (adaptive global pool).
    ``min_frames``: the shortest clip the network accepts.
    """

    name: str
    family: str
    feature_dim: int
    non_local: bool = False
    img_size: int = 224
    fixed_size: bool = False
    min_frames: int = 1
    patch_size: int = 1
    tubelet_size: int = 1
    token_limit: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"I3DSpec family must be one of {', '.join(FAMILIES)}, got {self.family!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
