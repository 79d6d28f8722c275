"""I3D backbones: the ported layers against hand-derived values, the released key layouts, and
``vadfeat extract --preset i3d-rtfm / i3d-xd`` end to end.

What a port of these networks usually gets wrong, each checked against numbers worked out by
hand (comments) or against a functional reference written here from the original code's
hyperparameters (not from vadfeat's modules): TensorFlow "SAME" padding in InceptionV1
(asymmetric, extra pixel at the end), BatchNorm eps/momentum (1e-3/0.01 there, PyTorch's
1e-5/0.1 in the ResNet), the pooling windows (unpadded (2, 3, 3) max-pool: 55 px, not 56;
InceptionV1's [2, 7, 7] average pool), the inflated temporal kernels and the non-local
placement.  Shapes at 16 x 224 x 224 are computed on the meta device (no arithmetic), the
numbers on reduced inputs, so the file stays fast on a shared CPU.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from vadfeat.backbones._registry import detect_backbone, get_backbone, resolve_model_name
from vadfeat.backbones.i3d import inception, resnet
from vadfeat.backbones.i3d.backbone import ARCHS, init_random
from vadfeat.backbones.i3d.checkpoints import build_i3d, load_i3d_checkpoint
from vadfeat.cli import main
from vadfeat.errors import CheckpointError, ConfigError
from vadfeat.pipeline.presets import get_preset
from vadfeat.testing import synth

BB = get_backbone("i3d")


# --------------------------------------------------------------------------- weights and files


def _weights(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """Random weights with BatchNorm statistics and affine terms off their defaults (so a key
    mapped to the wrong layer, or a statistic ignored, changes the output)."""
    net = build_i3d(ARCHS[arch], empty=True)
    init_random(net, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    sd = {}
    for k, v in net.state_dict().items():
        if k.endswith(("running_mean", "bn1.bias", "bn2.bias", "bn.bias", "bn3.bias")):
            v = 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith(("running_var", "bn.weight", "bn1.weight", "bn2.weight", "bn3.weight")):
            v = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("num_batches_tracked"):
            v = torch.tensor(1234)
        sd[k] = v.clone()
    return sd


def _released(arch: str, sd: dict[str, torch.Tensor], *, counters: bool) -> dict[str, torch.Tensor]:
    """``sd`` in the released layout: the classifier added (fc: 400 Kinetics classes; logits: the
    Charades 157), ``num_batches_tracked`` kept or dropped (i3d_r50_kinetics.pth has none)."""
    out = {k: v for k, v in sd.items() if counters or not k.endswith("num_batches_tracked")}
    if ARCHS[arch].family == "resnet":
        out |= {"fc.weight": torch.randn(400, 2048), "fc.bias": torch.randn(400)}
    else:
        out |= {"logits.conv3d.weight": torch.randn(157, 1024, 1, 1, 1),
                "logits.conv3d.bias": torch.randn(157)}
    return out


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, torch.Tensor]]]:
    root = tmp_path_factory.mktemp("i3d_ckpt")
    out = {}
    for seed, (arch, file, counters) in enumerate((("r50", "i3d_r50_kinetics.pth", False),
                                                   ("r50_nl", "i3d_r50_nl.pth", True),
                                                   ("inception_v1", "rgb_charades.pt", True))):
        sd = _weights(arch, seed)
        torch.save(_released(arch, sd, counters=counters), root / file)
        out[arch] = (root / file, sd)
    return out


# --------------------------------------------------------------------------- hand-derived layer checks


@pytest.mark.parametrize(("size", "kernel", "stride", "pads"), [
    # out = ceil(s / d); total = max((out - 1) * d + k - s, 0); front = total // 2, back = the rest.
    (224, 7, 2, (2, 3)),   # Conv3d_1a spatial: out 112, total 111*2 + 7 - 224 = 5
    (16, 7, 2, (2, 3)),    # Conv3d_1a temporal, 16 frames: out 8, total 7*2 + 7 - 16 = 5
    (112, 3, 2, (0, 1)),   # MaxPool3d_2a: out 56, total 55*2 + 3 - 112 = 1 -> all at the end
    (56, 3, 1, (1, 1)),    # a 3x3x3 stride-1 conv: total 55 + 3 - 56 = 2
    (8, 1, 1, (0, 0)),     # MaxPool3d_2a temporal kernel 1
    (7, 3, 2, (1, 1)),     # odd size: out 4, total 3*2 + 3 - 7 = 2
    (5, 2, 2, (0, 1)),     # MaxPool3d_5a on 5 steps: out 3, total 2*2 + 2 - 5 = 1
    (4, 2, 2, (0, 0)),     # MaxPool3d_5a on 4 steps: out 2, total 0
    (9, 7, 2, (3, 3)),     # 9 frames: out 5, total 4*2 + 7 - 9 = 6
])
def test_tf_same_padding_amounts(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> None:
    assert inception.same_padding(size, kernel, stride) == pads
    out = (size + sum(pads) - kernel) // stride + 1
    assert out == math.ceil(size / stride)  # "SAME": the output size depends on the stride only


def test_unit3d_pads_at_the_end_not_symmetrically() -> None:
    """A (1, 3, 3) stride (1, 2, 2) sum filter on a 4x4 image of ones, BatchNorm the identity.
    TF "SAME": total padding (2 - 1) * 2 + 3 - 4 = 1, all after.  Output [0, 0] sums rows and
    columns 0..2 (all inside): 9; output [1, 1] sums rows/cols 2..4 with 4 padded: 2 * 2 = 4.
    PyTorch's symmetric padding=1 would give 4 at [0, 0] (rows -1..1) and 9 at [1, 1]."""
    unit = inception.Unit3D(1, 1, (1, 3, 3), (1, 2, 2)).eval()
    with torch.no_grad():
        unit.conv3d.weight.fill_(1.0)
        unit.bn.running_var.fill_(1.0 - inception.BN_EPS)  # sqrt(var + eps) = 1: BN is the identity
    y = unit(torch.ones(1, 1, 1, 4, 4))
    assert y.shape == (1, 1, 1, 2, 2)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([[9.0, 6.0], [6.0, 4.0]]))


def test_same_maxpool_pads_the_end() -> None:
    """MaxPool3d_2a (1, 3, 3) stride (1, 2, 2) on a 1x4 row 1, 2, 3, 4 (H = 1 by a (1, 1, 3)
    kernel stand-in): total padding 1 at the end -> windows (1, 2, 3) and (3, 4, pad 0) -> 3, 4."""
    pool = inception.MaxPool3dSame((1, 1, 3), (1, 1, 2))
    y = pool(torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 1, 4))
    assert y.flatten().tolist() == [3.0, 4.0]


def test_batchnorm_eps_and_momentum() -> None:
    with torch.device("meta"):
        nets = {a: build_i3d(s) for a, s in ARCHS.items()}
    for arch, net in nets.items():
        bns = {(m.eps, m.momentum) for m in net.modules() if isinstance(m, nn.BatchNorm3d)}
        # pytorch_i3d.py Unit3D: BatchNorm3d(eps=0.001, momentum=0.01); resnet.py: BatchNorm3d() defaults.
        assert bns == ({(0.001, 0.01)} if ARCHS[arch].family == "inception" else {(1e-5, 0.1)}), arch
    # In eval, y = (x - mean) / sqrt(var + eps): with var 0 and x 1, 1 / sqrt(0.001) = 31.6227766.
    unit = inception.Unit3D(1, 1).eval()
    with torch.no_grad():
        unit.conv3d.weight.fill_(1.0)
        unit.bn.running_var.zero_()
    assert unit(torch.ones(1, 1, 1, 1, 1)).item() == pytest.approx(31.6227766, rel=1e-6)


def _shapes(net: nn.Module, names: list[str], x: torch.Tensor) -> tuple[dict[str, tuple[int, ...]], tuple]:
    seen: dict[str, tuple[int, ...]] = {}
    mods = dict(net.named_modules())
    for name in names:
        mods[name].register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape)))
    return seen, tuple(net(x).shape)


def test_resnet_shapes_for_a_16_frame_snippet_at_224() -> None:
    """Hand-derived, floor((s + 2p - k) / d) + 1 per axis (T, H):
    conv1 k(5,7) d2 p(2,3): T (16+4-5)//2+1 = 8, H (224+6-7)//2+1 = 112;
    maxpool1 k(2,3) d2 p0: T (8-2)//2+1 = 4, H (112-3)//2+1 = 55 (not 56);
    layer1 keeps 4x55; maxpool2 k(2,1) d(2,1): T 2; layer2 conv2 k3 d2 p1: (55+2-3)//2+1 = 28;
    layer3 14; layer4 7; global pool -> [N, 2048]."""
    for arch in ("r50", "r50_nl"):
        with torch.device("meta"):
            net = build_i3d(ARCHS[arch])
            names = ["conv1", "maxpool1", "layer1", "maxpool2", "layer2", "layer3", "layer4"]
            seen, out = _shapes(net, names, torch.empty(2, 3, 16, 224, 224))
        assert seen == {"conv1": (2, 64, 8, 112, 112), "maxpool1": (2, 64, 4, 55, 55),
                        "layer1": (2, 256, 4, 55, 55), "maxpool2": (2, 256, 2, 55, 55),
                        "layer2": (2, 512, 2, 28, 28), "layer3": (2, 1024, 2, 14, 14),
                        "layer4": (2, 2048, 2, 7, 7)}, arch
        assert out == (2, 2048)


def test_inception_shapes_and_how_time_is_reduced() -> None:
    """Same padding: out = ceil(s / d).  16 frames: Conv3d_1a d2 -> 8 x 112; MaxPool 2a/3a
    d(1,2,2) -> 8 x 56, 8 x 28; MaxPool4a d2 -> 4 x 14; MaxPool5a d2 -> 2 x 7; the [2, 7, 7]
    average pool (stride 1, no padding) -> (2-2)+1 = 1 step, 1 x 1: [N, 1024, 1, 1, 1], squeezed
    to [N, 1024].  32 frames: 16 -> 8 -> 4 after 5a, so the pool gives 4-2+1 = 3 steps (mean taken)."""
    names = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3", "Mixed_3c",
             "MaxPool3d_4a_3x3", "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5c", "avg_pool"]
    with torch.device("meta"):
        net = build_i3d(ARCHS["inception_v1"])
        seen, out = _shapes(net, names, torch.empty(2, 3, 16, 224, 224))
        seen32, _ = _shapes(build_i3d(ARCHS["inception_v1"]), ["avg_pool"], torch.empty(1, 3, 32, 224, 224))
    assert seen == {"Conv3d_1a_7x7": (2, 64, 8, 112, 112), "MaxPool3d_2a_3x3": (2, 64, 8, 56, 56),
                    "Conv3d_2c_3x3": (2, 192, 8, 56, 56), "MaxPool3d_3a_3x3": (2, 192, 8, 28, 28),
                    "Mixed_3c": (2, 480, 8, 28, 28), "MaxPool3d_4a_3x3": (2, 480, 4, 14, 14),
                    "Mixed_4f": (2, 832, 4, 14, 14), "MaxPool3d_5a_2x2": (2, 832, 2, 7, 7),
                    "Mixed_5c": (2, 1024, 2, 7, 7), "avg_pool": (2, 1024, 1, 1, 1)}
    assert out == (2, 1024)
    assert seen32["avg_pool"] == (1, 1024, 3, 1, 1)


def test_pooling_windows() -> None:
    with torch.device("meta"):
        r50, inc = build_i3d(ARCHS["r50_nl"]), build_i3d(ARCHS["inception_v1"])
    assert (r50.maxpool1.kernel_size, r50.maxpool1.stride, r50.maxpool1.padding) == ((2, 3, 3), (2, 2, 2), 0)
    assert (r50.maxpool2.kernel_size, r50.maxpool2.stride) == ((2, 1, 1), (2, 1, 1))
    # Non-local after blocks 1, 3 of layer2 and 1, 3, 5 of layer3 (i % 2 == 1): five in all.
    nl = sorted(n for n, m in r50.named_modules() if isinstance(m, resnet.NonLocalBlock))
    assert nl == ["layer2.1.nl", "layer2.3.nl", "layer3.1.nl", "layer3.3.nl", "layer3.5.nl"]
    assert r50.layer2[1].nl.maxpool.kernel_size == (1, 2, 2)
    pools = {n: (m.kernel_size, m.stride) for n, m in inc.named_children() if isinstance(m, nn.MaxPool3d)}
    assert pools == {"MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)), "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
                     "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)), "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2))}
    assert (inc.avg_pool.kernel_size, inc.avg_pool.stride, inc.avg_pool.padding) == ((2, 7, 7), (1, 1, 1), 0)


# --------------------------------------------------------------------------- functional references


def _bn(x: torch.Tensor, sd: dict, p: str, eps: float) -> torch.Tensor:
    return F.batch_norm(x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"],
                        False, 0.0, eps)


def _ref_resnet(sd: dict, x: torch.Tensor, *, non_local: bool) -> torch.Tensor:
    """I3Res50.forward_single without fc, re-typed from resnet.py's hyperparameters."""
    temp = [[1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]]
    x = F.relu(_bn(F.conv3d(x, sd["conv1.weight"], stride=2, padding=(2, 3, 3)), sd, "bn1.", 1e-5))
    x = F.max_pool3d(x, (2, 3, 3), (2, 2, 2))
    for li in range(4):
        for b, tc in enumerate(temp[li]):
            p = f"layer{li + 1}.{b}."
            s = 2 if (li > 0 and b == 0) else 1
            y = F.relu(_bn(F.conv3d(x, sd[p + "conv1.weight"], padding=(tc, 0, 0)), sd, p + "bn1.", 1e-5))
            y = F.relu(_bn(F.conv3d(y, sd[p + "conv2.weight"], stride=(1, s, s), padding=(0, 1, 1)),
                           sd, p + "bn2.", 1e-5))
            y = _bn(F.conv3d(y, sd[p + "conv3.weight"]), sd, p + "bn3.", 1e-5)
            if b == 0:
                x = F.conv3d(x, sd[p + "downsample.0.weight"], stride=(1, s, s))
                x = _bn(x, sd, p + "downsample.1.", 1e-5)
            x = F.relu(y + x)
            if non_local and li in (1, 2) and b % 2 == 1:
                q = p + "nl."
                n, c = x.shape[:2]
                mp = F.max_pool3d(x, (1, 2, 2), (1, 2, 2))
                th = F.conv3d(x, sd[q + "theta.weight"], sd[q + "theta.bias"]).reshape(n, c // 2, -1)
                ph = F.conv3d(mp, sd[q + "phi.weight"], sd[q + "phi.bias"]).reshape(n, c // 2, -1)
                g = F.conv3d(mp, sd[q + "g.weight"], sd[q + "g.bias"]).reshape(n, c // 2, -1)
                att = torch.softmax(torch.einsum("nci,ncj->nij", th, ph) / math.sqrt(c // 2), dim=-1)
                t = torch.einsum("ncj,nij->nci", g, att).reshape(n, c // 2, *x.shape[2:])
                x = x + _bn(F.conv3d(t, sd[q + "out.weight"], sd[q + "out.bias"]), sd, q + "bn.", 1e-5)
        if li == 0:
            x = F.max_pool3d(x, (2, 1, 1), (2, 1, 1))
    return x.mean(dim=(2, 3, 4))


def _tf_pad(x: torch.Tensor, k: tuple[int, int, int], d: tuple[int, int, int]) -> torch.Tensor:
    pads = []
    for axis in (4, 3, 2):
        s, kk, dd = x.shape[axis], k[axis - 2], d[axis - 2]
        total = max((math.ceil(s / dd) - 1) * dd + kk - s, 0)  # TF's formula, not pytorch_i3d's compute_pad
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _ref_unit(sd: dict, p: str, x: torch.Tensor, k: int = 1,
              d: tuple[int, int, int] = (1, 1, 1)) -> torch.Tensor:
    kk = (k, k, k)
    return F.relu(_bn(F.conv3d(_tf_pad(x, kk, d), sd[p + "conv3d.weight"], stride=d), sd, p + "bn.", 1e-3))


def _ref_inception_maps(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """InceptionI3d up to Mixed_5c, with TF "SAME" padding from TF's own formula."""
    def pool(x: torch.Tensor, k: tuple[int, int, int], d: tuple[int, int, int]) -> torch.Tensor:
        return F.max_pool3d(_tf_pad(x, k, d), k, d)

    def mixed(p: str, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([_ref_unit(sd, p + "b0.", x),
                          _ref_unit(sd, p + "b1b.", _ref_unit(sd, p + "b1a.", x), 3),
                          _ref_unit(sd, p + "b2b.", _ref_unit(sd, p + "b2a.", x), 3),
                          _ref_unit(sd, p + "b3b.", pool(x, (3, 3, 3), (1, 1, 1)))], dim=1)

    x = _ref_unit(sd, "Conv3d_1a_7x7.", x, 7, (2, 2, 2))
    x = pool(x, (1, 3, 3), (1, 2, 2))
    x = _ref_unit(sd, "Conv3d_2c_3x3.", _ref_unit(sd, "Conv3d_2b_1x1.", x), 3)
    x = pool(x, (1, 3, 3), (1, 2, 2))
    x = mixed("Mixed_3c.", mixed("Mixed_3b.", x))
    x = pool(x, (3, 3, 3), (2, 2, 2))
    for m in "bcdef":
        x = mixed(f"Mixed_4{m}.", x)
    x = pool(x, (2, 2, 2), (2, 2, 2))
    return mixed("Mixed_5c.", mixed("Mixed_5b.", x))


@pytest.mark.parametrize("arch", ["r50", "r50_nl"])
def test_resnet_matches_the_functional_reference(released: dict, arch: str) -> None:
    path, sd = released[arch]
    model = BB.load_model(path, arch=None, feature="pool", device="cpu")
    x = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = model(x), _ref_resnet(sd, x, non_local=arch == "r50_nl")
    assert got.shape == (2, 2048)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)  # fp32, different op order


def test_inception_matches_the_functional_reference(released: dict) -> None:
    path, sd = released["inception_v1"]
    model = BB.load_model(path, arch=None, feature="pool", device="cpu")
    x = torch.rand(1, 3, 9, 33, 47, generator=torch.Generator().manual_seed(0)) * 2 - 1  # odd sizes
    with torch.no_grad():
        got, want = model.net.forward_maps(x), _ref_inception_maps(sd, x)
    assert got.shape == want.shape == (1, 1024, 2, 2, 2)  # ceil(9/8), ceil(33/32), ceil(47/32)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("arch", ["r50", "r50_nl", "inception_v1"])
def test_released_layout_loads_every_key_in_eval_mode(released: dict, arch: str) -> None:
    path, sd = released[arch]
    assert detect_backbone(path).name == "i3d"
    model = BB.load_model(path, arch=arch, feature="pool", device="cpu")
    assert model.spec.name == arch and model.feature_shape == (ARCHS[arch].feature_dim,)
    assert all(not m.training for m in model.modules())
    loaded = model.net.state_dict()
    weights = {k for k in sd if not k.endswith("num_batches_tracked")}
    assert weights == {k for k in loaded if not k.endswith("num_batches_tracked")}  # every key consumed
    for k in weights:
        assert torch.equal(loaded[k], sd[k]), k
    info = model.checkpoint
    assert info.format == ("pytorch-i3d" if arch == "inception_v1" else "pytorch-resnet3d")
    assert info.num_classes == (157 if arch == "inception_v1" else 400)
    assert any("classifier ignored" in n for n in info.notes)
    assert any("num_batches_tracked" in n for n in info.notes) == (arch != "r50")  # r50: as released, none


def test_wrappers_safetensors_and_errors(released: dict, tmp_path: Path) -> None:
    path, _ = released["inception_v1"]
    raw = torch.load(path, weights_only=True)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in raw.items()}, "epoch": 3}, wrapped)
    ck = load_i3d_checkpoint(wrapped)
    assert ck.format == "pytorch-i3d" and any("module." in n for n in ck.notes)
    nested = tmp_path / "nested.pt"
    torch.save({"module": raw, "optimizer": {}}, nested)  # a training script's checkpoint
    assert detect_backbone(nested).name == "i3d" and load_i3d_checkpoint(nested).spec.name == "inception_v1"
    st = tmp_path / "i3d.safetensors"
    save_file({k: v.contiguous() for k, v in raw.items() if v.is_floating_point()}, str(st))
    assert load_i3d_checkpoint(st).format == "pytorch-i3d-safetensors"
    assert detect_backbone(st).name == "i3d"

    broken = dict(raw)
    del broken["Mixed_4d.b1b.bn.running_var"]
    broken["Mixed_4d.extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): Mixed_4d\.b1b\.bn\.running_var.*"
                                              r"unexpected keys \(1\): Mixed_4d\.extra\.weight"):
        load_i3d_checkpoint(tmp_path / "broken.pt")
    flow = dict(raw)
    flow["Conv3d_1a_7x7.conv3d.weight"] = torch.zeros(64, 2, 7, 7, 7)
    torch.save(flow, tmp_path / "flow_imagenet.pt")
    with pytest.raises(CheckpointError, match="flow I3D"):
        load_i3d_checkpoint(tmp_path / "flow_imagenet.pt")
    r50, _ = released["r50"]
    two_d = torch.load(r50, weights_only=True)
    two_d["conv1.weight"] = torch.zeros(64, 3, 7, 7)  # torchvision's resnet50 has the same names
    torch.save(two_d, tmp_path / "resnet50_2d.pth")
    with pytest.raises(CheckpointError, match="2-D ResNet"):
        load_i3d_checkpoint(tmp_path / "resnet50_2d.pth")
    with pytest.raises(CheckpointError, match=r"holds i3d/r50 .* asked for is i3d/r50_nl"):
        BB.resolve(r50, arch="r50_nl")


def test_names_and_presets() -> None:
    assert resolve_model_name("i3d/r50")[1] == "r50"
    assert resolve_model_name("i3_res50_nl")[1] == "r50_nl"
    assert resolve_model_name("InceptionI3d") == (BB, "inception_v1")
    assert BB.default_preset == "i3d-rtfm" and BB.default_preset_for("inception_v1") == "i3d-xd"
    rtfm, xd = get_preset("i3d-rtfm"), get_preset("i3d-xd")
    # The wrapper: 16-frame snippets every 16, x * 2 / 255 - 1, RGB, 10 crops of 224 (extract_features.py).
    assert (rtfm.clip_len, rtfm.effective_stride, rtfm.tail) == (16, 16, "drop")
    assert (rtfm.crops, rtfm.size) == (10, 224)
    assert (rtfm.scale, rtfm.channel_order, rtfm.effective_crop_resize, rtfm.pooling) == (
        "minus_one_one", "RGB", 256, "pool")
    # XD-Violence: short side 256, five 224 crops tl, tr, bl, br, c (Roc-Ng/XDVioDet issue #5).
    assert (xd.crops, xd.crop_order, xd.effective_crop_resize) == (5, "torchvision", 256)
    assert (xd.scale, xd.channel_order, xd.clip_len) == ("minus_one_one", "RGB", 16)


def test_default_preset_follows_the_architecture_and_short_clips_fail_before_loading(
        released: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from vadfeat.pipeline.config import ExtractConfig

    # Named sizes: the ResNets go with i3d-rtfm, InceptionV1 with i3d-xd (their released weights).
    assert ExtractConfig.from_settings(model="i3d/r50", random_weights=True).preset.name == "i3d-rtfm"
    assert ExtractConfig.from_settings(model="InceptionI3d", random_weights=True).preset.name == "i3d-xd"
    # A checkpoint only: its key names say which (no --model, no --preset).
    assert ExtractConfig.from_settings(checkpoint=released["inception_v1"][0]).preset.name == "i3d-xd"
    assert ExtractConfig.from_settings(checkpoint=released["r50"][0]).preset.name == "i3d-rtfm"
    # Too short for the temporal kernels: refused while validating, before any weights are read.
    monkeypatch.setattr("vadfeat.backbones.i3d.backbone.I3DBackbone.load_model", None)
    with pytest.raises(ConfigError, match=r"clip_len=4 does not fit i3d/r50: it takes clips of at least 7"):
        ExtractConfig.from_settings(model="i3d/r50", random_weights=True, clip_len=4)
    with pytest.raises(ConfigError, match=r"at least 9 frames"):
        ExtractConfig.from_settings(model="i3d/inception_v1", random_weights=True, clip_len=8)


# --------------------------------------------------------------------------- end to end

VIDEOS = ("Abuse001_x264", "Normal_Videos_001_x264")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("i3d_videos") / "videos"
    for i, name in enumerate(VIDEOS):
        frames = synth.scene_frames(32, width=64, height=48, event_at=8 + 8 * i)
        synth.write_video(root / f"{name}.mp4", frames, fps=25)
    return root


def _run(videos: Path, out: Path, *extra: str) -> int:
    return main(["extract", str(videos), "-o", str(out), "--preset", "i3d-rtfm", "--model", "i3d/r50",
                 "--random-weights", "--quiet", *extra])


SMALL = ("--size", "64", "--short-side", "80", "--crop-resize", "80")  # 12x fewer pixels than 224


def test_extract_rtfm_end_to_end(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "one"
    assert _run(videos, out, "--crops", "1", *SMALL) == 0
    side = json.loads((out / "Abuse001_x264.json").read_text())
    assert side["shape"] == [2, 2048]  # floor(32 / 16) snippets, tail dropped
    assert side["preset"] == "i3d-rtfm" and side["model"]["name"] == "i3d/r50"
    assert side["model"]["random_weights"] is True and side["model"]["pooling"] == "pool"
    assert side["settings"]["scale"] == "minus_one_one" and side["settings"]["clip_len"] == 16
    before = (out / "Abuse001_x264.npy").read_bytes()
    assert _run(videos, out, "--crops", "1", *SMALL) == 0  # resume: nothing redone
    assert (out / "Abuse001_x264.npy").read_bytes() == before
    assert json.loads((out / "manifest.jsonl").read_text().splitlines()[-1])["status"] == "skipped"
    assert _run(videos, out, "--crops", "1", "--size", "48", "--short-side", "80") == 2  # changed settings

    ten = tmp_path / "ten"
    assert _run(videos, ten, *SMALL) == 0
    side = json.loads((ten / "Abuse001_x264.json").read_text())
    assert side["shape"] == [2, 10, 2048] and side["crop_order"][4] == "c"
    full, single = np.load(ten / "Abuse001_x264.npy"), np.load(out / "Abuse001_x264.npy")
    # Crop 4 (centre) of the 10: short side 80, centre 64 crop -- the same pixels as the one-crop run.
    np.testing.assert_allclose(full[:, 4], single, rtol=1e-4, atol=1e-5)
    assert not np.allclose(full[:, 9], single, atol=1e-3)  # its mirror differs

    assert main(["export", str(ten), "-o", str(tmp_path / "rtfm"), "--format", "rtfm"]) == 0
    assert np.array_equal(np.load(tmp_path / "rtfm" / "Abuse001_x264.npy"), full)
    assert main(["lists", str(ten), "--format", "rtfm", "--naming", "ucf", "--name", "ucf-i3d",
                 "-o", str(tmp_path / "lists")]) == 0
    train = (tmp_path / "lists" / "ucf-i3d-train.list").read_text().split()
    assert [Path(p).stem for p in train] == list(VIDEOS)  # abnormal first
    assert all(np.load(p).shape == (2, 10, 2048) for p in train)  # RTFM reads [T, 10, 2048]


def test_checkpoint_inspect_convert_and_extract(released: dict, videos: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = released["r50"]
    assert main(["checkpoint", "inspect", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "i3d" in shown and "pytorch-resnet3d" in shown and "pool (2048,)" in shown
    canonical = tmp_path / "r50.safetensors"
    assert main(["checkpoint", "convert", str(path), str(canonical), "--dtype", "fp32"]) == 0
    converted, original = load_i3d_checkpoint(canonical), load_i3d_checkpoint(path)
    assert converted.format == "pytorch-resnet3d-safetensors" and converted.num_classes is None  # fc dropped
    assert converted.state_dict.keys() == original.state_dict.keys()
    assert all(torch.equal(v, original.state_dict[k]) for k, v in converted.state_dict.items())
    out = tmp_path / "st"
    assert main(["extract", str(videos), "-o", str(out), "--checkpoint", str(canonical),
                 "--preset", "i3d-rtfm", "--crops", "1", *SMALL[:4], "--quiet"]) == 0
    side = json.loads((out / "Normal_Videos_001_x264.json").read_text())
    assert side["model"]["name"] == "i3d/r50" and side["model"]["random_weights"] is False
    assert side["model"]["checkpoint_sha256"] == converted.sha256


def test_extract_xd_from_a_released_layout(released: dict, tmp_path: Path) -> None:
    """InceptionV1 takes 224 px only (its [2, 7, 7] pool); one 16-frame snippet, one crop, to stay fast."""
    path, _ = released["inception_v1"]
    vids = tmp_path / "xd"
    synth.write_video(vids / "v=abc__#1_label_A.mp4", synth.scene_frames(16, width=64, height=48), fps=24)
    out = tmp_path / "out"
    assert main(["extract", str(vids), "-o", str(out), "--checkpoint", str(path), "--preset", "i3d-xd",
                 "--crops", "1", "--quiet"]) == 0
    (side_file,) = out.glob("*.json")
    side = json.loads(side_file.read_text())
    assert side["shape"] == [1, 1024] and side["model"]["name"] == "i3d/inception_v1"
    assert side["model"]["checkpoint_format"] == "pytorch-i3d"
    assert main(["extract", str(vids), "-o", str(tmp_path / "bad"), "--checkpoint", str(path),
                 "--preset", "i3d-xd", "--size", "112", "--quiet"]) == 2  # refused before any work
    # ceil(ceil(ceil(8/2)/2)/2) = 1 time step before the [2, 7, 7] pool: too short, a setting error.
    assert main(["extract", str(vids), "-o", str(tmp_path / "short"), "--checkpoint", str(path),
                 "--preset", "i3d-xd", "--clip-len", "8", "--crops", "1", "--quiet"]) == 2


@pytest.mark.slow
def test_extract_xd_five_crops_exports_and_lists(released: dict, tmp_path: Path) -> None:
    path, _ = released["inception_v1"]
    vids = tmp_path / "xd"
    for name in ("Fight__#1_label_B1-0-0", "Normal__#1_label_A"):
        synth.write_video(vids / f"{name}.mp4", synth.scene_frames(32, width=64, height=48), fps=24)
    out = tmp_path / "out"
    assert main(["extract", str(vids), "-o", str(out), "--checkpoint", str(path), "--preset", "i3d-xd",
                 "--quiet"]) == 0
    full = np.load(out / "Fight__#1_label_B1-0-0.npy")
    assert full.shape == (2, 5, 1024)
    assert main(["export", str(out), "-o", str(tmp_path / "urdmu"), "--format", "ur-dmu"]) == 0
    for k in range(5):
        assert np.array_equal(np.load(tmp_path / "urdmu" / f"Fight__#1_label_B1-0-0__{k}.npy"), full[:, k])
    split = tmp_path / "train.txt"  # XD-Violence needs its split: normal train/test videos share names
    split.write_text("Fight__#1_label_B1-0-0\nNormal__#1_label_A\n")
    assert main(["lists", str(tmp_path / "urdmu"), "--format", "ur-dmu", "--naming", "xd", "--name", "XD",
                 "--train-split", str(split), "-o", str(tmp_path / "lists")]) == 0
    train = (tmp_path / "lists" / "XD_Train.list").read_text().split()
    assert len(train) == 10 and "label_B1" in train[0]  # abnormal first, one line per crop


# --------------------------------------------------------------------------- dry-run sizes (issue 21)


def test_tiny_sizes_keep_the_real_geometry_one_sixteenth_as_wide() -> None:
    """``i3d/r50_tiny`` and ``i3d/inception_v1_tiny``: the same layers, kernels, strides and pools
    (so the same input sizes, frame minimum and snippet grid), every layer 1/16 as wide:
    features 2048 / 16 = 128 and 1024 / 16 = 64.  Shapes on the meta device, 16 x 224 x 224."""
    x = torch.empty(2, 3, 16, 224, 224, device="meta")
    for tiny, full, width in (("r50_tiny", "r50", 128), ("inception_v1_tiny", "inception_v1", 64)):
        t, f = ARCHS[tiny], ARCHS[full]
        assert resolve_model_name(f"i3d/{tiny}") == (BB, tiny)
        assert (t.family, t.img_size, t.fixed_size, t.min_frames) == (f.family, f.img_size, f.fixed_size,
                                                                      f.min_frames)
        assert BB.feature_shape(t, "pool") == (width,)
        assert BB.default_preset_for(tiny) == BB.default_preset_for(full)
        with torch.device("meta"):
            small, big = build_i3d(t), build_i3d(f)
        assert small.forward_maps(x).shape == (2, width, 2, 7, 7)  # [N, C, 2, 7, 7]: the real map's grid
        assert big.forward_maps(x).shape == (2, width * 16, 2, 7, 7)
        assert small(x).shape == (2, width)
        # One sixteenth of the widths: under 1/100 of the parameters.
        assert sum(p.numel() for p in small.parameters()) * 100 < sum(p.numel() for p in big.parameters())


def test_tiny_sizes_are_listed_in_models_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    shown = capsys.readouterr().out
    assert "i3d/r50_tiny" in shown and "i3d/inception_v1_tiny" in shown
    assert "Dry-run sizes" in shown and "--random-weights" in shown
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert "i3d/r50_tiny, i3d/inception_v1_tiny" in helptext.replace("- ", "-").replace("_ ", "_")


def test_tiny_i3d_ten_crops_end_to_end(tmp_path: Path) -> None:
    """``--model i3d/r50_tiny --random-weights --crops 10`` at the preset's own 224 px: the layout
    and snippet grid of i3d/r50 (``[T, 10, D]``, T = floor(32 / 16) = 2), D = 128 not 2048."""
    vids = tmp_path / "v"
    synth.write_video(vids / "cam.mp4", synth.scene_frames(32, width=64, height=48), fps=25)
    for tiny, width, preset in (("r50_tiny", 128, "i3d-rtfm"), ("inception_v1_tiny", 64, "i3d-xd")):
        out = tmp_path / tiny
        assert main(["extract", str(vids), "-o", str(out), "--model", f"i3d/{tiny}", "--random-weights",
                     "--crops", "10", "-q"]) == 0
        side = json.loads((out / "cam.json").read_text())
        assert side["shape"] == [2, 10, width] and np.load(out / "cam.npy").shape == (2, 10, width)
        assert side["preset"] == preset and side["model"]["random_weights"] is True
        assert side["model"]["name"] == f"i3d/{tiny}" and side["model"]["spec"]["channel_div"] == 16
