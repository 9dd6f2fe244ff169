"""Billing: explains the charges on a verified account."""

from __future__ import annotations

from typing import ClassVar

from livekit.agents import RunContext, function_tool

from ..state import State
from ._backend_access import backend_of
from .backend import AccountBackend
from .call_context import CallContext


class Billing(State[CallContext]):
    """Explains the charges on the caller's bill."""

    tier: ClassVar[str] = "smart"
    history: ClassVar[str] = "last:6"
    backend: ClassVar[AccountBackend | None] = None
    instructions = (
        "You are the billing specialist. Look up the caller's charges with list_charges and "
        "explain them plainly. If a charge is wrong, you may open a refund up to the "
        "caller's refund limit; above it, offer a human operator."
    )

    @function_tool
    async def list_charges(self, ctx: RunContext[CallContext]) -> str:
        """List the recent charges on the caller's verified account."""
        account = ctx.userdata.account_id
        if not account:
            return "No verified account."
        charges = await backend_of(self).charges(account)
        if not charges:
            return "No recent charges."
        return "\n".join(
            f"{c.charge_id}: {c.description}, {c.amount:.2f} on {c.date}" for c in charges
        )
