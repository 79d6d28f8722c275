"""What ``compare --recipes`` costs against extracting every candidate in full (issue 22).

THEIRS is one full extraction of ``--videos`` copies of a real clip (``--seconds`` long)
under ``--preset``, published without sidecars.  Then, interleaved over ``--reps`` rounds:
``compare_recipes`` with its default sample (3 videos x 8 snippets) over every preset
that fits the model, and the alternative it replaces, a full extraction of every video
under each of those presets.  Both load the model once per preset.  Printed: seconds,
CPU seconds (this process, all threads) and the ratio; and the ranking's answer.

    python bench/compare_recipes.py                  # tiny model, 360p, 3 videos of 60 s
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import _common as C


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="videomae_v2/vit_tiny_patch16_224")
    ap.add_argument("--preset", default="videomae-tad")
    ap.add_argument("--clip", default="bbb_360p", choices=list(C.CLIPS))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    args = ap.parse_args()

    from vadfeat.dataset.recipes import candidate_presets, compare_recipes
    from vadfeat.engines.local import extract

    C.header("compare --recipes against full extractions of every candidate")
    work = args.work / "compare_recipes"
    shutil.rmtree(work, ignore_errors=True)
    (work / "videos").mkdir(parents=True)
    clip = C.bench_videos(args.work, [args.clip], args.seconds)[0]
    for i in range(args.videos):
        shutil.copy(clip, work / "videos" / f"v{i}.mp4")
    common = dict(model=args.model, random_weights=True, progress=False, dtype="fp32", device="cpu")
    extract([work / "videos"], work / "made", preset=args.preset, **common)  # type: ignore[arg-type]
    (work / "theirs").mkdir()
    for f in (work / "made").glob("*.npy"):
        shutil.copy(f, work / "theirs" / f.name)
    presets = candidate_presets(model=args.model)
    frames = C.video_frames(clip)
    print(f"{args.videos} videos of {frames} frames ({args.clip}), THEIRS made with {args.preset}; "
          f"candidates: {', '.join(presets)}\n")
    times: dict[str, list[tuple[float, float]]] = {"compare --recipes": [], "full extraction x presets": []}
    answer = ""
    for rep in range(args.reps):
        c0, t0 = time.process_time(), time.perf_counter()
        r = compare_recipes(work / "theirs", work / "videos", model=args.model, random_weights=True,
                            device="cpu", plots=0)
        times["compare --recipes"].append((time.perf_counter() - t0, time.process_time() - c0))
        answer = r.summary
        c0, t0 = time.process_time(), time.perf_counter()
        for p in presets:
            out = work / f"full-{rep}-{p}"
            extract([work / "videos"], out, preset=p, **common)  # type: ignore[arg-type]
            shutil.rmtree(out)
        times["full extraction x presets"].append((time.perf_counter() - t0, time.process_time() - c0))
    rows: list[list[object]] = [["run", "seconds (median)", "CPU seconds (median)"]]
    for name, ts in times.items():
        rows.append([name, f"{C.median([t for t, _ in ts]):.1f}", f"{C.median([c for _, c in ts]):.1f}"])
    print(C.table(rows))
    full = C.median([t for t, _ in times["full extraction x presets"]])
    part = C.median([t for t, _ in times["compare --recipes"]])
    print(f"\nratio compare --recipes / full extractions: {part / full:.3f} (wall)")
    print(f"answer: {answer}")
    C.footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
