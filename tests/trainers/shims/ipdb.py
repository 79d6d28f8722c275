"""An ipdb stand-in (UR-DMU's translayer.py imports it and never calls it)."""

from __future__ import annotations

from pdb import set_trace

__all__ = ["set_trace"]
