"""`--help` says each default once, keeps the exit-code table as a table, and names what
the registries hold (issue 21, "Smaller things seen")."""

from __future__ import annotations

import argparse
import re

import pytest

from vadfeat.backbones._registry import list_backbones
from vadfeat.cli import _parsers, build_parser
from vadfeat.pipeline.presets import list_presets


def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    return [(p.prog, p) for p in _parsers(build_parser())]


def _option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help of one option as ``--help`` prints it (defaults filled in), on one line."""
    return " ".join(parser._get_formatter()._expand_help(action).split())


def _action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def _sub(name: str) -> argparse.ArgumentParser:
    return next(p for prog, p in _all_parsers() if prog == f"vadfeat {name}")


@pytest.mark.parametrize("prog", [prog for prog, _ in _all_parsers()])
def test_each_default_is_said_once(prog: str) -> None:
    parser = dict(_all_parsers())[prog]
    # Before: "(default: 8K UHD, 7680x4320) (default: 33177600)", "(1) (default: 1)",
    # "default 8 (default: 8)".
    for action in parser._actions:
        if not action.help or action.help == argparse.SUPPRESS:
            continue
        text = _option_help(parser, action)
        assert text.count("(default:") <= 1, f"{prog} {action.option_strings}: {text}"
        if "(default:" not in text:
            continue
        said = text[:text.index("(default:")]
        value = str(action.default)
        numbers = {value} | ({f"{action.default:g}"} if isinstance(action.default, (int, float)) else set())
        assert not re.search(r"\bdefault\b", said, re.IGNORECASE), f"{prog} {action.option_strings}: {text}"
        assert not any(f"({v})" in said for v in numbers), f"{prog} {action.option_strings}: {text}"


@pytest.mark.parametrize("name", ["extract", None])
def test_exit_code_table_keeps_its_lines(name: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: `extract --help` ran the table into one paragraph ("exit codes: 0 every input ...").
    parser = build_parser() if name is None else _sub(name)
    parser.print_help()
    out = capsys.readouterr().out
    assert "\nexit codes:\n" in out
    for code in ("0    every input done", "1    some inputs failed", "2    bad usage",
                 "3    nothing failed", "130  stopped by Ctrl-C"):
        assert f"\n  {code}" in out, code


def test_preset_help_names_every_registered_preset() -> None:
    extract = _sub("extract")
    text = _option_help(extract, _action(extract, "--preset"))
    for name in list_presets():
        assert f"{name}:" in text, name
    # Each backbone's default preset is said to be its default.
    for b in list_backbones():
        assert f"{b.default_preset}:" in text


def test_model_and_pooling_help_name_every_backbone() -> None:
    extract = _sub("extract")
    model = _option_help(extract, _action(extract, "--model"))
    pooling = _option_help(extract, _action(extract, "--pooling"))
    for b in list_backbones():
        assert f"{b.name}/" in model, b.name
        assert f"{b.name}:" in pooling, b.name
        for feature in b.feature_names():
            assert re.search(rf"\b{feature}\b", pooling), (b.name, feature)
    assert "i3d/" in model and "i3d: pool" in pooling


def test_demo_help_counts_the_videos_it_makes() -> None:
    from vadfeat.demo import DEMO_VIDEOS

    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    demo = _sub("demo")
    assert f"{words[len(DEMO_VIDEOS)]} short videos" in (demo.description or "")
    assert "a short video" not in (demo.description or "")
