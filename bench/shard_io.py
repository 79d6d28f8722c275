"""Write and read speed of the sharded outputs against the ``.npy`` sink.

``--videos`` videos of features ``[T, --width]`` float32, ``T`` spread evenly over
``--min-t`` .. ``--max-t`` (default 1,000 videos of ``[60..300, 1408]``, about 1 GB), with a
real sidecar each (the sidecar of a tiny extraction, its shape and name put in), written
and read back three ways, side by side:

* ``npy``: :class:`~vadfeat.store.sinks.NpySink` (``write`` per video: a ``.npy`` and a
  sealed sidecar, each through a temporary, fsync and rename); read back with
  :func:`vadfeat.read_features` and each record's ``load()``;
* ``webdataset`` and ``parquet``: :class:`~vadfeat.store.sinks.WebDatasetSink` and
  :class:`~vadfeat.store.sinks.ParquetSink` (``make_sink(out, sink=...)``: ``write`` per
  video, a shard committed every ``--shard-size`` videos or ``--shard-mb`` MiB, ``commit``
  at the end).  Read back through ``read_features`` (each record's ``load()``) when it
  reads shards, else through the format module (:mod:`vadfeat.store.shards`): the
  catalog (``load_indexes``) and
  ``read_video`` for ``--random-sample`` videos spread over the folder (random access:
  a tar is streamed from its start up to the video, a Parquet file reads the video's row
  group); and in both cases ``iter_shard`` per shard (a sequential scan, what a training
  loader does).

Each write goes to a fresh folder; the page cache is *not* dropped before reads (no root
here), so reads are of warm files unless the machine evicted them: read figures are an
upper bound for a cold disk or object storage.  MB are 10^6 bytes of float32 features
(the payload); ``files`` counts what the sink leaves in the folder.

    python bench/shard_io.py                         # 1,000 videos, 2 rounds
    python bench/shard_io.py --videos 200 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

import _common as C
from vadfeat.store import shards
from vadfeat.store.sinks import NpySink, VideoFeatures, make_sink


def template_sidecar(work: Path) -> dict[str, Any]:
    """The sidecar of a real extraction (tiny random model) of one synthetic video (cached)."""
    path = work / "shard_io_template.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    import vadfeat
    from vadfeat.testing import synth

    src = work / "shard_io_template_in"
    synth.write_video(src / "t.mp4", synth.scene_frames(32, width=64, height=48, seed=0), fps=25)
    out = work / "shard_io_template_out"
    shutil.rmtree(out, ignore_errors=True)
    s = vadfeat.extract([src], out, random_weights=True, model="vit_tiny_patch16_224", device="cpu",
                        size=32, short_side=32, progress=False)
    assert s.exit_code == 0, s.describe()
    meta = json.loads((out / "t.json").read_text())
    path.write_text(json.dumps(meta))
    return dict(meta)


def make_videos(n: int, width: int, t_min: int, t_max: int,
                template: dict[str, Any]) -> list[tuple[PurePosixPath, VideoFeatures]]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        t = t_min + (k * (t_max - t_min)) // max(1, n - 1)
        stem = PurePosixPath(f"d{k // 100:03d}/v{k:05d}")
        feats = rng.standard_normal((t, width), dtype=np.float32)
        meta = {key: v for key, v in template.items() if key not in ("files", "sidecar_sha256")}
        meta.update(video=f"{stem}.mp4", shape=[t, width], num_snippets=t,
                    snippets=[[16 * i, 16 * i + 15] for i in range(t)], num_frames=16 * t)
        out.append((stem, VideoFeatures(feats, meta)))
    return out


# --------------------------------------------------------------------------- writers


def write_npy(out: Path, videos: list[tuple[PurePosixPath, VideoFeatures]], **_: Any) -> str:
    sink = NpySink(out)
    sink.open()
    for stem, result in videos:
        sink.write(sink.plan(stem), result)
    sink.commit()
    return "NpySink"


def write_shards(out: Path, videos: list[tuple[PurePosixPath, VideoFeatures]], *, kind: str,
                 shard_size: int, shard_mb: int) -> str:
    sink = make_sink(out, sink=kind, shard_size=shard_size, shard_mb=shard_mb)
    sink.open()
    for stem, result in videos:
        sink.write(sink.plan(stem), result)
    sink.commit()
    return type(sink).__name__


# --------------------------------------------------------------------------- readers


def read_all(out: Path) -> tuple[int, int, str]:
    """(videos, float32 bytes) read back through read_features, and how."""
    import vadfeat

    fs = vadfeat.read_features(out)
    n = nbytes = 0
    for rec in fs:
        arr = rec.load()
        n += 1
        nbytes += arr.nbytes
    return n, nbytes, "read_features"


def read_shards_random(out: Path, sample: int) -> tuple[int, int, str]:
    """``sample`` videos spread evenly over the folder, each by ``read_video`` (its shard
    streamed up to it for a tar, its row group for Parquet)."""
    cat = shards.load_indexes(out)
    stems = sorted(cat.videos)
    pick = stems[:: max(1, len(stems) // sample)][:sample]
    n = nbytes = 0
    for stem in pick:
        v = cat.get(stem)
        assert v is not None
        rec = shards.read_video(out / v.shard, v.member)
        assert rec.intact
        n += 1
        nbytes += rec.features.nbytes
    return n, nbytes, f"load_indexes + read_video ({len(pick)} videos)"


def read_shards_scan(out: Path) -> tuple[int, int, str]:
    n = nbytes = 0
    for path in shards.shard_files(out):
        for rec in shards.iter_shard(path):
            n += 1
            nbytes += rec.features.nbytes
    return n, nbytes, "iter_shard"


def reads_shards() -> bool:
    """Whether this tree's read_features reads sharded folders."""
    import inspect

    from vadfeat.store import reader

    return "shard" in inspect.getsource(reader)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--width", type=int, default=1408)
    ap.add_argument("--min-t", type=int, default=60)
    ap.add_argument("--max-t", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=1000, help="videos per shard (1000)")
    ap.add_argument("--shard-mb", type=int, default=1024, help="MiB per shard (1024)")
    ap.add_argument("--random-sample", type=int, default=50,
                    help="videos read one by one by read_video (50): a tar is streamed up to each, so "
                         "reading all of them one by one costs O(videos^2)")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    args = ap.parse_args()
    C.header("sharded outputs (webdataset, parquet) against the .npy sink: write and read speed")
    args.work.mkdir(parents=True, exist_ok=True)
    videos = make_videos(args.videos, args.width, args.min_t, args.max_t, template_sidecar(args.work))
    payload = sum(v.features.nbytes for _, v in videos)
    print(f"inputs  : {args.videos} videos of [{args.min_t}..{args.max_t}, {args.width}] float32, "
          f"{payload / 1e6:.0f} MB of features; shards of {args.shard_size} videos / {args.shard_mb} MiB\n",
          flush=True)
    shard_readers: list[Callable[[Path], tuple[int, int, str]]] = (
        [read_all, read_shards_scan] if reads_shards() else
        [lambda out: read_shards_random(out, args.random_sample), read_shards_scan])
    kinds = ["npy", "webdataset", "parquet"]
    rows = [["round", "sink", "writer", "write s", "videos/s", "MB/s", "files", "folder MB", "reader",
             "read s", "read videos/s", "read MB/s", "load"]]
    res: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            out = args.work / f"shard_io_{kind}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            how = (write_npy(out, videos) if kind == "npy" else
                   write_shards(out, videos, kind=kind, shard_size=args.shard_size, shard_mb=args.shard_mb))
            wt = time.perf_counter() - t0
            files = sum(1 for p in out.rglob("*") if p.is_file())
            size = C.dir_bytes(out)
            for reader in ([read_all] if kind == "npy" else shard_readers):
                t0 = time.perf_counter()
                n, nbytes, rhow = reader(out)
                rt = time.perf_counter() - t0
                assert (n == args.videos and nbytes == payload) or "read_video" in rhow, (kind, rhow, n)
                res.setdefault((kind, rhow), []).append((wt, rt * args.videos / n))
                rows.append([str(r + 1), kind, how, f"{wt:.2f}", f"{args.videos / wt:.0f}",
                             f"{payload / 1e6 / wt:.0f}", str(files), f"{size / 1e6:.0f}", rhow,
                             f"{rt:.2f}", f"{n / rt:.1f}", f"{nbytes / 1e6 / rt:.0f}",
                             C.load().split()[0]])
                print(C.table([rows[0], rows[-1]]), flush=True)
            shutil.rmtree(out, ignore_errors=True)
    print()
    print(C.table(rows))
    print(f"\nmedians over {args.rounds} round(s) (write / read MB/s, and x the .npy sink; a sampled "
          "reader's time scaled to all the videos):")
    base_w = C.median([w for w, _ in res["npy", "read_features"]])
    base_r = C.median([r for _, r in res["npy", "read_features"]])
    summary = [["sink", "reader", "write MB/s", "write x npy", "read MB/s", "read x npy"]]
    for (kind, rhow), vals in res.items():
        w, r = C.median([v[0] for v in vals]), C.median([v[1] for v in vals])
        summary.append([kind, rhow, f"{payload / 1e6 / w:.0f}", f"{base_w / w:.2f}",
                        f"{payload / 1e6 / r:.0f}", f"{base_r / r:.2f}"])
    print(C.table(summary))
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
