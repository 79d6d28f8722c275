"""Fixed-length features for training (docs/REFERENCE.md, section 3, ``process_feat``).

Many WSVAD methods train on a fixed number of rows per video.  Three rules are in
use, all operating along axis 0 so that ``[T, D]``, ``[T, crops, D]`` and
``[T, 3, D]`` arrays work alike:

``mean`` (:func:`process_feat`; RTFM, MGFN, UR-DMU on UCF-Crime)
    Boundaries ``r = linspace(0, T, segments + 1)`` cast to int (truncation, as the
    reference code's ``dtype=np.int``); output row ``i`` is the mean of rows
    ``r[i] .. r[i+1]-1``, or a copy of row ``r[i]`` when that range is empty
    (``T < segments``).  Always exactly ``segments`` rows.

``uniform`` (:func:`uniform_sample`; PEL4VAD ``utils.process_feat`` with
``is_random=False``: ``uniform_extract`` + ``pad``)
    With ``T > length``: rows ``linspace(0, T - 1, length)`` cast to int.  With
    ``T <= length``: the rows unchanged, then zero rows up to ``length``.  The
    number of real rows is returned (and recorded) so that padding can be masked.

``vadclip`` (:func:`vadclip_sample`; VadCLIP ``src/utils/tools.py`` ``process_feat``
with ``is_random=False``)
    With ``T > length``: the ``mean`` rule (``uniform_extract(avg=True)``: means over
    ``linspace(0, T, length + 1)`` boundaries).  With ``T <= length``: the rows
    unchanged, then zero rows (``pad``); the real row count is ``T``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import get_args

import numpy as np

from vadfeat._types import ResampleMethod
from vadfeat.errors import ConfigError
from vadfeat.store.ownership import claim_outputs, refuse_overlap
from vadfeat.store.reader import (
    FeatureIssue,
    FeatureSet,
    as_feature_set,
    derived_names,
    derived_sidecar,
    write_derived,
)

log = logging.getLogger(__name__)



def _check_length(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")


def _rows(feat: np.ndarray) -> np.ndarray:
    arr = np.asarray(feat)
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(f"need at least one feature row, got shape {arr.shape}")
    return arr


def segment_bounds(rows: int, segments: int) -> np.ndarray:
    """The ``segments + 1`` boundaries ``int(linspace(0, rows, segments + 1))``."""
    _check_length(segments, "segments")
    return np.linspace(0, rows, segments + 1).astype(np.int64)


def process_feat(feat: np.ndarray, segments: int = 32) -> np.ndarray:
    """Mean of near-equal segments of rows (the ``process_feat`` rule, see module doc)."""
    arr = _rows(feat)
    r = segment_bounds(arr.shape[0], segments)
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
    out = np.zeros((segments, *arr.shape[1:]), dtype=dtype)
    for i in range(segments):
        if r[i] != r[i + 1]:
            out[i] = arr[r[i]:r[i + 1]].mean(axis=0)
        else:
            out[i] = arr[r[i]]
    return out


def uniform_indices(rows: int, length: int) -> np.ndarray:
    """Rows kept by :func:`uniform_sample` (all of them when ``rows <= length``)."""
    _check_length(length, "length")
    if rows <= length:
        return np.arange(rows, dtype=np.int64)
    return np.linspace(0, rows - 1, length).astype(np.int64)


def uniform_sample(feat: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """``length`` uniformly spaced rows, or all rows zero-padded to ``length``.

    Returns ``(array, valid_rows)``; rows ``valid_rows:`` are padding.
    """
    arr = _rows(feat)
    idx = uniform_indices(arr.shape[0], length)
    out = np.zeros((length, *arr.shape[1:]), dtype=arr.dtype)
    out[: idx.size] = arr[idx]
    return out, int(idx.size)


def vadclip_sample(feat: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """VadCLIP's rule: segment means when ``T > length``, else zero padding.

    Returns ``(array of length rows, valid_rows)``; rows ``valid_rows:`` are padding
    (none when ``T > length``).
    """
    arr = _rows(feat)
    _check_length(length, "length")
    if arr.shape[0] > length:
        return process_feat(arr, length), length
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
    out = np.zeros((length, *arr.shape[1:]), dtype=dtype)
    out[: arr.shape[0]] = arr
    return out, int(arr.shape[0])


def resample(feat: np.ndarray, segments: int, *, method: ResampleMethod = "mean",
             ) -> tuple[np.ndarray, int]:
    """Apply one method; returns ``(array of segments rows, number of real rows)``."""
    if method not in get_args(ResampleMethod):
        raise ConfigError(f"unknown resample method {method!r}; allowed: "
                          f"{', '.join(get_args(ResampleMethod))}")
    if method == "mean":
        return process_feat(feat, segments), segments
    if method == "vadclip":
        return vadclip_sample(feat, segments)
    return uniform_sample(feat, segments)


def _new_snippets(snippets: Sequence[tuple[int, int]], rows: int, segments: int,
                  method: ResampleMethod) -> list[tuple[int, int] | None]:
    if method == "mean" or (method == "vadclip" and rows > segments):
        r = segment_bounds(rows, segments)
        return [(snippets[a][0], snippets[max(b, a + 1) - 1][1]) for a, b in pairwise(r)]
    if method == "vadclip":
        return [*snippets, *([None] * (segments - rows))]
    idx = uniform_indices(rows, segments)
    return [snippets[i] for i in idx] + [None] * (segments - idx.size)


@dataclass(frozen=True)
class ResampledVideo:
    """One resampled video: rows before, rows after, real rows, files written."""

    name: str
    rows_in: int
    rows_out: int
    valid_rows: int
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class ResampleResult:
    out: Path
    method: ResampleMethod
    segments: int
    videos: tuple[ResampledVideo, ...]
    issues: tuple[FeatureIssue, ...]


def resample_features(
    features: FeatureSet | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    segments: int = 32,
    method: ResampleMethod = "mean",
) -> ResampleResult:
    """Resample every video of a features folder into ``out`` (same layout and names).

    Each sidecar is carried over with the new shape, a frame range per new row
    (the union of the rows averaged, or ``null`` for padding rows) and a
    ``derived`` entry recording the method, ``segments`` and the real row count.
    Raises :class:`ConfigError` before writing anything when ``out`` is, holds or
    lies inside the features folder, or when a file at one of its names was not
    written by ``vadfeat resample`` (:mod:`vadfeat.store.ownership`).  A video that
    fails leaves none of its files in ``out``.
    """
    _check_length(segments, "segments")
    if method not in get_args(ResampleMethod):
        raise ConfigError(f"unknown resample method {method!r}; allowed: "
                          f"{', '.join(get_args(ResampleMethod))}")
    out_dir = Path(out)
    if not isinstance(features, FeatureSet):
        refuse_overlap(out_dir, [features], command="resample")
    fs = as_feature_set(features)
    refuse_overlap(out_dir, [fs.root], command="resample")
    claim_outputs(out_dir, [n for record in fs for n in derived_names(record)], command="resample")
    videos: list[ResampledVideo] = []
    issues = list(fs.issues)
    for record in fs:
        try:
            if any(s[0] < 0 for s in record.snippets):
                raise ValueError("already resampled (has padding rows)")
            arr = record.load()
            new, valid = resample(arr, segments, method=method)
            sidecar = derived_sidecar(
                record, shape=new.shape,
                snippets=_new_snippets(record.snippets, arr.shape[0], segments, method),
                step="resample",
                details={"method": method, "segments": segments, "rows_in": int(arr.shape[0]),
                         "valid_rows": valid})
        except (ValueError, OSError, EOFError) as exc:
            issues.append(FeatureIssue(record.name, f"cannot resample: {exc}"))
            continue
        try:
            paths = write_derived(record, out_dir, new, sidecar)
        except (ValueError, OSError) as exc:
            # No feature file may stay without its sidecar (a later read would take it for a
            # legacy file); these names are in resample's record, so they are ours to remove.
            for rel in derived_names(record):
                with contextlib.suppress(FileNotFoundError):
                    (out_dir / rel).unlink()
            issues.append(FeatureIssue(record.name, f"cannot write the resampled features: {exc}"))
            continue
        videos.append(ResampledVideo(name=record.name, rows_in=int(arr.shape[0]),
                                     rows_out=segments, valid_rows=valid, paths=paths))
    return ResampleResult(out=out_dir, method=method, segments=segments, videos=tuple(videos),
                          issues=tuple(issues))
