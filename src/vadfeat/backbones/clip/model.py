"""OpenAI CLIP image encoder (the ``VisionTransformer`` of openai/CLIP ``clip/model.py``).

Source: openai/CLIP, ``clip/model.py`` (``VisionTransformer``, ``Transformer``,
``ResidualAttentionBlock``, ``LayerNorm``, ``QuickGELU``); Radford et al., "Learning
Transferable Visual Models From Natural Language Supervision", ICML 2021.

Data flow for an input ``[B, 3, H, W]`` float32 (pixels already normalised with CLIP's
mean/std, ``H = W = spec.image_size``):

1. ``conv1`` (no bias, kernel = stride = patch): ``[B, width, g, g]`` with
   ``g = image_size // patch_size``, flattened to ``[B, g*g, width]``;
2. ``class_embedding`` prepended: ``[B, 1 + g*g, width]``; ``positional_embedding``
   ``[1 + g*g, width]`` added; ``ln_pre``;
3. ``layers`` pre-LN residual blocks: ``x + attn(ln_1(x))`` then
   ``x + c_proj(QuickGELU(c_fc(ln_2(x))))``, with multi-head self-attention whose
   parameters are laid out as ``torch.nn.MultiheadAttention``'s (``in_proj_weight``
   ``[3*width, width]`` stacking q, k, v; ``out_proj``);
4. ``ln_post`` on the class token: ``[B, width]`` is the ``"token"`` feature;
5. ``@ proj`` (``[width, output_dim]``, no bias): ``[B, output_dim]`` is the
   ``"embedding"`` feature (CLIP's image embedding, not L2-normalised).

Parameter names are OpenAI's without the ``visual.`` prefix, so
``build_clip_visual(spec).load_state_dict(sd, strict=True)`` accepts a state dict read
by :func:`vadfeat.backbones.clip.checkpoints.load_clip_checkpoint`.  Layer norms are
computed in float32 whatever the input dtype (OpenAI's ``LayerNorm`` subclass).  The
model computes in the dtype of its weights (float32 unless converted); OpenAI runs the
transformer in ``[L, B, D]`` order, this module in ``[B, L, D]``: the same arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from vadfeat._types import ClipFeature

# The sizes live in the torch-free spec module; re-exported here, where they always were.
from vadfeat.backbones.clip.spec import CLIP_ARCHS, FEATURES, HEAD_WIDTH, ClipVisionSpec
from vadfeat.errors import CheckpointError, ConfigError

__all__ = [
    "CLIP_ARCHS",
    "FEATURES",
    "ClipFeature",
    "ClipVisionSpec",
    "ClipVisual",
    "build_clip_visual",
    "feature_dim",
    "infer_spec",
]

def feature_dim(spec: ClipVisionSpec, feature: str = "embedding") -> int:
    """Length ``D`` of one feature vector: ``output_dim`` for ``"embedding"``, ``width`` for ``"token"``.

    Raises :class:`ConfigError` for another feature name.
    """
    _check_feature(feature)
    return spec.output_dim if feature == "embedding" else spec.width


def _check_feature(feature: str) -> None:
    if feature not in FEATURES:
        raise ConfigError(f"unknown CLIP feature {feature!r}; choose one of {', '.join(FEATURES)}")


_BLOCK_RE = re.compile(r"^transformer\.resblocks\.(\d+)\.")


def infer_spec(state_dict: Mapping[str, torch.Tensor], name: str | None = None) -> ClipVisionSpec:
    """Size of the encoder a visual state dict (OpenAI names, no ``visual.`` prefix) was saved from.

    Reads shapes only (meta tensors work): ``width`` and ``patch_size`` from
    ``conv1.weight`` ``[width, 3, p, p]``; ``layers`` = number of distinct
    ``transformer.resblocks.N`` indices; ``heads = width // 64`` as OpenAI does;
    ``image_size = sqrt(len(positional_embedding) - 1) * patch_size``;
    ``output_dim = proj.shape[1]``.  The name is the matching :data:`CLIP_ARCHS` entry,
    else ``name`` or ``"custom"``.  Raises :class:`CheckpointError` when a key is missing
    or a shape is inconsistent.
    """
    for key in ("conv1.weight", "positional_embedding", "proj"):
        if key not in state_dict:
            raise CheckpointError(f"not a CLIP visual state dict: key {key!r} is missing")
    conv = tuple(state_dict["conv1.weight"].shape)
    if len(conv) != 4 or conv[1] != 3 or conv[2] != conv[3]:
        raise CheckpointError(f"conv1.weight has shape {list(conv)}; expected [width, 3, p, p]")
    width, patch = int(conv[0]), int(conv[2])
    pos = tuple(state_dict["positional_embedding"].shape)
    grid = round((pos[0] - 1) ** 0.5) if len(pos) == 2 and pos[0] > 1 else 0
    if len(pos) != 2 or pos[1] != width or grid * grid != pos[0] - 1:
        raise CheckpointError(
            f"positional_embedding has shape {list(pos)}; expected [1 + g*g, {width}] for a square patch grid"
        )
    proj = tuple(state_dict["proj"].shape)
    if len(proj) != 2 or proj[0] != width:
        raise CheckpointError(f"proj has shape {list(proj)}; expected [{width}, output_dim]")
    indices = {int(m.group(1)) for key in state_dict if (m := _BLOCK_RE.match(key))}
    if not indices:
        raise CheckpointError("not a CLIP visual state dict: no transformer.resblocks.N keys")
    layers = max(indices) + 1
    if len(indices) != layers:
        missing = sorted(set(range(layers)) - indices)
        raise CheckpointError(f"transformer.resblocks indices have gaps: block(s) {missing[:5]} missing")
    if width % HEAD_WIDTH:
        raise CheckpointError(f"width {width} is not a multiple of {HEAD_WIDTH}; cannot derive the heads")
    fields = (grid * patch, patch, width, layers, width // HEAD_WIDTH, int(proj[1]))
    for arch in CLIP_ARCHS.values():
        if (arch.image_size, arch.patch_size, arch.width, arch.layers, arch.heads, arch.output_dim) == fields:
            return arch
    return ClipVisionSpec(name or "custom", *fields)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` computed in float32 and cast back (OpenAI's subclass, handles fp16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        orig = x.dtype
        out = F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
        return out.to(orig)


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 * x)``, CLIP's activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Attention(nn.Module):
    """Self-attention with ``nn.MultiheadAttention``'s parameter layout (no mask, no dropout)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, D]
        b, n, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # scale 1/sqrt(head_dim)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = _Attention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = _Mlp(width)
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*(ResidualAttentionBlock(width, heads) for _ in range(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class ClipVisual(nn.Module):
    """CLIP's image encoder; ``forward(x)`` maps ``[B, 3, H, W]`` to ``[B, D]`` float.

    ``feature`` (attribute, or per call) selects the head (:data:`FEATURES`):
    ``"embedding"`` gives ``[B, spec.output_dim]``, ``"token"`` gives ``[B, spec.width]``.
    The input must be ``spec.image_size`` square; other sizes raise :class:`ConfigError`
    (CLIP's positional embedding is not interpolated).
    """

    def __init__(self, spec: ClipVisionSpec, feature: str = "embedding") -> None:
        super().__init__()
        _check_feature(feature)
        self.spec = spec
        self.feature = feature
        w = spec.width
        scale = w**-0.5
        self.conv1 = nn.Conv2d(3, w, kernel_size=spec.patch_size, stride=spec.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(spec.num_tokens, w))
        self.ln_pre = LayerNorm(w)
        self.transformer = _Transformer(w, spec.layers, spec.heads)
        self.ln_post = LayerNorm(w)
        self.proj = nn.Parameter(scale * torch.randn(w, spec.output_dim))

    @property
    def out_dim(self) -> int:
        """``D`` of the current ``feature``."""
        return feature_dim(self.spec, self.feature)

    def forward(self, x: torch.Tensor, feature: str | None = None) -> torch.Tensor:
        feature = self.feature if feature is None else feature
        _check_feature(feature)
        size = self.spec.image_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
            raise ConfigError(
                f"CLIP {self.spec.name} expects [B, 3, {size}, {size}] input, got {list(x.shape)}"
            )
        x = self.conv1(x.to(self.conv1.weight.dtype))  # [B, width, g, g]
        x = x.flatten(2).transpose(1, 2)  # [B, g*g, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        x = self.transformer(x)
        x = self.ln_post(x[:, 0, :])  # [B, width]
        if feature == "token":
            return x
        return x @ self.proj


def build_clip_visual(spec: ClipVisionSpec | str, feature: str = "embedding") -> ClipVisual:
    """A randomly initialised :class:`ClipVisual` (float32, eval mode) for a spec or :data:`CLIP_ARCHS` name.

    Raises :class:`ConfigError` for an unknown name or feature.
    """
    if isinstance(spec, str):
        if spec not in CLIP_ARCHS:
            raise ConfigError(f"unknown CLIP architecture {spec!r}; known: {', '.join(CLIP_ARCHS)}")
        spec = CLIP_ARCHS[spec]
    return ClipVisual(spec, feature).eval()
