"""Reading every video's features: an ``.npy`` folder against the same videos in shards.

Synthetic flat features (``N`` videos ``[T, 10, D]`` float32, ``T`` from 20..200, vadfeat-style
sealed sidecars) are packed by ``vadfeat export --format webdataset|parquet`` (timed: the
shard write speed), then read back the way every command reads them: ``read_features`` and
``FeatureRecord.load()`` of each video in turn.  For tar shards it also times the reader
without its per-shard member table (``shards.read_video``, which streams the tar up to the
member each time), the cost the table avoids.  Rounds are interleaved; medians printed.
Usage: ``python bench/shard_read.py [--videos N] [--dim D] [--shard-size S] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from _common import footer, header, median, table
from vadfeat.dataset.export import export
from vadfeat.store.reader import read_features
from vadfeat.store.shards import read_video
from vadfeat.store.sidecar import seal_sidecar


def make_folder(root: Path, videos: int, dim: int, crops: int = 10) -> int:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(videos):
        rows = int(rng.integers(20, 201))
        arr = rng.standard_normal((rows, crops, dim), dtype=np.float32)
        name = f"Video{i:04d}_x264"
        np.save(root / f"{name}.npy", arr)
        side = {"vadfeat_version": "bench", "video": f"{name}.mp4", "num_frames": rows * 16,
                "fps": 30.0, "shape": [rows, crops, dim], "layout": "flat",
                "snippets": [[16 * r, 16 * r + 15] for r in range(rows)],
                "fingerprint": {"preset": {"name": "bench", "crops": crops}, "model": "bench"}}
        (root / f"{name}.json").write_text(json.dumps(seal_sidecar(side)))
        total += (root / f"{name}.npy").stat().st_size
    (root / "manifest.jsonl").write_text("")
    return total


def read_all(folder: Path) -> float:
    t0 = time.perf_counter()
    for r in read_features(folder):
        r.load()
    return time.perf_counter() - t0


def read_all_streaming(folder: Path) -> float:
    """Every tar member through ``read_video`` (the tar streamed up to it each time)."""
    t0 = time.perf_counter()
    for r in read_features(folder):
        assert r.shard is not None
        read_video(r.shard.shard, r.shard.member)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=300)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("VADFEAT_BENCH_DIR",
                                                                    "/tmp/vadfeat-bench")) / "shard_read")
    args = ap.parse_args()
    header("shard read: .npy folder against webdataset and parquet shards")
    shutil.rmtree(args.work, ignore_errors=True)
    nbytes = make_folder(args.work / "npy", args.videos, args.dim)
    mb = nbytes / 1e6
    print(f"{args.videos} videos, {mb:.0f} MB of .npy, shards of {args.shard_size} videos")
    rows = [("what", "seconds", "videos/s", "MB/s")]
    for sink in ("webdataset", "parquet"):
        t0 = time.perf_counter()
        res = export(args.work / "npy", args.work / sink, format=sink,  # type: ignore[arg-type]
                     shard_size=args.shard_size)
        s = time.perf_counter() - t0
        assert not res.issues and len(res.videos) == args.videos
        rows.append((f"write {sink} (export)", f"{s:.2f}", f"{args.videos / s:.0f}", f"{mb / s:.0f}"))
    times: dict[str, list[float]] = {"npy": [], "webdataset": [], "parquet": [], "tar streamed": []}
    for _ in range(args.rounds):
        for what in times:
            folder = args.work / ("webdataset" if what == "tar streamed" else what)
            times[what].append(read_all_streaming(folder) if what == "tar streamed" else read_all(folder))
    base = median(times["npy"])
    for what, ts in times.items():
        s = median(ts)
        rows.append((f"read {what}", f"{s:.2f}", f"{args.videos / s:.0f}", f"{mb / s:.0f}"))
    print(table(rows))
    for what in ("webdataset", "parquet", "tar streamed"):
        print(f"read {what} / read npy: {median(times[what]) / base:.2f}x the time")
    footer()


if __name__ == "__main__":
    main()
