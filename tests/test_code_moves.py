"""Dynamic targets (to=[...], the body chooses), code-only transitions (llm=False), and
run.go() that returns or raises promptly from anywhere: a tool, a body, a hook, after the
session closed, with the session closing mid-move."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livekit.agents import AgentSession

from handoff import (
    Context,
    Flow,
    FlowDefinitionError,
    FlowError,
    RunContext,
    State,
    TransitionRefused,
    function_tool,
    transition,
)
from handoff.diagram import to_dot, to_mermaid
from handoff.snapshot import snapshot
from handoff.testing import ScriptedLLM, Turn, call, settle


class Visit(Context):
    day: str | None = None
    free_days: list[str] = ["monday"]
    choose: Any = None
    note: str = ""


class Booking(State[Visit]):
    """Books a visit on the day the caller chose."""

    instructions = "Book a visit."
    tool_timeout = 0.1

    @transition(to=["Confirm", "NoSlot"])
    async def book(self, ctx: RunContext[Visit], day: str) -> str:
        """Book a technician visit on the day the caller chose."""
        ctx.userdata.day = day
        if ctx.userdata.choose is not None:
            return ctx.userdata.choose  # a test makes the body choose anything
        return "Confirm" if day in ctx.userdata.free_days else "NoSlot"

    @transition(to="Confirm", llm=False)
    async def auto_confirm(self, ctx: RunContext[Visit]) -> None:
        """Confirm without asking (taken by code only)."""
        ctx.disallow_interruptions()  # the RunContext API works from code too
        await ctx.wait_for_playout()
        ctx.userdata.note = "auto"

    @function_tool
    async def confirm_from_tool(self, ctx: RunContext[Visit]) -> str:
        """Confirm the booking right away."""
        record = await self.run.go("auto_confirm")
        return f"Moving to {record.target}."


class Confirm(State[Visit]):
    """Confirms the visit."""

    instructions = "Confirm."

    async def on_enter(self) -> None:
        if self.context.note == "from-hook":
            await self.run.go("finish")  # from a hook: returns at once, applied after
        await super().on_enter()

    @transition(to="Done", llm=False)
    async def finish(self, ctx: RunContext[Visit]) -> None:
        """Finish (code only)."""


class NoSlot(State[Visit]):
    """Offers another day."""

    instructions = "No slot."


class Done(State[Visit]):
    """Done."""

    instructions = "Done."


flow = Flow("visits", context=Visit, initial=Booking, states=[Booking, Confirm, NoSlot, Done],
            final=[Confirm, NoSlot, Done])


def policy(turn: Turn) -> Any:
    said = turn.last_user_text
    if turn.agent_id == "Booking" and not turn.answering_tool:
        if said.startswith("book "):
            return call("book", day=said.removeprefix("book "))
        if said == "auto":
            return call("auto_confirm")  # not offered: LiveKit refuses the made-up name
        if said == "confirm now":
            return call("confirm_from_tool")
    return f"{turn.agent_id} speaking."


@pytest.mark.parametrize(("day", "target"), [("monday", "Confirm"), ("tuesday", "NoSlot")])
async def test_a_dynamic_target_goes_where_the_body_chooses(day: str, target: str) -> None:
    llm = ScriptedLLM(policy)
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input=f"book {day}")
        assert run.state == target == run.session.current_agent.id
        assert [(r.source, r.target, r.trigger) for r in run.log] == [("Booking", target, "book")]
        assert run.context.day == day
    opening = next(t for t in llm.turns if t.agent_id == target)
    assert "Note from the previous agent" not in opening.instructions  # the name is no note


@pytest.mark.parametrize("choice", ["Done", "Nowhere", 42])
async def test_choosing_an_undeclared_target_is_refused_and_rolled_back(choice: Any) -> None:
    async with flow.session(llm=ScriptedLLM(policy), context=Visit(choose=choice)) as run:
        await run.session.run(user_input="book monday")
        assert run.state == "Booking" and run.log == [] and run.context.day is None
        assert run.refusals[-1].kind == "error"
        assert "not one of its declared targets (Confirm, NoSlot)" in run.refusals[-1].reason


async def test_code_only_transitions_are_never_offered_to_the_llm() -> None:
    llm = ScriptedLLM(policy)
    async with flow.session(llm=llm) as run:
        assert "auto_confirm" not in llm.turns[0].tool_names and "book" in llm.turns[0].tool_names
        await run.session.run(user_input="auto")
        assert run.state == "Booking" and run.log == [] and run.consecutive_failures == 0
        record = await run.go("auto_confirm")  # code takes it
        assert (record.target, run.state, run.context.note) == ("Confirm", "Confirm", "auto")
        assert record.by == "code" and run.log == [record]


async def test_run_go_from_a_tool_returns_before_the_tool_timeout() -> None:
    """Booking's tools may run 100 ms: run.go() inside one must not wait for the handoff
    (which waits for the tool's turn to end), or the tool would time out and fail."""
    async with flow.session(llm=ScriptedLLM(policy)) as run:
        result = await run.session.run(user_input="confirm now")
        outputs = [e.item for e in result.events if e.type == "function_call_output"]
        assert [(o.output, o.is_error) for o in outputs] == [("Moving to Confirm.", False)]
        assert run.state == "Confirm" == run.session.current_agent.id
        assert [r.trigger for r in run.log] == ["auto_confirm"] and not run.in_transition
        assert run.consecutive_failures == 0 and run.context.note == "auto"


async def test_run_go_from_on_enter_returns_and_the_move_follows() -> None:
    async with flow.session(llm=ScriptedLLM(policy), context=Visit(note="from-hook")) as run:
        await run.session.run(user_input="book monday")
        await run.session.run(user_input="anyone?")
        assert [r.trigger for r in run.log] == ["book", "finish"]
        assert run.state == "Done" == run.session.current_agent.id and not run.in_transition


class Redirect(State[Visit]):
    """The first state: moves on from its on_enter before awaiting anything."""

    instructions = "Redirect."

    async def on_enter(self) -> None:
        await self.run.go("redirected")

    @transition(to="Done", llm=False)
    async def redirected(self) -> None:
        """Taken by on_enter at once."""


redirect_flow = Flow("redirect", context=Visit, initial=Redirect, states=[Redirect, Done],
                     final=[Done])


@pytest.mark.parametrize("wait_opening", [True, False])
async def test_run_go_from_the_first_states_on_enter_while_the_session_starts(
    wait_opening: bool,
) -> None:
    """LiveKit ignores update_agent until AgentSession.start has returned, and a start
    that captures the opening waits for this very on_enter: the move is handed over once
    the session has started (it hung with the FSM and the agent apart)."""
    async with AgentSession[Visit]() as session:
        run = await asyncio.wait_for(
            redirect_flow.start(session, llm=ScriptedLLM(policy), wait_opening=wait_opening), 10)
        if not wait_opening:  # with it, the start returns once the move is applied
            await asyncio.wait_for(settle(run), 10)
        assert [r.trigger for r in run.log] == ["redirected"] and not run.in_transition
        assert run.state == "Done" == session.current_agent.id
        await session.run(user_input="hello?")
        assert run.state == "Done" == session.current_agent.id


async def test_run_go_after_the_call_ended_raises_at_once() -> None:
    async with flow.session(llm=ScriptedLLM(policy)) as run:
        pass
    assert run.closed
    with pytest.raises(FlowError, match="closed"):
        await asyncio.wait_for(run.go("auto_confirm"), 5)


async def test_run_go_while_the_session_closes_returns_and_leaves_nothing_half_done() -> None:
    async with AgentSession[Visit]() as session:
        run = await flow.start(session, llm=ScriptedLLM(policy), wait_opening=True)
        move = asyncio.ensure_future(run.go("auto_confirm"))
        closing = asyncio.ensure_future(session.aclose())
        done, _ = await asyncio.wait({move, closing}, timeout=10)
        assert move in done and closing in done
    outcome = move.exception() if move.exception() else move.result()
    if isinstance(outcome, TransitionRefused):  # closed before LiveKit switched agents
        assert outcome.kind == "interrupted" and run.log == [] and run.context.note == ""
    else:  # or the handoff made it first
        assert run.log == [outcome]
    assert run.closed and not run.in_transition


def test_diagrams_draw_candidates_and_code_only_edges_distinctly() -> None:
    snap = snapshot(flow)
    book = sorted((e.target, e.dynamic, e.code_only) for e in snap.edges if e.trigger == "book")
    assert book == [("Confirm", True, False), ("NoSlot", True, False)]
    assert [(e.target, e.code_only) for e in snap.edges if e.trigger == "auto_confirm"] == [
        ("Confirm", True)]
    assert len({e.key for e in snap.edges}) == len(snap.edges)  # diff tells candidates apart
    dot = to_dot(flow).source
    assert dot.count("arrowtail=odiamond") == 2 and dot.count("style=dotted") == 2
    assert "◇ body chooses" in dot and "⚙ code only" in dot
    mermaid = to_mermaid(flow)
    assert "s_Booking -.->|\"auto_confirm" in mermaid


def test_bad_target_lists_fail_at_definition_and_unknown_candidates_at_flow() -> None:
    async def pick(ctx: RunContext[Visit]) -> str:
        """Pick."""
        return "Done"

    with pytest.raises(FlowDefinitionError, match="bad-targets"):
        transition(to=[])(pick)

    class Lost(State[Visit]):
        """Chooses among states of which one does not exist."""

        instructions = "x"

        @transition(to=["Done", "Nowhere"])
        async def pick(self, ctx: RunContext[Visit]) -> str:
            """Pick."""
            return "Done"

    with pytest.raises(FlowDefinitionError, match=r"unknown-target.*Nowhere"):
        Flow("lost", context=Visit, initial=Lost, states=[Lost, Done], final=[Done])


def _settings(n: int) -> Any:
    from hypothesis import HealthCheck, settings

    return settings(max_examples=n, stateful_step_count=8, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def test_the_generated_machine_treats_candidates_and_code_only_edges_as_declared() -> None:
    """The toolkit's own oracle: a dynamic transition may land on any of its candidates,
    and a code-only one is not available to the LLM."""
    from hypothesis import strategies as st
    from hypothesis.stateful import run_state_machine_as_test

    from handoff.testing import FlowStateMachine

    days = {"book": {"day": st.sampled_from(["monday", "tuesday"])}}
    for mode, n in (("pure", 60), ("session", 8)):
        machine = FlowStateMachine(flow, mode=mode, argument_overrides=days,  # type: ignore[arg-type]
                                   context_overrides={"choose": st.none()},
                                   context_updates=False, interruptions=False)
        run_state_machine_as_test(machine, settings=_settings(n))


def test_coverage_counts_each_candidate_of_a_dynamic_transition() -> None:
    from handoff.testing.coverage import CoverageObserver

    observer = CoverageObserver()
    cov = observer.watch(flow)
    try:
        assert ("Booking", "book → Confirm") in cov.declared_transitions()
        assert ("Booking", "book → NoSlot") in cov.declared_transitions()
        for free in (["monday"], []):
            with flow.new_run(Visit(free_days=free)) as run:
                asyncio.run(run.go("book", day="monday"))
        assert cov.transitions[("Booking", "book → Confirm")] == 1
        assert cov.transitions[("Booking", "book → NoSlot")] == 1
        assert "Booking.book → Confirm" not in cov.missing()
    finally:
        observer.unwatch_all()
