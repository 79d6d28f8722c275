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


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_shard_commands_and_reading_code_work_as_written(tmp_path: Path, monkeypatch) -> None:
    """The "Sharded outputs" section: its commands (the checkpoint swapped for a tiny random
    model) and its Python reading code, run in a folder of two videos."""
    section = _section("Sharded outputs and object storage")
    bash, python = re.findall(r"```(?:bash|python)\n(.*?)```", section, re.S)
    lines = [ln.split("  #")[0].strip() for ln in bash.splitlines() if ln.startswith("vadfeat ")]
    assert len(lines) == 4
    for i, frames in enumerate((40, 56)):
        synth.write_video(tmp_path / "videos" / f"cam{i}.mp4",
                          synth.scene_frames(frames, width=96, height=64, seed=i))
    monkeypatch.chdir(tmp_path)
    tiny = ["--model", "videomae_v2/vit_tiny_patch16_224", "--random-weights"]
    for line in lines:
        argv = shlex.split(line)[1:]
        if "-c" in argv:
            at = argv.index("-c")
            argv[at:at + 2] = [*tiny, "-q"]
        assert main(argv) == 0, line
    assert len(list((tmp_path / "feats-wds").glob("shard-*.tar"))) == 1
    npy = {p.stem: np.load(p) for p in (tmp_path / "feats-npy").glob("*.npy")}
    assert sorted(npy) == ["cam0", "cam1"] and npy["cam1"].shape[0] == 3  # 56 frames: 3 snippets
    scope: dict[str, object] = {}
    exec(compile(python, "README.md", "exec"), scope)  # the README's own code
    # the loop's last sample is a video's [T, D] features and its sidecar, as the export wrote
    sidecar = scope["sidecar"]
    assert isinstance(sidecar, dict)
    assert np.array_equal(scope["features"], npy[sidecar["stem"]])
    table, frame = scope["table"], scope["frame"]
    assert sorted(table["stem"].to_list()) == ["cam0", "cam1"]  # type: ignore[attr-defined]
    assert sorted(frame["stem"]) == ["cam0", "cam1"]  # type: ignore[index]
