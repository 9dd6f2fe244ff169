"""Failures leave a consistent session; enough of them (or a loop) take the error transition."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from livekit.agents import llm as lk

from handoff import Context, Flow, RunContext, State, TransitionRefused, function_tool, transition
from handoff.testing import ScriptedLLM, Turn, call, fail

from .faults import misbehave


class Case(Context):
    boom_guard: bool = False
    touched: bool = False
    hops: int = 0


class Desk(State[Case]):
    """Handles the caller."""

    instructions = "Desk."
    tool_timeout = 0.2

    @function_tool
    async def lookup(self, ctx: RunContext[Case], what: str) -> str:
        """Look something up."""
        await misbehave(what, raise_on="boom", hang_on="slow", error="database down")
        return f"found {what}"

    @transition(to="Side", when=lambda c: 1 / (0 if c.boom_guard else 1) > 0)
    async def side(self, ctx: RunContext[Case], mode: str = "ok") -> None:
        """Go to the side desk."""
        ctx.userdata.touched = True
        ctx.userdata.hops += 1
        if mode == "raise":
            raise ValueError("side desk closed")
        if mode == "slow":
            await asyncio.sleep(5)


class Side(State[Case]):
    """The side desk."""

    instructions = "Side."

    async def on_exit(self) -> None:
        if self.context.hops == 99:
            raise RuntimeError("on_exit exploded")

    @transition(to="Desk")
    async def desk(self, ctx: RunContext[Case]) -> None:
        """Back to the desk."""
        ctx.userdata.hops += 1


class Loud(State[Case]):
    """A state whose on_enter raises."""

    instructions = "Loud."

    async def on_enter(self) -> None:
        raise RuntimeError("on_enter exploded")


class Human(State[Case]):
    """A human operator."""

    instructions = "Human."
    tier = "smart"


@transition(to="Human")
async def to_human(ctx: RunContext[Case], reason: str) -> None:
    """Call when the caller needs a human."""


@transition(to="Loud")
async def get_loud(ctx: RunContext[Case]) -> None:
    """Go to the loud state."""


flow = Flow("failures", context=Case, initial=Desk, states=[Desk, Side, Loud, Human],
            final=[Human], global_transitions=[to_human, get_loud],
            error_transition="to_human", max_failures=2, max_ping_pong=2)


def text_when_answering(replies: dict[str, Any]) -> Any:
    """A policy: the user's line picks the reply; after tool outputs, a neutral text."""

    acted_on: set[int] = set()  # user messages already answered with an action

    def policy(turn: Turn) -> Any:
        if "Human" in turn.instructions.split("\n")[0]:
            return "A human here."
        users = [i for i, (role, _) in enumerate(turn.messages()) if role == "user"]
        if turn.answering_tool or not users or len(users) in acted_on:
            return "Noted."
        acted_on.add(len(users))
        return replies.get(turn.last_user_text, "Noted.")

    return policy


async def _until(condition: Any, within: float = 10.0) -> None:
    """Wait until ``condition()`` holds (a deadlock guard, not a timing assumption)."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.01)


async def _idle(run: Any) -> None:
    await asyncio.wait_for(run.failures.settled(), 10)  # LLM errors count after a grace
    if run.failover is not None:
        await asyncio.wait_for(run.failover, 10)
    await _until(lambda: not run.in_transition)


async def test_exception_in_a_tool_is_reported_and_counted() -> None:
    policy = text_when_answering({"a": call("lookup", what="boom"), "b": call("lookup", what="x")})
    async with flow.session(llm=ScriptedLLM(policy)) as run:
        result = await run.session.run(user_input="a")
        out = result.expect.next_event(type="function_call_output").event().item
        assert out.is_error and run.state == "Desk"
        assert run.consecutive_failures == 1
        await run.session.run(user_input="b")  # a success resets the count
        assert run.consecutive_failures == 0


async def test_tool_timeout_stops_the_tool_and_tells_the_llm() -> None:
    policy = text_when_answering({"a": call("lookup", what="slow")})
    async with flow.session(llm=ScriptedLLM(policy)) as run:
        result = await run.session.run(user_input="a")
        out = result.expect.next_event(type="function_call_output").event().item
        assert out.is_error and "took longer than 0.2 s" in out.output


async def test_exception_or_timeout_in_a_transition_body_rolls_back() -> None:
    for mode, text in (("raise", "side desk closed"), ("slow", "took longer than 0.2 s")):
        run = flow.new_run()
        with pytest.raises(TransitionRefused, match=text) as err:
            await run.go("side", mode=mode)
        assert err.value.kind == "error"
        assert run.state == "Desk" and not run.context.touched and run.context.hops == 0


async def test_two_failures_in_a_row_take_the_error_transition_and_say_so() -> None:
    policy = text_when_answering({"a": call("lookup", what="boom")})
    scripted = ScriptedLLM(policy)
    async with flow.session(llm=scripted) as run:
        await run.session.run(user_input="a")
        await run.session.run(user_input="a")
        await _idle(run)
        assert run.state == "Human" and run.session.current_agent.id == "Human"
        assert run.log[-1].by == "failover" and "2 failures in a row" in run.log[-1].arguments["reason"]
        human_turn = scripted.turns[-1]
        assert "moved here automatically" in human_turn.instructions


async def test_exception_in_a_guard_counts_and_fails_over() -> None:
    run = flow.new_run(Case(boom_guard=True))
    for _ in range(2):
        with pytest.raises(TransitionRefused):
            await run.go("side")
    assert run.failover is not None
    record = await run.failover
    assert record.target == "Human" and run.state == "Human"


async def test_on_enter_exception_completes_the_move_and_the_agent_still_speaks() -> None:
    policy = text_when_answering({"loud": call("get_loud")})
    scripted = ScriptedLLM(policy)
    async with flow.session(llm=scripted) as run:
        result = await run.session.run(user_input="loud")
        await _idle(run)
        assert run.state == "Loud" and run.session.current_agent.id == "Loud"
        assert run.consecutive_failures == 1
        spoken = [e.item.text_content for e in result.events if e.type == "message"]
        assert spoken, "the new agent apologised instead of staying silent"
        asked_to_apologise = [
            t for t in scripted.turns
            if any("Something went wrong" in (i.text_content or "")
                   for i in t.chat_ctx.items if i.type == "message")
        ]
        assert len(asked_to_apologise) == 1


async def test_on_exit_exception_does_not_block_the_handoff() -> None:
    policy = text_when_answering({"side": call("side"), "desk": call("desk")})
    async with flow.session(llm=ScriptedLLM(policy), context=Case(hops=98)) as run:
        await run.session.run(user_input="side")   # hops -> 99: Side.on_exit will raise
        assert run.state == "Side"
        await run.session.run(user_input="desk")
        await _idle(run)
        assert run.state == "Desk" and run.session.current_agent.id == "Desk"


async def test_provider_error_falls_back_along_the_tier() -> None:
    broken = ScriptedLLM([fail("primary down", retryable=False)] * 10)
    backup = ScriptedLLM(["Backup here, how can I help?", "Still backup."])
    tier = lk.FallbackAdapter([broken, backup], attempt_timeout=2, retry_interval=0)
    async with flow.session(llm={"fast": tier, "smart": backup}) as run:
        result = await run.session.run(user_input="hello")
        spoken = [e.item.text_content for e in result.events if e.type == "message"]
        assert spoken == ["Still backup."]
        assert len(broken.turns) >= 1 and run.consecutive_failures == 0


async def test_provider_errors_without_fallback_fail_over_to_a_working_tier() -> None:
    # the desk's provider answers the opening, then goes down mid-call
    desk = ScriptedLLM(["Desk here.", *[fail("provider down", retryable=False)] * 10])
    human = ScriptedLLM(["A human here."] * 5)
    async with flow.session(llm={"fast": desk, "smart": human}) as run:
        with pytest.raises(Exception, match="provider down"):  # the turn itself fails
            await asyncio.wait_for(run.session.run(user_input="hello?"), 10)
        # LLM errors count after a short grace (FailureWatch.forgive): wait for the count,
        # however long a busy machine takes, rather than for a fixed time
        await _until(lambda: run.consecutive_failures == 1)
        assert run.state == "Desk" and run.consecutive_failures == 1
        with contextlib.suppress(Exception):  # the second failure triggers the failover
            await asyncio.wait_for(run.session.run(user_input="hello?"), 10)
        await _idle(run)
        assert run.state == "Human" and run.session.current_agent.id == "Human"
        assert "language model failed" in run.log[-1].arguments["reason"]


async def test_ping_pong_is_stopped_by_the_loop_guard() -> None:
    run = flow.new_run()
    for trigger in ("side", "desk", "side", "desk"):
        await run.go(trigger)
    assert run.failover is not None
    await run.failover
    assert run.state == "Human"
    assert "back and forth between Desk and Side 2 times" in run.log[-1].arguments["reason"]


async def test_too_many_transitions_are_stopped() -> None:
    f = Flow("busy", context=Case, initial=Desk, states=[Desk, Side, Loud, Human], final=[Human],
             global_transitions=[to_human, get_loud], error_transition="to_human",
             max_transitions=3, max_ping_pong=10)
    run = f.new_run()
    for trigger in ("side", "desk", "side", "desk"):
        await run.go(trigger)
    await run.failover  # type: ignore[misc]
    assert run.state == "Human" and "more than 3 transitions" in run.log[-1].arguments["reason"]


async def test_three_parallel_transitions_apply_one() -> None:
    policy = text_when_answering({"all": [call("side"), call("get_loud"), call("to_human", reason="x")]})
    async with flow.session(llm=ScriptedLLM(policy)) as run:
        result = await run.session.run(user_input="all")
        outs = [e.item for e in result.events if e.type == "function_call_output"]
        assert [o.is_error for o in outs] == [False, True, True]
        assert all("already under way" in o.output for o in outs[1:])
        await _idle(run)
        assert run.state == "Side" and [r.trigger for r in run.log] == ["side"]
        assert run.session.current_agent.id == "Side"


def test_unknown_error_transition_fails_at_build() -> None:
    from handoff import FlowDefinitionError

    with pytest.raises(FlowDefinitionError, match="error transition 'panic' is not a declared"):
        Flow("bad", context=Case, initial=Desk, states=[Desk, Side, Loud, Human], final=[Human],
             global_transitions=[to_human, get_loud], error_transition="panic")
