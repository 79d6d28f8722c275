"""VGGish parity with an independent implementation, harritaylor/torchvggish (PyPI ``torchvggish``).

On random weights (``init_random``; the same state dict copied into torchvggish's ``VGG``):

- the raw embedding within 1e-4 of the largest reference value (relative), the pre-ReLU head
  against torchvggish with its last ReLU removed (the workaround in harritaylor/torchvggish
  issue #24), the postprocessed values within one quantisation step of torchvggish's
  ``Postprocessor`` (it rounds; the TensorFlow release truncates);
- the log-mel examples against torchvggish's ``mel_features``/``vggish_input`` (its copy of
  tensorflow/models' code): 2e-6 absolute (our float32 output of the same float64 values);
- from real containers written here (mp4 with AAC, mkv with PCM; 44.1 kHz stereo and 16 kHz
  mono), with the reference decoding the file on its own: the ``ffmpeg`` command line
  (imageio-ffmpeg) to a WAV, then ``soundfile`` and torchvggish's ``wavfile_to_examples`` as
  v-iashin/video_features does.  PCM: log-mel within 2e-6, embeddings within 1e-4 relative.
  AAC: the users' 16-bit WAV rounds the decoder's float output to int16 (up to 1/65536 per
  sample), which moves the log-mel by up to about 0.01 (0.005 measured) and the random-weight
  embedding by up to 1e-3 relative; through a float WAV (``pcm_f32le``) the decoders agree and
  the 1e-4 bound holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvggish import mel_features, vggish_input
from torchvggish import torchvggish as tv

from audio_media import reference_wav, write_media
from vadfeat.backbones.vggish import embed_file, log_mel_examples
from vadfeat.backbones.vggish.checkpoints import (
    VGGISH_SHAPES,
    load_vggish,
    load_vggish_checkpoint,
    why_not_vggish,
)
from vadfeat.backbones.vggish.melspec import (
    ExampleFramer,
    mel_matrix,
    num_examples,
    periodic_hann,
    waveform_to_examples,
)
from vadfeat.backbones.vggish.model import VGGish, init_random
from vadfeat.backbones.vggish.pca import PcaParams, load_pca
from vadfeat.errors import CheckpointError

SRC = Path(__file__).resolve().parents[1] / "src"


def _rel(got: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray) -> float:
    g, r = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(g - r).max() / np.abs(r).max())


@pytest.fixture(scope="module")
def model() -> VGGish:
    return init_random(VGGish(), seed=3).eval()


@pytest.fixture(scope="module")
def reference(model: VGGish) -> nn.Module:
    ref = tv.VGG(tv.make_layers(), postprocess=False)
    ref.load_state_dict(model.state_dict(), strict=True)
    return ref.eval()


@pytest.fixture(scope="module")
def examples() -> np.ndarray:
    """Real log-mel input: 4 examples of a tone-and-noise signal at 16 kHz."""
    t = np.arange(4 * 15360 + 240) / 16000
    rng = np.random.default_rng(0)
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 0.5 * t) + 0.05 * rng.standard_normal(t.size)
    return vggish_input.waveform_to_examples(x, 16000, return_tensor=False)[:, None].astype(np.float32)


@pytest.fixture(scope="module")
def pca(model: VGGish, examples: np.ndarray) -> PcaParams:
    """PCA parameters that spread the embeddings over [-2, 2] (so quantisation is exercised)."""
    with torch.no_grad():
        emb = model(torch.from_numpy(examples)).double()
    gen = torch.Generator().manual_seed(5)
    vectors = torch.randn(128, 128, generator=gen, dtype=torch.float64)
    spread = ((emb - emb.mean(0)) @ vectors.T).std()
    return PcaParams((vectors * 1.2 / spread).float(), emb.mean(0).float(), "test")


def _ref_postprocessor(pca: PcaParams) -> tv.Postprocessor:
    post = tv.Postprocessor.__new__(tv.Postprocessor)  # its __init__ downloads the release's PCA
    post._pca_matrix = pca.eigen_vectors.clone()
    post._pca_means = pca.means.reshape(-1, 1).clone()
    return post


def test_parameter_names_are_torchvggish(model: VGGish, reference: nn.Module) -> None:
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours == theirs == VGGISH_SHAPES
    model.load_state_dict(reference.state_dict(), strict=True)


def test_embedding_matches_torchvggish(model: VGGish, reference: nn.Module, examples: np.ndarray) -> None:
    x = torch.from_numpy(examples)
    with torch.no_grad():
        got, ref = model(x), reference(x)
    assert got.shape == (4, 128)
    assert ref.abs().max() > 0.1 and (ref > 0).float().mean() > 0.2  # not a degenerate output
    assert _rel(got, ref) <= 1e-4


def test_prerelu_head_is_torchvggish_without_its_last_relu(model: VGGish, reference: nn.Module,
                                                           examples: np.ndarray) -> None:
    head = nn.Sequential(*list(reference.embeddings.children())[:-1])
    x = torch.from_numpy(examples)
    with torch.no_grad():
        feats = reference.features(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        ref = head(feats)
        got = model(x, head="embedding_prerelu")
        post_relu = model(x, head="embedding")
    assert (ref < 0).any()  # the head differs from the ReLU one on these inputs
    assert _rel(got, ref) <= 1e-4
    torch.testing.assert_close(torch.relu(got), post_relu, rtol=0, atol=0)


@pytest.mark.parametrize("quantize", ["round", "floor"])
def test_postprocessed_within_one_step(model: VGGish, reference: nn.Module, examples: np.ndarray,
                                       pca: PcaParams, quantize: str) -> None:
    x = torch.from_numpy(examples)
    model.set_pca(pca)
    model.quantize = quantize  # type: ignore[assignment]
    try:
        with torch.no_grad():
            got = model(x, head="postprocessed")
            ref = _ref_postprocessor(pca).postprocess(reference(x))
    finally:
        model.set_pca(None)
        model.quantize = "floor"
    assert got.shape == ref.shape == (4, 128)
    assert got.min() >= 0 and got.max() <= 255 and torch.equal(got, got.round())
    assert ref.min() < 60 and ref.max() > 195  # spread over the range, clipping included
    assert (got - ref).abs().max() <= 1.0
    if quantize == "round":
        assert (got == ref).float().mean() > 0.99


def test_postprocessed_needs_pca(model: VGGish, examples: np.ndarray) -> None:
    with pytest.raises(ValueError, match="--pca"):
        model(torch.from_numpy(examples), head="postprocessed")
    with pytest.raises(ValueError, match="unknown VGGish head"):
        model(torch.from_numpy(examples), head="logits")  # type: ignore[arg-type]


# -- log-mel --------------------------------------------------------------------------------------


def test_mel_matrix_and_window_match_mel_features() -> None:
    ref = mel_features.spectrogram_to_mel_matrix(num_mel_bins=64, num_spectrogram_bins=257,
                                                 audio_sample_rate=16000, lower_edge_hertz=125,
                                                 upper_edge_hertz=7500)
    np.testing.assert_allclose(mel_matrix(), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(periodic_hann(400), mel_features.periodic_hann(400), rtol=0, atol=1e-15)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_log_mel_examples_match_waveform_to_examples(tmp_path: Path, rate: int) -> None:
    from vadfeat.backbones.vggish.melspec import examples_from_chunks
    from vadfeat.io.audio import AudioChunk, resample_chunks

    x = np.random.default_rng(rate).uniform(-0.6, 0.6, int(rate * 3.5)).astype(np.float32)
    ref = vggish_input.waveform_to_examples(x.astype(np.float64), rate, return_tensor=False)
    chunks = [AudioChunk(i, i / rate, x[i:i + 4096]) for i in range(0, x.size, 4096)]
    got = np.concatenate(list(examples_from_chunks((c.data for c in resample_chunks(chunks, rate, 16000)),
                                                   batch=2)))
    assert got.shape == (ref.shape[0], 1, 96, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, 0], ref, rtol=0, atol=2e-6)


def test_streamed_examples_equal_whole_signal_ones() -> None:
    x = np.random.default_rng(2).uniform(-0.5, 0.5, 16000 * 4 + 123)
    whole = waveform_to_examples(x)
    framer = ExampleFramer()
    sizes = np.random.default_rng(3).integers(1, 9000, size=100)
    parts, start = [], 0
    for size in sizes:
        parts.append(framer.push(x[start:start + size]))
        start += size
        if start >= x.size:
            break
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert framer.emitted == whole.shape[0] == 4


def test_window_framer_on_any_grid() -> None:
    from vadfeat.backbones.vggish.melspec import WindowFramer

    x = np.random.default_rng(4).uniform(-0.5, 0.5, 16000 * 3 + 77)
    chunks = np.array_split(x, 13)
    # the plain grid: the reference's examples
    plain = WindowFramer(range(0, 16000 * 3, 15360))
    got = np.concatenate([plain.push(c) for c in chunks] + [plain.finish()])
    np.testing.assert_array_equal(got[: num_examples(x.size)], waveform_to_examples(x))
    # windows ending every 2/3 s (16 frames at 24 fps), the first ones before the track starts,
    # the last past its end: zeros outside, checked against the padded array
    starts = [round(16000 * 16 / 24 * (i + 1)) - 15600 for i in range(5)]
    framer = WindowFramer(starts)
    got = np.concatenate([framer.push(c) for c in chunks] + [framer.finish()])
    padded = np.concatenate([np.zeros(15600), x, np.zeros(15600)])
    want = np.stack([waveform_to_examples(padded[s + 15600: s + 31200])[0] for s in starts])
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="non-decreasing"):
        WindowFramer([10, 5])


@pytest.mark.parametrize("n", [400, 15599, 15600, 30959, 30960, 31000])
def test_example_count_is_the_references(n: int) -> None:
    ref = vggish_input.waveform_to_examples(np.zeros(n), 16000, return_tensor=False)
    assert num_examples(n) == waveform_to_examples(np.zeros(n)).shape[0] == ref.shape[0]


# -- checkpoints -----------------------------------------------------------------------------------


def _tf_variables(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """What the documented TensorFlow dump holds: vggish_slim scopes, HWIO / [in, out] kernels."""
    scopes = ["vggish/conv1", "vggish/conv2", "vggish/conv3/conv3_1", "vggish/conv3/conv3_2",
              "vggish/conv4/conv4_1", "vggish/conv4/conv4_2", "vggish/fc1/fc1_1", "vggish/fc1/fc1_2",
              "vggish/fc2"]
    prefixes = ["features.0", "features.3", "features.6", "features.8", "features.11", "features.13",
                "embeddings.0", "embeddings.2", "embeddings.4"]
    out: dict[str, np.ndarray] = {"global_step": np.array(10)}
    for scope, prefix in zip(scopes, prefixes, strict=True):
        w = state[f"{prefix}.weight"].numpy()
        out[f"{scope}/weights"] = w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T
        out[f"{scope}/biases"] = state[f"{prefix}.bias"].numpy()
    return out


def test_every_checkpoint_format_loads_strictly(tmp_path: Path, model: VGGish, examples: np.ndarray) -> None:
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in model.state_dict().items()}
    plain = tmp_path / "vggish-10086976.pth"
    torch.save(state, plain)
    nested = tmp_path / "finetuned.pt"
    torch.save({"state_dict": state, "epoch": 3}, nested)
    safe = tmp_path / "vggish.safetensors"
    save_file(state, str(safe))
    npz = tmp_path / "vggish_model.npz"
    np.savez(npz, **_tf_variables(state))  # type: ignore[arg-type]
    x = torch.from_numpy(examples)
    with torch.no_grad():
        want = model(x)
    formats = ((plain, "torchvggish"), (nested, "torchvggish"), (safe, "torchvggish"), (npz, "tf-npz"))
    for path, fmt in formats:
        ckpt = load_vggish_checkpoint(path)
        assert ckpt.format == fmt
        for key, value in state.items():
            assert torch.equal(ckpt.state_dict[key], value), (path, key)
    loaded = load_vggish(npz)  # the transposed format, through the strict load
    with torch.no_grad():
        assert torch.equal(loaded(x), want)
    assert any("global_step" in note for note in load_vggish_checkpoint(npz).notes)


def test_bad_checkpoints_name_the_file_and_the_keys(tmp_path: Path, model: VGGish) -> None:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    missing = tmp_path / "missing.pth"
    torch.save({k: v for k, v in state.items() if k != "embeddings.4.bias"}, missing)
    extra = tmp_path / "extra.pth"
    torch.save({**state, "head.weight": torch.zeros(3)}, extra)
    shaped = tmp_path / "shape.pth"
    torch.save({**state, "embeddings.4.weight": torch.zeros(64, 4096)}, shaped)
    for path, needle in ((missing, "embeddings.4.bias"), (extra, "head.weight"), (shaped, "(64, 4096)")):
        with pytest.raises(CheckpointError) as info:
            load_vggish_checkpoint(path)
        assert str(path) in str(info.value) and needle in str(info.value)
    tf_missing = tmp_path / "tf.npz"
    variables = _tf_variables(state)
    del variables["vggish/fc2/biases"]
    np.savez(tf_missing, **variables)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="vggish/fc2/biases") as info:
        load_vggish_checkpoint(tf_missing)
    assert str(tf_missing) in str(info.value)


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("unpickled code ran",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Payload()}, path)
    with pytest.raises(CheckpointError) as info:
        load_vggish_checkpoint(path)
    assert str(path) in str(info.value)


def test_sniff_through_the_registrys_key_reader(tmp_path: Path, model: VGGish) -> None:
    from safetensors.torch import save_file

    from vadfeat.backbones._registry import peek_checkpoint
    from vadfeat.backbones.vggish.spec import sniff_vggish

    small = {k: torch.zeros(1) for k in VGGISH_SHAPES}  # names are what detection reads
    torch.save(small, tmp_path / "plain.pth")
    torch.save({"state_dict": small, "epoch": 1}, tmp_path / "nested.pt")
    torch.save({f"module.{k}": v for k, v in small.items()}, tmp_path / "ddp.pth")
    save_file(small, str(tmp_path / "w.safetensors"))
    np.savez(tmp_path / "vggish_model.npz", **{k: np.zeros(1) for k in _tf_variables(model.state_dict())})
    for name in ("plain.pth", "nested.pt", "ddp.pth", "w.safetensors", "vggish_model.npz"):
        keys, _ = peek_checkpoint(tmp_path / name)
        ours, why = sniff_vggish(tmp_path / name, keys)
        assert ours, (name, why)
    torch.save({"patch_embed.proj.weight": torch.zeros(1)}, tmp_path / "videomae.pth")
    ours, why = sniff_vggish(tmp_path / "videomae.pth", peek_checkpoint(tmp_path / "videomae.pth")[0])
    assert not ours and "no VGGish keys" in why


def test_ddp_prefixed_state_dict_loads(tmp_path: Path, model: VGGish) -> None:
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    ckpt = load_vggish_checkpoint(path)
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in model.state_dict().items())


def test_why_not_vggish(model: VGGish) -> None:
    assert why_not_vggish(model.state_dict()) is None
    assert why_not_vggish(_tf_variables(model.state_dict())) is None
    assert "no VGGish keys" in str(why_not_vggish(["blocks.0.attn.qkv.weight", "patch_embed.proj.weight"]))
    partial = why_not_vggish([k for k in VGGISH_SHAPES if k.startswith("features.")])
    assert partial is not None and "embeddings.0.weight" in partial


def test_pca_files_of_both_releases(tmp_path: Path, pca: PcaParams) -> None:
    vectors, means = pca.eigen_vectors.numpy().astype(np.float64), pca.means.numpy().astype(np.float64)
    npz = tmp_path / "vggish_pca_params.npz"
    np.savez(npz, pca_eigen_vectors=vectors, pca_means=means.reshape(-1, 1))
    pth_numpy = tmp_path / "vggish_pca_params-970ea276.pth"
    torch.save({"pca_eigen_vectors": vectors, "pca_means": means}, pth_numpy)
    pth_tensor = tmp_path / "pca.pt"
    torch.save({"pca_eigen_vectors": torch.from_numpy(vectors), "pca_means": torch.from_numpy(means)},
               pth_tensor)
    for path in (npz, pth_numpy, pth_tensor):
        got = load_pca(path)
        torch.testing.assert_close(got.eigen_vectors, pca.eigen_vectors, rtol=0, atol=0)
        torch.testing.assert_close(got.means, pca.means, rtol=0, atol=0)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, eigen=vectors)
    with pytest.raises(CheckpointError, match="pca_eigen_vectors") as info:
        load_pca(wrong)
    assert str(wrong) in str(info.value)


# -- end to end, from real containers --------------------------------------------------------------

CONTAINERS = [
    ("aac-44k-stereo.mp4", "aac", 44100, 2, True),
    ("pcm-44k-stereo.mkv", "pcm_s16le", 44100, 2, False),
    ("aac-16k-mono.mp4", "aac", 16000, 1, False),
    ("pcm-16k-mono.mkv", "pcm_s16le", 16000, 1, True),
]


@pytest.mark.parametrize(("name", "codec", "rate", "channels", "video"), CONTAINERS)
def test_embed_file_matches_ffmpeg_and_torchvggish(tmp_path: Path, model: VGGish, reference: nn.Module,
                                                   pca: PcaParams, name: str, codec: str, rate: int,
                                                   channels: int, video: bool) -> None:
    path = tmp_path / name
    write_media(path, codec=codec, rate=rate, channels=channels, seconds=3.3, video=video)
    ours_mel = np.concatenate(list(log_mel_examples(path)))
    got = embed_file(path, model)
    ref_s16 = vggish_input.wavfile_to_examples(str(reference_wav(path, tmp_path / "s16.wav")))
    with torch.no_grad():
        ref = reference(ref_s16).numpy()
    assert got.shape == ref.shape == (3, 128) and got.dtype == np.float32
    if codec.startswith("pcm"):
        np.testing.assert_allclose(ours_mel, ref_s16.detach().numpy(), rtol=0, atol=2e-6)
        assert _rel(got, ref) <= 1e-4
        model.set_pca(pca)
        model.quantize = "round"
        try:
            post = embed_file(path, model, head="postprocessed")
        finally:
            model.set_pca(None)
            model.quantize = "floor"
        with torch.no_grad():
            ref_post = _ref_postprocessor(pca).postprocess(reference(ref_s16)).numpy()
        assert np.abs(post - ref_post).max() <= 1.0
    else:
        # the reference's 16-bit WAV rounds the AAC decoder's float output (module docstring)
        np.testing.assert_allclose(ours_mel, ref_s16.detach().numpy(), rtol=0, atol=1e-2)
        assert _rel(got, ref) <= 1e-3
        import soundfile as sf

        wav, sr = sf.read(str(reference_wav(path, tmp_path / "f32.wav", "pcm_f32le")), dtype="float64")
        ref_f32 = vggish_input.waveform_to_examples(wav, sr)
        np.testing.assert_allclose(ours_mel, ref_f32.detach().numpy(), rtol=0, atol=1e-5)
        with torch.no_grad():
            assert _rel(got, reference(ref_f32).numpy()) <= 1e-4


def test_short_audio_gives_no_example(tmp_path: Path, model: VGGish) -> None:
    path = tmp_path / "short.mkv"
    write_media(path, codec="pcm_s16le", rate=16000, channels=1, seconds=0.9)
    got = embed_file(path, model)
    assert got.shape == (0, 128) and got.dtype == np.float32


def test_importing_the_package_loads_no_torch_or_numpy() -> None:
    code = ("import sys, json; import vadfeat.backbones.vggish, vadfeat.backbones.vggish.spec; "
            "print(json.dumps([m for m in ('torch', 'numpy', 'resampy', 'av') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)}, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == []
    code = "import sys, json; import vadfeat.io.audio; print(json.dumps('torch' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)}, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) is False
