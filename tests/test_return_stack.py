"""Side trips come back to the state that started them (a dialogue stack)."""

from __future__ import annotations

import pytest

from handoff import RETURN, Context, Flow, RunContext, State, TransitionRefused, transition
from handoff.testing import ScriptedLLM, call


class Trip(Context):
    verified: bool = False


class Triage(State[Trip]):
    """Routes the caller."""

    instructions = "Triage."

    @transition(to="Billing")
    async def billing(self, ctx: RunContext[Trip]) -> None:
        """Go to billing."""


class Billing(State[Trip]):
    """Billing."""

    instructions = "Billing."

    @transition(to="Done")
    async def done(self, ctx: RunContext[Trip]) -> None:
        """Finish."""


class Verify(State[Trip]):
    """Verifies the caller, then returns to whoever asked."""

    instructions = "Verify the caller."

    @transition(to=RETURN)
    async def identity_confirmed(self, ctx: RunContext[Trip]) -> None:
        """Call once the caller is verified."""
        ctx.userdata.verified = True


class Done(State[Trip]):
    """Goodbye."""

    instructions = "Bye."


@transition(to="Verify", returns=True)
async def verify_identity(ctx: RunContext[Trip]) -> None:
    """Call when the caller must be verified before going on."""


flow = Flow("trips", context=Trip, initial=Triage, states=[Triage, Billing, Verify, Done],
            final=[Done], global_transitions=[verify_identity])


async def test_side_trip_returns_to_the_state_that_started_it() -> None:
    for start in ([], ["billing"]):
        run = flow.new_run()
        for trigger in start:
            await run.go(trigger)
        origin = run.state
        await run.go("verify_identity")
        assert run.state == "Verify" and run.return_stack == [origin]
        await run.go("identity_confirmed")
        assert run.state == origin and run.return_stack == [] and run.context.verified
        assert run.log[-1].target == origin


async def test_nested_side_trips_unwind_in_order() -> None:
    run = flow.new_run()
    await run.go("billing")
    await run.go("verify_identity")
    await run.go("verify_identity")  # a side trip from the side trip
    assert run.return_stack == ["Billing", "Verify"]
    await run.go("identity_confirmed")
    assert run.state == "Verify" and run.return_stack == ["Billing"]
    await run.go("identity_confirmed")
    assert run.state == "Billing" and run.return_stack == []


async def test_return_with_an_empty_stack_is_refused() -> None:
    f = Flow("trips2", context=Trip, initial=Verify, states=[Verify, Done], final=[Done])
    run = f.new_run()
    with pytest.raises(TransitionRefused, match="no earlier state to return to"):
        await run.go("identity_confirmed")
    assert run.state == "Verify" and not run.context.verified


async def test_side_trip_through_a_real_session() -> None:
    llm = ScriptedLLM([
        "Triage here.", call("billing"), "Billing here.", call("verify_identity"),
        "Let's verify you.", call("identity_confirmed"), "Back in billing, verified.",
    ])
    async with flow.session(llm=llm) as run:
        for line in ("billing", "my bill", "it's me"):
            await run.session.run(user_input=line)
        assert run.state == "Billing" and run.session.current_agent.id == "Billing"
        assert [r.target for r in run.log] == ["Billing", "Verify", "Billing"]
        assert run.return_stack == [] and run.context.verified
