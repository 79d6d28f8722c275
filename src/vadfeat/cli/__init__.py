"""Command line: argument parsing only; every command calls the library.

Each submodule named in ``_COMMAND_MODULES`` exposes ``register(subparsers)``,
which adds its sub-command(s) and sets ``func`` (``args -> int`` exit code) on
the parser.  Exit codes: see :data:`EXIT_CODES` (also in ``vadfeat --help``).
SIGTERM and SIGHUP stop a command as Ctrl-C does (:mod:`vadfeat._signals`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from vadfeat._signals import handle_stop_signals, signum_of
from vadfeat._version import __version__
from vadfeat.errors import CheckpointError, ConfigError

_COMMAND_MODULES = (
    "vadfeat.cli.model_cmds",
    "vadfeat.cli.extract_cmds",
    "vadfeat.cli.frames_cmds",
    "vadfeat.cli.post_cmds",
    "vadfeat.cli.compress_cmds",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ELSEWHERE = 3

EXIT_CODES = """exit codes:
  0    every input done (now or by an earlier run)
  1    some inputs failed; each is named with its reason (summary, OUT/manifest.jsonl)
  2    bad usage or configuration, found before any work: unknown option, missing
       checkpoint, outputs in OUT made with other settings (use --overwrite or
       another -o), a file vadfeat did not write where it keeps its run files
  3    nothing failed, but some videos were being extracted by another process and
       are not done (run again later, or use --wait)
  130  stopped by Ctrl-C (SIGINT); 143 by SIGTERM; 129 by SIGHUP (128 + signal):
       finished videos are kept, the rest is redone by running again"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vadfeat",
        description=(
            "VideoMAE V2 feature extraction for weakly supervised video anomaly "
            "detection. Run `vadfeat COMMAND --help` for each command's options."
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with handle_stop_signals():
            if getattr(args, "config", None):
                args = _reparse_with_config(parser, args, argv)
            return int(args.func(args))
    except (ConfigError, CheckpointError) as exc:
        logging.getLogger("vadfeat").error("%s", exc)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # before the engine took over (discovery, model load)
        logging.getLogger("vadfeat").error("interrupted")
        return 128 + signum_of(exc)


def _reparse_with_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Config-file values become the sub-command's defaults; flags on the line still win."""
    from vadfeat.cli.extract_cmds import load_config

    sub = args.config_parser
    values = load_config(args.config)
    known = {a.dest for a in sub._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) in {args.config}: {', '.join(unknown)}")
    sub.set_defaults(**values)
    return parser.parse_args(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
