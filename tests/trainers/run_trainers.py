"""Run the real RTFM, UR-DMU, PEL4VAD, VadCLIP and Fed_WSVAD trainers on vadfeat's output.

The check behind docs/TRAINING.md.  Given a folder of upstream checkouts (``RTFM/``,
``UR-DMU/``, ``PEL4VAD/``, ``VadCLIP/``, ``Fed_WSVAD/``; argument ``--codebases`` or
``VADFEAT_CODEBASES``), for every code base and feature width it:

1. copies the checkout into a work folder;
2. writes a small extraction of that width (random ``[T, crops, D]`` float32 files with
   the sidecar fields vadfeat writes) and the dataset's own annotation and split files;
3. runs the README's commands: ``vadfeat labels``, ``vadfeat export``, the shipped files
   moved aside, ``vadfeat lists --codebase-root``;
4. applies the edits that docs/TRAINING.md names for that width (``EDITS``: each one is
   checked at its file and line before it is made), plus the CPU shims (``SHIMS``) and
   shortened runs (``SHORT``) that only this check needs;
5. runs the code base's training entry point for a few steps and its test loop, and
   records whether it ran and the AUC/AP lines it printed.

``--instructions old`` applies the edits the README named before issue 21 instead, to show
what they did.  The trainers run with ``--python`` (a Python with torch, numpy, scipy,
scikit-learn, pandas, tqdm, ftfy, regex, matplotlib); ``tests/trainers/shims`` is put first
on their PYTHONPATH (no-op ``.cuda()``, visdom and torchvision stand-ins).

Usage::

    python tests/trainers/run_trainers.py --codebases /path/to/checkouts \\
        --python /path/to/trainer-venv/bin/python [--only rtfm,pel4vad] [--widths 1024,1408]

Prints one line per run and a JSON summary (``--json FILE`` writes it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHIMS_DIR = HERE / "shims"

# Feature widths vadfeat writes (`vadfeat models`): VideoMAE V2 ViT-S/B/L/H/g, CLIP ViT-B
# embedding, CLIP ViT-L embedding, I3D InceptionV1, I3D ResNet-50.
WIDTHS = {
    384: "VideoMAE V2 ViT-S", 512: "CLIP ViT-B/16, ViT-B/32", 768: "VideoMAE V2 ViT-B; CLIP ViT-L/14",
    1024: "VideoMAE V2 ViT-L; I3D InceptionV1", 1280: "VideoMAE V2 ViT-H", 1408: "VideoMAE V2 ViT-g",
    2048: "I3D ResNet-50",
}
# Fed_WSVAD reads [T, 3, D] `stats` features, which only VideoMAE V2 backbones give.
STATS_WIDTHS = (384, 768, 1024, 1280, 1408)

# The upstream commits these edits were written against (a line number is checked before use).
COMMITS = {
    "RTFM": "cf938f4c38c908ba19936ecfc60d54de7da0d8b9",
    "UR-DMU": "40cfdf5f8bebbc3b59373935f9d6ca00e2f32bbc",
    "PEL4VAD": "eeb31f4ca10b805996fb39e5c395f1a8dc119096",
    "VadCLIP": "f643c9132adcc0ea2aa549568ab30c49a45f0159",
    "Fed_WSVAD": "25b4249fbc62e695bb0faad803b0281399809f66",
}


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` on line ``line`` of ``file`` (``{D}``: the width, ``{A}``:
    the number of abnormal training-list lines ``vadfeat lists`` printed)."""

    file: str
    line: int
    old: str
    new: str
    why: str = ""

    def render(self, width: int, abnormal: int) -> tuple[str, str]:
        fill = {"D": str(width), "A": str(abnormal)}
        return self.old, re.sub(r"\{([DA])\}", lambda m: fill[m.group(1)], self.new)


@dataclass
class Plan:
    """How one code base is run: dataset, crops, edits by kind, command line."""

    codebase: str
    dataset: str
    crops: int
    widths: tuple[int, ...]
    unmodified: tuple[int, ...]              # widths that need no width edit
    width_edits: list[Edit]                  # needed for widths not in `unmodified`
    always: list[Edit] = field(default_factory=list)     # every width (split index, numpy)
    old_edits: list[Edit] = field(default_factory=list)  # the README's edits before issue 21
    shims: list[Edit] = field(default_factory=list)      # CPU only (this check)
    short: list[Edit] = field(default_factory=list)      # shorter run (this check)
    command: list[str] = field(default_factory=list)
    then: list[str] = field(default_factory=list)       # a second entry point, run after training
    workdir: str = "."


NP_INT = "numpy >= 1.24 removed np.int"

PLANS: dict[str, Plan] = {
    "rtfm": Plan(
        codebase="RTFM", dataset="ucf", crops=10, widths=tuple(WIDTHS), unmodified=(2048,),
        width_edits=[
            Edit("model.py", 137, "nn.Conv1d(in_channels=2048, out_channels=512, kernel_size=1,",
                 "nn.Conv1d(in_channels=len_feature, out_channels=512, kernel_size=1,"),
            Edit("model.py", 143, "nn.Conv1d(in_channels=2048, out_channels=2048, kernel_size=3,",
                 "nn.Conv1d(in_channels=2048, out_channels=len_feature, kernel_size=3,",
                 "conv_5's input is 4 x 512 concatenated channels; its output is added to the input"),
            Edit("model.py", 146, "nn.BatchNorm1d(2048),", "nn.BatchNorm1d(len_feature),"),
            Edit("model.py", 181, "self.Aggregate = Aggregate(len_feature=2048)",
                 "self.Aggregate = Aggregate(len_feature=n_features)"),
        ],
        always=[
            Edit("dataset.py", 47, "self.list = self.list[810:]", "self.list = self.list[{A}:]"),
            Edit("dataset.py", 51, "self.list = self.list[:810]", "self.list = self.list[:{A}]"),
            Edit("utils.py", 35, "dtype=np.int)", "dtype=int)", NP_INT),
        ],
        old_edits=[
            Edit("dataset.py", 47, "self.list = self.list[810:]", "self.list = self.list[{A}:]"),
            Edit("dataset.py", 51, "self.list = self.list[:810]", "self.list = self.list[:{A}]"),
            Edit("utils.py", 35, "dtype=np.int)", "dtype=int)", NP_INT),
        ],
        short=[Edit("main.py", 65, "if step % 5 == 0 and step > 200:", "if step == args.max_epoch:")],
        command=["main.py", "--dataset", "ucf", "--feature-size", "{D}", "--batch-size", "2",
                 "--max-epoch", "2"],
    ),
    "ur-dmu": Plan(
        codebase="UR-DMU", dataset="ucf", crops=10, widths=tuple(WIDTHS), unmodified=(1024,),
        width_edits=[
            Edit("ucf_main.py", 28, "config.len_feature = 1024", "config.len_feature = {D}"),
            Edit("xd_main.py", 27, "config.len_feature = 1024", "config.len_feature = {D}"),
            Edit("ucf_infer.py", 105, "config.len_feature = 1024", "config.len_feature = {D}"),
            Edit("xd_infer.py", 68, "config.len_feature = 1024", "config.len_feature = {D}"),
        ],
        always=[
            Edit("dataset_loader.py", 24, "self.vid_list[8100:]", "self.vid_list[{A}:]"),
            Edit("dataset_loader.py", 26, "self.vid_list[:8100]", "self.vid_list[:{A}]"),
            Edit("dataset_loader.py", 54, "dtype = np.int)", "dtype = int)", NP_INT),
            Edit("ucf_test.py", 30, "_data, _label = next(load_iter)",
                 "_data, _label, _name = next(load_iter)",
                 "UCF_crime returns (data, label, name) in Test mode"),
        ],
        old_edits=[
            Edit("ucf_main.py", 28, "config.len_feature = 1024", "config.len_feature = {D}"),
            Edit("dataset_loader.py", 24, "self.vid_list[8100:]", "self.vid_list[{A}:]"),
            Edit("dataset_loader.py", 26, "self.vid_list[:8100]", "self.vid_list[:{A}]"),
            Edit("dataset_loader.py", 54, "dtype = np.int)", "dtype = int)", NP_INT),
        ],
        short=[Edit("ucf_main.py", 34, "batch_size = 64,", "batch_size = 8,"),
               Edit("ucf_main.py", 39, "batch_size = 64,", "batch_size = 8,"),
               Edit("ucf_main.py", 73, "if step % 10 == 0 and step > 10:", "if step == config.num_iters:")],
        shims=[Edit("ucf_infer.py", 17, "map_location = 'cuda:0'", "map_location = 'cpu'")],
        command=["ucf_main.py", "--lr", "[0.0001]*3"],
        then=["ucf_infer.py"],          # loads the models/ucf_trans_2022.pkl that training saved
    ),
    "pel4vad": Plan(
        codebase="PEL4VAD", dataset="shanghaitech", crops=10, widths=tuple(WIDTHS), unmodified=(1024,),
        width_edits=[
            Edit("configs.py", 84, "cfg.feat_dim = 1024", "cfg.feat_dim = {D}"),
            Edit("modules.py", 14, "self.linear1 = nn.Conv1d(d_model, d_model // 2, kernel_size=1)",
                 "self.linear1 = nn.Conv1d(d_model, 512, kernel_size=1)",
                 "its output is compared with the 512-wide CLIP text tokens of *-prompt.npy"),
            Edit("modules.py", 15, "self.linear2 = nn.Conv1d(d_model // 2, out_dim, kernel_size=1)",
                 "self.linear2 = nn.Conv1d(512, out_dim, kernel_size=1)"),
        ],
        old_edits=[Edit("configs.py", 84, "cfg.feat_dim = 1024", "cfg.feat_dim = {D}")],
        shims=[Edit("main.py", 109, 'device = torch.device("cuda")', 'device = torch.device("cpu")')],
        short=[Edit("configs.py", 92, "cfg.max_epoch = 50", "cfg.max_epoch = 1"),
               Edit("configs.py", 93, "cfg.workers = 8", "cfg.workers = 0")],
        command=["main.py", "--dataset", "sh", "--mode", "train"],
    ),
    "vadclip": Plan(
        codebase="VadCLIP", dataset="ucf", crops=10, widths=tuple(WIDTHS), unmodified=(512,),
        width_edits=[
            Edit("src/model.py", 109, "self.classifier = nn.Linear(visual_width, 1)",
                 "self.classifier = nn.Linear(visual_width, 1); "
                 "self.input_proj = nn.Linear({D}, visual_width)",
                 "text features (512) + visual_attn: the visual width must stay 512"),
            Edit("src/model.py", 162, "images = images.to(torch.float)",
                 "images = self.input_proj(images.to(torch.float))"),
        ],
        shims=[Edit("src/model.py", 111, 'clip.load("ViT-B/16", device)', 'clip.load("{CLIP}", device)'),
               Edit("src/utils/layers.py", 176, ".to('cuda')", ".to('cpu')"),
               Edit("src/utils/layers.py", 178, ".to('cuda')", ".to('cpu')")],
        short=[Edit("src/ucf_train.py", 99, "if step % 1280 == 0 and step != 0:", "if i == 0:")],
        command=["src/ucf_train.py", "--batch-size", "2", "--max-epoch", "1"],
    ),
    "fed-wsvad": Plan(
        codebase="Fed_WSVAD", dataset="shanghaitech", crops=3, widths=STATS_WIDTHS, unmodified=(1408,),
        width_edits=[
            Edit("VAD/utils.py", 49, "zeros = np.zeros((pad_width, 3, 1408))",
                 "zeros = np.zeros((pad_width, 3, {D}))",
                 "pads every training video shorter than --max-seqlen (300 rows)"),
        ],
        shims=[Edit("VAD/main.py", 16, 'device = torch.device("cuda:{}".format(args.device))',
                    'device = torch.device("cpu")')],
        command=["main.py", "--dataset_path", "{DATA}", "--dataset_name", "shanghaitech",
                 "--feature_size", "{D}", "--sample_size", "2", "--snapshot", "2", "--max_epoch", "1",
                 "--plot", "0"],
        workdir="VAD",
    ),
}

# Files each repository ships at the paths `vadfeat lists --codebase-root` writes (moved
# aside once, as the README says).
SHIPPED = {
    "rtfm": ["list/ucf-i3d.list", "list/ucf-i3d-test.list", "list/gt-ucf.npy"],
    "ur-dmu": ["list/UCF_Train.list", "list/UCF_Test.list", "frame_label/gt-ucf.npy"],
    "pel4vad": ["list/sh/train.list", "list/sh/test.list", "list/sh/sh-gt.npy"],
    "vadclip": ["list/ucf_CLIP_rgb.csv", "list/ucf_CLIP_rgbtest.csv", "list/gt_ucf.npy",
                "list/gt_segment_ucf.npy", "list/gt_label_ucf.npy"],
    "fed-wsvad": [],
}

# ----------------------------------------------------------------------------- inputs

UCF_TRAIN = ["Abuse001_x264", "Arrest001_x264", "Arson001_x264",
             "Normal_Videos_001_x264", "Normal_Videos_002_x264", "Normal_Videos_004_x264"]
UCF_TEST = {"Burglary005_x264": (20, 140), "Explosion002_x264": (100, 300),
            "Normal_Videos_003_x264": None, "Normal_Videos_006_x264": None}
SH_TRAIN = {"01_0014": 1, "01_0016": 1, "01_001": 0, "01_002": 0}       # 01_0014/16 are in relabel.list
SH_TEST = {"01_0015": (30, 200), "01_0025": (100, 250), "01_003": None, "01_004": None}


def _rows(i: int) -> int:
    return 20 + (7 * i) % 23        # 20..42 rows: below every trainer's fixed length


def make_extraction(root: Path, names: list[str], crops: int, width: int) -> dict[str, int]:
    """Random ``[T, crops, width]`` float32 features with sidecars; returns frames per video."""
    root.mkdir(parents=True)
    frames = {}
    for i, name in enumerate(names):
        rows = _rows(i)
        arr = np.random.default_rng(i).standard_normal((rows, crops, width)).astype(np.float32)
        np.save(root / f"{name}.npy", arr)
        frames[name] = 16 * rows + 5
        side = {"video": f"{name}.mp4", "num_frames": frames[name], "shape": [rows, crops, width],
                "snippets": [[16 * r, 16 * r + 15] for r in range(rows)]}
        if crops == 10:
            side["crop_order"] = ["tl", "tr", "bl", "br", "c", "ftl", "ftr", "fbl", "fbr", "fc"]
        (root / f"{name}.json").write_text(json.dumps(side))
    (root / "manifest.jsonl").write_text("")
    return frames


def make_dataset(tmp: Path, dataset: str, crops: int, width: int) -> dict[str, Path]:
    """Features, annotations and splits of a tiny UCF-Crime or ShanghaiTech."""
    if dataset == "ucf":
        names = UCF_TRAIN + list(UCF_TEST)
        make_extraction(tmp / "feats", names, crops, width)
        ann = tmp / "Temporal_Anomaly_Annotation.txt"
        ann.write_text("".join(
            f"{n}.mp4  {n[:-7].rstrip('0123456789') if span else 'Normal'}  "
            f"{span[0] if span else -1}  {span[1] if span else -1}  -1  -1\n"
            for n, span in UCF_TEST.items()))
        test = tmp / "Anomaly_Test.txt"
        test.write_text("".join(
            f"{'Testing_Normal_Videos_Anomaly' if span is None else n[:-7].rstrip('0123456789')}/{n}.mp4\n"
            for n, span in UCF_TEST.items()))
        return {"feats": tmp / "feats", "ann": ann, "test": test}
    names = list(SH_TRAIN) + list(SH_TEST)
    frames = make_extraction(tmp / "feats", names, crops, width)
    masks = tmp / "test_frame_mask"
    masks.mkdir()
    for n, span in SH_TEST.items():
        mask = np.zeros(frames[n], dtype=np.uint8)
        if span:
            mask[span[0]:span[1]] = 1
        np.save(masks / f"{n}.npy", mask)
    train = tmp / "SH_Train.txt"
    train.write_text("".join(f"{n} {y}\n" for n, y in SH_TRAIN.items()))
    test = tmp / "SH_Test.txt"
    test.write_text("".join(f"{n} {int(s is not None)}\n" for n, s in SH_TEST.items()))
    return {"feats": tmp / "feats", "ann": masks, "test": test, "train": train}


# ----------------------------------------------------------------------------- running


def vadfeat(*args: str | Path, cwd: Path) -> str:
    """Run ``python -m vadfeat ARGS`` (this checkout's src first); the output, or raise."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([sys.executable, "-m", "vadfeat", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"vadfeat {' '.join(map(str, args))} exited {proc.returncode}:\n"
                           f"{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def apply(edit: Edit, root: Path, width: int, abnormal: int, extra: dict[str, str]) -> None:
    """Make one edit, after checking that its text is on the line the docs name."""
    path = root / edit.file
    lines = path.read_text().split("\n")
    old, new = edit.render(width, abnormal)
    for key, value in extra.items():
        new = new.replace("{" + key + "}", value)
    line = lines[edit.line - 1] if edit.line <= len(lines) else "(the file is shorter)"
    if old not in line:
        raise RuntimeError(f"{edit.file}:{edit.line}: expected {old!r}, found {line.strip()!r} "
                           f"(not the commit the docs name?)")
    lines[edit.line - 1] = line.replace(old, new)
    path.write_text("\n".join(lines))


def abnormal_lines(lists_output: str) -> int:
    """The abnormal training-list line count ``vadfeat lists`` prints."""
    # "training list: the first 30 lines are abnormal (...)"
    m = re.search(r"first (\d+) lines? (?:are|is) abnormal", lists_output)
    if not m:
        raise RuntimeError(f"no abnormal line count in the lists output:\n{lists_output}")
    return int(m.group(1))


def prepare(key: str, width: int, codebases: Path, work: Path, crops: int | None = None) -> tuple[Path, int]:
    """Checkout copy + inputs + labels + export + lists; returns (checkout, abnormal lines)."""
    plan = PLANS[key]
    crops = plan.crops if crops is None else crops
    one_crop_rtfm = key == "rtfm" and crops == 1
    if one_crop_rtfm:
        crops = 10      # `lists --format rtfm` refuses 1-crop files: list 10, then keep crop 0
    tmp = work / f"{key}-{width}-{crops if not one_crop_rtfm else 1}crop"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    repo = tmp / plan.codebase
    shutil.copytree(codebases / plan.codebase, repo, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    data = make_dataset(tmp, plan.dataset, crops, width)
    ds = plan.dataset
    fmt = {"ucf": "ucf", "shanghaitech": "npy-dir"}[ds]
    vadfeat("labels", data["ann"], "--format", fmt, "--features", data["feats"], "-o", tmp / "gt", cwd=tmp)
    for rel in SHIPPED[key]:
        if (repo / rel).exists():
            (repo / rel).rename(repo / (rel + ".orig"))
    splits = ["--test-split", data["test"]] + (["--train-split", data["train"]] if "train" in data else [])
    if key == "fed-wsvad":
        out = tmp / "dataset" / "shanghaitech"
        vadfeat("export", data["feats"], "--format", "fed-wsvad", "-o", out, cwd=tmp)
        text = vadfeat("lists", out, "--format", "fed-wsvad", "--dataset", ds, "--labels", tmp / "gt",
                       *splits, "--codebase-root", tmp / "dataset", "--name", "shanghaitech", cwd=tmp)
    else:
        out = tmp / "exported"
        vadfeat("export", data["feats"], "--format", key, "--dataset", ds, "-o", out, cwd=tmp)
        text = vadfeat("lists", out, "--format", key, "--dataset", ds, "--labels", tmp / "gt", *splits,
                       "--codebase-root", repo, cwd=tmp)
        for path in sorted(out.glob("*.npy")) if one_crop_rtfm else ():
            np.save(path.with_suffix(".tmp.npy"), np.load(path)[:, :1])    # [T, 1, D]
            os.replace(path.with_suffix(".tmp.npy"), path)                  # exports are links
    return repo, abnormal_lines(text)


def random_clip(path: Path, python: str, clip_src: Path) -> None:
    """A random-weight CLIP (ViT-B/16 text tower, 1-layer image tower) in VadCLIP's format,
    for ``clip.load`` without a download."""
    if path.exists():
        return
    # clip.load reads the file with torch.jit.load first (OpenAI's files are TorchScript) and
    # takes its state_dict: a traced holder of CLIP's parameters, under CLIP's own names.
    code = ("import sys, torch; from clip.model import CLIP\n"
            "class Holder(torch.nn.Module):\n"
            "    def forward(self, x):\n"
            "        return x\n"
            "torch.manual_seed(0); m = CLIP(512, 32, 1, 64, 16, 77, 49408, 512, 8, 1); h = Holder()\n"
            "for k, v in m.named_children(): h.add_module(k, v)\n"
            "for k, v in m.named_parameters(recurse=False): h.register_parameter(k, v)\n"
            "torch.jit.save(torch.jit.trace(h, torch.ones(1)), sys.argv[1])\n")
    subprocess.run([python, "-c", code, str(path)], check=True, timeout=600,
                   env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(SHIMS_DIR), str(clip_src)])))


# RTFM "auc : 0.5", PEL4VAD "AUC:0.5", VadCLIP "AUC1:  0.5", Fed_WSVAD "AUC_score_all_video is 0.5",
# UR-DMU's record file "auc: 0.5"
METRIC = re.compile(r"\b(?:AUC|auc|AP|ap)\w*\s*(?:[:=]|is)\s*[\d.]+")


def run_one(key: str, width: int, codebases: Path, work: Path, python: str, instructions: str,
            timeout: int, crops: int | None = None, extra_edits: list[Edit] | None = None) -> dict:
    """Prepare, edit, run one trainer; a result record."""
    plan = PLANS[key]
    record: dict = {"codebase": plan.codebase, "width": width, "instructions": instructions,
                    "crops": plan.crops if crops is None else crops}
    t0 = time.monotonic()
    try:
        repo, abnormal = prepare(key, width, codebases, work, crops)
    except RuntimeError as exc:
        record.update(status="inputs failed", error=str(exc)[-2000:])
        return record
    record["abnormal_lines"] = abnormal
    extra = {"CLIP": str(work / "clip-random.pt"), "DATA": str(repo.parent / "dataset")}
    if instructions == "new":
        edits = list(plan.always) + ([] if width in plan.unmodified else list(plan.width_edits))
    else:
        edits = list(plan.old_edits)
    edits += list(extra_edits or [])
    record["edits"] = [f"{e.file}:{e.line}" for e in edits]
    for e in edits + plan.shims + plan.short:
        apply(e, repo, width, abnormal, extra)
    if key == "vadclip":
        random_clip(work / "clip-random.pt", python, repo / "src")
        (repo / "model").mkdir(exist_ok=True)
    for shipped in (repo / "outputs").glob("*_best_record_*.txt"):
        shipped.unlink()                    # UR-DMU ships its paper's records under the same names
    cmd = [python] + [c.replace("{D}", str(width)).replace("{DATA}", extra["DATA"]) for c in plan.command]
    env = dict(os.environ, PYTHONPATH=str(SHIMS_DIR), CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1",
               MPLBACKEND="Agg")
    out, rc = "", 0
    for argv in [cmd] + ([[python, *plan.then]] if plan.then else []):
        try:
            proc = subprocess.run(argv, cwd=repo / plan.workdir, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            out, rc = out + f"$ {' '.join(argv[1:])}\n" + proc.stdout + proc.stderr, proc.returncode
            if argv is not cmd:             # ucf_infer.py prints the AUC and AP without a name
                record["then"] = {"command": " ".join(argv[1:]), "stdout_tail": proc.stdout.split()[-2:]}
        except subprocess.TimeoutExpired as exc:
            tail = exc.stdout.decode() if isinstance(exc.stdout, bytes) else str(exc.stdout or "")
            out, rc = out + tail, -1
        if rc != 0:
            break
    (repo.parent / "trainer.log").write_text(out)
    for record_file in sorted((repo / "outputs").glob("*_best_record_*.txt")) if key == "ur-dmu" else ():
        out += "\n" + record_file.read_text()      # UR-DMU's test loop prints nothing; it writes this
    metrics = [m.strip() for m in METRIC.findall(out) if re.search(r"\d\.\d", m)]
    errors = [ln for ln in out.splitlines() if re.match(r"^\w*(Error|Exception)\b", ln)]
    record.update(status="runs" if rc == 0 else ("timeout" if rc == -1 else "crashes"),
                  returncode=rc, metrics=metrics[-4:], error=errors[-1] if errors and rc != 0 else "",
                  seconds=round(time.monotonic() - t0, 1), log=str(repo.parent / "trainer.log"))
    return record


ONE_CROP_RTFM = [  # RTFM's training forward assumes 10 crops (model.py:214, 217)
    Edit("model.py", 214, "normal_features = features[0:self.batch_size*10]",
         "normal_features = features[0:self.batch_size*ncrops]"),
    Edit("model.py", 217, "abnormal_features = features[self.batch_size*10:]",
         "abnormal_features = features[self.batch_size*ncrops:]"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codebases", default=os.environ.get("VADFEAT_CODEBASES"),
                    help="folder holding RTFM/, UR-DMU/, PEL4VAD/, VadCLIP/, Fed_WSVAD/")
    ap.add_argument("--python", default=os.environ.get("VADFEAT_TRAINER_PYTHON", sys.executable),
                    help="Python that runs the trainers")
    ap.add_argument("--work", default=None, help="work folder (default: a new temporary folder)")
    ap.add_argument("--only", default=",".join(PLANS), help="code bases, e.g. rtfm,pel4vad")
    ap.add_argument("--widths", default="", help="widths, e.g. 1024,1408 (default: all each reads)")
    ap.add_argument("--instructions", choices=["new", "old"], default="new")
    ap.add_argument("--rtfm-one-crop", action="store_true",
                    help="also run RTFM on 1-crop [T, 1, D] files, without and with model.py:214/217 edited")
    ap.add_argument("--crops", type=int, default=None,
                    help="crops per feature file (default: 10; Fed_WSVAD 3, its [T, 3, D] stats)")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    if not args.codebases:
        ap.error("--codebases or VADFEAT_CODEBASES is needed")
    codebases = Path(args.codebases).resolve()
    if args.work:
        work = Path(args.work).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        import tempfile
        work = Path(tempfile.mkdtemp(prefix="vadfeat-trainers-"))
    wanted = [int(w) for w in args.widths.split(",") if w]
    results = []
    for key in args.only.split(","):
        plan = PLANS[key]
        if not (codebases / plan.codebase).is_dir():
            print(f"{plan.codebase}: no checkout in {codebases}, skipped", flush=True)
            continue
        for width in [w for w in plan.widths if not wanted or w in wanted]:
            rec = run_one(key, width, codebases, work, args.python, args.instructions, args.timeout,
                          crops=args.crops)
            results.append(rec)
            print(json.dumps(rec), flush=True)
    if args.rtfm_one_crop and (codebases / "RTFM").is_dir():
        for extra in ([], ONE_CROP_RTFM):
            rec = run_one("rtfm", 2048, codebases, work, args.python, args.instructions, args.timeout,
                          crops=1, extra_edits=extra)
            results.append(rec)
            print(json.dumps(rec), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all(r["status"] == "runs" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
