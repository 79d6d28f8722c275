"""CLIP's image encoder as a registered backbone (Radford et al., "Learning Transferable Visual
Models From Natural Language Supervision", ICML 2021; code: openai/CLIP ``clip/model.py``).

Frame-level: the ViT maps frames ``[B, 3, 224, 224]`` to ``[B, D]``; the pipeline
feeds it snippets ``[N, 3, T, 224, 224]`` through
:class:`~vadfeat.backbones.frames.SnippetOfFrames`, which reduces the ``T`` frame
features per snippet (``frame_reduce``: ``mean`` or ``middle``).  Features:
``embedding`` (``ln_post(cls) @ proj``, ``D`` = 512 for B/16 and B/32, 768 for L/14:
what VadCLIP and its successors train on) and ``token`` (``ln_post(cls)`` before the
projection, ``D`` = width).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vadfeat.backbones._registry import Backbone, FeatureHead, PretrainedCfg, Sniffed, register_backbone
from vadfeat.backbones.clip.presets import PRESETS
from vadfeat.backbones.clip.spec import CLIP_ARCHS, CLIP_FORMATS, ClipVisionSpec
from vadfeat.backbones.streams import VideoFrames
from vadfeat.errors import CheckpointError

if TYPE_CHECKING:
    import torch

# The network, its checkpoint reader and torch are imported in the methods that run or read
# a model: registering the backbone (`vadfeat --help`, `vadfeat models`) needs only the sizes.

log = logging.getLogger(__name__)

_OPENAI = "https://openaipublic.azureedge.net/clip/models"

# sha256 as published: OpenAI's download URLs embed the file's sha256, which
# clip.load() verifies (openai/CLIP clip/clip.py, _MODELS and _download).
_RELEASES = {
    "vit_b_32": ("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt"),
    "vit_b_16": ("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt"),
    "vit_l_14": ("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt"),
    "vit_l_14_336": ("3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
                     "ViT-L-14-336px.pt"),
}


# The released sizes, plus a test/demo size with no released weights (runs in seconds on a CPU).
ARCHS: dict[str, ClipVisionSpec] = {
    **CLIP_ARCHS,
    "vit_tiny_16": ClipVisionSpec("vit_tiny_16", 224, 16, 64, 2, 1, 32),
}


@dataclass(frozen=True)
class ClipCheckpointInfo:
    """What the CLIP loader found; recorded in every output's sidecar (no tensors)."""

    path: str
    format: str
    sha256: str
    spec: ClipVisionSpec
    num_params: int
    notes: tuple[str, ...] = field(default=())

    @property
    def model_name(self) -> str:
        return f"clip/{self.spec.name}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        d["notes"] = list(self.notes)
        d["model_name"] = self.model_name
        return d


def _params(spec: ClipVisionSpec) -> int:
    w, p, n = spec.width, spec.patch_size, spec.num_tokens
    block = 4 * w + (3 * w * w + 3 * w) + (w * w + w) + (4 * w * w + 4 * w) + (4 * w * w + w)
    return 3 * p * p * w + w + n * w + 2 * w + spec.layers * block + 2 * w + w * spec.output_dim


def init_random(model: torch.nn.Module, *, seed: int = 0) -> None:
    """Deterministic random weights: normal(0, 0.02) matrices and embeddings, unit LayerNorms."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("weight") and param.ndim == 1:  # LayerNorm scale
                param.fill_(1.0)
            elif name.endswith("bias"):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
            else:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)


class ClipBackbone(Backbone):
    name = "clip"
    title = "CLIP ViT image encoder (Radford et al., ICML 2021), frame-level, 224 px"
    stream = VideoFrames()
    default_preset = "clip-vadclip"
    presets = PRESETS
    features = (
        FeatureHead("embedding", "projected image embedding ln_post(cls) @ proj, [output_dim]",
                    lambda s: (s.output_dim,)),
        FeatureHead("token", "class token after ln_post, before the projection, [width]",
                    lambda s: (s.width,)),
    )
    checkpoint_formats = CLIP_FORMATS

    def architectures(self) -> Mapping[str, ClipVisionSpec]:
        return dict(ARCHS)

    def dry_run_sizes(self) -> tuple[str, ...]:
        return ("vit_tiny_16",)

    def aliases(self) -> Mapping[str, str]:
        # OpenAI's own names (clip.available_models()) and open_clip's.
        return {"ViT-B/32": "vit_b_32", "ViT-B/16": "vit_b_16", "ViT-L/14": "vit_l_14",
                "ViT-L/14@336px": "vit_l_14_336", "ViT-B-32": "vit_b_32", "ViT-B-16": "vit_b_16",
                "ViT-L-14": "vit_l_14", "ViT-L-14-336": "vit_l_14_336"}

    def pretrained(self) -> Sequence[PretrainedCfg]:
        return tuple(
            PretrainedCfg("openai", arch, f"{_OPENAI}/{sha}/{file}", file, "clip-vadclip", sha256=sha,
                          notes="OpenAI release: a TorchScript archive, fp16 weights")
            for arch, (sha, file) in _RELEASES.items()
        )

    def describe(self, spec: Any) -> dict[str, Any]:
        return {"width": spec.width, "depth": spec.layers, "heads": spec.heads,
                "patch": spec.patch_size, "input": f"1x{spec.image_size}", "params": _params(spec)}

    def sniff(self, path: Path, keys: Collection[str] | None, config: Mapping[str, Any] | None) -> Sniffed:
        if isinstance(config, Mapping) and config.get("model_type") in ("clip", "clip_vision_model"):
            return Sniffed.yes(f"config.json model_type {config['model_type']!r}")
        if keys is not None:
            from vadfeat.backbones.clip.checkpoints import detect_clip, why_not_clip

            return Sniffed.yes("CLIP image-encoder key names") if detect_clip(keys) else Sniffed.no(
                why_not_clip(keys))
        if path.is_file():
            import zipfile

            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    names = zf.namelist()
                if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
                    return Sniffed.yes("a TorchScript archive (OpenAI's release format)")
        return Sniffed.no("key names unreadable and not a TorchScript archive")

    def _read(self, source: str | Path) -> tuple[dict[str, torch.Tensor], ClipCheckpointInfo]:
        from vadfeat.backbones.clip.checkpoints import load_clip_checkpoint

        ck = load_clip_checkpoint(source)
        spec = next((a for a in ARCHS.values() if _dims(a) == _dims(ck.spec) and a.heads == ck.spec.heads),
                    ck.spec)  # a registered size gets its name (the test size too)
        info = ClipCheckpointInfo(path=str(ck.path), format=ck.format, sha256=ck.sha256, spec=spec,
                                  num_params=sum(t.numel() for t in ck.state_dict.values()),
                                  notes=tuple(ck.notes))
        return ck.state_dict, info

    def read_checkpoint(self, source: str | Path) -> tuple[dict[str, Any], Any]:
        return self._read(source)

    def default_arch(self) -> str | None:
        return "vit_b_16"

    def check_checkpoint_arch(self, arch: str | None, info: Any) -> None:
        _check_arch(arch, info)

    # ----------------------------------------------------------------- load_model's hooks
    # (the frame stream's wrapper, SnippetOfFrames, is the base class's)
    def build_network(self, spec: Any, feature: str) -> Any:
        from vadfeat.backbones.clip.model import ClipVisual

        return ClipVisual(spec, feature=feature)

    def init_random(self, net: Any, *, seed: int) -> None:
        init_random(net, seed=seed)


def _dims(spec: ClipVisionSpec) -> tuple[int, ...]:
    return (spec.image_size, spec.patch_size, spec.width, spec.layers, spec.output_dim)


def _check_arch(arch: str | None, info: ClipCheckpointInfo) -> None:
    spec = info.spec
    if arch is None or _dims(ARCHS[arch]) == _dims(spec):
        return
    want = ARCHS[arch]
    raise CheckpointError(
        f"checkpoint {info.path} holds a CLIP ViT of width {spec.width}, {spec.layers} layers, "
        f"patch {spec.patch_size}, {spec.image_size} px, but the model asked for is clip/{arch} "
        f"(width {want.width}, {want.layers} layers, patch {want.patch_size}, "
        f"{want.image_size} px); drop --model to use the checkpoint's size"
    )


BACKBONE = register_backbone(ClipBackbone())
