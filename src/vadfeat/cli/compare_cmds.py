"""`vadfeat compare MINE THEIRS`: why two feature sets of the same videos differ;
`vadfeat compare THEIRS --videos DIR --recipes [NAMES]`: which recipe made THEIRS.

Argument parsing and printing only; the work is in :mod:`vadfeat.dataset.compare` and
:mod:`vadfeat.dataset.recipes`.  Prints one line per video, the names found on one side
only, what could not be diagnosed, and an overall verdict (with ``--recipes``, the ranking
of the recipes first).  Differences are findings: exit 0 when the comparison ran, 1 when
some file or video could not be read (each is named, the others are compared), 2 for
usage errors.

``--recipes`` is an option of ``compare`` rather than a command of its own: it answers
compare's question (why do my features differ from theirs) one step earlier, with
compare's report, options, name matching and exit codes; MINE is what it extracts.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Literal, get_args

from vadfeat._defaults import DEFAULT_PLOTS, DEFAULT_SAMPLE_SNIPPETS, DEFAULT_SAMPLE_VIDEOS
from vadfeat._types import LayoutOrAuto

if TYPE_CHECKING:
    from vadfeat.dataset.compare import CompareResult

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


def _positive(text: str) -> int:
    value = _window(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _plots(text: str) -> int | Literal["all"]:
    return "all" if text == "all" else _window(text)


def _names(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:_SHOW_NAMES])
    return shown + (f" ... (+{len(names) - _SHOW_NAMES})" if len(names) > _SHOW_NAMES else "")


def _recipe_names(text: str) -> list[str] | None:
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or None


def _compare_recipes(args: argparse.Namespace) -> int:
    from vadfeat.dataset.recipes import compare_recipes, ranking_lines
    from vadfeat.errors import ConfigError

    if args.theirs is not None:
        raise ConfigError("with --recipes give one folder, THEIRS (the features to explain): "
                          f"got {args.mine} and {args.theirs}")
    if args.videos is None:
        raise ConfigError("--recipes needs --videos DIR: the videos THEIRS was made from")
    ranking = compare_recipes(
        args.mine, args.videos, args.out, recipes=_recipe_names(args.recipes), checkpoint=args.checkpoint,
        model=args.model, random_weights=args.random_weights, num_videos=args.sample_videos,
        snippets=args.sample_snippets, device=args.device, dtype=args.dtype,
        theirs_layout=args.theirs_layout if args.theirs_layout != "auto" else args.layout,
        window=args.window, clip_len=args.clip_len, plots=0 if args.no_plots else args.plots, work=args.work)
    for line in ranking_lines(ranking):
        _print(line)
    if ranking.unmatched_videos:
        _print(f"videos without a file in THEIRS ({len(ranking.unmatched_videos)}): "
               f"{_names(ranking.unmatched_videos)}")
    for d in ranking.lengths:
        _print(f"rows  {d.message}")
    code = EXIT_OK
    if ranking.residual is not None:
        _print("the best recipe's sample against THEIRS' first rows:")
        code = _show(ranking.residual)
    for issue in ranking.issues:
        _print(f"issue  {issue}")
    if ranking.issues:
        _print(f"{len(ranking.issues)} file(s) or video(s) could not be read")
        return EXIT_REPORTED
    return code


def _compare(args: argparse.Namespace) -> int:
    from vadfeat.dataset.compare import compare
    from vadfeat.errors import ConfigError

    if args.recipes is not None:
        return _compare_recipes(args)
    if args.videos is not None:
        raise ConfigError("--videos goes with --recipes (which recipe made THEIRS); to compare two "
                          "feature folders give MINE and THEIRS")
    if args.theirs is None:
        raise ConfigError("compare needs MINE and THEIRS (or THEIRS --videos DIR --recipes)")
    result = compare(args.mine, args.theirs, args.out, layout=args.layout, theirs_layout=args.theirs_layout,
                     window=args.window, clip_len=args.clip_len, plots=0 if args.no_plots else args.plots)
    return _show(result)


def _show(result: CompareResult) -> int:
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
                    "Which recipe made THEIRS: vadfeat compare THEIRS --videos DIR --recipes [NAMES]\n"
                    "extracts the first --sample-snippets snippets of --sample-videos videos of DIR that "
                    "match\nTHEIRS' files under each candidate recipe (the presets that fit --checkpoint's "
                    "model, or\nNAMES), ranks them by relative L2 to THEIRS, says how sure it is (the "
                    "runner-up's distance\nand the margin) and diagnoses the best one as above. With -o "
                    "the samples are kept in\nOUT/samples/.\n\n"
                    "Exit 0 when the comparison ran (differences are findings), 1 when a file could "
                    "not be\nread (named; the others are compared), 2 for usage errors.")
    p.add_argument("mine", metavar="MINE", help="your features: folder or .npy file (with --recipes: THEIRS)")
    p.add_argument("theirs", metavar="THEIRS", nargs="?",
                   help="the features to compare with: folder or .npy file")
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
    r = p.add_argument_group("which recipe made THEIRS (--recipes)")
    r.add_argument("--recipes", nargs="?", const="", metavar="NAMES",
                   help="rank recipes: every preset that fits the model, or these (comma-separated)")
    r.add_argument("--videos", metavar="DIR",
                   help="the videos THEIRS was made from (folder, file or .txt list)")
    r.add_argument("--checkpoint", "-c", metavar="PATH", help="your model's weights")
    r.add_argument("--model", help="model size (checked against --checkpoint; needed with --random-weights)")
    r.add_argument("--random-weights", action="store_true",
                   help="no checkpoint: random weights (testing only)")
    r.add_argument("--sample-videos", type=_positive, default=DEFAULT_SAMPLE_VIDEOS, metavar="N",
                   help=f"videos sampled (default {DEFAULT_SAMPLE_VIDEOS})")
    r.add_argument("--sample-snippets", type=_positive, default=DEFAULT_SAMPLE_SNIPPETS, metavar="K",
                   help=f"first snippets extracted per video (default {DEFAULT_SAMPLE_SNIPPETS})")
    r.add_argument("--device", default="auto", help="where the model runs (default: auto)")
    r.add_argument("--dtype", default="fp32", help="model precision (default fp32: bf16 blurs recipes "
                   "0.5 %% apart)")
    r.add_argument("--work", metavar="DIR", help="without -o: keep the samples here (default: a temporary "
                   "folder, removed)")
    p.set_defaults(func=_compare)
