"""Train/test list files in the conventions of the common WSVAD code bases (SPEC section 3).

Each format writes what that code base's own loader and test loop read, unmodified
(the loader lines each rule mirrors are cited in ``tests/test_downstream.py``).
Below ``out``, or, with ``codebase_root``, at the paths the repository itself opens
(see :func:`codebase_files`).  Below ``out`` the files carry the repository's own names
when ``dataset`` is given (UR-DMU ``SH_Train.list``, RTFM ``ucf-i3d.list``, ...), else
the names below, ``<name>`` being the ``name`` option (default ``dataset``):

``fed-wsvad``
    ``train_split.txt`` and ``test_split.txt`` (one video name per line: the folder
    name under ``features_video/i3d/combine``), ``GT/video_label.pickle``
    ``{name: [1.0] or [0.0]}`` for every listed video and ``GT/frame_label.pickle``
    ``{name: 16*T frame labels}`` for the test videos.  Needs the ``fed-wsvad`` layout.
``rtfm``
    ``<name>-train.list``, ``<name>-test.list`` (one ``[T, crops, D]`` file per video)
    and ``gt-<name>.npy``.  Needs a 3-D array per video (``flat``/``rtfm`` export).
``ur-dmu``
    ``<name>_Train.list``, ``<name>_Test.list`` (one line per crop file, the crops of
    a video consecutive: its test loop averages every ``crops`` items) and
    ``gt-<name>.npy``.
``pel4vad``
    ``train.list``, ``test.list`` (one line per crop file) and ``gt-<name>.npy``.  For
    ShanghaiTech (``dataset="shanghaitech"``) training lines are ``<path> <label>``
    (``1.0``/``0.0``: ``SHDataset`` reads the label column) and the crop files must be
    named ``<video>_<k>.npy`` (``vadfeat export --format pel4vad --dataset
    shanghaitech``): the loader cuts exactly 6 characters to find the video name.
``vadclip``
    ``<name>_CLIP_rgb.csv`` (training: one ``path,label`` row per crop file) and
    ``<name>_CLIP_rgbtest.csv`` (test: one row per video, crop 0, as VadCLIP's test
    loop scores one file per video); ``gt_<name>.npy`` (frames) and the mAP files
    ``gt_segment_<name>.npy`` / ``gt_label_<name>.npy`` (object arrays, one entry per
    test row: abnormal frame spans ``[start, end)`` with their class, or ``[[0,
    16*T]]`` with label ``A`` for a normal video, as ``make_gt_mAP_*.py`` build them).
    ``label`` is ``Normal`` for normal videos (``A`` for XD-Violence) and the class
    otherwise (UCF: the letters that start the name, e.g. ``Abuse``; XD: the text
    after ``_label_``; otherwise ``Anomaly``).

Frame ground truth (every ``gt`` file): the test videos' frame labels in test-list
order, each fitted to exactly ``16 * T`` values by :func:`vadfeat.dataset.align.fit_frame_labels`
(what every one of these evaluations builds from the features: one score per row,
repeated 16 times).  A normal test video without frame labels gets zeros; an
abnormal one without frame labels is reported and left out of the test list.

Order: abnormal videos first, then normal, each group sorted by name.  RTFM and
UR-DMU split training lists by index (``list[:n_abnormal]``, hard-coded 810/63 and
8100/9525 in their code: :attr:`ListsResult.train_abnormal_lines` gives the value
to set).

Paths are absolute (symlinks resolved): every loader above opens them as they are or
joins them onto its own prefix with ``os.path.join``, which keeps an absolute path.
With ``relative_to`` they are relative to that folder (POSIX, no ``..``), for features
that move to another machine; the folder is the one each loader resolves a relative
line from: the checkout RTFM, UR-DMU (UCF-Crime) and VadCLIP run in (they open the
line as it is), PEL4VAD's ``cfg.feat_prefix`` (it joins the line onto it).  A listed
file outside that folder is a usage error.  Not for UR-DMU on XD-Violence (it joins
the line onto the first character of ``<root_dir>/rgb``, a string it indexes as a
list) nor Fed_WSVAD (its lists hold video names).

Video-level labels, first source that has one: frame-level ground truth
(``labels``: abnormal if any frame is), a label column in a split file
(``<name> <0|1>``, ShanghaiTech's weakly supervised split), a dataset naming rule
(``naming="ucf"``: ``Normal_*`` normal; ``"xd"``: ``*_label_A*`` normal;
``"shanghaitech"``: ``NN_NNN`` (the original training set) normal, ``NN_NNNN``
(the original test set, every video of which holds an anomaly) abnormal).  A video
with none is reported and left out; sources that disagree are reported.

Splits: ``test_split`` and/or ``train_split`` name the videos of each split (one
name or path per line, optionally with a label column; a list file written by any
format above is accepted, crop suffixes are folded).  With only one, the other split
is every remaining video.  With neither, videos with frame-level ground truth are the
test split, except for XD-Violence, where that is a usage error:
``annotations.txt`` lists only violent test videos, and training and test normal
videos (``_label_A``) cannot be told apart by name.

Names containing a newline, a carriage return or bytes that are not UTF-8 cannot be
written as one list line and are reported (``bad-name``) and left out; so are paths
with whitespace for the loaders that split lines on whitespace (UR-DMU, PEL4VAD
ShanghaiTech), and lines that a loader deciding the label by a word in the line
(PEL4VAD UCF-Crime ``Normal``, PEL4VAD and UR-DMU XD-Violence ``_label_A``) would
label wrongly: an abnormal video whose path holds the word, a normal one whose path
lacks it.  UCF-Crime's own tree is fine: its normal videos' folders
(``Training_Normal_Videos_Anomaly/``) hold the word their names hold anyway.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, get_args

import numpy as np

from vadfeat._types import Dataset, ListFormat, Naming, Split
from vadfeat.dataset.labels import LabelFormat, LabelIssue, LabelSet, as_label_set, label_spans
from vadfeat.errors import ConfigError
from vadfeat.store.ownership import claim_outputs, refuse_overlap
from vadfeat.store.reader import (
    FeatureRecord,
    FeatureSet,
    as_feature_set,
    normalized_name,
    save_npy,
    video_key,
    write_pickle,
    write_text,
)

log = logging.getLogger(__name__)


_PER_CROP_FORMATS = ("ur-dmu", "pel4vad", "vadclip")
_CROP_SUFFIX = re.compile(r"__\d+$")
_TRAILING_LABEL = re.compile(r"\s+-?\d+(\.\d*)?$")
_SPLIT_LABEL = re.compile(r"^(?P<name>.+?)\s+(?P<label>[01])(\.0*)?$")
_SH_NORMAL = re.compile(r"^\d+_\d{3}$")
_SH_ABNORMAL = re.compile(r"^\d+_\d{4}$")
#: Frames each feature row stands for in all five evaluations (scores repeated 16 times).
FRAMES_PER_SNIPPET = 16


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
    """What :func:`write_lists` wrote and every video it had to report.

    ``train_abnormal_lines`` is the number of training-list lines before the first
    normal video (RTFM's and UR-DMU's loaders hard-code it); ``gt_frames`` the length
    of the frame ground truth written (``None`` when none was written).  ``lists``:
    each split's list file; ``lines``: the items it holds (lines; CSV rows after the
    header).  ``replaced``: files an earlier ``lists`` run had written there, replaced.
    """

    format: ListFormat
    files: tuple[Path, ...]
    entries: tuple[ListEntry, ...]
    issues: tuple[LabelIssue, ...]
    train_abnormal_lines: int = 0
    gt_frames: int | None = None
    lists: Mapping[Split, Path] = field(default_factory=dict)
    lines: Mapping[Split, int] = field(default_factory=dict)
    replaced: tuple[Path, ...] = ()

    def split(self, split: Split) -> tuple[ListEntry, ...]:
        return tuple(e for e in self.entries if e.split == split)


def _check(value: object, allowed: tuple[object, ...], what: str) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}")


def naming_label(name: str, naming: Naming) -> int | None:
    """Video-level label by a dataset's naming rule (0 normal, 1 abnormal, ``None``: no rule applies)."""
    _check(naming, get_args(Naming), "naming rule")
    key = video_key(name)
    if naming == "ucf":
        return 0 if key.startswith("Normal_") else 1
    if naming == "xd":
        return 0 if "_label_A" in key else 1
    if _SH_ABNORMAL.match(key):
        return 1
    return 0 if _SH_NORMAL.match(key) else None


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


def _list_lines(path: str | os.PathLike[str]) -> list[str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read list file {p}: {exc}") from exc
    # Lines end at "\n" only (a CRLF file loses its "\r"): str.splitlines would also
    # split names at "\r", "\x0b", "\x1c".. "\x1e", "\x85" and U+2028.
    return [raw[:-1] if raw.endswith("\r") else raw for raw in text.split("\n")]


def read_video_list(path: str | os.PathLike[str]) -> list[str]:
    """Video names from a split or list file, in file order, each once.

    Accepts plain names, paths (with ``.npy`` or a video extension), per-crop
    lines (``<stem>__<k>.npy``, folded into one video), ``path label`` lines and
    ``path,label`` CSV rows with or without a header.  Spaces inside a name are
    kept; only a trailing numeric label column is cut.
    """
    names: list[str] = []
    seen: set[str] = set()
    for raw in _list_lines(path):
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


def read_split_labels(path: str | os.PathLike[str]) -> dict[str, int]:
    """Video-level labels stated in a split file: lines ``<name> <0|1>`` (``1.0`` too).

    ShanghaiTech's weakly supervised split gives every training video this way,
    normal ones included (they have no frame masks).  Lines without a label column
    are skipped; a name given twice with different labels raises
    :class:`~vadfeat.errors.ConfigError`.
    """
    labels: dict[str, int] = {}
    for lineno, raw in enumerate(_list_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or "," in line:
            continue
        m = _SPLIT_LABEL.match(line)
        if not m:
            continue
        stem = m["name"].strip()
        if stem.lower().endswith(".npy"):
            stem = _CROP_SUFFIX.sub("", stem[:-4])
        name = normalized_name(stem)
        label = int(m["label"])
        if labels.get(name, label) != label:
            raise ConfigError(f"{path}:{lineno}: {name} is labelled both 0 and 1")
        labels[name] = label
    return labels


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


def _files_for(record: FeatureRecord, fmt: ListFormat, dataset: Dataset | None) -> tuple[Path, ...]:
    if fmt == "fed-wsvad":
        if record.layout != "fed-wsvad":
            raise ConfigError("fed-wsvad lists name folders under features_video/i3d/combine; "
                              f"these features are in the {record.layout} layout "
                              "(vadfeat export --format fed-wsvad)")
        return record.paths
    if fmt == "rtfm":
        if record.layout == "per-crop":  # the crops exist: export stacks them into one file
            raise ConfigError(f"rtfm lists need one [T, crops, D] file per video; {record.name} "
                              f"is stored as per-crop files of shape {list(record.file_shape)}: "
                              "write them as one file per video first (vadfeat export FEATURES "
                              "--format rtfm -o DIR), then list DIR")
        if len(record.file_shape) != 3:  # one view: no export can make crops that were not taken
            raise ConfigError(f"rtfm lists need one [T, crops, D] file per video; {record.name} "
                              f"is a single-view file of shape {list(record.file_shape)} (extracted "
                              "with 1 crop). RTFM's features are 10-crop: extract again with "
                              "--crops 10 (or list these files for a per-crop code base, e.g. "
                              "--format ur-dmu)")
        return record.paths
    if not (record.layout == "per-crop" or (record.layout == "flat" and len(record.file_shape) == 2)):
        raise ConfigError(f"{fmt} lists need per-crop [T, D] files; {record.name} is a "
                          f"{record.layout} file of shape {list(record.file_shape)} "
                          f"(vadfeat export --format {fmt}"
                          + (" --dataset shanghaitech)" if fmt == "pel4vad" and dataset == "shanghaitech"
                             else ")"))
    if record.layout == "per-crop":
        short = not record.paths[0].name.endswith("__0.npy")
        if fmt == "pel4vad" and dataset == "shanghaitech" and not short:
            raise ConfigError(f"PEL4VAD's ShanghaiTech loader cuts a `_<k>.npy` suffix (6 characters) "
                              f"to get the video name; {record.paths[0].name} would give a wrong "
                              "name (vadfeat export --format pel4vad --dataset shanghaitech)")
        if short and not (fmt == "pel4vad" and dataset == "shanghaitech"):
            raise ConfigError(f"{fmt} needs crop files named <video>__<k>.npy; {record.paths[0].name} "
                              f"is PEL4VAD's ShanghaiTech naming (vadfeat export --format {fmt})")
    return record.paths


# ----------------------------------------------------------------------- file names


def codebase_files(fmt: ListFormat, dataset: Dataset | None, name: str | None,
                   *, upstream: bool) -> dict[str, str]:
    """Relative paths of every file a format writes.

    ``upstream=True``: where the code base opens them, relative to its repository
    root (RTFM ``list/ucf-i3d.list``, UR-DMU ``frame_label/xd_gt.npy``, ...; for
    Fed_WSVAD relative to ``<dataset_path>/<name>``).  ``upstream=False``: the names
    for an output folder: ``name``'s (``None``: ``dataset``) or, with ``name=None``
    and a ``dataset``, the repository's own file names without their folders.  Keys:
    ``train``, ``test``, ``gt`` and, per format, ``gt_segment``, ``gt_label``
    (VadCLIP), ``video_label`` (Fed_WSVAD).
    """
    if fmt == "fed-wsvad":
        return {"train": "train_split.txt", "test": "test_split.txt",
                "gt": "GT/frame_label.pickle", "video_label": "GT/video_label.pickle"}
    if not upstream and name is None and dataset is not None:
        own = codebase_files(fmt, dataset, None, upstream=True)
        return {key: PurePosixPath(path).name for key, path in own.items()}
    if not upstream:
        name = name or "dataset"
        return {
            "rtfm": {"train": f"{name}-train.list", "test": f"{name}-test.list", "gt": f"gt-{name}.npy"},
            "ur-dmu": {"train": f"{name}_Train.list", "test": f"{name}_Test.list",
                       "gt": f"gt-{name}.npy"},
            "pel4vad": {"train": "train.list", "test": "test.list", "gt": f"gt-{name}.npy"},
            "vadclip": {"train": f"{name}_CLIP_rgb.csv", "test": f"{name}_CLIP_rgbtest.csv",
                        "gt": f"gt_{name}.npy", "gt_segment": f"gt_segment_{name}.npy",
                        "gt_label": f"gt_label_{name}.npy"},
        }[fmt]
    if dataset is None:
        raise ConfigError(f"--codebase-root needs --dataset (ucf, xd or shanghaitech): {fmt} opens "
                          "different files for each")
    short = {"ucf": "ucf", "xd": "xd", "shanghaitech": "sh"}[dataset]
    if fmt == "rtfm":  # dataset.py opens these names (XD-Violence: no code path, see README)
        return {
            "ucf": {"train": "list/ucf-i3d.list", "test": "list/ucf-i3d-test.list",
                    "gt": "list/gt-ucf.npy"},
            "shanghaitech": {"train": "list/shanghai-i3d-train-10crop.list",
                             "test": "list/shanghai-i3d-test-10crop.list", "gt": "list/gt-sh.npy"},
            "xd": {"train": "list/xd-i3d.list", "test": "list/xd-i3d-test.list", "gt": "list/gt-xd.npy"},
        }[dataset]
    if fmt == "ur-dmu":  # dataset_loader.py, ucf_test.py, xd_test.py
        return {
            "ucf": {"train": "list/UCF_Train.list", "test": "list/UCF_Test.list",
                    "gt": "frame_label/gt-ucf.npy"},
            "xd": {"train": "list/XD_Train.list", "test": "list/XD_Test.list",
                   "gt": "frame_label/xd_gt.npy"},
            "shanghaitech": {"train": "list/SH_Train.list", "test": "list/SH_Test.list",
                             "gt": "frame_label/gt-sh.npy"},
        }[dataset]
    if fmt == "pel4vad":  # configs.py: cfg.train_list, cfg.test_list, cfg.gt
        return {"train": f"list/{short}/train.list", "test": f"list/{short}/test.list",
                "gt": f"list/{short}/{short}-gt.npy"}
    # vadclip: src/ucf_option.py and src/xd_option.py defaults
    if dataset == "xd":
        return {"train": "list/xd_CLIP_rgb.csv", "test": "list/xd_CLIP_rgbtest.csv",
                "gt": "list/gt.npy", "gt_segment": "list/gt_segment.npy", "gt_label": "list/gt_label.npy"}
    return {"train": f"list/{short}_CLIP_rgb.csv", "test": f"list/{short}_CLIP_rgbtest.csv",
            "gt": f"list/gt_{short}.npy", "gt_segment": f"list/gt_segment_{short}.npy",
            "gt_label": f"list/gt_label_{short}.npy"}


# ----------------------------------------------------------------------- rendering


def _line_root(fmt: ListFormat, dataset: Dataset | None, naming: Naming | None,
               relative_to: str | os.PathLike[str] | None) -> Path | None:
    """The folder list lines are relative to (``None``: absolute lines); usage errors first."""
    if relative_to is None:
        return None
    if fmt == "fed-wsvad":
        raise ConfigError("fed-wsvad lists hold video names, not paths: relative paths do not "
                          "apply (Fed_WSVAD finds the features from its --dataset_path)")
    if fmt == "ur-dmu" and "xd" in (dataset, naming):
        raise ConfigError("UR-DMU's XD-Violence loader opens os.path.join(feature_path[0], line), "
                          "feature_path being the string <root_dir>/rgb: a relative line is joined "
                          "onto its first character and cannot be found; keep absolute paths "
                          "(leave the relative root out)")
    root = Path(relative_to)
    if not root.is_dir():
        raise ConfigError(f"the root for relative list paths {root} is not a folder")
    return root


def _path_text(root: Path | None) -> Callable[[Path], str]:
    """How a file is written in a list line: absolute with symlinks resolved, or relative to
    ``root`` (POSIX).  A file not below ``root`` raises :class:`ConfigError`."""
    if root is None:
        return lambda p: str(p.resolve())

    def relative(p: Path) -> str:
        # As written first (a features folder linked into the root stays inside it), then
        # with symlinks resolved (a root given through a link).
        for base, path in ((Path(os.path.abspath(root)), Path(os.path.abspath(p))),
                           (root.resolve(), p.resolve())):
            if path.is_relative_to(base):
                return path.relative_to(base).as_posix()
        raise ConfigError(f"{p} is not below the root {root} that list paths are written relative "
                          "to: give a folder that holds every listed file (for each code base the "
                          "folder it resolves list lines from, see README) or leave it out for "
                          "absolute paths")
    return relative


def _rows(fmt: ListFormat, split: Split, entries: Sequence[ListEntry], dataset: Dataset | None,
          path_text: Callable[[Path], str]) -> list[tuple[str, ...]]:
    """The items of one list file: one tuple per line (per CSV row for VadCLIP)."""
    if fmt == "fed-wsvad":
        return [(e.name,) for e in entries]
    if fmt == "vadclip":
        # Training: every crop file; test: crop 0 only (one score sequence per video).
        return [(path_text(p), e.class_name) for e in entries
                for p in (e.paths if split == "train" else e.paths[:1])]
    if fmt == "pel4vad" and dataset == "shanghaitech" and split == "train":
        return [(f"{path_text(p)} {float(e.label)}",) for e in entries for p in e.paths]
    return [(path_text(p),) for e in entries for p in e.paths]


def _text(fmt: ListFormat, rows: Sequence[tuple[str, ...]]) -> str:
    if fmt != "vadclip":
        return "".join(f"{row[0]}\n" for row in rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label"])
    writer.writerows(rows)
    return buf.getvalue()


def _bad_name(entry: ListEntry, fmt: ListFormat, dataset: Dataset | None, naming: Naming | None,
              path_text: Callable[[Path], str]) -> str | None:
    """Why ``entry`` cannot be written as list lines (``None``: it can)."""
    lines = [path_text(p) for p in entry.paths]
    for t in [entry.name, *lines]:
        if "\n" in t or "\r" in t:
            return f"{t!r} contains a line break: it cannot be one line of a list file"
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            return f"{t!r} holds bytes that are not UTF-8: list readers cannot open it"
    if fmt == "ur-dmu" or (fmt == "pel4vad" and dataset == "shanghaitech"):
        for line in lines:
            if any(c.isspace() for c in line):
                return (f"{line} contains whitespace, and {fmt}'s loader splits list lines "
                        "on whitespace: rename it or export to a folder without spaces")
    return _wrong_loader_label(entry, fmt, naming, lines)


def _wrong_loader_label(entry: ListEntry, fmt: ListFormat, naming: Naming | None,
                        lines: Sequence[str]) -> str | None:
    # PEL4VAD (UCF, XD) and UR-DMU (XD) call a line normal when a word occurs anywhere in
    # it: refused only where that gives the video the wrong label.
    flag = {"ucf": "Normal", "xd": "_label_A"}.get(naming or "")
    if not flag or not (fmt == "pel4vad" or (fmt == "ur-dmu" and naming == "xd")):
        return None
    for line in lines:
        if (flag in line) != (entry.label == 0):
            fix = ("export to a folder whose path does not contain it" if entry.label
                   else "name the video or its folder with it")
            return (f"{fmt}'s loader labels a line normal when it contains {flag!r}: {line} "
                    f"{'contains' if entry.label else 'lacks'} it, but the video is "
                    f"{'abnormal' if entry.label else 'normal'}; {fix}")
    return None


def _gt_arrays(entries: Sequence[ListEntry], records: Mapping[str, FeatureRecord],
               frames_of: Callable[[str], np.ndarray | None], naming: Naming | None,
               ) -> tuple[np.ndarray, list[list[list[int]]], list[list[str]]]:
    """Concatenated 16*T frame labels and VadCLIP's per-video segments and labels."""
    from vadfeat.dataset.align import fit_frame_labels

    parts: list[np.ndarray] = []
    segments: list[list[list[int]]] = []
    seg_labels: list[list[str]] = []
    for e in entries:
        rec = records[e.name]
        n = FRAMES_PER_SNIPPET * rec.num_snippets
        frames = frames_of(e.name)
        fitted = (np.zeros(n, dtype=np.uint8) if frames is None else
                  fit_frame_labels(frames, rec.snippets, frames_per_snippet=FRAMES_PER_SNIPPET)[0])
        parts.append(fitted)
        spans = label_spans(fitted)
        if e.label == 0 or not spans:
            segments.append([[0, int(n)]])
            seg_labels.append(["A"])
        else:
            cls = e.class_name.split("-")[0] if naming == "xd" else e.class_name
            segments.append([[s, t] for s, t in spans])
            seg_labels.append([cls] * len(spans))
    gt = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0, dtype=np.float64)
    return gt, segments, seg_labels


def _object_array(items: Sequence[object]) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        arr[i] = item
    return arr


def _save_object_npy(path: Path, items: Sequence[object]) -> Path:
    # VadCLIP loads these with allow_pickle=True (ragged lists per video).
    from vadfeat.store.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, _object_array(items), allow_pickle=True)
    return path


_SplitArg = str | os.PathLike[str] | list[str] | tuple[str, ...] | None


def _video_labels(fs: FeatureSet, gt: LabelSet | None, naming: Naming | None,
                  split_args: Sequence[_SplitArg], issues: list[LabelIssue]) -> dict[str, int]:
    """Each video's label: ground truth, then a split file's label column, then the naming rule."""
    split_labels: dict[str, int] = {}
    for split_arg in split_args:
        if split_arg is not None and not isinstance(split_arg, (list, tuple)):
            for n, lab in read_split_labels(split_arg).items():
                hits = fs.find(n)
                if len(hits) == 1:
                    split_labels[hits[0].name] = lab
    video_label: dict[str, int] = {}
    for r in fs:
        from_gt = gt.get(r.name) if gt is not None else None
        stated = split_labels.get(r.name)
        by_name = naming_label(r.name, naming) if naming is not None else None
        candidates = [(src, v) for src, v in (("ground truth", from_gt.video_label if from_gt else None),
                                              ("split file", stated), (f"{naming} naming rule", by_name))
                      if v is not None]
        if not candidates:
            issues.append(LabelIssue(r.name, "no-labels",
                                     "no ground truth, no label in a split file and no naming rule "
                                     "for it: left out of the lists"))
            continue
        src, value = candidates[0]
        video_label[r.name] = value
        for other, v in candidates[1:]:
            if v != value:
                issues.append(LabelIssue(r.name, "inconsistent",
                                         f"{src} says {value}, the {other} says {v}; {src} used"))
    return video_label


def _splits(fs: FeatureSet, gt: LabelSet | None, labelled: set[str], train_split: _SplitArg,
            test_split: _SplitArg, issues: list[LabelIssue]) -> tuple[set[str], set[str]]:
    """The training and test videos (module docstring, "Splits")."""
    def names_of(split: str | os.PathLike[str] | list[str] | tuple[str, ...], what: str) -> set[str]:
        wanted = list(split) if isinstance(split, (list, tuple)) else read_video_list(split)
        return _match_names(wanted, fs, what, issues)

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
        return train, test
    if gt is not None:
        test = {n for n in labelled if gt.get(n) is not None}
        log.info("no split files: %d videos with frame-level ground truth form the test split, "
                 "%d others the training split", len(test), len(labelled - test))
        return labelled - test, test
    log.info("no split files and no ground truth: all %d videos go to the training list", len(labelled))
    return set(labelled), set()


def _entries(split: Split, members: set[str], video_label: Mapping[str, int],
             records: Mapping[str, FeatureRecord], gt: LabelSet | None, *, fmt: ListFormat,
             dataset: Dataset | None, naming: Naming | None, path_text: Callable[[Path], str],
             issues: list[LabelIssue]) -> list[ListEntry]:
    """The listed videos of one split, abnormal first; those that cannot be listed reported."""
    kept: list[ListEntry] = []
    for n in abnormal_first([n for n in members if n in video_label], video_label.__getitem__):
        e = ListEntry(name=n, split=split, label=video_label[n],
                      class_name=class_name(n, video_label[n], naming),
                      paths=_files_for(records[n], fmt, dataset))
        why = _bad_name(e, fmt, dataset, naming, path_text)
        if why is not None:
            issues.append(LabelIssue(n, "bad-name", f"{why}; left out of the lists"))
            continue
        if split == "test" and gt is not None and e.label == 1 and gt.get(n) is None:
            issues.append(LabelIssue(n, "no-labels", "abnormal test video without frame labels: "
                                     "its ground truth cannot be built; left out of the test list"))
            continue
        if split == "test" and any(s[0] < 0 for s in records[n].snippets):
            issues.append(LabelIssue(n, "bad-features", "resampled features (padding rows) "
                                     "cannot be evaluated; left out of the test list"))
            continue
        kept.append(e)
    return kept


def _write_gt(out_dir: Path, file_names: Mapping[str, str], fmt: ListFormat,
              test_entries: Sequence[ListEntry], records: Mapping[str, FeatureRecord],
              gt: LabelSet, naming: Naming | None) -> tuple[list[Path], int]:
    """The test videos' frame ground truth (and VadCLIP's mAP files); returns files and length."""
    def frames_of(n: str) -> np.ndarray | None:
        v = gt.get(n)
        return None if v is None else v.frames

    gt_arr, segments, seg_labels = _gt_arrays(test_entries, records, frames_of, naming)
    if fmt == "fed-wsvad":
        per_video: dict[str, np.ndarray] = {}
        start = 0
        for e in test_entries:
            count = FRAMES_PER_SNIPPET * records[e.name].num_snippets
            per_video[e.name] = gt_arr[start:start + count].astype(np.float32)
            start += count
        files = [write_pickle(out_dir / file_names["gt"], per_video)]
    else:
        files = [save_npy(out_dir / file_names["gt"], gt_arr)]
    if fmt == "vadclip":
        files.append(_save_object_npy(out_dir / file_names["gt_segment"], segments))
        files.append(_save_object_npy(out_dir / file_names["gt_label"], seg_labels))
    return files, int(gt_arr.size)


def write_lists(
    features: FeatureSet | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    format: ListFormat,
    labels: LabelSet | str | os.PathLike[str] | None = None,
    labels_format: LabelFormat | Literal["auto"] = "auto",
    naming: Naming | None = None,
    train_split: _SplitArg = None,
    test_split: _SplitArg = None,
    name: str | None = None,
    dataset: Dataset | None = None,
    codebase_root: str | os.PathLike[str] | None = None,
    relative_to: str | os.PathLike[str] | None = None,
) -> ListsResult:
    """Write train and test lists and frame ground truth for one code base (module docstring).

    ``labels`` is a :class:`~vadfeat.dataset.labels.LabelSet` or a path read with
    ``labels_format`` (``auto``: canonical or npy-dir); split arguments are list
    files (optionally with a ``<0|1>`` label column) or sequences of names.
    ``dataset`` (``ucf``, ``xd``, ``shanghaitech``) is the naming rule when ``naming``
    is not given and picks the upstream file names (:func:`codebase_files`): for
    ``codebase_root`` where that repository opens them (``out`` unused; for fed-wsvad
    into ``codebase_root/<name>``), in ``out`` their file names unless ``name`` is
    given.  ``relative_to``: write paths relative to this folder (module docstring).
    Returns the files written, the listed entries and every reported video.  Raises
    :class:`~vadfeat.errors.ConfigError` before writing anything for a bad option,
    XD-Violence without a split, features in a layout the format cannot read, or a
    listed file outside ``relative_to``.
    """
    _check(format, get_args(ListFormat), "list format")
    if dataset is not None:
        _check(dataset, get_args(Dataset), "dataset")
    if naming is None and dataset is not None:
        naming = dataset
    if naming is not None:
        _check(naming, get_args(Naming), "naming rule")
    if name is not None and (not name or "/" in name or "\\" in name):
        raise ConfigError(f"list name must be a plain file-name part, got {name!r}")
    if out is None and codebase_root is None:
        raise ConfigError("give an output folder or a codebase root")
    path_text = _path_text(_line_root(format, dataset, naming, relative_to))
    given = [p for p in (features, labels, train_split, test_split)
             if p is not None and not isinstance(p, (FeatureSet, LabelSet, list, tuple))]
    if codebase_root is None:
        refuse_overlap(out, given, command="lists")  # type: ignore[arg-type]
    fs = as_feature_set(features)
    gt = as_label_set(labels, format=labels_format, features=fs) if labels is not None else None
    # What is read: the features' layout root (for fed-wsvad the combine folder, whose
    # dataset folder is where Fed_WSVAD keeps its lists), the labels, the split files.
    inputs: list[str | os.PathLike[str] | None] = [
        fs.root, gt.source if gt is not None and gt.source else None,
        *(p for p in (train_split, test_split) if p is not None and not isinstance(p, (list, tuple)))]
    is_xd = "xd" in (naming, dataset) or (gt is not None and gt.format == "xd")
    if is_xd and test_split is None and train_split is None:
        raise ConfigError("XD-Violence needs its official split (--test-split or --train-split): "
                          "annotations.txt lists only violent test videos, and training and test "
                          "normal videos (_label_A) cannot be told apart by name, so every unlisted "
                          "normal video would land in the test list and training would get none")
    file_names = codebase_files(format, dataset, name, upstream=codebase_root is not None)
    if codebase_root is not None:
        out_dir = Path(codebase_root) / (name or "dataset") if format == "fed-wsvad" else Path(codebase_root)
    else:
        out_dir = Path(out)  # type: ignore[arg-type]

    issues: list[LabelIssue] = [LabelIssue(i.video, "bad-features", i.message) for i in fs.issues]
    # Videos without frame labels are decided below (a split file or naming rule may label them).
    issues += [i for i in (gt.issues if gt is not None else ()) if i.kind != "no-labels"]
    video_label = _video_labels(fs, gt, naming, (train_split, test_split), issues)
    train, test = _splits(fs, gt, set(video_label), train_split, test_split, issues)

    # Every entry and every line is made before anything is written, so that a layout
    # error cannot leave a train list without its test list.
    records = fs.by_name()
    splits: tuple[tuple[Split, set[str]], ...] = (("train", train), ("test", test))
    by_split = {split: _entries(split, members, video_label, records, gt, fmt=format, dataset=dataset,
                                naming=naming, path_text=path_text, issues=issues)
                for split, members in splits}
    rows = {split: _rows(format, split, entries, dataset, path_text) for split, entries in by_split.items()}
    test_entries = by_split["test"]
    names = [file_names["train"], file_names["test"]]
    if test_entries and gt is not None:
        names += [file_names["gt"]] + ([file_names["gt_segment"], file_names["gt_label"]]
                                       if format == "vadclip" else [])
    if format == "fed-wsvad":
        names.append(file_names["video_label"])
    # A code base's checkout may hold the features (Fed_WSVAD reads its lists from the
    # folder above features_video/); there only the files themselves must not be or lie
    # inside an input.  An -o folder must not overlap an input at all.
    for target in ([out_dir / n for n in names] if codebase_root is not None else [out_dir]):
        refuse_overlap(target, inputs, command="lists")
    # claim_outputs refuses every file it did not write: what exists now is an earlier run's.
    replaced = tuple(out_dir / n for n in names if os.path.lexists(out_dir / n))
    claim_outputs(out_dir, names, command="lists")
    if replaced:
        log.info("replacing %d file(s) an earlier `vadfeat lists` wrote: %s", len(replaced),
                 ", ".join(map(str, replaced)))

    lists: dict[Split, Path] = {}
    for split_name, split_entries in by_split.items():
        if not split_entries:
            log.warning("the %s list is empty", split_name)
        lists[split_name] = write_text(out_dir / file_names[split_name], _text(format, rows[split_name]))
    files = list(lists.values())
    entries = [e for split_entries in by_split.values() for e in split_entries]
    train_abnormal = sum(len(e.paths) for e in by_split["train"] if e.label == 1)
    if format == "rtfm" or format == "fed-wsvad":
        train_abnormal = sum(1 for e in by_split["train"] if e.label == 1)
    gt_frames: int | None = None
    if test_entries and gt is not None:
        gt_files, gt_frames = _write_gt(out_dir, file_names, format, test_entries, records, gt, naming)
        files += gt_files
    elif test_entries:
        log.warning("no frame-level ground truth given: no %s written", file_names["gt"])
    if format == "fed-wsvad":
        files.append(write_pickle(out_dir / file_names["video_label"],
                                  {e.name: [float(e.label)] for e in entries}))
    return ListsResult(format=format, files=tuple(files), entries=tuple(entries), issues=tuple(issues),
                       train_abnormal_lines=train_abnormal, gt_frames=gt_frames, lists=lists,
                       lines={split: len(r) for split, r in rows.items()}, replaced=replaced)
