"""VGGish as one registered backbone, ``vggish``: AudioSet's 128-d audio embedding, the audio
stream of XD-Violence and the A/V methods trained on it.

It consumes :class:`~vadfeat.backbones.streams.AudioSamples` (16 kHz mono, 0.96 s examples):
the pipeline turns each example into a log-mel ``[1, 96, 64]`` (:mod:`.melspec`) and the model
maps ``[N, 1, 96, 64]`` to ``[N, 128]``.  One size, ``vggish/vggish``; heads
:data:`~vadfeat.backbones.vggish.spec.VGGISH_HEADS` (``embedding``, the default, keeps
torchvggish's final ReLU: :mod:`.model` says why); the ``postprocessed`` heads need the
AudioSet PCA file (``--pca FILE``), which the pipeline loads into the model
(:meth:`VGGishFeatures.set_pca`).  Presets and their grids: :mod:`.presets`.

Registering it (``vadfeat --help``, ``vadfeat models``) imports no torch: the network and the
checkpoint reader load in the hooks that build or read a model.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vadfeat.backbones._registry import Backbone, FeatureHead, PretrainedCfg, Sniffed, register_backbone
from vadfeat.backbones.streams import AudioSamples
from vadfeat.backbones.vggish.presets import AUDIO_GRIDS, PRESETS, AudioGridRule
from vadfeat.backbones.vggish.spec import (
    EMBEDDING_SIZE,
    SAMPLE_RATE,
    VGGISH_FORMATS,
    VGGISH_SHAPES,
    sniff_vggish,
)
from vadfeat.errors import CheckpointError, ConfigError

#: Parameters of the network (:data:`~vadfeat.backbones.vggish.spec.VGGISH_SHAPES`).
NUM_PARAMS = sum(math.prod(shape) for shape in VGGISH_SHAPES.values())


@dataclass(frozen=True)
class VGGishSpec:
    """VGGish's one architecture: a name and the fields sidecars record (no patch or image
    size: it is not an image stream)."""

    name: str = "vggish"
    feature_dim: int = EMBEDDING_SIZE
    sample_rate: int = SAMPLE_RATE
    example_seconds: float = 0.96

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "feature_dim": self.feature_dim, "sample_rate": self.sample_rate,
                "example_seconds": self.example_seconds, "input": "log-mel [1, 96, 64]"}


SPEC = VGGishSpec()


@dataclass(frozen=True)
class VGGishCheckpointInfo:
    """What the loader found; recorded in every output's sidecar (no tensors)."""

    path: str
    format: str
    sha256: str
    spec: VGGishSpec = SPEC
    num_params: int = NUM_PARAMS
    notes: tuple[str, ...] = field(default=())

    @property
    def model_name(self) -> str:
        return f"vggish/{self.spec.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "sha256": self.sha256,
                "spec": self.spec.to_dict(), "num_params": self.num_params, "notes": list(self.notes),
                "model_name": self.model_name}


def _head(name: str, description: str) -> FeatureHead:
    return FeatureHead(name, description, lambda s: (s.feature_dim,))


class VGGishBackbone(Backbone):
    name = "vggish"
    title = "VGGish (Hershey et al., ICASSP 2017): AudioSet audio embedding, 128-d per 0.96 s"
    stream = AudioSamples(rate=SAMPLE_RATE, example_seconds=0.96)
    default_preset = "vggish"
    presets = PRESETS
    features = (
        _head("embedding", "fc2 with the final ReLU (torchvggish's output; XD-Violence's era)"),
        _head("embedding_prerelu", "fc2 without the final ReLU (tensorflow/models since 2020-08)"),
        _head("postprocessed", "PCA, whitening, 8-bit quantisation of embedding (--pca FILE)"),
        _head("postprocessed_prerelu", "the same of embedding_prerelu (--pca FILE)"),
    )
    checkpoint_formats = VGGISH_FORMATS

    def architectures(self) -> Mapping[str, VGGishSpec]:
        return {SPEC.name: SPEC}

    def default_arch(self) -> str | None:
        return SPEC.name

    def dry_run_sizes(self) -> tuple[str, ...]:
        return (SPEC.name,)

    def pretrained(self) -> Sequence[PretrainedCfg]:
        return (
            PretrainedCfg("audioset", "vggish", "harritaylor/torchvggish releases v0.1: "
                          "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
                          "vggish-10086976.pth", "vggish-10086976.pth", "vggish",
                          notes="torchvggish's conversion of the TensorFlow release; the file name "
                                "carries the first 8 hex digits of its sha256"),
            PretrainedCfg("audioset-tf", "vggish", "tensorflow/models research/audioset/vggish: "
                          "https://storage.googleapis.com/audioset/vggish_model.ckpt",
                          "vggish_model.ckpt", "vggish",
                          notes="dump it to .npz first (vadfeat.backbones.vggish.checkpoints)"),
        )

    def describe(self, spec: Any) -> dict[str, Any]:
        return {"width": spec.feature_dim, "depth": 9, "heads": "-", "patch": "conv",
                "input": "log-mel 96x64", "params": NUM_PARAMS, "stream": self.stream.describe()}

    def sniff(self, path: Path, keys: Collection[str] | None, config: Mapping[str, Any] | None) -> Sniffed:
        ours, why = sniff_vggish(path, keys)
        return Sniffed(ours, why)

    def read_checkpoint(self, source: str | Path) -> tuple[dict[str, Any], Any]:
        from vadfeat.backbones.vggish.checkpoints import load_vggish_checkpoint

        ck = load_vggish_checkpoint(source)
        info = VGGishCheckpointInfo(path=str(Path(source)), format=ck.format, sha256=ck.sha256,
                                    notes=tuple(ck.notes))
        return ck.state_dict, info

    def check_checkpoint_arch(self, arch: str | None, info: Any) -> None:
        if arch is not None and arch != info.spec.name:
            raise CheckpointError(f"checkpoint {info.path} holds vggish/{info.spec.name}, not vggish/{arch}")

    # ----------------------------------------------------------------- load_model's hooks
    def build_network(self, spec: Any, feature: str) -> Any:
        from vadfeat.backbones.vggish.model import VGGishFeatures

        return VGGishFeatures(head=feature)  # type: ignore[arg-type]

    def init_random(self, net: Any, *, seed: int) -> None:
        from vadfeat.backbones.vggish.model import init_random

        init_random(net, seed=seed)

    def describe_input(self, preset: Any) -> str | None:
        rule = AUDIO_GRIDS.get(preset.name)
        if rule is None:
            return None
        if rule.kind == "plain":
            return "audio at 16 kHz, back-to-back 0.96 s log-mel examples (the reference's grid)"
        span = preset.clip_len * preset.frame_interval
        every = f" every {preset.stride} frames" if preset.stride not in (None, span) else ""
        return (f"audio at 16 kHz, one 0.96 s log-mel window ending at each {preset.clip_len}-frame "
                f"snippet's end{every} (first {rule.first}, tail {rule.tail})")

    # ----------------------------------------------------------------- the audio pipeline's hooks
    def grid_rule(self, preset: str) -> AudioGridRule:
        """Where preset ``preset``'s examples lie (:data:`.presets.AUDIO_GRIDS`); a
        :class:`ConfigError` for a preset without a grid (another family's)."""
        try:
            return AUDIO_GRIDS[preset]
        except KeyError:
            raise ConfigError(f"preset {preset!r} has no audio grid; VGGish runs with "
                              f"{' or '.join(AUDIO_GRIDS)} (or --grid-from DIR)") from None

    def plain_framer(self) -> Any:
        """Streaming examples on the reference's grid (:class:`.melspec.ExampleFramer`)."""
        from vadfeat.backbones.vggish.melspec import ExampleFramer

        return ExampleFramer()

    def window_framer(self, starts: Iterable[int]) -> Any:
        """Streaming examples of windows at 16 kHz sample ``starts`` (:class:`.melspec.WindowFramer`)."""
        from vadfeat.backbones.vggish.melspec import WindowFramer

        return WindowFramer(starts)

    def check_head_files(self, feature: str, pca: str | None) -> None:
        """The ``postprocessed`` heads need ``--pca FILE``; the raw ones refuse it (ConfigError)."""
        if feature.startswith("postprocessed") and pca is None:
            raise ConfigError(f"the {feature!r} head needs the AudioSet PCA parameters: --pca FILE "
                              "(torchvggish's vggish_pca_params-970ea276.pth or the TensorFlow "
                              "release's vggish_pca_params.npz)")
        if pca is not None and not feature.startswith("postprocessed"):
            raise ConfigError(f"--pca {pca} is for the postprocessed heads; the {feature!r} head does "
                              "not use it (--pooling postprocessed)")
        if pca is not None and not Path(pca).expanduser().is_file():
            raise ConfigError(f"--pca {pca}: no such file")

    def attach_pca(self, model: Any, pca: str | Path, quantize: str = "floor") -> None:
        """Load the PCA file into ``model`` (:func:`.pca.load_pca`; :class:`CheckpointError`
        naming the file)."""
        from vadfeat.backbones.vggish.pca import load_pca

        model.set_pca(load_pca(Path(pca).expanduser()))
        model.quantize = quantize


BACKBONE = register_backbone(VGGishBackbone())

__all__ = ["BACKBONE", "NUM_PARAMS", "SPEC", "VGGishBackbone", "VGGishCheckpointInfo", "VGGishSpec"]
