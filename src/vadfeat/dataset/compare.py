"""Compare two feature sets of the same videos and say why they differ.

:func:`compare` takes *mine* (typically a vadfeat extraction) and *theirs*
(typically a paper's released features) -- two folders in any layout
:func:`~vadfeat.store.reader.read_features` reads, or two ``.npy`` files -- and
reports per video and overall:

- **names**: videos matched by relative name, then by :func:`video_key`, then by
  :func:`feature_key` (``<video>_i3d``, ``<video>__vggish``); sidecar-less ``<video>_<k>.npy`` files
  are grouped into crops when the other side has ``<video>``; the rest are listed
  as only in mine / only in theirs;
- **shapes**: every array is viewed as ``[T, C, D]`` (``D`` the last axis,
  ``C`` the product of the axes between: crops, or crops x ``[mean, std, max]``);
  a different ``C`` or ``D`` is a finding, never a crash;
- **crops** (first, as they need no temporal alignment): my crops assigned to
  theirs by the cosine of their time-averaged features, taken relative to the
  crops' mean with 3 or more crops on each side (what tells crops apart); an
  exact maximum-sum assignment by dynamic programming over subsets up to 16
  crops.  A permutation is claimed only when it beats the stored order clearly
  and every moved crop is unambiguous (see :func:`_is_permutation`);
- **temporal alignment**: theirs row ``t`` is matched with mine row ``t + offset``
  for the integer ``offset`` in ``[-window, window]`` that maximises the cosine of
  the two sides' *temporal deviations* (rows of the matched crops minus their
  mean over the overlap).  Raw rows are useless for this: consecutive snippets of
  one video have cosine 0.98-0.999 (measured on vadfeat's tiny models), so every
  offset would look equally good; the deviations are what changes with time.
  Where both sidecars record different sampling rates, rows are paired by their
  recorded snippet-centre times instead (recorded settings beat guesses); where
  only my sidecar is there and it predicts theirs' T at another common frame
  rate, rows paired by snippet-centre time at that rate compete with the offsets
  (a rate change stretches time rather than shifting it);
- **T difference** and what explains it: the offset itself, a tail rule (floor vs
  ceil of ``frames / clip_len``), a frame rate (theirs' ``T`` is what another
  common rate predicts from my frame count, or from ``T`` alone for long videos),
  or a snippet stride (``T`` ratio ~2, 4, 8); a tail rule is preferred over a
  frame rate (both can add one row) only when the shared rows match (score >= 0.9);
- **values** on the aligned rows and matched crops: per-snippet cosine and
  relative L2 (``|theirs - mine| / |mine|``), the largest absolute difference,
  the median over dimensions of the per-dimension Pearson correlation and a
  global least-squares fit ``theirs ~ a * mine + b``.

Diagnoses (:class:`Diagnosis`, each with a ``kind``): ``identical`` (largest
difference 0), ``equal`` (within float tolerance), ``offset``, ``tail``,
``fps``, ``stride``, ``length`` (unexplained T difference), ``crop-permutation``,
``crop-count``, ``dim-mismatch``, ``linear-rescale`` (theirs is ``a * mine + b``
with R^2 > 0.999: a rescale of the features themselves), ``per-dim-affine``
(the same per dimension, ``a`` and ``b`` varying: standardised features),
``preprocessing``, ``unrelated`` and ``different``; overall also ``names`` and
``settings`` (both sides have vadfeat sidecars recording different settings: every
field of :func:`recorded_settings` that differs in any matched pair).

Why ``preprocessing`` is not an affine fit: a change of input pixel scaling
(``[0, 1]`` vs ImageNet mean/std, or ``[-1, 1]``) is affine in *pixel* space, but
a network is nonlinear, so the features are not an affine function of each
other (on vadfeat's tiny VideoMAE model, ``--scale unit`` against ``imagenet``
gives a global affine R^2 of 0.14-0.17).  What survives is co-variation: the
same frames through the same weights move each feature dimension the same way
across snippets and crops (median per-dimension correlation 0.87) while the
vectors point elsewhere (cosine 0.37-0.41).  ``preprocessing`` is therefore
"median per-dimension correlation >= 0.6 and mean cosine < 0.99, on at least
8 aligned rows" -- a different pixel scale, mean/std or channel order, or
another resize; a different backbone or checkpoint gives uncorrelated
dimensions (``unrelated``).  Measured on a real clip (bigbuckbunny, 8 snippets,
tiny model): ``--scale unit`` r 0.96 / cos 0.24 (1 crop), r 0.88 / cos 0.47
(10 crops); ``minus_one_one`` r 0.998 / cos 0.977 and r 0.98 / cos 0.94;
``BGR`` r 0.73 / cos 0.979 and r 0.85 / cos 0.83; the same recipe at 30 instead
of 25 fps (rows paired by time) cos 0.999, which stays below the rule.

Without sidecars (plain ``.npy`` folders) frame counts, frame rates and crop
names are unknown: crops are named by index, and a T difference of one row
cannot be told apart from a frame-rate change by ``T`` alone;
:attr:`CompareResult.cannot_diagnose` says what was missing.
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from vadfeat._defaults import DEFAULT_PLOTS  # defined there for --help; re-exported
from vadfeat._types import LayoutOrAuto
from vadfeat.dataset.report import (
    PAGE_STYLE,
    ExtractionInfo,
    describe_extraction,
    info_html,
    valid_utf8,
    warning_html,
)
from vadfeat.errors import ConfigError
from vadfeat.store.atomic import NPY_ERRORS, atomic_path
from vadfeat.store.ownership import claim_outputs, refuse_overlap
from vadfeat.store.reader import (
    FeatureIssue,
    FeatureRecord,
    FeatureSet,
    _make_record,
    read_features,
    video_key,
    write_json,
    write_text,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

#: Frame rates tried when a T difference may come from a frame-rate change.
COMMON_FPS = (10.0, 12.0, 12.5, 15.0, 23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0)
#: Stride ratios tried when theirs has about k times (or 1/k) my rows.
STRIDE_RATIOS = (2, 4, 8)
#: Rows (snippets x crops) below which per-dimension statistics are not trusted.
MIN_ROWS_PER_DIM = 8
#: T below which a frame rate is not claimed from the T ratio alone (no frame count).
MIN_T_FOR_RATIO = 10
_MAX_EXACT_CROPS = 16
# One or two underscores: XD-Violence's released audio features are <video>__vggish.npy.
_FEATURE_SUFFIX = re.compile(
    r"(__?(i3d|rgb|flow|clip|vit|videomae|feat|feats|feature|features|vggish))+$", re.I)
#: Arrays larger than this (elements) are compared in float32 to bound memory.
_FLOAT64_LIMIT = 1 << 24
_EQUAL_REL_L2 = 1e-3
_EQUAL_COS = 1 - 1e-5
_LINEAR_R2 = 0.999
_IDENTITY_TOL = 1e-3  # |a - 1| and |b| / rms(mine) below which a fit is no rescale
_PREPROC_CORR = 0.6
_PREPROC_COS = 0.99
_UNRELATED_CORR = 0.3
_TAIL_MATCH = 0.9
_PERM_GAIN = 0.05
_PERM_MARGIN = 0.05
_EXACT_SIM = 0.999


@dataclass(frozen=True)
class Diagnosis:
    """One finding: ``kind`` (see the module docstring) and a sentence for people."""

    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class CropMatch:
    """Theirs crop ``theirs`` holds my crop ``mine`` (``mine_name`` from my sidecar's ``crop_order``)."""

    theirs: int
    mine: int
    mine_name: str | None
    similarity: float
    margin: float  # similarity minus the best other crop of mine for this crop of theirs


@dataclass(frozen=True)
class VideoComparison:
    """One matched video.  Statistics are ``None`` where they could not be computed
    (different feature dims, no overlapping rows).  ``offset``: theirs row ``t`` is
    mine row ``t + offset``; when ``time_map`` is ``"fps"`` rows were paired by time
    at another frame rate instead (``rows_mine[i]`` with ``rows_theirs[i]``)."""

    name: str
    mine_name: str
    theirs_name: str
    mine_shape: tuple[int, ...]
    theirs_shape: tuple[int, ...]
    num_frames: int | None
    t_mine: int
    t_theirs: int
    t_rule: str
    t_note: str
    offset: int
    overlap: int
    alignment_score: float | None
    cosine: float | None
    cosine_min: float | None
    rel_l2: float | None
    max_abs_diff: float | None
    snippet_cosine: tuple[float, ...]
    snippet_rel_l2: tuple[float, ...]
    crops_mine: int
    crops_theirs: int
    dim_mine: int
    dim_theirs: int
    crop_matches: tuple[CropMatch, ...]
    dim_correlation: float | None
    affine: tuple[float, float, float] | None  # (a, b, R^2) of theirs ~ a * mine + b
    diagnoses: tuple[Diagnosis, ...]
    verdict: str
    rows_mine: tuple[int, ...] = ()  # the aligned rows: mine rows_mine[i] with theirs rows_theirs[i]
    rows_theirs: tuple[int, ...] = ()
    time_map: str = "offset"
    png: Path | None = None
    crop_similarity: np.ndarray | None = field(default=None, repr=False, compare=False)
    crop_names_mine: tuple[str, ...] | None = None  # from each side's sidecar crop_order
    crop_names_theirs: tuple[str, ...] | None = None

    def kinds(self) -> tuple[str, ...]:
        return tuple(d.kind for d in self.diagnoses)

    @property
    def crop_margin(self) -> CropMatch | None:
        """The crop match closest to its runner-up (smallest :attr:`CropMatch.margin`)."""
        finite = [m for m in self.crop_matches if math.isfinite(m.margin)]
        return min(finite, key=lambda m: m.margin) if finite else None

    def line(self, permutation: Sequence[int] = ()) -> str:
        """One line for the command's output.  ``permutation``: the crop order already said
        for all videos (:attr:`CompareResult.crop_permutation`), not written out again."""
        parts = [f"{self.name}: {self.verdict}", f"T {self.t_mine}/{self.t_theirs} ({self.t_rule})"]
        if self.cosine is not None:
            where = "rows paired by time" if self.time_map == "fps" else f"at offset {self.offset:+d}"
            parts.append(f"cos {self.cosine:.4f}, rel L2 {self.rel_l2:.4f} {where}")
        same = bool(permutation) and [m.mine for m in self.crop_matches] == list(permutation)
        said = "crop order differs: the pooled crop order (overall)"
        notes = [said if same and d.kind == "crop-permutation" else d.message
                 for d in self.diagnoses if d.kind not in ("identical", "equal")]
        return "; ".join(parts + notes)


@dataclass(frozen=True)
class CompareResult:
    """Everything :func:`compare` found; ``out``/``index``/``report`` are ``None`` without ``out``."""

    mine: Path
    theirs: Path
    videos: tuple[VideoComparison, ...]
    only_mine: tuple[str, ...]
    only_theirs: tuple[str, ...]
    issues: tuple[FeatureIssue, ...]
    overall: tuple[Diagnosis, ...]
    verdict: str
    cannot_diagnose: tuple[str, ...]
    crop_matches: tuple[CropMatch, ...]
    #: mine's crop for each of theirs when a permutation pooled over videos was claimed, else ()
    crop_permutation: tuple[int, ...] = ()
    out: Path | None = None
    index: Path | None = None
    report: Path | None = None

    def video(self, name: str) -> VideoComparison:
        for v in self.videos:
            if v.name == name:
                return v
        raise KeyError(name)


# --------------------------------------------------------------------------- numbers


def _as_tcd(arr: np.ndarray) -> np.ndarray:
    """``[T, C, D]`` float64 view of a feature array (``[T, D]`` -> ``C = 1``)."""
    if arr.ndim < 2:
        raise ValueError(f"feature array of shape {list(arr.shape)} has no feature axis")
    x = np.asarray(arr, dtype=np.float64 if arr.size <= _FLOAT64_LIMIT else np.float32)
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.sum(a * b) / den) if den > 0 else math.nan


def _row_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine along the last axis (0/0 counts as 1 when both are zero, else 0)."""
    num = np.sum(a * b, axis=-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    both_zero = (np.linalg.norm(a, axis=-1) == 0) & (np.linalg.norm(b, axis=-1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    return np.where(both_zero, 1.0, out)


def _windows(t_mine: int, t_theirs: int, offset: int) -> tuple[int, int, int]:
    """(mine start, theirs start, rows) of the overlap when theirs[t] = mine[t + offset]."""
    j0, i0 = max(0, offset), max(0, -offset)
    return j0, i0, max(0, min(t_mine - j0, t_theirs - i0))


def best_offset(mine: np.ndarray, theirs: np.ndarray, *, window: int = 4) -> tuple[int, int, float | None]:
    """``(offset, overlap, score)``: theirs row ``t`` matches mine row ``t + offset``.

    ``mine``/``theirs``: ``[T, P, D]``, crop ``p`` of one matched with crop ``p`` of the
    other.  Score: cosine of the overlaps' temporal deviations (rows minus their
    mean over the overlap, all crops together; see the module docstring); an
    overlap shorter than ``max(2, ceil(min(T) / 2))`` rows is not tried.  Ties go to
    the smaller ``|offset|``.  With no usable overlap (T of 1, constant features)
    the offset is 0 and the score ``None``.
    """
    m, t = mine.reshape(len(mine), -1), theirs.reshape(len(theirs), -1)
    min_rows = max(2, -(-min(len(m), len(t)) // 2))
    best: tuple[float, int, int] | None = None
    for offset in sorted(range(-window, window + 1), key=lambda o: (abs(o), o < 0)):
        j0, i0, n = _windows(len(m), len(t), offset)
        if n < min_rows:
            continue
        a, b = m[j0:j0 + n], t[i0:i0 + n]
        score = _cos(a - a.mean(axis=0), b - b.mean(axis=0))
        if math.isnan(score):
            continue
        if best is None or score > best[0] + 1e-9:
            best = (score, offset, n)
    if best is None:
        return 0, _windows(len(m), len(t), 0)[2], None
    return best[1], best[2], best[0]


def crop_similarity(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """``[C_mine, C_theirs]`` cosine between my crop ``i`` and theirs ``j``, each averaged over time.

    ``mine``/``theirs``: ``[T, C, D]`` (T may differ).  Time-averaged crops need no
    temporal alignment (what a crop shows changes little from one snippet to the
    next), so crops are matched before the offset is searched.  With 3 or more
    crops on both sides (and as many), each crop is taken relative to the mean of
    the crops: crops of one video share most of their feature, the deviation is
    what tells them apart.
    """
    a, b = mine.mean(axis=0), theirs.mean(axis=0)
    if a.shape[0] == b.shape[0] >= 3:
        a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    return _row_cos(a[:, None, :], b[None, :, :])


def assign_crops(sim: np.ndarray) -> list[int]:
    """For each column (theirs' crop) the row (my crop) of a maximum-sum one-to-one matching.

    ``-1`` for columns left unmatched when there are more columns than rows.  Exact
    (dynamic programming over subsets) up to 16 crops on the smaller side's partner,
    greedy beyond.
    """
    rows, cols = sim.shape
    if rows < cols:
        col_of_row = assign_crops(sim.T)
        out = [-1] * cols
        for r, c in enumerate(col_of_row):
            if c >= 0:
                out[c] = r
        return out
    if rows > _MAX_EXACT_CROPS:
        out, used = [], set()
        for c in range(cols):
            order = [r for r in np.argsort(-sim[:, c]) if r not in used]
            out.append(int(order[0]))
            used.add(int(order[0]))
        return out
    # best[mask] over the first popcount(mask) columns using the rows in mask.
    best: dict[int, tuple[float, tuple[int, ...]]] = {0: (0.0, ())}
    for c in range(cols):
        nxt: dict[int, tuple[float, tuple[int, ...]]] = {}
        for mask, (score, picks) in best.items():
            for r in range(rows):
                if mask >> r & 1:
                    continue
                key, value = mask | 1 << r, score + float(sim[r, c])
                if key not in nxt or value > nxt[key][0] + 1e-12:
                    nxt[key] = (value, (*picks, r))
        best = nxt
    return list(max(best.values(), key=lambda v: v[0])[1])


def _crop_matches(sim: np.ndarray, names: Sequence[str] | None) -> tuple[CropMatch, ...]:
    picks = assign_crops(sim)
    out = []
    for j, i in enumerate(picks):
        if i < 0:
            continue
        others = np.delete(sim[:, j], i)
        margin = float(sim[i, j] - others.max()) if others.size else math.inf
        name = names[i] if names is not None and i < len(names) else None
        out.append(CropMatch(theirs=j, mine=int(i), mine_name=name, similarity=float(sim[i, j]),
                             margin=margin))
    return tuple(out)


def _crop_text(matches: Sequence[CropMatch]) -> str:
    return ", ".join(f"theirs[{m.theirs}] = mine[{m.mine}]" + (f" ({m.mine_name})" if m.mine_name else "")
                     for m in matches)


def _is_permutation(matches: Sequence[CropMatch], sim: np.ndarray) -> bool:
    """A non-identity matching that beats keeping the crops in place by a clear margin,
    every moved crop unambiguous (its match beats every other crop of mine by
    :data:`_PERM_MARGIN`, or is an exact copy).  Crops of a small or symmetric frame
    come in near-twins (a corner and the opposite corner mirrored); swaps among
    twins are not claimed."""
    moved = [m for m in matches if m.mine != m.theirs]
    if not moved:
        return False
    n = min(sim.shape)
    kept = float(np.mean([sim[k, k] for k in range(n)]))
    found = float(np.mean([m.similarity for m in matches]))
    sure = all(m.margin >= _PERM_MARGIN or m.similarity >= _EXACT_SIM for m in moved)
    return found - kept > _PERM_GAIN and sure


def per_dim_stats(mine: np.ndarray, theirs: np.ndarray
                  ) -> tuple[float | None, tuple[float, float, float] | None]:
    """(median per-dimension Pearson r, global ``(a, b, R^2)`` of ``theirs ~ a * mine + b``).

    ``mine``/``theirs``: ``[N, D]`` aligned rows.  ``None`` with fewer than
    :data:`MIN_ROWS_PER_DIM` rows (correlation), or fewer than 2 (fit).
    Dimensions constant on either side are left out of the median.
    """
    corr = None
    if len(mine) >= MIN_ROWS_PER_DIM:
        mc, tc = mine - mine.mean(axis=0), theirs - theirs.mean(axis=0)
        den = np.linalg.norm(mc, axis=0) * np.linalg.norm(tc, axis=0)
        ok = den > 1e-12 * max(1.0, float(den.max(initial=0.0)))
        if ok.any():
            corr = float(np.median(np.sum(mc * tc, axis=0)[ok] / den[ok]))
    fit = None
    if len(mine) >= 2:  # closed-form least squares: no [N * D, 2] design matrix
        x, y = mine.ravel(), theirs.ravel()
        xc, yc = x - x.mean(dtype=np.float64), y - y.mean(dtype=np.float64)
        sxx, syy, sxy = float(xc @ xc), float(yc @ yc), float(xc @ yc)
        a = sxy / sxx if sxx > 0 else 0.0
        b = float(y.mean(dtype=np.float64)) - a * float(x.mean(dtype=np.float64))
        r2 = sxy * sxy / (sxx * syy) if sxx > 0 and syy > 0 else (1.0 if syy == 0 else 0.0)
        fit = (float(a), b, r2)
    return corr, fit


# --------------------------------------------------------------------------- T rules


def _fps_of(record: FeatureRecord) -> tuple[float | None, float | None]:
    """(source fps, rate the snippets were sampled at) from the sidecar.

    vadfeat's sidecar ``fps`` is the rate the frames were sampled at (``--fps``, or
    the video's own) and ``native_fps`` the video's; ``num_frames`` counts decoded
    source frames.
    """
    native = record.metadata.get("native_fps")
    try:
        native = float(native) if native is not None else None
    except (TypeError, ValueError):
        native = None
    return native or record.fps, record.fps


def _recorded_rate(record: FeatureRecord) -> float | None:
    """The rate a sidecar records the snippets were sampled at, when its snippets give
    every row a frame range (``None`` without a sidecar, or for resampled files)."""
    if record.sidecar is None or not record.fps or not record.snippets:
        return None
    if len(record.snippets) < record.shape[0] or any(a < 0 for a, _ in record.snippets):
        return None
    return float(record.fps)


def _recorded_time_pairs(mine: FeatureRecord, theirs: FeatureRecord, t_mine: int, t_theirs: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(my rows, theirs rows) whose recorded snippet centres are closest in time.

    Both sidecars' ``snippets`` (decoded source frames) over their source rates: the
    times are recorded, not guessed.  Pairs further apart than half my snippet are
    dropped (a tolerance of 1e-9 s keeps exact halves).
    """
    (src_m, _), (src_t, _) = _fps_of(mine), _fps_of(theirs)
    empty = np.zeros(0, dtype=np.int64)
    if not src_m or not src_t:
        return empty, empty
    sm = np.asarray(mine.snippets[:t_mine], dtype=np.float64)
    st = np.asarray(theirs.snippets[:t_theirs], dtype=np.float64)
    mine_t = (sm[:, 0] + sm[:, 1] + 1) / 2 / src_m
    theirs_t = (st[:, 0] + st[:, 1] + 1) / 2 / src_t
    half = (sm[:, 1] - sm[:, 0] + 1) / src_m / 2
    j = np.abs(theirs_t[:, None] - mine_t[None, :]).argmin(axis=1)
    keep = np.abs(mine_t[j] - theirs_t) <= half[j] + 1e-9
    return j[keep], np.arange(t_theirs)[keep]


def _fps_candidates(record: FeatureRecord, t_theirs: int, clip_len: int) -> list[float]:
    """Common rates at which my video would give theirs' T (needs my frame count and fps).

    Theirs is assumed to use my tail rule (floor for ``drop``, ceil for ``pad``;
    either when my sidecar does not say).
    """
    n, (src, rate) = record.num_frames, _fps_of(record)
    if not n or not src or not rate:
        return []
    tail = record.settings.get("tail")
    out = []
    for f in COMMON_FPS:
        if abs(f - rate) < 0.5:
            continue
        frames = n * f / src
        lo, hi = math.floor(frames / clip_len), math.ceil(frames / clip_len)
        allowed = {lo} if tail == "drop" else {hi} if tail == "pad" else {lo, hi}
        if t_theirs in allowed:
            out.append(f)
    return out


def _ratio_fps(t_mine: int, t_theirs: int) -> list[tuple[float, float]]:
    """(my rate, theirs) pairs of common rates whose ratio gives theirs' T within a row."""
    if min(t_mine, t_theirs) < MIN_T_FOR_RATIO:
        return []
    pairs = []
    for f_m in (24.0, 25.0, 30.0):
        for f in COMMON_FPS:
            if abs(f - f_m) > 0.5 and abs(t_mine * f / f_m - t_theirs) <= 1:
                pairs.append((f_m, f))
    return pairs


def _stride_ratio(t_mine: int, t_theirs: int) -> int | None:
    lo, hi = sorted((t_mine, t_theirs))
    if lo < 2:
        return None
    for k in STRIDE_RATIOS:
        if abs(lo * k - hi) <= k:
            return k if t_theirs > t_mine else -k
    return None


def _time_pairs(record: FeatureRecord, t_mine: int, t_theirs: int, rate_theirs: float,
                clip_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(my rows, theirs rows) whose snippet centres are closest in time if theirs was sampled
    at ``rate_theirs`` from frame 0 (pairs further apart than half my snippet are dropped)."""
    src, rate = _fps_of(record)
    empty = np.zeros(0, dtype=np.int64)
    snippets = record.snippets[:t_mine]
    if not src or not rate or len(snippets) < t_mine or any(a < 0 for a, _ in snippets):
        return empty, empty
    mine_t = np.array([(a + b + 1) / 2 for a, b in snippets]) / src
    theirs_t = (np.arange(t_theirs) * clip_len + clip_len / 2) / rate_theirs
    j = np.abs(theirs_t[:, None] - mine_t[None, :]).argmin(axis=1)
    keep = np.abs(mine_t[j] - theirs_t) <= clip_len / rate / 2
    return j[keep], np.arange(t_theirs)[keep]


def _centred_score(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return _cos(a - a.mean(axis=0), b - b.mean(axis=0))


def explain_length(record: FeatureRecord, t_mine: int, t_theirs: int, offset: int,
                   score: float | None, fps_used: Sequence[float] = (), *,
                   recorded: tuple[float, float] | None = None) -> tuple[str, str, list[Diagnosis]]:
    """(rule, note, diagnoses) for the difference between my T and theirs.

    Rules: ``same``, ``offset`` (the shift accounts for it), ``tail``, ``fps``,
    ``stride``, ``unexplained``.  ``fps_used``: the rates at which theirs' rows
    were found to line up with mine in time (:func:`compare_video`).
    ``recorded``: (my rate, theirs) as both sidecars record them; recorded rates
    beat guesses: when they differ that is the diagnosis (even for the same T), and
    when they agree no other frame rate is guessed.  See the module docstring for
    the tests.
    """
    dt = t_theirs - t_mine
    if recorded is not None and abs(recorded[0] - recorded[1]) > 1e-6:
        src = _fps_of(record)[0]
        msg = (f"frame rate: the sidecars record mine at {recorded[0]:g} fps, theirs at "
               f"{recorded[1]:g} fps ({record.num_frames} frames at {src:g} fps): {t_mine} against "
               f"{t_theirs} snippets, rows paired by their recorded snippet times"
               + (f" (score {score:.3f})" if score is not None else ""))
        return ("fps" if dt else "same"), msg, [Diagnosis("fps", msg)]
    if dt == 0:
        return "same", "same number of snippets", []
    if fps_used:
        src, rate = _fps_of(record)
        rates = ", ".join(f"{f:g}" for f in fps_used)
        msg = (f"frame rate: theirs' rows line up with mine in time at {rates} fps (score "
               f"{score:.3f}), which gives {t_theirs} snippets for {record.num_frames} frames at "
               f"{src:g} fps (mine: {rate:g} fps)")
        return "fps", msg, [Diagnosis("fps", msg)]
    if offset != 0 and dt == -offset:
        where = "first" if offset > 0 else "extra leading"
        return "offset", f"the {abs(offset)} {where} row(s) explain the difference", []
    clip = int(record.settings.get("clip_len") or 16)
    n = record.num_frames
    src, rate = _fps_of(record)
    if n is not None and src and rate and abs(rate - src) > 1e-6:
        n = int(n * rate / src)  # frames sampled at the run's rate
    tail_ok = abs(dt) == 1 and offset == 0 and (n is None or n % clip != 0)
    rows_match = score is not None and score >= _TAIL_MATCH
    # Both sidecars record the same rate: a frame rate is not guessed.
    fps = [] if recorded is not None else _fps_candidates(record, t_theirs, clip)
    ratio_fps = [] if fps or record.num_frames or recorded is not None else _ratio_fps(t_mine, t_theirs)
    stride = _stride_ratio(t_mine, t_theirs)
    if tail_ok and (rows_match or not (fps or ratio_fps)):
        rule = ("ceil (a padded or partial last snippet)" if dt > 0
                else "floor (the partial last snippet dropped)")
        known = (f"{n} frames are not a multiple of {clip}" if n is not None
                 else "mine has no frame count to confirm it")
        msg = f"tail rule: theirs uses {rule}; {known}"
        if not rows_match:
            msg += " (the shared rows do not match closely, so other differences remain)"
        return "tail", msg, [Diagnosis("tail", msg)]
    if fps:
        rates = ", ".join(f"{f:g}" for f in fps)
        msg = (f"frame rate: {t_theirs} snippets is what {rates} fps gives for {record.num_frames} "
               f"frames at {src:g} fps (mine: {rate:g} fps)")
        return "fps", msg, [Diagnosis("fps", msg)]
    if ratio_fps:
        rates = ", ".join(f"{b:g}/{a:g}" for a, b in ratio_fps)
        msg = f"T ratio {t_theirs / t_mine:.3f} is close to a frame-rate ratio ({rates})"
        if stride is not None:
            msg += f" or a stride ratio of {abs(stride)}"
        return "fps", msg, [Diagnosis("fps", msg)]
    if stride is not None:
        denser = "theirs" if stride > 0 else "mine"
        msg = (f"stride: {denser} has about {abs(stride)}x the snippets (overlapping snippets, "
               "or frames skipped)")
        return "stride", msg, [Diagnosis("stride", msg)]
    if tail_ok:  # consistent with a tail rule by counts; a frame-rate change also fits
        msg = (f"T differs by {dt:+d}: a tail rule or a frame rate "
               f"({', '.join(f'{f:g}' for f in fps or [])})")
        return "tail", msg, [Diagnosis("tail", msg)]
    msg = f"T differs by {dt:+d} ({t_mine} vs {t_theirs}) without a recognised rule"
    return "unexplained", msg, [Diagnosis("length", msg)]


# --------------------------------------------------------------------------- one video


def compare_video(name: str, mine_rec: FeatureRecord, theirs_rec: FeatureRecord, mine_arr: np.ndarray,
                  theirs_arr: np.ndarray, *, window: int = 4) -> VideoComparison:
    """Compare one video's arrays (any ``[T, ..., D]`` shapes); see the module docstring."""
    m, t = _as_tcd(mine_arr), _as_tcd(theirs_arr)
    (tm, cm, dm), (tt, ct, dt) = m.shape, t.shape
    diagnoses: list[Diagnosis] = []
    stats: dict[str, Any] = dict(alignment_score=None, cosine=None, cosine_min=None, rel_l2=None,
                                 max_abs_diff=None, snippet_cosine=(), snippet_rel_l2=(), crop_matches=(),
                                 dim_correlation=None, affine=None, crop_similarity=None, rows_mine=(),
                                 rows_theirs=(), time_map="offset")
    offset, overlap = 0, min(tm, tt)
    if cm != ct:
        diagnoses.append(Diagnosis("crop-count", f"crops differ: mine {cm}, theirs {ct}"))
    if dm != dt:
        diagnoses.append(Diagnosis("dim-mismatch", f"feature dims differ: mine {dm}, theirs {dt} "
                                   "(another backbone, layer or pooling); values not compared"))
        rates = (_recorded_rate(mine_rec), _recorded_rate(theirs_rec))
        rule, note, t_diag = explain_length(mine_rec, tm, tt, 0, None, recorded=(
            (rates[0], rates[1]) if rates[0] is not None and rates[1] is not None else None))
        diagnoses.extend(t_diag)
        return _video(name, mine_rec, theirs_rec, mine_arr, theirs_arr, m, t, rule, note, offset, overlap,
                      diagnoses, "not comparable", stats)
    names = mine_rec.crop_order if mine_rec.crop_order and len(mine_rec.crop_order) == cm else None
    theirs_order = theirs_rec.crop_order
    theirs_names = theirs_order if theirs_order and len(theirs_order) == ct else None
    stats.update(crop_names_mine=tuple(names) if names else None,
                 crop_names_theirs=tuple(theirs_names) if theirs_names else None)
    pairs = [(0, 0)]
    if cm > 1 or ct > 1:
        sim = crop_similarity(m, t)
        matches = _crop_matches(sim, names)
        stats.update(crop_similarity=sim, crop_matches=matches)
        if cm != ct:
            diagnoses.append(Diagnosis("crop-count", "theirs' crops are mine: " + _crop_text(matches)))
            pairs = [(mt.mine, mt.theirs) for mt in matches]
        elif _is_permutation(matches, sim):
            diagnoses.append(Diagnosis("crop-permutation", "crop order differs: " + _crop_text(
                [mt for mt in matches if mt.mine != mt.theirs])))
            pairs = [(mt.mine, mt.theirs) for mt in matches]
        else:
            pairs = [(k, k) for k in range(cm)]
    m_sel, t_sel = m[:, [p[0] for p in pairs]], t[:, [p[1] for p in pairs]]
    offset, overlap, score = best_offset(m_sel, t_sel, window=window)
    j0, i0, overlap = _windows(tm, tt, offset)
    mi, ti = np.arange(j0, j0 + overlap), np.arange(i0, i0 + overlap)
    # Another frame rate stretches time instead of shifting it: where my sidecar predicts
    # theirs' T at another common rate, rows paired by time compete with the offset.
    fps_used: list[float] = []
    rate_m, rate_t = _recorded_rate(mine_rec), _recorded_rate(theirs_rec)
    recorded = (rate_m, rate_t) if rate_m is not None and rate_t is not None else None
    if recorded is not None and abs(recorded[0] - recorded[1]) > 1e-6:
        # Both sidecars record when each row was sampled: pair them by that, never by a guess.
        pm, pt = _recorded_time_pairs(mine_rec, theirs_rec, tm, tt)
        if len(pm):
            sc = _centred_score(m_sel[pm], t_sel[pt])
            score = None if math.isnan(sc) else sc
            fps_used, mi, ti, offset = [recorded[1]], pm, pt, 0
            overlap = len(mi)
    elif tt != tm and recorded is None:
        clip = int(mine_rec.settings.get("clip_len") or 16)
        min_rows = max(2, -(-min(tm, tt) // 2))
        for f in _fps_candidates(mine_rec, tt, clip):
            pm, pt = _time_pairs(mine_rec, tm, tt, f, clip)
            if len(set(pm.tolist())) < min_rows:
                continue
            sc = _centred_score(m_sel[pm], t_sel[pt])
            if fps_used and score is not None and not math.isnan(sc) and abs(sc - score) <= 1e-9:
                fps_used.append(f)  # 29.97 and 30 pair the rows alike
            elif not math.isnan(sc) and (score is None or sc > score + 1e-9):
                score, fps_used, mi, ti, offset = sc, [f], pm, pt, 0
        overlap = len(mi)
    stats["alignment_score"] = score
    if offset:
        later = "later" if offset > 0 else "earlier"
        diagnoses.append(Diagnosis("offset", f"temporal offset: theirs row t is mine row t{offset:+d} "
                                   f"(theirs starts {abs(offset)} snippet(s) {later}; "
                                   f"alignment score {score:.3f})"))
    rule, note, t_diag = explain_length(mine_rec, tm, tt, offset, score, fps_used, recorded=recorded)
    diagnoses.extend(t_diag)
    stats["rows_mine"], stats["rows_theirs"] = tuple(mi.tolist()), tuple(ti.tolist())
    stats["time_map"] = "fps" if fps_used else "offset"
    if overlap == 0:
        return _video(name, mine_rec, theirs_rec, mine_arr, theirs_arr, m, t, rule, note, offset, overlap,
                      diagnoses, "not comparable", stats)
    am, bt = m_sel[mi], t_sel[ti]
    rows_cos = _row_cos(am, bt).mean(axis=1)
    norms = np.linalg.norm(am.reshape(overlap, -1), axis=1)
    diff = np.linalg.norm((bt - am).reshape(overlap, -1), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(norms > 0, diff / np.where(norms > 0, norms, 1), np.where(diff > 0, math.inf, 0.0))
    max_abs = float(np.max(np.abs(bt - am)))
    corr, fit = per_dim_stats(am.reshape(-1, dm), bt.reshape(-1, dt))
    stats.update(cosine=float(rows_cos.mean()), cosine_min=float(rows_cos.min()), rel_l2=float(rel.mean()),
                 max_abs_diff=max_abs, snippet_cosine=tuple(float(c) for c in rows_cos),
                 snippet_rel_l2=tuple(float(r) for r in rel), dim_correlation=corr, affine=fit)
    diagnoses.extend(_value_diagnoses(stats, same_shape=m.shape == t.shape and offset == 0,
                                      rows=overlap * len(pairs), rms=float(np.sqrt(np.mean(am * am)))))
    kinds = {d.kind for d in diagnoses}
    if kinds == {"identical"}:
        verdict = "identical"
    elif kinds == {"equal"}:
        verdict = "equal within tolerance"
    elif kinds & {"identical", "equal"}:
        verdict = "same values on the matched rows and crops"
    else:
        verdict = "different values"
    return _video(name, mine_rec, theirs_rec, mine_arr, theirs_arr, m, t, rule, note, offset, overlap,
                  diagnoses, verdict, stats)


def _value_diagnoses(s: Mapping[str, Any], *, same_shape: bool, rows: int, rms: float = 1.0
                     ) -> list[Diagnosis]:
    cos, rel, max_abs = s["cosine"], s["rel_l2"], s["max_abs_diff"]
    corr, fit = s["dim_correlation"], s["affine"]
    if max_abs == 0:
        what = "identical values" if same_shape else "identical values on the aligned rows"
        return [Diagnosis("identical", f"{what} (largest difference 0)")]
    if rel < _EQUAL_REL_L2 and cos > _EQUAL_COS:
        return [Diagnosis("equal", f"equal within float tolerance (rel L2 {rel:.1e}, largest "
                          f"difference {max_abs:.2e})")]
    # a ~ 1 and b ~ 0 is no rescale: near-equal values (another frame rate, decoder) fit it too.
    identity = fit is not None and abs(fit[0] - 1) <= _IDENTITY_TOL and abs(fit[1]) <= _IDENTITY_TOL * rms
    if fit is not None and fit[2] > _LINEAR_R2 and not identity:
        return [Diagnosis("linear-rescale", f"theirs = {fit[0]:.4g} * mine + {fit[1]:.4g} "
                          f"(R^2 {fit[2]:.5f}): the features themselves were rescaled")]
    if corr is None:
        if cos < _PREPROC_COS:
            return [Diagnosis("different", f"values differ (cos {cos:.3f}); {rows} aligned rows are too "
                              f"few (< {MIN_ROWS_PER_DIM}) to tell preprocessing from another model")]
        return [Diagnosis("different", f"values differ slightly (cos {cos:.4f}, rel L2 {rel:.3f})")]
    if cos >= _PREPROC_COS:
        return [Diagnosis("different", f"values differ slightly (cos {cos:.4f}, rel L2 {rel:.3f}, median r "
                          f"{corr:.2f}): decoded frames, resize kernel, numeric precision, or snippets "
                          "of slightly different frames")]
    r2 = fit[2] if fit is not None else math.nan
    if corr ** 2 > _LINEAR_R2:
        return [Diagnosis("per-dim-affine", f"each dimension is an affine function of mine (median r "
                          f"{corr:.5f}) but not one common map (R^2 {r2:.3f}): features standardised "
                          "or rescaled per dimension")]
    if corr >= _PREPROC_CORR and cos < _PREPROC_COS:
        return [Diagnosis("preprocessing", f"dimensions co-vary (median r {corr:.2f}) but vectors differ "
                          f"(cos {cos:.3f}, affine R^2 {r2:.2f}): same frames and network, different "
                          "input pixels (scaling, mean/std, channel order or resize)")]
    if corr < _UNRELATED_CORR and cos < _PREPROC_COS:
        return [Diagnosis("unrelated", f"dimensions do not co-vary (median r {corr:.2f}, cos {cos:.3f}): "
                          "another backbone, checkpoint or layer, or other videos")]
    return [Diagnosis("different", f"values differ (cos {cos:.4f}, rel L2 {rel:.3f}, median r {corr:.2f})")]


def _video(name: str, mine_rec: FeatureRecord, theirs_rec: FeatureRecord, mine_arr: np.ndarray,
           theirs_arr: np.ndarray, m: np.ndarray, t: np.ndarray, rule: str, note: str, offset: int,
           overlap: int, diagnoses: list[Diagnosis], verdict: str, stats: dict[str, Any]) -> VideoComparison:
    return VideoComparison(
        name=name, mine_name=mine_rec.name, theirs_name=theirs_rec.name,
        mine_shape=tuple(mine_arr.shape), theirs_shape=tuple(theirs_arr.shape),
        num_frames=mine_rec.num_frames, t_mine=m.shape[0], t_theirs=t.shape[0], t_rule=rule, t_note=note,
        offset=offset, overlap=overlap, crops_mine=m.shape[1], crops_theirs=t.shape[1], dim_mine=m.shape[2],
        dim_theirs=t.shape[2], diagnoses=tuple(diagnoses), verdict=verdict, **stats)


# --------------------------------------------------------------------------- inputs


def _file_set(path: Path, clip_len: int) -> FeatureSet:
    side = path.with_suffix(".json")
    warnings: list[str] = []
    try:
        rec = _make_record(name=path.stem, layout="flat", root=path.parent, paths=[path],
                           sidecar=side if side.is_file() else None, clip_len=clip_len,
                           warnings=warnings, vadfeat_output=False)
    except (*NPY_ERRORS, TypeError, KeyError, IndexError) as exc:
        return FeatureSet(root=path.parent, layout="flat", records=(),
                          issues=(FeatureIssue(path.stem, f"unreadable features: {exc}"),))
    return FeatureSet(root=path.parent, layout="flat", records=(rec,), warnings=tuple(warnings))


def _open(path: str | os.PathLike[str] | FeatureSet, layout: LayoutOrAuto, clip_len: int,
          what: str) -> FeatureSet:
    if isinstance(path, FeatureSet):
        return path
    p = Path(path)
    if p.is_file():
        if p.suffix != ".npy":
            raise ConfigError(f"{what} {p} is a file but not a .npy feature file")
        return _file_set(p, clip_len)
    if not p.exists():
        raise ConfigError(f"{what} {p} does not exist")
    # Published features have no sidecars: the reader's warning about that is expected
    # here, and what it costs is said once in CompareResult.cannot_diagnose.
    reader_log = logging.getLogger("vadfeat.store.reader")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    try:
        return read_features(p, layout=layout, clip_len=clip_len)
    finally:
        reader_log.setLevel(level)


def feature_key(name: str) -> str:
    """:func:`video_key` without a feature-file suffix (``Abuse028_x264_i3d`` -> ``Abuse028_x264``).

    Released feature sets name files after the video plus what they hold
    (RTFM's UCF-Crime: ``<video>_i3d.npy``; XD-Violence's audio: ``<video>__vggish.npy``);
    the suffixes removed are :data:`_FEATURE_SUFFIX`.
    """
    key = video_key(name)
    return _FEATURE_SUFFIX.sub("", key) or key


_SHORT_CROP = re.compile(r"^(?P<stem>.+)_(?P<k>\d)$")


def _regroup_short_crops(fs: FeatureSet, other: FeatureSet | Sequence[str], clip_len: int) -> FeatureSet:
    """``<stem>_0.npy ... <stem>_<n-1>.npy`` without sidecars as one per-crop video.

    The reader takes ``<stem>_<k>.npy`` for a crop only beside a ``<stem>.json``
    (PEL4VAD's ShanghaiTech naming, as :mod:`vadfeat.dataset.export` writes it), so
    that a flat file whose name ends in ``_<digit>`` is never cut.  Released folders
    in that naming have no sidecars; here the files are grouped when the other side
    has a video of that stem, the stem is not itself a file, and the crops are
    ``0 .. n-1`` (``n >= 2``).
    """
    if fs.layout != "flat":
        return fs
    names = {r.name for r in fs}
    other_names = other.names() if isinstance(other, FeatureSet) else other
    wanted = {k for n in other_names for k in (video_key(n), feature_key(n))}
    groups: dict[str, dict[int, FeatureRecord]] = {}
    for r in fs:
        m = _SHORT_CROP.match(r.name)
        if m and r.sidecar is None and m["stem"] not in names and (
                video_key(m["stem"]) in wanted or feature_key(m["stem"]) in wanted):
            groups.setdefault(m["stem"], {})[int(m["k"])] = r
    groups = {stem: g for stem, g in groups.items() if len(g) >= 2 and sorted(g) == list(range(len(g)))}
    if not groups:
        return fs
    grouped = {r.name for g in groups.values() for r in g.values()}
    records = [r for r in fs if r.name not in grouped]
    issues = list(fs.issues)
    for stem, g in groups.items():
        try:
            records.append(_make_record(name=stem, layout="per-crop", root=fs.root,
                                        paths=[g[k].paths[0] for k in sorted(g)], sidecar=None,
                                        clip_len=clip_len, warnings=[], vadfeat_output=False))
        except (*NPY_ERRORS, TypeError, KeyError, IndexError) as exc:
            issues.append(FeatureIssue(stem, f"unreadable features: {exc}"))
    return FeatureSet(root=fs.root, layout=fs.layout, records=tuple(sorted(records, key=lambda r: r.name)),
                      issues=tuple(issues), warnings=fs.warnings)


def match_names(mine: Sequence[str], theirs: Sequence[str]
                ) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """``([(my name, theirs name)], only mine, only theirs)``: names matched as :func:`compare`
    matches videos: by relative name, then by a unique :func:`video_key`, then by a unique
    :func:`feature_key` (``Abuse028_x264.mp4`` finds ``Abuse028_x264_i3d``)."""
    theirs_set = set(theirs)
    keyed = [(_unique_names(mine, k), _unique_names(theirs, k)) for k in (video_key, feature_key)]
    used: set[str] = set()
    pairs, only_mine = [], []
    for name in mine:
        other = name if name in theirs_set else None
        for key, (mine_k, theirs_k) in zip((video_key, feature_key), keyed, strict=True):
            k = key(name)
            if other is None and mine_k.get(k) == name and k in theirs_k and theirs_k[k] not in used:
                other = theirs_k[k]
        if other is None or other in used:
            only_mine.append(name)
            continue
        used.add(other)
        pairs.append((name, other))
    return pairs, only_mine, [n for n in theirs if n not in used]


def _unique_names(names: Sequence[str], key: Callable[[str], str]) -> dict[str, str]:
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(key(n), []).append(n)
    return {k: v[0] for k, v in groups.items() if len(v) == 1}


def _pair(mine: FeatureSet, theirs: FeatureSet) -> tuple[list[tuple[str, FeatureRecord, FeatureRecord]],
                                                          list[str], list[str]]:
    """Matched (name, mine, theirs) records (:func:`match_names`)."""
    mine_by, theirs_by = mine.by_name(), theirs.by_name()
    pairs, only_mine, only_theirs = match_names(mine.names(), theirs.names())
    return [(m, mine_by[m], theirs_by[t]) for m, t in pairs], only_mine, only_theirs


# --------------------------------------------------------------------------- overall


def recorded_settings(record: FeatureRecord) -> dict[str, Any]:
    """The settings a vadfeat sidecar records, as one flat ``{name: value}``.

    The fingerprint's fields (what decides whether outputs resume; the preset's fields
    flattened in, its name as ``preset``), the fingerprint's requested rate as
    ``--fps`` (``None``: the video's own), and the rate the snippets were really
    sampled at as ``fps``.  Sidecars without a fingerprint give their ``settings``
    and the model's name.
    """
    out: dict[str, Any] = {}
    fp = record.metadata.get("fingerprint")

    def put(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                put(f"{key}.{k}", v)
        else:
            out[key] = value

    if isinstance(fp, Mapping):
        for key, value in fp.items():
            if key == "preset" and isinstance(value, Mapping):
                for k, v in value.items():
                    put("preset" if k == "name" else k, v)
            else:
                put("--fps" if key == "fps" else key, value)
    else:
        for k, v in record.settings.items():
            put("preset" if k == "name" else k, v)
        model = record.metadata.get("model")
        if isinstance(model, Mapping):
            out["model"] = model.get("name")
    out["fps"] = record.fps
    return out


def _settings_diff(videos: Sequence[VideoComparison], mine: FeatureSet, theirs: FeatureSet) -> str:
    """``key: mine -> theirs`` for every recorded setting that differs in any matched pair with
    sidecars on both sides; a difference found in only some pairs says in how many."""
    mine_by, theirs_by = mine.by_name(), theirs.by_name()
    found: dict[str, Counter[tuple[str, str]]] = {}
    pairs = 0
    for v in videos:
        a, b = mine_by.get(v.mine_name), theirs_by.get(v.theirs_name)
        if a is None or b is None or a.sidecar is None or b.sidecar is None:
            continue
        pairs += 1
        left, right = recorded_settings(a), recorded_settings(b)
        for k in dict.fromkeys([*left, *right]):
            if left.get(k) != right.get(k):
                found.setdefault(k, Counter())[(repr(left.get(k)), repr(right.get(k)))] += 1
    parts = []
    for k, counts in found.items():
        shown = [f"{a} -> {b}" + (f" (in {n} of {pairs} videos)" if n < pairs else "")
                 for (a, b), n in counts.most_common(3)]
        more = f", and {len(counts) - 3} other pairs of values" if len(counts) > 3 else ""
        parts.append(f"{k}: {', '.join(shown)}{more}")
    return "; ".join(parts)

def _overall(videos: Sequence[VideoComparison], mine: FeatureSet, theirs: FeatureSet,
             only_mine: Sequence[str], only_theirs: Sequence[str]
             ) -> tuple[list[Diagnosis], str, list[str], tuple[CropMatch, ...], tuple[int, ...]]:
    out: list[Diagnosis] = []
    cannot: list[str] = []
    if not any(r.sidecar for r in mine):
        cannot.append("mine has no sidecars: frame counts, frame rates and crop names are unknown; "
                      "a T difference of one row cannot be told apart from a frame-rate change, "
                      "crops are named by index")
    elif not any(r.num_frames for r in mine):
        cannot.append("mine's sidecars have no frame counts: tail rule and frame rate are told apart "
                      "only by how well the rows match")
    diff = _settings_diff(videos, mine, theirs)
    if diff:
        out.append(Diagnosis("settings", "sidecars record different settings: " + diff))
    if only_mine or only_theirs:
        out.append(Diagnosis("names", f"{len(videos)} videos in both, {len(only_mine)} only in mine, "
                             f"{len(only_theirs)} only in theirs"))
    n = len(videos)
    if not n:
        return out, "no video in both", cannot, (), ()
    counts = Counter(k for v in videos for k in dict.fromkeys(v.kinds()))
    matches: tuple[CropMatch, ...] = ()
    pooled_order = ""
    sims = [v.crop_similarity for v in videos if v.crop_similarity is not None]
    shapes = {s.shape for s in sims}
    if sims and len(shapes) == 1:
        weights = [v.t_mine for v in videos if v.crop_similarity is not None]
        pooled = np.average(np.stack(sims), axis=0, weights=weights) if sum(weights) else np.mean(sims, 0)
        first = next(v for v in videos if v.crop_similarity is not None)
        names = (first.crop_matches and first.crop_matches[0].mine_name is not None) and next(
            (r.crop_order for r in mine if r.crop_order), None)
        matches = _crop_matches(pooled, names or None)
        if pooled.shape[0] == pooled.shape[1] and _is_permutation(matches, pooled):
            pooled_order = "pooled over videos, crop order differs: " + _crop_text(
                [m for m in matches if m.mine != m.theirs])
    for kind, count in counts.most_common():
        if kind == "crop-permutation" and pooled_order:
            # The permutation once, pooled; the videos' own are the same or listed per video.
            out.append(Diagnosis(kind, f"{kind} in {count}/{n} videos; {pooled_order}"))
            continue
        example = next(d for v in videos for d in v.diagnoses if d.kind == kind)
        out.append(Diagnosis(kind, f"{kind} in {count}/{n} videos, e.g. {example.message}"))
    if pooled_order and "crop-permutation" not in counts:
        out.append(Diagnosis("crop-permutation", pooled_order))
    main = [k for k, _ in counts.most_common() if k not in ("identical", "equal")]
    shared = " on the shared videos" if only_mine or only_theirs else ""
    if all(v.verdict == "identical" for v in videos):
        verdict = "identical" + shared
    elif all(v.verdict == "equal within tolerance" for v in videos):
        verdict = "equal within tolerance" + shared
    elif all(v.verdict != "different values" and v.verdict != "not comparable" for v in videos):
        verdict = f"same values{shared}, arranged differently: {', '.join(main)}"
    else:
        cos = [v.cosine for v in videos if v.cosine is not None]
        bad = sum(v.verdict in ("different values", "not comparable") for v in videos)
        verdict = (f"values differ in {bad}/{n} videos"
                   + (f" (mean cosine {np.mean(cos):.4f})" if cos else "")
                   + (f": {', '.join(main)}" if main else ""))
    permutation = tuple(m.mine for m in matches) if pooled_order else ()
    return out, verdict, cannot, matches, permutation


# --------------------------------------------------------------------------- report


def comparison_figure(v: VideoComparison, *, dpi: int = 100) -> Figure:
    """One video's picture, not yet saved: per-snippet cosine and relative L2 and, with
    more than one crop, the crop similarity matrix labelled with the crops' names (from
    each side's sidecar ``crop_order``; by index without one), matches marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heat = v.crop_similarity is not None and v.crop_similarity.size > 1
    fig = Figure(figsize=(12 if heat else 9, 4.4), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if heat else 1, squeeze=False)[0]
    ax = axes[0]
    rows = np.asarray(v.rows_mine[:len(v.snippet_cosine)])
    if rows.size:
        ax.plot(rows, v.snippet_cosine, "o-", color="tab:blue", lw=1.2, ms=3, label="cosine")
        ax.plot(rows, v.snippet_rel_l2, "s-", color="tab:orange", lw=1.2, ms=3, label="relative L2")
    ax.set_xlabel(f"my snippet (theirs row + {v.offset})" if v.offset else "my snippet")
    ax.set_ylabel("theirs vs mine")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize="x-small", frameon=False)
    if heat and v.crop_similarity is not None:
        sim = v.crop_similarity
        im = axes[1].imshow(sim, cmap="viridis", aspect="auto")
        mine_names = v.crop_names_mine or tuple(str(k) for k in range(sim.shape[0]))
        theirs_names = v.crop_names_theirs or tuple(str(k) for k in range(sim.shape[1]))
        axes[1].set_yticks(range(sim.shape[0]), labels=list(mine_names), fontsize="x-small")
        axes[1].set_xticks(range(sim.shape[1]), labels=list(theirs_names), fontsize="x-small",
                           rotation=45, ha="right", rotation_mode="anchor")
        axes[1].set_xlabel("theirs crop" + ("" if v.crop_names_theirs else " (index: no sidecar)"))
        axes[1].set_ylabel("my crop")
        for mt in v.crop_matches:
            axes[1].plot(mt.theirs, mt.mine, "rx", ms=8)
        close = v.crop_margin
        if close is not None:
            axes[1].set_title(f"x: match; runner-up margin {close.margin:.3f} (theirs "
                              f"{theirs_names[close.theirs]})", fontsize="small")
        fig.colorbar(im, ax=axes[1], label="cosine of time-averaged crops")
    where = "rows paired by time" if v.time_map == "fps" else f"offset {v.offset:+d}"
    fig.suptitle(valid_utf8(f"{v.name}: {v.verdict}; T {v.t_mine}/{v.t_theirs}, {where}"),
                 fontsize="small")  # matplotlib cannot draw the lone surrogates of non-UTF-8 names
    return fig


def _plot(v: VideoComparison, png: Path, *, dpi: int = 100) -> None:
    fig = comparison_figure(v, dpi=dpi)
    png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def _fmt(value: Any, spec: str = ".4f") -> str:
    if value is None:
        return "&ndash;"
    return html.escape(format(value, spec) if isinstance(value, float) else str(value))


def _diagnoses_cell(v: VideoComparison, permutation: Sequence[int]) -> str:
    """The video's findings; a crop permutation equal to the pooled one (shown above the
    table) is not written out again."""
    same = bool(permutation) and [m.mine for m in v.crop_matches] == list(permutation)
    lines = ["crop order differs: same crop order as above" if same and d.kind == "crop-permutation"
             else d.message for d in v.diagnoses]
    return "<br>".join(html.escape(line) for line in lines)


def _index_html(result: CompareResult, out: Path, plots_note: str | None = None,
                sides: tuple[ExtractionInfo, ExtractionInfo] | None = None, preamble: str = "") -> str:
    head = ("<tr><th>video</th><th>verdict</th><th>T mine/theirs</th><th>T rule</th><th>offset</th>"
            "<th>crops mine/theirs</th><th>dim</th><th>cosine</th><th>min cosine</th><th>rel L2</th>"
            "<th>max |diff|</th><th>median r</th><th>diagnoses</th></tr>")
    rows, sections = [], []
    for i, v in enumerate(result.videos):
        anchor = f"v{i}"
        close = v.crop_margin
        crops = f"{v.crops_mine}/{v.crops_theirs}"
        if close is not None:
            crops += f"<br><small>runner-up margin {close.margin:.3f}</small>"
        rows.append(
            f'<tr><td><a href="#{anchor}">{html.escape(v.name)}</a></td><td>{html.escape(v.verdict)}</td>'
            f"<td>{v.t_mine}/{v.t_theirs}</td><td>{html.escape(v.t_rule)}</td>"
            f"<td>{'by time' if v.time_map == 'fps' else format(v.offset, '+d')}</td>"
            f"<td>{crops}</td><td>{v.dim_mine}/{v.dim_theirs}</td>"
            f"<td>{_fmt(v.cosine)}</td><td>{_fmt(v.cosine_min)}</td><td>{_fmt(v.rel_l2)}</td>"
            f"<td>{_fmt(v.max_abs_diff, '.3g')}</td><td>{_fmt(v.dim_correlation, '.3f')}</td>"
            f"<td style=\"text-align:left\">{_diagnoses_cell(v, result.crop_permutation)}</td></tr>")
        if v.png is not None:
            src = urllib.parse.quote(os.fsencode(v.png.relative_to(out).as_posix()))
            sections.append(f'<section id="{anchor}"><h2>{html.escape(v.name)}</h2>'
                            f'<img src="{src}" alt="{html.escape(v.name)}" loading="lazy"></section>')
    lists = "".join(f"<p>only in {who}: {html.escape(', '.join(names))}</p>"
                    for who, names in (("mine", result.only_mine), ("theirs", result.only_theirs)) if names)
    overall = "".join(f"<li>{html.escape(d.message)}</li>" for d in result.overall)
    cannot = "".join(f"<li>{html.escape(c)}</li>" for c in result.cannot_diagnose)
    issues = "".join(f"<li>{html.escape(str(i))}</li>" for i in result.issues)
    title = "vadfeat compare"
    if plots_note is None:
        drawn = sum(v.png is not None for v in result.videos)
        plots_note = f"{drawn} of {len(result.videos)} videos drawn."
    compared: list[str] = []
    warned, made = "", ""
    for who, root, info in (("mine", result.mine, sides[0] if sides else None),
                            ("theirs", result.theirs, sides[1] if sides else None)):
        what = f" ({html.escape(info.short())})" if info is not None else ""
        compared.append(f"{who} <code>{html.escape(str(root))}</code>{what}")
        if info is not None:
            made += f"<h3>{who}</h3>{info_html(info)}"
    if sides is not None:
        warned = warning_html(list(zip(("mine", "theirs"), sides, strict=True)))
    n = len(result.videos)
    return valid_utf8(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}: {html.escape(str(result.mine))} vs "
        f"{html.escape(str(result.theirs))}</title><style>{PAGE_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p><b>Compared:</b> {'<br>against '.join(compared)}<br>"
        f"{n} videos in both, {len(result.only_mine)} only in mine, {len(result.only_theirs)} "
        f"only in theirs.</p>{warned}"
        f'{preamble}<p class="verdict"><b>Verdict: {html.escape(result.verdict)}</b></p><ul>{overall}</ul>'
        + (f"<p>cannot be diagnosed:</p><ul>{cannot}</ul>" if cannot else "")
        + (f"<p>unreadable:</p><ul>{issues}</ul>" if issues else "")
        + f"{lists}<h2>Per video</h2><table>{head}{''.join(rows)}</table>"
        + '<p class="note">offset: theirs row t is mine row t + offset. Cosine and relative L2 '
        "(|theirs - mine| / |mine|) on the aligned rows and matched crops; median r: median over "
        "feature dimensions of the correlation across rows. Runner-up margin: for each crop of "
        "theirs, the cosine of its match minus that of the next-best crop of mine; the smallest is "
        f"shown (a moved crop is claimed only above {_PERM_MARGIN}, or as an exact copy).</p>"
        + (f"<h2>How each side was made</h2>{made}" if made else "")
        + f"<p>Plots: {html.escape(plots_note)}</p>"
        f"{''.join(sections)}</body></html>\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def report_dict(result: CompareResult) -> dict[str, Any]:
    """The JSON report (``OUT/compare.json``) as a dict."""
    return _jsonable({
        "mine": result.mine, "theirs": result.theirs, "verdict": result.verdict,
        "overall": [asdict(d) for d in result.overall], "cannot_diagnose": list(result.cannot_diagnose),
        "crop_matches": [asdict(m) for m in result.crop_matches],
        "crop_permutation": list(result.crop_permutation),
        "only_mine": list(result.only_mine), "only_theirs": list(result.only_theirs),
        "issues": [asdict(i) for i in result.issues],
        "videos": [{k: v for k, v in asdict(video).items() if k != "crop_similarity"}
                   | {"crop_similarity": video.crop_similarity} for video in result.videos],
    })


# --------------------------------------------------------------------------- entry point


def compare(
    mine: FeatureSet | str | os.PathLike[str],
    theirs: FeatureSet | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    layout: LayoutOrAuto = "auto",
    theirs_layout: LayoutOrAuto = "auto",
    window: int = 4,
    clip_len: int = 16,
    plots: int | bool | Literal["all"] = True,
    dpi: int = 100,
) -> CompareResult:
    """Compare two feature sets of the same videos (see the module docstring).

    ``mine``/``theirs``: folders (any layout; ``layout``/``theirs_layout`` as for
    :func:`read_features`), :class:`FeatureSet` s, or two ``.npy`` files (compared
    whatever their names).  ``window``: largest temporal offset tried, in snippets.
    ``clip_len``: frames per snippet assumed for files without a sidecar.  With
    ``out``: ``out/compare.json``, ``out/index.html`` and one PNG for each of the
    ``plots`` worst videos (:func:`worst_first`; ``True``: :data:`DEFAULT_PLOTS`,
    ``"all"``: every video, ``0`` or ``False``: none); index.html says how many were
    drawn and how they were chosen.  ``out`` must not be, hold or lie inside ``mine``
    or ``theirs``, and a file there that compare did not write is never replaced
    (both :class:`ConfigError`, before any work).  Differences are findings, not
    errors; a video whose files cannot be read is named in
    :attr:`CompareResult.issues` and the others go on.  Raises
    :class:`ConfigError` for a missing path, a file that is not ``.npy``, a file
    against a folder, or a bad ``window``.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ConfigError(f"window must be a non-negative number of snippets, got {window!r}")
    limit = _plot_limit(plots)
    files = [not isinstance(p, FeatureSet) and Path(p).is_file() for p in (mine, theirs)]
    if files[0] != files[1]:
        raise ConfigError("compare two folders or two .npy files, not a file against a folder")
    ms = _open(mine, layout, clip_len, "mine:")
    ts = _open(theirs, theirs_layout, clip_len, "theirs:")
    issues = [FeatureIssue(f"mine/{i.video}", i.message) for i in ms.issues]
    issues += [FeatureIssue(f"theirs/{i.video}", i.message) for i in ts.issues]
    if all(files) and len(ms) == len(ts) == 1:
        pairs = [(ms.records[0].name, ms.records[0], ts.records[0])]
        only_mine: list[str] = []
        only_theirs: list[str] = []
    else:
        ms = _regroup_short_crops(ms, ts, clip_len)
        ts = _regroup_short_crops(ts, ms, clip_len)
        pairs, only_mine, only_theirs = _pair(ms, ts)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        given = [p for p in (mine, theirs) if not isinstance(p, FeatureSet)]
        # Two .npy files: their folder is not an input (a report beside them is fine).
        roots = [] if all(files) else [ms.root, ts.root]
        refuse_overlap(out_dir, [*given, *roots], command="compare")
        # Any video may be among the worst: a foreign file at any PNG name is refused now,
        # before the work; only the PNGs drawn enter the record (below).
        pngs = [f"{name}.png" for name, _, _ in pairs] if limit != 0 else []
        claim_outputs(out_dir, ["compare.json", "index.html"], command="compare", check=pngs)
    videos: list[VideoComparison] = []
    for name, mr, tr in pairs:
        loaded = []
        for who, rec in (("mine", mr), ("theirs", tr)):
            try:
                loaded.append(rec.load())
            except (*NPY_ERRORS, TypeError) as exc:
                issues.append(FeatureIssue(f"{who}/{rec.name}", f"cannot read {rec.paths[0]}: {exc}"))
        if len(loaded) != 2:
            continue
        try:
            v = compare_video(name, mr, tr, loaded[0], loaded[1], window=window)
        except ValueError as exc:
            issues.append(FeatureIssue(name, f"cannot compare: {exc}"))
            continue
        videos.append(v)
        log.debug("%s", v.line())
    return finish_comparison(videos, pairs, ms, ts, only_mine, only_theirs, issues, out_dir, limit, dpi=dpi)


def finish_comparison(videos: Sequence[VideoComparison],
                      pairs: Sequence[tuple[str, FeatureRecord, FeatureRecord]], ms: FeatureSet,
                      ts: FeatureSet, only_mine: Sequence[str], only_theirs: Sequence[str],
                      issues: Sequence[FeatureIssue], out_dir: Path | None, limit: int | Literal["all"], *,
                      dpi: int = 100, preamble: str = "", extra: Mapping[str, Any] | None = None
                      ) -> CompareResult:
    """The overall findings of compared ``videos`` and, with ``out_dir``, the report: the
    ``limit`` worst videos drawn, ``compare.json`` (``extra``'s keys added) and ``index.html``
    (``preamble``, HTML, before the verdict).  ``out_dir`` must have been checked
    (:func:`~vadfeat.store.ownership.refuse_overlap`, ``claim_outputs``) by the caller."""
    videos = list(videos)
    plots_note = "none drawn (--plots 0)."
    if out_dir is not None and limit != 0:
        chosen = worst_first(videos)[:None if limit == "all" else limit]
        claim_outputs(out_dir, [f"{v.name}.png" for v in chosen], command="compare")
        drawn: dict[str, Path] = {}
        for v in chosen:
            drawn[v.name] = out_dir / f"{v.name}.png"
            _plot(v, drawn[v.name], dpi=dpi)
        videos = [_replace_png(v, drawn[v.name]) if v.name in drawn else v for v in videos]
        how = ("every video" if len(chosen) == len(videos) else
               f"the {len(chosen)} worst: by verdict (different values first, identical last), "
               "then by relative L2, largest first; --plots N or --plots all to draw more")
        plots_note = f"{len(chosen)} of {len(videos)} videos drawn ({how})."

    overall, verdict, cannot, matches, permutation = _overall(videos, ms, ts, only_mine, only_theirs)
    result = CompareResult(mine=ms.root, theirs=ts.root, videos=tuple(videos), only_mine=tuple(only_mine),
                           only_theirs=tuple(only_theirs), issues=tuple(issues), overall=tuple(overall),
                           verdict=verdict, cannot_diagnose=tuple(cannot), crop_matches=matches,
                           crop_permutation=permutation)
    if out_dir is None:
        return result
    report = write_json(out_dir / "compare.json", {**report_dict(result), **_jsonable(dict(extra or {}))})
    done = CompareResult(**{**result.__dict__, "out": out_dir, "report": report})
    sides = (describe_extraction([r for _, r, _ in pairs]), describe_extraction([r for _, _, r in pairs]))
    index = write_text(out_dir / "index.html", _index_html(done, out_dir, plots_note, sides, preamble))
    return CompareResult(**{**done.__dict__, "index": index})


_VERDICT_ORDER = {"identical": 3, "equal within tolerance": 2,
                  "same values on the matched rows and crops": 1}


def _plot_limit(plots: int | bool | str) -> int | Literal["all"]:
    if plots is True:
        return DEFAULT_PLOTS
    if plots is False:
        return 0
    if plots == "all":
        return "all"
    if not isinstance(plots, int) or plots < 0:
        raise ConfigError(f"plots must be a number of plots (0 or more) or 'all', got {plots!r}")
    return plots


def worst_first(videos: Sequence[VideoComparison]) -> list[VideoComparison]:
    """``videos`` from the worst match to the best.

    By verdict (``different values`` and undiagnosable ones first, ``identical``
    last), then by mean relative L2, largest first (none at all counts as largest),
    then by name.
    """
    def key(v: VideoComparison) -> tuple[int, float, str]:
        l2 = math.inf if v.rel_l2 is None or math.isnan(v.rel_l2) else v.rel_l2
        return (_VERDICT_ORDER.get(v.verdict, 0), -l2, v.name)

    return sorted(videos, key=key)


def _replace_png(v: VideoComparison, png: Path) -> VideoComparison:
    from dataclasses import replace

    return replace(v, png=png)


__all__ = ["DEFAULT_PLOTS", "CompareResult", "CropMatch", "Diagnosis", "VideoComparison", "compare",
           "comparison_figure", "recorded_settings", "worst_first"]
