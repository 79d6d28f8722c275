"""VideoMAE V2 as a registered backbone (Wang et al., "VideoMAE V2: Scaling Video Masked
Autoencoders with Dual Masking", CVPR 2023; code: OpenGVLab/VideoMAEv2).

Clip-level: ``[N, 3, T, H, W]`` clips of ``T`` frames (whole tubelets of 2) ->
``[N, D]`` (``fc_norm``, ``mean``) or ``[N, 3, D]`` (``stats``).  Architecture names
are the official code's (``vit_giant_patch14_224`` ...), which outputs recorded before
backbones existed; short aliases ``vit_g_14`` etc. are accepted too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from vadfeat.backbones._registry import Backbone, FeatureHead, PretrainedCfg, Sniffed, register_backbone
from vadfeat.backbones.streams import VideoClips
from vadfeat.backbones.videomae.presets import PRESETS
from vadfeat.backbones.videomae.spec import ModelSpec, list_models
from vadfeat.errors import CheckpointError

log = logging.getLogger(__name__)

_MODEL_ZOO = "https://github.com/OpenGVLab/VideoMAEv2/blob/master/docs/MODEL_ZOO.md"

# Short names in the style of other backbones (clip/vit_b_16): family, size letter, patch.
_SHORT = {
    "vit_s_16": "vit_small_patch16_224",
    "vit_b_16": "vit_base_patch16_224",
    "vit_l_16": "vit_large_patch16_224",
    "vit_h_16": "vit_huge_patch16_224",
    "vit_g_14": "vit_giant_patch14_224",
    "vit_tiny_16": "vit_tiny_patch16_224",
}

_KEY_MARKERS = ("patch_embed.proj.weight", "embeddings.patch_embeddings.projection.weight")


class VideoMAEV2Backbone(Backbone):
    name = "videomae_v2"
    title = "VideoMAE V2 ViT (Wang et al., CVPR 2023), clip-level, 16x224 tubelets of 2 frames"
    stream = VideoClips()
    default_preset = "videomae-v2"
    presets = PRESETS
    # The first backbone vadfeat had: the default, and its outputs record the official code's
    # bare names (vit_giant_patch14_224), as they did before backbones existed.
    default = True
    records_bare_names = True
    supports_quantize = True
    hub_prefixes = ("hf://",)  # OpenGVLab/VideoMAEv2-* repositories
    reads_unsafe_pickle = True
    can_compress = True  # vadfeat compress: the legacy Fed_WSVAD pruning + int8 step
    features = (
        FeatureHead("fc_norm", "official feature: fc_norm(mean of last-block tokens), [D]",
                    lambda s: (s.embed_dim,)),
        FeatureHead("mean", "mean of last-block tokens before fc_norm, [D]", lambda s: (s.embed_dim,)),
        FeatureHead("stats", "[mean, std (n-1), max] of last-block tokens before fc_norm, [3, D] "
                    "(the legacy Fed_WSVAD feature)", lambda s: (3, s.embed_dim)),
    )
    checkpoint_formats = (
        "model-zoo .pth (state dict under 'module'/'model', fp16)",
        "pre-training .pth (encoder.* + decoder.*, no fc_norm)",
        "Hugging Face hub folder or hf://OpenGVLab/VideoMAEv2-* (config.json model_config + safetensors)",
        "transformers VideoMAEModel / VideoMAEForVideoClassification folder",
        "canonical .safetensors (vadfeat checkpoint convert) and compressed int8 .safetensors",
    )

    def architectures(self) -> Mapping[str, ModelSpec]:
        return {s.name: s for s in list_models()}

    def dry_run_sizes(self) -> tuple[str, ...]:
        return ("vit_tiny_patch16_224",)

    def aliases(self) -> Mapping[str, str]:
        return dict(_SHORT)

    def pretrained(self) -> Sequence[PretrainedCfg]:
        return (
            PretrainedCfg("k710_ft", "vit_giant_patch14_224", _MODEL_ZOO,
                          "vit_g_hybrid_pt_1200e_k710_ft.pth", "videomae-v2",
                          notes="ViT-g/14 fine-tuned on Kinetics-710 (about 2 GB, fp16); the legacy "
                                "Fed_WSVAD features use it with --preset fed-wsvad"),
            PretrainedCfg("k710_dl_from_giant", "vit_base_patch16_224", _MODEL_ZOO,
                          "vit_b_k710_dl_from_giant.pth", "videomae-v2",
                          notes="ViT-B/16 distilled from the K710 ViT-g (174 MB)"),
            PretrainedCfg("k710_dl_from_giant", "vit_small_patch16_224", _MODEL_ZOO,
                          "vit_s_k710_dl_from_giant.pth", "videomae-v2",
                          notes="ViT-S/16 distilled from the K710 ViT-g (44 MB)"),
        )

    def describe(self, spec: Any) -> dict[str, Any]:
        return {"width": spec.embed_dim, "depth": spec.depth, "heads": spec.num_heads,
                "patch": spec.patch_size, "input": f"{spec.num_frames}x{spec.img_size}",
                "params": spec.num_params}

    def sniff(self, path: Path, keys: Collection[str] | None, config: Mapping[str, Any] | None) -> Sniffed:
        if isinstance(config, Mapping) and (config.get("model_type") == "videomae"
                                            or "model_config" in config):
            return Sniffed.yes("config.json of a VideoMAE model")
        if config is not None and not isinstance(config, Mapping):
            # A damaged config.json: the VideoMAE V2 loader names what is wrong.
            return Sniffed.yes("config.json that is not a JSON object")
        if keys is None:
            return Sniffed.no("key names unreadable without unpickling")
        # Any wrapper prefix (FeatureModel's encoder., module., model. ...) ends in these names.
        if any(k.endswith(_KEY_MARKERS) for k in keys):
            return Sniffed.yes("a patch embedding key")
        why = f"no {' or '.join(_KEY_MARKERS)} key"
        if isinstance(config, Mapping):
            why += f", config.json model_type {config.get('model_type')!r}, no model_config"
        return Sniffed.no(why)

    def read_checkpoint(self, source: str | Path, *, num_heads: int | None = None,
                        allow_pickle: bool = False) -> tuple[dict[str, Any], Any]:
        from vadfeat.backbones.videomae.checkpoints import load_checkpoint

        return load_checkpoint(source, num_heads=num_heads, allow_pickle=allow_pickle)

    def inspect_checkpoint(self, source: str | Path, *, num_heads: int | None = None,
                           allow_pickle: bool = False) -> Any:
        from vadfeat.backbones.videomae.checkpoints import load_checkpoint

        # .pth tensors memory-mapped
        return load_checkpoint(source, num_heads=num_heads, allow_pickle=allow_pickle)[1]

    def resolve(self, checkpoint: str | Path | None, *, arch: str | None,
                num_heads: int | None = None) -> tuple[Any, str | None, str | None]:
        from vadfeat.backbones.videomae.checkpoints import resolve_spec

        if checkpoint is None:
            return resolve_spec(arch, None), None, None
        info = self.inspect_checkpoint(checkpoint, num_heads=num_heads)
        return resolve_spec(arch, info), info.sha256, (info.compression or {}).get("quantize")

    def peek_geometry(self, checkpoint: str | Path) -> tuple[int, int] | None:
        from vadfeat.backbones.videomae.geometry import peek_geometry

        return peek_geometry(checkpoint)

    def inspect_rows(self, info: Any, spec_text: str) -> list[tuple[str, str]]:
        s = info.spec
        ignored = ", ".join(info.ignored_keys[:10]) + (" ..." if len(info.ignored_keys) > 10 else "")
        return [
            ("format", f"{info.format}: {info.detail}"),
            ("model", f"{info.model_name} (width {s.embed_dim}, depth {s.depth}, heads {s.num_heads}, "
                      f"MLP {s.mlp_hidden}, patch {s.patch_size}, tubelet {s.tubelet_size}, "
                      f"{s.num_frames}x{s.img_size}px)"),
            ("dtype", str(info.dtype)),
            ("parameters", f"{info.num_params:,}"),
            ("fc_norm", "present" if info.has_fc_norm else "ABSENT (use pooling mean or stats)"),
            ("sha256", str(info.sha256)),
            ("ignored", f"{len(info.ignored_keys)} keys" + (f": {ignored}" if ignored else "")),
            *(("note", str(n)) for n in info.notes),
        ]

    def inspect_json(self, info: Any) -> dict[str, Any]:
        return dict(info.to_dict())

    # ----------------------------------------------------------------- load_model's hooks
    def read_weights(self, checkpoint: str | Path, *, num_heads: int | None = None,
                     allow_pickle: bool = False) -> tuple[Any, Any]:
        return self.read_checkpoint(checkpoint, num_heads=num_heads, allow_pickle=allow_pickle)

    def spec_for(self, arch: str | None, info: Any) -> ModelSpec:
        from vadfeat.backbones.videomae.checkpoints import resolve_spec

        return resolve_spec(arch, info)  # checks --model against the checkpoint

    def check_weights(self, spec: Any, info: Any, feature: str) -> None:
        if info is not None and feature == "fc_norm" and not info.has_fc_norm:
            raise CheckpointError(
                f"{info.path} has no fc_norm weights ({info.detail}): the official fc_norm "
                "feature cannot be computed from it. Use pooling 'mean' or 'stats', which read "
                "the last block's tokens directly."
            )

    def build_network(self, spec: Any, feature: str) -> Any:
        from vadfeat.backbones.videomae.model import VideoMAEv2

        return VideoMAEv2(spec)

    def init_random(self, net: Any, *, seed: int) -> None:
        from vadfeat.backbones.videomae.model import init_random

        init_random(net, seed=seed)

    def map_state(self, state: Any, net: Any, *, feature: str, info: Any) -> dict[str, Any]:
        import torch

        from vadfeat.backbones.videomae.checkpoints import check_keys

        allow = ("fc_norm.weight", "fc_norm.bias") if feature != "fc_norm" else ()
        check_keys(state, net.state_dict(), allow_missing=allow)
        return {k: v.to(torch.float32) for k, v in state.items()}

    def load_weights(self, net: Any, state: Any) -> None:
        # map_state checked every key; fc_norm may be absent (pre-training files) for the
        # features that do not read it.
        net.load_state_dict(dict(state), strict=False)

    def wrap(self, net: Any, *, spec: Any, feature: str, info: Any, random_weights: bool,
             frame_reduce: str = "mean") -> Any:
        from vadfeat.backbones.videomae.model import FeatureModel

        return FeatureModel(net, pooling=feature, random_weights=random_weights, checkpoint=info)

    def finish(self, model: Any, *, quantize: str | None, info: Any, device: Any) -> Any:
        recorded = (info.compression or {}).get("quantize") if info is not None else None
        if quantize is None and recorded is None:
            return model
        import torch

        from vadfeat.backbones.videomae.compress import apply_quantization

        return apply_quantization(model, quantize or recorded, explicit=quantize is not None,
                                  device=torch.device(device))


BACKBONE = register_backbone(VideoMAEV2Backbone())
