"""Pipeline efficiency: ``vadfeat.engines.local`` end to end vs the bare model forward.

Both sides use one loaded model (ViT-S, random weights), the same batch size,
dtype and number of snippets; the bare side runs ``model(x)`` on tensors made
before the clock starts, the end-to-end side decodes, preprocesses, batches,
runs the model and writes the outputs.  Efficiency = bare time / end-to-end
time (1.0 = the pipeline adds nothing).  The two are interleaved ``--rounds``
times so that a neighbour's load hits both alike; the median ratio is reported.

    python bench/pipeline_efficiency.py                       # ViT-S, 20 s 360p clip, batch 8
    python bench/pipeline_efficiency.py --clip bbb_720p --workers 2
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

import _common as C
from vadfeat.backbones.loading import parse_dtype
from vadfeat.engines.local import FeatureExtractor, extract


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_small_patch16_224")
    ap.add_argument("--clip", default="bbb_360p", choices=list(C.CLIPS))
    ap.add_argument("--seconds", type=float, default=20.0, help="clip length (20 s = 31 snippets)")
    ap.add_argument("--preset", default="videomae-v2")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    args = ap.parse_args()

    C.header("pipeline efficiency: vadfeat.engines.local end to end vs bare model forward")
    video = C.bench_videos(args.work, [args.clip], args.seconds)[0]
    ckpt = C.random_checkpoint(args.work, args.model)
    ext = FeatureExtractor(ckpt, preset=args.preset, device="cpu", dtype=args.dtype,
                           batch_size=args.batch_size)
    snippets = C.video_frames(video) // ext.preset.clip_len
    size = ext.preset.size
    x = torch.randn(args.batch_size, 3, ext.preset.clip_len, size, size,
                    generator=torch.Generator().manual_seed(0))
    sizes = [args.batch_size] * (snippets // args.batch_size)
    if snippets % args.batch_size:
        sizes.append(snippets % args.batch_size)
    out = args.work / "out-efficiency"
    autocast = parse_dtype(args.dtype) if args.dtype != "fp32" else None

    def bare() -> tuple[float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        with torch.inference_mode():
            for n in sizes:
                if autocast is not None:
                    with torch.autocast("cpu", dtype=autocast):
                        ext.model(x[:n])
                else:
                    ext.model(x[:n])
        return time.perf_counter() - t0, time.process_time() - c0

    def end_to_end() -> tuple[float, float]:
        shutil.rmtree(out, ignore_errors=True)
        c0, t0 = time.process_time(), time.perf_counter()
        summary = extract([video], out, extractor=ext, workers=args.workers, progress=False)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        assert summary.ok == 1 and summary.snippets == snippets, summary.describe()
        return dt, dc

    bare()  # warm-up: first-call allocations and oneDNN primitive creation
    rows = [["round", "bare forward s", "end to end s", "efficiency (wall)",
             "bare CPU s", "end to end CPU s", "CPU-time ratio", "load (1 min)"]]
    ratios, cpu_ratios = [], []
    for r in range(args.rounds):
        # Alternate which side goes first so a load change penalises neither.
        if r % 2:
            (te, ce), (tb, cb) = end_to_end(), bare()
        else:
            (tb, cb), (te, ce) = bare(), end_to_end()
        ratios.append(tb / te)
        cpu_ratios.append(cb / ce)
        rows.append([r + 1, f"{tb:.2f}", f"{te:.2f}", f"{tb / te:.3f}", f"{cb:.1f}", f"{ce:.1f}",
                     f"{cb / ce:.3f}", C.load().split()[0]])
    shutil.rmtree(out, ignore_errors=True)
    print(f"model {args.model} (random weights), preset {args.preset}, {args.dtype}, batch "
          f"{args.batch_size}, workers {args.workers}; {video.name}: {snippets} snippets "
          f"({snippets * ext.preset.clip_len} frames)\n")
    print(C.table(rows))
    print(f"\nefficiency (median of {args.rounds}, wall time): {C.median(ratios):.3f}   target >= 0.90")
    print(f"CPU-time ratio (median): {C.median(cpu_ratios):.3f}  (process CPU seconds, bare / end to "
          "end: the share of all CPU work that is the model; less sensitive to neighbours' load)")
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
