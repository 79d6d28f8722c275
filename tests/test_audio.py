"""Audio decoding (``vadfeat.io.audio``): real containers written here with PyAV.

PCM sources are checked sample for sample against the int16 values written (mean of the
channels / 32768, exact in float32); AAC sources against the ``ffmpeg`` command line's
decoding of the same file (imageio-ffmpeg, another FFmpeg build) at 1e-6.  The streamed
resampler is checked against ``resampy.resample`` of the whole signal at 1e-7 absolute
(float64; the difference is the floating-point time of each output sample).
"""

from __future__ import annotations

import itertools
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_media import reference_wav, write_media
from vadfeat.errors import ConfigError, DecodeError, NoAudioStreamError, VideoOpenError
from vadfeat.io.audio import AudioChunk, open_audio, resample_chunks, samples_to_mono
from vadfeat.testing import synth


def _decode(path: Path) -> tuple[np.ndarray, list[AudioChunk]]:
    with open_audio(path) as reader:
        chunks = list(reader)
    return np.concatenate([c.data for c in chunks]), chunks


@pytest.mark.parametrize(("name", "rate", "channels", "video"), [
    ("stereo44.mkv", 44100, 2, False), ("mono16.mkv", 16000, 1, True), ("stereo48.wav", 48000, 2, False),
])
def test_pcm_is_the_mean_of_the_channels_over_32768(tmp_path: Path, name: str, rate: int, channels: int,
                                                    video: bool) -> None:
    path = tmp_path / name
    written = write_media(path, codec="pcm_s16le", rate=rate, channels=channels, seconds=1.3,
                          video=video and path.suffix == ".mkv")
    data, chunks = _decode(path)
    expected = written.astype(np.float64).mean(axis=1) / 32768.0
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, expected.astype(np.float32))
    # chunks are contiguous, indexed at the source rate, timestamps index / rate
    starts = np.cumsum([0] + [c.data.shape[0] for c in chunks[:-1]])
    assert [c.index for c in chunks] == starts.tolist()
    assert all(c.timestamp == c.index / rate for c in chunks)
    with open_audio(path) as reader:
        assert (reader.info.rate, reader.info.channels, reader.info.codec) == (rate, channels, "pcm_s16le")
        assert reader.info.duration == pytest.approx(1.3, abs=0.05)


@pytest.mark.parametrize(("name", "rate", "channels"), [("a.mp4", 44100, 2), ("a.mp4", 16000, 1),
                                                     ("a.mkv", 48000, 2)])
def test_aac_matches_the_ffmpeg_command_line(tmp_path: Path, name: str, rate: int, channels: int) -> None:
    # Same samples, same count: the priming samples dropped, and (MP4 only) the last frame cut to
    # the track's declared length, as the command line does; Matroska keeps the whole last frame.
    path = tmp_path / name
    write_media(path, codec="aac", rate=rate, channels=channels, seconds=1.5, video=True)
    data, _ = _decode(path)
    ref, ref_rate = sf.read(str(reference_wav(path, tmp_path / "ref.wav", "pcm_f32le")), dtype="float64")
    ref_mono = ref.mean(axis=1) if ref.ndim == 2 else ref
    assert ref_rate == rate
    assert data.shape == ref_mono.shape
    np.testing.assert_allclose(data, ref_mono, rtol=0, atol=1e-6)
    with open_audio(path) as reader:
        assert reader.info.codec == "aac" and reader.info.channels == channels


def test_a_file_without_audio_fails_named(tmp_path: Path) -> None:
    frames = synth.solid_frames(4, (9, 9, 9), width=32, height=32)
    video = synth.write_video(tmp_path / "silent film.mp4", frames, codec="mpeg4")
    with pytest.raises(VideoOpenError, match="no audio stream") as info:
        open_audio(video)
    assert str(video) in str(info.value)
    assert info.value.exit_code == 1  # a per-video failure
    # Its own class, and the message counts the video stream the file does hold
    # (it said "the file holds 0 stream(s)" of this mp4).
    assert isinstance(info.value, NoAudioStreamError)
    assert "1 video stream(s)" in str(info.value)


def test_unreadable_files_fail_named(tmp_path: Path) -> None:
    for path in (synth.random_bytes(tmp_path / "noise.mp4", 4000), synth.empty(tmp_path / "empty.mkv"),
                 tmp_path / "missing.wav"):
        with pytest.raises(VideoOpenError) as info:
            open_audio(path)
        assert str(path) in str(info.value)


def test_corrupt_aac_raises_decode_error_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    write_media(path, codec="aac", rate=44100, channels=2, seconds=4.0)
    synth.corrupt_middle(path, nbytes=2000, seed=1)
    with pytest.raises(DecodeError) as info, open_audio(path) as reader:
        for _ in reader:
            pass
    assert str(path) in str(info.value)


def test_damaged_pcm_that_decodes_short_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Matroska resyncs past the damage without an error: the loss must not be silent.
    path = tmp_path / "damaged.mkv"
    write_media(path, codec="pcm_s16le", rate=44100, channels=2, seconds=4.0)
    synth.corrupt_middle(path, nbytes=2000, seed=1)
    with caplog.at_level(logging.WARNING, logger="vadfeat.io.audio"), open_audio(path) as reader:
        n = sum(c.data.shape[0] for c in reader)
    assert reader.decoded == n < 0.9 * 4.0 * 44100
    assert any(str(path) in r.getMessage() and "declares" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("fmt", ["s16", "s16p", "s32", "flt", "fltp", "u8"])
def test_samples_to_mono_scales_each_format(fmt: str) -> None:
    left = np.array([-1.0, -0.5, 0.0, 0.25, 0.5])
    right = np.array([0.5, 0.5, 0.0, -0.25, 0.0])
    base = fmt.rstrip("p")
    to_int = {"s16": (32768, np.int16), "s32": (2**31, np.int32)}
    if base in to_int:
        scale, dtype = to_int[base]
        planes = np.stack([left, right]) * scale
        planes = np.clip(planes, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    elif base == "u8":
        planes = (np.stack([left, right]) * 128 + 128).astype(np.uint8)
    else:
        planes = np.stack([left, right]).astype(np.float32)
    if not fmt.endswith("p"):
        planes = planes.T.reshape(1, -1)  # interleaved, as PyAV gives packed formats
    np.testing.assert_array_equal(samples_to_mono(planes, fmt, 2), ((left + right) / 2).astype(np.float32))


@pytest.mark.parametrize("rate_in", [44100, 48000, 22050, 8000, 32000])
def test_streamed_resampling_equals_resampling_the_whole(rate_in: int) -> None:
    import resampy

    x = np.random.default_rng(rate_in).uniform(-0.5, 0.5, int(rate_in * 2.7) + 37).astype(np.float32)
    whole = resampy.resample(x.astype(np.float64), rate_in, 16000)
    sizes = np.random.default_rng(1).integers(1, 3000, size=len(x))  # ragged chunks, like decoders give
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    chunks = [AudioChunk(int(a), a / rate_in, x[a:b]) for a, b in itertools.pairwise(bounds)
              if a < len(x)]
    out = list(resample_chunks(chunks, rate_in, 16000, block=5000))  # many blocks
    assert len(out) > 3
    got = np.concatenate([c.data for c in out])
    assert got.dtype == np.float64 and got.shape == whole.shape
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-7)
    assert [c.index for c in out] == np.cumsum([0] + [c.data.shape[0] for c in out[:-1]]).tolist()


def test_resampling_passes_16k_through_and_short_input_gives_nothing() -> None:
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    out = list(resample_chunks([AudioChunk(0, 0.0, x)], 16000, 16000))
    np.testing.assert_array_equal(out[0].data, x.astype(np.float64))
    assert list(resample_chunks([AudioChunk(0, 0.0, x[:2])], 44100, 16000)) == []
    assert list(resample_chunks([], 44100, 16000)) == []


def test_missing_resampy_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "resampy", None)  # import resampy -> ImportError
    chunks = [AudioChunk(0, 0.0, np.zeros(1000, dtype=np.float32))]
    with pytest.raises(ConfigError, match="pip install resampy"):
        list(resample_chunks(chunks, 44100, 16000))
