"""Keep glibc's allocator from growing a long run's memory.

The engine allocates many multi-megabyte tensors in decode threads (preprocessed
frames and snippets) and frees them in the model's thread.  glibc gives each thread
its own arena and, after the first large free, serves blocks of that size from the
arenas instead of ``mmap``; over a long video the arenas fragment and are not given
back, so peak RSS drifts upwards with the video's length (measured here: a 10-minute
video peaked 0.1-1.1 GB above a 1-minute one, varying run to run).  With a single
arena it stays within ~40 MiB of the short run at no measurable speed cost
(RELIABILITY.md has the figures).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # from glibc's malloc.h
_done = False


def limit_arenas(arenas: int = 1) -> bool:
    """Cap glibc's malloc arenas for this process (once); True when it took effect.

    Does nothing when the user chose for themselves (``MALLOC_ARENA_MAX`` is set) or
    the C library is not glibc.  Must run before the threads it should affect first
    allocate; lowering the cap later does not merge arenas that already exist.
    """
    global _done
    if _done or "MALLOC_ARENA_MAX" in os.environ:
        return False
    _done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS, Windows: no mallopt
        return False
    ok = bool(mallopt(_M_ARENA_MAX, arenas))
    log.debug("malloc arenas limited to %d: %s", arenas, ok)
    return ok
