"""Fuzzing the readers of untrusted input, for a bounded time (issue 6).

Readers: the video reader (containers and frame folders, ``vadfeat.video``) and the
ground-truth readers (UCF-Crime and XD-Violence text, npy-dir masks, the canonical
``labels.json``).  Inputs: random bytes, valid files mutated (bytes overwritten, cut,
a chunk dropped or repeated), structure-aware garbage (npy headers with any shape and
dtype, annotation lines of plausible and implausible tokens, JSON of any shape).

Property: a reader either succeeds, with output that keeps its documented shape, or
raises one of the documented exceptions (``vadfeat.errors`` subclasses:
``VideoError`` for media, ``ConfigError``/``LabelError`` for ground truth); nothing
else escapes, and no call runs past a time limit (a hang fails the test).

Bounded: each test runs a fixed number of examples (``FUZZ_EXAMPLES`` scales them),
about 20 s in all on a 2-core machine.  Hypothesis keeps failing examples in
``.hypothesis/`` and prints the shrunk input.
"""

from __future__ import annotations

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
from vadfeat import synth
from vadfeat.errors import ConfigError, VideoError
from vadfeat.extract import extract
from vadfeat.features import read_features
from vadfeat.labels import read_labels
from vadfeat.video import open_video

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
