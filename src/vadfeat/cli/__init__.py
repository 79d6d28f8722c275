"""Command line: argument parsing only; every command calls the library.

Each submodule named in ``_COMMAND_MODULES`` exposes ``register(subparsers)``,
which adds its sub-command(s) and sets ``func`` (``args -> int`` exit code) on
the parser.  Exit codes: see :data:`EXIT_CODES` (also in ``vadfeat --help``).
SIGTERM and SIGHUP stop a command as Ctrl-C does (:mod:`vadfeat.engines._signals`).

The library's messages name settings as Python does (``clip_len=3``,
``random_weights=True``); while a command runs, every message it logs is put in
that command's flags' words (``--clip-len 3``, ``--random-weights``) by
:func:`flag_words`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from vadfeat._version import __version__
from vadfeat.engines._signals import handle_stop_signals, signum_of
from vadfeat.errors import ConfigError, VadfeatError

_COMMAND_MODULES = (
    "vadfeat.cli.model_cmds",
    "vadfeat.cli.extract_cmds",
    "vadfeat.cli.frames_cmds",
    "vadfeat.cli.post_cmds",
    "vadfeat.cli.compress_cmds",
    "vadfeat.cli.compare_cmds",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ELSEWHERE = 3

EXIT_CODES = """exit codes:
  0    every input done (now or by an earlier run)
  1    some inputs failed; each is named with its reason (summary, OUT/manifest.jsonl),
       or a command on one input failed (one line on stderr says why)
  2    bad usage or configuration, found before any work: unknown option, missing
       or unreadable checkpoint, outputs in OUT made with other settings (use --overwrite or
       another -o), a file vadfeat did not write where it keeps its run files
  3    nothing failed, but some videos were being extracted by another process and
       are not done (run again later, or use --wait)
  130  stopped by Ctrl-C (SIGINT); 143 by SIGTERM; 129 by SIGHUP (128 + signal):
       finished videos are kept, the rest is redone by running again"""


def _says_default(text: str, default: Any) -> bool:
    """Whether an option's help already states its default: it says "default", or it ends a
    phrase with the value in parentheses ("(30)" for 30.0, "(mean)")."""
    if re.search(r"\bdefault\b", text, re.IGNORECASE):
        return True
    for shown in re.findall(r"\(([^()]*)\)", text):
        if shown.strip() == str(default):
            return True
        try:
            if isinstance(default, (int, float)) and float(shown) == float(default):
                return True
        except ValueError:
            continue
    return False


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default once, and only when it has one.

    No "(default: None)", no "(default: False)", nothing added where the help text
    states the default itself ("(1)", "default 8", "(default: 8K UHD, 7680x4320)");
    the exit-code table of an epilog (:data:`EXIT_CODES`) is kept as written.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return action.help
        if action.help and _says_default(action.help, action.default):
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every sub-command parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from _parsers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vadfeat",
        description=(
            "VideoMAE V2, CLIP, I3D and VGGish (audio) feature extraction for weakly supervised video "
            "anomaly detection. Run `vadfeat COMMAND --help` for each command's options."
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vadfeat {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="debug log output"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not an unwritten module
                raise
            continue
        module.register(sub)
    for p in _parsers(parser):  # one rule for every command's help
        fmt = p.formatter_class
        if (isinstance(fmt, type) and issubclass(fmt, argparse.ArgumentDefaultsHelpFormatter)
                and not issubclass(fmt, DefaultsHelpFormatter)):
            # In front of the command's own formatter, which keeps what it adds.
            mixed: Any = (DefaultsHelpFormatter if fmt is argparse.ArgumentDefaultsHelpFormatter
                          else type(f"Defaults{fmt.__name__}", (DefaultsHelpFormatter, fmt), {}))
            p.formatter_class = mixed
    return parser


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub-)command parser that ``args`` came from (the one that set ``args.func``)."""
    func = getattr(args, "func", None)
    for p in _parsers(parser):
        if func is not None and p._defaults.get("func") is func:
            return p
    return parser


def _long_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    flags = {}
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "version", argparse.SUPPRESS):
            longs = [o for o in action.option_strings if o.startswith("--")]
            flags[action.dest] = (longs or action.option_strings)[0]
    return flags


def flag_words(text: str, parser: argparse.ArgumentParser) -> str:
    """``text`` with the Python names of ``parser``'s options in its flags' words.

    ``name=value`` becomes ``--name value`` (``True``: ``--name``; quotes dropped);
    a bare name with an underscore (``batch_size``) becomes its flag; a one-word
    name becomes its flag where it starts a statement about it (``fps must ...``,
    ``size (224) ...``).  Names inside paths (after ``/`` or ``.``) are left alone.
    """
    flags = _long_flags(parser)
    if not flags:
        return text

    def assign(m: re.Match[str]) -> str:
        flag = flags.get(m.group(1))
        if flag is None:
            return m.group(0)
        value = m.group(2)
        if value == "True":
            return flag
        if value == "False":
            return f"no {flag}"
        if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
            value = value[1:-1]
        return f"{flag} {value}"

    text = re.sub(r"(?<![\w./=-])([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^\s,;)]+)", assign, text)

    def bare(m: re.Match[str]) -> str:
        return flags.get(m.group(1), m.group(0))

    underscored = [d for d in flags if "_" in d]
    if underscored:
        names = "|".join(sorted(map(re.escape, underscored), key=len, reverse=True))
        text = re.sub(rf"(?<![\w./=-])({names})(?![\w/=-]|\.\w)", bare, text)
    names = "|".join(sorted(map(re.escape, flags), key=len, reverse=True))
    return re.sub(rf"(?<![\w./=-])({names})(?= must\b| \(\d)", bare, text)


class _FlagWords(logging.Filter):
    """Rewrites every log record into a command's flags' words (see :func:`flag_words`)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record is logging's to report
            return True
        record.msg, record.args = flag_words(message, self.parser), None
        return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    words = _FlagWords(command_parser(parser, args))
    handlers = list(logging.getLogger().handlers)
    for h in handlers:
        h.addFilter(words)
    try:
        with handle_stop_signals():
            if getattr(args, "config", None):
                args = _reparse_with_config(parser, args, argv)
            return int(args.func(args))
    except VadfeatError as exc:  # one line, no traceback; the code is the class's (vadfeat.errors)
        logging.getLogger("vadfeat").error("%s", _one_line(exc))
        return exc.exit_code
    except KeyboardInterrupt as exc:  # before the engine took over (discovery, model load)
        logging.getLogger("vadfeat").error("interrupted")
        return 128 + signum_of(exc)
    finally:
        for h in handlers:
            h.removeFilter(words)


def _one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (the class name where it has none)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def _reparse_with_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Config-file values become the sub-command's defaults; flags on the line still win."""
    sub = args.config_parser
    sub.set_defaults(**config_defaults(sub, args.config))
    return parser.parse_args(argv)


def config_defaults(sub: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """The options in the JSON file ``path``, checked against ``sub``'s flags as argparse would.

    Keys are long option names (dashes or underscores).  Each value must have the
    type its flag takes: a string for a path or a name, a JSON number for a number
    (an integer where the flag takes one), true/false for a switch, a list of
    strings for a repeated argument, one of the flag's choices where it has some;
    ``null`` leaves an option unset where it has no default.  Raises
    :class:`ConfigError` naming the flag.
    """
    from vadfeat.cli.extract_cmds import load_config

    values = load_config(path)
    actions = {a.dest: a for a in sub._actions
               if a.dest not in ("help", "version", "config", argparse.SUPPRESS)}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise ConfigError(f"unknown option(s) in {path}: {', '.join(unknown)}")
    return {key: _config_value(actions[key], value, path) for key, value in values.items()}


def _config_value(action: argparse.Action, value: Any, path: str) -> Any:
    flag = next((o for o in action.option_strings if o.startswith("--")),
                action.option_strings[0] if action.option_strings else (action.metavar or action.dest))

    def bad(what: str) -> ConfigError:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return ConfigError(f"{path}: {flag} must be {what}, got {shown}")

    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(action, argparse._CountAction):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a count (0, 1, 2 ...)")
        return value
    if value is None:
        if action.default is not None or action.required:
            raise bad("given (it has no unset state)")
        return None
    if action.nargs in ("+", "*"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (
                action.nargs == "+" and not value):
            raise bad("a list of strings")
        return [_one_value(action, v, bad) for v in value]
    if isinstance(value, list) and action.type not in (None, int, float) and all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        # a comma-separated flag (--devices, --mean) given as a JSON list
        value = ",".join(map(str, value))
    return _one_value(action, value, bad)


def _one_value(action: argparse.Action, value: Any, bad: Any) -> Any:
    choices = list(action.choices) if action.choices is not None else None
    if isinstance(value, bool):  # bool is an int: true is not --crops 1
        raise bad("one of " + ", ".join(map(str, choices)) if choices else "a value, not true/false")
    if action.type is int:
        if not isinstance(value, int):
            raise bad("an integer")
    elif action.type is float:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a number")
        value = float(value)
    elif action.type is None:
        if not isinstance(value, str):
            raise bad("one of " + ", ".join(map(str, choices)) if choices else "a string")
    else:  # a converting flag type (_positive, _fraction, a list splitter): give it the text
        convert = action.type
        if not callable(convert):  # argparse's registry names (type="int") are not used here
            raise TypeError(f"{action.dest}: unsupported argparse type {convert!r}")
        if not isinstance(value, (str, int, float)):
            raise bad("a string")
        try:
            value = convert(str(value))
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise bad(f"valid ({exc})") from None
    if choices is not None and value not in choices:
        raise bad("one of " + ", ".join(map(str, choices)))
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
