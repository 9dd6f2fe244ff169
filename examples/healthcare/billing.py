"""Billing and Payment: the original's ``handle_billing`` and ``confirm_payment_proceeds``
as States, the card taken by LiveKit's ``GetCreditCardTask`` (see flow.py)."""

from __future__ import annotations

from livekit.agents import ToolError
from livekit.agents.beta.workflows import GetCreditCardTask

from handoff import RunContext, State, transition

from .tasks import HEALTHCARE_AGENT_INSTRUCTIONS
from .visit import Visit, logger


class Billing(State[Visit]):
    """Tells the patient their outstanding balance and takes the amount to pay."""

    instructions = HEALTHCARE_AGENT_INSTRUCTIONS

    async def on_enter(self) -> None:
        if self.run.resuming:
            return
        visit = self.context
        visit.balance = visit.database.get_outstanding_balance(visit.patient_name or "")
        self.session.generate_reply(instructions=(
            f"Inform the patient that their outstanding balance is ${visit.balance} and ask if "
            "they would like to pay it now."))

    @transition(to="Payment", when=lambda c, amount: c.balance is not None and 0 < amount <= c.balance,
                refused=lambda c: ("The payment amount must be greater than zero and at most the "
                                   f"outstanding balance of ${c.balance}."))
    async def confirm_payment_proceeds(self, ctx: RunContext[Visit], amount: float) -> None:
        """Call to proceed with payment steps regarding the user's bill.

        Args:
            amount: The dollar amount the user wishes to pay toward their balance.
        """
        ctx.userdata.payment_amount = amount


class Payment(State[Visit]):
    """Takes the card with LiveKit's GetCreditCardTask and charges the amount."""

    instructions = HEALTHCARE_AGENT_INSTRUCTIONS

    async def on_enter(self) -> None:
        if self.run.resuming:
            return
        visit = self.context
        assert visit.patient_name is not None and visit.payment_amount is not None
        try:
            result = await GetCreditCardTask()
        except ToolError as exc:
            visit.outcome = f"The payment did not go through: {exc.message}"
            await self.run.go("payment_failed")
            return
        last_four_digits = result.card_number[-4:]
        amount = visit.payment_amount
        remaining = visit.database.apply_payment(visit.patient_name, amount)
        logger.info("Payment of $%s confirmed, remaining balance: $%s", amount, remaining)
        visit.balance, visit.card_last_four = remaining, last_four_digits
        visit.outcome = (f"Inform the user that the payment method ending in {last_four_digits} "
                         f"has been successfully charged ${amount}. Remaining balance: ${remaining}.")
        await self.run.go("payment_made")

    @transition(to="Reception", llm=False, when=lambda c: c.card_last_four is not None,
                refused="no card was charged")
    async def payment_made(self, ctx: RunContext[Visit]) -> None:
        """Taken by code once the card is charged."""

    @transition(to="Billing", llm=False)
    async def payment_failed(self, ctx: RunContext[Visit]) -> None:
        """Taken by code when the card could not be collected."""


