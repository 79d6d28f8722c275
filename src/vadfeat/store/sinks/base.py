"""The sink interface: where one run's features go, and what a finished output is.

An engine never builds a path.  It asks the run's sink, through one lifecycle (the
spirit of Ray Data's ``Datasink`` and webdataset's ``ShardWriter``):

1. :meth:`Sink.open`, once, before any work (make the folder, clean what a killed run left);
2. per video, :meth:`Sink.plan` its *target* from the video's output stem (the input's
   relative path without suffix) and :meth:`Sink.key` (the name its claim is taken
   under), then :meth:`Sink.state`: what is there now against the run's settings
   fingerprint (:class:`OutputState`: absent, done, redo, changed, foreign);
   :meth:`Sink.present` (may anything be there?) and :meth:`Sink.previous` (the video's
   output under other settings, elsewhere) refine the plan, :meth:`Sink.describe` and
   :meth:`Sink.label` name a target in the manifest and in messages;
3. :meth:`Sink.write` a video's :class:`VideoFeatures` (features + sidecar) to its
   target, atomically, deleting ``stale`` files of the video's previous output;
4. :meth:`Sink.commit`, once, after the last write (a sink that buffers, such as
   one that packs videos into shards, finishes its last shard here), or
   :meth:`Sink.abort` when the run stops early.

The target is the sink's own type: one file per video, a set of files per video or a
member of a shard all fit; the engines only pass it back, never look inside it.  A run
holds one sink (``RunContext.sink`` in ``vadfeat.engines.context``); a Ray worker
receives a copy of it (:meth:`Sink.at`) and plans each target again from the stem.
``vadfeat.store.sinks.npy`` is the worked case (``.npy`` + ``.json`` per video, three layouts).
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from vadfeat.store.atomic import clean_stale_temporaries


@dataclass(frozen=True)
class VideoFeatures:
    """One video's features ``[T, ...]`` float32 and the sidecar metadata describing them."""

    features: np.ndarray
    metadata: dict[str, Any]


@dataclass(frozen=True)
class OutputState:
    """What is at a video's target, as :meth:`Sink.state` found it.

    ``status``: ``absent`` (nothing), ``done`` (complete, this run's settings, files
    and source verified), ``redo`` (vadfeat's but stale or damaged: ``reason`` says
    why), ``changed`` (complete, but made with other settings: ``previous`` holds the
    other fingerprint) or ``foreign`` (a file vadfeat did not write is in the way:
    ``reason`` names it).  ``stale``: vadfeat's files of the existing output that a new
    write must delete.
    """

    status: Literal["absent", "done", "redo", "changed", "foreign"]
    reason: str = ""
    previous: dict[str, Any] | None = None
    stale: tuple[Path, ...] = ()


TargetT = TypeVar("TargetT")


class Sink(abc.ABC, Generic[TargetT]):
    """Writes one run's outputs below the folder ``out``; see the module docstring."""

    #: The name a run chooses this sink by (``--layout``, the sidecar's ``layout``).
    name: str = ""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)

    def at(self, out: str | Path) -> Sink[TargetT]:
        """A copy of this sink's settings that writes below ``out`` instead (the same folder
        seen from elsewhere: a Ray worker gets the absolute path), to be opened by whoever
        uses it.  It must pickle: a Ray worker receives it so.  A sink that holds more than
        settings (buffers, open files) overrides it to copy its settings only."""
        clone = copy.copy(self)
        clone.out = Path(out)
        return clone

    def open(self) -> None:
        """Before any work: create ``out`` and remove the temporaries a killed run of this
        host left (never a live process's).  Raises OSError."""
        self.out.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(self.out)

    @abc.abstractmethod
    def plan(self, stem: PurePosixPath) -> TargetT:
        """The target of the video whose output stem is ``stem`` (``a/b/clip`` for
        ``a/b/clip.mp4``).  Pure: touches no file."""

    @abc.abstractmethod
    def key(self, target: TargetT) -> str:
        """A name for ``target`` unique within ``out`` and stable across runs: the
        video's claim (:class:`~vadfeat.store.claims.Claims`) and ownership record key."""

    def describe(self, target: TargetT) -> str:
        """Where ``target``'s features are, in words a user can follow (the run manifest's
        ``output`` for a video done or skipped): by default its :meth:`key`."""
        return self.key(target)

    def label(self, target: TargetT) -> str:
        """A short name of ``target`` for log messages: by default the last part of its
        :meth:`key`."""
        return self.key(target).rsplit("/", 1)[-1]

    def present(self, target: TargetT) -> bool:
        """Whether anything of ``target`` (or of the video's previous output, see
        :meth:`previous`) may be there; False lets a run plan the video as absent without
        computing its settings fingerprint (which may hash the checkpoint).  Cheap (stats,
        an index lookup).  By default True: :meth:`state` always decides."""
        return True

    def previous(self, target: TargetT) -> OutputState | None:
        """A complete output of the same video that this sink keeps elsewhere under other
        settings (the ``.npy`` sink: another layout's place), as ``changed`` with its
        files in ``stale``; None when there is none (the default).  A run asks it at
        planning time, when :meth:`state` found ``target`` absent or to redo."""
        return None

    @abc.abstractmethod
    def state(self, target: TargetT, fingerprint: Mapping[str, Any] | None, *,
              source: Path | str | None = None, verify: bool = True) -> OutputState:
        """What is at ``target`` for a run with ``fingerprint``; never raises on bad files.

        ``source``: the video, to compare with the source identity the output recorded;
        ``verify``: check the files' recorded hashes.  ``fingerprint=None``: stop after
        the ownership checks (a complete output is then ``changed``)."""

    @abc.abstractmethod
    def write(self, target: TargetT, result: VideoFeatures, *, stale: Iterable[Path] = ()) -> str:
        """Write ``result`` to ``target`` as one unit (a reader sees the old output or the
        new one, never a mix), deleting ``stale`` (from :meth:`state`).  Returns where the
        features went, for the run's manifest.  Raises OSError (nothing half-written is
        left as done)."""

    #: True for a sink whose :meth:`write` buffers (a sharded sink packs videos into a
    #: shard that becomes visible whole): a video written is not done until the shard
    #: holding it is committed.  The engines then keep the video's claim and record it
    #: ``ok`` only once :meth:`take_committed` returns its key; killed before that, a
    #: rerun does the video again.  False (the ``.npy`` sink): every write is final.
    buffers: bool = False

    def take_committed(self) -> list[str]:
        """The keys (:meth:`key`) of the videos whose writes became durable since the last
        call, in write order, and forget them.  A buffering sink moves a shard's keys here
        when the shard is committed (by a :meth:`write` that fills it, or by
        :meth:`commit`); the default (a sink that does not buffer) has none to report."""
        return []

    def commit(self) -> None:
        """After the run's last write: finish what is buffered.  Raises OSError."""

    def abort(self) -> None:
        """The run stops early: drop what is buffered and not yet written."""

    def prepare_run(self) -> None:
        """In the process that keeps the run's manifest, before the run looks at ``out``: a
        sink whose outputs are not ``out`` itself (a URL; ``out`` is then its local staging
        folder) brings the run files kept with its outputs there (the manifest).  The
        default does nothing.  Raises OSError, ConfigError."""

    def publish_run(self) -> None:
        """After the run's manifest is closed: a sink writing to a URL uploads it there.  The
        default does nothing.  Raises OSError."""


__all__ = ["OutputState", "Sink", "VideoFeatures"]
