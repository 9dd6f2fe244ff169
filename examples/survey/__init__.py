"""LiveKit's survey (candidate screening) example, ported to handoff (see flow.py)."""

from .flow import Screening, flow

__all__ = ["Screening", "flow"]
