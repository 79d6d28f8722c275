"""Generated media for tests, the ``vadfeat demo`` command and stress tests.

Everything here is deterministic (seeded) so a test that fails can be re-run
bit for bit.  Videos are written with PyAV (FFmpeg); frame folders with OpenCV,
optionally mimicking the legacy extraction script's channel swap (docs/REFERENCE.md, section 1: an RGB
array handed to a writer that expects BGR, so the JPEG stores swapped channels).

The damage helpers (:func:`truncate`, :func:`corrupt_middle`, :func:`random_bytes`,
:func:`empty`) produce the broken inputs that real datasets contain, so the reader's
error handling can be tested against files rather than mocks.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from vadfeat.errors import ConfigError

__all__ = [
    "corner_frames",
    "corrupt_middle",
    "empty",
    "random_bytes",
    "scene_frames",
    "set_display_rotation",
    "solid_frames",
    "truncate",
    "write_audio",
    "write_frame_folder",
    "write_video",
]

logger = logging.getLogger(__name__)

# Extension -> encoder.  H.264 is what most datasets ship in mp4/mkv/mov; AVI
# datasets (UCF-Crime, ShanghaiTech) are typically MPEG-4 Part 2 (XviD/DivX).
_CODEC_BY_EXTENSION = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mkv": "libx264",
    ".mov": "libx264",
    ".avi": "mpeg4",
    ".webm": "libvpx",
    ".h264": "libx264",  # raw Annex B stream, no container
    ".264": "libx264",
    ".vob": "mpeg2video",  # DVD program stream
}

# Timestamps of variable-frame-rate output are quantised to this clock; 1/90000 s is
# the MPEG convention and fine enough that no two distinct test timestamps collide.
_VFR_TIME_BASE = Fraction(1, 90000)


def _default_codec(path: Path) -> str:
    ext = path.suffix.lower()
    try:
        return _CODEC_BY_EXTENSION[ext]
    except KeyError:
        allowed = ", ".join(sorted(_CODEC_BY_EXTENSION))
        raise ConfigError(
            f"no default codec for extension {ext!r} of {path}; pass codec= or use one of "
            f"{allowed}"
        ) from None


def _check_frame(frame: np.ndarray, shape: tuple[int, ...] | None, index: int) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"frame {index}: expected an HxWx3 uint8 RGB array, got shape {arr.shape} "
            f"dtype {arr.dtype}"
        )
    if shape is not None and arr.shape != shape:
        raise ValueError(f"frame {index}: shape {arr.shape} differs from the first {shape}")
    return np.ascontiguousarray(arr)


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    *,
    fps: float = 25,
    codec: str | None = None,
    pix_fmt: str = "yuv420p",
    timestamps: Sequence[float] | None = None,
    options: dict[str, str] | None = None,
    rotation: int = 0,
) -> Path:
    """Encode ``frames`` (HxWx3 uint8 RGB each) into a video file with PyAV.

    ``codec`` defaults by extension: mp4/m4v/mkv/mov -> ``libx264``, avi -> ``mpeg4``,
    webm -> ``libvpx`` (VP8); an unknown extension or an encoder this FFmpeg build
    lacks raises :class:`~vadfeat.errors.ConfigError`.  With ``yuv420p`` the width and
    height must be even (an encoder restriction, not ours).

    ``timestamps`` (seconds, one per frame, strictly increasing) writes a
    variable-frame-rate video: each frame's pts is its timestamp on a 1/90000 s clock,
    so the container keeps the irregular spacing.  Without it frames are ``1/fps``
    apart.  ``options`` go to the encoder (e.g. ``{"crf": "30"}``).  ``rotation``
    (mp4/mov only) stores a display matrix that turns the frames that many degrees
    clockwise on playback, as phones do (see :func:`set_display_rotation`).

    Returns the path written.
    """
    import av  # local: synth is only needed by tests and the demo

    out = Path(path)
    codec_name = codec or _default_codec(out)
    if codec_name not in av.codecs_available:
        raise ConfigError(f"encoder {codec_name!r} is not available in this FFmpeg build")
    iterator = iter(frames)
    try:
        first = next(iterator)
    except StopIteration:
        raise ValueError(f"write_video({out}): no frames given") from None
    first = _check_frame(first, None, 0)
    height, width = first.shape[:2]
    if timestamps is not None:
        ts = [float(t) for t in timestamps]
        if any(b <= a for a, b in itertools.pairwise(ts)):
            raise ValueError("timestamps must be strictly increasing")
    else:
        ts = None

    rate = Fraction(fps).limit_denominator(1001 * 1000)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream(codec_name, rate=rate)
        stream.width = width
        stream.height = height
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = dict(options)
        if ts is not None:
            stream.codec_context.time_base = _VFR_TIME_BASE
            stream.time_base = _VFR_TIME_BASE
        n = 0
        for index, raw in enumerate(itertools.chain([first], iterator)):
            arr = first if index == 0 else _check_frame(raw, first.shape, index)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            if ts is not None:
                if index >= len(ts):
                    raise ValueError(f"more frames than timestamps ({len(ts)})")
                frame.pts = round(ts[index] / _VFR_TIME_BASE)
                frame.time_base = _VFR_TIME_BASE
            for packet in stream.encode(frame):
                container.mux(packet)
            n += 1
        if ts is not None and n != len(ts):
            raise ValueError(f"{n} frames but {len(ts)} timestamps")
        for packet in stream.encode(None):
            container.mux(packet)
    logger.debug("wrote %s: %d frames %dx%d %s", out, n, width, height, codec_name)
    if rotation:
        set_display_rotation(out, rotation)
    return out


def set_display_rotation(path: str | os.PathLike[str], degrees: int) -> Path:
    """Make an mp4/mov play its video turned ``degrees`` clockwise (0, 90, 180, 270).

    Patches the 3x3 matrix of the first track header (``tkhd``) in place, which is
    where phones record their orientation; the coded frames are untouched.  For
    ``degrees`` clockwise the matrix is ``[cos, sin, 0; -sin, cos, 0; 0, 0, 1]`` in
    16.16 fixed point (the last column 2.30), the form FFmpeg reads back as a display
    matrix of ``-degrees`` (its counter-clockwise convention).
    """
    import math
    import struct

    if degrees % 90:
        raise ValueError(f"degrees must be a multiple of 90, got {degrees}")
    p = Path(path)
    data = bytearray(p.read_bytes())
    at = data.find(b"tkhd")
    if at < 0:
        raise ValueError(f"{p}: no track header (tkhd box); only mp4/mov files carry one")
    version = data[at + 4]
    # After the version/flags word: times, track id, reserved, duration (20 bytes in
    # version 0, 32 in version 1), then reserved 8, layer 2, group 2, volume 2, reserved 2.
    offset = at + 8 + (20 if version == 0 else 32) + 16
    cos = round(math.cos(math.radians(degrees)))
    sin = round(math.sin(math.radians(degrees)))
    one = 1 << 16
    matrix = (cos * one, sin * one, 0, -sin * one, cos * one, 0, 0, 0, 1 << 30)
    data[offset:offset + 36] = struct.pack(">9i", *matrix)
    p.write_bytes(bytes(data))
    return p


def corner_frames(num_frames: int, *, width: int = 64, height: int = 48,
                  block: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Yield dark frames with a white block in the top-left corner.

    The block (``block`` = (width, height), default a quarter of each side) makes
    orientation visible: after a clockwise quarter turn it sits top-right.
    """
    bw, bh = block if block is not None else (width // 4, height // 4)
    for _ in range(num_frames):
        frame = np.full((height, width, 3), 16, dtype=np.uint8)
        frame[:bh, :bw] = 255
        yield frame


def write_audio(
    path: str | os.PathLike[str],
    *,
    seconds: float = 1.0,
    codec: str = "aac",
    sample_rate: int = 44100,
) -> Path:
    """Write an audio-only file (a sine tone) — a container with no video stream."""
    import av

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream(codec, rate=sample_rate)
        stream.layout = "mono"
        # Encoders want fixed-size frames (aac: 1024 samples); feed in such chunks.
        chunk = stream.codec_context.frame_size or 1024
        fmt = stream.codec_context.format.name
        for start in range(0, n, chunk):
            part = tone[start:start + chunk]
            if fmt == "s16" or fmt == "s16p":
                data: np.ndarray = (part * 32767).astype(np.int16)[None, :]
            else:
                data = part[None, :]
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


def scene_frames(
    num_frames: int,
    *,
    width: int = 160,
    height: int = 120,
    event_at: int | None = None,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Yield ``num_frames`` RGB frames of a small moving scene.

    A static diagonal colour gradient with a grey square moving on a
    seed-dependent path and a little fixed per-pixel noise (so codecs have texture
    to work on).  From frame ``event_at`` on, an abrupt "anomaly" happens: the scene
    takes a red tint and a large bright-yellow block appears in the lower right —
    a change the feature extractor should register as unusual.  Deterministic.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack(
        [
            40 + 120 * xx / max(width - 1, 1),
            40 + 120 * yy / max(height - 1, 1),
            np.full_like(xx, 90.0 + 40 * rng.random()),
        ],
        axis=-1,
    )
    background += rng.normal(0, 4, size=background.shape).astype(np.float32)
    background = np.clip(background, 0, 255).astype(np.uint8)
    side = max(4, min(width, height) // 5)
    phase = rng.random() * 2 * np.pi
    for i in range(num_frames):
        frame = background.copy()
        # Square moves on a Lissajous path so every frame differs.
        cx = (width - side) * (0.5 + 0.45 * np.sin(2 * np.pi * i / 40 + phase))
        cy = (height - side) * (0.5 + 0.45 * np.sin(2 * np.pi * i / 27 + 2 * phase))
        x0, y0 = int(cx), int(cy)
        frame[y0:y0 + side, x0:x0 + side] = (200, 200, 200)
        if event_at is not None and i >= event_at:
            frame[..., 0] = np.maximum(frame[..., 0], 220)
            frame[height // 2:, width // 2:] = (255, 230, 0)
        yield frame


def solid_frames(
    num_frames: int, colour: tuple[int, int, int], *, width: int = 64, height: int = 48
) -> Iterator[np.ndarray]:
    """Yield ``num_frames`` frames of one RGB colour (for channel-order checks)."""
    for _ in range(num_frames):
        frame = np.empty((height, width, 3), dtype=np.uint8)
        frame[...] = colour
        yield frame


def write_frame_folder(
    folder: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    *,
    pattern: str = "img_{:05d}.jpg",
    start: int = 1,
    legacy_swapped: bool = False,
    quality: int = 95,
) -> list[Path]:
    """Write RGB ``frames`` as image files ``folder/pattern.format(start + i)``.

    The default pattern is the legacy script's (1-based, five digits, JPEG).  Normally
    frames are converted to BGR before :func:`cv2.imwrite`, so the files hold the true
    colours.  ``legacy_swapped=True`` hands the RGB array straight to the BGR writer,
    as the legacy script did, so a red frame is stored as blue.  ``quality`` is the
    JPEG quality (ignored for other formats).  Returns the written paths in order.
    """
    import cv2

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, raw in enumerate(frames):
        arr = _check_frame(raw, None, i)
        data = arr if legacy_swapped else cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
        target = out / pattern.format(start + i)
        ext = target.suffix.lower()
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext in (".jpg", ".jpeg") else []
        if ext in (".pgm", ".pbm"):  # single-channel formats: stored as grey
            data = cv2.cvtColor(data, cv2.COLOR_BGR2GRAY)
        # imencode + write_bytes instead of imwrite: works for non-ASCII paths too.
        ok, buf = cv2.imencode(ext, data, params)
        if not ok:
            raise ValueError(f"OpenCV could not encode {target}")
        target.write_bytes(buf.tobytes())
        paths.append(target)
    return paths


# --------------------------------------------------------------------------- damage


def truncate(path: str | os.PathLike[str], fraction: float) -> Path:
    """Cut the file to ``fraction`` (0..1) of its size, like an interrupted copy."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], got {fraction}")
    p = Path(path)
    size = p.stat().st_size
    with open(p, "r+b") as fh:
        fh.truncate(int(size * fraction))
    return p


def corrupt_middle(path: str | os.PathLike[str], *, nbytes: int, seed: int = 0) -> Path:
    """Overwrite ``nbytes`` bytes centred on the middle of the file with random data.

    The header and index at either end survive, so the container still opens and
    the damage shows up only while decoding.
    """
    p = Path(path)
    size = p.stat().st_size
    n = max(0, min(int(nbytes), size))
    offset = max(0, size // 2 - n // 2)
    garbage = np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()
    with open(p, "r+b") as fh:
        fh.seek(offset)
        fh.write(garbage)
    return p


def random_bytes(path: str | os.PathLike[str], n: int, seed: int = 0) -> Path:
    """Write ``n`` random bytes to ``path`` (a file that merely has a video name)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes())
    return p


def empty(path: str | os.PathLike[str]) -> Path:
    """Create (or cut to) a zero-byte file at ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p
