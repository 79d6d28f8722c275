"""Train/test list files in the conventions of the common WSVAD code bases (SPEC section 3).

Formats and what each writes below ``out`` (``<name>`` is the ``name`` option):

``fed-wsvad``
    ``train_split.txt`` and ``test_split.txt`` (one video name per line: the
    folder name under ``features_video/i3d/combine``) and ``GT/video_label.pickle``
    ``{name: [1.0] or [0.0]}`` for every listed video (Fed_WSVAD reads it for the
    training videos too).  Needs features in the ``fed-wsvad`` layout.
``rtfm``
    ``<name>-train.list`` and ``<name>-test.list``: one path per video to a
    ``[T, crops, D]`` file (RTFM, MGFN, S3R, CLIP-TSA).  Needs a 3-D array per
    video (``flat`` or ``fed-wsvad`` layout).
``ur-dmu``
    ``<name>_Train.list`` and ``<name>_Test.list`` (UR-DMU opens
    ``list/UCF_Train.list``: use ``name="UCF"`` or ``"XD"``): one line per crop
    file ``<stem>__<k>.npy`` (``[T, D]``).
``pel4vad``
    ``train.list`` and ``test.list``, one line per crop file as for UR-DMU.
    PEL4VAD's own files name crop 0 without suffix; its loader opens whatever path
    the list gives, so lines point at the existing ``__0`` files.
``vadclip``
    ``<name>_CLIP_rgb.csv`` and ``<name>_CLIP_rgbtest.csv`` with a ``path,label``
    header and one row per crop file; ``label`` is ``Normal`` for normal videos
    (``A`` with ``naming="xd"``) and the class otherwise (UCF: the letters that
    start the name, e.g. ``Abuse``; XD: the text after ``_label_``; otherwise
    ``Anomaly``), as VadCLIP's ``make_list_*.py`` write them.

Per-crop formats need per-crop files: the ``per-crop`` layout, or ``flat`` files of
shape ``[T, D]`` (one view, one line per video).  A format whose files do not exist
in the features folder raises :class:`~vadfeat.errors.ConfigError` saying which
layout to extract with, rather than pointing at files that are not there.

Order: abnormal videos first, then normal, each group sorted by name.  RTFM and
UR-DMU split training lists by index (``list[:n_abnormal]``), so abnormal-first is
required there; it is used everywhere so that every format lists videos in one
order.  Paths are absolute: every loader above joins them onto its own prefix with
``os.path.join``, which keeps an absolute path as it is.

Video-level labels come from the ground truth (``labels``: a video is abnormal if
any frame is) and, where it has none, from a dataset naming rule (``naming="ucf"``:
names starting with ``Normal_`` are normal; ``naming="xd"``: names containing
``_label_A`` are normal; everything else abnormal).  A video with neither, or
where the two disagree, is reported by name; the first is left out of the lists.

Splits: ``test_split`` and/or ``train_split`` name the videos of each split
(one name or path per line; a list file written by any of the formats above is
accepted, crop suffixes are folded).  With only one of them the other split is
every remaining video.  With neither, the videos that have frame-level ground truth
are the test split (the WSVAD protocol: frame labels exist only for evaluation)
and the rest is training; without ``labels`` everything is training.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from vadfeat.errors import ConfigError
from vadfeat.features import (
    FeatureRecord,
    FeatureSet,
    as_feature_set,
    normalized_name,
    video_key,
    write_pickle,
    write_text,
)
from vadfeat.labels import LabelFormat, LabelIssue, LabelSet, as_label_set

log = logging.getLogger(__name__)

ListFormat = Literal["fed-wsvad", "rtfm", "ur-dmu", "pel4vad", "vadclip"]
Naming = Literal["ucf", "xd"]
Split = Literal["train", "test"]

_PER_CROP_FORMATS = ("ur-dmu", "pel4vad", "vadclip")
_CROP_SUFFIX = re.compile(r"__\d+$")
_TRAILING_LABEL = re.compile(r"\s+-?\d+(\.\d*)?$")


@dataclass(frozen=True)
class ListEntry:
    """One video as listed: its split, label, label text and the files its lines name."""

    name: str
    split: Split
    label: int
    class_name: str
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class ListsResult:
    """What :func:`write_lists` wrote and every video it had to report."""

    format: ListFormat
    files: tuple[Path, ...]
    entries: tuple[ListEntry, ...]
    issues: tuple[LabelIssue, ...]

    def split(self, split: Split) -> tuple[ListEntry, ...]:
        return tuple(e for e in self.entries if e.split == split)


def _check(value: object, allowed: tuple[object, ...], what: str) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}")


def naming_label(name: str, naming: Naming) -> int:
    """Video-level label by a dataset's naming rule (0 normal, 1 abnormal)."""
    _check(naming, get_args(Naming), "naming rule")
    key = video_key(name)
    if naming == "ucf":
        return 0 if key.startswith("Normal_") else 1
    return 0 if "_label_A" in key else 1


def class_name(name: str, label: int, naming: Naming | None) -> str:
    """The label text VadCLIP's CSV lists carry (see the module docstring)."""
    key = video_key(name)
    if naming == "xd":
        return "A" if label == 0 else (key.split("_label_", 1)[1] if "_label_" in key else "Anomaly")
    if label == 0:
        return "Normal"
    if naming == "ucf":
        m = re.match(r"[A-Za-z]+", key)
        return m.group(0) if m else "Anomaly"
    return "Anomaly"


def read_video_list(path: str | os.PathLike[str]) -> list[str]:
    """Video names from a split or list file, in file order, each once.

    Accepts plain names, paths (with ``.npy`` or a video extension), per-crop
    lines (``<stem>__<k>.npy``, folded into one video), ``path label`` lines and
    ``path,label`` CSV rows with or without a header.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read list file {p}: {exc}") from exc
    names: list[str] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "," in line:
            line = next(csv.reader(io.StringIO(line)))[0].strip()
            if line.lower() == "path":
                continue
        else:
            line = _TRAILING_LABEL.sub("", line)
        if line.lower().endswith(".npy"):
            line = _CROP_SUFFIX.sub("", line[:-4])
        name = normalized_name(line)
        if name and name not in seen:
            seen.add(name)
            names.append(name)
    return names


def abnormal_first(names: Iterable[str], label_of: Callable[[str], int]) -> list[str]:
    """Abnormal videos first, then normal ones, each group in sorted name order."""
    return sorted(names, key=lambda n: (label_of(n) == 0, n))


def _match_names(wanted: Sequence[str], features: FeatureSet, source: str,
                 issues: list[LabelIssue]) -> set[str]:
    found: set[str] = set()
    for w in wanted:
        hits = features.find(w)
        if len(hits) == 1:
            found.add(hits[0].name)
        elif not hits:
            issues.append(LabelIssue(w, "unknown-video", f"{source}: no feature file matches"))
        else:
            issues.append(LabelIssue(w, "ambiguous-name",
                                     f"{source}: matches {', '.join(r.name for r in hits)}"))
    return found


def _files_for(record: FeatureRecord, fmt: ListFormat) -> tuple[Path, ...]:
    if fmt == "fed-wsvad":
        if record.layout != "fed-wsvad":
            raise ConfigError("fed-wsvad lists name folders under features_video/i3d/combine; "
                              f"these features are in the {record.layout} layout "
                              "(extract with --layout fed-wsvad)")
        return record.paths
    if fmt == "rtfm":
        if record.layout == "per-crop" or len(record.file_shape) != 3:
            raise ConfigError(f"rtfm lists need one [T, crops, D] file per video; {record.name} "
                              f"is stored as {record.layout} files of shape "
                              f"{list(record.file_shape)} (extract with --layout flat and crops, "
                              "or use a per-crop format such as ur-dmu)")
        return record.paths
    if record.layout == "per-crop" or (record.layout == "flat" and len(record.file_shape) == 2):
        return record.paths
    raise ConfigError(f"{fmt} lists need per-crop [T, D] files; {record.name} is a "
                      f"{record.layout} file of shape {list(record.file_shape)} "
                      "(extract with --layout per-crop)")


def _render(fmt: ListFormat, entries: Sequence[ListEntry]) -> str:
    if fmt == "fed-wsvad":
        return "".join(f"{e.name}\n" for e in entries)
    if fmt == "vadclip":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["path", "label"])
        for e in entries:
            for p in e.paths:
                writer.writerow([str(p.resolve()), e.class_name])
        return buf.getvalue()
    return "".join(f"{p.resolve()}\n" for e in entries for p in e.paths)


def _file_names(fmt: ListFormat, name: str) -> dict[Split, str]:
    return {
        "fed-wsvad": {"train": "train_split.txt", "test": "test_split.txt"},
        "rtfm": {"train": f"{name}-train.list", "test": f"{name}-test.list"},
        "ur-dmu": {"train": f"{name}_Train.list", "test": f"{name}_Test.list"},
        "pel4vad": {"train": "train.list", "test": "test.list"},
        "vadclip": {"train": f"{name}_CLIP_rgb.csv", "test": f"{name}_CLIP_rgbtest.csv"},
    }[fmt]


def write_lists(
    features: FeatureSet | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: ListFormat,
    labels: LabelSet | str | os.PathLike[str] | None = None,
    labels_format: LabelFormat | Literal["auto"] = "auto",
    naming: Naming | None = None,
    train_split: str | os.PathLike[str] | Sequence[str] | None = None,
    test_split: str | os.PathLike[str] | Sequence[str] | None = None,
    name: str = "dataset",
) -> ListsResult:
    """Write train and test lists for one downstream method (see the module docstring).

    ``labels`` is a :class:`~vadfeat.labels.LabelSet` or a path read with
    ``labels_format`` (``auto``: canonical or npy-dir); split arguments are list
    files or sequences of names.  Returns the files written, the listed entries
    and the videos that had to be reported.
    """
    _check(format, get_args(ListFormat), "list format")
    if naming is not None:
        _check(naming, get_args(Naming), "naming rule")
    if not name or "/" in name or "\\" in name:
        raise ConfigError(f"list name must be a plain file-name part, got {name!r}")
    fs = as_feature_set(features)
    gt = as_label_set(labels, format=labels_format, features=fs) if labels is not None else None
    issues: list[LabelIssue] = [LabelIssue(i.video, "bad-features", i.message) for i in fs.issues]
    # Videos without frame labels are decided below (a naming rule may label them).
    issues += [i for i in (gt.issues if gt is not None else ()) if i.kind != "no-labels"]

    # video-level labels
    video_label: dict[str, int] = {}
    for r in fs:
        from_gt = gt.get(r.name) if gt is not None else None
        by_name = naming_label(r.name, naming) if naming is not None else None
        if from_gt is not None:
            video_label[r.name] = from_gt.video_label
            if by_name is not None and by_name != from_gt.video_label:
                issues.append(LabelIssue(r.name, "inconsistent",
                                         f"ground truth says {from_gt.video_label}, the {naming} "
                                         f"naming rule says {by_name}; ground truth used"))
        elif by_name is not None:
            video_label[r.name] = by_name
        else:
            issues.append(LabelIssue(r.name, "no-labels",
                                     "no ground truth and no naming rule: left out of the lists"))

    # splits
    def names_of(split: str | os.PathLike[str] | Sequence[str], what: str) -> set[str]:
        wanted = list(split) if isinstance(split, (list, tuple)) else read_video_list(split)
        return _match_names(wanted, fs, what, issues)

    labelled = set(video_label)
    if test_split is not None or train_split is not None:
        test = names_of(test_split, "test split") if test_split is not None else None
        train = names_of(train_split, "train split") if train_split is not None else None
        if test is None:
            test = labelled - (train or set())
        if train is None:
            train = labelled - test
        for both in sorted(train & test):
            issues.append(LabelIssue(both, "inconsistent", "in both the train and the test split; "
                                     "kept in test only"))
        train -= test
        left_out = labelled - train - test
        if left_out:
            log.info("%d videos are in neither split and are not listed", len(left_out))
    elif gt is not None:
        test = {n for n in labelled if gt.get(n) is not None}
        train = labelled - test
        log.info("no split files: %d videos with frame-level ground truth form the test split, "
                 "%d others the training split", len(test), len(train))
    else:
        test, train = set(), set(labelled)
        log.info("no split files and no ground truth: all %d videos go to the training list",
                 len(train))

    # Every entry (and its files) is resolved before anything is written, so that a
    # layout error cannot leave a train list without its test list.
    records = fs.by_name()
    by_split: dict[Split, list[ListEntry]] = {}
    for split_name, members in (("train", train), ("test", test)):
        listed = [n for n in members if n in video_label]
        by_split[split_name] = [
            ListEntry(name=n, split=split_name, label=video_label[n],
                      class_name=class_name(n, video_label[n], naming),
                      paths=_files_for(records[n], format))
            for n in abnormal_first(listed, video_label.__getitem__)
        ]
    out_dir = Path(out)
    file_names = _file_names(format, name)
    files: list[Path] = []
    entries: list[ListEntry] = []
    for split_name, split_entries in by_split.items():
        if not split_entries:
            log.warning("the %s list is empty", split_name)
        files.append(write_text(out_dir / file_names[split_name], _render(format, split_entries)))
        entries.extend(split_entries)
    if format == "fed-wsvad":
        files.append(write_pickle(out_dir / "GT" / "video_label.pickle",
                                  {e.name: [float(e.label)] for e in entries}))
    return ListsResult(format=format, files=tuple(files), entries=tuple(entries),
                       issues=tuple(issues))
