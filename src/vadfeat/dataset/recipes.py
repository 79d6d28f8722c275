"""Which recipe made a folder of features: ``vadfeat compare THEIRS --videos DIR --recipes``.

Given features someone else made (THEIRS) and the videos they came from,
:func:`compare_recipes` extracts a small sample of those videos under every candidate
recipe with the user's model, ranks the recipes by how well each reproduces THEIRS, and
explains what remains with :mod:`vadfeat.dataset.compare`'s diagnoses.

**Candidates**: the registered presets (:func:`~vadfeat.pipeline.presets.list_presets`,
read at call time, so presets added later take part) whose feature head is one the
model's backbone offers and whose clip fits the model (:func:`candidate_presets`), or the
presets named.  A preset whose crop count disagrees with THEIRS' array (``[T, C, D]``)
is tried with THEIRS' count (``--crops C``, a *variant*); for 5 and 10 crops every crop
order (``--crop-order``) is a candidate too.  Crop orders need no extraction of their
own: they are permutations of the same crops, applied to one extraction.

**Sample** (cheap by design): the first ``num_videos`` videos (sorted names) that match
a file of THEIRS (:func:`~vadfeat.dataset.compare.match_names`, compare's own name
matching), and in each the first ``snippets`` snippets.  Each sampled video's frame count
(as its container declares it; where it declares none, every frame is decoded and counted,
with no resize and no model) says how many rows each recipe would give, checked against
THEIRS' ``T``; then each candidate extracts through the library's per-video pipeline
(:meth:`~vadfeat.pipeline.extractor.FeatureExtractor.snippet_stream`, the stream ``vadfeat
extract`` runs, decoded in a worker thread as there), which stops decoding after the
sampled snippets.  Cost: one model load per candidate preset and ``num_videos x snippets``
snippets per preset (BENCHMARKS.md section 15).  The samples are written as ordinary
feature files with sidecars under ``OUT/samples/<recipe>/`` (with ``out``), else in a
temporary folder removed at the end (``work`` names another); their sidecars' fingerprint
carries ``sample_snippets``, so ``vadfeat extract`` never resumes from these partial files.
The work folder must not be, hold or lie inside THEIRS, the videos or the checkpoint.

**Distance**: relative L2 ``|theirs - mine| / |mine|`` over the sampled rows and every
crop, *as stored* (row ``t`` with row ``t``, crop ``k`` with crop ``k``): the crop order
and the snippet grid are part of a recipe.  A recipe's distance is the mean over the
sampled videos; ``None`` where the shapes cannot be compared (another feature size,
another crop count that cannot be expressed).  The ranking is by distance, a preset as
registered before its variants on ties.

**How sure**: the runner-up's distance and the margin are always given.  The verdict is
``sure`` when the best recipe is the closest in every sampled video and the runner-up is
at least :data:`SURE_RATIO` times as far (or the best reproduces THEIRS to float rounding,
:data:`EXACT_REL_L2`, and the runner-up does not); ``likely`` when the best is the
closest in most sampled videos; ``unsure`` otherwise (sample more videos or snippets).
A best distance above :data:`CLOSE_REL_L2` is reported as "no candidate reproduces THEIRS
closely": the residual then says what differs.

**Residual**: the best recipe's sample against THEIRS' first rows, through
:func:`~vadfeat.dataset.compare.compare_video` (crop order, temporal offset, rescale,
preprocessing, ...), and the row count each recipe predicts from the video's frame
count against THEIRS' ``T`` through :func:`~vadfeat.dataset.compare.explain_length`
(tail rule, frame rate, stride).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

import numpy as np

from vadfeat._defaults import DEFAULT_SAMPLE_SNIPPETS, DEFAULT_SAMPLE_VIDEOS  # defined there for --help
from vadfeat._types import Confidence, CropOrder, LayoutOrAuto
from vadfeat.dataset.compare import (
    CompareResult,
    Diagnosis,
    VideoComparison,
    _as_tcd,
    _open,
    _plot_limit,
    _recorded_rate,
    _regroup_short_crops,
    compare_video,
    explain_length,
    finish_comparison,
    match_names,
)
from vadfeat.errors import ConfigError, VideoError, VideoTooShortError
from vadfeat.store.atomic import NPY_ERRORS
from vadfeat.store.ownership import claim_outputs, refuse_overlap
from vadfeat.store.reader import FeatureIssue, FeatureRecord, FeatureSet, read_features
from vadfeat.store.sinks import NpySink, VideoFeatures

log = logging.getLogger(__name__)

#: Relative L2 at or below which a recipe reproduces THEIRS to float rounding.
EXACT_REL_L2 = 1e-3
#: Relative L2 above which no candidate is said to reproduce THEIRS closely.
CLOSE_REL_L2 = 0.05
#: How many times farther the runner-up must be for a ``sure`` verdict.
SURE_RATIO = 2.0
_MULTI_ORDER_CROPS = (5, 10)
_CROP_COUNTS = (1, 3, 5, 10)
_SAMPLES = "samples"

@dataclass(frozen=True)
class Recipe:
    """A candidate: a registered preset and the overrides that adapt it (``crops``,
    ``crop_order``); ``label`` is how people would ask for it on the command line."""

    preset: str
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def variant(self) -> bool:
        return bool(self.overrides)

    @property
    def flags(self) -> str:
        return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in self.overrides)

    @property
    def label(self) -> str:
        return f"{self.preset} {self.flags}".strip()

    def command(self) -> str:
        """The ``vadfeat extract`` options that make features with this recipe."""
        return f"--preset {self.label}"


@dataclass(frozen=True)
class SampledVideo:
    """One sampled video: its name in the videos folder, THEIRS' matching file, its frame
    count, THEIRS' rows and how many rows were compared."""

    name: str
    source: Path | str
    theirs_name: str
    num_frames: int
    t_theirs: int
    rows: int
    fps: float | None = None
    native_fps: float | None = None
    frames_counted: bool = False  # decoded and counted, else counted from the container's packets


@dataclass(frozen=True)
class RecipeScore:
    """One candidate's result.  ``distance``: mean relative L2 over the sampled videos
    (``None``: not comparable, ``note`` says why); ``per_video`` in the sample's order;
    ``wins``: sampled videos where it is the closest; ``t_match``: sampled videos whose
    THEIRS ``T`` is what this recipe's sampling gives for the video's frame count;
    ``t_predicted`` that count per video."""

    recipe: Recipe
    distance: float | None
    cosine: float | None
    per_video: tuple[float | None, ...]
    wins: int
    t_match: int
    t_predicted: tuple[int | None, ...]
    note: str = ""

    @property
    def label(self) -> str:
        return self.recipe.label

    def line(self, rank: int, videos: int) -> str:
        if self.distance is None:
            return f"{rank:>3}. {self.label:<50} not comparable: {self.note}"
        return (f"{rank:>3}. {self.label:<50} rel L2 {self.distance:.4f}  cos {self.cosine:.4f}  "
                f"closest in {self.wins}/{videos}  T as theirs in {self.t_match}/{videos}")


@dataclass(frozen=True)
class RecipeRanking:
    """What :func:`compare_recipes` found.  ``ranking``: best first; ``best`` and
    ``runner_up`` the first two comparable ones; ``margin``: runner-up distance minus
    best; ``confidence`` and ``summary`` say how sure the ranking is; ``residual``: the
    best recipe's sample compared with THEIRS (compare's result, with its report files
    when ``out`` was given); ``lengths``: per sampled video, what the best recipe's row
    count against THEIRS' says (tail, frame rate, stride)."""

    theirs: Path
    videos: Path
    sample: tuple[SampledVideo, ...]
    ranking: tuple[RecipeScore, ...]
    best: RecipeScore | None
    runner_up: RecipeScore | None
    margin: float | None
    confidence: Confidence
    summary: str
    residual: CompareResult | None
    lengths: tuple[Diagnosis, ...]
    issues: tuple[FeatureIssue, ...]
    unmatched_videos: tuple[str, ...]
    snippets: int
    work: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``recipes`` entry of ``compare.json``."""
        def score(s: RecipeScore | None) -> dict[str, Any] | None:
            if s is None:
                return None
            return {"recipe": s.label, "preset": s.recipe.preset, "overrides": dict(s.recipe.overrides),
                    "distance": s.distance, "cosine": s.cosine, "per_video": list(s.per_video),
                    "wins": s.wins, "t_match": s.t_match, "t_predicted": list(s.t_predicted),
                    "note": s.note}

        return {
            "theirs": str(self.theirs), "videos": str(self.videos),
            "distance": "relative L2 |theirs - mine| / |mine| on the sampled rows and crops as stored, "
                        "mean over the sampled videos",
            "sample": [dataclasses.asdict(v) | {"source": str(v.source)} for v in self.sample],
            "snippets_per_video": self.snippets,
            "best": score(self.best), "runner_up": score(self.runner_up), "margin": self.margin,
            "confidence": self.confidence, "summary": self.summary,
            "ranking": [score(s) for s in self.ranking],
            "lengths": [dataclasses.asdict(d) for d in self.lengths],
            "unmatched_videos": list(self.unmatched_videos),
            "issues": [dataclasses.asdict(i) for i in self.issues],
            "work": str(self.work) if self.work is not None else None,
        }


# --------------------------------------------------------------------------- candidates


def candidate_presets(*, checkpoint: str | os.PathLike[str] | None = None, model: str | None = None,
                      backbone: str | None = None, names: Sequence[str] | None = None) -> list[str]:
    """Registered presets that can run on the model: feature head offered by its backbone,
    clip geometry that fits it.  ``names``: only those (each must exist and fit, else
    :class:`ConfigError` naming it and the ones that fit).  Nothing is loaded; the
    checkpoint's header and hash are read (:func:`~vadfeat.backbones._registry.resolve_model`)."""
    from vadfeat.backbones._registry import resolve_model
    from vadfeat.pipeline.config import check_fit
    from vadfeat.pipeline.presets import get_preset, list_presets

    found = resolve_model(None if checkpoint is None else os.fspath(checkpoint), model=model,
                          backbone=backbone)
    bb = found.backbone

    def fits(name: str) -> str | None:
        preset = get_preset(name)
        if preset.pooling not in bb.feature_names():
            return (f"its feature head {preset.pooling!r} is not one of {bb.name}'s "
                    f"({', '.join(bb.feature_names())})")
        try:
            check_fit(preset, found.spec, backbone=bb)
        except ConfigError as exc:
            return str(exc)
        return None

    fitting = [n for n in list_presets() if fits(n) is None]
    if names is None:
        if not fitting:
            raise ConfigError(f"no registered preset fits the model {found.name} (backbone {bb.name})")
        return fitting
    chosen = []
    for n in names:
        why = fits(n)  # an unknown name raises with the known ones
        if why is not None:
            raise ConfigError(f"preset {n!r} does not fit the model {found.name}: {why}; presets that "
                              f"fit: {', '.join(fitting) or 'none'}")
        if n not in chosen:
            chosen.append(n)
    if not chosen:
        raise ConfigError("--recipes names no preset; give names separated by commas, or none for "
                          "every preset that fits the model")
    return chosen


def crop_permutation(crops: int, have: CropOrder, want: CropOrder) -> list[int]:
    """Indices that reorder crops extracted in order ``have`` into order ``want``
    (``features[:, perm]``), by the crops' names."""
    from vadfeat.pipeline.transforms import crop_names

    a, b = crop_names(crops, have), crop_names(crops, want)
    return [a.index(n) for n in b]


# --------------------------------------------------------------------------- numbers


def rel_l2(mine: np.ndarray, theirs: np.ndarray) -> float:
    """``|theirs - mine| / |mine|`` over whole arrays (float64); ``inf`` for an all-zero mine
    unless theirs is zero too (then 0)."""
    m, t = np.asarray(mine, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    den = float(np.linalg.norm(m))
    num = float(np.linalg.norm(t - m))
    if den == 0:
        return 0.0 if num == 0 else math.inf
    return num / den


def _cosine(mine: np.ndarray, theirs: np.ndarray) -> float:
    m, t = np.asarray(mine, dtype=np.float64).ravel(), np.asarray(theirs, dtype=np.float64).ravel()
    den = float(np.linalg.norm(m) * np.linalg.norm(t))
    return float(m @ t / den) if den > 0 else math.nan


def judge(ranking: Sequence[RecipeScore], videos: int) -> tuple[RecipeScore | None, RecipeScore | None,
                                                                 float | None, Confidence, str]:
    """``(best, runner-up, margin, confidence, sentence)`` of a ranking (best first)."""
    comparable = [s for s in ranking if s.distance is not None]
    if not comparable:
        return None, None, None, "none", "no candidate recipe gives features comparable with THEIRS"
    best = comparable[0]
    runner = comparable[1] if len(comparable) > 1 else None
    assert best.distance is not None
    how = ("reproduces THEIRS to float rounding" if best.distance <= EXACT_REL_L2 else
           "reproduces THEIRS closely" if best.distance <= CLOSE_REL_L2 else
           "is the closest, but no candidate reproduces THEIRS closely (see the residual)")
    head = f"best: {best.label} (rel L2 {best.distance:.4f}) {how}"
    if runner is None or runner.distance is None:
        return best, None, None, "unsure", head + "; the only comparable candidate: nothing to rank against"
    margin = runner.distance - best.distance
    ratio = runner.distance / best.distance if best.distance > 0 else math.inf
    tail = (f"; runner-up: {runner.label} (rel L2 {runner.distance:.4f}), margin {margin:.4f}"
            + (f", {ratio:.1f}x as far" if math.isfinite(ratio) else ""))
    exact_alone = best.distance <= EXACT_REL_L2 < runner.distance
    if runner.distance <= max(best.distance, EXACT_REL_L2):
        # Both reproduce THEIRS as well (two recipes may differ only where the sample does not reach).
        return best, runner, margin, "unsure", (
            f"{head}{tail}: unsure (the runner-up reproduces THEIRS as well on this sample: the two "
            "cannot be told apart here; sample other videos, or they make the same features)")
    if best.wins == videos and (ratio >= SURE_RATIO or exact_alone):
        conf: Confidence = "sure"
    elif best.wins * 2 > videos:
        conf = "likely"
    else:
        conf = "unsure"
    why = {"sure": f"closest in every sampled video ({videos})",
           "likely": f"closest in {best.wins} of {videos} sampled videos, runner-up less than "
                     f"{SURE_RATIO:g}x as far",
           "unsure": f"closest in only {best.wins} of {videos} sampled videos: too close to tell on this "
                     "sample (sample more videos or snippets)"}[conf]
    if conf == "likely" and best.wins == videos:
        why = (f"closest in every sampled video ({videos}), but the runner-up is less than "
               f"{SURE_RATIO:g}x as far")
    return best, runner, margin, conf, f"{head}{tail}: {conf} ({why})"


# --------------------------------------------------------------------------- entry point


def compare_recipes(
    theirs: str | os.PathLike[str],
    videos: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    recipes: Sequence[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    model: str | None = None,
    backbone: str | None = None,
    random_weights: bool = False,
    num_videos: int = DEFAULT_SAMPLE_VIDEOS,
    snippets: int = DEFAULT_SAMPLE_SNIPPETS,
    device: str = "auto",
    dtype: str = "fp32",
    batch_size: int = 8,
    theirs_layout: LayoutOrAuto = "auto",
    window: int = 4,
    clip_len: int = 16,
    plots: int | bool | Literal["all"] = True,
    dpi: int = 100,
    work: str | os.PathLike[str] | None = None,
) -> RecipeRanking:
    """Rank the candidate recipes by how well they reproduce THEIRS (see the module docstring).

    ``theirs``: a folder of features (any layout compare reads); ``videos``: the folder (or
    file, or ``.txt`` list) of the videos they came from.  ``recipes``: preset names (default:
    every registered preset that fits the model).  The model: ``checkpoint``, or ``model``
    with ``random_weights`` (tests).  ``num_videos`` x ``snippets``: the sample.  ``dtype``
    defaults to fp32 (bf16's ~1 % would blur recipes 0.5 % apart).  With ``out``:
    ``compare.json`` (compare's report of the best recipe's sample against THEIRS, plus
    ``recipes``: the ranking), ``index.html`` (the ranking first) and the samples in
    ``out/samples/``.  ``work``: a folder for the samples without ``out`` (default: a
    temporary folder, removed).  Raises :class:`ConfigError` before any work for bad
    options, unknown or unfitting presets, a missing THEIRS or videos folder, an output or
    work folder overlapping an input, and when no video matches a file of THEIRS.  A video
    that cannot be read is an issue (:attr:`RecipeRanking.issues`); the others go on.
    """
    from vadfeat.io.inputs import output_stem, scan
    from vadfeat.pipeline.config import ExtractConfig

    for what, value in (("num_videos", num_videos), ("snippets", snippets)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ConfigError(f"window must be a non-negative number of snippets, got {window!r}")
    limit = _plot_limit(plots)
    theirs_path, videos_path = Path(theirs), Path(videos)
    if not theirs_path.is_dir():
        raise ConfigError(f"theirs: {theirs_path} is not a folder of features"
                          if theirs_path.exists() else f"theirs: {theirs_path} does not exist")
    if not videos_path.exists():
        raise ConfigError(f"videos: {videos_path} does not exist")
    names = candidate_presets(checkpoint=checkpoint, model=model, backbone=backbone, names=recipes)
    common = dict(checkpoint=checkpoint, model=model, backbone=backbone, random_weights=random_weights,
                  device=device, dtype=dtype, batch_size=batch_size)
    for n in names:  # every setting refused before any work
        ExtractConfig.from_settings(common, preset=n)
    inputs = [theirs_path, videos_path, *([Path(checkpoint)] if checkpoint is not None
                                          and not str(checkpoint).startswith("hf://") else [])]
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        refuse_overlap(out_dir, inputs, command="compare")
    if work is not None:
        refuse_overlap(work, inputs, command="compare", what="work folder")

    ts = _open(theirs_path, theirs_layout, clip_len, "theirs:")
    found = scan([videos_path])
    items = {str(output_stem(it)): it for it in found.items}
    ts = _regroup_short_crops(ts, list(items), clip_len)
    pairs, unmatched, _ = match_names(list(items), list(ts.names()))
    if not pairs:
        raise ConfigError(f"no video in {videos_path} matches a feature file of {theirs_path} "
                          f"(videos: {', '.join(list(items)[:5]) or 'none'}; theirs: "
                          f"{', '.join(ts.names()[:5]) or 'none'})")
    theirs_by = ts.by_name()
    issues: list[FeatureIssue] = [FeatureIssue(f"theirs/{i.video}", i.message) for i in ts.issues]

    # The sample: the first matched videos that decode and whose THEIRS file reads.
    sample: list[SampledVideo] = []
    theirs_arrays: dict[str, np.ndarray] = {}
    for name, tname in pairs:
        if len(sample) == num_videos:
            break
        item, trec = items[name], theirs_by[tname]
        if item.error is not None:
            issues.append(FeatureIssue(f"videos/{name}", item.error))
            continue
        try:
            arr = _as_tcd(trec.load())
        except (*NPY_ERRORS, TypeError, ValueError) as exc:
            issues.append(FeatureIssue(f"theirs/{tname}", f"cannot read {trec.paths[0]}: {exc}"))
            continue
        try:
            frames, counted, fps, native = _probe(item.source)
        except VideoError as exc:
            issues.append(FeatureIssue(f"videos/{name}", str(exc)))
            continue
        theirs_arrays[name] = arr
        sample.append(SampledVideo(name=name, source=item.source, theirs_name=tname, num_frames=frames,
                                   t_theirs=arr.shape[0], rows=min(snippets, arr.shape[0]), fps=fps,
                                   native_fps=native, frames_counted=counted))
    if not sample:
        raise ConfigError("no matched video could be sampled: " + "; ".join(str(i) for i in issues[-3:]))

    tmp: Path | None = None
    if out_dir is not None:
        # Before any extraction: a file compare did not write at any name it may write is refused.
        maybe = [f"{_SAMPLES}/{slug}/{v.name}{ext}" for n in names
                 for slug in (n, *(f"{n}+crops{k}" for k in _CROP_COUNTS)) for v in sample
                 for ext in (".npy", ".json")]
        claim_outputs(out_dir, ["compare.json", "index.html"], command="compare",
                      check=[*maybe, *(f"{v.name}.png" for v in sample)] if limit != 0 else maybe)
        work_dir = out_dir / _SAMPLES
    elif work is not None:
        work_dir = Path(work)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="vadfeat-recipes-"))
        refuse_overlap(tmp, inputs, command="compare", what="work folder")
        work_dir = tmp
    try:
        scores, extracted = _score_all(names, sample, theirs_arrays, work_dir, out_dir, common, issues)
        scores.sort(key=lambda s: (math.inf if s.distance is None else s.distance, s.recipe.variant,
                                   s.label))
        best, runner, margin, conf, summary = judge(scores, len(sample))
        ranking_wo = dict(theirs=theirs_path, videos=videos_path, sample=tuple(sample), ranking=tuple(scores),
                          best=best, runner_up=runner, margin=margin, confidence=conf, summary=summary,
                          issues=tuple(issues), unmatched_videos=tuple(unmatched), snippets=snippets,
                          work=work_dir if tmp is None else None)
        residual: CompareResult | None = None
        lengths: tuple[Diagnosis, ...] = ()
        if best is not None:
            residual, lengths = _residual(best, extracted[_slug(best.recipe)], work_dir, ts, sample,
                                          theirs_arrays, out_dir, limit, dpi, window, ranking_wo)
        return RecipeRanking(**ranking_wo, residual=residual, lengths=lengths)  # type: ignore[arg-type]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _probe(source: str | os.PathLike[str]) -> tuple[int, bool, float | None, float | None]:
    """``(frames, counted, rate the frames come at, the video's own rate)`` of a video or
    frame folder: the frames the container shows, counted from its packets without decoding
    (:func:`~vadfeat.io.video.shown_samples`: a lossless cut's edit list applied) or a frame
    folder's file count, or, when the container declares no count, every frame decoded and
    counted (``counted``; no resize, no model).  Raises :class:`VideoError`."""
    from vadfeat.io.video import open_video, shown_samples

    with open_video(source) as reader:
        declared = reader.info.declared_frames
        if declared:
            stream = reader.info.stream
            shown = shown_samples(source, stream) if stream is not None else int(declared)
            return shown, False, reader.fps, reader.info.fps
        for _ in reader:
            pass
        return int(reader.decoded_frames), True, reader.fps, reader.info.fps


def _slug(recipe: Recipe) -> str:
    """The sample folder of an extraction: the preset, plus a crop-count override."""
    crops = dict(recipe.overrides).get("crops")
    return recipe.preset + (f"+crops{crops}" if crops is not None else "")


def _expected_rows(preset: Any, num_frames: int) -> int | None:
    from vadfeat.pipeline.sampling import snippet_indices

    try:
        return len(snippet_indices(num_frames, clip_len=preset.clip_len, frame_interval=preset.frame_interval,
                                   stride=preset.stride, tail=preset.tail))
    except (VideoTooShortError, ConfigError):
        return None


def _adapt(preset: Any, head_shape: tuple[int, ...], theirs_shape: tuple[int, ...]
           ) -> tuple[tuple[tuple[str, Any], ...] | None, str]:
    """The overrides that give ``preset`` THEIRS' crop count (``((), "")`` when it has it),
    or ``(None, why not)``.  ``head_shape``: the model's per-clip feature shape;
    ``theirs_shape``: ``[T, C, D]``."""
    _, c_theirs, d_theirs = theirs_shape
    if head_shape[-1] != d_theirs:
        return None, f"feature size {head_shape[-1]} against theirs' {d_theirs}"
    per_crop = int(np.prod(head_shape[:-1], dtype=np.int64))
    if preset.crops * per_crop == c_theirs:
        return (), ""
    crops, rem = divmod(c_theirs, per_crop)
    if rem or crops not in _CROP_COUNTS:
        return None, (f"{preset.crops * per_crop} values per row and feature dimension against "
                      f"theirs' {c_theirs}")
    return (("crops", crops),), ""


def _score_all(names: Sequence[str], sample: Sequence[SampledVideo], theirs_arrays: dict[str, np.ndarray],
               work_dir: Path, out_dir: Path | None, common: dict[str, Any], issues: list[FeatureIssue],
               ) -> tuple[list[RecipeScore], dict[str, dict[str, np.ndarray]]]:
    """Extract the sample under every candidate and score it (and its crop orders)."""
    from vadfeat.backbones._registry import resolve_model
    from vadfeat.pipeline.config import ExtractConfig
    from vadfeat.pipeline.presets import get_preset

    found = resolve_model(common["checkpoint"], model=common["model"], backbone=common["backbone"])
    first = theirs_arrays[sample[0].name].shape
    raw: list[tuple[Recipe, dict[str, np.ndarray] | None, str]] = []
    extracted: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        preset = get_preset(name)
        head = tuple(found.backbone.feature_shape(found.spec, preset.pooling))
        overrides, why = _adapt(preset, head, first)
        if overrides is None:
            raw.append((Recipe(name), None, why))
            continue
        recipe = Recipe(name, overrides)
        try:
            cfg = ExtractConfig.from_settings(common, preset=name, **dict(overrides))
        except ConfigError as exc:
            raw.append((recipe, None, f"cannot be adapted: {exc}"))
            continue
        arrays = _extract_sample(cfg, sample, work_dir, out_dir, _slug(recipe), issues)
        extracted[_slug(recipe)] = arrays
        crops = cfg.preset.crops
        raw.append((recipe, {k: _as_tcd(a) for k, a in arrays.items()}, ""))
        if crops in _MULTI_ORDER_CROPS:  # the other crop orders: the same crops, reordered
            for order in get_args(CropOrder):
                if order == cfg.preset.crop_order:
                    continue
                perm = crop_permutation(crops, cfg.preset.crop_order, order)
                raw.append((Recipe(name, (*overrides, ("crop_order", order))),
                            {k: _as_tcd(a[:, perm]) for k, a in arrays.items()}, ""))
    # Per-video distances, then who is closest in each video.
    table: list[tuple[Recipe, list[float | None], list[float | None], str]] = []
    for recipe, got, why in raw:
        dists: list[float | None] = []
        coss: list[float | None] = []
        for v in sample:
            mine = None if got is None else got.get(v.name)
            theirs = theirs_arrays[v.name]
            if mine is None or mine.shape[1:] != theirs.shape[1:]:
                dists.append(None)
                coss.append(None)
                if mine is not None and not why:
                    why = f"shape {list(mine.shape[1:])} against theirs' {list(theirs.shape[1:])}"
                continue
            k = min(len(mine), len(theirs))
            dists.append(rel_l2(mine[:k], theirs[:k]))
            coss.append(_cosine(mine[:k], theirs[:k]))
        table.append((recipe, dists, coss, why))
    scores = []
    for recipe, dists, coss, why in table:
        ok = [d for d in dists if d is not None]
        wins = 0
        for i, d in enumerate(dists):
            others = [o for t in table if t[0] != recipe and (o := t[1][i]) is not None]
            if d is not None and all(d <= o for o in others):
                wins += 1
        # Crop overrides leave the sampling alone: the preset's own gives the row count.
        predicted = tuple(_expected_rows(get_preset(recipe.preset), v.num_frames) for v in sample)
        t_match = sum(p == v.t_theirs for p, v in zip(predicted, sample, strict=True))
        complete = len(ok) == len(dists) and ok
        scores.append(RecipeScore(
            recipe=recipe, distance=float(np.mean(ok)) if complete else None,
            cosine=float(np.mean([c for c in coss if c is not None])) if complete else None,
            per_video=tuple(dists), wins=wins, t_match=t_match, t_predicted=predicted,
            note=why or ("" if complete else "no features for some sampled videos (too short for "
                                             "this recipe's sampling, or unreadable: see the issues)")))
    return scores, extracted


def _extract_sample(cfg: Any, sample: Sequence[SampledVideo], work_dir: Path, out_dir: Path | None,
                    slug: str, issues: list[FeatureIssue]) -> dict[str, np.ndarray]:
    """The first ``snippets`` snippets of each sampled video under ``cfg``, through the
    extractor's snippet stream; written under ``work_dir/slug`` as feature files with
    sidecars (claimed in ``out_dir``'s record when the work folder is there).
    Returns ``{video: features}`` as extracted (``[rows, (crops,) *head]``); a video that
    fails is an issue."""
    from vadfeat.pipeline.extractor import FeatureExtractor

    ext = FeatureExtractor.from_config(cfg)
    folder = work_dir / slug
    sink = NpySink(folder, layout="flat", records=False)  # the work folder's record is out_dir's
    paths = {v.name: sink.plan(PurePosixPath(v.name)) for v in sample}
    if out_dir is not None:
        rel = [p.relative_to(out_dir).as_posix() for ps in paths.values() for p in ps.all()]
        claim_outputs(out_dir, rel, command="compare")
    else:
        folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    for v in sample:
        try:
            feats, ranges = _first_snippets(ext, v.source, v.rows)
        except VideoTooShortError:
            ranges = []
        except VideoError as exc:
            issues.append(FeatureIssue(f"videos/{v.name}", f"{cfg.preset.name}: {exc}"))
            continue
        if not len(ranges):  # a finding about this recipe's sampling, not a broken video
            log.info("%s: %s gives no snippet under this recipe's sampling", cfg.preset.name, v.name)
            continue
        meta = {"num_frames": v.num_frames, "fps": v.fps, "native_fps": v.native_fps}
        side = ext.sidecar(video=v.name, source=v.source, meta=meta, ranges=ranges, shape=feats.shape,
                           layout="flat")
        side["sample"] = {"snippets": len(ranges), "of": _expected_rows(cfg.preset, v.num_frames)}
        # Never the fingerprint of a full extraction: extract must not resume from a sample.
        side["fingerprint"] = {**side["fingerprint"], "sample_snippets": len(ranges)}
        p = paths[v.name]
        p.sidecar.parent.mkdir(parents=True, exist_ok=True)
        sink.write(p, VideoFeatures(feats, side))
        out[v.name] = feats
        log.info("%s: %s, %d snippets sampled", cfg.preset.name, v.name, len(ranges))
    return out


def _first_snippets(ext: Any, source: Path | str, n: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``(features [n', crops?, ...], frame ranges)`` of the first ``n`` snippets; decoding
    stops there (the stream is closed).

    As in ``vadfeat extract`` (:mod:`vadfeat.engines.local`), a worker thread decodes and
    preprocesses while this thread runs the model, at most two snippets ahead.  Not only for
    the overlap: on the loaded 2-core machine, the same per-frame transforms run in the
    calling thread took 4x the CPU time they take in a worker thread (tiny model, 750 frames
    of 360p: 57 s against 15 s, BENCHMARKS.md section 15).
    """
    handoff: queue.Queue[tuple[tuple[int, int], Any] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def send(item: tuple[tuple[int, int], Any] | BaseException | None) -> bool:
        while not stop.is_set():  # the model thread may have stopped reading
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        stream = ext.snippet_stream(source)
        try:
            for made, snippet in enumerate(stream, start=1):
                if not send(snippet) or made >= n:
                    break
        except Exception as exc:  # noqa: BLE001  (handed to the model thread, which raises it)
            send(exc)
            return
        finally:
            stream.close()
        send(None)

    worker = threading.Thread(target=produce, name="vadfeat-sample", daemon=True)
    worker.start()
    ranges: list[tuple[int, int]] = []
    rows: list[tuple[int, np.ndarray]] = []
    batcher = ext.batcher()
    try:
        while (got := handoff.get()) is not None:
            if isinstance(got, BaseException):
                raise got
            ranges.append(got[0])
            rows.extend(batcher.add(len(ranges) - 1, ext.prepare(got[1])))
    finally:
        stop.set()
        worker.join()
    rows.extend(batcher.flush())
    rows.sort(key=lambda kr: kr[0])
    if not rows:
        return np.zeros((0,), dtype=np.float32), []
    return np.stack([r for _, r in rows]).astype(np.float32, copy=False), ranges


def _residual(best: RecipeScore, arrays: dict[str, np.ndarray], work_dir: Path, ts: FeatureSet,
              sample: Sequence[SampledVideo], theirs_arrays: dict[str, np.ndarray], out_dir: Path | None,
              limit: int | Literal["all"], dpi: int, window: int, ranking: dict[str, Any]
              ) -> tuple[CompareResult, tuple[Diagnosis, ...]]:
    """compare's diagnoses of the best recipe's sample (its crops in the recipe's order)
    against THEIRS' first rows, and what the row counts say; with ``out_dir`` the report."""
    from vadfeat.pipeline.presets import get_preset
    from vadfeat.pipeline.transforms import crop_names

    folder = work_dir / _slug(best.recipe)
    mine_records = {r.name: _without_sample_key(r) for r in _read_quiet(folder)}
    preset, wanted = get_preset(best.recipe.preset), dict(best.recipe.overrides)
    crops, have = int(wanted.get("crops", preset.crops)), preset.crop_order
    order = wanted.get("crop_order", have)
    if crops in _MULTI_ORDER_CROPS and order != have:  # the sample as the recipe orders it
        perm = crop_permutation(crops, have, order)
        arrays = {k: a[:, perm] for k, a in arrays.items()}
        mine_records = {k: dataclasses.replace(r, crop_order=crop_names(crops, order))
                        for k, r in mine_records.items()}
    theirs_by = ts.by_name()
    videos: list[VideoComparison] = []
    pairs = []
    lengths: list[Diagnosis] = []
    for v, t_pred in zip(sample, best.t_predicted, strict=True):
        mine, mrec = arrays.get(v.name), mine_records.get(v.name)
        if mine is None or mrec is None:
            continue
        trec = theirs_by[v.theirs_name]
        k = min(len(mine), len(theirs_arrays[v.name]))
        comp = compare_video(v.name, mrec, trec, mine[:k], theirs_arrays[v.name][:k], window=window)
        videos.append(comp)
        pairs.append((v.name, mrec, trec))
        if t_pred is not None:
            rm, rt = _recorded_rate(mrec), _recorded_rate(trec)
            both = (rm, rt) if rm is not None and rt is not None else None
            _, note, diags = explain_length(mrec, t_pred, v.t_theirs, 0, comp.alignment_score, recorded=both)
            lengths.append(Diagnosis(diags[0].kind if diags else "same",
                                     f"{v.name}: {best.label} gives {t_pred} rows for {v.num_frames} frames"
                                     f" ({'counted' if v.frames_counted else 'as the container shows'}), "
                                     f"theirs has {v.t_theirs}: {note}"))
    ms = FeatureSet(root=folder, layout="flat", records=tuple(p[1] for p in pairs))
    told = RecipeRanking(**ranking, residual=None, lengths=tuple(lengths))
    result = finish_comparison(videos, pairs, ms, ts, [], [], [], out_dir, limit, dpi=dpi,
                               preamble=ranking_html(told), extra={"recipes": told.to_dict()})
    return result, tuple(lengths)


def _read_quiet(folder: Path) -> FeatureSet:
    reader_log = logging.getLogger("vadfeat.store.reader")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    try:
        return read_features(folder, layout="flat")
    finally:
        reader_log.setLevel(level)


def _without_sample_key(record: FeatureRecord) -> FeatureRecord:
    """The record with the sample marker left out of its fingerprint (so compare's list of
    differing settings shows the recipe's settings, not the sampling)."""
    fp = record.metadata.get("fingerprint")
    if not isinstance(fp, dict) or "sample_snippets" not in fp:
        return record
    meta = {**record.metadata, "fingerprint": {k: v for k, v in fp.items() if k != "sample_snippets"}}
    return dataclasses.replace(record, metadata=meta)


# --------------------------------------------------------------------------- report


def ranking_lines(r: RecipeRanking) -> list[str]:
    """The ranking as the command prints it."""
    n = len(r.sample)
    lines = [f"recipe ranking: {n} video(s) x up to {r.snippets} snippets each "
             f"({', '.join(f'{v.name}: {v.rows}' for v in r.sample)}); rel L2 |theirs - mine| / |mine| "
             "on the rows and crops as stored"]
    lines += [s.line(i + 1, n) for i, s in enumerate(r.ranking)]
    lines.append(r.summary)
    if r.best is not None:
        lines.append(f"to extract like THEIRS: vadfeat extract VIDEOS -o OUT {r.best.recipe.command()}")
    return lines


def ranking_html(r: RecipeRanking) -> str:
    """The ranking as the first section of ``index.html``."""
    n = len(r.sample)
    rows = []
    for i, s in enumerate(r.ranking):
        dist = "&ndash;" if s.distance is None else f"{s.distance:.4f}"
        cos = "&ndash;" if s.cosine is None else f"{s.cosine:.4f}"
        per = ", ".join("&ndash;" if d is None else f"{d:.4f}" for d in s.per_video)
        rows.append(f"<tr><td>{i + 1}</td><td style=\"text-align:left\">{html.escape(s.label)}</td>"
                    f"<td>{dist}</td><td>{cos}</td><td>{s.wins}/{n}</td><td>{s.t_match}/{n}</td>"
                    f"<td>{per}</td><td style=\"text-align:left\">{html.escape(s.note)}</td></tr>")
    sampled = ", ".join(f"{html.escape(v.name)} ({v.rows} of {v.t_theirs} rows, {v.num_frames} frames)"
                        for v in r.sample)
    lengths = "".join(f"<li>{html.escape(d.message)}</li>" for d in r.lengths)
    return (f"<h2>Which recipe made THEIRS</h2><p>Videos: <code>{html.escape(str(r.videos))}</code>; "
            f"sampled: {sampled}.</p><p class=\"verdict\"><b>{html.escape(r.summary)}</b></p>"
            "<table><tr><th>#</th><th>recipe</th><th>rel L2</th><th>cosine</th><th>closest in</th>"
            "<th>T as theirs</th><th>rel L2 per sampled video</th><th>note</th></tr>"
            f"{''.join(rows)}</table><p class=\"note\">rel L2: |theirs - mine| / |mine| on the sampled "
            "rows and crops as stored (crop order and snippet grid are part of a recipe), mean over "
            "the sampled videos. T as theirs: videos whose row count is what the recipe gives for "
            "the video's frame count. Below: the best recipe's sample compared with THEIRS' first "
            "rows.</p>" + (f"<ul>{lengths}</ul>" if lengths else "")
            + "<h2>The best recipe against THEIRS</h2>")


__all__ = [
    "CLOSE_REL_L2",
    "DEFAULT_SAMPLE_SNIPPETS",
    "DEFAULT_SAMPLE_VIDEOS",
    "EXACT_REL_L2",
    "SURE_RATIO",
    "Recipe",
    "RecipeRanking",
    "RecipeScore",
    "SampledVideo",
    "candidate_presets",
    "compare_recipes",
    "crop_permutation",
    "judge",
    "ranking_html",
    "ranking_lines",
    "rel_l2",
]
