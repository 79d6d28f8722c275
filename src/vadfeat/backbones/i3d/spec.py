"""The size description shared by the I3D architectures (what the pipeline asks of a spec),
the registered architectures and the checkpoint formats read.

No torch at import: the backbone registry, ``vadfeat models`` and ``--help`` read these
without importing the networks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from vadfeat.errors import ConfigError

if TYPE_CHECKING:
    import torch

FAMILIES: tuple[str, ...] = ("resnet", "inception")

FULL_WIDTH: dict[str, int] = {"resnet": 2048, "inception": 1024}
"""Feature width of each family's released network (``channel_div`` 1)."""


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
    ``min_frames``: the shortest clip the network accepts.  ``channel_div``: every layer's
    channels divided by this (1: the released network; 16: the ``*_tiny`` dry-run sizes, same
    layers, kernels, strides and pools, hence the same input sizes and snippet grid, with
    ``feature_dim`` = 2048 / 16 = 128 for the ResNet and 1024 / 16 = 64 for InceptionV1;
    InceptionV1 keeps at least one channel per branch).
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
    channel_div: int = 1

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"I3DSpec family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if self.channel_div not in (1, 2, 4, 8, 16):
            raise ValueError(f"I3DSpec channel_div must be 1, 2, 4, 8 or 16, got {self.channel_div!r}")
        if self.feature_dim != FULL_WIDTH[self.family] // self.channel_div:
            raise ValueError(f"I3DSpec {self.name!r}: feature_dim {self.feature_dim} is not "
                             f"{FULL_WIDTH[self.family]} / channel_div {self.channel_div}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.channel_div == 1:  # the released sizes' records stay as they were written before
            del d["channel_div"]
        return d


def check_clip(spec: I3DSpec, x: torch.Tensor, *, why: str) -> None:
    """``x`` must be clips ``[N, 3, T, H, W]`` of at least ``spec.min_frames`` frames.

    The pipeline refuses a shorter ``clip_len`` before any weights load
    (``pipeline.validate.check_model_geometry``); this is the same rule for a model
    called directly.  Raises :class:`ValueError` for another shape and
    :class:`ConfigError` (a setting, CLI exit 2) for too few frames; ``why`` says which
    layers need them.
    """
    if x.ndim != 5 or x.shape[1] != 3:
        raise ValueError(f"expected clips [N, 3, T, H, W], got shape {tuple(x.shape)}")
    if x.shape[2] < spec.min_frames:
        raise ConfigError(f"i3d/{spec.name} needs clips of at least {spec.min_frames} frames ({why}), "
                          f"got {x.shape[2]} (clip_len)")


I3D_ARCHS: dict[str, I3DSpec] = {
    "r50": I3DSpec("r50", "resnet", 2048, min_frames=7),
    "r50_nl": I3DSpec("r50_nl", "resnet", 2048, non_local=True, min_frames=7),
    "inception_v1": I3DSpec("inception_v1", "inception", 1024, fixed_size=True, min_frames=9),
    # Not released networks: the same layers 1/16 as wide, for dry runs with --random-weights
    # (seconds on a CPU where the full sizes take minutes per video at 10 crops).
    "r50_tiny": I3DSpec("r50_tiny", "resnet", 128, min_frames=7, channel_div=16),
    "inception_v1_tiny": I3DSpec("inception_v1_tiny", "inception", 64, fixed_size=True, min_frames=9,
                                 channel_div=16),
}

TEST_SIZES: tuple[str, ...] = ("r50_tiny", "inception_v1_tiny")
"""Registered sizes without released weights (random weights only)."""

I3D_FORMATS: tuple[str, ...] = (
    "pytorch-resnet3d",
    "pytorch-resnet3d-safetensors",
    "pytorch-i3d",
    "pytorch-i3d-safetensors",
)

# Parameters of each registered network as ``build_i3d`` makes it, so that `vadfeat models`
# lists them without building one (and importing torch); tests/test_startup.py checks each
# against the built module.
NUM_PARAMS: dict[str, int] = {
    "r50": 27_223_872,
    "r50_nl": 34_582_336,
    "inception_v1": 12_287_264,
    "r50_tiny": 112_212,
    "inception_v1_tiny": 52_567,
}
