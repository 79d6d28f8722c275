"""Model compression for edge devices: L1 unstructured pruning and dynamic int8 Linear layers.

This is step 5 of the legacy Fed_WSVAD "Backbone" folder (docs/REFERENCE.md, section 1): every
``Conv3d``/``Linear`` weight is pruned by magnitude at one rate, *per tensor*
(the ``amount`` fraction of its entries with the smallest ``|w|`` become zero,
the rule of ``torch.nn.utils.prune.l1_unstructured``, made permanent), then the
``Linear`` layers run with dynamic int8 quantization (int8 weights, activations
quantized per call from their observed range, fp32 accumulation of the bias).

Quantization scheme: per-tensor symmetric int8, ``scale = max|w| / 127``,
zero point 0, as PyTorch's default dynamic weight observer except that the
extreme weight maps to exactly +-127 instead of being clipped at 127.5.  With
that choice re-quantizing the de-quantized weights gives the same int8 values
back, so a compressed checkpoint can be stored as int8 tensors and rebuilt
exactly (see :func:`decompress_state`).

Compressed checkpoints are canonical safetensors (no pickle, safe to load):

* ``Linear`` weights (``qkv``, ``proj``, ``fc1``, ``fc2``) as int8 tensors, each
  with a 0-d float32 ``<key>_scale`` beside it;
* every other tensor (patch embedding, biases, norms) in a float dtype (fp16 by
  default, as the model zoo ships);
* the header metadata key ``vadfeat_compression``: JSON with the pruning rate,
  the quantization mode and scheme, the source checkpoint and its sha256.

:func:`vadfeat.backbones.videomae.checkpoints.load_checkpoint` recognises that metadata, restores
float weights (``int8 * scale``) and records the compression in
``CheckpointInfo.compression``; :func:`vadfeat.backbones.loading.load_model` then applies
the int8 layers again on the CPU (elsewhere it runs the int8-rounded weights in
float and warns).  ``VideoMAE V2``'s attention adds ``q_bias``/``v_bias`` to a
bias-free ``qkv`` through ``F.linear(x, self.qkv.weight, ...)``, which a
quantized module cannot serve; :class:`Int8Attention` folds the two biases into
the ``qkv`` layer's bias (exact: they are constants at inference time).

Backend: ``torch.ao.nn.quantized.dynamic.Linear`` (FBGEMM/oneDNN int8 GEMM).
``torch.ao.quantization`` is deprecated in favour of ``torchao``; on this CPU
torchao 0.18's int8 configs ran *slower* than fp32 while the torch.ao kernels
run 2-4x faster (BENCHMARKS.md), so vadfeat keeps the torch.ao modules,
builds them directly (no deprecated ``quantize_dynamic`` entry point) and
silences only the deprecation notices of the quantized-tensor constructor.
"""

from __future__ import annotations

import json
import logging
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vadfeat._version import __version__
from vadfeat.backbones._files import torch_dtype, write_safetensors
from vadfeat.backbones.videomae.checkpoints import (  # the compressed format's reader (re-exported)
    INT8_SCHEME,
    METADATA_KEY,
    QUANTIZE_MODES,
    SCALE_SUFFIX,
    decompress_state,
    load_checkpoint,
    read_compression,
)
from vadfeat.backbones.videomae.checkpoints import (
    describe_compression as describe_compression,
)
from vadfeat.backbones.videomae.model import Attention, FeatureModel, ModelSpec, VideoMAEv2
from vadfeat.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

PRUNE_METHOD = "l1_unstructured per tensor (torch.nn.utils.prune rule), permanent"
_PRUNABLE = (nn.Conv3d, nn.Linear)


def check_quantize(mode: str | None) -> str | None:
    if mode is not None and mode not in QUANTIZE_MODES:
        raise ConfigError(f"unknown quantization {mode!r}; choose one of {', '.join(QUANTIZE_MODES)}")
    return mode


def check_prune(amount: float) -> float:
    if not isinstance(amount, (int, float)) or not 0.0 <= float(amount) < 1.0:
        raise ConfigError(f"prune rate must be a fraction in [0, 1), got {amount!r}")
    return float(amount)


# --------------------------------------------------------------------------- pruning


def weight_keys(spec: ModelSpec, types: tuple[type[nn.Module], ...] = _PRUNABLE) -> list[str]:
    """State-dict keys of the weights of every module of ``types`` in the encoder of ``spec``.

    Found from the module types of a freshly built encoder (on the meta device: no
    memory), so the rule is "every Conv3d/Linear", not a list of names.
    """
    with torch.device("meta"):
        encoder = VideoMAEv2(spec)
    return [f"{name}.weight" for name, mod in encoder.named_modules() if isinstance(mod, types)]


def num_to_prune(amount: float, numel: int) -> int:
    """How many entries a rate zeroes in a tensor: ``round(amount * numel)``, as torch's pruning."""
    return round(check_prune(amount) * numel)


def l1_unstructured(weight: torch.Tensor, amount: float) -> torch.Tensor:
    """A copy of ``weight`` with its ``round(amount * numel)`` smallest-``|w|`` entries set to 0."""
    k = num_to_prune(amount, weight.numel())
    out = weight.detach().clone()
    if k == 0:
        return out
    flat = out.view(-1)
    # Ties at the threshold: topk picks k of them, so exactly k entries are zeroed.
    idx = torch.topk(flat.abs().float(), k, largest=False, sorted=False).indices
    flat[idx] = 0
    return out


def prune_state(state: Mapping[str, torch.Tensor], keys: list[str], amount: float) -> dict[str, torch.Tensor]:
    """``state`` with every tensor named in ``keys`` pruned at ``amount`` (others unchanged)."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"cannot prune: weights missing from the checkpoint: {missing[:5]}")
    out = dict(state)
    for key in keys:
        out[key] = l1_unstructured(state[key].float(), amount)
    return out


# --------------------------------------------------------------------------- int8


def int8_scale(weight: torch.Tensor) -> float:
    """Per-tensor symmetric scale ``max|w| / 127`` (never 0: an all-zero tensor gets float eps)."""
    amax = float(weight.detach().abs().max()) if weight.numel() else 0.0
    return max(amax / 127.0, float(torch.finfo(torch.float32).eps))


def int8_quantize(weight: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``weight`` -> ``(int8 values, scale)`` under :data:`INT8_SCHEME`."""
    scale = int8_scale(weight)
    q = torch.clamp(torch.round(weight.detach().float() / scale), -127, 127).to(torch.int8)
    return q, scale


def dynamic_int8_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A dynamic int8 ``Linear`` (FBGEMM/oneDNN) computing ``x @ weight.T + bias``.

    Its int8 weight is exactly :func:`int8_quantize`'s (what a compressed file stores).
    """
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    q, scale = int8_quantize(weight)
    out_features, in_features = weight.shape
    with warnings.catch_warnings():
        # torch 2.13 marks the quantized tensor constructors deprecated; the int8 kernels
        # they feed are still the fastest CPU path here (module docstring).
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
        mod = DynamicLinear(in_features, out_features, bias_=bias is not None, dtype=torch.qint8)
        # q * scale / scale rounds back to q exactly (|q| <= 127), so the module holds q.
        qweight = torch.quantize_per_tensor(q.float() * scale, scale, 0, torch.qint8)
        mod.set_weight_bias(qweight, None if bias is None else bias.detach().float().contiguous())
    return mod


def _float_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin.requires_grad_(False)


class Int8Attention(nn.Module):
    """VideoMAE V2 attention whose ``qkv`` and ``proj`` are ordinary callable layers.

    ``q_bias``/``v_bias`` (and the key's zero bias) are folded into the ``qkv``
    layer's bias, so ``qkv`` can be any Linear-like module: a dynamic int8 one by
    default, a float ``nn.Linear`` with ``linear=`` for checking the fold.
    """

    def __init__(self, attn: Attention, *,
                 linear: Callable[[torch.Tensor, torch.Tensor | None], nn.Module] = dynamic_int8_linear
                 ) -> None:
        super().__init__()
        self.num_heads = attn.num_heads
        with torch.no_grad():
            bias = torch.cat((attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias)).float()
        self.qkv = linear(attn.qkv.weight.detach().float(), bias)
        self.proj = linear(attn.proj.weight.detach().float(), attn.proj.bias.detach().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same computation as videomae.Attention.forward with the bias inside qkv.
        b, n, d = x.shape
        qkv = self.qkv(x)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


def _set_child(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def quantize_int8(model: FeatureModel) -> FeatureModel:
    """Make every ``Linear`` of ``model`` a dynamic int8 layer, in place; CPU, fp32 activations.

    Attention layers become :class:`Int8Attention`; the ``Conv3d`` patch embedding,
    norms and attention itself stay fp32.  Sets ``model.quantize = "int8"``, which
    every output's sidecar records.
    """
    if getattr(model, "quantize", None) == "int8":
        return model
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ConfigError("int8 dynamic quantization runs on the CPU only (--device cpu)")
    model.float()
    with torch.no_grad():
        attns = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, Attention)]
        for name, attn in attns:
            _set_child(model, name, Int8Attention(attn))
        linears = [(name, mod) for name, mod in model.named_modules() if type(mod) is nn.Linear]
        for name, lin in linears:
            _set_child(model, name, dynamic_int8_linear(lin.weight, lin.bias))
    model.quantize = "int8"
    model.eval()
    return model


def apply_quantization(model: FeatureModel, mode: str | None, *, explicit: bool,
                       device: torch.device) -> FeatureModel:
    """``load_model``'s hook: quantize on the CPU; elsewhere refuse (``explicit``) or warn.

    ``explicit`` is True when the user asked (``--quantize``), False when a
    compressed checkpoint asks: its int8-rounded weights still run in float on a GPU.
    """
    if check_quantize(mode) is None:
        return model
    if device.type != "cpu":
        if explicit:
            raise ConfigError(
                f"--quantize {mode} is dynamic CPU quantization; it cannot run on {device} "
                "(use --device cpu, or bf16 on the GPU)"
            )
        log.warning("checkpoint holds int8 weights: running them de-quantized in float on %s "
                    "(int8 kernels are CPU-only)", device)
        return model
    return quantize_int8(model)


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class CompressResult:
    """What :func:`compress_checkpoint` wrote and how much it changed."""

    out: Path
    model_name: str
    prune: float
    quantize: str | None
    pruned: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (zeros, numel)
    quantized: tuple[str, ...] = ()
    source_bytes: int = 0
    out_bytes: int = 0
    out_deflate_bytes: int = 0

    def describe(self) -> str:
        zeros = sum(z for z, _ in self.pruned.values())
        total = sum(n for _, n in self.pruned.values())
        lines = [
            f"wrote {self.out} ({self.model_name})",
            f"  pruned      {len(self.pruned)} Conv3d/Linear weights at {self.prune:.0%} each "
            f"({zeros:,} of {total:,} entries are zero)",
            f"  quantized   {len(self.quantized)} Linear weights to int8" if self.quantize
            else "  quantized   no (float weights)",
            f"  size        {self.out_bytes / 1e6:.2f} MB (source {self.source_bytes / 1e6:.2f} MB; "
            f"deflated {self.out_deflate_bytes / 1e6:.2f} MB: pruned zeros only shrink "
            "under compression)",
        ]
        return "\n".join(lines)


def deflate_size(path: Path) -> int:
    """Bytes of ``path`` after zlib/deflate level 6 (what zeroed weights save in a zipped download)."""
    comp = zlib.compressobj(6)
    total = 0
    with open(path, "rb") as src:
        while block := src.read(1 << 22):
            total += len(comp.compress(block))
    return total + len(comp.flush())


def compress_state(
    state: Mapping[str, torch.Tensor], spec: ModelSpec, *, prune: float = 0.0,
    quantize: str | None = None, dtype: str = "fp16",
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[int, int]], tuple[str, ...]]:
    """Prune and quantize an official-key state dict -> ``(tensors to store, pruned, quantized)``."""
    prune = check_prune(prune)
    check_quantize(quantize)
    float_dtype = torch_dtype(dtype)
    prunable = weight_keys(spec)
    work = prune_state(state, prunable, prune) if prune > 0 else {k: v.float() for k, v in state.items()}
    pruned = {k: (int((work[k] == 0).sum()), work[k].numel()) for k in prunable} if prune > 0 else {}
    linear_keys = weight_keys(spec, (nn.Linear,)) if quantize else []
    out: dict[str, torch.Tensor] = {}
    for key, value in work.items():
        if key in linear_keys:
            q, scale = int8_quantize(value)
            out[key] = q.contiguous()
            out[key + SCALE_SUFFIX] = torch.tensor(scale, dtype=torch.float32)
        else:
            out[key] = value.detach().to(float_dtype).contiguous()
    return out, pruned, tuple(linear_keys)


def compress_checkpoint(
    source: str | Path,
    out: str | Path,
    *,
    prune: float = 0.0,
    quantize: str | None = None,
    dtype: str = "fp16",
    num_heads: int | None = None,
) -> CompressResult:
    """Read any supported checkpoint, prune/quantize it, write a compressed safetensors file.

    The output loads with ``load_model(out)`` / ``vadfeat extract --checkpoint out``,
    which re-applies the int8 layers on the CPU.  Written atomically.
    """
    prune = check_prune(prune)
    check_quantize(quantize)
    if prune == 0 and quantize is None:
        raise ConfigError("nothing to do: give --prune RATE and/or --quantize int8")
    state, info = load_checkpoint(source, num_heads=num_heads)
    if info.compression:
        raise CheckpointError(
            f"{source} is already compressed ({info.detail}); compress the original checkpoint"
        )
    tensors, pruned, quantized = compress_state(state, info.spec, prune=prune, quantize=quantize,
                                                dtype=dtype)
    meta = {
        "prune": prune,
        "prune_method": PRUNE_METHOD if prune else None,
        "quantize": quantize,
        "quantize_scheme": INT8_SCHEME if quantize else None,
        "float_dtype": dtype,
        "model": info.model_name,
        "num_heads": info.spec.num_heads,
        "source": info.path,
        "source_format": info.format,
        "source_sha256": info.sha256,
        "vadfeat_version": __version__,
    }
    target = write_safetensors(tensors, out, metadata={
        "format": "vadfeat-canonical", "model": info.model_name,
        METADATA_KEY: json.dumps(meta, sort_keys=True)})
    src_path = Path(info.path)
    return CompressResult(
        out=target, model_name=info.model_name, prune=prune, quantize=quantize, pruned=pruned,
        quantized=quantized,
        source_bytes=src_path.stat().st_size if src_path.is_file() else 0,
        out_bytes=target.stat().st_size, out_deflate_bytes=deflate_size(target),
    )


__all__ = [
    "QUANTIZE_MODES",
    "CompressResult",
    "Int8Attention",
    "apply_quantization",
    "compress_checkpoint",
    "compress_state",
    "decompress_state",
    "dynamic_int8_linear",
    "int8_quantize",
    "int8_scale",
    "l1_unstructured",
    "quantize_int8",
    "read_compression",
    "weight_keys",
]
