"""A visdom stand-in whose calls do nothing (no visdom server in the trainer check)."""

from __future__ import annotations

from typing import Any


class Visdom:
    """Accepts every call of ``visdom.Visdom`` and draws nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None
