"""What vadfeat writes and reads back.

``sinks`` (where a run's features go: the :class:`~vadfeat.store.sinks.Sink` interface and
the ``.npy`` sink), ``atomic`` (temporary name + rename), ``sidecar`` (seal, read),
``identity`` (what a source was), ``fingerprint`` (same settings?), ``claims`` (per-video
locks), ``manifest`` (``OUT/manifest.jsonl``), ``ownership`` (what a command may replace),
``frames`` (``vadfeat frames``), ``reader`` (``read_features``).
"""
