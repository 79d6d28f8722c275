"""Real-world container shapes that the synthetic writer does not make, built with PyAV.

* :func:`cut_mp4`: an mp4 cut the usual lossless way (``ffmpeg -ss T -i src.mp4 -c copy``):
  the packets from the keyframe before ``T`` on, timestamps shifted so that ``T`` is 0.  The
  mov muxer then writes an edit list that starts after the keyframe; the demuxer flags the
  samples before its start "discard" and decoders drop their frames.
* :func:`avi_with_empty_chunks`: an AVI whose header and index count zero-byte chunks (the
  dropped frames of capture cards): samples with no picture, spread over the whole video.
* :func:`mkv_with_thumbnail`: an mkv whose first video track, flagged default, is a one-frame
  still; the real video is the second track.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from vadfeat.testing import synth


def bframe_mp4(path: Path, frames: int, *, gop: int = 12) -> Path:
    """An H.264 mp4 with B-frames and a short GOP, as phones write (its own edit list shifts the
    B-frame delay away)."""
    return synth.write_video(path, synth.scene_frames(frames, width=64, height=48), fps=25,
                             options={"g": str(gop), "bf": "2"})


def cut_mp4(src: Path, path: Path, *, keyframe: int, skip: int) -> Path:
    """Copy ``src`` from its ``keyframe``-th keyframe (0-based) on, starting the shown video
    ``skip`` frames after that keyframe (negative timestamps before it)."""
    with av.open(str(src)) as c, av.open(str(path), "w") as out:
        stream = c.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        packets = [p for p in c.demux(stream) if p.size]
        keys = sorted(p.pts for p in packets if p.is_keyframe)
        start_pts = keys[keyframe]
        step = round(1 / (float(stream.average_rate) * stream.time_base))
        shift = start_pts + skip * step
        first = next(i for i, p in enumerate(packets) if p.is_keyframe and p.pts == start_pts)
        for p in packets[first:]:
            p.pts -= shift
            p.dts -= shift
            p.stream = ostream
            out.mux(p)
    return path


def edit_list_start(path: Path) -> int:
    """The media time (in the track's time base) the first edit of ``path``'s ``elst`` box starts
    at; raises ``ValueError`` when the file has no edit list."""
    data = path.read_bytes()
    at = data.find(b"elst")
    if at < 0:
        raise ValueError(f"{path}: no edit list")
    version = data[at + 4]
    body = at + 8 + 4  # version/flags, entry count
    size = 8 if version == 1 else 4
    return int.from_bytes(data[body + size: body + 2 * size], "big", signed=True)


def avi_with_empty_chunks(path: Path, frames: int, empty: int) -> Path:
    """An MPEG-4 AVI of ``frames`` pictures with ``empty`` zero-byte chunks spread among them
    (up to 3 after each picture), so the header and index count ``frames + empty``."""
    src = synth.write_video(path.with_name(path.stem + "-src.avi"),
                            synth.scene_frames(frames, width=64, height=48), fps=25)
    left, t = empty, 0
    with av.open(str(src)) as c, av.open(str(path), "w") as out:
        stream = c.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        for p in [p for p in c.demux(stream) if p.size]:
            p.pts = p.dts = t
            t += 1
            p.stream = ostream
            out.mux(p)
            for _ in range(min(3, left)):
                q = av.Packet(b"")
                q.pts = q.dts = t
                t += 1
                q.time_base = p.time_base
                q.stream = ostream
                out.mux(q)
                left -= 1
    src.unlink()
    return path


def mkv_with_thumbnail(path: Path, frames: int) -> Path:
    """Track 0: one 32x24 MJPEG still flagged default; track 1: ``frames`` 64x48 H.264 frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"default_mode": "passthrough"}) as out:
        thumb = out.add_stream("mjpeg", rate=25)
        thumb.width, thumb.height, thumb.pix_fmt = 32, 24, "yuvj420p"
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        thumb.disposition = av.stream.Disposition.default
        video.disposition = av.stream.Disposition(0)
        still = np.full((24, 32, 3), 200, np.uint8)
        for pkt in thumb.encode(av.VideoFrame.from_ndarray(still, format="rgb24")):
            out.mux(pkt)
        for pkt in thumb.encode():
            out.mux(pkt)
        for f in synth.scene_frames(frames, width=64, height=48):
            for pkt in video.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in video.encode():
            out.mux(pkt)
    return path


def opencv_count(path: Path) -> int:
    """Frames OpenCV's ``VideoCapture`` reads from ``path``: an independent reference."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        while cap.read()[0]:
            n += 1
    finally:
        cap.release()
    return n


def pyav_count(path: Path, stream: int = 0) -> int:
    """Frames PyAV's plain decode loop gives for video stream ``stream`` (no vadfeat code)."""
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[stream]))


def mp4_with_audio(path: Path, frames: int) -> Path:
    """Stream 0: ``frames`` H.264 frames at 25 fps; stream 1: AAC silence as long."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "mono"
        for f in synth.scene_frames(frames, width=64, height=48):
            for pkt in video.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in video.encode():
            out.mux(pkt)
        chunk = audio.codec_context.frame_size or 1024
        fmt = audio.codec_context.format.name
        for start in range(0, 44100 * frames // 25, chunk):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, chunk), np.float32), format=fmt,
                                               layout="mono")
            frame.sample_rate, frame.pts = 44100, start
            for pkt in audio.encode(frame):
                out.mux(pkt)
        for pkt in audio.encode():
            out.mux(pkt)
    return path
