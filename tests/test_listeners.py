"""The run's one listener per session event: the run's handlers, then what the call's
writers and telemetry added with ``run.listen``, each told every event once, in order,
and one that raises does not silence the others (as LiveKit's own emitter behaves)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from livekit.agents import AgentSession
from livekit.rtc import EventEmitter

from handoff import FlowError
from handoff._listeners import Hub
from handoff.testing import ScriptedLLM, call

from .small_flows import flow


class Event:
    def __init__(self, type: str, n: int = 0) -> None:
        self.type, self.n = type, n


def test_the_runs_handlers_come_first_then_the_added_callbacks_in_order() -> None:
    emitter: EventEmitter[str] = EventEmitter()
    heard: list[tuple[str, int]] = []
    hub = Hub(emitter, "run", {"close": lambda target, ev: heard.append((target, ev.n))})
    hub.add("close", lambda ev: heard.append(("checkpoints", ev.n)))
    hub.add("agent_state_changed", lambda ev: heard.append(("events", ev.n)))  # not the run's
    hub.add("close", lambda ev: heard.append(("telemetry", ev.n)))
    emitter.emit("close", Event("close", 1))
    emitter.emit("agent_state_changed", Event("agent_state_changed", 2))
    emitter.emit("speech_created", Event("speech_created", 3))  # nobody's: nothing heard
    assert heard == [("run", 1), ("checkpoints", 1), ("telemetry", 1), ("events", 2)]
    assert [len(emitter._events[name]) for name in ("close", "agent_state_changed")] == [1, 1]


def test_a_callback_that_raises_is_logged_and_the_others_still_hear(
        caplog: pytest.LogCaptureFixture) -> None:
    emitter: EventEmitter[str] = EventEmitter()
    heard: list[str] = []

    def broken(target: Any, ev: Event) -> None:
        raise RuntimeError("the run's handler failed")

    hub = Hub(emitter, "run", {"error": broken})
    hub.add("error", lambda ev: 1 / 0)
    hub.add("error", lambda ev: heard.append("telemetry"))
    with caplog.at_level(logging.ERROR, logger="handoff"):
        emitter.emit("error", Event("error"))
    assert heard == ["telemetry"]
    assert [r.getMessage() for r in caplog.records] == ["failed to handle event error"] * 2


async def test_a_live_call_holds_one_listener_per_event_for_the_run_and_its_writers() -> None:
    llm_ = ScriptedLLM(lambda request: call("named", name="Ada"))
    async with AgentSession() as session:
        run = flow.new_run(llm=llm_)
        with pytest.raises(FlowError, match="attached"):
            run.listen("close", print)  # no session yet
        await run.attach(session)
        closes: list[str] = []
        states: list[str] = []
        run.listen("close", lambda ev: closes.append(ev.type))
        run.listen("agent_state_changed", lambda ev: states.append(ev.new_state))
        for name in ("conversation_item_added", "function_tools_executed", "error", "close",
                     "agent_state_changed"):
            assert len(session._events[name]) == 1, name  # the run's hub, whoever listens
        await session.run(user_input="I'm Ada")
        assert run.state == "Back" and "listening" in states
    assert closes == ["close"] and run.closed
