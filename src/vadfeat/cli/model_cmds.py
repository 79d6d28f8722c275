"""`vadfeat models` and `vadfeat checkpoint inspect|convert`."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, get_args

from vadfeat._types import DTypeName
from vadfeat.backbones._registry import detect_backbone, list_backbones
from vadfeat.errors import CheckpointError, ConfigError

# Checkpoint readers (and torch) are imported in the handlers that read a checkpoint:
# `vadfeat models` lists the registered sizes without them.


def _models(args: argparse.Namespace) -> int:
    backbones = list_backbones()
    if args.json:
        print(json.dumps([
            {"backbone": b.name, "title": b.title, "input": b.input_kind, "default_preset": b.default_preset,
             "features": {f.name: f.description for f in b.features},
             "aliases": dict(b.aliases()),
             "architectures": [{"name": b.qualified(a), **spec.to_dict(), **b.describe(spec)}
                               for a, spec in b.architectures().items()],
             "pretrained": [dataclasses.asdict(p) for p in b.pretrained()]}
            for b in backbones], indent=2))
        return 0
    for b in backbones:
        print(f"{b.name}: {b.title}")
        print(f"  input {b.input_kind}s; default preset {b.default_preset}; features "
              + ", ".join(f.name for f in b.features) + f" (default {b.default_feature})")
        rows = [("name", "width", "depth", "heads", "patch", "input", "params")]
        for arch, spec in b.architectures().items():
            d = b.describe(spec)
            rows.append((b.qualified(arch), str(d["width"]), str(d["depth"]), str(d["heads"]),
                         str(d["patch"]), str(d["input"]), f"{d['params'] / 1e6:.1f}M"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            cells = zip(r, widths, strict=True)
            print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))
        aliases = b.aliases()
        if aliases:
            print("  also accepted: " + ", ".join(f"{k} = {v}" for k, v in aliases.items()))
        for p in b.pretrained():
            sha = f", sha256 {p.sha256[:12]}..." if p.sha256 else ""
            print(f"  released: {p.file} ({b.qualified(p.arch)}, preset {p.preset}{sha}): {p.source}")
        print()
    tiny = [b.qualified(a) for b in backbones for a in b.dry_run_sizes()]
    print(f"Dry-run sizes, no released weights ({', '.join(tiny)}): small enough to run the whole "
          "pipeline on a CPU with random weights: vadfeat extract VIDEOS -o DRY --model NAME "
          "--random-weights (README, \"A dry run first\").")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from vadfeat.backbones.videomae.checkpoints import load_checkpoint

    backbone = detect_backbone(args.path)
    if backbone.name != "videomae_v2":
        return _inspect_other(backbone, args)
    _, info = load_checkpoint(args.path, num_heads=args.num_heads,
                              allow_pickle=args.unsafe_allow_pickle)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    s = info.spec
    print(f"path        {info.path}")
    print(f"backbone    {backbone.name}")
    print(f"format      {info.format}: {info.detail}")
    print(f"model       {info.model_name} (width {s.embed_dim}, depth {s.depth}, heads {s.num_heads}, "
          f"MLP {s.mlp_hidden}, patch {s.patch_size}, tubelet {s.tubelet_size}, "
          f"{s.num_frames}x{s.img_size}px)")
    print(f"dtype       {info.dtype}")
    print(f"parameters  {info.num_params:,}")
    print(f"fc_norm     {'present' if info.has_fc_norm else 'ABSENT (use pooling mean or stats)'}")
    print(f"sha256      {info.sha256}")
    ignored = ", ".join(info.ignored_keys[:10]) + (" ..." if len(info.ignored_keys) > 10 else "")
    print(f"ignored     {len(info.ignored_keys)} keys" + (f": {ignored}" if ignored else ""))
    for note in info.notes:
        print(f"note        {note}")
    return 0


def _inspect_other(backbone: Any, args: argparse.Namespace) -> int:
    info = backbone.inspect_checkpoint(args.path, num_heads=args.num_heads)
    d = info.to_dict()
    if args.json:
        print(json.dumps({"backbone": backbone.name, **d}, indent=2))
        return 0
    spec = info.spec
    described = backbone.describe(spec)
    print(f"path        {d['path']}")
    print(f"backbone    {backbone.name}")
    print(f"format      {d['format']}")
    dims = ", ".join(f"{k} {described[k]}" for k in ("width", "depth", "heads", "patch"))
    print(f"model       {backbone.record_name(spec)} ({dims}, input {described['input']} px)")
    shapes = (f"{f} {backbone.feature_shape(spec, f)}" for f in backbone.feature_names())
    print("features    " + ", ".join(shapes))
    if "num_params" in d:
        print(f"parameters  {d['num_params']:,}")
    print(f"sha256      {d['sha256']}")
    for note in d.get("notes", ()):
        print(f"note        {note}")
    return 0


def written_by_vadfeat(path: Path) -> bool:
    """Whether ``path`` is a safetensors file vadfeat wrote (``checkpoint convert``, ``compress``)."""
    from vadfeat.backbones._files import safetensors_metadata

    try:
        return safetensors_metadata(path).get("format") == "vadfeat-canonical"
    except CheckpointError:
        return False


def _convert(args: argparse.Namespace) -> int:
    from vadfeat.backbones.videomae.checkpoints import load_checkpoint, save_canonical
    from vadfeat.store.ownership import claim_file

    # A converted copy is lossy (fp16, keys left out): never over the original, never
    # over a file vadfeat did not write.
    claim_file(args.out, [args.path], command="checkpoint convert", written_by_vadfeat=written_by_vadfeat)
    backbone = detect_backbone(args.path)
    if backbone.name != "videomae_v2":
        if args.unsafe_allow_pickle:
            raise ConfigError(f"--unsafe-allow-pickle is for VideoMAE V2 .pth files, not {backbone.name}")
        state, other = backbone.read_checkpoint(args.path)
        out = save_canonical(state, args.out, dtype=args.dtype, metadata={
            "model": other.model_name, "backbone": backbone.name, "source_format": other.format,
            "source_sha256": other.sha256,
        })
        print(f"wrote {out} ({other.model_name}, {len(state)} tensors, {args.dtype}, from {other.format})")
        return 0
    state, info = load_checkpoint(args.path, num_heads=args.num_heads,
                                  allow_pickle=args.unsafe_allow_pickle)
    out = save_canonical(state, args.out, dtype=args.dtype, metadata={
        "model": info.model_name, "source_format": info.format, "source_sha256": info.sha256,
    })
    print(f"wrote {out} ({info.model_name}, {len(state)} tensors, {args.dtype}, "
          f"from {info.format}; {len(info.ignored_keys)} keys left out)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the backbones, their sizes and released weights",
                       description="List every registered backbone (VideoMAE V2, CLIP, plug-ins) with "
                                   "its sizes (shapes, parameter counts without classifier heads), "
                                   "feature heads, default preset, accepted aliases and released "
                                   "weights (with sha256 where the publisher states it).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_models)

    ck = sub.add_parser("checkpoint", help="inspect or convert a checkpoint",
                        description="Read any supported checkpoint format; the backbone is detected "
                                    "from the file. VideoMAE V2: model-zoo .pth, pre-training .pth, "
                                    "Hugging Face hub folder or hf://repo, transformers VideoMAE, "
                                    "safetensors. CLIP: OpenAI's TorchScript .pt (read without running "
                                    "its code), state dicts with OpenAI names, open_clip checkpoints, "
                                    "transformers CLIP folders, safetensors.")
    cksub = ck.add_subparsers(dest="checkpoint_command", metavar="ACTION", required=True)
    pi = cksub.add_parser("inspect", help="what the loader detects in a checkpoint",
                          description="Show the detected format, architecture, dtype, "
                                      "parameter count, sha256 and the keys ignored.")
    pi.add_argument("path", help="checkpoint file, folder or hf://owner/repo[@revision]")
    pi.add_argument("--num-heads", type=int, help="attention heads, for widths no registered size has")
    pi.add_argument("--json", action="store_true", help="machine-readable output")
    _unsafe_flag(pi)
    pi.set_defaults(func=_inspect)
    pc = cksub.add_parser("convert", help="rewrite a checkpoint as canonical safetensors",
                          description="Write the feature model's tensors under the official key "
                                      "names as .safetensors (safe to load: no pickle). For CLIP: "
                                      "the image encoder's tensors under OpenAI's names.")
    pc.add_argument("path", help="checkpoint file, folder or hf://owner/repo[@revision]")
    pc.add_argument("out", help="output .safetensors path (not the input; an existing file is "
                    "replaced only if vadfeat wrote it)")
    pc.add_argument("--dtype", choices=get_args(DTypeName), default="fp16",
                    help="tensor dtype in the output (default fp16, as the model zoo)")
    pc.add_argument("--num-heads", type=int, help="attention heads, for widths no registered size has")
    _unsafe_flag(pc)
    pc.set_defaults(func=_convert)


def _unsafe_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unsafe-allow-pickle", action="store_true",
                   help="UNSAFE: load a .pth that holds Python objects besides tensors with full "
                        "unpickling, which runs any code the file carries. Only for files you "
                        "trust; convert them once and use the .safetensors from then on "
                        "(extract never unpickles)")
