"""Audio list files for the audio-visual code bases (HL-Net/XDVioDet, MACIL-SD).

The loaders are re-implemented here from their own lines, not from vadfeat's code:

- Roc-Ng/XDVioDet at f846d8cfc454943ec165bd2489b71e7dc0a1064d: ``dataset.py`` L21
  (``normal_flag = '_label_A'``), L35-36 (``list(open(rgb_list))``, ``list(open(audio_list))``),
  L48 (label: ``normal_flag in self.list[index]``), L67-72 (``np.load(self.list[index]
  .strip('\\n'))``, ``np.load(self.audio_list[index//5].strip('\\n'))``, concatenated on
  axis 1 when the row counts agree); ``main.py`` L31 (test ``DataLoader(batch_size=5,
  shuffle=False)``); ``test.py`` L15 and L31 (mean over the 5 lines, each score repeated 16
  times against ``gt``).
- JustinYuu/MACIL_SD at c20943fd51ea7b0ed23e719f65fdfc82a35be530: ``avce_dataset.py`` L19,
  L23-24, L27, L33-34 (the same pairing), ``main.py`` L37-38, ``test.py`` L21 and L44,
  ``avce_network.py`` L51 (audio and visual rows concatenated row by row: same ``T``).

With ``VADFEAT_CODEBASES`` naming a folder holding ``XDVioDet/`` and ``MACIL_SD/`` checkouts,
their own ``Dataset`` classes are run on the lists too (they import only torch and numpy).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from vadfeat.cli import main
from vadfeat.dataset.labels import LabelSet, VideoLabels
from vadfeat.dataset.lists import write_lists
from vadfeat.errors import ConfigError

# name: rows (T); abnormal names hold no "_label_A", normal ones do (XD-Violence naming).
VIDEOS = {
    "Movie.A.2001__#00-01-00_00-02-00_label_B1-0-0": 3,
    "Movie.B.2002__#00-03-00_00-04-00_label_G-0-0": 2,
    "Movie.C.2003__#00-05-00_00-06-00_label_A": 4,
    "Movie.D.2004__#00-07-00_00-08-00_label_A": 2,
}
TEST = ["Movie.A.2001__#00-01-00_00-02-00_label_B1-0-0", "Movie.C.2003__#00-05-00_00-06-00_label_A"]
CROPS = 5
DIM = 4


def _side(name: str, shape: list[int], crops: bool) -> dict[str, object]:
    rows = shape[0]
    return {"video": f"{name}.mp4", "num_frames": 16 * rows + 3, "fps": 24.0, "shape": shape,
            "snippets": [[16 * i, 16 * i + 15] for i in range(rows)],
            "crop_order": ["c", "tl", "tr", "bl", "br"][: shape[1]] if crops else None}


def write_rgb(root: Path, *, crops: int = CROPS) -> Path:
    """Per-crop RGB files: value ``100 * video + crop`` everywhere, so a loaded row names its source."""
    root.mkdir(parents=True)
    for v, (name, rows) in enumerate(VIDEOS.items()):
        for k in range(crops):
            np.save(root / f"{name}__{k}.npy", np.full((rows, DIM), 100 * v + k, dtype=np.float32))
        (root / f"{name}.json").write_text(json.dumps(_side(name, [rows, crops, DIM], True)))
    return root


def write_audio(root: Path, rows: dict[str, int] | None = None, *, suffix: str = "") -> Path:
    """One ``[T, 128]`` file per video, value ``100 * video + 99``; ``rows`` overrides T."""
    root.mkdir(parents=True)
    for v, (name, t) in enumerate(VIDEOS.items()):
        t = (rows or {}).get(name, t)
        if t == 0:
            continue
        np.save(root / f"{name}{suffix}.npy", np.full((t, 128), 100 * v + 99, dtype=np.float32))
        (root / f"{name}{suffix}.json").write_text(json.dumps(_side(name, [t, 128], False)))
    return root


def ground_truth() -> LabelSet:
    return LabelSet({n: VideoLabels(name=n, frames=np.r_[np.zeros(10), np.ones(16 * VIDEOS[n] - 7)]
                                    if "_label_A" not in n else np.zeros(16 * VIDEOS[n] + 3),
                                    video_label=int("_label_A" not in n), source="t")
                     for n in TEST})


def _lines(path: Path) -> list[str]:
    with open(path) as f:  # as the loaders read them: list(open(...)), newlines kept
        return list(f)


def loader_items(rgb_list: Path, audio_list: Path) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """``Dataset.__getitem__`` of both code bases, from the lines cited in the module docstring."""
    rgb, audio = _lines(rgb_list), _lines(audio_list)
    items = []
    for index in range(len(rgb)):
        label = 0.0 if "_label_A" in rgb[index] else 1.0
        f_v = np.array(np.load(rgb[index].strip("\n")), dtype=np.float32)
        f_a = np.array(np.load(audio[index // 5].strip("\n")), dtype=np.float32)
        items.append((f_v, f_a, label))
    return items


@pytest.mark.parametrize("fmt", ["xdviodet", "macil-sd"])
def test_audio_lines_pair_with_each_group_of_five_rgb_lines(tmp_path: Path, fmt: str) -> None:
    rgb, audio = write_rgb(tmp_path / "rgb"), write_audio(tmp_path / "vggish")
    res = write_lists(rgb, tmp_path / "lists", format=fmt, audio=audio, labels=ground_truth(),
                      naming="xd", test_split=TEST)
    assert res.issues == ()
    names = list(VIDEOS)
    for split, rgb_name, audio_name in (("train", "rgb.list", "audio.list"),
                                        ("test", "rgb_test.list", "audio_test.list")):
        assert res.lists[split] == tmp_path / "lists" / rgb_name
        assert res.audio_lists[split] == tmp_path / "lists" / audio_name
        items = loader_items(res.lists[split], res.audio_lists[split])
        assert len(items) == CROPS * len(_lines(res.audio_lists[split])) == CROPS * 2
        for f_v, f_a, label in items:
            video = int(f_v[0, 0]) // 100
            assert int(f_a[0, 0]) == 100 * video + 99          # its own video's audio
            assert f_v.shape[0] == f_a.shape[0] == VIDEOS[names[video]]
            assert np.concatenate((f_v, f_a), axis=1).shape == (VIDEOS[names[video]], DIM + 128)
            assert label == (0.0 if "_label_A" in names[video] else 1.0)
        # crops 0..4 of one video, consecutively (the test loop averages 5 lines at a time)
        assert [int(f_v[0, 0]) % 100 for f_v, _, _ in items] == list(range(CROPS)) * 2
    # Test loop: batches of 5 lines in order, mean over the batch, each score repeated 16
    # times: exactly one score per ground-truth frame.
    test_items = loader_items(res.lists["test"], res.audio_lists["test"])
    scores = [np.stack([f_v[:, 0] for f_v, _, _ in test_items[i:i + 5]]).mean(0)
              for i in range(0, len(test_items), 5)]
    gt = np.load(tmp_path / "lists" / "gt.npy")
    assert np.repeat(np.concatenate(scores), 16).shape == gt.shape == (16 * (3 + 4),)
    # abnormal first, then normal (make_list.py's order)
    assert [int(x[0][0, 0]) // 100 for x in test_items[::5]] == [0, 2]


def test_a_video_without_audio_or_with_another_length_fails_alone(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c, _ = VIDEOS
    rgb = write_rgb(tmp_path / "rgb")
    audio = write_audio(tmp_path / "vggish", rows={b: 0, c: VIDEOS[c] - 1})  # b: none; c: T-1
    split = tmp_path / "test.txt"
    split.write_text(f"{a}\n{c}\n")
    code = main(["lists", str(rgb), "--format", "macil-sd", "--audio", str(audio), "--naming", "xd",
                 "--test-split", str(split), "-o", str(tmp_path / "lists")])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{b}: [no-audio] no audio features named {b}" in out
    assert f"{c}: [length-mismatch] audio features" in out and "have 3 rows, its RGB features 4" in out
    items = {split: loader_items(tmp_path / "lists" / r, tmp_path / "lists" / au)
             for split, r, au in (("train", "rgb.list", "audio.list"),
                                  ("test", "rgb_test.list", "audio_test.list"))}
    # the others are listed and still pair up: d in training, a in test
    assert {int(f_v[0, 0]) // 100 for f_v, _, _ in items["train"]} == {3}
    assert {int(f_v[0, 0]) // 100 for f_v, _, _ in items["test"]} == {0}
    assert all(int(f_a[0, 0]) == int(f_v[0, 0]) // 100 * 100 + 99
               for split_items in items.values() for f_v, f_a, _ in split_items)


def test_xd_release_names_and_upstream_paths(tmp_path: Path) -> None:
    # XD-Violence's own VGGish files are <video>__vggish.npy; --codebase-root writes list/*.
    rgb, audio = write_rgb(tmp_path / "rgb"), write_audio(tmp_path / "vggish", suffix="__vggish")
    repo = tmp_path / "XDVioDet"
    repo.mkdir()
    res = write_lists(rgb, format="xdviodet", audio=audio, naming="xd", test_split=TEST,
                      codebase_root=repo)
    assert res.issues == ()
    assert {p.relative_to(repo).as_posix() for p in res.files} == {
        "list/rgb.list", "list/rgb_test.list", "list/audio.list", "list/audio_test.list"}
    assert all(line.endswith("__vggish.npy\n") for line in _lines(repo / "list" / "audio.list"))
    assert len(loader_items(repo / "list" / "rgb.list", repo / "list" / "audio.list")) == 10


def test_xdviodet_without_audio_writes_rgb_lists_only(tmp_path: Path) -> None:
    res = write_lists(write_rgb(tmp_path / "rgb"), tmp_path / "o", format="xdviodet", naming="xd",
                      test_split=TEST, name="xd")
    assert sorted(p.name for p in res.files) == ["xd_rgb.list", "xd_rgb_test.list"]
    assert res.audio_lists == {} and res.lines == {"train": 10, "test": 10}


def test_audio_usage_errors(tmp_path: Path) -> None:
    rgb, audio = write_rgb(tmp_path / "rgb"), write_audio(tmp_path / "vggish")
    with pytest.raises(ConfigError, match="rtfm lists have no audio list; audio features are listed "
                                          "for xdviodet, macil-sd"):
        write_lists(rgb, tmp_path / "o", format="rtfm", audio=audio, naming="xd", test_split=TEST)
    with pytest.raises(ConfigError, match="macil-sd's loader always opens its audio lists"):
        write_lists(rgb, tmp_path / "o", format="macil-sd", naming="xd", test_split=TEST)
    three = write_rgb(tmp_path / "rgb3", crops=3)
    with pytest.raises(ConfigError, match=r"xdviodet lists need 5 crop files per video .*; "
                                          r"Movie\.B.* has shape \[2, 3, 4\] \(per-crop layout\): "
                                          r"extract with --crops 5"):
        write_lists(three, tmp_path / "o", format="xdviodet", audio=audio, naming="xd", test_split=TEST)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match=r"lists lies inside the input .*vggish"):
        write_lists(rgb, audio / "lists", format="macil-sd", audio=audio, naming="xd", test_split=TEST)


def _codebase(name: str) -> Path:
    root = os.environ.get("VADFEAT_CODEBASES")
    if not root or not (Path(root) / name).is_dir():
        pytest.skip(f"needs a {name} checkout in VADFEAT_CODEBASES (no network in CI)")
    return Path(root) / name


@pytest.mark.parametrize(("repo", "module", "fmt"), [("XDVioDet", "dataset", "xdviodet"),
                                                     ("MACIL_SD", "avce_dataset", "macil-sd")])
def test_the_code_bases_own_dataset_reads_the_lists(tmp_path: Path, repo: str, module: str,
                                                    fmt: str) -> None:
    torch = pytest.importorskip("torch")
    checkout = _codebase(repo)
    rgb, audio = write_rgb(tmp_path / "rgb"), write_audio(tmp_path / "vggish")
    res = write_lists(rgb, tmp_path / "lists", format=fmt, audio=audio, labels=ground_truth(),
                      naming="xd", test_split=TEST)
    args = Namespace(modality="MIX2", rgb_list=str(res.lists["train"]), flow_list=None,
                     audio_list=str(res.audio_lists["train"]), test_rgb_list=str(res.lists["test"]),
                     test_flow_list=None, test_audio_list=str(res.audio_lists["test"]), max_seqlen=200)
    sys.path.insert(0, str(checkout))
    try:
        spec = importlib.util.spec_from_file_location(f"{repo}_{module}", checkout / f"{module}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        train = mod.Dataset(args, test_mode=False)
        labels = [float(train[i][-1]) for i in range(len(train))]
        assert labels == [1.0] * 5 + [0.0] * 5          # Movie.B (abnormal), then Movie.D
        test = torch.utils.data.DataLoader(mod.Dataset(args, test_mode=True), batch_size=5, shuffle=False)
        rows = 0
        for batch in test:  # XDVioDet: [5, T, 1024+128]; MACIL_SD: ([5, T, D], [5, T, 128])
            f_v = batch if torch.is_tensor(batch) else batch[0]
            assert f_v.shape[0] == 5 and len(set(f_v[:, 0, 0].long().div(100, rounding_mode="floor")
                                                 .tolist())) == 1
            rows += f_v.shape[1]
        assert 16 * rows == np.load(tmp_path / "lists" / "gt.npy").size
    finally:
        sys.path.remove(str(checkout))
        sys.modules.pop("utils", None)


def test_audio_of_another_shape_is_reported_and_relative_lines_apply_to_audio(tmp_path: Path) -> None:
    a, b, c, d = VIDEOS
    rgb, audio = write_rgb(tmp_path / "data" / "rgb"), write_audio(tmp_path / "data" / "vggish")
    np.save(audio / f"{d}.npy", np.zeros((VIDEOS[d], 2, 128), dtype=np.float32))  # two views
    (audio / f"{d}.json").write_text(json.dumps(_side(d, [VIDEOS[d], 2, 128], True)))
    res = write_lists(rgb, tmp_path / "o", format="xdviodet", audio=audio, naming="xd", test_split=TEST,
                      relative_to=tmp_path / "data")
    assert [(i.video, i.kind) for i in res.issues] == [(d, "bad-features")]
    assert "shape [2, 2, 128]" in res.issues[0].message
    assert _lines(res.audio_lists["train"]) == [f"vggish/{b}.npy\n"]
    assert _lines(res.audio_lists["test"]) == [f"vggish/{a}.npy\n", f"vggish/{c}.npy\n"]
    assert _lines(res.lists["train"]) == [f"rgb/{b}__{k}.npy\n" for k in range(CROPS)]
