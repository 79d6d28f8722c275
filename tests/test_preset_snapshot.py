"""Every preset and every backbone's naming, as the release before presets moved beside their
families computed them: ``tests/data/presets_snapshot.json`` was written from that release's
code (before the move), so a preset's ``to_dict()``, its resolved form, the fingerprint it
enters, and each architecture's recorded name and default preset cannot drift with the move."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vadfeat.backbones._registry import canonical_model_name, list_backbones, resolve_model
from vadfeat.pipeline.config import settings_fingerprint
from vadfeat.pipeline.presets import DEFAULT_PRESET, PRESETS

SNAPSHOT = Path(__file__).parent / "data" / "presets_snapshot.json"


def _now() -> dict[str, Any]:
    out: dict[str, Any] = {"default_preset": DEFAULT_PRESET, "order": list(PRESETS), "presets": {},
                           "backbones": []}
    for name, p in PRESETS.items():
        out["presets"][name] = {
            "to_dict": p.to_dict(),
            "resolved": p.resolved().to_dict(),
            "fingerprint": settings_fingerprint(preset=p, model="m", checkpoint_sha256=None,
                                                random_weights=True, dtype="fp32", fps=None,
                                                frames_colour="rgb", on_corrupt="skip", layout="flat"),
        }
    for b in list_backbones():
        if b.name not in {"videomae_v2", "clip", "i3d"}:
            continue  # backbones added after the snapshot (and test plug-ins) are not in it
        archs = {}
        for a, s in b.architectures().items():
            archs[a] = {"record_name": b.record_name(s), "default_preset": b.default_preset_for(a),
                        "canonical": canonical_model_name(b.qualified(a)),
                        "resolved_random": resolve_model(None, model=b.qualified(a)).name}
        out["backbones"].append({
            "name": b.name, "input_kind": b.input_kind, "default_preset": b.default_preset,
            "default_arch": b.default_arch(), "features": list(b.feature_names()),
            "default_preset_none": b.default_preset_for(None),
            "aliases": {k: canonical_model_name(k) for k in b.aliases()},
            "pretrained": [[c.name, c.arch, c.file, c.preset, c.sha256] for c in b.pretrained()],
            "archs": archs})
    return json.loads(json.dumps(out))  # tuples as lists, as the snapshot holds them


def test_every_preset_and_name_as_before_the_move() -> None:
    want = json.loads(SNAPSHOT.read_text())
    got = _now()
    # Presets of families added after the snapshot (vggish) come after the snapshot's, in order.
    assert got["order"][:len(want["order"])] == want["order"]
    assert got["default_preset"] == want["default_preset"]
    for name in want["presets"]:
        assert got["presets"][name] == want["presets"][name], name
    assert got["backbones"] == want["backbones"]
