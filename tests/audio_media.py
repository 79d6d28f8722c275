"""Real audio containers for the audio and VGGish tests, written with PyAV.

:func:`write_media` writes a deterministic signal (two sines per channel plus a little seeded
noise, different per channel) as PCM in Matroska/WAV or AAC in MP4, optionally with a small
video stream before the audio one; :func:`signal` returns the exact int16 samples written, so
PCM tests compare against known values.  :func:`reference_wav` decodes a file with the
``ffmpeg`` command line from imageio-ffmpeg (a separate FFmpeg build), as v-iashin/video_features
``utils/utils.py`` (``extract_wav_from_mp4``) does before the reference's ``wavfile_to_examples``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np


def signal(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """``[n, channels]`` int16: 0.3 * (sines at 440/1000 Hz, shifted per channel) + 0.02 noise."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    cols = []
    for c in range(channels):
        x = 0.2 * np.sin(2 * np.pi * (440.0 + 110 * c) * t) + 0.1 * np.sin(2 * np.pi * 1000.0 * t + c)
        x += 0.02 * rng.standard_normal(n)
        cols.append(np.round(x * 32767).astype(np.int16))
    return np.stack(cols, axis=1)


def write_media(path: Path, *, codec: str, rate: int, channels: int, seconds: float = 3.3,
                seed: int = 0, video: bool = False) -> np.ndarray:
    """Write ``path``; return the int16 ``[n, channels]`` samples given to the encoder."""
    samples = signal(seconds, rate, channels, seed)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), mode="w") as container:
        vstream = None
        if video:
            vstream = container.add_stream("mpeg4", rate=24)
            vstream.width, vstream.height, vstream.pix_fmt = 32, 32, "yuv420p"
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        fmt = stream.codec_context.format.name
        size = stream.codec_context.frame_size or 1024
        for start in range(0, samples.shape[0], size):
            part = samples[start:start + size]
            if fmt == "s16":
                data = part.reshape(1, -1)
            elif fmt == "fltp":
                data = np.ascontiguousarray((part.astype(np.float32) / 32768.0).T)
            else:
                raise AssertionError(f"test writer: unexpected encoder format {fmt}")
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if vstream is not None:
            for i in range(int(seconds * 24)):
                img = np.full((32, 32, 3), (i * 7) % 256, dtype=np.uint8)
                for packet in vstream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in vstream.encode(None):
                container.mux(packet)
    return samples


def reference_wav(src: Path, out: Path, sample_fmt: str = "pcm_s16le") -> Path:
    """Decode ``src``'s audio to a WAV with the imageio-ffmpeg binary (channels and rate kept)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y",
                    "-i", str(src), "-vn", "-acodec", sample_fmt, str(out)], check=True)
    return out
