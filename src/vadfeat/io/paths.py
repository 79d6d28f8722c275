"""What a path given as a video can be: the file extensions, and the checks before opening.

:data:`VIDEO_EXTENSIONS` and :data:`IMAGE_EXTENSIONS` are the package's one list of
each; :func:`check_path` refuses, before anything opens it, a path that cannot be a
readable source (missing, a broken link, a named pipe, unreadable, empty).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from vadfeat.errors import VideoOpenError

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "check_path", "not_regular"]


#: File extensions (lower case, with the dot) of video files: the one list of the
#: package.  Folder search picks these up; output and matching names drop them
#: (:func:`vadfeat.io.inputs.output_stem`, :func:`vadfeat.store.reader.video_key`).  Raw
#: elementary streams (``.h264``, ``.hevc`` ...) and DVD ``.vob`` files are videos too.
#: Any file FFmpeg opens can still be passed explicitly, whatever its extension.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".wmv",
        ".flv", ".f4v", ".ts", ".mts", ".m2ts", ".m2v", ".3gp", ".3g2", ".ogv", ".asf",
        ".vob", ".y4m", ".mxf", ".dv", ".divx", ".rm", ".rmvb", ".ivf",
        ".h264", ".264", ".h265", ".265", ".hevc", ".mjpeg", ".mjpg",
    }
)
#: Image extensions that make up a frame folder: what OpenCV reads in every build
#: (UCSD Ped1/Ped2 ship ``.tif`` frames; ``.ppm``/``.pgm`` come from older tools).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)



_SPECIAL_FILES = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def not_regular(mode: int) -> str | None:
    """Why a path of this ``st_mode`` is no video source (``None`` for files and folders).

    A named pipe, a socket or a device is never opened: opening a pipe for reading
    blocks until a writer comes (a run would hang for ever), and reading a device has
    no end.
    """
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, what in _SPECIAL_FILES:
        if test(mode):
            return (f"not a regular file: {what}; vadfeat reads video files and frame folders "
                    "and does not open it")
    return "not a regular file; vadfeat reads video files and frame folders and does not open it"


def check_path(path: Path) -> bool:
    """Raise VideoOpenError for a path that cannot be a readable source; True for a folder.

    Names no file can have (a NUL byte, longer than the file system allows) and
    targets that cannot be examined (a link into ``/proc`` of another process) are
    errors of this source only, never of the run.
    """
    try:
        st = path.stat()
    except ValueError:  # an embedded NUL byte
        raise VideoOpenError(f"{str(path)!r}: the name holds a NUL byte, which no file name "
                             "can hold") from None
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        raise VideoOpenError(f"{path}: symbolic link loop") from None
    except FileNotFoundError:
        if path.is_symlink():
            raise VideoOpenError(
                f"{path}: broken symbolic link (its target does not exist)") from None
        raise VideoOpenError(f"{path}: no such file or folder") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VideoOpenError(f"{path}: symbolic link loop") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise VideoOpenError(f"{str(path)[:80]}...: file name too long "
                                 f"({len(os.fsencode(path))} bytes)") from None
        raise VideoOpenError(f"{path}: cannot be examined: {exc.strerror or exc}") from None
    special = not_regular(st.st_mode)
    if special is not None:
        raise VideoOpenError(f"{path}: {special}")
    if not os.access(path, os.R_OK):
        raise VideoOpenError(f"{path}: permission denied")
    is_dir = stat.S_ISDIR(st.st_mode)
    if not is_dir and st.st_size == 0 and stat.S_ISREG(st.st_mode):
        raise VideoOpenError(f"{path}: empty file (0 bytes)")
    return is_dir

