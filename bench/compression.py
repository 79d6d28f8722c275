"""Compression figures: size, CPU speed-up and feature fidelity at 0/10/50 % pruning.

Starts from a ViT-S checkpoint with random weights stored as fp16 safetensors
(the model zoo's dtype, so storage adds no error of its own), writes the
compressed checkpoints with ``vadfeat.backbones.videomae.compress.compress_checkpoint`` and loads
each with ``load_model`` exactly as ``vadfeat extract --checkpoint`` does.
Fidelity: cosine and max |diff| of the features against the uncompressed model
on the same real snippets, for the ``fc_norm`` feature ``[D]`` and the
Fed_WSVAD ``stats`` feature ``[3, D]``.  Speed: interleaved rounds, median.

Random weights are not trained weights: a trained model's weight distribution
(and so what 50 % pruning removes) differs; treat fidelity at 50 % as a lower
bound on how much can change, not as the accuracy real weights would keep.

    python bench/compression.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import _common as C
from vadfeat.backbones.loading import load_model
from vadfeat.backbones.videomae.compress import compress_checkpoint, deflate_size
from variants import real_clips


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_small_patch16_224")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    args = ap.parse_args()

    C.header("compression: L1 pruning + dynamic int8 (vadfeat compress)")
    src = C.random_checkpoint(args.work, args.model, dtype="fp16")
    video = C.bench_videos(args.work, ["bbb_360p"], 20.0)[0]
    x = real_clips(video, src, args.batch_size)
    folder = args.work / "compressed"
    configs = [("uncompressed (fp16 file)", None, 0.0, None)]
    for prune in (0.0, 0.1, 0.5):
        if prune:
            configs.append((f"prune {prune:.0%}", folder / f"p{prune:g}.safetensors", prune, None))
        configs.append((f"prune {prune:.0%} + int8", folder / f"p{prune:g}_int8.safetensors", prune, "int8"))

    models: dict[str, dict[str, torch.nn.Module]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for name, out, prune, quantize in configs:
        path = src
        if out is not None:
            path = compress_checkpoint(src, out, prune=prune, quantize=quantize).out
        sizes[name] = (path.stat().st_size, deflate_size(path))
        models[name] = {pool: load_model(path, pooling=pool) for pool in ("fc_norm", "stats")}

    feats: dict[str, dict[str, torch.Tensor]] = {}
    times: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for name, m in models.items():
            feats[name] = {pool: model(x) for pool, model in m.items()}
        for r in range(args.rounds):
            order = list(models) if r % 2 == 0 else list(reversed(models))
            for name in order:
                c0, t0 = time.process_time(), time.perf_counter()
                models[name]["fc_norm"](x)
                times[name].append((time.perf_counter() - t0) / len(x))
                cpu[name].append((time.process_time() - c0) / len(x))

    ref_name = configs[0][0]
    base = C.median(times[ref_name])
    cpu_base = C.median(cpu[ref_name])
    rows = [["checkpoint", "file MB", "deflated MB", "s per clip", "CPU speed-up",
             "speed-up (CPU time)",
             "fc_norm cosine (min)", "fc_norm max |diff|", "stats cosine (min)", "stats max |diff|"]]
    for name in models:
        cells = [name, f"{sizes[name][0] / 1e6:.1f}", f"{sizes[name][1] / 1e6:.1f}",
                 f"{C.median(times[name]):.3f}", f"{base / C.median(times[name]):.2f}x",
                 f"{cpu_base / C.median(cpu[name]):.2f}x"]
        for pool in ("fc_norm", "stats"):
            got, ref = feats[name][pool], feats[ref_name][pool]
            cos = torch.nn.functional.cosine_similarity(got.flatten(1), ref.flatten(1), dim=-1).min()
            cells += [f"{float(cos):.5f}", f"{float((got - ref).abs().max()):.3g}"]
        rows.append(cells)
    ref = feats[ref_name]
    print(f"model {args.model} (random weights), batch {args.batch_size}, {len(x)} real snippets of "
          f"{video.name}; feature magnitudes: fc_norm max {float(ref['fc_norm'].abs().max()):.2f}, "
          f"stats max {float(ref['stats'].abs().max()):.2f}\n")
    print(C.table(rows))
    print("\nfile MB: dense safetensors (pruned zeros take room until compressed: see deflated MB); "
          "int8 = Linear weights int8 + one fp32 scale each, the rest fp16")
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
