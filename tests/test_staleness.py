"""Outputs trusted that no longer match (issue 20): changed sources, edited sidecars,
folders holding several layouts.

Expected values are worked out by hand: snippet counts are ``floor(frames / 16)`` (the
default preset drops the tail), the tiny model's width is 64.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from vadfeat.cli import main
from vadfeat.engines.local import extract
from vadfeat.store import identity, sidecar
from vadfeat.store.reader import read_features
from vadfeat.testing import synth


def run(src: Path, out: Path, ckpt: Path, **kw: object):  # type: ignore[no-untyped-def]
    return extract([src], out, checkpoint=ckpt, progress=False, **kw)


def _later_mtime(path: Path, seconds: int = 100) -> None:
    """Give ``path`` an mtime ``seconds`` after its current one (what a rewrite or a copy does)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


# --------------------------------------------------------------------------- source identity


def _rawvideo(path: Path, seed: int) -> Path:
    """An uncompressed mkv (64x48, 40 frames -> 2 snippets): any payload bytes decode."""
    return synth.write_video(path, synth.scene_frames(40, width=64, height=48, seed=seed), fps=25,
                             codec="rawvideo")


def _rewrite_middle(path: Path) -> tuple[int, int]:
    """Invert the payload of the middle frame in place: same size, same ends. Returns
    (offset, length) of the bytes changed."""
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    mid = packets[len(packets) // 2]
    assert mid.pos is not None and mid.pos > 0
    data = bytearray(path.read_bytes())
    data[mid.pos:mid.pos + mid.size] = bytes(255 - b for b in data[mid.pos:mid.pos + mid.size])
    path.write_bytes(bytes(data))
    return mid.pos, mid.size


def test_a_video_with_its_middle_rewritten_is_redone(tmp_path: Path, tiny_checkpoint: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A "large" video: the sampled ends (4 KiB each here, 1 MiB in real use) miss its middle.
    monkeypatch.setattr(identity, "IDENTITY_BYTES", 4096)
    src = tmp_path / "in"
    video = _rawvideo(src / "v.mkv", seed=1)
    out = tmp_path / "out"
    assert run(src, out, tiny_checkpoint).ok == 1
    first = np.load(out / "v.npy")
    size, head, tail = video.stat().st_size, video.read_bytes()[:4096], video.read_bytes()[-4096:]
    pos, n = _rewrite_middle(video)
    assert pos > 4096 and pos + n < size - 4096  # the change lies between the sampled ends
    assert (video.stat().st_size, video.read_bytes()[:4096], video.read_bytes()[-4096:]) == \
        (size, head, tail)
    _later_mtime(video)
    s = run(src, out, tiny_checkpoint)
    assert (s.ok, s.skipped) == (1, 0)  # redone, not trusted
    again = np.load(out / "v.npy")
    assert again.shape == first.shape == (2, 64)
    assert not np.array_equal(again, first)  # the middle frame's snippet changed
    meta = json.loads((out / "v.json").read_text())
    assert meta["source_identity"]["sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()


def test_a_copied_video_with_a_new_mtime_still_resumes(tmp_path: Path, tiny_checkpoint: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in"
    video = _rawvideo(src / "v.mkv", seed=2)
    out = tmp_path / "out"
    run(src, out, tiny_checkpoint)
    _later_mtime(video)  # same bytes, new mtime (copied with cp, rsync without -t)
    hashed: list[Path] = []
    real = identity.content_sha256
    monkeypatch.setattr(identity, "content_sha256", lambda p, **kw: hashed.append(Path(p)) or real(p, **kw))
    s = run(src, out, tiny_checkpoint)
    assert (s.ok, s.skipped) == (0, 1)
    assert hashed == [video]  # the mtime changed: one full hash, which matched
    hashed.clear()
    s = run(src, out, tiny_checkpoint)
    assert (s.ok, s.skipped) == (0, 1)
    assert hashed == [video]  # the record keeps the old mtime: hashed again, still the same


def _bmp_folder(folder: Path, seed: int) -> list[Path]:
    """40 uncompressed frames (every frame file has the same size) -> 2 snippets."""
    return synth.write_frame_folder(folder, synth.scene_frames(40, width=64, height=48, seed=seed),
                                    pattern="img_{:05d}.bmp")


def test_a_frame_folder_with_a_middle_frame_replaced_is_redone(tmp_path: Path,
                                                               tiny_checkpoint: Path) -> None:
    src = tmp_path / "in"
    frames = _bmp_folder(src / "clip", seed=3)
    out = tmp_path / "out"
    assert run(src, out, tiny_checkpoint).ok == 1
    first = np.load(out / "clip.npy")
    # Frame 21 (in the second snippet) replaced by frame 5's image: same name, same size.
    assert frames[20].stat().st_size == frames[4].stat().st_size
    assert frames[20].read_bytes() != frames[4].read_bytes()
    frames[20].write_bytes(frames[4].read_bytes())
    _later_mtime(frames[20])
    s = run(src, out, tiny_checkpoint)
    assert (s.ok, s.skipped) == (1, 0)
    again = np.load(out / "clip.npy")
    assert np.array_equal(again[0], first[0])  # frames 1-16 untouched: the same row
    assert not np.array_equal(again[1], first[1])


def test_a_touched_frame_folder_still_resumes(tmp_path: Path, tiny_checkpoint: Path) -> None:
    src = tmp_path / "in"
    frames = _bmp_folder(src / "clip", seed=4)
    out = tmp_path / "out"
    run(src, out, tiny_checkpoint)
    for f in frames:
        _later_mtime(f)
    s = run(src, out, tiny_checkpoint)
    assert (s.ok, s.skipped) == (0, 1)


# --------------------------------------------------------------------------- hand-edited sidecars


def test_a_hand_edited_sidecar_is_redone_by_extract(tmp_path: Path, tiny_checkpoint: Path,
                                                    three: Path) -> None:
    out = tmp_path / "out"
    run(three, out, tiny_checkpoint)
    side = out / "v1.json"
    good = side.read_text()
    meta = json.loads(good)
    assert meta[sidecar.SIDECAR_DIGEST] == sidecar.sidecar_digest(meta)
    meta["num_frames"] = 4800  # was 48
    side.write_text(json.dumps(meta, indent=1))
    s = run(three, out, tiny_checkpoint)
    assert (s.ok, s.skipped) == (1, 2)
    assert json.loads(side.read_text())["num_frames"] == 48


@pytest.mark.parametrize("edit", ["num_frames", "snippets"])
def test_readers_refuse_a_hand_edited_sidecar_by_name(tmp_path: Path, tiny_checkpoint: Path,
                                                      three: Path, edit: str) -> None:
    out = tmp_path / "out"
    run(three, out, tiny_checkpoint)
    side = out / "v1.json"
    meta = json.loads(side.read_text())
    if edit == "num_frames":
        meta["num_frames"] = 4800
    else:
        meta["snippets"] = [[0, 1], [2, 3], [4, 5]]
    side.write_text(json.dumps(meta, indent=1))
    fs = read_features(out)
    assert fs.names() == ("v0", "v2")
    assert [i.video for i in fs.issues] == ["v1"]
    assert "sidecar_sha256" in fs.issues[0].message and "v1.json" in fs.issues[0].message


def test_sidecars_without_a_digest_stay_trusted(tmp_path: Path, tiny_checkpoint: Path,
                                                three: Path) -> None:
    out = tmp_path / "out"
    run(three, out, tiny_checkpoint)
    side = out / "v1.json"
    meta = json.loads(side.read_text())
    del meta[sidecar.SIDECAR_DIGEST]  # as every release before the digest wrote it
    side.write_text(json.dumps(meta, indent=1))
    assert read_features(out).names() == ("v0", "v1", "v2")
    s = run(three, out, tiny_checkpoint)
    assert (s.ok, s.skipped) == (0, 3)


def test_the_digest_covers_every_field_and_survives_a_round_trip() -> None:
    meta = {"video": "a\udcff.mp4", "fps": 29.97, "snippets": [[0, 15]], "num_frames": 16,
            "nested": {"b": 1, "a": [1.5, None]}}
    sealed = sidecar.seal_sidecar(meta)
    back = json.loads(json.dumps(sealed))  # what a reader gets from the file
    assert sidecar.sidecar_edited(back) is None
    for key, value in (("fps", 30.0), ("num_frames", 17), ("video", "b.mp4"),
                       ("snippets", [[0, 14]]), ("nested", {"b": 1, "a": [1.5]})):
        assert sidecar.sidecar_edited({**back, key: value}) is not None, key
    assert sidecar.sidecar_edited({**back, "added": 1}) is not None
    # The creation time is left out: two runs with the same outputs write the same digest.
    assert sidecar.seal_sidecar({**meta, "created": "2026-12-06T00:00:00+00:00"})[
        sidecar.SIDECAR_DIGEST] == sealed[sidecar.SIDECAR_DIGEST]


# --------------------------------------------------------------------------- mixed layouts


def test_a_folder_of_mixed_layouts_reads_and_exports_every_video(tmp_path: Path, tiny_checkpoint: Path,
                                                                 three: Path) -> None:
    """Three `vadfeat extract` runs into one -o, each with its own --layout (v0 flat, v1
    per-crop with 3 crops, v2 fed-wsvad): every video is read in its own layout."""
    out = tmp_path / "out"
    for video, extra in (("v0", ["--layout", "flat"]), ("v1", ["--layout", "per-crop", "--crops", "3"]),
                         ("v2", ["--layout", "fed-wsvad"])):
        assert main(["extract", str(three / f"{video}.mp4"), "-o", str(out), "--checkpoint",
                     str(tiny_checkpoint), "--quiet", *extra]) == 0
    fs = read_features(out)
    assert fs.issues == ()
    got = {r.name: (r.layout, r.shape) for r in fs}
    # 32, 48, 64 frames -> 2, 3, 4 snippets; per-crop reads as [T, crops, D]
    assert got == {"v0": ("flat", (2, 64)), "v1": ("per-crop", (3, 3, 64)), "v2": ("fed-wsvad", (4, 64))}
    assert np.array_equal(fs.by_name()["v1"].load()[:, 2], np.load(out / "v1__2.npy"))
    assert main(["export", str(out), "--format", "flat", "-o", str(tmp_path / "x")]) == 0
    assert sorted(p.name for p in (tmp_path / "x").glob("*.npy")) == ["v0.npy", "v1.npy", "v2.npy"]
    assert np.array_equal(np.load(tmp_path / "x" / "v2.npy"),
                          np.load(out / "features_video" / "i3d" / "combine" / "v2" / "feature.npy"))
    # A layout named on the command line still reads only that layout.
    assert read_features(out, layout="per-crop").names() == ("v1",)


def test_legacy_folders_without_sidecars_keep_their_detection(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for k in range(3):  # UR-DMU style, no sidecars
        np.save(legacy / f"a__{k}.npy", np.full((4, 8), k, dtype=np.float32))
    np.save(legacy / "b_1.npy", np.zeros((4, 8), dtype=np.float32))  # one underscore: flat
    fs = read_features(legacy)
    assert {r.name: (r.layout, r.shape) for r in fs} == {"a": ("per-crop", (4, 3, 8)),
                                                         "b_1": ("flat", (4, 8))}
    only_flat = tmp_path / "flat"
    only_flat.mkdir()
    np.save(only_flat / "x__0.npy", np.zeros((2, 8), dtype=np.float32))
    np.save(only_flat / "x.npy", np.zeros((2, 8), dtype=np.float32))  # x.npy beside it: all flat
    assert {r.name: r.layout for r in read_features(only_flat)} == {"x": "flat", "x__0": "flat"}


def test_frames_redoes_a_video_with_its_middle_rewritten(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`vadfeat frames` keeps the same rule as extract (its resume trusted size and ends)."""
    from vadfeat.store.frames import dump_frames

    monkeypatch.setattr(identity, "IDENTITY_BYTES", 4096)
    src = tmp_path / "in"
    video = _rawvideo(src / "v.mkv", seed=5)
    out = tmp_path / "frames"
    assert dump_frames([src], out, pattern="img_{:05d}.png").ok == 1
    mid = out / "v" / "img_00021.png"
    before = mid.read_bytes()
    _rewrite_middle(video)  # the middle packet is frame 21 of 40 (1-based names)
    _later_mtime(video)
    s = dump_frames([src], out, pattern="img_{:05d}.png")
    assert (s.ok, s.skipped) == (1, 0)
    assert mid.read_bytes() != before
    _later_mtime(video)  # the same bytes again, a new mtime: still done
    assert dump_frames([src], out, pattern="img_{:05d}.png").skipped == 1
