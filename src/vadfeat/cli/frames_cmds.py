"""`vadfeat frames`: every frame of every video as images."""

from __future__ import annotations

import argparse
import logging
from typing import get_args

from vadfeat._types import OnCorrupt

log = logging.getLogger("vadfeat")


def _frames(args: argparse.Namespace) -> int:
    from vadfeat.store.frames import dump_frames

    summary = dump_frames(args.inputs, args.output, workers=args.workers, overwrite=args.overwrite,
                          root=args.root, pattern=args.pattern, start=args.start,
                          quality=args.quality, short_side=args.short_side,
                          on_corrupt=args.on_corrupt)
    log.info("%s", summary.describe())
    return summary.exit_code


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "frames", help="write every frame of every video as JPEG/PNG images",
        description="Write OUT/<relative path>/<stem>/img_00001.jpg ... for each video (true "
                    "colours, any container), several videos in parallel. Each video's folder "
                    "appears only when complete, with a <stem>.frames.json record beside it; a "
                    "re-run skips finished videos. Failures are listed in OUT/manifest.jsonl "
                    "and give exit code 1. A folder or file vadfeat did not write at an output "
                    "path is never replaced (that video fails, naming it), --overwrite "
                    "included. `vadfeat extract` never needs this step.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders or .txt lists")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    p.add_argument("--pattern", default="img_{:05d}.jpg",
                   help="file name pattern with one {} field for the frame number")
    p.add_argument("--start", type=int, default=1, help="number of the first frame")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (1-100)")
    p.add_argument("--short-side", type=int, help="resize so the shorter side has this many pixels")
    p.add_argument("--workers", "-j", type=int, default=2, help="videos written in parallel")
    p.add_argument("--on-corrupt", choices=get_args(OnCorrupt), default="fail",
                   help="corrupt data: fail that video, or skip bad packets and go on")
    p.add_argument("--root", help="folder that names in .txt lists are relative to")
    p.add_argument("--overwrite", action="store_true", help="rewrite videos already done")
    p.set_defaults(func=_frames)
