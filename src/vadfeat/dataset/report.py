"""A picture of the result: per-video plots of features against ground truth.

:func:`inspect` draws one PNG per video (matplotlib, Agg backend: no display
needed) with two panels sharing a time axis in **decoded frames**:

- the L2 norm of each snippet's feature (rows flattened, so crops and the
  ``[mean, std, max]`` statistics all count), and
- the first principal component of the video's rows (centred; its sign is fixed so
  that the largest loading is positive, making reruns identical),

each drawn as a step over the snippet's ``[first, last]`` frame range, with
ground-truth anomaly spans shaded and snippet starts marked as ticks along the
bottom of each panel.  ``index.html`` lists every video with its numbers
(frames, snippets, feature shape, ground-truth frames, frames cut/padded for
``16 * T`` as :mod:`vadfeat.dataset.align` would report them) and shows its picture.
"""

from __future__ import annotations

import html
import logging
import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vadfeat.dataset.align import fit_frame_labels
from vadfeat.dataset.labels import LabelFormat, LabelSet, VideoLabels, as_label_set, label_spans
from vadfeat.errors import ConfigError
from vadfeat.store.ownership import claim_outputs, refuse_overlap
from vadfeat.store.reader import (
    FeatureIssue,
    FeatureRecord,
    FeatureSet,
    as_feature_set,
    write_text,
)
from vadfeat.store.writers import atomic_path

log = logging.getLogger(__name__)

_POWER_ITERATIONS = 60


@dataclass(frozen=True)
class VideoReport:
    """The numbers shown for one video and where its picture is."""

    name: str
    png: Path
    num_frames: int | None
    snippets: int
    shape: tuple[int, ...]
    gt_frames: int | None
    frames_cut: int | None
    frames_padded: int | None
    video_label: int | None
    abnormal_frames: int | None


@dataclass(frozen=True)
class InspectResult:
    out: Path
    index: Path
    videos: tuple[VideoReport, ...]
    issues: tuple[FeatureIssue, ...]


def feature_norms(feat: np.ndarray) -> np.ndarray:
    """L2 norm of each row (all non-time axes flattened), float64."""
    rows = np.asarray(feat, dtype=np.float64).reshape(feat.shape[0], -1)
    return np.linalg.norm(rows, axis=1)


def first_component(feat: np.ndarray) -> np.ndarray:
    """Projection of each centred row on the first principal direction.

    Power iteration on ``X^T X`` (seeded start, fixed iteration count) instead of a
    full SVD: a long video with 10 crops of 1408 values would make the SVD the
    slowest part of the report.  The sign is chosen so that the direction's
    largest-magnitude loading is positive.
    """
    x = np.asarray(feat, dtype=np.float64).reshape(feat.shape[0], -1)
    x = x - x.mean(axis=0, keepdims=True)
    if x.shape[0] < 2 or not np.any(x):
        return np.zeros(x.shape[0])
    v = np.random.default_rng(0).standard_normal(x.shape[1])
    v /= np.linalg.norm(v)
    for _ in range(_POWER_ITERATIONS):
        w = x.T @ (x @ v)
        n = np.linalg.norm(w)
        if n == 0:
            return np.zeros(x.shape[0])
        v = w / n
    if v[np.argmax(np.abs(v))] < 0:
        v = -v
    return x @ v


def _steps(snippets: Sequence[tuple[int, int]], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x/y arrays drawing each value flat over its snippet's frame range."""
    xs = np.empty(2 * len(snippets))
    ys = np.empty(2 * len(snippets))
    for i, ((first, last), v) in enumerate(zip(snippets, values, strict=True)):
        xs[2 * i], xs[2 * i + 1] = first, last + 1
        ys[2 * i] = ys[2 * i + 1] = v
    return xs, ys


def _plot(record: FeatureRecord, feat: np.ndarray, gt: VideoLabels | None, png: Path, *,
          width_px: int, height_px: int, dpi: int) -> None:
    # A bare Figure on an explicit Agg canvas: no pyplot, no global backend switch,
    # no window, safe in threads and notebooks.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    snippets = list(record.snippets)
    norms = feature_norms(feat)
    pc1 = first_component(feat)
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True)
    end = max(last + 1 for _, last in snippets)
    if record.num_frames:
        end = max(end, record.num_frames)
    if gt is not None:
        end = max(end, gt.num_frames)
    for ax, values, label, color in ((axes[0], norms, "feature L2 norm", "tab:blue"),
                                     (axes[1], pc1, "first principal component", "tab:green")):
        if gt is not None:
            for i, (s, e) in enumerate(label_spans(gt.frames)):
                ax.axvspan(s, e, color="tab:red", alpha=0.25, lw=0,
                           label="ground-truth anomaly" if i == 0 else None)
        xs, ys = _steps(snippets, values)
        ax.plot(xs, ys, color=color, lw=1.2, label=label)
        starts = [first for first, _ in snippets]
        # Ticks in axes coordinates along the bottom: visible at any y scale.
        ax.vlines(starts, 0.0, 0.06, transform=ax.get_xaxis_transform(), color="0.35", lw=0.6,
                  label="snippet starts")
        if record.num_frames:
            ax.axvline(record.num_frames, color="k", ls="--", lw=0.8, label="last decoded frame")
        ax.set_ylabel(label)
        ax.set_xlim(0, end + max(1.0, 0.01 * end))  # keep the end-of-video line visible
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="x-small")
    axes[1].set_xlabel("frame (decoded index)")
    title = f"{record.name}: {len(snippets)} snippets, features {list(record.shape)}"
    if record.num_frames is not None:
        title += f", {record.num_frames} frames"
    if gt is not None:
        title += f", GT {gt.num_frames} frames, video label {gt.video_label}"
    fig.suptitle(valid_utf8(title), fontsize="small")  # matplotlib cannot draw lone surrogates
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")  # no bbox_inches: the pixel size stays as asked


def valid_utf8(text: str) -> str:
    """``text`` as valid UTF-8: bytes of names that are not UTF-8 shown as ``\\xe9``.

    For pages, plots and the terminal (``os.fsdecode`` gives such bytes as lone
    surrogates, which no UTF-8 writer accepts).
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _cell(value: Any) -> str:
    return "&ndash;" if value is None else html.escape(str(value))


def _index_html(videos: Sequence[VideoReport], out: Path, title: str) -> str:
    head = ("<tr><th>video</th><th>frames</th><th>snippets</th><th>shape</th>"
            "<th>GT frames</th><th>frames cut</th><th>frames padded</th>"
            "<th>video label</th><th>abnormal frames</th></tr>")
    rows = []
    sections = []
    for i, v in enumerate(videos):
        src = urllib.parse.quote(os.fsencode(v.png.relative_to(out).as_posix()))
        anchor = f"v{i}"
        rows.append(
            f'<tr><td><a href="#{anchor}">{html.escape(v.name)}</a></td>'
            f"<td>{_cell(v.num_frames)}</td><td>{v.snippets}</td><td>{_cell(list(v.shape))}</td>"
            f"<td>{_cell(v.gt_frames)}</td><td>{_cell(v.frames_cut)}</td>"
            f"<td>{_cell(v.frames_padded)}</td><td>{_cell(v.video_label)}</td>"
            f"<td>{_cell(v.abnormal_frames)}</td></tr>")
        sections.append(f'<section id="{anchor}"><h2>{html.escape(v.name)}</h2>'
                        f'<img src="{src}" alt="{html.escape(v.name)}" loading="lazy"></section>')
    return valid_utf8(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}"
        "td:first-child{text-align:left}img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<p>Frames: decoded frames (sidecar). Frames cut/padded: what aligning the ground "
        "truth to 16 frames per snippet changes (<code>vadfeat align</code>, exact mode).</p>"
        f"<table>{head}{''.join(rows)}</table>{''.join(sections)}</body></html>\n")


def inspect(
    features: FeatureSet | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    labels: LabelSet | str | os.PathLike[str] | None = None,
    labels_format: LabelFormat | Literal["auto"] = "auto",
    videos: Sequence[str] | None = None,
    frames_per_snippet: int = 16,
    width_px: int = 1200,
    height_px: int = 600,
    dpi: int = 100,
) -> InspectResult:
    """Write ``out/<video>.png`` for each video (or the ``videos`` selected) and ``out/index.html``.

    ``labels`` (a :class:`~vadfeat.dataset.labels.LabelSet` or a path read with
    ``labels_format``) adds the shaded anomaly spans and the cut/padded numbers.
    A video that cannot be drawn is reported in :attr:`InspectResult.issues`.
    Raises :class:`ConfigError` before drawing anything when ``out`` is, holds or lies
    inside the features or the labels, or when a file at one of its names was not
    written by ``vadfeat inspect`` (:mod:`vadfeat.store.ownership`).
    """
    for value, what in ((width_px, "width_px"), (height_px, "height_px"), (dpi, "dpi")):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    out_dir = Path(out)
    refuse_overlap(out_dir, [p for p in (features, labels) if not isinstance(p, (FeatureSet, LabelSet))],
                   command="inspect")
    fs = as_feature_set(features)
    gt = as_label_set(labels, format=labels_format, features=fs) if labels is not None else None
    refuse_overlap(out_dir, [fs.root, gt.source if gt is not None and gt.source else None],
                   command="inspect")
    records = list(fs)
    issues = list(fs.issues)
    if videos:
        chosen = []
        for v in videos:
            hits = fs.find(v)
            if len(hits) == 1:
                chosen.append(hits[0])
            else:
                issues.append(FeatureIssue(v, "not found among the features" if not hits
                                           else f"ambiguous: {', '.join(r.name for r in hits)}"))
        records = sorted(set(chosen), key=lambda r: r.name)
    claim_outputs(out_dir, [f"{r.name}.png" for r in records] + ["index.html"], command="inspect")
    reports: list[VideoReport] = []
    for record in records:
        video_gt = gt.get(record.name) if gt is not None else None
        png = out_dir / f"{record.name}.png"
        try:
            if any(s[0] < 0 for s in record.snippets):
                raise ValueError("rows without a frame range (resampled features)")
            feat = record.load()
            _plot(record, feat, video_gt, png, width_px=width_px, height_px=height_px, dpi=dpi)
            cut = padded = None
            if video_gt is not None and video_gt.num_frames:
                _, cut, padded = fit_frame_labels(video_gt.frames, record.snippets,
                                                  frames_per_snippet=frames_per_snippet)
        except (ValueError, OSError, EOFError) as exc:
            issues.append(FeatureIssue(record.name, f"cannot draw: {exc}"))
            continue
        reports.append(VideoReport(
            name=record.name, png=png, num_frames=record.num_frames,
            snippets=record.num_snippets, shape=record.shape,
            gt_frames=video_gt.num_frames if video_gt is not None else None, frames_cut=cut,
            frames_padded=padded, video_label=video_gt.video_label if video_gt is not None else None,
            abnormal_frames=int(video_gt.frames.sum()) if video_gt is not None else None))
    index = write_text(out_dir / "index.html",
                       _index_html(reports, out_dir, f"vadfeat inspect: {fs.root}"))
    return InspectResult(out=out_dir, index=index, videos=tuple(reports), issues=tuple(issues))
