"""The VideoMAE V2 model against an independent implementation (transformers)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vadfeat.backbones.videomae.model import (
    FeatureModel,
    ModelSpec,
    VideoMAEv2,
    get_spec,
    init_random,
    interpolate_pos_table,
    list_models,
    sincos_table,
)

pytest.importorskip("transformers")

from reference import last_block_tokens, transformers_model

# Tolerance: both sides run fp32; they differ only in summation order (fused qkv,
# SDPA vs eager softmax).  Over 12 blocks that is ~1e-6 on unit-scale features, so
# the 1e-5 bound leaves headroom while still catching any real difference
# (a wrong eps alone gives ~1e-5 to 1e-4; a missing bias or wrong scale gives > 1e-2).
PARITY_ATOL = 1e-5


@pytest.mark.parametrize(
    "spec",
    [
        get_spec("vit_small_patch16_224"),
        # ViT-g shapes (width 1408, 16 heads of 88, patch 14, MLP 6144 = 48/11 ratio), 2 blocks.
        ModelSpec("vit_g_depth2", 1408, 2, 16, 6144, patch_size=14),
    ],
    ids=["vit_s", "vit_g_depth2"],
)
def test_fc_norm_feature_matches_transformers(spec: ModelSpec) -> None:
    ours = VideoMAEv2(spec).eval()
    init_random(ours, seed=1)
    # Non-trivial norms so a mix-up of weight and bias would show.
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    ref = transformers_model(ours.state_dict(), num_heads=spec.num_heads)
    x = torch.randn(1, 3, 16, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got = FeatureModel(ours, pooling="fc_norm")(x)
        want = ref.fc_norm(last_block_tokens(ref, x).mean(1))
    assert got.shape == (1, spec.embed_dim)
    torch.testing.assert_close(got, want, atol=PARITY_ATOL, rtol=0)


def test_pooling_heads_from_tokens() -> None:
    spec = get_spec("vit_tiny_patch16_224")
    enc = VideoMAEv2(spec).eval()
    init_random(enc, seed=3)
    x = torch.randn(2, 3, 16, 224, 224)
    with torch.inference_mode():
        tokens = enc.forward_tokens(x)
        stats = FeatureModel(enc, pooling="stats")(x)
        mean = FeatureModel(enc, pooling="mean")(x)
        fcn = FeatureModel(enc, pooling="fc_norm")(x)
    assert tokens.shape == (2, 1568, 64)
    # Independent statistics: numpy-style, unbiased std with an explicit n-1.
    n = tokens.shape[1]
    mu = tokens.sum(1) / n
    std = (((tokens - mu[:, None]) ** 2).sum(1) / (n - 1)).sqrt()
    mx = tokens.max(1).values
    torch.testing.assert_close(stats, torch.stack((mu, std, mx), 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mean, mu, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fcn, F.layer_norm(mu, (64,), enc.fc_norm.weight, enc.fc_norm.bias, 1e-6))


def test_sincos_table_formula() -> None:
    t = sincos_table(10, 8)
    pos, j = 7, 5  # odd j -> cos of pos / 10000^(2*2/8)
    assert t[pos, j].item() == pytest.approx(torch.cos(torch.tensor(pos / 10000 ** 0.5)).item(), abs=1e-6)
    assert t[3, 2].item() == pytest.approx(torch.sin(torch.tensor(3 / 10000 ** 0.25)).item(), abs=1e-6)


def test_native_size_uses_plain_table() -> None:
    spec = get_spec("vit_small_patch16_224")
    enc = VideoMAEv2(spec)
    plain = sincos_table(1568, 384)
    torch.testing.assert_close(enc.pos_embed((8, 14, 14)), plain, atol=0, rtol=0)
    # The interpolation itself is the identity at the native grid, too.
    torch.testing.assert_close(interpolate_pos_table(plain, (8, 14, 14), (8, 14, 14)), plain)


def test_interpolated_table_halves_by_averaging() -> None:
    # Halving with align_corners=False samples midway between neighbours, so every
    # output entry is the mean of a 2x2x2 block of the source grid: an independent check.
    src = sincos_table(8 * 14 * 14, 32).reshape(8, 14, 14, 32)
    out = interpolate_pos_table(src.reshape(-1, 32), (8, 14, 14), (4, 7, 7)).reshape(4, 7, 7, 32)
    blocks = src.reshape(4, 2, 7, 2, 7, 2, 32).mean(dim=(1, 3, 5))
    torch.testing.assert_close(out, blocks, atol=1e-6, rtol=0)


def test_other_clip_sizes_run() -> None:
    model = FeatureModel(VideoMAEv2(get_spec("vit_tiny_patch16_224")).eval())
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 8, 112, 160)).shape == (1, 64)
    with pytest.raises(ValueError, match="tubelets"):
        model(torch.randn(1, 3, 7, 112, 112))


def test_param_count_formula_matches_modules() -> None:
    for name in ("vit_tiny_patch16_224", "vit_small_patch16_224"):
        spec = get_spec(name)
        assert sum(p.numel() for p in VideoMAEv2(spec).parameters()) == spec.num_params
    names = [s.name for s in list_models()]
    assert names[:5] == ["vit_small_patch16_224", "vit_base_patch16_224", "vit_large_patch16_224",
                         "vit_huge_patch16_224", "vit_giant_patch14_224"]
    assert get_spec("vit_giant_patch14_224").num_tokens == 2048


def test_unknown_model_lists_known() -> None:
    from vadfeat.errors import UnknownModelError

    with pytest.raises(UnknownModelError, match="vit_base_patch16_224"):
        get_spec("vit_b")


# bf16 autocast: features keep ~2-3 significant digits.  Measured on random ViT-S
# weights: relative L2 error about 5e-3 (fc_norm); the bound is 4x that.
BF16_REL_L2 = 2e-2


@pytest.mark.parametrize("pooling", ["fc_norm", "stats"])
def test_bf16_autocast_close_to_fp32(pooling: str) -> None:
    enc = VideoMAEv2(get_spec("vit_small_patch16_224")).eval()
    init_random(enc, seed=5)
    model = FeatureModel(enc, pooling=pooling)
    x = torch.randn(2, 3, 16, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        full = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x)
    assert half.dtype == torch.float32 or pooling == "fc_norm"
    rel = ((half.float() - full).norm() / full.norm()).item()
    assert rel < BF16_REL_L2, rel
