"""Where features go: the :class:`Sink` interface and its implementations.

:func:`make_sink` builds a run's sink from its name: ``npy`` (:class:`NpySink`, one
``.npy`` + sidecar per video, in a layout), ``webdataset`` (:class:`WebDatasetSink`, tar
shards) or ``parquet`` (:class:`ParquetSink`, Parquet shards).  A sharded sink's ``out``
may be a URL (``s3://bucket/features``: :mod:`vadfeat.store.sinks.url`); the ``npy``
sink's may not (ConfigError).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, get_args

from vadfeat._types import SinkName
from vadfeat.errors import ConfigError
from vadfeat.store.sinks.base import OutputState, Sink, VideoFeatures
from vadfeat.store.sinks.npy import LAYOUTS, NpySink, check_layout
from vadfeat.store.sinks.parquet import ParquetSink
from vadfeat.store.sinks.sharded import SHARD_MB, SHARD_SIZE, ShardedSink, ShardTarget
from vadfeat.store.sinks.url import is_url_output, url_sink_class
from vadfeat.store.sinks.webdataset import WebDatasetSink

#: The sinks a run can choose (``--sink``).
SINKS: tuple[str, ...] = get_args(SinkName)


#: The library each sharded sink writes and reads through (the ``shards`` extra).
_LIBRARIES = {"webdataset": "webdataset", "parquet": "pyarrow.parquet"}


def _need_library(sink: str) -> None:
    """:class:`ConfigError` naming the extra to install when ``sink``'s library is missing
    (before any work, not as every video's failure)."""
    try:
        importlib.import_module(_LIBRARIES[sink])
    except ImportError as exc:
        raise ConfigError(f"--sink {sink} writes through {_LIBRARIES[sink].split('.')[0]}, which is "
                          f"not installed: pip install 'vadfeat[shards]' ({exc})") from exc


def make_sink(out: str | Path, *, sink: str = "npy", layout: str = "flat", crops: int = 1,
              shard_size: int = SHARD_SIZE, shard_mb: float = SHARD_MB) -> Sink[Any]:
    """The sink ``sink`` writing below ``out``: ``npy`` in ``layout``; ``webdataset`` or
    ``parquet`` in shards of ``shard_size`` videos or ``shard_mb`` MiB.  Raises
    :class:`ConfigError` for an unknown sink or layout, a sharded sink with a layout other
    than ``flat``, a shard size below 1, a sharded sink whose library (webdataset,
    pyarrow) is not installed, or the ``npy`` sink with a URL ``out`` (a sharded
    sink's ``out`` may be one: its shards are uploaded whole, see
    :mod:`vadfeat.store.sinks.url`)."""
    if sink == "npy":
        return NpySink(out, layout=layout, crops=crops)
    if sink not in SINKS:
        raise ConfigError(f"unknown sink {sink!r}; choose one of {', '.join(SINKS)}")
    check_layout(layout)
    if layout != "flat":
        raise ConfigError(f"the {sink} sink stores videos in shards and has no layouts; layout "
                          f"{layout!r} is only for the npy sink (leave --layout at flat)")
    _need_library(sink)
    cls: type[ShardedSink] = WebDatasetSink if sink == "webdataset" else ParquetSink
    if is_url_output(out):  # s3://, gs://: shards uploaded whole (vadfeat.store.sinks.url)
        cls = url_sink_class(sink)
    return cls(out, shard_size=shard_size, shard_mb=shard_mb, crops=crops)


__all__ = ["LAYOUTS", "SHARD_MB", "SHARD_SIZE", "SINKS", "NpySink", "OutputState", "ParquetSink",
           "ShardTarget", "ShardedSink", "Sink", "VideoFeatures", "WebDatasetSink", "check_layout",
           "make_sink"]
