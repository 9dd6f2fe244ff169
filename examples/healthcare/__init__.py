"""LiveKit's healthcare example (appointments and billing with AgentTasks), ported (see flow.py)."""

from .flow import Visit, flow

__all__ = ["Visit", "flow"]
