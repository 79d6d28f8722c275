"""Commands that run no model import neither torch nor the model code (issue 21).

Each command runs in a fresh interpreter (``python -c``) that calls
``vadfeat.cli.main([...])`` and then prints which heavy modules ended up in
``sys.modules``; a module that is there was imported, however fast the machine.
The inputs are real and tiny: two feature files with sidecars written here,
a UCF-Crime annotation file, and the folders the commands themselves write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# torch, and every module that defines or loads a network (they all import torch today,
# but a test that names them keeps failing if one day one of them stops needing it).
MODEL_CODE = (
    "torch",
    "vadfeat.backbones.loading",
    "vadfeat.backbones.frames",
    "vadfeat.backbones._files",
    "vadfeat.backbones.videomae.model",
    "vadfeat.backbones.videomae.checkpoints",
    "vadfeat.backbones.videomae.loading",
    "vadfeat.backbones.clip.model",
    "vadfeat.backbones.clip.checkpoints",
    "vadfeat.backbones.i3d.checkpoints",
    "vadfeat.backbones.i3d.inception",
    "vadfeat.backbones.i3d.resnet",
    "vadfeat.pipeline.extractor",
    "vadfeat.pipeline.transforms",
    "vadfeat.engines.local",
)

LIBRARIES = ("numpy", "av", "matplotlib", "PIL", "cv2", "vadfeat.dataset", "vadfeat.store", "vadfeat.io")

_RUN = """
import json, sys
import vadfeat.cli
try:
    rc = vadfeat.cli.main(json.loads(sys.argv[1]))
except SystemExit as exc:  # --help, --version
    rc = exc.code
heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
print("STARTUP-RESULT " + json.dumps({"rc": rc, "heavy": heavy}))
"""


def run_cli(argv: list[str], cwd: Path, modules: tuple[str, ...] = MODEL_CODE) -> tuple[int, list[str], str]:
    """``vadfeat ARGV`` in a fresh interpreter: (exit code, which of ``modules`` it imported, output)."""
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _RUN, json.dumps(argv), json.dumps(modules)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("STARTUP-RESULT ")]
    assert proc.returncode == 0 and lines, f"{argv}: crashed\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[-1].removeprefix("STARTUP-RESULT "))
    return result["rc"], result["heavy"], proc.stdout + proc.stderr


VIDEOS = {"Abuse001_x264": (4, 70), "Normal_Videos_001_x264": (3, 50)}  # rows, decoded frames


def write_features(root: Path, seed: int = 0) -> Path:
    """Two tiny 2-crop extractions as ``vadfeat extract`` lays them out (flat, with sidecars)."""
    root.mkdir(parents=True)
    for name, (rows, frames) in VIDEOS.items():
        arr = np.random.default_rng(rows + seed).standard_normal((rows, 2, 6)).astype(np.float32)
        np.save(root / f"{name}.npy", arr)
        side = {"video": f"{name}.mp4", "num_frames": frames, "fps": 30.0, "shape": [rows, 2, 6],
                "snippets": [[16 * i, 16 * i + 15] for i in range(rows)], "crop_order": ["c", "tl"]}
        (root / f"{name}.json").write_text(json.dumps(side))
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("startup")
    write_features(root / "feat")
    write_features(root / "theirs", seed=1)
    (root / "ann.txt").write_text("Abuse001_x264.mp4  Abuse  20  40  -1  -1\n"
                                  "Normal_Videos_001_x264.mp4  Normal  -1  -1  -1  -1\n")
    return root


@pytest.mark.parametrize("argv", [
    ["--version"],
    ["--help"],
    *([cmd, "--help"] for cmd in ("lists", "labels", "align", "export", "resample", "inspect",
                                  "compare", "frames", "extract", "demo", "models")),
], ids=lambda argv: " ".join(argv))
def test_help_imports_no_torch(argv: list[str], tmp_path: Path) -> None:
    rc, heavy, out = run_cli(argv, tmp_path)
    assert rc == 0, out
    assert heavy == [], f"vadfeat {' '.join(argv)} imported {heavy}"
    # Help is built from the registrations and vadfeat._types/_defaults: not even the
    # numerical and media libraries the commands use are imported.
    rc, heavy, out = run_cli(argv, tmp_path, modules=LIBRARIES)
    assert heavy == [], f"vadfeat {' '.join(argv)} imported {heavy}"


def test_commands_on_tiny_inputs_import_no_torch(inputs: Path) -> None:
    # In the order a user runs them: labels feed lists, inspect and align.
    feat, gt = inputs / "feat", inputs / "gt"
    commands = [
        ["labels", str(inputs / "ann.txt"), "--format", "ucf", "--features", str(feat), "-o", str(gt)],
        ["lists", str(feat), "--format", "rtfm", "--labels", str(gt), "-o", str(inputs / "lists")],
        ["align", str(feat), "--labels", str(gt), "-o", str(inputs / "aligned")],
        ["export", str(feat), "--format", "ur-dmu", "-o", str(inputs / "exported")],
        ["resample", str(feat), "-o", str(inputs / "resampled"), "--segments", "4"],
        ["inspect", str(feat), "--labels", str(gt), "-o", str(inputs / "report")],
        ["compare", str(feat), str(inputs / "theirs"), "-o", str(inputs / "compared"), "--plots", "1"],
    ]
    for argv in commands:
        rc, heavy, out = run_cli(argv, inputs)
        assert rc == 0, f"vadfeat {argv[0]} failed:\n{out}"
        assert heavy == [], f"vadfeat {argv[0]} imported {heavy}"
    # The commands did their work (not a refusal that happened to import little).
    assert (gt / "labels.json").is_file()
    assert (inputs / "lists" / "dataset-test.list").is_file()
    assert len(list((inputs / "exported").rglob("*__1.npy"))) == 2
    assert (inputs / "report" / "index.html").is_file()
    assert (inputs / "compared" / "compare.json").is_file()


def test_models_lists_every_backbone_without_torch(tmp_path: Path) -> None:
    rc, heavy, out = run_cli(["models"], tmp_path)
    assert rc == 0, out
    assert heavy == [], f"vadfeat models imported {heavy}"
    for name in ("videomae_v2/vit_giant_patch14_224", "clip/vit_b_16", "i3d/r50", "i3d/inception_v1"):
        assert name in out


def test_frames_imports_no_torch(tmp_path: Path) -> None:
    from vadfeat.testing.synth import corner_frames, write_video

    video = write_video(tmp_path / "v.mp4", corner_frames(4))
    rc, heavy, out = run_cli(["frames", str(video), "-o", str(tmp_path / "frames"), "-j", "1"], tmp_path)
    assert rc == 0, out
    assert heavy == [], f"vadfeat frames imported {heavy}"
    assert len(list((tmp_path / "frames").rglob("img_*.jpg"))) == 4


def test_library_import_is_lazy(tmp_path: Path) -> None:
    # `import vadfeat` (and the names a script reads first) load no model code; the
    # model names still resolve, to the same objects as their home modules'.
    code = ("import sys, vadfeat; v = vadfeat.__version__; vadfeat.list_presets; vadfeat.read_features; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "from vadfeat.pipeline.extractor import FeatureExtractor; "
            "assert vadfeat.FeatureExtractor is FeatureExtractor; "
            "import vadfeat.engines.local as l; assert vadfeat.extract is l.extract; print('ok')")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_i3d_parameter_table_matches_the_networks() -> None:
    # `vadfeat models` prints I3D's parameter counts from a table (building the network would
    # import torch); each entry must be the count of the module build_i3d makes.
    import torch

    from vadfeat.backbones.i3d.checkpoints import build_i3d
    from vadfeat.backbones.i3d.spec import I3D_ARCHS, NUM_PARAMS

    assert set(NUM_PARAMS) == set(I3D_ARCHS)
    for name, spec in I3D_ARCHS.items():
        with torch.device("meta"):
            built = sum(p.numel() for p in build_i3d(spec).parameters())
        assert NUM_PARAMS[name] == built, name


def test_public_api_names_all_resolve() -> None:
    import vadfeat

    assert set(vadfeat.__all__) == set(vadfeat._HOMES) | {"__version__"}
    for name in vadfeat.__all__:
        assert getattr(vadfeat, name) is not None, name
    assert set(vadfeat.__all__) <= set(dir(vadfeat))
    with pytest.raises(AttributeError, match="no_such_name"):
        vadfeat.no_such_name  # noqa: B018
    # A sub-package read as an attribute after a bare `import vadfeat`, as before.
    assert vadfeat.errors.ConfigError is vadfeat.ConfigError
