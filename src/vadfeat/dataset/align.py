"""Align features with frame-level ground truth (legacy pipeline step 4, done right).

WSVAD evaluation repeats each snippet score ``16`` times and compares the result
with frame labels, so the ground truth of a video must have exactly
``frames_per_snippet * T`` frames (docs/REFERENCE.md, section 3).  :func:`align` produces, per
video, snippet labels, frame labels of exactly that length and the per-video
numbers of frames cut or padded, then the files downstream code reads.

``mode="exact"`` (default): features are not touched.

- Snippet labels come from each snippet's recorded inclusive frame range
  ``[first, last]`` (``rule``: ``max`` = any abnormal frame, ``mean`` = abnormal
  fraction, ``majority`` = more than half abnormal, a tie counts as normal).
- Frame labels for evaluation: snippet ``i`` contributes ``F = frames_per_snippet``
  labels, ``k = 0..F-1``, taken at ``first_i + k`` when the snippet spans at most
  ``F`` frames, else at ``first_i + floor(k * (last_i - first_i) / (F - 1))``
  (evenly from first to last: exactly the frames of a ``frame_interval`` snippet).
  For the default non-overlapping 16-frame snippets from frame 0 this is simply
  the first ``16 * T`` frame labels: the trailing frames that formed no snippet
  are cut, and a ground truth shorter than ``16 * T`` (or a last snippet padded
  past the end of the video) is padded.
  Overlapping snippets contribute their own frames; snippets spanning more than
  ``F`` frames (frame interval, fps resampling) contribute ``F`` evenly spaced ones;
  a padded last snippet (recorded as ``[first, N - 1]``) runs on past ``N - 1``.
- Padding repeats the **last label**, not 0: frames past the end of a video only
  exist as copies of its last frame (``tail="pad"`` snippets), so they share its
  label; padding with 0 would invent a normal ending inside an anomaly that runs
  to the end.
- ``frames_cut`` counts ground-truth frames no evaluation position refers to;
  ``frames_padded`` counts evaluation positions past the end of the ground truth.

``mode="legacy"`` reproduces the legacy alignment step (docs/REFERENCE.md, section 1,
step 4): feature rows are cut or repeated to ``T' = len(labels) // 16``.

- Longer features are truncated to their first ``T'`` rows, exactly as the
  Fed_WSVAD ``Backbone/feature_alignment.py`` does.
- Shorter features are repeated with that script's formula,
  ``np.repeat(features, T' // T + 1, axis=0)[:T']``: every row repeated
  ``T' // T + 1`` times in place (``a a b b c c``, not tiling ``a b c a b c``),
  then cut.  Note that in the published script this branch is never reached (it
  first checks ``16 * T < len(labels)`` and then only shortens the labels in
  memory, leaving such features unchanged), and that the formula can drop the
  last rows when ``T' // T + 1`` overshoots.  vadfeat states the rule instead: every output
  has exactly ``T'`` rows.  A warning names each repeated video.
- New feature files (and sidecars that record the change) are written under
  ``out/features`` in the input's layout.  Frame labels are the first ``16 * T'``
  labels (fewer than 16 cut), snippet labels use the 16-frame blocks the legacy
  code assumes row ``i`` stands for.

Outputs below ``out``: ``snippet_labels/<video>.npy`` (float32, one value per
row), ``frame_labels/<video>.npy`` (uint8, ``16 * T`` values),
``gt-<name>.npy`` (float64: the frame labels of the test videos concatenated in
test-list order, as RTFM's ``make_gt.py`` writes it) with
``gt-<name>.videos.txt`` (video, start, end offsets into it),
``GT/frame_label.pickle`` ``{video: float32 frame labels}`` and
``GT/video_label.pickle`` ``{video: [1.0] or [0.0]}`` for Fed_WSVAD, and
``align.json`` with every per-video number and issue.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from vadfeat._types import AlignMode, SnippetRule
from vadfeat.dataset.labels import (
    LabelFormat,
    LabelIssue,
    LabelSet,
    VideoLabels,
    as_label_set,
    check_frames_per_snippet,
    evaluation_positions,  # re-exported: its old home
    fit_frame_labels,
)
from vadfeat.dataset.lists import abnormal_first, read_video_list
from vadfeat.errors import ConfigError
from vadfeat.store.atomic import NPY_ERRORS
from vadfeat.store.ownership import claim_outputs, refuse_overlap
from vadfeat.store.reader import (
    FeatureRecord,
    FeatureSet,
    as_feature_set,
    derived_names,
    derived_sidecar,
    save_npy,
    write_derived,
    write_json,
    write_pickle,
    write_text,
)

log = logging.getLogger(__name__)

__all__ = [
    "AlignResult", "AlignedVideo", "align", "evaluation_positions", "fit_frame_labels",
    "legacy_row_index", "snippet_labels",
]



@dataclass(frozen=True)
class AlignedVideo:
    """Per-video result of :func:`align` (arrays are also written to disk)."""

    name: str
    video_label: int
    rows_in: int
    rows_out: int
    gt_frames: int
    decoded_frames: int | None
    target_frames: int
    frames_cut: int
    frames_padded: int
    snippet_labels: np.ndarray = field(repr=False, compare=False)
    frame_labels: np.ndarray = field(repr=False, compare=False)
    feature_paths: tuple[Path, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {
            "video_label": self.video_label, "rows_in": self.rows_in, "rows_out": self.rows_out,
            "gt_frames": self.gt_frames, "decoded_frames": self.decoded_frames,
            "target_frames": self.target_frames, "frames_cut": self.frames_cut,
            "frames_padded": self.frames_padded,
            "abnormal_snippets": int(np.count_nonzero(self.snippet_labels > 0)),
            "feature_files": [str(p) for p in self.feature_paths],
        }


@dataclass(frozen=True)
class AlignResult:
    """Everything :func:`align` wrote, per video and for the test set."""

    out: Path
    mode: AlignMode
    rule: SnippetRule
    frames_per_snippet: int
    videos: tuple[AlignedVideo, ...]
    issues: tuple[LabelIssue, ...]
    test_order: tuple[str, ...]
    gt_path: Path
    frame_label_pickle: Path
    video_label_pickle: Path

    def video(self, name: str) -> AlignedVideo:
        for v in self.videos:
            if v.name == name:
                return v
        raise KeyError(name)


def _check(value: object, allowed: tuple[object, ...], what: str) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}")


def _reduce(values: np.ndarray, rule: SnippetRule) -> float:
    if rule == "max":
        return float(values.max())
    mean = float(values.mean())
    return mean if rule == "mean" else float(mean > 0.5)


def snippet_labels(frames: np.ndarray, snippets: Sequence[tuple[int, int]], *,
                   rule: SnippetRule = "max") -> np.ndarray:
    """One float32 label per snippet from its inclusive frame range.

    Frames past the end of ``frames`` take the last label (the padding rule).
    """
    _check(rule, get_args(SnippetRule), "snippet rule")
    labels = np.asarray(frames, dtype=np.float32).reshape(-1)
    if labels.size == 0:
        raise ValueError("no frame labels")
    out = np.empty(len(snippets), dtype=np.float32)
    last = labels.size - 1
    for i, (first, end) in enumerate(snippets):
        idx = np.minimum(np.arange(first, end + 1), last)
        out[i] = _reduce(labels[idx], rule)
    return out


def legacy_row_index(rows: int, num_labels: int, *, frames_per_snippet: int = 16) -> np.ndarray:
    """Source row of each output row under the legacy rule ``T' = num_labels // F``.

    ``rows >= T'``: the first ``T'`` rows.  ``rows < T'``: ``np.repeat`` of the row
    indices ``T' // rows + 1`` times, cut to ``T'`` (the Fed_WSVAD formula).
    """
    check_frames_per_snippet(frames_per_snippet)
    if rows < 1:
        raise ValueError("no feature rows")
    target = num_labels // frames_per_snippet
    if rows >= target:
        return np.arange(target, dtype=np.int64)
    return np.repeat(np.arange(rows, dtype=np.int64), target // rows + 1)[:target]


def _align_exact(record: FeatureRecord, gt: VideoLabels, *, rule: SnippetRule,
                 f: int) -> AlignedVideo:
    snips = record.snippets
    if any(s[0] < 0 for s in snips):
        raise ValueError("rows without a frame range (resampled or padded features) cannot be "
                         "aligned; align the original features")
    labels, cut, padded = fit_frame_labels(gt.frames, snips, frames_per_snippet=f)
    return AlignedVideo(
        name=record.name, video_label=gt.video_label, rows_in=record.num_snippets,
        rows_out=record.num_snippets, gt_frames=gt.num_frames, decoded_frames=record.num_frames,
        target_frames=labels.size, frames_cut=cut, frames_padded=padded,
        snippet_labels=snippet_labels(gt.frames, snips, rule=rule), frame_labels=labels)


def _align_legacy(record: FeatureRecord, gt: VideoLabels, *, rule: SnippetRule, f: int,
                  feature_out: Path) -> AlignedVideo:
    s = gt.num_frames
    t = record.num_snippets
    if s < f:
        raise ValueError(f"{s} frame labels are fewer than one {f}-frame snippet")
    index = legacy_row_index(t, s, frames_per_snippet=f)
    target = index.size
    if t < target:
        log.warning("%s: legacy alignment repeats %d feature rows to %d "
                    "(np.repeat by %d, then cut)", record.name, t, target, target // t + 1)
    features = record.load()[index]
    snippets = [record.snippets[i] for i in index]
    sidecar = derived_sidecar(record, shape=features.shape, snippets=snippets, step="align-legacy",
                              details={"rows_in": t, "rows_out": target, "gt_frames": s,
                                       "frames_per_snippet": f,
                                       "rows": "truncated" if t >= target else "repeated"})
    paths = write_derived(record, feature_out, features, sidecar)
    labels = gt.frames[: f * target]
    blocks = [(i * f, i * f + f - 1) for i in range(target)]
    return AlignedVideo(
        name=record.name, video_label=gt.video_label, rows_in=t, rows_out=target,
        gt_frames=s, decoded_frames=record.num_frames, target_frames=labels.size,
        frames_cut=s - labels.size, frames_padded=0,
        snippet_labels=snippet_labels(gt.frames, blocks, rule=rule),
        frame_labels=np.asarray(labels, dtype=np.uint8), feature_paths=paths)


def _test_members(fs: FeatureSet, test_list: Any, issues: list[LabelIssue]) -> list[str] | None:
    """Feature names of the test list, in its order (``None`` without a test list)."""
    if test_list is None:
        return None
    wanted = list(test_list) if isinstance(test_list, (list, tuple)) else read_video_list(test_list)
    members: list[str] = []
    for w in wanted:
        hits = fs.find(w)
        if len(hits) == 1:
            if hits[0].name not in members:
                members.append(hits[0].name)
        elif hits:
            issues.append(LabelIssue(w, "ambiguous-name",
                                     f"test list: matches {', '.join(r.name for r in hits)}"))
        else:
            issues.append(LabelIssue(w, "unknown-video", "test list: no feature file matches"))
    return members


def align(
    features: FeatureSet | str | os.PathLike[str],
    labels: LabelSet | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    rule: SnippetRule = "max",
    mode: AlignMode = "exact",
    frames_per_snippet: int = 16,
    name: str = "test",
    test_list: str | os.PathLike[str] | Sequence[str] | None = None,
    labels_format: LabelFormat | Literal["auto"] = "auto",
) -> AlignResult:
    """Align every video that has both features and labels; write the outputs to ``out``.

    ``labels`` is a :class:`~vadfeat.dataset.labels.LabelSet` or a path read with
    ``labels_format`` (``auto``: canonical or npy-dir).  ``test_list`` (a split or
    list file, or names) fixes which videos go into ``gt-<name>.npy`` and in which
    order; without it, all aligned videos go in, abnormal first, then by name (the
    order :mod:`vadfeat.dataset.lists` writes).  Reported in :attr:`AlignResult.issues`:
    ground truth without features, test-list entries without features, and videos
    without ground truth (with a test list, only those in it: training videos have
    no frame labels in WSVAD).  Raises :class:`ConfigError` before writing anything
    when ``out`` is, holds or lies inside an input (features, labels, test list), or
    when a file at one of its names was not written by ``vadfeat align``.
    """
    _check(mode, get_args(AlignMode), "alignment mode")
    _check(rule, get_args(SnippetRule), "snippet rule")
    check_frames_per_snippet(frames_per_snippet)
    if not name or "/" in name or "\\" in name:
        raise ConfigError(f"gt name must be a plain file-name part, got {name!r}")
    out_dir = Path(out)
    given = [p for p in (features, labels) if not isinstance(p, (FeatureSet, LabelSet))]
    if test_list is not None and not isinstance(test_list, (list, tuple)):
        given.append(test_list)  # type: ignore[arg-type]
    refuse_overlap(out_dir, given, command="align")
    fs = as_feature_set(features)
    gt = as_label_set(labels, format=labels_format, features=fs)
    refuse_overlap(out_dir, [fs.root, gt.source or None], command="align")
    # Every name this run may write, claimed before the first is written.
    claimed = [f"gt-{name}.npy", f"gt-{name}.videos.txt", "GT/frame_label.pickle",
               "GT/video_label.pickle", "align.json"]
    for record in fs:
        if gt.get(record.name) is not None:
            claimed += [f"snippet_labels/{record.name}.npy", f"frame_labels/{record.name}.npy"]
            if mode == "legacy":
                claimed += [f"features/{n}" for n in derived_names(record)]
    claim_outputs(out_dir, claimed, command="align")
    # `no-labels` is decided below (it depends on the test list), not taken from the reader.
    issues: list[LabelIssue] = [i for i in gt.issues if i.kind != "no-labels"]
    seen = {(i.video, i.kind) for i in issues}

    def report(video: str, kind: Any, message: str) -> None:
        if (video, kind) not in seen:
            seen.add((video, kind))
            issues.append(LabelIssue(video, kind, message))

    for fi in fs.issues:
        report(fi.video, "bad-features", fi.message)
    members = _test_members(fs, test_list, issues)
    member_set = set(members or ())
    aligned: dict[str, AlignedVideo] = {}
    matched: set[str] = set()
    for record in fs:
        v = gt.get(record.name)
        if v is None:
            # With a test list, only its videos need ground truth (the rest may be training
            # videos, which have none in WSVAD); without one, every video is expected to.
            if members is None or record.name in member_set:
                report(record.name, "no-labels", "no ground truth for this feature file")
            continue
        if v.name != record.name and len(fs.find(v.name)) > 1:
            # Labels keyed by a bare name cannot tell same-named videos in two folders apart.
            report(v.name, "ambiguous-name",
                   f"matches {', '.join(r.name for r in fs.find(v.name))}; not aligned")
            matched.add(v.name)
            continue
        matched.add(v.name)
        try:
            if mode == "exact":
                result = _align_exact(record, v, rule=rule, f=frames_per_snippet)
            else:
                result = _align_legacy(record, v, rule=rule, f=frames_per_snippet,
                                       feature_out=out_dir / "features")
        except NPY_ERRORS as exc:  # a damaged feature file (np.load) is this video's problem
            report(record.name, "inconsistent", f"cannot align: {exc or type(exc).__name__}")
            continue
        aligned[record.name] = result
        save_npy(out_dir / "snippet_labels" / f"{record.name}.npy", result.snippet_labels)
        save_npy(out_dir / "frame_labels" / f"{record.name}.npy", result.frame_labels)
        if result.frames_cut or result.frames_padded:
            log.debug("%s: %d rows, %d GT frames -> %d (cut %d, padded %d)", record.name,
                     result.rows_out, result.gt_frames, result.target_frames, result.frames_cut,
                     result.frames_padded)
    for lname in gt.videos:
        if lname not in matched:
            report(lname, "unknown-video", "has ground truth but no feature file")

    if members is None:
        order = abnormal_first(aligned, lambda n: aligned[n].video_label)
    else:
        order = [n for n in members if n in aligned]
    chunks = [aligned[n].frame_labels.astype(np.float64) for n in order]
    gt_all = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float64)
    gt_path = save_npy(out_dir / f"gt-{name}.npy", gt_all)
    offsets, start = [], 0
    for n in order:
        end = start + aligned[n].target_frames
        offsets.append(f"{n}\t{start}\t{end}\n")
        start = end
    write_text(out_dir / f"gt-{name}.videos.txt", "".join(offsets))
    frame_pickle = write_pickle(out_dir / "GT" / "frame_label.pickle",
                                {n: a.frame_labels.astype(np.float32) for n, a in aligned.items()})
    video_pickle = write_pickle(out_dir / "GT" / "video_label.pickle",
                                {n: [float(a.video_label)] for n, a in aligned.items()})
    write_json(out_dir / "align.json", {
        "mode": mode, "rule": rule, "frames_per_snippet": frames_per_snippet,
        "features": str(fs.root), "labels": gt.source, "gt": gt_path.name,
        "test_order": order,
        "videos": {n: a.summary() for n, a in aligned.items()},
        "issues": [{"video": i.video, "kind": i.kind, "message": i.message} for i in issues],
    })
    return AlignResult(out=out_dir, mode=mode, rule=rule, frames_per_snippet=frames_per_snippet,
                       videos=tuple(aligned.values()), issues=tuple(issues),
                       test_order=tuple(order), gt_path=gt_path,
                       frame_label_pickle=frame_pickle, video_label_pickle=video_pickle)
