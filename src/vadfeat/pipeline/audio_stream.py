"""The audio snippet stream: one video's audio track -> model examples on a grid, for backbones
whose stream is :class:`~vadfeat.backbones.streams.AudioSamples` (VGGish).

:func:`audio_snippet_stream` is what :func:`vadfeat.pipeline.stream.snippet_stream` runs for
such a backbone: it decodes the file's first audio stream (:func:`vadfeat.io.audio.open_audio`:
mixed to mono), resamples it to the stream's rate (resampy, block by block:
:func:`vadfeat.io.audio.resample_chunks`), and cuts log-mel examples on the grid of the run
(:mod:`vadfeat.pipeline.audio_grid`, docs/DESIGN.md "Audio grids"), yielding
``((first, last), example)`` with ``example`` ``[1, 1, 96, 64]`` float32 (the crop axis is 1,
so :class:`~vadfeat.pipeline.extractor.FeatureExtractor` batches and runs it unchanged), and
returning the metadata the sidecar records.

Grids and what ``(first, last)`` (the sidecar's ``snippets``) means for each:

- ``plain`` (preset ``vggish``): back-to-back 0.96 s examples from the first sample, as the
  reference computes; ``(first, last)`` are the frames of the video, at its native rate, that
  the example's nominal span ``[0.96 k, 0.96 (k + 1))`` s overlaps (``last`` capped at the
  video's last declared frame), so frame labels still map onto rows.  Only the container's
  header is read for the video (rate, frame count); the video is not decoded.
- ``snippets`` (preset ``vggish-xd``): the video is decoded (frames counted, not
  preprocessed) and cut into snippets by the preset's sampling fields exactly as a visual run
  with the same fields and ``--fps`` cuts them; one window per snippet ends at the snippet's
  end.  ``(first, last)`` is that snippet's frame range: the visual extraction's own.
- ``sidecar`` (``--grid-from DIR``): one window per row of the visual extraction in ``DIR``,
  ending at the row's end (:func:`~vadfeat.pipeline.audio_grid.sidecar_grid`);
  ``(first, last)``, ``num_frames`` and ``fps`` are copied from that sidecar.

Windows reaching before the track's start or past its end read zero samples (silence): a
track shorter than the video is padded, a longer one cut after the last window; the sidecar's
``audio.coverage`` records how much (:func:`~vadfeat.pipeline.audio_grid.coverage`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from vadfeat.errors import ConfigError, VadfeatError, VideoOpenError, VideoTooShortError
from vadfeat.io.audio import open_audio, resample_chunks
from vadfeat.io.video import open_video
from vadfeat.pipeline.audio_grid import (
    HOP_SAMPLES,
    AudioGridError,
    AudioWindow,
    coverage,
    plain_grid,
    read_sidecar,
    snippet_end_times,
    snippet_grid,
)
from vadfeat.pipeline.sampling import SnippetAssembler
from vadfeat.store.identity import source_identity

__all__ = ["AudioBackbone", "audio_snippet_stream", "find_grid_sidecar", "grid_source_digest"]


class Framer(Protocol):
    """Streaming log-mel examples (:mod:`vadfeat.backbones.vggish.melspec`'s framers)."""

    def push(self, samples: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class AudioBackbone(Protocol):
    """What the audio pipeline asks of a backbone whose stream is audio (VGGish's
    :class:`~vadfeat.backbones.vggish.backbone.VGGishBackbone`)."""

    def grid_rule(self, preset: str) -> Any:
        """The grid of preset ``preset`` (``kind``, ``first``, ``tail``, ``to_dict()``);
        :class:`ConfigError` for a preset that has none."""
        ...

    def plain_framer(self) -> Framer:
        """Examples back to back from sample 0 (the reference's grid), streamed."""
        ...

    def window_framer(self, starts: Iterable[int]) -> Any:
        """Examples of windows starting at these samples (zeros outside the track): ``push``
        and ``finish``."""
        ...

    def check_head_files(self, feature: str, pca: str | None) -> None:
        """:class:`ConfigError` when ``feature`` needs ``--pca`` and it is missing, or ``--pca``
        is given for a head that does not use it."""
        ...


def _video_header(source: Path, config: Any) -> tuple[float | None, int | None]:
    """``(native fps, declared frame count)`` of the video stream from its header (no decoding);
    ``(None, None)`` for a file without a video stream."""
    try:
        with open_video(source, stream=config.stream, folder_fps=config.folder_fps,
                        max_pixels=config.max_pixels) as reader:
            info = reader.info
            frames = info.declared_frames
            if frames is None and info.duration:
                frames = round(info.duration * info.fps)
            return info.fps, frames
    except VideoOpenError:
        return None, None


def _decoded_snippets(source: Path, config: Any) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """The snippets a visual run with this config's sampling fields (and ``--fps``) cuts from
    ``source``: their ``(first, last)`` frame ranges, and the video's metadata."""
    p = config.preset
    with open_video(source, on_corrupt=config.on_corrupt, fps=config.fps, frames_colour=config.frames_colour,
                    folder_fps=config.folder_fps, max_pixels=config.max_pixels, decoder=config.decoder,
                    stream=config.stream) as reader:
        assembler: SnippetAssembler[Any] = SnippetAssembler(
            clip_len=p.clip_len, frame_interval=p.frame_interval, stride=p.stride, tail=p.tail,
            lookahead=p.lookahead)
        ranges: list[tuple[int, int]] = []
        for frame in reader:
            ranges.extend((s.first, s.last) for s in assembler.push(frame.index, None))
        ranges.extend((s.first, s.last) for s in assembler.finish())
        meta = {"num_frames": reader.decoded_frames, "declared_frames": reader.info.declared_frames,
                "fps": reader.fps, "native_fps": reader.info.fps,
                "corrupt_packets": reader.corrupt_packets, "warnings": list(reader.warnings)}
    return ranges, meta


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=8)
def _sidecar_index(folder: str) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """The vadfeat sidecars under ``folder``: by the source path they record, and by file stem."""
    by_source: dict[str, Path] = {}
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(Path(folder).rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if (not isinstance(data, dict) or "snippets" not in data or "fingerprint" not in data
                or data.get("modality") == "audio"):  # audio outputs are no grid source
            continue
        if isinstance(data.get("source"), str):
            by_source.setdefault(data["source"], path)
        by_stem.setdefault(path.stem, []).append(path)
    return by_source, by_stem


def find_grid_sidecar(folder: str | Path, source: Path) -> Path:
    """The sidecar of ``source``'s visual extraction in ``folder``: the one recording the same
    source file (resolved path), else the one sidecar whose stem is the video's file stem.

    Raises:
        AudioGridError: none, or several with that stem (names the video and the folder).
    """
    by_source, by_stem = _sidecar_index(str(Path(folder).resolve()))
    hit = by_source.get(str(source.resolve()))
    if hit is not None:
        return hit
    stems = by_stem.get(source.stem, [])
    if len(stems) == 1:
        return stems[0]
    if not stems:
        raise AudioGridError(f"{source}: no sidecar of this video in --grid-from {folder} (looked for one "
                             f"recording this source, or named {source.stem}.json)")
    raise AudioGridError(f"{source}: several sidecars named {source.stem}.json in --grid-from {folder}: "
                         f"{', '.join(str(p) for p in stems[:4])}")


def grid_source_digest(folder: str | Path, *, fresh: bool = False) -> str:
    """sha256 over every vadfeat visual sidecar in ``folder`` (relative name and content): the
    fingerprint's record of the grid a ``--grid-from`` run follows, so that a changed visual
    extraction makes the audio outputs stale.  Computed once per folder and process (the
    run's settings are checked with ``fresh=True``, which reads the folder again).
    :class:`ConfigError` for a folder that does not exist or holds no sidecar."""
    if fresh:
        _digest.cache_clear()
    return _digest(str(Path(folder).expanduser().absolute()))


@lru_cache(maxsize=8)
def _digest(folder: str) -> str:
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"--grid-from {folder}: not a folder")
    _sidecar_index.cache_clear()
    _, by_stem = _sidecar_index(str(root.resolve()))
    paths = sorted({p for ps in by_stem.values() for p in ps})
    if not paths:
        raise ConfigError(f"--grid-from {folder}: no vadfeat sidecars (<video>.json) in it")
    h = hashlib.sha256()
    for p in paths:
        h.update(p.relative_to(root.resolve()).as_posix().encode() + b"\0" + _sha256(p).encode() + b"\n")
    return h.hexdigest()


def _plain_ranges(windows: Sequence[AudioWindow], fps: float | None,
                  num_frames: int | None) -> list[tuple[int, int]]:
    """Video frames (at ``fps``) each window's nominal span overlaps; log-mel frames (10 ms)
    when the file has no video stream."""
    out = []
    for w in windows:
        if fps is None:
            out.append((max(0, w.start), max(0, w.stop - 1)))
            continue
        first = max(0, math.floor(Fraction(w.start, 100) * Fraction(fps)))
        last = max(first, math.ceil(Fraction(w.stop, 100) * Fraction(fps)) - 1)
        if num_frames:
            last = min(last, num_frames - 1)
            first = min(first, last)
        out.append((first, last))
    return out


def audio_snippet_stream(
    source: str | Path, config: Any, backbone: AudioBackbone, *, skip: int = 0,
    on_open: Callable[[int | None], None] | None = None,
) -> Generator[tuple[tuple[int, int], torch.Tensor | None], None, dict[str, Any]]:
    """Yield ``((first, last), example)`` per audio window, in order; return the metadata.

    ``example`` is ``[1, 1, 96, 64]`` float32 (one crop of one log-mel example); the first
    ``skip`` windows are yielded as ``None`` (a resumed video) and not computed.  The grid:
    ``config.grid_from`` (a visual extraction's folder), else the preset's
    (``backbone.grid_rule``); the module docstring says what ``(first, last)`` is for each.

    Raises:
        VideoOpenError: the file cannot be read, or has no audio stream ("no audio stream").
        AudioGridError: ``--grid-from`` holds no (or a garbled) sidecar of this video.
        VideoTooShortError: the grid has no window (audio under 0.975 s on the plain grid;
            a video shorter than one snippet).
        DecodeError: the audio cannot be decoded.
    """
    src = Path(source)
    try:
        identity: dict[str, Any] | None = source_identity(src, content=True)
    except OSError:
        identity = None  # open_audio says why
    rule = None if config.grid_from else backbone.grid_rule(config.preset.name)
    meta: dict[str, Any] = {}
    grid_record: dict[str, Any]
    ends: tuple[Fraction, ...] | None = None
    ranges: list[tuple[int, int]] | None = None
    with open_audio(src) as reader:
        ainfo = reader.info
        if config.grid_from:  # the visual extraction's rows
            side_path = find_grid_sidecar(config.grid_from, src)
            side = read_sidecar(side_path)
            ends = snippet_end_times(side, where=str(side_path))
            ranges = []
            for k, r in enumerate(side["snippets"]):
                if r is None:
                    raise AudioGridError(f"{side_path}: row {k} covers no frames (a padding row): "
                                         "no audio window can be placed on it")
                ranges.append((int(r[0]), int(r[1])))
            meta = {"num_frames": side.get("num_frames"), "declared_frames": side.get("declared_frames"),
                    "fps": side.get("fps"), "native_fps": side.get("native_fps"), "warnings": []}
            grid_record = {"kind": "sidecar", "first": "pad", "tail": "pad",
                           "source": {"sidecar": str(side_path.resolve()), "sha256": _sha256(side_path),
                                      "video": side.get("video")}}
        elif rule is not None and rule.kind == "snippets":
            ranges, meta = _decoded_snippets(src, config)
            pseudo = {"snippets": [list(r) for r in ranges], "fps": meta["fps"],
                      "native_fps": meta["native_fps"], "num_frames": meta["num_frames"],
                      "settings": config.preset.resolved().to_dict(), "fingerprint": {"fps": config.fps}}
            ends = snippet_end_times(pseudo, where=str(src))
            grid_record = rule.to_dict()
        else:
            assert rule is not None
            fps, frames = _video_header(src, config)
            meta = {"num_frames": frames, "declared_frames": frames, "fps": fps if fps is not None else 100.0,
                    "native_fps": fps, "warnings": [] if fps is not None else
                    ["no video stream: snippets are log-mel frames (10 ms), fps 100"]}
            grid_record = rule.to_dict()
        windows: list[AudioWindow] | None = None
        if ends is not None:
            first = grid_record["first"]
            tail = grid_record["tail"]
            windows = list(snippet_grid(ends, first=first, tail=tail))
            if not windows:
                raise VideoTooShortError(f"{src}: no snippet to place an audio window on")
            if on_open is not None:
                on_open(len(windows))
        chunks = resample_chunks(reader, ainfo.rate, backbone.stream.rate)  # type: ignore[attr-defined]
        total = 0
        made = 0
        if windows is not None:
            assert ranges is not None
            framer = backbone.window_framer(w.start * HOP_SAMPLES for w in windows)
            for chunk in chunks:
                total += chunk.data.shape[0]
                for example in framer.push(chunk.data):
                    yield ranges[made], _example(example) if made >= skip else None
                    made += 1
            for example in framer.finish():
                yield ranges[made], _example(example) if made >= skip else None
                made += 1
        else:
            if on_open is not None:  # the reference's count for the declared duration (progress only)
                declared = None if ainfo.duration is None else len(plain_grid(round(ainfo.duration * 16000)))
                on_open(declared)
            plain = backbone.plain_framer()
            for chunk in chunks:
                total += chunk.data.shape[0]
                for example in plain.push(chunk.data):
                    # Window k is log-mel frames [96 k, 96 k + 96): its video frames need only k.
                    w = AudioWindow(96 * made, 96 * made + 96)
                    rng = _plain_ranges([w], meta["native_fps"], meta["num_frames"])[0]
                    yield rng, _example(example) if made >= skip else None
                    made += 1
            windows = list(plain_grid(total))
            if not windows:
                raise VideoTooShortError(f"{src}: the audio track holds {total / 16000:.3f} s at 16 kHz, "
                                         "under one 0.975 s example")
    vid_seconds = None
    if meta.get("num_frames") and meta.get("native_fps"):
        vid_seconds = float(meta["num_frames"]) / float(meta["native_fps"])
    cov = coverage(windows, total, video_seconds=vid_seconds)
    audio = {
        "rate": ainfo.rate, "channels": ainfo.channels, "codec": ainfo.codec, "stream": ainfo.stream_index,
        "declared_seconds": ainfo.duration, "seconds": round(total / backbone.stream.rate, 6),  # type: ignore[attr-defined]
        "resampled_to": backbone.stream.rate,  # type: ignore[attr-defined]
        "grid": grid_record,
        "windows_seconds": [[round(w.start_s, 6), round(w.stop_s, 6)] for w in windows],
        "coverage": cov.to_dict(),
        "rule": "windows read zero samples (silence) before the track's start and past its end; "
                "audio after the last window is not read",
    }
    return {
        "num_frames": meta.get("num_frames"),
        "declared_frames": meta.get("declared_frames"),
        "fps": meta.get("fps"),
        "native_fps": meta.get("native_fps"),
        "modality": "audio",  # not "stream": a video sidecar's "stream" is the stream index
        "audio": audio,
        "corrupt_packets": meta.get("corrupt_packets", 0),
        "warnings": list(meta.get("warnings", [])),
        "source_identity": identity,
    }


def _example(example: np.ndarray) -> torch.Tensor:
    """One ``[1, 96, 64]`` log-mel example -> the model input of one crop, ``[1, 1, 96, 64]``."""
    return torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32)).reshape(1, *example.shape)


def audio_backbone_of(config: Any) -> AudioBackbone | None:
    """The backbone of ``config`` when its stream is audio, else ``None`` (cached per model;
    ``None`` too when the model cannot be told: its loader says why, where it loads)."""
    try:
        return _audio_backbone(None if config.checkpoint is None else str(config.checkpoint),
                               config.model, config.backbone)
    except VadfeatError:
        return None


@lru_cache(maxsize=16)
def _audio_backbone(checkpoint: str | None, model: str | None, backbone: str | None) -> AudioBackbone | None:
    from vadfeat.backbones._registry import pick_backbone

    bb = pick_backbone(checkpoint=checkpoint, model=model, backbone=backbone)[0]
    if bb.stream.image or not isinstance(bb, AudioBackbone):
        return None
    return bb


def check_audio_settings(config_settings: Mapping[str, Any], preset: Any, bb: Any) -> None:
    """The settings an audio backbone refuses, before any work (:class:`ConfigError`)."""
    if config_settings.get("preprocess", "worker") != "worker":
        raise ConfigError(f"preprocess={config_settings.get('preprocess')!r} is for video frames; "
                          f"{bb.name} consumes audio: use preprocess='worker'")
    fps = config_settings.get("fps")
    if config_settings.get("grid_from"):
        if fps is not None:
            raise ConfigError(f"--fps {fps}: with --grid-from the rows' times come from the visual "
                              "extraction's sidecars (made with its own --fps); drop --fps")
    elif bb.grid_rule(preset.name).kind == "plain" and fps is not None:
        raise ConfigError(f"--fps {fps}: preset {preset.name!r} places examples back to back on the audio, "
                          "whatever the frame rate; --fps applies to snippet grids (vggish-xd)")
    bb.check_head_files(preset.pooling, config_settings.get("pca"))
