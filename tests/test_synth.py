"""Generated media: files decode independently (plain PyAV / OpenCV) as written."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from vadfeat.errors import ConfigError
from vadfeat.testing import synth


def _decode_plain(path):
    """Independent decode with bare PyAV: (frames, times in seconds)."""
    with av.open(str(path)) as container:
        frames = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in container.decode(video=0)]
    return [f for f, _ in frames], [t for _, t in frames]


@pytest.mark.parametrize(
    ("ext", "codec"),
    [(".mp4", "h264"), (".avi", "mpeg4"), (".mkv", "h264"), (".mov", "h264"), (".webm", "vp8")],
)
def test_write_video_by_extension(tmp_path, ext, codec):
    path = synth.write_video(tmp_path / f"v{ext}", synth.scene_frames(12, width=64, height=48))
    frames, times = _decode_plain(path)
    assert len(frames) == 12
    assert frames[0].shape == (48, 64, 3)
    assert times == pytest.approx([i / 25 for i in range(12)], abs=1e-3)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == codec


def test_write_video_content_is_close_to_source(tmp_path):
    src = list(synth.scene_frames(5, width=64, height=48, seed=3))
    path = synth.write_video(tmp_path / "q.mkv", src, options={"crf": "0"})
    frames, _ = _decode_plain(path)
    # crf 0 is lossless in YUV; only the RGB<->YUV 4:2:0 round trip differs.
    assert np.abs(frames[2].astype(int) - src[2].astype(int)).mean() < 6


def test_write_video_variable_frame_rate(tmp_path):
    ts = [0.0, 0.04, 0.1, 0.5, 0.52, 0.9]
    path = synth.write_video(
        tmp_path / "vfr.mp4", synth.scene_frames(6, width=64, height=48), timestamps=ts
    )
    _, times = _decode_plain(path)
    assert times == pytest.approx(ts, abs=1e-4)


def test_write_video_errors(tmp_path):
    with pytest.raises(ConfigError, match="extension"):
        synth.write_video(tmp_path / "v.xyz", synth.scene_frames(2))
    with pytest.raises(ConfigError, match="not available"):
        synth.write_video(tmp_path / "v.mp4", synth.scene_frames(2), codec="no-such-codec")
    with pytest.raises(ValueError, match="no frames"):
        synth.write_video(tmp_path / "v.mp4", [])
    with pytest.raises(ValueError, match="strictly increasing"):
        synth.write_video(tmp_path / "v.mp4", synth.scene_frames(2), timestamps=[0.0, 0.0])
    with pytest.raises(ValueError, match="uint8"):
        synth.write_video(tmp_path / "v.mp4", [np.zeros((8, 8, 3), np.float32)])


def test_scene_frames_deterministic_with_event():
    a = list(synth.scene_frames(6, width=40, height=30, event_at=3, seed=1))
    b = list(synth.scene_frames(6, width=40, height=30, event_at=3, seed=1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (30, 40, 3) and a[0].dtype == np.uint8
    assert not np.array_equal(a[0], a[1])  # the square moves
    # The event (yellow block lower right) is absent before event_at, present from it.
    assert not np.array_equal(a[2][20, 30], [255, 230, 0])
    assert np.array_equal(a[3][20, 30], [255, 230, 0])
    c = next(synth.scene_frames(1, width=40, height=30, seed=2))
    assert not np.array_equal(a[0], c)


def test_write_frame_folder_normal_and_legacy(tmp_path):
    red = list(synth.solid_frames(2, (255, 0, 0)))
    paths = synth.write_frame_folder(tmp_path / "n", red)
    assert [p.name for p in paths] == ["img_00001.jpg", "img_00002.jpg"]
    bgr = cv2.imread(str(paths[0]))
    assert bgr[..., 2].mean() > 240 and bgr[..., 0].mean() < 15  # true red on disk
    swapped = synth.write_frame_folder(tmp_path / "s", red, legacy_swapped=True)
    bgr = cv2.imread(str(swapped[0]))
    assert bgr[..., 0].mean() > 240 and bgr[..., 2].mean() < 15  # stored as blue
    png = synth.write_frame_folder(tmp_path / "p", red, pattern="{}.png", start=0)
    assert [p.name for p in png] == ["0.png", "1.png"]
    assert np.array_equal(cv2.imread(str(png[1]))[0, 0], [0, 0, 255])  # lossless


def test_damage_helpers(tmp_path):
    path = synth.random_bytes(tmp_path / "r.bin", 1000, seed=1)
    original = path.read_bytes()
    assert len(original) == 1000
    assert synth.random_bytes(tmp_path / "r2.bin", 1000, seed=1).read_bytes() == original

    synth.corrupt_middle(path, nbytes=100, seed=5)
    damaged = path.read_bytes()
    assert len(damaged) == 1000
    assert damaged[:450] == original[:450] and damaged[550:] == original[550:]
    assert damaged[450:550] != original[450:550]

    synth.truncate(path, 0.25)
    assert path.stat().st_size == 250
    with pytest.raises(ValueError):
        synth.truncate(path, 1.5)
    assert synth.empty(tmp_path / "e.mp4").stat().st_size == 0


def test_write_audio_has_no_video(tmp_path):
    path = synth.write_audio(tmp_path / "a.m4a", seconds=0.2)
    with av.open(str(path)) as container:
        assert [s.type for s in container.streams] == ["audio"]
