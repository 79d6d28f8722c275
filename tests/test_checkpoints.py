"""Every checkpoint format users have, written here in its real layout, reads the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import reference
from vadfeat.backbones.loading import load_model
from vadfeat.backbones.videomae.checkpoints import load_checkpoint, save_canonical
from vadfeat.backbones.videomae.model import VideoMAEv2, get_spec, init_random
from vadfeat.cli import main
from vadfeat.errors import CheckpointError

SPEC = get_spec("vit_tiny_patch16_224")


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    """Official-key weights whose values are exactly representable in fp16.

    Rounding once through fp16 makes the fp16 and fp32 files hold the same numbers,
    so "bit-identical features" is a fair demand across all formats.
    """
    enc = VideoMAEv2(SPEC)
    init_random(enc, seed=11)
    return {k: v.half().float() for k, v in enc.state_dict().items()}


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.randn(2, 3, 16, 224, 224, generator=torch.Generator().manual_seed(4))


def features(ckpt, clip: torch.Tensor, pooling: str = "fc_norm") -> torch.Tensor:
    with torch.inference_mode():
        return load_model(ckpt, pooling=pooling)(clip)


def to_transformers(sd: dict[str, torch.Tensor], *, style: str) -> dict[str, torch.Tensor]:
    """The transformers key layout (as VideoMAEForVideoClassification.state_dict())."""
    return reference.to_transformers(sd, SPEC.depth, style=style, head=7)


def hub_config() -> dict:
    return {"model_config": {"img_size": 224, "patch_size": 16, "embed_dim": 64, "depth": 2,
                             "num_heads": 2, "mlp_ratio": 4, "tubelet_size": 2, "num_frames": 16,
                             "qkv_bias": True, "use_mean_pooling": True}}


def write_all_formats(root: Path, sd: dict[str, torch.Tensor]) -> dict[str, tuple[Path, str]]:
    """Each case: (path, expected detected format)."""
    head = {"head.weight": torch.zeros(710, SPEC.embed_dim), "head.bias": torch.zeros(710)}
    half = {k: v.half() for k, v in (sd | head).items()}
    cases: dict[str, tuple[Path, str]] = {}

    def pth(name: str, obj: object, fmt: str) -> None:
        torch.save(obj, root / name)
        cases[name] = (root / name, fmt)

    pth("zoo_module_fp16.pth", {"module": half, "epoch": 30}, "pth")
    pth("zoo_model_fp32.pth", {"model": sd | head, "optimizer": {"lr": 0.1}}, "pth")
    pth("zoo_toplevel.pth", sd, "pth")
    for prefix in ("module.", "backbone.", "encoder.", "_orig_mod.", "module._orig_mod."):
        pth(f"prefix_{prefix.strip('.').replace('.', '_')}.pth",
            {"model": {prefix + k: v for k, v in half.items()}}, "pth")
    hub = root / "VideoMAEv2-tiny"
    hub.mkdir()
    (hub / "config.json").write_text(json.dumps(hub_config()))
    save_file({"model." + k: v for k, v in half.items()}, str(hub / "model.safetensors"))
    cases["hub_prefixed"] = (hub, "hf-hub")
    hub2 = root / "VideoMAEv2-tiny-noprefix"
    hub2.mkdir()
    (hub2 / "config.json").write_text(json.dumps(hub_config()))
    save_file(dict(half), str(hub2 / "model.safetensors"))
    cases["hub_plain"] = (hub2, "hf-hub")
    for style in ("4.x", "5.x"):
        tsd = to_transformers(sd, style=style)
        pth(f"transformers_{style}.pth", tsd, "transformers")
        save_file(tsd, str(root / f"transformers_{style}.safetensors"))
        cases[f"transformers_{style}.safetensors"] = (root / f"transformers_{style}.safetensors",
                                                      "transformers")
    save_canonical(sd, root / "canonical.safetensors", dtype="fp32")
    cases["canonical.safetensors"] = (root / "canonical.safetensors", "safetensors")
    return cases


def test_all_formats_bit_identical(tmp_path: Path, weights, clip) -> None:
    ref_path = tmp_path / "reference.pth"
    torch.save(weights, ref_path)
    want = features(ref_path, clip)
    cases = write_all_formats(tmp_path, weights)
    assert len(cases) >= 14
    for name, (path, fmt) in cases.items():
        _, info = load_checkpoint(path)
        assert info.format == fmt, (name, info.format, info.detail)
        assert info.model_name == "vit_tiny_patch16_224"
        assert len(info.sha256) == 64
        got = features(path, clip)
        assert torch.equal(got, want), f"{name}: max diff {(got - want).abs().max()}"
        if name in ("zoo_module_fp16.pth", "zoo_model_fp32.pth", "hub_prefixed"):
            assert {"head.weight", "head.bias"} <= set(info.ignored_keys), name


def test_fp16_checkpoint_reports_dtype(tmp_path: Path, weights) -> None:
    torch.save({"module": {k: v.half() for k, v in weights.items()}}, tmp_path / "a.pth")
    _, info = load_checkpoint(tmp_path / "a.pth")
    assert info.dtype == "float16"
    assert "'module'" in info.detail
    assert info.num_params == SPEC.num_params


def test_pretraining_checkpoint(tmp_path: Path, weights, clip) -> None:
    enc = {"encoder." + k: v for k, v in weights.items() if not k.startswith("fc_norm")}
    enc |= {"encoder.norm.weight": torch.ones(64), "encoder.norm.bias": torch.zeros(64)}
    dec = {"decoder.blocks.0.norm1.weight": torch.ones(32), "decoder.head.weight": torch.zeros(1536, 32),
           "mask_token": torch.zeros(1, 1, 32), "encoder_to_decoder.weight": torch.zeros(32, 64)}
    path = tmp_path / "vit_t_pt_800e.pth"
    torch.save({"model": enc | dec}, path)
    _, info = load_checkpoint(path)
    assert info.format == "pth-pretrain"
    assert not info.has_fc_norm
    assert {"mask_token", "encoder_to_decoder.weight", "norm.weight"} <= set(info.ignored_keys)
    ref = tmp_path / "ref.pth"
    torch.save(weights, ref)
    for pooling in ("mean", "stats"):
        assert torch.equal(features(path, clip, pooling), features(ref, clip, pooling))
    with pytest.raises(CheckpointError, match=r"no fc_norm.*'mean' or 'stats'"):
        load_model(path, pooling="fc_norm")


def test_transformers_folder_takes_eps_from_config(tmp_path: Path, weights, clip) -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.VideoMAEConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
        image_size=224, patch_size=16, num_frames=16, use_mean_pooling=True, num_labels=7,
    )  # default layer_norm_eps 1e-12, fc_norm 1e-5: not the official 1e-6
    ref = transformers.VideoMAEForVideoClassification(cfg).eval()
    ref.load_state_dict(to_transformers(weights, style="5.x"))
    ref.save_pretrained(tmp_path / "hf")
    model = load_model(tmp_path / "hf")
    assert model.spec.norm_eps == 1e-12 and model.spec.fc_norm_eps == 1e-5
    with torch.inference_mode():
        tokens = ref.videomae(pixel_values=clip.permute(0, 2, 1, 3, 4)).last_hidden_state
        want = ref.fc_norm(tokens.mean(1))
        got = model(clip)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert load_checkpoint(tmp_path / "hf")[1].format == "transformers"


def test_model_mismatch_names_both_sizes(tmp_path: Path, weights) -> None:
    torch.save(weights, tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError, match=r"holds vit_tiny_patch16_224.*vit_small_patch16_224"):
        load_model(tmp_path / "tiny.pth", model="vit_small_patch16_224")


@pytest.mark.parametrize("damage", ["truncated", "random", "text", "empty"])
def test_broken_files_fail_clearly(tmp_path: Path, weights, damage: str) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({"model": weights}, path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "random":
        path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    elif damage == "text":
        path.write_text("this is not a checkpoint\n")
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_model(path)


class Payload:
    def __reduce__(self):  # what a malicious pickle would do: call something on load
        return (print, ("payload ran",))


def test_pickle_payload_refused(tmp_path: Path, weights, capsys) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": weights, "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert "payload ran" not in capsys.readouterr().out


def test_unsafe_allow_pickle_converts_a_trusted_file(tmp_path: Path, weights, capsys) -> None:
    """The opt-in really unpickles (the payload runs: that is why the flag says UNSAFE);
    the converted safetensors then loads safely, with the same tensors."""
    path = tmp_path / "trusted.pth"
    torch.save({"model": weights, "extra": Payload()}, path)
    assert main(["checkpoint", "convert", str(path), str(tmp_path / "ok.safetensors")]) == 2
    assert "payload ran" not in capsys.readouterr().out
    assert main(["checkpoint", "convert", "--unsafe-allow-pickle", "--dtype", "fp32", str(path),
                 str(tmp_path / "ok.safetensors")]) == 0
    assert "payload ran" in capsys.readouterr().out
    state, info = load_checkpoint(tmp_path / "ok.safetensors")
    assert info.format == "safetensors"
    assert all(torch.equal(state[k], weights[k].float()) for k in state)


def test_missing_and_unexpected_keys_named(tmp_path: Path, weights) -> None:
    broken = dict(weights)
    del broken["blocks.1.mlp.fc2.bias"]
    broken["blocks.0.attn.k_bias"] = torch.zeros(64)
    torch.save(broken, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match=r"missing keys.*blocks\.1\.mlp\.fc2\.bias") as err:
        load_model(tmp_path / "b.pth")
    assert "blocks.0.attn.k_bias" in str(err.value)


def test_unknown_width_needs_heads(tmp_path: Path) -> None:
    from dataclasses import replace

    spec = replace(SPEC, name="odd", embed_dim=48, num_heads=3, mlp_hidden=96)
    enc = VideoMAEv2(spec)
    torch.save(enc.state_dict(), tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="num_heads"):
        load_checkpoint(tmp_path / "odd.pth")
    model = load_model(tmp_path / "odd.pth", num_heads=3)
    assert model.spec.num_heads == 3 and model.spec.embed_dim == 48


def test_random_weights_are_flagged_and_deterministic(clip) -> None:
    a = load_model(model="vit_tiny_patch16_224")
    b = load_model(model="vit_tiny_patch16_224")
    assert a.random_weights and a.checkpoint is None
    with torch.inference_mode():
        assert torch.equal(a(clip), b(clip))


def test_cli_inspect_and_convert(tmp_path: Path, weights, clip, capsys) -> None:
    src = tmp_path / "zoo.pth"
    torch.save({"module": {"backbone." + k: v.half() for k, v in weights.items()}}, src)
    assert main(["checkpoint", "inspect", str(src)]) == 0
    out = capsys.readouterr().out
    assert "model-zoo checkpoint" in out and "backbone." in out and "vit_tiny_patch16_224" in out
    assert "float16" in out
    dst = tmp_path / "tiny.safetensors"
    assert main(["checkpoint", "convert", str(src), str(dst), "--dtype", "fp32"]) == 0
    assert load_checkpoint(dst)[1].format == "safetensors"
    assert torch.equal(features(dst, clip), features(src, clip))
    assert main(["checkpoint", "inspect", str(tmp_path / "nope.pth")]) == 2
    assert main(["models"]) == 0
    assert "vit_giant_patch14_224" in capsys.readouterr().out


def test_hf_uri_goes_through_hub(monkeypatch, tmp_path: Path, weights, clip) -> None:
    """hf://owner/repo@rev is fetched with huggingface_hub (mocked: no network in tests)."""
    hub = pytest.importorskip("huggingface_hub")
    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(hub_config()))
    save_file({"model." + k: v for k, v in weights.items()}, str(folder / "model.safetensors"))
    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision))
        return str(folder)

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot_download)
    model = load_model("hf://OpenGVLab/VideoMAEv2-tiny@main")
    assert calls == [("OpenGVLab/VideoMAEv2-tiny", "main")]
    assert model.checkpoint.format == "hf-hub"


# --------------------------------------------------------------------------- damaged configs (issue 11)


def _hub(root: Path, weights, config: object, *, tensors: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    save_file(tensors if tensors is not None else {"model." + k: v for k, v in weights.items()},
              str(root / "model.safetensors"))
    return root


def _model_config(**changes: object) -> dict:
    cfg = hub_config()
    cfg["model_config"].update(changes)
    return cfg


# Each config value that inspect passed and extract crashed on (or a traceback), and the
# field the error must name.
BAD_CONFIGS = {
    "img_size-text": (_model_config(img_size="abc"), "model_config.img_size"),
    "num_heads-text": (_model_config(num_heads="2"), "model_config.num_heads"),
    "num_frames-0": (_model_config(num_frames=0), "model_config.num_frames"),
    "num_frames-true": (_model_config(num_frames=True), "model_config.num_frames"),
    "img_size-not-patches": (_model_config(img_size=40), "img_size 40"),
    "model_config-list": ({"model_config": [1, 2]}, "model_config must be a JSON object"),
    "config-list": ([1, 2], "config.json must hold a JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_hub_config_is_a_checkpoint_error(tmp_path: Path, weights, case: str, caplog) -> None:
    config, field = BAD_CONFIGS[case]
    hub = _hub(tmp_path / "hub", weights, config)
    with pytest.raises(CheckpointError, match=field.replace(".", r"\.")):
        load_checkpoint(hub)
    assert main(["checkpoint", "inspect", str(hub)]) == 2


def test_bad_transformers_eps_is_a_checkpoint_error(tmp_path: Path, weights) -> None:
    tensors = to_transformers(weights, style="5.x")
    for eps in ("x", -1.0, None):  # JSON null: present but not a number
        hub = _hub(tmp_path / f"hf{eps}", weights, {"model_type": "videomae", "layer_norm_eps": eps},
                   tensors=tensors)
        with pytest.raises(CheckpointError, match="layer_norm_eps"):
            load_checkpoint(hub)


@pytest.mark.parametrize("key", ["blocks.0.mlp.fc1.weight", "patch_embed.proj.weight",
                                 "blocks.1.attn.qkv.weight"])
def test_scalar_where_a_matrix_belongs(tmp_path: Path, weights, key: str) -> None:
    sd = dict(weights)
    sd[key] = torch.tensor(1.0)  # 0-d
    save_file(sd, str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        load_model(tmp_path / "w.safetensors")


@pytest.mark.parametrize("record, field", [
    ({"prune": "x"}, "prune"), ({"prune": 1.5}, "prune"), ({"quantize": 3}, "quantize"),
    ({"quantize": "int4"}, "quantize"), ({"source_sha256": 5}, "source_sha256"),
    ({"num_heads": "2"}, "num_heads"), ({"source_format": ["pth"]}, "source_format"),
])
def test_compression_record_with_wrong_types(tmp_path: Path, weights, record: dict,
                                             field: str) -> None:
    path = tmp_path / "c.safetensors"
    save_file(dict(weights), str(path), metadata={"vadfeat_compression": json.dumps(record)})
    with pytest.raises(CheckpointError, match=f"{field} must be"):
        load_checkpoint(path)
    assert main(["checkpoint", "inspect", str(path)]) == 2


def test_convert_follows_the_umask(tmp_path: Path, weights) -> None:
    import os

    src = tmp_path / "w.pth"
    torch.save(weights, src)
    old = os.umask(0o027)
    try:
        assert main(["checkpoint", "convert", str(src), str(tmp_path / "a.safetensors")]) == 0
        save_canonical(weights, tmp_path / "b.safetensors")
    finally:
        os.umask(old)
    # 0o666 & ~0o027 = 0o640 (safetensors alone writes 0o600)
    assert (tmp_path / "a.safetensors").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.safetensors").stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------- vadfeat's own modules (issue 21)

# Each backbone's module as vadfeat builds it (its state_dict() keys carry the wrapper's prefix:
# encoder., frame_model., net.), I3D by both routes, with a clip it accepts: (model, clip shape).
OWN_MODULES = {
    "videomae_v2/vit_tiny_patch16_224": (1, 3, 16, 224, 224),
    "clip/vit_tiny_16": (2, 3, 4, 224, 224),
    "i3d/r50_tiny": (2, 3, 8, 64, 64),
    "i3d/r50_nl": (1, 3, 8, 32, 32),  # released width, the non-local keys
    "i3d/inception_v1_tiny": (1, 3, 9, 224, 224),  # its [2, 7, 7] pool needs 193 px or more
}


@pytest.mark.parametrize("container", ["pt", "safetensors"])
@pytest.mark.parametrize("name", sorted(OWN_MODULES))
def test_a_saved_state_dict_of_vadfeats_own_model_loads_back(tmp_path: Path, name: str,
                                                               container: str) -> None:
    """``torch.save(model.state_dict())`` (and safetensors of it) of any model ``load_model``
    builds is detected and gives the same features.  Exact (``torch.equal``): the same float32
    weights run through the same code on the same CPU, so not even float rounding differs."""
    built = load_model(model=name, seed=7)
    path = tmp_path / f"own.{container}"
    state = built.state_dict()
    if container == "pt":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = load_model(path)
    assert loaded.backbone == built.backbone and loaded.spec == built.spec
    assert loaded.random_weights is False and built.random_weights is True
    x = torch.rand(OWN_MODULES[name], generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(loaded(x), built(x)), name


def test_extract_with_a_saved_clip_model_gives_the_random_runs_features(tmp_path: Path) -> None:
    """The issue's case, through the command line: ``frame_model.*`` keys were refused as
    "not a VideoMAE V2 state dict".  Same features as the random-weight run they were saved
    from, exactly (``np.array_equal``: same weights, same code, same CPU)."""
    import numpy as np

    from vadfeat.testing import synth

    synth.write_video(tmp_path / "v" / "cam.mp4", synth.scene_frames(32, width=64, height=48))
    saved = tmp_path / "clip_own.pt"
    torch.save(load_model(model="clip/vit_tiny_16").state_dict(), saved)  # seed 0, as the CLI's
    common = ["extract", str(tmp_path / "v"), "--crops", "1", "-q"]  # clip-vadclip: 2 snippets of 16
    assert main([*common, "-o", str(tmp_path / "rand"), "--model", "clip/vit_tiny_16",
                 "--random-weights"]) == 0
    assert main([*common, "-o", str(tmp_path / "back"), "--checkpoint", str(saved)]) == 0
    side = json.loads((tmp_path / "back" / "cam.json").read_text())
    assert side["model"]["name"] == "clip/vit_tiny_16" and side["model"]["random_weights"] is False
    a, b = np.load(tmp_path / "rand" / "cam.npy"), np.load(tmp_path / "back" / "cam.npy")
    assert a.shape == (2, 32) and np.array_equal(a, b)


def test_a_file_no_backbone_claims_names_each_backbone_and_why(tmp_path: Path, caplog) -> None:
    import logging

    from vadfeat.backbones._registry import detect_backbone, list_backbones
    from vadfeat.errors import ConfigError

    path = tmp_path / "mystery.pt"
    torch.save({"stem.weight": torch.zeros(4, 3), "head.bias": torch.zeros(4)}, path)
    with pytest.raises(ConfigError) as err:
        detect_backbone(path)
    text = str(err.value)
    assert isinstance(err.value, CheckpointError)  # what callers of the checkpoint readers catch
    assert text.startswith(f"{path}: ") and "stem.weight" in text
    for bb in list_backbones():  # every registered family, each with its reason
        assert f"not {bb.name}: " in text, bb.name
    assert "not videomae_v2: no patch_embed.proj.weight" in text
    assert "not clip: no visual.conv1.weight" in text and "lacks conv1.weight" in text
    assert "not i3d: no pytorch-resnet3d keys (lacks conv1.weight" in text
    from vadfeat.testing import synth

    synth.write_video(tmp_path / "v" / "cam.mp4", synth.scene_frames(8, width=64, height=48))
    with caplog.at_level(logging.INFO):
        assert main(["extract", str(tmp_path / "v"), "-o", str(tmp_path / "out"),
                     "--checkpoint", str(path)]) == 2
    assert any(str(path) in r.getMessage() and "not i3d: " in r.getMessage()
               for r in caplog.records if r.levelno >= logging.ERROR)
    with pytest.raises(ConfigError, match="not i3d: "):
        load_model(path)


def test_a_plugin_sniff_without_a_reason_is_still_listed(tmp_path: Path, monkeypatch) -> None:
    """A plug-in written before sniff gave reasons (it returns a bare bool) is named too."""
    from vadfeat.backbones import _registry
    from vadfeat.errors import ConfigError

    class Old(_registry.Backbone):
        name = "old_plugin"

        def sniff(self, path, keys, config) -> bool:  # type: ignore[override]
            return False

    _registry.list_backbones()  # the built-ins registered first
    monkeypatch.setitem(_registry._BACKBONES, "old_plugin", Old())
    path = tmp_path / "mystery.safetensors"
    save_file({"stem.weight": torch.zeros(2)}, str(path))
    with pytest.raises(ConfigError, match=r"not old_plugin: its sniff\(\) gives no reason"):
        _registry.detect_backbone(path)
