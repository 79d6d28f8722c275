"""vadfeat's output read the way each downstream code base's loader and test loop read it.

For RTFM, UR-DMU, PEL4VAD, VadCLIP and Fed_WSVAD on UCF-Crime, XD-Violence and
ShanghaiTech: extract once (synthetic 10-crop features with sidecars), ``export`` to
the code base's layout, ``write_lists(codebase_root=...)``, then re-implement that
repository's loader and test loop here (our code, mirroring theirs; the file and
the lines mirrored are cited at each reader) and check item shapes, labels, crop
naming and that the concatenated ground truth has exactly the length their
evaluation builds from the features (scores repeated 16 times).

The expected lists and ground truth are worked out by hand from the fixtures below.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from vadfeat.dataset.export import export
from vadfeat.dataset.labels import read_labels
from vadfeat.dataset.lists import write_lists
from vadfeat.dataset.resample import process_feat, vadclip_sample
from vadfeat.errors import ConfigError

DIM = 4
CROPS = 10

# name: (rows T, decoded frames).  Frame labels are in the ground-truth files below.
UCF = {
    "Abuse001_x264": (3, 50), "Arson002_x264": (2, 40), "Normal_Videos_001_x264": (4, 70),
    "Burglary005_x264": (5, 80), "Normal_Videos_003_x264": (2, 33),
}
XD = {
    "Movie.A.2001__#00-00-00_00-01-00_label_B2-0-0": (3, 48),
    "Movie.B.2002__#00-01-00_00-02-00_label_A": (2, 32),
    "Movie.C.2003__#00-02-00_00-03-00_label_G-B6-0": (4, 64),
    "Movie.D.2004__#00-03-00_00-04-00_label_A": (2, 35),
}
SH = {"01_0014": (3, 48), "01_001": (2, 40), "01_0015": (4, 70), "01_004": (2, 32)}

# Hand-derived: (train videos in list order, test videos in list order, GT of the test videos)
EXPECTED = {
    # train: abnormal first (Abuse, Arson), then normal.  test: Burglary005 (T=5: 80 evaluated
    # frames; annotation 20..40 1-based inclusive = indices 19..39), Normal_Videos_003 (T=2: 32 of
    # its 33 frames, all 0).
    "ucf": (["Abuse001_x264", "Arson002_x264", "Normal_Videos_001_x264"],
            ["Burglary005_x264", "Normal_Videos_003_x264"],
            [0] * 19 + [1] * 21 + [0] * 40 + [0] * 32),
    # XD: the test split names C and D; C (T=4: 64 frames) is violent on [10, 30) 0-based
    # end-exclusive; D (T=2) 32 zeros of its 35 frames.
    "xd": ([n for n in XD if n.startswith(("Movie.A", "Movie.B"))],
           [n for n in XD if n.startswith(("Movie.C", "Movie.D"))],
           [0] * 10 + [1] * 20 + [0] * 34 + [0] * 32),
    # ShanghaiTech weak split: 01_0015 (T=4: 64 of 70 frames; mask ones on 20..49), 01_004 (32 zeros).
    "shanghaitech": (["01_0014", "01_001"], ["01_0015", "01_004"], [0] * 20 + [1] * 30 + [0] * 14 + [0] * 32),
}


def make_extraction(root: Path, videos: dict[str, tuple[int, int]],
                    folders: dict[str, str] | None = None) -> Path:
    """A canonical flat 10-crop extraction: [T, 10, D] float32 + sidecars + manifest.

    ``folders``: a video's subfolder, as extract mirrors the videos' tree (``Abuse/Abuse001_x264``).
    """
    root.mkdir(parents=True)
    for i, (video, (rows, frames)) in enumerate(videos.items()):
        arr = np.random.default_rng(i).standard_normal((rows, CROPS, DIM)).astype(np.float32)
        name = f"{(folders or {}).get(video, '.')}/{video}"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / f"{name}.npy", arr)
        (root / f"{name}.json").write_text(json.dumps({
            "video": f"{name}.mp4", "num_frames": frames, "shape": [rows, CROPS, DIM],
            "snippets": [[16 * r, 16 * r + 15] for r in range(rows)],
            "crop_order": ["tl", "tr", "bl", "br", "c", "ftl", "ftr", "fbl", "fbr", "fc"]}))
    (root / "manifest.jsonl").write_text("")
    return root


# UCF-Crime's own folders: one per class, normal videos in Training_/Testing_Normal_Videos_Anomaly.
UCF_TREE = {"Abuse001_x264": "Abuse", "Arson002_x264": "Arson", "Burglary005_x264": "Burglary",
            "Normal_Videos_001_x264": "Training_Normal_Videos_Anomaly",
            "Normal_Videos_003_x264": "Testing_Normal_Videos_Anomaly"}


def dataset_inputs(tmp: Path, dataset: str, *, tree: bool = False) -> dict:
    """Features, ground truth and splits of one dataset, in its own file formats.

    ``tree``: UCF-Crime features in subfolders mirroring its video tree (:data:`UCF_TREE`).
    """
    if dataset == "ucf":
        feats = make_extraction(tmp / "feat", UCF, UCF_TREE if tree else None)
        ann = tmp / "Temporal_Anomaly_Annotation.txt"
        ann.write_text("Burglary005_x264.mp4  Burglary  20  40  -1  -1\n"
                       "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1\n")
        test = tmp / "Anomaly_Test.txt"
        test.write_text("Burglary/Burglary005_x264.mp4\nTesting_Normal_Videos_Anomaly/Normal_Videos_003_x264.mp4\n")
        return {"feats": feats, "labels": read_labels(ann, format="ucf", features=feats), "test_split": test,
                "gt": (ann, "ucf")}
    if dataset == "xd":
        feats = make_extraction(tmp / "feat", XD)
        ann = tmp / "annotations.txt"
        ann.write_text("Movie.C.2003__#00-02-00_00-03-00_label_G-B6-0 10 30\n")
        test = tmp / "test_list.txt"
        test.write_text("Movie.C.2003__#00-02-00_00-03-00_label_G-B6-0.mp4\n"
                        "Movie.D.2004__#00-03-00_00-04-00_label_A.mp4\n")
        return {"feats": feats, "labels": read_labels(ann, format="xd", features=feats), "test_split": test,
                "gt": (ann, "xd")}
    feats = make_extraction(tmp / "feat", SH)
    masks = tmp / "test_frame_mask"
    masks.mkdir()
    mask = np.zeros(70, dtype=np.uint8)
    mask[20:50] = 1
    np.save(masks / "01_0015.npy", mask)
    np.save(masks / "01_004.npy", np.zeros(32, dtype=np.uint8))
    train = tmp / "SH_Train.txt"
    train.write_text("01_0014 1\n01_001 0\n")     # the weak split: normal training videos have no masks
    test = tmp / "SH_Test.txt"
    test.write_text("01_0015 1\n01_004 0\n")
    return {"feats": feats, "labels": read_labels(masks, format="npy-dir", features=feats),
            "test_split": test, "train_split": train, "gt": (masks, "npy-dir")}


def build(tmp: Path, codebase: str, dataset: str, *, crops: list[int] | None = None,
          name: str = "dataset", tree: bool = False, out: Path | None = None,
          relative_to: Path | None = None) -> tuple[Path, dict, object]:
    """Export (to ``out``, default ``tmp/exported``) + lists into a fake checkout ``tmp/repo``;
    returns (repo, inputs, ListsResult)."""
    inp = dataset_inputs(tmp, dataset, tree=tree)
    repo = tmp / "repo"
    fmt = codebase
    out = repo / name if fmt == "fed-wsvad" else out or tmp / "exported"
    res = export(inp["feats"], out, format=fmt, dataset=dataset, crops=crops)  # type: ignore[arg-type]
    assert res.issues == ()
    lists = write_lists(out, None, format=fmt, labels=inp["labels"], dataset=dataset,  # type: ignore[arg-type]
                        test_split=inp["test_split"], train_split=inp.get("train_split"),
                        codebase_root=repo, name=name, relative_to=relative_to)
    assert lists.issues == ()
    return repo, inp, lists


def opened(path: str | Path) -> list[str]:
    """``list(open(path))``: lines with their newline, as every loader here reads them."""
    with open(path) as f:
        return list(f)


def stem_of(path: str) -> str:
    return path.split("/")[-1]


DATASETS = ["ucf", "xd", "shanghaitech"]


# ------------------------------------------------------------------------------------ RTFM


@pytest.mark.parametrize("dataset", DATASETS)
def test_rtfm(tmp_path: Path, dataset: str) -> None:
    repo, _, res = build(tmp_path, "rtfm", dataset)
    train_exp, test_exp, gt_exp = EXPECTED[dataset]
    # RTFM dataset.py (tianyu0207/RTFM@6a38289, lines 14-23): fixed list names per dataset.
    names = {"ucf": ("list/ucf-i3d.list", "list/ucf-i3d-test.list", "list/gt-ucf.npy"),
             "shanghaitech": ("list/shanghai-i3d-train-10crop.list", "list/shanghai-i3d-test-10crop.list",
                              "list/gt-sh.npy"),
             # XD-Violence: RTFM has no code path for it; vadfeat's names by analogy.
             "xd": ("list/xd-i3d.list", "list/xd-i3d-test.list", "list/gt-xd.npy")}[dataset]
    os.chdir(repo)  # RTFM opens relative paths from its checkout
    # _parse_list (lines 32-54): list(open(...)); abnormal = list[:n], normal = list[n:], with n
    # hard-coded (810 / 63); vadfeat reports the value to set.
    lst = opened(names[0])
    n = res.train_abnormal_lines
    abnormal, normal = lst[:n], lst[n:]
    assert [stem_of(x.strip("\n"))[:-4] for x in lst] == train_exp
    assert all(EXPECTED_LABEL[dataset](stem_of(x)) == 1 for x in abnormal)
    assert all(EXPECTED_LABEL[dataset](stem_of(x)) == 0 for x in normal)
    for line in lst:
        # __getitem__ (lines 56-72): np.load(line.strip('\n')); transpose(1, 0, 2); process_feat(f, 32)
        features = np.array(np.load(line.strip("\n"), allow_pickle=True), dtype=np.float32)
        features = features.transpose(1, 0, 2)
        divided = np.array([process_feat(f, 32) for f in features], dtype=np.float32)
        assert divided.shape == (CROPS, 32, DIM)
    # test_10crop.py (lines 11-27): per video input [1, T, 10, F] -> permute -> one score per
    # row; pred concatenated, np.repeat(pred, 16) compared with np.load(gt).
    pred = np.zeros(0)
    for line in opened(names[1]):
        x = np.load(line.strip("\n"))[None]
        x = x.transpose(0, 2, 1, 3)
        assert x.shape[1] == CROPS
        pred = np.concatenate([pred, x.mean(axis=(0, 1, 3))])
    gt = np.load(names[2])
    assert [stem_of(x.strip("\n"))[:-4] for x in opened(names[1])] == test_exp
    assert len(np.repeat(pred, 16)) == len(gt) == len(gt_exp)
    assert gt.tolist() == gt_exp


EXPECTED_LABEL = {
    "ucf": lambda s: 0 if "Normal" in s else 1,
    "xd": lambda s: 0 if "_label_A" in s else 1,
    "shanghaitech": lambda s: 1 if len(s.split("_")[1].split(".")[0].split("__")[0]) == 4 else 0,
}


# ------------------------------------------------------------------------------------ UR-DMU


@pytest.mark.parametrize("dataset", DATASETS)
def test_ur_dmu(tmp_path: Path, dataset: str) -> None:
    crops = 5 if dataset == "xd" else CROPS    # its XD test loop takes batches of 5 crops
    repo, _, res = build(tmp_path, "ur-dmu", dataset, crops=list(range(crops)))
    train_exp, test_exp, gt_exp = EXPECTED[dataset]
    prefix = {"ucf": "UCF", "xd": "XD", "shanghaitech": "SH"}[dataset]  # SH: no upstream code path
    os.chdir(repo)
    # dataset_loader.py (henrryzh1/UR-DMU@e0ac5f3, UCF_crime lines 15-28, XDVideo 73-86):
    # split_path = list/<UCF|XD>_<mode>.list; vid_list = [line.split()]; Train: [:8100] / [8100:].
    vid_list = [line.split() for line in opened(os.path.join("list", f"{prefix}_Train.list"))]
    n = res.train_abnormal_lines
    assert n == crops * sum(EXPECTED_LABEL[dataset](v) for v in train_exp)
    for i, info in enumerate(vid_list):
        path = info[0]
        # get_data (lines 40-58 / 96-113): label from the file name, features [T, D].
        if dataset == "xd":
            label = 0 if "_label_A" in path else 1
            feat = np.load(os.path.join(os.path.join("root", "rgb")[0], path)).astype(np.float32)
        elif dataset == "shanghaitech":  # no SH loader upstream: the label is the list position
            label = EXPECTED_LABEL[dataset](stem_of(path))
            feat = np.load(path).astype(np.float32)
        else:
            label = 0 if "Normal" in path.split("/")[-1] else 1
            feat = np.load(path).astype(np.float32)
        assert label == (1 if i < n else 0)
        assert feat.ndim == 2 and feat.shape[1] == DIM
        assert process_feat(feat, 200).shape == (200, DIM)
    assert [stem_of(v[0]).rsplit("__", 1)[0] for v in vid_list[::crops]] == train_exp
    # ucf_test.py lines 18-44: every 10 items form one video (its crops), frame_predict
    # += np.repeat(mean score, 16); xd_test.py lines 18-31: batches of 5.
    gt_file = {"ucf": "frame_label/gt-ucf.npy", "xd": "frame_label/xd_gt.npy",
               "shanghaitech": "frame_label/gt-sh.npy"}[dataset]
    test = [line.split() for line in opened(os.path.join("list", f"{prefix}_Test.list"))]
    assert len(test) % crops == 0
    frame_predict = np.zeros(0)
    for v in range(len(test) // crops):
        group = [np.load(t[0]) for t in test[v * crops:(v + 1) * crops]]
        stems = {stem_of(t[0]).rsplit("__", 1)[0] for t in test[v * crops:(v + 1) * crops]}
        assert len(stems) == 1 and len({g.shape for g in group}) == 1
        frame_predict = np.concatenate([frame_predict, np.repeat(np.stack(group).mean((0, 2)), 16)])
    assert [stem_of(t[0]).rsplit("__", 1)[0] for t in test[::crops]] == test_exp
    gt = np.load(gt_file)
    assert len(frame_predict) == len(gt) and gt.tolist() == gt_exp


# ------------------------------------------------------------------------------------ PEL4VAD


PEL_UCF_CLASSES = {"Normal": 0, "Abuse": 1, "Arrest": 2, "Arson": 3, "Assault": 4, "Burglary": 5,
                   "Explosion": 6, "Fighting": 7, "RoadAccidents": 8, "Robbery": 9, "Shooting": 10,
                   "Shoplifting": 11, "Stealing": 12, "Vandalism": 13}
PEL_XD_CLASSES = {"A": 0, "B5": 1, "B6": 2, "G": 3, "B1": 4, "B4": 5, "B2": 6}


@pytest.mark.parametrize("dataset", DATASETS)
def test_pel4vad(tmp_path: Path, dataset: str) -> None:
    test_bs = 5 if dataset == "xd" else 10       # configs.py: cfg.test_bs = 10 (ucf, sh), 5 (xd)
    repo, _, _ = build(tmp_path, "pel4vad", dataset, crops=list(range(test_bs)))
    read_like_pel4vad(repo, dataset, test_bs)


def test_pel4vad_reads_ucf_crimes_own_folder_tree(tmp_path: Path) -> None:
    """Issue 21: with UCF-Crime's folders mirrored (extract and export keep subfolders), the
    normal videos' paths contain `Normal` (Training_Normal_Videos_Anomaly/), which the loader
    needs to label them normal; `lists` refused them as if they were abnormal videos."""
    repo, _, _ = build(tmp_path, "pel4vad", "ucf", tree=True)   # build: no issues reported
    lines = opened(repo / "list" / "ucf" / "train.list")
    assert lines[-CROPS].endswith("/Training_Normal_Videos_Anomaly/Normal_Videos_001_x264__0.npy\n")
    assert lines[0].endswith("/Abuse/Abuse001_x264__0.npy\n")
    read_like_pel4vad(repo, "ucf", CROPS)


def read_like_pel4vad(repo: Path, dataset: str, test_bs: int,
                      prefix: str = "/data/pyj/feat/whatever") -> None:
    """PEL4VAD's loaders and test loop on the files in ``repo`` (``prefix``: its cfg.feat_prefix)."""
    train_exp, test_exp, gt_exp = EXPECTED[dataset]
    short = {"ucf": "ucf", "xd": "xd", "shanghaitech": "sh"}[dataset]
    os.chdir(repo)
    # configs.py (yujiangpu20/PEL4VAD@6741de1, lines 7-10, 36-39, 64-68): list/<d>/train.list,
    # test.list, <d>-gt.npy; feat_prefix is joined with os.path.join (absolute paths win).
    train = opened(f"list/{short}/train.list")
    if dataset == "shanghaitech":
        # SHDataset (dataset.py lines 105-146): relabel.list names the abnormal training videos;
        # video_name = line.split(' ')[0].split('/')[-1][:-6]; label = float(line.split(' ')[1]).
        abn_list = ["01_0014"]
        seen = []
        for line in train:
            video_name = line.strip("\n").split(" ")[0].split("/")[-1][:-6]
            path = os.path.join(prefix, line.strip("\n").split(" ")[0])
            label = float(line.strip("\n").split(" ")[1])
            assert label == (1.0 if video_name in abn_list else 0.0)   # the right class, not "01_0014_"
            assert np.load(path).shape[1] == DIM
            seen.append(video_name)
        assert seen[::test_bs] == train_exp
    for line in train if dataset != "shanghaitech" else []:
        feat_path = os.path.join(prefix, line.strip("\n"))
        v_feat = np.array(np.load(feat_path), dtype=np.float32)
        if dataset == "ucf":
            # UCFDataset.__getitem__ (lines 25-40): class from the name; label from 'Normal' in line.
            video_idx = line.strip("\n").split("/")[-1].split("_")[0]
            ano_idx = PEL_UCF_CLASSES[video_idx] if "Normal" in line else PEL_UCF_CLASSES[video_idx[:-3]]
            label = 0.0 if "Normal" in line else 1.0
            assert (label == 0.0) == (ano_idx == 0)
        else:
            # XDataset.__getitem__ (lines 73-90): tokens after _label_ up to '__', split on '-'.
            tokens = line.strip("\n").split("_label_")[-1].split("__")[0].split("-")
            idx = PEL_XD_CLASSES[tokens[0]]
            label = 0.0 if "_label_A" in line else 1.0
            assert (label == 0.0) == (idx == 0)
        assert label == float(EXPECTED_LABEL[dataset](stem_of(line.strip("\n"))))  # the video's own
        assert v_feat.shape[1] == DIM
    if dataset != "shanghaitech":
        assert [stem_of(x.strip("\n")).rsplit("__", 1)[0] for x in train[::test_bs]] == train_exp
    # test.py test_func (lines 19-38): batches of test_bs items = one video's crops; seq_len from
    # non-zero rows; gt consumed seq_len * 16 per batch.
    test = opened(f"list/{short}/test.list")
    gt = np.load(f"list/{short}/{short}-gt.npy")
    gt_tmp = gt.copy()
    order = []
    for b in range(0, len(test), test_bs):
        v_input = np.stack([np.load(os.path.join(prefix, t.strip("\n"))) for t in test[b:b + test_bs]])
        seq_len = int(np.sum(np.max(np.abs(v_input), axis=2) > 0, 1)[0])
        assert v_input.shape[0] == test_bs
        labels = gt_tmp[: seq_len * 16]
        assert len(labels) == seq_len * 16
        gt_tmp = gt_tmp[seq_len * 16:]
        order.append(stem_of(test[b].strip("\n"))[: -(6 if dataset == "shanghaitech" else 7)])
    assert gt_tmp.size == 0 and order == test_exp and gt.tolist() == gt_exp


# ------------------------------------------------------------------------------------ VadCLIP


def read_csv(path: str) -> list[dict[str, str]]:
    # pd.read_csv(file_path) with a `path,label` header, as src/utils/dataset.py line 9.
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("dataset", DATASETS)
def test_vadclip(tmp_path: Path, dataset: str) -> None:
    repo, _, _ = build(tmp_path, "vadclip", dataset)
    train_exp, test_exp, gt_exp = EXPECTED[dataset]
    os.chdir(repo)
    # src/ucf_option.py / src/xd_option.py (nwpu-zxr/VadCLIP@8f554d1, lines 21-25): default paths.
    files = {"ucf": ("list/ucf_CLIP_rgb.csv", "list/ucf_CLIP_rgbtest.csv", "list/gt_ucf.npy",
                     "list/gt_segment_ucf.npy", "list/gt_label_ucf.npy"),
             "xd": ("list/xd_CLIP_rgb.csv", "list/xd_CLIP_rgbtest.csv", "list/gt.npy",
                    "list/gt_segment.npy", "list/gt_label.npy"),
             "shanghaitech": ("list/sh_CLIP_rgb.csv", "list/sh_CLIP_rgbtest.csv", "list/gt_sh.npy",
                              "list/gt_segment_sh.npy", "list/gt_label_sh.npy")}[dataset]
    normal_text = "A" if dataset == "xd" else "Normal"
    train = read_csv(files[0])
    # UCFDataset (src/utils/dataset.py lines 14-19): normal = rows with label == 'Normal'.
    assert len(train) == CROPS * len(train_exp)       # training: every crop file
    for row in train:
        feat, length = vadclip_sample(np.load(row["path"]), 256)   # tools.process_feat, T <= 256: pad
        assert feat.shape == (256, DIM) and length == np.load(row["path"]).shape[0]
        stem = stem_of(row["path"]).rsplit("__", 1)[0]
        assert (row["label"] == normal_text) == (EXPECTED_LABEL[dataset](stem) == 0)
    # ucf_test.py test (lines 12-75): one row per video; len_cur = T scores; np.repeat(., 16)
    # against gt.  make_gt_mAP_ucf.py keeps rows with '__0.npy' and cuts 7 characters.
    test = read_csv(files[1])
    assert [stem_of(r["path"])[:-7] for r in test if "__0.npy" in r["path"]] == test_exp
    scores = np.concatenate([np.zeros(np.load(r["path"]).shape[0]) for r in test])
    gt = np.load(files[2])
    assert len(np.repeat(scores, 16)) == len(gt) and gt.tolist() == gt_exp
    gtsegments = np.load(files[3], allow_pickle=True)
    gtlabels = np.load(files[4], allow_pickle=True)
    assert len(gtsegments) == len(gtlabels) == len(test)
    # ucf_detectionMAP.getLocMAP (lines 77-80): segment_gt = [[i, s, e]] for labels in classlist;
    # normal videos carry 'A' and [[0, 16*T]].
    abnormal_spans = [[list(map(int, s)) for s in gtsegments[0]], list(gtlabels[0])]
    expected_cls = {"ucf": "Burglary", "xd": "G", "shanghaitech": "Anomaly"}[dataset]
    first = gt_exp.index(1)
    last = len(gt_exp) - 1 - gt_exp[::-1].index(1) + 1
    assert abnormal_spans == [[[first, last]], [expected_cls]]
    normal_T = np.load(test[1]["path"]).shape[0]
    assert [list(map(int, s)) for s in gtsegments[1]] == [[0, 16 * normal_T]] and list(gtlabels[1]) == ["A"]


# ------------------------------------------------------------------------------------ Fed_WSVAD


@pytest.mark.parametrize("dataset", DATASETS)
def test_fed_wsvad(tmp_path: Path, dataset: str) -> None:
    repo, _, _ = build(tmp_path, "fed-wsvad", dataset, name=dataset)
    train_exp, test_exp, gt_exp = EXPECTED[dataset]
    # video_dataset_anomaly_balance_uni_sample.py (rekkles2/Fed_WSVAD@eca9d31, lines 28-50):
    # feature_path = <dataset_path>/<dataset_name>/features_video/i3d/combine; train_split.txt,
    # test_split.txt and GT/video_label.pickle in <dataset_path>/<dataset_name>.
    root = repo / dataset
    feature_path = root / "features_video" / "i3d" / "combine"
    trainlist = opened(root / "train_split.txt")
    testlist = opened(root / "test_split.txt")
    with open(root / "GT" / "video_label.pickle", "rb") as f:
        video_label_dict = pickle.load(f)
    # p_n_split_dataset (lines 66-74): video_label_dict[name] == [1.0] -> anomaly.
    anomaly = [t.replace("\n", "") for t in trainlist
               if video_label_dict[t.replace("\n", "").replace("Ped", "ped")] == [1.0]]
    assert anomaly == [v for v in train_exp if EXPECTED_LABEL[dataset](v) == 1]
    assert [t.strip() for t in trainlist] == train_exp and [t.strip() for t in testlist] == test_exp
    # test.py + Fed_VAD/eval.py (lines 20-40): one score per row, v.repeat(16) against
    # frame_label_dict[k][:len(v.repeat(16))].
    with open(root / "GT" / "frame_label.pickle", "rb") as f:
        frame_label_dict = pickle.load(f)
    all_label = np.zeros(0)
    for t in testlist:
        name = t.replace("\n", "").replace("Ped", "ped")
        feature = np.load(feature_path / name / "feature.npy")
        assert feature.shape[1:] == (CROPS, DIM)
        v = np.zeros(feature.shape[0])
        frame_labels = frame_label_dict[name]
        assert len(frame_labels) == len(v.repeat(16))            # exactly, nothing cut or missing
        all_label = np.concatenate([all_label, frame_labels[:len(v.repeat(16))]])
    assert all_label.tolist() == gt_exp


# ------------------------------------------------------------------------ -o names, relative paths

# Each repository's own names for its files (those cited at each test above), without
# their folders: what `lists --dataset D -o DIR` writes into DIR.
OWN_NAMES = {
    ("rtfm", "ucf"): ["ucf-i3d.list", "ucf-i3d-test.list", "gt-ucf.npy"],
    ("rtfm", "xd"): ["xd-i3d.list", "xd-i3d-test.list", "gt-xd.npy"],
    ("rtfm", "shanghaitech"): ["shanghai-i3d-train-10crop.list", "shanghai-i3d-test-10crop.list",
                               "gt-sh.npy"],
    ("ur-dmu", "ucf"): ["UCF_Train.list", "UCF_Test.list", "gt-ucf.npy"],
    ("ur-dmu", "xd"): ["XD_Train.list", "XD_Test.list", "xd_gt.npy"],
    ("ur-dmu", "shanghaitech"): ["SH_Train.list", "SH_Test.list", "gt-sh.npy"],
    ("pel4vad", "ucf"): ["train.list", "test.list", "ucf-gt.npy"],
    ("pel4vad", "xd"): ["train.list", "test.list", "xd-gt.npy"],
    ("pel4vad", "shanghaitech"): ["train.list", "test.list", "sh-gt.npy"],
    ("vadclip", "ucf"): ["ucf_CLIP_rgb.csv", "ucf_CLIP_rgbtest.csv", "gt_ucf.npy",
                         "gt_segment_ucf.npy", "gt_label_ucf.npy"],
    ("vadclip", "xd"): ["xd_CLIP_rgb.csv", "xd_CLIP_rgbtest.csv", "gt.npy", "gt_segment.npy",
                        "gt_label.npy"],
    ("vadclip", "shanghaitech"): ["sh_CLIP_rgb.csv", "sh_CLIP_rgbtest.csv", "gt_sh.npy",
                                  "gt_segment_sh.npy", "gt_label_sh.npy"],
    **{("fed-wsvad", d): ["train_split.txt", "test_split.txt", "GT/frame_label.pickle",
                          "GT/video_label.pickle"] for d in DATASETS},
}


@pytest.mark.parametrize(("codebase", "dataset"), list(OWN_NAMES))
def test_lists_out_folder_uses_the_code_bases_own_names(tmp_path: Path, codebase: str,
                                                        dataset: str) -> None:
    """Issue 21: `lists --dataset shanghaitech -o DIR` wrote dataset_Train.list, not SH_Train.list."""
    from vadfeat.cli import main

    inp = dataset_inputs(tmp_path, dataset)
    feats = tmp_path / "exported"
    assert export(inp["feats"], feats, format=codebase, dataset=dataset).issues == ()  # type: ignore[arg-type]
    out = tmp_path / "lists"
    gt, gt_format = inp["gt"]
    splits = ["--test-split", str(inp["test_split"])]
    if "train_split" in inp:
        splits += ["--train-split", str(inp["train_split"])]
    assert main(["lists", str(feats), "--format", codebase, "--dataset", dataset, "--labels", str(gt),
                 "--labels-format", gt_format, *splits, "-o", str(out)]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.is_file() and not p.name.startswith("."))
    assert written == sorted(OWN_NAMES[codebase, dataset])
    if codebase != "fed-wsvad":  # a name given still names the files (fed-wsvad's are fixed)
        named = write_lists(feats, tmp_path / "named", format=codebase, labels=inp["labels"],  # type: ignore[arg-type]
                            dataset=dataset, test_split=inp["test_split"],  # type: ignore[arg-type]
                            train_split=inp.get("train_split"), name="mine")
        assert all("mine" in p.name for p in named.files if p.suffix != ".list" or codebase != "pel4vad")


def load_like(codebase: str, repo: Path, prefix: Path) -> list[tuple[str, tuple[int, ...]]]:
    """Every file the code base's loaders open from its lists, as they open it (cited above):
    RTFM ``np.load(line.strip('\\n'))`` and UR-DMU's UCF loader ``np.load(line.split()[0])`` from
    the folder they run in (the checkout), VadCLIP ``np.load(row['path'])`` from the checkout
    (``python src/ucf_train.py``), PEL4VAD ``os.path.join(cfg.feat_prefix, line)``."""
    os.chdir(repo)
    if codebase == "vadclip":
        lines = [r["path"] for name in ("ucf_CLIP_rgb.csv", "ucf_CLIP_rgbtest.csv")
                 for r in read_csv(f"list/{name}")]
    else:
        files = {"rtfm": ("list/ucf-i3d.list", "list/ucf-i3d-test.list"),
                 "ur-dmu": ("list/UCF_Train.list", "list/UCF_Test.list"),
                 "pel4vad": ("list/ucf/train.list", "list/ucf/test.list")}[codebase]
        lines = [x.split()[0] if codebase == "ur-dmu" else x.strip("\n")
                 for f in files for x in opened(f)]
    assert lines and not any(os.path.isabs(x) for x in lines)
    opened_as = (lambda x: os.path.join(prefix, x)) if codebase == "pel4vad" else (lambda x: x)
    return [(x, np.load(opened_as(x)).shape) for x in lines]


@pytest.mark.parametrize("codebase", ["rtfm", "ur-dmu", "pel4vad", "vadclip"])
def test_relative_lines_open_from_the_root_each_code_base_reads_them_from(tmp_path: Path,
                                                                          codebase: str) -> None:
    """Issue 21: lists held absolute paths only, so they broke when the features moved.

    The root to give (README): the checkout for RTFM, UR-DMU (UCF) and VadCLIP, which open
    the line as it is from there; PEL4VAD's cfg.feat_prefix, which it joins the line onto."""
    here = tmp_path / "laptop"
    repo = here / "repo"
    out = here / "feat_prefix" if codebase == "pel4vad" else repo / "features" / "ucf"
    build(here, codebase, "ucf", out=out, relative_to=out if codebase == "pel4vad" else repo)
    cluster = tmp_path / "cluster"
    here.rename(cluster)                           # checkout and features move together
    got = load_like(codebase, cluster / "repo", cluster / "feat_prefix")
    per_video = 1 if codebase == "rtfm" else CROPS
    # Hand-derived: 3 training and 2 test videos (EXPECTED["ucf"]); VadCLIP's test CSV: crop 0 only.
    assert len(got) == (5 if codebase == "rtfm" else 3 * CROPS + 2 * (1 if codebase == "vadclip" else CROPS))
    for line, shape in got:
        video = stem_of(line)[:-4].rsplit("__", 1)[0]
        assert shape == ((UCF[video][0], CROPS, DIM) if per_video == 1 else (UCF[video][0], DIM))


def test_relative_lines_are_refused_where_the_loader_cannot_resolve_them(tmp_path: Path) -> None:
    # UR-DMU's XDVideo opens os.path.join(self.feature_path[0], line) with feature_path the string
    # <root_dir>/rgb: its first character.  A relative line cannot be found from any root.
    inp = dataset_inputs(tmp_path, "xd")
    feats = tmp_path / "exported"
    export(inp["feats"], feats, format="ur-dmu", dataset="xd")
    with pytest.raises(ConfigError, match="first character"):
        write_lists(feats, tmp_path / "o", format="ur-dmu", labels=inp["labels"], dataset="xd",
                    test_split=inp["test_split"], relative_to=tmp_path)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------ splits


def test_xd_without_a_split_is_a_usage_error_that_says_why(tmp_path: Path) -> None:
    inp = dataset_inputs(tmp_path, "xd")
    with pytest.raises(ConfigError, match="cannot be told apart by name"):
        write_lists(inp["feats"], tmp_path / "o", format="rtfm", labels=inp["labels"], dataset="xd")
    with pytest.raises(ConfigError, match="official split"):
        write_lists(inp["feats"], tmp_path / "o", format="rtfm", naming="xd")


def test_xd_with_its_test_split_lists_training_normals_for_training(tmp_path: Path) -> None:
    # Issue 12: unannotated _label_A videos got all-zero GT and went to the test list.
    inp = dataset_inputs(tmp_path, "xd")
    res = write_lists(inp["feats"], tmp_path / "o", format="rtfm", labels=inp["labels"], naming="xd",
                      test_split=inp["test_split"], name="xd")
    # Hand-derived: train = A (violent) then B (normal, _label_A); test = C (violent), D (normal).
    assert [e.name for e in res.split("train")] == [
        "Movie.A.2001__#00-00-00_00-01-00_label_B2-0-0", "Movie.B.2002__#00-01-00_00-02-00_label_A"]
    assert [e.label for e in res.split("train")] == [1, 0]
    assert [e.name for e in res.split("test")] == [
        "Movie.C.2003__#00-02-00_00-03-00_label_G-B6-0", "Movie.D.2004__#00-03-00_00-04-00_label_A"]
    assert res.issues == () and res.gt_frames == 96


def test_shanghaitech_weak_split_labels_normal_training_videos_without_masks(tmp_path: Path) -> None:
    # Issue 12: `01_001 0` was parsed and dropped; the video had no mask and was left out (exit 1).
    inp = dataset_inputs(tmp_path, "shanghaitech")
    res = write_lists(inp["feats"], tmp_path / "o", format="rtfm", labels=inp["labels"],
                      train_split=inp["train_split"], test_split=inp["test_split"], name="sh")
    assert [(e.name, e.label) for e in res.split("train")] == [("01_0014", 1), ("01_001", 0)]
    assert [(e.name, e.label) for e in res.split("test")] == [("01_0015", 1), ("01_004", 0)]
    assert res.issues == ()
    lines = (tmp_path / "o" / "sh-train.list").read_text().splitlines()
    assert [Path(p).name for p in lines] == ["01_0014.npy", "01_001.npy"]
    # The naming rule alone gives the same labels (NN_NNNN abnormal, NN_NNN normal).
    res2 = write_lists(inp["feats"], tmp_path / "o2", format="rtfm", naming="shanghaitech",
                       test_split=[n for n in SH if n in ("01_0015", "01_004")])
    assert [(e.name, e.label) for e in res2.split("train")] == [("01_0014", 1), ("01_001", 0)]


@pytest.fixture(autouse=True)
def _restore_cwd():
    cwd = os.getcwd()
    yield
    os.chdir(cwd)


# ------------------------------------------------------------------ the real trainers (issue 21)

def _trainer_check():
    """tests/trainers/run_trainers.py as a module (tests/ is not a package)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parent / "trainers" / "run_trainers.py"
    spec = importlib.util.spec_from_file_location("run_trainers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_trainers"] = module           # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_docs_name_every_edit_the_trainer_check_makes() -> None:
    # Issue 21: the README named `--feature-size` / `cfg.feat_dim` / `len_feature` in one file
    # and trainers crashed. Every edit the real-trainer check needs for a width must be named
    # at its file:line, with its replacement, in docs/TRAINING.md, and at its line in the README.
    rt = _trainer_check()
    root = Path(__file__).resolve().parent.parent
    guide = (root / "docs" / "TRAINING.md").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Train with RTFM", 1)[1].split("\n## ", 1)[0]
    for plan in rt.PLANS.values():
        for edit in plan.width_edits:               # a row of the guide's table: file:line, old text
            assert f"`{edit.file}:{edit.line}` | `{edit.old}`" in guide, (plan.codebase, edit)
        for edit in plan.width_edits + plan.always:  # and the README names the line
            assert f"{edit.file}:{edit.line}" in guide or (
                edit.file in guide and f":{edit.line}`" in guide), (plan.codebase, edit)
            in_readme = f"{edit.file}:{edit.line}`" in section or f"`:{edit.line}`" in section
            assert in_readme, (plan.codebase, edit)
        for width in plan.unmodified:
            assert str(width) in section
        assert rt.COMMITS[plan.codebase] in guide


def test_the_trainer_check_refuses_a_line_that_moved(tmp_path: Path) -> None:
    # An edit is only made where the docs say it is: another commit of the code base (the text
    # on another line) stops the check with the file, the line and what it found.
    rt = _trainer_check()
    (tmp_path / "model.py").write_text("a = 1\nself.Aggregate = Aggregate(len_feature=2048)\n")
    edit = rt.PLANS["rtfm"].width_edits[-1]                 # model.py:181
    with pytest.raises(RuntimeError, match=r"model.py:181: expected .*Aggregate"):
        rt.apply(edit, tmp_path, 1408, 3, {})
    shifted = rt.Edit("model.py", 2, edit.old, edit.new)
    rt.apply(shifted, tmp_path, 1408, 3, {})
    assert (tmp_path / "model.py").read_text().splitlines()[1] == \
        "self.Aggregate = Aggregate(len_feature=n_features)"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("VADFEAT_CODEBASES"),
                    reason="needs checkouts of the five code bases in VADFEAT_CODEBASES (no network in CI)")
def test_real_trainers(tmp_path: Path) -> None:
    # The README's training instructions run for real: export, lists --codebase-root, the
    # documented edits, each code base's training entry point and test loop (CPU shims).
    # VADFEAT_TRAINER_PYTHON names a Python with the trainers' dependencies (default: this one);
    # VADFEAT_TRAINER_WIDTHS picks the widths (default 1408: edited everywhere but Fed_WSVAD;
    # tests/trainers/run_trainers.py without --widths runs them all).
    rt = _trainer_check()
    widths = os.environ.get("VADFEAT_TRAINER_WIDTHS", "1408")
    out = tmp_path / "results.json"
    rc = rt.main(["--work", str(tmp_path / "work"), "--widths", widths, "--json", str(out),
                  "--rtfm-one-crop"])
    results = json.loads(out.read_text())
    assert results, "no code base found in VADFEAT_CODEBASES"
    for rec in results:
        if rec["codebase"] == "RTFM" and rec["crops"] == 1 and not any("214" in e for e in rec["edits"]):
            assert rec["status"] == "crashes"              # 1-crop files need model.py:214/217 edited
            continue
        assert rec["status"] == "runs", rec
        assert rec["metrics"] or rec.get("then"), rec      # its test loop reported a score
    assert rc == 1 or all(r["status"] == "runs" for r in results)
