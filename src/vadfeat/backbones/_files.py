"""Checkpoint file I/O that does not depend on the backbone.

Reading PyTorch files with ``torch.load(weights_only=True)`` (pickled code is
refused unless asked for), safetensors files and their header metadata, resolving
``hf://owner/repo[@revision]`` and hub-style folders to one weights file, writing
safetensors atomically with the mode a plain ``open()`` would give, and the file
hash (:func:`sha256_file`, shared with the feature files).  Every failure is a
:class:`~vadfeat.errors.CheckpointError` naming the file.  Backbone modules
(``backbones/videomae/checkpoints.py``, ``compress.py``) build on these; nothing
here imports a backbone.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from vadfeat._types import DTypeName
from vadfeat.errors import CheckpointError, ConfigError
from vadfeat.store.writers import sha256_file  # one file hash for checkpoints and feature files

log = logging.getLogger(__name__)

#: Float dtype names -> torch dtypes: the package's one map (names: :data:`vadfeat._types.DTypeName`).
TORCH_DTYPES: dict[DTypeName, torch.dtype] = {
    "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
}


def torch_dtype(name: str) -> torch.dtype:
    """``"fp32"``/``"bf16"``/``"fp16"`` -> the torch dtype; :class:`ConfigError` for any other name."""
    for key, dtype in TORCH_DTYPES.items():
        if key == name:
            return dtype
    raise ConfigError(f"unknown dtype {name!r}; choose one of {', '.join(TORCH_DTYPES)}")


def torch_load(path: Path, *, allow_pickle: bool = False) -> object:
    if allow_pickle:
        log.warning("%s: loading with full unpickling (--unsafe-allow-pickle): this runs any "
                    "code the file holds; only for files you trust", path)
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - re-raised as CheckpointError
            return _refuse(path, exc)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" in str(exc):  # legacy (non-zip) serialization cannot be memory-mapped
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as inner:  # noqa: BLE001 - re-raised as CheckpointError
                exc = inner  # type: ignore[assignment]
        return _refuse(path, exc)
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many types; all re-raised typed
        return _refuse(path, exc)


def _refuse(path: Path, exc: BaseException) -> object:
    text = str(exc)
    if "Weights only load failed" in text or "weights_only" in text:
        raise CheckpointError(
            f"{path}: refusing to load: the file holds Python objects besides tensors, and "
            "unpickling them could run arbitrary code (torch.load(weights_only=True) "
            "rejected it). If you trust it, convert it once to safetensors: vadfeat "
            "checkpoint convert --unsafe-allow-pickle PATH OUT.safetensors (UNSAFE for "
            "files from others)."
        ) from exc
    if isinstance(exc, zipfile.BadZipFile) or "zip" in text.lower() or "EOF" in text:
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated or damaged file: {text.splitlines()[0]})"
        ) from exc
    first = text.splitlines()[0] if text else type(exc).__name__
    raise CheckpointError(f"{path}: cannot read as a PyTorch checkpoint: {first}") from exc


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def resolve_hf(uri: str) -> Path:
    spec = uri[len("hf://"):]
    repo, _, revision = spec.partition("@")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise CheckpointError(
            f"{uri}: hf:// checkpoints need huggingface_hub (pip install 'vadfeat[hf]')"
        ) from exc
    try:
        folder = snapshot_download(
            repo, revision=revision or None, allow_patterns=["config.json", "*.safetensors"]
        )
    except Exception as exc:  # hub/network errors come in many types; re-raised typed
        raise CheckpointError(f"{uri}: cannot fetch from the Hugging Face hub: {exc}") from exc
    return Path(folder)


def folder_weights(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors"))
    if len(found) == 1:
        return found[0]
    raise CheckpointError(
        f"{folder}: a checkpoint folder needs one model.safetensors (found {[p.name for p in found]})"
    )


def umask() -> int:
    try:  # Linux >= 4.7 shows it without changing it (os.umask would, for every thread)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give ``path`` the mode a plain ``open(path, "w")`` would (safetensors writes 0600)."""
    os.chmod(path, 0o666 & ~umask())


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata in a safetensors header (``{}`` when it has none)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def write_safetensors(tensors: Mapping[str, torch.Tensor], out: str | Path, *,
                      metadata: Mapping[str, str]) -> Path:
    """Write ``tensors`` to ``out`` as safetensors, atomically (a hidden temporary, then a rename)."""
    from safetensors.torch import save_file

    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    save_file(dict(tensors), str(tmp), metadata=dict(metadata))
    follow_umask(tmp)
    os.replace(tmp, target)
    return target


__all__ = [
    "TORCH_DTYPES",
    "folder_weights",
    "follow_umask",
    "load_safetensors",
    "resolve_hf",
    "safetensors_metadata",
    "sha256_file",
    "torch_dtype",
    "torch_load",
    "umask",
    "write_safetensors",
]
