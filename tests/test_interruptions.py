"""Interrupting a handoff at every await point leaves a consistent session that continues.

The rule (docs/reliability.md): a handoff LiveKit has not applied when the turn is
interrupted is rolled back (FSM and Context as before); once LiveKit has switched
agents the move is complete, whatever is interrupted afterwards.

The await points of one LLM-driven handoff, in order, each held open by a gate:

    llm       the model is streaming the transition call
    speaking  the body is running while the model is still streaming its reply
    body      the body is running after the model's reply has ended
    returned  the body has returned, the turn is interrupted before LiveKit applies it
    on_exit   LiveKit is draining the old agent (its on_exit runs)
    on_enter  the new agent is starting (its on_enter runs)
    opening   the new agent's first reply is streaming from the model
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from handoff import Context, Flow, RunContext, State, transition
from handoff.testing import Reply, ScriptedLLM, Turn, call

POINTS = ["llm", "speaking", "body", "returned", "on_exit", "on_enter", "opening"]
# LiveKit cancels tools with the reply they belong to while it is being generated; once
# the reply is over it lets running tools finish and applies their handoff.
ROLLED_BACK = {"llm", "speaking", "returned"}


class Gates:
    """Named pause points: the code under test waits at one while the test acts."""

    def __init__(self, hold: str) -> None:
        self.hold = hold
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.on_reach: Callable[[], None] | None = None

    async def at(self, point: str) -> None:
        if point != self.hold or self.reached.is_set():
            return
        self.reached.set()
        if self.on_reach is not None:
            self.on_reach()
        await self.release.wait()

    def pause(self, point: str) -> Callable[[], Awaitable[None]]:
        return lambda: self.at(point)


class Job(Context):
    moved: bool = False
    steps: list[str] = []


GATES: Gates | None = None


def gates() -> Gates:
    assert GATES is not None
    return GATES


class Here(State[Job]):
    """Where the call starts."""

    instructions = "You are Here."

    async def on_exit(self) -> None:
        await gates().at("on_exit")

    @transition(to="There")
    async def move(self, ctx: RunContext[Job]) -> None:
        """Call when the caller says go."""
        ctx.userdata.moved = True
        ctx.userdata.steps.append("moved")
        await gates().at("body")
        await gates().at("speaking")
        if gates().hold == "returned":  # the turn is cut just as the body returns
            gates().reached.set()
            gates().release.set()
            ctx.session.interrupt(force=True)
        return None


class There(State[Job]):
    """Where the call goes."""

    instructions = "You are There."

    async def on_enter(self) -> None:
        await gates().at("on_enter")
        await super().on_enter()

    @transition(to="Here")
    async def back(self, ctx: RunContext[Job]) -> None:
        """Call when the caller says back."""
        ctx.userdata.moved = False


flow = Flow("gated", context=Job, initial=Here, states=[Here, There], final=[There])


def policy(turn: Turn) -> Any:
    g = gates()
    if turn.last_user_text == "go" and "move" in turn.tool_names and not turn.answering_tool:
        if g.hold == "speaking":  # keep the reply streaming until the test releases it
            return Reply(calls=(call("move"),), text="Moving you.", calls_first=True,
                         pause_between=g.release.wait)
        return Reply(calls=(call("move"),), pause=g.pause("llm"))
    if "back" in turn.tool_names and not turn.answering_tool and turn.last_user_text != "still there?":
        return Reply(text="There, at your service.", pause=g.pause("opening"))
    where = "There" if "back" in turn.tool_names else "Here"
    return f"{where} speaking."


async def _settle(run: Any, task: asyncio.Task[Any]) -> None:
    # an interrupted run may end with an error; the session must still be sound
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)
    async with asyncio.timeout(10):  # a deadlock guard, not a timing assumption
        while run.in_transition or run.session.current_agent.id != run.state:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(run.session.wait_for_idle(), 10)  # the new agent's speech is over


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("how", ["interrupt", "new_turn"])
async def test_interrupting_a_handoff_leaves_a_consistent_session(point: str, how: str) -> None:
    global GATES
    GATES = Gates(point)
    async with flow.session(llm=ScriptedLLM(policy)) as run:
        session = run.session
        assert session is not None
        task = asyncio.ensure_future(session.run(user_input="go"))
        await asyncio.wait_for(GATES.reached.wait(), 10)
        if how == "interrupt":
            session.interrupt(force=True)
        else:
            session.interrupt(force=True)
            session.generate_reply(user_input="hello?")
        GATES.release.set()
        await _settle(run, task)

        # invariant 1 and nothing half-applied
        assert run.state == session.current_agent.id
        assert not run.in_transition
        if point in ROLLED_BACK:
            assert run.state == "Here" and run.log == []
            assert run.context.moved is False and run.context.steps == []
        else:
            assert run.state == "There" and [r.trigger for r in run.log] == ["move"]
            assert run.context.moved is True and run.context.steps == ["moved"]

        # and the session continues: the active agent answers the next turn
        result = await asyncio.wait_for(session.run(user_input="still there?"), 10)
        spoken = [e.item.text_content for e in result.events if e.type == "message"]
        assert f"{run.state} speaking." in spoken
        assert run.state == session.current_agent.id


async def test_points_are_really_reached_without_interruption() -> None:
    """The gates are on the handoff's path: released at once, the move completes."""
    global GATES
    for point in POINTS:
        GATES = Gates(point)
        GATES.on_reach = GATES.release.set
        async with flow.session(llm=ScriptedLLM(policy)) as run:
            await asyncio.wait_for(run.session.run(user_input="go"), 10)
            await _settle(run, asyncio.ensure_future(asyncio.sleep(0)))
            assert GATES.reached.is_set(), point
            if point != "returned":  # that gate interrupts by design
                assert run.state == "There", point
