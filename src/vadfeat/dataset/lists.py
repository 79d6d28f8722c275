"""Train/test list files in the conventions of the common WSVAD code bases (docs/REFERENCE.md, section 3).

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
``xdviodet`` (HL-Net, Roc-Ng/XDVioDet) and ``macil-sd`` (JustinYuu/MACIL_SD)
    ``rgb.list``, ``rgb_test.list`` (the 5 crop files of each video, consecutive),
    ``gt.npy`` and, given audio features, ``audio.list``, ``audio_test.list`` (one
    file per video); with ``name`` each prefixed ``<name>_``.  Their loaders call a
    line normal when it contains ``_label_A``.

Audio lists (``xdviodet``, ``macil-sd``): both loaders pair RGB line ``i`` with audio
line ``i // 5``, so the audio list holds one line per video in the RGB list's video
order (see :class:`_AudioVisual` for the cited lines).  Audio features are found by
video name in their own folder (``<video>.npy`` with its sidecar, or XD-Violence's
``<video>__vggish.npy``), one ``[T, D]`` file per video.  A listed video without audio
features (``no-audio``), with an audio file of another shape (``bad-features``) or with
an audio ``T`` other than its RGB ``T`` (``length-mismatch``) is reported and left out
of both lists, so that the other videos still pair up.

Frame ground truth (every ``gt`` file): the test videos' frame labels in test-list
order, each fitted to exactly ``16 * T`` values by :func:`vadfeat.dataset.labels.fit_frame_labels`
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
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Literal, get_args

import numpy as np

from vadfeat._types import Dataset, ExportFormat, ListFormat, Naming, Split
from vadfeat.dataset.labels import (
    LabelFormat,
    LabelIssue,
    LabelSet,
    as_label_set,
    fit_frame_labels,
    label_spans,
)
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


_CROP_SUFFIX = re.compile(r"__\d+$")
_TRAILING_LABEL = re.compile(r"\s+-?\d+(\.\d*)?$")
_SPLIT_LABEL = re.compile(r"^(?P<name>.+?)\s+(?P<label>[01])(\.0*)?$")
_SH_NORMAL = re.compile(r"^\d+_\d{3}$")
_SH_ABNORMAL = re.compile(r"^\d+_\d{4}$")
#: Frames each feature row stands for in all five evaluations (scores repeated 16 times).
FRAMES_PER_SNIPPET = 16


@dataclass(frozen=True)
class ListEntry:
    """One video as listed: its split, label, label text, the files its lines name and, for
    the audio-visual formats given audio features, its audio feature file."""

    name: str
    split: Split
    label: int
    class_name: str
    paths: tuple[Path, ...]
    audio: Path | None = None


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
    #: Each split's audio list (audio-visual formats given audio features), one line per video.
    audio_lists: Mapping[Split, Path] = field(default_factory=dict)

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


# ----------------------------------------------------------------------- per-format writers


_Rows = list[tuple[str, ...]]
_PathText = Callable[[Path], str]


class ListWriter:
    """One code base's list convention; the base class is a per-crop list (one line per crop
    file, the crops of a video consecutive) with a ``.npy`` frame ground truth.

    A new list format is a subclass overriding what differs and one entry in
    :data:`WRITERS`.  Every method is pure except :meth:`write_gt` and :meth:`write_extra`.
    """

    format: ListFormat
    #: ``train_abnormal_lines`` counts videos (one line per video) instead of crop lines.
    counts_videos = False
    #: The :meth:`file_names` keys of each split's audio list (empty: the format has none).
    audio_keys: Mapping[Split, str] = MappingProxyType({})
    #: Whether the code base's loader always opens the audio lists.
    audio_required = False

    def file_names(self, dataset: Dataset | None, name: str | None, *, upstream: bool) -> dict[str, str]:
        """Relative paths of every file written (see :func:`codebase_files`)."""
        if not upstream and name is None and dataset is not None:
            own = self.file_names(dataset, None, upstream=True)
            return {key: PurePosixPath(path).name for key, path in own.items()}
        if not upstream:
            return self.local_names(name or "dataset")
        if dataset is None:
            raise ConfigError(f"--codebase-root needs --dataset (ucf, xd or shanghaitech): {self.format} "
                              "opens different files for each")
        return self.upstream_names(dataset)

    def local_names(self, name: str) -> dict[str, str]:
        """File names in an output folder, ``name`` being the ``name`` option."""
        raise NotImplementedError

    def upstream_names(self, dataset: Dataset) -> dict[str, str]:
        """Where the code base opens its files, relative to its checkout."""
        raise NotImplementedError

    def check_relative(self, dataset: Dataset | None, naming: Naming | None) -> None:
        """Raise :class:`ConfigError` when relative list lines cannot be read by this code base."""

    def paths(self, record: FeatureRecord, dataset: Dataset | None) -> tuple[Path, ...]:
        """The files a video's lines name; :class:`ConfigError` for a layout the loader cannot read."""
        return _per_crop_paths(record, self.format, dataset)

    def rows(self, split: Split, entries: Sequence[ListEntry], dataset: Dataset | None,
             path_text: _PathText) -> _Rows:
        """The items of one list file: one tuple per line (per CSV row for VadCLIP)."""
        return [(path_text(p),) for e in entries for p in e.paths]

    def text(self, rows: Sequence[tuple[str, ...]]) -> str:
        """A list file's text from its rows."""
        return "".join(f"{row[0]}\n" for row in rows)

    def splits_on_whitespace(self, dataset: Dataset | None) -> bool:
        """Whether the loader splits a line on whitespace (a path with a space breaks it)."""
        return False

    def normal_word(self, naming: Naming | None) -> str | None:
        """The word whose presence in a line makes the loader call it normal (``None``: none)."""
        return None

    def gt_keys(self) -> tuple[str, ...]:
        """The keys of :meth:`file_names` written with the frame ground truth."""
        return ("gt",)

    def extra_keys(self) -> tuple[str, ...]:
        """Keys of files written whether or not there is frame ground truth."""
        return ()

    def write_gt(self, out_dir: Path, names: Mapping[str, str], test_entries: Sequence[ListEntry],
                 records: Mapping[str, FeatureRecord], gt: _GroundTruth) -> list[Path]:
        """Write the test videos' frame ground truth (``gt.frames``: 16*T per video, concatenated)."""
        return [save_npy(out_dir / names["gt"], gt.frames)]

    def write_extra(self, out_dir: Path, names: Mapping[str, str],
                    entries: Sequence[ListEntry]) -> list[Path]:
        """Write the files of :meth:`extra_keys`."""
        return []

    def train_abnormal(self, train: Sequence[ListEntry]) -> int:
        """Training-list lines before the first normal video."""
        if self.counts_videos:
            return sum(1 for e in train if e.label == 1)
        return sum(len(e.paths) for e in train if e.label == 1)


class _Rtfm(ListWriter):
    """RTFM: one ``[T, crops, D]`` file per video (``dataset.py`` opens these names)."""

    format = "rtfm"
    counts_videos = True

    def local_names(self, name: str) -> dict[str, str]:
        return {"train": f"{name}-train.list", "test": f"{name}-test.list", "gt": f"gt-{name}.npy"}

    def upstream_names(self, dataset: Dataset) -> dict[str, str]:
        # XD-Violence: no code path in RTFM, see README.
        return {
            "ucf": {"train": "list/ucf-i3d.list", "test": "list/ucf-i3d-test.list",
                    "gt": "list/gt-ucf.npy"},
            "shanghaitech": {"train": "list/shanghai-i3d-train-10crop.list",
                             "test": "list/shanghai-i3d-test-10crop.list", "gt": "list/gt-sh.npy"},
            "xd": {"train": "list/xd-i3d.list", "test": "list/xd-i3d-test.list", "gt": "list/gt-xd.npy"},
        }[dataset]

    def paths(self, record: FeatureRecord, dataset: Dataset | None) -> tuple[Path, ...]:
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


class _UrDmu(ListWriter):
    """UR-DMU (``dataset_loader.py``, ``ucf_test.py``, ``xd_test.py``)."""

    format = "ur-dmu"

    def local_names(self, name: str) -> dict[str, str]:
        return {"train": f"{name}_Train.list", "test": f"{name}_Test.list", "gt": f"gt-{name}.npy"}

    def upstream_names(self, dataset: Dataset) -> dict[str, str]:
        return {
            "ucf": {"train": "list/UCF_Train.list", "test": "list/UCF_Test.list",
                    "gt": "frame_label/gt-ucf.npy"},
            "xd": {"train": "list/XD_Train.list", "test": "list/XD_Test.list",
                   "gt": "frame_label/xd_gt.npy"},
            "shanghaitech": {"train": "list/SH_Train.list", "test": "list/SH_Test.list",
                             "gt": "frame_label/gt-sh.npy"},
        }[dataset]

    def check_relative(self, dataset: Dataset | None, naming: Naming | None) -> None:
        if "xd" in (dataset, naming):
            raise ConfigError("UR-DMU's XD-Violence loader opens os.path.join(feature_path[0], line), "
                              "feature_path being the string <root_dir>/rgb: a relative line is joined "
                              "onto its first character and cannot be found; keep absolute paths "
                              "(leave the relative root out)")

    def splits_on_whitespace(self, dataset: Dataset | None) -> bool:
        return True

    def normal_word(self, naming: Naming | None) -> str | None:
        return "_label_A" if naming == "xd" else None


class _Pel4vad(ListWriter):
    """PEL4VAD (``configs.py``: ``cfg.train_list``, ``cfg.test_list``, ``cfg.gt``)."""

    format = "pel4vad"

    def local_names(self, name: str) -> dict[str, str]:
        return {"train": "train.list", "test": "test.list", "gt": f"gt-{name}.npy"}

    def upstream_names(self, dataset: Dataset) -> dict[str, str]:
        short = _SHORT[dataset]
        return {"train": f"list/{short}/train.list", "test": f"list/{short}/test.list",
                "gt": f"list/{short}/{short}-gt.npy"}

    def rows(self, split: Split, entries: Sequence[ListEntry], dataset: Dataset | None,
             path_text: _PathText) -> _Rows:
        if dataset == "shanghaitech" and split == "train":  # SHDataset reads a label column
            return [(f"{path_text(p)} {float(e.label)}",) for e in entries for p in e.paths]
        return super().rows(split, entries, dataset, path_text)

    def splits_on_whitespace(self, dataset: Dataset | None) -> bool:
        return dataset == "shanghaitech"

    def normal_word(self, naming: Naming | None) -> str | None:
        return {"ucf": "Normal", "xd": "_label_A"}.get(naming or "")


class _Vadclip(ListWriter):
    """VadCLIP (``src/ucf_option.py``, ``src/xd_option.py`` defaults)."""

    format = "vadclip"

    def local_names(self, name: str) -> dict[str, str]:
        return {"train": f"{name}_CLIP_rgb.csv", "test": f"{name}_CLIP_rgbtest.csv",
                "gt": f"gt_{name}.npy", "gt_segment": f"gt_segment_{name}.npy",
                "gt_label": f"gt_label_{name}.npy"}

    def upstream_names(self, dataset: Dataset) -> dict[str, str]:
        if dataset == "xd":
            return {"train": "list/xd_CLIP_rgb.csv", "test": "list/xd_CLIP_rgbtest.csv",
                    "gt": "list/gt.npy", "gt_segment": "list/gt_segment.npy",
                    "gt_label": "list/gt_label.npy"}
        short = _SHORT[dataset]
        return {"train": f"list/{short}_CLIP_rgb.csv", "test": f"list/{short}_CLIP_rgbtest.csv",
                "gt": f"list/gt_{short}.npy", "gt_segment": f"list/gt_segment_{short}.npy",
                "gt_label": f"list/gt_label_{short}.npy"}

    def rows(self, split: Split, entries: Sequence[ListEntry], dataset: Dataset | None,
             path_text: _PathText) -> _Rows:
        # Training: every crop file; test: crop 0 only (one score sequence per video).
        return [(path_text(p), e.class_name) for e in entries
                for p in (e.paths if split == "train" else e.paths[:1])]

    def text(self, rows: Sequence[tuple[str, ...]]) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows(rows)
        return buf.getvalue()

    def gt_keys(self) -> tuple[str, ...]:
        return ("gt", "gt_segment", "gt_label")

    def write_gt(self, out_dir: Path, names: Mapping[str, str], test_entries: Sequence[ListEntry],
                 records: Mapping[str, FeatureRecord], gt: _GroundTruth) -> list[Path]:
        return [*super().write_gt(out_dir, names, test_entries, records, gt),
                _save_object_npy(out_dir / names["gt_segment"], gt.segments),
                _save_object_npy(out_dir / names["gt_label"], gt.segment_labels)]


class _FedWsvad(ListWriter):
    """Fed_WSVAD: video names, and its ``GT/*.pickle`` files below ``<dataset_path>/<name>``."""

    format = "fed-wsvad"
    counts_videos = True

    def file_names(self, dataset: Dataset | None, name: str | None, *, upstream: bool) -> dict[str, str]:
        return {"train": "train_split.txt", "test": "test_split.txt",
                "gt": "GT/frame_label.pickle", "video_label": "GT/video_label.pickle"}

    def check_relative(self, dataset: Dataset | None, naming: Naming | None) -> None:
        raise ConfigError("fed-wsvad lists hold video names, not paths: relative paths do not "
                          "apply (Fed_WSVAD finds the features from its --dataset_path)")

    def paths(self, record: FeatureRecord, dataset: Dataset | None) -> tuple[Path, ...]:
        if record.layout != "fed-wsvad":
            raise ConfigError("fed-wsvad lists name folders under features_video/i3d/combine; "
                              f"these features are in the {record.layout} layout "
                              "(vadfeat export --format fed-wsvad)")
        return record.paths

    def rows(self, split: Split, entries: Sequence[ListEntry], dataset: Dataset | None,
             path_text: _PathText) -> _Rows:
        return [(e.name,) for e in entries]

    def extra_keys(self) -> tuple[str, ...]:
        return ("video_label",)

    def write_gt(self, out_dir: Path, names: Mapping[str, str], test_entries: Sequence[ListEntry],
                 records: Mapping[str, FeatureRecord], gt: _GroundTruth) -> list[Path]:
        per_video: dict[str, np.ndarray] = {}
        start = 0
        for e in test_entries:
            count = FRAMES_PER_SNIPPET * records[e.name].num_snippets
            per_video[e.name] = gt.frames[start:start + count].astype(np.float32)
            start += count
        return [write_pickle(out_dir / names["gt"], per_video)]

    def write_extra(self, out_dir: Path, names: Mapping[str, str],
                    entries: Sequence[ListEntry]) -> list[Path]:
        return [write_pickle(out_dir / names["video_label"], {e.name: [float(e.label)] for e in entries})]


class _AudioVisual(ListWriter):
    """The audio-visual code bases that read XD-Violence's 5-crop I3D RGB files beside one
    VGGish ``[T, 128]`` file per video, paired by list index.

    Their loaders (Roc-Ng/XDVioDet at f846d8c, ``dataset.py`` L34-36 and L66-68; JustinYuu/
    MACIL_SD at c20943f, ``avce_dataset.py`` L23-24 and L33-34) open the RGB list and the
    audio list and pair RGB line ``i`` with audio line ``i // 5``: the RGB list holds the
    five crop files of each video consecutively, the audio list one file per video in the
    same video order.  The test loops score five lines at a time (``DataLoader(batch_size=5,
    shuffle=False)``: XDVioDet ``main.py`` L31, MACIL_SD ``main.py`` L37-38) and average them
    (``torch.mean(..., 0)``: XDVioDet ``test.py`` L15, MACIL_SD ``test.py`` L21), then repeat
    each score 16 times against ``list/gt.npy``.  A line is normal when it contains
    ``_label_A`` (XDVioDet ``dataset.py`` L21, L48; MACIL_SD ``avce_dataset.py`` L19, L27).
    Audio and RGB must have the same ``T``: XDVioDet concatenates them along the feature
    axis (``dataset.py`` L69-72; an RGB file one row longer would be cut, and the 16*T
    ground truth would then be one row too long), MACIL_SD's model concatenates their
    projections row by row (``avce_network.py`` L51).
    """

    crops = 5
    audio_keys: Mapping[Split, str] = MappingProxyType({"train": "audio_train", "test": "audio_test"})

    def file_names(self, dataset: Dataset | None, name: str | None, *, upstream: bool) -> dict[str, str]:
        # option.py defaults (XDVioDet L5-11, MACIL_SD L5-12); both are XD-Violence only.
        own = {"train": "list/rgb.list", "test": "list/rgb_test.list", "gt": "list/gt.npy",
               "audio_train": "list/audio.list", "audio_test": "list/audio_test.list"}
        if upstream:
            return own
        if name is None:
            return {key: PurePosixPath(path).name for key, path in own.items()}
        return {key: f"{name}_{PurePosixPath(path).name}" for key, path in own.items()}

    def paths(self, record: FeatureRecord, dataset: Dataset | None) -> tuple[Path, ...]:
        if record.layout == "per-crop" or len(record.file_shape) == 2:
            paths = _per_crop_paths(record, self.format, dataset)
        else:
            paths = ()
        if len(paths) != self.crops:
            raise ConfigError(
                f"{self.format} lists need {self.crops} crop files per video (its loader pairs RGB "
                f"line i with audio line i // 5 and its test loop averages 5 lines); {record.name} "
                f"has shape {list(record.shape)} ({record.layout} layout): extract with --crops 5 "
                "and write the crops as files (vadfeat export FEATURES --format ur-dmu -o DIR, "
                "then list DIR)")
        return paths

    def normal_word(self, naming: Naming | None) -> str | None:
        return "_label_A"


class _XdVioDet(_AudioVisual):
    """HL-Net (Wu et al., ECCV 2020), Roc-Ng/XDVioDet: ``--modality MIX2`` reads RGB and audio;
    ``RGB`` reads the RGB lists alone, so the audio lists are optional."""

    format = "xdviodet"


class _MacilSd(_AudioVisual):
    """MACIL-SD (Yu et al., ACM MM 2022), JustinYuu/MACIL_SD: its ``Dataset`` always opens the
    audio lists (``avce_dataset.py`` L23-24)."""

    format = "macil-sd"
    audio_required = True


_SHORT: Mapping[Dataset, str] = {"ucf": "ucf", "xd": "xd", "shanghaitech": "sh"}

#: One writer per list format: a new format is one class and one entry here.
WRITERS: Mapping[ListFormat, ListWriter] = {
    w.format: w for w in (_FedWsvad(), _Rtfm(), _UrDmu(), _Pel4vad(), _Vadclip(), _XdVioDet(),
                          _MacilSd())}


def _writer(fmt: ListFormat) -> ListWriter:
    _check(fmt, get_args(ListFormat), "list format")
    return WRITERS[fmt]


def _per_crop_paths(record: FeatureRecord, fmt: ListFormat, dataset: Dataset | None) -> tuple[Path, ...]:
    """A per-crop format's files for one video: ``<video>__<k>.npy`` crop files, a flat
    ``[T, D]`` file, or (PEL4VAD ShanghaiTech) ``<video>_<k>.npy``."""
    sh_pel = fmt == "pel4vad" and dataset == "shanghaitech"
    if not (record.layout == "per-crop" or (record.layout == "flat" and len(record.file_shape) == 2)):
        raise ConfigError(f"{fmt} lists need per-crop [T, D] files; {record.name} is a "
                          f"{record.layout} file of shape {list(record.file_shape)} "
                          f"(vadfeat export --format {fmt}"
                          + (" --dataset shanghaitech)" if sh_pel else ")"))
    if record.layout == "per-crop":
        short = not record.paths[0].name.endswith("__0.npy")
        if sh_pel and not short:
            raise ConfigError(f"PEL4VAD's ShanghaiTech loader cuts a `_<k>.npy` suffix (6 characters) "
                              f"to get the video name; {record.paths[0].name} would give a wrong "
                              "name (vadfeat export --format pel4vad --dataset shanghaitech)")
        if short and not sh_pel:
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
    return _writer(fmt).file_names(dataset, name, upstream=upstream)


# ----------------------------------------------------------------------- rendering


def _line_root(writer: ListWriter, dataset: Dataset | None, naming: Naming | None,
               relative_to: str | os.PathLike[str] | None) -> Path | None:
    """The folder list lines are relative to (``None``: absolute lines); usage errors first."""
    if relative_to is None:
        return None
    writer.check_relative(dataset, naming)
    root = Path(relative_to)
    if not root.is_dir():
        raise ConfigError(f"the root for relative list paths {root} is not a folder")
    return root


def _path_text(root: Path | None) -> _PathText:
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


def _bad_name(entry: ListEntry, writer: ListWriter, dataset: Dataset | None, naming: Naming | None,
              path_text: _PathText) -> str | None:
    """Why ``entry`` cannot be written as list lines (``None``: it can)."""
    lines = [path_text(p) for p in entry.paths]
    for t in [entry.name, *lines]:
        if "\n" in t or "\r" in t:
            return f"{t!r} contains a line break: it cannot be one line of a list file"
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            return f"{t!r} holds bytes that are not UTF-8: list readers cannot open it"
    if writer.splits_on_whitespace(dataset):
        for line in lines:
            if any(c.isspace() for c in line):
                return (f"{line} contains whitespace, and {writer.format}'s loader splits list lines "
                        "on whitespace: rename it or export to a folder without spaces")
    return _wrong_loader_label(entry, writer, naming, lines)


def _wrong_loader_label(entry: ListEntry, writer: ListWriter, naming: Naming | None,
                        lines: Sequence[str]) -> str | None:
    # PEL4VAD (UCF, XD) and UR-DMU (XD) call a line normal when a word occurs anywhere in
    # it: refused only where that gives the video the wrong label.
    flag = writer.normal_word(naming)
    if not flag:
        return None
    for line in lines:
        if (flag in line) != (entry.label == 0):
            fix = ("export to a folder whose path does not contain it" if entry.label
                   else "name the video or its folder with it")
            return (f"{writer.format}'s loader labels a line normal when it contains {flag!r}: {line} "
                    f"{'contains' if entry.label else 'lacks'} it, but the video is "
                    f"{'abnormal' if entry.label else 'normal'}; {fix}")
    return None


@dataclass(frozen=True)
class _GroundTruth:
    """The test videos' frame labels (``frames``: 16*T per video, test-list order) and VadCLIP's
    per-video abnormal segments with their class labels."""

    frames: np.ndarray
    segments: list[list[list[int]]]
    segment_labels: list[list[str]]


def _gt_arrays(entries: Sequence[ListEntry], records: Mapping[str, FeatureRecord],
               frames_of: Callable[[str], np.ndarray | None], naming: Naming | None) -> _GroundTruth:
    """Concatenated 16*T frame labels and VadCLIP's per-video segments and labels."""
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
    return _GroundTruth(gt, segments, seg_labels)


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


def _require_files(record: FeatureRecord, writer: ListWriter) -> None:
    """:class:`ConfigError` for a video kept in a shard: every loader opens one ``.npy`` per line."""
    if record.shard is None:
        return
    target = writer.format if writer.format in get_args(ExportFormat) else "per-crop"
    raise ConfigError(f"{writer.format} lists name the .npy file(s) its loader opens, one per line; "
                      f"{record.name} is kept in the {record.shard.sink} shard "
                      f"{record.shard.shard.name}, which no list line can name: write the shards "
                      f"as .npy files first (vadfeat export FEATURES --format {target} -o DIR), "
                      "then list DIR")


def _entries(split: Split, members: set[str], video_label: Mapping[str, int],
             records: Mapping[str, FeatureRecord], gt: LabelSet | None, *, writer: ListWriter,
             dataset: Dataset | None, naming: Naming | None, path_text: _PathText,
             issues: list[LabelIssue]) -> list[ListEntry]:
    """The listed videos of one split, abnormal first; those that cannot be listed reported."""
    kept: list[ListEntry] = []
    for n in abnormal_first([n for n in members if n in video_label], video_label.__getitem__):
        _require_files(records[n], writer)
        e = ListEntry(name=n, split=split, label=video_label[n],
                      class_name=class_name(n, video_label[n], naming),
                      paths=writer.paths(records[n], dataset))
        why = _bad_name(e, writer, dataset, naming, path_text)
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


# ----------------------------------------------------------------------- the steps of write_lists


@dataclass(frozen=True)
class _Request:
    """The checked options of one :func:`write_lists` call."""

    writer: ListWriter
    dataset: Dataset | None
    naming: Naming | None
    out_dir: Path
    file_names: Mapping[str, str]
    path_text: _PathText
    upstream: bool


@dataclass
class _Plan:
    """Everything to be written, made before anything is written (so that a layout error
    cannot leave a train list without its test list)."""

    fs: FeatureSet
    gt: LabelSet | None
    inputs: list[str | os.PathLike[str] | None]
    issues: list[LabelIssue]
    audio: FeatureSet | None = None
    by_split: dict[Split, list[ListEntry]] = field(default_factory=dict)
    rows: dict[Split, _Rows] = field(default_factory=dict)

    @property
    def entries(self) -> list[ListEntry]:
        return [e for split_entries in self.by_split.values() for e in split_entries]

    def has_gt(self) -> bool:
        return bool(self.by_split["test"]) and self.gt is not None


def _request(fmt: ListFormat, out: str | os.PathLike[str] | None, *, naming: Naming | None,
             name: str | None, dataset: Dataset | None, codebase_root: str | os.PathLike[str] | None,
             relative_to: str | os.PathLike[str] | None, audio: object) -> _Request:
    """Usage errors, before anything is read."""
    writer = _writer(fmt)
    _check_audio_option(writer, audio)
    if dataset is not None:
        _check(dataset, get_args(Dataset), "dataset")
    naming = dataset if naming is None else naming
    if naming is not None:
        _check(naming, get_args(Naming), "naming rule")
    if name is not None and (not name or "/" in name or "\\" in name):
        raise ConfigError(f"list name must be a plain file-name part, got {name!r}")
    if out is None and codebase_root is None:
        raise ConfigError("give an output folder or a codebase root")
    path_text = _path_text(_line_root(writer, dataset, naming, relative_to))
    return _Request(writer=writer, dataset=dataset, naming=naming, out_dir=Path(), file_names={},
                    path_text=path_text, upstream=codebase_root is not None)


def _read_inputs(req: _Request, features: FeatureSet | str | os.PathLike[str], out: object,
                 labels: LabelSet | str | os.PathLike[str] | None,
                 labels_format: LabelFormat | Literal["auto"], split_args: Sequence[_SplitArg],
                 audio: FeatureSet | str | os.PathLike[str] | None) -> _Plan:
    """The features and labels, and the inputs an output must not overlap."""
    given = [p for p in (features, labels, *split_args, audio)
             if p is not None and not isinstance(p, (FeatureSet, LabelSet, list, tuple))]
    if not req.upstream:
        refuse_overlap(out, given, command="lists")  # type: ignore[arg-type]
    fs = as_feature_set(features)
    gt = as_label_set(labels, format=labels_format, features=fs) if labels is not None else None
    afs = as_feature_set(audio) if audio is not None else None
    # What is read: the features' layout root (for fed-wsvad the combine folder, whose
    # dataset folder is where Fed_WSVAD keeps its lists), the labels, the split files.
    inputs: list[str | os.PathLike[str] | None] = [
        fs.root, gt.source if gt is not None and gt.source else None,
        *(p for p in split_args if p is not None and not isinstance(p, (list, tuple))),
        afs.root if afs is not None else None]
    issues: list[LabelIssue] = [LabelIssue(i.video, "bad-features", i.message) for i in fs.issues]
    if afs is not None:
        issues += [LabelIssue(i.video, "bad-features", f"audio features: {i.message}") for i in afs.issues]
    # Videos without frame labels are decided below (a split file or naming rule may label them).
    issues += [i for i in (gt.issues if gt is not None else ()) if i.kind != "no-labels"]
    return _Plan(fs=fs, gt=gt, inputs=inputs, issues=issues, audio=afs)


def _require_xd_split(req: _Request, gt: LabelSet | None, train_split: _SplitArg,
                      test_split: _SplitArg) -> None:
    is_xd = "xd" in (req.naming, req.dataset) or (gt is not None and gt.format == "xd")
    if is_xd and test_split is None and train_split is None:
        raise ConfigError("XD-Violence needs its official split (--test-split or --train-split): "
                          "annotations.txt lists only violent test videos, and training and test "
                          "normal videos (_label_A) cannot be told apart by name, so every unlisted "
                          "normal video would land in the test list and training would get none")


def _targets(req: _Request, out: str | os.PathLike[str] | None, name: str | None,
             codebase_root: str | os.PathLike[str] | None) -> _Request:
    """The output folder and the file names in it."""
    file_names = req.writer.file_names(req.dataset, name, upstream=codebase_root is not None)
    if codebase_root is None:
        out_dir = Path(out)  # type: ignore[arg-type]
    elif req.writer.format == "fed-wsvad":
        out_dir = Path(codebase_root) / (name or "dataset")
    else:
        out_dir = Path(codebase_root)
    return replace(req, out_dir=out_dir, file_names=file_names)


def _plan_lists(req: _Request, plan: _Plan, train_split: _SplitArg, test_split: _SplitArg) -> None:
    """Labels, splits, entries and rows of both lists (into ``plan``)."""
    video_label = _video_labels(plan.fs, plan.gt, req.naming, (train_split, test_split), plan.issues)
    train, test = _splits(plan.fs, plan.gt, set(video_label), train_split, test_split, plan.issues)
    records = plan.fs.by_name()
    splits: tuple[tuple[Split, set[str]], ...] = (("train", train), ("test", test))
    for split, members in splits:
        plan.by_split[split] = _entries(split, members, video_label, records, plan.gt, writer=req.writer,
                                        dataset=req.dataset, naming=req.naming,
                                        path_text=req.path_text, issues=plan.issues)
        if plan.audio is not None:
            plan.by_split[split] = _with_audio(plan.by_split[split], records, plan.audio, req,
                                               plan.issues)
        plan.rows[split] = req.writer.rows(split, plan.by_split[split], req.dataset, req.path_text)


def _claim(req: _Request, plan: _Plan) -> tuple[Path, ...]:
    """Refuse targets that overlap an input, claim the files; returns those an earlier run wrote."""
    keys = ["train", "test", *(req.writer.gt_keys() if plan.has_gt() else ()), *req.writer.extra_keys(),
            *(req.writer.audio_keys.values() if plan.audio is not None else ())]
    names = [req.file_names[k] for k in keys]
    out_dir = req.out_dir
    # A code base's checkout may hold the features (Fed_WSVAD reads its lists from the
    # folder above features_video/); there only the files themselves must not be or lie
    # inside an input.  An -o folder must not overlap an input at all.
    for target in ([out_dir / n for n in names] if req.upstream else [out_dir]):
        refuse_overlap(target, plan.inputs, command="lists")
    # claim_outputs refuses every file it did not write: what exists now is an earlier run's.
    replaced = tuple(out_dir / n for n in names if os.path.lexists(out_dir / n))
    claim_outputs(out_dir, names, command="lists")
    if replaced:
        log.info("replacing %d file(s) an earlier `vadfeat lists` wrote: %s", len(replaced),
                 ", ".join(map(str, replaced)))
    return replaced


def _write(req: _Request, plan: _Plan, replaced: tuple[Path, ...]) -> ListsResult:
    """Write the lists, the ground truth and the format's extra files."""
    writer, out_dir, names = req.writer, req.out_dir, req.file_names
    lists: dict[Split, Path] = {}
    for split, split_entries in plan.by_split.items():
        if not split_entries:
            log.warning("the %s list is empty", split)
        lists[split] = write_text(out_dir / names[split], writer.text(plan.rows[split]))
    files = list(lists.values())
    gt_frames: int | None = None
    if plan.has_gt():
        gt = _ground_truth(plan, req.naming)
        files += writer.write_gt(out_dir, names, plan.by_split["test"], plan.fs.by_name(), gt)
        gt_frames = int(gt.frames.size)
    elif plan.by_split["test"]:
        log.warning("no frame-level ground truth given: no %s written", names["gt"])
    files += writer.write_extra(out_dir, names, plan.entries)
    audio_lists = _write_audio_lists(req, plan) if plan.audio is not None else {}
    files += audio_lists.values()
    return ListsResult(format=writer.format, files=tuple(files), entries=tuple(plan.entries),
                       issues=tuple(plan.issues), train_abnormal_lines=writer.train_abnormal(
                           plan.by_split["train"]),
                       gt_frames=gt_frames, lists=lists,
                       lines={split: len(r) for split, r in plan.rows.items()}, replaced=replaced,
                       audio_lists=audio_lists)


def _ground_truth(plan: _Plan, naming: Naming | None) -> _GroundTruth:
    gt = plan.gt
    assert gt is not None

    def frames_of(n: str) -> np.ndarray | None:
        v = gt.get(n)
        return None if v is None else v.frames

    return _gt_arrays(plan.by_split["test"], plan.fs.by_name(), frames_of, naming)


def _check_audio_option(writer: ListWriter, audio: object) -> None:
    if audio is not None and not writer.audio_keys:
        with_audio = ", ".join(f for f, w in WRITERS.items() if w.audio_keys)
        raise ConfigError(f"{writer.format} lists have no audio list; audio features are listed for "
                          f"{with_audio}")
    if audio is None and writer.audio_required:
        raise ConfigError(f"{writer.format}'s loader always opens its audio lists: give the audio "
                          "features (--audio DIR)")


def _audio_record(record: FeatureRecord, audio: FeatureSet) -> FeatureRecord | str:
    """The audio features of one RGB video, or why there are none to list."""
    # XD-Violence's own VGGish files are named <video>__vggish.npy.
    hits = audio.find(record.name) or audio.find(f"{record.name}__vggish")
    if not hits:
        return f"no audio features named {record.stem} in {audio.root}"
    if len(hits) > 1:
        return f"audio features {', '.join(h.name for h in hits)} all match it"
    return hits[0]


def _with_audio(entries: Sequence[ListEntry], records: Mapping[str, FeatureRecord], audio: FeatureSet,
                req: _Request, issues: list[LabelIssue]) -> list[ListEntry]:
    """``entries`` with their audio file; a video without usable audio is reported and left out
    of both lists (its RGB lines would otherwise pair with another video's audio)."""
    kept: list[ListEntry] = []
    for e in entries:
        rgb = records[e.name]
        found = _audio_record(rgb, audio)
        if isinstance(found, str):
            issues.append(LabelIssue(e.name, "no-audio", f"{found}; left out of the lists"))
            continue
        if found.shard is not None:
            issues.append(LabelIssue(e.name, "bad-features", (
                f"audio features {found.location} are kept in a shard; {req.writer.format}'s loader "
                "opens one .npy file per video (vadfeat export them with --format flat first): "
                "left out of the lists")))
            continue
        if len(found.paths) != 1 or len(found.file_shape) != 2:
            issues.append(LabelIssue(e.name, "bad-features", (
                f"audio features {found.paths[0]} are a {found.layout} file of shape {list(found.shape)}; "
                f"{req.writer.format}'s loader reads one [T, D] file per video: left out of the lists")))
            continue
        if found.file_shape[0] != rgb.num_snippets:
            issues.append(LabelIssue(e.name, "length-mismatch", (
                f"audio features {found.paths[0]} have {found.file_shape[0]} rows, its RGB features "
                f"{rgb.num_snippets}: {req.writer.format} pairs them row by row (extract the audio "
                "on the RGB extraction's grid); left out of the lists")))
            continue
        line = req.path_text(found.paths[0])
        if "\n" in line or "\r" in line or _not_utf8(line):
            issues.append(LabelIssue(e.name, "bad-name", f"audio features {line!r} cannot be one line "
                                     "of a list file; left out of the lists"))
            continue
        kept.append(replace(e, audio=found.paths[0]))
    return kept


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _write_audio_lists(req: _Request, plan: _Plan) -> dict[Split, Path]:
    """One audio line per listed video, in the RGB list's video order."""
    written: dict[Split, Path] = {}
    for split, key in req.writer.audio_keys.items():
        lines = "".join(f"{req.path_text(e.audio)}\n" for e in plan.by_split[split] if e.audio is not None)
        written[split] = write_text(req.out_dir / req.file_names[key], lines)
    return written


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
    audio: FeatureSet | str | os.PathLike[str] | None = None,
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

    ``audio`` (``xdviodet``, ``macil-sd``; required for ``macil-sd``): the audio features
    (``[T, D]`` per video, named as the RGB videos) for the audio lists; a listed video
    without audio features, or whose audio ``T`` differs from its RGB ``T``, is reported and
    left out of both lists (module docstring, "Audio lists").
    """
    req = _request(format, out, naming=naming, name=name, dataset=dataset, codebase_root=codebase_root,
                   relative_to=relative_to, audio=audio)
    plan = _read_inputs(req, features, out, labels, labels_format, (train_split, test_split), audio)
    _require_xd_split(req, plan.gt, train_split, test_split)
    req = _targets(req, out, name, codebase_root)
    _plan_lists(req, plan, train_split, test_split)
    replaced = _claim(req, plan)
    return _write(req, plan, replaced)
