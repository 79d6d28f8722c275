"""bench/gpu_check.py (issue 15): the FLOP formula and a clear refusal without CUDA."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent / "src"), str(BENCH)]),
           "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_flops_per_clip_match_the_formula_by_hand() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(BENCH))
    # ViT-B/16 on 16x224x224: N = 8*14*14 = 1568 tokens, D = 768, M = 3072, L = 12:
    # 12 * (8*1568*768^2 + 4*1568^2*768 + 4*1568*768*3072) = 356.99e9, patch embedding
    # 2*1568*1536*768 = 3.70e9: 360.7 GFLOP (the figure, = torch.utils.flop_counter).
    assert gpu_check.videomae_arch("vit_base_patch16_224").flops / 1e9 == pytest.approx(360.69, abs=0.01)
    # ViT-g/14: N = 8*16*16 = 2048, D = 1408, M = 6144, L = 40, patch 3*2*14^2 = 1176 values.
    g = 40 * (8 * 2048 * 1408**2 + 4 * 2048**2 * 1408 + 4 * 2048 * 1408 * 6144) + 2 * 2048 * 1176 * 1408
    assert gpu_check.videomae_arch("vit_giant_patch14_224").flops == g
    assert g / 1e9 == pytest.approx(5085.6, abs=0.1)


def test_table_needs_no_gpu() -> None:
    got = _run("--table")
    assert got.returncode == 0, got.stderr
    # 50 % of 989.4 TFLOP/s / 360.7 GFLOP = 1,372 clips/s = 21,945 frames/s (16 frames each)
    assert "| 360.7" in got.stdout and "21,945" in got.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_refuses_clearly_without_cuda() -> None:
    got = _run()
    assert got.returncode == 2
    assert "no CUDA device" in got.stderr and "--dry-run" in got.stderr
    assert "Traceback" not in got.stderr
