"""Tune glibc's allocator for a process that streams video frames (long runs, big tensors).

Two problems, both measured here, both fixed by ``mallopt`` in processes vadfeat owns
(the CLI, each ``--devices`` child, each Ray actor and each decode worker process;
:func:`vadfeat.extract` called as a library leaves the caller's allocator alone):

- **Memory drift.**  The engine allocates many multi-megabyte tensors in decode
  threads and frees them in the model's thread.  glibc gives each thread its own
  arena; over a long video the arenas fragment and are not given back, so peak RSS
  drifted upwards with the video's length (a 10-minute video peaked 0.1-1.1 GB above
  a 1-minute one).  One arena (``M_ARENA_MAX = 1``) keeps it flat (RELIABILITY.md).
- **Page faults.**  Blocks above glibc's mmap threshold (at most 32 MiB by its
  dynamic rule) get fresh pages from the kernel on every allocation and are unmapped
  on every free: a 10-crop 16-frame snippet is 96 MiB, a 1080p frame in float32
  25 MiB, a batch more.  Each such allocation costs one page fault per 4 KiB when
  first written (~1,500 faults per frame at 360p with 10 crops, ~2,900 at 1080p), and
  each free an ``munmap`` under the GIL of the thread that drops the tensor.  Serving
  blocks up to :data:`MMAP_THRESHOLD` from the heap and keeping up to
  :data:`TRIM_THRESHOLD` of freed memory there (``M_MMAP_THRESHOLD``,
  ``M_TRIM_THRESHOLD``) reuses the same pages: the faults go to zero and a 10-crop
  snippet costs 1.5x a 1-crop one per frame instead of 2.2-3x (BENCHMARKS.md
  section 6).  Freed memory stays with the process up to its peak, which the engine
  bounds (queue depths), instead of being returned between snippets.  The price is
  some fragmentation: in a synthetic run of mixed 12-140 MiB blocks (6 alive at a
  time) peak RSS levelled off about 16 % above glibc's default (1.81 against 1.55 GB).

glibc documents 32 MiB as the largest mmap threshold on 64-bit (``mallopt(3)``); the
glibc on these machines (2.36) accepts 1 GiB.  Where 1 GiB is refused, 32 MiB is set
instead (blocks above it still fault; the log says so).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

# From glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

# Blocks up to this size come from the heap, not from their own mmap.
MMAP_THRESHOLD = 1 << 30
# The largest threshold glibc documents (HEAP_MAX_SIZE / 2 on 64-bit): the fallback.
MMAP_THRESHOLD_DOCUMENTED = 32 << 20
# Free memory at the top of the heap kept for reuse before it is given back to the kernel.
TRIM_THRESHOLD = 1 << 30

_done = False
# What tune_malloc set, by the environment variable's name: {"MALLOC_ARENA_MAX": 1, ...}.
applied: dict[str, int] = {}


def tune_malloc(arenas: int = 1) -> bool:
    """Tune glibc's malloc for this process (once); True when it took effect.

    One arena (``arenas``), and blocks up to :data:`MMAP_THRESHOLD` served and kept
    (up to :data:`TRIM_THRESHOLD`) on the heap.  Each setting the user made for
    themselves (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_``) is left alone; nothing happens when the C library is
    not glibc.  Must run before the threads it should affect first allocate;
    lowering the arena cap later does not merge arenas that already exist.
    """
    global _done
    if _done:
        return False
    _done = True
    wanted = [(name, param, value) for name, param, value in (
        ("MALLOC_ARENA_MAX", _M_ARENA_MAX, arenas),
        ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ) if name not in os.environ]
    if not wanted:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS, Windows: no mallopt
        return False
    ok = True
    for name, param, value in wanted:
        took = bool(mallopt(param, value))
        if not took and param == _M_MMAP_THRESHOLD:
            value = MMAP_THRESHOLD_DOCUMENTED
            took = bool(mallopt(param, value))
            log.info("this C library refuses a %d MiB mmap threshold; using %s: snippets "
                     "larger than that still get fresh pages", MMAP_THRESHOLD >> 20,
                     f"{value >> 20} MiB" if took else "its default")
        if took:
            applied[name] = value
        ok &= took
        log.debug("malloc %s=%d: %s", name, value, took)
    return ok
