"""Option help generated from the registries (presets, backbones, feature heads).

Written by hand, these texts fell behind the registries (``--preset``, ``--model``
and ``--pooling`` once left out I3D); generated, a registered preset or a
plug-in backbone appears in ``--help`` the moment it is registered.  Only the
registrations are read: no model code, no torch.
"""

from __future__ import annotations

from vadfeat.backbones._registry import Backbone, FeatureHead, list_backbones, resolve_model_name
from vadfeat.errors import ConfigError
from vadfeat.pipeline.presets import CLIP_MEAN, IMAGENET_MEAN, PRESETS, Preset, list_presets

_SCALE = {"unit": "[0, 1]", "minus_one_one": "[-1, 1]"}


def _values(p: Preset) -> str:
    if p.scale == "imagenet":  # the scale that normalises with a mean and std: say whose
        whose = {IMAGENET_MEAN: "ImageNet", CLIP_MEAN: "CLIP"}.get(p.mean, "custom")
        text = f"{whose} mean/std"
    else:
        text = _SCALE.get(p.scale, p.scale)
    return text + (", BGR" if p.channel_order == "BGR" else "")


def _pixels(p: Preset) -> str:
    pil = p.interpolation.startswith("pil-")
    kernel = f" ({p.interpolation.replace('pil-', 'Pillow ')})" if pil else ""
    dump = f"frames as {p.jpeg_roundtrip}'s JPEG dump, " if p.jpeg_roundtrip != "none" else ""
    if p.resize == "fixed" and p.frame_size is not None:
        height, width = p.frame_size
        cut = (f"{p.crops} crops of {p.size} ({p.crop_order})" if p.crops > 1
               else f"centre {p.size}")
        return f"{dump}squashed to {width}x{height}{kernel}, {cut}"
    if p.crops > 1:
        side = p.crop_resize if p.crop_resize is not None else (p.size if p.crops == 3 else 256)
        return f"{dump}short side {side}{kernel}, {p.crops} crops of {p.size} ({p.crop_order})"
    if p.resize == "short_side":
        return f"{dump}short side {p.short_side}{kernel}, centre {p.size}"
    if p.resize == "squash":
        return f"{dump}squashed to {p.size}x{p.size}{kernel}"
    if p.resize == "min_side":
        return f"short side below {p.legacy_min_side} enlarged (OpenCV), centre {p.size}"
    return f"the legacy OpenCV resize to {p.size}x{p.size}"


def _goes_with(name: str, backbones: list[Backbone]) -> list[str]:
    """The backbones (or sizes) whose default preset ``name`` is."""
    out = []
    for b in backbones:
        archs = list(b.architectures())
        hits = [a for a in archs if b.default_preset_for(a) == name]
        if hits and len(hits) == len(archs):
            out.append(b.name)
        else:
            out.extend(b.qualified(a) for a in hits)
    return out


def describe_preset(p: Preset, backbones: list[Backbone] | None = None) -> str:
    """One line on what ``p`` does, from its fields: sampling, pixels, values, feature head."""
    span = p.clip_len * p.frame_interval
    frames = f"{p.clip_len}-frame snippets" if p.clip_len > 1 else "every frame"
    if p.frame_interval > 1:
        frames += f" (every {p.frame_interval}th frame)"
    if p.stride is not None and p.stride != span:
        frames += f" every {p.stride} frames"
    if p.clip_len > 1 and p.frame_reduce == "middle":
        frames += " (their middle frame)"
    backbones = backbones if backbones is not None else list_backbones()
    owner = next((b for b in backbones if p.name in b.presets), None)
    own = owner.describe_input(p) if owner is not None else None  # an audio preset's grid
    text = f"{p.name}: {own or f'{frames}, {_pixels(p)}, {_values(p)}'}, feature {p.pooling}"
    default_for = _goes_with(p.name, backbones)
    if default_for:
        text += f" (default for {', '.join(default_for)})"
    return text


def preset_help() -> str:
    backbones = list_backbones()
    lines = "; ".join(describe_preset(PRESETS[name], backbones) for name in list_presets())
    return f"{lines}. Default: the backbone's own (see `vadfeat models`)"


def model_help() -> str:
    examples, bare = [], []
    for b in list_backbones():
        released = [p.arch for p in b.pretrained()]
        arch = b.default_arch() or (released[0] if released else next(iter(b.architectures()), None))
        if arch is None:
            continue
        examples.append(b.qualified(arch))
        try:
            if resolve_model_name(arch) == (b, arch):  # the bare name is this backbone's only
                bare.append(arch)
        except ConfigError:  # UnknownModelError: the bare name is ambiguous
            pass
    text = f"model, as backbone/size ({', '.join(examples)})"
    if bare:
        text += f" or a name only one backbone has ({bare[0]})"
    tiny = [b.qualified(a) for b in list_backbones() for a in b.dry_run_sizes()]
    if tiny:
        text += f"; dry-run sizes for --random-weights: {', '.join(tiny)}"
    return text + "; see `vadfeat models` for every size; checked against the checkpoint"


class _Symbolic:
    """An architecture whose every dimension is its own name: a head's shape function applied
    to it gives the shape in words (``[3, embed_dim]``)."""

    def __getattr__(self, name: str) -> str:
        return name


def _shape(head: FeatureHead) -> str:
    try:
        dims = head.shape(_Symbolic())
    except (TypeError, ValueError, ArithmeticError):  # a shape computed from the numbers
        return ""
    return " [" + ", ".join(str(d) for d in dims) + "]"


def pooling_help() -> str:
    heads = "; ".join(f"{b.name}: " + ", ".join(f.name + _shape(f) for f in b.features)
                      + f" (default {b.default_feature})" for b in list_backbones())
    return f"feature head of the backbone, per clip: {heads}"


def pooling_choices() -> list[str]:
    return sorted({f for b in list_backbones() for f in b.feature_names()})
