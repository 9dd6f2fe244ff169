"""Reusable call tools for any State: SIP transfer, hang-up, DTMF.

    from handoff.tools import CallControl
    calls = CallControl(operators={"billing": "tel:+15550100"})

    class Escalation(State[Call]):
        transfer_call = calls.transfer_call_tool()
        end_call = calls.end_call_tool()

``transfer_caller`` is the plain-function form the base ``Escalation`` state uses;
it acts through the process's default :class:`CallControl` (operators from
``HANDOFF_OPERATORS``, replaceable with :func:`set_default_call_control`).
"""

from __future__ import annotations

from typing import Any

from livekit.agents import RunContext

from .call_control import (
    CallControl,
    CallHandle,
    CallLocator,
    NoPhoneLine,
    job_call_locator,
    sip_target,
)

_default: CallControl | None = None


def default_call_control() -> CallControl:
    """The process-wide CallControl (built from the environment on first use)."""
    global _default
    if _default is None:
        _default = CallControl.from_env()
    return _default


def set_default_call_control(control: CallControl | None) -> None:
    """Replace (or with None, reset) the process-wide CallControl."""
    global _default
    _default = control


async def transfer_caller(ctx: RunContext[Any], *, agent_id: str, reason: str) -> str:
    """Transfer the caller's SIP leg to ``agent_id``; a clear ToolError without a phone line."""
    return await default_call_control().transfer(ctx, agent_id, reason)


__all__ = [
    "CallControl",
    "CallHandle",
    "CallLocator",
    "NoPhoneLine",
    "default_call_control",
    "job_call_locator",
    "set_default_call_control",
    "sip_target",
    "transfer_caller",
]
