"""VGGish audio backbone (AudioSet, 128-d), as XD-Violence's audio features were made.

- :mod:`.spec`: the constants of the reference's ``vggish_params.py``, the heads, no torch;
- :mod:`.melspec`: the log-mel examples ``[N, 1, 96, 64]`` (numpy; own implementation of
  tensorflow/models ``research/audioset/vggish/mel_features.py``), streamed;
- :mod:`.model`: the network with torchvggish's parameter names, its heads and the final-ReLU
  question; :mod:`.pca`: the AudioSet PCA/quantisation postprocessing;
- :mod:`.checkpoints`: torchvggish ``.pth``/``.pt``/safetensors and the TensorFlow release
  dumped to ``.npz``; :func:`why_not_vggish` for detection.

:func:`embed_file` is the library entry point for now: audio file -> ``[N, 128]`` on the
plain 0.96 s grid (example ``k`` covers ``[0.96 k, 0.96 k + 0.975)`` s of the 16 kHz track).
This package's ``__init__`` imports neither torch nor numpy: the names below load their
modules when first used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from vadfeat.backbones.vggish.model import VGGish
    from vadfeat.backbones.vggish.spec import VGGishHead

__all__ = ["embed_file", "log_mel_examples"]


def log_mel_examples(path: str | os.PathLike[str], *, batch: int = 64) -> Any:
    """Iterate the log-mel examples of ``path``'s first audio stream, ``[k, 1, 96, 64]`` float32
    batches of at most ``batch``: decoded with PyAV, mixed to mono, resampled to 16 kHz with
    resampy (streamed; ``vadfeat.io.audio``), framed as the reference.

    Raises :class:`~vadfeat.errors.VideoOpenError` ("no audio stream", or an unreadable file)
    or :class:`~vadfeat.errors.DecodeError`, naming the file.
    """
    from vadfeat.backbones.vggish.melspec import examples_from_chunks
    from vadfeat.backbones.vggish.spec import SAMPLE_RATE
    from vadfeat.io.audio import open_audio, resample_chunks

    with open_audio(path) as reader:
        chunks = resample_chunks(reader, reader.info.rate, SAMPLE_RATE)
        yield from examples_from_chunks((c.data for c in chunks), batch=batch)


def embed_file(path: str | os.PathLike[str], model: VGGish, *, head: VGGishHead = "embedding",
               batch: int = 64, device: str | None = None) -> np.ndarray:
    """VGGish features of ``path``'s audio on the plain 0.96 s grid: ``[N, 128]`` float32.

    ``N`` is the reference's count, ``1 + (n - 15600) // 15360`` for ``n`` samples at 16 kHz
    (0 for less than 0.975 s: an empty ``[0, 128]``); the incomplete tail is dropped, as
    torchvggish and the TensorFlow release do.  ``head``: see
    :data:`vadfeat.backbones.vggish.spec.VGGISH_HEADS` (``postprocessed*`` need the model's
    PCA).  ``device``: where to run (default: the model's).  Errors as
    :func:`log_mel_examples`.
    """
    import numpy as np
    import torch

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for examples in log_mel_examples(path, batch=batch):
            y = model(torch.from_numpy(examples).to(dev), head=head)
            out.append(y.float().cpu().numpy())
    if not out:
        return np.zeros((0, 128), dtype=np.float32)
    return np.concatenate(out)
