"""Allowed option values are defined once (vadfeat._types) and the CLI's choices come from there."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import get_args

import pytest

import vadfeat
from vadfeat import _types as T
from vadfeat.cli import _parsers, build_parser

# (command, option dest) -> the alias its choices must equal; "preset" is the preset registry.
EXPECTED = {
    ("checkpoint convert", "dtype"): T.DTypeName,
    ("compress", "dtype"): T.DTypeName,
    ("compare", "layout"): T.LayoutOrAuto,
    ("compare", "theirs_layout"): T.LayoutOrAuto,
    ("compress", "quantize"): T.Quantize,
    ("extract", "layout"): T.Layout,
    ("extract", "tail"): T.Tail,
    ("extract", "crops"): T.NumCrops,
    ("extract", "crop_order"): T.CropOrder,
    ("extract", "frame_reduce"): T.FrameReduce,
    ("extract", "channel_order"): T.ChannelOrder,
    ("extract", "scale"): T.Scale,
    ("extract", "resize"): T.ResizeMode,
    ("extract", "interpolation"): T.Interpolation,
    ("extract", "jpeg_roundtrip"): T.JpegRoundTrip,
    ("extract", "frames_colour"): T.FramesColour,
    ("extract", "dtype"): T.DTypeOrAuto,
    ("extract", "quantize"): T.Quantize,
    ("extract", "preprocess"): T.Preprocess,
    ("extract", "pipeline"): T.Pipeline,
    ("extract", "on_corrupt"): T.OnCorrupt,
    ("extract", "decoder"): T.Decoder,
    ("extract", "engine"): T.Engine,
    ("extract", "sink"): T.SinkName,
    ("frames", "on_corrupt"): T.OnCorrupt,
    ("labels", "format"): T.LabelFormat,
    ("labels", "layout"): T.LayoutOrAuto,
    ("align", "layout"): T.LayoutOrAuto,
    ("align", "labels_format"): T.LabelFormatOrAuto,
    ("align", "rule"): T.SnippetRule,
    ("align", "mode"): T.AlignMode,
    ("export", "layout"): T.LayoutOrAuto,
    ("export", "format"): T.ExportFormat,
    ("export", "dataset"): T.Dataset,
    ("lists", "layout"): T.LayoutOrAuto,
    ("lists", "format"): T.ListFormat,
    ("lists", "dataset"): T.Dataset,
    ("lists", "labels_format"): T.LabelFormatOrAuto,
    ("lists", "naming"): T.Naming,
    ("resample", "layout"): T.LayoutOrAuto,
    ("resample", "method"): T.ResampleMethod,
    ("inspect", "layout"): T.LayoutOrAuto,
    ("inspect", "labels_format"): T.LabelFormatOrAuto,
}


def _choice_actions() -> dict[tuple[str, str], argparse.Action]:
    found = {}
    for parser in _parsers(build_parser()):
        command = parser.prog.removeprefix("vadfeat ")
        for action in parser._actions:
            if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
                found[(command, action.dest)] = action
    return found


def test_every_cli_choice_comes_from_its_literal() -> None:
    found = _choice_actions()
    found.pop(("extract", "preset"))  # the registered presets, not a Literal
    found.pop(("demo", "preset"), None)
    found.pop(("extract", "backbone"))  # the registered backbones
    # --pooling offers every registered backbone's heads (a plug-in adds its own); the
    # built-in ones are the Literal's (VideoMAE V2's three, CLIP's two, I3D's one, VGGish's
    # four, "embedding" shared with CLIP).
    pooling = found.pop(("extract", "pooling"))
    assert set(pooling.choices) == set(get_args(T.Pooling)) == {
        "fc_norm", "mean", "stats", "embedding", "token", "pool", "embedding_prerelu", "postprocessed",
        "postprocessed_prerelu"}
    # Every option with choices is listed (a new one must be added above) ...
    assert sorted(found) == sorted(EXPECTED)
    for key, action in found.items():
        # ... and offers exactly the alias's values, in its order.
        assert tuple(action.choices) == get_args(EXPECTED[key]), key


def test_the_values_worked_out_by_hand() -> None:
    # Nested Literals flatten: "auto" followed by the three layouts / dtype names.
    assert get_args(T.LayoutOrAuto) == ("auto", "flat", "fed-wsvad", "per-crop")
    assert get_args(T.DTypeOrAuto) == ("auto", "fp32", "bf16", "fp16")
    assert get_args(T.LabelFormatOrAuto) == ("auto", "canonical", "pickle", "npy-dir", "ucf", "xd")


def test_old_names_are_the_same_aliases() -> None:
    from vadfeat.backbones.clip.model import ClipFeature
    from vadfeat.backbones.frames import FrameReduce
    from vadfeat.backbones.videomae.compress import QUANTIZE_MODES
    from vadfeat.backbones.videomae.model import POOLINGS
    from vadfeat.dataset.export import Dataset as ExportDataset
    from vadfeat.dataset.lists import Dataset as ListDataset
    from vadfeat.io.video import OnCorrupt
    from vadfeat.pipeline import presets
    from vadfeat.store.reader import LayoutOrAuto
    from vadfeat.store.sinks.npy import LAYOUTS

    assert presets.Tail is T.Tail and presets.Scale is T.Scale and presets.NumCrops is T.NumCrops
    assert OnCorrupt is T.OnCorrupt and LayoutOrAuto is T.LayoutOrAuto
    assert ExportDataset is ListDataset is T.Dataset
    assert get_args(T.Layout) == LAYOUTS and get_args(T.VideoMAEPooling) == POOLINGS
    assert QUANTIZE_MODES == ("int8",)
    assert presets.Pooling is T.Pooling and presets.FrameReduce is FrameReduce is T.FrameReduce
    assert ClipFeature is T.ClipFeature


@pytest.mark.parametrize("pattern", [r"^\w+ = Literal\[", r"^_?[A-Z_]+ = \(\"fail\", \"skip\"\)",
                                     r"\{\"fp(16|32)\": torch\.float"])
def test_no_module_redeclares_them(pattern: str) -> None:
    src = Path(vadfeat.__file__).parent
    hits = [f"{p.relative_to(src)}:{n}" for p in sorted(src.rglob("*.py")) if p.name != "_types.py"
            for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(pattern, line)]
    # The only alias left elsewhere names result kinds, not option values.
    allowed = {"dataset/export.py", "dataset/labels.py"} if pattern.startswith(r"^\w+") else set()
    assert {h.split(":")[0] for h in hits} <= allowed, hits
