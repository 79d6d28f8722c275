"""Import structure the redesign relies on: no cycle between the checkpoint reader and
compression, and the generic checkpoint file I/O depends on no backbone."""

from __future__ import annotations

import ast
from pathlib import Path

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
