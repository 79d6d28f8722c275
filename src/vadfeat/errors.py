"""Exception hierarchy.

Library code raises these (chained with ``from`` where a lower-level error caused
them); only the multi-video driver catches per-video failures, records them in the
run manifest and carries on.  Boundary errors (bad configuration, unknown model,
mismatched checkpoint) are never caught: they stop the run before work starts.
"""

from __future__ import annotations


class VadfeatError(Exception):
    """Base class of every error vadfeat raises on purpose."""


class ConfigError(VadfeatError, ValueError):
    """An option, preset or setting is invalid (exit code 2 on the command line)."""


class UnknownModelError(ConfigError, KeyError):
    """A model size name is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(VadfeatError):
    """A checkpoint cannot be read, is not a checkpoint, or does not fit the model."""


class VideoError(VadfeatError):
    """A single input video cannot be turned into features; the run goes on."""


class VideoOpenError(VideoError):
    """The file is missing, unreadable, empty, or not a container FFmpeg can open."""


class DecodeError(VideoError):
    """Decoding failed part-way (corrupt or truncated data) under ``on_corrupt='fail'``."""


class VideoTooShortError(VideoError):
    """The video yields fewer frames than one snippet needs under ``tail='drop'``."""
