"""I3D InceptionV1 as ``pytorch-i3d`` defines it (``InceptionI3d``; Carreira & Zisserman, "Quo Vadis,
Action Recognition? A New Model and the Kinetics Dataset", CVPR 2017).

Source (read, not copied): piergiaj/pytorch-i3d ``pytorch_i3d.py`` (``Unit3D``,
``MaxPool3dSamePadding``, ``InceptionModule``, ``InceptionI3d``, ``extract_features``), a
port of DeepMind's TensorFlow/Sonnet ``kinetics-i3d`` whose weights it converts
(``rgb_imagenet.pt``: ImageNet-inflated, trained on Kinetics-400; ``rgb_charades.pt``:
fine-tuned on Charades, 157 classes).

**Padding.**  Every convolution and max-pool pads as TensorFlow's ``"SAME"``, computed from
the input size at run time (the ``padding`` arguments the original passes to ``Unit3D`` are
ignored there too): along an axis of size ``s`` with kernel ``k`` and stride ``d`` the output
has ``ceil(s / d)`` positions and the total padding is ``max(k - d, 0)`` when ``d`` divides
``s``, else ``max(k - s % d, 0)`` (= ``max((ceil(s/d) - 1) * d + k - s, 0)``); the *front*
gets ``total // 2`` and the *back* the rest, so odd totals pad one more at the end.
PyTorch's symmetric ``padding=k // 2`` differs whenever the total is odd (e.g. the first
conv: 224 px, k 7, stride 2 -> 2 before, 3 after) and shifts every feature map by half a
pixel: the classic porting bug.  Padding is with zeros for the max-pools too (as the original
``F.pad``); their inputs are ReLU outputs (>= 0), so this equals TensorFlow's.

**Layers** for ``[N, 3, 16, 224, 224]`` (shape after each): ``Conv3d_1a_7x7`` (k 7, stride 2)
``[N, 64, 8, 112, 112]``; ``MaxPool3d_2a_3x3`` (k (1, 3, 3), stride (1, 2, 2))
``[N, 64, 8, 56, 56]``; ``Conv3d_2b_1x1``, ``Conv3d_2c_3x3`` ``[N, 192, 8, 56, 56]``;
``MaxPool3d_3a_3x3`` ``[N, 192, 8, 28, 28]``; ``Mixed_3b``, ``Mixed_3c``
``[N, 480, 8, 28, 28]``; ``MaxPool3d_4a_3x3`` (k 3, stride 2) ``[N, 480, 4, 14, 14]``;
``Mixed_4b``..``Mixed_4f`` ``[N, 832, 4, 14, 14]``; ``MaxPool3d_5a_2x2`` (k 2, stride 2)
``[N, 832, 2, 7, 7]``; ``Mixed_5b``, ``Mixed_5c`` ``[N, 1024, 2, 7, 7]``.  A Mixed block
concatenates four branches: ``b0`` 1x1x1; ``b1a`` 1x1x1 then ``b1b`` 3x3x3; ``b2a`` then
``b2b`` likewise; ``b3a`` a 3x3x3 stride-1 same max-pool then ``b3b`` 1x1x1.  Each
``Unit3D`` is a bias-free Conv3d, ``BatchNorm3d(eps=0.001, momentum=0.01)`` (TensorFlow's
values, set explicitly by the original), ReLU.

**Feature** (``pool``).  ``extract_features`` returns ``avg_pool(x)`` with
``AvgPool3d(kernel=[2, 7, 7], stride=1)``, no padding: for a 16-frame snippet at 224 px the
map ``[N, 1024, 2, 7, 7]`` becomes ``[N, 1024, 1, 1, 1]`` -- the two remaining time steps
(each covering ~8 input frames) are averaged by this pool, so one 1024-d feature per snippet;
extraction scripts then squeeze the singleton axes (piergiaj's ``extract_features.py`` saves
``squeeze(0).permute(1, 2, 3, 0)``, i.e. ``[T', 1, 1, 1024]``).  Here the pooled tensor is
averaged over its remaining ``T', H', W'`` axes, which for 16 x 224 x 224 is exactly that
squeeze; for longer clips (32 frames: ``T' = 3`` overlapping windows) it is their mean.
The classifier ``logits`` (1x1x1 conv with bias) and dropout are not part of this module.
Clips need at least 9 frames (the average pool needs two time steps) and 193 px (seven
spatial positions); other sizes than 224 change what the pool covers, so the spec asks
for 224 (``fixed_size``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vadfeat.backbones.i3d.spec import I3DSpec, check_clip

__all__ = ["BN_EPS", "BN_MOMENTUM", "MIXED", "InceptionI3d", "MaxPool3dSame", "Unit3D", "same_padding"]

BN_EPS = 0.001
BN_MOMENTUM = 0.01

MIXED: dict[str, tuple[int, tuple[int, int, int, int, int, int]]] = {
    # name: (in channels, (b0, b1a, b1b, b2a, b2b, b3b) out channels), as InceptionI3d.__init__.
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}

FEATURE_DIM = 1024
AVG_POOL = (2, 7, 7)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``"SAME"`` padding ``(front, back)`` along one axis of ``size`` (module docstring)."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    pads: list[int] = []
    for axis in (4, 3, 2):  # F.pad lists the last axis first: (w_f, w_b, h_f, h_b, t_f, t_b)
        pads.extend(same_padding(x.shape[axis], kernel[axis - 2], stride[axis - 2]))
    return F.pad(x, pads) if any(pads) else x


def _triple(v: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class Unit3D(nn.Module):
    """Same-padded Conv3d (no bias) + BatchNorm3d(eps 1e-3, momentum 0.01) + ReLU; parameters
    ``conv3d.weight``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int, int] = 1,
                 stride: int | tuple[int, int, int] = 1) -> None:
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, padding=0, bias=False)
        self.bn = nn.BatchNorm3d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv3d(_pad_same(x, self.kernel, self.stride))))


class MaxPool3dSame(nn.MaxPool3d):
    """``MaxPool3d`` after TensorFlow ``"SAME"`` zero padding (``MaxPool3dSamePadding``)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__(kernel_size=kernel, stride=stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_same(x, self.kernel_size, self.stride))  # type: ignore[arg-type]


class InceptionModule(nn.Module):
    def __init__(self, cin: int, out: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, out[0])
        self.b1a = Unit3D(cin, out[1])
        self.b1b = Unit3D(out[1], out[2], 3)
        self.b2a = Unit3D(cin, out[3])
        self.b2b = Unit3D(out[3], out[4], 3)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))],
                         dim=1)


class InceptionI3d(nn.Module):
    """``[N, 3, T, H, W]`` float clips (values in ``[-1, 1]`` for the released weights) ->
    ``[N, 1024]`` pooled features (see the module docstring; ``[N, 1024 / spec.channel_div]`` for a
    narrowed test size, every layer's channels divided).

    :class:`ValueError` for inputs that are not 5-d with 3 channels; :class:`ConfigError` for
    clips shorter than ``spec.min_frames`` (9) frames.
    """

    def __init__(self, spec: I3DSpec) -> None:
        super().__init__()
        self.spec = spec
        div = spec.channel_div  # 1: the released widths; the tiny test size divides every one

        cin = 192 // div

        def mixed(name: str) -> InceptionModule:
            # A narrowed size keeps at least one channel per branch; each block takes what the
            # one before gives (b0 + b1b + b2b + b3b), which is MIXED's in-channels at full width.
            nonlocal cin
            out = tuple(max(1, c // div) for c in MIXED[name][1])
            module = InceptionModule(cin, out)  # type: ignore[arg-type]
            cin = out[0] + out[2] + out[4] + out[5]
            return module

        self.Conv3d_1a_7x7 = Unit3D(3, 64 // div, 7, 2)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64 // div, 64 // div)
        self.Conv3d_2c_3x3 = Unit3D(64 // div, 192 // div, 3)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        for name in ("Mixed_3b", "Mixed_3c"):
            self.add_module(name, mixed(name))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            self.add_module(name, mixed(name))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            self.add_module(name, mixed(name))
        self.avg_pool = nn.AvgPool3d(kernel_size=AVG_POOL, stride=(1, 1, 1))

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """``Mixed_5c``'s output, ``[N, 1024, ceil(T/8), ceil(H/32), ceil(W/32)]``."""
        check_clip(self.spec, x, why="its [2, 7, 7] average pool needs two time steps")
        for module in self.children():
            if module is self.avg_pool:
                break
            x = module(x)
        return x

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """As the original's: ``avg_pool(Mixed_5c)``, ``[N, 1024, T'', H'', W'']`` (``[N, 1024, 1, 1, 1]``
        for 16 x 224 x 224)."""
        return self.avg_pool(self.forward_maps(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extract_features(x).float().mean(dim=(2, 3, 4)).to(x.dtype)


