"""Fault-injection stress run of ``vadfeat extract`` (issue 6; figures in RELIABILITY.md).

Builds a corpus of generated videos, 10 % of them broken in the ways real datasets
are broken, then runs the real command line over it under injected faults:

* a clean run (the reference every other run must equal, bit for bit);
* ``--kills`` runs SIGKILLed at random moments, each resumed by the next, then a
  final run to the end;
* three processes started together on one output folder;
* ``--devices cpu,cpu`` with one device process SIGKILLed mid-run, then a resume;
* the output folder on a tmpfs too small for it (disk full), then "freeing space"
  (remounting it larger) and running again;
* a read-only output folder (read-only mount, and a folder the user may not write);
* peak memory (RSS) of one long low-resolution video against a one-minute one.

After each: every good video's output equals the clean run's, bit for bit; every bad
video is named in the manifest with a reason; no partial or temporary file is left;
the exit code says what happened.  Prints a table and writes ``OUT/results.json``;
exits 0 only when every check held.

    python tests/stress/fault_corpus.py --videos 200 --kills 10 --out /tmp/stress

Run as root, the runs themselves are made as the unprivileged user ``nobody`` (with
``setpriv``), so that unreadable files really are unreadable; the disk-full and
read-only phases mount a tmpfs and are skipped (and say so) without the right to.
``tests/test_faults.py`` imports :func:`build_corpus` and the checkers from here.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from vadfeat.io.inputs import output_stem
from vadfeat.store.claims import LOCK_DIR
from vadfeat.store.sidecar import SIDECAR_DIGEST, sidecar_edited
from vadfeat.testing import synth

TMP_TAG = "vadfeat-tmp"
NOBODY = 65534
MIN_PLAIN = 12

# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Case:
    """One input of the corpus and what a run must do with it.

    ``expect``: ``ok`` (features written), ``warn`` (written, with a warning in the
    manifest naming the damage), ``failed`` (no output; the manifest says why),
    ``absent`` (not a video: neither it nor anything under it is an item, nothing
    written) or ``unlisted`` (not an item itself; what is under it may be).  ``reason`` is text the
    failure reason or warning must contain ("" = any non-empty reason).  ``as_root``
    is the expectation when the run can read everything (root ignores permissions).
    """

    name: str
    kind: str
    expect: str
    reason: str = ""
    broken: bool = False
    as_root: str | None = None
    stem: str | None = None  # output stem when not the name's (colliding names keep the extension)

    def expected(self, privileged: bool) -> str:
        return self.as_root if privileged and self.as_root else self.expect

    @property
    def output(self) -> str:
        """Relative path of the feature file (layout flat)."""
        return (self.stem or output_stem(PurePosixPath(self.name)).as_posix()) + ".npy"


def _video(path: Path, frames: int, *, seed: int, width: int = 160, height: int = 120,
           **kw: Any) -> Path:
    return synth.write_video(path, synth.scene_frames(frames, width=width, height=height,
                                                      seed=seed), **kw)


# Each builder makes one input under ``root`` (the folder given to vadfeat) and returns
# its cases.  ``i`` numbers instances of a kind; broken instances of one kind share
# their content (the damage must hit the same bytes every time), not their names.

def _truncated_mp4(root: Path, i: int) -> list[Case]:
    p = _video(root / "broken" / f"truncated_mp4_{i}.mp4", 64, seed=2)
    synth.truncate(p, 0.5)  # the index (moov) at the end is gone
    return [Case(f"broken/truncated_mp4_{i}.mp4", "truncated mp4 (index lost)", "failed",
                 "not a video", broken=True)]


def _truncated_avi(root: Path, i: int) -> list[Case]:
    p = _video(root / "broken" / f"truncated_avi_{i}.avi", 96, seed=2)
    synth.truncate(p, 0.8)
    return [Case(f"broken/truncated_avi_{i}.avi", "truncated avi (80 %)", "failed",
                 "truncated: container declares 96 frames", broken=True)]


def _truncated_mkv(root: Path, i: int) -> list[Case]:
    p = _video(root / "broken" / f"truncated_mkv_{i}.mkv", 96, seed=2)
    synth.truncate(p, 0.6)
    return [Case(f"broken/truncated_mkv_{i}.mkv", "truncated mkv (60 %)", "failed",
                 "truncated: decoded frames cover", broken=True)]


def _corrupt_middle(root: Path, i: int) -> list[Case]:
    p = _video(root / "broken" / f"corrupt_{i}.mp4", 96, seed=6)
    synth.corrupt_middle(p, nbytes=4000, seed=1)
    return [Case(f"broken/corrupt_{i}.mp4", "corrupted middle (4000 random bytes)", "failed",
                 "decoding failed", broken=True)]


def _zero_bytes(root: Path, i: int) -> list[Case]:
    synth.empty(root / "broken" / f"zero_{i}.mp4")
    return [Case(f"broken/zero_{i}.mp4", "zero bytes", "failed", "empty file", broken=True)]


def _random_bytes(root: Path, i: int) -> list[Case]:
    synth.random_bytes(root / "broken" / f"random_{i}.mp4", 20000, seed=i)
    return [Case(f"broken/random_{i}.mp4", "random bytes", "failed", "not a video", broken=True)]


def _text_as_video(root: Path, i: int) -> list[Case]:
    p = root / "broken" / f"notes_{i}.avi"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("this is not a video\n" * 20)
    return [Case(f"broken/notes_{i}.avi", "wrong extension (text named .avi)", "failed",
                 "not a video", broken=True)]


def _unreadable(root: Path, i: int) -> list[Case]:
    p = _video(root / "broken" / f"unreadable_{i}.mp4", 32, seed=3)
    p.chmod(0)
    return [Case(f"broken/unreadable_{i}.mp4", "unreadable permissions (chmod 000)", "failed",
                 "permission denied", broken=True, as_root="ok")]


def _symlink_loop(root: Path, i: int) -> list[Case]:
    d = root / "broken"
    d.mkdir(parents=True, exist_ok=True)
    os.symlink(f"loop_{i}b.mp4", d / f"loop_{i}a.mp4")
    os.symlink(f"loop_{i}a.mp4", d / f"loop_{i}b.mp4")
    return [Case(f"broken/loop_{i}{s}.mp4", "symlink loop", "failed", "symbolic link loop",
                 broken=True) for s in "ab"]


def _dangling_symlink(root: Path, i: int) -> list[Case]:
    d = root / "broken"
    d.mkdir(parents=True, exist_ok=True)
    os.symlink(f"gone_{i}.mp4", d / f"dangling_{i}.mp4")
    return [Case(f"broken/dangling_{i}.mp4", "dangling symlink", "failed", "broken symbolic link",
                 broken=True)]


def _audio_only(root: Path, i: int) -> list[Case]:
    synth.write_audio(root / "broken" / f"audio_{i}.mp4", seconds=1.0)
    return [Case(f"broken/audio_{i}.mp4", "audio-only file", "failed", "no video stream",
                 broken=True)]


def _too_short(root: Path, i: int) -> list[Case]:
    _video(root / "broken" / f"short_{i}.mp4", 5, seed=4)
    return [Case(f"broken/short_{i}.mp4", "5 frames (< one snippet)", "failed",
                 "a snippet needs 16", broken=True)]


def _broken_jpeg(root: Path, i: int) -> list[Case]:
    folder = root / "broken" / f"frames_badjpeg_{i}"
    files = synth.write_frame_folder(folder, synth.scene_frames(20, seed=5))
    files[7].write_bytes(b"\xff\xd8\xff not really a jpeg")
    return [Case(f"broken/frames_badjpeg_{i}", "frame folder with a broken JPEG", "failed",
                 "JPEG", broken=True)]


def _mixed_sizes(root: Path, i: int) -> list[Case]:
    folder = root / "broken" / f"frames_mixed_{i}"
    synth.write_frame_folder(folder, synth.scene_frames(10, seed=5))
    synth.write_frame_folder(folder, synth.scene_frames(10, width=80, height=60), start=11)
    return [Case(f"broken/frames_mixed_{i}", "frame folder with two frame sizes", "failed",
                 "earlier frames", broken=True)]


def _dir_named_like_video(root: Path, i: int) -> list[Case]:
    folder = root / "broken" / f"folder_{i}.mp4"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README").write_text("a folder, not a video\n")
    return [Case(f"broken/folder_{i}.mp4", "directory named like a video", "absent",
                 broken=True)]


def _locked_folder(root: Path, i: int) -> list[Case]:
    folder = root / f"locked_{i}"
    _video(folder / "inside.mp4", 32, seed=8)
    folder.chmod(0)
    # Unprivileged, the folder cannot be listed: the folder itself is the item, named
    # as failed with the reason (its videos cannot be seen, so they are not items).
    return [Case(f"locked_{i}", "folder that cannot be listed (chmod 000)", "failed",
                 "permission denied", broken=True, as_root="unlisted"),
            Case(f"locked_{i}/inside.mp4", "video in that folder", "unlisted", as_root="ok")]


def _fifo(root: Path, i: int) -> list[Case]:
    p = root / "broken" / f"pipe_{i}.mp4"
    p.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(p)  # opening it would block the run forever (issue 20)
    return [Case(p.relative_to(root).as_posix(), "named pipe (FIFO) named like a video", "failed",
                 "named pipe", broken=True)]


BROKEN = (_truncated_mp4, _truncated_avi, _truncated_mkv, _corrupt_middle, _zero_bytes,
          _random_bytes, _text_as_video, _unreadable, _symlink_loop, _dangling_symlink,
          _audio_only, _too_short, _broken_jpeg, _mixed_sizes, _dir_named_like_video,
          _locked_folder, _fifo)


def _good_specials(root: Path) -> list[Case]:
    """Valid but awkward inputs: each must be extracted like any other."""
    cases: list[Case] = []

    def ok(name: str, kind: str) -> None:
        cases.append(Case(name, kind, "ok"))

    for k, rel in enumerate(("dup1/clip.mp4", "dup2/clip.mp4", "dup2/sub/clip.mp4")):
        _video(root / rel, 32, seed=20 + k)
        ok(rel, "duplicate stem in another folder")
    _video(root / "same" / "x.avi", 32, seed=23)
    _video(root / "same" / "x.mp4", 32, seed=24)
    # Both keep their real names; their outputs keep the extension (issue 11).
    cases.append(Case("same/x.avi", "same stem, same folder (.avi)", "ok", stem="same/x.avi"))
    cases.append(Case("same/x.mp4", "same stem, same folder (.mp4)", "ok", stem="same/x.mp4"))
    for k, name in enumerate(("names/Überfall Straße 01.mp4", "names/视频 监控 #1.mkv",
                              "names/two  spaces (copy).mp4", "names/🎥 cam.mov",
                              "names/line\nbreak.mp4")):
        _video(root / name, 32, seed=30 + k)
        ok(name, "unicode, spaces or a newline in the name")
    raw = os.fsencode(root / "names") + b"/caf\xe9 latin-1.mp4"
    _video(Path(os.fsdecode(raw)), 32, seed=36)
    ok("names/" + os.fsdecode(b"caf\xe9 latin-1.mp4"), "file name not valid UTF-8")
    _video(root / "odd" / "exact16.mp4", 16, seed=40)
    ok("odd/exact16.mp4", "very short (exactly one snippet)")
    _video(root / "odd" / "tiny16x16.mp4", 32, seed=41, width=16, height=16)
    ok("odd/tiny16x16.mp4", "very small (16x16)")
    synth.write_frame_folder(root / "odd" / "pixel1x1",
                             [np.full((1, 1, 3), 128, np.uint8)] * 16, pattern="f{:03d}.png")
    ok("odd/pixel1x1", "very small (1x1 PNG frame folder)")
    _video(root / "odd" / "portrait.mp4", 32, seed=42, width=72, height=128)
    ok("odd/portrait.mp4", "portrait (72x128)")
    _video(root / "odd" / "odd99x67.mkv", 32, seed=43, width=99, height=67, pix_fmt="yuv444p")
    ok("odd/odd99x67.mkv", "odd size (99x67)")
    synth.write_frame_folder(root / "odd" / "odd33x17",
                             synth.scene_frames(20, width=33, height=17, seed=44),
                             pattern="{:04d}.png")
    ok("odd/odd33x17", "odd size (33x17 PNG frame folder)")
    stamps = [0.04 * k + 0.015 * (k % 3) for k in range(40)]
    _video(root / "odd" / "vfr.mp4", 40, seed=45, timestamps=stamps)
    ok("odd/vfr.mp4", "variable frame rate")
    tmp = _video(root / "odd" / "mkv_named_mp4.mkv", 32, seed=46)
    tmp.rename(root / "odd" / "mkv_named.mp4")
    ok("odd/mkv_named.mp4", "wrong extension (mkv content named .mp4)")
    tmp = _video(root / "odd" / "mp4_named_avi.mp4", 32, seed=47)
    tmp.rename(root / "odd" / "mp4_named.avi")
    ok("odd/mp4_named.avi", "wrong extension (mp4 content named .avi)")
    _video(root / "odd" / "vp8.webm", 32, seed=48)
    ok("odd/vp8.webm", "webm (VP8)")
    synth.write_frame_folder(root / "odd" / "legacy_frames", synth.scene_frames(40, seed=49))
    ok("odd/legacy_frames", "JPEG frame folder (legacy img_00001.jpg)")
    os.symlink(".", root / "odd" / "self")  # a folder loop discover must not follow forever
    # Container shapes users make (issue 20): none of them is truncated.
    em = _edited_media()
    src = em.bframe_mp4(root / "real" / "phone_bframes.mp4", 74)
    ok("real/phone_bframes.mp4", "B-frames and an edit list (as phones write)")
    em.cut_mp4(src, root / "real" / "cut_lossless.mp4", keyframe=1, skip=10)
    ok("real/cut_lossless.mp4", "cut losslessly (edit list starting after the keyframe)")
    em.avi_with_empty_chunks(root / "real" / "dropped_frames.avi", 48, 131)
    cases.append(Case("real/dropped_frames.avi", "131 samples without a picture (dropped frames)",
                      "warn", "held no picture"))
    em.mkv_with_thumbnail(root / "real" / "thumbnail_first.mkv", 48)
    cases.append(Case("real/thumbnail_first.mkv", "a default one-frame thumbnail track first",
                      "warn", "2 video streams"))
    return cases


def _edited_media() -> Any:
    """``tests/edited_media.py`` (the script may run with only ``tests/stress`` on the path)."""
    tests = str(Path(__file__).resolve().parents[1])
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import edited_media

    return edited_media


def build_corpus(root: Path, videos: int | None = None, *, seed: int = 0) -> list[Case]:
    """Write the corpus under ``root`` (the folder to give vadfeat); return its cases.

    Always one input of every broken kind and every awkward-but-valid kind; with
    ``videos``, broken kinds are repeated to make 10 % of ``videos`` inputs and plain
    videos (mp4/avi/mkv, 32-64 frames, 160x120) fill up the rest, at least
    ``MIN_PLAIN`` of them (the device-death phase needs a run long enough to kill).
    """
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    counts = dict.fromkeys(BROKEN, 0)
    n_broken = max(len(BROKEN), round(0.1 * videos)) if videos else len(BROKEN)
    k = 0
    while sum(counts.values()) < n_broken:
        make = BROKEN[k % len(BROKEN)]
        cases += make(root, counts[make])
        counts[make] += 1
        k += 1
    cases += _good_specials(root)
    rng = random.Random(seed)
    n = 0
    while videos and (len(cases) < videos or n < MIN_PLAIN):
        ext = ("mp4", "avi", "mkv")[n % 3]
        _video(root / "plain" / f"v{n:04d}.{ext}", rng.randint(32, 64), seed=1000 + n)
        cases.append(Case(f"plain/v{n:04d}.{ext}", "plain video", "ok"))
        n += 1
    return cases


def restore_permissions(root: Path) -> None:
    """Undo the corpus's chmod 000 so that it can be deleted."""
    for dirpath, dirnames, filenames in os.walk(root):
        # Top-down: a folder is made listable before the walk goes into it.
        for name in dirnames:
            if not (p := Path(dirpath, name)).is_symlink():
                p.chmod(0o755)
        for name in filenames:
            if not (p := Path(dirpath, name)).is_symlink():
                p.chmod(0o644)


# --------------------------------------------------------------------------- checks


def read_lines(out: Path, *, torn: list[str] | None = None) -> list[dict[str, Any]]:
    """The manifest's lines.  A line that is not a whole JSON object raises
    ``ValueError``, or, given a ``torn`` list, is appended to it and skipped."""
    path = out / "manifest.jsonl"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line:
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            if torn is None:
                raise
            torn.append(line)
    return lines


def locks_free(out: Path) -> bool:
    """True when no lock file of ``out`` is held (this process's fds count as holders)."""
    for lock in (out / LOCK_DIR).glob("*.lock"):
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
    return True


def process_state(pid: int) -> str:
    """The one-letter state of ``pid`` in ``/proc`` (``T`` stopped, ``Z`` zombie), "" when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def wait_until_stopped(proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until ``proc`` stops itself (SIGSTOP, sent by the partial-resume test hook of
    ``vadfeat.engines.partial`` at a known point of its work, so it cannot finish first).
    ``timeout`` only bounds a broken run (a busy machine slows the run, not the outcome):
    then it is killed and AssertionError says how it ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if process_state(proc.pid) == "T":
            return
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the run did not reach the test hook (exit {proc.poll()}): "
                         f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if TMP_TAG in p.name]


def partial_outputs(out: Path, *, allow_temporaries: bool = False) -> list[str]:
    """Problems with what is on disk: temporaries, a feature file without its sidecar
    (or the reverse), an unreadable file, a shape that disagrees with the sidecar."""
    problems = [] if allow_temporaries else [f"temporary left: {p}" for p in temporaries(out)]
    for npy in out.rglob("*.npy"):
        if TMP_TAG in npy.name:
            continue
        side = npy.with_suffix(".json")
        try:
            arr = np.load(npy, allow_pickle=False)
        except (OSError, ValueError) as exc:
            problems.append(f"unreadable feature file {npy}: {exc}")
            continue
        if not side.exists():
            problems.append(f"feature file without sidecar: {npy}")
            continue
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except ValueError as exc:
            problems.append(f"unreadable sidecar {side}: {exc}")
            continue
        if list(arr.shape) != meta.get("shape"):
            problems.append(f"{npy}: shape {arr.shape} but sidecar says {meta.get('shape')}")
    for side in out.rglob("*.json"):
        if TMP_TAG not in side.name and not side.with_suffix(".npy").exists():
            problems.append(f"sidecar without feature file: {side}")
    return problems


def check_run(out: Path, cases: list[Case], run_lines: list[dict[str, Any]], *,
              privileged: bool) -> list[str]:
    """Does one complete run's manifest (and the folder) say what each case expects?

    Videos skipped as already done count as ok: the check is about the folder's state.
    """
    problems: list[str] = []
    by_video: dict[str, dict[str, Any]] = {}
    for e in run_lines:
        by_video[e["video"]] = e
    for c in cases:
        want = c.expected(privileged)
        e = by_video.get(c.name)
        feature = out / c.output
        if want == "absent":  # neither it nor anything under it is an item
            if e is not None or any(v.startswith(c.name + "/") for v in by_video):
                problems.append(f"{c.name!r} ({c.kind}): should not be an item, got {e}")
            continue
        if want == "unlisted":  # not an item itself (what is under it may be)
            if e is not None:
                problems.append(f"{c.name!r} ({c.kind}): should not be an item, got {e}")
            continue
        if e is None:
            problems.append(f"{c.name!r} ({c.kind}): not in the manifest")
            continue
        if want in ("ok", "warn"):
            if e["status"] not in ("ok", "skipped"):
                problems.append(f"{c.name!r} ({c.kind}): {e['status']}: {e.get('error')}")
            elif not feature.exists():
                problems.append(f"{c.name!r} ({c.kind}): {feature} missing")
            if want == "warn" and e["status"] == "ok":
                text = " ".join(e.get("warnings") or [])
                if c.reason not in text:
                    problems.append(f"{c.name!r} ({c.kind}): no warning with {c.reason!r}: {text!r}")
        else:
            if e["status"] != "failed" or not e.get("error"):
                problems.append(f"{c.name!r} ({c.kind}): expected failed with a reason, got {e}")
            elif c.reason and c.reason.lower() not in e["error"].lower():
                problems.append(f"{c.name!r} ({c.kind}): reason {e['error']!r} lacks {c.reason!r}")
            if feature.exists():
                problems.append(f"{c.name!r} ({c.kind}): failed but {feature} exists")
    return problems


def compare_outputs(clean: Path, other: Path, *, ignore: tuple[str, ...] = ()) -> list[str]:
    """Same feature files, bit for bit, and the same sidecars up to their creation time
    (and the ``ignore`` keys); every sidecar sealed by a digest that matches it."""
    problems: list[str] = []
    a = sorted(p.relative_to(clean) for p in clean.rglob("*.npy") if TMP_TAG not in p.name)
    b = sorted(p.relative_to(other) for p in other.rglob("*.npy") if TMP_TAG not in p.name)
    if a != b:
        problems.append(f"different files: only clean {sorted(set(a) - set(b))[:5]}, "
                        f"only other {sorted(set(b) - set(a))[:5]}")
    for rel in sorted(set(a) & set(b)):
        if (clean / rel).read_bytes() != (other / rel).read_bytes():
            problems.append(f"{rel}: feature file differs")
        ma = json.loads((clean / rel).with_suffix(".json").read_text(encoding="utf-8"))
        mb = json.loads((other / rel).with_suffix(".json").read_text(encoding="utf-8"))
        for m, side in ((ma, "clean"), (mb, "other")):
            if m.get(SIDECAR_DIGEST) is None or sidecar_edited(m):
                problems.append(f"{rel}: the {side} sidecar's digest is missing or does not match")
            # the digest covers every other field: compared through them, not itself
            for key in ("created", SIDECAR_DIGEST, *ignore):
                m.pop(key, None)
        if ma != mb:
            keys = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
            problems.append(f"{rel}: sidecar differs in {keys}")
    return problems


def lost(clean: Path, other: Path, cases: list[Case], *, privileged: bool) -> int:
    """Good videos whose features are missing or differ from the clean run's."""
    n = 0
    for c in cases:
        if c.expected(privileged) in ("ok", "warn"):
            a, b = clean / c.output, other / c.output
            if not b.exists() or a.read_bytes() != b.read_bytes():
                n += 1
    return n


# --------------------------------------------------------------------------- running


def call_with_limit(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a thread; ``TimeoutError`` if it has not returned in time.

    A hang (a lost event, a decoder looping in C) fails the caller instead of blocking it
    forever; the stuck daemon thread is abandoned.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="call-with-limit")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"{getattr(fn, '__name__', fn)} did not return within {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@dataclass
class Runner:
    """Runs ``vadfeat extract`` in a subprocess, as ``nobody`` when we are root."""

    inputs: Path
    checkpoint: Path
    user: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def privileged(self) -> bool:
        return os.geteuid() == 0 and not self.user

    def cmd(self, out: Path, *more: str) -> list[str]:
        return [*self.user, sys.executable, "-m", "vadfeat", "extract", str(self.inputs),
                "-o", str(out), "--checkpoint", str(self.checkpoint), "-q", *self.extra, *more]

    def prepare(self, out: Path) -> None:
        """An output folder the run's user may write to."""
        out.mkdir(parents=True, exist_ok=True)
        if self.user:
            os.chown(out, NOBODY, NOBODY)

    def start(self, out: Path, *more: str, log: Path | None = None) -> subprocess.Popen:
        self.prepare(out)
        if log is None:
            return subprocess.Popen(self.cmd(out, *more), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=_env())
        with open(log, "ab") as err:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(self.cmd(out, *more), stdout=subprocess.DEVNULL, stderr=err,
                                    env=_env())

    def run(self, out: Path, *more: str, timeout: float = 900) -> tuple[int, str, float]:
        self.prepare(out)
        t0 = time.monotonic()
        r = subprocess.run(self.cmd(out, *more), capture_output=True, timeout=timeout, env=_env())
        return r.returncode, r.stderr.decode("utf-8", "replace"), time.monotonic() - t0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = "/tmp"  # nobody's home does not exist
    return env


def unprivileged_prefix(readable: Path) -> list[str]:
    """``setpriv`` to ``nobody`` when we are root and nobody can read ``readable``."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return []
    prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import vadfeat, sys; "
                            f"open({str(readable)!r}, 'rb').close()"], capture_output=True)
    return prefix if probe.returncode == 0 else []


def run_lines(out: Path, before: int) -> list[dict[str, Any]]:
    return read_lines(out)[before:]


def _mount_tmpfs(where: Path, size: str, *, ro: bool = False) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], capture_output=True)


# --------------------------------------------------------------------------- phases


@dataclass
class Row:
    phase: str
    runs: int
    happened: str
    lost: int
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0


def phase_clean(r: Runner, out: Path, cases: list[Case]) -> tuple[Row, float, float]:
    t0 = time.monotonic()
    proc = r.start(out, log=out.parent / "clean.log")
    first = None
    while proc.poll() is None:
        if first is None and (out / "manifest.jsonl").exists() \
                and (out / "manifest.jsonl").stat().st_size:
            first = time.monotonic() - t0
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    lines = read_lines(out)
    problems = check_run(out, cases, lines, privileged=r.privileged)
    problems += partial_outputs(out)
    if proc.returncode != 1:
        problems.append(f"exit code {proc.returncode}, expected 1 (bad videos in the corpus)")
    ok = sum(e["status"] == "ok" for e in lines)
    failed = sum(e["status"] == "failed" for e in lines)
    return Row("clean run", 1, f"exit {proc.returncode}; {ok} ok, {failed} failed with a reason; "
               f"{seconds:.1f} s", 0, problems,
               {"seconds": round(seconds, 1), "ok": ok, "failed": failed,
                "first_output_s": round(first or seconds, 1)}), seconds, first or seconds


def phase_kills(r: Runner, clean: Path, out: Path, cases: list[Case], *, kills: int,
                seconds: float, startup: float, rng: random.Random) -> Row:
    goods = [c for c in cases if c.expected(r.privileged) in ("ok", "warn")]
    problems: list[str] = []
    landed, finished_early, temps_seen, orphans_seen, runs = 0, 0, 0, 0, 0
    delays: list[float] = []
    while landed < kills:
        done = sum((out / c.output).exists() and (out / c.output).with_suffix(".json").exists()
                   for c in goods)
        remaining = (seconds - startup) * (len(goods) - done) / max(1, len(goods))
        # One kill in four lands during start-up (imports, model, discovery); the
        # others anywhere in the first half of the work left (decode, model, writes).
        if rng.random() < 0.25:
            delay = rng.uniform(0.2 * startup, startup)
        else:
            delay = startup + rng.uniform(0.0, 0.5 * remaining)
        proc = r.start(out)
        runs += 1
        try:
            proc.wait(timeout=delay)
            finished_early += 1
            if proc.returncode != 1:
                problems.append(f"run finished before its kill with exit {proc.returncode}")
            break
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed += 1
            delays.append(round(delay, 2))
        try:
            read_lines(out)
        except ValueError as exc:
            problems.append(f"manifest has a broken line after a kill: {exc}")
        temps_seen += len(temporaries(out))
        after = partial_outputs(out, allow_temporaries=True)
        orphans_seen += sum("without sidecar" in p for p in after)
        problems += [p for p in after if "without sidecar" not in p]
    before = len(read_lines(out))
    code, _, _ = r.run(out)
    runs += 1
    final = run_lines(out, before)
    problems += check_run(out, cases, final, privileged=r.privileged)
    problems += partial_outputs(out)
    problems += compare_outputs(clean, out)
    if code != 1:
        problems.append(f"final run exit {code}, expected 1")
    n_lost = lost(clean, out, cases, privileged=r.privileged)
    return Row("SIGKILL at random points, then resume", runs,
               f"{landed} kills landed (after {', '.join(map(str, delays))} s); "
               f"{temps_seen} temporaries and {orphans_seen} feature files without sidecar "
               f"seen right after kills, all cleaned or redone; final run exit {code}",
               n_lost, problems,
               {"kills": landed, "delays_s": delays, "temporaries_after_kills": temps_seen,
                "orphan_features_after_kills": orphans_seen, "runs": runs})


def phase_concurrent(r: Runner, clean: Path, out: Path, cases: list[Case],
                     procs: int = 3) -> Row:
    running = []
    for k in range(procs):
        running.append(r.start(out))
        time.sleep(0.3 * k)
    codes = [p.wait(timeout=1800) for p in running]
    lines = read_lines(out)
    problems = partial_outputs(out) + compare_outputs(clean, out)
    oks: dict[str, int] = {}
    for e in lines:
        if e["status"] == "ok":
            oks[e["video"]] = oks.get(e["video"], 0) + 1
    goods = [c.name for c in cases if c.expected(r.privileged) in ("ok", "warn")]
    twice = [v for v, n in oks.items() if n > 1]
    missing = [v for v in goods if oks.get(v) != 1]
    if twice:
        problems.append(f"extracted more than once: {twice[:5]}")
    if missing:
        problems.append(f"not extracted exactly once: {missing[:5]}")
    if any(c not in (1,) for c in codes):
        problems.append(f"exit codes {codes}, expected 1 each (bad videos)")
    for c in cases:
        if c.expected(r.privileged) == "failed" and not any(
                e["video"] == c.name and e["status"] == "failed" and e.get("error") for e in lines):
            problems.append(f"{c.name!r} not named as failed by any process")
    before = len(lines)
    code, _, _ = r.run(out)
    again = run_lines(out, before)
    redone = sum(e["status"] == "ok" for e in again)
    if code != 1:
        problems.append(f"fourth run exit {code}, expected 1")
    if redone:
        problems.append(f"a fourth run re-extracted {redone} video(s)")
    per_proc: dict[str, int] = {}
    for e in lines:
        if e["status"] == "ok":
            per_proc[e["run"]] = per_proc.get(e["run"], 0) + 1
    return Row(f"{procs} processes on one output folder", procs + 1,
               f"exit codes {codes}; ok per process {sorted(per_proc.values())}; every good "
               f"video written once; a 4th run re-extracted {redone}",
               lost(clean, out, cases, privileged=r.privileged), problems,
               {"exit_codes": codes, "ok_per_process": sorted(per_proc.values())})


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            kids.append(int(stat.parent.name))
    return kids


def phase_device_death(r: Runner, clean: Path, out: Path) -> Row:
    """On ``plain/`` only, as the current user: the device processes are spawned with
    ``sys.executable``, which ``nobody`` may not run when the interpreter lives under a
    private home (as it does here).  The reference is the clean run's ``plain/``."""
    problems: list[str] = []
    clean = clean / "plain"
    log = out.parent / "devices.log"
    proc = r.start(out, "--devices", "cpu,cpu", log=log)
    victim = None
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if victim is None and sum(e["status"] == "ok" for e in read_lines(out)) >= 2:
            kids = _children(proc.pid)
            if kids:
                victim = kids[0]
                os.kill(victim, signal.SIGKILL)
        time.sleep(0.05)
    code = proc.wait(timeout=600)
    err = log.read_text(encoding="utf-8", errors="replace")
    if victim is None:
        problems.append("no device process was killed (run too short?)")
    if code != 1:
        problems.append(f"exit {code} after a device process died, expected 1")
    if victim is not None and "died" not in err:
        problems.append("the summary does not say that a device process died")
    # A SIGKILL that lands between a video's two renames (features, then sidecar) leaves a
    # feature file without its sidecar, as in the kills phase: allowed right after the kill
    # (the ownership record names it as vadfeat's), never after the resume (checked below).
    # Counted as a problem here, it failed the phase when the kill happened to land there.
    problems += [p for p in partial_outputs(out, allow_temporaries=True) if "without sidecar" not in p]
    before = len(read_lines(out))
    code2, err2, _ = r.run(out)
    resumed = run_lines(out, before)
    if code2 != 0 or any(e["status"] == "failed" for e in resumed):
        problems.append(f"resume exit {code2}: {err2.strip()[-300:]!r}")
    problems += partial_outputs(out) + compare_outputs(clean, out, ignore=("video",))
    n_lost = sum(not (out / p.name).exists() or (out / p.name).read_bytes() != p.read_bytes()
                 for p in clean.glob("*.npy"))
    done_first = sum(e["status"] == "ok" for e in read_lines(out)[:before])
    redone = sum(e["status"] == "ok" for e in resumed)
    return Row("--devices cpu,cpu (plain/ videos), one device process SIGKILLed, then resume",
               2, f"first run exit {code}, {done_first} written, summary names the dead "
               f"process; resume wrote the other {redone}, exit {code2}", n_lost, problems)


def phase_disk_full(r: Runner, clean: Path, work: Path, cases: list[Case]) -> list[Row]:
    rows = []
    mnt = work / "full"
    pages = 4096 * 3  # per good video: feature file, sidecar, lock file, one page each
    goods = sum(c.expected(r.privileged) in ("ok", "warn") for c in cases)
    for label, size in (("a third of the space needed", f"{goods * pages // 3 // 1024}k"),
                        ("16 KiB: not even the manifest fits", "16k")):
        if not _mount_tmpfs(mnt, size):
            return [Row("disk full (tmpfs)", 0, "SKIPPED: cannot mount a tmpfs here", 0)]
        try:
            out = mnt / "out"
            code, err, _ = r.run(out)
            torn: list[str] = []
            lines = read_lines(out, torn=torn)
            full = sum("No space left" in (e.get("error") or "") for e in lines)
            ok = sum(e["status"] == "ok" for e in lines)
            problems = partial_outputs(out)
            stopped = "run stopped" in err
            # A full disk can store part of a manifest line without an error; vadfeat
            # then stops the run (saying so), and readers skip the torn line.
            if torn and not (stopped and len(torn) == 1):
                problems += [f"torn manifest line: {t[:80]!r}" for t in torn]
            try:
                from vadfeat.store.manifest import read_manifest

                read_manifest(out)
            except ValueError as exc:
                problems.append(f"vadfeat cannot read the manifest back: {exc}")
            if code == 0:
                problems.append("exit 0 on a full disk")
            written_ok = [e for e in lines if e["status"] == "ok"]
            for e in written_ok:
                if not Path(e["output"]).exists():
                    problems.append(f"manifest says ok but {e['output']} is missing")
            crashed = "Traceback" in err
            if crashed:
                problems.append("stopped with a traceback instead of a message")
            tail = err.strip().splitlines()[-1] if err.strip() else ""
            subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)
            before = len(read_lines(out, torn=[]))
            code2, _, _ = r.run(out)
            rerun = read_lines(out, torn=torn)[before:]
            problems += check_run(out, cases, rerun, privileged=r.privileged)
            problems += partial_outputs(out) + compare_outputs(clean, out)
            rows.append(Row(f"disk full: tmpfs of {size} ({label}), then remounted larger", 2,
                            f"exit {code}{' (' + tail[:110] + ')' if stopped else ''}; "
                            f"{ok} written, {full} failed 'No space left on device'"
                            f"{', 1 torn manifest line' if torn else ''}; "
                            f"after freeing space: exit {code2}",
                            lost(clean, out, cases, privileged=r.privileged), problems,
                            {"size": size, "exit": code, "written": ok, "enospc_failures": full,
                             "stopped": stopped, "torn_lines": len(torn), "rerun_exit": code2}))
        finally:
            _umount(mnt)
    return rows


def phase_read_only(r: Runner, work: Path) -> list[Row]:
    rows = []
    mnt = work / "ro"
    if _mount_tmpfs(mnt, "1m", ro=True):
        try:
            res = subprocess.run(r.cmd(mnt / "out"), capture_output=True, env=_env())
            code, err = res.returncode, res.stderr.decode("utf-8", "replace")
            problems = [] if code == 2 else [f"exit {code}, expected 2"]
            if "cannot write to the output folder" not in err:
                problems.append(f"no clear message: {err.strip()[-200:]!r}")
            rows.append(Row("output folder on a read-only mount (EROFS)", 1,
                            f"exit {code}: {_last_error(err)}", 0, problems))
        finally:
            _umount(mnt)
    else:
        rows.append(Row("output folder on a read-only mount", 0, "SKIPPED: cannot mount", 0))
    if r.user:
        out = work / "not_mine"
        out.mkdir(exist_ok=True)  # owned by root, 0755: nobody may not write here
        res = subprocess.run(r.cmd(out), capture_output=True, env=_env())
        code, err = res.returncode, res.stderr.decode("utf-8", "replace")
        problems = [] if code == 2 else [f"exit {code}, expected 2"]
        if "cannot write to the output folder" not in err:
            problems.append(f"no clear message: {err.strip()[-200:]!r}")
        if any(out.iterdir()):
            problems.append("something was written")
        rows.append(Row("output folder the user may not write to (EACCES, as nobody)", 1,
                        f"exit {code}: {_last_error(err)}", 0, problems))
    return rows


# --------------------------------------------------------------------------- issue 10: ownership


def _stamps(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".vadfeat-locks" not in p.parts and p.name != "manifest.jsonl"}


def _copy_out(r: Runner, clean: Path, out: Path) -> None:
    """A copy of the clean run's output folder that the run's user owns."""
    shutil.copytree(clean, out, symlinks=True)
    if r.user:
        for p in [out, *out.rglob("*")]:
            os.lchown(p, NOBODY, NOBODY)


def _owned_record(out: Path, key: str) -> Path:
    import hashlib

    return out / ".vadfeat-locks" / (hashlib.sha1(key.encode("utf-8", "surrogateescape"))
                                     .hexdigest() + ".owned")


def phase_foreign(r: Runner, clean: Path, out: Path, cases: list[Case]) -> Row:
    """Files vadfeat did not write at three good videos' output paths, run with --overwrite:
    those videos fail naming the file, the files stay byte for byte, all else is kept."""
    _copy_out(r, clean, out)
    plain = sorted((c for c in cases if c.name.startswith("plain/")), key=lambda c: c.name)[:3]
    planted: dict[Path, bytes] = {}
    for k, c in enumerate(plain):
        npy, side = out / c.output, (out / c.output).with_suffix(".json")
        npy.unlink()
        side.unlink()
        _owned_record(out, str(side.relative_to(out))).unlink()
        target = side if k == 0 else npy
        planted[target] = (b'{"mine": true}' if k == 0 else b"user data " * (k + 1))
        target.write_bytes(planted[target])
    code, _, secs = r.run(out, "--overwrite")
    lines = run_lines(out, 0)
    problems = []
    for target, data in planted.items():
        if target.read_bytes() != data:
            problems.append(f"{target} was changed")
    for c in plain:
        e = [x for x in lines if x["video"] == c.name][-1]
        if e["status"] != "failed" or "not written by vadfeat" not in (e["error"] or ""):
            problems.append(f"{c.name}: expected failed naming the foreign file, got {e}")
    if code != 1:
        problems.append(f"exit {code}, expected 1")
    redone = sum(e["status"] == "ok" for e in lines[-len(cases):])
    return Row("foreign files at 3 output paths, --overwrite", 1,
               f"exit {code}; the 3 videos failed naming the file, the 3 files unchanged; "
               f"{redone} other videos redone (--overwrite); {secs:.1f} s", 0, problems,
               {"seconds": round(secs, 1)})


def phase_changed_settings(r: Runner, clean: Path, out: Path) -> Row:
    _copy_out(r, clean, out)
    before = _stamps(out)
    code, err, secs = r.run(out, "--crops", "3")
    problems = []
    if code != 2:
        problems.append(f"exit {code}, expected 2")
    if "crops: 1 -> 3" not in err or "--overwrite" not in err:
        problems.append(f"message lacks the change or the way on: {_last_error(err)}")
    if _stamps(out) != before:
        problems.append("files changed")
    return Row("rerun with other settings (--crops 3)", 1,
               f"exit {code} after {secs:.1f} s (before the model loads), message names "
               f"'crops: 1 -> 3'; no file touched", 0, problems, {"seconds": round(secs, 1)})


def phase_damaged_sidecars(r: Runner, clean: Path, out: Path, cases: list[Case]) -> Row:
    _copy_out(r, clean, out)
    plain = sorted((c for c in cases if c.name.startswith("plain/")), key=lambda c: c.name)[3:7]
    damages = ["[]", "null-shape", "\x00\xff binary", "folder"]
    for c, damage in zip(plain, damages, strict=True):
        side = (out / c.output).with_suffix(".json")
        if damage == "folder":
            side.unlink()
            side.mkdir()
        elif damage == "null-shape":
            side.write_text(json.dumps({**json.loads(side.read_text()), "shape": None}))
        else:
            side.write_bytes(damage.encode("latin-1"))
    before = len(read_lines(out))
    code, err, secs = r.run(out)
    lines = run_lines(out, before)
    by = {e["video"]: e for e in lines}
    problems = []
    if "Traceback" in err:
        problems.append("a traceback")
    for c, damage in zip(plain, damages, strict=True):
        e = by.get(c.name, {})
        want = "failed" if damage == "folder" else "ok"
        if e.get("status") != want:
            problems.append(f"{c.name} ({damage}): {e.get('status')}, expected {want}")
        elif want == "ok" and (out / c.output).read_bytes() != (clean / c.output).read_bytes():
            problems.append(f"{c.name}: redone features differ from the clean run's")
    if code != 1:
        problems.append(f"exit {code}, expected 1")
    return Row("4 damaged sidecars ([], shape null, binary, a folder)", 1,
               f"exit {code}; 3 redone equal to the clean run, the folder named and kept; "
               f"{secs:.1f} s", 0, problems, {"seconds": round(secs, 1)})


def phase_changed_sources(r: Runner, work: Path, inputs: Path) -> Row:
    src = work / "plain_copy"
    shutil.copytree(inputs, src)
    rr = Runner(src, r.checkpoint, r.user)
    out = work / "sources"
    code0, _, _ = rr.run(out)
    videos = sorted(src.glob("v*.mp4"))[:2]
    for k, v in enumerate(videos):  # a longer video under the same name: 80 frames
        _video(v, 80, seed=500 + k)
    before = len(read_lines(out))
    code, _, secs = rr.run(out)
    lines = run_lines(out, before)
    redone = sorted(e["video"] for e in lines if e["status"] == "ok")
    problems = []
    if redone != sorted(v.name for v in videos):
        problems.append(f"redone {redone}, expected {[v.name for v in videos]}")
    for v in videos:
        shape = np.load(out / (v.stem + ".npy")).shape
        if shape[0] != 5:  # floor(80 / 16)
            problems.append(f"{v.name}: {shape[0]} snippets, expected 5")
    if (code0, code) != (0, 0):
        problems.append(f"exit codes {code0}, {code}, expected 0, 0")
    return Row("2 sources replaced by longer videos", 2,
               f"exit {code}; exactly the 2 changed videos redone (5 snippets each), "
               f"{len(lines) - len(redone)} skipped; {secs:.1f} s", 0, problems,
               {"seconds": round(secs, 1)})


def phase_concurrent_settings(r: Runner, work: Path, inputs: Path) -> Row:
    """Two runs with different settings (tail drop / pad) started together on one folder."""
    out = work / "two_settings"
    rr = Runner(inputs, r.checkpoint, r.user)
    procs = [rr.start(out, log=work / "two_a.log"), rr.start(out, "--tail", "pad",
                                                            log=work / "two_b.log")]
    codes = [p.wait(timeout=1800) for p in procs]
    lines = read_lines(out)
    problems = partial_outputs(out)
    oks: dict[str, int] = {}
    for e in lines:
        if e["status"] == "ok":
            oks[e["video"]] = oks.get(e["video"], 0) + 1
    twice = [v for v, n in oks.items() if n > 1]
    if twice:
        problems.append(f"written by both runs: {twice[:5]}")
    tails = {}
    for side in out.glob("*.json"):
        meta = json.loads(side.read_text())
        tails[side.stem] = meta["fingerprint"]["preset"]["tail"]
        n = meta["num_frames"]
        want = -(-n // 16) if tails[side.stem] == "pad" else n // 16
        if meta["shape"][0] != want:
            problems.append(f"{side.name}: {meta['shape'][0]} rows for tail {tails[side.stem]}")
    refused = sum(1 for e in lines if e["status"] == "failed"
                  and "another run with other settings" in (e["error"] or ""))
    if any(c not in (0, 1, 2, 3) for c in codes):
        problems.append(f"exit codes {codes}")
    counts = {t: list(tails.values()).count(t) for t in ("drop", "pad")}
    return Row("2 runs with different settings (tail drop/pad) on one folder", 2,
               f"exit codes {codes}; every video one consistent set ({counts['drop']} drop, "
               f"{counts['pad']} pad), none written twice; {refused} refused as written "
               f"meanwhile with other settings", 0, problems, {"exit_codes": codes, **counts})


def phase_sigterm(r: Runner, clean: Path, out: Path, cases: list[Case]) -> Row:
    proc = r.start(out, log=out.parent / "sigterm.log")
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < 600:
        if (out / "manifest.jsonl").exists() and '"ok"' in (out / "manifest.jsonl").read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    err = (out.parent / "sigterm.log").read_text(errors="replace")
    lines = read_lines(out)
    problems = partial_outputs(out)
    if code != 143:
        problems.append(f"exit {code}, expected 143")
    if "STOPPED by SIGTERM" not in err:
        problems.append("no summary")
    interrupted = sum(e["status"] == "interrupted" for e in lines)
    before = len(lines)
    code2, _, _ = r.run(out)
    problems += check_run(out, cases, run_lines(out, before), privileged=r.privileged)
    problems += partial_outputs(out) + compare_outputs(clean, out)
    if code2 != 1:
        problems.append(f"resume exit {code2}, expected 1")
    return Row("SIGTERM mid-run, then resume", 2,
               f"exit {code} with the summary; {interrupted} video(s) recorded as interrupted; "
               f"resume exit {code2}, outputs equal the clean run's",
               lost(clean, out, cases, privileged=r.privileged), problems, {"exit": code})


def _last_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return lines[-1][:140] if lines else "(no message)"


def _peak_rss(cmd: list[str]) -> tuple[int, float, int]:
    """(exit code, peak RSS in MiB, seconds) of one command, from its own rusage."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, round(time.monotonic() - t0, 1)


def measure_memory(video: Path, checkpoint: Path, out: Path, flags: list[str]) -> dict[str, Any]:
    """Extract one video in a fresh process; its peak RSS, time and frame count."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "vadfeat", "extract", str(video), "-o", str(out),
           "--checkpoint", str(checkpoint), "-q", *flags]
    code, rss, secs = _peak_rss(cmd)
    meta = json.loads(next(out.glob("*.json")).read_text()) if code == 0 else {}
    return {"exit": code, "peak_rss_mib": round(rss, 1), "seconds": secs,
            "frames": meta.get("num_frames"), "snippets": len(meta.get("snippets", []))}


def long_video(folder: Path, minutes: float) -> Path:
    """A ``minutes`` long 64x48 25 fps H.264 video (made once, then reused)."""
    p = folder / f"long_{minutes:g}min.mp4"
    if not p.exists():
        synth.write_video(p, synth.scene_frames(int(minutes * 60 * 25), width=64, height=48,
                                                seed=9), fps=25)
    return p


def phase_memory(work: Path, checkpoint: Path, *, long_minutes: float,
                 default_minutes: float, bound_mib: float, repeats: int) -> list[Row]:
    """Peak RSS of one long 64x48 25 fps video against a one-minute one, ``repeats``
    fresh processes each; the growth compared is the worst long run's peak minus the
    worst short run's (peaks vary by up to ~130 MiB run to run at 224x224 input, with
    how many snippets happen to wait in the queue when the model allocates)."""
    rows = []
    mem = work / "memory"
    configs = [("model input 32x32 (--size 32 --short-side 32)",
                ["--size", "32", "--short-side", "32"], long_minutes),
               ("default preset (videomae-v2, 224x224)", [], default_minutes)]
    for label, flags, minutes in configs:
        runs: dict[str, list[dict[str, Any]]] = {}
        for m in (1.0, minutes):
            video = long_video(mem, m)
            runs[f"{m:g} min"] = [measure_memory(video, checkpoint, mem / "out", flags)
                                  for _ in range(repeats)]
        short, long = runs["1 min"], runs[f"{minutes:g} min"]
        rss_s = sorted(r["peak_rss_mib"] for r in short)
        rss_l = sorted(r["peak_rss_mib"] for r in long)
        growth = rss_l[-1] - rss_s[-1]
        problems = [] if growth <= bound_mib else [f"peak RSS grew by up to {growth:.0f} MiB"]
        problems += [f"exit {r['exit']}" for r in short + long if r["exit"] != 0]
        rows.append(Row(f"memory: {label}, 1 min vs {minutes:g} min at 64x48", 2 * repeats,
                        f"peak RSS {'/'.join(f'{x:.0f}' for x in rss_s)} MiB "
                        f"({short[0]['frames']} frames, {short[0]['seconds']} s) vs "
                        f"{'/'.join(f'{x:.0f}' for x in rss_l)} MiB ({long[0]['frames']} frames, "
                        f"{long[0]['seconds']} s): up to {growth:+.0f} MiB (bound {bound_mib:g})",
                        0, problems, runs))
    return rows


# --------------------------------------------------------------------------- main


def _tiny_checkpoint(path: Path) -> Path:
    import torch

    from vadfeat.backbones.videomae.model import VideoMAEv2, get_spec, init_random

    enc = VideoMAEv2(get_spec("vit_tiny_patch16_224"))
    init_random(enc, seed=7)
    torch.save({"module": enc.state_dict()}, path)
    return path


def print_table(rows: list[Row]) -> None:
    print()
    print("| phase | runs | what happened | lost | checks |")
    print("|---|---|---|---|---|")
    for row in rows:
        checks = "all held" if row.ok else f"FAILED: {'; '.join(row.problems[:3])}"
        print(f"| {row.phase} | {row.runs} | {row.happened} | {row.lost} | {checks} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=200, help="inputs in the corpus (10 %% broken)")
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs that must land mid-run")
    ap.add_argument("--out", type=Path, required=True, help="work folder (emptied first)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--long-minutes", type=float, default=30.0,
                    help="length of the long video for the memory check at 32x32 model input")
    ap.add_argument("--default-minutes", type=float, default=10.0,
                    help="length of the long video for the memory check with the default preset")
    ap.add_argument("--rss-bound", type=float, default=64.0,
                    help="allowed peak-RSS growth from 1 min to the long video, MiB")
    ap.add_argument("--repeats", type=int, default=3, help="processes per memory measurement")
    ap.add_argument("--skip", default="", help="comma-separated phases to skip: kills, "
                    "concurrent, devices, disk, readonly, foreign, settings, damaged, sources, "
                    "twosettings, sigterm, commands, memory")
    args = ap.parse_args(argv)
    _edited_media()  # puts tests/ on the path, for the next import too
    from stress.commands_corpus import phase_commands  # it imports this module

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    work = args.out.resolve()
    if work.exists():
        restore_permissions(work)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    work.chmod(0o755)
    rng = random.Random(args.seed)

    t0 = time.monotonic()
    cases = build_corpus(work / "in", args.videos, seed=args.seed)
    build_s = time.monotonic() - t0
    ckpt = _tiny_checkpoint(work / "tiny.pth")
    runner = Runner(work / "in", ckpt, unprivileged_prefix(ckpt))
    broken = [c for c in cases if c.broken]
    size = sum(p.stat().st_size for p in (work / "in").rglob("*")
               if p.is_file() and not p.is_symlink() and os.access(p, os.R_OK))
    print(f"corpus: {len(cases)} inputs ({len(broken)} broken = {100 * len(broken) / len(cases):.0f} %, "
          f"{len({c.kind for c in cases})} kinds), {size / 1e6:.1f} MB, built in {build_s:.0f} s; "
          f"runs as {'nobody' if runner.user else 'the current user'}", flush=True)

    rows: list[Row] = []
    clean = work / "clean"
    row, seconds, startup = phase_clean(runner, clean, cases)
    rows.append(row)
    print_table(rows[-1:])
    phases = [
        ("kills", lambda: [phase_kills(runner, clean, work / "killed", cases, kills=args.kills,
                                       seconds=seconds, startup=startup, rng=rng)]),
        ("concurrent", lambda: [phase_concurrent(runner, clean, work / "concurrent", cases)]),
        ("devices", lambda: [phase_device_death(Runner(work / "in" / "plain", ckpt), clean,
                                                work / "devices")]),
        ("disk", lambda: phase_disk_full(runner, clean, work, cases)),
        ("readonly", lambda: phase_read_only(runner, work)),
        ("foreign", lambda: [phase_foreign(runner, clean, work / "foreign", cases)]),
        ("settings", lambda: [phase_changed_settings(runner, clean, work / "settings")]),
        ("damaged", lambda: [phase_damaged_sidecars(runner, clean, work / "damaged", cases)]),
        ("sources", lambda: [phase_changed_sources(runner, work, work / "in" / "plain")]),
        ("twosettings", lambda: [phase_concurrent_settings(runner, work, work / "in" / "plain")]),
        ("sigterm", lambda: [phase_sigterm(runner, clean, work / "sigterm", cases)]),
        ("commands", lambda: phase_commands(clean, work / "commands", ckpt, work / "in")),
        ("memory", lambda: phase_memory(work, ckpt, long_minutes=args.long_minutes,
                                        default_minutes=args.default_minutes,
                                        bound_mib=args.rss_bound, repeats=args.repeats)),
    ]
    for name, phase in phases:
        if name in skip:
            continue
        new = phase()
        rows += new
        print_table(new)
    total = time.monotonic() - t0
    print(f"\nall phases: {total:.0f} s")
    print_table(rows)
    result = {
        "argv": sys.argv if argv is None else argv,
        "corpus": {"inputs": len(cases), "broken": len(broken), "bytes": size,
                   "kinds": sorted({c.kind for c in cases}),
                   "cases": [asdict(c) for c in cases]},
        "rows": [asdict(r) | {"ok": r.ok} for r in rows],
        "seconds": round(total, 1),
    }
    (work / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=True))
    failed = [r for r in rows if not r.ok]
    for r in failed:
        print(f"\nFAILED {r.phase}:", *r.problems[:20], sep="\n  ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
