"""Per-frame preprocessing of a :class:`~vadfeat.pipeline.presets.Preset`: resize, crop, scale.

Layouts (named once here, used throughout):

- decoded frame: ``numpy.ndarray`` ``[H, W, 3]`` uint8, RGB (what ``video`` yields);
- frame tensors: ``[..., C, H, W]`` (any leading batch dims, any device); resize
  functions accept uint8 or float and return float (float32 for integer input),
  holding values on the 0..255 scale until :func:`normalize`;
- crop stacks: ``[..., K, C, h, w]``: the crop axis ``K`` is inserted right before
  the channel axis;
- one transformed frame: ``[crops, 3, size, size]`` float32, values scaled and
  channels ordered per the preset.  The engine stacks ``clip_len`` of them on a new
  axis 2, giving ``[crops, 3, T, size, size]`` per snippet.

The ``short_side`` and ``squash`` paths and all multi-crop geometry use
``torch.nn.functional.interpolate`` (half-pixel centres, ``align_corners=False``,
the same sampling grid as OpenCV ``INTER_LINEAR`` when antialias is off) on frame
tensors, so a batched GPU version is :func:`transform_frames` on uploaded uint8
frames.  Resizing happens on float values without rounding back to 8 bits.

The ``legacy`` path (``fed-wsvad``) reproduces the legacy loader with OpenCV calls
on numpy arrays, because its features must match that pipeline to 1e-4 and
OpenCV's 8-bit bilinear (fixed-point weights, rounded output) and its ``fx/fy``
output-size rule are not what torch computes.  ``min_side`` (pytorch-i3d's loader) is
its first step alone: a frame whose shorter side is below ``legacy_min_side`` is enlarged
by :func:`legacy_enlarge` on its 8-bit values, any other frame is left as it is, and the
crop (or crops) are cut from that frame.

Crop geometry (``Preset.crops``): 3 crops are the official VideoMAE test crops, the
start, centre (``floor``) and end of the long side after resizing the short side;
5 crops are the four corners and the centre (offsets ``round((L - size) / 2)``,
as torchvision), in ``"torchvision"`` order ``tl, tr, bl, br, c`` or
``"centre-first"`` order ``c, tl, tr, bl, br``; 10 crops are those five followed
by the same five positions cut from the horizontally mirrored frame
(torchvision's ``ten_crop`` with ``vertical_flip=False``), so ``tl_flip`` is the
mirror image of the ``tr`` crop; with ``Preset.mirror="crop"`` the second five are the
first five each mirrored in place (``crop.flip(-1)``, video_features-style code), named
by the position they take in the mirrored frame (the mirror of ``tl`` is ``tr_flip``).
Centre crops start at ``round((L - size) / 2)`` (torchvision, half to even) or, with
``Preset.centre_rounding="floor"``, at ``(L - size) // 2``.  With more than one crop the crop geometry
replaces the preset's ``resize`` mode, while value scaling, interpolation,
antialias and channel order still follow the preset.  5 and 10 crops cost one
resize: the resized frame is scaled once, and the crops are views of it (and of its
one mirrored copy) written into the output by one ``torch.stack``
(:func:`_multi_crop`; the same floats as cropping first, bit for bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vadfeat.errors import ConfigError
from vadfeat.pipeline.presets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CentreRounding,
    ChannelOrder,
    CropOrder,
    Interpolation,
    Mirror,
    Preset,
    Scale,
    get_preset,
)

__all__ = [
    "FrameTransform",
    "build_frame_transform",
    "centre_crop",
    "crop_names",
    "cut_crops",
    "enlarge_min_side",
    "five_crop",
    "legacy_enlarge",
    "legacy_squash",
    "normalize",
    "reorder_channels",
    "resize",
    "resize_short_side",
    "short_side_shape",
    "squash",
    "ten_crop",
    "three_crop",
    "transform_frames",
]

_FIVE_NAMES: dict[str, tuple[str, ...]] = {
    "torchvision": ("tl", "tr", "bl", "br", "c"),
    "centre-first": ("c", "tl", "tr", "bl", "br"),
    "reading": ("tl", "tr", "c", "bl", "br"),
}
_THREE_NAMES = ("start", "c", "end")
# Where a crop lands in the mirrored frame: left and right swap.
_MIRROR_PARTNER = {"tl": "tr", "tr": "tl", "bl": "br", "br": "bl", "c": "c"}


def crop_names(crops: int, order: CropOrder = "torchvision", mirror: Mirror = "frame") -> tuple[str, ...]:
    """Names of the crops, in output order, for ``crops`` in 1, 3, 5, 10.

    ``<pos>_flip`` is the crop at ``<pos>`` of the mirrored frame; with ``mirror="crop"``
    crop ``5 + k`` mirrors crop ``k`` in place, which is the mirrored frame's crop at the
    partner position (``tl`` -> ``tr_flip``).
    """
    if order not in _FIVE_NAMES:
        raise ConfigError(f"crop_order must be one of {', '.join(map(repr, _FIVE_NAMES))}")
    if mirror not in ("frame", "crop"):
        raise ConfigError(f"mirror must be 'frame' or 'crop', got {mirror!r}")
    five = _FIVE_NAMES[order]
    mirrored = five if mirror == "frame" else tuple(_MIRROR_PARTNER[n] for n in five)
    table = {
        1: ("c",),
        3: _THREE_NAMES,
        5: five,
        10: five + tuple(f"{n}_flip" for n in mirrored),
    }
    if crops not in table:
        raise ConfigError(f"crops must be one of 1, 3, 5, 10; got {crops!r}")
    return table[crops]


# -- geometry on tensors [..., C, H, W] ---------------------------------------------


def short_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Output ``(height, width)`` with the shorter side at ``size``.

    The long side is ``floor(size * long / short)``, as the official VideoMAE
    ``resize_clip`` and torchvision compute it (exact integer arithmetic here).
    """
    if width <= height:
        return (size * height) // width, size
    return size, (size * width) // height


def resize(
    x: torch.Tensor,
    height: int,
    width: int,
    *,
    interpolation: Interpolation = "bilinear",
    antialias: bool = False,
) -> torch.Tensor:
    """Resize ``[..., C, H, W]`` to ``[..., C, height, width]`` (float output).

    Half-pixel centres (``align_corners=False``).  A frame already at the target
    size is returned unchanged (as float), which is also what interpolation
    would compute.  ``bicubic`` output is clamped to 0..255, as PIL clips its
    8-bit result: the cubic kernel's negative lobes overshoot at edges (by up to
    7 levels on video frames), which PIL-based pipelines such as CLIP's never see
    (``bench/clip_resize.py``; bilinear cannot overshoot).
    """
    if interpolation.startswith("pil-"):
        return _pil_resize(x, height, width, interpolation)
    if not x.is_floating_point():
        x = x.to(torch.float32)
    if x.shape[-2:] == (height, width):
        return x
    lead = x.shape[:-3]
    flat = x.unsqueeze(0) if x.dim() == 3 else x.flatten(0, -4)
    out = F.interpolate(
        flat,
        size=(height, width),
        mode=interpolation,
        align_corners=False,
        antialias=antialias,
    )
    if interpolation == "bicubic":
        out = out.clamp_(0.0, 255.0)
    return out.reshape(*lead, *out.shape[-3:])


def _pil_resize(x: torch.Tensor, height: int, width: int, interpolation: str) -> torch.Tensor:
    """Pillow's ``image.resize((width, height), filter)`` of each uint8 RGB frame of
    ``[..., 3, H, W]`` (CPU) -> float32 ``[..., 3, height, width]`` with the 8-bit values
    Pillow returns (what ``np.array(image.resize(...))`` gives a script, and what
    torchvision's ``Resize`` does to a PIL image).  ``interpolation``: ``pil-bilinear``,
    ``pil-bicubic`` or ``pil-lanczos`` (the old ``Image.ANTIALIAS``).

    Raises ``ValueError`` for float or non-RGB input, or a tensor on another device:
    the kernels are Pillow's, on 8-bit images.
    """
    from PIL import Image

    kernel = {"pil-bilinear": Image.Resampling.BILINEAR, "pil-bicubic": Image.Resampling.BICUBIC,
              "pil-lanczos": Image.Resampling.LANCZOS}[interpolation]
    if x.dtype != torch.uint8 or x.shape[-3] != 3 or x.device.type != "cpu":
        raise ValueError(f"{interpolation} runs Pillow on uint8 RGB frames on the CPU, got "
                         f"{x.dtype} {tuple(x.shape)} on {x.device}")
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    out = torch.empty((flat.shape[0], height, width, 3), dtype=torch.uint8)
    dst = out.numpy()
    for i, frame in enumerate(flat):
        image = Image.fromarray(np.ascontiguousarray(frame.permute(1, 2, 0).numpy()), "RGB")
        dst[i] = np.asarray(image.resize((width, height), kernel))
    return out.permute(0, 3, 1, 2).to(torch.float32).reshape(*lead, 3, height, width)


def resize_short_side(
    x: torch.Tensor,
    size: int,
    *,
    interpolation: Interpolation = "bilinear",
    antialias: bool = False,
) -> torch.Tensor:
    """Resize ``[..., C, H, W]`` so that the shorter side is ``size`` (aspect kept)."""
    height, width = short_side_shape(x.shape[-2], x.shape[-1], size)
    return resize(x, height, width, interpolation=interpolation, antialias=antialias)


def squash(
    x: torch.Tensor,
    size: int,
    *,
    interpolation: Interpolation = "bilinear",
    antialias: bool = False,
) -> torch.Tensor:
    """Resize ``[..., C, H, W]`` to ``[..., C, size, size]`` (aspect ratio not kept)."""
    return resize(x, size, size, interpolation=interpolation, antialias=antialias)


def _check_fits(x: torch.Tensor, size: int) -> tuple[int, int]:
    height, width = x.shape[-2], x.shape[-1]
    if height < size or width < size:
        raise ValueError(f"cannot cut {size}x{size} crops from a {height}x{width} frame")
    return height, width


def _centre_offset(length: int, size: int, rounding: CentreRounding = "round") -> int:
    if rounding == "floor":  # video_features' TensorCenterCrop: (L - size) // 2
        return (length - size) // 2
    # torchvision's center_crop rule: Python round, i.e. half to even.
    return round((length - size) / 2.0)


def centre_crop(x: torch.Tensor, size: int, *, rounding: CentreRounding = "round") -> torch.Tensor:
    """Centre ``size x size`` crop of ``[..., C, H, W]``: offsets as torchvision
    (``round((L - size) / 2)``, half to even), or ``(L - size) // 2`` with ``rounding="floor"``."""
    height, width = _check_fits(x, size)
    top, left = _centre_offset(height, size, rounding), _centre_offset(width, size, rounding)
    return x[..., top : top + size, left : left + size]


def three_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Official VideoMAE test crops: ``[..., C, H, W]`` -> ``[..., 3, C, size, size]``.

    Start, centre and end of the long side (``H`` when ``H >= W``), offsets
    ``int(i * (L - size) / 2)`` for ``i = 0, 1, 2`` as in the official loader; the
    short side is centre-cropped if it is longer than ``size``.
    """
    height, width = _check_fits(x, size)
    if height >= width:
        step = (height - size) / 2
        left = _centre_offset(width, size)
        views = [x[..., int(i * step) : int(i * step) + size, left : left + size] for i in range(3)]
    else:
        step = (width - size) / 2
        top = _centre_offset(height, size)
        views = [x[..., top : top + size, int(i * step) : int(i * step) + size] for i in range(3)]
    return torch.stack(views, dim=-4)


def _five_offsets(height: int, width: int, size: int, order: str,
                  rounding: CentreRounding = "round") -> list[tuple[int, int]]:
    positions = {
        "tl": (0, 0),
        "tr": (0, width - size),
        "bl": (height - size, 0),
        "br": (height - size, width - size),
        "c": (_centre_offset(height, size, rounding), _centre_offset(width, size, rounding)),
    }
    try:
        names = _FIVE_NAMES[order]
    except KeyError:
        raise ConfigError(
            f"crop_order must be one of {', '.join(map(repr, _FIVE_NAMES))}; got {order!r}"
        ) from None
    return [positions[n] for n in names]


def _mirror_left(left: int, width: int, size: int, mirror: Mirror) -> int:
    """Column of the *original* frame whose ``size``-wide crop, mirrored, is crop ``5 + k``
    (crop ``k`` at ``left``): ``width - size - left`` when the second five are cut from the
    mirrored frame (torchvision), ``left`` when each crop is mirrored in place."""
    if mirror == "crop":
        return left
    if mirror == "frame":
        return width - size - left
    raise ConfigError(f"mirror must be 'frame' or 'crop', got {mirror!r}")


def five_crop(x: torch.Tensor, size: int, *, order: CropOrder = "torchvision",
              rounding: CentreRounding = "round") -> torch.Tensor:
    """Four corners and centre: ``[..., C, H, W]`` -> ``[..., 5, C, size, size]``.

    ``order="torchvision"``: tl, tr, bl, br, c; ``"centre-first"``: c, tl, tr, bl, br;
    ``"reading"``: tl, tr, c, bl, br.  ``rounding``: the centre's offsets (:func:`centre_crop`).
    """
    height, width = _check_fits(x, size)
    views = [
        x[..., top : top + size, left : left + size]
        for top, left in _five_offsets(height, width, size, order, rounding)
    ]
    return torch.stack(views, dim=-4)


def ten_crop(x: torch.Tensor, size: int, *, order: CropOrder = "torchvision",
             rounding: CentreRounding = "round", mirror: Mirror = "frame") -> torch.Tensor:
    """:func:`five_crop`, then the same five positions on the mirrored frame.

    ``[..., C, H, W]`` -> ``[..., 10, C, size, size]``, as torchvision's
    ``ten_crop`` (horizontal flip of the whole frame, then five crops): crop
    ``5 + k`` is the crop at position ``k`` of the mirrored frame, i.e. the
    mirror image of the crop at the mirrored position (``tl_flip`` mirrors ``tr``).
    ``mirror="crop"``: crop ``5 + k`` is crop ``k`` mirrored in place.  ``rounding``:
    the centre crop's offsets (:func:`centre_crop`).
    """
    height, width = _check_fits(x, size)
    offsets = _five_offsets(height, width, size, order, rounding)
    views = [x[..., top : top + size, left : left + size] for top, left in offsets]
    # A crop at `left` in the mirrored frame is the mirror of the crop at
    # `width - size - left` in the original: no need to flip the whole frame.
    for top, left in offsets:
        m = _mirror_left(left, width, size, mirror)
        views.append(x[..., top : top + size, m : m + size].flip(-1))
    return torch.stack(views, dim=-4)


# -- values -------------------------------------------------------------------------


def _scale_coefficients(
    scale: Scale, mean: Sequence[float], std: Sequence[float], channels: int
) -> tuple[list[float], list[float]]:
    """Per-channel ``(a, b)`` such that the scaled value is ``a * x + b`` for 0..255 ``x``."""
    if scale == "unit":
        return [1.0 / 255.0] * channels, [0.0] * channels
    if scale == "minus_one_one":
        return [2.0 / 255.0] * channels, [-1.0] * channels
    if scale == "imagenet":
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean/std have {len(mean)}/{len(std)} values for {channels} channels"
            )
        return [1.0 / (255.0 * s) for s in std], [-m / s for m, s in zip(mean, std, strict=True)]
    raise ConfigError(f"scale must be one of 'imagenet', 'unit', 'minus_one_one'; got {scale!r}")


def normalize(
    x: torch.Tensor,
    *,
    scale: Scale,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Scale 0..255 values of ``[..., C, H, W]``; float32 out for integer input.

    ``"unit"``: ``x / 255``; ``"minus_one_one"``: ``x / 255 * 2 - 1``;
    ``"imagenet"``: ``(x / 255 - mean) / std`` with ``mean``/``std`` in the
    channel order of ``x``.  Computed as one fused ``a * x + b`` per channel.
    """
    if not x.is_floating_point():
        x = x.to(torch.float32)
    channels = x.shape[-3]
    a, b = _scale_coefficients(scale, mean, std, channels)
    a_t = torch.tensor(a, dtype=x.dtype, device=x.device).view(channels, 1, 1)
    b_t = torch.tensor(b, dtype=x.dtype, device=x.device).view(channels, 1, 1)
    return torch.addcmul(b_t, x, a_t)


def reorder_channels(x: torch.Tensor, order: ChannelOrder) -> torch.Tensor:
    """RGB ``[..., 3, H, W]`` to ``order``: ``"BGR"`` reverses the channel axis."""
    if order == "RGB":
        return x
    if order == "BGR":
        return x.flip(-3)
    raise ConfigError(f"channel_order must be one of 'RGB', 'BGR'; got {order!r}")


# -- the legacy (fed-wsvad) path, numpy/OpenCV on [H, W, C] ---------------------------


def legacy_enlarge(frame: np.ndarray, *, min_side: int = 226) -> np.ndarray:
    """Enlarge an ``[H, W, C]`` uint8 frame whose shorter side is below ``min_side``.

    Exactly the legacy call ``cv2.resize(img, (0, 0), fx=sc, fy=sc)`` with
    ``sc = min_side / shorter_side``: OpenCV bilinear on 8-bit values, output size
    ``round(W * sc) x round(H * sc)`` as OpenCV rounds it, and OpenCV's mapping
    from the ``fx``/``fy`` factors (not from the rounded size).  Frames that are
    large enough are returned as they are.
    """
    shorter = min(frame.shape[0], frame.shape[1])
    if shorter >= min_side:
        return frame
    factor = min_side / shorter
    return cv2.resize(
        np.ascontiguousarray(frame), (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR
    )


def enlarge_min_side(x: torch.Tensor, min_side: int) -> torch.Tensor:
    """pytorch-i3d's loader on uint8 RGB frames ``[..., 3, H, W]`` (CPU): frames whose shorter
    side is below ``min_side`` are enlarged by :func:`legacy_enlarge` (OpenCV bilinear on 8-bit
    values, rounded), others are left as they are.  Returns float32 ``[..., 3, H', W']``
    (0..255).

    Raises ``ValueError`` for float input or a tensor on another device (the kernel is
    OpenCV's, on 8-bit images).
    """
    if x.dtype != torch.uint8 or x.device.type != "cpu":
        raise ValueError(f"resize 'min_side' runs OpenCV on uint8 frames on the CPU, got "
                         f"{x.dtype} on {x.device}")
    if min(x.shape[-2], x.shape[-1]) >= min_side:
        return x.to(torch.float32)
    flat = x.reshape(-1, *x.shape[-3:])
    frames = [legacy_enlarge(np.ascontiguousarray(f.permute(1, 2, 0).numpy()), min_side=min_side)
              for f in flat]
    out = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).to(torch.float32)
    return out.reshape(*x.shape[:-3], *out.shape[-3:])


def legacy_squash(frame: np.ndarray, size: int) -> np.ndarray:
    """OpenCV bilinear (no antialias) resize of an ``[H, W, C]`` float frame to ``size``."""
    return cv2.resize(
        np.ascontiguousarray(frame), (size, size), interpolation=cv2.INTER_LINEAR
    )


def _legacy_frame(frame: np.ndarray, preset: Preset) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB -> ``[size, size, 3]`` float32 scaled, still RGB."""
    enlarged = legacy_enlarge(frame, min_side=preset.legacy_min_side)
    a, b = _scale_coefficients(preset.scale, preset.mean, preset.std, 3)
    # The legacy loader scaled in float64 (`img / 255. * 2 - 1`); float32 stays
    # within 1e-6 of it after the resize (measured in the tests).
    if len(set(a)) == 1 and len(set(b)) == 1:
        # Scalar coefficients: numpy broadcasting over a trailing axis of 3 is ~30x slower.
        scaled = enlarged.astype(np.float32) * np.float32(a[0]) + np.float32(b[0])
    else:
        scaled = enlarged.astype(np.float32) * np.asarray(a, np.float32) + np.asarray(b, np.float32)
    return legacy_squash(scaled, preset.size)


def _legacy_to_tensor(frame: np.ndarray, preset: Preset) -> torch.Tensor:
    """``[H, W, 3]`` uint8 RGB -> ``[1, 3, size, size]`` float32 in the preset's channel order."""
    chw = _legacy_frame(frame, preset).transpose(2, 0, 1)
    if preset.channel_order == "BGR":
        chw = chw[::-1]
    # One numpy copy and no torch kernels: interleaving OpenCV's and torch's thread
    # pools per frame is slow on small machines.
    return torch.from_numpy(np.ascontiguousarray(chw)).unsqueeze(0)


# -- whole preset ---------------------------------------------------------------------


def _crop_source(x: torch.Tensor, preset: Preset) -> torch.Tensor:
    """The resized frame 3, 5 or 10 crops are cut from (float, 0..255): ``frame_size``
    for ``resize="fixed"``, else the short side at ``effective_crop_resize``."""
    interp, aa = preset.interpolation, preset.antialias
    if preset.resize == "fixed" and preset.frame_size is not None:
        return resize(x, *preset.frame_size, interpolation=interp, antialias=aa)
    if preset.resize == "min_side":
        return enlarge_min_side(x, preset.legacy_min_side)
    return resize_short_side(x, preset.effective_crop_resize, interpolation=interp, antialias=aa)


def _geometry(x: torch.Tensor, preset: Preset) -> torch.Tensor:
    """``[..., 3, H, W]`` -> ``[..., crops, 3, size, size]`` float, 0..255 values."""
    interp, aa = preset.interpolation, preset.antialias
    rounding = preset.centre_rounding
    if preset.crops == 1:
        if preset.resize == "short_side":
            view = centre_crop(resize_short_side(x, preset.short_side, interpolation=interp, antialias=aa),
                               preset.size, rounding=rounding)
        elif preset.resize in ("fixed", "min_side"):
            view = centre_crop(_crop_source(x, preset), preset.size, rounding=rounding)
        else:
            view = squash(x, preset.size, interpolation=interp, antialias=aa)
        return view.unsqueeze(-4)
    frame = _crop_source(x, preset)
    if preset.crops == 3:
        return three_crop(frame, preset.size)
    if preset.crops == 5:
        return five_crop(frame, preset.size, order=preset.crop_order, rounding=rounding)
    return ten_crop(frame, preset.size, order=preset.crop_order, rounding=rounding, mirror=preset.mirror)


def _scaled_frame(x: torch.Tensor, preset: Preset) -> torch.Tensor:
    """The frame every 5 or 10 crops are cut from: ``[..., 3, H, W]`` -> ``[..., 3, H', W']``
    float32, resized to the preset's ``crop_resize`` short side, scaled and in its channel order."""
    frame = _crop_source(x, preset)
    _check_fits(frame, preset.size)
    # Contiguous rows (a no-op for the CPU resize's output): the crops copy out of plain rows.
    frame = normalize(frame.contiguous(), scale=preset.scale, mean=preset.mean, std=preset.std)
    return reorder_channels(frame, preset.channel_order).to(torch.float32)


def _multi_crop(x: torch.Tensor, preset: Preset) -> torch.Tensor:
    """5 or 10 crops at the cost of one resize: ``[..., 3, H, W]`` -> ``[..., crops, 3, size, size]``.

    The values of ``normalize(_geometry(x))`` in the preset's channel order, computed
    in another order: the resized frame is scaled (and its channels reordered) once
    (:func:`_scaled_frame`), the crops are views of it (10 crops: and of its one
    mirrored copy), and a single ``torch.stack`` writes them into the float32 output.
    Scaling is elementwise with per-channel coefficients, so scaling the frame then
    cutting equals cutting then scaling, bit for bit (``tests/test_transforms.py``
    checks it on real frames).
    """
    frame = _scaled_frame(x, preset)
    height, width = frame.shape[-2], frame.shape[-1]
    size = preset.size
    views = _crop_views(frame, preset, height, width)
    shape = (*frame.shape[:-3], preset.crops, 3, size, size)
    out = torch.empty(shape, dtype=torch.float32, device=frame.device)
    return torch.stack(views, dim=-4, out=out)


def _crop_views(frame: torch.Tensor, preset: Preset, height: int, width: int) -> list[torch.Tensor]:
    """The 5 or 10 crops of ``frame`` ``[..., H, W]`` as views (10: and of its one mirrored
    copy), in output order."""
    size = preset.size
    offsets = _five_offsets(height, width, size, preset.crop_order, preset.centre_rounding)
    views = [frame[..., top : top + size, left : left + size] for top, left in offsets]
    if preset.crops == 10:
        # Crop 5 + k mirrors the original's crop at column m; in the mirrored frame that
        # crop starts at width - size - m.
        flipped = frame.flip(-1)
        for top, left in offsets:
            m = width - size - _mirror_left(left, width, size, preset.mirror)
            views.append(flipped[..., top : top + size, m : m + size])
    return views


def _cut_snippet(frames: Sequence[torch.Tensor], preset: Preset,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """A snippet's 5 or 10 crops from its scaled frames (:func:`_scaled_frame`, ``[3, H', W']``
    float32 on the CPU, one per time step) -> ``[crops, 3, T, size, size]`` float32.

    Each crop of each frame is written once, straight into the snippet (numpy
    copies; a mirrored crop is a negative-stride view of the frame, so the mirror is
    never materialised).  The same floats as stacking :func:`_multi_crop`'s per-frame
    output on axis 2, bit for bit: only values move.
    """
    size = preset.size
    height, width = frames[0].shape[-2], frames[0].shape[-1]
    offsets = _five_offsets(height, width, size, preset.crop_order, preset.centre_rounding)
    mirror_at = [_mirror_left(left, width, size, preset.mirror) for _, left in offsets]
    if out is None:
        out = torch.empty((preset.crops, 3, len(frames), size, size), dtype=torch.float32)
    dst = out.numpy()
    mirrored = preset.crops == 10
    for t, frame in enumerate(frames):
        if frame.shape[-2:] != (height, width):
            raise ValueError(f"frame {t} of the snippet is {tuple(frame.shape[-2:])}, "
                             f"frame 0 is {(height, width)}")
        src = frame.numpy()
        for k, (top, left) in enumerate(offsets):
            dst[k, :, t] = src[:, top : top + size, left : left + size]
            if mirrored:  # the mirror of the crop at mirror_at[k] (width-size-left: torchvision's)
                m = mirror_at[k]
                dst[5 + k, :, t] = src[:, top : top + size, m : m + size][..., ::-1]
    return out


def cut_crops(frames: torch.Tensor, preset: Preset) -> torch.Tensor:
    """A snippet's 5 or 10 crops from its scaled frames ``[3, T, H', W']`` (the frames
    :meth:`FrameTransform.prepare` keeps, stacked on axis 1; any device) ->
    ``[crops, 3, T, size, size]`` float32 on the same device.

    Only values move (views, one mirror, one stack), so the result equals
    :meth:`FrameTransform.assemble` of the same frames bit for bit; on a GPU it lets a
    decode worker hand over a quarter of the bytes of a 10-crop snippet
    (:attr:`~vadfeat.pipeline.extractor.FeatureExtractor.crops_on_device`).
    """
    if preset.crops not in (5, 10):
        raise ValueError(f"cut_crops makes 5 or 10 crops, not {preset.crops}")
    height, width = _check_fits(frames, preset.size)
    return torch.stack(_crop_views(frames, preset, height, width))


def transform_frames(x: torch.Tensor, preset: Preset) -> torch.Tensor:
    """Apply ``preset`` to uint8 RGB frames ``[..., 3, H, W]`` on any device.

    Returns ``[..., crops, 3, size, size]`` float32 (contiguous).  The ``legacy``
    one-crop path runs OpenCV per frame on the CPU and moves the result back.
    """
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected frames [..., 3, H, W], got shape {tuple(x.shape)}")
    if preset.crops == 1 and preset.resize == "legacy":
        flat = x.unsqueeze(0) if x.dim() == 3 else x.flatten(0, -4)
        frames = [
            _legacy_to_tensor(np.ascontiguousarray(f.permute(1, 2, 0).cpu().numpy()), preset)
            for f in flat
        ]
        out = torch.stack(frames).to(x.device)
        return out.reshape(*x.shape[:-3], *out.shape[1:])
    if preset.crops in (5, 10):
        return _multi_crop(x, preset)
    views = _geometry(x, preset)
    views = normalize(views, scale=preset.scale, mean=preset.mean, std=preset.std)
    return reorder_channels(views, preset.channel_order).to(torch.float32).contiguous()


@dataclass(frozen=True)
class FrameTransform:
    """Callable: one decoded frame ``[H, W, 3]`` uint8 RGB -> ``[crops, 3, size, size]``.

    The output is float32, channels in ``preset.channel_order``, values scaled per
    ``preset.scale``.  ``crop_names`` lists the crops in output order.
    """

    preset: Preset

    def __post_init__(self) -> None:
        if not isinstance(self.preset, Preset):
            raise ConfigError(f"expected a Preset, got {type(self.preset).__name__}")

    @property
    def crop_names(self) -> tuple[str, ...]:
        return crop_names(self.preset.crops, self.preset.crop_order, self.preset.mirror)

    @property
    def num_crops(self) -> int:
        return self.preset.crops

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """``(crops, 3, size, size)``."""
        return (self.preset.crops, 3, self.preset.size, self.preset.size)

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        if self.preset.crops == 1 and self.preset.resize == "legacy":
            self._chw(frame)  # the same checks
            return _legacy_to_tensor(frame, self.preset)
        return transform_frames(self._chw(frame), self.preset)

    @property
    def cuts_at_snippet(self) -> bool:
        """5 and 10 crops are cut when a snippet is assembled (:meth:`assemble`), not per frame."""
        return self.preset.crops in (5, 10)

    def prepare(self, frame: np.ndarray) -> torch.Tensor:
        """The per-frame stage: what a decode worker keeps of ``frame`` until its snippets
        are assembled by :meth:`assemble`.

        5 or 10 crops: the resized, scaled frame ``[3, H', W']`` float32 (about a quarter
        of the bytes of its 10 crops); otherwise ``self(frame)``, ``[crops, 3, size, size]``.
        """
        if not self.cuts_at_snippet:
            return self(frame)
        return _scaled_frame(self._chw(frame), self.preset)

    def assemble(self, prepared: Sequence[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
        """A snippet from :meth:`prepare`'s outputs (one per time step, in order) ->
        ``[crops, 3, T, size, size]`` float32, contiguous.

        Equal, bit for bit, to stacking ``self(frame)`` of the same frames on axis 2;
        with 5 or 10 crops each crop is written once, straight into the snippet.
        ``out``: a contiguous float32 CPU tensor of that shape to write into (e.g. in
        shared memory, so that handing the snippet to another process copies nothing).
        """
        if not prepared:
            raise ValueError("a snippet needs at least one frame")
        if out is not None:
            want = (self.preset.crops, 3, len(prepared), self.preset.size, self.preset.size)
            if tuple(out.shape) != want or out.dtype != torch.float32 or not out.is_contiguous():
                raise ValueError(f"out must be a contiguous float32 tensor {want}, "
                                 f"got {out.dtype} {tuple(out.shape)}")
        if not self.cuts_at_snippet:
            return torch.stack(list(prepared), dim=2, out=out)
        return _cut_snippet(prepared, self.preset, out)

    def stack_frames(self, prepared: Sequence[torch.Tensor], *, pin_memory: bool = False) -> torch.Tensor:
        """5 or 10 crops: a snippet's :meth:`prepare` outputs as ``[3, T, H', W']``
        float32 (page-locked when ``pin_memory``), for :func:`cut_crops` on the device."""
        if not self.cuts_at_snippet:
            raise ValueError(f"only 5 or 10 crops are cut on the device, not {self.preset.crops}")
        first = prepared[0]
        out = torch.empty((first.shape[0], len(prepared), *first.shape[1:]), dtype=torch.float32,
                          pin_memory=pin_memory)
        return torch.stack(list(prepared), dim=1, out=out)

    def _chw(self, frame: np.ndarray) -> torch.Tensor:
        """Check a decoded frame; its ``[3, H, W]`` uint8 view (channels-last strides)."""
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"expected a numpy frame [H, W, 3], got {type(frame).__name__}")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(
                f"expected a uint8 RGB frame [H, W, 3], got {frame.dtype} {frame.shape}"
            )
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            raise ValueError(f"empty frame {frame.shape}")
        if not (frame.flags.c_contiguous and frame.flags.writeable):
            # torch.from_numpy rejects negative strides and warns on read-only memory.
            frame = np.array(frame, order="C", copy=True)
        return torch.from_numpy(frame).permute(2, 0, 1)  # a view: channels-last strides

    def batch(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``[..., 3, H, W]`` uint8 RGB (any device) -> ``[..., crops, 3, size, size]``."""
        return transform_frames(frames, self.preset)


def build_frame_transform(preset: Preset | str) -> FrameTransform:
    """The per-frame transform of ``preset`` (a :class:`Preset` or a registered name)."""
    if isinstance(preset, str):
        preset = get_preset(preset)
    return FrameTransform(preset)

