"""`vadfeat models` and `vadfeat checkpoint inspect|convert`."""

from __future__ import annotations

import argparse
import json
from typing import get_args

from vadfeat._types import DTypeName
from vadfeat.backbones.videomae.checkpoints import load_checkpoint, save_canonical
from vadfeat.backbones.videomae.model import list_models


def _models(args: argparse.Namespace) -> int:
    rows = [("name", "width", "depth", "heads", "mlp", "patch", "tokens@16x224", "params")]
    for s in list_models():
        rows.append((s.name, str(s.embed_dim), str(s.depth), str(s.num_heads), str(s.mlp_hidden),
                     str(s.patch_size), str(s.num_tokens), f"{s.num_params / 1e6:.1f}M"))
    if args.json:
        print(json.dumps([s.to_dict() | {"num_params": s.num_params, "num_tokens": s.num_tokens}
                          for s in list_models()], indent=2))
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = zip(r, widths, strict=True)
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))
    print("\nvit_tiny_patch16_224 is a test/demo size with no released weights.")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    _, info = load_checkpoint(args.path, num_heads=args.num_heads,
                              allow_pickle=args.unsafe_allow_pickle)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    s = info.spec
    print(f"path        {info.path}")
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


def _convert(args: argparse.Namespace) -> int:
    state, info = load_checkpoint(args.path, num_heads=args.num_heads,
                                  allow_pickle=args.unsafe_allow_pickle)
    out = save_canonical(state, args.out, dtype=args.dtype, metadata={
        "model": info.model_name, "source_format": info.format, "source_sha256": info.sha256,
    })
    print(f"wrote {out} ({info.model_name}, {len(state)} tensors, {args.dtype}, "
          f"from {info.format}; {len(info.ignored_keys)} keys left out)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered VideoMAE V2 sizes",
                       description="List the registered VideoMAE V2 sizes with their shapes "
                                   "and parameter counts (classifier head excluded).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_models)

    ck = sub.add_parser("checkpoint", help="inspect or convert a checkpoint",
                        description="Read any supported checkpoint format (model-zoo .pth, "
                                    "pre-training .pth, Hugging Face hub folder or hf://repo, "
                                    "transformers VideoMAE, safetensors).")
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
                                      "names as .safetensors (safe to load: no pickle).")
    pc.add_argument("path", help="checkpoint file, folder or hf://owner/repo[@revision]")
    pc.add_argument("out", help="output .safetensors path")
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
