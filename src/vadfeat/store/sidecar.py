"""The sidecar: the JSON object beside a video's features that says how they were made.

It is sealed (:func:`seal_sidecar`): ``sidecar_sha256``, last, is a digest of all its
other fields but ``created``, so an edited sidecar is recognised (:func:`sidecar_edited`)
and its numbers are not trusted.  :func:`is_vadfeat_sidecar` tells vadfeat's sidecars
from other JSON files at the same name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The sidecar field holding the sha256 of the sidecar's other fields (canonical JSON).
SIDECAR_DIGEST = "sidecar_sha256"


# Left out of the digest: the digest itself, and the creation time (so that two runs
# that write the same outputs write the same digest; nothing reads a number from it).
_UNSEALED = (SIDECAR_DIGEST, "created")


def sidecar_digest(meta: Mapping[str, Any]) -> str:
    """The sha256 (hex) of ``meta`` without :data:`SIDECAR_DIGEST` and ``created``, as
    canonical JSON (sorted keys, no spaces, ASCII): what a sidecar says survives a JSON
    round trip unchanged, so any edit of another value changes it."""
    body = {k: v for k, v in meta.items() if k not in _UNSEALED}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal_sidecar(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with a fresh :data:`SIDECAR_DIGEST` (an old one is replaced), last."""
    body = {k: v for k, v in meta.items() if k != SIDECAR_DIGEST}
    return {**body, SIDECAR_DIGEST: sidecar_digest(body)}


def sidecar_edited(meta: Mapping[str, Any]) -> str | None:
    """Why a sidecar's content is not what vadfeat wrote, or ``None``.  Sidecars without a
    digest (written before it existed) are taken as written."""
    value = meta.get(SIDECAR_DIGEST)
    if value is None:
        return None
    if value != sidecar_digest(meta):
        return (f"its content was changed after vadfeat wrote it ({SIDECAR_DIGEST} does not "
                "match), so its numbers are not used")
    return None


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar's JSON object; ``None`` when missing, unreadable, or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def is_vadfeat_sidecar(meta: Any) -> bool:
    """A JSON object vadfeat wrote (every release writes these two keys)."""
    fp = meta.get("fingerprint") if isinstance(meta, dict) else None
    return (isinstance(meta, dict) and isinstance(meta.get("vadfeat_version"), str)
            and isinstance(fp, dict) and isinstance(fp.get("preset"), dict) and "model" in fp)


__all__ = ["SIDECAR_DIGEST", "is_vadfeat_sidecar", "read_sidecar", "seal_sidecar", "sidecar_digest",
           "sidecar_edited"]
