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

from vadfeat.io.video import open_video
from vadfeat.pipeline.config import ExtractConfig, resolve_device
from vadfeat.pipeline.sampling import SnippetAssembler
from vadfeat.store.writers import source_identity

K = TypeVar("K")


def snippet_stream(
    source: str | Path, config: ExtractConfig, transform: Callable[[np.ndarray], Any], *,
    pin_memory: bool = False,
) -> Generator[tuple[tuple[int, int], torch.Tensor], None, dict[str, Any]]:
    """Yield ``((first, last), clip)`` per snippet, in temporal order; return metadata.

    ``clip`` is ``[crops, 3, T, size, size]`` float32 on the CPU (``transform`` applied
    per frame), or with ``config.preprocess == "device"`` the snippet's raw frames
    ``[T, 3, H, W]`` uint8 RGB (page-locked when ``pin_memory``).  Frames are decoded
    (and preprocessed) one at a time; only the frames a pending snippet still needs are
    held.  Raises :class:`~vadfeat.errors.VideoError` for a video that cannot be read.
    """
    p = config.preset
    raw = config.preprocess == "device"
    item = (lambda frame: frame) if raw else transform
    try:  # before decoding: a file replaced mid-run must not be recorded as the new one
        identity: dict[str, Any] | None = source_identity(source)
    except OSError:
        identity = None  # open_video says why the source cannot be read

    def assemble(frames: Sequence[Any]) -> torch.Tensor:
        return raw_clip(frames, pin_memory=pin_memory) if raw else torch.stack(list(frames), dim=2)

    # torchcodec decodes on the run's CUDA device (NVDEC) when it has one; PyAV ignores it.
    run_device = resolve_device(config.device) if config.decoder == "torchcodec" else None
    decode_on = str(run_device) if run_device is not None and run_device.type == "cuda" else "cpu"
    with open_video(source, on_corrupt=config.on_corrupt, fps=config.fps,  # type: ignore[arg-type]
                    frames_colour=config.frames_colour,  # type: ignore[arg-type]
                    folder_fps=config.folder_fps, max_pixels=config.max_pixels,
                    decoder=config.decoder, device=decode_on) as reader:  # type: ignore[arg-type]
        assembler: SnippetAssembler[Any] = SnippetAssembler(
            clip_len=p.clip_len, frame_interval=p.frame_interval, stride=p.stride, tail=p.tail
        )
        for index, frame in reader:
            for snip in assembler.push(index, item(frame)):
                yield (snip.first, snip.last), assemble(snip.items)
        for snip in assembler.finish():
            yield (snip.first, snip.last), assemble(snip.items)
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
            "decoder": config.decoder if info.kind == "container" else None,
            **({"decode_device": decode_on} if config.decoder == "torchcodec" and info.kind == "container"
               else {}),
            "corrupt_packets": reader.corrupt_packets,
            "warnings": list(reader.warnings),
            "source_identity": identity,
        }


def raw_clip(frames: Sequence[np.ndarray], *, pin_memory: bool = False) -> torch.Tensor:
    """Decoded frames ``[H, W, 3]`` uint8 -> one contiguous ``[T, 3, H, W]`` uint8 tensor.

    Written straight into page-locked memory when ``pin_memory`` (CUDA), so the upload
    to the device is asynchronous and needs no staging copy.
    """
    height, width, _ = frames[0].shape
    clip = torch.empty((len(frames), 3, height, width), dtype=torch.uint8, pin_memory=pin_memory)
    out = clip.numpy()
    for t, frame in enumerate(frames):  # one copy per frame, also from read-only frames
        out[t] = frame.transpose(2, 0, 1)
    return clip


class SnippetBatcher(Generic[K]):
    """Prepared snippets -> forward passes of ``size`` snippets: the one batching loop.

    :meth:`add` keeps a snippet (model input ``[crops, 3, T, S, S]``) under a key and,
    once ``size`` are waiting, runs them through ``run_model`` as one batch; :meth:`flush`
    runs what waits.  Both return ``(key, features)`` per snippet run, in the order
    added (``features`` as ``run_model`` gives one row).  Errors of ``run_model``
    propagate: the snippets of that batch are dropped.
    """

    def __init__(self, run_model: Callable[[torch.Tensor], np.ndarray], size: int) -> None:
        self.run_model = run_model
        self.size = max(1, size)
        self._keys: list[K] = []
        self._clips: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: K, clip: torch.Tensor) -> list[tuple[K, np.ndarray]]:
        self._keys.append(key)
        self._clips.append(clip)
        return self.flush() if len(self._keys) >= self.size else []

    def flush(self) -> list[tuple[K, np.ndarray]]:
        if not self._keys:
            return []
        keys, clips = self._keys, self._clips
        self._keys, self._clips = [], []
        rows = self.run_model(torch.stack(clips))
        return list(zip(keys, rows, strict=True))


__all__ = ["SnippetBatcher", "raw_clip", "snippet_stream"]
