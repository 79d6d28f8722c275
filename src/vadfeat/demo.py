"""`vadfeat demo`: the whole pipeline on generated videos, in well under a minute on a CPU.

Four videos are generated (:data:`DEMO_VIDEOS`: two training and two test videos of a
moving scene, one of each with an abrupt event from a known frame on), with
ShanghaiTech-style per-frame ground-truth masks; then
features are extracted (tiny model with random weights unless a checkpoint is
given), ground truth is read and aligned, RTFM-style lists are written, the
same features are exported to UR-DMU's one-file-per-crop layout (no recomputing)
with its lists, and a report with one plot per video is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    videos: Path
    features: Path
    labels: Path
    aligned: Path
    lists: tuple[Path, ...]
    report: Path
    summary: RunSummary
    random_weights: bool


def run_demo(out: str | Path, *, checkpoint: str | Path | None = None, model: str | None = None,
             progress: bool = True) -> DemoResult:
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
    lists = write_lists(features, out / "lists", format="rtfm", labels=labels,
                        train_split=split["train"], test_split=split["test"], name="demo")
    per_crop = export(features, out / "export-ur-dmu", format="ur-dmu")
    urdmu = write_lists(per_crop.out, out / "lists", format="ur-dmu", labels=labels,
                        train_split=split["train"], test_split=split["test"], name="demo")
    test_list = next(p for p in lists.files if p.name.endswith("test.list"))
    aligned = align(features, labels, out / "aligned", name="demo", test_list=test_list)
    report = inspect(features, out / "report", labels=labels)
    return DemoResult(videos=videos, features=features, labels=out / "labels",
                      aligned=aligned.gt_path,
                      lists=tuple(p for p in lists.files + urdmu.files if p.suffix == ".list"),
                      report=report.index,
                      summary=summary, random_weights=checkpoint is None)
