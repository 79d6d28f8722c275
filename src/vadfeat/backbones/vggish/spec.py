"""VGGish's constants and names, without torch (the registry and the CLI may read them).

The numbers are those of the AudioSet VGGish release, tensorflow/models
``research/audioset/vggish/vggish_params.py`` (the same file in harritaylor/torchvggish
``torchvggish/vggish_params.py``): 16 kHz mono input, 25 ms STFT windows every 10 ms, 64
mel bands between 125 and 7500 Hz, ``log(mel + 0.01)``, 96-frame (0.96 s) examples every
96 frames, a 128-d embedding, and the postprocessing's PCA file keys and quantisation range.
"""

from __future__ import annotations

from typing import Literal

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
VGGishHead = Literal["embedding", "embedding_prerelu", "postprocessed", "postprocessed_prerelu"]
VGGISH_HEADS: tuple[VGGishHead, ...] = ("embedding", "embedding_prerelu", "postprocessed",
                                        "postprocessed_prerelu")

#: How the postprocessing maps [0, 255] floats to integers: ``floor`` is the TensorFlow
#: release's ``astype(np.uint8)`` (tensorflow/models ``vggish_postprocess.py``), ``round`` is
#: torchvggish's ``torch.round``; the two differ by at most one step.
Quantize = Literal["floor", "round"]

#: Checkpoint layouts :func:`vadfeat.backbones.vggish.checkpoints.load_vggish_checkpoint` reads.
VGGISH_FORMATS = ("torchvggish", "tf-npz")
