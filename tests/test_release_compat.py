"""Outputs written by the 0.1.0 release (before the backbone redesign) still resume.

``tests/data/release_0_1_0`` was made by commit 818b60f (the last release before the
package moved to io/ pipeline/ backbones/ engines/ store/ dataset/), with::

    vadfeat extract videos -o out-<layout> --layout <layout> --model vit_tiny_patch16_224 \\
        --random-weights --crops <1|3|1> --preset <videomae-v2|videomae-v2|fed-wsvad>

for the layouts flat, per-crop (3 crops) and fed-wsvad.  A rerun with the same options must
find every video done (no model is loaded, no file is rewritten), and the reader must read
the files.  The source path in those sidecars is the old machine's; the identity check uses
the source's size and sampled hash, so a copied dataset is recognised.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from vadfeat import read_features
from vadfeat.cli import main

DATA = Path(__file__).parent / "data" / "release_0_1_0"

CASES = {
    "flat": ["--crops", "1", "--preset", "videomae-v2"],
    "per-crop": ["--crops", "3", "--preset", "videomae-v2"],
    "fed-wsvad": ["--crops", "1", "--preset", "fed-wsvad"],
}


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.jsonl" and not p.name.endswith(".lock")
    }


@pytest.mark.parametrize("layout", sorted(CASES))
def test_release_outputs_resume(tmp_path: Path, layout: str, caplog: pytest.LogCaptureFixture) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(DATA / "videos", videos)
    out = tmp_path / "out"
    shutil.copytree(DATA / f"out-{layout}", out)
    before = _digests(out)
    code = main([
        "extract", str(videos), "-o", str(out), "--layout", layout,
        "--model", "vit_tiny_patch16_224", "--random-weights", *CASES[layout],
    ])
    assert code == 0
    assert _digests(out) == before  # nothing rewritten
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert lines[-1]["video"] == "clip.mp4"
    assert lines[-1]["status"] == "skipped"  # done by the old release, not redone


def test_release_outputs_read(tmp_path: Path) -> None:
    fs = read_features(DATA / "out-flat")
    rec = fs.by_name()["clip"]
    assert rec.shape == (2, 64)  # 40 frames, 16-frame snippets, tail drop: floor(40/16) rows of width 64
    assert rec.snippets == ((0, 15), (16, 31))
