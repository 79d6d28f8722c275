"""`vadfeat extract` and `vadfeat demo`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, get_args

from vadfeat._defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_PIXELS,
    DEFAULT_SHARD_MB,
    DEFAULT_SHARD_SIZE,
    MEMORY_BUDGET,
)
from vadfeat._types import (
    ChannelOrder,
    CropOrder,
    Decoder,
    DTypeOrAuto,
    Engine,
    FrameReduce,
    FramesColour,
    Interpolation,
    JpegRoundTrip,
    Layout,
    NumCrops,
    OnCorrupt,
    Pipeline,
    Preprocess,
    Quantize,
    ResizeMode,
    Scale,
    SinkName,
    Tail,
)
from vadfeat.backbones._registry import list_backbones
from vadfeat.cli import EXIT_CODES
from vadfeat.cli._help import model_help, pooling_choices, pooling_help, preset_help
from vadfeat.errors import ConfigError
from vadfeat.pipeline.presets import list_presets

log = logging.getLogger("vadfeat")

# Flags that override a preset field (flag dest == Preset field name).
PRESET_FLAGS = ("clip_len", "frame_interval", "stride", "tail", "crops", "crop_resize",
                "crop_order", "pooling", "frame_reduce", "size", "short_side", "channel_order", "scale",
                "mean", "std", "resize", "frame_size", "interpolation", "jpeg_roundtrip")


def batch_help() -> str:
    """``--batch-size``'s help, from the registry's input kinds and the defaults."""
    kinds: dict[str, list[str]] = {}
    for b in list_backbones():
        kinds.setdefault(b.input_kind, []).append(b.name)
    unit = {"clip": "clips for clip backbones ({names}: a 10-crop snippet is 10 clips)",
            "frame": "images for frame backbones ({names}: a 16-frame 10-crop snippet is 160 "
                     "images, split into passes)"}
    parts = [unit[kind].format(names=", ".join(names), default=DEFAULT_BATCH_SIZE[kind])
             + f", default {DEFAULT_BATCH_SIZE[kind]}" for kind, names in sorted(kinds.items())]
    return (f"model inputs per forward pass: {'; '.join(parts)}. The defaults keep peak memory "
            f"under {MEMORY_BUDGET}; more is faster on a GPU and costs memory (README: Memory)")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in option help, and the exit-code table kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes:"):
            return argparse.RawDescriptionHelpFormatter._fill_text(self, text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def _height_width(text: str) -> tuple[int, int]:
    """``"256,340"`` (or ``256x340``) as ``(height, width)``."""
    parts = text.replace("x", ",").split(",")
    try:
        values = tuple(int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: height,width in pixels") from None
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: height,width in pixels")
    return (values[0], values[1])


def _rgb_values(text: str) -> tuple[float, float, float]:
    """``"0.45"`` or ``"0.485,0.456,0.406"`` as an (R, G, B) triple (one value: all three)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: one number or three, comma-separated") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r}: one number or three (R,G,B), got {len(values)}")
    return (values[0], values[1], values[2])


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--checkpoint", "-c", metavar="PATH",
                   help="checkpoint: .pth, .safetensors, a hub-layout folder or hf://owner/repo[@rev]")
    g.add_argument("--model", "-m", metavar="NAME", help=model_help())
    g.add_argument("--backbone", choices=[b.name for b in list_backbones()],
                   help="model family, when neither the checkpoint nor --model says it (default: "
                        "detected from the checkpoint's contents)")
    g.add_argument("--random-weights", action="store_true",
                   help="no checkpoint: deterministic random weights (testing only; outputs say so)")
    g.add_argument("--num-heads", type=int, help="attention heads, for widths no registered size has")


def add_extract_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    g = p.add_argument_group("preprocessing (a preset sets all of these; any flag overrides one)")
    g.add_argument("--preset", choices=list_presets(), help=preset_help())
    g.add_argument("--clip-len", type=int, help="frames per snippet (16)")
    g.add_argument("--frame-interval", type=int, help="take every k-th frame inside a snippet (1)")
    g.add_argument("--stride", type=int,
                   help="frames between snippet starts (default: clip span, non-overlapping)")
    g.add_argument("--tail", choices=get_args(Tail),
                   help="trailing partial snippet: drop (floor(N/16)) or pad with the last frame "
                        "(ceil(N/16))")
    g.add_argument("--crops", type=int, choices=get_args(NumCrops),
                   help="1; 3 along the long side; 5 = 4 corners + centre; 10 = 5 + flips")
    g.add_argument("--crop-resize", type=int, help="short side before 5/10 crops (256)")
    g.add_argument("--crop-order", choices=get_args(CropOrder),
                   help="torchvision: tl, tr, bl, br, c (then flips); centre-first: c, tl, tr, bl, br; "
                        "reading: tl, tr, c, bl, br")
    g.add_argument("--pooling", choices=pooling_choices(), help=pooling_help())
    g.add_argument("--frame-reduce", choices=get_args(FrameReduce),
                   help="frame-level backbones (CLIP): a snippet's feature is the mean of its frames' "
                        "features, or the middle frame's (mean)")
    g.add_argument("--size", type=int, help="model input side (224)")
    g.add_argument("--short-side", type=int, help="short side for the short_side resize (224)")
    g.add_argument("--jpeg-roundtrip", choices=get_args(JpegRoundTrip),
                   help="give a video's frames as a script's JPEG dump holds them, made in memory: "
                        "ffmpeg (`ffmpeg -i VIDEO %%d.jpg` at its defaults) or opencv (cv2.imwrite, "
                        "quality 95); none: as decoded. Frame folders are read as they are")
    g.add_argument("--resize", choices=get_args(ResizeMode),
                   help="short_side: short side to --short-side (or --crop-resize with 3/5/10 "
                        "crops), aspect kept; squash: to --size x --size; fixed: to --frame-size "
                        "whatever the aspect, then the crops; legacy: fed-wsvad's OpenCV path; "
                        "min_side: a short side below 226 enlarged (OpenCV, 8 bits), other frames "
                        "as they are (pytorch-i3d's rule)")
    g.add_argument("--frame-size", type=_height_width, metavar="H,W",
                   help="frame size of --resize fixed, height,width (e.g. 256,340)")
    g.add_argument("--interpolation", choices=get_args(Interpolation),
                   help="resize kernel: bilinear/bicubic in torch (float), pil-* Pillow's on "
                        "8-bit frames as PIL-based scripts (and torchvision's Resize of a PIL "
                        "image) compute them")
    g.add_argument("--channel-order", choices=get_args(ChannelOrder), help="channel order given to the model")
    g.add_argument("--scale", choices=get_args(Scale),
                   help="value scaling: imagenet is (x / 255 - mean) / std; unit x / 255; "
                        "minus_one_one x / 255 * 2 - 1")
    g.add_argument("--mean", type=_rgb_values, metavar="M[,G,B]",
                   help="per-channel mean of --scale imagenet, on the 0..1 scale of x / 255, "
                        "one value or R,G,B (e.g. 114.75 on 0..255 pixels is 0.45)")
    g.add_argument("--std", type=_rgb_values, metavar="S[,G,B]",
                   help="per-channel std of --scale imagenet, on the 0..1 scale (57.375 on 0..255 "
                        "pixels is 0.225)")
    g.add_argument("--fps", type=float,
                   help="resample to this frame rate by timestamps before sampling (VFR-safe)")
    g.add_argument("--frames-colour", choices=get_args(FramesColour), default="normal",
                   help="frame folders written by the legacy script store swapped channels: "
                        "legacy-swapped reads them as the legacy loader did")
    g.add_argument("--folder-fps", type=float, default=30.0,
                   help="frame rate assumed for frame folders (30)")
    g.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="largest frame (width x height) decoded; a larger video fails alone, "
                        "before decoding when its header says so (default: 8K UHD, 7680x4320)")

    r = p.add_argument_group("running")
    r.add_argument("--batch-size", "-b", type=int, metavar="N", help=batch_help())
    r.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    r.add_argument("--devices", type=lambda v: [d.strip() for d in v.split(",") if d.strip()],
                   metavar="D1,D2,...",
                   help="one process with its own model per device (e.g. cuda:0,cuda:1) over "
                        "one shared work list and output folder; each video is done once")
    r.add_argument("--dtype", default="auto", choices=get_args(DTypeOrAuto),
                   help="compute dtype (auto: bf16 on CUDA, fp32 on CPU); files are float32")
    r.add_argument("--quantize", choices=get_args(Quantize),
                   help="CPU only: dynamic int8 Linear layers (faster, features within ~1e-2; "
                        "recorded in the sidecar); see `vadfeat compress`")
    r.add_argument("--preprocess", choices=get_args(Preprocess), default="worker",
                   help="where frames are resized, cropped and normalised: worker (CPU, in the "
                        "decode threads) or device (raw uint8 frames are uploaded and the whole "
                        "snippet is transformed on the model's device; pays off on a GPU with "
                        "high-resolution input; not with the legacy resize of fed-wsvad)")
    r.add_argument("--workers", "-j", type=int, default=1,
                   help="decode/preprocess threads (or processes, see --pipeline) running ahead "
                        "of the model (1)")
    r.add_argument("--pipeline", choices=get_args(Pipeline), default="threads",
                   help="where videos are decoded and transformed: threads of the model's process "
                        "(default), or --workers processes that hand snippets over through shared "
                        "memory (scales past the GIL to feed a GPU; the same outputs)")
    r.add_argument("--on-corrupt", choices=get_args(OnCorrupt), default="fail",
                   help="corrupt data in a video: fail that video, or skip the bad packets and "
                        "record how many frames were lost")
    r.add_argument("--decoder", choices=get_args(Decoder), default="pyav",
                   help="library that decodes video files: pyav, or torchcodec (optional extra "
                        "vadfeat[torchcodec]; decodes on the GPU with NVDEC when --device is CUDA "
                        "and torchcodec is a CUDA build; --on-corrupt fail only). Its frames may "
                        "differ from PyAV's in colour conversion, so the decoder is part of the "
                        "settings a resume must match. Frame folders are read with OpenCV either way")
    r.add_argument("--stream", type=int, default=None, metavar="N",
                   help="index of the container stream to read in every video file (ffprobe's "
                        "numbering: 0, 1, ...). Default: FFmpeg's choice, or the longest video "
                        "stream when that is a still image (cover art, a thumbnail track); files "
                        "with several video streams get a warning naming the one read. A video "
                        "whose stream N is missing or not video fails alone, naming its streams. "
                        "Part of the settings a resume must match")
    au = p.add_argument_group("audio (VGGish: --model vggish/vggish)")
    au.add_argument("--pca", metavar="FILE",
                    help="AudioSet PCA parameters for the postprocessed heads (--pooling postprocessed): "
                         "torchvggish's vggish_pca_params-970ea276.pth or the TensorFlow release's "
                         "vggish_pca_params.npz; its sha256 is part of the settings a resume must match")
    au.add_argument("--grid-from", metavar="DIR",
                    help="put one audio window on each row of the vadfeat visual extraction in DIR "
                         "(each video's sidecar there), so [T, 128] lines up with its [T, crops, D]; "
                         "a video with no sidecar there fails alone. A changed DIR makes the audio "
                         "outputs stale")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "checkpoint": args.checkpoint, "model": args.model, "backbone": getattr(args, "backbone", None),
        "random_weights": args.random_weights,
        "num_heads": args.num_heads, "preset": args.preset, "device": args.device,
        "dtype": args.dtype, "batch_size": args.batch_size, "on_corrupt": args.on_corrupt,
        "fps": args.fps, "frames_colour": args.frames_colour, "folder_fps": args.folder_fps,
        "quantize": getattr(args, "quantize", None), "preprocess": args.preprocess,
        "max_pixels": getattr(args, "max_pixels", DEFAULT_MAX_PIXELS),
        "decoder": getattr(args, "decoder", "pyav"),
        "stream": getattr(args, "stream", None),
        "pca": getattr(args, "pca", None), "grid_from": getattr(args, "grid_from", None),
    }
    for name in PRESET_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    return settings


def _extract(args: argparse.Namespace) -> int:
    if getattr(args, "engine", "local") == "ray":
        return _extract_ray(args)
    from vadfeat._malloc import tune_malloc
    from vadfeat.engines.local import extract

    tune_malloc()  # this process is ours: flat memory over long runs, no page-fault storm
    try:
        summary = extract(args.inputs, args.output, layout=args.layout, workers=args.workers,
                          pipeline=args.pipeline, sink=args.sink, shard_size=args.shard_size,
                          shard_mb=args.shard_mb,
                          overwrite=args.overwrite, progress=not args.quiet, root=args.root,
                          devices=args.devices, wait=args.wait, **settings_from_args(args))
    except OSError as exc:  # e.g. the disk filled up so far that the manifest cannot grow
        log.error("run stopped: %s; finished videos are kept, run again to resume", exc)
        return 1
    log.info("%s", summary.describe())
    log.info("manifest: %s", f"{str(args.output).rstrip('/')}/manifest.jsonl")
    return summary.exit_code


def add_engine_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=get_args(Engine), default="local",
                   help="local: this machine (threads decode ahead of one model); ray: a Ray "
                        "cluster, one model per GPU or CPU slot, workers write to OUT directly "
                        "(pip install 'vadfeat[ray]'; with many machines, inputs and OUT on a "
                        "file system every node mounts at the same path)")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to join: auto (the cluster this node belongs to), HOST:6379 "
                        "or ray://HOST:10001; default $RAY_ADDRESS, else a local cluster for the run")
    g.add_argument("--ray-actors", type=int, metavar="N",
                   help="actors (one model each); default one per GPU, else one per "
                        "--ray-cpus-per-actor CPUs of the cluster")
    g.add_argument("--ray-cpus-per-actor", type=float, default=1.0, metavar="N",
                   help="CPUs reserved by each actor, also its torch threads on CPU")


def _extract_ray(args: argparse.Namespace) -> int:
    from vadfeat.engines.ray import extract_ray  # Ray is imported only now

    if getattr(args, "devices", None):
        raise ConfigError("--devices is for --engine local; with --engine ray each actor gets its "
                          "own GPU from Ray (size the pool with --ray-actors)")
    if args.pipeline != "threads":
        log.warning("--pipeline has no effect with --engine ray: each actor decodes in its own "
                    "threads")
    if args.workers != 1:
        log.warning("--workers has no effect with --engine ray: each actor decodes its own "
                    "videos; size the pool with --ray-actors / --ray-cpus-per-actor")
    summary = extract_ray(args.inputs, args.output, address=args.ray_address, layout=args.layout,
                          overwrite=args.overwrite, progress=not args.quiet, root=args.root,
                          num_actors=args.ray_actors, cpus_per_actor=args.ray_cpus_per_actor,
                          sink=args.sink, shard_size=args.shard_size, shard_mb=args.shard_mb,
                          **settings_from_args(args))
    log.info("%s", summary.describe())
    log.info("manifest: %s", f"{str(args.output).rstrip('/')}/manifest.jsonl")
    return summary.exit_code


def _demo(args: argparse.Namespace) -> int:
    from vadfeat._malloc import tune_malloc
    from vadfeat.demo import run_demo

    tune_malloc()
    r = run_demo(Path(args.output), checkpoint=args.checkpoint, model=args.model,
                 progress=not args.quiet)
    print(r.describe())
    return r.summary.exit_code


def load_config(path: str) -> dict[str, Any]:
    """A JSON config file whose keys are the long option names (dashes or underscores)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object of option: value")
    return {k.replace("-", "_"): v for k, v in data.items()}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract",
        help="extract features (VideoMAE V2, CLIP, I3D; VGGish from the audio) from videos or frame folders",
        description="Extract one feature file per video. INPUT is a video file (any container "
                    "FFmpeg opens), a folder (searched recursively; a folder of images is one "
                    "frame folder) or a .txt list of paths. Outputs mirror the inputs' relative "
                    "paths, are written atomically with a JSON sidecar recording every setting, "
                    "and a re-run skips videos already done with the same settings (files "
                    "verified by sha256, source unchanged). Outputs made with other settings "
                    "stop the run before any work (exit 2; --overwrite replaces them). vadfeat "
                    "never replaces or deletes a file it did not write: such a file at an output "
                    "path fails that video, even with --overwrite.",
        epilog=EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    p.add_argument("--layout", choices=get_args(Layout), default="flat",
                   help="flat: OUT/<rel>/<stem>.npy; fed-wsvad: "
                        "OUT/features_video/i3d/combine/<video>/feature.npy; per-crop: <stem>__<k>.npy")
    o = p.add_argument_group(
        "output container",
        "What holds the features. They are the same numbers whatever the sink: it is not "
        "part of the settings a resume must match; each video's sidecar records it.")
    o.add_argument("--sink", choices=get_args(SinkName), default="npy",
                   help="npy: one .npy file and one .json sidecar per video (the layouts of "
                        "--layout; every training code base reads them; best up to some tens of "
                        "thousands of videos on a local disk). webdataset: tar shards "
                        "OUT/shard-<writer>-<n>.tar of <video>.npy + <video>.json members, read "
                        "by webdataset.WebDataset; parquet: OUT/shard-<writer>-<n>.parquet, one "
                        "row per video (features, shape and the sidecar's fields as columns), "
                        "read by pyarrow, pandas, Polars and Ray Data. Choose a sharded sink for "
                        "100,000-video corpora, object storage or a shared file system, where "
                        "two files per video overload the metadata server; --layout must be "
                        "flat. A video is done when its shard is committed (written whole); a "
                        "killed run redoes the videos of its unfinished shard")
    o.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="N",
                   help="sharded sinks: commit a shard once it holds N videos (each shard's "
                        "videos keep their claims, one open file each, until then)")
    o.add_argument("--shard-mb", type=float, default=DEFAULT_SHARD_MB, metavar="M",
                   help="sharded sinks: commit a shard once its features reach M MiB, if "
                        "--shard-size is not reached first")
    p.add_argument("--root", help="folder that names in .txt lists are relative to")
    p.add_argument("--overwrite", action="store_true",
                   help="redo videos already extracted, also those made with other settings "
                        "(never files vadfeat did not write)")
    p.add_argument("--wait", action="store_true",
                   help="a video another process is extracting: wait for it (then skip it if "
                        "that process finished it, else extract it) instead of reporting it as "
                        "in progress elsewhere (exit 3)")
    p.add_argument("--config", metavar="JSON",
                   help="JSON file of option values (keys = long option names); flags win")
    add_extract_args(p)
    add_engine_args(p)
    p.set_defaults(func=_extract, config_parser=p)

    d = sub.add_parser(
        "demo", help="generate four sample videos and run the whole pipeline on them",
        description="Generate four short videos of a moving scene (two training, two test; one "
                    "of each with an abrupt event) with per-frame ground truth, extract "
                    "features (tiny model with RANDOM weights unless --checkpoint), align them "
                    "with the ground truth, write list files, export them to UR-DMU's layout, "
                    "draw a report, and print where everything went.",
    )
    d.add_argument("-o", "--output", default="vadfeat-demo", help="output folder (vadfeat-demo)")
    d.add_argument("--checkpoint", "-c", help="use real weights from this checkpoint")
    d.add_argument("--model", "-m",
                   help="model: with --checkpoint checked against it (default: detected); without, the "
                        "random-weight model to run (default videomae_v2/vit_tiny_patch16_224; "
                        "clip/vit_tiny_16 runs the demo on the CLIP backbone)")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    d.set_defaults(func=_demo)
