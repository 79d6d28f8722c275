"""The display matrix of phone video, applied as FFmpeg's command line does (autorotate).

A container may carry a display matrix (side data of its frames) that turns or mirrors
the stored frames for display.  :func:`orientation` reads it from a decoded PyAV frame
and returns the :class:`Orientation` to apply with numpy; every container reader turns
its frames with it (the torchcodec reader too, unless torchcodec turns them itself).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["UPRIGHT", "Orientation", "display_matrix", "orientation"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Orientation:
    """How to turn decoded frames upright; FFmpeg's autorotate (fftools) in numpy.

    ``transpose`` is FFmpeg's transpose direction (``clock``, ``cclock``,
    ``clock_flip``, ``cclock_flip``) or ``None``; ``hflip``/``vflip`` follow it.
    """

    rotation: int = 0
    mirrored: bool = False
    transpose: str | None = None
    hflip: bool = False
    vflip: bool = False

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        if self.transpose == "clock":
            rgb = np.rot90(rgb, -1)
        elif self.transpose == "cclock":
            rgb = np.rot90(rgb, 1)
        elif self.transpose == "cclock_flip":  # rotate counter-clockwise, then flip vertically
            rgb = rgb.transpose(1, 0, 2)
        elif self.transpose == "clock_flip":  # rotate clockwise, then flip vertically
            rgb = np.rot90(rgb, -1)[::-1]
        if self.hflip:
            rgb = rgb[:, ::-1]
        if self.vflip:
            rgb = rgb[::-1]
        return rgb


UPRIGHT = Orientation()


def display_matrix(frame: Any) -> np.ndarray | None:
    sides = getattr(frame, "side_data", ()) or ()
    for item in sides:
        # PyAV up to 18.1.0 iterates over the side data themselves; 18.1.1 over their types
        # (a mapping: type -> side data)
        side = item if hasattr(item, "type") else sides[item]
        kind = getattr(getattr(side, "type", None), "name", "")
        if kind == "DISPLAYMATRIX":
            raw = bytes(side)
            if len(raw) == 36:
                return np.frombuffer(raw, dtype=np.int32).astype(np.float64)
    return None


def orientation(frame: Any) -> Orientation:
    """The display matrix of a decoded frame -> the operations FFmpeg's CLI applies.

    Mirrors ``fftools/ffmpeg_filter.c``: ``theta`` is ``-av_display_rotation_get``
    rounded and brought into [0, 360); 90 -> transpose ``clock`` (``cclock_flip`` when
    the matrix also mirrors), 180 -> hflip and/or vflip by the signs of the diagonal,
    270 -> ``cclock`` (``clock_flip`` when mirrored), 0 with a negative ``d`` -> vflip.
    Other angles are not applied (a warning says so).
    """
    m = display_matrix(frame)
    if m is None:
        return UPRIGHT
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return UPRIGHT
    ccw = math.degrees(math.atan2(m[1] / scale1, m[0] / scale0))  # -av_display_rotation_get
    theta = float(round(ccw))
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    mirrored = m[0] * m[4] - m[1] * m[3] < 0
    if abs(theta - 90) < 1:
        return Orientation(90, mirrored, "cclock_flip" if m[3] > 0 else "clock")
    if abs(theta - 180) < 1:
        return Orientation(180 if m[0] < 0 and m[4] < 0 else 0, mirrored,
                            hflip=bool(m[0] < 0), vflip=bool(m[4] < 0))
    if abs(theta - 270) < 1:
        return Orientation(270, mirrored, "clock_flip" if m[3] < 0 else "cclock")
    if abs(theta) > 1:
        logger.warning("display matrix rotates by %.0f degrees: not a multiple of 90, not "
                       "applied", theta)
        return UPRIGHT
    return Orientation(0, mirrored, vflip=bool(m[4] < 0))

