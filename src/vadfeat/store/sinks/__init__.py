"""Where features go: the :class:`Sink` interface and its implementations.

:func:`make_sink` builds a run's sink from its layout name; today every layout is the
``.npy`` sink's (:class:`NpySink`).
"""

from __future__ import annotations

from pathlib import Path

from vadfeat.errors import ConfigError
from vadfeat.store.sinks.base import OutputState, Sink, VideoFeatures
from vadfeat.store.sinks.npy import LAYOUTS, NpySink, check_layout


def make_sink(out: str | Path, *, sink: str = "npy", layout: str = "flat", crops: int = 1,
              shard_size: int = 1000, shard_mb: float = 1024) -> NpySink:
    """The sink named ``sink`` that writes below ``out``: ``npy`` in ``layout``
    (ConfigError for an unknown layout or sink).  ``shard_size``/``shard_mb``: when a
    sharded sink commits a shard."""
    if sink != "npy":
        raise ConfigError(f"the {sink} sink is not available in this version")
    return NpySink(out, layout=layout, crops=crops)


__all__ = ["LAYOUTS", "NpySink", "OutputState", "Sink", "VideoFeatures", "check_layout", "make_sink"]
