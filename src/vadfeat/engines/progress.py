"""Progress of a long run: a tqdm bar on a terminal, a plain log line every few seconds elsewhere.

A redrawn bar is a stream of ``\\r`` updates; written into a log file or a CI log it
becomes one unreadable line of thousands of updates.  When standard error is not a
terminal, :func:`progress_bar` returns :class:`LineProgress` instead, which logs
``extract: 3/10 videos, 12.4 snippets/s`` at most every :data:`LINE_INTERVAL_S`
seconds (through :mod:`logging`, so the CLI's log format and level apply).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger(__name__)

LINE_INTERVAL_S = 10.0


class NoBar:
    """Progress that shows nothing (``progress=False``)."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


class LineProgress:
    """The part of tqdm's interface the engines use, as a plain line every ``interval`` seconds.

    ``clock`` is injectable for tests.  The first line comes ``interval`` seconds
    after the start (short runs print none); :meth:`close` prints a last line when
    any was printed, so a log shows where a long run ended.
    """

    def __init__(self, total: int, *, desc: str, unit: str, interval: float = LINE_INTERVAL_S,
                 clock: Any = time.monotonic) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.n = 0
        self.postfix = ""
        self.lines = 0
        self._clock = clock
        self._last = clock()

    def line(self) -> str:
        text = f"{self.desc}: {self.n}/{self.total} {self.unit}s"
        return f"{text}, {self.postfix}" if self.postfix else text

    def _maybe_print(self, force: bool = False) -> None:
        now = self._clock()
        if force or now - self._last >= self.interval:
            self._last = now
            self.lines += 1
            log.info("%s", self.line())

    def update(self, n: int = 1) -> None:
        self.n += n
        self._maybe_print()

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        if self.lines:
            self._maybe_print(force=True)


def progress_bar(total: int, *, enabled: bool, desc: str, unit: str, stream: Any = None) -> Any:
    """A tqdm bar when ``stream`` (standard error) is a terminal, else :class:`LineProgress`."""
    if not enabled:
        return NoBar()
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, file=stream)
    return LineProgress(total, desc=desc, unit=unit)


__all__ = ["LINE_INTERVAL_S", "LineProgress", "NoBar", "progress_bar"]
