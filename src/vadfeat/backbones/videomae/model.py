"""VideoMAE V2 fine-tuned vision transformer (Wang et al., CVPR 2023) for features.

A plain pre-norm ViT over video tubelets: ``Conv3d`` patch embedding with
kernel = stride = ``(tubelet, p, p)``, tokens ordered time-major, then rows, then
columns; a fixed 1-D sin-cos position table (never stored in checkpoints);
attention with a bias-free ``qkv`` projection plus separate ``q_bias`` and
``v_bias`` (the key has no bias); exact GELU; every LayerNorm with eps 1e-6.

No file I/O here: checkpoints are read by :mod:`vadfeat.backbones.videomae.checkpoints`, which
hands this module a state dict with the official key names (``patch_embed.proj``,
``blocks.{i}.attn.qkv``, ``blocks.{i}.attn.q_bias``, ... ``fc_norm``).

Pooling heads (what a feature is):

* ``fc_norm``: the official ``forward_features``, ``fc_norm(tokens.mean(1))`` -> ``[B, D]``.
* ``mean``: the token mean without the norm -> ``[B, D]``.
* ``stats``: the legacy Fed_WSVAD feature, ``[mean, std (n-1), max]`` over the
  last block's tokens before ``fc_norm`` -> ``[B, 3, D]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, get_args

import torch
import torch.nn.functional as F
from torch import nn

from vadfeat._types import VideoMAEPooling as Pooling

# The sizes live in the torch-free spec module; re-exported here, where they always were.
from vadfeat.backbones.videomae.spec import (
    ModelSpec,
    find_registered,
    get_spec,
    heads_for_width,
    list_models,
    register_model,
    spec_dims,
)
from vadfeat.errors import ConfigError

POOLINGS: tuple[str, ...] = get_args(Pooling)


# --------------------------------------------------------------------------- position table


def sincos_table(num_positions: int, dim: int) -> torch.Tensor:
    """The fixed 1-D sin-cos table ``[num_positions, dim]`` of VideoMAE.

    ``angle = pos / 10000 ** (2 * (j // 2) / dim)``; sin on even ``j``, cos on odd.
    Computed in float64 then cast, as the reference builds it with numpy.
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.to(torch.float32)


def interpolate_pos_table(
    table: torch.Tensor, src_grid: tuple[int, int, int], dst_grid: tuple[int, int, int]
) -> torch.Tensor:
    """Resample a ``[T*H*W, D]`` table from ``src_grid`` to ``dst_grid``.

    This is how the official fine-tuning code adapts the 16-frame, 224 px table
    to other clip lengths and resolutions: bilinear in space on each time slice,
    then linear in time (``align_corners=False`` both).  A table built fresh for
    the new grid is a different function of position and would not match what
    the weights were fine-tuned with.
    """
    t0, h0, w0 = src_grid
    t1, h1, w1 = dst_grid
    if (t0, h0, w0) == (t1, h1, w1):
        return table
    dim = table.shape[-1]
    x = table.reshape(t0, h0, w0, dim).permute(0, 3, 1, 2)  # [T0, D, H0, W0]
    if (h0, w0) != (h1, w1):
        x = F.interpolate(x.double(), size=(h1, w1), mode="bilinear", align_corners=False)
    x = x.permute(1, 2, 3, 0).reshape(1, dim * h1 * w1, t0)  # time as the 1-D axis
    if t0 != t1:
        x = F.interpolate(x.double(), size=t1, mode="linear", align_corners=False)
    x = x.reshape(dim, h1, w1, t1).permute(3, 1, 2, 0).reshape(t1 * h1 * w1, dim)
    return x.to(table.dtype)


# --------------------------------------------------------------------------- modules


class PatchEmbed(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        k = (spec.tubelet_size, spec.patch_size, spec.patch_size)
        self.proj = nn.Conv3d(spec.in_chans, spec.embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, C, T, H, W] -> [B, D, T', H', W'] -> [B, T'H'W', D]: time-major token order
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # The key has no bias in VideoMAE V2; a zero block keeps one fused matmul.
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        # SDPA's default scale is head_dim ** -0.5, the reference's; GPUs get flash kernels.
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) form, as the reference
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(spec.embed_dim, eps=spec.norm_eps)
        self.attn = Attention(spec.embed_dim, spec.num_heads)
        self.norm2 = nn.LayerNorm(spec.embed_dim, eps=spec.norm_eps)
        self.mlp = Mlp(spec.embed_dim, spec.mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VideoMAEv2(nn.Module):
    """The encoder: ``[B, 3, T, H, W]`` -> last block tokens ``[B, N, D]``."""

    pos_table: torch.Tensor  # a buffer (register_buffer), not a parameter

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.patch_embed = PatchEmbed(spec)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.depth))
        self.fc_norm = nn.LayerNorm(spec.embed_dim, eps=spec.fc_norm_eps)
        self.register_buffer(
            "pos_table", sincos_table(spec.num_tokens, spec.embed_dim), persistent=False
        )
        self._pos_cache: dict[tuple[int, int, int], torch.Tensor] = {}

    def pos_embed(self, grid: tuple[int, int, int]) -> torch.Tensor:
        if grid == self.spec.grid:
            return self.pos_table
        cached = self._pos_cache.get(grid)
        if cached is None or cached.device != self.pos_table.device:
            cached = interpolate_pos_table(self.pos_table, self.spec.grid, grid)
            self._pos_cache[grid] = cached
        return cached

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.spec.in_chans:
            raise ValueError(f"expected input [B, {self.spec.in_chans}, T, H, W], got {tuple(x.shape)}")
        _, _, t, h, w = x.shape
        p, tub = self.spec.patch_size, self.spec.tubelet_size
        if t % tub or h % p or w % p:
            raise ValueError(
                f"clip {t}x{h}x{w} is not a whole number of {tub}x{p}x{p} tubelets"
            )
        tokens = self.patch_embed(x)
        tokens = tokens + self.pos_embed((t // tub, h // p, w // p)).to(tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens)
        return tokens


def _pool_fc_norm(model: VideoMAEv2, tokens: torch.Tensor) -> torch.Tensor:
    return model.fc_norm(tokens.mean(1))


def _pool_mean(model: VideoMAEv2, tokens: torch.Tensor) -> torch.Tensor:
    return tokens.mean(1)


def _pool_stats(model: VideoMAEv2, tokens: torch.Tensor) -> torch.Tensor:
    # Statistics in fp32 even under bf16/fp16 autocast: a 2048-token std in bf16
    # loses most of its digits.
    t = tokens.float()
    return torch.stack((t.mean(1), t.std(1, unbiased=True), t.amax(1)), dim=1)


POOLING_FUNCS: dict[str, Callable[[VideoMAEv2, torch.Tensor], torch.Tensor]] = {
    "fc_norm": _pool_fc_norm,
    "mean": _pool_mean,
    "stats": _pool_stats,
}


def check_pooling(pooling: str) -> str:
    if pooling not in POOLING_FUNCS:
        raise ConfigError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    return pooling


def feature_shape(spec: ModelSpec, pooling: str) -> tuple[int, ...]:
    return (3, spec.embed_dim) if pooling == "stats" else (spec.embed_dim,)


class FeatureModel(nn.Module):
    """Maps ``[B, 3, T, H, W]`` float clips to features ``[B, D]`` or ``[B, 3, D]``.

    ``random_weights`` and ``checkpoint`` (a :class:`vadfeat.backbones.videomae.checkpoints.CheckpointInfo`
    or ``None``) travel with the model so every output can record how it was made.
    """

    backbone = "videomae_v2"
    #: ``"int8"`` once :func:`vadfeat.backbones.videomae.compress.quantize_int8` converted it;
    #: not set before (read it with ``getattr(model, "quantize", None)``).
    quantize: str | None

    def __init__(
        self,
        encoder: VideoMAEv2,
        *,
        pooling: str = "fc_norm",
        random_weights: bool = False,
        checkpoint: object | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = check_pooling(pooling)
        self.random_weights = random_weights
        self.checkpoint = checkpoint

    @property
    def spec(self) -> ModelSpec:
        return self.encoder.spec

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return feature_shape(self.spec, self.pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return POOLING_FUNCS[self.pooling](self.encoder, self.encoder.forward_tokens(x))


def init_random(model: nn.Module, *, seed: int = 0) -> None:
    """Deterministic random init (truncated normal 0.02 for weights, as timm ViTs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim > 1:
                param.copy_(
                    torch.nn.init.trunc_normal_(
                        torch.empty(param.shape), std=0.02, a=-0.04, b=0.04, generator=gen
                    )
                )
            elif name.endswith(("norm1.weight", "norm2.weight", "fc_norm.weight")):
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)


def build_encoder(spec: ModelSpec | str, **overrides: Any) -> VideoMAEv2:
    if isinstance(spec, str):
        spec = get_spec(spec)
    if overrides:
        spec = replace(spec, **overrides)
    return VideoMAEv2(spec).eval()


__all__ = [
    "POOLINGS",
    "FeatureModel",
    "ModelSpec",
    "VideoMAEv2",
    "build_encoder",
    "check_pooling",
    "feature_shape",
    "find_registered",
    "get_spec",
    "heads_for_width",
    "init_random",
    "interpolate_pos_table",
    "list_models",
    "register_model",
    "sincos_table",
    "spec_dims",
]
