"""The WebDataset sink: videos packed into tar shards that ``webdataset.WebDataset`` reads.

Each video is one sample, ``<member>.npy`` (its features, ``np.save`` bytes) and
``<member>.json`` (its sealed sidecar), written by ``webdataset.TarWriter``; the shard
format and its index are :mod:`vadfeat.store.shards`', the lifecycle
:class:`~vadfeat.store.sinks.sharded.ShardedSink`'s.
"""

from __future__ import annotations

from vadfeat.store.shards import ShardSink
from vadfeat.store.sinks.sharded import ShardedSink


class WebDatasetSink(ShardedSink):
    """Tar shards ``OUT/shard-<writer>-<seq>.tar`` (``--sink webdataset``)."""

    format: ShardSink = "webdataset"


__all__ = ["WebDatasetSink"]
