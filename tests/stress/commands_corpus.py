"""The fault corpus through every command, not only ``extract`` (issue 20).

``fault_corpus.py`` extracts a corpus of good and broken inputs; this phase takes that
extraction (which holds the corpus's awkward names: unicode, a newline, a name that is not
valid UTF-8, the same stem twice) and runs every other writing command over it, as a user
would, checking the promises of RELIABILITY.md for each:

* a first run finishes (exit 0, or 1 with the failing videos named), never with a traceback;
* a second run of the same command into its own output works (it replaces only its own files);
* an output that is, or lies inside, one of the command's inputs is refused with exit 2
  before any work, and nothing in the inputs changes;
* a file the user put at a name the command writes is never replaced: the command refuses
  (exit 2) or fails that video by name (exit 1), and the file keeps its bytes;
* no temporary is left anywhere;
* nothing stale is trusted: an exported file overwritten with zeros is written again by the
  next export, and a sidecar edited by hand is not used for ground-truth masks;
* across the whole phase every input (features, ground truth, checkpoint) keeps its bytes.

Prints one table row per command (``fault_corpus.print_table``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stress.fault_corpus import TMP_TAG, Row, _env

# Commands that write, with how to call them: ``argv(out)`` and the paths they read.
# Filled in by ``_commands`` once the shared inputs exist.


@dataclass(frozen=True)
class Command:
    name: str
    argv: Callable[[Path], list[str]]
    inputs: tuple[Path, ...]
    out_is_file: bool = False
    ok_codes: tuple[int, ...] = (0,)


def _vadfeat(argv: list[str], timeout: float = 600) -> tuple[int, str, float]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "vadfeat", *argv], capture_output=True,
                       timeout=timeout, env=_env())
    # what the user sees: reports go to standard output, errors and the log to standard error
    said = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r.returncode, said, time.monotonic() - t0


def _snapshot(paths: tuple[Path, ...]) -> dict[str, bytes]:
    """Every file under ``paths`` (its bytes), vadfeat's run bookkeeping aside."""
    snap: dict[str, bytes] = {}
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for p in files:
            if ".vadfeat-locks" in p.parts or p.name == "manifest.jsonl":
                continue
            snap[os.fsencode(p).hex()] = p.read_bytes()
    return snap


def _files(out: Path) -> list[Path]:
    if out.is_file():
        return [out]
    return sorted(p for p in out.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(out).parts) and p.name != "manifest.jsonl")


def _temporaries(where: Path) -> list[Path]:
    if where.is_file():
        where = where.parent
    return [p for p in where.rglob("*") if TMP_TAG in p.name] if where.exists() else []


def _last_lines(err: str, n: int = 2) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return " / ".join(lines[-n:])[:300]


def _ground_truth(feats: Path, work: Path) -> Path:
    """A UCF-style annotation for three plain videos, spans inside their frame counts."""
    lines = []
    for k, name in enumerate(sorted((feats / "plain").glob("v000[0-2].json"))):
        meta = json.loads(name.read_text(encoding="utf-8"))
        n = int(meta["num_frames"])
        video = Path(meta["video"]).name
        span = f"{n // 4} {n // 2}" if k != 1 else "-1 -1"
        lines.append(f"{video}  {'Normal' if k == 1 else 'Fighting'}  {span}  -1  -1")
    ann = work / "Temporal_Anomaly_Annotation.txt"
    ann.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ann


def _commands(work: Path, clean: Path, checkpoint: Path, video_src: Path) -> list[Command]:
    """Each command with its own copy of the inputs (one command's damage cannot hide
    another's): the features (``feats``, the clean extraction), a second set to compare with
    (``theirs``), the annotation and the canonical ground truth made from it, the tiny
    checkpoint and one video."""
    s = str

    def inputs(name: str) -> tuple[Path, Path, Path, Path, Path, Path]:
        base = work / name.replace(" ", "_").replace("-", "") / "in"
        base.mkdir(parents=True)
        feats, theirs = base / "feats", base / "theirs"
        shutil.copytree(clean, feats, symlinks=True)
        shutil.copytree(clean, theirs, symlinks=True)
        ann = _ground_truth(feats, base)
        gt = base / "gt"
        code, err, _ = _vadfeat(["labels", s(ann), "--format", "ucf", "--features", s(feats), "-o", s(gt)])
        if code != 0:
            raise RuntimeError(f"labels for the commands phase: exit {code}: {_last_lines(err)}")
        ckpt = base / "tiny.pth"
        shutil.copy2(checkpoint, ckpt)
        video = base / video_src.name
        shutil.copy2(video_src, video)
        return feats, theirs, ann, gt, ckpt, video

    table: list[tuple[str, Callable[..., Callable[[Path], list[str]]], str, bool]] = [
        ("labels", lambda f, t, a, g, c, v: lambda o: ["labels", s(a), "--format", "ucf", "--features",
                                                         s(f), "-o", s(o)], "fa", False),
        ("lists", lambda f, t, a, g, c, v: lambda o: ["lists", s(f), "--labels", s(g), "--format",
                                                        "ur-dmu", "-o", s(o)], "fg", False),
        ("align", lambda f, t, a, g, c, v: lambda o: ["align", s(f), "--labels", s(g), "-o", s(o)],
         "fg", False),
        ("align --mode legacy", lambda f, t, a, g, c, v: lambda o: ["align", s(f), "--labels", s(g),
                                                                      "--mode", "legacy", "-o", s(o)],
         "fg", False),
        ("export", lambda f, t, a, g, c, v: lambda o: ["export", s(f), "--format", "ur-dmu", "-o", s(o)],
         "f", False),
        ("resample", lambda f, t, a, g, c, v: lambda o: ["resample", s(f), "-o", s(o)], "f", False),
        ("inspect", lambda f, t, a, g, c, v: lambda o: ["inspect", s(f), "--labels", s(g), "-o", s(o)],
         "fg", False),
        ("compare", lambda f, t, a, g, c, v: lambda o: ["compare", s(f), s(t), "-o", s(o)], "ft", False),
        ("frames", lambda f, t, a, g, c, v: lambda o: ["frames", s(v), "-o", s(o)], "v", False),
        ("checkpoint convert", lambda f, t, a, g, c, v: lambda o: ["checkpoint", "convert", s(c), s(o)],
         "c", True),
        ("compress", lambda f, t, a, g, c, v: lambda o: ["compress", s(c), "-o", s(o), "--prune", "0.1"],
         "c", True),
    ]
    commands = []
    for name, make, reads, out_is_file in table:
        f, t, a, g, c, v = inputs(name)
        by_letter = {"f": f, "t": t, "a": a, "g": g, "c": c, "v": v}
        # lists: every labelled video is a test video, so its train list is empty (exit 1, said);
        # align: the unlabelled (training) videos are named as issues (exit 1)
        ok = (0, 1) if name in ("lists", "align", "align --mode legacy") else (0,)
        commands.append(Command(name, make(f, t, a, g, c, v), tuple(by_letter[k] for k in reads),
                                out_is_file=out_is_file, ok_codes=ok))
    return commands


def _check_command(c: Command, work: Path) -> Row:
    problems: list[str] = []
    base = work / c.name.replace(" ", "_").replace("-", "")  # its inputs are in base / "in"
    out = base / ("out.safetensors" if c.out_is_file else "out")
    base.mkdir(parents=True, exist_ok=True)
    before_inputs = _snapshot(c.inputs)
    runs = 0

    # 1. a first run, then the same again into its own output
    code, err, secs = _vadfeat(c.argv(out))
    runs += 1
    if code not in c.ok_codes or "Traceback" in err:
        problems.append(f"first run: exit {code}: {_last_lines(err)}")
    written = _files(out) if out.exists() else []
    if not written:
        problems.append("first run wrote nothing")
    first = {p: p.read_bytes() for p in written}
    code2, err2, _ = _vadfeat(c.argv(out))
    runs += 1
    if code2 != code or "Traceback" in err2:
        problems.append(f"rerun into its own output: exit {code2} (first {code}): {_last_lines(err2)}")
    for p in written:
        if not p.exists():
            problems.append(f"rerun removed its own {p.name}")

    # 2. outputs that are, or lie inside, an input: exit 2, nothing touched
    for inp in c.inputs:
        targets = [inp]
        if inp.is_dir():
            targets.append(inp / "sub")
        for target in targets:
            if c.out_is_file and inp.is_dir():
                continue
            code3, err3, _ = _vadfeat(c.argv(target))
            runs += 1
            if code3 != 2:
                problems.append(f"-o {target.name} (an input or inside one): exit {code3}, expected 2: "
                                f"{_last_lines(err3)}")
            if inp.is_dir() and (inp / "sub").exists():
                problems.append(f"-o {target.name}: created {inp / 'sub'}")
                shutil.rmtree(inp / "sub")
            if _snapshot(c.inputs) != before_inputs:
                problems.append(f"-o {target.name}: an input changed")
                break

    # 3. a user's file at a name the command writes: kept, byte for byte
    if written:
        fresh = base / ("user.safetensors" if c.out_is_file else "user")
        rel = written[0].relative_to(out) if not c.out_is_file else Path(fresh.name)
        user_file = fresh if c.out_is_file else fresh / rel
        user_file.parent.mkdir(parents=True, exist_ok=True)
        user_file.write_bytes(b"the user's own file\n")
        code4, err4, _ = _vadfeat(c.argv(fresh))
        runs += 1
        if user_file.read_bytes() != b"the user's own file\n":
            problems.append(f"a user's file at {rel} was replaced (exit {code4})")
        if code4 not in (1, 2):
            problems.append(f"a user's file at {rel}: exit {code4}, expected 1 or 2")
        elif not any(str(part) in err4 for part in (rel, *rel.parents[:-1])):  # the file or its folder
            problems.append(f"a user's file at {rel}: the message does not name it: {_last_lines(err4)}")

    # 4. no temporaries; the inputs unchanged
    left = _temporaries(base)
    if left:
        problems.append(f"temporaries left: {[p.name for p in left[:3]]}")
    if _snapshot(c.inputs) != before_inputs:
        problems.append("an input changed")
    happened = (f"first run exit {code} in {secs:.1f} s ({len(first)} files); rerun exit {code2}; "
                "outputs in/at inputs refused; a user's file kept")
    return Row(f"`{c.name}` over the corpus's extraction", runs, happened, 0, problems,
               {"first_exit": code, "files": len(first), "seconds": round(secs, 1)})


def _check_stale(feats: Path, gt_ann: Path, work: Path) -> Row:
    """Exported files overwritten with zeros are written again; a sidecar edited by hand is
    not trusted for ground-truth masks."""
    problems: list[str] = []
    out = work / "stale_export"
    code, err, _ = _vadfeat(["export", str(feats), "--format", "ur-dmu", "-o", str(out)])
    npys = sorted(p for p in out.rglob("*.npy") if TMP_TAG not in p.name)
    if not npys:
        return Row("stale outputs", 1, "export wrote nothing", 1, [f"exit {code}: {_last_lines(err)}"])
    victim = npys[len(npys) // 2]
    good = victim.read_bytes()
    arr = np.load(victim)
    victim.unlink()  # a fresh inode: the export may have hard-linked it to the features
    np.save(victim, np.zeros_like(arr))
    code2, _, _ = _vadfeat(["export", str(feats), "--format", "ur-dmu", "-o", str(out)])
    if victim.read_bytes() != good:
        problems.append(f"export rerun (exit {code2}) trusted {victim.name} overwritten with zeros")

    edited = work / "stale_feats"
    shutil.copytree(feats, edited, symlinks=True)
    sidecar = sorted((edited / "plain").glob("v0000.json"))[0]
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    meta["num_frames"] = int(meta["num_frames"]) + 160
    sidecar.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    gt = work / "stale_gt"
    code3, _, _ = _vadfeat(["labels", str(gt_ann), "--format", "ucf", "--features", str(edited),
                               "-o", str(gt)])
    mask = next(iter(gt.rglob("v0000.npy")), None) if gt.exists() else None
    if mask is not None and len(np.load(mask)) == meta["num_frames"]:
        problems.append(f"labels (exit {code3}) built a mask from a sidecar edited by hand")
    if code3 == 0:
        problems.append("labels over a sidecar edited by hand exited 0")
    return Row("stale outputs: an exported file zeroed, a sidecar edited by hand", 3,
               f"export rerun exit {code2}, the zeroed file written again; labels exit {code3}, "
               "the edited sidecar reported", 0, problems)


def phase_commands(clean: Path, work: Path, checkpoint: Path, inputs: Path) -> list[Row]:
    """Every writing command over a copy of the clean extraction (see the module docstring)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    video = next(p for p in sorted((inputs / "plain").glob("*.mp4")))
    rows = [_check_command(c, work) for c in _commands(work, clean, checkpoint, video)]
    stale = work / "stale"
    stale.mkdir()
    feats = stale / "feats"
    shutil.copytree(clean, feats, symlinks=True)
    rows.append(_check_stale(feats, _ground_truth(feats, stale), stale))
    return rows
