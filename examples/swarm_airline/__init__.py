"""OpenAI Swarm's airline example (triage and policy agents), ported to handoff (see flow.py)."""

from .context import FlightCall
from .flow import flow

__all__ = ["FlightCall", "flow"]
