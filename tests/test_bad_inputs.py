"""Issue 11, inputs half: every bad input gets a clear answer at the right moment.

Missing inputs are usage errors (exit 2) before any output exists; inputs that cannot
be processed fail alone (named in the manifest and summary, exit 1) while the run
goes on; outputs are named so that they say where they came from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from vadfeat.cli import main
from vadfeat.engines.local import FeatureExtractor, extract
from vadfeat.store.frames import dump_frames
from vadfeat.store.manifest import read_manifest
from vadfeat.testing import synth


@pytest.fixture(scope="module")
def extractor(tiny_checkpoint: Path) -> FeatureExtractor:
    return FeatureExtractor(tiny_checkpoint, batch_size=8, device="cpu")


def _video(path: Path, frames: int = 16, **kw) -> Path:
    return synth.write_video(path, synth.scene_frames(frames, width=64, height=48), **kw)


def _entries(out: Path) -> dict[str, dict]:
    return {e["video"]: e for e in read_manifest(out)}


def test_missing_input_is_a_usage_error(tmp_path: Path, tiny_checkpoint: Path, caplog) -> None:
    """A typed path that does not exist: exit 2 and no output folder (it used to be a
    "failed video", exit 1, with an output folder and manifest)."""
    good = _video(tmp_path / "good.mp4")
    out = tmp_path / "out"
    code = main(["extract", str(good), str(tmp_path / "typo.mp4"), "-o", str(out),
                 "--checkpoint", str(tiny_checkpoint), "-q"])
    assert code == 2
    assert not out.exists()
    assert "typo.mp4 does not exist" in caplog.text
    # A list whose names are relative to another folder: exit 2, pointing to --root.
    lst = tmp_path / "lists" / "test.txt"
    lst.parent.mkdir()
    lst.write_text("good.mp4\n")
    caplog.clear()
    assert main(["extract", str(lst), "-o", str(out), "--checkpoint", str(tiny_checkpoint),
                 "-q"]) == 2
    assert "--root" in caplog.text and not out.exists()
    assert main(["extract", str(lst), "--root", str(tmp_path), "-o", str(out),
                 "--checkpoint", str(tiny_checkpoint), "-q"]) == 0


def test_unusable_list_entries_fail_alone_and_rerun_the_same(tmp_path: Path,
                                                             extractor: FeatureExtractor) -> None:
    """A NUL byte (a traceback before) and a 5,000-character entry ("File name too
    long" stopped the run, and the rerun failed the same way): both fail alone, the good
    video is extracted, and a rerun says the same without stopping."""
    _video(tmp_path / "good.mp4")
    lst = tmp_path / "l.txt"
    lst.write_text("good.mp4\nb\0c.mp4\n" + "x" * 5000 + ".mp4\n")
    out = tmp_path / "out"
    for run in range(2):
        s = extract([lst], out, extractor=extractor, progress=False)
        assert s.exit_code == 1
        assert (s.ok, s.skipped) == ((1, 0) if run == 0 else (0, 1))
        reasons = sorted(r for _, r in s.failed)
        assert reasons == ["l.txt line 2: the name holds a NUL byte, which no file name can hold",
                           "l.txt line 3: file name too long for the file system"]
    assert (out / "good.npy").exists()


def test_unstatable_symlink_fails_alone(tmp_path: Path, extractor: FeatureExtractor,
                                        monkeypatch) -> None:
    """``cwd -> /proc/1/cwd`` under the input folder: "run stopped: Permission denied"
    and nothing extracted before.  Root can stat it, so the refusal is patched in."""
    d = tmp_path / "in"
    _video(d / "good.mp4")
    os.symlink("/proc/1/cwd", d / "cwd")
    real = Path.stat

    def stat(self, *args, **kwargs):
        if self.name == "cwd":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    s = extract([d], tmp_path / "out", extractor=extractor, progress=False)
    assert s.ok == 1 and s.failed == [("cwd", "cannot be examined: Permission denied")]


def test_output_name_at_the_length_limit(tmp_path: Path, extractor: FeatureExtractor) -> None:
    """157 bytes of stem is the limit (255 - 98 reserved, see inputs.NAME_RESERVE): such
    a video is extracted (features, sidecar, and frame dumps with their temporary
    names); one byte more fails at discovery, never opened (it is random bytes: opening
    it would say "not a video")."""
    d = tmp_path / "in"
    fits = _video(d / ("a" * 157 + ".mp4"))
    synth.random_bytes(d / ("b" * 158 + ".mp4"), 5000)
    out = tmp_path / "out"
    s = extract([d], out, extractor=extractor, progress=False)
    assert s.ok == 1 and len(s.failed) == 1
    name, reason = s.failed[0]
    assert name == "b" * 158 + ".mp4"
    assert reason.startswith("output name too long") and "158 bytes" in reason
    assert _entries(out)[name]["seconds"] == 0.0
    assert (out / ("a" * 157 + ".npy")).exists() and (out / ("a" * 157 + ".json")).exists()
    frames = dump_frames([fits], tmp_path / "frames")
    assert frames.ok == 1 and (tmp_path / "frames" / ("a" * 157 + ".frames.json")).exists()
    # The per-crop layout's longest file name fits too.
    per_crop = extract([fits], tmp_path / "pc", layout="per-crop", extractor=extractor,
                       progress=False)
    assert per_crop.ok == 1 and (tmp_path / "pc" / ("a" * 157 + "__0.npy")).exists()


def test_same_stem_outputs_say_where_they_came_from(tmp_path: Path,
                                                    extractor: FeatureExtractor) -> None:
    """x.avi and x.mp4 in one folder: the manifest called the second "x~2.mp4", a file
    that does not exist.  Now both are recorded by their real names and written to
    x.avi.npy and x.mp4.npy; each sidecar's source is its own file."""
    d = tmp_path / "in"
    _video(d / "x.avi")
    _video(d / "x.mp4")
    out = tmp_path / "out"
    s = extract([d], out, extractor=extractor, progress=False)
    assert s.ok == 2
    entries = _entries(out)
    assert sorted(entries) == ["x.avi", "x.mp4"]
    for ext in ("avi", "mp4"):
        assert entries[f"x.{ext}"]["output"] == str(out / f"x.{ext}.npy")
        meta = json.loads((out / f"x.{ext}.json").read_text())
        assert meta["source"] == str((d / f"x.{ext}").resolve()) and meta["video"] == f"x.{ext}"


def test_rotated_video_sidecar(tmp_path: Path, extractor: FeatureExtractor) -> None:
    """The sidecar records the displayed size and the rotation applied."""
    path = synth.write_video(tmp_path / "phone.mp4", synth.corner_frames(16, width=64, height=48),
                             rotation=90)
    out = tmp_path / "out"
    assert extract([path], out, extractor=extractor, progress=False).ok == 1
    meta = json.loads((out / "phone.json").read_text())
    assert (meta["width"], meta["height"], meta["rotation"]) == (48, 64, 90)


def test_passed_over_in_the_summary(tmp_path: Path, extractor: FeatureExtractor) -> None:
    d = tmp_path / "in"
    _video(d / "a.mp4")
    (d / "readme.txt").write_text("x")
    s = extract([d], tmp_path / "out", extractor=extractor, progress=False)
    assert s.exit_code == 0
    assert "passed over 1 (neither a video nor an image file): " + str(d / "readme.txt") \
        in s.describe()


def test_max_pixels_flag(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A video over --max-pixels fails alone with the reason; the default takes it."""
    big = _video(tmp_path / "in" / "big.mp4")
    out = tmp_path / "out"
    code = main(["extract", str(big), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "-q",
                 "--max-pixels", str(64 * 48 - 1)])
    assert code == 1
    assert "more than the limit of 3,071" in _entries(out)["big.mp4"]["error"]
    assert main(["extract", str(big), "-o", str(out), "--checkpoint", str(tiny_checkpoint),
                 "-q"]) == 0
    assert np.load(out / "big.npy").shape[0] == 1


def test_proc_link_as_an_unprivileged_user(tmp_path: Path) -> None:
    """The real thing, without patches: a user who cannot examine /proc/1/cwd."""
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    d = Path(tempfile.mkdtemp(prefix="vadfeat-proc-", dir="/tmp"))
    try:
        d.chmod(0o755)
        (d / "a.mp4").write_bytes(b"x")
        (d / "a.mp4").chmod(0o644)
        os.symlink("/proc/1/cwd", d / "cwd")
        code = ("import json, sys; from vadfeat.io.inputs import discover; "
                "print(json.dumps([[str(i.name), i.error] for i in discover([sys.argv[1]])]))")
        cmd = [sys.executable, "-c", code, str(d)]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, timeout=120, env={**os.environ, "HOME": "/tmp"})
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        assert json.loads(r.stdout) == [["a.mp4", None],
                                        ["cwd", "cannot be examined: Permission denied"]]
    finally:
        shutil.rmtree(d)
