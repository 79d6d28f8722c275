"""`vadfeat compress`: the legacy pruning + int8 step as a safe, loadable checkpoint."""

from __future__ import annotations

import argparse
from typing import get_args

from vadfeat._types import DTypeName, Quantize
from vadfeat.errors import ConfigError


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (use 0.1 or 10%)") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"prune rate must be in [0, 1), got {text!r}")
    return value


def _compress(args: argparse.Namespace) -> int:
    from vadfeat.backbones._registry import detect_backbone, list_backbones
    from vadfeat.backbones.videomae.compress import compress_checkpoint
    from vadfeat.cli.model_cmds import written_by_vadfeat
    from vadfeat.store.ownership import claim_file

    # Lossy (pruned, int8): never over the original, never over a file vadfeat did not write.
    claim_file(args.output, [args.checkpoint], command="compress", written_by_vadfeat=written_by_vadfeat)
    if args.output.endswith(".safetensors") is False:
        raise ConfigError(f"the output is a safetensors file: name it *.safetensors, not {args.output}")
    backbone = detect_backbone(args.checkpoint)
    if not backbone.can_compress:
        able = ", ".join(b.name for b in list_backbones() if b.can_compress)
        raise ConfigError(f"{args.checkpoint} is a {backbone.name} checkpoint; compress is implemented "
                          f"for {able} checkpoints only")
    result = compress_checkpoint(args.checkpoint, args.output, prune=args.prune,
                                 quantize=args.quantize, dtype=args.dtype, num_heads=args.num_heads)
    print(result.describe())
    print(f"run it with: vadfeat extract VIDEOS -o OUT --checkpoint {result.out}"
          + ("  (int8 layers on the CPU)" if result.quantize else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress", help="prune and/or int8-quantize a checkpoint for CPU and edge devices",
        description="The legacy Fed_WSVAD compression step: L1 unstructured pruning of every "
                    "Conv3d/Linear weight (the given fraction of smallest-magnitude entries of "
                    "each tensor set to zero, permanently), then dynamic int8 quantization of the "
                    "Linear layers (per-tensor symmetric weights). Writes a safetensors file (no "
                    "pickle) that `vadfeat extract --checkpoint OUT` loads; the int8 layers run "
                    "on the CPU, elsewhere the int8-rounded weights run in float. Every feature "
                    "file made with it records the checkpoint's sha256 and the quantization.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="any checkpoint `vadfeat checkpoint inspect` reads")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output .safetensors file (not CHECKPOINT; an existing file is replaced "
                        "only if vadfeat wrote it)")
    p.add_argument("--prune", type=_fraction, default=0.0, metavar="RATE",
                   help="fraction of each Conv3d/Linear weight to zero, e.g. 0.1 or 10%% (default 0)")
    p.add_argument("--quantize", choices=get_args(Quantize),
                   help="store Linear weights as int8 (dynamic int8 on CPU)")
    p.add_argument("--dtype", choices=get_args(DTypeName), default="fp16",
                   help="dtype of the tensors that stay float (default fp16, as the model zoo)")
    p.add_argument("--num-heads", type=int, help="attention heads, for widths no registered size has")
    p.set_defaults(func=_compress)
