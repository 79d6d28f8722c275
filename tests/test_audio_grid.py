"""Audio grids (``vadfeat.pipeline.audio_grid``) against the reference formulas.

The expected counts and windows are computed here from the reference code as cited
(written from those lines, not from the module under test):

* torchvggish (harritaylor/torchvggish @ f3f9096), ``torchvggish/mel_features.py``
  line 42: ``num_frames = 1 + int(np.floor((num_samples - window_length) / hop_length))``
  (``frame``, no padding, incomplete frames dropped); lines 212-213: window
  ``int(round(16000 * 0.025))`` = 400 samples, hop ``int(round(16000 * 0.010))`` = 160;
  ``torchvggish/vggish_input.py`` lines 67-75: examples are ``frame(log_mel, 96, 96)``
  (``int(round(0.96 * 100))``).  tensorflow/models ``research/audioset/vggish/
  vggish_input.py`` (6cfe241) has the same lines; tensorflow/models#9938: 0.96 s of
  audio gives a (94, 64) log-mel, so no example.
* XD-Violence's grid: one 0.96 s window per 16-frame snippet at 24 fps, end-aligned
  (JustinYuu/MACIL_SD#3); ``list/make_gt.py`` lines 41-44 of Roc-Ng/XDVioDet (f846d8c)
  keep ``16 * floor((N - 1) / 16)`` frames per test video.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vadfeat.cli import main
from vadfeat.errors import ConfigError
from vadfeat.pipeline.audio_grid import (
    AudioGridError,
    AudioWindow,
    coverage,
    gather_examples,
    log_mel_frames,
    padding,
    plain_grid,
    read_sidecar,
    sidecar_grid,
    snippet_end_times,
    snippet_grid,
    video_seconds,
    xd_grid,
)
from vadfeat.testing import synth

SR = 16000


def ref_frame_count(num_samples: int, window_length: int, hop_length: int) -> int:
    """``mel_features.frame``'s row count (line 42); a negative count is the reference's
    ``as_strided`` failing on a negative dimension, read as no rows."""
    count = 1 + int(np.floor((num_samples - window_length) / hop_length))
    return max(count, 0)


def ref_num_examples(num_samples: int) -> int:
    stft_window = round(SR * 0.025)
    stft_hop = round(SR * 0.010)
    log_mel_rows = ref_frame_count(num_samples, stft_window, stft_hop)
    example = round(0.96 * (1.0 / 0.010))
    return ref_frame_count(log_mel_rows, example, example)


# --------------------------------------------------------------------------- plain grid


@pytest.mark.parametrize(("seconds_or_samples", "expected"), [
    (0, 0),
    (239, 0),          # the reference fails here (negative dimension): no example
    (400, 0),          # one log-mel frame
    (15360, 0),        # exactly 0.96 s: 94 frames (tensorflow/models#9938)
    (15599, 0),        # one sample short of 96 frames
    (15600, 1),        # 400 + 95 * 160: the first example is complete
    (30959, 1),
    (30960, 2),        # 15600 + 15360
    (SR * 10, 10),
])
def test_plain_grid_counts_at_the_edges(seconds_or_samples: int, expected: int) -> None:
    n = seconds_or_samples
    assert ref_num_examples(n) == expected  # the table agrees with the cited formula
    assert len(plain_grid(n)) == expected


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=40 * SR))
def test_plain_grid_matches_the_reference_framing(n: int) -> None:
    windows = plain_grid(n)
    assert len(windows) == ref_num_examples(n)
    assert log_mel_frames(n) == ref_frame_count(n, 400, 160)
    # Example k of the reference is log-mel rows [96 k, 96 k + 96): frame() strides by the hop.
    rows = ref_frame_count(n, 400, 160)
    log_mel = np.arange(rows, dtype=np.float64)[:, None] * np.ones((1, 2))
    if windows:
        ref = np.lib.stride_tricks.sliding_window_view(log_mel, 96, axis=0)[::96]
        ref = ref[: len(windows)].transpose(0, 2, 1)
        np.testing.assert_array_equal(gather_examples(log_mel, windows), ref)
        assert windows[-1].sample_stop <= n  # every sample read is real audio
    for w in windows:
        assert (w.frames, w.stop_s - w.start_s) == (96, pytest.approx(0.96, abs=1e-12))
        assert w.sample_stop - w.sample_start == 400 + 95 * 160


# --------------------------------------------------------------------------- snippet grid


def nearest_frame(t: Fraction) -> int:
    """Nearest 10 ms frame boundary, halves up."""
    return math.floor(t * 100 + Fraction(1, 2))


def test_snippet_grid_end_aligns_and_pads_the_first_window() -> None:
    ends = [Fraction(16 * (k + 1), 24) for k in range(5)]
    windows = snippet_grid(ends)
    assert [w.stop for w in windows] == [67, 133, 200, 267, 333]  # 66.67, 133.33, ... rounded
    assert all(w.frames == 96 for w in windows)
    assert windows[0] == AudioWindow(-29, 67)  # 0.29 s before the track: silence
    for w, t in zip(windows, ends, strict=True):
        assert abs(w.stop_s - float(t)) <= 0.005  # half a log-mel frame

    clamped = snippet_grid(ends, first="clamp")
    assert clamped[0] == AudioWindow(0, 96)  # no longer end-aligned
    assert clamped[1:] == windows[1:]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fractions(min_value=0, max_value=600), max_size=30).map(sorted),
       st.sampled_from(["pad", "clamp"]))
def test_snippet_grid_ends_within_half_a_frame(ends: list[Fraction], first: str) -> None:
    windows = snippet_grid(ends, first=first)  # type: ignore[arg-type]
    assert len(windows) == len(ends)
    for w, t in zip(windows, ends, strict=True):
        assert w.frames == 96
        if first == "pad" or t * 100 >= 96 + Fraction(1, 2):
            assert abs(Fraction(w.stop, 100) - t) <= Fraction(1, 200)
        else:
            assert w.start >= 0


def test_snippet_grid_tail_rule() -> None:
    ends = [Fraction(1), Fraction(2)]
    # A 1.5 s track: 1 + (24000 - 400) // 160 = 148 log-mel frames.
    n = 24000
    assert snippet_grid(ends, num_samples=n)[1] == AudioWindow(104, 200)  # padded past the end
    assert snippet_grid(ends, num_samples=n, tail="clamp")[1] == AudioWindow(148 - 96, 148)
    # Shorter than one example: clamped to start at 0 and still padded at its end.
    short = snippet_grid([Fraction(2)], num_samples=8000, tail="clamp", first="clamp")
    assert short == (AudioWindow(0, 96),)
    with pytest.raises(ConfigError, match="num_samples"):
        snippet_grid(ends, tail="clamp")


@pytest.mark.parametrize("bad", [[-0.1], [1.0, 0.5], [float("nan")], ["1"]])
def test_snippet_grid_refuses_bad_end_times(bad: list[object]) -> None:
    with pytest.raises(ConfigError, match="end_times_s"):
        snippet_grid(bad)  # type: ignore[arg-type]


def test_snippet_grid_refuses_unknown_rules() -> None:
    with pytest.raises(ConfigError, match="'pad', 'clamp'"):
        snippet_grid([1.0], first="drop")  # type: ignore[arg-type]


@pytest.mark.parametrize("num_frames", [16, 17, 31, 32, 48, 53, 240, 1441, 4800, 14401])
def test_xd_grid_has_the_visual_count(num_frames: int) -> None:
    # The visual T of 16-frame snippets, trailing partial snippet dropped.
    t_visual = num_frames // 16
    windows = xd_grid(num_frames)
    assert len(windows) == t_visual
    for k, w in enumerate(windows):
        end = Fraction(16 * (k + 1), 24)
        assert w.stop == nearest_frame(end) and w.start == w.stop - 96
    # make_gt.py's count, floor((N - 1) / 16), with one frame of lookahead.
    assert len(xd_grid(num_frames, lookahead=1)) == (num_frames - 1) // 16


def test_hop_method_drifts_from_the_snippet_count() -> None:
    """Why the XD grid is per snippet: the EXAMPLE_HOP_SECONDS way (ttgeng233/UnAV#7)
    rounds 16/24 s to int(round(66.67)) = 67 frames, so a 200 s video at 24 fps gets
    fewer examples than snippets."""
    num_frames = 4800
    n = num_frames * SR // 24
    rows = ref_frame_count(n, 400, 160)
    hop_examples = ref_frame_count(rows, 96, round(16 / 24 * 100))
    assert (hop_examples, num_frames // 16, len(xd_grid(num_frames))) == (298, 300, 300)


# --------------------------------------------------------------------------- padding


def test_padding_reads_silence_outside_the_track() -> None:
    n = SR  # a 1 s track under a 2 s video (48 frames at 24 fps: 3 snippets)
    windows = xd_grid(48, num_samples=n)
    assert [w.to_list() for w in windows] == [[-29, 67], [37, 133], [104, 200]]
    before, after = padding(windows, n)
    assert before == 29 * 160
    assert after == (199 * 160 + 400) - n
    audio = np.arange(1, n + 1, dtype=np.float64)  # no zero inside the track
    padded = np.concatenate([np.zeros(before), audio, np.zeros(after)])
    for w in windows:
        seen = padded[w.sample_start + before: w.sample_stop + before]
        assert seen.size == 15600
        expected = [float(i + 1) if 0 <= i < n else 0.0 for i in range(w.sample_start, w.sample_stop)]
        np.testing.assert_array_equal(seen, expected)
    rows = 1 + (padded.size - 400) // 160
    assert rows >= max(w.stop for w in windows) + before // 160
    log_mel = (np.arange(rows)[:, None] * 160 - before).astype(np.float64)  # each row's first sample
    ex = gather_examples(log_mel, windows, frame_offset=before // 160)
    assert ex.shape == (3, 96, 1)
    assert [int(e[0, 0]) for e in ex] == [w.start * 160 for w in windows]

    cov = coverage(windows, n, video_seconds=2.0).to_dict()
    assert cov == {"audio_seconds": 1.0, "video_seconds": 2.0,
                   "padded_seconds": pytest.approx((before + after) / SR),
                   "padded_before_seconds": 0.29, "padded_after_seconds": after / SR,
                   "unused_seconds": 0.0}


def test_coverage_of_a_track_longer_than_the_video() -> None:
    windows = xd_grid(48)  # 2 s of video; the last window reads up to sample 199 * 160 + 400
    cov = coverage(windows, 3 * SR, video_seconds=2.0)
    assert cov.padded_after_seconds == 0.0
    assert cov.unused_seconds == (3 * SR - (199 * 160 + 400)) / SR
    assert coverage((), 0).to_dict()["padded_seconds"] == 0.0


def test_gather_refuses_a_window_outside_the_log_mel() -> None:
    with pytest.raises(ValueError, match="outside"):
        gather_examples(np.zeros((100, 64)), [AudioWindow(-1, 95)])


# --------------------------------------------------------------------------- sidecars


@pytest.fixture(scope="module")
def visual_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Sidecars of real ``vadfeat extract`` runs (tiny random-weights I3D) on a 53-frame
    24 fps video: native rate (3 snippets), and ``--fps 30 --tail pad`` (5 snippets)."""
    root = tmp_path_factory.mktemp("grid")
    video = synth.write_video(root / "in" / "v.mp4",
                              synth.scene_frames(53, width=64, height=48, seed=1), fps=24)
    common = ["--model", "i3d/r50_tiny", "--random-weights", "--crops", "1", "--size", "64", "-q"]
    assert main(["extract", str(video), "-o", str(root / "native"), *common]) == 0
    assert main(["extract", str(video), "-o", str(root / "fps30"), *common,
                 "--fps", "30", "--tail", "pad"]) == 0
    return {"native": root / "native" / "v.json", "fps30": root / "fps30" / "v.json"}


def test_sidecar_grid_of_a_native_rate_extraction(visual_runs: dict[str, Path]) -> None:
    meta = json.loads(visual_runs["native"].read_text())
    features = np.load(visual_runs["native"].with_suffix(".npy"))
    assert meta["snippets"] == [[0, 15], [16, 31], [32, 47]]
    ends = [Fraction(last + 1, 24) for _, last in meta["snippets"]]  # frame i lasts [i, i+1)/24
    assert list(snippet_end_times(meta)) == ends
    assert video_seconds(meta) == 53 / 24
    windows = sidecar_grid(visual_runs["native"])
    assert len(windows) == features.shape[0]
    for w, t in zip(windows, ends, strict=True):
        assert w.stop == nearest_frame(t)
        assert abs(w.stop_s - float(t)) <= 0.005
    assert windows == xd_grid(53)  # the same grid as vggish-xd's on this video


def test_sidecar_grid_under_fps_resampling(visual_runs: dict[str, Path]) -> None:
    meta = json.loads(visual_runs["fps30"].read_text())
    features = np.load(visual_runs["fps30"].with_suffix(".npy"))
    # 53 frames at 24 fps last 53/24 s; at 30 fps that is 67 output frames, 5 snippets of 16
    # (the last padded).  The ranges name source frames, so they are no guide to time.
    assert (meta["fps"], meta["native_fps"], features.shape[0]) == (30.0, 24.0, 5)
    expected = [Fraction(16 * (k + 1), 30) for k in range(4)] + [Fraction(53, 24)]
    assert list(snippet_end_times(meta)) == expected
    windows = sidecar_grid(meta)
    assert len(windows) == features.shape[0]
    for w, t in zip(windows, expected, strict=True):
        assert w.stop == nearest_frame(t)


def test_a_sidecar_without_its_fields_fails_naming_the_file(tmp_path: Path,
                                                            visual_runs: dict[str, Path]) -> None:
    meta = read_sidecar(visual_runs["native"])
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({k: v for k, v in meta.items() if k != "snippets"}))
    with pytest.raises(AudioGridError, match=r"broken\.json.*'snippets'"):
        sidecar_grid(broken)
    (tmp_path / "garbled.json").write_text("{not json")
    with pytest.raises(AudioGridError, match=r"garbled\.json"):
        sidecar_grid(tmp_path / "garbled.json")
    with pytest.raises(AudioGridError, match=r"snippets\[1\]"):
        snippet_end_times({**meta, "snippets": [[0, 15], [16]]})
