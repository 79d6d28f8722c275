"""Per-frame transforms against independent re-computations of each preset's recipe.

References are written here directly: a float64 numpy bilinear (half-pixel
centres, the OpenCV ``INTER_LINEAR`` / ``align_corners=False`` grid), slicing at
offsets written out by hand, hand normalisation, and, for ``fed-wsvad``, a line
by line transcription of the legacy loader in float64 with OpenCV.

Tolerances on torch resizes: torch computes source coordinates and weights in
float32, so a coordinate is off by up to about ``L * 2**-23`` pixels (``L`` = input
side, 640 here); on random-noise frames (neighbours up to 255 apart, the worst
case) that is up to ~0.02 on the 0..255 scale.  We allow 0.03 on 0..255, i.e.
0.03 / 255 after ``unit`` scaling and 0.03 / 255 / min(std) after ImageNet
normalisation.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vadfeat.errors import ConfigError
from vadfeat.pipeline.presets import Preset, get_preset
from vadfeat.pipeline.transforms import (
    FrameTransform,
    build_frame_transform,
    centre_crop,
    crop_names,
    cut_crops,
    five_crop,
    legacy_enlarge,
    normalize,
    resize,
    resize_short_side,
    short_side_shape,
    squash,
    ten_crop,
    three_crop,
    transform_frames,
)

RAW_ATOL = 0.03  # on the 0..255 scale, see the module docstring
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _bilinear_ref(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``[H, W, C]`` -> ``[out_h, out_w, C]`` float64, half-pixel centres, edge clamp."""
    img = img.astype(np.float64)

    def taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        src = np.clip(src, 0.0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, wy = taps(img.shape[0], out_h)
    x0, x1, wx = taps(img.shape[1], out_w)
    rows = img[y0] * (1 - wy)[:, None, None] + img[y1] * wy[:, None, None]
    return rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def test_bilinear_reference_agrees_with_opencv() -> None:
    # Two independent implementations of the same grid: keeps the reference honest.
    frame = _noise(90, 160)
    for out_h, out_w in [(56, 99), (224, 224), (200, 300)]:
        ours = _bilinear_ref(frame, out_h, out_w)
        theirs = cv2.resize(frame.astype(np.float64), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(ours, theirs, atol=1e-3)


# -- videomae-v2: short side 224, centre crop, ImageNet mean/std, RGB -----------------


@pytest.mark.parametrize(
    ("h", "w", "rh", "rw", "top", "left"),
    [
        (360, 640, 224, 398, 0, 87),  # landscape: floor(224 * 640 / 360) = 398
        (640, 360, 398, 224, 87, 0),  # portrait
        (361, 640, 224, 397, 0, 86),  # round(173 / 2) = 86: half to even, as torchvision
        (200, 300, 224, 336, 0, 56),  # smaller than the model input: enlarged
        (224, 300, 224, 300, 0, 38),  # short side already 224: no resize at all
        (250, 250, 224, 224, 0, 0),
    ],
)
def test_videomae_v2_matches_hand_computation(
    h: int, w: int, rh: int, rw: int, top: int, left: int
) -> None:
    frame = _noise(h, w, seed=h + w)
    resized = _bilinear_ref(frame, rh, rw)
    crop = resized[top : top + 224, left : left + 224]
    expected = ((crop / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]

    out = build_frame_transform("videomae-v2")(frame)

    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    assert out.is_contiguous()
    torch.testing.assert_close(
        out.double(), torch.from_numpy(expected), rtol=0, atol=RAW_ATOL / 255 / STD.min()
    )


# -- videomae-tad: squash to 224x224, [0, 1], RGB -------------------------------------


@pytest.mark.parametrize(("h", "w"), [(360, 640), (640, 360), (100, 150), (224, 224)])
def test_videomae_tad_matches_hand_computation(h: int, w: int) -> None:
    frame = _noise(h, w, seed=h * w)
    expected = (_bilinear_ref(frame, 224, 224) / 255.0).transpose(2, 0, 1)[None]

    out = build_frame_transform("videomae-tad")(frame)

    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), torch.from_numpy(expected), rtol=0, atol=RAW_ATOL / 255)


def test_antialias_option_matches_pil_area_aware_bilinear() -> None:
    # No preset antialiases, but the option is there; PIL's BILINEAR on float
    # images is the antialiased filter torch's antialias=True reproduces.
    image = pytest.importorskip("PIL.Image")
    frame = _noise(360, 640, seed=3)
    expected = np.stack(
        [
            np.asarray(
                image.fromarray(frame[:, :, c].astype(np.float32)).resize(
                    (224, 224), image.Resampling.BILINEAR
                )
            )
            for c in range(3)
        ]
    )
    preset = get_preset("videomae-tad").replace(antialias=True)
    out = build_frame_transform(preset)(frame)[0]
    torch.testing.assert_close(out * 255, torch.from_numpy(expected), rtol=0, atol=0.01)


# -- fed-wsvad: the legacy loader ------------------------------------------------------


def _legacy_reference(frame_rgb: np.ndarray) -> np.ndarray:
    """SPEC section 1, transcribed: enlarge if short side < 226, scale, squash, BGR."""
    img = frame_rgb
    h, w = img.shape[:2]
    if min(h, w) < 226:
        sc = 226 / min(h, w)
        img = cv2.resize(img, (0, 0), fx=sc, fy=sc)
    img = img / 255.0 * 2 - 1  # float64, as the legacy numpy code
    img = cv2.resize(img, (224, 224))
    return np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)[None])  # model sees BGR


@pytest.mark.parametrize(
    ("h", "w"), [(360, 640), (48, 64), (300, 100), (225, 500), (226, 500), (120, 160), (576, 720)]
)
def test_fed_wsvad_matches_legacy_transcription(h: int, w: int) -> None:
    frame = _noise(h, w, seed=7 * h + w)
    expected = torch.from_numpy(_legacy_reference(frame))

    out = build_frame_transform("fed-wsvad")(frame)

    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    # We compute in float32 where the legacy code used float64; SPEC allows < 1e-5
    # (measured: about 3e-7).
    max_diff = (out.double() - expected).abs().max().item()
    assert max_diff < 1e-5, max_diff


def test_legacy_geometry_with_per_channel_scaling() -> None:
    # Overriding the legacy preset's scale keeps its order of operations:
    # enlarge (8-bit), scale (float), squash (float), then reorder channels.
    frame = _noise(100, 180, seed=4)
    sc = 226 / 100
    img = cv2.resize(frame, (0, 0), fx=sc, fy=sc)
    img = (img / 255.0 - MEAN) / STD
    img = cv2.resize(img, (224, 224))[:, :, ::-1]
    expected = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)[None]))
    out = build_frame_transform(get_preset("fed-wsvad").replace(scale="imagenet"))(frame)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-5)


def test_fed_wsvad_enlargement_rule() -> None:
    # 64x48 (W x H): shorter side 48 < 226 -> factor 226/48 -> round(64 * 226 / 48) = 301 wide
    small = np.zeros((48, 64, 3), np.uint8)
    assert legacy_enlarge(small).shape == (226, 301, 3)
    # shorter side exactly at / just below the threshold
    assert legacy_enlarge(np.zeros((226, 500, 3), np.uint8)).shape == (226, 500, 3)
    assert legacy_enlarge(np.zeros((225, 500, 3), np.uint8)).shape == (226, 502, 3)
    assert legacy_enlarge(np.zeros((500, 100, 3), np.uint8)).shape == (1130, 226, 3)
    # 400x300 is large enough: returned untouched
    big = np.zeros((300, 400, 3), np.uint8)
    assert legacy_enlarge(big) is big


def test_fed_wsvad_enlargement_changes_the_result() -> None:
    # The enlargement on 8-bit values is not a no-op before the float squash:
    # skipping it (what a plain squash does) gives visibly different inputs.
    frame = _noise(48, 64, seed=11)
    legacy = build_frame_transform("fed-wsvad")(frame)
    plain = build_frame_transform(get_preset("fed-wsvad").replace(resize="squash"))(frame)
    assert (legacy - plain).abs().max().item() > 1e-2


def test_bgr_reverses_channels_of_the_rgb_result() -> None:
    frame = _noise(120, 200, seed=5)
    for name in ("fed-wsvad", "videomae-v2"):
        preset = get_preset(name)
        bgr = build_frame_transform(preset.replace(channel_order="BGR"))(frame)
        rgb = build_frame_transform(preset.replace(channel_order="RGB"))(frame)
        torch.testing.assert_close(bgr, rgb.flip(1), rtol=0, atol=0)


# -- crops -------------------------------------------------------------------------------

TL, TR, BL, BR = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
CENTRE_LEFT, CENTRE_RIGHT = (0, 255, 255), (255, 0, 255)  # left/right asymmetric marker
COLOUR = {"tl": TL, "tr": TR, "bl": BL, "br": BR}
MIRROR = {"tl": "tr", "tr": "tl", "bl": "br", "br": "bl"}
UNIT_RGB = Preset(name="unit-rgb", scale="unit")  # read colours straight back


def _marked_frame(h: int, w: int) -> np.ndarray:
    """Grey frame, a coloured block in each corner, a two-colour patch at the centre."""
    frame = np.full((h, w, 3), 128, np.uint8)
    bh, bw = h // 8, w // 8
    frame[:bh, :bw] = TL
    frame[:bh, -bw:] = TR
    frame[-bh:, :bw] = BL
    frame[-bh:, -bw:] = BR
    ch, cw = h // 2, w // 2
    frame[ch - bh : ch + bh, cw - bw : cw] = CENTRE_LEFT
    frame[ch - bh : ch + bh, cw : cw + bw] = CENTRE_RIGHT
    return frame


def _colour(crop: torch.Tensor, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(v) for v in (crop[:, y, x] * 255).round().tolist())


def _expected_probes(name: str, s: int = 224) -> dict[tuple[int, int], tuple[int, int, int]]:
    """Pixel -> colour for a crop called ``name`` (torchvision ten_crop semantics:
    ``X_flip`` is the crop at position X of the horizontally mirrored frame)."""
    near, far = 2, s - 3
    corner_probe = {"tl": (near, near), "tr": (near, far), "bl": (far, near), "br": (far, far)}
    base, flipped = name.removesuffix("_flip"), name.endswith("_flip")
    if base == "c":
        left, right = (CENTRE_RIGHT, CENTRE_LEFT) if flipped else (CENTRE_LEFT, CENTRE_RIGHT)
        return {(s // 2, s // 2 - 8): left, (s // 2, s // 2 + 8): right}
    shown = MIRROR[base] if flipped else base  # the mirrored frame's tl corner is the tr corner
    return {corner_probe[base]: COLOUR[shown]}


@pytest.mark.parametrize("crops", [5, 10])
@pytest.mark.parametrize("order", ["torchvision", "centre-first"])
@pytest.mark.parametrize(("h", "w"), [(360, 640), (640, 360)])
def test_five_and_ten_crops_land_where_the_order_says(crops: int, order: str, h: int, w: int) -> None:
    transform = build_frame_transform(UNIT_RGB.replace(crops=crops, crop_order=order))
    out = transform(_marked_frame(h, w))

    expected_names = {
        "torchvision": ["tl", "tr", "bl", "br", "c"],
        "centre-first": ["c", "tl", "tr", "bl", "br"],
    }[order]
    if crops == 10:
        expected_names += [f"{n}_flip" for n in expected_names]
    assert list(transform.crop_names) == expected_names
    assert transform.num_crops == crops
    assert out.shape == (crops, 3, 224, 224)
    for k, name in enumerate(expected_names):
        for (y, x), colour in _expected_probes(name).items():
            assert _colour(out[k], y, x) == colour, (name, y, x)


@pytest.mark.parametrize(
    ("h", "w", "starts"),
    [
        (360, 640, [(0, 0), (0, 87), (0, 174)]),  # landscape: left, centre, right
        (640, 360, [(0, 0), (87, 0), (174, 0)]),  # portrait: top, centre, bottom
        (360, 610, [(0, 0), (0, 77), (0, 155)]),  # int(77.5) = 77, official floor
    ],
)
def test_three_crops_follow_the_long_side(h: int, w: int, starts: list[tuple[int, int]]) -> None:
    frame = _marked_frame(h, w)
    transform = build_frame_transform(UNIT_RGB.replace(crops=3))
    out = transform(frame)
    assert transform.crop_names == ("start", "c", "end")
    assert out.shape == (3, 3, 224, 224)

    rh, rw = short_side_shape(h, w, 224)
    ref = _bilinear_ref(frame, rh, rw) / 255.0
    for k, (top, left) in enumerate(starts):
        expected = ref[top : top + 224, left : left + 224].transpose(2, 0, 1)
        torch.testing.assert_close(
            out[k].double(), torch.from_numpy(expected), rtol=0, atol=RAW_ATOL / 255
        )
    # colours: the start crop holds the first corners, the end crop the last ones
    near, far = 2, 221
    if h >= w:
        assert _colour(out[0], near, near) == TL and _colour(out[0], near, far) == TR
        assert _colour(out[2], far, near) == BL and _colour(out[2], far, far) == BR
    else:
        assert _colour(out[0], near, near) == TL and _colour(out[0], far, near) == BL
        assert _colour(out[2], near, far) == TR and _colour(out[2], far, far) == BR
    assert _colour(out[1], 112, 104) == CENTRE_LEFT
    assert _colour(out[1], 112, 120) == CENTRE_RIGHT


# Offsets (top, left) of tl, tr, bl, br, c after the short side goes to 256, worked
# out by hand: 640x360 -> 455x256; 455 - 224 = 231; centre round(231 / 2) = 116.
_OFFSETS = {
    (360, 640): {"tl": (0, 0), "tr": (0, 231), "bl": (32, 0), "br": (32, 231), "c": (16, 116)},
    (640, 360): {"tl": (0, 0), "tr": (0, 32), "bl": (231, 0), "br": (231, 32), "c": (116, 16)},
}


@pytest.mark.parametrize("order", ["torchvision", "centre-first"])
@pytest.mark.parametrize(("h", "w"), list(_OFFSETS))
def test_ten_crop_values_match_torchvision_definition(order: str, h: int, w: int) -> None:
    frame = _noise(h, w, seed=1)
    out = build_frame_transform(UNIT_RGB.replace(crops=10, crop_order=order))(frame)

    rh, rw = (256, 455) if w > h else (455, 256)
    ref = _bilinear_ref(frame, rh, rw) / 255.0
    mirrored = ref[:, ::-1]  # torchvision: flip the whole frame, then five-crop it
    names = ["tl", "tr", "bl", "br", "c"] if order == "torchvision" else ["c", "tl", "tr", "bl", "br"]
    offsets = [_OFFSETS[(h, w)][n] for n in names]
    expected = [ref[top : top + 224, left : left + 224] for top, left in offsets]
    expected += [mirrored[top : top + 224, left : left + 224] for top, left in offsets]
    expected_t = torch.from_numpy(np.stack([e.transpose(2, 0, 1) for e in expected]))
    torch.testing.assert_close(out.double(), expected_t, rtol=0, atol=RAW_ATOL / 255)


def test_multi_crop_keeps_the_preset_scaling_and_channel_order() -> None:
    frame = _noise(360, 640, seed=2)
    unit = build_frame_transform(UNIT_RGB.replace(crops=10))(frame)
    fed = build_frame_transform(get_preset("fed-wsvad").replace(crops=10))(frame)
    torch.testing.assert_close(fed, (unit * 2 - 1).flip(1), rtol=0, atol=1e-6)
    v2 = build_frame_transform(get_preset("videomae-v2").replace(crops=5))(frame)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)
    unit5 = build_frame_transform(UNIT_RGB.replace(crops=5))(frame)
    torch.testing.assert_close(v2, (unit5 - mean) / std, rtol=0, atol=1e-5)


def test_crop_names_table() -> None:
    assert crop_names(1) == ("c",)
    assert crop_names(3) == ("start", "c", "end")
    assert crop_names(5) == ("tl", "tr", "bl", "br", "c")
    assert crop_names(5, "centre-first") == ("c", "tl", "tr", "bl", "br")
    assert crop_names(10)[5:] == ("tl_flip", "tr_flip", "bl_flip", "br_flip", "c_flip")
    with pytest.raises(ConfigError, match="1, 3, 5, 10"):
        crop_names(4)
    with pytest.raises(ConfigError, match="torchvision"):
        crop_names(5, "random")  # type: ignore[arg-type]


# -- tensor-level functions ([..., C, H, W], any leading dims) -------------------------


def test_tensor_functions_keep_leading_dims() -> None:
    x = torch.from_numpy(_noise(60, 80)).permute(2, 0, 1).expand(2, 4, 3, 60, 80)
    assert resize_short_side(x, 32).shape == (2, 4, 3, 32, 42)
    assert squash(x, 16).shape == (2, 4, 3, 16, 16)
    assert centre_crop(x, 50).shape == (2, 4, 3, 50, 50)
    assert three_crop(x, 60).shape == (2, 4, 3, 3, 60, 60)
    assert five_crop(x, 40).shape == (2, 4, 5, 3, 40, 40)
    assert ten_crop(x, 40).shape == (2, 4, 10, 3, 40, 40)
    assert resize_short_side(x, 60).dtype == torch.float32  # uint8 in, float out


def test_crops_larger_than_the_frame_are_rejected() -> None:
    x = torch.zeros(3, 100, 200)
    for fn in (centre_crop, three_crop, five_crop, ten_crop):
        with pytest.raises(ValueError, match="100x200"):
            fn(x, 150)


def test_normalize_modes() -> None:
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(3, 1, 1).expand(3, 2, 2)
    torch.testing.assert_close(normalize(x, scale="unit")[:, 0, 0], torch.tensor([0, 0.2, 1.0]))
    torch.testing.assert_close(
        normalize(x, scale="minus_one_one")[:, 0, 0], torch.tensor([-1.0, -0.6, 1.0])
    )
    expected = (torch.tensor([0, 0.2, 1.0], dtype=torch.float64) - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(normalize(x, scale="imagenet")[:, 0, 0], expected.float())


@pytest.mark.parametrize(
    "preset",
    [
        get_preset("videomae-v2"),
        get_preset("videomae-tad"),
        get_preset("fed-wsvad"),
        get_preset("videomae-v2").replace(crops=10),
        get_preset("fed-wsvad").replace(crops=3),
    ],
    ids=lambda p: f"{p.name}-{p.crops}",
)
def test_batched_tensor_path_equals_per_frame_calls(preset: Preset) -> None:
    frames = [_noise(90, 160, seed=s) for s in range(3)]
    transform = build_frame_transform(preset)
    per_frame = torch.stack([transform(f) for f in frames])
    batch = transform.batch(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2))
    assert batch.shape == (3, *transform.output_shape)
    torch.testing.assert_close(batch, per_frame, rtol=0, atol=1e-6)
    # and a clip stacks on a new T axis into the model layout [crops, 3, T, H, W]
    assert torch.stack(list(per_frame), dim=2).shape == (preset.crops, 3, 3, 224, 224)


def test_odd_memory_layouts_give_the_same_result() -> None:
    frame = _noise(120, 160, seed=9)
    transform = build_frame_transform("videomae-v2")
    reference = transform(frame)
    readonly = frame.copy()
    readonly.flags.writeable = False
    reversed_view = frame[:, ::-1][:, ::-1]  # negative strides, same pixels
    for variant in (readonly, reversed_view, np.asfortranarray(frame)):
        torch.testing.assert_close(transform(variant), reference, rtol=0, atol=0)


def test_bad_inputs_are_rejected() -> None:
    transform = build_frame_transform("videomae-v2")
    with pytest.raises(TypeError):
        transform(torch.zeros(10, 10, 3, dtype=torch.uint8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        transform(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        transform(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        transform(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="3, H, W"):
        transform_frames(torch.zeros(2, 10, 10, 3, dtype=torch.uint8), get_preset("videomae-v2"))
    with pytest.raises(ConfigError, match="known presets"):
        build_frame_transform("nope")
    with pytest.raises(ConfigError):
        FrameTransform({"name": "x"})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bicubic (CLIP presets)


def test_bicubic_is_clamped_like_pils_8_bit_output() -> None:
    # A black/white step: the cubic kernel (a = -0.5 in PyTorch, -0.5 in PIL) overshoots on
    # both sides of the edge when upscaling; PIL clips to 0..255, so vadfeat clamps.
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:] = 255.0
    raw = torch.nn.functional.interpolate(step, size=(32, 32), mode="bicubic", align_corners=False)
    assert raw.min() < -1 and raw.max() > 256  # the overshoot is real
    out = resize(step, 32, 32, interpolation="bicubic")
    assert out.min() == 0 and out.max() == 255
    torch.testing.assert_close(out, raw.clamp(0, 255), rtol=0, atol=0)
    # bilinear never overshoots, so its values are untouched by any clamp
    lin = resize(step, 32, 32, interpolation="bilinear")
    assert lin.min() >= 0 and lin.max() <= 255


def test_clip_preprocessing_is_within_two_levels_of_pil(bigbuckbunny) -> None:
    """CLIP's own preprocessing is PIL: resize the short side to 224 with BICUBIC, centre crop.

    vadfeat's ``clip-frames`` geometry on real 1280x720 frames, against PIL's, in 0..255
    units: bench/clip_resize.py measured max 2.0 and mean 0.26 (PIL rounds to 8 bits after
    each of its two passes; vadfeat keeps floats), so 2.5 / 0.4 are the bounds here.
    """
    from PIL import Image

    from vadfeat.io.video import open_video

    preset = get_preset("clip-frames").replace(scale="unit")  # geometry only: x / 255
    with open_video(bigbuckbunny) as reader:
        frames = [f for _, f in zip(range(3), (frame for _, frame in reader), strict=False)]
    for frame in frames:
        h, w = frame.shape[:2]
        nh, nw = (224, round(224 * w / h)) if h <= w else (round(224 * h / w), 224)
        pil = np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BICUBIC), dtype=np.float32)
        top, left = round((nh - 224) / 2), round((nw - 224) / 2)
        pil = pil[top:top + 224, left:left + 224]
        ours = transform_frames(torch.from_numpy(frame).permute(2, 0, 1), preset)[0] * 255
        diff = np.abs(ours.permute(1, 2, 0).numpy() - pil)
        assert diff.max() <= 2.5 and diff.mean() <= 0.4, (diff.max(), diff.mean())


def _old_crop_path(frame: np.ndarray, preset: Preset) -> torch.Tensor:
    """The per-frame path before issue 15: stack the crops, then scale, reorder, copy."""
    from vadfeat.pipeline.transforms import _geometry, _legacy_to_tensor, normalize, reorder_channels

    if preset.crops == 1 and preset.resize == "legacy":  # the OpenCV path, unchanged
        return _legacy_to_tensor(frame, preset)
    views = _geometry(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1), preset)
    views = normalize(views, scale=preset.scale, mean=preset.mean, std=preset.std)
    return reorder_channels(views, preset.channel_order).to(torch.float32).contiguous()


def test_crops_from_one_scaled_frame_are_bit_identical_to_the_old_path(bigbuckbunny) -> None:
    # Issue 15: 5/10 crops are now views of one resized, scaled frame (and of its one
    # mirror).  Scaling is elementwise with per-channel coefficients and cutting or
    # mirroring only moves values, so the new order must give the same floats, bit for bit,
    # for every preset (bilinear and clamped bicubic), crop count and crop order.
    import av

    from vadfeat.pipeline.presets import list_presets

    with av.open(str(bigbuckbunny)) as c:
        raw = [f.to_ndarray(format="rgb24") for _, f in zip(range(30), c.decode(video=0), strict=False)]
    landscape = [np.ascontiguousarray(cv2.resize(raw[i], (640, 360), interpolation=cv2.INTER_AREA))
                 for i in (0, 29)]
    frames = [landscape[0], np.ascontiguousarray(landscape[1].transpose(1, 0, 2)[:300])]  # + portrait
    checked = 0
    for name in list_presets():
        for crops in (1, 3, 5, 10):
            for order in ("torchvision", "centre-first"):
                preset = get_preset(name).replace(crops=crops, crop_order=order)
                transform = build_frame_transform(preset)
                for frame in frames:
                    new = transform(frame)
                    assert new.is_contiguous() and new.dtype == torch.float32
                    assert torch.equal(new, _old_crop_path(frame, preset)), (name, crops, order, frame.shape)
                    checked += 1
                if crops != 10:
                    continue
                batch = transform.batch(torch.from_numpy(np.stack(landscape)).permute(0, 3, 1, 2))
                assert torch.equal(batch, torch.stack([_old_crop_path(f, preset) for f in landscape]))
    assert checked == len(list_presets()) * 4 * 2 * len(frames)


def test_snippets_cut_at_assembly_equal_stacked_per_frame_crops(bigbuckbunny) -> None:
    # Issue 15: with 5/10 crops a decode worker keeps each frame resized and scaled once
    # (`prepare`) and cuts the crops when a snippet is assembled, straight into the snippet
    # (mirrored crops as negative-stride views).  Only values move, so a snippet must equal,
    # bit for bit, the old route: each frame's crops by the per-frame path before issue 15
    # (`_old_crop_path`), stacked on axis 2.  Every preset, 1/3/5/10 crops, both orders,
    # landscape and portrait frames.
    import av

    from vadfeat.pipeline.presets import list_presets

    with av.open(str(bigbuckbunny)) as c:
        raw = [f.to_ndarray(format="rgb24") for _, f in zip(range(3), c.decode(video=0), strict=False)]
    land = [np.ascontiguousarray(cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA)) for f in raw]
    port = [np.ascontiguousarray(f.transpose(1, 0, 2)[:300]) for f in land]
    checked = 0
    for name in list_presets():
        for crops in (1, 3, 5, 10):
            for order in ("torchvision", "centre-first"):
                preset = get_preset(name).replace(crops=crops, crop_order=order)
                transform = build_frame_transform(preset)
                assert transform.cuts_at_snippet == (crops in (5, 10))
                for frames in (land, port):
                    kept = [transform.prepare(f) for f in frames]
                    if crops in (5, 10):  # a frame, not its crops: [3, H', W']
                        assert kept[0].dim() == 3 and kept[0].shape[-1] != preset.size
                    snippet = transform.assemble(kept)
                    want = torch.stack([_old_crop_path(f, preset) for f in frames], dim=2)
                    assert snippet.shape == (crops, 3, len(frames), preset.size, preset.size)
                    assert snippet.is_contiguous() and snippet.dtype == torch.float32
                    assert torch.equal(snippet, want), (name, crops, order, frames[0].shape)
                    checked += 1
    assert checked == len(list_presets()) * 4 * 2 * 2
    for crops in (1, 10):  # into a given tensor (shared memory, for worker processes)
        tr = build_frame_transform(get_preset("videomae-v2").replace(crops=crops))
        kept = [tr.prepare(f) for f in land]
        out = torch.empty((crops, 3, len(land), 224, 224)).share_memory_()
        assert tr.assemble(kept, out=out) is out and out.is_shared()
        assert torch.equal(out, tr.assemble(kept))
        with pytest.raises(ValueError, match="contiguous float32 tensor"):
            tr.assemble(kept, out=torch.empty((crops, 3, len(land), 224, 223)))
    with pytest.raises(ValueError, match="at least one frame"):
        build_frame_transform("videomae-v2").assemble([])
    ten = build_frame_transform(get_preset("videomae-v2").replace(crops=10))
    with pytest.raises(ValueError, match="frame 1 of the snippet"):  # frames of one size only
        ten.assemble([ten.prepare(land[0]), ten.prepare(port[0])])


def test_crops_cut_on_the_device_equal_crops_cut_in_the_worker(bigbuckbunny) -> None:
    # A CUDA run with 5/10 crops hands the model side a snippet's scaled frames
    # [3, T, H', W'] (stack_frames) and cuts the crops there (cut_crops): only values
    # move, so the crops must equal the worker's `assemble`, bit for bit (here on the CPU;
    # the device changes where the copies run, not what they copy).
    import av

    with av.open(str(bigbuckbunny)) as c:
        raw = [f.to_ndarray(format="rgb24") for _, f in zip(range(3), c.decode(video=0), strict=False)]
    land = [np.ascontiguousarray(cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA)) for f in raw]
    for name in ("videomae-v2", "clip-vadclip", "i3d-rtfm", "i3d-xd"):
        for crops in (5, 10):
            for order in ("torchvision", "centre-first"):
                tr = build_frame_transform(get_preset(name).replace(crops=crops, crop_order=order))
                kept = [tr.prepare(f) for f in land]
                frames = tr.stack_frames(kept)
                h, w = kept[0].shape[-2:]
                assert frames.shape == (3, len(land), h, w)
                assert torch.equal(cut_crops(frames, tr.preset), tr.assemble(kept)), (name, crops, order)
    one = build_frame_transform("videomae-v2")
    with pytest.raises(ValueError, match="5 or 10 crops"):
        one.stack_frames([one.prepare(land[0])])
    with pytest.raises(ValueError, match="5 or 10 crops"):
        cut_crops(torch.zeros(3, 2, 256, 256), get_preset("videomae-v2"))
