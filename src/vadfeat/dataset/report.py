"""A picture of the result: per-video plots of features against ground truth.

:func:`inspect` draws one PNG per video (matplotlib, Agg backend: no display
needed) with two panels sharing a time axis in **decoded frames**:

- the L2 norm of each crop's feature vector (the last axis), averaged over the
  crops (and ``[mean, std, max]`` statistics), drawn without an axis offset and
  with its relative spread in the label: LayerNorm'd features (VideoMAE's
  ``fc_norm``, CLIP) keep nearly the same norm, and an offset axis would make a
  0.03 % change look like a jump; and
- the first principal component of the video's rows (all crops together,
  centred; its sign is fixed so that the largest loading is positive, making
  reruns identical),

each drawn as a step over the snippet's ``[first, last]`` frame range, with
ground-truth anomaly spans shaded, the decoded frames after the last snippet
(dropped by the tail rule) shaded grey, snippet starts marked as ticks along the
bottom of each panel and one legend below the panels.  ``index.html`` says
first what was shown (model, weights, preset, crops, frame rate, from the
sidecars; a warning when the weights were random) and a one-line summary, then
every video with its numbers (frames, snippets, feature shape, norm spread,
ground-truth frames, frames cut/padded for ``16 * T`` as
:mod:`vadfeat.dataset.align` would report them) and its picture.
"""

from __future__ import annotations

import html
import logging
import os
import textwrap
import urllib.parse
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from vadfeat.dataset.labels import (
    LabelFormat,
    LabelSet,
    VideoLabels,
    as_label_set,
    fit_frame_labels,
    label_spans,
)
from vadfeat.errors import ConfigError
from vadfeat.store.atomic import atomic_path
from vadfeat.store.ownership import claim_outputs, refuse_overlap
from vadfeat.store.reader import (
    FeatureIssue,
    FeatureRecord,
    FeatureSet,
    as_feature_set,
    write_text,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
    norm_spread: float | None = None  # (max - min) / mean of the norm panel
    frames_dropped: int | None = None  # decoded frames after the last snippet


@dataclass(frozen=True)
class InspectResult:
    out: Path
    index: Path
    videos: tuple[VideoReport, ...]
    issues: tuple[FeatureIssue, ...]


def feature_norms(feat: np.ndarray) -> np.ndarray:
    """``[T]`` float64: L2 norm of each crop's vector (last axis), averaged over the crops.

    ``feat``: ``[T, D]`` or ``[T, ..., D]`` (crops, ``[mean, std, max]`` statistics: every
    axis between counts as one more vector).  Averaging per-crop norms keeps the scale
    of a one-crop run (a concatenation's norm grows with the square root of the crops).
    """
    rows = np.asarray(feat, dtype=np.float64)
    rows = rows.reshape(rows.shape[0], -1, rows.shape[-1])
    return np.linalg.norm(rows, axis=2).mean(axis=1)


def relative_spread(values: np.ndarray) -> float:
    """``(max - min) / |mean|`` of ``values`` (0 for fewer than 2 values or a zero mean)."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(np.abs(v.mean())) if v.size else 0.0
    if v.size < 2 or mean == 0:
        return 0.0
    return float((v.max() - v.min()) / mean)


def _vectors_per_row(shape: Sequence[int]) -> int:
    return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1


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


def _dropped_tail(record: FeatureRecord) -> tuple[int, int] | None:
    """``(first, end)`` decoded frames after the last snippet, or ``None``."""
    if not record.num_frames or not record.snippets:
        return None
    after = max(last for _, last in record.snippets) + 1
    return (after, record.num_frames) if after < record.num_frames else None


def video_figure(record: FeatureRecord, feat: np.ndarray, gt: VideoLabels | None, *,
                 width_px: int = 1200, height_px: int = 600, dpi: int = 100,
                 what: str = "") -> Figure:
    """The two-panel picture of one video (see the module docstring), not yet saved.

    ``feat``: the record's array ``[T, ..., D]``; ``what``: model and weights for the title.
    """
    # A bare Figure on an explicit Agg canvas: no pyplot, no global backend switch,
    # no window, safe in threads and notebooks.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    snippets = list(record.snippets)
    norms = feature_norms(feat)
    spread = relative_spread(norms)
    pc1 = first_component(feat)
    k = _vectors_per_row(feat.shape)
    crops = f"mean of {k} crops" if k > 1 else "one crop"
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True)
    end = max(last + 1 for _, last in snippets)
    if record.num_frames:
        end = max(end, record.num_frames)
    if gt is not None:
        end = max(end, gt.num_frames)
    tail = _dropped_tail(record)
    panels = ((axes[0], norms, f"L2 norm ({crops})", "tab:blue",
               f"feature L2 norm, {crops}: spread {100 * spread:.2g} % of the mean"),
              (axes[1], pc1, "first principal component", "tab:green",
               "first principal component" + (f" of the {k} crops together" if k > 1 else "")))
    for ax, values, label, color, title in panels:
        if gt is not None:
            for i, (s, e) in enumerate(label_spans(gt.frames)):
                ax.axvspan(s, e, color="tab:red", alpha=0.25, lw=0,
                           label="ground-truth anomaly" if i == 0 else None)
        if tail is not None:
            ax.axvspan(tail[0], tail[1], color="0.6", alpha=0.35, lw=0, hatch="//",
                       label=f"{tail[1] - tail[0]} frames after the last snippet (no feature)")
        xs, ys = _steps(snippets, values)
        ax.plot(xs, ys, color=color, lw=1.2, label=label)
        starts = [first for first, _ in snippets]
        # Ticks in axes coordinates along the bottom: visible at any y scale.
        ax.vlines(starts, 0.0, 0.06, transform=ax.get_xaxis_transform(), color="0.35", lw=0.6,
                  label="snippet starts")
        if record.num_frames:
            ax.axvline(record.num_frames, color="k", ls="--", lw=0.8, label="last decoded frame")
        ax.set_ylabel(label, fontsize="small")
        ax.set_title(title, fontsize="small", loc="left")
        # The numbers themselves, never "+2.53e1" above the axis: a flat norm must look flat.
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_xlim(0, end + max(1.0, 0.01 * end))  # keep the end-of-video line visible
        if ax is axes[0] and len(values):
            # At least 1 % of the mean in view: a 0.02 % wiggle must not fill the panel.
            mid, half = float(np.mean(values)), float(np.ptp(values)) / 2
            half = max(1.1 * half, 0.005 * abs(mid))
            if half > 0:
                ax.set_ylim(float(values.min() + values.max()) / 2 - half,
                            float(values.min() + values.max()) / 2 + half)
        ax.grid(alpha=0.3)
    # One legend for both panels, below them (the title is above): never over the last snippet.
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center",
               ncol=max(1, min(len(handles), width_px // 200)), fontsize="x-small", frameon=False)
    axes[1].set_xlabel("frame (decoded index)")
    title = f"{record.name}: {len(snippets)} snippets, features {list(record.shape)}"
    if record.num_frames is not None:
        title += f", {record.num_frames} frames"
    if gt is not None:
        title += f", GT {gt.num_frames} frames, video label {gt.video_label}"
    if what:
        title += f" | {what}"
    # Wrapped to the picture's width (about 7 px per character at this size).
    fig.suptitle(textwrap.fill(valid_utf8(title), width=max(40, width_px * 100 // dpi // 7)),
                 fontsize="small")  # valid_utf8: matplotlib cannot draw lone surrogates
    return fig


def _plot(record: FeatureRecord, feat: np.ndarray, gt: VideoLabels | None, png: Path, *,
          width_px: int, height_px: int, dpi: int, what: str = "") -> None:
    fig = video_figure(record, feat, gt, width_px=width_px, height_px=height_px, dpi=dpi, what=what)
    with atomic_path(png) as tmp, warnings.catch_warnings():
        # A picture too small for titles and legends keeps its asked size and matplotlib's
        # default placement; that is no news for the log.
        warnings.filterwarnings("ignore", message="constrained_layout not applied")
        fig.savefig(tmp, dpi=dpi, format="png")  # no bbox_inches: the pixel size stays as asked


def valid_utf8(text: str) -> str:
    """``text`` as valid UTF-8: bytes of names that are not UTF-8 shown as ``\\xe9``.

    For pages, plots and the terminal (``os.fsdecode`` gives such bytes as lone
    surrogates, which no UTF-8 writer accepts).
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _cell(value: Any) -> str:
    return "&ndash;" if value is None else html.escape(str(value))


@dataclass(frozen=True)
class ExtractionInfo:
    """What the sidecars of a set of videos record about how the features were made.

    ``rows``: ``(what, value)`` pairs for people (a value shared by every video once,
    else each value with its count); ``random_weights``: videos whose model had random
    weights; ``with_sidecar`` / ``videos``: how many of the videos say anything.
    """

    rows: tuple[tuple[str, str], ...]
    random_weights: int
    with_sidecar: int
    videos: int

    def short(self) -> str:
        """Model, crops, frame rate and weights in a few words (page heads, plot titles)."""
        if not self.with_sidecar:
            return "no sidecars: model and settings not recorded"
        found = dict(self.rows)
        parts = [found.get("model", "model not recorded").split(" (")[0]]
        crops = found.get("crops", "")
        if crops and crops[0].isdigit():
            parts.append(crops.split(" (")[0] + " crops")
        if "frame rate" in found:
            parts.append(found["frame rate"].split(" (")[0])
        if self.random_weights:
            parts.append("RANDOM WEIGHTS")
        return ", ".join(parts)


def _counted(values: Sequence[str]) -> str:
    counts = Counter(values)
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{v} ({n} videos)" for v, n in counts.most_common())


def _weights(model: Mapping[str, Any]) -> str:
    if model.get("random_weights"):
        return "RANDOM (untrained, --random-weights)"
    ckpt = model.get("checkpoint")
    sha = model.get("checkpoint_sha256")
    if not ckpt and not sha:
        return "checkpoint not recorded"
    name = Path(str(ckpt)).name if ckpt else "checkpoint"
    return name + (f" (sha256 {str(sha)[:12]})" if sha else "")


def describe_extraction(records: Sequence[FeatureRecord]) -> ExtractionInfo:
    """Model, weights, preset, crops, frame rate, pooling and dtype the sidecars record."""
    fields: dict[str, list[str]] = {}
    random = with_sidecar = 0
    for r in records:
        if r.sidecar is None:
            continue
        with_sidecar += 1
        meta = r.metadata
        model = meta.get("model")
        model = model if isinstance(model, Mapping) else {}
        if model.get("random_weights"):
            random += 1
        name = model.get("name")
        backbone = model.get("backbone")
        values = {
            "model": f"{name} ({backbone})" if name and backbone else str(name or "not recorded"),
            "weights": _weights(model) if model else "not recorded",
            "preset": str(meta.get("preset") or r.settings.get("name") or "not recorded"),
            "crops": (f"{len(r.crop_order)} ({', '.join(r.crop_order)})" if r.crop_order
                      else str(r.settings.get("crops") or "not recorded")),
            "frame rate": _rate(r),
            "pooling": str(r.settings.get("pooling") or model.get("pooling") or "not recorded"),
            "dtype": str(meta.get("dtype") or "not recorded"),
        }
        for k, v in values.items():
            fields.setdefault(k, []).append(v)
    rows = [(k, _counted(v)) for k, v in fields.items()]
    if with_sidecar < len(records):
        rows.append(("sidecars", f"{len(records) - with_sidecar} of {len(records)} videos have none: "
                                 "how they were made is unknown"))
    return ExtractionInfo(rows=tuple(rows), random_weights=random, with_sidecar=with_sidecar,
                          videos=len(records))


def _rate(r: FeatureRecord) -> str:
    if not r.fps:
        return "not recorded"
    native = r.metadata.get("native_fps")
    text = f"{r.fps:g} fps"
    if isinstance(native, (int, float)) and abs(float(native) - r.fps) > 1e-6:
        text += f" (video {float(native):g} fps)"
    return text


def warning_html(sides: Sequence[tuple[str, ExtractionInfo]]) -> str:
    """One warning box when some videos of any side (``(name, info)``; a name of ``""``
    for a single set) were extracted with random weights, else ``""``."""
    hit = [(who, info) for who, info in sides if info.random_weights]
    if not hit:
        return ""
    counts = "; ".join((f"{who}: " if who else "") + f"{info.random_weights} of {info.videos} videos"
                       for who, info in hit)
    return (f'<p class="warn">&#9888; RANDOM WEIGHTS ({html.escape(counts)}): extracted with an '
            "untrained model (--random-weights). These features test the pipeline; they carry "
            "nothing learned about the videos.</p>")


def info_html(info: ExtractionInfo) -> str:
    """``<dl>`` of :func:`describe_extraction`'s rows (what each sidecar records)."""
    if not info.with_sidecar:
        return "<p>no sidecars: model, weights and settings are not recorded.</p>"
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in info.rows)
    return f'<dl class="info">{items}</dl>'


PAGE_STYLE = ("body{font-family:sans-serif;margin:1em;max-width:1300px}table{border-collapse:collapse}"
              "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}"
              "td:first-child{text-align:left}img{max-width:100%}"
              ".warn{background:#fde2e1;border:2px solid #c0392b;color:#7b1d14;padding:.5em;"
              "font-weight:bold}"
              ".verdict{background:#eef4fb;border-left:5px solid #2c6fb7;padding:.4em .6em;"
              "font-size:1.15em}"
              "dl.info{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:.5em 0}"
              "dl.info dt{font-weight:bold}dl.info dd{margin:0}.note{color:#555;font-size:.9em}")


def _index_html(videos: Sequence[VideoReport], out: Path, title: str, info: ExtractionInfo,
                issues: Sequence[FeatureIssue]) -> str:
    head = ("<tr><th>video</th><th>frames</th><th>snippets</th><th>shape</th>"
            "<th>norm spread</th><th>frames after last snippet</th>"
            "<th>GT frames</th><th>frames cut</th><th>frames padded</th>"
            "<th>video label</th><th>abnormal frames</th></tr>")
    rows = []
    sections = []
    for i, v in enumerate(videos):
        src = urllib.parse.quote(os.fsencode(v.png.relative_to(out).as_posix()))
        anchor = f"v{i}"
        spread = None if v.norm_spread is None else f"{100 * v.norm_spread:.2g} %"
        rows.append(
            f'<tr><td><a href="#{anchor}">{html.escape(v.name)}</a></td>'
            f"<td>{_cell(v.num_frames)}</td><td>{v.snippets}</td><td>{_cell(list(v.shape))}</td>"
            f"<td>{_cell(spread)}</td><td>{_cell(v.frames_dropped)}</td>"
            f"<td>{_cell(v.gt_frames)}</td><td>{_cell(v.frames_cut)}</td>"
            f"<td>{_cell(v.frames_padded)}</td><td>{_cell(v.video_label)}</td>"
            f"<td>{_cell(v.abnormal_frames)}</td></tr>")
        sections.append(f'<section id="{anchor}"><h2>{html.escape(v.name)}</h2>'
                        f'<img src="{src}" alt="{html.escape(v.name)}" loading="lazy"></section>')
    total = len(videos) + len(issues)
    summary = f"{len(videos)} of {total} videos drawn"
    if issues:
        summary += f", {len(issues)} not (listed below the table)"
    spreads = [v.norm_spread for v in videos if v.norm_spread is not None]
    if spreads:
        worst = max(spreads)
        summary += f". Feature norms vary by at most {100 * worst:.2g} % within a video"
        if worst < 0.01:
            summary += (": nearly constant, as for layer-normalised features (fc_norm, CLIP); "
                        "the principal component shows what changes")
    issue_list = "".join(f"<li>{html.escape(str(i))}</li>" for i in issues)
    return valid_utf8(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p><b>Shown:</b> {html.escape(info.short())}</p>" + warning_html([("", info)])
        + f'<p class="verdict">{html.escape(summary)}.</p>'
        "<h2>How the features were made</h2>" + info_html(info)
        + "<h2>Per video</h2>"
        "<p class=\"note\">Frames: decoded frames (sidecar). Norm spread: (max - min) / mean of the "
        "norm panel. Frames cut/padded: what aligning the ground "
        "truth to 16 frames per snippet changes (<code>vadfeat align</code>, exact mode).</p>"
        f"<table>{head}{''.join(rows)}</table>"
        + (f"<p>not drawn:</p><ul>{issue_list}</ul>" if issue_list else "")
        + f"{''.join(sections)}</body></html>\n")


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
    info = describe_extraction(records)
    reports: list[VideoReport] = []
    for record in records:
        video_gt = gt.get(record.name) if gt is not None else None
        png = out_dir / f"{record.name}.png"
        try:
            if any(s[0] < 0 for s in record.snippets):
                raise ValueError("rows without a frame range (resampled features)")
            feat = record.load()
            _plot(record, feat, video_gt, png, width_px=width_px, height_px=height_px, dpi=dpi,
                  what=info.short() if info.with_sidecar else "")
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
            abnormal_frames=int(video_gt.frames.sum()) if video_gt is not None else None,
            norm_spread=relative_spread(feature_norms(feat)),
            frames_dropped=(lambda t: t[1] - t[0] if t else 0)(_dropped_tail(record))
            if record.num_frames else None))
    index = write_text(out_dir / "index.html",
                       _index_html(reports, out_dir, f"vadfeat inspect: {fs.root}", info, issues))
    return InspectResult(out=out_dir, index=index, videos=tuple(reports), issues=tuple(issues))
