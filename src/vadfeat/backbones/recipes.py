"""Preprocessing recipes: :class:`Preset` and its two groups, :class:`SamplingRecipe` and
:class:`PixelRecipe`.  No torch.

The recipe types live beside the backbones (each family's presets are defined in
``vadfeat.backbones.<family>.presets``, below the pipeline); :mod:`vadfeat.pipeline.presets`
re-exports them and holds the registry of every backbone's presets, with the documentation of
where each preset comes from.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, get_args

from vadfeat._types import (
    CentreRounding,
    ChannelOrder,
    CropOrder,
    FrameReduce,
    Interpolation,
    JpegRoundTrip,
    Mirror,
    NumCrops,
    Pooling,
    ResizeMode,
    Scale,
    Tail,
)
from vadfeat.errors import ConfigError

SAMPLING_FIELDS = ("clip_len", "frame_interval", "stride", "tail", "lookahead")
PIXEL_FIELDS = ("jpeg_roundtrip", "resize", "size", "short_side", "frame_size", "interpolation",
                "antialias", "legacy_min_side", "crops", "crop_resize", "crop_order", "centre_rounding",
                "mirror", "scale", "mean", "std", "channel_order")
# Fields added after outputs existed: left out of to_dict() at these defaults, so that the
# fingerprints of outputs made before them stay the same (they resume).
_LATER_FIELDS: Mapping[str, Any] = MappingProxyType({
    "frame_size": None, "jpeg_roundtrip": "none", "lookahead": 0, "centre_rounding": "round",
    "mirror": "frame"})
HEAD_FIELDS = ("pooling", "frame_reduce")

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# openai/CLIP clip/clip.py _transform: Normalize((0.48145466, 0.4578275, 0.40821073),
# (0.26862954, 0.26130258, 0.27577711)).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

# Crop side that 5/10-crop pipelines resize the short side to before cropping
# (the I3D/RTFM convention: 224 crops out of a short side of 256).
_MULTI_CROP_RESIZE = 256


@dataclass(frozen=True, kw_only=True)
class Preset:
    """Every preprocessing and sampling choice behind one feature file.

    Sampling: a snippet is ``clip_len`` frames taken every ``frame_interval``
    frames; snippets start every ``stride`` frames (``None``: ``clip_len *
    frame_interval``, i.e. non-overlapping); ``tail`` says whether a trailing
    partial snippet is dropped or padded with its last frame; ``lookahead`` (with
    ``tail="drop"``) makes a snippet only when that many frames follow it
    (:mod:`vadfeat.pipeline.sampling`).

    Frames: ``jpeg_roundtrip`` gives a video's frames as a script's JPEG dump holds them,
    made in memory (:func:`vadfeat.io.video.open_video`): ``"ffmpeg"`` as ``ffmpeg -i VIDEO
    %d.jpg`` writes them (FFmpeg's MJPEG encoder at its defaults), ``"opencv"`` as
    ``cv2.imwrite(name, frame)`` does (OpenCV's JPEG defaults, quality 95), each read back
    by a JPEG decoder; ``"none"``: the decoded frames.  Frame folders are read as they are.

    Geometry (one crop): ``resize="short_side"`` scales the shorter side to
    ``short_side`` (long side ``floor(short_side * long / short)``) and takes a
    centre crop of ``size``; ``"squash"`` resizes straight to ``size x size``;
    ``"fixed"`` resizes every frame to ``frame_size`` (height, width) whatever its aspect
    ratio, then cuts a centre crop of ``size`` (or the 5/10 crops); ``"legacy"`` is the
    OpenCV path of the ``fed-wsvad`` preset (frames whose shorter side is below
    ``legacy_min_side`` are first enlarged on 8-bit values,
    then scaled, then squashed); ``"min_side"`` is that enlargement alone (frames at
    least ``legacy_min_side`` on both sides are not resized), then the centre crop (or the
    crops) of ``size``.  ``interpolation`` and ``antialias`` apply to the
    torch paths; ``legacy`` is always OpenCV bilinear without antialias;
    ``interpolation="pil-bilinear"``, ``"pil-bicubic"`` and ``"pil-lanczos"`` run Pillow's
    ``resize`` (``Image.LANCZOS`` is the old ``ANTIALIAS``) on the 8-bit frame, rounded to
    8 bits as Pillow returns it (what scripts resizing PIL images, torchvision's ``Resize``
    included, compute; Pillow always antialiases, ``antialias`` is ignored), CPU only.

    Crops: with ``crops`` 3, 5 or 10 the crop geometry replaces ``resize`` (except
    ``"fixed"``, whose ``frame_size`` frame the crops are cut from): the
    short side goes to ``crop_resize`` (``None``: ``size`` for 3 crops, 256 for
    5/10) and ``size x size`` crops are cut (3: start/centre/end of the long side;
    5: four corners and centre in ``crop_order``; 10: those five, then the same
    five positions on the horizontally mirrored frame, as torchvision's
    ``ten_crop``; with ``mirror="crop"`` the first five, each mirrored in place).
    ``crop_order``: ``torchvision`` tl, tr, bl, br, c; ``centre-first``
    c, tl, tr, bl, br; ``reading`` tl, tr, c, bl, br.  ``centre_rounding``: a centre crop
    starts at ``round((L - size) / 2)`` (``"round"``, torchvision's, half to even) or at
    ``(L - size) // 2`` (``"floor"``).  Value scaling and channel order
    still follow the preset.

    Values: ``scale="imagenet"`` maps ``x`` to ``(x / 255 - mean) / std``
    (``mean``/``std`` listed in RGB order, applied before any channel
    reordering), ``"unit"`` to ``x / 255``, ``"minus_one_one"`` to
    ``x / 255 * 2 - 1``.  ``channel_order="BGR"`` reverses the channel axis.

    ``pooling`` names the backbone's feature head: VideoMAE V2 ``fc_norm``
    (official ``fc_norm(mean)``), ``mean`` (token mean without ``fc_norm``) or
    ``stats`` (``[mean, std, max]`` of the last block's tokens before ``fc_norm``);
    CLIP ``embedding`` (projected) or ``token`` (before the projection).
    ``frame_reduce`` makes one feature per snippet from a frame-level backbone's
    ``clip_len`` frame features: ``mean`` of them, or the ``middle`` frame's
    (clip-level backbones ignore it).
    """

    name: str
    # sampling
    clip_len: int = 16
    frame_interval: int = 1
    stride: int | None = None
    tail: Tail = "drop"
    lookahead: int = 0
    # frames: a video's frames as an ffmpeg JPEG dump would hold them
    jpeg_roundtrip: JpegRoundTrip = "none"
    # geometry
    resize: ResizeMode = "short_side"
    size: int = 224
    short_side: int = 224
    frame_size: tuple[int, int] | None = None
    interpolation: Interpolation = "bilinear"
    antialias: bool = False
    legacy_min_side: int = 226
    crops: NumCrops = 1
    crop_resize: int | None = None
    crop_order: CropOrder = "torchvision"
    centre_rounding: CentreRounding = "round"
    mirror: Mirror = "frame"
    # values
    scale: Scale = "imagenet"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: ChannelOrder = "RGB"
    # feature head (belongs to the backbone; checked against it when the model is known)
    pooling: Pooling = "fc_norm"
    frame_reduce: FrameReduce = "mean"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"preset name must be a non-empty string, got {self.name!r}")
        _check_int("clip_len", self.clip_len, minimum=1)
        _check_int("frame_interval", self.frame_interval, minimum=1)
        if self.stride is not None:
            _check_int("stride", self.stride, minimum=1)
        _check_choice("tail", self.tail, Tail)
        _check_int("lookahead", self.lookahead, minimum=0)
        _check_choice("resize", self.resize, ResizeMode)
        _check_int("size", self.size, minimum=1)
        _check_int("short_side", self.short_side, minimum=1)
        if self.frame_size is not None:
            object.__setattr__(self, "frame_size", _frame_size(self.frame_size))
        _check_choice("interpolation", self.interpolation, Interpolation)
        _check_choice("jpeg_roundtrip", self.jpeg_roundtrip, JpegRoundTrip)
        if not isinstance(self.antialias, bool):
            raise ConfigError(f"antialias must be true or false, got {self.antialias!r}")
        _check_int("legacy_min_side", self.legacy_min_side, minimum=1)
        _check_int("crops", self.crops, minimum=1)
        _check_choice("crops", self.crops, NumCrops)
        if self.crop_resize is not None:
            _check_int("crop_resize", self.crop_resize, minimum=1)
        _check_choice("crop_order", self.crop_order, CropOrder)
        _check_choice("centre_rounding", self.centre_rounding, CentreRounding)
        _check_choice("mirror", self.mirror, Mirror)
        _check_choice("scale", self.scale, Scale)
        object.__setattr__(self, "mean", _rgb_triple("mean", self.mean, positive=False))
        object.__setattr__(self, "std", _rgb_triple("std", self.std, positive=True))
        _check_choice("channel_order", self.channel_order, ChannelOrder)
        _check_pooling(self.pooling)
        _check_choice("frame_reduce", self.frame_reduce, FrameReduce)

        # Cross-field rules: each one would otherwise fail later, per frame.
        if self.resize == "short_side" and self.crops == 1 and self.short_side < self.size:
            raise ConfigError(
                f"short_side ({self.short_side}) must be at least size ({self.size}): "
                "the centre crop cannot be larger than the resized frame"
            )
        if self.crop_resize is not None and self.crop_resize < self.size:
            raise ConfigError(
                f"crop_resize ({self.crop_resize}) must be at least size ({self.size})"
            )
        if (self.resize == "fixed") != (self.frame_size is not None):
            raise ConfigError("resize='fixed' and frame_size go together: frame_size=(height, width) "
                              "is the size every frame is resized to")
        if self.frame_size is not None and min(self.frame_size) < self.size:
            raise ConfigError(f"frame_size {list(self.frame_size)} must be at least size "
                              f"({self.size}) on both sides")
        if self.resize in ("legacy", "min_side") and (self.interpolation != "bilinear"
                                                      or self.antialias):
            raise ConfigError(
                f"resize={self.resize!r} is OpenCV bilinear without antialias: it needs "
                "interpolation='bilinear' and antialias=False"
            )
        if self.lookahead and self.tail != "drop":
            raise ConfigError(f"lookahead ({self.lookahead}) needs tail='drop': a padded tail "
                              "snippet has no frames after it")

    # -- the three groups --------------------------------------------------------------

    @property
    def sampling(self) -> SamplingRecipe:
        """Which frames form each snippet."""
        return SamplingRecipe(**{f: getattr(self, f) for f in SAMPLING_FIELDS})

    @property
    def pixels(self) -> PixelRecipe:
        """What each sampled frame becomes before the model."""
        return PixelRecipe(**{f: getattr(self, f) for f in PIXEL_FIELDS})

    @classmethod
    def compose(cls, name: str, sampling: SamplingRecipe, pixels: PixelRecipe, *,
                pooling: str = "fc_norm", frame_reduce: str = "mean") -> Preset:
        """A preset from a sampling recipe, a pixel recipe and a feature head."""
        return cls(name=name, **dataclasses.asdict(sampling), **dataclasses.asdict(pixels),
                   pooling=pooling, frame_reduce=frame_reduce)  # type: ignore[arg-type]

    # -- derived values -------------------------------------------------------------

    @property
    def effective_stride(self) -> int:
        """Frames between the starts of consecutive snippets."""
        return self.stride if self.stride is not None else self.clip_len * self.frame_interval

    @property
    def effective_crop_resize(self) -> int:
        """Short side the frame is resized to before cutting 3, 5 or 10 crops.

        Defaults: ``size`` for 3 crops (the official test pipeline), 256 for 5/10
        crops (or ``size`` if that is larger).
        """
        if self.crop_resize is not None:
            return self.crop_resize
        return self.size if self.crops == 3 else max(_MULTI_CROP_RESIZE, self.size)

    def resolved(self) -> Preset:
        """The same preset with every ``None`` default made explicit (for sidecars)."""
        return dataclasses.replace(
            self, stride=self.effective_stride, crop_resize=self.effective_crop_resize
        )

    # -- copies and (de)serialisation -----------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **overrides: Any) -> Preset:
        """A validated copy with ``overrides`` applied (unknown names are a ConfigError)."""
        _check_keys(overrides, what="preset override")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings (tuples become lists); inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {}
        for name in self.field_names():
            value = getattr(self, name)
            if name in _LATER_FIELDS and value == _LATER_FIELDS[name]:
                continue
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preset:
        """Rebuild a preset from :meth:`to_dict` output; missing fields take defaults."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"preset settings must be a mapping, got {type(data).__name__}")
        _check_keys(data, what="preset setting")
        if "name" not in data:
            raise ConfigError("preset settings need a 'name'")
        return cls(**dict(data))


@dataclass(frozen=True)
class SamplingRecipe:
    """Sampling fields of a :class:`Preset` (see there); validated when composed into one."""

    clip_len: int = 16
    frame_interval: int = 1
    stride: int | None = None
    tail: Tail = "drop"
    lookahead: int = 0


@dataclass(frozen=True)
class PixelRecipe:
    """Pixel fields of a :class:`Preset` (see there); validated when composed into one."""

    jpeg_roundtrip: JpegRoundTrip = "none"
    resize: ResizeMode = "short_side"
    size: int = 224
    short_side: int = 224
    frame_size: tuple[int, int] | None = None
    interpolation: Interpolation = "bilinear"
    antialias: bool = False
    legacy_min_side: int = 226
    crops: NumCrops = 1
    crop_resize: int | None = None
    crop_order: CropOrder = "torchvision"
    centre_rounding: CentreRounding = "round"
    mirror: Mirror = "frame"
    scale: Scale = "imagenet"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: ChannelOrder = "RGB"


#: Feature heads declared by families' preset modules (:func:`declare_heads`).
_DECLARED_HEADS: set[str] = set()


def declare_heads(names: Iterable[str]) -> None:
    """Accept ``names`` as a preset's ``pooling`` from now on: a family's ``presets.py`` calls it
    before building presets with heads outside :data:`vadfeat._types.Pooling` (its backbone,
    which offers them, is not registered yet while that module is imported)."""
    _DECLARED_HEADS.update(str(n) for n in names)


def _check_pooling(value: Any) -> None:
    if isinstance(value, str) and (value in get_args(Pooling) or value in _DECLARED_HEADS):
        return
    if isinstance(value, str) and value:
        from vadfeat.backbones._registry import list_backbones  # plug-in heads

        if any(value in b.feature_names() for b in list_backbones()):
            return
    _check_choice("pooling", value, Pooling)


def _check_keys(keys: Iterable[str], *, what: str) -> None:
    valid = Preset.field_names()
    unknown = sorted(str(k) for k in keys if k not in valid)
    if unknown:
        raise ConfigError(
            f"unknown {what}{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid fields: {', '.join(valid)}"
        )


def _check_int(field: str, value: Any, *, minimum: int) -> None:
    # bool is an int subclass; `crops=True` is a typo, not a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{field} must be >= {minimum}, got {value}")


def _check_choice(field: str, value: Any, literal: Any) -> None:
    allowed = get_args(literal)
    # `True == 1` would let a bool through a Literal[1, ...] check.
    if isinstance(value, bool) or value not in allowed:
        raise ConfigError(
            f"{field} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
        )


def _frame_size(value: Any) -> tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"frame_size must be (height, width), got {value!r}")
    items = tuple(value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
        raise ConfigError(f"frame_size must be two positive integers (height, width), got {value!r}")
    return (items[0], items[1])


def _rgb_triple(field: str, value: Any, *, positive: bool) -> tuple[float, float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{field} must be three numbers (R, G, B), got {value!r}")
    items = tuple(value)
    if len(items) != 3 or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in items
    ):
        raise ConfigError(f"{field} must be three numbers (R, G, B), got {value!r}")
    triple = (float(items[0]), float(items[1]), float(items[2]))
    if not all(math.isfinite(v) for v in triple) or (positive and min(triple) <= 0):
        kind = "positive finite" if positive else "finite"
        raise ConfigError(f"{field} must be three {kind} numbers, got {value!r}")
    if max(abs(v) for v in triple) > 1.0:
        # Scripts often state them on 0..255 pixels (114.75 / 57.375); ours are on x / 255.
        on_unit = ",".join(f"{v / 255.0:.6g}" for v in triple)
        raise ConfigError(f"{field} is on the 0..1 scale of x / 255 (torchvision's convention); "
                          f"{list(triple)} looks like 0..255 pixel values: that is {field}={on_unit}")
    return triple
