"""The exception hierarchy lives in vadfeat.errors, and the CLI turns every VadfeatError into
one line on stderr and the exit code of its class (2: usage/configuration, 1: the rest)."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import vadfeat
from vadfeat import errors
from vadfeat.cli import main

SRC = str(Path(vadfeat.__file__).resolve().parents[1])


def _modules() -> list[str]:
    skip = ("vadfeat.engines.ray",)  # needs the optional ray package
    return [m.name for m in pkgutil.walk_packages(vadfeat.__path__, "vadfeat.")
            if m.name not in skip and not m.name.startswith("vadfeat.__main__")]


def test_every_exception_class_is_defined_in_errors() -> None:
    # Before the move FeatureReadError lived in store/reader.py, LabelError in dataset/labels.py
    # and _NotOurs (now ForeignFileError) in dataset/export.py.
    elsewhere = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == name
                    and name != "vadfeat.errors"):
                elsewhere.append(f"{name}.{attr}")
    assert elsewhere == []


def test_every_error_is_a_vadfeat_error_with_a_documented_exit_code() -> None:
    classes = [c for c in vars(errors).values() if inspect.isclass(c) and issubclass(c, Exception)]
    assert len(classes) == 16  # + NoAudioStreamError, AudioGridError (audio, VGGish), ShardReadError
    for cls in classes:
        assert issubclass(cls, errors.VadfeatError), cls
        assert cls.__doc__ and f"exit code {cls.exit_code}" in " ".join(cls.__doc__.split()), cls
        # The rule of the exit-code table: usage and configuration errors are 2, the rest 1.
        usage = issubclass(cls, (errors.ConfigError, errors.CheckpointError))
        assert cls.exit_code == (2 if usage else 1), cls


def test_old_import_paths_give_the_same_classes() -> None:
    from vadfeat.dataset.labels import LabelError
    from vadfeat.store.reader import FeatureReadError

    assert FeatureReadError is errors.FeatureReadError is vadfeat.FeatureReadError
    assert LabelError is errors.LabelError is vadfeat.LabelError
    assert issubclass(FeatureReadError, errors.ConfigError)
    assert issubclass(LabelError, errors.ConfigError)


def _run(argv: list[str], caplog: pytest.LogCaptureFixture) -> tuple[int, list[logging.LogRecord]]:
    caplog.clear()
    with caplog.at_level(logging.INFO):
        code = main(argv)
    return code, [r for r in caplog.records if r.levelno >= logging.ERROR]


def _one_error(records: list[logging.LogRecord], text: str) -> None:
    assert len(records) == 1
    assert records[0].exc_info is None  # no traceback
    message = records[0].getMessage()
    assert text in message and "\n" not in message


# -- the ConfigError family: exit 2 (real failures, no patching)

def test_feature_read_error_exits_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "nothing_here"
    code, records = _run(["resample", str(missing), "-o", str(tmp_path / "o")], caplog)
    assert code == 2
    _one_error(records, f"features folder {missing} does not exist")


def test_label_error_exits_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "gt.pickle"
    code, records = _run(["labels", str(missing), "--format", "pickle", "-o", str(tmp_path / "o")],
                         caplog)
    assert code == 2
    _one_error(records, f"ground-truth pickle {missing} does not exist")


def test_config_error_exits_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "small.pth"
    code, records = _run(["compress", str(tmp_path / "any.pth"), "-o", str(out), "--prune", "0.5"], caplog)
    assert code == 2
    _one_error(records, "name it *.safetensors")


# -- CheckpointError: exit 2 ("no checkpoint" in the table)

def test_checkpoint_error_exits_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code, records = _run(["checkpoint", "inspect", str(tmp_path / "gone.pth")], caplog)
    assert code == 2
    _one_error(records, "checkpoint not found")


# -- VideoError family and other VadfeatErrors: exit 1 (they used to escape as tracebacks)

@pytest.mark.parametrize("cls", [errors.VideoOpenError, errors.DecodeError, errors.VideoTooShortError,
                                 errors.VideoError, errors.ForeignFileError, errors.VadfeatError])
def test_other_errors_exit_1(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                             monkeypatch: pytest.MonkeyPatch, cls: type[errors.VadfeatError]) -> None:
    import vadfeat.store.frames as frames_module

    def fail(*args: object, **kwargs: object) -> None:
        raise cls("a.mp4: corrupt data at 1.20 s\n(second line of the reason)")

    monkeypatch.setattr(frames_module, "dump_frames", fail)
    code, records = _run(["frames", str(tmp_path / "a.mp4"), "-o", str(tmp_path / "o")], caplog)
    assert code == 1
    _one_error(records, "a.mp4: corrupt data at 1.20 s (second line of the reason)")


def test_the_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    # A real process: what a user sees on stderr.
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.run([sys.executable, "-m", "vadfeat", "checkpoint", "inspect", str(bad)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ERROR {bad}: not a readable safetensors file")
    assert "Traceback" not in proc.stderr


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "or a command on one input failed" in out
    assert "missing\n       or unreadable checkpoint" in out
