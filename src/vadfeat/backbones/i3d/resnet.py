"""I3D ResNet-50 as ``pytorch-resnet3d`` defines it (the ``i3_res50`` / ``i3_res50_nl`` models).

Sources (read, not copied): Tushar-N/pytorch-resnet3d ``models/resnet.py`` (``I3Res50``,
``Bottleneck``), a PyTorch port of the Caffe2 I3D ResNet-50 baseline of
facebookresearch/video-nonlocal-net (Wang et al., "Non-local Neural Networks", CVPR
2018), and the copy with non-local blocks in GowthamGottimukkala/I3D_Feature_Extraction_resnet
``resnet.py`` (``NonLocalBlock``, ``use_nl``), the wrapper RTFM-style 10-crop features are
extracted with.

Data flow for clips ``[N, 3, T, H, W]`` (16 x 224 x 224 shown):

1. ``conv1`` Conv3d 3->64, kernel (5, 7, 7), stride (2, 2, 2), padding (2, 3, 3), no bias;
   ``bn1``; ReLU: ``[N, 64, 8, 112, 112]``;
2. ``maxpool1`` kernel (2, 3, 3), stride (2, 2, 2), no padding: ``[N, 64, 4, 55, 55]``
   (55, not 56: the pool is unpadded, floor mode);
3. ``layer1`` (3 bottlenecks, 256 out): ``[N, 256, 4, 55, 55]``; ``maxpool2`` kernel
   (2, 1, 1), stride (2, 1, 1): ``[N, 256, 2, 55, 55]``;
4. ``layer2`` (4, 512, spatial stride 2): ``[N, 512, 2, 28, 28]``; ``layer3`` (6, 1024):
   ``[N, 1024, 2, 14, 14]``; ``layer4`` (3, 2048): ``[N, 2048, 2, 7, 7]``;
5. global average pool over ``T, H, W`` (``AdaptiveAvgPool3d(1)``): ``[N, 2048]``, the
   feature (``pool``).  The classifier ``fc`` (2048 -> 400 Kinetics classes) and its dropout
   are not part of this module; the wrapper's ``forward_single`` returns the same pooled
   tensor ``[N, 2048, 1, 1, 1]`` and indexes ``[..., 0, 0, 0]``.

A bottleneck's first conv is inflated in time when its ``temp_conv`` flag is 1: kernel
(3, 1, 1), padding (1, 0, 0), else (1, 1, 1); the flags per layer are
``[1, 1, 1]``, ``[1, 0, 1, 0]``, ``[1, 0, 1, 0, 1, 0]``, ``[0, 1, 0]``; every temporal stride
is 1 inside the layers.  The 3x3 conv carries the spatial stride (first block of layers
2-4); the first block of every layer has a ``downsample`` (1x1x1 conv with that stride,
then BatchNorm).  ``_nl``: a non-local block (embedded Gaussian, ``dim_inner = C / 2``,
``phi``/``g`` on a (1, 2, 2) max-pooled input, scaled by ``dim_inner ** -0.5``, output conv
and BatchNorm added to the input) after blocks 1 and 3 of ``layer2`` and 1, 3 and 5 of
``layer3`` (``i % 2 == 1``), five in all.

BatchNorm is ``nn.BatchNorm3d`` with PyTorch's defaults, ``eps=1e-5``, ``momentum=0.1``
(the code constructs it without arguments); in eval mode only the running statistics are
used.  Parameter names are the module names above, which are the keys of the released
``i3d_r50_kinetics.pth`` (``conv1.weight``, ``bn1.running_var``,
``layer1.0.downsample.0.weight``, ``layer3.5.nl.theta.bias`` ...; see :mod:`.checkpoints`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vadfeat.backbones.i3d.spec import I3DSpec, check_clip

__all__ = ["BN_EPS", "BN_MOMENTUM", "LAYERS", "TEMP_CONV", "I3DResNet50", "NonLocalBlock"]

BN_EPS = 1e-5
BN_MOMENTUM = 0.1

LAYERS = (3, 4, 6, 3)
"""Bottlenecks per layer (ResNet-50)."""

TEMP_CONV = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
"""Per bottleneck: 1 = the first conv is (3, 1, 1) (inflated in time), 0 = (1, 1, 1)."""

_NL_EVERY = 2  # non-local after blocks with i % 2 == 1 of layer2 and layer3


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al. 2018) as in the wrapper's ``NonLocalBlock``."""

    def __init__(self, dim: int, dim_inner: int) -> None:
        super().__init__()
        self.dim_inner = dim_inner
        self.theta = nn.Conv3d(dim, dim_inner, 1)
        self.phi = nn.Conv3d(dim, dim_inner, 1)
        self.g = nn.Conv3d(dim, dim_inner, 1)
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.out = nn.Conv3d(dim_inner, dim, 1)
        self.bn = _bn(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        pooled = self.maxpool(x)
        theta = self.theta(x)
        shape = theta.shape
        theta = theta.reshape(n, self.dim_inner, -1)                # [N, C', THW]
        phi = self.phi(pooled).reshape(n, self.dim_inner, -1)       # [N, C', THW/4]
        g = self.g(pooled).reshape(n, self.dim_inner, -1)
        attn = F.softmax(theta.transpose(1, 2) @ phi * self.dim_inner**-0.5, dim=-1)  # [N, THW, THW/4]
        y = (g @ attn.transpose(1, 2)).reshape(shape)
        return x + self.bn(self.out(y))


class Bottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, *, stride: int, temp_conv: int,
                 downsample: bool, non_local: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, kernel_size=(1 + 2 * temp_conv, 1, 1),
                               padding=(temp_conv, 0, 0), bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                               padding=(0, 1, 1), bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = _bn(planes * 4)
        self.downsample = (
            nn.Sequential(nn.Conv3d(inplanes, planes * 4, kernel_size=1, stride=(1, stride, stride),
                                    bias=False), _bn(planes * 4))
            if downsample else None
        )
        self.nl = NonLocalBlock(planes * 4, planes * 2) if non_local else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = F.relu(out + (self.downsample(x) if self.downsample is not None else x))
        return self.nl(out) if self.nl is not None else out


class I3DResNet50(nn.Module):
    """``[N, 3, T, H, W]`` float clips -> ``[N, 2048]`` pooled features (see the module docstring;
    ``[N, 2048 / spec.channel_div]`` for a narrowed test size, every layer's channels divided).

    ``T`` must be at least 7 (the two temporal max-pools need two frames each):
    :class:`ConfigError` otherwise; :class:`ValueError` for inputs that are not 5-d with 3 channels.
    """

    def __init__(self, spec: I3DSpec) -> None:
        super().__init__()
        self.spec = spec
        div = spec.channel_div  # 1: the released widths; the tiny test size divides every one
        inplanes = 64 // div
        self.conv1 = nn.Conv3d(3, inplanes, kernel_size=(5, 7, 7), stride=(2, 2, 2), padding=(2, 3, 3),
                               bias=False)
        self.bn1 = _bn(inplanes)
        self.maxpool1 = nn.MaxPool3d(kernel_size=(2, 3, 3), stride=(2, 2, 2))
        self.maxpool2 = nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1))
        widths = tuple(w // div for w in (64, 128, 256, 512))
        for i, (blocks, planes, flags) in enumerate(zip(LAYERS, widths, TEMP_CONV, strict=True)):
            stride = 1 if i == 0 else 2
            nl_here = spec.non_local and i in (1, 2)
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(inplanes, planes, stride=stride if b == 0 else 1, temp_conv=flags[b],
                                        downsample=b == 0,
                                        non_local=nl_here and b % _NL_EVERY == _NL_EVERY - 1))
                inplanes = planes * 4
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, ``[N, 2048, T', H', W']`` (``[N, 2048, 2, 7, 7]`` for 16x224x224)."""
        check_clip(self.spec, x, why="its temporal kernels and pools")
        x = self.maxpool1(F.relu(self.bn1(self.conv1(x))))
        x = self.maxpool2(self.get_submodule("layer1")(x))
        for name in ("layer2", "layer3", "layer4"):  # made by add_module: looked up by name
            x = self.get_submodule(name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(x).float().mean(dim=(2, 3, 4)).to(x.dtype)
