"""The OpenAI Agents SDK customer-service (airline) example, ported to handoff (see flow.py)."""

from .flow import AirlineAgentContext, flow

__all__ = ["AirlineAgentContext", "flow"]
