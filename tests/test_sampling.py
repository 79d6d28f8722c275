"""Snippet index math and its streaming twin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vadfeat.errors import ConfigError, VideoTooShortError
from vadfeat.pipeline.sampling import SnippetAssembler, snippet_indices, snippet_span


def _reference(n, clip, interval, stride, tail):
    """The definition, written as plainly as possible."""
    span = (clip - 1) * interval + 1
    step = stride or clip * interval
    out = []
    for start in range(0, n, step):
        if tail == "drop":
            if start + span <= n:
                out.append([start + j * interval for j in range(clip)])
        else:
            out.append([min(start + j * interval, n - 1) for j in range(clip)])
            if start + span >= n:
                break
    return out


def test_legacy_floor_and_ceil_counts():
    assert snippet_indices(33).shape == (2, 16)
    assert snippet_indices(32).tolist()[1] == list(range(16, 32))
    padded = snippet_indices(33, tail="pad")
    assert padded.shape == (3, 16)
    assert padded[2].tolist() == [32] * 16
    assert padded.dtype == np.int64
    for n in range(1, 100):
        assert len(snippet_indices(n, tail="pad")) == -(-n // 16)
        if n >= 16:
            assert len(snippet_indices(n)) == n // 16


def test_interval_and_stride():
    idx = snippet_indices(20, clip_len=4, frame_interval=3, stride=5)
    assert snippet_span(4, 3) == 10
    assert idx.tolist() == [[0, 3, 6, 9], [5, 8, 11, 14], [10, 13, 16, 19]]
    # Overlapping windows under "pad" stop at the first that reaches the end.
    assert snippet_indices(32, clip_len=16, stride=8, tail="pad")[:, 0].tolist() == [0, 8, 16]
    # A gap stride never starts a window at or past the end.
    assert snippet_indices(20, clip_len=16, stride=32, tail="pad").shape == (1, 16)


def test_short_videos():
    with pytest.raises(VideoTooShortError, match="has 10 frame"):
        snippet_indices(10)
    with pytest.raises(VideoTooShortError, match="no frames"):
        snippet_indices(0, tail="pad")
    assert snippet_indices(10, tail="pad").tolist() == [list(range(10)) + [9] * 6]
    assert snippet_indices(1, tail="pad").tolist() == [[0] * 16]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clip_len": 0},
        {"clip_len": 2.0},
        {"clip_len": True},
        {"frame_interval": -1},
        {"stride": 0},
        {"tail": "repeat"},
    ],
)
def test_bad_options(kwargs):
    with pytest.raises(ConfigError):
        snippet_indices(40, **kwargs)
    with pytest.raises(ConfigError):
        SnippetAssembler(**kwargs)


def test_bad_tail_names_allowed_values():
    with pytest.raises(ConfigError, match="'drop', 'pad'"):
        snippet_indices(40, tail="ceil")


def _assemble(n, **kwargs):
    assembler = SnippetAssembler(**kwargs)
    snippets = []
    for i in range(n):
        snippets += assembler.push(i, f"frame{i}")
    snippets += assembler.finish()
    return assembler, snippets


def test_assembler_items_follow_indices():
    assembler, snippets = _assemble(35, tail="pad")
    assert [s.frame_indices[0] for s in snippets] == [0, 16, 32]
    assert snippets[-1].items == ["frame32", "frame33", "frame34"] + ["frame34"] * 13
    assert (snippets[-1].first, snippets[-1].last) == (32, 34)
    assert assembler.buffered == 0


def test_assembler_emits_as_soon_as_complete():
    assembler = SnippetAssembler(clip_len=4)
    emitted = [len(assembler.push(i, i)) for i in range(8)]
    assert emitted == [0, 0, 0, 1, 0, 0, 0, 1]


def test_assembler_reports_source_indices():
    # Under fps resampling the pushed indices repeat or jump; layout is by position.
    assembler = SnippetAssembler(clip_len=3)
    pushed = [0, 0, 2, 5, 5, 9]
    out = [s for k, i in enumerate(pushed) for s in assembler.push(i, k)]
    assert [s.frame_indices for s in out] == [(0, 0, 2), (5, 5, 9)]
    assert [s.items for s in out] == [[0, 1, 2], [3, 4, 5]]


def test_assembler_errors():
    with pytest.raises(VideoTooShortError):
        _assemble(15)
    with pytest.raises(VideoTooShortError):
        _assemble(0, tail="pad")
    assembler = SnippetAssembler()
    with pytest.raises(VideoTooShortError):
        assembler.finish()
    with pytest.raises(RuntimeError):
        assembler.push(0, None)
    with pytest.raises(RuntimeError):
        assembler.finish()


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 90),
    clip=st.integers(1, 17),
    interval=st.integers(1, 5),
    stride=st.one_of(st.none(), st.integers(1, 40)),
    tail=st.sampled_from(["drop", "pad"]),
)
def test_assembler_matches_snippet_indices(n, clip, interval, stride, tail):
    kwargs = {"clip_len": clip, "frame_interval": interval, "stride": stride, "tail": tail}
    expected = _reference(n, clip, interval, stride, tail)
    try:
        indices = snippet_indices(n, **kwargs).tolist()
    except VideoTooShortError:
        indices = None
    assert indices == (expected or None)

    assembler = SnippetAssembler(**kwargs)
    got = []
    try:
        for i in range(n):
            got += [list(s.frame_indices) for s in assembler.push(i, i)]
        got += [list(s.frame_indices) for s in assembler.finish()]
    except VideoTooShortError:
        got = None
    assert got == indices
    assert assembler.peak_buffered <= snippet_span(clip, interval)
