"""CLIP image encoder: parity with transformers, every checkpoint format, errors, sizes.

Parity tolerance: max abs difference <= 1e-5 (fp32) between this encoder and
``transformers.CLIPVisionModelWithProjection`` on the same weights and input, for the
projected embedding and the pre-projection token.  Checkpoint formats must give
bit-identical weights and features (``torch.equal``).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from reference import clip_to_transformers
from vadfeat.backbones.clip.checkpoints import (
    CLIP_FORMATS,
    detect_clip,
    load_clip_checkpoint,
    read_torchscript_state_dict,
    transformers_to_openai,
)
from vadfeat.backbones.clip.model import (
    CLIP_ARCHS,
    FEATURES,
    ClipVisionSpec,
    ClipVisual,
    build_clip_visual,
    feature_dim,
    infer_spec,
)
from vadfeat.errors import CheckpointError, ConfigError

transformers = pytest.importorskip("transformers")

TOL = 1e-5  # fp32 parity bound of the issue
TINY = ClipVisionSpec("tiny", 32, 8, 128, 2, 2, 32)  # heads = 128 // 64 as OpenAI derives them


def _randomised(spec: ClipVisionSpec, seed: int = 0, fp16_exact: bool = False) -> dict[str, torch.Tensor]:
    """OpenAI-layout weights with every tensor random (LayerNorm gains/biases too, so a
    swapped or missing mapping cannot hide behind 1/0 defaults)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in ClipVisual(spec).state_dict().items():
        base = 1.0 if key.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight")) else 0.0
        t = base + 0.05 * torch.randn(value.shape, generator=g)
        sd[key] = t.half().float() if fp16_exact else t
    return sd


def _model(spec: ClipVisionSpec, sd: dict[str, torch.Tensor]) -> ClipVisual:
    model = build_clip_visual(spec)
    model.load_state_dict(sd, strict=True)
    return model


def _hf_config(spec: ClipVisionSpec, **changes):
    fields = dict(
        hidden_size=spec.width,
        intermediate_size=4 * spec.width,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=spec.output_dim,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    fields.update(changes)
    return transformers.CLIPVisionConfig(**fields)


def _hf_features(hf, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = hf(pixel_values=x)
        token = hf.vision_model(pixel_values=x).pooler_output
    return out.image_embeds, token


def _ours(model: ClipVisual, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(x), model(x, feature="token")


# --------------------------------------------------------------------------- (a) parity

PARITY = {
    # B/16 at full width and heads, depth reduced; L/14-shaped likewise.
    "b16": ClipVisionSpec("b16_depth3", 224, 16, 768, 3, 12, 512),
    "l14": ClipVisionSpec("l14_depth2", 224, 14, 1024, 2, 16, 768),
}


@pytest.mark.parametrize("name", sorted(PARITY))
def test_parity_with_transformers_random_init(name):
    """transformers model (random init, perturbed) -> transformers_to_openai -> this encoder."""
    spec = PARITY[name]
    torch.manual_seed(1)
    hf = transformers.CLIPVisionModelWithProjection(_hf_config(spec)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.02 * torch.randn_like(p))
    sd = transformers_to_openai(hf.state_dict())
    model = _model(spec, sd)
    x = torch.randn(2, 3, spec.image_size, spec.image_size)
    (he, ht), (oe, ot) = _hf_features(hf, x), _ours(model, x)
    assert oe.shape == (2, spec.output_dim) and ot.shape == (2, spec.width)
    assert (oe - he).abs().max().item() <= TOL
    assert (ot - ht).abs().max().item() <= TOL
    assert he.abs().mean() > 0.1  # features are not vanishingly small, so the bound means something


@pytest.mark.parametrize("name", sorted(PARITY))
def test_parity_independent_mapping_through_save_pretrained(name, tmp_path):
    """OpenAI-layout weights -> the test's own reverse mapping -> save_pretrained -> from_pretrained.

    Does not go through transformers_to_openai; then the folder is read back by
    load_clip_checkpoint and must give the original tensors exactly.
    """
    spec = PARITY[name]
    sd = _randomised(spec, seed=2)
    hf = transformers.CLIPVisionModelWithProjection(_hf_config(spec)).eval()
    hf.load_state_dict(clip_to_transformers(sd), strict=True)
    hf.save_pretrained(tmp_path / "hf")
    hf = transformers.CLIPVisionModelWithProjection.from_pretrained(tmp_path / "hf").eval()
    x = torch.randn(2, 3, spec.image_size, spec.image_size, generator=torch.Generator().manual_seed(3))
    (he, ht), (oe, ot) = _hf_features(hf, x), _ours(_model(spec, sd), x)
    assert (oe - he).abs().max().item() <= TOL
    assert (ot - ht).abs().max().item() <= TOL
    ck = load_clip_checkpoint(tmp_path / "hf")
    assert ck.format == "transformers"
    assert ck.spec.width == spec.width and ck.spec.layers == spec.layers and ck.spec.heads == spec.heads
    assert ck.state_dict.keys() == sd.keys()
    assert all(torch.equal(ck.state_dict[k], sd[k]) for k in sd)


# --------------------------------------------------------------------------- (b) formats


class _OpenAIShaped(nn.Module):
    """OpenAI's CLIP layout: image tower under ``visual``, a few text-tower names beside it."""

    def __init__(self, visual: ClipVisual) -> None:
        super().__init__()
        self.visual = visual
        self.token_embedding = nn.Embedding(10, 16)
        self.positional_embedding = nn.Parameter(torch.randn(7, 16))  # text tower's, same name
        self.logit_scale = nn.Parameter(torch.ones([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * x.mean()


def _write_torchscript(path: Path, sd: dict[str, torch.Tensor]) -> None:
    module = _OpenAIShaped(_model(TINY, sd)).half()  # released OpenAI archives hold fp16 weights
    traced = torch.jit.trace(module, torch.randn(1, 3, 32, 32))
    torch.jit.save(traced, str(path))


def _openai_keys(sd: dict[str, torch.Tensor], dtype=torch.float32) -> dict[str, torch.Tensor]:
    out = {f"visual.{k}": v.to(dtype) for k, v in sd.items()}
    out["token_embedding.weight"] = torch.randn(10, 16).to(dtype)
    out["positional_embedding"] = torch.randn(7, 16).to(dtype)  # the text tower's
    out["transformer.resblocks.0.attn.in_proj_weight"] = torch.randn(48, 16).to(dtype)  # text too
    out["logit_scale"] = torch.ones([]).to(dtype)
    return out


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("clipformats")
    sd = _randomised(TINY, seed=4, fp16_exact=True)  # exactly representable in fp16
    files = {}
    files["openai-torchscript"] = root / "ViT-tiny.pt"
    _write_torchscript(files["openai-torchscript"], sd)
    files["openai-state-dict"] = root / "openai_sd.pt"
    torch.save(_openai_keys(sd), files["openai-state-dict"])
    files["visual-only"] = root / "visual.pt"
    torch.save(dict(sd), files["visual-only"])
    files["openai-safetensors"] = root / "openai.safetensors"
    save_file(_openai_keys(sd, torch.float16), str(files["openai-safetensors"]))
    files["open_clip"] = root / "epoch_3.pt"
    wrapped = {f"module.{k}": v for k, v in _openai_keys(sd).items()}
    torch.save({"epoch": 3, "name": "run", "state_dict": wrapped}, files["open_clip"])
    files["transformers"] = root / "hf_vision"
    hf = transformers.CLIPVisionModelWithProjection(_hf_config(TINY))
    hf.load_state_dict(clip_to_transformers(sd), strict=True)
    hf.save_pretrained(files["transformers"])
    files["transformers-clipmodel"] = root / "hf_clip"
    config = transformers.CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
        vision_config=_hf_config(TINY).to_dict(),
        projection_dim=TINY.output_dim,
    )
    clip = transformers.CLIPModel(config)
    missing, unexpected = clip.load_state_dict(clip_to_transformers(sd), strict=False)
    assert not unexpected and all(k.startswith(("text_", "logit_scale")) for k in missing)
    clip.save_pretrained(files["transformers-clipmodel"])
    files["transformers-bin"] = root / "hf_bin"  # pytorch_model.bin instead of model.safetensors
    files["transformers-bin"].mkdir()
    torch.save(hf.state_dict(), files["transformers-bin"] / "pytorch_model.bin")
    (files["transformers-bin"] / "config.json").write_text(
        (files["transformers"] / "config.json").read_text()
    )
    files["transformers-state-dict"] = root / "hf_bare.safetensors"
    save_file(clip_to_transformers(sd), str(files["transformers-state-dict"]))
    return sd, files


EXPECTED_FORMAT = {
    "openai-torchscript": "openai-torchscript",
    "openai-state-dict": "openai-state-dict",
    "visual-only": "openai-state-dict",
    "openai-safetensors": "openai-safetensors",
    "open_clip": "open_clip",
    "transformers": "transformers",
    "transformers-clipmodel": "transformers",
    "transformers-bin": "transformers",
    "transformers-state-dict": "transformers-state-dict",
}


def test_every_format_gives_identical_weights_and_features(tiny_files):
    sd, files = tiny_files
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    reference = _ours(_model(TINY, sd), x)
    assert set(EXPECTED_FORMAT.values()) <= set(CLIP_FORMATS)
    for label, path in files.items():
        ck = load_clip_checkpoint(path)
        assert ck.format == EXPECTED_FORMAT[label], label
        assert ck.spec == ClipVisionSpec("custom", 32, 8, 128, 2, 2, 32), label
        assert ck.state_dict.keys() == sd.keys(), label
        assert all(ck.state_dict[k].dtype == torch.float32 for k in sd), label
        assert all(torch.equal(ck.state_dict[k], sd[k]) for k in sd), label
        features = _ours(_model(ck.spec, ck.state_dict), x)
        assert torch.equal(features[0], reference[0]) and torch.equal(features[1], reference[1]), label
        assert len(ck.sha256) == 64
    notes = " | ".join(load_clip_checkpoint(files["openai-torchscript"]).notes)
    assert "float16 tensors converted to float32" in notes
    assert "3 non-visual entries ignored" in notes  # token_embedding, positional_embedding, logit_scale


def test_torchscript_reader_matches_torch_jit_load(tiny_files):
    """The no-code reader returns what torch.jit.load's state_dict holds (our own trusted file)."""
    _, files = tiny_files
    ours = read_torchscript_state_dict(files["openai-torchscript"])
    reference = torch.jit.load(str(files["openai-torchscript"])).state_dict()
    assert ours.keys() == reference.keys()
    assert all(ours[k].dtype == reference[k].dtype and torch.equal(ours[k], reference[k]) for k in ours)


# --------------------------------------------------------------------------- (c) errors


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_missing_unexpected_and_nonfloat_keys_are_named(tmp_path):
    sd = _openai_keys(_randomised(TINY))
    del sd["visual.transformer.resblocks.1.mlp.c_fc.bias"]
    sd["visual.extra_head.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_clip_checkpoint(tmp_path / "bad.pt")
    text = str(err.value)
    assert "missing visual keys (1): transformer.resblocks.1.mlp.c_fc.bias" in text
    assert "unexpected visual keys (1): extra_head.weight" in text
    sd = _openai_keys(_randomised(TINY))
    del sd["visual.proj"]
    torch.save(sd, tmp_path / "noproj.pt")
    with pytest.raises(CheckpointError, match=r"noproj.pt: .*key 'proj' is missing"):
        load_clip_checkpoint(tmp_path / "noproj.pt")
    sd = _openai_keys(_randomised(TINY))
    sd["visual.proj"] = sd["visual.proj"].long()
    torch.save(sd, tmp_path / "int.pt")
    with pytest.raises(CheckpointError, match=r"'proj' has dtype torch.int64"):
        load_clip_checkpoint(tmp_path / "int.pt")


def test_truncated_and_missing_files(tmp_path, tiny_files):
    _, files = tiny_files
    for label in ("openai-state-dict", "openai-torchscript"):
        data = files[label].read_bytes()
        (tmp_path / f"{label}.pt").write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match=label):
            load_clip_checkpoint(tmp_path / f"{label}.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_clip_checkpoint(tmp_path / "absent.pt")


def test_foreign_global_in_plain_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "was_run"
    torch.save({"visual.proj": torch.zeros(2, 2), "payload": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="mkdir"):
        load_clip_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_foreign_global_in_torchscript_archive_is_refused_and_not_run(tmp_path, tiny_files):
    _, files = tiny_files
    marker = tmp_path / "was_run"
    bad = tmp_path / "evil_script.pt"
    with zipfile.ZipFile(files["openai-torchscript"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl") and info.filename.count("/") == 1:
                data = pickle.dumps(_Evil(marker), protocol=2)
            dst.writestr(info, data)
    with pytest.raises(CheckpointError, match=r"global posix\.mkdir|global os\.mkdir|global nt\.mkdir"):
        load_clip_checkpoint(bad)
    assert not marker.exists()


def test_damaged_torchscript_pickle_is_a_checkpoint_error(tmp_path, tiny_files):
    _, files = tiny_files
    bad = tmp_path / "garbled.pt"
    with zipfile.ZipFile(files["openai-torchscript"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl") and info.filename.count("/") == 1:
                data = data[: len(data) // 2]  # cut mid-stream
            dst.writestr(info, data)
    with pytest.raises(CheckpointError, match="damaged TorchScript archive"):
        load_clip_checkpoint(bad)


def test_transformers_head_count_comes_from_config(tmp_path):
    """A folder whose num_attention_heads is not width // 64 keeps its own head count."""
    spec = ClipVisionSpec("h4", 32, 8, 128, 2, 4, 32)  # 4 heads of 32, not OpenAI's 128 // 64 = 2
    sd = _randomised(spec, seed=7)
    hf = transformers.CLIPVisionModelWithProjection(_hf_config(spec)).eval()
    hf.load_state_dict(clip_to_transformers(sd), strict=True)
    hf.save_pretrained(tmp_path / "h4")
    ck = load_clip_checkpoint(tmp_path / "h4")
    assert ck.spec.heads == 4 and ck.spec.name == "custom"
    x = torch.randn(2, 3, 32, 32)
    (he, _), (oe, _) = _hf_features(hf, x), _ours(_model(ck.spec, ck.state_dict), x)
    assert (oe - he).abs().max().item() <= TOL
    (oe2, _) = _ours(_model(replace(spec, heads=2), sd), x)
    assert (oe2 - he).abs().max().item() > 1e-3  # the head count matters, so the check above is real


def test_transformers_folder_with_gelu_is_refused(tmp_path):
    hf = transformers.CLIPVisionModelWithProjection(_hf_config(TINY, hidden_act="gelu"))
    hf.save_pretrained(tmp_path / "gelu")
    with pytest.raises(CheckpointError, match="hidden_act is 'gelu'"):
        load_clip_checkpoint(tmp_path / "gelu")


def test_detect_clip_on_key_names():
    assert detect_clip(["visual.conv1.weight", "logit_scale"])
    assert detect_clip(["module.visual.class_embedding"])
    assert detect_clip(["vision_model.embeddings.patch_embedding.weight"])
    assert detect_clip(["conv1.weight", "class_embedding", "positional_embedding", "proj"])
    videomae = ["patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "norm.weight", "head.weight"]
    assert not detect_clip(videomae)
    assert not detect_clip(["encoder." + k for k in videomae])
    assert not detect_clip(["positional_embedding", "token_embedding.weight"])  # a text tower alone


def test_not_a_clip_checkpoint(tmp_path):
    torch.save({"patch_embed.proj.weight": torch.zeros(2)}, tmp_path / "videomae.pt")
    with pytest.raises(CheckpointError, match="not a CLIP image-encoder checkpoint"):
        load_clip_checkpoint(tmp_path / "videomae.pt")


# --------------------------------------------------------------------------- (d) sizes


@pytest.mark.parametrize("name", sorted(CLIP_ARCHS))
def test_infer_spec_from_shapes(name):
    spec = CLIP_ARCHS[name]
    with torch.device("meta"):
        sd = ClipVisual(spec).state_dict()
    # by hand: tokens = 1 + (image/patch)^2, e.g. 1 + (336/14)^2 = 577 for vit_l_14_336
    assert sd["positional_embedding"].shape[0] == 1 + (spec.image_size // spec.patch_size) ** 2
    assert infer_spec(sd) == spec
    assert feature_dim(spec, "embedding") == spec.output_dim and feature_dim(spec, "token") == spec.width


def test_arch_table_and_features():
    # OpenAI's released sizes (clip/model.py build_model reads them from the checkpoints)
    assert CLIP_ARCHS["vit_b_16"] == ClipVisionSpec("vit_b_16", 224, 16, 768, 12, 12, 512)
    assert CLIP_ARCHS["vit_l_14_336"].num_tokens == 577
    assert FEATURES == ("embedding", "token")
    with pytest.raises(ConfigError, match="unknown CLIP feature"):
        feature_dim(TINY, "patches")
    with pytest.raises(ConfigError, match="unknown CLIP architecture"):
        build_clip_visual("vit_h_14")
    model = build_clip_visual(TINY)
    with pytest.raises(ConfigError, match=r"expects \[B, 3, 32, 32\]"):
        model(torch.zeros(1, 3, 48, 48))


def test_fp16_weights_layer_norm_in_fp32():
    """OpenAI's LayerNorm computes in fp32 and casts back: an fp16 model tracks the fp32 one."""
    sd = _randomised(TINY, seed=6, fp16_exact=True)
    x = torch.randn(2, 3, 32, 32)
    ref = _model(TINY, sd)(x)
    half = _model(TINY, sd).half()
    with torch.no_grad():
        out = half(x.half()).float()
    assert out.dtype == torch.float32 and (out - ref).abs().max().item() < 5e-2
