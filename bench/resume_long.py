"""Resume of a long video stopped in its middle: the work a rerun saves (issue 20).

One video, extracted three ways in child processes, side by side and interleaved over
``--reps`` rounds: an uninterrupted run; a run stopped (SIGINT, by the test hook of
:mod:`vadfeat.engines.partial`) once ``--stop-at`` of its snippets are through the
model; and the rerun that resumes it from its saved snippets.  Before issue 20 the
rerun started again from the first snippet, costing a whole run.  CPU time is the
``extract()`` call's (all threads; model load and process start excluded); the
rerun still decodes the saved snippets' frames (not transformed, not through the
model), so its cost is above the ideal ``1 - stop-at`` of a whole run by the decode
share.  The resumed output is checked byte for byte against the uninterrupted one.

    python bench/resume_long.py                      # tiny model, 360p, 60 s (1500 frames)
    python bench/resume_long.py --seconds 240 --clip bbb_720p
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import _common as C


def child(video: Path, checkpoint: Path, out: Path) -> None:
    import numpy as np

    from vadfeat.engines.local import extract
    from vadfeat.pipeline.extractor import FeatureExtractor

    forwards = [0]
    real = FeatureExtractor.run_model

    def counting(self: FeatureExtractor, clips) -> np.ndarray:  # type: ignore[no-untyped-def]
        forwards[0] += int(clips.shape[0])
        return real(self, clips)
    FeatureExtractor.run_model = counting  # type: ignore[method-assign]
    c0, t0 = time.process_time(), time.perf_counter()
    summary = extract([video], out, checkpoint=checkpoint, device="cpu", progress=False, batch_size=1)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    if summary.exit_code not in (0, 130):
        raise SystemExit(summary.describe())
    saved = summary.in_progress[0][1] if summary.in_progress else 0
    C.child_report(extract_s=dt, extract_cpu_s=dc, forwards=forwards[0], exit=summary.exit_code,
                   saved=saved)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_tiny_patch16_224")
    ap.add_argument("--clip", default="bbb_360p", choices=list(C.CLIPS))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--stop-at", type=float, default=0.5, help="share of the snippets done when stopped")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.checkpoint, args.out)
        return 0

    from vadfeat.engines.partial import STOP_ENV

    C.header("resume_long: a long video stopped in its middle, then resumed")
    ckpt = C.random_checkpoint(args.work, args.model)
    video = C.bench_videos(args.work, [args.clip], args.seconds)[0]
    frames = C.video_frames(video)
    snippets = frames // 16
    stop_k = max(1, round(args.stop_at * snippets))
    base = [__file__, "--child", str(video), "--checkpoint", str(ckpt)]
    full, first, rerun = [], [], []
    for rep in range(args.reps):
        clean_out, out = args.work / "out-resume-clean", args.work / "out-resume"
        for d in (clean_out, out):
            shutil.rmtree(d, ignore_errors=True)
        full.append(C.run_child([*base, "--out", str(clean_out)]))
        first.append(C.run_child([*base, "--out", str(out)], env={STOP_ENV: f"{video.name}:{stop_k}"}))
        rerun.append(C.run_child([*base, "--out", str(out)]))
        stem = video.stem
        same = (out / f"{stem}.npy").read_bytes() == (clean_out / f"{stem}.npy").read_bytes()
        if not same:
            raise SystemExit("the resumed output differs from the uninterrupted one")
        print(f"  round {rep + 1}: full {full[-1]['extract_cpu_s']:.1f} CPU s, stopped "
              f"{first[-1]['extract_cpu_s']:.1f}, resumed {rerun[-1]['extract_cpu_s']:.1f}; "
              "resumed output byte-identical", file=sys.stderr)
    f_cpu = C.median([r["extract_cpu_s"] for r in full])
    s_cpu = C.median([r["extract_cpu_s"] for r in first])
    r_cpu = C.median([r["extract_cpu_s"] for r in rerun])
    saved = first[0]["saved"]
    rows = [["run", "snippets through the model", "extract CPU s (median)", "vs an uninterrupted run"],
            ["uninterrupted", full[0]["forwards"], f"{f_cpu:.1f}", "1.00"],
            [f"stopped at snippet {stop_k}", first[0]["forwards"], f"{s_cpu:.1f}", f"{s_cpu / f_cpu:.2f}"],
            [f"rerun, resumed from {saved} saved", rerun[0]["forwards"], f"{r_cpu:.1f}",
             f"{r_cpu / f_cpu:.2f} (ideal {(snippets - saved) / snippets:.2f})"],
            ["rerun before issue 20 (from scratch)", full[0]["forwards"], f"{f_cpu:.1f}", "1.00"]]
    print(f"model {args.model} (random weights), batch 1, clip {args.clip} {args.seconds:g} s "
          f"({frames} frames, {snippets} snippets), {args.reps} round(s)\n")
    print(C.table(rows))
    print(f"\nwork saved by the resume: {f_cpu - r_cpu:.1f} of {f_cpu:.1f} CPU s "
          f"({100 * (f_cpu - r_cpu) / f_cpu:.0f}%); stopped + resumed = {(s_cpu + r_cpu) / f_cpu:.2f} "
          "x an uninterrupted run (before: 1 + the stopped share)")
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
