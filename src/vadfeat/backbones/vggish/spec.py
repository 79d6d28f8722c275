"""VGGish's constants and names, without torch (the registry and the CLI may read them).

The numbers are those of the AudioSet VGGish release, tensorflow/models
``research/audioset/vggish/vggish_params.py`` (the same file in harritaylor/torchvggish
``torchvggish/vggish_params.py``): 16 kHz mono input, 25 ms STFT windows every 10 ms, 64
mel bands between 125 and 7500 Hz, ``log(mel + 0.01)``, 96-frame (0.96 s) examples every
96 frames, a 128-d embedding, and the postprocessing's PCA file keys and quantisation range.
Also the parameter names and shapes (:data:`VGGISH_SHAPES`, torchvggish's; :data:`TF_NAMES`,
the TensorFlow release's scopes) and checkpoint detection from key names
(:func:`why_not_vggish`, :func:`sniff_vggish`), so the registry can ask without loading torch
models.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vadfeat._types import VGGishHead, VGGishQuantize

SAMPLE_RATE = 16000
STFT_WINDOW_SECONDS = 0.025
STFT_HOP_SECONDS = 0.010
NUM_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames
EXAMPLE_HOP_FRAMES = 96
EMBEDDING_SIZE = 128

WINDOW_SAMPLES = round(SAMPLE_RATE * STFT_WINDOW_SECONDS)  # 400
HOP_SAMPLES = round(SAMPLE_RATE * STFT_HOP_SECONDS)  # 160
FFT_LENGTH = 512  # the next power of two >= 400, as mel_features.log_mel_spectrogram computes it
#: Samples one example spans (95 hops + one window) and the samples between examples.
EXAMPLE_SAMPLES = (EXAMPLE_FRAMES - 1) * HOP_SAMPLES + WINDOW_SAMPLES  # 15600
EXAMPLE_HOP_SAMPLES = EXAMPLE_HOP_FRAMES * HOP_SAMPLES  # 15360 (0.96 s)

PCA_EIGEN_VECTORS = "pca_eigen_vectors"
PCA_MEANS = "pca_means"
QUANTIZE_MIN = -2.0
QUANTIZE_MAX = 2.0

#: What a VGGish forward returns (:class:`vadfeat.backbones.vggish.model.VGGish`):
#: ``embedding``: fc2 followed by a ReLU, as torchvggish's ``embeddings`` ends and as the
#: TensorFlow release computed until tensorflow/models PR #9080 (August 2020);
#: ``embedding_prerelu``: fc2's output without it, as tensorflow/models computes since then
#: (its README: "the embedding layer does not include a final non-linear activation");
#: ``postprocessed``: the AudioSet PCA + whitening + clip to [-2, 2] + 8-bit quantisation of
#: ``embedding`` (values 0..255, what torchvggish's ``postprocess=True`` gives);
#: ``postprocessed_prerelu``: the same of ``embedding_prerelu`` (today's TensorFlow demo).
VGGISH_HEADS: tuple[VGGishHead, ...] = ("embedding", "embedding_prerelu", "postprocessed",
                                        "postprocessed_prerelu")

#: How the postprocessing maps [0, 255] floats to integers: ``floor`` is the TensorFlow
#: release's ``astype(np.uint8)`` (tensorflow/models ``vggish_postprocess.py``), ``round`` is
#: torchvggish's ``torch.round``; the two differ by at most one step.
Quantize = VGGishQuantize

#: Checkpoint layouts :func:`vadfeat.backbones.vggish.checkpoints.load_vggish_checkpoint` reads.
VGGISH_FORMATS = ("torchvggish", "tf-npz")


#: torchvggish name prefix -> TensorFlow release variable scope.
TF_NAMES: dict[str, str] = {
    "features.0": "vggish/conv1",
    "features.3": "vggish/conv2",
    "features.6": "vggish/conv3/conv3_1",
    "features.8": "vggish/conv3/conv3_2",
    "features.11": "vggish/conv4/conv4_1",
    "features.13": "vggish/conv4/conv4_2",
    "embeddings.0": "vggish/fc1/fc1_1",
    "embeddings.2": "vggish/fc1/fc1_2",
    "embeddings.4": "vggish/fc2",
}


#: Every VGGish parameter's torchvggish name and shape.
VGGISH_SHAPES: dict[str, tuple[int, ...]] = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}

_WRAPPERS = ("state_dict.", "model.", "module.")
_SHOW = 8


def _strip(key: str) -> str:
    for prefix in _WRAPPERS:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _show(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def why_not_vggish(keys: Iterable[str]) -> str | None:
    """``None`` when ``keys`` are a VGGish checkpoint's (torchvggish names, possibly under
    ``state_dict.``/``model.``/``module.`` as a flattened nested dict names them, or TensorFlow
    release names with the ``vggish/`` scope), else one line saying why not (for the registry's
    detection, which names every backbone that declined a file)."""
    names = {_strip(k) for k in keys}
    torch_names = set(VGGISH_SHAPES)
    if torch_names <= names:
        return None
    tf_needed = {f"{scope}/{leaf}" for scope in TF_NAMES.values() for leaf in ("weights", "biases")}
    if tf_needed <= names:
        return None
    if names & torch_names:
        return f"has some of VGGish's torchvggish keys but lacks {_show(torch_names - names)}"
    if names & tf_needed:
        return f"has some of VGGish's TensorFlow variables but lacks {_show(tf_needed - names)}"
    return ("no VGGish keys (expected torchvggish's features.0.weight ... embeddings.4.bias, or "
            "the TensorFlow release's vggish/conv1/weights ... vggish/fc2/biases)")


def sniff_vggish(path: Path, keys: Iterable[str] | None) -> tuple[bool, str]:
    """``(ours, why)`` for the registry: ``keys`` are the state-dict names when they could be read
    without running code; ``None`` (the registry cannot read an ``.npz``): the names are read
    from the ``.npz`` archive's member list (no array is loaded)."""
    if keys is None:
        if path.suffix != ".npz":
            return False, "key names unreadable (VGGish reads .pth/.pt/.safetensors state dicts or .npz)"
        import zipfile

        try:
            with zipfile.ZipFile(path) as zf:
                keys = [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
        except (OSError, zipfile.BadZipFile) as exc:
            return False, f"not a readable .npz ({exc})"
    reason = why_not_vggish(keys)
    if reason is None:
        return True, "VGGish weights (torchvggish names or the TensorFlow release's variables)"
    return False, reason
