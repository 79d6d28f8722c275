"""The geometry of a VideoMAE V2 checkpoint read from its header, before any weights load.

:meth:`VideoMAEV2Backbone.peek_geometry <vadfeat.backbones.videomae.backbone.VideoMAEV2Backbone>`
uses it so that settings (clip length, size) are checked against a checkpoint's tubelet and
patch sizes when no ``--model`` names the size.  torch is imported only to peek at a ``.pth``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

log = logging.getLogger(__name__)

_PATCH_KEYS = ("patch_embed.proj.weight", "embeddings.patch_embeddings.projection.weight")


def peek_geometry(checkpoint: Any) -> tuple[int, int] | None:
    """``(tubelet, patch)`` of a VideoMAE V2 checkpoint from its header alone (a hub folder's
    ``config.json`` ``model_config``, or the patch embedding's shape in a safetensors header or a
    memory-mapped ``.pth``); ``None`` if that cannot be seen (``hf://`` repositories are not
    fetched for it).  Never raises for a damaged file: the checkpoint loader says what is wrong.
    """
    if checkpoint is None or str(checkpoint).startswith("hf://"):
        return None
    try:
        path = Path(checkpoint).expanduser()
        if path.is_dir():
            found = _from_config(path / "config.json")
            if found is not None:
                return found
            weights = [p for p in sorted(path.glob("*.safetensors"))
                       if p.name in ("model.safetensors", "pytorch_model.safetensors")]
            weights = weights or sorted(path.glob("*.safetensors"))
            return _from_safetensors(weights[0]) if len(weights) >= 1 else None
        if path.suffix == ".safetensors":
            return _from_safetensors(path)
        if path.is_file():
            return _from_pth(path)
    except Exception:  # a peek only: load_checkpoint raises the real error
        log.debug("cannot peek at the geometry of %s", checkpoint, exc_info=True)
    return None


def _from_shape(shape: Any) -> tuple[int, int] | None:
    shape = list(shape)
    if len(shape) == 5 and all(isinstance(s, int) and s > 0 for s in shape):
        return shape[2], shape[4]
    return None


def _from_config(path: Path) -> tuple[int, int] | None:
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    mc = config.get("model_config") if isinstance(config, dict) else None
    if not isinstance(mc, dict):
        return None
    tub, patch = mc.get("tubelet_size"), mc.get("patch_size")
    if _positive_int(tub) and _positive_int(patch):
        return tub, patch
    return None


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _patch_key(keys: Any) -> str | None:
    for key in keys:
        if key.endswith(_PATCH_KEYS):
            return key
    return None


def _from_safetensors(path: Path) -> tuple[int, int] | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        key = _patch_key(f.keys())
        return _from_shape(f.get_slice(key).get_shape()) if key else None


def _from_pth(path: Path) -> tuple[int, int] | None:
    import torch

    # mmap: the tensors are not read; a legacy (non-zip) file cannot be mapped -> no peek.
    obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    for _ in range(3):  # containers: 'module', 'model', 'state_dict'
        if not isinstance(obj, Mapping):
            return None
        key = _patch_key(k for k in obj if isinstance(k, str))
        if key is not None:
            return _from_shape(obj[key].shape) if isinstance(obj[key], torch.Tensor) else None
        obj = next((obj[k] for k in ("module", "model", "state_dict") if isinstance(obj.get(k), Mapping)),
                   None)
    return None
