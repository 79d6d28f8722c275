"""`vadfeat demo`: the whole pipeline on generated videos, in well under a minute on a CPU.

Four videos are generated (:data:`DEMO_VIDEOS`: two training and two test videos of a
moving scene, one of each with an abrupt event from a known frame on), with
ShanghaiTech-style per-frame ground-truth masks; then
features are extracted (tiny model with random weights unless a checkpoint is
given), ground truth is read and aligned, RTFM-style lists are written, the
same features are exported to UR-DMU's one-file-per-crop layout (no recomputing)
with its lists, and a report with one plot per video is drawn.  Below ``out``:
``videos/``, ``ground_truth_masks/``, ``features/``, ``labels/``, ``lists/rtfm/``,
``export-ur-dmu/``, ``lists/ur-dmu/``, ``aligned/``, ``report/``
(:meth:`DemoResult.describe` names each).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vadfeat.dataset.align import align
from vadfeat.dataset.export import export
from vadfeat.dataset.labels import read_labels, write_labels
from vadfeat.dataset.lists import write_lists
from vadfeat.dataset.report import inspect
from vadfeat.engines.local import RunSummary, extract
from vadfeat.testing import synth

DEMO_VIDEOS = {  # name: (frames, first abnormal frame or None, split)
    "train_normal.mp4": (160, None, "train"),
    "train_event.mp4": (176, 96, "train"),
    "test_normal.mp4": (200, None, "test"),
    "test_event.mp4": (248, 150, "test"),
}


@dataclass(frozen=True)
class DemoResult:
    """Every output of :func:`run_demo` (folders below its ``out``) and the extraction's summary."""

    videos: Path
    masks: Path
    features: Path
    labels: Path
    aligned: Path
    lists: tuple[Path, ...]
    export: Path
    report: Path
    summary: RunSummary
    random_weights: bool
    list_files: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)

    def describe(self) -> str:
        """What the demo did, for a terminal: the extraction's summary, then every output."""
        weights = ("RANDOM WEIGHTS (tiny test model): the pipeline is real, the numbers mean "
                   "nothing; pass --checkpoint for real features" if self.random_weights
                   else "real weights")
        rows = [
            ("videos", f"{self.videos}/", "moving scenes, two with an abrupt event"),
            ("masks", f"{self.masks}/", "ShanghaiTech-style per-frame ground truth, one .npy per video"),
            ("features", f"{self.features}/", ".npy [T, 10, D] per video + .json sidecar with "
                                             "every setting"),
            ("manifest", f"{self.features / 'manifest.jsonl'}", "one record per extracted video"),
            ("ground truth", f"{self.labels}/", "canonical per-frame labels"),
            ("export", f"{self.export}/", "UR-DMU's layout, one [T, D] file per crop, sliced from "
                                          "the features, not recomputed"),
            *((f"lists {fmt}", ", ".join(map(str, files)), "") for fmt, files in self.list_files.items()),
            ("aligned GT", f"{self.aligned}", "16 x T frames per video, test-list order"),
            ("report", f"{self.report}", "open in a browser: one plot per video"),
        ]
        lines = [f"extract: {self.summary.describe()}", "", f"vadfeat demo finished ({weights})"]
        lines += [f"  {what:<14}  {where}" + (f"  ({note})" if note else "") for what, where, note in rows]
        return "\n".join(lines)


def run_demo(out: str | Path, *, checkpoint: str | Path | None = None, model: str | None = None,
             progress: bool = True) -> DemoResult:
    """Run the whole pipeline on :data:`DEMO_VIDEOS` below ``out`` (module docstring)."""
    out = Path(out)
    videos, masks = out / "videos", out / "ground_truth_masks"
    masks.mkdir(parents=True, exist_ok=True)
    for name, (n, event_at, _) in DEMO_VIDEOS.items():
        path = videos / name
        if not path.exists():
            synth.write_video(path, synth.scene_frames(n, width=320, height=240, event_at=event_at,
                                                       seed=len(name)), fps=25)
        mask = np.zeros(n, dtype=np.uint8)
        if event_at is not None:
            mask[event_at:] = 1
        np.save(masks / f"{Path(name).stem}.npy", mask)

    settings = ({"checkpoint": checkpoint, "model": model} if checkpoint is not None
                else {"random_weights": True, "model": model or "vit_tiny_patch16_224"})
    features = out / "features"
    # 10 crops ([T, 10, D] per video): what RTFM-style training code reads.
    summary = extract([videos], features, progress=progress, crops=10, batch_size=20, **settings)
    labels = read_labels(masks, format="npy-dir", features=features)
    write_labels(labels, out / "labels")
    split = {s: [Path(n).stem for n, v in DEMO_VIDEOS.items() if v[2] == s] for s in ("train", "test")}
    # One folder per format: both write gt-demo.npy.
    lists = write_lists(features, out / "lists" / "rtfm", format="rtfm", labels=labels,
                        train_split=split["train"], test_split=split["test"], name="demo")
    per_crop = export(features, out / "export-ur-dmu", format="ur-dmu")
    urdmu = write_lists(per_crop.out, out / "lists" / "ur-dmu", format="ur-dmu", labels=labels,
                        train_split=split["train"], test_split=split["test"], name="demo")
    aligned = align(features, labels, out / "aligned", name="demo", test_list=lists.lists["test"])
    report = inspect(features, out / "report", labels=labels)
    return DemoResult(videos=videos, masks=masks, features=features, labels=out / "labels",
                      aligned=aligned.gt_path,
                      lists=tuple(p for p in lists.files + urdmu.files if p.suffix == ".list"),
                      export=per_crop.out, report=report.index, summary=summary,
                      random_weights=checkpoint is None,
                      list_files={"RTFM": lists.files, "UR-DMU": urdmu.files})
