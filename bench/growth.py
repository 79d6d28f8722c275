"""Growth: 1x, 2x, 4x the video length -> time should grow linearly, peak RSS stay flat.

Each length runs ``vadfeat extract`` in its own child process (peak RSS = that
process's VmHWM); time is the ``extract()`` call alone (process start and model
load excluded, they do not grow with the video), as wall time and as the
process's CPU time (all threads), which a neighbour's load disturbs less.  The same clip is looped to
each length, so the content per frame is the same.

    python bench/growth.py                                   # tiny model, 720p, 60/120/240 s
    python bench/growth.py --model vit_small_patch16_224 --seconds 15
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import _common as C


def child(video: Path, checkpoint: Path, out: Path, preset: str) -> None:
    from vadfeat.engines.local import extract

    c0, t0 = time.process_time(), time.perf_counter()
    summary = extract([video], out, checkpoint=checkpoint, preset=preset, device="cpu",
                      progress=False)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    if summary.exit_code:
        raise SystemExit(summary.describe())
    C.child_report(extract_s=dt, extract_cpu_s=dc, snippets=summary.snippets)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_tiny_patch16_224")
    ap.add_argument("--clip", default="bbb_720p", choices=list(C.CLIPS))
    ap.add_argument("--seconds", type=float, default=60.0, help="the 1x length (60 s)")
    ap.add_argument("--preset", default="videomae-v2")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.checkpoint, args.out, args.preset)
        return 0

    C.header("growth: time and peak memory vs video length")
    ckpt = C.random_checkpoint(args.work, args.model)
    rows = [["length", "frames", "extract s", "s per 1000 frames", "time vs 1x", "extract CPU s",
             "CPU time vs 1x", "peak RSS MB", "RSS vs 1x"]]
    base = None
    for factor in (1, 2, 4):
        video = C.bench_videos(args.work, [args.clip], args.seconds * factor)[0]
        frames = C.video_frames(video)
        out = args.work / "out-growth"
        shutil.rmtree(out, ignore_errors=True)
        rep = C.run_child([__file__, "--child", str(video), "--checkpoint", str(ckpt), "--out", str(out),
                           "--preset", args.preset])
        shutil.rmtree(out, ignore_errors=True)
        if base is None:
            base = rep
        rows.append([f"{factor}x ({args.seconds * factor:g} s)", frames, f"{rep['extract_s']:.1f}",
                     f"{1000 * rep['extract_s'] / frames:.2f}",
                     f"{rep['extract_s'] / base['extract_s']:.2f} (ideal {factor})",
                     f"{rep['extract_cpu_s']:.1f}",
                     f"{rep['extract_cpu_s'] / base['extract_cpu_s']:.2f} (ideal {factor})",
                     f"{rep['peak_rss_mb']:.0f}", f"{rep['peak_rss_mb'] / base['peak_rss_mb']:.3f}"])
        print(f"  {factor}x done: {rep['extract_s']:.1f} s", file=sys.stderr)
    print(f"model {args.model} (random weights), preset {args.preset}, clip {args.clip}\n")
    print(C.table(rows))
    print("\ntargets: time vs 1x close to the factor (linear); RSS vs 1x <= 1.10 (flat)")
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
