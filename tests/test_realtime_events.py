"""The event log and the inspector on a realtime call: the call-centre demo with every state
on the ScriptedRealtimeModel, recorded through a real AgentSession (LiveKit's realtime path
reports messages and tool calls differently from the pipeline's: the log must not care)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from livekit.agents import AgentSession

from examples.callcenter.demo import AGENT_SCRIPT, CALLER
from examples.callcenter.flow import Call
from handoff.events import EventLog, MemoryEventStore
from handoff.inspector import InspectorServer
from handoff.redaction import REDACTED
from handoff.testing import ScriptedRealtimeModel

from .test_events import DEMO_MOVES

PII = "ZEBRA-7731"


async def test_the_event_log_of_a_realtime_call_has_its_transitions_and_messages(
        flow: Any) -> None:
    store = MemoryEventStore()
    log = EventLog(store).install(flow)
    model = ScriptedRealtimeModel(list(AGENT_SCRIPT))
    caller = list(CALLER)
    caller[2] = f"Sure. Account 4411, PIN 1234. My hint is {PII}."
    async with AgentSession[Call]() as session:
        run = await flow.start(session, context=Call(pin_hint=PII), llm=model, call_id="rt-1")
        log.track(run, "rt-1")
        for line in caller:
            await session.run(user_input=line)
    assert await log.flush(10)
    assert len(model.sessions) == 1 and model.remaining == 0  # all of it on one realtime session
    events = await store.events("rt-1")

    assert [(e.data["source"], e.data["target"], e.data["trigger"], e.data["by"])
            for e in events if e.kind == "transition"] == DEMO_MOVES
    assert [(e.state, e.data["trigger"], e.data["kind"]) for e in events
            if e.kind == "refusal"] == [("Triage", "billing_question", "guard"),
                                        ("Billing", "open_refund", "guard")]
    said = [(e.data["role"], e.data["text"]) for e in events if e.kind == "message"]
    assert [t for r, t in said if r == "user"] == [
        line.replace("PIN 1234", f"PIN {REDACTED}").replace(PII, REDACTED) for line in caller]
    replies = [t for r, t in said if r == "assistant"]
    assert AGENT_SCRIPT[0] in replies and len(replies) >= 5  # the realtime model's own lines
    tools = {e.data["name"]: e.data for e in events if e.kind == "tool_call"}
    assert tools["verify_account"]["output"] == "Account 4411 verified."
    assert tools["verify_account"]["arguments"] == {"account_id": "4411", "pin": REDACTED}
    assert events[0].kind == "call_started" and events[-1].kind == "call_ended"
    assert all(PII not in e.to_json() and "PIN 1234" not in e.to_json() for e in events)

    server = InspectorServer(store, port=0)
    url = (await server.start()).rstrip("/")
    try:
        async with aiohttp.ClientSession() as http:
            listed = json.loads(await (await http.get(url + "/api/calls")).text())
            served = json.loads(await (await http.get(url + "/api/calls/rt-1")).text())
    finally:
        await server.stop()
    assert [(c["call_id"], c["state"]) for c in listed["calls"]] == [("rt-1", "Escalation")]
    assert [e["kind"] for e in served["events"]] == [e.kind for e in events]
    assert PII not in json.dumps(served)
