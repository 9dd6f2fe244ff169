"""Insurance quote: age → marital status → quote → adjust coverage → goodbye.

Ported from Pipecat Flows' insurance-quote example: repository pipecat-ai/pipecat-flows,
path ``examples/insurance_quote.py`` (BSD 2-Clause License, Copyright (c) 2024-2026,
Daily). Same nodes (one State each), same functions (one transition each, same names,
parameters and enums), same rate table and arithmetic, same prompts. The Pipecat
pipeline (STT, TTS, transport) is what LiveKit's ``AgentSession`` does here.

    Initial ──collect_age──▶ MaritalStatus ──collect_marital_status──▶ QuoteCalculation
    QuoteCalculation ──calculate_quote──▶ QuoteResults ⟲ update_coverage
    QuoteResults ──end_quote──▶ End (thanks the customer and hangs up)

What the port needed from handoff: a transition per node function (its handler is the
body, its next node the target); the Context instead of ``flow_manager.state`` and the
node-building closures; ``compose_instructions`` for the two nodes whose task message
is built from earlier answers; a final state that ends the session (Pipecat's
``end_conversation`` post-action).

What the original lacks (found by porting it and by the tests in
``tests/test_port_insurance.py``):

* ``calculate_quote`` asks the LLM for the age and marital status *again* instead of
  using the ones collected, so the quote can be computed for another customer than the
  one who answered (the toolkit's entry condition "the quote is for the collected
  age" fails on the first generated conversation where the two differ);
* ``update_coverage`` forgets the risk profile: the adjusted premium is
  ``coverage / 250 000 * 100`` whatever the age and status, so "adjusting" to the very
  same coverage and deductible changes a young single customer's premium from 225.00
  to 100.00;
* nothing bounds the numbers the LLM passes: an age of -3 is "young", a coverage of 0
  or below gives a premium of 0 or below (found by the entry condition "a quote costs
  something").

The port keeps all three, as the original behaves; the tests name them.
"""

from __future__ import annotations

from typing import Literal

from handoff import Context, Flow, RunContext, State, transition

MaritalStatusName = Literal["single", "married"]

# Simulated insurance data (as in the original)
INSURANCE_RATES = {
    "young_single": {"base_rate": 150, "risk_multiplier": 1.5},
    "young_married": {"base_rate": 130, "risk_multiplier": 1.3},
    "adult_single": {"base_rate": 100, "risk_multiplier": 1.0},
    "adult_married": {"base_rate": 90, "risk_multiplier": 0.9},
}
BASE_COVERAGE = 250_000
BASE_DEDUCTIBLE = 1_000

ROLE = (
    "You are a friendly insurance agent. Your responses will be converted to audio, so avoid "
    "special characters. Always use the available functions to progress the conversation "
    "naturally."
)


class Quote(Context):
    """What the quote call learns: the customer's answers and the current quote."""

    age: int | None = None
    marital_status: MaritalStatusName | None = None
    monthly_premium: float | None = None
    coverage_amount: int | None = None
    deductible: int | None = None


def initial_premium(age: int, marital_status: str) -> float:
    """The original's ``calculate_quote`` arithmetic: a base rate times a risk multiplier."""
    age_category = "young" if age < 25 else "adult"
    rates = INSURANCE_RATES.get(f"{age_category}_{marital_status}", INSURANCE_RATES["adult_single"])
    return rates["base_rate"] * rates["risk_multiplier"]


def adjusted_premium(coverage_amount: int, deductible: int) -> float:
    """The original's ``update_coverage`` arithmetic (it ignores age and marital status)."""
    monthly_premium = (coverage_amount / BASE_COVERAGE) * 100
    if deductible > BASE_DEDUCTIBLE:
        monthly_premium *= 0.9  # 10% discount for higher deductible
    return monthly_premium


class Initial(State[Quote]):
    """Asks the customer's age."""

    instructions = f"{ROLE}\n\nStart by asking for the customer's age."

    @transition(to="MaritalStatus")
    async def collect_age(self, ctx: RunContext[Quote], age: int) -> None:
        """Record customer's age"""
        ctx.userdata.age = age


class MaritalStatus(State[Quote]):
    """Asks the marital status for the premium."""

    instructions = f"{ROLE}\n\nAsk about the customer's marital status for premium calculation."

    @transition(to="QuoteCalculation")
    async def collect_marital_status(self, ctx: RunContext[Quote],
                                     marital_status: MaritalStatusName) -> None:
        """Record marital status after customer provides it"""
        ctx.userdata.marital_status = marital_status


class QuoteCalculation(State[Quote]):
    """Calculates the first quote from age and status."""

    instructions = ROLE

    def compose_instructions(self, context: Quote, note: str | None = None) -> str:
        task = (f"Calculate a quote for {context.age} year old {context.marital_status} customer. "
                "First, call calculate_quote with their information. "
                "Then explain the quote details and ask if they'd like to adjust coverage.")
        return super().compose_instructions(context, note) + "\n\n" + task

    @transition(to="QuoteResults")
    async def calculate_quote(self, ctx: RunContext[Quote], age: int,
                              marital_status: MaritalStatusName) -> None:
        """Calculate initial insurance quote"""
        quote = ctx.userdata
        quote.monthly_premium = initial_premium(age, marital_status)
        quote.coverage_amount = BASE_COVERAGE
        quote.deductible = BASE_DEDUCTIBLE


class QuoteResults(State[Quote]):
    """Explains the quote; recalculates it for new coverage."""

    instructions = ROLE

    def compose_instructions(self, context: Quote, note: str | None = None) -> str:
        task = (
            "Quote details:\n"
            f"Monthly Premium: ${context.monthly_premium or 0:.2f}\n"
            f"Coverage Amount: ${context.coverage_amount or 0:,}\n"
            f"Deductible: ${context.deductible or 0:,}\n\n"
            "Explain these quote details to the customer. When they request changes, use "
            "update_coverage to recalculate their quote. Explain how their changes affected "
            "the premium and compare it to their previous quote. Ask if they'd like to make any "
            "other adjustments or if they're ready to end the quote process."
        )
        return super().compose_instructions(context, note) + "\n\n" + task

    @transition(to="QuoteResults")
    async def update_coverage(self, ctx: RunContext[Quote], coverage_amount: int,
                              deductible: int) -> None:
        """Recalculate quote with new coverage options"""
        quote = ctx.userdata
        quote.monthly_premium = adjusted_premium(coverage_amount, deductible)
        quote.coverage_amount = coverage_amount
        quote.deductible = deductible

    @transition(to="End")
    async def end_quote(self, ctx: RunContext[Quote]) -> str:
        """Complete the quote process when customer is satisfied"""
        return "quote status: completed"


class End(State[Quote]):
    """Thanks the customer and ends the call."""

    instructions = (
        f"{ROLE}\n\nThank the customer for their time and end the conversation. Mention that a "
        "representative will contact them about the quote."
    )

    async def on_enter(self) -> None:
        # Pipecat's `post_actions: end_conversation`: speak, then end the session
        if self.run.resuming:
            return
        await self.session.generate_reply()
        self.session.shutdown(drain=True)


flow = Flow(
    "insurance",
    context=Quote,
    initial=Initial,
    states=[Initial, MaritalStatus, QuoteCalculation, QuoteResults, End],
    final=[End],
)
