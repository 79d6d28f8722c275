"""CLIP as the second backbone, end to end: detection, presets, the snippet grid, resume, export,
dataset tools; and the registry (namespaced names, aliases, plug-ins).

The model is CLIP-shaped with the test size ``clip/vit_tiny_16`` (224 px, patch 16, width 64,
2 layers, 1 head, 32-d embedding) so a run takes seconds.  Independent references:
``transformers.CLIPVisionModelWithProjection`` with the same weights (mapped by a function
written in this file, not vadfeat's) for the features of one snippet, and per-frame features
(``clip-frames``) for the snippet reductions (mean of 16 frames, middle frame).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from reference import clip_to_transformers
from vadfeat import FeatureExtractor, read_features
from vadfeat.backbones import _registry
from vadfeat.backbones._registry import (
    Backbone,
    FeatureHead,
    canonical_model_name,
    detect_backbone,
    list_backbones,
    resolve_model_name,
)
from vadfeat.backbones.clip.backbone import ARCHS, init_random
from vadfeat.backbones.clip.model import ClipVisual
from vadfeat.cli import main
from vadfeat.errors import CheckpointError, ConfigError, UnknownModelError
from vadfeat.io.video import open_video
from vadfeat.pipeline.presets import get_preset
from vadfeat.pipeline.transforms import build_frame_transform
from vadfeat.testing import synth

transformers = pytest.importorskip("transformers")

TINY = ARCHS["vit_tiny_16"]
FRAMES = 40  # 2 snippets of 16 (tail dropped), 40 frame features


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    visual = ClipVisual(TINY)
    init_random(visual, seed=3)
    g = torch.Generator().manual_seed(5)  # LayerNorm gains off 1 so a swapped mapping shows
    sd = {k: (v + 0.1 * torch.randn(v.shape, generator=g) if k.endswith("ln_post.weight") else v)
          for k, v in visual.state_dict().items()}
    return sd


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, weights: dict[str, torch.Tensor]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clip")
    video = root / "videos" / "scene.mp4"
    synth.write_video(video, synth.scene_frames(FRAMES, width=96, height=64, event_at=20), fps=25)
    openai = root / "openai_tiny.pt"
    torch.save({f"visual.{k}": v for k, v in weights.items()} | {"logit_scale": torch.ones([])}, openai)
    hf_dir = root / "hf_tiny"
    hf = transformers.CLIPVisionModelWithProjection(_hf_config())
    hf.load_state_dict(clip_to_transformers(weights), strict=True)
    hf.save_pretrained(hf_dir)
    safet = root / "visual.safetensors"
    save_file({k: v.contiguous() for k, v in weights.items()}, str(safet))
    return {"video": video, "videos": video.parent, "openai": openai, "hf": hf_dir, "safetensors": safet}


def _hf_config() -> object:
    return transformers.CLIPVisionConfig(
        hidden_size=TINY.width, intermediate_size=4 * TINY.width, num_hidden_layers=TINY.layers,
        num_attention_heads=TINY.heads, image_size=TINY.image_size, patch_size=TINY.patch_size,
        projection_dim=TINY.output_dim, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    )


def _extract(files: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["extract", str(files["videos"]), "-o", str(out), "--checkpoint", str(files["openai"]),
                 "--quiet", *extra])


# --------------------------------------------------------------------------- detection and names


def test_backbone_detected_from_each_checkpoint_format(files: dict[str, Path], tiny_checkpoint: Path) -> None:
    for key in ("openai", "hf", "safetensors"):
        assert detect_backbone(files[key]).name == "clip", key
    assert detect_backbone(tiny_checkpoint).name == "videomae_v2"


def test_names_are_namespaced_with_aliases() -> None:
    assert [b.name for b in list_backbones()][:2] == ["videomae_v2", "clip"]
    assert resolve_model_name("clip/vit_b_16")[1] == "vit_b_16"
    assert resolve_model_name("ViT-B/16")[1] == "vit_b_16"  # OpenAI's own name
    assert resolve_model_name("videomae_v2/vit_g_14")[1] == "vit_giant_patch14_224"
    assert resolve_model_name("vit_giant_patch14_224")[0].name == "videomae_v2"  # historical name
    both = r"ambiguous.*videomae_v2/vit_base_patch16_224, clip/vit_b_16"
    with pytest.raises(UnknownModelError, match=both):
        resolve_model_name("vit_b_16")
    assert resolve_model_name("vit_b_16", backbone="clip")[1] == "vit_b_16"
    with pytest.raises(UnknownModelError, match="unknown model 'clip/vit_x'"):
        resolve_model_name("clip/vit_x")
    # What fingerprints compare: VideoMAE V2 keeps the recorded names, CLIP is qualified.
    assert canonical_model_name("videomae_v2/vit_g_14") == "vit_giant_patch14_224"
    assert canonical_model_name("ViT-B-16") == "clip/vit_b_16"


def test_a_plugin_backbone_registers_through_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    class Toy(Backbone):
        name = "toy"
        title = "a plug-in"
        features = (FeatureHead("vec", "a vector", lambda s: (4,)),)

        def architectures(self):  # type: ignore[override]
            return {"toy_1": get_preset}  # any object: only listed here

    class EP:
        name, value = "toy", "toy_pkg:Toy"

        def load(self) -> type:
            return Toy

    class Broken(EP):
        name, value = "broken", "broken_pkg:nothing"

        def load(self) -> type:
            raise ImportError("no module named broken_pkg")

    monkeypatch.setattr(_registry, "_BACKBONES", dict(_registry._BACKBONES))
    monkeypatch.setattr(_registry, "_entry_points_loaded", False)
    monkeypatch.setattr(_registry.metadata, "entry_points", lambda group: [EP(), Broken()])
    names = [b.name for b in list_backbones()]
    assert names[-1] == "toy" and "broken" not in names  # a broken plug-in is skipped, with a warning
    assert resolve_model_name("toy/toy_1")[0].name == "toy"


def test_model_and_checkpoint_of_different_backbones_fail_before_work(files: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert _extract(files, out, "--model", "vit_tiny_patch16_224") == 2
    assert not out.exists() or not any(out.glob("*.npy"))
    with pytest.raises(CheckpointError, match="clip checkpoint"):
        FeatureExtractor(files["openai"], model="vit_tiny_patch16_224")
    with pytest.raises(ConfigError, match="size=256 does not fit clip/vit_tiny_16"):
        FeatureExtractor(files["openai"], crops=1, size=256, short_side=256, crop_resize=256)
    with pytest.raises(ConfigError, match="no feature 'fc_norm'"):
        FeatureExtractor(files["openai"], pooling="fc_norm")


# --------------------------------------------------------------------------- numbers


def test_snippet_features_equal_transformers_on_the_same_frames(files: dict[str, Path]) -> None:
    """One crop: each row is the mean over the snippet's 16 frames of transformers' image embedding
    of vadfeat's preprocessed frames (the model and the reduction checked independently)."""
    fx = FeatureExtractor(files["openai"], preset="clip-vadclip", crops=1, device="cpu")
    result = fx.extract_video(files["video"])
    assert result.features.shape == (2, TINY.output_dim)  # floor(40 / 16) snippets, 32-d embeddings
    assert result.metadata["model"]["name"] == "clip/vit_tiny_16"
    assert result.metadata["model"]["backbone"] == "clip"
    hf = transformers.CLIPVisionModelWithProjection.from_pretrained(files["hf"]).eval()
    transform = build_frame_transform(fx.preset)
    with open_video(files["video"]) as reader:
        frames = torch.stack([transform(f)[0] for _, f in reader][:32])  # [32, 3, 224, 224]
    with torch.no_grad():
        per_frame = hf(pixel_values=frames).image_embeds
    expected = per_frame.reshape(2, 16, -1).mean(dim=1).numpy()
    np.testing.assert_allclose(result.features, expected, rtol=0, atol=1e-5)  # fp32 parity bound


def test_formats_give_bit_identical_features(files: dict[str, Path]) -> None:
    feats = {k: FeatureExtractor(files[k], crops=1, device="cpu").extract_video(files["video"]).features
             for k in ("openai", "hf", "safetensors")}
    assert np.array_equal(feats["openai"], feats["hf"])
    assert np.array_equal(feats["openai"], feats["safetensors"])


def test_per_frame_features_and_the_two_reductions_agree(files: dict[str, Path]) -> None:
    fx = FeatureExtractor(files["openai"], preset="clip-frames", device="cpu")
    frames = fx.extract_video(files["video"])
    assert frames.features.shape == (FRAMES, TINY.output_dim)  # one row per frame
    assert frames.metadata["snippets"][:2] == [[0, 0], [1, 1]]
    mean = FeatureExtractor(files["openai"], crops=1, device="cpu").extract_video(files["video"]).features
    middle = FeatureExtractor(files["openai"], crops=1, frame_reduce="middle",
                              device="cpu").extract_video(files["video"]).features
    f = frames.features
    np.testing.assert_allclose(mean, np.stack([f[0:16].mean(0), f[16:32].mean(0)]), atol=1e-5)
    np.testing.assert_allclose(middle, np.stack([f[8], f[24]]), atol=1e-6)  # frame 16t + 16 // 2


# --------------------------------------------------------------------------- runs, resume, layouts


def test_cli_run_resume_crops_and_layouts(files: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "feats"
    assert _extract(files, out) == 0  # preset: the backbone's default, clip-vadclip (10 crops)
    side = json.loads((out / "scene.json").read_text())
    assert side["preset"] == "clip-vadclip" and side["shape"] == [2, 10, 32]
    assert side["crop_order"][:2] == ["c", "tl"]  # centre first, as VadCLIP's _0 file
    before = (out / "scene.npy").read_bytes()
    assert _extract(files, out) == 0  # resume: nothing redone
    assert (out / "scene.npy").read_bytes() == before
    assert json.loads((out / "manifest.jsonl").read_text().splitlines()[-1])["status"] == "skipped"
    assert _extract(files, out, "--crops", "5") == 2  # changed settings stop the run
    per_crop = tmp_path / "per-crop"
    assert _extract(files, per_crop, "--layout", "per-crop") == 0
    full = np.load(out / "scene.npy")
    for k in (0, 9):
        assert np.array_equal(np.load(per_crop / f"scene__{k}.npy"), full[:, k])
    # exports derive any downstream layout from the one extraction
    assert main(["export", str(out), "-o", str(tmp_path / "vadclip"), "--format", "vadclip"]) == 0
    assert np.array_equal(np.load(tmp_path / "vadclip" / "scene__5.npy"), full[:, 5])
    assert main(["checkpoint", "inspect", str(files["openai"])]) == 0
    shown = capsys.readouterr().out
    assert "backbone    clip" in shown and "openai-state-dict" in shown and "embedding (32,)" in shown
    canonical = tmp_path / "clip_tiny.safetensors"
    assert main(["checkpoint", "convert", str(files["openai"]), str(canonical), "--dtype", "fp32"]) == 0
    again = tmp_path / "again"
    assert main(["extract", str(files["videos"]), "-o", str(again), "--checkpoint", str(canonical),
                 "--quiet"]) == 0
    assert np.array_equal(np.load(again / "scene.npy"), full)  # same weights, same features


@pytest.mark.slow  # ~15 s: every dataset tool on a CLIP extraction
def test_dataset_tools_on_clip_features(tmp_path: Path) -> None:
    from vadfeat.demo import run_demo

    result = run_demo(tmp_path / "demo", model="clip/vit_tiny_16", progress=False)
    assert result.summary.failed == [] and result.summary.ok == 4
    fs = read_features(result.features)
    shapes = {r.name: r.shape for r in fs}
    assert shapes["test_event"] == (248 // 16, 10, 32)
    gt = np.load(result.aligned)
    assert gt.shape[0] == 16 * (200 // 16 + 248 // 16)  # frame-level GT cut to the snippet grid
    assert result.report.exists() and all(p.exists() for p in result.lists)
