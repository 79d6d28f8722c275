"""Fuzzing the readers of untrusted input, for a bounded time (issue 6).

Readers: the video reader (containers and frame folders, ``vadfeat.io.video``), the
ground-truth readers (UCF-Crime and XD-Violence text, npy-dir masks, the canonical
``labels.json``, label pickles) and, since issue 11, the ``extract --config`` file, a
checkpoint's ``config.json``, tensors and compression metadata, ``.txt`` list files
and feature sidecars.  Inputs: random bytes, valid files mutated (bytes overwritten, cut,
a chunk dropped or repeated), structure-aware garbage (npy headers with any shape and
dtype, annotation lines of plausible and implausible tokens, JSON of any shape).

Property: a reader either succeeds, with output that keeps its documented shape, or
raises one of the documented exceptions (``vadfeat.errors`` subclasses:
``VideoError`` for media, ``ConfigError``/``LabelError`` for ground truth); nothing
else escapes, and no call runs past a time limit (a hang fails the test).

Bounded: each test runs a fixed number of examples (``FUZZ_EXAMPLES`` scales them),
about 30 s in all on a 2-core machine.  Hypothesis keeps failing examples in
``.hypothesis/`` and prints the shrunk input.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stress.fault_corpus import call_with_limit
from vadfeat.backbones.videomae.checkpoints import load_checkpoint
from vadfeat.cli import build_parser, config_defaults
from vadfeat.cli.extract_cmds import settings_from_args
from vadfeat.dataset.labels import read_labels
from vadfeat.engines.local import extract
from vadfeat.errors import CheckpointError, ConfigError, VideoError
from vadfeat.io.video import open_video
from vadfeat.pipeline.validate import check_settings
from vadfeat.store.reader import read_features
from vadfeat.testing import synth

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
LIMIT_S = 20.0  # per call: generous for a loaded CI machine; a hang never returns


def fuzz(n: int) -> settings:
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- the video reader


def decode_all(path: Path, **options: Any) -> str:
    """Open and decode everything; check what comes out; ``"ok"`` or ``"error"``."""
    try:
        with open_video(path, **options) as reader:
            info = reader.info
            n = 0
            for index, frame in reader:
                assert isinstance(index, int) and index >= 0
                assert frame.dtype == np.uint8 and frame.shape == (info.height, info.width, 3)
                assert frame.flags.c_contiguous
                n += 1
            assert n == reader.yielded_frames
            if options.get("fps") is None:
                assert n == reader.decoded_frames
            assert all(isinstance(w, str) for w in reader.warnings)
    except VideoError as exc:
        assert str(exc)  # a reason a user can read
        return "error"
    return "ok"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Small valid files of each container/codec family the corpus has."""
    d = tmp_path_factory.mktemp("seeds")
    frames = list(synth.scene_frames(24, width=64, height=48, seed=3))
    out = {}
    for name in ("a.mp4", "a.avi", "a.mkv", "a.webm"):
        out[name] = synth.write_video(d / name, frames, fps=25).read_bytes()
    vfr = [0.04 * k + 0.015 * (k % 3) for k in range(24)]
    out["vfr.mp4"] = synth.write_video(d / "vfr.mp4", frames, timestamps=vfr).read_bytes()
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


SUFFIXES = st.sampled_from([".mp4", ".avi", ".mkv", ".webm", ".mov", ".ts", ".bin", ""])
READ_OPTIONS = st.fixed_dictionaries({
    "on_corrupt": st.sampled_from(["fail", "skip"]),
    "fps": st.sampled_from([None, None, 7.5, 30.0]),
})


@fuzz(60)
@given(data=st.binary(max_size=4096), suffix=SUFFIXES, options=READ_OPTIONS)
def test_reader_on_random_bytes(scratch: Path, data: bytes, suffix: str, options: dict) -> None:
    path = scratch / f"random{suffix}"
    path.write_bytes(data)
    call_with_limit(LIMIT_S, decode_all, path, **options)


@st.composite
def mutated(draw: st.DrawFn, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[name])
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        patch = draw(st.binary(min_size=1, max_size=64))
        data[at:at + len(patch)] = patch
    if draw(st.booleans()):  # drop or repeat a chunk
        a = draw(st.integers(0, len(data)))
        b = draw(st.integers(a, min(len(data), a + 4096)))
        data = data[:a] + data[b:] if draw(st.booleans()) else data[:b] + data[a:b] + data[b:]
    if draw(st.booleans()):  # cut, like an interrupted copy
        data = data[: draw(st.integers(0, len(data)))]
    return name, bytes(data)


@fuzz(120)
@given(data=st.data(), options=READ_OPTIONS)
def test_reader_on_mutated_videos(scratch: Path, media: dict[str, bytes], data: st.DataObject,
                                  options: dict) -> None:
    name, blob = data.draw(mutated(media))
    path = scratch / f"mutated{Path(name).suffix}"
    path.write_bytes(blob)
    call_with_limit(LIMIT_S, decode_all, path, **options)


def _bmp_claiming_height(height: int) -> bytes:
    """A 4x4 BMP whose header says ``height`` rows: OpenCV raises cv2.error above 2**20."""
    _, buf = cv2.imencode(".bmp", np.zeros((4, 4, 3), np.uint8))
    blob = bytearray(buf.tobytes())
    blob[22:26] = int(height).to_bytes(4, "little", signed=True)
    return bytes(blob)


def _npy_header(descr: str, shape: tuple[int, ...], junk: bytes = b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + junk


def _image(kind: str, width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(kind, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


@st.composite
def frame_folders(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    """Names and contents of a folder of frames, some of them damaged or odd."""
    ext = draw(st.sampled_from([".png", ".jpg", ".bmp"]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    files = []
    for k in range(draw(st.integers(1, 20))):
        kind = draw(st.sampled_from(["good"] * 5 + ["random", "cut", "flip", "empty", "other-size",
                                                    "other-format"]))
        blob = _image(ext, width, height, k)
        if kind == "random":
            blob = draw(st.binary(max_size=300))
        elif kind == "cut":
            blob = blob[: draw(st.integers(0, len(blob)))]
        elif kind == "flip":
            at = draw(st.integers(0, len(blob) - 1))
            blob = blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1:]
        elif kind == "empty":
            blob = b""
        elif kind == "other-size":
            blob = _image(ext, width + 1, height, k)
        elif kind == "other-format":
            blob = _image(".png" if ext != ".png" else ".jpg", width, height, k)
        files.append((f"img_{k + 1:05d}{ext}", blob))
    return files


@fuzz(60)
@given(files=frame_folders(), options=READ_OPTIONS)
# Found by this test: cv2.error escaped the reader (now a DecodeError).
@example(files=[("img_00001.bmp", _bmp_claiming_height(2_000_000))],
         options={"on_corrupt": "fail", "fps": None})
def test_reader_on_damaged_frame_folders(scratch: Path, files: list[tuple[str, bytes]],
                                         options: dict) -> None:
    folder = scratch / "frames"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, blob in files:
        (folder / name).write_bytes(blob)
    call_with_limit(LIMIT_S, decode_all, folder, **options)


# --------------------------------------------------------------------------- ground truth

NAMES = ["Abuse028_x264", "Normal_Videos_003_x264", "Fight.Club.1999__#01-02-03_label_B1-0-0",
         "Riot.2001__#00-00-10_label_A"]


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path):
    """Real feature files with sidecars (frame counts 40, 33, 64, 17) for the readers to match."""
    d = tmp_path_factory.mktemp("feats")
    for name, n in zip(NAMES, (40, 33, 64, 17), strict=True):
        synth.write_video(d / "in" / f"{name}.mp4", synth.scene_frames(n, width=32, height=32),
                          fps=25)
    s = extract([d / "in"], d / "out", checkpoint=tiny_checkpoint, progress=False, tail="pad",
                size=32, short_side=32)
    assert s.exit_code == 0, s.describe()
    return _Quiet(read_features(d / "out"))


class _Quiet:
    """The feature set, with a short repr: Hypothesis prints every argument it fails with."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<4 feature files>"


def read_checked(path: Path, fmt: str, fs: Any) -> None:
    """read_labels must return labels of the decoded length, or raise ConfigError."""
    try:
        labels = read_labels(path, format=fmt, features=fs.value if fs else None)  # type: ignore[arg-type]
    except ConfigError as exc:  # LabelError is one: the file as a whole is unusable
        assert str(exc)
        return
    for name, v in labels.videos.items():
        assert v.frames.dtype == np.uint8 and v.frames.ndim == 1
        assert set(np.unique(v.frames).tolist()) <= {0, 1}
        if fmt in ("ucf", "xd") and fs is not None:
            assert v.num_frames == v.decoded_frames, name
    for issue in labels.issues:
        assert issue.message and issue.kind


TOKENS = st.one_of(
    st.sampled_from(NAMES + [n + ".mp4" for n in NAMES] + ["Abuse/Abuse028_x264.mp4", "-1",
                                                          "Normal", "Abuse", "Fighting", "#"]),
    st.integers(-3, 80).map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.text(max_size=10),
    st.sampled_from(["1e3", "0x10", "٣", "NaN", "", "\x00", "\ufeff"]),
)


@st.composite
def annotation_text(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))  # not text at all
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        tokens = draw(st.lists(TOKENS, max_size=9))
        sep = draw(st.sampled_from([" ", "\t", "  "]))
        lines.append(sep.join(tokens))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    return eol.join(lines).encode("utf-8", "surrogatepass")


@fuzz(150)
@given(text=annotation_text(), fmt=st.sampled_from(["ucf", "xd"]))
def test_annotation_readers(scratch: Path, features: Any, text: bytes, fmt: str) -> None:
    path = scratch / f"{fmt}.txt"
    path.write_bytes(text)
    call_with_limit(LIMIT_S, read_checked, path, fmt, features)


DTYPES = st.sampled_from(["<f8", "<f4", "|u1", "|i1", "<i8", "|b1", "<c8", "<U3", "|V4", "|O",
                          ">f8", "<m8[s]", "<f2"])


@st.composite
def npy_blobs(draw: st.DrawFn) -> bytes:
    """A .npy file: valid, with a mutated header, or a header claiming any shape."""
    kind = draw(st.sampled_from(["valid", "header", "mutated", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    buf = io.BytesIO()
    if kind == "valid":
        values = draw(st.lists(st.integers(0, 1), max_size=80))
        np.save(buf, np.asarray(values, dtype=draw(st.sampled_from(["u1", "f4", "i8", "?"]))))
        data = buf.getvalue()
    else:
        shape = tuple(draw(st.lists(st.integers(0, 2**40), max_size=3)))
        header = {"descr": draw(DTYPES), "fortran_order": draw(st.booleans()), "shape": shape}
        np.lib.format.write_array_header_1_0(buf, header)
        data = buf.getvalue() + draw(st.binary(max_size=200))
    if kind == "mutated":
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = bytes(data)
    return data


@fuzz(120)
@given(blobs=st.lists(npy_blobs(), min_size=1, max_size=3), matched=st.booleans())
# Found by this test: np.load raised MemoryError (a header claiming 25 GB) and
# SyntaxError/TokenError (a NUL byte in the header); both escaped read_labels.
@example(blobs=[_npy_header("<f8", (29499, 107108))], matched=False)
@example(blobs=[_npy_header("<f8", (3,)).replace(b"(3,)", b"\x00)  ")], matched=True)
def test_npy_dir_reader(scratch: Path, features: Any, blobs: list[bytes], matched: bool) -> None:
    folder = scratch / "masks"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, blob in zip(NAMES, blobs, strict=False):
        (folder / f"{name}.npy").write_bytes(blob)
    call_with_limit(LIMIT_S, read_checked, folder, "npy-dir", features if matched else None)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)


@st.composite
def canonical_index(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(JSON)
    entry = st.fixed_dictionaries({}, optional={"num_frames": JSON, "video_label": JSON,
                                                "source": JSON, "decoded_frames": JSON})
    return draw(st.dictionaries(st.sampled_from([*NAMES, "../x", "a/b", ""]), entry | JSON,
                                max_size=4))


@fuzz(120)
@given(index=canonical_index(), arrays=st.lists(npy_blobs(), max_size=4),
       matched=st.booleans())
# Found by this test: int(num_frames) raised TypeError on a list.
@example(index={"Normal_Videos_003_x264": {"num_frames": []}},
         arrays=[b"", _npy_header("|u1", (33,), bytes(33))], matched=False)
def test_canonical_labels_reader(scratch: Path, features: Any, index: Any, arrays: list[bytes],
                                 matched: bool) -> None:
    folder = scratch / "canonical"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "labels.json").write_text(json.dumps(index))
    for name, blob in zip(NAMES, arrays, strict=False):
        (folder / f"{name}.npy").write_bytes(blob)
    call_with_limit(LIMIT_S, read_checked, folder, "canonical", features if matched else None)


# --------------------------------------------------------------------------- settings (issue 11)
#
# The `--config` file, a checkpoint's config.json and safetensors metadata, label pickles
# and list files.  Same property: the documented error (ConfigError, CheckpointError,
# LabelError) or a result that works downstream; nothing else, no hang.

_EXTRACT_OPTIONS = sorted(
    o.lstrip("-") for a in build_parser()._subparsers._group_actions[0].choices["extract"]._actions
    for o in a.option_strings if o.startswith("--") and o not in ("--help", "--config")
)
PLAUSIBLE = st.sampled_from([0, 1, 2, 3, 16, 224, 40, -1, 2**63, 1.5, 0.0, float("nan"), "16",
                             "pad", "drop", "cpu", "auto", "fp32", "videomae-v2", "fed-wsvad",
                             "vit_tiny_patch16_224", "x.pth", "", True, False, None, [], {},
                             ["cpu", "cuda:0"], "int8", "imagenet", "BGR", "stats", 10])


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200))  # not JSON at all
    if kind == 1:
        return json.dumps(draw(JSON)).encode()  # JSON, maybe not an object
    keys = st.one_of(st.sampled_from(_EXTRACT_OPTIONS),
                     st.sampled_from(_EXTRACT_OPTIONS).map(lambda k: k.replace("-", "_")),
                     st.text(max_size=8))
    values = st.one_of(PLAUSIBLE, JSON)
    return json.dumps(draw(st.dictionaries(keys, values, max_size=6))).encode()


def check_config(path: Path, out: Path) -> str:
    """Read a config file as `vadfeat extract --config` does, then validate the settings."""
    parser = build_parser()  # fresh: set_defaults changes the parser
    sub = parser._subparsers._group_actions[0].choices["extract"]
    try:
        sub.set_defaults(**config_defaults(sub, str(path)))
        args = parser.parse_args(["extract", "in.mp4", "-o", str(out)])
        check_settings(settings_from_args(args))
    except ConfigError as exc:
        assert str(exc)
        return "error"
    except SystemExit:  # argparse itself refused a value (it prints its usage message)
        return "error"
    return "ok"


@fuzz(300)
@given(blob=config_files())
# Found by this test: a config file that is not UTF-8 raised UnicodeDecodeError.
@example(blob=b"\x80")
@example(blob=b"[" * 100_000)
@example(blob=b'{"preset": 3}')
@example(blob=b'{"root": 1}')
@example(blob=b'{"device": {}}')
@example(blob=b'{"fps": 0}')
@example(blob=b'{"clip-len": 3, "random-weights": true, "model": "vit_tiny_patch16_224"}')
def test_config_file(scratch: Path, blob: bytes) -> None:
    path = scratch / "config.json"
    path.write_bytes(blob)
    call_with_limit(LIMIT_S, check_config, path, scratch / "out")


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, Any]:
    from vadfeat.backbones.videomae.model import VideoMAEv2, get_spec, init_random

    enc = VideoMAEv2(get_spec("vit_tiny_patch16_224"))
    init_random(enc, seed=2)
    return _Quiet({k: v.half() for k, v in enc.state_dict().items()})


def load_checked(path: Path) -> str:
    """load_checkpoint either raises CheckpointError or gives a model that runs a clip."""
    import torch

    from vadfeat.backbones.loading import load_model

    try:
        _, info = load_checkpoint(path)
        model = load_model(path, pooling="mean")
    except CheckpointError as exc:
        assert str(exc)
        return "error"
    spec = info.spec
    assert spec.num_tokens > 0 and model.spec == spec
    clip = torch.zeros(1, 3, spec.tubelet_size, spec.patch_size, spec.patch_size)
    with torch.inference_mode():
        y = model(clip)
    assert y.shape == (1, spec.embed_dim)
    return "ok"


CONFIG_VALUES = st.one_of(st.integers(-2, 64), st.sampled_from([224, 112, 2**20, 2**62, 1e-6,
                                                                 "abc", "2", None, [], {}, True]),
                          st.floats(), JSON)


@st.composite
def hub_configs(draw: st.DrawFn) -> Any:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(JSON)
    fields = ["img_size", "num_frames", "num_heads", "patch_size", "tubelet_size", "embed_dim"]
    block = draw(st.dictionaries(st.sampled_from(fields), CONFIG_VALUES, max_size=4))
    if kind == 1:  # transformers save_pretrained layout
        t_fields = ["image_size", "num_frames", "num_attention_heads", "layer_norm_eps"]
        return {"model_type": "videomae",
                **draw(st.dictionaries(st.sampled_from(t_fields), CONFIG_VALUES, max_size=4))}
    if kind == 2:
        return {"model_config": draw(JSON)}
    return {"model_config": block}


@fuzz(150)
@given(config=hub_configs())
@example(config={"model_config": {"img_size": "abc"}})
@example(config={"model_config": {"num_heads": "2"}})
@example(config={"model_config": [1, 2]})
@example(config={"model_type": "videomae", "layer_norm_eps": "x"})
@example(config={"model_config": {"num_frames": 0}})
# Found by this test: img_size 2**20 passed, and building the position table asked for
# 256 GiB (RuntimeError from the allocator).
@example(config={"model_config": {"img_size": 2**20}})
def test_checkpoint_config(scratch: Path, tiny_state: Any, config: Any) -> None:
    from safetensors.torch import save_file

    hub = scratch / "hub"
    shutil.rmtree(hub, ignore_errors=True)
    hub.mkdir()
    (hub / "config.json").write_text(json.dumps(config))
    save_file({"model." + k: v for k, v in tiny_state.value.items()}, str(hub / "model.safetensors"))
    call_with_limit(LIMIT_S, load_checked, hub)


@st.composite
def damaged_states(draw: st.DrawFn, state: dict) -> tuple[dict, dict]:
    """A state dict with some tensors replaced (any rank, any dtype) or dropped, and metadata."""
    import torch

    sd = dict(state)
    keys = sorted(sd)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["scalar", "shape", "dtype", "drop", "int8"]))
        if action == "drop":
            sd.pop(key, None)
        elif action == "scalar":
            sd[key] = torch.tensor(draw(st.floats(-2, 2)))
        elif action == "shape":
            shape = tuple(draw(st.lists(st.integers(0, 5), max_size=5)))
            sd[key] = torch.zeros(shape)
        elif action == "dtype":
            dtype = draw(st.sampled_from([torch.int8, torch.uint8, torch.bool, torch.int64,
                                          torch.bfloat16]))
            sd[key] = torch.zeros(sd.get(key, torch.zeros(1)).shape, dtype=dtype)
        else:  # an int8 weight, with or without a scale of any shape
            sd[key] = torch.zeros(sd.get(key, torch.zeros(1)).shape, dtype=torch.int8)
            if draw(st.booleans()):
                sd[key + "_scale"] = torch.ones(tuple(draw(st.lists(st.integers(0, 2), max_size=2))))
    record_fields = ["prune", "quantize", "num_heads", "source_format", "source_sha256",
                     "float_dtype", "model", "source", "prune_method"]
    record = draw(st.one_of(
        JSON, st.dictionaries(st.sampled_from(record_fields),
                              st.one_of(PLAUSIBLE, st.floats(), JSON), max_size=5)))
    meta = {}
    if draw(st.integers(0, 3)):
        meta["vadfeat_compression"] = (json.dumps(record) if draw(st.integers(0, 5))
                                       else draw(st.text(max_size=20)))
    return sd, meta


@fuzz(150)
@given(data=st.data())
def test_checkpoint_tensors_and_metadata(scratch: Path, tiny_state: Any, data: st.DataObject) -> None:
    from safetensors.torch import save_file

    sd, meta = data.draw(damaged_states(tiny_state.value))
    path = scratch / "w.safetensors"
    try:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=meta)
    except (ValueError, TypeError):  # safetensors itself refuses some (empty dict ...)
        return
    call_with_limit(LIMIT_S, load_checked, path)


def _legacy_pickle(seed: int) -> bytes:
    import pickle

    rng = np.random.default_rng(seed)
    data = {NAMES[0]: rng.integers(0, 2, 40).astype(np.float32),
            NAMES[1]: np.zeros(33, np.uint8), NAMES[2]: [0.0, 1.0, 1.0]}
    return pickle.dumps(data, protocol=int(rng.integers(2, 6)))


@st.composite
def damaged_pickles(draw: st.DrawFn) -> bytes:
    data = bytearray(_legacy_pickle(draw(st.integers(0, 3))))
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@fuzz(300)
@given(blob=damaged_pickles(), matched=st.booleans())
# Found by this test at 100x: a NEWOBJ opcode (where REDUCE was) builds numpy's stand-in
# without its constructor (AttributeError).
@example(blob=_legacy_pickle(0).replace(b"\x87q\x0bR", b"\x87q\x0b\x81"), matched=False)
def test_label_pickles(scratch: Path, features: Any, blob: bytes, matched: bool) -> None:
    path = scratch / "frame_label.pickle"
    path.write_bytes(blob)
    call_with_limit(LIMIT_S, read_checked, path, "pickle", features if matched else None)


LIST_LINES = st.one_of(
    st.sampled_from(["a.mp4", "a", "sub/b.mp4", "sub", "../x.mp4", "/etc/passwd", "./a.mp4",
                     "missing.mp4", "#a.mp4", "  a.mp4  ", "a b.mp4", "sub\\b.mp4", ".", "..",
                     "frames", "list.txt", "\ufeffa.mp4", "a.mp4\t", "C:\\v\\a.mp4"]),
    st.text(max_size=30),
)


def _not_a_system_folder(line: str) -> str:
    """Keep the fuzzer from walking `/` (a line `\\` is `/` read as a Windows path)."""
    path = line.strip().replace("\\", "/")
    if (path.startswith("/") and path != "/etc/passwd") or path.count("..") > 1:
        return "x" + line.strip().replace("/", "_").replace("\\", "_")
    return line


@st.composite
def list_files(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300).filter(lambda b: b"/" not in b and b"\\" not in b))
    lines = [_not_a_system_folder(x) for x in draw(st.lists(LIST_LINES, max_size=8))]
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return eol.join(lines).encode("utf-8", "surrogatepass")


def discover_checked(path: Path, root: Path | None, out: Path) -> str:
    from vadfeat.io.inputs import discover, output_stem
    from vadfeat.store.sinks.npy import output_paths

    try:
        items = discover([path], root=root)
    except ConfigError as exc:
        assert str(exc)
        return "error"
    except ValueError as exc:  # see KNOWN_ELSEWHERE
        if "null byte" not in str(exc):
            raise
        return "known"
    except OSError as exc:
        if exc.errno not in (errno.ENAMETOOLONG, errno.EACCES):
            raise
        return "known"
    for item in items:
        assert not item.name.is_absolute() and ".." not in item.name.parts
        paths = output_paths(out, output_stem(item.name), layout="flat", crops=1)
        assert out in paths.features[0].parents  # never outside OUT
    return "ok"


# KNOWN_ELSEWHERE: a list line with a NUL byte (ValueError), a name longer than the file
# system allows (OSError ENAMETOOLONG) and a folder holding a symlink whose target cannot
# be stat-ed (PermissionError, found at 100x: the line `\` is `/` read as a Windows path,
# and / holds /proc/1/cwd) escape discover(); all three are fixed in the input-discovery
# half of issue 11 (a branch of its own).  Tolerated here until that merge.
@fuzz(200)
@given(blob=list_files(), use_root=st.booleans())
@example(blob=b"a.mp4\x00b\n", use_root=False)
@example(blob=b"x" * 5000 + b".mp4\n", use_root=True)
def test_list_files(scratch: Path, blob: bytes, use_root: bool) -> None:
    base = scratch / "lists"
    if not base.exists():
        (base / "sub").mkdir(parents=True)
        (base / "frames").mkdir()
        for name in ("a.mp4", "sub/b.mp4", "a b.mp4"):
            (base / name).write_bytes(b"")
        for k in range(3):
            (base / "frames" / f"img_{k + 1:05d}.jpg").write_bytes(_image(".jpg", 8, 8, k))
    path = base / "list.txt"
    path.write_bytes(blob)
    call_with_limit(LIMIT_S, discover_checked, path, base if use_root else None, scratch / "out")


SIDECAR_FIELDS = ["video", "num_frames", "fps", "snippets", "shape", "crop_order", "settings"]


@st.composite
def sidecars(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(JSON)).encode()
    if kind == 2:
        return b"[" * draw(st.integers(1, 100_000))
    side = {"video": "v.mp4", "num_frames": 40, "fps": 25.0, "shape": [2, 4],
            "snippets": [[0, 15], [16, 31]]}
    for key in draw(st.lists(st.sampled_from(SIDECAR_FIELDS), max_size=3)):
        side[key] = draw(st.one_of(PLAUSIBLE, JSON, st.integers(-(2**70), 2**70)))
    return json.dumps(side).encode()


def features_checked(folder: Path, ann: Path) -> str:
    from vadfeat.store.reader import FeatureReadError

    try:
        fs = read_features(folder)
    except FeatureReadError as exc:
        assert str(exc)
        return "error"
    for r in fs:
        assert r.num_frames is None or 0 <= r.num_frames <= 10**8
        assert len(r.snippets) == r.shape[0]
    read_checked(ann, "xd", _Quiet(fs))  # span labels allocate num_frames labels
    return "ok"


@fuzz(200)
@given(blob=sidecars())
# Found by this test: a sidecar of 100 000 nested lists raised RecursionError.
@example(blob=b"[" * 100_000)
@example(blob=json.dumps({"num_frames": 2**63, "shape": [2, 4]}).encode())
# Found by this test at 10x: 2**31 - 1 frames passed, and the xd labels of them ran out
# of memory (MemoryError in np.isin); the bound is now 10**8.
@example(blob=json.dumps({"num_frames": 2**31 - 1, "shape": [2, 4]}).encode())
def test_feature_sidecars(scratch: Path, blob: bytes) -> None:
    folder = scratch / "sidecars"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    np.save(folder / "v.npy", np.ones((2, 4), np.float32))
    (folder / "v.json").write_bytes(blob)
    ann = scratch / "xd.txt"
    ann.write_text("v 3 9\n")
    call_with_limit(LIMIT_S, features_checked, folder, ann)
