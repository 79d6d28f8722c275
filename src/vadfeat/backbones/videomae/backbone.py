"""VideoMAE V2 as a registered backbone (Wang et al., "VideoMAE V2: Scaling Video Masked
Autoencoders with Dual Masking", CVPR 2023; code: OpenGVLab/VideoMAEv2).

Clip-level: ``[N, 3, T, H, W]`` clips of ``T`` frames (whole tubelets of 2) ->
``[N, D]`` (``fc_norm``, ``mean``) or ``[N, 3, D]`` (``stats``).  Architecture names
are the official code's (``vit_giant_patch14_224`` ...), which outputs recorded before
backbones existed; short aliases ``vit_g_14`` etc. are accepted too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from vadfeat.backbones._registry import Backbone, FeatureHead, PretrainedCfg, Sniffed, register_backbone
from vadfeat.backbones.videomae.spec import ModelSpec, list_models

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
    input_kind = "clip"
    default_preset = "videomae-v2"
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

    def read_checkpoint(self, source: str | Path) -> tuple[dict[str, Any], Any]:
        from vadfeat.backbones.videomae.checkpoints import load_checkpoint

        return load_checkpoint(source)

    def inspect_checkpoint(self, source: str | Path, *, num_heads: int | None = None) -> Any:
        from vadfeat.backbones.videomae.checkpoints import load_checkpoint

        return load_checkpoint(source, num_heads=num_heads)[1]  # .pth tensors memory-mapped

    def resolve(self, checkpoint: str | Path | None, *, arch: str | None,
                num_heads: int | None = None) -> tuple[Any, str | None, str | None]:
        from vadfeat.backbones.videomae.checkpoints import resolve_spec

        if checkpoint is None:
            return resolve_spec(arch, None), None, None
        info = self.inspect_checkpoint(checkpoint, num_heads=num_heads)
        return resolve_spec(arch, info), info.sha256, (info.compression or {}).get("quantize")

    def load_model(self, checkpoint: str | Path | None, *, arch: str | None, feature: str,
                   device: Any, dtype: Any = None, num_heads: int | None = None, seed: int = 0,
                   quantize: str | None = None) -> Any:
        from vadfeat.backbones.videomae.loading import load_videomae

        return load_videomae(checkpoint, model=arch, pooling=feature, device=device, dtype=dtype,
                             num_heads=num_heads, seed=seed, quantize=quantize)


BACKBONE = register_backbone(VideoMAEV2Backbone())
