"""One rule for every writing command (issue 20): it replaces only files its own records
name, and it refuses (exit 2, before any work) an output that is, holds or lies inside
one of its inputs.

One table of commands (``COMMANDS``) against four cases: the output *is* the input,
lies *inside* it, *holds* it, or a user's file sits at a name the command writes.  Each
must exit 2, name the file in its message and leave every file that was there
byte-identical (and write nothing at all).  A rerun of each command into its own output
still works and replaces its own files.  Plus :mod:`vadfeat.store.ownership` on its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vadfeat.cli import main
from vadfeat.errors import ConfigError
from vadfeat.store.ownership import RECORD, claim_file, claim_outputs, read_record, refuse_overlap
from vadfeat.testing import synth

VIDEOS = {"Abuse001_x264": (4, 70), "Normal_Videos_001_x264": (3, 50)}  # rows, decoded frames


def write_features(root: Path, names: dict[str, tuple[int, int]] = VIDEOS) -> Path:
    """Flat ``[T, 2, 6]`` features with vadfeat-style sidecars (what RTFM's lists need)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (rows, frames) in names.items():
        arr = np.random.default_rng(rows).standard_normal((rows, 2, 6)).astype(np.float32)
        np.save(root / f"{name}.npy", arr)
        side = {"video": f"{name}.mp4", "num_frames": frames, "fps": 30.0, "shape": [rows, 2, 6],
                "snippets": [[16 * i, 16 * i + 15] for i in range(rows)]}
        (root / f"{name}.json").write_text(json.dumps(side))
    return root


def write_masks(root: Path, names: dict[str, tuple[int, int]] = VIDEOS) -> Path:
    """A ShanghaiTech-style npy-dir: one 0/1 mask per decoded frame."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (_, frames) in names.items():
        mask = np.zeros(frames, dtype=np.uint8)
        if name.startswith("Abuse"):
            mask[20:40] = 1
        np.save(root / f"{name}.npy", mask)
    return root


@dataclass(frozen=True)
class Command:
    """One writing command: its argv for an output, its main input, a name it writes."""

    name: str
    argv: Callable[[dict[str, Path], Path], list[str]]
    input: str          # the key in the inputs dict the overlap cases aim at
    writes: str | None  # a file name it writes directly in OUT (None: not a folder command)
    file_output: bool = False


COMMANDS = [
    Command("labels", lambda i, o: ["labels", str(i["gt"]), "--format", "npy-dir", "--features",
                                    str(i["feat"]), "-o", str(o)], "feat", "labels.json"),
    Command("labels-gt", lambda i, o: ["labels", str(i["gt"]), "--format", "npy-dir", "-o", str(o)],
            "gt", "labels.json"),
    Command("align", lambda i, o: ["align", str(i["feat"]), "--labels", str(i["gt"]), "-o", str(o)],
            "feat", "align.json"),
    Command("align-legacy", lambda i, o: ["align", str(i["feat"]), "--labels", str(i["gt"]),
                                          "--mode", "legacy", "-o", str(o)], "feat", "gt-test.npy"),
    Command("lists", lambda i, o: ["lists", str(i["feat"]), "--format", "rtfm", "--labels", str(i["gt"]),
                                   "--naming", "ucf", "-o", str(o)], "feat", "dataset-test.list"),
    Command("resample", lambda i, o: ["resample", str(i["feat"]), "--segments", "2", "-o", str(o)],
            "feat", "Abuse001_x264.npy"),
    Command("inspect", lambda i, o: ["inspect", str(i["feat"]), "--width", "200", "--height", "100",
                                     "-o", str(o)], "feat", "index.html"),
    Command("compare", lambda i, o: ["compare", str(i["feat"]), str(i["other"]), "--plots", "1",
                                     "-o", str(o)], "other", "compare.json"),
    # export's per-video overwrite rule is export's own (a user's file fails that video, exit 1).
    Command("export", lambda i, o: ["export", str(i["feat"]), "--format", "per-crop", "-o", str(o)],
            "feat", None),
    Command("checkpoint-convert", lambda i, o: ["checkpoint", "convert", str(i["ckpt"]), str(o)],
            "ckpt", "model.safetensors", file_output=True),
    Command("compress", lambda i, o: ["compress", str(i["ckpt"]), "--prune", "0.1", "-o", str(o)],
            "ckpt", "model.safetensors", file_output=True),
    # extract's and frames' per-video rules are their own (test_integrity.py, test_frames.py).
    Command("extract", lambda i, o: ["extract", str(i["vid"]), "--checkpoint", str(i["ckpt"]), "-q",
                                     "-o", str(o)], "vid", None),
    Command("extract-checkpoint", lambda i, o: ["extract", str(i["vid"]), "--checkpoint", str(i["ckpt"]),
                                                "-q", "-o", str(o)], "ckpt", None),
    Command("frames", lambda i, o: ["frames", str(i["vid"]), "-o", str(o)], "vid", None),
]


@pytest.fixture
def inputs(tmp_path: Path, tiny_checkpoint: Path) -> dict[str, Path]:
    # Each input in a folder of its own: "holds" aims at one input at a time.
    data = tmp_path / "data"
    ckpt = data / "c" / "ck" / "vit_t.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(tiny_checkpoint.read_bytes())
    vid = synth.write_video(data / "v" / "vid" / "clip.mp4", synth.scene_frames(16, width=32, height=32))
    return {"feat": write_features(data / "f" / "feat"), "other": write_features(data / "o" / "other"),
            "gt": write_masks(data / "g" / "gt"), "ckpt": ckpt, "vid": vid.parent}


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = None if p.is_dir() else p.read_bytes()
    return out


def _output_for(case: str, cmd: Command, inp: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    """(the output to give, the file the message must name) for one case."""
    target = inp[cmd.input]
    if case == "is":
        return target, target
    if case == "inside":
        return target / "sub", target
    if case == "holds":
        return target.parent, target
    # a user's file at a name the command writes
    out = tmp_path / "mine"
    out.mkdir()
    user_file = out / cmd.writes  # type: ignore[operator]
    user_file.write_bytes(b"my own notes, not vadfeat's")
    return (user_file if cmd.file_output else out), user_file


@pytest.mark.parametrize("case", ["is", "inside", "holds", "user-file"])
@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.name for c in COMMANDS])
def test_every_command_refuses_before_any_work(cmd: Command, case: str, inputs: dict[str, Path],
                                               tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if case == "user-file" and cmd.writes is None:
        pytest.skip("this command's per-video overwrite rule is tested with the command")
    out, named = _output_for(case, cmd, inputs, tmp_path)
    before = snapshot(tmp_path)
    assert main(cmd.argv(inputs, out)) == 2
    assert str(named) in caplog.text, caplog.text  # the one error line names the file
    assert snapshot(tmp_path) == before  # byte-identical, and nothing new (no record either)


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.name for c in COMMANDS])
def test_every_command_reruns_into_its_own_output(cmd: Command, inputs: dict[str, Path],
                                                  tmp_path: Path) -> None:
    out = tmp_path / "out" / "model.safetensors" if cmd.file_output else tmp_path / "out"
    assert main(cmd.argv(inputs, out)) == 0
    first = snapshot(tmp_path / "out")
    assert first
    if cmd.writes is not None and not cmd.file_output:
        assert (out / cmd.writes).is_file()
        (out / cmd.writes).write_bytes(b"changed")  # its own file: the rerun replaces it
    elif cmd.file_output:
        os.utime(out, ns=(0, 0))
    assert main(cmd.argv(inputs, out)) == 0
    again = snapshot(tmp_path / "out")
    assert set(again) == set(first)
    if cmd.writes is not None and not cmd.file_output:
        assert again[cmd.writes] == first[cmd.writes]
    if cmd.file_output:
        assert out.stat().st_mtime_ns != 0  # written again


# ------------------------------------------------------------- the cases named in issue 20


def test_labels_into_the_features_leaves_them_alone(inputs: dict[str, Path]) -> None:
    feat = inputs["feat"]
    before = snapshot(feat)
    assert main(["labels", str(inputs["gt"]), "--format", "npy-dir", "--features", str(feat),
                 "-o", str(feat)]) == 2
    assert snapshot(feat) == before


def test_align_legacy_cannot_write_over_the_features(tmp_path: Path) -> None:
    # `-o DIR` writes DIR/features: with the features at DIR/features it would rewrite them.
    feat = write_features(tmp_path / "run" / "features")
    gt = write_masks(tmp_path / "gt")
    before = snapshot(tmp_path / "run")
    assert main(["align", str(feat), "--labels", str(gt), "--mode", "legacy",
                 "-o", str(tmp_path / "run")]) == 2
    assert snapshot(tmp_path / "run") == before


def test_resample_inside_the_features_is_refused_and_lists_stay_single(
        inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feat = inputs["feat"]
    assert main(["resample", str(feat), "-o", str(feat / "sub")]) == 2
    assert not (feat / "sub").exists()
    capsys.readouterr()
    assert main(["lists", str(feat), "--format", "rtfm", "--naming", "ucf", "-o", str(tmp_path / "l")]) == 0
    lines = (tmp_path / "l" / "dataset-train.list").read_text().splitlines()
    assert sorted(Path(x).stem for x in lines) == sorted(VIDEOS)  # each video once


def test_a_symlink_to_the_input_is_the_input(inputs: dict[str, Path], tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(inputs["feat"], target_is_directory=True)
    before = snapshot(inputs["feat"])
    assert main(["resample", str(inputs["feat"]), "-o", str(link / ".." / "link" / "x")]) == 2
    assert snapshot(inputs["feat"]) == before


@pytest.mark.parametrize("argv", [
    lambda ck: ["checkpoint", "convert", str(ck), str(ck), "--dtype", "fp16"],
    lambda ck: ["compress", str(ck), "-o", str(ck)],
], ids=["convert", "compress"])
def test_a_lossy_copy_never_replaces_its_original(argv: Callable[[Path], list[str]], tmp_path: Path,
                                                  inputs: dict[str, Path]) -> None:
    # An fp32 original in safetensors: converting it onto itself would keep only fp16.
    ck = tmp_path / "orig.safetensors"
    assert main(["checkpoint", "convert", str(inputs["ckpt"]), str(ck), "--dtype", "fp32"]) == 0
    before = ck.read_bytes()
    assert main(argv(ck)) == 2
    assert ck.read_bytes() == before
    hard = tmp_path / "hard.safetensors"   # another name of the same file
    os.link(ck, hard)
    assert main(["checkpoint", "convert", str(ck), str(hard)]) == 2
    assert ck.read_bytes() == before


# ------------------------------------------------------------------- the module on its own


def test_refuse_overlap_resolves_relative_paths_and_dotdot(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    with pytest.raises(ConfigError, match="lies inside the input"):
        refuse_overlap("b/../b/c", [tmp_path / "a" / "b"], command="x")
    with pytest.raises(ConfigError, match="holds the input"):
        refuse_overlap("..", ["b"], command="x")
    refuse_overlap(tmp_path / "a" / "bb", ["b", None], command="x")  # a sibling with a common prefix


def test_claim_outputs_names_the_foreign_file_and_counts_the_rest(tmp_path: Path) -> None:
    (tmp_path / "a.npy").write_bytes(b"x")
    (tmp_path / "b.npy").write_bytes(b"y")
    with pytest.raises(ConfigError, match=r"a\.npy \(and 1 more\) exists and was not written by `vadfeat x`"):
        claim_outputs(tmp_path, ["a.npy", "b.npy", "c.npy"], command="x")
    assert not (tmp_path / RECORD).exists()
    with pytest.raises(ConfigError, match="outside the output folder"):
        claim_outputs(tmp_path, ["../escape.npy"], command="x")


def test_another_commands_files_are_not_its_own(tmp_path: Path) -> None:
    claim_outputs(tmp_path, ["gt-test.npy"], command="align")
    (tmp_path / "gt-test.npy").write_bytes(b"align's")
    with pytest.raises(ConfigError, match="`vadfeat align` wrote it"):
        claim_outputs(tmp_path, ["gt-test.npy"], command="lists")
    claim_outputs(tmp_path, ["gt-test.npy"], command="align")  # its own: fine


def test_a_damaged_record_stops_the_command(tmp_path: Path) -> None:
    (tmp_path / RECORD).write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a vadfeat ownership record"):
        claim_outputs(tmp_path, ["a.npy"], command="x")
    assert (tmp_path / RECORD).read_text() == "[1, 2]"


def test_names_that_are_not_utf8_round_trip_in_the_record(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9") + ".npy"
    claim_outputs(tmp_path, [name, "caf\u00e9.npy"], command="x")
    assert read_record(tmp_path)["x"] == {name, "caf\u00e9.npy"}
    (tmp_path / name).write_bytes(b"mine")
    claim_outputs(tmp_path, [name], command="x")  # listed: may be replaced
    json.loads((tmp_path / RECORD).read_bytes().decode("utf-8"))  # the record is valid UTF-8 JSON


def test_claim_file_replaces_only_what_vadfeat_wrote(tmp_path: Path) -> None:
    f = tmp_path / "m.safetensors"
    f.write_bytes(b"user")
    with pytest.raises(ConfigError, match="was not written by vadfeat"):
        claim_file(f, [tmp_path / "in.pth"], command="compress", written_by_vadfeat=lambda p: False)
    assert claim_file(f, [tmp_path / "in.pth"], command="compress", written_by_vadfeat=lambda p: True) == f
    with pytest.raises(ConfigError, match="is the input"):
        claim_file(f, [f], command="compress", written_by_vadfeat=lambda p: True)


def test_lists_codebase_root_keeps_the_repositorys_own_files(inputs: dict[str, Path], tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    # RTFM ships list/ucf-i3d-test.list; used as the test split it is an input, and in any case
    # a file vadfeat did not write: both refused, nothing written.
    repo = tmp_path / "RTFM"
    shipped = repo / "list" / "ucf-i3d-test.list"
    shipped.parent.mkdir(parents=True)
    shipped.write_text("Abuse001_x264\n")
    before = snapshot(repo)
    base = ["lists", str(inputs["feat"]), "--format", "rtfm", "--labels", str(inputs["gt"]),
            "--dataset", "ucf", "--codebase-root", str(repo)]
    assert main([*base, "--test-split", str(shipped)]) == 2
    assert f"{shipped} is the input {shipped}" in caplog.text
    assert main(base) == 2
    assert f"{shipped} exists and was not written by `vadfeat lists`" in caplog.text
    assert snapshot(repo) == before
    # The README's advice: move the shipped file aside once. A checkout that holds the
    # features is fine too: only the files written must not be inputs.
    feat_in_repo = write_features(repo / "features")
    shipped.rename(shipped.with_name(shipped.name + ".orig"))
    assert main(["lists", str(feat_in_repo), "--format", "rtfm", "--labels", str(inputs["gt"]),
                 "--dataset", "ucf", "--codebase-root", str(repo)]) == 0
    assert shipped.is_file()
    assert (repo / "list" / "ucf-i3d-test.list.orig").read_text() == "Abuse001_x264\n"


def test_a_file_where_a_folder_goes_is_named(tmp_path: Path) -> None:
    (tmp_path / "GT").write_text("a user's notes")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "snippet_labels").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r"/GT exists and was not written"):
        claim_outputs(tmp_path, ["GT/frame_label.pickle"], command="align")
    with pytest.raises(ConfigError, match=r"/snippet_labels exists and was not written"):
        claim_outputs(tmp_path, ["snippet_labels/v.npy"], command="align")


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.writes is not None], ids=lambda c: c.name)
def test_a_killed_runs_temporaries_are_removed_by_the_next(cmd: Command, inputs: dict[str, Path],
                                                           tmp_path: Path) -> None:
    # What a SIGKILL between writing a temporary and renaming it leaves: the temporary,
    # named with the dead writer's host and pid (issue 20: no later run removed them).
    import socket
    import subprocess
    import sys

    from vadfeat.store.atomic import tmp_name

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    out = tmp_path / "out"
    target = out / cmd.writes if cmd.file_output else out  # type: ignore[operator]
    assert main(cmd.argv(inputs, target)) == 0
    mine = tmp_name(out / cmd.writes)  # type: ignore[operator]
    stale = mine.with_name(mine.name.replace(f"{socket.gethostname()}.{os.getpid()}",
                                             f"{socket.gethostname()}.{pid}"))
    assert stale != mine
    stale.write_bytes(b"half a file")
    # a live process's (a concurrent run's) temporary is left alone: our parent is alive
    live = mine.with_name(mine.name.replace(f"{socket.gethostname()}.{os.getpid()}",
                                            f"{socket.gethostname()}.{os.getppid()}"))
    live.write_bytes(b"in flight")
    assert main(cmd.argv(inputs, target)) == 0
    assert not stale.exists()
    assert live.read_bytes() == b"in flight"
    live.unlink()
