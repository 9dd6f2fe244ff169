"""Triage: verifies the caller's account and routes them to the right specialist."""

from __future__ import annotations

from typing import Annotated, ClassVar

from livekit.agents import RunContext, function_tool
from pydantic import Field

from ..state import State
from ..transition import transition
from ._backend_access import backend_of
from .backend import AccountBackend
from .call_context import CallContext

MAX_PIN_ATTEMPTS = 3


class Triage(State[CallContext]):
    """Verifies the account and routes the caller to a specialist."""

    tier: ClassVar[str] = "fast"
    history: ClassVar[str] = "last:6"
    backend: ClassVar[AccountBackend | None] = None
    instructions = (
        "You route callers. Before anything about an account, verify it: ask for the "
        "account number and PIN and call verify_account. Then hand the caller to the "
        "specialist that fits. Never read a PIN back."
    )

    @function_tool
    async def verify_account(
        self, ctx: RunContext[CallContext], account_id: str,
        pin: Annotated[str, Field(json_schema_extra={"pii": True})],  # kept out of every sink
    ) -> str:
        """Check the caller's account number and PIN.

        Args:
            account_id: the account number the caller gave.
            pin: the PIN the caller gave.
        """
        call = ctx.userdata
        if call.failed_verifications >= MAX_PIN_ATTEMPTS:
            return "Too many failed attempts; offer to transfer the caller to a human."
        if await backend_of(self).verify(account_id.strip(), pin.strip()):
            call.account_id = account_id.strip()
            call.verified = True
            return f"Account {call.account_id} verified."
        call.failed_verifications += 1
        left = MAX_PIN_ATTEMPTS - call.failed_verifications
        return f"Account number or PIN is wrong ({left} attempts left)."

    @transition(
        to="Billing",
        when=lambda c: c.verified,
        refused="the account is not verified yet; ask for the account number and PIN first",
    )
    async def billing_question(self, ctx: RunContext[CallContext]) -> None:
        """Call when the caller has a question about a bill, a charge, a payment or a refund."""
