"""The corrupt-packet policy (``on_corrupt``) and the PyAV packet loop that applies it.

* ``"fail"``: the first decoding error (corrupt packet, unreadable image, demuxer
  failure) raises :class:`~vadfeat.errors.DecodeError` naming the file and where.
* ``"skip"``: the bad packet is dropped, counted and decoding goes on; the reader
  summarises the count in its warnings at the end.

:class:`CorruptPolicy` holds the policy and the count for one source (every reader
has one); :func:`decode_packets` is the PyAV demux-and-decode loop under it, used by the
PyAV reader for all frames and by the torchcodec reader for the first one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vadfeat._types import OnCorrupt
from vadfeat.errors import DecodeError

__all__ = ["MAX_DEMUX_RETRIES", "CorruptPolicy", "PacketCounts", "decode_packets"]

logger = logging.getLogger(__name__)

# Consecutive demuxer failures tolerated under "skip" before giving up on the file;
# a demuxer that keeps failing at the same position would otherwise loop forever.
MAX_DEMUX_RETRIES = 8


class CorruptPolicy:
    """``on_corrupt`` for one source, and what it has dropped.

    ``count``: packets (or images) dropped under ``"skip"``; ``first_at``: the number of
    frames decoded before the first of them (``None`` when none was dropped).
    """

    def __init__(self, path: Path | str, on_corrupt: OnCorrupt) -> None:
        self.path = path
        self.on_corrupt: OnCorrupt = on_corrupt
        self.count = 0
        self.first_at: int | None = None

    def on_error(self, exc: Exception, *, decoded: int, packet_no: int, what: str) -> None:
        """Apply the policy to one failed packet (or demuxer read): raise, or count it.

        Raises:
            DecodeError: under ``"fail"``, chained from ``exc``.
        """
        if self.on_corrupt == "fail":
            raise DecodeError(
                f"{self.path}: {what} failed after {decoded} decoded frame(s) "
                f"(packet #{packet_no}): {exc}"
            ) from exc
        logger.debug("%s: skipping %s at packet #%d: %s", self.path, what, packet_no, exc)
        self.count += 1
        if self.first_at is None:
            self.first_at = decoded


class PacketCounts:
    """What :func:`decode_packets` saw besides frames: ``discarded`` counts the samples the
    demuxer flagged discard (before an mp4 edit list's start): decoders drop their frames
    by design, so they are not missing frames."""

    def __init__(self) -> None:
        self.discarded = 0


def decode_packets(container: Any, stream: Any, policy: CorruptPolicy, counts: PacketCounts, *,
                   warn: Callable[[str], None]) -> Iterator[Any]:
    """Yield the decoded ``av.VideoFrame``\\ s of ``stream``, applying ``policy`` per packet.

    A demuxer error ends PyAV's demux generator; under ``"skip"`` reading resumes from
    the current file position with a fresh one, at most :data:`MAX_DEMUX_RETRIES` times
    in a row (then ``warn`` says so and the frames end).

    Raises:
        DecodeError: under ``"fail"``, at the first demuxer or decoder error.
    """
    import av

    decoded = 0
    packet_no = 0
    retries = 0
    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            policy.on_error(exc, decoded=decoded, packet_no=packet_no + 1,
                            what="reading the container")
            retries += 1
            if retries > MAX_DEMUX_RETRIES:
                warn(f"gave up reading after {retries} consecutive demuxer errors")
                return
            demux = container.demux(stream)
            continue
        retries = 0
        packet_no += 1
        if packet.is_discard:
            counts.discarded += 1
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            policy.on_error(exc, decoded=decoded, packet_no=packet_no, what="decoding")
            continue
        for frame in frames:
            decoded += 1
            yield frame
