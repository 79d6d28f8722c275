"""How much of each frame's time a decode worker holds the GIL, sampled with py-spy (issue 15).

The thread pipeline's ceiling is set by the time per frame that must hold the GIL:
``1 / (GIL seconds per frame)`` frames/s, whatever the number of cores.  This script
measures that time directly, with a profiler that samples only the thread holding the
GIL (``py-spy record --gil``; ``pip install py-spy``, or put it on PATH):

- each measurement runs in a child process under ``py-spy record --gil --nonblocking``;
- the child first spins in pure Python for ``--calibrate`` seconds (function
  ``_calibrate``, which holds the GIL all the time: its samples per second are the rate
  py-spy really achieved, which a loaded machine lowers), then runs the work for
  ``--seconds`` seconds in one thread (function ``_work``);
- GIL share of the work = (``_work`` samples / its seconds) / (``_calibrate`` samples /
  its seconds); GIL ms per frame = share x wall ms per frame.

Work, per size (bigbuckbunny resized and looped, H.264): ``decode`` (PyAV through
``vadfeat.io.video``), ``decode + 1 crop`` and ``decode + 10 crops`` (``snippet_stream``
with ``videomae-v2``: per-frame prepare and snippet assembly, as a decode worker runs
it), and ``decode + raw`` (device preprocessing: raw snippets); malloc tuned as in
``vadfeat extract`` (:func:`vadfeat._malloc.tune_malloc`).  A control,
``time.sleep(0.002)`` per "frame" (which releases the GIL), must read close to 0.  One torch thread, as
the engine's workers.  Sampling error: about ``1 / sqrt(samples)`` of each count,
printed.

    python bench/gil_share.py                       # 360p/720p/1080p, 6 s each
    python bench/gil_share.py --sizes 360p --seconds 10 --rate 500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
WORKS = ("control: sleep", "decode", "decode + 1 crop", "decode + 10 crops", "decode + raw")


def _calibrate(seconds: float) -> float:
    t0 = time.perf_counter()
    x = 0
    while time.perf_counter() - t0 < seconds:
        for i in range(1000):
            x += i
    return time.perf_counter() - t0


def _setup(video: Path, work: str) -> object:
    """Imports and objects for ``work`` (outside ``_work``: imports hold the GIL); the
    process's malloc tuned as ``vadfeat extract`` and its workers tune theirs."""
    import torch

    from vadfeat._malloc import tune_malloc
    from vadfeat.io.video import open_video
    from vadfeat.pipeline.config import ExtractConfig
    from vadfeat.pipeline.stream import snippet_stream
    from vadfeat.pipeline.transforms import build_frame_transform

    torch.set_num_threads(1)
    tune_malloc()
    if work == "control: sleep":
        return lambda: (time.sleep(0.002), 1)[1]
    if work == "decode":
        def decode() -> int:
            with open_video(video) as reader:
                return sum(1 for _ in reader)

        return decode
    crops = {"decode + 1 crop": 1, "decode + 10 crops": 10}.get(work, 1)
    cfg = ExtractConfig.from_settings(random_weights=True, model="vit_tiny_patch16_224", device="cpu",
                                      preset="videomae-v2", crops=crops,
                                      preprocess="device" if work == "decode + raw" else "worker")
    tr = build_frame_transform(cfg.preset)

    def snippets() -> int:
        stream = snippet_stream(video, cfg, tr)
        while True:
            try:
                next(stream)
            except StopIteration as done:
                return int(done.value["num_frames"])

    return snippets


def _work(one_pass: object, seconds: float) -> tuple[float, int]:
    """Loop ``one_pass`` (-> frames) for ``seconds``; (wall seconds, frames)."""
    frames = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        frames += one_pass()  # type: ignore[operator]
    return time.perf_counter() - t0, frames


def child(args: argparse.Namespace) -> int:
    one_pass = _setup(Path(args.video), args.child)
    cal = _calibrate(args.calibrate)
    wall, frames = _work(one_pass, args.seconds)
    print(json.dumps({"calibrate_s": cal, "work_s": wall, "frames": frames}))
    return 0


def _samples(raw: Path) -> dict[str, int]:
    """Samples whose stack passes through ``_calibrate`` / ``_work`` (py-spy raw format:
    ``frame;frame;... count`` per line)."""
    got = {"_calibrate": 0, "_work": 0}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        for name in got:
            if f"{name} (" in stack:
                got[name] += int(count)
    return got


def measure(pyspy: str, video: Path, work: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "gil.txt"
        cmd = [pyspy, "record", "--gil", "--nonblocking", "--rate", str(args.rate), "--format", "raw",
               "-o", str(raw), "--", sys.executable, __file__, "--child", work, "--video", str(video),
               "--seconds", str(args.seconds), "--calibrate", str(args.calibrate)]
        env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode:
            raise SystemExit(f"py-spy failed ({out.returncode}): {out.stderr.strip()[-800:]}")
        timing = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
        n = _samples(raw)
    rate = n["_calibrate"] / timing["calibrate_s"]  # samples/s py-spy achieved
    share = (n["_work"] / timing["work_s"]) / rate if rate else float("nan")
    ms_frame = timing["work_s"] / timing["frames"] * 1e3
    return {"share": share, "ms_frame": ms_frame, "gil_ms": share * ms_frame, "rate": rate,
            "samples": n["_work"], "err": 1 / max(1, n["_work"]) ** 0.5}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--seconds", type=float, default=6.0, help="work per measurement (6)")
    ap.add_argument("--calibrate", type=float, default=2.0, help="pure-Python spin first (2)")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second (250)")
    ap.add_argument("--clip-seconds", type=float, default=8.0)
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    ap.add_argument("--child", choices=WORKS, help=argparse.SUPPRESS)
    ap.add_argument("--video", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        raise SystemExit("gil_share needs py-spy: pip install py-spy")
    C.header("GIL held per frame by a decode worker (py-spy --gil samples)")
    rows = [["size", "work", "wall ms/frame", "GIL share", "GIL ms/frame", "+-", "thread ceiling frames/s",
             "py-spy rate /s"]]
    folder = args.work / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        w, h = SIZES[size]
        video = C.make_clip(folder / f"gil_share_{size}_{args.clip_seconds:g}s.mp4", "bigbuckbunny.mp4",
                            w, h, args.clip_seconds)
        for work in WORKS:
            m = measure(pyspy, video, work, args)
            rows.append([size, work, f"{m['ms_frame']:.2f}", f"{m['share']:.3f}", f"{m['gil_ms']:.3f}",
                         f"{m['err'] * 100:.0f} %", f"{1e3 / m['gil_ms']:,.0f}" if m["gil_ms"] > 0 else "-",
                         f"{m['rate']:.0f}"])
            print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    print(C.table(rows))
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
