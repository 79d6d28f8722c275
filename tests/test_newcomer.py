"""A newcomer's first hour, scripted (issue 21): the README from the top, as typed.

The path a WSVAD researcher takes on a fresh clone: the README's two commands, a dry run
with random weights, then the README's walk-through on their own videos and hand-written
annotations (UCF-Crime naming), lists for RTFM from a 1-crop and from a 10-crop
extraction (the 1-crop one stops with advice, and the advice is followed), export,
compare and inspect.  Every ``vadfeat`` line comes from README.md; the only edits are
the substitutions a user without the checkpoints makes (``--checkpoint FILE`` becomes a
tiny ``--model ... --random-weights``) and the user's own folder names.  A README edit
that breaks a step breaks this test.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from vadfeat.cli import main
from vadfeat.testing import synth

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

VIDEOMAE_TINY = ["--model", "videomae_v2/vit_tiny_patch16_224", "--random-weights"]
CLIP_TINY = ["--model", "clip/vit_tiny_16", "--random-weights"]

# The user's own videos, UCF-Crime names: (name, frames).  40 frames at 16 per snippet
# give 2 snippets (the tail of 8 is dropped, as the presets do).
VIDEOS = [("Abuse001_x264", 40), ("Abuse028_x264", 48), ("Normal_Videos_003_x264", 40),
          ("Normal_Videos_015_x264", 48)]
# Temporal_Anomaly_Annotation.txt, written by hand for the two test videos (1-based frames).
ANNOTATIONS = ("Abuse028_x264.mp4  Abuse  17  30  -1  -1\n"
               "Normal_Videos_015_x264.mp4  Normal  -1  -1  -1  -1\n")
TEST_SPLIT = "Abuse/Abuse028_x264.mp4\nNormal_Videos_015_x264.mp4\n"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def commands(block: str) -> list[list[str]]:
    """The ``vadfeat`` command lines of a README block, continuation lines joined."""
    joined = block.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("vadfeat "):
            out.append(shlex.split(line)[1:])
    return out


def substitute(argv: list[str], videos: Path) -> list[str]:
    """What a user without the checkpoints types instead: tiny models, their own folders."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--checkpoint":
            out += CLIP_TINY if "ViT-B-16" in argv[i + 1] else VIDEOMAE_TINY
            i += 2
            continue
        if a in ("UCF_Crime/videos", "SHTech/videos"):
            a = str(videos)
        out.append(a)
        i += 1
    return out


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    first = bash_blocks(readme())[0]
    lines = [ln.split("#", 1)[0].strip() for ln in first.strip().splitlines()]
    assert lines == ["./dev.sh demo", "./dev.sh test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./dev.sh test" in ci
    dev = (ROOT / "dev.sh").read_text(encoding="utf-8")
    # both commands set up first; demo runs the package's own demo command
    assert re.search(r"demo\) setup; exec .*vadfeat\" demo", dev)
    assert re.search(r"test\)\n\s+setup", dev)


@pytest.fixture()
def newcomer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the user's videos, annotations and test split."""
    videos = tmp_path / "my_videos"
    for name, frames in VIDEOS:
        synth.write_video(videos / f"{name}.mp4",
                          synth.scene_frames(frames, width=96, height=64, seed=len(name) + frames))
    (tmp_path / "Temporal_Anomaly_Annotation.txt").write_text(ANNOTATIONS, encoding="utf-8")
    (tmp_path / "Anomaly_Test.txt").write_text(TEST_SPLIT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(argv: list[str], expect: int = 0) -> None:
    code = main(argv)
    assert code == expect, (argv, code)


@pytest.mark.slow  # ~37 s: every command of the first hour, in turn
def test_the_newcomers_path(newcomer: Path, capsys: pytest.CaptureFixture[str],
                            caplog: pytest.LogCaptureFixture) -> None:
    videos = newcomer / "my_videos"
    text = readme()

    # 1. The demo: what `./dev.sh demo` runs after setting up (the package's own command).
    assert main(["demo", "-o", str(newcomer / "demo"), "-q"]) == 0
    said = capsys.readouterr()
    assert "random" in (said.out + said.err).lower()  # the demo says its weights are random

    # 2. The dry run, as the README writes it, on the user's videos.
    dry = bash_blocks(text.split("### A dry run first, without weights", 1)[1])[0]
    for argv in commands(dry):
        argv = [str(videos) if a == "videos/" else a for a in argv]
        run(argv)
    one_crop = newcomer / "dry"
    assert np.load(one_crop / "Abuse001_x264.npy").shape == (2, 64)  # 1 crop: [T, D]; the tiny ViT is 64 wide

    # 3. The README's walk-through with the user's videos and annotations; every line runs.
    walk = bash_blocks(text.split("### A dry run first, without weights", 1)[1])[1]
    lines = commands(walk)
    names = [ln[0] for ln in lines]
    assert names[:3] == ["models", "checkpoint", "extract"]
    assert {"labels", "lists", "export", "align", "inspect"} <= set(names)
    for argv in lines:
        if argv[0] == "checkpoint":  # needs a checkpoint file the user does not have yet
            continue
        argv = substitute(argv, videos)
        run(argv)
    feats = newcomer / "feats"
    meta = json.loads((feats / "Abuse028_x264.json").read_text(encoding="utf-8"))
    assert meta["shape"] == [3, 10, 64] and meta["model"]["random_weights"] is True
    gt = np.load(newcomer / "gt" / "Abuse028_x264.npy")
    assert gt.shape == (48,) and gt[16:30].all() and not gt[:16].any() and not gt[30:].any()
    train = (newcomer / "lists" / "dataset-train.list").read_text(encoding="utf-8").split()
    test = (newcomer / "lists" / "dataset-test.list").read_text(encoding="utf-8").split()
    assert {Path(p).stem for p in test} == {"Abuse028_x264", "Normal_Videos_015_x264"}
    assert {Path(p).stem for p in train} == {"Abuse001_x264", "Normal_Videos_003_x264"}
    assert Path(train[0]).stem == "Abuse001_x264"  # RTFM: abnormal videos first
    assert np.load(newcomer / "feats-urdmu" / "Abuse028_x264__9.npy").shape == (3, 64)
    page = (newcomer / "report" / "index.html").read_text(encoding="utf-8")
    assert "random" in page.lower() and "vit_tiny" in page

    # 4. RTFM lists from the 1-crop dry run: refused with advice; the advice is followed.
    caplog.clear()
    run(["lists", str(one_crop), "--labels", "gt/", "--format", "rtfm", "--naming", "ucf",
         "-o", "lists-1crop/"], expect=2)
    advice = caplog.text
    assert "Abuse001_x264" in advice and "extract again with --crops 10" in advice, advice
    assert not (newcomer / "lists-1crop").exists()  # nothing written
    first_dry_line = next(a for a in commands(dry) if "--crops" not in a)
    argv = [str(videos) if a == "videos/" else a for a in first_dry_line]
    argv[argv.index("-o") + 1] = "dry10/"
    run([*argv, "--crops", "10"])
    ten = newcomer / "dry10"
    run(["lists", str(ten), "--labels", "gt/", "--format", "rtfm", "--naming", "ucf",
         "-o", "lists-10crop/"])
    assert (newcomer / "lists-10crop" / "dataset-train.list").read_text(encoding="utf-8").strip()

    # 5. Compare the 10-crop dry run with the walk-through's extraction (same tiny model,
    #    same settings) and read the verdict; then a page for the dry run.
    run(["compare", str(ten), "feats/", "-o", "compare-report/"])
    report = json.loads((newcomer / "compare-report" / "compare.json").read_text(encoding="utf-8"))
    assert len(report["videos"]) == len(VIDEOS)
    # same tiny model, same recipe, same videos: the verdict must be "identical"
    assert report["verdict"] == "identical" and not report["only_mine"] and not report["only_theirs"]
    cmp_page = (newcomer / "compare-report" / "index.html").read_text(encoding="utf-8")
    assert "random" in cmp_page.lower()
    run(["inspect", str(ten), "--labels", "gt/", "-o", "report-10crop/"])
    assert (newcomer / "report-10crop" / "index.html").exists()
