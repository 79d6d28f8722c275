"""What the whole-content source hash (issue 20) costs next to decoding the same video.

Extraction hashes every source once (``source_identity(..., content=True)``), and a
resume hashes a source again only when its size, sampled ends or mtime differ from
the record (a copied dataset).  This prints, for 60 s clips of a real sample at
360p and 720p (H.264, 25 fps), the sha256 rate of the file, the PyAV decode rate of
the same file, and the hash's share of one decode, each the median of 3 interleaved
runs.  Usage: ``python bench/source_hash.py [--work DIR]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common
from vadfeat.io.video import open_video
from vadfeat.store.identity import content_sha256


def decode_seconds(path: Path) -> float:
    t0 = time.perf_counter()
    with open_video(path) as reader:
        for _ in reader:
            pass
    return time.perf_counter() - t0


def hash_seconds(path: Path) -> float:
    t0 = time.perf_counter()
    content_sha256(path)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, default=_common.DEFAULT_WORK)
    args = ap.parse_args()
    _common.header("sha256 of a source against decoding it")
    rows = [["clip", "MB", "sha256 MB/s", "decode MB/s (frames/s)", "hash / decode"]]
    for path in _common.bench_videos(args.work, ["bbb_360p", "bbb_720p"]):
        mb = path.stat().st_size / 1e6
        frames = _common.video_frames(path)
        hashes, decodes = [], []
        for _ in range(3):  # interleaved: the neighbours' load hits both alike
            hashes.append(hash_seconds(path))
            decodes.append(decode_seconds(path))
        h, d = _common.median(hashes), _common.median(decodes)
        rows.append([path.stem, f"{mb:.1f}", f"{mb / h:.0f}", f"{mb / d:.1f} ({frames / d:.0f})",
                     f"{100 * h / d:.2f} %"])
    print(_common.table(rows))
    _common.footer()


if __name__ == "__main__":
    main()
