"""Checkpoint file I/O that does not depend on the backbone.

Reading PyTorch files with ``torch.load(weights_only=True)`` (pickled code is
refused unless asked for), safetensors files and their header metadata, resolving
``hf://owner/repo[@revision]`` and hub-style folders to one weights file, writing
safetensors atomically with the mode a plain ``open()`` would give, and the file
hash (:func:`sha256_file`, shared with the feature files) and the cached checkpoint
hash (:func:`checkpoint_sha256`).  Every failure is a
:class:`~vadfeat.errors.CheckpointError` naming the file.  Backbone modules
(``backbones/videomae/checkpoints.py``, ``compress.py``) build on these; nothing
here imports a backbone.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from vadfeat._types import DTypeName
from vadfeat.errors import CheckpointError, ConfigError
from vadfeat.store.atomic import atomic_path, sha256_file

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


# -- checkpoint hash cache --------------------------------------------------------------

#: Environment variable naming the cache folder; ``off`` disables the cache.
CACHE_ENV = "VADFEAT_CACHE_DIR"
_HASH_CACHE_FILE = "checkpoint-sha256.json"
_HASH_CACHE_VERSION = 1
_HASH_CACHE_MAX = 256  # entries kept (the most recently stored)
# A file modified this recently may still change within the same mtime tick: its hash
# is computed but not stored (git's "racy" rule).
_RACY_SECONDS = 2.0
_warned: set[str] = set()


def cache_dir() -> Path | None:
    """vadfeat's cache folder: ``$VADFEAT_CACHE_DIR``, else ``$XDG_CACHE_HOME/vadfeat``,
    else ``~/.cache/vadfeat``; ``None`` when ``VADFEAT_CACHE_DIR=off``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() == "off":
        return None
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vadfeat"


def _warn_once(key: str, msg: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def _read_hash_cache(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        _warn_once("read", "checkpoint hash cache %s is unreadable (%s); hashing checkpoints in full",
                   path, exc)
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or data.get("version") != _HASH_CACHE_VERSION:
        _warn_once("read", "checkpoint hash cache %s is not a cache this vadfeat wrote; ignoring it", path)
        return {}
    return {k: v for k, v in entries.items() if isinstance(v, dict)}


def checkpoint_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of a checkpoint file, cached across runs.

    The cache (``checkpoint-sha256.json`` in :func:`cache_dir`) maps the resolved path
    to ``(size, mtime_ns, inode, sha256)``; a stored hash is used only while size,
    mtime and inode are all unchanged (the trust rule of source identity), anything
    else rehashes the file.  The cache is written atomically; an unreadable, corrupt
    or unwritable cache falls back to hashing (one warning per process).  Disabled
    with ``VADFEAT_CACHE_DIR=off``.  Raises ``OSError`` when the file cannot be read.
    """
    p = Path(path).resolve()
    folder = cache_dir()
    if folder is None:
        return sha256_file(p)
    st = p.stat()
    key = str(p)
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
    cache_file = folder / _HASH_CACHE_FILE
    hit = _read_hash_cache(cache_file).get(key)
    if hit and all(hit.get(k) == v for k, v in stamp.items()) and isinstance(hit.get("sha256"), str):
        log.debug("%s: sha256 from the cache %s", p, cache_file)
        return str(hit["sha256"])
    digest = sha256_file(p)
    after = p.stat()
    if (after.st_size, after.st_mtime_ns, after.st_ino) != (st.st_size, st.st_mtime_ns, st.st_ino) or (
        time.time() - st.st_mtime_ns / 1e9 < _RACY_SECONDS
    ):
        return digest  # changed while hashed, or may still change unseen: do not store
    try:
        entries = _read_hash_cache(cache_file)  # re-read: another process may have added entries
        entries.pop(key, None)
        entries[key] = {**stamp, "sha256": digest}
        keep = dict(list(entries.items())[-_HASH_CACHE_MAX:])
        with atomic_path(cache_file) as tmp:
            tmp.write_text(json.dumps({"version": _HASH_CACHE_VERSION, "entries": keep}, indent=1),
                           encoding="utf-8")
    except OSError as exc:
        _warn_once("write", "cannot write the checkpoint hash cache %s (%s); checkpoints are hashed "
                   "in full on every load (set %s=off to silence this)", cache_file, exc, CACHE_ENV)
    return digest


__all__ = [
    "CACHE_ENV",
    "TORCH_DTYPES",
    "cache_dir",
    "checkpoint_sha256",
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
