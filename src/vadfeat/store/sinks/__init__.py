"""Where features go: the :class:`Sink` interface and its implementations.

:func:`make_sink` builds a run's sink from its layout name; today every layout is the
``.npy`` sink's (:class:`NpySink`).
"""

from __future__ import annotations

from pathlib import Path

from vadfeat.store.sinks.base import OutputState, Sink, VideoFeatures
from vadfeat.store.sinks.npy import LAYOUTS, NpySink, check_layout


def make_sink(out: str | Path, *, layout: str = "flat", crops: int = 1) -> NpySink:
    """The sink that writes ``layout`` below ``out`` (ConfigError for an unknown layout)."""
    return NpySink(out, layout=layout, crops=crops)


__all__ = ["LAYOUTS", "NpySink", "OutputState", "Sink", "VideoFeatures", "check_layout", "make_sink"]
