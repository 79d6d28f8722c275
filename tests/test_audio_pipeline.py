"""VGGish audio through ``vadfeat extract`` end to end, on real containers with a video and an
audio track (PyAV-written: mp4 with AAC at 44.1 kHz stereo, mkv with PCM at 16 kHz mono).

- the plain grid (``--model vggish/vggish``) gives the rows of
  :func:`vadfeat.backbones.vggish.embed_file` on the same file and weights;
- ``vggish-xd`` gives the ``T`` and the snippet ranges of an ``i3d-xd`` extraction of the same
  file, each window ending at its snippet's end;
- ``--grid-from`` follows a visual extraction's rows (also one run with ``--fps``), and a changed
  visual extraction makes the audio outputs stale;
- ``lists --format xdviodet --audio`` reads the two outputs; a file without audio fails alone;
  resume skips, changed settings are refused; ``--pipeline processes`` writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from audio_media import write_media
from vadfeat.backbones.vggish import embed_file
from vadfeat.backbones.vggish.model import VGGish, init_random
from vadfeat.cli import main
from vadfeat.testing.synth import solid_frames, write_video

VGGISH = ["--model", "vggish/vggish", "--random-weights", "-q"]
I3D_XD = ["--model", "i3d/inception_v1_tiny", "--random-weights", "--preset", "i3d-xd", "-q"]
# XD-Violence names: label_A is normal, label_B1-... abnormal (lists --naming xd).
FIGHT = "Fight__#1_label_B1-0-0"
CALM = "Calm__#1_label_A"


def _reference_model() -> VGGish:
    """The weights ``--random-weights`` gives (the backbone's hook, seed 0), in a plain VGGish."""
    return init_random(VGGish(), seed=0).eval()


def _sidecar(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def write_av(path: Path, *, frames: int, fps: int, audio_seconds: float, rate: int = 16000) -> None:
    """A 32x32 mpeg4 video of ``frames`` frames at ``fps`` and a mono PCM track of
    ``audio_seconds`` (a 440 Hz sine), independently long, in one mkv."""
    with av.open(str(path), mode="w") as c:
        vs = c.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        aus = c.add_stream("pcm_s16le", rate=rate)
        aus.layout = "mono"
        n = round(audio_seconds * rate)
        x = np.round(0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate) * 32767).astype(np.int16)
        for start in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(x[start:start + 1024].reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for p in aus.encode(frame):
                c.mux(p)
        for p in aus.encode(None):
            c.mux(p)
        for i in range(frames):
            img = np.full((32, 32, 3), (i * 5) % 256, dtype=np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 24 fps videos with audio: 3.3 s mp4/AAC 44.1 kHz stereo (79 frames) and 2.5 s
    mkv/PCM 16 kHz mono (60 frames)."""
    d = tmp_path_factory.mktemp("av")
    write_media(d / f"{FIGHT}.mp4", codec="aac", rate=44100, channels=2, seconds=3.3, video=True)
    write_media(d / f"{CALM}.mkv", codec="pcm_s16le", rate=16000, channels=1, seconds=2.5, video=True)
    return d


@pytest.fixture(scope="module")
def plain(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain")
    assert main(["extract", str(media), "-o", str(out), *VGGISH]) == 0
    return out


@pytest.fixture(scope="module")
def visual(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("i3dxd")
    assert main(["extract", str(media), "-o", str(out), *I3D_XD]) == 0
    return out


def test_plain_grid_rows_are_embed_files(media: Path, plain: Path, tmp_path: Path) -> None:
    model = _reference_model()
    for name, ext in ((FIGHT, "mp4"), (CALM, "mkv")):
        ref = embed_file(media / f"{name}.{ext}", model)
        got = np.load(plain / f"{name}.npy")
        # Same examples, same weights; the forward batches differ (8 examples here, 64 in
        # embed_file, or fewer when the model side runs a part batch), which changes float32
        # summation order only (3.8e-6 seen on values up to 11): 1e-5 relative + 1e-5 absolute.
        assert got.shape == ref.shape and got.shape[1] == 128 and got.shape[0] >= 2
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # One example per forward pass on both sides: bit-identical.
    one = tmp_path / "one"
    assert main(["extract", str(media / f"{FIGHT}.mp4"), "-o", str(one), *VGGISH, "--batch-size", "1"]) == 0
    assert np.array_equal(np.load(one / f"{FIGHT}.npy"), embed_file(media / f"{FIGHT}.mp4", model, batch=1))
    side = _sidecar(plain, FIGHT)
    audio = side["audio"]
    assert side["modality"] == "audio" and side["shape"] == [3, 128]  # 3.3 s: 1 + (52800 - 15600) // 15360
    assert (audio["rate"], audio["channels"], audio["codec"]) == (44100, 2, "aac")
    assert audio["grid"] == {"kind": "plain", "first": "none", "tail": "drop"}
    assert audio["windows_seconds"] == [[0.0, 0.96], [0.96, 1.92], [1.92, 2.88]]
    # Frames of the 24 fps video each 0.96 s window overlaps: [0, 23.04) -> 0..23, ...
    assert side["snippets"] == [[0, 23], [23, 46], [46, 69]]
    assert side["fps"] == 24 and side["num_frames"] == 79
    assert audio["coverage"]["padded_seconds"] == 0.0
    assert audio["coverage"]["unused_seconds"] == pytest.approx(3.3 - 2.895, abs=1e-6)


def test_vggish_xd_has_the_t_and_snippets_of_i3d_xd(media: Path, visual: Path, tmp_path: Path) -> None:
    out = tmp_path / "xd"
    assert main(["extract", str(media), "-o", str(out), *VGGISH, "--preset", "vggish-xd"]) == 0
    for name in (FIGHT, CALM):
        a, v = _sidecar(out, name), _sidecar(visual, name)
        feats = np.load(out / f"{name}.npy")
        assert feats.shape[0] == v["shape"][0] == (v["num_frames"] // 16) and feats.shape[1] == 128
        assert a["snippets"] == v["snippets"]
        # Window k ends at snippet k's end, (k + 1) * 16 / 24 s, on the 10 ms log-mel grid.
        ends = [w[1] for w in a["audio"]["windows_seconds"]]
        assert ends == [round(100 * (k + 1) * 16 / 24) / 100 for k in range(feats.shape[0])]
        assert all(round(w[1] - w[0], 6) == 0.96 for w in a["audio"]["windows_seconds"])
        # The first window starts 0.29 s before the track (first="pad"): recorded.
        assert a["audio"]["grid"] == {"kind": "snippets", "first": "pad", "tail": "pad"}
        assert a["audio"]["coverage"]["padded_before_seconds"] == pytest.approx(0.29)


def test_a_short_track_is_padded_and_recorded(tmp_path: Path) -> None:
    src = tmp_path / "v"
    src.mkdir()
    write_av(src / "short.mkv", frames=72, fps=24, audio_seconds=1.5)  # video 3 s, audio 1.5 s
    out = tmp_path / "o"
    assert main(["extract", str(src), "-o", str(out), *VGGISH, "--preset", "vggish-xd"]) == 0
    side = _sidecar(out, "short")
    assert side["shape"] == [4, 128]  # 72 // 16: one row per visual snippet, audio or not
    cov = side["audio"]["coverage"]
    assert cov["audio_seconds"] == 1.5 and cov["video_seconds"] == 3.0
    # The last snippet ends at 64 / 24 s: window [1.71, 2.67) s, whose STFT reads to 2.685 s,
    # 1.185 s past the track's end.
    assert cov["padded_after_seconds"] == pytest.approx(1.185)
    feats = np.load(out / "short.npy")
    # That window lies wholly past the track: its row is the model on silence (log(0.01)).
    model = _reference_model()
    zeros = torch.full((1, 1, 96, 64), float(np.log(0.01)))
    with torch.inference_mode():
        silence = model(zeros).numpy()[0]
    # The run batched this row with the others, the reference computes it alone: float32
    # sums in another order through VGGish's 10 layers differ by up to ~1.4e-5 here (a 2-core
    # AMD EPYC; machines pick other kernels), so 1e-4.
    np.testing.assert_allclose(feats[3], silence, rtol=1e-4, atol=1e-4)
    assert not np.allclose(feats[0], silence, atol=1e-3)  # a window on the track is not silence


def test_grid_from_follows_the_visual_rows_with_fps(media: Path, tmp_path: Path) -> None:
    vis = tmp_path / "vis10"
    assert main(["extract", str(media), "-o", str(vis), *I3D_XD, "--fps", "10"]) == 0
    out = tmp_path / "aud"
    assert main(["extract", str(media), "-o", str(out), *VGGISH, "--grid-from", str(vis)]) == 0
    for name in (FIGHT, CALM):
        a, v = _sidecar(out, name), _sidecar(vis, name)
        assert a["shape"][0] == v["shape"][0] >= 1
        assert a["snippets"] == v["snippets"]
        # Under --fps 10, row k ends at (16 k + 16) / 10 s.
        assert [w[1] for w in a["audio"]["windows_seconds"]] == [1.6 * (k + 1) for k in range(a["shape"][0])]
        assert a["audio"]["grid"]["kind"] == "sidecar"
        assert a["audio"]["grid"]["source"]["sidecar"] == str((vis / f"{name}.json").resolve())
    # vggish-xd under the same --fps cuts the same snippets itself: the same windows and rows.
    xd = tmp_path / "xd10"
    assert main(["extract", str(media), "-o", str(xd), *VGGISH, "--preset", "vggish-xd", "--fps", "10"]) == 0
    for name in (FIGHT, CALM):
        a, b = _sidecar(out, name), _sidecar(xd, name)
        assert a["snippets"] == b["snippets"]
        assert a["audio"]["windows_seconds"] == b["audio"]["windows_seconds"]
        # Same examples; batches may differ (timing): float32 summation order, 1e-5 rel + abs.
        np.testing.assert_allclose(np.load(out / f"{name}.npy"), np.load(xd / f"{name}.npy"),
                                   rtol=1e-5, atol=1e-5)
    # The same again: everything skipped.
    assert main(["extract", str(media), "-o", str(out), *VGGISH, "--grid-from", str(vis)]) == 0
    # The visual extraction made again with other settings: the audio outputs are stale.
    assert main(["extract", str(media), "-o", str(vis), *I3D_XD, "--fps", "12", "--overwrite"]) == 0
    assert main(["extract", str(media), "-o", str(out), *VGGISH, "--grid-from", str(vis)]) == 2


def test_grid_from_without_the_video_fails_alone(media: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    vis = tmp_path / "vis"
    assert main(["extract", str(media / f"{FIGHT}.mp4"), "-o", str(vis), *I3D_XD]) == 0
    out = tmp_path / "aud"
    code = main(["extract", str(media), "-o", str(out), *VGGISH, "--grid-from", str(vis)])
    assert code == 1
    assert (out / f"{FIGHT}.npy").is_file() and not (out / f"{CALM}.npy").exists()
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    failed = [e for e in manifest if e.get("status") == "failed"]
    assert len(failed) == 1 and f"{CALM}.mkv: no sidecar of this video in --grid-from" in failed[0]["error"]


def test_lists_reads_the_audio_beside_the_visual(media: Path, tmp_path: Path) -> None:
    visual = tmp_path / "i3d"  # one file per crop, as XDVioDet's loader reads them
    assert main(["extract", str(media), "-o", str(visual), *I3D_XD, "--layout", "per-crop"]) == 0
    audio = tmp_path / "xd"
    assert main(["extract", str(media), "-o", str(audio), *VGGISH, "--preset", "vggish-xd"]) == 0
    lists = tmp_path / "lists"
    split = tmp_path / "test.txt"
    split.write_text(f"{FIGHT}\n")  # the violent one is a test video, the normal one trains
    assert main(["lists", str(visual), "--format", "xdviodet", "--audio", str(audio), "--naming", "xd",
                 "--test-split", str(split), "-o", str(lists)]) == 0
    for rgb_list, audio_list in (("rgb.list", "audio.list"), ("rgb_test.list", "audio_test.list")):
        rgb = (lists / rgb_list).read_text().splitlines()
        aud = (lists / audio_list).read_text().splitlines()
        assert len(rgb) == 5 and len(aud) == 1  # five crop files per video, one audio file
        assert np.load(aud[0]).shape == (np.load(rgb[0]).shape[0], 128)


def test_a_file_without_audio_fails_alone(media: Path, tmp_path: Path) -> None:
    src = tmp_path / "v"
    src.mkdir()
    (src / "a.mkv").write_bytes((media / f"{CALM}.mkv").read_bytes())
    write_video(src / "silent.mp4", solid_frames(48, (10, 20, 30), width=32, height=32), fps=24)
    out = tmp_path / "o"
    assert main(["extract", str(src), "-o", str(out), *VGGISH]) == 1
    assert (out / "a.npy").is_file() and not (out / "silent.npy").exists()
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    failed = [e for e in manifest if e.get("status") == "failed"]
    assert len(failed) == 1 and "silent.mp4: no audio stream" in failed[0]["error"]


def _pca(path: Path) -> Path:
    rng = np.random.default_rng(3)
    np.savez(path, pca_eigen_vectors=rng.standard_normal((128, 128)).astype(np.float32) * 0.1,
             pca_means=rng.standard_normal((128, 1)).astype(np.float32))
    return path


def test_resume_and_changed_settings(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    one = [str(media / f"{CALM}.mkv"), "-o", str(out)]
    assert main(["extract", *one, *VGGISH]) == 0
    before = (out / f"{CALM}.npy").read_bytes()
    assert main(["extract", *one, *VGGISH]) == 0  # skipped
    assert (out / f"{CALM}.npy").read_bytes() == before
    assert main(["extract", *one, *VGGISH, "--preset", "vggish-xd"]) == 2  # another grid
    assert main(["extract", *one, *VGGISH, "--pooling", "embedding_prerelu"]) == 2  # another head
    pca = _pca(tmp_path / "pca.npz")
    assert main(["extract", *one, *VGGISH, "--pooling", "postprocessed", "--pca", str(pca)]) == 2
    assert (out / f"{CALM}.npy").read_bytes() == before  # nothing rewritten


def test_pca_is_required_refused_and_in_the_fingerprint(media: Path, tmp_path: Path) -> None:
    one = [str(media / f"{CALM}.mkv")]
    out = tmp_path / "o"
    # Usage errors, before any work: no output folder content.
    assert main(["extract", *one, "-o", str(out), *VGGISH, "--pooling", "postprocessed"]) == 2
    pca = _pca(tmp_path / "pca.npz")
    assert main(["extract", *one, "-o", str(out), *VGGISH, "--pca", str(pca)]) == 2  # raw head
    assert not out.exists() or not list(out.glob("*.npy"))
    assert main(["extract", *one, "-o", str(out), *VGGISH, "--pooling", "postprocessed",
                 "--pca", str(pca)]) == 0
    feats = np.load(out / f"{CALM}.npy")
    assert feats.shape == (2, 128)
    assert np.array_equal(feats, np.round(feats)) and feats.min() >= 0 and feats.max() <= 255
    fp = _sidecar(out, CALM)["fingerprint"]
    assert fp["pca"] == {"sha256": hashlib.sha256(pca.read_bytes()).hexdigest(), "quantize": "floor"}
    # Another PCA file: refused as changed settings.
    other = tmp_path / "other.npz"
    rng = np.random.default_rng(4)
    np.savez(other, pca_eigen_vectors=rng.standard_normal((128, 128)).astype(np.float32),
             pca_means=np.zeros((128, 1), np.float32))
    assert main(["extract", *one, "-o", str(out), *VGGISH, "--pooling", "postprocessed",
                 "--pca", str(other)]) == 2


def test_processes_pipeline_writes_the_same_bytes(media: Path, tmp_path: Path) -> None:
    # One example per forward pass: which examples share a batch depends on timing (the model
    # side runs a part batch when no snippet comes for a while), and float32 sums on it.
    one = [*VGGISH, "--batch-size", "1", "--workers", "2"]
    threads, processes = tmp_path / "t", tmp_path / "p"
    assert main(["extract", str(media), "-o", str(threads), *one]) == 0
    assert main(["extract", str(media), "-o", str(processes), *one, "--pipeline", "processes"]) == 0
    for name in (FIGHT, CALM):
        assert (processes / f"{name}.npy").read_bytes() == (threads / f"{name}.npy").read_bytes()


def test_the_readme_audio_commands_work(media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README "Audio (VGGish)": its commands as written, random weights for the checkpoints."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text.split("## Audio (VGGish)", 1)[1], re.S)
    assert block is not None
    lines = [ln for ln in block.group(1).splitlines() if ln.startswith("vadfeat ")]
    assert len(lines) == 4
    (tmp_path / "videos").mkdir()
    for f in media.iterdir():
        (tmp_path / "videos" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "test.txt").write_text(f"{FIGHT}\n")
    monkeypatch.chdir(tmp_path)
    weights = {"rgb_imagenet.pt": ["--model", "i3d/inception_v1_tiny"], "vggish-10086976.pth": ["--model",
                                                                                                "vggish/vggish"]}
    for line in lines:
        argv = shlex.split(line)[1:]
        if "-c" in argv:
            at = argv.index("-c")
            argv[at:at + 2] = [*weights[argv[at + 1]], "--random-weights", "-q"]
        assert main(argv) == 0, line
    for name in (FIGHT, CALM):
        t = _sidecar(tmp_path / "feats" / "audio", name)["shape"][0]
        assert np.load(tmp_path / "feats" / "audio-rows" / f"{name}.npy").shape == (t, 128)
        assert np.load(tmp_path / "feats" / "rgb" / f"{name}__0.npy").shape[0] == t
    assert len((tmp_path / "lists" / "audio_test.list").read_text().splitlines()) == 1


def test_a_resumed_video_skips_its_done_windows(media: Path) -> None:
    """``skip`` (a video resumed after an interruption): the first windows come back without an
    example, the rest equal an uninterrupted stream's."""
    from vadfeat.pipeline.audio_stream import audio_backbone_of
    from vadfeat.pipeline.config import ExtractConfig
    from vadfeat.pipeline.stream import snippet_stream

    cfg = ExtractConfig.from_settings(model="vggish/vggish", random_weights=True, preset="vggish-xd")
    assert audio_backbone_of(cfg) is not None

    def drain(skip: int) -> tuple[list, dict]:
        gen = snippet_stream(media / f"{FIGHT}.mp4", cfg, None, skip=skip)  # type: ignore[arg-type]
        items = []
        while True:
            try:
                items.append(next(gen))
            except StopIteration as stop:
                return items, stop.value

    whole, meta = drain(0)
    resumed, meta2 = drain(2)
    assert [r for r, _ in whole] == [r for r, _ in resumed] and len(whole) == 4
    assert resumed[0][1] is None and resumed[1][1] is None
    for (_, a), (_, b) in zip(whole[2:], resumed[2:], strict=True):
        assert a.shape == (1, 1, 96, 64) and torch.equal(a, b)
    assert meta["audio"] == meta2["audio"]


def test_audio_options_are_refused_for_a_video_backbone(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    tiny = ["--model", "i3d/inception_v1_tiny", "--random-weights", "-q"]
    assert main(["extract", str(media), "-o", str(out), *tiny, "--pca", str(_pca(tmp_path / "p.npz"))]) == 2
    assert main(["extract", str(media), "-o", str(out), *tiny, "--grid-from", str(tmp_path)]) == 2
    assert main(["extract", str(media), "-o", str(out), *VGGISH, "--grid-from", str(tmp_path / "none")]) == 2
    assert main(["extract", str(media), "-o", str(out), *VGGISH, "--preset", "i3d-rtfm"]) == 2
    assert main(["extract", str(media), "-o", str(out), *VGGISH, "--preprocess", "device"]) == 2
    assert main(["extract", str(media), "-o", str(out), *VGGISH, "--fps", "10"]) == 2  # plain grid
    assert not out.exists() or not list(out.glob("*.npy"))


def test_checkpoint_inspect_describes_an_audio_model(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # It printed "input log-mel 96x64 px": pixels are an image stream's unit only.
    ckpt = tmp_path / "vggish-10086976.pth"
    torch.save(_reference_model().state_dict(), ckpt)
    assert main(["checkpoint", "inspect", str(ckpt)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^model\s+vggish/vggish \(.*input log-mel 96x64\)$", text, re.M), text
    assert re.search(r"^format\s+torchvggish$", text, re.M), text


def test_the_output_may_not_lie_inside_the_grid_source(media: Path, visual: Path, tmp_path: Path) -> None:
    # `-o RGB/audio --grid-from RGB` wrote the audio outputs among the visual extraction it
    # reads; vadfeat never writes among its inputs.
    inside = visual / "audio"
    code = main(["extract", str(media), "-o", str(inside), "--model", "vggish/vggish", "--random-weights",
                 "--grid-from", str(visual)])
    assert code == 2 and not inside.exists()
    code = main(["extract", str(media), "-o", str(visual), "--model", "vggish/vggish", "--random-weights",
                 "--grid-from", str(visual)])
    assert code == 2


def test_preset_help_describes_the_audio_grids() -> None:
    # It described vggish as "every frame, short side 224, centre 224, ImageNet mean/std":
    # pixel fields an audio preset never uses.
    from vadfeat.cli._help import preset_help

    text = preset_help()
    plain = re.search(r"vggish: ([^;]*);", text)
    xd = re.search(r"vggish-xd: ([^;]*);", text)
    assert plain and xd, text
    assert "back-to-back 0.96 s" in plain.group(1) and "short side" not in plain.group(1)
    assert "ending at each 16-frame snippet's end" in xd.group(1) and "short side" not in xd.group(1)
    assert "i3d-xd: 16-frame snippets, short side 256" in text  # video presets as before
