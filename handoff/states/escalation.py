"""Escalation: hands the caller to a human operator."""

from __future__ import annotations

from typing import ClassVar

from livekit.agents import RunContext, function_tool

from ..state import State
from .call_context import CallContext


class Escalation(State[CallContext]):
    """Hands the caller over to a human operator."""

    tier: ClassVar[str] = "smart"
    history: ClassVar[str] = "last:10"
    instructions = (
        "The caller needs a human. Tell them in one sentence that you are transferring "
        "them to an operator, then call transfer_call with the operator id and a one-line "
        "reason summarising the call for the operator."
    )

    @function_tool
    async def transfer_call(self, ctx: RunContext[CallContext], agent_id: str, reason: str) -> str:
        """Transfer the caller to a human operator.

        Args:
            agent_id: the operator (or operator queue) to transfer to.
            reason: one line for the operator: who is calling and why.
        """
        ctx.userdata.escalation_reason = reason
        return await self.transfer(ctx, agent_id, reason)

    async def transfer(self, ctx: RunContext[CallContext], agent_id: str, reason: str) -> str:
        """Perform the transfer; the default uses handoff.tools' SIP transfer."""
        from ..tools import transfer_caller

        return await transfer_caller(ctx, agent_id=agent_id, reason=reason)
