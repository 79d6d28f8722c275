"""How far 16-frame snippets every 8 frames are from pytorch-i3d's whole-video features.

piergiaj/pytorch-i3d's ``extract_features.py`` (eb3580b, lines 72-85) runs a whole video
through InceptionV1 at once and saves ``avg_pool(Mixed_5c)``: one 1024-d feature per 8
frames, each the mean of two adjacent ``Mixed_5c`` time steps, computed with the context of
the whole video (zero "SAME" padding only at the video's two ends).  vadfeat's snippet model
(preset ``i3d-piergiaj``) gives one feature per 16-frame window every 8 frames, each window
run on its own (padding at both of its ends).  The count is the same; this measures the
values, per output step, as relative L2 ``|a - b| / |b|``.

Random weights (vadfeat's ``init_random``: He-normal convolutions, BatchNorm at identity), so
the figures describe the architecture's receptive field, not the released weights, which
no session here can download.  Usage::

    PYTHONPATH=src python bench/i3d_dense_windows.py [--frames 64] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vadfeat.backbones.i3d.backbone import init_random
from vadfeat.backbones.i3d.inception import InceptionI3d
from vadfeat.backbones.i3d.spec import I3D_ARCHS
from vadfeat.pipeline.sampling import snippet_indices
from vadfeat.testing import synth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = InceptionI3d(I3D_ARCHS["inception_v1"]).eval()
    init_random(model, seed=args.seed)
    frames = np.stack(list(synth.scene_frames(args.frames, width=224, height=224, seed=args.seed)))
    video = torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(255).mul(2).sub(1)[None]
    with torch.no_grad():
        whole = model.extract_features(video)[0, :, :, 0, 0].T  # [ceil(T/8) - 1, 1024]
        idx = snippet_indices(args.frames, clip_len=16, stride=8, tail="pad")
        snips = torch.stack([model(video[:, :, torch.from_numpy(i)])[0] for i in idx])
    assert snips.shape == whole.shape, (snips.shape, whole.shape)
    rel = ((snips - whole).norm(dim=1) / whole.norm(dim=1)).numpy()
    print(f"{args.frames} frames: {len(rel)} steps (whole video) = {len(idx)} snippets")
    print("relative L2 per step:", " ".join(f"{r:.3f}" for r in rel))
    print(f"first {rel[0]:.3f}, last {rel[-1]:.3f}, interior median {np.median(rel[1:-1]):.3f}")


if __name__ == "__main__":
    main()
