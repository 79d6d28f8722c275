"""Compression (legacy step 5): L1 pruning, int8 Linear layers, the compressed checkpoint, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils import prune as torch_prune

from vadfeat.backbones.loading import load_model
from vadfeat.backbones.videomae.compress import (
    Int8Attention,
    apply_quantization,
    compress_checkpoint,
    int8_quantize,
    l1_unstructured,
    quantize_int8,
)
from vadfeat.cli import main
from vadfeat.engines.local import FeatureExtractor, extract
from vadfeat.errors import ConfigError
from vadfeat.testing import synth

# The tiny model's Conv3d/Linear weights, listed by hand rather than by vadfeat's rule.
TINY_WEIGHTS = ["patch_embed.proj.weight"] + [
    f"blocks.{i}.{name}.weight" for i in range(2)
    for name in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
]


def _source_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["module"]


def _clips(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 16, 224, 224, generator=torch.Generator().manual_seed(seed))


@torch.inference_mode()
def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


# --------------------------------------------------------------------------- pruning


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_pruning_zeroes_the_stated_fraction_of_each_weight(tmp_path: Path, tiny_checkpoint: Path,
                                                            rate: float) -> None:
    out = compress_checkpoint(tiny_checkpoint, tmp_path / "p.safetensors", prune=rate, dtype="fp32").out
    stored = load_file(str(out))
    source = _source_state(tiny_checkpoint)
    for key in TINY_WEIGHTS:
        orig, got = source[key].float(), stored[key]
        assert int((orig == 0).sum()) == 0
        zeros = got == 0
        assert int(zeros.sum()) == round(rate * orig.numel()), key
        # The zeroed entries are the smallest by magnitude; the others are untouched.
        assert orig[zeros].abs().max() <= orig[~zeros].abs().min(), key
        torch.testing.assert_close(got[~zeros], orig[~zeros], rtol=0, atol=0)
    # Everything else (biases, norms, q/v bias) is not pruned.
    for key, value in stored.items():
        if key not in TINY_WEIGHTS:
            assert int((value == 0).sum()) == int((source[key] == 0).sum()), key


def test_l1_rule_is_torch_prune_rule() -> None:
    """Same entries as torch.nn.utils.prune.l1_unstructured + prune.remove (the legacy calls)."""
    layer = nn.Conv3d(3, 8, kernel_size=(2, 4, 4))
    ours = l1_unstructured(layer.weight, 0.3)
    torch_prune.l1_unstructured(layer, "weight", amount=0.3)
    torch_prune.remove(layer, "weight")
    torch.testing.assert_close(ours, layer.weight.detach(), rtol=0, atol=0)
    assert int((ours == 0).sum()) == round(0.3 * ours.numel())


# --------------------------------------------------------------------------- int8


def test_folded_attention_is_the_same_computation() -> None:
    """Folding q_bias/v_bias into the qkv bias changes nothing (checked with float layers)."""
    model = load_model(model="vit_tiny_patch16_224")
    attn = model.encoder.blocks[0].attn
    with torch.no_grad():
        attn.q_bias.normal_(0, 0.5)
        attn.v_bias.normal_(0, 0.5)
    folded = Int8Attention(attn, linear=lambda w, b: _float_linear(w, b))
    x = torch.randn(2, 37, 64)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), attn(x), rtol=0, atol=2e-6)


def _float_linear(w: torch.Tensor, b: torch.Tensor | None) -> nn.Module:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    lin.load_state_dict({"weight": w, "bias": b} if b is not None else {"weight": w})
    return lin


def test_int8_weights_round_trip_exactly(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """The int8 values in the file are the ones the loaded model computes with."""
    out = compress_checkpoint(tiny_checkpoint, tmp_path / "q.safetensors", prune=0.1,
                              quantize="int8").out
    stored = load_file(str(out))
    model = load_model(out, pooling="mean")
    assert model.quantize == "int8"
    layers = dict(model.encoder.named_modules())
    for key in TINY_WEIGHTS[1:]:
        assert stored[key].dtype == torch.int8
        layer = layers[key.rsplit(".", 1)[0]]
        qweight = layer.weight()
        torch.testing.assert_close(qweight.int_repr(), stored[key], rtol=0, atol=0)
        assert qweight.q_scale() == pytest.approx(float(stored[key + "_scale"]), rel=1e-6)
    # The Conv3d patch embedding is pruned but stays float.
    assert stored["patch_embed.proj.weight"].dtype == torch.float16
    # Scheme: symmetric, the largest |w| maps to 127.
    q, scale = int8_quantize(torch.tensor([[-2.54, 0.01, 1.0]]))
    assert q.tolist() == [[-127, 0, 50]] and scale == pytest.approx(0.02)


def test_compressed_features_stay_close_to_uncompressed(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Stated tolerances on the tiny model, fc_norm features (values up to ~3).

    Measured: int8 alone cosine 0.9999998, max |diff| 1.3e-3; 10 % pruning + int8
    cosine 0.999997, max |diff| 5.6e-3.  Asserted with margin: int8 alone cosine
    >= 0.9999 and max |diff| <= 0.02; with 10 % pruning cosine >= 0.999.  A wrong
    scale, a lost bias or a mis-ordered qkv gives cosines far below 0.9.
    """
    x = _clips()
    ref = _features(load_model(tiny_checkpoint), x)
    q_only = compress_checkpoint(tiny_checkpoint, tmp_path / "q.safetensors", quantize="int8").out
    both = compress_checkpoint(tiny_checkpoint, tmp_path / "pq.safetensors", prune=0.1,
                               quantize="int8").out
    got = _features(load_model(q_only), x)
    cos = torch.nn.functional.cosine_similarity(got, ref)
    assert cos.min() >= 0.9999 and (got - ref).abs().max() <= 0.02
    got2 = _features(load_model(both), x)
    assert torch.nn.functional.cosine_similarity(got2, ref).min() >= 0.999
    # The same int8 model is what --quantize int8 builds from the float checkpoint.
    direct = _features(quantize_int8(load_model(tiny_checkpoint)), x)
    torch.testing.assert_close(direct, got, rtol=0, atol=1e-3)


def test_quantize_needs_cpu_and_fp32(tiny_checkpoint: Path) -> None:
    model = load_model(tiny_checkpoint)
    with pytest.raises(ConfigError, match="CPU"):
        apply_quantization(model, "int8", explicit=True, device=torch.device("cuda"))
    # A compressed checkpoint on a GPU runs its int8-rounded weights in float instead.
    assert apply_quantization(model, "int8", explicit=False, device=torch.device("cuda")) is model
    with pytest.raises(ConfigError, match="fp32"):
        FeatureExtractor(tiny_checkpoint, device="cpu", dtype="bf16", quantize="int8")
    with pytest.raises(ConfigError, match="int8"):
        load_model(tiny_checkpoint, quantize="int4")


# --------------------------------------------------------------------------- extraction, sidecars, CLI


def test_compressed_checkpoint_runs_in_extract_and_is_recorded(tmp_path: Path,
                                                               tiny_checkpoint: Path) -> None:
    synth.write_video(tmp_path / "v" / "a.mp4", synth.scene_frames(40, seed=1), fps=25)
    ckpt = tmp_path / "vit_t_p10_int8.safetensors"
    assert main(["compress", str(tiny_checkpoint), "-o", str(ckpt), "--prune", "10%",
                 "--quantize", "int8"]) == 0
    assert main(["extract", str(tmp_path / "v"), "-o", str(tmp_path / "c"), "--checkpoint",
                 str(ckpt), "-q"]) == 0
    meta = json.loads((tmp_path / "c" / "a.json").read_text())
    assert meta["model"]["quantize"] == "int8"
    assert meta["model"]["checkpoint_format"] == "vadfeat-compressed"
    assert meta["fingerprint"]["quantize"] == "int8"

    # --quantize int8 on the float checkpoint: recorded, and resume tells the two apart.
    plain = extract([tmp_path / "v"], tmp_path / "f", checkpoint=tiny_checkpoint, progress=False)
    assert plain.ok == 1
    assert "quantize" not in json.loads((tmp_path / "f" / "a.json").read_text())["fingerprint"]
    # Other settings over existing outputs: a decision (--overwrite), not an accident (issue 10).
    assert main(["extract", str(tmp_path / "v"), "-o", str(tmp_path / "f"), "--checkpoint",
                 str(tiny_checkpoint), "--quantize", "int8", "-q"]) == 2
    assert main(["extract", str(tmp_path / "v"), "-o", str(tmp_path / "f"), "--checkpoint",
                 str(tiny_checkpoint), "--quantize", "int8", "-q", "--overwrite"]) == 0
    meta = json.loads((tmp_path / "f" / "a.json").read_text())
    assert meta["model"]["quantize"] == "int8" and meta["fingerprint"]["quantize"] == "int8"
    again = extract([tmp_path / "v"], tmp_path / "f", checkpoint=tiny_checkpoint, quantize="int8",
                    progress=False)
    assert (again.ok, again.skipped) == (0, 1)
    a = np.load(tmp_path / "c" / "a.npy")
    b = np.load(tmp_path / "f" / "a.npy")
    assert a.shape == b.shape == (2, 64)


def test_compress_cli_reports_and_refuses(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    out = tmp_path / "c.safetensors"
    assert main(["compress", str(tiny_checkpoint), "-o", str(out), "--prune", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "9 Conv3d/Linear weights at 50%" in text and "no (float weights)" in text
    assert main(["checkpoint", "inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "vadfeat-compressed"
    assert info["compression"]["prune"] == 0.5 and info["compression"]["quantize"] is None
    # Pruned only: a float model.
    assert getattr(load_model(out), "quantize", None) is None
    assert main(["compress", str(out), "-o", str(tmp_path / "again.safetensors"), "--prune", "0.1"]) == 2
    assert main(["compress", str(tiny_checkpoint), "-o", str(tmp_path / "x.safetensors")]) == 2
    assert main(["compress", str(tiny_checkpoint), "-o", str(tmp_path / "x.pth"), "--prune", "0.1"]) == 2
    with pytest.raises(SystemExit):
        main(["compress", str(tiny_checkpoint), "-o", str(tmp_path / "y.safetensors"), "--prune", "1.5"])
    assert not (tmp_path / "x.safetensors").exists() and not list(tmp_path.glob(".*.tmp"))
