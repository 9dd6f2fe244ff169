"""Every path through a move ends: it commits or is rolled back, and nothing stays under way.

Failures *after* the body (the next agent cannot be built), a call that ends while a
body runs or a handoff waits, and the error transition waiting for a move when the
call ends: each through a real AgentSession.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handoff import Context, Flow, RunContext, State, TransitionRefused, transition
from handoff.persistence import Checkpointer, MemoryStore
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM, call


class Desk(Context):
    name: str | None = None
    visits: int = 0


class Gate:
    """Holds a transition body until the test releases it."""

    entered: asyncio.Event
    release: asyncio.Event

    def reset(self) -> None:
        self.entered, self.release = asyncio.Event(), asyncio.Event()


GATE = Gate()


class Front(State[Desk]):
    """The front desk."""

    instructions = "Front."

    @transition(to="Broken")
    async def to_broken(self, ctx: RunContext[Desk], name: str) -> None:
        """Go to the broken desk."""
        ctx.userdata.name = name
        ctx.userdata.visits += 1

    @transition(to="Back")
    async def to_back(self, ctx: RunContext[Desk], hold: bool = False) -> None:
        """Go to the back desk."""
        ctx.userdata.visits += 1
        if hold:
            GATE.entered.set()
            await GATE.release.wait()


class Broken(State[Desk]):
    """A desk whose agent cannot be built (say its tier's API key is missing)."""

    instructions = "Broken."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no API key for this tier")


class Back(State[Desk]):
    """The back desk."""

    instructions = "Back."


@transition(to="Back")
async def to_human(ctx: RunContext[Desk]) -> None:
    """Escalate."""


flow = Flow("desks", context=Desk, initial=Front, states=[Front, Broken, Back], final=[Back],
            global_transitions=[to_human], error_transition="to_human", max_failures=2)


async def test_a_next_agent_that_cannot_be_built_rolls_the_move_back(
    metrics: HandoffMetrics,
) -> None:
    saved = list(flow.observers)
    checkpointer = Checkpointer(MemoryStore(), metrics=metrics, forget_on=frozenset())
    checkpointer.install(flow)
    llm = ScriptedLLM(["Hello.", call("to_broken", name="Ann"), "That desk is closed.",
                       call("to_back"), "Back desk."])
    try:
        async with flow.session(llm=llm, max_tool_steps=1) as run:
            checkpointer.track(run, "c1")
            result = await run.session.run(user_input="the broken desk please")
            out = result.expect.next_event(type="function_call_output").event().item
            assert out.is_error and "failed to start" in out.output
            assert run.state == "Front" and not run.in_transition
            assert run.context.name is None and run.context.visits == 0  # rolled back
            assert run.refusals[-1].kind == "error"
            # the call goes on: checkpoints are taken, the next move happens
            taken = checkpointer.taken
            await run.session.run(user_input="the back desk then")
            assert checkpointer.taken > taken
            assert run.state == "Back" and run.session.current_agent.id == run.state
    finally:
        flow.observers[:] = saved
        await checkpointer.aclose()


async def test_run_go_to_a_state_that_cannot_start_is_refused() -> None:
    async with flow.session(llm=ScriptedLLM(["Hello."] * 3)) as run:
        with pytest.raises(TransitionRefused, match="failed to start"):
            await run.go("to_broken", name="Bo")
        assert run.state == "Front" and not run.in_transition and run.context.name is None


async def test_a_call_that_ends_while_a_body_runs_never_moves() -> None:
    GATE.reset()
    async with flow.session(llm=ScriptedLLM(["Hello."] * 3)) as run:
        moving = asyncio.ensure_future(run.go("to_back", hold=True))
        await GATE.entered.wait()
        await run.session.aclose()
        assert not run.in_transition and run.context.visits == 0
        GATE.release.set()
        with pytest.raises(TransitionRefused, match="call ended"):
            await moving
        assert run.state == "Front" and run.context.visits == 0


async def test_the_error_transition_ends_with_the_call() -> None:
    """The error transition waits for a move under way; the call ends meanwhile: it ends
    too (no task left polling after the call)."""
    GATE.reset()
    async with flow.session(llm=ScriptedLLM(["Hello."] * 3)) as run:
        moving = asyncio.ensure_future(run.go("to_back", hold=True))
        await GATE.entered.wait()
        run.note_failure("a tool failed")
        run.note_failure("a tool failed again")  # max_failures=2: the error transition is due
        failover = run.failover
        assert failover is not None and not failover.done()
        await asyncio.sleep(0)
        assert not failover.done()  # waiting for the move under way
        await run.session.aclose()
        assert await asyncio.wait_for(failover, 5) is None
        GATE.release.set()
        with pytest.raises(TransitionRefused):
            await moving
    assert run.state == "Front"
