"""A transition's bridge line (``say=``): said by the new agent first, never for a move
that does not happen. Through real AgentSessions (text mode) and the ScriptedLLM."""

from __future__ import annotations

import asyncio
import logging

import pytest

from handoff import Context, Flow, RunContext, State, TransitionRefused, transition
from handoff.testing import Reply, ScriptedLLM, call

BRIDGE = "Let me bring up your bill."


class Bill(Context):
    verified: bool = False
    amount: float | None = None


class Desk(State[Bill]):
    """Answers the call."""

    instructions = "You answer calls."

    @transition(to="Billing", when=lambda c: c.verified, refused="verify the caller first",
                say=BRIDGE)
    async def billing_question(self, ctx: RunContext[Bill]) -> None:
        """Call when the caller asks about a bill."""

    @transition(to="Billing", say=lambda c: f"One moment, checking the {c.amount:.2f} charge.")
    async def charge_question(self, ctx: RunContext[Bill], amount: float) -> None:
        """Call when the caller asks about one charge."""
        ctx.userdata.amount = amount

    @transition(to="Billing", say="You will not hear this.")
    async def refused_in_body(self, ctx: RunContext[Bill]) -> None:
        """Call to try a move the body refuses."""
        raise TransitionRefused("not today")

    @transition(to="Billing", say=lambda c: c.missing_field)  # type: ignore[attr-defined]
    async def broken_bridge(self, ctx: RunContext[Bill]) -> None:
        """Call to move with a bridge line that fails."""


class Billing(State[Bill]):
    """Explains the bill."""

    instructions = "You explain bills."
    keep_agent = True

    @transition(to="Desk")
    async def done(self, ctx: RunContext[Bill]) -> None:
        """Call when the caller is done with billing."""


flow = Flow("bridge", context=Bill, initial=Desk, states=[Desk, Billing], final=[Billing])


def _said(result: object) -> list[str]:
    return [e.item.text_content for e in result.events  # type: ignore[attr-defined]
            if e.type == "message" and e.item.role == "assistant"]


async def test_the_new_agent_says_the_bridge_line_before_its_answer() -> None:
    llm = ScriptedLLM(["Hello.", call("billing_question"), "Your bill is 45.00."])
    async with flow.session(llm=llm, context=Bill(verified=True)) as run:
        result = await run.session.run(user_input="about my bill")
        result.expect.contains_agent_handoff(new_agent_type=Billing)
        assert _said(result) == [BRIDGE, "Your bill is 45.00."]
        assert run.state == "Billing" == run.session.current_agent.id
        # the new agent's LLM request did not wait for the line: it was asked once, without it
        assert llm.turns[-1].state == "Billing"
        assert BRIDGE not in [text for _, text in llm.turns[-1].messages()]
        # the line is in the history the call goes on with
        assert any(m.text_content == BRIDGE for m in run.session.current_agent.chat_ctx.messages())


async def test_a_bridge_line_of_the_context_reads_what_the_body_wrote() -> None:
    llm = ScriptedLLM(["Hello.", call("charge_question", amount=45), "That is the roaming pass."])
    async with flow.session(llm=llm) as run:
        result = await run.session.run(user_input="what is the 45 charge")
        assert _said(result) == ["One moment, checking the 45.00 charge.",
                                 "That is the roaming pass."]


async def test_no_bridge_line_when_the_guard_or_the_body_refuses() -> None:
    llm = ScriptedLLM(["Hello.", call("billing_question"), "Please verify first.",
                       call("refused_in_body"), "Sorry, I cannot."])
    async with flow.session(llm=llm) as run:
        first = await run.session.run(user_input="about my bill")
        second = await run.session.run(user_input="try anyway")
        assert _said(first) == ["Please verify first."]
        assert _said(second) == ["Sorry, I cannot."]
        assert run.state == "Desk" and not run.log
        assert [r.kind for r in run.refusals] == ["guard", "body"]


async def test_a_bridge_line_that_fails_never_stops_the_handoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="handoff")  # other modules may quiet it
    llm = ScriptedLLM(["Hello.", call("broken_bridge"), "Billing here."])
    async with flow.session(llm=llm) as run:
        result = await run.session.run(user_input="go")
        assert _said(result) == ["Billing here."]
        assert run.state == "Billing" == run.session.current_agent.id
    assert "the say= of broken_bridge raised" in caplog.text


async def test_a_handoff_dropped_by_an_interruption_never_says_its_line() -> None:
    body_ran = asyncio.Event()
    gate = asyncio.Event()

    class Slow(Desk):
        """Answers the call, slowly."""

        name = "Desk"

        @transition(to="Billing", say=BRIDGE)
        async def slow_question(self, ctx: RunContext[Bill]) -> None:
            """Call when the caller asks about a bill, slowly."""
            body_ran.set()

    slow = Flow("bridge-dropped", context=Bill, initial=Slow, states=[Slow, Billing],
                final=[Billing])
    # the model streams the call first and holds its text open: the tool runs meanwhile
    llm = ScriptedLLM(["Hello.", Reply(calls=(call("slow_question"),), text="Sure.",
                                       calls_first=True, pause_between=gate.wait),
                       "Still with you."])
    async with slow.session(llm=llm) as run:
        session = run.session
        turn = asyncio.ensure_future(session.run(user_input="about my bill"))
        await asyncio.wait_for(body_ran.wait(), 10)
        session.interrupt(force=True)
        gate.set()
        await asyncio.gather(turn, return_exceptions=True)
        after = await session.run(user_input="hello?")
        assert _said(after) == ["Still with you."]
        assert run.state == "Desk" == session.current_agent.id and not run.log
        assert [r.kind for r in run.refusals] == ["interrupted"]
        history = [m.text_content for m in session.history.messages()]
        assert BRIDGE not in history
