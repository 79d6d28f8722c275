"""Claiming a video, written once for every engine (vadfeat.engines.claiming), and how the
local producers report a video they do not take (vadfeat.engines.producer.claim_or_report).

Two :class:`Claims` of one output folder in this process stand for two processes: a
``flock`` belongs to its open file, so the second one is refused while the first holds it.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path, PurePosixPath

import pytest

from vadfeat.engines import claiming
from vadfeat.engines.claiming import CLAIMED, ClaimResult, Outcome, claim_video, held_result
from vadfeat.engines.events import VideoFailed, VideoPassed
from vadfeat.engines.producer import claim_or_report
from vadfeat.store.claims import HELD, Claims
from vadfeat.store.sinks.base import OutputState
from vadfeat.store.sinks.npy import NpySink, OutputPaths, output_paths

FP = {"model": "test"}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, OutputPaths, Path, str]:
    out = tmp_path / "out"
    out.mkdir()
    source = tmp_path / "v.mp4"
    source.write_bytes(b"not read: nothing is at the outputs")
    paths = output_paths(out, PurePosixPath("v"), layout="flat")
    return out, paths, source, str(paths.sidecar.relative_to(out))


def _claim(claims: Claims | None, setup: tuple[Path, OutputPaths, Path, str],
           **kwargs: object) -> tuple[ClaimResult, tuple[Path, ...]]:
    out, paths, source, key = setup
    return claim_video(claims, key, paths, FP, sink=NpySink(out), source=source, overwrite=False,
                       planned=OutputState("absent"), **kwargs)  # type: ignore[arg-type]


def test_held_result_names_each_refusal() -> None:
    assert held_result(f"{HELD} (host 12)", may_defer=False) == (Outcome.HELD_ELSEWHERE, f"{HELD} (host 12)")
    assert held_result(f"{HELD} (host 12)", may_defer=True).outcome is Outcome.DEFERRED
    # A sibling is reported by the sibling, whether or not the run may wait.
    assert held_result(f"{HELD} sibling (host 12)", may_defer=True).outcome is Outcome.HELD_BY_SIBLING
    assert held_result("failed on another device of this run: bad", may_defer=True).outcome \
        is Outcome.FAILED_BY_SIBLING


def test_statuses_are_the_manifest_and_event_kinds() -> None:
    assert {o: o.status for o in Outcome} == {
        Outcome.HELD_ELSEWHERE: "elsewhere", Outcome.HELD_BY_SIBLING: "sibling",
        Outcome.DEFERRED: "defer", Outcome.FAILED_BY_SIBLING: "skipped",
        Outcome.DONE_MEANWHILE: "skipped", Outcome.REFUSED: "failed"}


def test_claimed_holds_the_claim_until_released(setup: tuple[Path, OutputPaths, Path, str]) -> None:
    out, _, _, key = setup
    mine, other = Claims(out), Claims(out)
    result, stale = _claim(mine, setup)
    assert result == CLAIMED == (None, "") and result.claimed and stale == ()
    held, _ = _claim(other, setup)
    assert held.outcome is Outcome.HELD_ELSEWHERE and held.reason.startswith(HELD)
    assert _claim(other, setup, may_defer=True)[0].outcome is Outcome.DEFERRED
    mine.release(key)
    assert _claim(other, setup)[0].claimed
    other.release_all()


def test_a_sibling_of_the_run(setup: tuple[Path, OutputPaths, Path, str]) -> None:
    out, _, _, key = setup
    first, second = Claims(out, run_token="t"), Claims(out, run_token="t")
    assert _claim(first, setup)[0].claimed
    assert _claim(second, setup, may_defer=True)[0].outcome is Outcome.HELD_BY_SIBLING
    first.mark_failed(key, "cannot decode")
    first.release(key)
    result, _ = _claim(second, setup)
    assert result == (Outcome.FAILED_BY_SIBLING, "failed on another device of this run: cannot decode")
    assert _claim(Claims(out), setup)[0].claimed  # another run's process does not read the token


def test_a_foreign_file_is_refused_and_the_claim_released(
        setup: tuple[Path, OutputPaths, Path, str]) -> None:
    out, paths, _, key = setup
    paths.features[0].write_bytes(b"someone else's file")
    result, stale = _claim(Claims(out), setup)
    assert result.outcome is Outcome.REFUSED and "was not written by vadfeat" in result.reason
    assert stale == () and Claims(out).acquire(key) is None  # not held any more


def test_done_meanwhile_releases_the_claim(setup: tuple[Path, OutputPaths, Path, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out, key = setup[0], setup[3]
    monkeypatch.setattr(claiming, "recheck", lambda *a, **k: ("skipped", "done by another", ()))
    assert _claim(Claims(out), setup)[0] == (Outcome.DONE_MEANWHILE, "done by another")
    assert Claims(out).acquire(key) is None


def test_an_error_under_the_claim_releases_it(setup: tuple[Path, OutputPaths, Path, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(claiming, "recheck", broken)
    with pytest.raises(OSError, match="disk gone"):
        _claim(Claims(setup[0]), setup)
    assert Claims(setup[0]).acquire(setup[3]) is None


def test_a_lock_error_is_raised_or_handed_over(setup: tuple[Path, OutputPaths, Path, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    claims = Claims(setup[0])

    def no_flock(key: str, *, wait: threading.Event | None = None) -> str | None:
        raise OSError("flock not supported")

    monkeypatch.setattr(claims, "acquire", no_flock)
    with pytest.raises(OSError, match="flock"):
        _claim(claims, setup)
    seen: list[OSError] = []
    result, _ = _claim(claims, setup, lock_error=seen.append)
    assert result.claimed and [str(e) for e in seen] == ["flock not supported"]
    assert _claim(None, setup)[0].claimed  # no claims at all: only the outputs are looked at


@pytest.mark.parametrize(("result", "event"), [
    (ClaimResult(Outcome.HELD_ELSEWHERE, "r"), VideoPassed(7, "elsewhere", "r")),
    (ClaimResult(Outcome.HELD_BY_SIBLING, "r"), VideoPassed(7, "sibling", "r")),
    (ClaimResult(Outcome.FAILED_BY_SIBLING, "r"), VideoPassed(7, "skipped", "r")),
    (ClaimResult(Outcome.DONE_MEANWHILE, "r"), VideoPassed(7, "skipped", "r")),
    (ClaimResult(Outcome.REFUSED, "r"), VideoFailed(7, "r")),
])
def test_a_video_not_taken_is_reported_once(result: ClaimResult, event: object) -> None:
    events: queue.Queue = queue.Queue()
    assert claim_or_report(lambda vid: result, 7, Path("v.mp4"), events, threading.Event()) is None
    assert events.get_nowait() == event and events.empty()


@pytest.mark.parametrize("result", [CLAIMED, ClaimResult(Outcome.DEFERRED, "r")])
def test_a_claimed_or_deferred_video_is_the_producers_to_handle(result: ClaimResult) -> None:
    events: queue.Queue = queue.Queue()
    assert claim_or_report(lambda vid: result, 7, Path("v.mp4"), events, threading.Event()) == result
    assert events.empty()


def test_a_claim_that_raises_fails_the_video() -> None:
    def full_disk(vid: int) -> ClaimResult:
        raise OSError(28, "No space left on device")

    events: queue.Queue = queue.Queue()
    assert claim_or_report(full_disk, 3, Path("v.mp4"), events, threading.Event()) is None
    assert events.get_nowait() == VideoFailed(
        3, "cannot claim the video: [Errno 28] No space left on device")
