"""Preset registry, validation, copies and (de)serialisation."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vadfeat.errors import ConfigError
from vadfeat.pipeline.presets import (
    DEFAULT_PRESET,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRESETS,
    Preset,
    get_preset,
    list_presets,
)


def test_registry_lists_the_presets() -> None:
    assert list_presets() == ["clip-anomalyclip", "clip-frames", "clip-tsa", "clip-vadclip",
                              "clip-video-features",
                              "fed-wsvad", "i3d-gowtham", "i3d-pel4vad", "i3d-piergiaj", "i3d-rtfm",
                              "i3d-rtfm-author", "i3d-video-features",
                              "i3d-xd", "vggish", "vggish-xd",
                              "videomae-tad", "videomae-v2"]
    assert DEFAULT_PRESET == "videomae-v2"
    for name in list_presets():
        assert get_preset(name).name == name


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        PRESETS["mine"] = Preset(name="mine")  # type: ignore[index]


def test_unknown_preset_lists_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        get_preset("videomae")
    message = str(info.value)
    assert "'videomae'" in message
    for name in list_presets():
        assert name in message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "videomae-v2",
            dict(
                clip_len=16, frame_interval=1, stride=None, tail="drop", resize="short_side",
                short_side=224, size=224, interpolation="bilinear", crops=1, scale="imagenet",
                mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order="RGB", pooling="fc_norm",
            ),
        ),
        (
            "videomae-tad",
            dict(
                clip_len=16, frame_interval=1, stride=16, tail="drop", resize="squash",
                size=224, interpolation="bilinear", antialias=False, crops=1, scale="unit",
                channel_order="RGB", pooling="fc_norm",
            ),
        ),
        (
            "fed-wsvad",
            dict(
                clip_len=16, frame_interval=1, stride=16, tail="drop", resize="legacy",
                size=224, legacy_min_side=226, interpolation="bilinear", antialias=False,
                crops=1, scale="minus_one_one", channel_order="BGR", pooling="stats",
            ),
        ),
    ],
)
def test_preset_values_match_the_spec(name: str, expected: dict) -> None:
    preset = get_preset(name)
    for field, value in expected.items():
        assert getattr(preset, field) == value, field
    assert preset.effective_stride == 16


def test_imagenet_constants() -> None:
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)


def test_presets_are_frozen_and_keyword_only() -> None:
    preset = get_preset("videomae-v2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.size = 112  # type: ignore[misc]
    with pytest.raises(TypeError):
        Preset("positional")  # type: ignore[misc]


def test_replace_returns_a_validated_copy() -> None:
    base = get_preset("videomae-v2")
    ten = base.replace(crops=10, crop_order="centre-first")
    assert (ten.crops, ten.crop_order) == (10, "centre-first")
    assert base.crops == 1  # the registered preset is untouched
    assert ten.effective_crop_resize == 256
    assert base.replace(crops=3).effective_crop_resize == 224
    assert base.replace(crops=5, crop_resize=320).effective_crop_resize == 320
    # size larger than 256: 5/10 crops need at least `size` on the short side
    assert base.replace(size=288, short_side=288, crops=5).effective_crop_resize == 288


def test_default_stride_follows_clip_and_interval() -> None:
    base = get_preset("videomae-v2")
    assert base.effective_stride == 16
    assert base.replace(frame_interval=4).effective_stride == 64
    assert base.replace(clip_len=8, stride=2).effective_stride == 2


def test_resolved_makes_defaults_explicit() -> None:
    resolved = get_preset("videomae-v2").replace(crops=10).resolved()
    assert resolved.stride == 16
    assert resolved.crop_resize == 256


def test_replace_rejects_unknown_fields_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        get_preset("videomae-v2").replace(clip_length=8, ncrops=10)
    message = str(info.value)
    assert "'clip_length'" in message and "'ncrops'" in message
    for field in ("clip_len", "crops", "scale", "channel_order", "pooling"):
        assert field in message


@pytest.mark.parametrize(
    ("overrides", "must_mention"),
    [
        ({"tail": "keep"}, ["'drop'", "'pad'"]),
        ({"resize": "crop"}, ["'short_side'", "'squash'", "'legacy'"]),
        ({"crops": 4}, ["1", "3", "5", "10"]),
        ({"crops": True}, ["crops"]),
        ({"crops": 5.0}, ["crops"]),
        ({"crop_order": "centre_first"}, ["'torchvision'", "'centre-first'"]),
        ({"scale": "imagenet1k"}, ["'imagenet'", "'unit'", "'minus_one_one'"]),
        ({"channel_order": "rgb"}, ["'RGB'", "'BGR'"]),
        ({"pooling": "cls"}, ["'fc_norm'", "'mean'", "'stats'"]),
        ({"interpolation": "nearest"}, ["'bilinear'", "'bicubic'"]),
        ({"clip_len": 0}, ["clip_len"]),
        ({"frame_interval": 1.5}, ["frame_interval"]),
        ({"stride": 0}, ["stride"]),
        ({"size": -1}, ["size"]),
        ({"antialias": 1}, ["antialias"]),
        ({"mean": (0.5, 0.5)}, ["mean"]),
        ({"mean": "abc"}, ["mean"]),
        ({"std": (0.2, 0.0, 0.2)}, ["std"]),
        ({"std": (0.2, float("nan"), 0.2)}, ["std"]),
        ({"name": ""}, ["name"]),
        ({"short_side": 200}, ["short_side", "size"]),
        ({"crops": 5, "crop_resize": 200}, ["crop_resize", "size"]),
    ],
)
def test_invalid_settings_raise_config_error(overrides: dict, must_mention: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        get_preset("videomae-v2").replace(**overrides)
    for text in must_mention:
        assert text in str(info.value)


def test_short_side_below_size_is_fine_when_unused() -> None:
    # squash ignores short_side; 3/5/10 crops use crop_resize instead
    get_preset("videomae-tad").replace(short_side=100)
    get_preset("videomae-v2").replace(short_side=100, crops=10)


@pytest.mark.parametrize("overrides", [{"antialias": True}, {"interpolation": "bicubic"}])
def test_legacy_resize_is_opencv_bilinear_only(overrides: dict) -> None:
    with pytest.raises(ConfigError, match="legacy"):
        get_preset("fed-wsvad").replace(**overrides)


def test_mean_std_are_normalised_to_float_tuples() -> None:
    preset = get_preset("videomae-v2").replace(mean=[0, 1, 0.5], std=[1, 1, 1])
    assert preset.mean == (0.0, 1.0, 0.5)
    assert isinstance(preset.std, tuple)


@pytest.mark.parametrize(
    "preset",
    [
        *PRESETS.values(),
        Preset(name="custom", crops=10, crop_order="centre-first", crop_resize=288),
        get_preset("videomae-tad").replace(stride=4, mean=(0.5, 0.5, 0.5)),
    ],
    ids=lambda p: p.name,
)
def test_to_dict_from_dict_round_trip_through_json(preset: Preset) -> None:
    data = preset.to_dict()
    # every field, except the ones added later while they hold their defaults: fingerprints
    # of outputs made before them are unchanged
    later = {"frame_size": None, "jpeg_roundtrip": "none", "lookahead": 0,
             "centre_rounding": "round", "mirror": "frame"}
    at_default = {name for name, value in later.items() if getattr(preset, name) == value}
    assert set(data) == set(Preset.field_names()) - at_default
    text = json.dumps(data, allow_nan=False)  # strictly JSON-serialisable
    again = Preset.from_dict(json.loads(text))
    assert again == preset
    assert again.to_dict() == data


def test_from_dict_fills_missing_fields_with_defaults() -> None:
    assert Preset.from_dict({"name": "x", "crops": 5}) == Preset(name="x", crops=5)


def test_from_dict_rejects_unknown_and_incomplete_settings() -> None:
    data = get_preset("fed-wsvad").to_dict()
    with pytest.raises(ConfigError, match=r"'colour'.*valid fields"):
        Preset.from_dict({**data, "colour": "red"})
    del data["name"]
    with pytest.raises(ConfigError, match="name"):
        Preset.from_dict(data)
    with pytest.raises(ConfigError, match="mapping"):
        Preset.from_dict([("name", "x")])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'RGBA'"):
        Preset.from_dict({"name": "x", "channel_order": "RGBA"})
