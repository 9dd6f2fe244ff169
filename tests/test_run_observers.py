"""Observers per run: a watcher of one call never hears another run of the same flow.

``flow.observers`` are told by every run of the flow (telemetry, checkpoints, coverage);
``run.observers`` only by that run. Two runs of one flow move at the same time here
(each body waits until both moves are under way), so a shared list would mix them up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handoff import Context, Flow, RunContext, State, TransitionRefused, transition
from handoff.events import EventLog, MemoryEventStore
from handoff.observers import attach, detach
from handoff.records import Refusal, TransitionRecord
from handoff.testing import ScriptedLLM, call
from handoff.testing.movewatch import MoveWatch


class Gate:
    """Opens once ``expected`` bodies have arrived: their moves are under way together."""

    def __init__(self, expected: int) -> None:
        self.expected, self.arrived, self.open = expected, 0, asyncio.Event()

    async def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.expected:
            self.open.set()
        await self.open.wait()


class Pair(Context):
    ready: bool = True


GATE = Gate(1)


class Lobby(State[Pair]):
    """Waits for the other call."""

    instructions = "Wait in the lobby."

    @transition(to="Room", when=lambda c: c.ready, refused="not ready yet")
    async def enter(self, ctx: RunContext[Pair], who: str) -> None:
        """Call to enter the room."""
        await GATE.arrive()


class Room(State[Pair]):
    """The room."""

    instructions = "Talk in the room."


flow = Flow("pair", context=Pair, initial=Lobby, states=[Lobby, Room], final=[Room])


class Spy:
    """Hears transitions and refusals, with the run that told it."""

    def __init__(self) -> None:
        self.heard: list[tuple[Any, str]] = []

    def on_transition(self, run: Any, record: TransitionRecord) -> None:
        self.heard.append((run, f"took {record.trigger} for {record.arguments['who']}"))

    def on_refusal(self, run: Any, refusal: Refusal) -> None:
        self.heard.append((run, f"refused {refusal.trigger}"))


async def test_two_concurrent_runs_each_observer_hears_only_its_run() -> None:
    global GATE
    everyone, only_a, only_b = Spy(), Spy(), Spy()
    flow.observers.append(everyone)
    try:
        with flow.new_run() as a, flow.new_run(Pair(ready=False)) as b:
            attach(a, only_a)
            attach(b, only_b)
            b_refused = asyncio.ensure_future(b.go("enter", who="bea"))
            GATE = Gate(2)  # b is refused by its guard: the moves of a and c overlap
            c = flow.new_run()
            attach(c, only_b)  # one observer may watch several runs, each on its own
            await asyncio.gather(a.go("enter", who="ann"), c.go("enter", who="cy"))
            with pytest.raises(TransitionRefused):
                await b_refused
    finally:
        flow.observers.remove(everyone)
    assert [(r, what) for r, what in only_a.heard] == [(a, "took enter for ann")]
    assert only_b.heard == [(b, "refused enter"), (c, "took enter for cy")]
    assert sorted(what for _, what in everyone.heard) == [
        "refused enter", "took enter for ann", "took enter for cy"]
    assert only_a not in flow.observers and a.observers == [only_a]


async def test_a_flow_wide_observer_attached_to_a_run_is_told_once() -> None:
    spy = Spy()
    flow.observers.append(spy)
    try:
        with flow.new_run() as run:
            attach(run, spy)  # already hears every run: not added twice
            assert run.observers == []
            await run.go("enter", who="ann")
    finally:
        flow.observers.remove(spy)
    assert [what for _, what in spy.heard] == ["took enter for ann"]


async def test_detach_stops_a_run_observer() -> None:
    spy = Spy()
    with flow.new_run() as run:
        attach(run, spy)
        detach(run, spy)
        await run.go("enter", who="ann")
    assert spy.heard == []


async def test_move_watch_and_event_log_of_one_session_ignore_the_other() -> None:
    """The toolkit's MoveWatch and an EventLog that tracks a call (not installed on the
    flow) observe that call's run only, while another session of the flow runs."""
    global GATE
    GATE = Gate(1)
    log = EventLog(MemoryEventStore())
    watch = MoveWatch()
    script = ["Hello.", call("enter", who="x"), "In."]
    async with flow.session(llm=ScriptedLLM(list(script))) as a, \
            flow.session(llm=ScriptedLLM(list(script))) as b:
        watch.watch(a)
        log.track(a, "call-a")
        assert log not in flow.observers and a.observers == [watch, log] and b.observers == []
        b.context.ready = False  # b's call is refused: a watch of a must not see it
        await asyncio.gather(a.session.run(user_input="in"), b.session.run(user_input="in"))
        assert (a.state, b.state) == ("Room", "Lobby") and b.refusals
        assert watch.refused == [] and watch.open == []
        watch.stop()
        assert a.observers == [log]
    await log.aclose(5)
    kinds = [e.kind for e in await log.store.events("call-a")]
    assert "transition" in kinds and "refusal" not in kinds
