"""The snippet stream (one video -> preprocessed snippets) and the one batching loop.

:func:`snippet_stream` decodes a source frame by frame, preprocesses each frame (or
keeps it raw for device preprocessing), groups frames into snippets
(:class:`~vadfeat.pipeline.sampling.SnippetAssembler`) and returns the video's
metadata at the end.  :class:`SnippetBatcher` groups prepared snippets into forward
passes; every engine batches through it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from vadfeat.errors import VideoTooShortError
from vadfeat.io.video import open_video
from vadfeat.pipeline.audio_stream import audio_backbone_of, audio_snippet_stream
from vadfeat.pipeline.config import ExtractConfig, resolve_device
from vadfeat.pipeline.sampling import SnippetAssembler, snippet_indices
from vadfeat.pipeline.transforms import FrameTransform
from vadfeat.store.identity import source_identity

K = TypeVar("K")


def snippet_stream(
    source: str | Path, config: ExtractConfig, transform: FrameTransform, *,
    pin_memory: bool = False, crops_on_device: bool = False, skip: int = 0,
    on_open: Callable[[int | None], None] | None = None,
) -> Generator[tuple[tuple[int, int], torch.Tensor | None], None, dict[str, Any]]:
    """Yield ``((first, last), clip)`` per snippet, in temporal order; return metadata.

    ``clip`` is ``[crops, 3, T, size, size]`` float32 on the CPU (``transform.prepare``
    applied per frame, ``transform.assemble`` per snippet: 5 and 10 crops are cut once,
    straight into the snippet), or with ``config.preprocess == "device"`` the snippet's raw frames
    ``[T, H, W, 3]`` uint8 RGB, as decoded (page-locked when ``pin_memory``).  With
    ``crops_on_device`` (5 or 10 crops, worker preprocessing) a snippet is its scaled
    frames ``[3, T, H', W']`` float32 (:meth:`FrameTransform.stack_frames`; page-locked
    when ``pin_memory``), whose crops the model side cuts on its device
    (:func:`~vadfeat.pipeline.transforms.cut_crops`).  Frames are decoded
    (and preprocessed) one at a time; only the frames a pending snippet still needs are
    held.  Raises :class:`~vadfeat.errors.VideoError` for a video that cannot be read.

    ``skip``: the first ``skip`` snippets are done already (a resumed video,
    :mod:`vadfeat.engines.partial`): their frames are decoded (so every later frame is
    the one an uninterrupted run sees) but not preprocessed, and they are yielded as
    ``((first, last), None)``.  Snippet ``j`` starts at the ``j * stride``-th frame
    pushed, so the frames pushed before snippet ``skip``'s start belong to skipped
    snippets only.  ``on_open`` is called once the video is open, with the number of
    snippets its declared frame count gives (:func:`estimate_snippets`; ``None`` when
    the container declares none): for progress only.

    A backbone whose stream is audio gets its audio examples instead
    (:func:`~vadfeat.pipeline.audio_stream.audio_snippet_stream`: ``clip`` is one log-mel
    example ``[1, 1, 96, 64]``; ``transform`` is unused).
    """
    audio = audio_backbone_of(config)
    if audio is not None:  # an audio stream: log-mel examples on the run's grid
        return (yield from audio_snippet_stream(source, config, audio, skip=skip, on_open=on_open))
    p = config.preset
    raw = config.preprocess == "device"
    item = (lambda frame: frame) if raw else transform.prepare
    try:  # before decoding: a file replaced mid-run must not be recorded as the new one
        identity: dict[str, Any] | None = source_identity(source, content=True)
    except OSError:
        identity = None  # open_video says why the source cannot be read

    def assemble(frames: Sequence[Any]) -> torch.Tensor:
        if raw:
            return raw_clip(frames, pin_memory=pin_memory)
        if crops_on_device:
            return transform.stack_frames(frames, pin_memory=pin_memory)
        return transform.assemble(frames)

    # torchcodec decodes on the run's CUDA device (NVDEC) when it has one; PyAV ignores it.
    run_device = resolve_device(config.device) if config.decoder == "torchcodec" else None
    decode_on = str(run_device) if run_device is not None and run_device.type == "cuda" else "cpu"
    with open_video(source, on_corrupt=config.on_corrupt, fps=config.fps,  # type: ignore[arg-type]
                    frames_colour=config.frames_colour,  # type: ignore[arg-type]
                    folder_fps=config.folder_fps, max_pixels=config.max_pixels,
                    decoder=config.decoder, device=decode_on,  # type: ignore[arg-type]
                    stream=config.stream, jpeg_roundtrip=p.jpeg_roundtrip) as reader:
        assembler: SnippetAssembler[Any] = SnippetAssembler(
            clip_len=p.clip_len, frame_interval=p.frame_interval, stride=p.stride, tail=p.tail,
            lookahead=p.lookahead,
        )
        if on_open is not None:
            on_open(estimate_snippets(config, reader.info.declared_frames, reader.info.fps))
        skip_before = max(0, skip) * assembler.stride  # push positions of skipped snippets only
        made = 0
        for frame in reader:
            done_part = assembler.frames_pushed < skip_before
            for snip in assembler.push(frame.index, None if done_part else item(frame.data)):
                yield (snip.first, snip.last), None if made < skip else assemble(snip.items)
                made += 1
        for snip in assembler.finish():
            yield (snip.first, snip.last), None if made < skip else assemble(snip.items)
            made += 1
        info = reader.info
        return {
            "num_frames": reader.decoded_frames,
            "declared_frames": info.declared_frames,
            "fps": reader.fps,
            "native_fps": info.fps,
            "width": info.width,
            "height": info.height,
            "rotation": info.rotation,
            **({"mirrored": True} if info.mirrored else {}),
            "codec": info.codec,
            "stream": info.stream,
            "decoder": config.decoder if info.kind == "container" else None,
            **({"decode_device": decode_on} if config.decoder == "torchcodec" and info.kind == "container"
               else {}),
            "corrupt_packets": reader.corrupt_packets,
            "warnings": list(reader.warnings),
            "source_identity": identity,
        }


def estimate_snippets(config: ExtractConfig, declared_frames: int | None,
                      native_fps: float | None) -> int | None:
    """How many snippets ``declared_frames`` frames make (resampled to ``config.fps`` when
    set): an estimate for progress, as containers' frame counts can be off."""
    if not declared_frames:
        return None
    frames = declared_frames
    if config.fps and native_fps:
        frames = int(declared_frames * config.fps / native_fps)
    p = config.preset
    try:
        return len(snippet_indices(frames, clip_len=p.clip_len, frame_interval=p.frame_interval,
                                   stride=p.stride, tail=p.tail, lookahead=p.lookahead))
    except VideoTooShortError:
        return 0


def raw_clip(frames: Sequence[np.ndarray], *, pin_memory: bool = False) -> torch.Tensor:
    """Decoded frames ``[H, W, 3]`` uint8 -> one contiguous ``[T, H, W, 3]`` uint8 tensor.

    Frames keep their decoded (channels-last) layout: one plain copy per frame, where
    reordering to ``[3, H, W]`` on the host cost 3.3 / 7.4 ms per 720p / 1080p frame
    (BENCHMARKS.md, section 6); the device reads them through a permuted view
    (:meth:`~vadfeat.pipeline.extractor.FeatureExtractor.prepare`).  Written straight
    into page-locked memory when ``pin_memory`` (CUDA), so the upload to the device is
    asynchronous and needs no staging copy.
    """
    height, width, _ = frames[0].shape
    clip = torch.empty((len(frames), height, width, 3), dtype=torch.uint8, pin_memory=pin_memory)
    out = clip.numpy()
    for t, frame in enumerate(frames):  # one copy per frame, also from read-only frames
        out[t] = frame
    return clip


Fetch = Callable[[], np.ndarray]


def stack_batch(clips: Sequence[torch.Tensor]) -> torch.Tensor:
    """Snippets ``[crops, 3, T, S, S]`` -> a batch ``[N, crops, 3, T, S, S]``: one copy,
    none for a single snippet (a view of it)."""
    return clips[0].unsqueeze(0) if len(clips) == 1 else torch.stack(list(clips))


class SnippetBatcher(Generic[K]):
    """Prepared snippets -> forward passes of ``size`` snippets: the one batching loop.

    :meth:`add` keeps a snippet (model input ``[crops, 3, T, S, S]``) under a key and,
    once ``size`` are waiting, submits them as one batch; :meth:`flush` submits what
    waits.  Both return ``(key, features)`` per snippet whose batch was fetched, in the
    order added (``features`` as the model gives one row).

    Two ways to run a batch:

    - ``run_model`` (``[N, crops, 3, T, S, S]`` -> rows ``[N, ...]``): synchronous; the
      batch is stacked here and its rows come back at once (the CPU path);
    - ``submit`` (the batch's clips -> a ``fetch`` function returning its rows): the
      device runs the batch asynchronously, and up to ``depth`` submitted batches are
      left unfetched, so the caller assembles batch ``i + 1`` while the device computes
      batch ``i`` (:class:`vadfeat.pipeline.feed.DeviceFeed`).

    ``len()`` counts the snippets not yet returned (waiting, in flight, or fetched
    before an error).  Errors of the model propagate (from the submit or the fetch):
    the snippets of that batch are dropped; rows of batches fetched before it in the
    same call are kept and returned by the next call that fetches.
    """

    def __init__(self, run_model: Callable[[torch.Tensor], np.ndarray] | None = None, size: int = 1, *,
                 submit: Callable[[list[torch.Tensor]], Fetch] | None = None, depth: int = 0) -> None:
        if (run_model is None) == (submit is None):
            raise ValueError("pass one of run_model and submit")
        if submit is None:
            assert run_model is not None

            def submit(clips: list[torch.Tensor]) -> Fetch:
                # One snippet (a 10-crop one is 96 MiB) is a view, not a second copy.
                rows = run_model(stack_batch(clips))
                return lambda: rows

            depth = 0
        self.submit = submit
        self.size = max(1, size)
        self.depth = max(0, depth)
        self._keys: list[K] = []
        self._clips: list[torch.Tensor] = []
        self._in_flight: list[tuple[list[K], Fetch]] = []
        self._fetched: list[tuple[K, np.ndarray]] = []  # not yet returned (a later fetch raised)

    def __len__(self) -> int:
        return len(self._keys) + sum(len(keys) for keys, _ in self._in_flight) + len(self._fetched)

    def add(self, key: K, clip: torch.Tensor) -> list[tuple[K, np.ndarray]]:
        self._keys.append(key)
        self._clips.append(clip)
        if len(self._keys) < self.size:
            return []
        self._submit()
        return self._fetch(keep=self.depth)

    def pending(self) -> int:
        """Snippets added and not yet submitted (fewer than a batch)."""
        return len(self._keys)

    def flush(self, *, keep: int = 0) -> list[tuple[K, np.ndarray]]:
        """Submit what waits, even if fewer than a batch, and fetch the batches in flight
        but the last ``keep`` (``keep=self.depth``: as :meth:`add` does)."""
        if self._keys:
            self._submit()
        return self._fetch(keep=keep)

    def _submit(self) -> None:
        keys, clips = self._keys, self._clips
        self._keys, self._clips = [], []
        self._in_flight.append((keys, self.submit(clips)))

    def _fetch(self, *, keep: int) -> list[tuple[K, np.ndarray]]:
        while len(self._in_flight) > keep:
            keys, fetch = self._in_flight.pop(0)
            # If this fetch raises, its batch is dropped; rows fetched before it stay owed.
            self._fetched.extend(list(zip(keys, fetch(), strict=True)))
        done, self._fetched = self._fetched, []
        return done


__all__ = ["Fetch", "SnippetBatcher", "estimate_snippets", "raw_clip", "snippet_stream", "stack_batch"]
