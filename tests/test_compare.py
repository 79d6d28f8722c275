"""`vadfeat compare`: "published" features made from vadfeat's own by known perturbations.

MINE is one extraction (tiny VideoMAE V2 model, random weights, 10 crops). THEIRS is
that extraction or another one with one setting changed, written the way papers
release features: plain ``.npy`` files without sidecars. Every expected value is
the perturbation applied (the shift, the permutation, the setting), never a
number read off the output.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vadfeat.cli import main
from vadfeat.dataset.compare import assign_crops, compare
from vadfeat.engines.local import extract
from vadfeat.errors import ConfigError
from vadfeat.testing import synth

CROPS = 10
# Frames per video, neither a multiple of 16: drop keeps floor(N/16) rows, pad ceil(N/16).
FRAMES = {"a": 72, "b": 56}
NAMES = ("tl", "tr", "bl", "br", "c", "tl_flip", "tr_flip", "bl_flip", "br_flip", "c_flip")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Five extractions of the same two 25 fps videos, one setting changed in each.

    112 px instead of 224 keeps the four runs at about 2 s each on 2 cores; the
    comparison does not depend on the size.
    """
    root = tmp_path_factory.mktemp("compare")
    src = root / "in"
    for i, (name, n) in enumerate(FRAMES.items()):
        synth.write_video(src / f"{name}.mp4", synth.scene_frames(n, width=64, height=48, seed=i + 1), fps=25)
    common = dict(model="vit_tiny_patch16_224", random_weights=True, crops=CROPS, size=112, short_side=112,
                  progress=False, batch_size=10)
    out = {}
    for run, settings in {"base": {}, "unit": {"scale": "unit"}, "pad": {"tail": "pad"},
                          "fps30": {"fps": 30}, "fps25": {"fps": 25}}.items():
        s = extract([src], root / run, **common, **settings)
        assert s.ok == len(FRAMES)
        out[run] = root / run
    return out


def publish(src: Path, dst: Path, change: Callable[[np.ndarray], np.ndarray] = lambda a: a, *,
            per_crop: str | None = None) -> Path:
    """Write ``change(features)`` of every video in ``src`` as a paper would: .npy only, no sidecar.

    ``per_crop``: the crop file name pattern (``"{}__{}.npy"``, PEL4VAD ShanghaiTech ``"{}_{}.npy"``).
    """
    dst.mkdir(parents=True, exist_ok=True)
    for name in FRAMES:
        arr = change(np.load(src / f"{name}.npy"))
        if per_crop:
            for k in range(arr.shape[1]):
                np.save(dst / per_crop.format(name, k), arr[:, k])
        else:
            np.save(dst / f"{name}.npy", arr)
    return dst


def kinds(result, name: str) -> set[str]:
    return set(result.video(name).kinds())


def test_identical_inputs_are_reported_identical(runs: dict[str, Path], tmp_path: Path) -> None:
    res = compare(runs["base"], runs["base"])
    assert res.verdict == "identical"
    for v in res.videos:
        assert v.verdict == "identical" and v.max_abs_diff == 0.0 and v.offset == 0
        assert v.kinds() == ("identical",)
    # The same values without sidecars, and two single files.
    assert compare(runs["base"], publish(runs["base"], tmp_path / "pub")).verdict == "identical"
    assert compare(runs["base"] / "a.npy", tmp_path / "pub" / "a.npy").verdict == "identical"
    files = compare(runs["base"] / "a.npy", tmp_path / "pub" / "b.npy")  # two files: compared whatever
    assert [v.name for v in files.videos] == ["a"] and files.verdict != "identical"  # their names


def test_shift_by_one_snippet_is_found(runs: dict[str, Path], tmp_path: Path) -> None:
    # Theirs dropped the first snippet: their row t is my row t + 1.
    res = compare(runs["base"], publish(runs["base"], tmp_path / "late", lambda a: a[1:]))
    for name in FRAMES:
        v = res.video(name)
        assert v.offset == 1 and v.t_theirs == v.t_mine - 1 and v.t_rule == "offset"
        assert "offset" in v.kinds() and "identical" in v.kinds()
        assert "tail" not in v.kinds()  # a one-row difference, but not at the end
    # Theirs has one extra leading row (a copy of a later one): their row t is my row t - 1.
    res = compare(runs["base"], publish(runs["base"], tmp_path / "early",
                                        lambda a: np.concatenate([a[-1:], a])))
    assert {v.offset for v in res.videos} == {-1}


def test_crop_permutation_is_recovered_exactly(runs: dict[str, Path], tmp_path: Path) -> None:
    perm = [4, 0, 1, 2, 3, 9, 5, 6, 7, 8]  # centre crops first: theirs[j] = mine[perm[j]]
    res = compare(runs["base"], publish(runs["base"], tmp_path / "perm", lambda a: a[:, perm]))
    for name in FRAMES:
        v = res.video(name)
        assert [m.mine for m in v.crop_matches] == perm
        assert "crop-permutation" in v.kinds() and v.cosine == pytest.approx(1.0)
    assert [m.mine for m in res.crop_matches] == perm  # pooled over videos too
    message = next(d.message for d in res.video("a").diagnoses if d.kind == "crop-permutation")
    assert "theirs[0] = mine[4] (c)" in message and "theirs[5] = mine[9] (c_flip)" in message
    # A second, arbitrary permutation.
    perm2 = [int(k) for k in np.random.default_rng(5).permutation(CROPS)]
    res = compare(runs["base"], publish(runs["base"], tmp_path / "perm2", lambda a: a[:, perm2]))
    assert all([m.mine for m in v.crop_matches] == perm2 for v in res.videos)


def test_assignment_is_the_maximum_one_to_one_matching() -> None:
    # Greedy would take 0.9 for column 0 and be left with 0.1: the optimum is 0.8 + 0.8.
    sim = np.array([[0.9, 0.8], [0.8, 0.1]])
    assert assign_crops(sim) == [1, 0]
    assert assign_crops(np.array([[0.1, 0.9, 0.2]])) == [-1, 0, -1]  # 1 crop of mine, 3 of theirs


def test_pixel_scaling_is_diagnosed_as_preprocessing(runs: dict[str, Path], tmp_path: Path) -> None:
    # The same frames and weights, pixels in [0, 1] instead of ImageNet mean/std.
    res = compare(runs["base"], publish(runs["unit"], tmp_path / "unit"))
    for name in FRAMES:
        v = res.video(name)
        assert v.offset == 0 and v.t_rule == "same"
        assert kinds(res, name) == {"preprocessing"}
        a, b, r2 = v.affine
        assert r2 < 0.9  # not affine in feature space: the network is nonlinear
    # Controls for the rule: a real affine map of the features, and unrelated features.
    lin = compare(runs["base"], publish(runs["base"], tmp_path / "lin", lambda x: 2.5 * x + 0.1))
    assert all(v.kinds() == ("linear-rescale",) for v in lin.videos)
    a, b, r2 = lin.video("a").affine
    assert (a, b, r2) == (pytest.approx(2.5, rel=1e-4), pytest.approx(0.1, abs=1e-4), pytest.approx(1.0))
    rng = np.random.default_rng(0)
    other = compare(runs["base"], publish(runs["base"], tmp_path / "rnd",
                                          lambda x: rng.standard_normal(x.shape).astype(np.float32)))
    assert all("unrelated" in v.kinds() for v in other.videos)


def test_tail_rule_is_recognised(runs: dict[str, Path], tmp_path: Path) -> None:
    res = compare(runs["base"], publish(runs["pad"], tmp_path / "pad"))
    for name, n in FRAMES.items():
        v = res.video(name)
        # drop: floor(N / 16) rows; pad: ceil(N / 16) rows.
        assert (v.t_mine, v.t_theirs) == (n // 16, math.ceil(n / 16))
        assert v.t_rule == "tail" and v.offset == 0
        assert "ceil" in v.t_note and f"{n} frames are not a multiple of 16" in v.t_note
        assert "identical" in v.kinds()  # the shared rows are the same snippets
    back = compare(runs["pad"], publish(runs["base"], tmp_path / "drop"))
    assert all(v.t_rule == "tail" and "floor" in v.t_note for v in back.videos)


def test_frame_rate_change_is_recognised(runs: dict[str, Path], tmp_path: Path) -> None:
    res = compare(runs["base"], publish(runs["fps30"], tmp_path / "fps30"))
    for name, n in FRAMES.items():
        v = res.video(name)
        # At 30 fps a 25 fps video of N frames gives N * 30 / 25 frames: floor(. / 16) rows.
        assert v.t_theirs == math.floor(n * 30 / 25 / 16) and v.t_theirs == v.t_mine + 1
        assert v.t_rule == "fps" and "29.97, 30 fps" in v.t_note and "at 25 fps" in v.t_note
        assert "tail" not in v.kinds()  # one row more, yet the rows are other snippets


def test_plain_per_crop_folder_without_sidecars(runs: dict[str, Path], tmp_path: Path) -> None:
    crops = publish(runs["base"], tmp_path / "crops", per_crop="{}__{}.npy")
    assert (crops / "a__9.npy").is_file() and not list(crops.glob("*.json"))
    res = compare(runs["base"], crops)
    assert res.verdict == "identical" and res.cannot_diagnose == ()
    # PEL4VAD's ShanghaiTech naming <video>_<k>.npy, no sidecars: grouped into crops 0..9.
    short = publish(runs["base"], tmp_path / "short", per_crop="{}_{}.npy")
    res = compare(runs["base"], short)
    assert res.verdict == "identical" and [v.theirs_shape for v in res.videos] == [
        (FRAMES["a"] // 16, CROPS, 64), (FRAMES["b"] // 16, CROPS, 64)]
    # Mine without sidecars: still compared, and it says what it cannot tell.
    rev = compare(crops, publish(runs["pad"], tmp_path / "pad"))
    assert all(v.t_rule == "tail" and "no frame count" in v.t_note for v in rev.videos)
    assert any("no sidecars" in c for c in rev.cannot_diagnose)
    assert rev.video("a").crop_matches[4].mine_name is None  # crops named by index only


def test_names_crop_counts_and_dims_are_findings(runs: dict[str, Path], tmp_path: Path) -> None:
    theirs = publish(runs["base"], tmp_path / "five", lambda a: a[:, :5])
    (theirs / "b.npy").rename(theirs / "z.npy")
    (theirs / "a.npy").rename(theirs / "a_i3d.npy")  # RTFM's UCF-Crime files: <video>_i3d.npy
    res = compare(runs["base"], theirs)
    assert res.only_mine == ("b",) and res.only_theirs == ("z",)
    v = res.video("a")
    assert v.theirs_name == "a_i3d"
    assert (v.crops_mine, v.crops_theirs) == (CROPS, 5) and "crop-count" in v.kinds()
    assert [m.mine for m in v.crop_matches] == [0, 1, 2, 3, 4]
    narrow = compare(runs["base"], publish(runs["base"], tmp_path / "narrow", lambda a: a[..., :32]))
    v = narrow.video("a")
    assert v.verdict == "not comparable" and "dim-mismatch" in v.kinds() and v.cosine is None


def test_cli_prints_a_line_per_video_and_writes_the_report(runs: dict[str, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    theirs = publish(runs["base"], tmp_path / "perm", lambda a: a[:, ::-1])
    code = main(["compare", str(runs["base"]), str(theirs), "-o", str(tmp_path / "rep")])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("a: ") and lines[1].startswith("b: ")
    assert any(line.startswith("verdict: ") for line in lines)
    report = json.loads((tmp_path / "rep" / "compare.json").read_text())
    assert [m["mine"] for m in report["crop_matches"]] == list(range(CROPS))[::-1]
    html = (tmp_path / "rep" / "index.html").read_text()
    assert 'src="a.png"' in html and (tmp_path / "rep" / "a.png").stat().st_size > 1000
    # A torn file is named, the other video is still compared, exit 1.
    (theirs / "b.npy").write_bytes(b"\x93NUMPY torn")
    code = main(["compare", str(runs["base"]), str(theirs)])
    out = capsys.readouterr().out
    assert code == 1 and "issue  theirs/b" in out and out.startswith("a: ")
    # Usage errors: exit 2, before any work.
    assert main(["compare", str(runs["base"]), str(tmp_path / "missing")]) == 2
    assert main(["compare", str(runs["base"]), str(theirs / "a.npy")]) == 2
    with pytest.raises(ConfigError):
        compare(runs["base"], runs["base"], window=-1)
    # A file vadfeat did not write is never replaced: exit 2 before any work.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "compare.json").write_text("{}")
    assert main(["compare", str(runs["base"]), str(runs["base"]), "-o", str(tmp_path / "other")]) == 2
    assert (tmp_path / "other" / "compare.json").read_text() == "{}"
    assert not (tmp_path / "other" / "index.html").exists()
    shutil.rmtree(tmp_path / "rep")


def test_sidecars_on_both_sides_name_the_settings(runs: dict[str, Path]) -> None:
    # Both folders written by vadfeat: the recorded difference is named as well.
    res = compare(runs["base"], runs["unit"])
    settings = next(d.message for d in res.overall if d.kind == "settings")
    assert "scale: 'imagenet' -> 'unit'" in settings and "tail" not in settings
    res = compare(runs["base"], runs["fps30"])
    settings = next(d.message for d in res.overall if d.kind == "settings")
    assert "fps: 25.0 -> 30.0" in settings
    # Mine extracted at 30 fps, theirs at the video's 25: 72 source frames, 30 fps -> 86 -> 5 rows.
    back = compare(runs["fps30"], publish(runs["base"], Path(runs["base"]).parent / "pub25"))
    assert all(v.t_rule == "fps" and "25 fps" in v.t_note.split("(score")[0] for v in back.videos)


def test_per_dimension_affine_and_stride(runs: dict[str, Path], tmp_path: Path) -> None:
    scale = np.random.default_rng(1).uniform(0.5, 3.0, 64).astype(np.float32)  # 64 = tiny model's D
    res = compare(runs["base"], publish(runs["base"], tmp_path / "std", lambda a: a * scale + 1.0))
    assert all(v.kinds() == ("per-dim-affine",) for v in res.videos)
    # Every snippet twice: theirs has 2T rows (stride half the clip). For 72 frames at 25 fps no
    # common rate gives 8 rows (it needs 128 to 143 frames: 44 to 49.9 fps).
    res = compare(runs["base"], publish(runs["base"], tmp_path / "twice", lambda a: np.repeat(a, 2, axis=0)))
    assert all(v.t_rule == "stride" and v.t_theirs == 2 * v.t_mine for v in res.videos)


def test_rows_paired_by_time_at_another_frame_rate(runs: dict[str, Path]) -> None:
    from vadfeat.dataset.compare import _time_pairs
    from vadfeat.store.reader import read_features

    rec = read_features(runs["base"]).by_name()["a"]  # 4 snippets [16i, 16i + 15] at 25 fps
    # Centres, seconds: mine (16j + 8) / 25 = .32 .96 1.6 2.24; theirs at 30 fps (16i + 8) / 30 =
    # .27 .8 1.33 1.87 2.4 -> nearest mine 0 1 2 2 3, all within half a snippet (.32 s).
    mine_rows, theirs_rows = _time_pairs(rec, 4, 5, 30.0, 16)
    assert mine_rows.tolist() == [0, 1, 2, 2, 3] and theirs_rows.tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------- how many plots (issue 20)


def noisy_pair(tmp_path: Path, n: int) -> tuple[Path, Path, list[str]]:
    """``n`` videos; theirs = mine + noise whose scale grows with the video's index.

    Returns the folders and the names from the largest noise (worst match) to the smallest.
    """
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    rng = np.random.default_rng(0)
    names = [f"v{k:02d}" for k in range(n)]
    for k, name in enumerate(names):
        a = rng.standard_normal((6, 8))
        noise = rng.standard_normal((6, 8))
        # Each noise row as long as its feature row: relative L2 is exactly 0.05 * (k + 1) per row.
        noise *= np.linalg.norm(a, axis=1, keepdims=True) / np.linalg.norm(noise, axis=1, keepdims=True)
        np.save(mine / f"{name}.npy", a.astype(np.float32))
        np.save(theirs / f"{name}.npy", (a + 0.05 * (k + 1) * noise).astype(np.float32))
    return mine, theirs, names[::-1]


def test_compare_draws_the_20_worst_by_default(tmp_path: Path, capsys) -> None:
    mine, theirs, worst_first = noisy_pair(tmp_path, 22)
    out = tmp_path / "r"
    assert main(["compare", str(mine), str(theirs), "-o", str(out)]) == 0
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(worst_first[:20])
    page = (out / "index.html").read_text()
    assert "20 of 22 videos drawn (the 20 worst: by verdict" in page
    assert "--plots N or --plots all" in page


def test_compare_plots_n_all_and_none(tmp_path: Path) -> None:
    mine, theirs, worst_first = noisy_pair(tmp_path, 5)
    r = compare(mine, theirs, tmp_path / "two", plots=2)
    # float32 storage: relative L2 within 1e-5 of the 0.05 * (k + 1) built in
    assert r.video("v04").rel_l2 == pytest.approx(0.25, rel=1e-5)
    assert sorted(p.stem for p in (tmp_path / "two").glob("*.png")) == sorted(worst_first[:2])
    assert [v.name for v in r.videos if v.png is not None] == sorted(worst_first[:2])
    assert main(["compare", str(mine), str(theirs), "--plots", "all", "-o", str(tmp_path / "all")]) == 0
    assert len(list((tmp_path / "all").glob("*.png"))) == 5
    assert "5 of 5 videos drawn (every video)" in (tmp_path / "all" / "index.html").read_text()
    assert main(["compare", str(mine), str(theirs), "--plots", "0", "-o", str(tmp_path / "none")]) == 0
    assert not list((tmp_path / "none").glob("*.png"))
    with pytest.raises(SystemExit) as usage:
        main(["compare", str(mine), str(theirs), "--plots", "many", "-o", str(tmp_path / "x")])
    assert usage.value.code == 2
    with pytest.raises(ConfigError, match="plots must be"):
        compare(mine, theirs, tmp_path / "y", plots=-1)


def test_a_report_beside_two_compared_files_is_allowed_but_not_over_them(tmp_path: Path) -> None:
    a = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", a)
    assert compare(tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "report").verdict == "identical"
    with pytest.raises(ConfigError, match=r"b\.npy/x lies inside the input .*b\.npy"):
        compare(tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "b.npy" / "x")


# ------------------------------------------------------------- recorded settings, pages (issue 21)


def settings_message(res) -> str:
    return next(d.message for d in res.overall if d.kind == "settings")


def test_recorded_frame_rates_beat_guesses(runs: dict[str, Path]) -> None:
    # Both sides are vadfeat extractions: mine sampled the 25 fps videos at 30 fps, theirs at
    # 25. Every common rate from 23.976 to 25 gives theirs' T from my frame count; the
    # sidecar of theirs records 25, and that is what must be said.
    res = compare(runs["fps30"], runs["base"])
    settings = settings_message(res)
    assert "fps: 30.0 -> 25.0" in settings and "--fps: 30 -> None" in settings
    for v in res.videos:
        assert v.t_rule == "fps" and "fps" in v.kinds() and v.time_map == "fps"
        note = v.t_note.split("(score")[0]  # the score's digits are not a frame rate
        assert "theirs at 25 fps" in note and "mine at 30 fps" in note
        assert "24" not in note and "23.976" not in note
    # Rows paired by the recorded snippet times, in source frames (both videos 25 fps):
    # mine (30 fps) snippets of "a" [0,12] [13,25] [26,39] [40,52] [53,65] -> centres 6.5 19.5 33
    # 46.5 59.5; theirs [16i, 16i+15] -> centres 8 24 40 56 -> nearest mine 0 1 3 4, each
    # within half of my 13-frame snippet (6.5 frames; 40 -> 46.5 is exactly 6.5).
    a = res.video("a")
    assert a.rows_mine == (0, 1, 3, 4) and a.rows_theirs == (0, 1, 2, 3)
    # The same T on both sides does not hide a recorded rate difference.
    same = compare(runs["fps30"], runs["fps30"])
    assert "settings" not in {d.kind for d in same.overall}


def test_every_recorded_setting_that_differs_is_listed(runs: dict[str, Path]) -> None:
    # --fps 25 on 25 fps videos: the same sampled rate, a different recorded setting.
    res = compare(runs["base"], runs["fps25"])
    settings = settings_message(res)
    assert "--fps: None -> 25" in settings and "fps: 25.0" not in settings
    assert all(v.t_rule == "same" and "fps" not in v.kinds() for v in res.videos)
    # Two settings at once, each named once.
    res = compare(runs["pad"], runs["fps30"])
    settings = settings_message(res)
    assert "tail: 'pad' -> 'drop'" in settings and "fps: 25.0 -> 30.0" in settings
    assert settings.count("tail:") == 1


def test_compare_page_names_crops_shows_the_order_once_and_the_runner_up(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vadfeat.dataset.compare import comparison_figure

    perm = [4, 0, 1, 2, 3, 9, 5, 6, 7, 8]
    res = compare(runs["base"], publish(runs["base"], tmp_path / "perm", lambda a: a[:, perm]),
                  tmp_path / "rep")
    page = res.index.read_text()
    # The 10-crop permutation is written once on the page, not in every row of the table.
    assert page.count("theirs[1] = mine[0] (tl)") == 1
    assert page.count("same crop order as above") == len(FRAMES)
    # What was compared comes before the verdict, the verdict before the table.
    assert page.index("vit_tiny_patch16_224") < page.index(res.verdict) < page.index("<table")
    # The runner-up margin: best minus second-best cosine per crop of theirs, the smallest.
    v = res.video("a")
    sim = v.crop_similarity
    top2 = np.sort(sim, axis=0)[-2:]
    margin = float((top2[1] - top2[0]).min())
    assert f"runner-up margin {margin:.3f}" in page
    # The matrix is labelled with crop names: mine from my sidecar, theirs by index (no sidecar).
    fig = comparison_figure(v)
    heat = fig.axes[1]
    assert [t.get_text() for t in heat.get_yticklabels()] == list(NAMES)
    assert [t.get_text() for t in heat.get_xticklabels()] == [str(k) for k in range(CROPS)]
    # The command's output says the permutation once too.
    assert main(["compare", str(runs["base"]), str(tmp_path / "perm")]) == 0
    out = capsys.readouterr().out
    assert out.count("theirs[1] = mine[0] (tl)") == 1 and out.count("the pooled crop order") == len(FRAMES)
    # Both sides with sidecars: both named.
    both = compare(runs["base"], runs["unit"]).video("a")
    heat = comparison_figure(both).axes[1]
    assert [t.get_text() for t in heat.get_xticklabels()] == list(NAMES)


def test_near_identity_fit_is_not_called_a_rescale(runs: dict[str, Path], tmp_path: Path) -> None:
    # theirs = mine + noise of 1 % of each row's norm: the least-squares fit is a ~ 1, b ~ 0 with
    # R^2 ~ 1 - 1e-4 (> 0.999), yet nothing was rescaled -- e.g. 24 against 25 fps sampling.
    rng = np.random.default_rng(3)

    def noisy(a: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal(a.shape)
        noise *= np.linalg.norm(a, axis=-1, keepdims=True) / np.linalg.norm(noise, axis=-1, keepdims=True)
        return (a + 0.01 * noise).astype(np.float32)

    res = compare(runs["base"], publish(runs["base"], tmp_path / "noisy", noisy))
    for v in res.videos:
        a, _, r2 = v.affine
        assert r2 > 0.999 and a == pytest.approx(1.0, abs=1e-3)  # what used to be called a rescale
        assert "linear-rescale" not in v.kinds() and "values differ slightly" in " ".join(
            d.message for d in v.diagnoses)


def test_a_setting_recorded_differently_in_some_videos_only_is_listed(tmp_path: Path) -> None:
    # Hand-written sidecars: video "p" is 30 fps, "q" 25 fps. Mine sampled each at its own rate,
    # theirs asked for --fps 25. The first pair alone ("p") shows fps 30 -> 25; "q" shows only
    # the recorded --fps. Both are listed, with how many videos each concerns.
    rng = np.random.default_rng(0)
    for side, asked in (("mine", None), ("theirs", 25)):
        for name, native in (("p", 30.0), ("q", 25.0)):
            rate = asked or native
            rows = int(96 * rate / native) // 16
            root = tmp_path / side
            root.mkdir(exist_ok=True)
            np.save(root / f"{name}.npy", rng.standard_normal((rows, 8)).astype(np.float32))
            step = 16 * native / rate
            side_json = {"video": f"{name}.mp4", "num_frames": 96, "fps": rate, "native_fps": native,
                         "shape": [rows, 8], "crop_order": None,
                         "snippets": [[round(i * step), round((i + 1) * step) - 1] for i in range(rows)],
                         "fingerprint": {"model": "m", "fps": asked, "preset": {"name": "p", "tail": "drop"}}}
            (root / f"{name}.json").write_text(json.dumps(side_json))
    res = compare(tmp_path / "mine", tmp_path / "theirs")
    settings = settings_message(res)
    assert "--fps: None -> 25" in settings
    assert "fps: 30.0 -> 25.0 (in 1 of 2 videos)" in settings
    p = res.video("p")
    assert "fps" in p.kinds() and "theirs at 25 fps" in p.t_note and "mine at 30 fps" in p.t_note
    assert "fps" not in res.video("q").kinds()
