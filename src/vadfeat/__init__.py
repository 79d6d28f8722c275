"""vadfeat: VideoMAE V2 features for weakly supervised video anomaly detection."""

from vadfeat._version import __version__
from vadfeat.errors import (
    CheckpointError,
    ConfigError,
    DecodeError,
    UnknownModelError,
    VadfeatError,
    VideoError,
    VideoOpenError,
    VideoTooShortError,
)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DecodeError",
    "UnknownModelError",
    "VadfeatError",
    "VideoError",
    "VideoOpenError",
    "VideoTooShortError",
    "__version__",
]
