"""Compute variants on the CPU: fp32 vs bf16 autocast vs int8 vs torch.compile (ViT-S).

One model (random weights, seed 0), the same real snippets (a sample clip,
``videomae-v2`` preprocessing) for every variant; the variants run in
interleaved rounds and the median seconds per clip is reported, with the
speed-up over fp32 and the feature fidelity (cosine, max |diff|) against fp32.
When ``torchao`` is importable its int8 configs are measured as well (it is not
a vadfeat dependency; see ``vadfeat.backbones.videomae.compress`` for why).

    python bench/variants.py                       # ViT-S, batch 4, 3 rounds
    python bench/variants.py --model vit_base_patch16_224 --batch-size 2
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

import _common as C
from vadfeat.backbones.videomae.compress import quantize_int8
from vadfeat.engines.local import FeatureExtractor


def real_clips(video: Path, checkpoint: Path, n: int) -> torch.Tensor:
    ext = FeatureExtractor(checkpoint, device="cpu")
    clips = []
    for _, clip in ext.snippet_stream(video):
        clips.append(clip[0])
        if len(clips) == n:
            break
    return torch.stack(clips)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_small_patch16_224")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    args = ap.parse_args()

    C.header("CPU variants: fp32 / bf16 autocast / int8 dynamic / torch.compile")
    ckpt = C.random_checkpoint(args.work, args.model)
    video = C.bench_videos(args.work, ["bbb_360p"], 20.0)[0]
    x = real_clips(video, ckpt, args.batch_size)
    fp32 = FeatureExtractor(ckpt, device="cpu").model

    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"fp32": fp32}

    def bf16(t: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fp32(t)

    variants["bf16 autocast"] = bf16
    variants["int8 (vadfeat.backbones.videomae.compress)"] = quantize_int8(copy.deepcopy(fp32))
    compile_s = {}
    if not args.no_compile:
        compiled = torch.compile(fp32)
        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
        compile_s["torch.compile fp32"] = time.perf_counter() - t0
        variants["torch.compile fp32"] = compiled

        def compiled_bf16(t: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return compiled(t)

        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled_bf16(x)
        compile_s["torch.compile bf16"] = time.perf_counter() - t0
        variants["torch.compile bf16"] = compiled_bf16
    try:
        import torchao
        from torchao.quantization import (
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )
    except ImportError:
        torchao = None
    if torchao is not None:
        for name, config in (("int8 dyn act+weight", Int8DynamicActivationInt8WeightConfig()),
                             ("int8 weight-only", Int8WeightOnlyConfig())):
            m = copy.deepcopy(fp32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_(m, config)
            variants[f"torchao {torchao.__version__} {name}"] = m

    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for name, fn in variants.items():  # warm-up, and the outputs compared below
            outputs[name] = fn(x).float()
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                c0, t0 = time.process_time(), time.perf_counter()
                variants[name](x)
                times[name].append((time.perf_counter() - t0) / len(x))
                cpu[name].append((time.process_time() - c0) / len(x))
    ref = outputs["fp32"]
    base = C.median(times["fp32"])
    cpu_base = C.median(cpu["fp32"])
    rows = [["variant", "s per clip (median)", "speed-up vs fp32", "CPU s per clip",
             "speed-up (CPU time)", "cosine vs fp32 (min)", "max |diff| vs fp32", "one-off compile s"]]
    for name in variants:
        out = outputs[name]
        cos = torch.nn.functional.cosine_similarity(out, ref, dim=-1).min()
        med = C.median(times[name])
        rows.append([name, f"{med:.3f}", f"{base / med:.2f}x", f"{C.median(cpu[name]):.3f}",
                     f"{cpu_base / C.median(cpu[name]):.2f}x", f"{float(cos):.6f}",
                     f"{float((out - ref).abs().max()):.2e}",
                     f"{compile_s[name]:.0f}" if name in compile_s else ""])
    print(f"model {args.model} (random weights), fc_norm features [D] (values up to "
          f"{float(ref.abs().max()):.1f}), batch {args.batch_size}, {args.rounds} interleaved "
          f"rounds, real snippets of {video.name}\n")
    print(C.table(rows))
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
