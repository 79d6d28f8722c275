"""``decoder="torchcodec"`` (issue 15): the PyAV reader's guarantees, or a clear refusal.

Two kinds of test:

* with a stand-in torchcodec (``fake_torchcodec``: torchcodec 0.11's API backed by PyAV's
  frames) put in ``sys.modules``: every guarantee of the adapter, run everywhere;
* with the real torchcodec, skipped with the reason unless it imports and loads its
  libraries (this CPU-only machine cannot: its PyPI wheels are CUDA builds or built for
  another torch): CPU frames against PyAV's, counts, NVDEC against the CPU.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fake_torchcodec
from edited_media import bframe_mp4, cut_mp4, mkv_with_thumbnail, opencv_count
from vadfeat.cli import main
from vadfeat.errors import ConfigError, DecodeError, VideoError, VideoOpenError
from vadfeat.io.torchcodec_video import load_torchcodec
from vadfeat.io.video import open_video
from vadfeat.pipeline.config import ExtractConfig
from vadfeat.store.manifest import read_manifest
from vadfeat.testing import synth

TINY = ["--random-weights", "--model", "vit_tiny_patch16_224"]


def _read(path: Path, **kwargs: object):
    with open_video(path, **kwargs) as reader:  # type: ignore[arg-type]
        items = list(reader)
    return reader, items


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        i == j and np.array_equal(x, y) for (i, x), (j, y) in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tc-media")
    paths = {ext: synth.write_video(d / f"clip.{ext}", synth.scene_frames(20, width=64, height=48, seed=2))
             for ext in ("mp4", "avi", "mkv")}
    paths["30fps"] = synth.write_video(d / "c30.mp4", synth.scene_frames(30, width=32, height=32), fps=30)
    paths["audio"] = synth.write_audio(d / "audio.m4a", seconds=0.3)
    return paths


@pytest.fixture
def fake_tc(monkeypatch: pytest.MonkeyPatch) -> fake_torchcodec.FakeConfig:
    """torchcodec 0.11's API (a PyAV-backed stand-in) in ``sys.modules``; its config."""
    config = fake_torchcodec.FakeConfig()
    for name in [m for m in sys.modules if m == "torchcodec" or m.startswith("torchcodec.")]:
        monkeypatch.delitem(sys.modules, name)
    for name, module in fake_torchcodec.make_modules(config).items():
        monkeypatch.setitem(sys.modules, name, module)
    return config


def _ranges(config: fake_torchcodec.FakeConfig) -> list[tuple[int, int]]:
    return [(c[1], c[2]) for c in config.calls if c[0] == "range"]


# --------------------------------------------------------------------------- frames and counts


@pytest.mark.parametrize("ext", ["mp4", "avi", "mkv"])
def test_frames_equal_the_pyav_reader_in_chunks(media, fake_tc, ext):
    reader_av, av_items = _read(media[ext])
    reader_tc, tc_items = _read(media[ext], decoder="torchcodec")
    assert _same(av_items, tc_items) and len(tc_items) == 20
    assert reader_tc.info == reader_av.info
    assert (reader_tc.decoded_frames, reader_tc.yielded_frames, reader_tc.warnings) == (20, 20, [])
    opened = [c for c in fake_tc.calls if c[0] == "open"]
    assert opened == [("open", str(media[ext]), {"dimension_order": "NHWC", "num_ffmpeg_threads": 0,
                                                 "device": "cpu", "seek_mode": "exact",
                                                 "stream_index": 0})]
    # 20 frames in chunks of 8 (CHUNK_FRAMES): [0, 8), [8, 16), [16, 20).
    assert _ranges(fake_tc) == [(0, 8), (8, 16), (16, 20)]


def test_streams_one_chunk_at_a_time(media, fake_tc):
    with open_video(media["mp4"], decoder="torchcodec") as reader:
        frames = iter(reader)
        next(frames)
        assert _ranges(fake_tc) == [(0, 8)]  # nothing decoded beyond the first chunk
        for _ in range(8):
            next(frames)
        assert _ranges(fake_tc) == [(0, 8), (8, 16)]


def test_truncated_video_fails_as_with_pyav(tmp_path, fake_tc):
    # AVI declares 100 frames in its header; cut in half, about 50 decode (the PyAV
    # reader's truncation rule: more than 4 and more than 1 % missing under "fail").
    path = synth.write_video(tmp_path / "t.avi", synth.scene_frames(100, width=160, height=120))
    synth.truncate(path, 0.5)
    with pytest.raises(DecodeError) as from_av:
        _read(path)
    with pytest.raises(DecodeError) as from_tc:
        _read(path, decoder="torchcodec")
    assert str(from_tc.value) == str(from_av.value)
    assert "truncated: container declares 100 frames" in str(from_tc.value)


def test_scan_shorter_than_the_header_is_truncation(media, fake_tc):
    # torchcodec's scan finds 12 of the 20 frames the mp4 declares: 8 missing (> 4, > 1 %).
    fake_tc.num_frames_from_content = 12
    with pytest.raises(DecodeError, match=r"clip\.mp4: truncated: container declares 20 frames, "
                                          r"decoded 12; 8 frames missing"):
        _read(media["mp4"], decoder="torchcodec")


def test_lossless_cut_reads_as_with_pyav(tmp_path, fake_tc):
    # The stand-in's scan, as torchcodec's, leaves out the 10 samples flagged discard: 52 of
    # the 62 declared.  The count rule asks PyAV's demuxer for them: no failure, no warning.
    src = bframe_mp4(tmp_path / "src.mp4", 74)
    cut = cut_mp4(src, tmp_path / "cut.mp4", keyframe=1, skip=10)
    reader_av, av_items = _read(cut)
    reader_tc, tc_items = _read(cut, decoder="torchcodec")
    assert len(av_items) == len(tc_items) == 52 == opencv_count(cut)
    assert reader_tc.warnings == reader_av.warnings == []


def test_truncated_cut_still_fails_as_with_pyav(tmp_path, fake_tc):
    src = bframe_mp4(tmp_path / "src.mp4", 74)
    cut = cut_mp4(src, tmp_path / "cut.mp4", keyframe=1, skip=10)
    fake_tc.num_frames_from_content = 20  # the scan of a file cut after 30 samples
    with pytest.raises(DecodeError, match=r"cut\.mp4: truncated: container declares 62 frames "
                                          r"\(10 before its edit list's start, dropped by design\), "
                                          r"decoded 20; 32 frames missing"):
        _read(cut, decoder="torchcodec")


def test_thumbnail_track_is_skipped_as_with_pyav(tmp_path, fake_tc):
    path = mkv_with_thumbnail(tmp_path / "two.mkv", 48)
    reader_av, av_items = _read(path)
    reader_tc, tc_items = _read(path, decoder="torchcodec")
    assert _same(av_items, tc_items) and len(tc_items) == 48
    assert reader_tc.info.stream == 1 and reader_tc.warnings == reader_av.warnings
    assert [c[2]["stream_index"] for c in fake_tc.calls if c[0] == "open"] == [1]


def test_scan_longer_than_what_decodes_is_a_decode_error(media, fake_tc):
    # The scan counted 23 frames, 20 decode: torchcodec raises at the third chunk [16, 23).
    fake_tc.num_frames_from_content = 23
    with pytest.raises(DecodeError, match=r"clip\.mp4: torchcodec failed decoding frames 16-22 after "
                                          r"16 decoded frame\(s\): Requested next frame") as exc:
        _read(media["mp4"], decoder="torchcodec")
    assert isinstance(exc.value.__cause__, RuntimeError)


def test_decoder_exceptions_are_typed_and_name_the_file(media, fake_tc):
    fake_tc.fail_at = 10  # inside the second chunk [8, 16), after 8 good frames
    reader = open_video(media["mp4"], decoder="torchcodec")
    got = []
    with pytest.raises(DecodeError, match=r"clip\.mp4: torchcodec failed decoding frames 8-15 after 8 "
                                          r"decoded frame\(s\): Decoding error") as exc:
        for item in reader:
            got.append(item)
    assert len(got) == 8 and isinstance(exc.value.__cause__, RuntimeError)
    fake_tc.fail_open = "Could not open input file\nsecond line"
    with pytest.raises(VideoOpenError, match=r"clip\.mp4: torchcodec cannot open it: Could not open "
                                             r"input file$"):
        open_video(media["mp4"], decoder="torchcodec")


def test_open_errors_are_the_pyav_readers(media, fake_tc, tmp_path):
    for path in (media["audio"], synth.empty(tmp_path / "e.mp4"),
                 synth.random_bytes(tmp_path / "r.mp4", 5000), tmp_path / "missing.mp4"):
        with pytest.raises(VideoOpenError) as from_av:
            open_video(path)
        with pytest.raises(VideoOpenError) as from_tc:
            open_video(path, decoder="torchcodec")
        assert str(from_tc.value) == str(from_av.value)
    assert not [c for c in fake_tc.calls if c[0] == "open"]  # refused before torchcodec


def test_max_pixels_and_frames_of_another_size(media, fake_tc):
    with pytest.raises(VideoOpenError, match="64x48 = 3,072 pixels, more than the limit of 3,071"):
        open_video(media["mp4"], decoder="torchcodec", max_pixels=64 * 48 - 1)
    # Frames of another size than the first (PyAV) frame, which the PyAV reader would
    # rescale: refused (a chunk holds frames of one size, so the whole stream here).
    fake_tc.alter = lambda i, f: f[:40]
    with pytest.raises(DecodeError, match=r"returned frames 0-7 as 64x40 uint8, not 64x48"):
        _read(media["mp4"], decoder="torchcodec")


# --------------------------------------------------------------------------- rotation


def _set_matrix(path: Path, a: int, b: int, c: int, d: int) -> None:
    """Write the 2x2 part of the first track header's matrix (16.16 fixed point), as
    ``synth.set_display_rotation`` does for pure rotations."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    offset = at + 8 + (20 if data[at + 4] == 0 else 32) + 16
    one = 1 << 16
    data[offset:offset + 36] = struct.pack(">9i", a * one, b * one, 0, c * one, d * one, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("version", ["0.11.0", "0.10.0"])
@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_as_the_pyav_reader(tmp_path, fake_tc, version, degrees):
    """0.11 turns frames itself (metadata.rotation = -degrees, counter-clockwise); 0.10
    returns them as stored and the adapter turns them: either way the PyAV reader's frames."""
    fake_tc.version = version
    path = synth.write_video(tmp_path / "phone.mp4", synth.corner_frames(8), rotation=degrees)
    _, av_items = _read(path)
    reader_tc, tc_items = _read(path, decoder="torchcodec")
    assert _same(av_items, tc_items)
    assert reader_tc.info.rotation == degrees and tc_items[0][1].shape == av_items[0][1].shape
    if version == "0.10.0":  # autorotate off: stored frames, as the PyAV reader gives them
        assert _same(_read(path, autorotate=False)[1], _read(path, decoder="torchcodec", autorotate=False)[1])
    else:
        with pytest.raises(VideoOpenError, match=f"always turns frames .*{degrees} degrees clockwise"):
            open_video(path, decoder="torchcodec", autorotate=False)


def test_mirrored_display_matrix(tmp_path, fake_tc):
    # a = -1, d = 1: a left-right mirror (FFmpeg's CLI: hflip).  Its angle is
    # atan2(b, a) = atan2(0, -1) = 180 degrees, so torchcodec 0.11 would turn the frames
    # upside down instead of mirroring them: refused.
    path = synth.write_video(tmp_path / "m.mp4", synth.corner_frames(4))
    _set_matrix(path, -1, 0, 0, 1)
    reader_av, av_items = _read(path)
    assert reader_av.info.mirrored
    with pytest.raises(VideoOpenError, match=r"m\.mp4: the display matrix turns frames 0 degrees and "
                                             "mirrored; torchcodec 0.11.0 would turn them 180 degrees "
                                             "and never mirrors: use decoder='pyav'"):
        open_video(path, decoder="torchcodec")
    fake_tc.version = "0.10.0"  # stored frames: the adapter mirrors them as the PyAV reader does
    assert _same(av_items, _read(path, decoder="torchcodec")[1])


# --------------------------------------------------------------------------- fps resampling


def test_resampling_picks_the_pyav_readers_frames(tmp_path, media, fake_tc):
    ts = [0.0, 0.04, 0.1, 0.5, 0.52, 0.9, 1.0, 1.5, 1.55]
    vfr = synth.write_video(tmp_path / "vfr.mp4", synth.scene_frames(len(ts), width=32, height=32),
                            timestamps=ts)
    for path, fps in ((vfr, 10), (media["mkv"], 10), (media["mp4"], 50)):
        reader_av, av_items = _read(path, fps=fps)
        reader_tc, tc_items = _read(path, decoder="torchcodec", fps=fps)
        assert _same(av_items, tc_items), (path, fps)
        assert reader_tc.yielded_frames == reader_av.yielded_frames
    # Exact times matter at ties: 30 fps to 15 fps puts output k at source frame 2k's time
    # exactly (1/30 s steps of a 1/15360 time base); "latest at or before" picks 2k.  Float
    # seconds turned into fractions as they are would fall just below or above.
    _, half = _read(media["30fps"], decoder="torchcodec", fps=15)
    assert [i for i, _ in half] == list(range(0, 30, 2))


# --------------------------------------------------------------------------- boundaries


def test_frame_folders_are_read_by_the_folder_reader(tmp_path, fake_tc):
    folder = tmp_path / "frames"
    synth.write_frame_folder(folder, synth.scene_frames(5, width=32, height=32))
    assert _same(_read(folder)[1], _read(folder, decoder="torchcodec")[1])
    assert fake_tc.calls == []


def test_cuda_decoding_asks_for_nvdec(media, fake_tc):
    with open_video(media["mp4"], decoder="torchcodec", device="cuda:0") as reader:
        assert reader.device == "cuda:0"  # type: ignore[attr-defined]
    assert fake_tc.calls[0][2]["device"] == "cuda:0" and fake_tc.calls[0][2]["num_ffmpeg_threads"] == 1


def test_a_cuda_run_decodes_on_its_device(media, fake_tc, monkeypatch):
    """The snippet stream hands torchcodec the run's device when it is CUDA (here faked:
    this machine has none) and records it; PyAV runs and CPU runs decode on the CPU."""
    import vadfeat.pipeline.stream as stream

    config = ExtractConfig.from_settings(random_weights=True, model="vit_tiny_patch16_224", device="cpu",
                                         decoder="torchcodec", clip_len=2)

    from vadfeat.pipeline.transforms import build_frame_transform

    transform = build_frame_transform(config.preset)

    def run() -> dict:
        gen = stream.snippet_stream(media["mp4"], config, transform)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value

    assert run()["decode_device"] == "cpu"
    monkeypatch.setattr(stream, "resolve_device", lambda device: torch.device("cuda", 0))
    meta = run()
    assert (meta["decoder"], meta["decode_device"]) == ("torchcodec", "cuda:0")
    assert [c[2]["device"] for c in fake_tc.calls if c[0] == "open"] == ["cpu", "cuda:0"]


def test_skip_is_refused_before_any_work(media, fake_tc):
    with pytest.raises(ConfigError, match="cannot skip corrupt packets"):
        open_video(media["mp4"], decoder="torchcodec", on_corrupt="skip")
    with pytest.raises(ConfigError, match="on_corrupt='skip' cannot be honoured"):
        ExtractConfig.from_settings(random_weights=True, model="vit_tiny_patch16_224",
                                    decoder="torchcodec", on_corrupt="skip")
    assert fake_tc.calls == []


def test_missing_torchcodec_is_a_config_error(media, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # import fails: not installed
    monkeypatch.delitem(sys.modules, "torchcodec.decoders", raising=False)
    with pytest.raises(ConfigError, match="torchcodec is not installed"):
        open_video(media["mp4"], decoder="torchcodec")
    with pytest.raises(ConfigError, match="torchcodec is not installed"):
        ExtractConfig.from_settings(random_weights=True, model="vit_tiny_patch16_224", decoder="torchcodec")
    with pytest.raises(ConfigError, match="decoder must be one of 'pyav', 'torchcodec'; got 'decord'"):
        open_video(media["mp4"], decoder="decord")  # type: ignore[arg-type]


def test_torchcodec_whose_libraries_do_not_load(tmp_path, monkeypatch):
    # What a wheel for another torch or CUDA does at import: a RuntimeError of many lines.
    package = tmp_path / "site" / "torchcodec"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'raise RuntimeError("Could not load libtorchcodec. Likely causes:\\n  1. FFmpeg is not '
        'installed\\n  2. undefined symbol: c10::impl::cow::materialize_cow_storage")\n')
    for name in [m for m in sys.modules if m == "torchcodec" or m.startswith("torchcodec.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ConfigError) as exc:
        load_torchcodec()
    assert str(exc.value) == ("decoder 'torchcodec' asked for, but torchcodec cannot load its libraries: "
                              "Could not load libtorchcodec. Likely causes:")


# --------------------------------------------------------------------------- the command line


def test_cli_decoder_end_to_end(tmp_path, fake_tc, caplog):
    src = tmp_path / "src"
    src.mkdir()
    synth.write_video(src / "a.mp4", synth.scene_frames(20, width=32, height=32, seed=3))
    synth.write_video(src / "b.mkv", synth.scene_frames(17, width=32, height=32, seed=4))
    # Batch 1: which snippets share a forward pass depends on thread timing across videos,
    # which moves float32 sums by ~1e-7; one clip per pass makes every run bit-identical.
    common = [*TINY, "--clip-len", "2", "--size", "32", "--short-side", "32", "-b", "1", "-q"]
    assert main(["extract", str(src), "-o", str(tmp_path / "av"), *common]) == 0
    assert main(["extract", str(src), "-o", str(tmp_path / "tc"), *common, "--decoder", "torchcodec"]) == 0
    for stem in ("a", "b"):  # the stand-in returns PyAV's frames: the same features, bit for bit
        np.testing.assert_array_equal(np.load(tmp_path / "tc" / f"{stem}.npy"),
                                      np.load(tmp_path / "av" / f"{stem}.npy"))
        side_tc = json.loads((tmp_path / "tc" / f"{stem}.json").read_text())
        side_av = json.loads((tmp_path / "av" / f"{stem}.json").read_text())
        assert (side_tc["decoder"], side_tc["decode_device"]) == ("torchcodec", "cpu")
        assert side_tc["fingerprint"]["decoder"] == "torchcodec"
        assert side_av["decoder"] == "pyav" and "decoder" not in side_av["fingerprint"]
        assert side_tc["num_frames"] == side_av["num_frames"]
    # Resume: the same decoder skips both videos; another decoder is changed settings (exit 2).
    assert main(["extract", str(src), "-o", str(tmp_path / "tc"), *common, "--decoder", "torchcodec"]) == 0
    assert [e["status"] for e in read_manifest(tmp_path / "tc")][-2:] == ["skipped", "skipped"]
    caplog.clear()
    assert main(["extract", str(src), "-o", str(tmp_path / "tc"), *common]) == 2
    assert "decoder: torchcodec -> pyav" in caplog.text
    caplog.clear()
    assert main(["extract", str(src), "-o", str(tmp_path / "av"), *common, "--decoder", "torchcodec"]) == 2
    assert "decoder: pyav -> torchcodec" in caplog.text
    # torchcodec with --on-corrupt skip: a usage error before any work, in the flags' words.
    caplog.clear()
    assert main(["extract", str(src), "-o", str(tmp_path / "x"), *common, "--decoder", "torchcodec",
                 "--on-corrupt", "skip"]) == 2
    assert "use --on-corrupt fail, or --decoder pyav to skip corrupt packets" in caplog.text
    assert not (tmp_path / "x").exists()


def test_outputs_without_a_decoder_key_are_pyav() -> None:
    # Outputs written before the setting existed carry no "decoder": they were PyAV's.
    from vadfeat.pipeline.config import settings_fingerprint
    from vadfeat.pipeline.presets import get_preset
    from vadfeat.store.fingerprint import fingerprint_changes, same_fingerprint

    base = dict(preset=get_preset("videomae-v2"), model="vit_tiny_patch16_224", checkpoint_sha256=None,
                random_weights=True, dtype="fp32", fps=None, frames_colour="normal", on_corrupt="fail",
                layout="flat")
    old = settings_fingerprint(**base)
    assert "decoder" not in old and settings_fingerprint(**base, decoder="pyav") == old
    assert same_fingerprint(old, {**old, "decoder": "pyav"})
    new = settings_fingerprint(**base, decoder="torchcodec")
    assert not same_fingerprint(old, new)
    assert fingerprint_changes(old, new) == ["decoder: pyav -> torchcodec"]


def test_decoder_changes_the_planned_fingerprint(fake_tc, tiny_checkpoint):
    # test_integrity's classification test tries every content option but this one, which
    # needs torchcodec to load: the planned fingerprint (no model) changes with it.
    def planned(**more: object) -> dict:
        cfg = ExtractConfig.from_settings(checkpoint=tiny_checkpoint, dtype="fp32", **more)
        return cfg.fingerprint(cfg.identify(), "cpu")

    assert planned(decoder="torchcodec") == {**planned(), "decoder": "torchcodec"}
    assert planned(decoder="pyav") == planned()


def test_cli_without_torchcodec_stops_before_work(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torchcodec", None)
    monkeypatch.delitem(sys.modules, "torchcodec.decoders", raising=False)
    src = synth.write_video(tmp_path / "a.mp4", synth.scene_frames(4, width=32, height=32))
    assert main(["extract", str(src), "-o", str(tmp_path / "o"), *TINY, "--decoder", "torchcodec", "-q"]) == 2
    assert "torchcodec is not installed" in caplog.text
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- the real torchcodec


def _real_torchcodec() -> str | None:
    """Why the real torchcodec cannot run here, or None when it can."""
    try:
        load_torchcodec()
    except ConfigError as exc:
        return str(exc)
    return None


_NO_REAL = _real_torchcodec()
real = pytest.mark.skipif(_NO_REAL is not None, reason=f"real torchcodec: {_NO_REAL}")


def _diff(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.mean()), int(d.max())


@real
@pytest.mark.parametrize(("width", "ext"), [(64, "mp4"), (64, "mkv"), (64, "avi"), (48, "mp4")])
def test_real_cpu_frames_equal_pyav(tmp_path, width, ext):
    """The same FFmpeg decodes both; only the YUV->RGB conversion can differ.  PyAV's
    ``VideoReformatter`` runs swscale, bilinear, with the frame's colour matrix.  torchcodec
    (its CpuDeviceInterface) does the same (``sws_getContext(..., SWS_BILINEAR)`` and
    ``sws_setColorspaceDetails`` from the frame's colour space) when the width is a
    multiple of 32: there the frames must be equal.  Other widths go through a filter
    graph (``scale=W:H:sws_flags=bilinear`` to rgb24), whose rounding may differ: bound
    max 2 levels, mean 0.5 (a wrong matrix or range would move colours by 10 or more)."""
    path = synth.write_video(tmp_path / f"w{width}.{ext}", synth.scene_frames(20, width=width, height=48))
    reader_av, av_items = _read(path)
    reader_tc, tc_items = _read(path, decoder="torchcodec")
    assert [i for i, _ in tc_items] == [i for i, _ in av_items]
    assert reader_tc.decoded_frames == reader_av.decoded_frames == 20
    assert reader_tc.info == reader_av.info
    for (_, a), (_, b) in zip(av_items, tc_items, strict=True):
        if width % 32 == 0:
            np.testing.assert_array_equal(b, a)
        else:
            mean, worst = _diff(a, b)
            assert worst <= 2 and mean <= 0.5


@real
def test_real_counts_and_truncation(tmp_path):
    path = synth.write_video(tmp_path / "t.avi", synth.scene_frames(100, width=160, height=120))
    synth.truncate(path, 0.5)
    # Declared 100, about half decodes: typed and named (truncated by the count check, or a
    # torchcodec decoding error), never a silent short video.
    with pytest.raises(VideoError, match=r"t\.avi"):
        _read(path, decoder="torchcodec")


@real
@pytest.mark.parametrize("degrees", [90, 270])
def test_real_rotation(tmp_path, degrees):
    path = synth.write_video(tmp_path / "phone.mp4", synth.corner_frames(8), rotation=degrees)
    _, av_items = _read(path)
    _, tc_items = _read(path, decoder="torchcodec")
    assert tc_items[0][1].shape == av_items[0][1].shape
    assert _diff(tc_items[0][1], av_items[0][1])[0] <= 0.5


@real
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_nvdec_close_to_cpu(tmp_path):
    """NVDEC decodes the same bitstream to the same YUV; the conversion to RGB then runs in
    NPP with torchcodec's colour matrices, not swscale: rounding and chroma upsampling
    differ, and an untagged video (these are) may be read as BT.709 on the GPU where
    swscale assumes BT.601, which moves saturated colours by up to ~25 levels.  Bound: mean
    8, max 64 levels; a wrong or shifted frame differs by far more on this moving scene.
    The measured figures are printed by bench/gpu_check.py section 4."""
    path = synth.write_video(tmp_path / "n.mp4", synth.scene_frames(40, width=320, height=240))
    _, cpu_items = _read(path, decoder="torchcodec")
    _, gpu_items = _read(path, decoder="torchcodec", device="cuda")
    assert [i for i, _ in gpu_items] == [i for i, _ in cpu_items]
    for (_, a), (_, b) in zip(cpu_items, gpu_items, strict=True):
        mean, worst = _diff(a, b)
        assert mean <= 8.0 and worst <= 64
