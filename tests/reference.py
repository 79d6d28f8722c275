"""Independent reference implementations the tests compare vadfeat against.

Nothing here imports vadfeat's model, transforms or readers: the model side is
``transformers``' VideoMAE (a separate implementation of the same network,
SPEC §2), the pixel side is OpenCV called the way the legacy scripts call it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch


def to_transformers(sd: dict[str, torch.Tensor], depth: int, *, style: str = "5.x",
                    head: int = 0) -> dict[str, torch.Tensor]:
    """Official VideoMAE V2 keys -> transformers' ``VideoMAEForVideoClassification`` keys.

    ``style`` "4.x" names the q/v biases ``q_bias``/``v_bias``, "5.x" ``query.bias``/
    ``value.bias``; ``head`` > 0 adds a zero classifier of that many classes.
    """
    dim = sd["patch_embed.proj.weight"].shape[0]
    out = {
        "videomae.embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "videomae.embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
    }
    if "fc_norm.weight" in sd:
        out["fc_norm.weight"], out["fc_norm.bias"] = sd["fc_norm.weight"], sd["fc_norm.bias"]
    if head:
        out["classifier.weight"], out["classifier.bias"] = torch.zeros(head, dim), torch.zeros(head)
    qb, vb = ("q_bias", "v_bias") if style == "4.x" else ("query.bias", "value.bias")
    for i in range(depth):
        b, h = f"blocks.{i}.", f"videomae.encoder.layer.{i}."
        q, k, v = sd[b + "attn.qkv.weight"].chunk(3)
        out |= {
            h + "attention.attention.query.weight": q,
            h + "attention.attention.key.weight": k,
            h + "attention.attention.value.weight": v,
            h + f"attention.attention.{qb}": sd[b + "attn.q_bias"],
            h + f"attention.attention.{vb}": sd[b + "attn.v_bias"],
            h + "attention.output.dense.weight": sd[b + "attn.proj.weight"],
            h + "attention.output.dense.bias": sd[b + "attn.proj.bias"],
            h + "intermediate.dense.weight": sd[b + "mlp.fc1.weight"],
            h + "intermediate.dense.bias": sd[b + "mlp.fc1.bias"],
            h + "output.dense.weight": sd[b + "mlp.fc2.weight"],
            h + "output.dense.bias": sd[b + "mlp.fc2.bias"],
            h + "layernorm_before.weight": sd[b + "norm1.weight"],
            h + "layernorm_before.bias": sd[b + "norm1.bias"],
            h + "layernorm_after.weight": sd[b + "norm2.weight"],
            h + "layernorm_after.bias": sd[b + "norm2.bias"],
        }
    return out


def transformers_model(sd: dict[str, torch.Tensor], *, num_heads: int, img_size: int = 224,
                       num_frames: int = 16):
    """transformers' VideoMAEForVideoClassification holding ``sd`` (official keys), eps 1e-6."""
    import transformers

    w = sd["patch_embed.proj.weight"]
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    cfg = transformers.VideoMAEConfig(
        hidden_size=w.shape[0], num_hidden_layers=depth, num_attention_heads=num_heads,
        intermediate_size=sd["blocks.0.mlp.fc1.weight"].shape[0], patch_size=w.shape[-1],
        tubelet_size=w.shape[2], image_size=img_size, num_frames=num_frames, qkv_bias=True,
        use_mean_pooling=True, layer_norm_eps=1e-6, num_labels=3, hidden_act="gelu",
    )
    cfg._attn_implementation = "eager"  # plain softmax(QK^T)V, not SDPA
    model = transformers.VideoMAEForVideoClassification(cfg).eval()
    model.fc_norm.eps = 1e-6  # transformers builds fc_norm with LayerNorm's default 1e-5
    missing, unexpected = model.load_state_dict(to_transformers(sd, depth), strict=False)
    assert set(missing) <= {"classifier.weight", "classifier.bias", "fc_norm.weight", "fc_norm.bias"}
    assert not unexpected, unexpected
    return model


def last_block_tokens(model, clips: torch.Tensor) -> torch.Tensor:
    """``[B, 3, T, H, W]`` -> last block tokens ``[B, N, D]`` (transformers wants B,T,C,H,W)."""
    return model.videomae(pixel_values=clips.permute(0, 2, 1, 3, 4)).last_hidden_state


def legacy_load_frame(path: Path) -> np.ndarray:
    """The legacy loader's per-frame steps (SPEC §1), float64 like its numpy code."""
    img = cv2.imread(str(path))[:, :, [2, 1, 0]]  # the loader's channel swap
    h, w = img.shape[:2]
    if h < 226 or w < 226:
        d = 226.0 - min(h, w)
        sc = 1 + d / min(h, w)
        img = cv2.resize(img, dsize=(0, 0), fx=sc, fy=sc)
    img = (img / 255.0) * 2 - 1
    return cv2.resize(img, (224, 224))


def legacy_features(folder: Path, checkpoint: Path, *, num_heads: int = 2) -> np.ndarray:
    """SPEC §1 step 3 on a legacy frame folder: 16-frame snippets (tail dropped), batch 2,
    ``[mean, std (n-1), max]`` of the last block's tokens, one file per snippet named
    ``<first>_<last>.npy`` (1-based), stacked in *temporal* order (the legacy defect of
    directory-listing order is deliberately not reproduced)."""
    state = torch.load(checkpoint, weights_only=True)["module"]
    model = transformers_model(state, num_heads=num_heads)
    files = sorted(folder.glob("img_*.jpg"), key=lambda p: int(p.stem.split("_")[-1]))
    frames = [legacy_load_frame(f) for f in files]
    n_snip = len(frames) // 16
    with tempfile.TemporaryDirectory() as tmp:
        starts = [16 * i for i in range(n_snip)]
        for k in range(0, n_snip, 2):  # batch 2
            batch = starts[k:k + 2]
            clips = np.stack([np.stack(frames[s:s + 16]) for s in batch])  # B,T,H,W,C
            x = torch.from_numpy(clips.transpose(0, 4, 1, 2, 3).astype(np.float32))
            with torch.inference_mode():
                tok = last_block_tokens(model, x).double()
            feats = torch.stack((tok.mean(1), tok.std(1), tok.max(1).values), 1).float().numpy()
            for s, f in zip(batch, feats, strict=True):
                np.save(Path(tmp) / f"{s + 1:05d}_{s + 16:05d}.npy", f)
        names = sorted(Path(tmp).glob("*.npy"), key=lambda p: int(p.stem.split("_")[0]))
        return np.stack([np.load(p) for p in names])


def clip_to_transformers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI CLIP image-encoder keys (no ``visual.`` prefix) -> transformers'
    ``CLIPVisionModelWithProjection`` keys, written independently of vadfeat's
    ``transformers_to_openai`` (q/k/v split from ``in_proj``, ``proj`` transposed)."""
    out = {
        "vision_model.embeddings.patch_embedding.weight": sd["conv1.weight"],
        "vision_model.embeddings.class_embedding": sd["class_embedding"],
        "vision_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "vision_model.pre_layrnorm.weight": sd["ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["ln_post.bias"],
        "visual_projection.weight": sd["proj"].t(),
    }
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.resblocks."))
    for i in range(layers):
        a, h = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for kind in ("weight", "bias"):
            q, k, v = sd[f"{a}attn.in_proj_{kind}"].chunk(3, dim=0)
            out |= {f"{h}self_attn.q_proj.{kind}": q, f"{h}self_attn.k_proj.{kind}": k,
                    f"{h}self_attn.v_proj.{kind}": v,
                    f"{h}self_attn.out_proj.{kind}": sd[f"{a}attn.out_proj.{kind}"],
                    f"{h}layer_norm1.{kind}": sd[f"{a}ln_1.{kind}"],
                    f"{h}layer_norm2.{kind}": sd[f"{a}ln_2.{kind}"],
                    f"{h}mlp.fc1.{kind}": sd[f"{a}mlp.c_fc.{kind}"],
                    f"{h}mlp.fc2.{kind}": sd[f"{a}mlp.c_proj.{kind}"]}
    return {k: v.contiguous() for k, v in out.items()}
