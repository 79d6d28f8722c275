"""An independent writer of vadfeat's shard format, for tests of the readers.

It packs a flat ``.npy`` extraction (``<stem>.npy`` + sealed ``<stem>.json``) into
webdataset tar or parquet shards with the libraries directly (``webdataset.TarWriter``,
``pyarrow.parquet.ParquetWriter``), following the format the sharded sinks write:

* ``OUT/shard-<UTC stamp>-<6 hex>-<5-digit seq>.tar|.parquet``;
* per video the ``.npy`` bytes unchanged and the sealed sidecar with ``files`` replaced by
  ``features_sha256``, ``sink``, ``shard`` and ``stem``;
* ``OUT/.vadfeat-index/<shard>.json``, sealed, naming every video of the shard.

It shares no code with ``vadfeat.store`` but ``seal_sidecar`` (the seal is part of the format).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from vadfeat.store.sidecar import seal_sidecar

WRITER = "20260101T000000Z-abc123"


def member_name(stem: str) -> str:
    return stem.replace("%", "%25").replace(".", "%2E")


def shard_sidecar(meta: dict[str, Any], *, sink: str, shard: str, stem: str,
                  features_sha256: str) -> dict[str, Any]:
    body = {k: v for k, v in meta.items() if k not in ("files", "sidecar_sha256")}
    body.update(features_sha256=features_sha256, sink=sink, shard=shard, stem=stem)
    return seal_sidecar(body)


def _videos(src: Path, stems: Sequence[str]) -> list[tuple[str, bytes, dict[str, Any]]]:
    out = []
    for stem in stems:
        data = (src / f"{stem}.npy").read_bytes()
        meta = json.loads((src / f"{stem}.json").read_text())
        out.append((stem, data, meta))
    return out


def write_shard(src: Path, out: Path, stems: Sequence[str], *, sink: str, seq: int = 0,
                writer: str = WRITER, index: bool = True) -> Path:
    """Pack the flat videos ``stems`` of ``src`` into one shard below ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    ext = "tar" if sink == "webdataset" else "parquet"
    name = f"shard-{writer}-{seq:05d}.{ext}"
    path = out / name
    entries: dict[str, Any] = {}
    videos = _videos(src, stems)
    if sink == "webdataset":
        with wds.TarWriter(str(path)) as tw:
            for stem, data, meta in videos:
                sha = hashlib.sha256(data).hexdigest()
                side = shard_sidecar(meta, sink=sink, shard=name, stem=stem, features_sha256=sha)
                tw.write({"__key__": member_name(stem), "npy": data,
                          "json": json.dumps(side).encode("utf-8")})
                entries[stem] = {"member": member_name(stem), "shape": side["shape"],
                                 "features_sha256": sha, "sidecar": side}
    else:
        pw = None
        for stem, data, meta in videos:
            arr = np.load(io.BytesIO(data))
            sha = hashlib.sha256(data).hexdigest()
            side = shard_sidecar(meta, sink=sink, shard=name, stem=stem, features_sha256=sha)
            width = int(np.prod(arr.shape[1:]))
            schema = pa.schema([
                ("stem", pa.string()), ("video", pa.string()),
                ("features", pa.large_list(pa.list_(pa.float32(), width))),
                ("shape", pa.list_(pa.int64())), ("features_sha256", pa.string()),
                ("num_frames", pa.int64()), ("fps", pa.float64()), ("num_snippets", pa.int64()),
                ("model", pa.string()), ("preset", pa.string()), ("modality", pa.string()),
                ("vadfeat_version", pa.string()), ("sidecar", pa.string())])
            rows = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1), pa.float32()), width)
            feats = pa.LargeListArray.from_arrays(pa.array([0, arr.shape[0]], pa.int64()), rows)
            preset = side.get("preset")
            model = side.get("model")
            model = model.get("name") if isinstance(model, dict) else model
            table = pa.table({
                "stem": [stem], "video": [side.get("video")], "features": feats,
                "shape": [list(arr.shape)], "features_sha256": [sha],
                "num_frames": [side.get("num_frames")], "fps": [side.get("fps")],
                "num_snippets": [arr.shape[0]], "model": [model],
                "preset": [preset.get("name") if isinstance(preset, dict) else preset],
                "modality": [side.get("modality")], "vadfeat_version": [side.get("vadfeat_version")],
                "sidecar": [json.dumps(side)]}, schema=schema)
            if pw is None:
                pw = pq.ParquetWriter(str(path), schema)
            elif pw.schema != schema:
                raise ValueError("this test writer puts videos of one feature width in a shard")
            pw.write_table(table, row_group_size=1)
            entries[stem] = {"member": stem, "shape": list(arr.shape), "features_sha256": sha,
                             "sidecar": side}
        assert pw is not None
        pw.close()
    if index:
        data = path.read_bytes()
        # mtime_ns: vadfeat's sinks record it too, so that a reader trusts an index whose
        # shard has the same size and mtime without hashing the whole shard.
        record = seal_sidecar({"format": "vadfeat-shard-index", "version": 1, "sink": sink,
                               "shard": name, "size": len(data),
                               "sha256": hashlib.sha256(data).hexdigest(),
                               "mtime_ns": path.stat().st_mtime_ns, "videos": entries})
        (out / ".vadfeat-index").mkdir(exist_ok=True)
        (out / ".vadfeat-index" / f"{name}.json").write_text(json.dumps(record))
    return path
