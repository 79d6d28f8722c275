"""The source protocol of io/: typed frames, readers composed (not subclassed), the JPEG
round trip as a wrapper source, and the pixel stage every video source offers."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import fake_torchcodec
from vadfeat.errors import ConfigError, DecodeError
from vadfeat.io.folder import FolderReader
from vadfeat.io.jpeg import JpegRoundTrip
from vadfeat.io.pyav_video import PyAVReader
from vadfeat.io.source import DecodedFrame, Source, VideoFrame, VideoSource
from vadfeat.io.torchcodec_video import TorchcodecReader
from vadfeat.io.video import open_video
from vadfeat.testing import synth

# Seconds: timestamps are exact fractions turned into floats; PyAV's own frame.time is
# pts * time_base in double precision, so the two may differ in the last bits.
TIME_TOL = 1e-9


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sources")
    folder = d / "frames"
    synth.write_frame_folder(folder, synth.solid_frames(4, (10, 20, 30), width=32, height=24),
                             pattern="img_{:03d}.png")
    return {
        "mp4": synth.write_video(d / "clip.mp4", synth.scene_frames(30, width=64, height=48, seed=3)),
        "vfr": synth.write_video(d / "vfr.mkv", synth.scene_frames(5, width=64, height=48, seed=4),
                                 timestamps=[0.0, 0.1, 0.25, 0.7, 0.75]),
        "rot": synth.write_video(d / "rot.mp4", synth.corner_frames(6), rotation=90),
        "folder": folder,
    }


@pytest.fixture
def fake_tc(monkeypatch: pytest.MonkeyPatch) -> fake_torchcodec.FakeConfig:
    """torchcodec 0.11's API (the PyAV-backed stand-in of tests/fake_torchcodec.py)."""
    config = fake_torchcodec.FakeConfig()
    for name in [m for m in sys.modules if m == "torchcodec" or m.startswith("torchcodec.")]:
        monkeypatch.delitem(sys.modules, name)
    for name, module in fake_torchcodec.make_modules(config).items():
        monkeypatch.setitem(sys.modules, name, module)
    return config


def _pyav_times(path: Path) -> list[float]:
    """Independent: PyAV's own presentation time of every decoded frame."""
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def test_frames_are_typed_values_with_the_containers_timestamps(media):
    """A variable-frame-rate mkv (frames at 0, 0.1, 0.25, 0.7, 0.75 s): each value is a
    VideoFrame whose timestamp is the frame's presentation time as PyAV decodes it."""
    with open_video(media["vfr"]) as reader:
        frames = list(reader)
    assert all(isinstance(f, VideoFrame) for f in frames)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    expected = _pyav_times(media["vfr"])
    assert len(expected) == 5
    for frame, t in zip(frames, expected, strict=True):
        assert abs(frame.timestamp - t) <= TIME_TOL
    assert [f.timestamp - frames[0].timestamp for f in frames] == pytest.approx(
        [0.0, 0.1, 0.25, 0.7, 0.75], abs=1e-3)  # the mkv clock counts milliseconds
    # The pair readers yielded before typed values: unpacking and indexing still work.
    index, data = frames[2]
    assert index == 2 and data is frames[2].data and frames[2][1] is frames[2].data
    assert data.shape == (48, 64, 3) and data.dtype == np.uint8


def test_resampled_frames_carry_output_times(media):
    """25 fps resampled to 10 fps: output k is at first + k/10 s and shows the latest
    source frame at or before it, frame floor(2.5 k) (worked by hand for k < 12)."""
    with open_video(media["mp4"], fps=10) as reader:
        frames = list(reader)
    first = frames[0].timestamp
    assert [f.index for f in frames[:12]] == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]
    for k, frame in enumerate(frames):
        assert abs(frame.timestamp - (first + k / 10)) <= TIME_TOL


def test_frame_folder_timestamps_follow_folder_fps(media):
    with open_video(media["folder"], folder_fps=8) as reader:
        frames = list(reader)
    assert [f.timestamp for f in frames] == [0.0, 0.125, 0.25, 0.375]


def test_every_reader_is_a_video_source_and_none_subclasses_another(media, fake_tc):
    readers = [open_video(media["mp4"]), open_video(media["folder"]),
               open_video(media["mp4"], decoder="torchcodec"),
               open_video(media["mp4"], jpeg_roundtrip="opencv")]
    kinds = [type(r) for r in readers]
    assert kinds == [PyAVReader, FolderReader, TorchcodecReader, JpegRoundTrip]
    for reader in readers:
        with reader:
            assert isinstance(reader, VideoSource) and isinstance(reader, Source)
    # Composition: the torchcodec reader reuses the PyAV reader's parts, not its class.
    assert not issubclass(TorchcodecReader, PyAVReader)
    assert not issubclass(FolderReader, PyAVReader)


def _opencv_jpeg(rgb: np.ndarray) -> np.ndarray:
    """Independent: what cv2.imwrite at its defaults stores, read back with cv2."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_jpeg_roundtrip_is_a_wrapper_over_a_source(media):
    """JpegRoundTrip(source, "opencv") gives each frame as OpenCV's JPEG dump holds it
    (checked against an independent cv2 round trip of the plain frames), the same pixels
    open_video's jpeg_roundtrip gives, and the source's counts and info."""
    with open_video(media["mp4"]) as plain:
        expected = [_opencv_jpeg(f.data) for f in plain]
    wrapped = JpegRoundTrip(open_video(media["mp4"]), "opencv")
    with wrapped:
        got = list(wrapped)
    assert len(got) == len(expected) == 30
    for frame, want in zip(got, expected, strict=True):
        np.testing.assert_array_equal(frame.data, want)
    assert wrapped.decoded_frames == wrapped.yielded_frames == 30
    assert wrapped.info.width == 64 and wrapped.warnings == [] and wrapped.corrupt_packets == 0
    with open_video(media["mp4"], jpeg_roundtrip="opencv") as chosen:
        assert all(np.array_equal(a.data, b.data) for a, b in zip(chosen, got, strict=True))
    with open_video(media["mp4"]) as plain:
        raw = [f.data for f in plain]
    assert not all(np.array_equal(a, b) for a, b in zip(raw, expected, strict=True))
    with JpegRoundTrip(open_video(media["mp4"]), "none") as same:  # passes frames through
        assert all(np.array_equal(a.data, b) for a, b in zip(same, raw, strict=True))


def test_jpeg_roundtrip_refusals(media, fake_tc):
    with pytest.raises(ConfigError, match="jpeg_roundtrip must be one of"):
        JpegRoundTrip(open_video(media["mp4"]), "png")  # type: ignore[arg-type]
    # FFmpeg's encoder runs on PyAV's decoded frames: a frame folder's are images.
    with JpegRoundTrip(open_video(media["folder"]), "ffmpeg") as source, \
            pytest.raises(DecodeError, match=r"frames.*not PyAV's"):
        list(source)
    with JpegRoundTrip(open_video(media["mp4"]), "opencv") as source, \
            pytest.raises(ValueError, match="makes the frames' pixels itself"):
        source.frames(lambda d: d.rgb())
    with pytest.raises(ConfigError, match="use decoder='pyav'"):
        open_video(media["mp4"], decoder="torchcodec", jpeg_roundtrip="ffmpeg")


def test_pixel_stage_sees_stored_frames_and_turning_comes_after(media):
    """A stage gets each chosen frame at its stored size (64x48 for a phone video turned
    a quarter turn on display) and the source turns its output upright afterwards: a
    stage that swaps R and B gives the plain frames with R and B swapped."""
    seen: list[tuple[int, int, int]] = []

    def bgr(decoded: DecodedFrame) -> np.ndarray:
        seen.append((decoded.index, decoded.width, decoded.height))
        return np.ascontiguousarray(decoded.rgb()[:, :, ::-1])

    with open_video(media["rot"]) as plain:
        expected = [f.data[:, :, ::-1] for f in plain]
    with open_video(media["rot"]) as reader:
        assert (reader.info.width, reader.info.height) == (48, 64)
        got = list(reader.frames(bgr))
    assert seen == [(k, 64, 48) for k in range(6)]
    for frame, want in zip(got, expected, strict=True):
        np.testing.assert_array_equal(frame.data, want)
    with pytest.raises(RuntimeError, match="only once"):
        reader.frames()


def test_resampler_output_time_is_exact():
    """The resampler's output_time is first + k / fps as an exact fraction."""
    from vadfeat.io.resample import Resampler

    r = Resampler(4.0)
    times = []
    for k, t in enumerate([Fraction(1, 2), Fraction(1), Fraction(3, 2)]):
        for _ in r.push(k, t, "x"):
            times.append(r.output_time)
    for _ in r.finish(Fraction(1, 2)):
        times.append(r.output_time)
    assert times == [Fraction(1, 2) + Fraction(k, 4) for k in range(6)]


def test_an_audio_reader_fits_the_generic_protocol_not_the_video_one():
    """The protocol is generic over the value and info types: a reader of audio chunks
    (info, iterate, close, context manager) is a Source, and not a VideoSource, which
    also needs the video counts and the pixel stage."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Chunk:
        index: int
        timestamp: float
        data: np.ndarray

    class AudioLike:
        def __init__(self) -> None:
            self.info = (16000, 1)  # rate, channels

        def __iter__(self):
            yield Chunk(0, 0.0, np.zeros(160, dtype=np.float32))

        def close(self) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    reader = AudioLike()
    assert isinstance(reader, Source) and not isinstance(reader, VideoSource)
    assert [c.index for c in reader] == [0]
