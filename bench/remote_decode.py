"""Decoding a video streamed from an object store against decoding the local file.

A video named by URL (``s3://...``) is decoded by PyAV from fsspec's file object as it
is read (ranged GETs of :data:`vadfeat.io.remote.DEFAULT_BLOCK_SIZE` bytes, nothing
written to disk).  This prints, for 60 s clips of a real sample at 360p and 720p (H.264,
25 fps), the decode time of the local file and of the same bytes on a local S3-compatible
server (moto's, on localhost: the store's own latency is not in it, only the cost of the
streaming path), their ratio, the bytes PyAV asked the store for against the object's
size, and the GET requests made; each time the median of 3 interleaved runs.  Usage:
``python bench/remote_decode.py [--work DIR]`` (needs s3fs and ``moto[server]``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

import _common
from vadfeat.io import remote
from vadfeat.io.video import open_video


def decode_seconds(source: str | Path) -> float:
    t0 = time.perf_counter()
    with open_video(source) as reader:
        for _ in reader:
            pass
    return time.perf_counter() - t0


class Counting:
    """Wraps fsspec's file object, counting the bytes read from it."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.read_bytes += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def traced_decode(url: str) -> tuple[int, int]:
    """Decode ``url`` once; ``(bytes PyAV read, ranged GET requests made)``."""
    from s3fs.core import S3File

    import vadfeat.io.container as container

    opened: list[Counting] = []
    calls = 0
    real_open, real_fetch = container.open_input, S3File._fetch_range

    def counting(u: str, **kw: Any) -> Any:
        f = Counting(real_open(u, **kw))
        opened.append(f)
        return f

    def fetch(self: Any, start: int, end: int) -> bytes:
        nonlocal calls
        calls += 1
        return real_fetch(self, start, end)

    container.open_input = counting  # type: ignore[assignment]
    S3File._fetch_range = fetch
    try:
        decode_seconds(url)
    finally:
        container.open_input = real_open  # type: ignore[assignment]
        S3File._fetch_range = real_fetch
    return sum(f.read_bytes for f in opened), calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, default=_common.DEFAULT_WORK)
    args = ap.parse_args()
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL_S3=f"http://{host}:{port}")
    try:
        _common.header("decoding from S3 (moto on localhost) against the local file")
        fs, _ = remote.filesystem("s3://vadfeat-bench")
        fs.mkdir("vadfeat-bench")
        videos = _common.bench_videos(args.work, ["bbb_360p", "bbb_720p"])
        rows = [["clip", "MB", "local s", "s3 s", "s3/local", "bytes read / size", "GETs"]]
        for video in videos:
            url = f"s3://vadfeat-bench/{video.name}"
            fs.put_file(str(video), f"vadfeat-bench/{video.name}")
            local_t, s3_t = [], []
            for _ in range(3):
                local_t.append(decode_seconds(video))
                s3_t.append(decode_seconds(url))
            read, calls = traced_decode(url)
            size = video.stat().st_size
            lt, st = _common.median(local_t), _common.median(s3_t)
            rows.append([video.stem, f"{size / 1e6:.1f}", f"{lt:.2f}", f"{st:.2f}", f"{st / lt:.2f}",
                         f"{read / size:.2f}", calls])
        print(_common.table(rows))
    finally:
        server.stop()
        _common.footer()


if __name__ == "__main__":
    main()
