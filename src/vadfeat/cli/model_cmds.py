"""`vadfeat models` and `vadfeat checkpoint inspect|convert`."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, get_args

from vadfeat._types import DTypeName
from vadfeat.backbones._registry import detect_backbone, list_backbones
from vadfeat.errors import CheckpointError

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
        consumes = f"{b.input_kind}s" if b.stream.image else b.stream.describe()
        print(f"  input {consumes}; default preset {b.default_preset}; features "
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


def _pickle_kwargs(backbone: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``allow_pickle=`` for a backbone whose reader takes it (:attr:`reads_unsafe_pickle`);
    the flag means nothing to the others' ``inspect`` (their readers never unpickle)."""
    return {"allow_pickle": args.unsafe_allow_pickle} if backbone.reads_unsafe_pickle else {}


def _inspect(args: argparse.Namespace) -> int:
    backbone = detect_backbone(args.path)
    info = backbone.inspect_checkpoint(args.path, num_heads=args.num_heads, **_pickle_kwargs(backbone, args))
    if args.json:
        print(json.dumps(backbone.inspect_json(info), indent=2))
        return 0
    spec = info.spec
    described = backbone.describe(spec)
    dims = ", ".join(f"{k} {described[k]}" for k in ("width", "depth", "heads", "patch"))
    unit = " px" if backbone.stream.image else ""  # an audio model's input is log-mel frames x bands
    spec_text = f"{backbone.record_name(spec)} ({dims}, input {described['input']}{unit})"
    rows = [("path", str(info.path)), ("backbone", backbone.name), *backbone.inspect_rows(info, spec_text)]
    for label, text in rows:
        print(f"{label:<11} {text}")
    return 0


def written_by_vadfeat(path: Path) -> bool:
    """Whether ``path`` is a safetensors file vadfeat wrote (``checkpoint convert``, ``compress``)."""
    from vadfeat.backbones._files import safetensors_metadata

    try:
        return safetensors_metadata(path).get("format") == "vadfeat-canonical"
    except CheckpointError:
        return False


def _convert(args: argparse.Namespace) -> int:
    from vadfeat.backbones.videomae.checkpoints import save_canonical
    from vadfeat.store.ownership import claim_file

    # A converted copy is lossy (fp16, keys left out): never over the original, never
    # over a file vadfeat did not write.
    claim_file(args.out, [args.path], command="checkpoint convert", written_by_vadfeat=written_by_vadfeat)
    backbone = detect_backbone(args.path)
    state, info = backbone.read_weights(args.path, num_heads=args.num_heads,
                                        allow_pickle=args.unsafe_allow_pickle)
    # A file of bare historical names records no backbone (the loader detects it, as before).
    named = {} if backbone.records_bare_names else {"backbone": backbone.name}
    out = save_canonical(state, args.out, dtype=args.dtype, metadata={
        "model": info.model_name, **named, "source_format": info.format, "source_sha256": info.sha256,
    })
    ignored = getattr(info, "ignored_keys", None)
    left_out = f"; {len(ignored)} keys left out" if ignored is not None else ""
    print(f"wrote {out} ({info.model_name}, {len(state)} tensors, {args.dtype}, "
          f"from {info.format}{left_out})")
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
