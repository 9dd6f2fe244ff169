"""Call-control tools usable from any State (transfer, end call, …)."""

from __future__ import annotations

from typing import Any

from livekit.agents import RunContext, ToolError, get_job_context


async def transfer_caller(ctx: RunContext[Any], *, agent_id: str, reason: str) -> str:
    """Transfer the caller's SIP leg to ``agent_id``; a clear ToolError without a phone line."""
    job = get_job_context(required=False)
    if job is None:
        raise ToolError(
            f"this session has no phone line (text mode), so the transfer to {agent_id!r} "
            "cannot be placed; tell the caller an operator will call them back"
        )
    raise ToolError("SIP transfer is not wired in this build; tell the caller an operator will call back")
