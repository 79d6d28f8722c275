"""Recipes reproduced from the scripts that made the field's feature files (issue 22).

Each test re-implements, in numpy and Pillow written here, what one public script does
to a video's frames (not vadfeat's code), and compares vadfeat's preset with it, from
the script's own frame folder, at float32 rounding.

``i3d-gowtham``: GowthamGottimukkala/I3D_Feature_Extraction_resnet (``extract_features.py``
at 096dccb, ``main.py`` at 03a392e): an ffmpeg JPEG dump ``<n>.jpg`` from 0, sorted
naturally; each frame ``Image.open``, ``resize((340, 256), ANTIALIAS)``, ``x * 2 / 255 - 1``
in float64; chunks of 16 frames every 16, the last starting at
``(frame_cnt - 16) // 16 * 16``; crops ``[:224, :224]``, ``[:224, -224:]``,
``[16:240, 58:282]``, ``[-224:, :224]``, ``[-224:, -224:]``, then the same on the frame
mirrored left-right; features ``[T, 10, D]``.

The I3D InceptionV1 section (``i3d-piergiaj``, ``i3d-video-features``, ``i3d-pel4vad``) is at
the end of the file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from vadfeat.errors import ConfigError
from vadfeat.pipeline.config import ExtractConfig
from vadfeat.pipeline.presets import get_preset
from vadfeat.pipeline.sampling import SnippetAssembler, snippet_indices
from vadfeat.pipeline.stream import snippet_stream
from vadfeat.pipeline.transforms import build_frame_transform, crop_names
from vadfeat.testing import synth


def ffmpeg_jpeg_dump(frames: list[np.ndarray], folder: Path, fps: int = 25) -> Path:
    """``ffmpeg -i video <folder>/%d.jpg -start_number 0`` as main.py:34 runs it, through
    the same libavcodec MJPEG encoder and image2 muxer (PyAV): yuvj420p, the encoder's
    default quality."""
    folder.mkdir(parents=True)
    with av.open(str(folder / "%d.jpg"), "w", format="image2", options={"start_number": "0"}) as out:
        stream = out.add_stream("mjpeg", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuvj420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return folder


def _natural(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def gowtham_inputs(frames_dir: Path, chunks: int | None = None) -> np.ndarray:
    """What the script feeds its network: ``[chunks, 10, 3, 16, 224, 224]`` float32, the
    crops in the script's order (written from its description, not from vadfeat); the first
    ``chunks`` only when given."""
    files = sorted((p.name for p in frames_dir.iterdir()), key=_natural)
    count = len(files)
    assert count > 16  # the script asserts it
    last_start = (count - 16) // 16 * 16
    starts = list(range(0, last_start + 1, 16))[:chunks]

    def load(name: str) -> np.ndarray:
        image = Image.open(frames_dir / name).resize((340, 256), Image.Resampling.LANCZOS)
        return np.array(image).astype(float) * 2 / 255 - 1  # [256, 340, 3] float64

    chunks = []
    for s in starts:
        clip = np.stack([load(files[s + j]) for j in range(16)])  # [16, 256, 340, 3]
        mirrored = clip[:, :, ::-1, :]
        views = []
        for src in (clip, mirrored):
            views += [src[:, :224, :224], src[:, :224, -224:], src[:, 16:240, 58:282],
                      src[:, -224:, :224], src[:, -224:, -224:]]
        # each view [16, 224, 224, 3] -> [3, 16, 224, 224], float32 as `.float()` does
        chunks.append(np.stack([v.transpose(3, 0, 1, 2) for v in views]).astype(np.float32))
    return np.stack(chunks)


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 16:9 frames (the squash to 340x256 matters) and 40 of them: 2 chunks, names 0..39
    # (natural order differs from the names' string order past 9).
    frames = list(synth.scene_frames(40, width=320, height=180, seed=3))
    return ffmpeg_jpeg_dump(frames, tmp_path_factory.mktemp("gowtham") / "Abuse001_x264")


def test_dump_is_what_the_script_reads(dump: Path) -> None:
    names = sorted((p.name for p in dump.iterdir()), key=_natural)
    assert names[:3] == ["0.jpg", "1.jpg", "2.jpg"] and names[-1] == "39.jpg"
    assert Image.open(dump / "0.jpg").mode == "RGB"


def test_gowtham_preset_gives_the_scripts_network_input(dump: Path) -> None:
    config = ExtractConfig.from_settings(model="i3d/r50", random_weights=True, preset="i3d-gowtham")
    transform = build_frame_transform(config.preset)
    ours = [(span, clip) for span, clip in snippet_stream(dump, config, transform)]
    ref = gowtham_inputs(dump)
    assert [span for span, _ in ours] == [(0, 15), (16, 31)]  # 40 frames: 2 chunks, tail dropped
    assert len(ours) == ref.shape[0]
    for (_, clip), want in zip(ours, ref, strict=True):
        assert clip is not None and tuple(clip.shape) == (10, 3, 16, 224, 224)
        # float32 of x * 2 / 255 - 1 computed in float64 vs in float32: one rounding apart
        np.testing.assert_allclose(clip.numpy(), want, rtol=0, atol=2e-7)
    assert crop_names(10, "reading") == ("tl", "tr", "c", "bl", "br", "tl_flip", "tr_flip",
                                         "c_flip", "bl_flip", "br_flip")


def test_crop_orders_against_hand_cut_crops() -> None:
    # A 256x340 frame whose pixel values encode their own position: each crop of each order
    # must start at the position cut by hand here.
    from vadfeat.pipeline.transforms import ten_crop

    h, w = 256, 340
    frame = torch.zeros(3, h, w)
    frame[0] = torch.arange(h).view(h, 1).float()  # row
    frame[1] = torch.arange(w).view(1, w).float()  # column
    at = {"tl": (0, 0), "tr": (0, w - 224), "c": (16, 58), "bl": (h - 224, 0),
          "br": (h - 224, w - 224)}
    for order, names in {"torchvision": ("tl", "tr", "bl", "br", "c"),
                         "centre-first": ("c", "tl", "tr", "bl", "br"),
                         "reading": ("tl", "tr", "c", "bl", "br")}.items():
        crops = ten_crop(frame, 224, order=order)  # type: ignore[arg-type]
        for k, name in enumerate(names):
            top, left = at[name]
            assert crops[k, 0, 0, 0] == top and crops[k, 1, 0, 0] == left, (order, name)
            # the mirrored frame's crop at the same position: its first column is the
            # original's column w - 1 - left
            assert crops[5 + k, 0, 0, 0] == top and crops[5 + k, 1, 0, 0] == w - 1 - left, (order, name)


def test_pillow_and_opencv_decode_the_dump_alike(dump: Path) -> None:
    # vadfeat reads frame folders with OpenCV; the script with Pillow.
    import cv2

    for name in ("0.jpg", "17.jpg", "39.jpg"):
        pil = np.array(Image.open(dump / name))
        ocv = cv2.cvtColor(cv2.imread(str(dump / name)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(pil, ocv), name


def test_lanczos_is_cpu_only_and_fixed_needs_a_frame_size() -> None:
    from vadfeat.errors import ConfigError

    with pytest.raises(ConfigError, match="Pillow"):
        ExtractConfig.from_settings(model="i3d/r50", random_weights=True, preset="i3d-gowtham",
                                    preprocess="device")
    with pytest.raises(ConfigError, match="frame_size"):
        get_preset("i3d-rtfm").replace(resize="fixed")
    with pytest.raises(ConfigError, match="at least size"):
        get_preset("i3d-gowtham").replace(frame_size=(200, 340))
    # Presets without a frame size record none: their fingerprints are what they were.
    assert "frame_size" not in get_preset("i3d-rtfm").to_dict()


def rtfm_author_inputs(frames_dir: Path) -> np.ndarray:
    """RTFM's author's transform (RTFM #21, #53; pytorch-resnet3d's gtransforms), written
    here: ``[snippets, 10, 3, 16, 224, 224]`` float32."""
    files = sorted((p.name for p in frames_dir.iterdir()), key=_natural)

    def load(name: str) -> list[np.ndarray]:
        image = Image.open(frames_dir / name).convert("RGB")
        w, h = image.size
        size = (int(256 * w / h), 256) if w >= h else (256, int(256 * h / w))  # Resize(256)
        image = image.resize(size, Image.Resampling.BILINEAR)
        x = np.asarray(image, dtype=np.float32) / np.float32(255) * np.float32(255)  # ToTensor * 255
        height, width = x.shape[:2]
        ct, cl = round((height - 224) / 2.0), round((width - 224) / 2.0)  # torchvision CenterCrop
        corners = [(0, 0), (0, width - 224), (height - 224, 0), (height - 224, width - 224), (ct, cl)]
        views = []
        for src in (x, x[:, ::-1]):  # TenCrop: five crops, then five of the mirrored image
            views += [src[t:t + 224, left:left + 224] for t, left in corners]
        return [((v - np.float32(114.75)) / np.float32(57.375)).transpose(2, 0, 1) for v in views]

    frames = [load(n) for n in files]
    snippets = []
    for start in range(0, len(frames), 16):
        clip = frames[start:start + 16]
        clip += [clip[-1]] * (16 - len(clip))  # the last partial snippet: its last frame repeated
        snippets.append(np.stack([np.stack([f[k] for f in clip], axis=1) for k in range(10)]))
    return np.stack(snippets).astype(np.float32)


def test_rtfm_author_preset_gives_the_described_network_input(dump: Path) -> None:
    config = ExtractConfig.from_settings(model="i3d/r50", random_weights=True,
                                         preset="i3d-rtfm-author")
    transform = build_frame_transform(config.preset)
    ours = list(snippet_stream(dump, config, transform))
    ref = rtfm_author_inputs(dump)
    assert [span for span, _ in ours] == [(0, 15), (16, 31), (32, 39)]  # 40 frames: 3, padded
    for (_, clip), want in zip(ours, ref, strict=True):
        assert clip is not None
        # (x - 114.75) / 57.375 in two float32 steps vs one fused a * x + b: a few ulps of ~2
        np.testing.assert_allclose(clip.numpy(), want, rtol=0, atol=2e-6)


def test_fixed_squash_from_the_command_line(dump: Path) -> None:
    # ShanghaiTech per RTFM #53: GroupResize((256, 256)), a squash, then the ten crops.
    from vadfeat.cli import build_parser
    from vadfeat.cli.extract_cmds import settings_from_args

    args = build_parser().parse_args(
        ["extract", str(dump), "-o", "unused", "--model", "i3d/r50", "--random-weights",
         "--preset", "i3d-rtfm-author", "--resize", "fixed", "--frame-size", "256,256"])
    preset = ExtractConfig.from_settings(settings_from_args(args)).preset
    assert (preset.resize, preset.frame_size, preset.interpolation) == ("fixed", (256, 256),
                                                                        "pil-bilinear")
    frame = np.array(Image.open(dump / "5.jpg"))
    ours = build_frame_transform(preset)(frame).numpy()  # [10, 3, 224, 224]
    squashed = np.asarray(Image.fromarray(frame).resize((256, 256), Image.Resampling.BILINEAR),
                          dtype=np.float32)
    tl = (squashed[:224, :224] - np.float32(114.75)) / np.float32(57.375)
    c = (squashed[16:240, 16:240] - np.float32(114.75)) / np.float32(57.375)
    np.testing.assert_allclose(ours[0], tl.transpose(2, 0, 1), rtol=0, atol=2e-6)
    np.testing.assert_allclose(ours[4], c.transpose(2, 0, 1), rtol=0, atol=2e-6)


# --- the JPEG round trip: a video's frames as `ffmpeg -i VIDEO %d.jpg` leaves them ---------


def ffmpeg_cli_dump(video: Path, folder: Path) -> Path:
    """The dump main.py:34 makes (ffmpeg-python's ``ffmpeg.input(video).output('%d.jpg',
    start_number=0)``), with a real ``ffmpeg`` command line (imageio-ffmpeg's binary)."""
    import subprocess

    import imageio_ffmpeg

    folder.mkdir(parents=True)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(video), "-start_number", "0",
                    str(folder / "%d.jpg"), "-loglevel", "quiet"], check=True)
    return folder


def test_jpeg_roundtrip_gives_the_pixels_of_ffmpegs_own_dump(bigbuckbunny: Path,
                                                             tmp_path: Path) -> None:
    from vadfeat.io.video import open_video

    dump = ffmpeg_cli_dump(bigbuckbunny, tmp_path / "dump")
    same = plain_diff = 0.0
    count = 0
    with open_video(bigbuckbunny, jpeg_roundtrip="ffmpeg") as jpeg, open_video(bigbuckbunny) as plain:
        for (i, ours), (_, raw) in zip(jpeg, plain, strict=True):
            theirs = np.array(Image.open(dump / f"{i}.jpg"))  # the script reads with Pillow
            same += np.array_equal(ours, theirs)
            plain_diff += np.abs(raw.astype(np.int16) - theirs).mean()
            count += 1
    assert count == len(list(dump.iterdir())) == 132
    # The same libavcodec encoder at the command line's settings: identical pixels (measured:
    # 132 of 132 with FFmpeg 9.0's binary; a few frames may differ across encoder versions).
    assert same >= 0.95 * count, (same, count)
    # Without the round trip the frames are clearly not the dump's (measured: 5.1 levels).
    assert plain_diff / count > 2.0


def test_gowtham_preset_from_the_video_equals_the_script_on_its_dump(bigbuckbunny: Path,
                                                                      tmp_path: Path) -> None:
    dump = ffmpeg_cli_dump(bigbuckbunny, tmp_path / "dump")
    config = ExtractConfig.from_settings(model="i3d/r50", random_weights=True, preset="i3d-gowtham")
    transform = build_frame_transform(config.preset)
    ref = gowtham_inputs(dump, chunks=2)
    stream = snippet_stream(bigbuckbunny, config, transform)
    for want, (span, clip) in zip(ref, stream, strict=False):
        assert clip is not None
        np.testing.assert_allclose(clip.numpy(), want, rtol=0, atol=2e-7, err_msg=str(span))
    stream.close()

# =====================================================================================
# CLIP recipes (issue 22): ``clip-anomalyclip`` and ``clip-tsa``
# =====================================================================================
#
# The scripts' logic written here with OpenCV, Pillow and numpy, not vadfeat's code:
#
# - AnomalyCLIP (lucazanella/AnomalyCLIP at 6e58b6e; the frame dump of its issue #8): every
#   frame read by ``cv2.VideoCapture`` and written by ``cv2.imwrite`` as ``<n:06d>.jpg`` from
#   0; each frame ``Image.open(...).convert("RGB")``, torchvision ``Resize(224, BICUBIC)`` of
#   the PIL image, ``CenterCrop(224)``, ``ToTensor``, ``Normalize`` with CLIP's mean/std
#   (``src/utils/augmentations.py``); one feature per frame from ``clip_model.visual``.
# - CLIP-TSA (joos2010kj/CLIP-TSA issues #4, #5, #13; no extraction code released): CLIP's
#   ``preprocess`` of one frame per 16-frame snippet, "frame 8, 24, 40, ...", one crop.
#
# The network is checked end to end with ``transformers``' CLIPVisionModelWithProjection
# holding the same random weights (mapped by tests/reference.py, not vadfeat).

CLIP_MEAN_REF = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD_REF = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def opencv_frame_dump(video: Path, folder: Path) -> Path:
    """AnomalyCLIP #8's ``extract_frames``: every frame ``cap.read()`` gives, written with
    ``cv2.imwrite(f"{n:06d}.jpg", frame)`` from 0, OpenCV's JPEG defaults."""
    import cv2

    folder.mkdir(parents=True)
    cap = cv2.VideoCapture(str(video))
    count = 0
    while cap.isOpened():
        ok, frame = cap.read()
        if not ok:
            break
        assert cv2.imwrite(str(folder / f"{count:06d}.jpg"), frame)
        count += 1
    cap.release()
    return folder


def clip_preprocess(path: Path) -> np.ndarray:
    """openai/CLIP's ``_transform`` of ``Image.open(path)``: torchvision ``Resize(224, BICUBIC)``
    (short side 224, long side ``int(224 * long / short)``, Pillow's bicubic on the 8-bit
    image), ``CenterCrop(224)`` (offsets ``int(round((L - 224) / 2))``), ``ToTensor`` and
    ``Normalize`` in float32: ``[3, 224, 224]``."""
    return clip_preprocess_image(Image.open(path).convert("RGB"))


def clip_preprocess_image(image: Image.Image) -> np.ndarray:
    """:func:`clip_preprocess` of an RGB PIL image."""
    w, h = image.size
    size = (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
    image = image.resize(size, Image.Resampling.BICUBIC)
    x = np.asarray(image, dtype=np.float32) / np.float32(255)
    top, left = round((x.shape[0] - 224) / 2.0), round((x.shape[1] - 224) / 2.0)  # int(round(...))
    x = x[top:top + 224, left:left + 224]
    return ((x - CLIP_MEAN_REF) / CLIP_STD_REF).transpose(2, 0, 1)


def anomalyclip_inputs(frames_dir: Path) -> np.ndarray:
    """What AnomalyCLIP's loader feeds ``image_encoder``: one row per frame ``[N, 3, 224, 224]``,
    frames by their ``{:06d}.jpg`` number."""
    names = sorted(p.name for p in frames_dir.iterdir())
    assert names == [f"{n:06d}.jpg" for n in range(len(names))]
    return np.stack([clip_preprocess(frames_dir / n) for n in names])


def clip_tsa_inputs(frames_dir: Path) -> np.ndarray:
    """CLIP-TSA as its author states it: frame ``16 k + 8`` of each whole 16-frame snippet
    through CLIP's preprocess, ``[T, 3, 224, 224]``."""
    names = sorted((p.name for p in frames_dir.iterdir()), key=_natural)
    return np.stack([clip_preprocess(frames_dir / names[16 * k + 8]) for k in range(len(names) // 16)])


@pytest.fixture(scope="module")
def opencv_dumps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two videos (H.264) and their OpenCV frame dumps: 402x240 landscape, 12 frames (the centre
    crop's offset is 75.5 px, rounded) and 240x300 portrait, 40 frames (2 snippets and a tail)."""
    root = tmp_path_factory.mktemp("opencv")
    out = {}
    for name, (count, w, h, seed) in {"land": (12, 402, 240, 5), "port": (40, 240, 300, 6)}.items():
        video = synth.write_video(root / f"{name}.mp4", synth.scene_frames(count, width=w, height=h,
                                                                           seed=seed), fps=25)
        out[name] = opencv_frame_dump(video, root / "frames" / name)
        out[f"{name}_video"] = video
    return out


def test_opencv_dump_is_what_anomalyclip_reads(opencv_dumps: dict[str, Path]) -> None:
    import cv2

    names = sorted(p.name for p in opencv_dumps["port"].iterdir())
    assert names[0] == "000000.jpg" and names[-1] == "000039.jpg" and len(names) == 40
    # vadfeat reads frame folders with OpenCV, the script with Pillow: the same pixels.
    for folder in (opencv_dumps["land"], opencv_dumps["port"]):
        for name in ("000000.jpg", "000009.jpg"):
            pil = np.array(Image.open(folder / name).convert("RGB"))
            ocv = cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)
            assert np.array_equal(pil, ocv), (folder.name, name)


def test_anomalyclip_preset_gives_the_scripts_network_input(opencv_dumps: dict[str, Path]) -> None:
    config = ExtractConfig.from_settings(model="clip/vit_b_16", random_weights=True,
                                         preset="clip-anomalyclip")
    transform = build_frame_transform(config.preset)
    for key, count in (("land", 12), ("port", 40)):
        ours = list(snippet_stream(opencv_dumps[key], config, transform))
        ref = anomalyclip_inputs(opencv_dumps[key])
        assert [span for span, _ in ours] == [(i, i) for i in range(count)]  # every frame, one row each
        for (_, clip), want in zip(ours, ref, strict=True):
            assert clip is not None and tuple(clip.shape) == (1, 3, 1, 224, 224)
            # the same 8-bit Pillow pixels; a * x + b in one float32 step against
            # (x / 255 - mean) / std in two: a few float32 roundings of values up to ~2.2
            np.testing.assert_allclose(clip[0, :, 0].numpy(), want, rtol=0, atol=1e-6)


def test_anomalyclip_preset_from_the_video_makes_the_opencv_dump_itself(
        opencv_dumps: dict[str, Path]) -> None:
    # jpeg_roundtrip="opencv": the video's frames as cv2.imwrite stored them and Pillow read
    # them back, so the network input from the video equals the script's on its own dump.
    config = ExtractConfig.from_settings(model="clip/vit_b_16", random_weights=True,
                                         preset="clip-anomalyclip")
    assert config.preset.jpeg_roundtrip == "opencv"
    transform = build_frame_transform(config.preset)
    for key in ("land", "port"):
        ours = list(snippet_stream(opencv_dumps[f"{key}_video"], config, transform))
        ref = anomalyclip_inputs(opencv_dumps[key])
        assert len(ours) == len(ref)
        for (_, clip), want in zip(ours, ref, strict=True):
            assert clip is not None
            np.testing.assert_allclose(clip[0, :, 0].numpy(), want, rtol=0, atol=1e-6)
    # and without the round trip the same frames are measurably not the dump's
    plain = ExtractConfig.from_settings(model="clip/vit_b_16", random_weights=True,
                                        preset="clip-anomalyclip", jpeg_roundtrip="none")
    (_, first), = list(snippet_stream(opencv_dumps["land_video"], plain,
                                      build_frame_transform(plain.preset)))[:1]
    assert first is not None
    assert np.abs(first[0, :, 0].numpy() - anomalyclip_inputs(opencv_dumps["land"])[0]).max() > 1e-3


def test_clip_tsa_preset_gives_the_middle_frame_of_each_snippet(opencv_dumps: dict[str, Path]) -> None:
    config = ExtractConfig.from_settings(model="clip/vit_b_16", random_weights=True, preset="clip-tsa")
    assert (config.preset.clip_len, config.preset.stride, config.preset.frame_reduce) == (16, 16, "middle")
    transform = build_frame_transform(config.preset)
    ours = list(snippet_stream(opencv_dumps["port"], config, transform))
    ref = clip_tsa_inputs(opencv_dumps["port"])
    assert [span for span, _ in ours] == [(0, 15), (16, 31)]  # 40 frames: 2 snippets, tail dropped
    for (_, clip), want in zip(ours, ref, strict=True):
        assert clip is not None and tuple(clip.shape) == (1, 3, 16, 224, 224)
        # the backbone's "middle" frame of a 16-frame snippet is its index 16 // 2 = 8
        np.testing.assert_allclose(clip[0, :, 16 // 2].numpy(), want, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A CLIP-shaped checkpoint (``clip/vit_tiny_16``, random weights, OpenAI's key layout) and
    ``transformers``' CLIPVisionModelWithProjection holding the same weights."""
    transformers = pytest.importorskip("transformers")
    from reference import clip_to_transformers
    from vadfeat.backbones.clip.backbone import ARCHS, init_random
    from vadfeat.backbones.clip.model import ClipVisual

    arch = ARCHS["vit_tiny_16"]
    visual = ClipVisual(arch)
    init_random(visual, seed=11)
    weights = visual.state_dict()
    path = tmp_path_factory.mktemp("tiny_clip") / "ViT-tiny-16.pt"
    torch.save({f"visual.{k}": v for k, v in weights.items()} | {"logit_scale": torch.ones([])}, path)
    config = transformers.CLIPVisionConfig(
        hidden_size=arch.width, intermediate_size=4 * arch.width, num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads, image_size=arch.image_size, patch_size=arch.patch_size,
        projection_dim=arch.output_dim, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    hf = transformers.CLIPVisionModelWithProjection(config)
    hf.load_state_dict(clip_to_transformers(weights), strict=True)
    return path, hf.eval()


@pytest.mark.parametrize(("preset", "key", "reference"), [
    ("clip-anomalyclip", "land", anomalyclip_inputs),
    ("clip-tsa", "port", clip_tsa_inputs),
])
def test_clip_recipe_features_from_the_frame_folder(preset: str, key: str, reference: object,
                                                    opencv_dumps: dict[str, Path],
                                                    tiny_clip: tuple[Path, object]) -> None:
    # The whole chain, frame folder to saved rows: vadfeat's features against transformers'
    # image embeddings of the script's own network input.
    from vadfeat import FeatureExtractor

    checkpoint, hf = tiny_clip
    result = FeatureExtractor(checkpoint, preset=preset, device="cpu").extract_video(opencv_dumps[key])
    inputs = torch.from_numpy(reference(opencv_dumps[key]))  # type: ignore[operator]
    with torch.no_grad():
        want = hf(pixel_values=inputs).image_embeds.numpy()  # type: ignore[operator]
    assert result.features.shape == want.shape  # [frames, 32] / [snippets, 32]: one crop, no crop axis
    np.testing.assert_allclose(result.features, want, rtol=0, atol=1e-5)  # fp32 parity bound


def test_pil_bicubic_is_clips_resize_and_the_torch_path_is_not() -> None:
    # The existing CLIP presets (torch bicubic with antialias, float) approximate CLIP's
    # Pillow resize; `pil-bicubic` is it.  Both measured on one frame with edges.
    frame = next(synth.scene_frames(1, width=402, height=240, seed=9))
    image = Image.fromarray(frame).resize((375, 224), Image.Resampling.BICUBIC)
    pil = np.asarray(image, dtype=np.float32)[:, 76:300]  # CLIP's resize + centre crop, 0..255
    pixels = {}
    for name in ("clip-frames", "clip-anomalyclip"):
        preset = get_preset(name).replace(scale="unit")  # x / 255: compare pixels
        pixels[name] = build_frame_transform(preset)(frame)[0].numpy().transpose(1, 2, 0) * 255
    np.testing.assert_allclose(pixels["clip-anomalyclip"], pil, rtol=0, atol=1e-4)
    torch_gap = np.abs(pixels["clip-frames"] - pil)
    assert 0.05 < torch_gap.mean() < 1.0 and torch_gap.max() <= 3.0  # levels of 255 (BENCHMARKS.md 5)


# --- I3D recipes end to end: from the script's frame folder to the saved features -------


@pytest.mark.parametrize(("preset", "reference"), [("i3d-gowtham", "gowtham"),
                                                   ("i3d-rtfm-author", "rtfm_author")])
def test_i3d_recipe_features_from_the_frame_folder(preset: str, reference: str, dump: Path,
                                                   tmp_path: Path) -> None:
    # vadfeat extract on the script's dump writes [T, 10, D] in the script's crop order; the
    # script's layout (its lines 99-103: crops stacked on axis 1) is rebuilt here by running
    # the same random-weight network on the re-implemented input, crop by crop.
    from vadfeat.backbones.loading import load_model
    from vadfeat.cli import main

    out = tmp_path / "feats"
    assert main(["extract", str(dump), "-o", str(out), "--model", "i3d/r50_tiny",
                 "--random-weights", "--preset", preset, "-q"]) == 0
    ours = np.load(out / f"{dump.name}.npy")
    inputs = gowtham_inputs(dump) if reference == "gowtham" else rtfm_author_inputs(dump)
    model = load_model(model="i3d/r50_tiny", pooling="pool")
    with torch.no_grad():
        theirs = np.stack([model(torch.from_numpy(snippet)).numpy() for snippet in inputs])
    assert ours.shape == theirs.shape == (inputs.shape[0], 10, 128)
    # the same network on inputs equal to float32 rounding: relative 1e-4
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


# ======================================================================================
# I3D InceptionV1 recipes (issue 22, "i3d" part): piergiaj/pytorch-i3d's extract_features.py
# (preset i3d-piergiaj), v-iashin/video_features' I3D (i3d-video-features) and PEL4VAD's
# hand-made ten crops (i3d-pel4vad).  Each reference below is written from the script, in
# numpy / OpenCV / Pillow, not from vadfeat's code.
# ======================================================================================


def piergiaj_video_tensor(root: Path, vid: str) -> np.ndarray:
    """What pytorch-i3d's extract_features.py feeds InceptionV1 (eb3580b): the whole video,
    ``[3, T, 224, 224]`` float32.  charades_dataset_full.py: T = number of files (line 73),
    frames ``<vid>-<i:06d>.jpg`` for i = 1..T (lines 31, 114), cv2.imread then BGR->RGB, the
    226 rule with ``sc = 1 + d / min`` (lines 32-36), ``(img / 255.) * 2 - 1`` in float64
    (line 37), float32 (line 39); videotransforms.CenterCrop(224) with np.round (lines 70-73);
    video_to_tensor's transpose([3, 0, 1, 2])."""
    count = len(list((root / vid).iterdir()))
    frames = []
    for i in range(1, count + 1):
        img = cv2.imread(str(root / vid / f"{vid}-{str(i).zfill(6)}.jpg"))[:, :, [2, 1, 0]]
        w, h, _ = img.shape  # the script's names: w is the height
        if w < 226 or h < 226:
            d = 226.0 - min(w, h)
            sc = 1 + d / min(w, h)
            img = cv2.resize(img, dsize=(0, 0), fx=sc, fy=sc)
        frames.append((img / 255.0) * 2 - 1)
    video = np.asarray(frames, dtype=np.float32)  # [T, H, W, 3]
    _, h, w, _ = video.shape
    i, j = int(np.round((h - 224) / 2.0)), int(np.round((w - 224) / 2.0))
    return video[:, i:i + 224, j:j + 224, :].transpose(3, 0, 1, 2)


@pytest.fixture(scope="module")
def charades_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Charades' layout <root>/<vid>/<vid>-000001.jpg; 4:3 frames below 226 px (enlarged by
    # 226/120 to 226x301: the centre crop's column offset 38.5 rounds half to even), 44 frames.
    root = tmp_path_factory.mktemp("charades")
    synth.write_frame_folder(root / "Xvid1", synth.scene_frames(44, width=160, height=120, seed=5),
                             pattern="Xvid1-{:06d}.jpg", start=1, quality=90)
    return root


def test_piergiaj_preset_gives_the_scripts_network_input(charades_dump: Path) -> None:
    config = ExtractConfig.from_settings(model="i3d/inception_v1", random_weights=True,
                                         preset="i3d-piergiaj")
    transform = build_frame_transform(config.preset)
    ours = list(snippet_stream(charades_dump / "Xvid1", config, transform))
    ref = piergiaj_video_tensor(charades_dump, "Xvid1")  # [3, 44, 224, 224]
    # The script's output grid: ceil(44 / 8) - 1 = 5 steps, step k ~ frames 8k..8k+15.
    assert [span for span, _ in ours] == [(0, 15), (8, 23), (16, 31), (24, 39), (32, 43)]
    for k, (_, clip) in enumerate(ours):
        assert clip is not None and tuple(clip.shape) == (1, 3, 16, 224, 224)
        real = min(16, 44 - 8 * k)
        # (img / 255.) * 2 - 1 in float64 then float32, vs float32 a * x + b: one rounding
        np.testing.assert_allclose(clip[0, :, :real].numpy(), ref[:, 8 * k:8 * k + real],
                                   rtol=0, atol=2e-7)
        # past the end the script's network pads with zeros; here the last frame repeats
        for t in range(real, 16):
            assert torch.equal(clip[0, :, t], clip[0, :, real - 1])


def test_piergiaj_grid_has_the_scripts_length() -> None:
    # The whole-video output has ceil(ceil(ceil(T / 2) / 2) / 2) - 1 steps (InceptionV1's three
    # temporal stride-2 stages with "SAME" padding, then the [2, 7, 7] pool); 16-frame
    # snippets every 8 with the last padded give the same count for every T the network takes.
    for frames in range(9, 400):
        steps = math.ceil(math.ceil(math.ceil(frames / 2) / 2) / 2) - 1
        assert len(snippet_indices(frames, clip_len=16, stride=8, tail="pad")) == steps, frames


def test_piergiaj_min_side_rule_frame_by_frame() -> None:
    # Frames of at least 226 px are not resized (the crop is a 224 window of the frame); for
    # every shorter side m where the script's factor 1 + (226 - m) / m and 226 / m differ in
    # the last bit, OpenCV's enlargement is the same.
    transform = build_frame_transform("i3d-piergiaj")
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    want = (big[8:232, 48:272].astype(np.float64) / 255.0 * 2 - 1).astype(np.float32)
    np.testing.assert_allclose(transform(big)[0].numpy(), want.transpose(2, 0, 1), rtol=0, atol=2e-7)
    differing = [m for m in range(1, 226) if 1 + (226.0 - m) / m != 226 / m]
    assert len(differing) == 25
    for m in differing:
        frame = rng.integers(0, 256, (m, m + 7, 3), dtype=np.uint8)
        sc = 1 + (226.0 - m) / m
        img = cv2.resize(frame, dsize=(0, 0), fx=sc, fy=sc)
        h, w = img.shape[:2]
        i, j = int(np.round((h - 224) / 2.0)), int(np.round((w - 224) / 2.0))
        want = ((img / 255.0) * 2 - 1).astype(np.float32)[i:i + 224, j:j + 224]
        np.testing.assert_allclose(transform(frame)[0].numpy(), want.transpose(2, 0, 1),
                                   rtol=0, atol=2e-7, err_msg=f"shorter side {m}")


def _resize_improved(img: Image.Image, size: int = 256) -> Image.Image:
    """video_features' ResizeImproved(256) (models/transforms.py:191-242 at 1b67c9f)."""
    w, h = img.size
    if (w <= h and w == size) or (h <= w and h == size):
        return img
    if w < h:
        return img.resize((size, int(size * h / w)), Image.Resampling.BILINEAR)
    return img.resize((int(size * w / h), size), Image.Resampling.BILINEAR)


def video_features_stacks(video: Path, stack_size: int = 16, step_size: int = 16) -> list[np.ndarray]:
    """extract_i3d.py's loop (1b67c9f, lines 82-128, RGB stream): OpenCV frames, BGR->RGB,
    ResizeImproved(256) on the PIL image, float; a stack runs once it holds stack_size + 1
    frames, on its first stack_size; then drops step_size frames.  Each stack as the network
    gets it before the crop: ``[T, 3, H, W]`` float32 (0..255)."""
    cap = cv2.VideoCapture(str(video))
    stack: list[np.ndarray] = []
    out = []
    while cap.isOpened():
        ok, bgr = cap.read()
        if not ok:
            cap.release()
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        resized = np.array(_resize_improved(Image.fromarray(rgb)))  # PILToTensor
        stack.append(resized.transpose(2, 0, 1).astype(np.float32))  # ToFloat
        if len(stack) - 1 == stack_size:
            out.append(np.stack(stack[:-1]))
            stack = stack[step_size:]
    return out


def _centre_floor(stack: np.ndarray, size: int = 224) -> np.ndarray:
    """TensorCenterCrop (models/transforms.py:132-143): offsets (L - size) // 2."""
    h, w = stack.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return stack[..., top:top + size, left:left + size]


def _scale_to_1_1(x: np.ndarray) -> np.ndarray:
    """ScaleTo1_1 (models/transforms.py:146-149) in float32: (2 * x / 255) - 1."""
    return (np.float32(2) * x / np.float32(255)) - np.float32(1)


@pytest.fixture(scope="module")
def wide_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 16:9 (320x180 -> 455x256: the centre crop starts at column 115 by floor, 116 by
    # torchvision's rounding), 48 frames: a multiple of 16, where the tool makes 2 stacks
    # (it needs a 17th frame), not 3.
    path = tmp_path_factory.mktemp("video_features") / "01_0015.mp4"
    return synth.write_video(path, synth.scene_frames(48, width=320, height=180, seed=11), fps=24)


def test_video_features_preset_gives_the_scripts_network_input(wide_video: Path) -> None:
    config = ExtractConfig.from_settings(model="i3d/inception_v1", random_weights=True,
                                         preset="i3d-video-features")
    transform = build_frame_transform(config.preset)
    ours = list(snippet_stream(wide_video, config, transform))
    stacks = video_features_stacks(wide_video)
    assert len(stacks) == 2 and [span for span, _ in ours] == [(0, 15), (16, 31)]
    for (_, clip), stack in zip(ours, stacks, strict=True):
        want = _scale_to_1_1(_centre_floor(stack)).transpose(1, 0, 2, 3)  # PermuteAndUnsqueeze
        assert clip is not None and tuple(clip.shape) == (1, 3, 16, 224, 224)
        # 2 * x / 255 - 1 in three float32 steps vs one fused a * x + b: a rounding or two
        np.testing.assert_allclose(clip[0].numpy(), want, rtol=0, atol=2.5e-7)


def pel4vad_ten_crops(stack: np.ndarray, size: int = 224) -> np.ndarray:
    """PEL4VAD #10's TensorTenCrop on a stack ``[T, 3, H, W]``: five crops (tl, tr, bl, br and
    the centre at (L - size) // 2: the part of the thread that is not stored, assumed), then
    ``crop.flip(-1)`` of each -> ``[10, T, 3, size, size]``."""
    h, w = stack.shape[-2:]
    at = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
    crops = [stack[..., t:t + size, left:left + size] for t, left in at]
    return np.stack(crops + [c[..., ::-1] for c in crops])


def test_pel4vad_preset_gives_the_described_ten_crops(wide_video: Path) -> None:
    config = ExtractConfig.from_settings(model="i3d/inception_v1", random_weights=True,
                                         preset="i3d-pel4vad")
    transform = build_frame_transform(config.preset)
    ours = list(snippet_stream(wide_video, config, transform))
    stacks = video_features_stacks(wide_video)
    assert [span for span, _ in ours] == [(0, 15), (16, 31)]
    for (_, clip), stack in zip(ours, stacks, strict=True):
        want = _scale_to_1_1(pel4vad_ten_crops(stack)).transpose(0, 2, 1, 3, 4)  # [10, 3, T, h, w]
        assert clip is not None and tuple(clip.shape) == (10, 3, 16, 224, 224)
        np.testing.assert_allclose(clip.numpy(), want, rtol=0, atol=2.5e-7)
    # crop k + 5 mirrors crop k in place: in the mirrored frame it sits at the partner position
    assert transform.crop_names == ("tl", "tr", "bl", "br", "c",
                                    "tr_flip", "tl_flip", "br_flip", "bl_flip", "c_flip")


def test_mirror_and_floor_crops_against_hand_cut_crops() -> None:
    # Pixel values encode their own position; 256x455 (odd margin 231: centre column 115 by
    # floor, 116 by torchvision's rounding).  Every path that cuts 10 crops must agree.
    from vadfeat.pipeline.presets import Preset
    from vadfeat.pipeline.transforms import cut_crops, ten_crop

    h, w = 256, 455
    frame = torch.zeros(3, h, w)
    frame[0] = torch.arange(h).view(h, 1).float()
    frame[1] = torch.arange(w).view(1, w).float()
    at = {"tl": (0, 0), "tr": (0, w - 224), "bl": (h - 224, 0), "br": (h - 224, w - 224)}
    for rounding, centre in (("floor", (16, 115)), ("round", (16, 116))):
        places = {**at, "c": centre}
        for mirror in ("crop", "frame"):
            crops = ten_crop(frame, 224, order="torchvision", rounding=rounding, mirror=mirror)  # type: ignore[arg-type]
            for k, name in enumerate(("tl", "tr", "bl", "br", "c")):
                top, left = places[name]
                assert (crops[k, 0, 0, 0], crops[k, 1, 0, 0]) == (top, left), (rounding, name)
                # first column of crop 5 + k: in place, the crop's own last column; from the
                # mirrored frame, the original's column w - 1 - left
                first = left + 223 if mirror == "crop" else w - 1 - left
                assert (crops[5 + k, 0, 0, 0], crops[5 + k, 1, 0, 0]) == (top, first), (mirror, name)
    # The worker paths (per frame, per snippet, on the device) cut the same crops bit for bit.
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    preset = get_preset("i3d-pel4vad")
    transform = build_frame_transform(preset)
    scaled = transform.prepare(pixels)  # [3, 256, 455]
    by_frame = transform(pixels)
    assert torch.equal(by_frame, ten_crop(scaled, 224, rounding="floor", mirror="crop"))
    assert torch.equal(transform.assemble([scaled, scaled])[:, :, 1], by_frame)
    assert torch.equal(cut_crops(scaled.unsqueeze(1), preset)[:, :, 0], by_frame)
    assert isinstance(preset, Preset)


def test_lookahead_sampling_streams_as_it_counts() -> None:
    # video_features makes a stack of 16 only when a 17th frame follows: floor((N - 1) / 16).
    for n in range(17, 120):
        rows = snippet_indices(n, clip_len=16, stride=16, tail="drop", lookahead=1)
        assert len(rows) == (n - 1) // 16, n
        assembler: SnippetAssembler[int] = SnippetAssembler(clip_len=16, stride=16, lookahead=1)
        got = [s.frame_indices for i in range(n) for s in assembler.push(i, i)]
        got += [s.frame_indices for s in assembler.finish()]
        assert got == [tuple(r) for r in rows.tolist()], n
    # other grids: overlapping, strided, spaced frames; streaming equals counting, and holds
    # no more than the span plus the lookahead
    for clip, interval, stride, ahead in ((16, 1, 8, 1), (4, 2, 3, 2), (8, 1, 20, 3), (1, 1, 1, 1)):
        span = (clip - 1) * interval + 1
        for n in range(span + ahead, span + ahead + 40):
            rows = snippet_indices(n, clip_len=clip, frame_interval=interval, stride=stride,
                                   lookahead=ahead)
            assert rows[-1, -1] + ahead <= n - 1 < rows[-1, 0] + stride + span - 1 + ahead
            assembler = SnippetAssembler(clip_len=clip, frame_interval=interval, stride=stride,
                                         lookahead=ahead)
            got = [s.frame_indices for i in range(n) for s in assembler.push(i, i)]
            got += [s.frame_indices for s in assembler.finish()]
            assert got == [tuple(r) for r in rows.tolist()], (clip, interval, stride, ahead, n)
            assert assembler.peak_buffered <= span + ahead
    with pytest.raises(Exception, match="17"):  # VideoTooShortError, naming what a snippet needs
        snippet_indices(16, clip_len=16, lookahead=1)
    with pytest.raises(ConfigError, match="tail='drop'"):
        snippet_indices(40, clip_len=16, tail="pad", lookahead=1)
    with pytest.raises(ConfigError, match="tail='drop'"):
        get_preset("i3d-video-features").replace(tail="pad")


def test_new_fields_stay_out_of_old_fingerprints() -> None:
    for name in ("videomae-v2", "fed-wsvad", "i3d-rtfm", "i3d-gowtham", "i3d-xd"):
        data = get_preset(name).to_dict()
        assert not {"lookahead", "centre_rounding", "mirror"} & set(data), name
    data = get_preset("i3d-pel4vad").to_dict()
    assert (data["lookahead"], data["centre_rounding"], data["mirror"]) == (1, "floor", "crop")
    # OpenCV on 8-bit frames runs in the workers only
    with pytest.raises(ConfigError, match="min_side"):
        ExtractConfig.from_settings(model="i3d/inception_v1", random_weights=True,
                                    preset="i3d-piergiaj", preprocess="device")
    with pytest.raises(ConfigError, match="OpenCV bilinear"):
        get_preset("i3d-piergiaj").replace(interpolation="bicubic")


def test_pel4vad_feature_file_holds_the_scripts_features_crop_by_crop(tmp_path: Path) -> None:
    # From the video to the saved [T, 10, 1024] file: each crop's row is the network's feature
    # of the script's input for that crop (same random weights), in the script's crop order.
    from vadfeat.backbones.loading import load_model
    from vadfeat.cli import main

    video = synth.write_video(tmp_path / "v" / "01_0016.mp4",
                              synth.scene_frames(17, width=320, height=180, seed=12), fps=24)
    out = tmp_path / "out"
    # the tiny InceptionV1 (every layer 1/16 as wide: 64-d features) runs the same layers
    assert main(["extract", str(video.parent), "-o", str(out), "--model", "i3d/inception_v1_tiny",
                 "--random-weights", "--preset", "i3d-pel4vad", "--quiet"]) == 0
    ours = np.load(out / "01_0016.npy")
    assert ours.shape == (1, 10, 64)  # 17 frames: one stack of 16 (a 17th frame follows it)
    (stack,) = video_features_stacks(video)
    inputs = _scale_to_1_1(pel4vad_ten_crops(stack)).transpose(0, 2, 1, 3, 4)  # [10, 3, 16, 224, 224]
    model = load_model(model="i3d/inception_v1_tiny", pooling="pool")
    with torch.no_grad():
        for k in (0, 5, 9):
            want = model(torch.from_numpy(np.ascontiguousarray(inputs[k:k + 1])))[0].numpy()
            # float32 network on inputs one rounding apart, batched vs alone
            np.testing.assert_allclose(ours[0, k], want, rtol=1e-4, atol=1e-5, err_msg=f"crop {k}")
    # ... a tolerance far below what tells the crops apart (a swapped order would fail)
    for a, b in ((0, 5), (5, 6), (0, 9)):
        assert np.abs(ours[0, a] - ours[0, b]).max() > 100 * (1e-5 + 1e-4 * np.abs(ours).max())


def test_video_features_clip_preset_gives_the_tools_network_input(opencv_dumps: dict[str, Path]) -> None:
    # v-iashin/video_features' CLIP: cv2.VideoCapture frames, BGR -> RGB, CLIP's _transform of
    # Image.fromarray (written here with OpenCV and Pillow), one row per frame.
    config = ExtractConfig.from_settings(model="clip/vit_b_16", random_weights=True,
                                         preset="clip-video-features")
    transform = build_frame_transform(config.preset)
    for key in ("land", "port"):
        video = opencv_dumps[f"{key}_video"]
        cap = cv2.VideoCapture(str(video))
        ref = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            ref.append(clip_preprocess_image(Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
        cap.release()
        ours = list(snippet_stream(video, config, transform))
        assert [span for span, _ in ours] == [(i, i) for i in range(len(ref))]
        for (_, clip), want in zip(ours, ref, strict=True):
            assert clip is not None
            np.testing.assert_allclose(clip[0, :, 0].numpy(), want, rtol=0, atol=1e-6)


def test_video_features_feature_file_holds_the_tools_features(wide_video: Path, tmp_path: Path) -> None:
    # From the video to the saved [T, 1024-wide layout] file: row t is the network's feature of
    # the tool's stack t (same random weights, the tiny InceptionV1 with the real layers).
    from vadfeat.backbones.loading import load_model
    from vadfeat.cli import main

    out = tmp_path / "out"
    assert main(["extract", str(wide_video), "-o", str(out), "--model", "i3d/inception_v1_tiny",
                 "--random-weights", "--preset", "i3d-video-features", "--quiet"]) == 0
    ours = np.load(out / f"{wide_video.stem}.npy")
    stacks = video_features_stacks(wide_video)
    inputs = np.stack([_scale_to_1_1(_centre_floor(s)).transpose(1, 0, 2, 3) for s in stacks])
    model = load_model(model="i3d/inception_v1_tiny", pooling="pool")
    with torch.no_grad():
        theirs = model(torch.from_numpy(np.ascontiguousarray(inputs))).numpy()
    assert ours.shape == theirs.shape == (2, 64)  # 48 frames: 2 stacks (the tool needs a 17th)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
