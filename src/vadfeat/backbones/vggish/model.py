"""The VGGish network (Hershey et al., "CNN Architectures for Large-Scale Audio Classification",
ICASSP 2017), as released with AudioSet.

Layers as tensorflow/models ``research/audioset/vggish/vggish_slim.py`` defines them: four
blocks of 3x3 convolutions (64; 128; 256, 256; 512, 512 channels; stride 1, "same" padding,
ReLU) each followed by 2x2 max pooling, on a ``[N, 1, 96, 64]`` log-mel example, then
fully-connected layers 12288 -> 4096 -> 4096 (ReLU) -> 128 (``fc2``).

Parameter names are those of harritaylor/torchvggish (``torchvggish/torchvggish.py``,
``make_layers``/``VGG``), the names in its ``vggish-10086976.pth`` and in the copy
v-iashin/video_features loads: ``features.{0,3,6,8,11,13}.{weight,bias}`` for the six
convolutions (the ReLUs and pools take the indices between) and
``embeddings.{0,2,4}.{weight,bias}`` for the three linear layers, so such a state dict loads
with ``load_state_dict(strict=True)``.  Before the first linear layer the ``[N, 512, 6, 4]``
map is flattened in NHWC order (time, frequency, channel), as torchvggish's two transposes do
to match TensorFlow's ``slim.flatten`` of an NHWC tensor: a checkpoint converted from
TensorFlow needs no permutation of ``fc1_1``'s rows.

The final ReLU.  torchvggish keeps a ReLU after ``fc2`` (``embeddings.5``); the TensorFlow
code had it too until tensorflow/models PR #9080 (merged 2020-08-10, "VGGish embeddings are
pre-activation, not post-activation": the AudioSet release's embeddings had been made without
it) made ``fc2`` linear (``activation_fn=None``).  XD-Violence's audio features (Wu et al.,
ECCV 2020) were made with "VGGish: https://github.com/tensorflow/models/tree/master/research/audioset"
(the authors in Roc-Ng/XDVioDet issue #15, 2022-05-12); the paper and the data set (June/July
2020) predate that change, so the code they ran most likely ended in the ReLU, which is the
``embedding`` head (torchvggish's output).  Nobody in Roc-Ng/XDVioDet #15, #16, #31 or
JustinYuu/MACIL_SD #3 reports the released features' value range or whether they are
postprocessed (#16 reports that neither implementation reproduced them); a user holding the
release can tell: post-ReLU features are >= 0 with many exact zeros, pre-ReLU ones take
negative values, postprocessed ones are integers in 0..255.  Both are heads here
(:data:`vadfeat.backbones.vggish.spec.VGGISH_HEADS`), so the choice is one option, not a code
change.
"""

from __future__ import annotations

import torch
from torch import nn

from vadfeat.backbones.vggish.pca import PcaParams, postprocess
from vadfeat.backbones.vggish.spec import (
    EMBEDDING_SIZE,
    EXAMPLE_FRAMES,
    NUM_BANDS,
    VGGISH_HEADS,
    Quantize,
    VGGishHead,
)

__all__ = ["VGGish", "VGGishFeatures", "init_random"]

_CONV_PLAN: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")
_FLAT = 512 * (EXAMPLE_FRAMES // 16) * (NUM_BANDS // 16)  # 512 * 6 * 4 = 12288


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 1
    for item in _CONV_PLAN:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(item, int)
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """VGGish: ``[N, 1, 96, 64]`` log-mel examples -> ``[N, 128]`` float32 features.

    ``forward(x, head="embedding")`` returns the head named (see
    :data:`~vadfeat.backbones.vggish.spec.VGGISH_HEADS`); the ``postprocessed`` heads need
    ``pca`` (a :class:`~vadfeat.backbones.vggish.pca.PcaParams`, set at construction or with
    :meth:`set_pca`) and give float values 0..255 (integers), rounded per ``quantize``.
    Raises :class:`ValueError` for an unknown head and for a postprocessed head without PCA.
    """

    def __init__(self, pca: PcaParams | None = None, quantize: Quantize = "floor") -> None:
        super().__init__()
        self.features = _features()
        # fc2's ReLU is applied in forward() for the heads that have it: it has no parameters,
        # so the state dict's names stay torchvggish's either way.
        self.embeddings = nn.Sequential(
            nn.Linear(_FLAT, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_SIZE),
        )
        self.pca = pca
        self.quantize: Quantize = quantize

    def set_pca(self, pca: PcaParams | None) -> None:
        self.pca = pca

    def forward(self, x: torch.Tensor, head: VGGishHead = "embedding") -> torch.Tensor:
        if head not in VGGISH_HEADS:
            raise ValueError(f"unknown VGGish head {head!r}; choose one of {', '.join(VGGISH_HEADS)}")
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, EXAMPLE_FRAMES, NUM_BANDS):
            raise ValueError(f"VGGish takes [N, 1, {EXAMPLE_FRAMES}, {NUM_BANDS}] log-mel examples, "
                             f"got {tuple(x.shape)}")
        y = self.features(x)
        y = y.permute(0, 2, 3, 1).reshape(y.shape[0], -1)  # NHWC flatten, as TensorFlow's
        y = self.embeddings(y)
        if not head.endswith("_prerelu"):
            y = torch.relu(y)
        if head.startswith("postprocessed"):
            if self.pca is None:
                raise ValueError(f"the {head!r} head needs the AudioSet PCA parameters (--pca FILE: "
                                 "vggish_pca_params-970ea276.pth or vggish_pca_params.npz)")
            y = postprocess(y, self.pca, self.quantize)
        return y


def init_random(model: VGGish, seed: int = 0) -> VGGish:
    """Give ``model`` reproducible random weights (Kaiming-uniform convolutions, small linears)
    whose embeddings have spread in every component; for tests and ``--random-weights``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                fan_in = module.weight[0].numel()
                bound = (6.0 / fan_in) ** 0.5
                module.weight.copy_((torch.rand(module.weight.shape, generator=gen) * 2 - 1) * bound)
                assert module.bias is not None
                module.bias.copy_((torch.rand(module.bias.shape, generator=gen) * 2 - 1) * 0.05)
    return model


class VGGishFeatures(VGGish):
    """The module the pipeline runs: :class:`VGGish` whose ``forward(x)`` gives the head chosen
    at construction (``head``; the parameter names stay torchvggish's, so its state dicts load
    strictly and its ``state_dict()`` is recognised as VGGish's)."""

    def __init__(self, head: VGGishHead = "embedding", pca: PcaParams | None = None,
                 quantize: Quantize = "floor") -> None:
        if head not in VGGISH_HEADS:
            raise ValueError(f"unknown VGGish head {head!r}; choose one of {', '.join(VGGISH_HEADS)}")
        super().__init__(pca=pca, quantize=quantize)
        self.head: VGGishHead = head

    def forward(self, x: torch.Tensor, head: VGGishHead | None = None) -> torch.Tensor:
        return super().forward(x, head=self.head if head is None else head)
