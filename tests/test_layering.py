"""Import structure the redesign relies on: no cycle between the checkpoint reader and
compression, the generic checkpoint file I/O depends on no backbone, and the package
layers of pyproject.toml's import-linter contracts hold."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import vadfeat

SRC = Path(vadfeat.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module or function level."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_checkpoints_does_not_import_compress() -> None:
    # Before: load_checkpoint imported compress at call time, and compress imported checkpoints.
    assert "vadfeat.backbones.videomae.compress" not in _imports(SRC / "backbones/videomae/checkpoints.py")
    assert "vadfeat.backbones.videomae.checkpoints" in _imports(SRC / "backbones/videomae/compress.py")


def test_generic_file_io_imports_no_backbone() -> None:
    imported = _imports(SRC / "backbones/_files.py")
    assert not [m for m in imported if m.startswith("vadfeat.backbones")], imported


def test_compress_reexports_the_reader() -> None:
    from vadfeat.backbones.videomae import checkpoints, compress

    assert compress.read_compression is checkpoints.read_compression
    assert compress.decompress_state is checkpoints.decompress_state
    assert compress.describe_compression is checkpoints.describe_compression


# --------------------------------------------------------------------------- import-linter contracts
# pyproject.toml's [tool.importlinter] contracts: the package layers (cli > demo > dataset >
# engines > pipeline > backbones > store > io > errors and the other leaf modules) and no torch
# in store or io.  ./dev.sh test runs `lint-imports`; these run it too, so pytest alone checks them.

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["vadfeat.cli", "vadfeat.demo", "vadfeat.dataset", "vadfeat.engines", "vadfeat.pipeline",
          "vadfeat.backbones", "vadfeat.store", "vadfeat.io"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with ``root/pyproject.toml`` on the package ``root/src/vadfeat``."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([sys.executable, "-c", code, str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(SRC, tmp_path / "src" / "vadfeat", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_contracts_name_the_layers_in_order() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_package"] == "vadfeat"
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    assert layers[: len(LAYERS)] == LAYERS
    assert set(layers[-1].replace(" ", "").split(":")) == {
        "vadfeat.errors", "vadfeat._types", "vadfeat._defaults", "vadfeat._version", "vadfeat._malloc",
        "vadfeat.testing"}


def test_the_package_keeps_its_import_contracts() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout, done.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("io/_upward.py", "import vadfeat.store.manifest\n", "vadfeat.io is not allowed to import vadfeat.store"),
    ("store/_upward.py", "from vadfeat.backbones import _registry\n",
     "vadfeat.store is not allowed to import vadfeat.backbones"),
    ("store/_torch.py", "import torch\n", "vadfeat.store._torch -> torch"),
])
def test_an_upward_import_breaks_the_contracts(tmp_path: Path, module: str, line: str, broken: str) -> None:
    root = _copy(tmp_path)
    (root / "src" / "vadfeat" / module).write_text(line)
    done = _lint_imports(root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in done.stdout, done.stdout
