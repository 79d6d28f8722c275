"""The sink interface (``vadfeat.store.sinks``) and its ``.npy`` sink: where a video's
features go in each layout, one write as a unit, and what a later run finds there."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from vadfeat.errors import ConfigError
from vadfeat.store.sinks import NpySink, Sink, VideoFeatures, make_sink

FP = {"model": "vit_tiny_patch16_224", "preset": {"clip_len": 16, "crops": 1}, "dtype": "fp32"}


def _result(shape: tuple[int, ...], seed: int = 0) -> VideoFeatures:
    feats = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    meta = {"vadfeat_version": "0.0-test", "video": "a/clip.mp4", "shape": list(shape), "fingerprint": FP}
    return VideoFeatures(feats, meta)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize(("layout", "crops", "features", "sidecar"), [
    ("flat", 1, ["a/clip.npy"], "a/clip.json"),
    ("flat", 3, ["a/clip.npy"], "a/clip.json"),
    ("per-crop", 3, ["a/clip__0.npy", "a/clip__1.npy", "a/clip__2.npy"], "a/clip.json"),
    ("per-crop", 1, ["a/clip__0.npy"], "a/clip.json"),
    ("fed-wsvad", 1, ["features_video/i3d/combine/a/clip/feature.npy"],
     "features_video/i3d/combine/a/clip/feature.json"),
])
def test_the_npy_sink_plans_each_layout_where_its_readers_look(tmp_path: Path, layout: str, crops: int,
                                                             features: list[str], sidecar: str) -> None:
    sink = NpySink(tmp_path, layout=layout, crops=crops)
    target = sink.plan(PurePosixPath("a/clip"))
    assert [p.relative_to(tmp_path).as_posix() for p in target.features] == features
    assert target.sidecar.relative_to(tmp_path).as_posix() == sidecar
    assert sink.key(target) == sidecar  # the claim key: the sidecar, relative
    assert not any(tmp_path.iterdir()), "planning wrote something"


def test_an_unknown_layout_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown layout 'hdf5'.*flat"):
        make_sink(tmp_path, layout="hdf5")


def test_a_write_is_found_done_and_its_bytes_are_np_save(tmp_path: Path) -> None:
    sink = make_sink(tmp_path / "out", layout="per-crop", crops=2)
    sink.open()
    target = sink.plan(PurePosixPath("a/clip"))
    assert sink.state(target, FP).status == "absent"
    result = _result((5, 2, 8))
    where = sink.write(target, result)
    assert where == str(target.features[0])
    for k, path in enumerate(target.features):  # [T, crops, D] -> one [T, D] file per crop
        assert path.read_bytes() == _npy_bytes(np.ascontiguousarray(result.features[:, k]))
    side = json.loads(target.sidecar.read_text())
    assert side["files"] == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in target.features}
    assert side["sidecar_sha256"]
    assert sink.state(target, FP).status == "done"
    other = {**FP, "dtype": "bf16"}
    st = sink.state(target, other)
    assert st.status == "changed" and st.previous == FP
    # an ownership record names the set, so a later run knows the files as vadfeat's
    assert (tmp_path / "out" / ".vadfeat-locks").is_dir()


def test_a_damaged_feature_file_is_redone(tmp_path: Path) -> None:
    sink = NpySink(tmp_path, layout="flat")
    target = sink.plan(PurePosixPath("clip"))
    sink.write(target, _result((4, 8)))
    data = bytearray(target.features[0].read_bytes())
    data[-1] ^= 0xFF
    target.features[0].write_bytes(bytes(data))
    st = sink.state(target, FP)
    assert st.status == "redo" and "sha256" in st.reason


def test_a_file_the_sink_did_not_write_is_foreign(tmp_path: Path) -> None:
    sink = NpySink(tmp_path, layout="flat")
    target = sink.plan(PurePosixPath("clip"))
    target.features[0].write_bytes(b"mine")
    st = sink.state(target, FP)
    assert st.status == "foreign" and str(target.features[0]) in st.reason


class _ListSink(Sink[str]):
    """A sink with no file per video: the interface asks for none."""

    name = "list"

    def __init__(self) -> None:
        super().__init__(Path("unused"))
        self.rows: dict[str, VideoFeatures] = {}
        self.committed = False

    def plan(self, stem: PurePosixPath) -> str:
        return stem.as_posix()

    def key(self, target: str) -> str:
        return target

    def state(self, target, fingerprint, *, source=None, verify=True):  # type: ignore[no-untyped-def]
        from vadfeat.store.sinks import OutputState

        return OutputState("done" if target in self.rows else "absent")

    def write(self, target, result, *, stale=()):  # type: ignore[no-untyped-def]
        self.rows[target] = result
        return f"list#{target}"

    def commit(self) -> None:
        self.committed = True


def test_a_sink_need_not_write_a_file_per_video() -> None:
    sink = _ListSink()
    target = sink.plan(PurePosixPath("a/clip"))
    assert sink.state(target, FP).status == "absent"
    assert sink.write(target, _result((2, 4))) == "list#a/clip"
    sink.commit()
    assert sink.state(target, FP).status == "done" and sink.committed


def test_the_extractor_writes_no_file(tmp_path: Path, tiny_checkpoint: Path) -> None:
    # The engines hand an extractor's result to the run's sink; the extractor itself writes
    # nothing (process() delivers the result to the callable it is given).
    from vadfeat.io.inputs import VideoItem
    from vadfeat.pipeline.extractor import FeatureExtractor
    from vadfeat.testing import synth

    video = synth.write_video(tmp_path / "in" / "v.mp4", synth.scene_frames(32, width=64, height=48,
                                                                            seed=1), fps=25)
    work = tmp_path / "work"
    work.mkdir()
    fx = FeatureExtractor(tiny_checkpoint)
    got: list[VideoFeatures] = []
    entry = fx.process(VideoItem(Path(video), PurePosixPath("v.mp4")), layout="flat",
                       deliver=lambda r: got.append(r) or "delivered")
    assert entry["status"] == "ok" and entry["output"] == "delivered"
    assert len(got) == 1 and got[0].features.shape[0] == 2  # 32 frames: 2 snippets of 16
    assert got[0].metadata["layout"] == "flat"
    assert not any(work.iterdir()) and sorted(p.name for p in (tmp_path / "in").iterdir()) == ["v.mp4"]


def test_a_failed_delivery_is_a_failed_entry(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from vadfeat.io.inputs import VideoItem
    from vadfeat.pipeline.extractor import FeatureExtractor
    from vadfeat.testing import synth

    video = synth.write_video(tmp_path / "v.mp4", synth.scene_frames(16, width=64, height=48, seed=2),
                              fps=25)

    def full(_: VideoFeatures) -> str:
        raise OSError(28, "No space left on device")

    entry = FeatureExtractor(tiny_checkpoint).process(VideoItem(Path(video), PurePosixPath("v.mp4")),
                                                      layout="flat", deliver=full)
    assert entry["status"] == "failed" and entry["error"].startswith("cannot write output:")


def test_fingerprints_compare_model_names_by_the_registry_rule() -> None:
    # The store sits below the backbones: the registry's spelling rule (a CLIP name written
    # before names were qualified equals today's) is installed by pipeline.config, which
    # every run's fingerprint goes through.
    import vadfeat.pipeline.config  # noqa: F401
    from vadfeat.store.fingerprint import fingerprint_changes, same_fingerprint

    assert same_fingerprint({**FP, "model": "ViT-B-16"}, {**FP, "model": "clip/vit_b_16"})
    assert not same_fingerprint({**FP, "model": "ViT-B-16"}, {**FP, "model": "clip/vit_l_14"})
    assert fingerprint_changes({**FP, "model": "ViT-B-16"}, {**FP, "model": "clip/vit_l_14"}) == [
        "model: clip/vit_b_16 -> clip/vit_l_14"]
