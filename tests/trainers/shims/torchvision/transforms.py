"""Names VadCLIP's ``clip.py`` imports; calling one is an error (feature training never does)."""

from __future__ import annotations

import enum
from typing import Any


class InterpolationMode(enum.Enum):
    """The one member ``clip.py`` names."""

    BICUBIC = "bicubic"


class _Unavailable:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("torchvision stub: image transforms are not available in the trainer check")


Compose = Resize = CenterCrop = ToTensor = Normalize = _Unavailable
