"""Attempt records (``vadfeat.store.attempts``) and the Ray actor's retry report, without a
cluster: the actor is called in this process, as Ray Data would call it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vadfeat.engines.ray import _ExtractActor, _ray_config, describe_attempt
from vadfeat.store.attempts import Attempt, AttemptRecord, Attempts
from vadfeat.store.sinks import NpySink
from vadfeat.testing import synth


def _attempt(run: str, pid: int, node: str | None = "n1") -> Attempt:
    return Attempt(run=run, host="h", pid=pid, node=node, started=f"2026-01-01T00:00:{pid:02d}Z")


def test_begin_returns_the_attempts_that_ended_without_a_result(tmp_path: Path) -> None:
    records = Attempts(tmp_path)
    first, second, third = _attempt("r1", 11), _attempt("r1", 12), _attempt("r2", 13)
    assert records.begin("a/v.json", "a/v.mp4", first) == ()
    assert records.begin("a/v.json", "a/v.mp4", second) == (first,)  # the first died
    records.finish("a/v.json", "a/v.mp4", {"status": "ok"})
    assert records.read("a/v.json") == AttemptRecord((first, second), {"status": "ok"})
    # A finished record left by a driver that died before deleting it is no retry.
    assert records.begin("a/v.json", "a/v.mp4", third) == ()
    assert records.pending() == [records.path("a/v.json").name]
    assert records.path("a/v.json").parent == tmp_path / ".vadfeat-locks"
    records.end("a/v.json")
    records.end("a/v.json")  # twice: nothing to do
    assert records.read("a/v.json") == AttemptRecord() and records.pending() == []


@pytest.mark.parametrize("content", [b"", b"\xff\x00", b"[]", b'{"format": "other"}',
                                     b'{"format": "vadfeat-attempts", "attempts": [{"pid": "x"}, 3]}'])
def test_a_damaged_record_counts_as_empty(tmp_path: Path, content: bytes) -> None:
    records = Attempts(tmp_path)
    records.path("v.json").write_bytes(content)
    assert records.read("v.json") == AttemptRecord()
    assert records.begin("v.json", "v.mp4", _attempt("r", 1)) == ()


def test_describe_attempt_says_what_ended_it() -> None:
    a = _attempt("r1", 42, node="abc")
    assert describe_attempt(a, "r2", None) == (
        "node abc/pid 42 on h started it at 2026-01-01T00:00:42Z; its run r1 stopped before the "
        "video was done")
    assert describe_attempt(a, "r1", {"other"}) == (
        "node abc/pid 42 on h was lost with its node while extracting (started 2026-01-01T00:00:42Z)")
    assert describe_attempt(a, "r1", {"abc"}) == (
        "node abc/pid 42 on h died while extracting (started 2026-01-01T00:00:42Z)")
    assert describe_attempt(_attempt("r1", 7, node=None), "r1", None) == (
        "pid 7 on h died while extracting (started 2026-01-01T00:00:07Z)")


@pytest.fixture
def actor(tmp_path: Path) -> Iterator[_ExtractActor]:
    cfg = _ray_config({"random_weights": True, "model": "vit_tiny_patch16_224", "size": 32,
                       "short_side": 32}, None)
    out = tmp_path / "out"
    threads = torch.get_num_threads()  # the actor sets its process's torch threads (to 1)
    yield _ExtractActor(cfg, "flat", cfg.fingerprint(cfg.identify(), "cpu", "flat"), str(out),
                        False, 1, NpySink(out), run="r2")
    torch.set_num_threads(threads)


def _batch(src: Path) -> dict[str, np.ndarray]:
    return {"index": np.array([0]), "source": np.array([str(src)], dtype=object),
            "name": np.array(["x.mp4"], dtype=object), "stem": np.array(["x"], dtype=object),
            "planned": np.array([json.dumps({"status": "absent", "stale": []})], dtype=object)}


def test_the_actor_reports_the_attempts_before_it(tmp_path: Path, actor: _ExtractActor) -> None:
    """A record left by a dead worker of another run and one of this run: the entry says
    the video is on its third attempt and why each earlier one ended; the record keeps the
    result, and the same run asking again gets it back without extracting again."""
    src = synth.write_video(tmp_path / "x.mp4", synth.scene_frames(32, width=64, height=48), fps=25)
    records = Attempts(actor.out)
    dead = [_attempt("r1", 91, node=None), _attempt("r2", 92, node=None)]
    for a in dead:
        records.begin("x.json", "x.mp4", a)
    row = actor(_batch(src))
    entry = json.loads(row["entry"][0])
    assert entry["status"] == "ok" and entry["attempts"] == 3
    assert entry["retried"] == [describe_attempt(dead[0], "r2", None),
                                describe_attempt(dead[1], "r2", None)]
    assert "run r1 stopped" in entry["retried"][0] and "died" in entry["retried"][1]
    assert bool(row["attempted"][0]) and row["payload"][0] == b""
    kept = records.read("x.json")
    assert kept.entry == entry and kept.attempts[:2] == tuple(dead)
    stamp = (actor.out / "x.npy").stat().st_mtime_ns
    again = json.loads(actor(_batch(src))["entry"][0])
    assert again == entry and (actor.out / "x.npy").stat().st_mtime_ns == stamp


def test_the_actor_gives_up_after_three_deaths_in_its_run(tmp_path: Path, actor: _ExtractActor) -> None:
    src = synth.write_video(tmp_path / "x.mp4", synth.scene_frames(32, width=64, height=48), fps=25)
    records = Attempts(actor.out)
    for pid in (1, 2, 3):
        records.begin("x.json", "x.mp4", _attempt("r2", pid, node=None))
    entry = json.loads(actor(_batch(src))["entry"][0])
    assert entry["status"] == "failed" and entry["attempts"] == 3
    assert entry["error"].startswith("no result after 3 attempts: the worker process died")
    assert len(entry["retried"]) == 3
    assert not (actor.out / "x.npy").exists()
