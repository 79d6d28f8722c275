"""The AudioSet postprocessing of VGGish embeddings: PCA with whitening, clipping, 8-bit quantisation.

As tensorflow/models ``research/audioset/vggish/vggish_postprocess.py`` (``Postprocessor``)
and harritaylor/torchvggish ``torchvggish/torchvggish.py`` (``Postprocessor.postprocess``)
compute it: ``y = E (x - m)`` with ``E = pca_eigen_vectors`` ``[128, 128]`` (whitening folded
in) and ``m = pca_means`` ``[128]``, clipped to [-2, 2], mapped to [0, 255] by
``(y + 2) * 255 / 4`` and made integer: TensorFlow casts to uint8 (truncation, ``floor``),
torchvggish rounds (``round``); the two differ by at most one step.

The parameters come from the TensorFlow release's ``vggish_pca_params.npz`` or torchvggish's
``vggish_pca_params-970ea276.pth`` (a dict with the same two keys), read without unpickling
code: ``np.load(allow_pickle=False)`` and ``torch.load(weights_only=True)`` (numpy arrays in a
``.pth`` are allowed through torch's own list of safe numpy reconstructors, nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vadfeat.backbones.vggish.spec import (
    EMBEDDING_SIZE,
    PCA_EIGEN_VECTORS,
    PCA_MEANS,
    QUANTIZE_MAX,
    QUANTIZE_MIN,
    Quantize,
)
from vadfeat.errors import CheckpointError

__all__ = ["PcaParams", "load_pca", "postprocess"]


@dataclass(frozen=True)
class PcaParams:
    """``eigen_vectors`` ``[128, 128]`` and ``means`` ``[128]``, float32 CPU tensors; ``source``: the file."""

    eigen_vectors: torch.Tensor
    means: torch.Tensor
    source: str = ""

    def __post_init__(self) -> None:
        if tuple(self.eigen_vectors.shape) != (EMBEDDING_SIZE, EMBEDDING_SIZE):
            raise CheckpointError(f"{self.source}: {PCA_EIGEN_VECTORS} has shape "
                                  f"{tuple(self.eigen_vectors.shape)}, expected (128, 128)")
        if self.means.numel() != EMBEDDING_SIZE:
            raise CheckpointError(f"{self.source}: {PCA_MEANS} has {self.means.numel()} values, "
                                  "expected 128")


def postprocess(x: torch.Tensor, pca: PcaParams, quantize: Quantize = "floor") -> torch.Tensor:
    """``[N, 128]`` embeddings -> ``[N, 128]`` float32 integers in 0..255 (see the module docstring)."""
    e = pca.eigen_vectors.to(device=x.device, dtype=torch.float32)
    m = pca.means.reshape(1, -1).to(device=x.device, dtype=torch.float32)
    y = (x.float() - m) @ e.T
    y = torch.clamp(y, QUANTIZE_MIN, QUANTIZE_MAX)
    y = (y - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))
    return torch.floor(y) if quantize == "floor" else torch.round(y)


def _numpy_safe_globals() -> list[Any]:
    multiarray = getattr(np, "_core", None) or np.core  # numpy 2 renamed np.core
    return [multiarray.multiarray._reconstruct, np.ndarray, np.dtype,
            *{type(np.dtype(t)) for t in (np.float32, np.float64)}]


def _read_pth(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load fails in many types; all re-raised typed
        raise CheckpointError(f"{path}: not a PCA parameter file torch.load(weights_only=True) "
                              f"reads ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                              ) from exc


def load_pca(path: str | Path) -> PcaParams:
    """Read AudioSet PCA parameters from ``.npz`` (TensorFlow release) or ``.pth``/``.pt``
    (torchvggish).  Raises :class:`~vadfeat.errors.CheckpointError` naming the file for a
    missing file, an unreadable one, missing keys or wrong shapes."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such PCA parameter file")
    if p.suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as data:
                found: dict[str, Any] = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{p}: not a readable .npz file ({exc})") from exc
    else:
        loaded = _read_pth(p)
        if not isinstance(loaded, dict):
            raise CheckpointError(f"{p}: holds a {type(loaded).__name__}, not a dict of PCA parameters")
        found = loaded
    missing = [k for k in (PCA_EIGEN_VECTORS, PCA_MEANS) if k not in found]
    if missing:
        raise CheckpointError(f"{p}: not VGGish PCA parameters: missing {', '.join(missing)} "
                              f"(found {', '.join(sorted(map(str, found))[:8]) or 'nothing'})")
    vectors = torch.as_tensor(np.asarray(found[PCA_EIGEN_VECTORS]), dtype=torch.float32)
    means = torch.as_tensor(np.asarray(found[PCA_MEANS]), dtype=torch.float32).reshape(-1)
    return PcaParams(vectors, means, str(p))
