"""The backbone base class: one load_model template with family hooks, capabilities as data
(no code tests a backbone's name), and a declared stream that need not be video.

A test-only audio backbone (16 kHz samples -> [N, 8]) shows that the registry, the template
and the settings checks take a stream that is not images, without a special case, and that
settings which only act on video frames (crops, the JPEG round trip) are refused for it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vadfeat.backbones import _registry
from vadfeat.backbones._registry import (
    Backbone,
    FeatureHead,
    Sniffed,
    default_backbone,
    detect_backbone,
    list_backbones,
    resolve_model,
)
from vadfeat.backbones.loading import load_model
from vadfeat.backbones.recipes import Preset
from vadfeat.backbones.streams import AudioSamples, VideoClips, VideoFrames
from vadfeat.errors import ConfigError
from vadfeat.pipeline.presets import DEFAULT_PRESET, PRESETS, get_preset
from vadfeat.pipeline.validate import check_model_geometry

SRC = Path(__file__).resolve().parents[1] / "src" / "vadfeat"


@dataclass(frozen=True)
class ToyAudioSpec:
    """An audio architecture: a name and its fields, no patch or image size."""

    name: str
    samples: int = 160  # 10 ms at 16 kHz: the examples are short, so the test runs fast
    dim: int = 8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ToyAudioNet(nn.Module):
    def __init__(self, spec: ToyAudioSpec) -> None:
        super().__init__()
        self.proj = nn.Linear(spec.samples, spec.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, samples] -> [N, dim]
        return self.proj(x)


class ToyAudioBackbone(Backbone):
    name = "toyaudio"
    title = "test-only audio backbone"
    stream = AudioSamples(rate=16000, example_seconds=0.01)
    default_preset = "toyaudio-plain"
    presets = MappingProxyType({"toyaudio-plain": Preset(name="toyaudio-plain", clip_len=1,
                                                          pooling="embedding")})
    features = (FeatureHead("embedding", "[dim]", lambda s: (s.dim,)),)

    def architectures(self) -> Mapping[str, ToyAudioSpec]:
        return {"tiny": ToyAudioSpec("tiny")}

    def default_arch(self) -> str | None:
        return "tiny"

    def sniff(self, path: Path, keys: Collection[str] | None, config: Mapping[str, Any] | None) -> Sniffed:
        if keys is not None and "proj.weight" in keys and len(keys) == 2:
            return Sniffed.yes("proj.weight and proj.bias only")
        return Sniffed.no("not proj.weight + proj.bias")

    def read_checkpoint(self, source: str | Path) -> tuple[dict[str, Any], Any]:
        from safetensors.torch import load_file

        state = load_file(str(source))
        spec = ToyAudioSpec("tiny", samples=state["proj.weight"].shape[1], dim=state["proj.weight"].shape[0])

        @dataclass(frozen=True)
        class Info:
            path: str
            spec: ToyAudioSpec
            sha256: str = "0" * 64
            format: str = "toy"
            model_name: str = "toyaudio/tiny"

            def to_dict(self) -> dict[str, Any]:
                return {"path": self.path, "format": self.format, "sha256": self.sha256}

        return state, Info(str(source), spec)

    # the hooks of Backbone.load_model
    def build_network(self, spec: Any, feature: str) -> Any:
        return ToyAudioNet(spec)

    def init_random(self, net: Any, *, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> ToyAudioBackbone:
    bb = ToyAudioBackbone()
    list_backbones()  # the built-in ones first, as a run finds them
    monkeypatch.setitem(_registry._BACKBONES, bb.name, bb)  # removed again after the test
    return bb


def test_an_audio_stream_is_registered_resolved_and_loaded_by_the_template(toy: ToyAudioBackbone,
                                                                          tmp_path: Path) -> None:
    assert toy.stream == AudioSamples(16000, 0.01) and not toy.stream.image
    assert toy.input_kind == "clip"  # derived: one model input per audio example
    assert list_backbones()[-1] is toy  # a plug-in comes after the built-in backbones
    resolved = resolve_model(None, model="toyaudio/tiny")
    assert (resolved.backbone, resolved.name, resolved.spec) == (toy, "toyaudio/tiny", ToyAudioSpec("tiny"))

    model = load_model(model="toyaudio/tiny", seed=5)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert (model.spec, model.feature_shape, model.checkpoint, model.random_weights, model.quantize,
            model.pooling, model.backbone) == (ToyAudioSpec("tiny"), (8,), None, True, None, "embedding",
                                               "toyaudio")
    x = torch.linspace(-1, 1, 3 * 160).reshape(3, 160)
    with torch.no_grad():
        random_out = model(x)
    assert random_out.shape == (3, 8)

    # The same weights through a file: detected by key names, loaded strictly, same numbers.
    path = tmp_path / "toy.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    assert detect_backbone(path) is toy
    loaded = load_model(path)
    assert (loaded.backbone, loaded.random_weights, loaded.checkpoint.path) == ("toyaudio", False, str(path))
    with torch.no_grad():
        assert torch.equal(loaded(x), random_out)  # exact: the same weights, the same op

    # Strict: a key the network does not have is refused, not ignored.
    save_file({**{k: v.contiguous() for k, v in model.state_dict().items()}, "extra": torch.zeros(1)},
              str(tmp_path / "extra.safetensors"))
    with pytest.raises(RuntimeError, match="extra"):
        toy.load_model(tmp_path / "extra.safetensors", arch=None, feature="embedding", device="cpu")

    with pytest.raises(ConfigError, match=r"quantize='int8' is implemented for videomae_v2 only, "
                                          r"not toyaudio"):
        load_model(model="toyaudio/tiny", quantize="int8")


def test_video_only_settings_refused_for_an_audio_backbone(toy: ToyAudioBackbone) -> None:
    spec = toy.architectures()["tiny"]
    plain = get_preset("toyaudio-plain")  # the plug-in's preset is registered with it
    check_model_geometry(plain, spec, backbone=toy)  # no patch or image size needed
    with pytest.raises(ConfigError, match=r"crops=10 does not fit toyaudio/tiny: it consumes audio samples "
                                          r"at 16000 Hz"):
        check_model_geometry(plain.replace(crops=10), spec, backbone=toy)
    with pytest.raises(ConfigError, match=r"jpeg_roundtrip='ffmpeg' does not fit toyaudio/tiny"):
        check_model_geometry(plain.replace(jpeg_roundtrip="ffmpeg"), spec, backbone=toy)
    with pytest.raises(ConfigError, match="no feature 'fc_norm'"):
        check_model_geometry(plain.replace(pooling="fc_norm"), spec, backbone=toy)


def test_plugin_presets_join_the_registry_and_names_must_not_clash(toy: ToyAudioBackbone,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert "toyaudio-plain" in PRESETS and list(PRESETS)[-1] == "toyaudio-plain"
    monkeypatch.setattr(ToyAudioBackbone, "presets", {"videomae-v2": Preset(name="videomae-v2", clip_len=2)})
    with pytest.raises(ValueError, match="preset 'videomae-v2' defined by both videomae_v2 and toyaudio"):
        get_preset("videomae-v2")


def test_a_plugin_that_sets_input_kind_gets_the_matching_stream() -> None:
    class OldFramePlugin(Backbone):
        name = "oldframes"
        input_kind = "frame"

    class OldClipPlugin(Backbone):
        name = "oldclips"

    assert OldFramePlugin.stream == VideoFrames() and OldFramePlugin.input_kind == "frame"
    assert OldClipPlugin.stream == VideoClips() and OldClipPlugin.input_kind == "clip"
    with pytest.raises(ValueError, match="rate must be a positive integer"):
        AudioSamples(rate=0)


def test_the_default_is_a_capability_not_a_name() -> None:
    bb = default_backbone()
    assert (bb.name, bb.default_preset) == ("videomae_v2", DEFAULT_PRESET)
    assert [b.name for b in list_backbones() if b.default] == ["videomae_v2"]
    assert [b.name for b in list_backbones() if b.supports_quantize] == ["videomae_v2"]
    assert [b.name for b in list_backbones() if b.records_bare_names] == ["videomae_v2"]


def test_no_code_outside_a_family_tests_a_backbone_by_name() -> None:
    """``bb.name == "videomae_v2"`` (or a get_backbone of a literal name) outside the family's own
    package was how the default, quantization and names were special-cased; they are attributes now."""
    names = "|".join(b.name for b in list_backbones())
    pattern = re.compile(rf"""\.name\s*[!=]=\s*["']({names})["']|get_backbone\(\s*["']""")
    hits = []
    for path in sorted(SRC.rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert hits == []


def test_compress_refuses_a_checkpoint_of_a_backbone_that_cannot_be_compressed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``vadfeat compress`` on a CLIP file names the backbone and the ones it works for (exit 2),
    instead of reading it as a VideoMAE V2 file."""
    from vadfeat.cli import main

    model = load_model(model="clip/vit_tiny_16")
    path = tmp_path / "clip.safetensors"
    save_file({k.removeprefix("frame_model."): v.contiguous() for k, v in model.state_dict().items()},
              str(path))
    assert detect_backbone(path).name == "clip"
    assert main(["compress", str(path), "-o", str(tmp_path / "out.safetensors"), "--prune", "0.1"]) == 2
    err = caplog.text  # the CLI logs its one-line error
    assert ("clip.safetensors is a clip checkpoint; compress is implemented for videomae_v2 "
            "checkpoints only") in err
    assert not (tmp_path / "out.safetensors").exists()


def test_a_family_declares_heads_its_presets_use_before_its_backbone_registers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A head outside ``_types.Pooling`` (VGGish's ``postprocessed``) in a preset built while the
    family's backbone module is still importing: refused until the family declares it."""
    from vadfeat.backbones import recipes

    monkeypatch.setattr(recipes, "_DECLARED_HEADS", set())  # nothing leaks to other tests
    with pytest.raises(ConfigError, match="pooling must be one of"):
        Preset(name="toy-post", pooling="toy_postprocessed")
    recipes.declare_heads(["toy_postprocessed"])
    assert Preset(name="toy-post", pooling="toy_postprocessed").pooling == "toy_postprocessed"
