"""The checkpoint hash cache (issue 15): hits skip the read, any change rehashes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from vadfeat.backbones import _files


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Cache in a fresh folder; every full hash is recorded."""
    monkeypatch.setenv(_files.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(_files, "_warned", set())
    calls: list[Path] = []
    real = _files.sha256_file

    def counting(path: Path, **kw: object) -> str:
        calls.append(Path(path))
        return real(path, **kw)

    monkeypatch.setattr(_files, "sha256_file", counting)
    return calls


def _old_file(path: Path, data: bytes, age_s: float = 100.0) -> Path:
    path.write_bytes(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(age_s * 1e9)))  # past the racy window
    return path


def test_a_hit_does_not_read_the_file(tmp_path: Path, counted: list[Path]) -> None:
    ck = _old_file(tmp_path / "w.pth", b"weights" * 1000)
    want = hashlib.sha256(b"weights" * 1000).hexdigest()  # the hash by definition
    assert _files.checkpoint_sha256(ck) == want
    assert _files.checkpoint_sha256(ck) == want
    assert _files.checkpoint_sha256(tmp_path / "." / "w.pth") == want  # same resolved path
    assert counted == [ck.resolve()]  # hashed once
    stored = json.loads((tmp_path / "cache" / "checkpoint-sha256.json").read_text())
    entry = stored["entries"][str(ck.resolve())]
    st = ck.stat()
    assert entry == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "sha256": want}


def test_touched_or_replaced_files_are_rehashed(tmp_path: Path, counted: list[Path]) -> None:
    ck = _old_file(tmp_path / "w.pth", b"a" * 4096)
    assert _files.checkpoint_sha256(ck) == hashlib.sha256(b"a" * 4096).hexdigest()
    # same size, new content, new mtime (a fine-tuned file written over the old one)
    _old_file(ck, b"b" * 4096, age_s=50)
    assert _files.checkpoint_sha256(ck) == hashlib.sha256(b"b" * 4096).hexdigest()
    # only the mtime changes (touch): rehashed too, same hash
    st = ck.stat()
    os.utime(ck, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    assert _files.checkpoint_sha256(ck) == hashlib.sha256(b"b" * 4096).hexdigest()
    # replaced by another file (new inode) carrying the same size and mtime
    other = _old_file(tmp_path / "x.pth", b"c" * 4096)
    st = ck.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, ck)
    assert _files.checkpoint_sha256(ck) == hashlib.sha256(b"c" * 4096).hexdigest()
    assert len(counted) == 4


def test_a_fresh_file_is_hashed_but_not_stored(tmp_path: Path, counted: list[Path]) -> None:
    ck = tmp_path / "w.pth"
    ck.write_bytes(b"new")  # mtime now: may still change within the same tick
    _files.checkpoint_sha256(ck)
    _files.checkpoint_sha256(ck)
    assert len(counted) == 2
    assert not (tmp_path / "cache" / "checkpoint-sha256.json").exists()


@pytest.mark.parametrize("junk", [b"{not json", b"[1, 2]", b'{"version": 99, "entries": {}}', b"\xff\xfe"])
def test_a_corrupt_cache_is_ignored_with_one_warning(
    tmp_path: Path, counted: list[Path], caplog: pytest.LogCaptureFixture, junk: bytes
) -> None:
    (tmp_path / "cache").mkdir()
    cache = tmp_path / "cache" / "checkpoint-sha256.json"
    cache.write_bytes(junk)
    ck = _old_file(tmp_path / "w.pth", b"z" * 10)
    with caplog.at_level(logging.WARNING, logger=_files.__name__):
        assert _files.checkpoint_sha256(ck) == hashlib.sha256(b"z" * 10).hexdigest()
        cache.write_bytes(junk)
        assert _files.checkpoint_sha256(ck) == hashlib.sha256(b"z" * 10).hexdigest()
    assert len(counted) == 2
    assert len([r for r in caplog.records if "hash cache" in r.getMessage()]) == 1  # once per process


def test_an_unwritable_cache_falls_back_to_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(_files.CACHE_ENV, str(blocker / "sub"))  # a folder inside a file
    ck = _old_file(tmp_path / "w.pth", b"q")
    with caplog.at_level(logging.WARNING, logger=_files.__name__):
        assert _files.checkpoint_sha256(ck) == hashlib.sha256(b"q").hexdigest()
        assert _files.checkpoint_sha256(ck) == hashlib.sha256(b"q").hexdigest()
    assert len(counted) == 2
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1


def test_off_disables_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted: list[Path]) -> None:
    monkeypatch.setenv(_files.CACHE_ENV, "off")
    assert _files.cache_dir() is None
    ck = _old_file(tmp_path / "w.pth", b"q")
    _files.checkpoint_sha256(ck)
    _files.checkpoint_sha256(ck)
    assert len(counted) == 2
    assert not (tmp_path / "cache").exists()


def test_default_location_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(_files.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _files.cache_dir() == tmp_path / "vadfeat"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _files.cache_dir() == tmp_path / "home" / ".cache" / "vadfeat"


def test_checkpoint_loaders_use_the_cache(tiny_checkpoint: Path, tmp_path: Path, counted: list[Path]) -> None:
    from vadfeat.backbones.videomae.checkpoints import load_checkpoint

    ck = _old_file(tmp_path / "copy.pth", tiny_checkpoint.read_bytes())
    first = load_checkpoint(ck)[1].sha256
    assert load_checkpoint(ck)[1].sha256 == first == hashlib.sha256(ck.read_bytes()).hexdigest()
    assert counted == [ck.resolve()]


def test_every_checkpoint_loader_hashes_through_the_cache() -> None:
    import inspect

    from vadfeat.backbones.clip import checkpoints as clip_ck
    from vadfeat.backbones.videomae import checkpoints as mae_ck

    for module in (clip_ck, mae_ck):
        assert module.checkpoint_sha256 is _files.checkpoint_sha256
        assert "sha256_file(" not in inspect.getsource(module)
