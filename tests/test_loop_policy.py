"""The loop policy knows intent: caller-driven round trips are the design, LLM bouncing is a loop.

A router hands each request to one of four specialists, who hand back. Through real
AgentSessions with the ScriptedLLM: a caller making six requests in a row (three of them
to the same specialist) never takes the error transition; the same flow with an LLM that
bounces between two states with no caller turn does. The decision itself is a pure
function of the log (:func:`handoff.semantics.loop_reason`), tested on records too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handoff import Context, Flow, RunContext, State, transition
from handoff.failures import FailurePolicy
from handoff.records import TransitionRecord
from handoff.semantics import after_move, loop_reason, unprompted
from handoff.testing import Reply, ScriptedLLM, Turn, call
from handoff.testing.driver import FlowDriver, settle
from handoff.testing.explore import explore
from handoff.testing.oracle import checking
from handoff.testing.strategies import Attempt

SPECIALISTS = ("Billing", "Insurance", "Tech", "Sales")


class Desk(Context):
    requests: int = 0


class Router(State[Desk]):
    """Routes each request to the right specialist."""

    instructions = "Router. Ask what the caller needs and route it."

    @transition(to="Billing")
    async def to_billing(self, ctx: RunContext[Desk]) -> None:
        """Call for a question about a bill."""
        ctx.userdata.requests += 1

    @transition(to="Insurance")
    async def to_insurance(self, ctx: RunContext[Desk]) -> None:
        """Call for a question about insurance."""
        ctx.userdata.requests += 1

    @transition(to="Tech")
    async def to_tech(self, ctx: RunContext[Desk]) -> None:
        """Call for a technical problem."""
        ctx.userdata.requests += 1

    @transition(to="Sales")
    async def to_sales(self, ctx: RunContext[Desk]) -> None:
        """Call to buy something."""
        ctx.userdata.requests += 1


class Specialist(State[Desk]):
    """Answers one kind of question, then hands back."""

    @transition(to="Router")
    async def back_to_router(self, ctx: RunContext[Desk]) -> None:
        """Call once the caller's question is answered."""


def _specialist(name: str) -> type[State[Desk]]:
    return type(name, (Specialist,), {
        "__doc__": f"Answers {name.lower()} questions, then hands back.",
        "instructions": f"{name}. Answer the question, then hand back to the router."})


class Human(State[Desk]):
    """A person takes over."""

    instructions = "Human."


@transition(to="Human")
async def to_human(ctx: RunContext[Desk], reason: str) -> None:
    """Call when the caller needs a person."""


flow = Flow("router", context=Desk, initial=Router,
            states=[Router, *(_specialist(n) for n in SPECIALISTS), Human], final=[Human],
            global_transitions=[to_human], error_transition="to_human")


def _last_user(turn: Turn) -> tuple[str, str]:
    """(id, text) of the last caller message the model was given ("", "" when none)."""
    for item in reversed(turn.chat_ctx.items):
        if item.type == "message" and item.role == "user":
            return item.id, item.text_content or ""
    return "", ""


def caller_driven(*, hand_back_at_once: bool) -> Any:
    """The router routes each new caller line once; a specialist answers and hands back,
    either when the caller says "that's all" or at once, in the reply it opens with."""
    acted: set[tuple[str | None, str]] = set()

    def policy(turn: Turn) -> Any:
        user_id, text = _last_user(turn)
        first = (turn.state, user_id) not in acted
        acted.add((turn.state, user_id))
        if turn.state == "Router":
            if first and text in (n.lower() for n in SPECIALISTS):
                return call(f"to_{text}")
            return "What else can I do for you?"
        if turn.state in SPECIALISTS:
            if first and (hand_back_at_once or text == "that's all"):
                return Reply(text=f"{turn.state} answered.", calls=(call("back_to_router"),))
            return f"{turn.state} here, what is your question?"
        return "A person here."

    return policy


def bouncing(turn: Turn) -> Any:
    """An LLM that hands Router → Billing → Router … on its own, never waiting for the caller."""
    if turn.state == "Router":
        return call("to_billing")
    if turn.state == "Billing":
        return call("back_to_router")
    return "A person here."


REQUESTS = ("insurance", "insurance", "insurance", "billing", "tech", "sales")


@pytest.mark.parametrize("hand_back_at_once", [False, True], ids=["caller-ends", "at-once"])
async def test_six_caller_requests_through_a_router_are_not_a_loop(hand_back_at_once: bool) -> None:
    llm = ScriptedLLM(caller_driven(hand_back_at_once=hand_back_at_once))
    async with flow.session(llm=llm) as run:
        for request in REQUESTS:
            await asyncio.wait_for(run.session.run(user_input=request), 10)
            await settle(run)
            if not hand_back_at_once:
                assert run.state == request.capitalize()
                await asyncio.wait_for(run.session.run(user_input="that's all"), 10)
                await settle(run)
            assert run.state == "Router", [(r.source, r.target) for r in run.log]
        assert run.failover is None
        assert run.session.current_agent.id == "Router"
    assert run.context.requests == 6
    assert len(run.log) == 12 and all(r.by == "llm" for r in run.log)
    assert [r.target for r in run.log[:6]] == ["Insurance", "Router"] * 3
    # each request is its own caller turn: never more than one round trip without one
    assert max(len(unprompted(run.log[: i + 1])) for i in range(len(run.log))) <= 2


async def test_an_llm_bouncing_with_no_caller_turn_takes_the_error_transition() -> None:
    async with flow.session(llm=ScriptedLLM(bouncing)) as run:
        await asyncio.wait_for(run.session.run(user_input="hello"), 10)
        assert run.failover is not None
        await asyncio.wait_for(run.failover, 10)
        await settle(run)
        assert run.state == "Human" and run.session.current_agent.id == "Human"
    moves = [(r.source, r.target) for r in run.log[:-1]]
    assert moves == [("Router", "Billing"), ("Billing", "Router")] * 3
    assert len({r.turn for r in run.log}) == 1  # from its opening line on: no caller turn between
    last = run.log[-1]
    assert (last.trigger, last.by) == ("to_human", "failover")
    assert "back and forth between Router and Billing 3 times" in last.arguments["reason"]


def _record(source: str, target: str, turn: int) -> TransitionRecord:
    return TransitionRecord(source, target, "go", {}, 0.0, "llm", None, turn)


def test_the_policy_is_a_pure_function_of_the_log() -> None:
    policy = FailurePolicy(error_transition="to_human", max_ping_pong=3, max_transitions=6)
    there_and_back = [("Router", "Insurance"), ("Insurance", "Router")] * 3
    prompted = [_record(a, b, turn=i) for i, (a, b) in enumerate(there_and_back)]
    assert loop_reason(prompted, policy) is None
    paired = [_record(a, b, turn=i // 2) for i, (a, b) in enumerate(there_and_back)]
    assert loop_reason(paired, policy) is None  # round trips each started by the caller
    alone = [_record(a, b, turn=7) for a, b in there_and_back]
    assert "back and forth between Router and Insurance 3 times" in (loop_reason(alone, policy) or "")
    # a caller turn in the middle resets it
    assert loop_reason(alone[:3] + [_record(a, b, 8) for a, b in there_and_back[3:]], policy) is None
    cycle = [_record(a, b, turn=1) for a, b in [("A", "B"), ("B", "C"), ("C", "A")] * 3]
    assert "more than 6 transitions without the caller" in (loop_reason(cycle, policy) or "")
    assert loop_reason(cycle[:6], policy) is None


def test_the_follow_up_is_the_error_transition_from_the_state_reached() -> None:
    log = [_record(a, b, turn=2) for a, b in [("Router", "Billing"), ("Billing", "Router")] * 3]
    move = after_move(flow, log)
    assert move is not None and move.trigger == "to_human"
    assert move.arguments == {"reason": move.reason} and "back and forth" in move.reason
    assert after_move(flow, log[:-1]) is None


async def test_a_pure_run_moved_by_code_takes_the_follow_up_within_the_move() -> None:
    with flow.new_run() as run:
        for trigger in ("to_billing", "back_to_router") * 2 + ("to_billing",):
            await run.go(trigger)
        record = await run.go("back_to_router")  # the sixth: the follow-up lands before go returns
        assert record.target == "Router" and run.state == "Human"
        assert run.log[-1].by == "failover"
    with flow.new_run() as run:
        for trigger in ("to_billing", "back_to_router") * 3:
            run.caller_turn()  # a driver standing for the caller between requests
            await run.go(trigger)
        assert run.state == "Router" and run.failover is None


def test_exploring_a_router_finds_no_violation_and_takes_the_loop_guard() -> None:
    result = explore(flow, depth=6, context_moves=False).raise_if_failed()
    # the sequences that bounce six times end in the error transition, which the oracle
    # expects (the semantic core's follow-up), so nothing is reported
    assert ("Router", "to_human") in result.taken and ("Billing", "to_human") in result.taken


async def test_the_oracle_models_the_follow_up_in_a_session() -> None:
    async with FlowDriver(flow) as d:
        for trigger in ("to_billing", "back_to_router") * 3:  # code, with no caller turn
            with checking(d.run, Attempt(trigger, {})):
                await d.run.go(trigger)
                if d.run.failover is not None:
                    await asyncio.wait_for(d.run.failover, 10)
                await d.settle()
        assert d.run.state == "Human" and d.run.log[-1].by == "failover"


async def test_the_oracle_reports_an_error_transition_the_policy_did_not_call_for() -> None:
    run = flow.new_run()
    with (pytest.raises(AssertionError, match="the failure policy calls for nothing here"),
          checking(run, Attempt("to_billing", {}))):
            await run.go("to_billing")
            run.failures.start_failover("made up")  # a runtime bug, planted
            assert run.failover is not None
            await run.failover
    run.close()


class Redirect(State[Desk]):
    """Hands every caller straight on to the router (a code move from on_enter)."""

    instructions = "Redirect."

    async def on_enter(self) -> None:
        await self.run.go("onwards")

    @transition(to="Router", llm=False)
    async def onwards(self) -> None:
        """Taken by on_enter at once."""


class Lobby(State[Desk]):
    """Where calls arrive."""

    instructions = "Lobby."

    @transition(to="Redirect")
    async def enter(self, ctx: RunContext[Desk]) -> None:
        """Call when the caller comes in."""


lobby = Flow("lobby", context=Desk, initial=Lobby,
             states=[Lobby, Redirect, Router, *(_specialist(n) for n in SPECIALISTS), Human],
             final=[Human], global_transitions=[to_human], error_transition="to_human")


async def test_a_code_move_from_on_enter_is_a_follow_up_not_a_second_transition() -> None:
    async with FlowDriver(lobby) as d:
        with checking(d.run, Attempt("enter", {}), by_llm=True):
            await d.turn(call("enter"))
            await d.settle()
        assert [(r.trigger, r.by) for r in d.run.log] == [("enter", "llm"), ("onwards", "code")]
        assert d.run.state == "Router"
