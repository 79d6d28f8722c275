"""The README's dry run, run as written (issue 21: a README instruction is tested like code)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np

from vadfeat.cli import main
from vadfeat.testing import synth

README = Path(__file__).resolve().parent.parent / "README.md"


def dry_run_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### A dry run first, without weights", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [ln for ln in block.group(1).splitlines() if ln.startswith("vadfeat ")]


def test_the_readme_dry_run_works_as_written(tmp_path: Path, monkeypatch) -> None:
    lines = dry_run_lines()
    assert len(lines) == 3 and all("--random-weights" in ln for ln in lines)
    synth.write_video(tmp_path / "videos" / "cam1.mp4", synth.scene_frames(40, width=96, height=64))
    monkeypatch.chdir(tmp_path)
    for line in lines:
        argv = shlex.split(line)[1:]
        assert main([*argv, "-q"]) == 0, line
        out = tmp_path / argv[argv.index("-o") + 1]
        meta = json.loads((out / "cam1.json").read_text(encoding="utf-8"))
        features = np.load(out / "cam1.npy")
        assert meta["shape"] == list(features.shape) and features.shape[0] == 2  # 40 frames: 2 snippets
        assert '"random_weights": true' in json.dumps(meta)  # the sidecar says so
    assert np.load(tmp_path / "dry-clip" / "cam1.npy").shape[1] == 10
    # I3D's dry-run size: 10 crops at the preset's 224 px, the ResNet-50 layers 1/16 as wide.
    assert np.load(tmp_path / "dry-i3d" / "cam1.npy").shape == (2, 10, 2048 // 16)
