"""Pipecat Flows' insurance-quote example, ported to handoff (see flow.py for the credit)."""

from .flow import Quote, flow

__all__ = ["Quote", "flow"]
