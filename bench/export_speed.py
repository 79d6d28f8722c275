"""Seconds `vadfeat export` takes on a UCF-Crime-sized folder (1,900 videos, 10 crops).

Synthetic features: 1,900 flat ``[T, 10, D]`` float32 files with sidecars, ``T`` drawn
from 20..400 rows (UCF-Crime's median video is about 120 rows at 16 frames a row),
``D`` = 64 by default (``--dim 1408`` for ViT-g sized files: 15x the bytes).  Times
every format from that flat source, then a second run of one format (resume: all
skipped).  Usage: ``python bench/export_speed.py [--videos N] [--dim D] [--work DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from vadfeat.dataset.export import export
from vadfeat.store.reader import read_features


def make_folder(root: Path, videos: int, dim: int, crops: int = 10) -> int:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(videos):
        rows = int(rng.integers(20, 401))
        arr = rng.standard_normal((rows, crops, dim), dtype=np.float32)
        name = f"Video{i:04d}_x264"
        np.save(root / f"{name}.npy", arr)
        (root / f"{name}.json").write_text(json.dumps({
            "video": f"{name}.mp4", "num_frames": rows * 16, "shape": [rows, crops, dim],
            "snippets": [[16 * r, 16 * r + 15] for r in range(rows)],
            "crop_order": ["tl", "tr", "bl", "br", "c", "ftl", "ftr", "fbl", "fbr", "fc"]}))
        total += arr.nbytes
    (root / "manifest.jsonl").write_text("")
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=1900)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("VADFEAT_BENCH_DIR",
                                                                    "/tmp/vadfeat-bench")) / "export")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    t0 = time.perf_counter()
    nbytes = make_folder(args.work / "src", args.videos, args.dim)
    print(f"made {args.videos} videos, {nbytes / 1e9:.2f} GB, in {time.perf_counter() - t0:.1f} s "
          f"(load {os.getloadavg()[0]:.2f})")
    t0 = time.perf_counter()
    fs = read_features(args.work / "src")
    print(f"read_features: {time.perf_counter() - t0:.1f} s")
    for fmt, ds in [("rtfm", None), ("fed-wsvad", None), ("ur-dmu", None), ("vadclip", None),
                    ("pel4vad", "shanghaitech")]:
        res = export(fs, args.work / fmt, format=fmt, dataset=ds)  # type: ignore[arg-type]
        print(f"{fmt:10s} {res.seconds:7.1f} s  linked {res.count('linked')}  "
              f"sliced {res.count('sliced')}  issues {len(res.issues)}")
    res = export(fs, args.work / "ur-dmu", format="ur-dmu")
    print(f"ur-dmu again (resume) {res.seconds:.1f} s, skipped {res.count('skipped')}")
    print(f"load after {os.getloadavg()[0]:.2f}")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
