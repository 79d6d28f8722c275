"""The Parquet sink: videos packed into Parquet shards, one row group (one row) per video.

Columns (:data:`vadfeat.store.shards.PARQUET_COLUMNS`): the stem, the video, its features
as ``large_list<fixed_size_list<float32>[W]>`` with their ``shape``, their sha256, the
sidecar's main fields and the whole sealed sidecar; readable by pyarrow, pandas, Polars
and Ray Data.  Written by ``pyarrow.parquet.ParquetWriter``; the format and its index are
:mod:`vadfeat.store.shards`', the lifecycle
:class:`~vadfeat.store.sinks.sharded.ShardedSink`'s.
"""

from __future__ import annotations

from vadfeat.store.shards import ShardSink
from vadfeat.store.sinks.sharded import ShardedSink


class ParquetSink(ShardedSink):
    """Parquet shards ``OUT/shard-<writer>-<seq>.parquet`` (``--sink parquet``)."""

    format: ShardSink = "parquet"


__all__ = ["ParquetSink"]
