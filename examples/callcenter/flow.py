"""The call-centre flow: the four base states, a wrap-up, and escalation from anywhere.

    Greeter ──caller_identified──▶ Triage ──billing_question [verified]──▶ Billing
    Billing ──open_refund [0 < amount ≤ limit]──▶ Wrapup
    any state ──escalate_to_human──▶ Escalation
"""

from __future__ import annotations

from typing import ClassVar

from livekit.agents import RunContext, function_tool

from handoff import Flow, State, transition
from handoff import states as base
from handoff.errors import TransitionRefused

from .backend import DemoBackend

BACKEND = DemoBackend()


class Call(base.CallContext):
    """What the call centre learns during a call."""

    wants_callback: bool = False


class Greeter(base.Greeter):
    """Greets the caller and learns their name and reason for calling."""

    instructions = (
        "You answer calls for Acme Telecom. Greet the caller in one short sentence and ask "
        "their name and what they are calling about."
    )


class Triage(base.Triage):
    """Verifies the account and routes the caller to billing."""

    backend = BACKEND


class Billing(base.Billing):
    """Explains charges and opens refunds up to the caller's limit."""

    backend = BACKEND

    @transition(
        to="Wrapup",
        when=lambda c, amount, reason: 0 < amount <= c.refund_limit,
        refused=lambda c: (
            f"refunds must be above 0 and at most {c.refund_limit:.2f}; for more, offer "
            "to transfer the caller to a human operator"
        ),
    )
    async def open_refund(self, ctx: RunContext[Call], amount: float, reason: str) -> str:
        """Call to open a refund for a wrong charge, once the caller agrees to the amount.

        Args:
            amount: the refund amount.
            reason: why the refund is due, in a few words.
        """
        call = ctx.userdata
        if not call.account_id:
            raise TransitionRefused("no verified account to refund")
        call.refund_ticket = await BACKEND.open_refund(call.account_id, amount, reason)
        return f"Refund of {amount:.2f} opened, ticket {call.refund_ticket}."


class Wrapup(State[Call]):
    """Confirms what was done and says goodbye."""

    tier: ClassVar[str] = "fast"
    history = "last:4"
    instructions = (
        "Confirm in one sentence what was done on this call (refund ticket, if any) and ask "
        "if there is anything else. If not, say goodbye and call end_call."
    )

    @function_tool
    async def end_call(self, ctx: RunContext[Call]) -> str:
        """End the call after saying goodbye."""
        self.session.shutdown(drain=True)
        return "Call ended."


class Escalation(base.Escalation):
    """Hands the caller over to a human operator."""


@transition(to="Escalation")
async def escalate_to_human(ctx: RunContext[Call], reason: str) -> None:
    """Call when the caller asks for a human, is upset, or needs what you cannot do.

    Args:
        reason: one line on why the caller needs a human.
    """
    ctx.userdata.escalation_reason = reason


flow = Flow(
    "callcenter",
    context=Call,
    initial=Greeter,
    states=[Greeter, Triage, Billing, Wrapup, Escalation],
    final=[Wrapup, Escalation],
    global_transitions=[escalate_to_human],
    resume_fallback=Triage,  # a resumed call whose state no longer exists: back to triage
)
