"""Stop signals: SIGTERM and SIGHUP end a run the way Ctrl-C (SIGINT) does.

SLURM, Kubernetes and ``kill`` send SIGTERM; a closed terminal sends SIGHUP.  Within
:func:`handle_stop_signals` either raises :class:`Interrupted` (a KeyboardInterrupt)
in the main thread, so the engines' Ctrl-C path runs: no new work, the summary and
the manifest lines are written, claims are released, and the exit code is 128 + the
signal's number (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised in the main thread like Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signum_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (SIGINT unless it is an :class:`Interrupted`)."""
    return int(getattr(exc, "signum", signal.SIGINT))


@contextlib.contextmanager
def handle_stop_signals() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise :class:`Interrupted`.  Only in the main thread
    (Python delivers signals there); elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupted(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    saved = {sig: signal.signal(sig, raise_interrupted) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
