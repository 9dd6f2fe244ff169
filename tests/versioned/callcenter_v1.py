"""Version 1 of the test call centre (see :mod:`tests.versioned`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from handoff import Context, Flow, RunContext, State, function_tool, transition
from handoff.tiers import TierConfig, Tiers

TIERS = Tiers({"fast": TierConfig("fast", "m-fast")}, source="tests")


class Call(Context):
    caller_name: str | None = None
    account_id: str | None = None
    verified: bool = False
    refund_limit: float = 100.0
    """Largest refund an agent may open, in units."""
    refund_ticket: str | None = None
    pin: str | None = Field(default=None, json_schema_extra={"pii": True})


class Greeter(State[Call]):
    """Greets the caller and asks their name."""

    instructions = "Greet the caller and ask their name."

    @transition(to="Triage")
    async def caller_identified(self, ctx: RunContext[Call], name: str) -> None:
        """Call once the caller has told you their name."""
        ctx.userdata.caller_name = name


class Triage(State[Call]):
    """Verifies the account and routes the caller."""

    instructions = "Ask for the account number and PIN, verify them, then route the caller."

    @function_tool
    async def verify_account(self, ctx: RunContext[Call], account_id: str, pin: str) -> str:
        """Check the caller's account number and PIN."""
        ctx.userdata.account_id = account_id
        ctx.userdata.pin = pin
        ctx.userdata.verified = pin == "1234"
        return "verified" if ctx.userdata.verified else "wrong PIN"

    @transition(to="Billing", when=lambda c: c.verified, refused="verify the account first")
    async def billing_question(self, ctx: RunContext[Call]) -> None:
        """Call when the caller has a question about a bill or a refund."""


class Billing(State[Call]):
    """Explains charges and opens refunds up to the caller's limit."""

    instructions = "Explain the charges and open a refund when the caller agrees to an amount."

    @transition(to="Wrapup", when=lambda c, amount: 0 < amount <= c.refund_limit,
                refused="refunds must be above 0 and within the caller's limit")
    async def open_refund(self, ctx: RunContext[Call], amount: float) -> str:
        """Call to open a refund once the caller agrees to the amount."""
        ctx.userdata.refund_ticket = f"R-{int(amount * 100)}"
        return f"refund {ctx.userdata.refund_ticket} opened"


class Wrapup(State[Call]):
    """Confirms what was done and asks if there is anything else."""

    instructions = "Confirm what was done on this call and ask if there is anything else."

    @transition(to="Triage")
    async def anything_else(self, ctx: RunContext[Call]) -> None:
        """Call when the caller has another question."""


class Escalation(State[Call]):
    """Hands the caller over to a human."""

    instructions = "Tell the caller a human will take over."


@transition(to="Escalation")
async def escalate_to_human(ctx: RunContext[Call], reason: str) -> None:
    """Call when the caller asks for a human."""


def make_flow(**overrides: Any) -> Flow[Call]:
    options: dict[str, Any] = dict(
        version="1", context=Call, initial=Greeter,
        states=[Greeter, Triage, Billing, Wrapup, Escalation], final=[Escalation],
        global_transitions=[escalate_to_human], tiers=TIERS)
    options.update(overrides)
    return Flow("callcenter", **options)


flow = make_flow()
