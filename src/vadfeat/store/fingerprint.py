"""Settings fingerprints: when two of them describe the same features.

A sidecar records the ``fingerprint`` of the settings its features were made with; a
video resumes only when it equals the run's (:func:`same_fingerprint`).  Keys added
after the first release compare equal to the value older outputs were made with
(:data:`FINGERPRINT_DEFAULTS`, :data:`PRESET_DEFAULTS`), so old outputs still resume.

Model names: a fingerprint names the model as the backbones registry spells it, and a
historical spelling must compare equal to today's.  That knowledge lives with the
backbones, above this package: :func:`set_model_name_canonicaliser` installs it (the
extraction config does, on import), and without it names compare as written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

# Fingerprint keys added after the first release, with the value every earlier output
# was made with; a missing key equals its default, so old outputs still resume.
FINGERPRINT_DEFAULTS: dict[str, Any] = {"quantize": None, "preprocess": "worker",
                                        "folder_fps": 30.0, "num_heads": None, "decoder": "pyav"}


# Preset fields added after the first release, with the value earlier outputs were made with.
PRESET_DEFAULTS: dict[str, Any] = {"frame_reduce": "mean"}


_canonical_model_name: Callable[[str], str | None] | None = None


def set_model_name_canonicaliser(fn: Callable[[str], str | None] | None) -> None:
    """Install ``fn`` (a recorded model name -> the name fingerprints compare; ``None``
    removes it).  The backbones' registry provides one (``canonical_model_name``)."""
    global _canonical_model_name
    _canonical_model_name = fn


def _normalised(fp: Mapping[str, Any]) -> dict[str, Any]:
    d = {**FINGERPRINT_DEFAULTS, **fp}
    if isinstance(d.get("preset"), Mapping):
        d["preset"] = {**PRESET_DEFAULTS, **d["preset"]}
    if isinstance(d.get("model"), str) and _canonical_model_name is not None:
        d["model"] = _canonical_model_name(d["model"])
    return d


def same_fingerprint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether fingerprints ``a`` and ``b`` describe the same settings (defaults filled in)."""
    return _normalised(a) == _normalised(b)


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``["crops: 1 -> 3", ...]``: what differs, preset fields by their own names."""
    def flat(fp: Mapping[str, Any]) -> dict[str, Any]:
        d = _normalised(fp)
        preset = d.pop("preset", None)
        if isinstance(preset, dict):
            for k, v in preset.items():
                d.setdefault(k, v)
        return d

    a, b = flat(old), flat(new)
    return [f"{k}: {_show(a.get(k))} -> {_show(b.get(k))}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _show(v: Any) -> str:
    if isinstance(v, str) and len(v) > 16 and all(c in "0123456789abcdef" for c in v):
        return v[:12] + "..."  # a checkpoint hash
    return json.dumps(v) if not isinstance(v, str) else v


__all__ = ["FINGERPRINT_DEFAULTS", "PRESET_DEFAULTS", "fingerprint_changes", "same_fingerprint",
           "set_model_name_canonicaliser"]
