"""Bad settings are usage errors (exit 2) found before any work, in the flags' words (issue 11)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vadfeat.cli import build_parser, flag_words, main
from vadfeat.engines.local import FeatureExtractor
from vadfeat.engines.progress import LineProgress, progress_bar
from vadfeat.errors import ConfigError
from vadfeat.pipeline.validate import MAX_BATCH_SIZE, check_settings
from vadfeat.testing import synth

# `vadfeat.engines.local` the attribute is the function; the module is looked up by name.
extract_module = importlib.import_module("vadfeat.pipeline.extractor")
# load_checkpoint is read by the VideoMAE V2 backbone's read_weights hook (Backbone.load_model template)
loading_module = importlib.import_module("vadfeat.backbones.videomae.checkpoints")

TINY = ["--random-weights", "--model", "vit_tiny_patch16_224"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("v")
    synth.write_video(d / "a.mp4", synth.scene_frames(20, width=32, height=32), fps=25)
    return d


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to load weights or build the model fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(extract_module, "load_model", refuse)
    monkeypatch.setattr(loading_module, "load_checkpoint", refuse)


def run(argv: list[str], caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.INFO):
        code = main(argv)
    return code, caplog.text


# The tiny model has 2-frame tubelets and 16-pixel patches: a clip must be 2k frames of
# 16m pixels.  Nearest valid values worked out from that: 1 -> 2; 3 -> 2 or 4; 40 -> 32 or 48.
GEOMETRY = {
    "clip-len-1": (["--clip-len", "1"], "--clip-len 1 does not fit", "nearest: 2;"),
    "clip-len-3": (["--clip-len", "3"], "--clip-len 3 does not fit", "nearest: 2 or 4"),
    "size-40": (["--size", "40", "--short-side", "48"], "--size 40 does not fit", "nearest: 32 or 48"),
}


@pytest.mark.parametrize("case", sorted(GEOMETRY))
def test_geometry_refused_before_loading(tmp_path: Path, videos: Path, no_model: None, case: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    flags, says, nearest = GEOMETRY[case]
    out = tmp_path / "out"
    code, text = run(["extract", str(videos), "-o", str(out), "-q", *TINY, *flags], caplog)
    assert code == 2
    assert says in text and nearest in text
    assert not out.exists()  # nothing planned, nothing written


def _tiny_state() -> dict[str, torch.Tensor]:
    from vadfeat.backbones.videomae.model import VideoMAEv2, get_spec

    return VideoMAEv2(get_spec("vit_tiny_patch16_224")).state_dict()


@pytest.mark.parametrize("kind", ["pth", "safetensors", "hub"])
def test_geometry_read_from_the_checkpoint_header(tmp_path: Path, videos: Path, no_model: None,
                                                  kind: str, caplog: pytest.LogCaptureFixture) -> None:
    state = _tiny_state()
    if kind == "pth":
        ckpt = tmp_path / "w.pth"
        torch.save({"module": state}, ckpt)
    elif kind == "safetensors":
        ckpt = tmp_path / "w.safetensors"
        save_file({"model." + k: v for k, v in state.items()}, str(ckpt))
    else:
        ckpt = tmp_path / "hub"
        ckpt.mkdir()
        (ckpt / "config.json").write_text(json.dumps({"model_config": {
            "patch_size": 16, "tubelet_size": 2, "img_size": 224, "num_frames": 16}}))
        save_file(state, str(ckpt / "model.safetensors"))
    code, text = run(["extract", str(videos), "-o", str(tmp_path / "o"), "-q", "-c", str(ckpt),
                      "--clip-len", "3"], caplog)
    assert code == 2 and "--clip-len 3 does not fit" in text


def test_geometry_checked_against_the_loaded_model_too(tiny_checkpoint: Path) -> None:
    # A legacy (non-zip) .pth cannot be memory-mapped, so its header is not peeked at:
    # the loaded model's geometry still refuses the clip before any video.
    legacy = tiny_checkpoint.with_name("legacy.pth")
    torch.save(torch.load(tiny_checkpoint), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ConfigError, match="clip_len=5 does not fit"):
        FeatureExtractor(legacy, clip_len=5, device="cpu")


@pytest.mark.parametrize("flags, says", [
    (["--fps", "0"], "--fps must be a positive number"),
    (["--fps", "nan"], "--fps must be a positive number"),
    (["--folder-fps", "0"], "--folder-fps must be a positive number"),
    (["--folder-fps", "-5"], "--folder-fps must be a positive number"),
    (["-b", "0"], "--batch-size must be a positive integer"),
    (["--stride", "0"], "--stride must be >= 1"),
])
def test_rates_and_counts_refused_before_work(tmp_path: Path, videos: Path, no_model: None,
                                              flags: list[str], says: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    # Today `--fps 0` made every video "failed: unexpected ConfigError" and exit 1.
    out = tmp_path / "out"
    code, text = run(["extract", str(videos), "-o", str(out), "-q", *TINY, *flags], caplog)
    assert code == 2 and says in text
    assert not out.exists()


@pytest.mark.parametrize("config, says", [
    ({"preset": 3},
     "--preset must be one of clip-anomalyclip, clip-frames, clip-tsa, clip-vadclip, "
     "clip-video-features, fed-wsvad, i3d-gowtham, i3d-pel4vad, i3d-piergiaj, i3d-rtfm, "
     "i3d-rtfm-author, i3d-video-features, i3d-xd, vggish, vggish-xd, videomae-tad, videomae-v2, "
         "got 3"),
    ({"root": 1}, "--root must be a string, got 1"),
    ({"device": {}}, "--device must be a string, got {}"),
    ({"clip-len": 16.0}, "--clip-len must be an integer, got 16.0"),
    ({"crops": True}, "--crops must be one of 1, 3, 5, 10, got True"),
    ({"random_weights": "yes"}, "--random-weights must be true or false"),
    ({"tail": "both"}, "--tail must be one of drop, pad"),
    ({"fps": "30"}, "--fps must be a number"),
    ({"workers": None}, "--workers must be given"),  # batch-size: null is its default (issue 21)
    ({"inputs": "a.mp4"}, "INPUT must be a list of strings"),
])
def test_config_file_typed_as_the_flags(tmp_path: Path, videos: Path, no_model: None, config: dict,
                                        says: str, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(config))
    code, text = run(["extract", str(videos), "-o", str(tmp_path / "o"), *TINY, "--config",
                      str(cfg)], caplog)
    assert code == 2
    assert f"{cfg}: {says}" in text
    assert "Traceback" not in text


def test_config_file_values_are_used(tmp_path: Path, videos: Path, caplog) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"tail": "pad", "clip-len": 8, "devices": ["cpu"], "quiet": True,
                               "random-weights": True, "model": "vit_tiny_patch16_224",
                               "size": 32, "short_side": 32}))
    out = tmp_path / "o"
    code, _ = run(["extract", str(videos), "-o", str(out), "--config", str(cfg)], caplog)
    assert code == 0
    side = json.loads((out / "a.json").read_text())
    # 20 frames, 8-frame snippets, tail pad: ceil(20 / 8) = 3 snippets
    assert side["settings"]["tail"] == "pad" and len(side["snippets"]) == 3


def test_messages_use_the_flags_words(tmp_path: Path, videos: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    code, text = run(["extract", str(videos), "-o", str(tmp_path / "o"), "-q"], caplog)
    assert code == 2
    assert "--checkpoint PATH, or --random-weights" in text and "random_weights=True" not in text
    # A 20-frame video is shorter than one 32-frame snippet: the reason names --tail pad.
    code, text = run(["extract", str(videos), "-o", str(tmp_path / "o"), "-q", *TINY,
                      "--clip-len", "32", "--size", "32", "--short-side", "32"], caplog)
    assert code == 1
    assert "--tail pad" in text and "tail='pad'" not in text


def test_other_commands_speak_their_flags_too(tmp_path: Path, videos: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    # `frames` refuses short_side=0 in the library's words; the command says its flag.
    code, text = run(["frames", str(videos), "-o", str(tmp_path / "f"), "--short-side", "0"], caplog)
    assert code == 2
    assert "--short-side must be positive" in text and "short_side" not in text


def test_flag_words_rules() -> None:
    p = argparse.ArgumentParser()
    for flag in ("--clip-len", "--random-weights", "--tail", "--fps", "--size", "--short-side",
                 "--model"):
        p.add_argument(flag)
    p.add_argument("-b", "--batch-size")
    assert flag_words("pass random_weights=True", p) == "pass --random-weights"
    assert flag_words("tail='pad' would keep it", p) == "--tail pad would keep it"
    assert flag_words("batch_size must be", p) == "--batch-size must be"
    assert flag_words("fps must be > 0; size (40) vs short_side (32)", p) == \
        "--fps must be > 0; --size (40) vs --short-side (32)"
    # Names inside paths, and one-word names used as words, stay as they are.
    assert flag_words("cannot open /data/clip_len/x.mp4", p) == "cannot open /data/clip_len/x.mp4"
    assert flag_words("the model in w.pth has size 40", p) == "the model in w.pth has size 40"


def _all_commands() -> list[list[str]]:
    out: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out.append([*prefix, name])
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return out


def test_no_help_shows_default_none(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _all_commands()
    assert ["extract"] in commands and ["checkpoint", "convert"] in commands and ["frames"] in commands
    for command in [[], *commands]:
        with pytest.raises(SystemExit) as exc:
            main([*command, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "(default: None)" not in text, command
        assert "(default: False)" not in text, command
    # Defaults that exist are still shown.
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    assert "(default: flat)" in capsys.readouterr().out  # --layout


def test_huge_batch_is_capped_with_a_warning(tmp_path: Path, videos: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ext = FeatureExtractor(random_weights=True, model="vit_tiny_patch16_224", device="cpu",
                               batch_size=100_000, size=32, short_side=32)
    assert ext.batch_size == MAX_BATCH_SIZE == 512
    assert "capped to 512" in caplog.text
    code, text = run(["extract", str(videos), "-o", str(tmp_path / "o"), "-q", *TINY,
                      "-b", "100000", "--size", "32", "--short-side", "32"], caplog)
    assert code == 0 and "--batch-size 100000 capped to 512" in text


def test_library_settings_checked_without_a_model() -> None:
    with pytest.raises(ConfigError, match="clip_len=3"):
        check_settings({"random_weights": True, "model": "vit_tiny_patch16_224", "clip_len": 3})
    with pytest.raises(ConfigError, match="unknown model"):
        check_settings({"random_weights": True, "model": "vit_nope"})
    with pytest.raises(ConfigError, match="num_heads"):
        check_settings({"checkpoint": "x.pth", "num_heads": "2"})
    check_settings({"random_weights": True, "model": "vit_giant_patch14_224", "size": 14 * 16,
                    "clip_len": 4})


def test_compress_follows_the_umask(tmp_path: Path, tiny_checkpoint: Path) -> None:
    old = os.umask(0o027)
    try:
        assert main(["compress", str(tiny_checkpoint), "-o", str(tmp_path / "c.safetensors"),
                     "--quantize", "int8"]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "c.safetensors").stat().st_mode & 0o777 == 0o640  # 0o666 & ~0o027


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_is_plain_lines_in_a_log(caplog: pytest.LogCaptureFixture) -> None:
    class NotATerminal:
        def isatty(self) -> bool:
            return False

        def write(self, s: str) -> None:
            raise AssertionError("nothing is drawn on a non-terminal stream")

    assert isinstance(progress_bar(3, enabled=True, desc="extract", unit="video",
                                   stream=NotATerminal()), LineProgress)
    clock = _Clock()
    bar = LineProgress(3, desc="extract", unit="video", interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="vadfeat.engines.progress"):
        bar.update(1)  # t=0: no line yet
        clock.t = 4.0
        bar.set_postfix_str("2.0 snippets/s")
        bar.update(1)  # t=4: still within 10 s
        clock.t = 12.0
        bar.update(0)  # t=12: one line
        clock.t = 13.0
        bar.update(1)
        bar.close()  # the end, because a line was printed
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["extract: 2/3 videos, 2.0 snippets/s", "extract: 3/3 videos, 2.0 snippets/s"]
    assert not any("\r" in line for line in lines)


def test_ray_engine_checks_the_same_settings_before_ray(tmp_path: Path, videos: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import vadfeat.engines.ray as distributed

    def no_ray() -> None:
        raise AssertionError("Ray was started before the settings were checked")

    monkeypatch.setattr(distributed, "_import_ray", no_ray)
    with pytest.raises(ConfigError, match="clip_len=3 does not fit"):
        distributed.extract_ray([videos], tmp_path / "o", random_weights=True,
                                model="vit_tiny_patch16_224", clip_len=3)
    with pytest.raises(ConfigError, match="fps must be a positive number"):
        distributed.extract_ray([videos], tmp_path / "o", random_weights=True,
                                model="vit_tiny_patch16_224", fps=0.0)


def test_mean_and_std_flags_scale_pixels_as_asked(tmp_path: Path, videos: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # RTFM's author describes mean 114.75 and std 57.375 on 0..255 pixels (issue 22): on the
    # 0..1 scale that is 0.45 / 0.225.  The transform's output must equal that arithmetic,
    # done here in numpy on the x / 255 values of the same preset (float32: 1e-5).
    import numpy as np

    from vadfeat.pipeline.presets import get_preset
    from vadfeat.pipeline.transforms import transform_frames

    frame = torch.from_numpy(next(iter(synth.scene_frames(1, width=64, height=48)))).permute(2, 0, 1)
    base = get_preset("videomae-v2").replace(size=32, short_side=32, crops=10, crop_resize=36)
    unit = transform_frames(frame, base.replace(scale="unit")).numpy().astype(np.float64)
    ours = transform_frames(frame, base.replace(scale="imagenet", mean=(0.45,) * 3,
                                                std=(0.225,) * 3)).numpy()
    np.testing.assert_allclose(ours, (unit * 255 - 114.75) / 57.375, atol=1e-5, rtol=0)

    # From the command line: recorded in the sidecar, and different from the default's.
    out = tmp_path / "o"
    code, text = run(["extract", str(videos), "-o", str(out), *TINY, "--size", "32",
                      "--short-side", "32", "--mean", "0.45", "--std", "0.225", "-q"], caplog)
    assert code == 0, text
    side = json.loads((out / "a.json").read_text())
    assert side["settings"]["mean"] == [0.45] * 3 and side["settings"]["std"] == [0.225] * 3
    assert side["overrides"]["mean"] == [0.45] * 3
    # A config file gives them as JSON lists of numbers, typed as the flags.
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"mean": [0.45, 0.45, 0.45], "std": [0.225, 0.225, 0.225]}))
    code, text = run(["extract", str(videos), "-o", str(out), *TINY, "--size", "32",
                      "--short-side", "32", "--config", str(cfg), "-q"], caplog)
    assert code == 0 and "1 already done" in text, text  # the same settings: nothing redone


def test_mean_and_std_errors_give_advice_that_works(tmp_path: Path, videos: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    base = ["extract", str(videos), "-o", str(tmp_path / "o"), *TINY, "--size", "32",
            "--short-side", "32", "-q"]
    # Pixel values on 0..255 are refused with their 0..1 equivalent, in the flag's words.
    code, text = run([*base, "--mean", "114.75", "--std", "0.225"], caplog)
    assert code == 2 and "that is --mean 0.45,0.45,0.45" in text, text
    code, text = run([*base, "--mean", "0.45,0.45,0.45", "--std", "0.225"], caplog)
    assert code == 0, text
    base[3] = str(tmp_path / "o2")
    # mean/std with a scale that does not use them: the advice is to say --scale imagenet.
    code, text = run([*base, "--scale", "unit", "--mean", "0.45"], caplog)
    assert code == 2 and "add --scale imagenet" in text, text
    code, text = run([*base, "--scale", "imagenet", "--mean", "0.45"], caplog)
    assert code == 0, text
    # Two values are neither one nor three.
    with pytest.raises(SystemExit):
        main([*base, "--mean", "0.4,0.5"])
