"""Reading VGGish weights from the files users hold, into torchvggish's parameter names.

Formats (:data:`~vadfeat.backbones.vggish.spec.VGGISH_FORMATS`):

- ``"torchvggish"``: harritaylor/torchvggish's ``vggish-10086976.pth`` (a plain state dict:
  ``features.0.weight`` ... ``embeddings.4.bias``; what v-iashin/video_features loads too),
  the same state dict saved by ``torch.save`` (``.pt``/``.pth``, also nested under
  ``"state_dict"`` or ``"model"``) or in ``.safetensors``;
- ``"tf-npz"``: the TensorFlow release's ``vggish_model.ckpt`` dumped to ``.npz`` with its
  variable names (reading a TensorFlow checkpoint needs TensorFlow, which vadfeat does not
  install).  The one-time conversion, on a machine with ``pip install tensorflow``::

      import numpy as np, tensorflow as tf
      reader = tf.train.load_checkpoint("vggish_model.ckpt")
      names = [n for n in reader.get_variable_to_shape_map() if n.startswith("vggish/")]
      np.savez("vggish_model.npz", **{n: reader.get_tensor(n) for n in names})

  The variables (tensorflow/models ``research/audioset/vggish/vggish_slim.py`` scopes) map as
  :data:`TF_NAMES` lists: convolution kernels ``[3, 3, in, out]`` (HWIO) are transposed to
  ``[out, in, 3, 3]``, dense kernels ``[in, out]`` to ``[out, in]``; ``fc1/fc1_1``'s input
  order is TensorFlow's NHWC flatten, which :class:`~vadfeat.backbones.vggish.model.VGGish`
  keeps, so no further permutation.  Other variables in the file (an optimizer's, a global
  step) are ignored and counted in the notes.

Rules: ``torch.load(..., weights_only=True)`` only (via ``backbones/_files.py``),
``np.load(allow_pickle=False)``; non-float tensors are refused; missing, unexpected or
misshapen keys are named in the :class:`~vadfeat.errors.CheckpointError` with the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vadfeat.backbones._files import checkpoint_sha256, load_safetensors, torch_load
from vadfeat.backbones.vggish.model import VGGish
from vadfeat.backbones.vggish.spec import TF_NAMES, VGGISH_SHAPES, sniff_vggish, why_not_vggish
from vadfeat.errors import CheckpointError

__all__ = ["TF_NAMES", "VGGISH_SHAPES", "VGGishCheckpoint", "load_vggish", "load_vggish_checkpoint",
           "sniff_vggish", "tf_to_torchvggish", "why_not_vggish"]

log = logging.getLogger(__name__)

_SHOW = 8

@dataclass(frozen=True)
class VGGishCheckpoint:
    """VGGish weights, read and checked.

    ``state_dict``: torchvggish names, float32 CPU tensors, exactly :data:`VGGISH_SHAPES`;
    ``format``: ``"torchvggish"`` or ``"tf-npz"``; ``sha256``: hex digest of the file;
    ``notes``: what was converted or ignored.
    """

    state_dict: dict[str, torch.Tensor]
    format: str
    sha256: str
    notes: tuple[str, ...] = ()


def _show(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def tf_to_torchvggish(variables: Mapping[str, np.ndarray], source: str = "") -> tuple[
        dict[str, torch.Tensor], tuple[str, ...]]:
    """TensorFlow release variables (``vggish/conv1/weights``...) -> torchvggish state dict.

    Returns the state dict and notes (the variables ignored).  Raises
    :class:`~vadfeat.errors.CheckpointError` naming ``source`` for a missing variable or a
    wrong shape.
    """
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []
    for prefix, scope in TF_NAMES.items():
        for leaf, kind in (("weights", "weight"), ("biases", "bias")):
            name = f"{scope}/{leaf}"
            if name not in variables:
                missing.append(name)
                continue
            used.add(name)
            value = np.asarray(variables[name], dtype=np.float32)
            if kind == "weight":
                value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
            out[f"{prefix}.{kind}"] = torch.from_numpy(np.ascontiguousarray(value))
    if missing:
        raise CheckpointError(f"{source}: not a VGGish TensorFlow dump: missing {_show(missing)}")
    extra = [k for k in variables if k not in used]
    notes = (f"converted from the TensorFlow release layout ({len(used)} variables, kernels "
             "transposed)",) + ((f"ignored {len(extra)} other variable(s): {_show(extra)}",) if extra else ())
    return out, notes


def _unwrap(obj: object, path: Path) -> Mapping[str, object]:
    """The state dict inside a training checkpoint (``state_dict``/``model`` entry, DDP's
    ``module.`` prefix removed)."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(str(k).startswith(("features.", "module.")) for k in inner):
                obj = inner
                break
        if obj and all(str(k).startswith("module.") for k in obj):
            return {str(k)[len("module."):]: v for k, v in obj.items()}
        return obj
    raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")


def _check(state: Mapping[str, object], path: Path) -> dict[str, torch.Tensor]:
    names = set(map(str, state))
    want = set(VGGISH_SHAPES)
    missing, unexpected = want - names, names - want
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_show(unexpected)}")
        raise CheckpointError(f"{path}: does not fit VGGish ({'; '.join(parts)})")
    out: dict[str, torch.Tensor] = {}
    for name, shape in VGGISH_SHAPES.items():
        value = state[name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise CheckpointError(f"{path}: {name} is not a float tensor ({type(value).__name__})")
        if tuple(value.shape) != shape:
            raise CheckpointError(f"{path}: {name} has shape {tuple(value.shape)}, VGGish's is {shape}")
        out[name] = value.to(torch.float32)
    return out


def load_vggish_checkpoint(path: str | Path) -> VGGishCheckpoint:
    """Read a VGGish checkpoint in any of the formats of the module docstring.

    ``.npz``: the TensorFlow dump; ``.safetensors``: a torchvggish state dict; anything else:
    ``torch.load(weights_only=True)``.  Raises :class:`~vadfeat.errors.CheckpointError`
    naming the file (missing, unreadable, or keys that are not VGGish's, listed).
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    if p.suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as data:
                variables = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{p}: not a readable .npz file ({exc})") from exc
        reason = why_not_vggish(variables)
        if reason is not None:
            raise CheckpointError(f"{p}: not a VGGish checkpoint: {reason}")
        state, notes = tf_to_torchvggish(variables, str(p))
        fmt = "tf-npz"
    else:
        raw = load_safetensors(p) if p.suffix == ".safetensors" else torch_load(p)
        state = _unwrap(raw, p)  # type: ignore[assignment]
        notes = ()
        fmt = "torchvggish"
    state = _check(state, p)
    log.info("%s: VGGish checkpoint, format %s", p, fmt)
    return VGGishCheckpoint(state_dict=state, format=fmt, sha256=checkpoint_sha256(p), notes=notes)


def load_vggish(path: str | Path, **kwargs: object) -> VGGish:
    """A :class:`VGGish` in eval mode with the weights of ``path`` loaded strictly (``kwargs``
    go to its constructor: ``pca``, ``quantize``)."""
    ckpt = load_vggish_checkpoint(path)
    model = VGGish(**kwargs)  # type: ignore[arg-type]
    model.load_state_dict(ckpt.state_dict, strict=True)
    return model.eval()
