"""`vadfeat compare MINE THEIRS`: why two feature sets of the same videos differ.

Argument parsing and printing only; the work is in :mod:`vadfeat.dataset.compare`.
Prints one line per video, the names found on one side only, what could not be
diagnosed, and an overall verdict.  Differences are findings: exit 0 when the
comparison ran, 1 when some file could not be read (each is named, the others are
compared), 2 for usage errors.
"""

from __future__ import annotations

import argparse
from typing import Literal, get_args

from vadfeat._defaults import DEFAULT_PLOTS
from vadfeat._types import LayoutOrAuto

EXIT_OK = 0
EXIT_REPORTED = 1


def _print(text: str) -> None:
    from vadfeat.dataset.report import valid_utf8

    # Video names that are not UTF-8 (lone surrogates) print as \xe9 instead of a traceback.
    print(valid_utf8(text))


_SHOW_NAMES = 10


def _window(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _plots(text: str) -> int | Literal["all"]:
    return "all" if text == "all" else _window(text)


def _names(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:_SHOW_NAMES])
    return shown + (f" ... (+{len(names) - _SHOW_NAMES})" if len(names) > _SHOW_NAMES else "")


def _compare(args: argparse.Namespace) -> int:
    from vadfeat.dataset.compare import compare

    result = compare(args.mine, args.theirs, args.out, layout=args.layout, theirs_layout=args.theirs_layout,
                     window=args.window, clip_len=args.clip_len, plots=0 if args.no_plots else args.plots)
    for v in result.videos:
        _print(v.line(result.crop_permutation))
    if result.only_mine:
        _print(f"only in mine ({len(result.only_mine)}): {_names(result.only_mine)}")
    if result.only_theirs:
        _print(f"only in theirs ({len(result.only_theirs)}): {_names(result.only_theirs)}")
    for d in result.overall:
        _print(f"overall  {d.message}")
    for c in result.cannot_diagnose:
        _print(f"cannot diagnose  {c}")
    _print(f"verdict: {result.verdict}")
    if result.index is not None:
        _print(f"report: open {result.index} ({result.report.name if result.report else ''})")
    for issue in result.issues:
        _print(f"issue  {issue}")
    if result.issues:
        _print(f"{len(result.issues)} file(s) could not be read")
        return EXIT_REPORTED
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="why two feature sets of the same videos differ (yours vs published)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare MINE (e.g. a vadfeat extraction) with THEIRS (e.g. a paper's released "
                    "features):\ntwo folders in any layout vadfeat reads (flat [T, crops, D], "
                    "per-crop <name>__<k>.npy or\n<name>_<k>.npy, fed-wsvad; sidecars optional), or "
                    "two .npy files.\n\n"
                    "Per video: matching names, T difference and its cause (temporal offset, tail "
                    "rule,\nframe rate, stride), cosine and relative L2 per snippet after the best "
                    "temporal\nalignment (offsets within --window), crop order (which crop of mine "
                    "is which of theirs),\nfeature dims and crop counts, and how the values relate "
                    "(identical, a linear rescale,\ndifferent input pixel preprocessing, unrelated). "
                    "With -o: OUT/index.html, OUT/compare.json and one PNG\nfor each of the "
                    f"--plots worst videos (default {DEFAULT_PLOTS}). OUT must not be, hold or lie "
                    "inside MINE or THEIRS.\n\n"
                    "Exit 0 when the comparison ran (differences are findings), 1 when a file could "
                    "not be\nread (named; the others are compared), 2 for usage errors.")
    p.add_argument("mine", metavar="MINE", help="your features: folder or .npy file")
    p.add_argument("theirs", metavar="THEIRS", help="the features to compare with: folder or .npy file")
    p.add_argument("-o", "--out", help="report folder: index.html, PNGs, compare.json")
    p.add_argument("--layout", choices=get_args(LayoutOrAuto), default="auto",
                   help="layout of MINE (default: detect)")
    p.add_argument("--theirs-layout", choices=get_args(LayoutOrAuto), default="auto",
                   help="layout of THEIRS (default: detect)")
    p.add_argument("--window", type=_window, default=4,
                   help="largest temporal offset tried, in snippets (default 4)")
    p.add_argument("--clip-len", type=_window, default=16,
                   help="frames per snippet assumed for files without a sidecar (default 16)")
    p.add_argument("--plots", type=_plots, default=DEFAULT_PLOTS, metavar="N|all",
                   help=f"with -o: draw the N worst videos (by verdict, then relative L2; default "
                        f"{DEFAULT_PLOTS}), or all; index.html says which were drawn")
    p.add_argument("--no-plots", action="store_true",
                   help="with -o: only index.html and compare.json (--plots 0)")
    p.set_defaults(func=_compare)
