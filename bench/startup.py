"""Start-up time of each `vadfeat` command against a bare ``python -c pass`` (issue 21).

Every command runs in a fresh interpreter, as a user or a script runs it: ``--help`` of each
sub-command, ``--version``, and real runs of the commands that run no model on tiny inputs
written here (two feature files of ``[T, 2, 6]`` with sidecars, a UCF-Crime annotation file).
Each figure is the median over ``--rounds`` rounds; within a round the variants and the bare
interpreter alternate, and the order flips every round, so that a neighbour's load falls on
all of them alike.  Two numbers per run:

- **CPU**: user + system seconds of the child (``resource.getrusage(RUSAGE_CHILDREN)`` deltas),
  which other tenants of a shared machine disturb little;
- **wall**: seconds from start to exit (``time.perf_counter``).

``--before SRC`` adds a second source tree measured side by side, e.g. the code before a change::

    git worktree add /tmp/before $(git merge-base main HEAD)
    python bench/startup.py --before /tmp/before/src --rounds 7

Both trees run with the same interpreter (``PYTHONPATH=SRC``), so the same torch, numpy and
PyAV.  Usage: ``python bench/startup.py [--before SRC] [--after SRC] [--rounds N] [--only=ROW,ROW,...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import _cpu_model, load, median, table

REPO_SRC = Path(__file__).resolve().parents[1] / "src"

HELP_COMMANDS = ("extract", "demo", "frames", "models", "checkpoint", "compress", "labels", "align",
                 "lists", "export", "resample", "inspect", "compare")


def write_inputs(root: Path) -> None:
    """Tiny real inputs: two 2-crop extractions (mine, theirs) and UCF-Crime annotations."""
    videos = {"Abuse001_x264": (4, 70), "Normal_Videos_001_x264": (3, 50)}  # rows, frames
    for folder, seed in (("feat", 0), ("theirs", 1)):
        (root / folder).mkdir(parents=True)
        for name, (rows, frames) in videos.items():
            arr = np.random.default_rng(rows + seed).standard_normal((rows, 2, 6)).astype(np.float32)
            np.save(root / folder / f"{name}.npy", arr)
            side = {"video": f"{name}.mp4", "num_frames": frames, "fps": 30.0, "shape": [rows, 2, 6],
                    "snippets": [[16 * i, 16 * i + 15] for i in range(rows)], "crop_order": ["c", "tl"]}
            (root / folder / f"{name}.json").write_text(json.dumps(side))
    (root / "ann.txt").write_text("Abuse001_x264.mp4  Abuse  20  40  -1  -1\n"
                                  "Normal_Videos_001_x264.mp4  Normal  -1  -1  -1  -1\n")


def real_runs(root: Path, out: Path) -> dict[str, list[str]]:
    """The commands run on the tiny inputs; ``out`` is a fresh folder for this one run."""
    feat, gt = str(root / "feat"), str(root / "gt")
    return {
        "models": ["models"],
        "labels": ["labels", str(root / "ann.txt"), "--format", "ucf", "--features", feat,
                   "-o", str(out)],
        "lists": ["lists", feat, "--format", "rtfm", "--labels", gt, "-o", str(out)],
        "align": ["align", feat, "--labels", gt, "-o", str(out)],
        "export": ["export", feat, "--format", "ur-dmu", "-o", str(out)],
        "resample": ["resample", feat, "-o", str(out), "--segments", "4"],
        "inspect": ["inspect", feat, "--labels", gt, "-o", str(out)],
        "compare": ["compare", feat, str(root / "theirs"), "-o", str(out), "--no-plots"],
    }


def run_once(argv: list[str], src: Path | None, cwd: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child; ``src`` None: the bare ``python -c pass``."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if src is None:
        cmd = [sys.executable, "-c", "pass"]
    else:
        env["PYTHONPATH"] = str(src)
        cmd = [sys.executable, "-m", "vadfeat", *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} (PYTHONPATH={src}) exited {proc.returncode}:\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, help="a second src/ folder measured side by side")
    ap.add_argument("--after", type=Path, default=REPO_SRC, help="src/ folder (default: this checkout's)")
    ap.add_argument("--rounds", type=int, default=7, help="runs of each command per variant (median)")
    ap.add_argument("--only", type=lambda v: [r.strip() for r in v.split(",") if r.strip()],
                    metavar="ROW,ROW,...", help="only these rows, e.g. --only='--version,lists --help,lists'")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    args = ap.parse_args(argv)

    variants: dict[str, Path] = {"after": args.after.resolve()}
    if args.before is not None:
        variants = {"before": args.before.resolve(), **variants}
    print("# Start-up time of each command against python -c pass")
    print(f"command : {' '.join([Path(sys.executable).name, *sys.argv])}")
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine : {_cpu_model()}, {os.cpu_count()} cores, {mem_gb:.0f} GiB")
    print(f"python  : {platform.python_version()} ({sys.executable})")
    for name, src in variants.items():
        print(f"{name:8s}: PYTHONPATH={src}")
    print(f"load    : {load()} (1/5/15 min load average at start)")
    print(f"date    : {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")

    work = Path(tempfile.mkdtemp(prefix="vadfeat-startup-"))
    try:
        write_inputs(work)
        # The ground truth that lists/align/inspect read, written once by the code under test.
        run_once(real_runs(work, work / "gt")["labels"], variants["after"], work)
        rows: dict[str, list[str] | None] = {"python -c pass": None, "--version": ["--version"],
                                             "--help": ["--help"]}
        rows.update({f"{c} --help": [c, "--help"] for c in HELP_COMMANDS})
        rows.update({f"{c} (run)": [c] for c in real_runs(work, work)})
        if args.only:
            keep = set(args.only) | {"python -c pass"}
            rows = {k: v for k, v in rows.items() if k in keep or k.removesuffix(" (run)") in keep}
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        n = 0
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for row, argv_ in rows.items():
                for variant in (["bare"] if argv_ is None else order):
                    if argv_ is not None and row.endswith("(run)"):
                        n += 1  # a fresh output folder each run: a real run, not a resume
                        argv_ = real_runs(work, work / "out" / f"{n}")[argv_[0]]
                    src = None if argv_ is None else variants[variant]
                    times.setdefault((row, variant), []).append(run_once(argv_ or [], src, work))
                    shutil.rmtree(work / "out", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    bare_cpu = median([c for c, _ in times[("python -c pass", "bare")]])
    bare_wall = median([w for _, w in times[("python -c pass", "bare")]])
    head = ["command"]
    for v in variants:
        head += [f"{v} CPU s", f"{v} wall s"]
    if "before" in variants:
        head += ["CPU before/after", "wall before/after"]
    out = [head, ["python -c pass"] + [f"{bare_cpu:.3f}", f"{bare_wall:.3f}"] * len(variants)
           + (["", ""] if "before" in variants else [])]
    for row in rows:
        if row == "python -c pass":
            continue
        cells = [f"`vadfeat {row}`"]
        med = {}
        for v in variants:
            ms = times[(row, v)]
            med[v] = (median([c for c, _ in ms]), median([w for _, w in ms]))
            cells += [f"{med[v][0]:.3f}", f"{med[v][1]:.3f}"]
        if "before" in variants:
            (bc, bw), (ac, aw) = med["before"], med["after"]
            cells += [f"{bc / ac:.1f}x", f"{bw / aw:.1f}x"]
        out.append(cells)
    print(table(out))
    print(f"\nmedians of {args.rounds} rounds; python -c pass: CPU {bare_cpu:.3f} s, wall {bare_wall:.3f} s")
    print(f"load at end: {load()}")
    if args.json:
        args.json.write_text(json.dumps({f"{r} | {v}": t for (r, v), t in times.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
