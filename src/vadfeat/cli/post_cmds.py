"""`vadfeat labels|align|lists|export|resample|inspect`: everything after extraction.

Argument parsing and printing only; the work is in :mod:`vadfeat.dataset.labels`,
:mod:`vadfeat.dataset.align`, :mod:`vadfeat.dataset.lists`, :mod:`vadfeat.dataset.export`,
:mod:`vadfeat.dataset.resample` and :mod:`vadfeat.dataset.report`.  Every command prints the
videos it had to report, one per line, and exits 1 when there are any.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import get_args

from vadfeat._types import (
    AlignMode,
    Dataset,
    ExportFormat,
    LabelFormat,
    LabelFormatOrAuto,
    LayoutOrAuto,
    ListFormat,
    Naming,
    ResampleMethod,
    SnippetRule,
    Split,
)
from vadfeat.errors import ConfigError

# Each handler imports the library code it runs: building the parser (`--help`, and every
# other command's start) reads only the allowed values in vadfeat._types.

EXIT_OK = 0
EXIT_REPORTED = 1


def _print(text: str) -> None:
    from vadfeat.dataset.report import valid_utf8

    # Video names that are not UTF-8 (lone surrogates) print as \xe9 instead of a traceback.
    print(valid_utf8(text))


def _report(issues: Sequence[object]) -> int:
    for issue in issues:
        _print(f"issue  {issue}")
    if issues:
        _print(f"{len(issues)} issue(s) reported")
        return EXIT_REPORTED
    return EXIT_OK


def _labels(args: argparse.Namespace) -> int:
    from vadfeat.dataset.labels import read_labels, write_labels
    from vadfeat.store.ownership import refuse_overlap
    from vadfeat.store.reader import read_features

    # Every command checks its output against its inputs before reading anything.
    refuse_overlap(args.out, [args.ground_truth, args.features], command="labels")
    features = read_features(args.features, layout=args.layout) if args.features else None
    result = read_labels(args.ground_truth, format=args.format, features=features)
    index = write_labels(result, args.out, inputs=[args.features])
    abnormal = sum(v.video_label for v in result.videos.values())
    _print(f"wrote {len(result)} videos ({abnormal} abnormal) to {index.parent} "
           f"(index {index.name}) from {args.format} ground truth {args.ground_truth}")
    return _report_labels(result.issues)


def _report_labels(issues: Sequence[object]) -> int:
    # Training videos have no frame labels in every WSVAD dataset: expected, one line.
    expected = [i for i in issues if getattr(i, "kind", None) == "no-labels"]
    if expected:
        _print(f"{len(expected)} feature video(s) without frame labels in this ground truth "
               "(expected for training videos); list them with -v")
        for i in expected:
            logging.getLogger("vadfeat").debug("%s", i)
    return _report([i for i in issues if getattr(i, "kind", None) != "no-labels"])


def _align(args: argparse.Namespace) -> int:
    from vadfeat.dataset.align import align
    from vadfeat.store.ownership import refuse_overlap
    from vadfeat.store.reader import read_features

    refuse_overlap(args.out, [args.features, args.labels, args.test_list], command="align")
    features = read_features(args.features, layout=args.layout)
    result = align(features, args.labels, args.out, rule=args.rule, mode=args.mode,
                   frames_per_snippet=args.frames_per_snippet, name=args.name,
                   test_list=args.test_list, labels_format=args.labels_format)
    for v in result.videos:
        rows = f"{v.rows_in}" if v.rows_in == v.rows_out else f"{v.rows_in}->{v.rows_out}"
        _print(f"{v.name}: rows {rows}, GT {v.gt_frames} frames -> {v.target_frames} "
               f"(cut {v.frames_cut}, padded {v.frames_padded})")
    total = sum(result.video(n).target_frames for n in result.test_order)
    _print(f"aligned {len(result.videos)} videos ({result.mode}, rule {result.rule}); "
           f"{result.gt_path.name}: {len(result.test_order)} videos, {total} frames")
    return _report(result.issues)


def _lists(args: argparse.Namespace) -> int:
    from vadfeat.dataset.lists import write_lists
    from vadfeat.store.ownership import refuse_overlap
    from vadfeat.store.reader import read_features

    if args.out is None and args.codebase_root is None:
        raise ConfigError("give -o OUT or --codebase-root REPO")
    if args.out is not None and args.codebase_root is None:
        refuse_overlap(args.out, [args.features, args.labels, args.train_split, args.test_split,
                                  args.audio], command="lists")
    features = read_features(args.features, layout=args.layout)
    result = write_lists(features, args.out, format=args.format, labels=args.labels,
                         labels_format=args.labels_format, naming=args.naming, train_split=args.train_split,
                         test_split=args.test_split, name=args.name, dataset=args.dataset,
                         codebase_root=args.codebase_root, relative_to=args.relative_to,
                         audio=args.audio)
    for split in get_args(Split):
        entries = result.split(split)
        abnormal = sum(e.label for e in entries)
        # What the file holds: VadCLIP's test CSV has one row per video, not one per crop file.
        unit = "rows" if result.format == "vadclip" else "lines"
        _print(f"{split}: {len(entries)} videos ({abnormal} abnormal, {len(entries) - abnormal} "
               f"normal), {result.lines[split]} {unit} in {result.lists[split].name}"
               + (f", {len(entries)} lines in {result.audio_lists[split].name}"
                  if split in result.audio_lists else ""))
    _print(f"training list: the first {result.train_abnormal_lines} lines are abnormal "
           "(RTFM's and UR-DMU's loaders hard-code this number)")
    if result.gt_frames is not None:
        _print(f"frame ground truth: {result.gt_frames} frames (16 per feature row of the test videos)")
    _print("wrote " + ", ".join(str(p) for p in result.files))
    if result.replaced:
        _print("replaced (written by an earlier vadfeat lists run): "
               + ", ".join(str(p) for p in result.replaced))
    return _report(result.issues)


def _export(args: argparse.Namespace) -> int:
    from vadfeat.dataset.export import export
    from vadfeat.store.ownership import refuse_overlap
    from vadfeat.store.reader import read_features

    refuse_overlap(args.out, [args.features], command="export")
    features = read_features(args.features, layout=args.layout)
    crops = None
    if args.crops is not None:
        try:
            crops = [int(c) for c in args.crops.split(",")]
        except ValueError as exc:
            raise ConfigError(f"--crops takes comma-separated crop indices, got {args.crops!r}") from exc
    result = export(features, args.out, format=args.format, dataset=args.dataset, crops=crops,
                    shard_size=args.shard_size)
    _print(f"exported {len(result.videos)} videos as {result.format} to {result.out} in "
           f"{result.seconds:.1f} s: {result.count('linked')} linked, {result.count('copied')} copied, "
           f"{result.count('sliced')} sliced, {result.count('skipped')} already done")
    return _report(result.issues)


def _resample(args: argparse.Namespace) -> int:
    from vadfeat.dataset.resample import resample_features
    from vadfeat.store.ownership import refuse_overlap
    from vadfeat.store.reader import read_features

    refuse_overlap(args.out, [args.features], command="resample")
    features = read_features(args.features, layout=args.layout)
    result = resample_features(features, args.out, segments=args.segments, method=args.method)
    _print(f"resampled {len(result.videos)} videos to {result.segments} rows ({result.method}) "
           f"in {result.out}")
    return _report(result.issues)


def _inspect(args: argparse.Namespace) -> int:
    from vadfeat.dataset.report import inspect
    from vadfeat.store.ownership import refuse_overlap
    from vadfeat.store.reader import read_features

    refuse_overlap(args.out, [args.features, args.labels], command="inspect")
    features = read_features(args.features, layout=args.layout)
    result = inspect(features, args.out, labels=args.labels, labels_format=args.labels_format,
                     videos=args.videos, frames_per_snippet=args.frames_per_snippet,
                     width_px=args.width, height_px=args.height, dpi=args.dpi)
    _print(f"drew {len(result.videos)} videos; open {result.index}")
    return _report(result.issues)


def _add_features(p: argparse.ArgumentParser) -> None:
    p.add_argument("features", metavar="FEATURES", help="features folder written by `vadfeat extract`")
    p.add_argument("--layout", choices=get_args(LayoutOrAuto), default="auto",
                   help="layout of FEATURES (default: detect)")


def _add_labels_option(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--labels", required=required, metavar="GT",
                   help="ground truth: a canonical labels folder from `vadfeat labels`, or any "
                        "format named with --labels-format")
    p.add_argument("--labels-format", choices=get_args(LabelFormatOrAuto), default="auto",
                   help="format of --labels (default auto: canonical or npy-dir; a pickle is "
                        "only loaded when named here)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "labels", help="read frame-level ground truth into the canonical form", formatter_class=fmt,
        description="Read frame-level ground truth and write the canonical form: OUT/<video>.npy "
                    "(uint8, one 0/1 per decoded frame) and OUT/labels.json.\n\n"
                    "formats:\n"
                    "  pickle   dict {video: per-frame labels} (legacy frame_label.pickle); read\n"
                    "           by a restricted unpickler: numbers, lists, numpy arrays only\n"
                    "  npy-dir  folder of per-video <video>.npy masks (ShanghaiTech)\n"
                    "  ucf      UCF-Crime Temporal_Anomaly_Annotation.txt (1-based inclusive\n"
                    "           frames, -1 = none); needs --features for frame counts\n"
                    "  xd       XD-Violence annotations.txt (0-based, end exclusive); needs\n"
                    "           --features; unlisted _label_A videos are normal\n"
                    "  canonical  a folder written by this command\n\n"
                    "Names are matched to feature files by name without extension. Unknown "
                    "videos, length mismatches and malformed lines are printed; exit 1 if any.\n"
                    "Feature videos without frame labels (training videos) are counted in one "
                    "line and do not change the exit code.")
    p.add_argument("ground_truth", metavar="GT", help="ground-truth file or folder")
    p.add_argument("--format", required=True, choices=get_args(LabelFormat),
                   help="format of GT (never guessed)")
    p.add_argument("--features", metavar="FEATURES",
                   help="features folder: decoded frame counts and video names")
    p.add_argument("--layout", choices=get_args(LayoutOrAuto), default="auto",
                   help="layout of --features (default: detect)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.set_defaults(func=_labels)

    p = sub.add_parser(
        "align", help="snippet labels and 16*T frame labels; legacy feature alignment",
        formatter_class=fmt,
        description="Align features with frame-level ground truth.\n\n"
                    "exact (default): snippet labels from each snippet's frame range; frame labels "
                    "cut or padded\n(with the last label) to exactly 16*T per video; features "
                    "untouched.\nlegacy: the Fed_WSVAD rule: feature rows truncated or repeated to "
                    "len(labels)//16,\nnew feature files under OUT/features.\n\n"
                    "Writes OUT/snippet_labels/, OUT/frame_labels/, OUT/gt-NAME.npy (test videos "
                    "concatenated\nin test-list order), OUT/GT/frame_label.pickle, "
                    "OUT/GT/video_label.pickle, OUT/align.json.")
    _add_features(p)
    _add_labels_option(p, required=True)
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--rule", choices=get_args(SnippetRule), default="max",
                   help="snippet label from its frames: any abnormal (max), fraction (mean), "
                        "more than half (majority); default max")
    p.add_argument("--mode", choices=get_args(AlignMode), default="exact",
                   help="exact (default) or legacy (rewrite features to len(labels)//16 rows)")
    p.add_argument("--frames-per-snippet", type=_positive, default=16,
                   help="frames each snippet score stands for in evaluation (default 16)")
    p.add_argument("--name", default="test", help="gt file name part: gt-NAME.npy (default test)")
    p.add_argument("--test-list", metavar="FILE",
                   help="test split or list file fixing the videos and order of gt-NAME.npy "
                        "(default: all aligned videos, abnormal first)")
    p.set_defaults(func=_align)

    p = sub.add_parser(
        "export", help="derive another layout from an extraction (links or slices, no GPU)",
        formatter_class=fmt,
        description="Write the features of FEATURES (any layout) in the layout one code base "
                    "reads, without\nrecomputing: hard links where the bytes are the same, "
                    "slices otherwise.\n"
                    "  flat, rtfm        <name>.npy [T, crops, D]\n"
                    "  fed-wsvad         features_video/i3d/combine/<name>/feature.npy\n"
                    "  per-crop, ur-dmu, vadclip, pel4vad   <name>__<k>.npy [T, D]\n"
                    "                    (pel4vad --dataset shanghaitech: <name>_<k>.npy)\n"
                    "  webdataset, parquet   shards (shard-*.tar / shard-*.parquet), as extract "
                    "--sink writes them\n"
                    "FEATURES may be shards too: export them to flat for one .npy + sidecar per "
                    "video\n(byte-identical features both ways). "
                    "Sidecars keep every source field and record the export. Resumable; a "
                    "file it did not\nwrite is never replaced (that video is reported).")
    _add_features(p)
    p.add_argument("--format", required=True, choices=get_args(ExportFormat), help="target layout")
    p.add_argument("-o", "--out", required=True, help="output folder (not inside FEATURES)")
    p.add_argument("--dataset", choices=get_args(Dataset),
                   help="dataset (pel4vad: shanghaitech names crops _<k>.npy)")
    p.add_argument("--crops", metavar="K,K,...",
                   help="keep only these crop indices, e.g. 0,1,2,3,4 (default: all)")
    p.add_argument("--shard-size", type=_positive, default=1000, metavar="N",
                   help="webdataset, parquet: videos per shard (default 1000)")
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "lists", help="train/test list files for RTFM, UR-DMU, PEL4VAD, VadCLIP, Fed_WSVAD, "
                 "XDVioDet, MACIL-SD",
        formatter_class=fmt,
        description="Write train and test lists in one method's convention (abnormal videos "
                    "first,\nabsolute paths unless --relative-to):\n"
                    "  fed-wsvad  train_split.txt, test_split.txt, GT/video_label.pickle\n"
                    "  rtfm       NAME-train.list, NAME-test.list (one [T, crops, D] file per "
                    "line)\n"
                    "  ur-dmu     NAME_Train.list, NAME_Test.list (one line per crop file)\n"
                    "  pel4vad    train.list, test.list (one line per crop file)\n"
                    "  vadclip    NAME_CLIP_rgb.csv (every crop), NAME_CLIP_rgbtest.csv (crop 0),\n"
                    "             gt_segment/gt_label mAP files\n"
                    "  xdviodet   rgb.list, rgb_test.list (5 crop files per video), with --audio DIR\n"
                    "             audio.list, audio_test.list (one file per video): HL-Net (XDVioDet)\n"
                    "  macil-sd   the same files, --audio required: MACIL-SD\n"
                    "plus the test videos' frame ground truth (16*T per video, list order).\n"
                    "With --dataset D they carry that repository's own names (UR-DMU SH_Train.list, "
                    "RTFM\nucf-i3d.list, ...) unless --name is given; --codebase-root REPO --dataset D "
                    "writes them\nwhere that repository opens them, and names the files of an earlier "
                    "run it replaced.\n\n"
                    "Video labels come from --labels, label columns of the split files and "
                    "--naming. Splits come from\n--train-split/--test-split; without them, "
                    "videos with frame-level ground truth are the test\nsplit (XD-Violence "
                    "needs a split).")
    _add_features(p)
    p.add_argument("--format", required=True, choices=get_args(ListFormat), help="list convention")
    p.add_argument("-o", "--out", help="output folder")
    p.add_argument("--codebase-root", metavar="REPO",
                   help="the code base's checkout: write files where it reads them (needs --dataset)")
    p.add_argument("--dataset", choices=get_args(Dataset),
                   help="ucf, xd or shanghaitech: upstream file names, and the naming rule "
                        "when --naming is not given")
    _add_labels_option(p, required=False)
    p.add_argument("--naming", choices=get_args(Naming),
                   help="dataset naming rule for video labels: ucf (Normal_* normal), "
                        "xd (*_label_A* normal), shanghaitech (NN_NNN normal, NN_NNNN abnormal)")
    p.add_argument("--train-split", metavar="FILE",
                   help="names (or list lines) of training videos; a `<name> <0|1>` column gives "
                        "video labels (ShanghaiTech weak split)")
    p.add_argument("--test-split", metavar="FILE",
                   help="names (or list lines) of test videos, optionally with a label column")
    p.add_argument("--name",
                   help="list file name part, e.g. UCF for UR-DMU's UCF_Train.list (default: the "
                        "code base's own names with --dataset, else dataset)")
    p.add_argument("--relative-to", metavar="DIR",
                   help="write paths relative to DIR, the folder the code base resolves list lines "
                        "from: its checkout for RTFM, UR-DMU (UCF) and VadCLIP, cfg.feat_prefix for "
                        "PEL4VAD (default: absolute paths; every listed file must lie below DIR)")
    p.add_argument("--audio", metavar="DIR",
                   help="audio features ([T, 128] VGGish, named as the RGB videos) for the audio "
                        "lists of xdviodet (optional) and macil-sd (required): one line per video, "
                        "in the RGB list's video order; a video without them, or with another T, "
                        "is reported and left out of both lists")
    p.set_defaults(func=_lists)

    p = sub.add_parser(
        "resample", help="fixed-length features (process_feat)", formatter_class=fmt,
        description="Resample every video's features to a fixed number of rows along time:\n"
                    "  mean     process_feat: mean over linspace(0, T, segments+1) boundaries, an "
                    "empty segment\n           copies its start row\n"
                    "  uniform  linspace(0, T-1, segments) rows when T > segments, else zero "
                    "padding (PEL4VAD)\n"
                    "  vadclip  mean when T > segments, else zero padding (VadCLIP)\n"
                    "Writes the same layout and names to OUT, sidecars updated.")
    _add_features(p)
    p.add_argument("-o", "--out", required=True, help="output folder (not FEATURES, not inside it, "
                   "not holding it)")
    p.add_argument("--segments", type=_positive, default=32, help="rows per video (default 32)")
    p.add_argument("--method", choices=get_args(ResampleMethod), default="mean",
                   help="mean (default), uniform or vadclip")
    p.set_defaults(func=_resample)

    p = sub.add_parser(
        "inspect", help="plots of features against ground truth, with index.html",
        formatter_class=fmt,
        description="Draw one PNG per video: feature L2 norm and first principal component per "
                    "snippet over\ndecoded frames, ground-truth anomaly spans shaded, snippet "
                    "starts marked; plus\nOUT/index.html with frames, snippets and frames "
                    "cut/padded per video.")
    _add_features(p)
    _add_labels_option(p, required=False)
    p.add_argument("-o", "--out", required=True, help="report folder")
    p.add_argument("--videos", nargs="+", metavar="NAME", help="only these videos")
    p.add_argument("--frames-per-snippet", type=_positive, default=16,
                   help="for the cut/padded numbers (default 16)")
    p.add_argument("--width", type=_positive, default=1200, help="PNG width in pixels")
    p.add_argument("--height", type=_positive, default=600, help="PNG height in pixels")
    p.add_argument("--dpi", type=_positive, default=100, help="PNG resolution")
    p.set_defaults(func=_inspect)
