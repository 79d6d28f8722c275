"""vadfeat vs the legacy Fed_WSVAD route (SPEC §1), same videos, model and weights.

The legacy route, re-implemented here step by step as SPEC §1 describes it:

1. decode every video with OpenCV and write every frame as ``img_00001.jpg`` ...
   (converted BGR->RGB before ``cv2.imwrite``, so the files hold swapped channels);
2. create the ``features_video/i3d/combine/<video>/feature.npy`` placeholders;
3. read the JPEGs back, swap the channels again (the model gets BGR), enlarge
   frames whose short side is < 226, scale to [-1, 1], resize to 224x224 with
   OpenCV, 16-frame snippets (tail dropped), batch 2, fp32, one
   ``<first>_<last>.npy`` per snippet, then stack the snippet files in
   directory-listing order into ``feature.npy``.

Deviations, both in the legacy route's favour or neutral: it accepts .mp4 (the
original globbed ``*.avi`` only), and its model is vadfeat's own ``stats`` model
(SDPA attention) rather than the official eager attention, so the comparison
measures the pipeline, not the attention kernel.

The vadfeat route is ``vadfeat extract VIDEOS --preset fed-wsvad --layout fed-wsvad``.
The two routes run alternately over ``--rounds`` rounds, and which one goes first
alternates too (a neighbour's load and the page cache favour one order): the table
gives medians over the rounds, and the notes give the speed-up per order.
Each route runs in its own child process; peak RSS is its VmHWM,
disk from the bytes left on disk (intermediate vs final) and the bytes the
process wrote (``/proc/self/io`` wchar).

    python bench/legacy_route.py                      # tiny model (4 clips) + ViT-S (2 clips)
    python bench/legacy_route.py --models vit_tiny_patch16_224 --seconds 20 --rounds 4
    python bench/legacy_route.py --models vit_tiny_patch16_224 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import _common as C

TINY = "vit_tiny_patch16_224"
SMALL = "vit_small_patch16_224"


# --------------------------------------------------------------------------- the legacy route


def legacy_child(videos: list[Path], checkpoint: Path, out: Path) -> None:
    import cv2
    import numpy as np
    import torch

    from vadfeat.backbones.loading import load_model

    t0 = time.perf_counter()
    frames_root = out / "frames"
    feat_root = out / "features_video" / "i3d" / "combine"
    # Step 1: every frame to JPEG.
    for video in videos:
        folder = frames_root / video.stem
        folder.mkdir(parents=True, exist_ok=True)
        cap = cv2.VideoCapture(str(video))
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            cv2.imwrite(str(folder / f"img_{n:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        cap.release()
    t1 = time.perf_counter()
    # Step 2: placeholders from a list of names.
    names = out / "videos.txt"
    names.write_text("".join(f"{v.stem}\n" for v in videos))
    for name in names.read_text().split():
        (feat_root / name).mkdir(parents=True, exist_ok=True)
        (feat_root / name / "feature.npy").touch()
    # Step 3: features, batch 2, one file per snippet, then stacking.
    model = load_model(checkpoint, pooling="stats")

    def load_frame(path: Path) -> np.ndarray:
        img = cv2.imread(str(path))[:, :, ::-1]  # the loader's swap: the model gets BGR
        short = min(img.shape[:2])
        if short < 226:
            img = cv2.resize(img, (0, 0), fx=226 / short, fy=226 / short)
        img = img / 255.0 * 2 - 1
        return cv2.resize(img, (224, 224)).astype(np.float32)

    def run(batch: list[tuple[int, list[Path]]], folder: Path) -> None:
        clips = np.stack([np.stack([load_frame(f) for f in files]) for _, files in batch])
        x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3)  # [B, T, H, W, C] -> [B, C, T, H, W]
        with torch.inference_mode():
            feats = model(x).numpy()
        for (first, _), feat in zip(batch, feats, strict=True):
            np.save(folder / f"{first:05d}_{first + 15:05d}.npy", feat)

    for name in names.read_text().split():
        files = sorted((frames_root / name).glob("img_*.jpg"))
        folder = feat_root / name
        batch: list[tuple[int, list[Path]]] = []
        for start in range(0, len(files) - 15, 16):
            batch.append((start + 1, files[start:start + 16]))
            if len(batch) == 2:
                run(batch, folder)
                batch = []
        if batch:
            run(batch, folder)
        parts = [p for p in os.listdir(folder) if p != "feature.npy"]  # listing order: the defect
        np.save(folder / "feature.npy", np.stack([np.load(folder / p) for p in parts]))
    t2 = time.perf_counter()
    C.child_report(jpeg_s=t1 - t0, features_s=t2 - t1)


def vadfeat_child(videos: list[Path], checkpoint: Path, out: Path, batch: int, workers: int) -> None:
    from vadfeat.cli import main

    rc = main(["extract", *map(str, videos), "-o", str(out), "--checkpoint", str(checkpoint),
               "--preset", "fed-wsvad", "--layout", "fed-wsvad", "--batch-size", str(batch),
               "--workers", str(workers), "--device", "cpu", "-q"])
    if rc != 0:
        raise SystemExit(rc)
    C.child_report()


# --------------------------------------------------------------------------- driver


def measure(route: str, videos: list[Path], checkpoint: Path, work: Path, args: argparse.Namespace
            ) -> dict:
    out = work / f"out-{route}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    child = [__file__, "--child", route, "--checkpoint", str(checkpoint), "--out", str(out),
             "--batch-size", str(args.batch_size), "--workers", str(args.workers),
             *map(str, videos)]
    rep = C.run_child(child)
    if route == "legacy":
        final = [p for p in out.rglob("feature.npy")]
        final_bytes = sum(p.stat().st_size for p in final)
    else:
        final = [*out.rglob("*.npy"), *out.rglob("*.json"), *out.rglob("manifest.jsonl")]
        final_bytes = sum(p.stat().st_size for p in final)
    rep["final_bytes"] = final_bytes
    rep["intermediate_bytes"] = C.dir_bytes(out) - final_bytes
    rep["shapes"] = sorted(
        (p.parent.name, tuple(__import__("numpy").load(p, mmap_mode="r").shape))
        for p in out.rglob("feature.npy"))
    shutil.rmtree(out, ignore_errors=True)
    return rep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=[TINY, SMALL])
    ap.add_argument("--clips", nargs="+", default=list(C.CLIPS), choices=list(C.CLIPS),
                    help="clips for the tiny model (default: all four)")
    ap.add_argument("--vit-s-clips", nargs="+", default=["bbb_360p", "bbb_720p"], choices=list(C.CLIPS),
                    help="clips for ViT-S and larger (model-bound: fewer keep the run short)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each clip (60)")
    ap.add_argument("--batch-size", type=int, default=8, help="vadfeat batch size (8)")
    ap.add_argument("--workers", type=int, default=1, help="vadfeat decode threads (1)")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    ap.add_argument("--order", choices=("legacy-first", "vadfeat-first"), default="legacy-first",
                    help="which route runs first in the first round (the order alternates after)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per model (3)")
    ap.add_argument("--child", choices=("legacy", "vadfeat"), help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("videos", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "legacy":
        legacy_child(args.videos, args.checkpoint, args.out)
        return 0
    if args.child == "vadfeat":
        vadfeat_child(args.videos, args.checkpoint, args.out, args.batch_size, args.workers)
        return 0

    C.header("vadfeat extract --preset fed-wsvad vs the legacy JPEG route (SPEC §1)")
    work = args.work
    rows = [["model", "clips", "frames", "route", "wall s", "frames/s", "speed-up", "CPU s",
             "speed-up (CPU time)", "intermediate disk MB", "final disk MB", "written MB (wchar)",
             "peak RSS MB"]]
    notes = []
    for model in args.models:
        names = args.clips if model == TINY else args.vit_s_clips
        videos = C.bench_videos(work, names, args.seconds)
        frames = sum(C.video_frames(v) for v in videos)
        ckpt = C.random_checkpoint(work, model)
        first = ("legacy", "vadfeat") if args.order == "legacy-first" else ("vadfeat", "legacy")
        runs: dict[str, list[dict]] = {"legacy": [], "vadfeat": []}
        per_order: dict[str, list[float]] = {"legacy-first": [], "vadfeat-first": []}
        for rnd in range(args.rounds):
            routes = first if rnd % 2 == 0 else first[::-1]
            got = {}
            for route in routes:
                got[route] = measure(route, videos, ckpt, work, args)
                print(f"  {model} round {rnd + 1} {route}: {got[route]['wall_s']:.1f} s", file=sys.stderr)
                runs[route].append(got[route])
            per_order[f"{routes[0]}-first"].append(got["legacy"]["wall_s"] / got["vadfeat"]["wall_s"])
        # Medians over the rounds; disk, memory and shapes do not depend on the round.
        results = {route: {**rs[0], **{k: C.median([r[k] for r in rs])
                                       for k in ("wall_s", "cpu_s", "jpeg_s", "features_s") if k in rs[0]}}
                   for route, rs in runs.items()}
        if results["legacy"]["shapes"] != results["vadfeat"]["shapes"]:
            notes.append(f"{model}: feature shapes differ: {results['legacy']['shapes']} vs "
                         f"{results['vadfeat']['shapes']}")
        base = frames / results["legacy"]["wall_s"]
        for route in ("legacy", "vadfeat"):
            r = results[route]
            fps = frames / r["wall_s"]
            rows.append([model, ",".join(names), frames, route, f"{r['wall_s']:.1f}", f"{fps:.0f}",
                         f"{fps / base:.2f}x", f"{r['cpu_s']:.0f}",
                         f"{results['legacy']['cpu_s'] / r['cpu_s']:.2f}x",
                         f"{r['intermediate_bytes'] / 1e6:.1f}",
                         f"{r['final_bytes'] / 1e6:.2f}", f"{(r['wchar'] or 0) / 1e6:.1f}",
                         f"{r['peak_rss_mb']:.0f}"])
        for order, ratios in per_order.items():
            if ratios:
                notes.append(f"{model}: speed-up (wall) with {order}: median {C.median(ratios):.2f}x over "
                             f"{len(ratios)} round(s): {', '.join(f'{x:.2f}' for x in ratios)}")
        leg = results["legacy"]
        notes.append(f"{model}: legacy phases: JPEG write {leg['jpeg_s']:.1f} s, read back + "
                     f"preprocess + model + files {leg['features_s']:.1f} s")
    video_mb = sum(p.stat().st_size for p in (work / "videos").glob("*.mp4")) / 1e6
    print(f"medians over {args.rounds} alternating rounds")
    print(C.table(rows))
    print()
    for note in notes:
        print(f"- {note}")
    print(f"- videos: {video_mb:.1f} MB of H.264 in {work / 'videos'} (all cached clips); vadfeat "
          f"batch {args.batch_size}, workers {args.workers}; legacy batch 2")
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
