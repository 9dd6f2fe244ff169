"""Version 2 of the test call centre (see :mod:`tests.versioned`), with its migration."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from handoff import Context, Flow, Migration, RunContext, State, function_tool, transition
from handoff.tiers import TierConfig, Tiers

TIERS = Tiers({"fast": TierConfig("fast", "m-fast")}, source="tests")


class Call(Context):
    caller_name: str | None = None
    account: str | None = None
    verified: bool = False
    refund_limit: int = 10_000
    """Largest refund an agent may open, in cents."""
    refund_ticket: str | None = None
    pin: str | None = Field(default=None, json_schema_extra={"pii": True})


class Triage(State[Call]):
    """Learns the caller's name, verifies the account and routes the caller."""

    instructions = ("Ask the caller's name, then the account number and PIN; verify them, "
                    "then route the caller.")

    @function_tool
    async def caller_identified(self, ctx: RunContext[Call], name: str) -> str:
        """Call once the caller has told you their name."""
        ctx.userdata.caller_name = name
        return "noted"

    @function_tool
    async def verify_account(self, ctx: RunContext[Call], account_id: str, pin: str) -> str:
        """Check the caller's account number and PIN."""
        ctx.userdata.account = account_id
        ctx.userdata.pin = pin
        ctx.userdata.verified = pin == "1234"
        return "verified" if ctx.userdata.verified else "wrong PIN"

    @transition(to="Payments", when=lambda c: c.verified, refused="verify the account first")
    async def billing_question(self, ctx: RunContext[Call]) -> None:
        """Call when the caller has a question about a bill or a refund."""


class Payments(State[Call]):
    """Explains charges and opens refunds up to the caller's limit."""

    instructions = "Explain the charges and open a refund when the caller agrees to an amount."

    @transition(to="Wrapup", when=lambda c, amount: 0 < amount * 100 <= c.refund_limit,
                refused="refunds must be above 0 and within the caller's limit")
    async def open_refund(self, ctx: RunContext[Call], amount: float) -> str:
        """Call to open a refund once the caller agrees to the amount."""
        ctx.userdata.refund_ticket = f"R-{int(amount * 100)}"
        return f"refund {ctx.userdata.refund_ticket} opened"


class Wrapup(State[Call]):
    """Confirms what was done and asks if there is anything else."""

    instructions = "Confirm what was done on this call and ask if there is anything else."

    @transition(to="Triage", when=lambda c: c.verified, refused="only verified callers go on")
    async def anything_else(self, ctx: RunContext[Call]) -> None:
        """Call when the caller has another question."""


class Escalation(State[Call]):
    """Hands the caller over to a human."""

    instructions = "Tell the caller a human will take over."


@transition(to="Escalation")
async def escalate_to_human(ctx: RunContext[Call], reason: str) -> None:
    """Call when the caller asks for a human."""


def units_to_cents(value: float) -> int:
    return round(value * 100)


V1_TO_V2 = Migration(
    "1", "2",
    states={"Greeter": "Triage", "Billing": "Payments"},
    fields={"account_id": "account"},
    values={"refund_limit": units_to_cents},
)


def make_flow(**overrides: Any) -> Flow[Call]:
    options: dict[str, Any] = dict(
        version="2", context=Call, initial=Triage,
        states=[Triage, Payments, Wrapup, Escalation], final=[Escalation],
        global_transitions=[escalate_to_human], tiers=TIERS, migrations=[V1_TO_V2])
    options.update(overrides)
    return Flow("callcenter", **options)


flow = make_flow()


unmigrated = make_flow(migrations=[])
"""Version 2 as first written, before its migration: ``handoff diff --exit-code`` fails it."""


def cents_from_text(value: float) -> int:
    return int(str(value)) * 100  # the bug: "100.0" is not an int literal


buggy = make_flow(migrations=[Migration(
    "1", "2", states={"Greeter": "Triage", "Billing": "Payments"},
    fields={"account_id": "account"}, values={"refund_limit": cents_from_text})])
"""Version 2 with a migration that raises on every v1 checkpoint."""
