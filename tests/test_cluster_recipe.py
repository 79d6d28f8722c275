"""docs/CLUSTER.md's recipes, run as written (a README instruction is tested like code).

The Slurm recipe: its ``extract.sbatch`` runs as three concurrent "array tasks" (bash
processes with ``SLURM_ARRAY_TASK_ID`` set) on one shared list and output folder, with
the ``/shared/...`` paths replaced by temporary ones and a tiny checkpoint; then its
``check.sbatch``.  Every video must be extracted exactly once across the tasks (the
per-video claims keep them apart), and the check must exit 0 having skipped everything.
The Ray recipes' ``vadfeat extract`` commands must parse with the real command line.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vadfeat.cli import build_parser
from vadfeat.store.manifest import read_manifest
from vadfeat.testing import synth

DOC = Path(__file__).resolve().parent.parent / "docs" / "CLUSTER.md"
TASKS = 3
VIDEOS = 8


def _block_after(marker: str, lang: str = "bash") -> str:
    """The first fenced ``lang`` block after the first line of the doc holding ``marker``."""
    text = DOC.read_text(encoding="utf-8")
    assert marker in text, marker
    block = re.search(rf"```{lang}\n(.*?)```", text.split(marker, 1)[1], re.S)
    assert block is not None, marker
    return block.group(1)


def _substituted(script: str, paths: dict[str, Path]) -> str:
    for shared, local in sorted(paths.items(), key=lambda kv: -len(kv[0])):  # longest first
        script = script.replace(shared, str(local))
    assert "/shared/" not in script, script  # every path of the recipe was replaced
    return script


def _vadfeat_on_path(tmp: Path) -> dict[str, str]:
    """An environment whose ``vadfeat`` is this interpreter's ``python -m vadfeat``."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "vadfeat"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m vadfeat "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    src = str(Path(__file__).resolve().parent.parent / "src")
    pythonpath = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": pythonpath, "SLURM_ARRAY_JOB_ID": "4242", "OMP_NUM_THREADS": "1"}


def test_the_slurm_recipe_extracts_every_video_once(tmp_path: Path, tiny_checkpoint: Path) -> None:
    videos, lists, out = tmp_path / "videos", tmp_path / "lists", tmp_path / "features"
    for k in range(VIDEOS):  # 16 to 23 frames: one snippet each
        synth.write_video(videos / ("Train" if k % 2 else "Test") / f"v{k}.mp4",
                          synth.scene_frames(16 + k, width=48, height=32, seed=k), fps=25)
    lists.mkdir()
    # step 1 of the recipe, run as written from the videos' folder
    listing = _substituted(_block_after("**1. The work list**"), {
        "/shared/videos": videos, "/shared/lists": lists, "/shared/logs": tmp_path / "logs"})
    subprocess.run(["bash", "-e", "-c", listing], check=True)
    assert len((lists / "all.txt").read_text().split()) == VIDEOS
    paths = {"/shared/videos": videos, "/shared/lists": lists, "/shared/features": out,
             "/shared/models/vit_g_k710.pth": tiny_checkpoint, "/shared/logs": tmp_path / "logs"}
    extract = _substituted(_block_after("`extract.sbatch`"), paths)
    check = _substituted(_block_after("`check.sbatch`"), paths)
    assert re.search(r"^vadfeat extract ", extract, re.M) and "--wait" in check
    env = _vadfeat_on_path(tmp_path)

    tasks = [subprocess.Popen(["bash", "-c", extract], env={**env, "SLURM_ARRAY_TASK_ID": str(k)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k in range(TASKS)]
    logs = [t.communicate(timeout=600)[0] for t in tasks]
    for t, log in zip(tasks, logs, strict=True):
        assert t.returncode == 0, log  # exit 3 (held by another task) is turned into 0

    entries = read_manifest(out)
    runs = {e["run"] for e in entries}
    assert len(runs) == TASKS  # one run per array task, all in one manifest
    ok = [e["video"] for e in entries if e["status"] == "ok"]
    assert sorted(ok) == sorted({*ok}) and len(ok) == VIDEOS  # every video once, none twice
    assert all(e["status"] in ("ok", "skipped", "elsewhere") for e in entries), entries
    assert len(list(out.rglob("*.npy"))) == VIDEOS

    done = subprocess.run(["bash", "-c", check], env={**env, "SLURM_JOB_ID": "4243"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    final = [e for e in read_manifest(out) if e["run"] not in runs]
    assert len(final) == VIDEOS and all(e["status"] == "skipped" for e in final), final


def _recipe_commands() -> dict[str, list[str]]:
    """The ``vadfeat extract`` command of the Ray recipe (after ``ray job submit ... --``)
    and of the object-storage recipe, split as a shell would."""
    text = DOC.read_text(encoding="utf-8")
    ray_lines = [ln for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                 for ln in block.splitlines() if ln.startswith("ray job submit ")]
    assert len(ray_lines) == 1, ray_lines
    store = [ln for ln in _block_after("## Object storage").splitlines() if ln.startswith("vadfeat extract ")]
    assert len(store) == 1, store
    return {"ray": shlex.split(ray_lines[0].split(" -- ", 1)[1]), "object-storage": shlex.split(store[0])}


def _extract_help() -> str:
    done = subprocess.run([sys.executable, "-m", "vadfeat", "extract", "--help"], capture_output=True,
                          text=True, check=True, env={**os.environ, "COLUMNS": "200"})
    return done.stdout


@pytest.mark.parametrize("which", ["ray", "object-storage"])
def test_the_recipes_commands_parse_with_the_real_cli(which: str) -> None:
    argv = _recipe_commands()[which]
    assert argv[:2] == ["vadfeat", "extract"]
    flags = [a.split("=", 1)[0] for a in argv if a.startswith("--")]
    usage = _extract_help()
    if which == "object-storage" and "--sink" not in usage:
        pytest.skip("this tree's `vadfeat extract` has no --sink yet (the sharded sinks' run options)")
    missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", usage)]
    assert not missing, f"`vadfeat extract --help` has no {missing}"
    args = build_parser().parse_args(argv[1:])  # argparse exits (code 2) on anything it refuses
    assert args.inputs == ["/shared/lists/all.txt"] and args.root == "/shared/videos"
    if which == "ray":
        assert args.engine == "ray" and args.ray_address == "auto"
    else:
        assert args.output.startswith("s3://") and args.sink == "webdataset" and args.engine == "local"
