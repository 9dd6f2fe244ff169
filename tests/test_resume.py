"""Resume: a call picked up from its checkpoint goes on where it was, saying nothing twice."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.agents import AgentSession

from examples.callcenter.demo import AGENT_SCRIPT, CALLER
from examples.callcenter.flow import Call
from handoff.persistence import Checkpoint, Checkpointer, MemoryStore, RedisStore, SQLiteStore
from handoff.resume import call_id_of, resume_or_start
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM, call

from .ops_support import RedisServer, demo_call

# Requests the agent side makes for the opening and the first three caller lines.
REPLIES_TO_BILLING = 9


def assistant_texts(session: AgentSession[Any]) -> list[str]:
    return [m.text_content or "" for m in session.history.messages() if m.role == "assistant"]


async def first_part(flow: Any, checkpointer: Checkpointer, call_id: str) -> dict[str, Any]:
    """Run the demo call up to Billing; return the context the caller had given by then."""
    script = ScriptedLLM(list(AGENT_SCRIPT))
    async with AgentSession[Call]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                    llm=script, wait_opening=True)
        for line in CALLER[:3]:
            await session.run(user_input=line)
        assert run.state == "Billing"
        assert len(script.turns) == REPLIES_TO_BILLING
        assert await checkpointer.flush(5)
        return run.context.model_dump()


async def test_resume_continues_in_state_with_context_and_history(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "calls.db")
    # the first worker "dies": its session closes without the call being over
    first = Checkpointer(store, metrics=metrics, forget_on=frozenset())
    before = await first_part(flow, first, "room-42")

    checkpointer = Checkpointer(SQLiteStore(tmp_path / "calls.db"), metrics=metrics)
    script = ScriptedLLM(list(AGENT_SCRIPT[REPLIES_TO_BILLING:]))
    async with AgentSession[Call]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id="room-42",
                                    llm=script)
        assert run.state == "Billing" and run.resuming
        assert run.context.model_dump() == before
        assert [(r.source, r.target) for r in run.log] == [("Greeter", "Triage"),
                                                           ("Triage", "Billing")]
        assert session.current_agent is run.agent and run.agent.id == "Billing"
        # Billing's history policy (last:N or full) carries the caller's last words
        assert run.agent is not None
        restored = [m.text_content for m in run.agent.chat_ctx.messages()
                    if m.role in ("user", "assistant")]
        # the PIN is a pii argument of verify_account: the checkpoint kept the line without it
        assert CALLER[2].replace("PIN 1234", "PIN [redacted]") in restored

        # nothing said on resume: no LLM request, no agent message, until the caller speaks
        assert script.turns == [] and assistant_texts(session) == []
        result: Any = await session.run(user_input=CALLER[3])
        assert script.turns[0].last_user_text == CALLER[3]
        assert any("refund up to 100.00" in t for t in assistant_texts(session))
        assert result.events  # the turn ran through the real session

        for line in CALLER[4:]:
            await session.run(user_input=line)
        # the later handoffs' agents spoke on entry as usual (resuming was cleared)
        assert run.state == "Escalation" and not run.resuming
        assert any("refund of 45.00 is open" in t for t in assistant_texts(session))
        assert run.context.refund_ticket and run.context.refund_ticket.startswith("R-")
        assert run.context.caller_name == "Dana Reyes" and run.context.account_id == "4411"
        assert script.remaining == 0
    assert metrics.value("handoff_resumes_total", flow="callcenter", outcome="resumed") == 1
    await checkpointer.aclose()
    await first.aclose()


async def test_checkpoint_history_spans_both_sessions(flow: Any, metrics: HandoffMetrics) -> None:
    store = MemoryStore()
    await first_part(flow, Checkpointer(store, metrics=metrics, forget_on=frozenset()), "c")
    checkpointer = Checkpointer(store, metrics=metrics, forget_on=frozenset())
    async with AgentSession[Call]() as session:
        await resume_or_start(flow, session, checkpointer=checkpointer, call_id="c",
                              llm=ScriptedLLM(list(AGENT_SCRIPT[REPLIES_TO_BILLING:])))
        await session.run(user_input=CALLER[3])
        assert await checkpointer.flush(5)
    cp = await store.load("c")
    assert cp is not None
    users = [m["text"] for m in cp.history if m["role"] == "user"]
    # three lines from the first session, one from the second (the PIN, a pii argument, scrubbed)
    assert users == [line.replace("PIN 1234", "PIN [redacted]") for line in CALLER[:4]]


async def test_no_checkpoint_starts_fresh_and_speaks_first(flow: Any,
                                                           metrics: HandoffMetrics) -> None:
    checkpointer = Checkpointer(MemoryStore(), metrics=metrics)
    async with demo_call(flow, checkpointer, "new") as (session, run):
        assert run.state == "Greeter" and not run.resuming
        assert assistant_texts(session) == [AGENT_SCRIPT[0]]
    assert metrics.value("handoff_resumes_total", flow="callcenter", outcome="resumed") == 0


async def test_a_call_that_ended_is_not_resumed(flow: Any, metrics: HandoffMetrics) -> None:
    """A call that reached a final state is forgotten when its session closes."""
    store = MemoryStore()
    checkpointer = Checkpointer(store, metrics=metrics)
    async with demo_call(flow, checkpointer, "done") as (session, run):
        for line in CALLER:
            await session.run(user_input=line)
        assert run.is_final()
        assert await checkpointer.flush(5)
        assert await store.load("done") is not None
    assert await checkpointer.flush(5)
    ended = await store.load("done")  # a tombstone: nothing of the call is kept
    assert ended is not None and ended.ended and ended.context == {} and ended.history == []


async def test_a_worker_shutting_down_mid_call_keeps_the_checkpoint(
    flow: Any, metrics: HandoffMetrics
) -> None:
    """LiveKit's job process closes the session as user_initiated when the worker shuts
    down (drain timeout, deploy): the call is not over, its checkpoint must stay."""
    store = MemoryStore()
    checkpointer = Checkpointer(store, metrics=metrics)
    async with demo_call(flow, checkpointer, "mid") as (session, run):
        await session.run(user_input=CALLER[0])
        assert not run.is_final()
    assert await checkpointer.flush(5)
    saved = await store.load("mid")
    assert saved is not None and saved.state == "Triage"


async def test_older_version_falls_back_to_a_declared_state(
    flow: Any, metrics: HandoffMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """A v0 checkpoint in a state that was removed, with a field that changed type."""
    store = MemoryStore()
    await store.save(Checkpoint(
        call_id="old", flow="callcenter", flow_version="0", state="Verification", seq=1,
        context={"caller_name": "Dana Reyes", "account_id": "4411", "verified": True,
                 "refund_limit": "lots", "loyalty_tier": "gold"},
        history=[{"role": "user", "text": "my account is 4411"}],
    ))
    checkpointer = Checkpointer(store, metrics=metrics)
    with caplog.at_level(logging.WARNING, logger="handoff"):
        async with AgentSession[Call]() as session:
            run = await resume_or_start(flow, session, checkpointer=checkpointer,
                                        call_id="old",  # the flow declares Triage
                                        llm=ScriptedLLM(["Where were we, Dana?"]))
            assert run.state == "Triage"
            assert run.context.caller_name == "Dana Reyes" and run.context.verified
            assert run.context.refund_limit == 100.0  # invalid value dropped: the default
            assert assistant_texts(session) == []
    text = caplog.text
    assert "'Verification'" in text and "resuming in 'Triage'" in text
    assert "loyalty_tier" in text and "refund_limit" in text
    assert metrics.value("handoff_resumes_total", flow="callcenter", outcome="fallback") == 1


async def test_resume_prompt_lets_the_agent_pick_up_the_thread(flow: Any,
                                                               metrics: HandoffMetrics) -> None:
    store = MemoryStore()
    await first_part(flow, Checkpointer(store, metrics=metrics, forget_on=frozenset()), "p")
    script = ScriptedLLM(["Sorry, we were cut off. Which charge was it about?"])
    async with AgentSession[Call]() as session:
        await resume_or_start(flow, session, checkpointer=Checkpointer(store, metrics=metrics),
                              call_id="p", llm=script,
                              resume_prompt="Apologise for the interruption in one sentence.")
        async with asyncio.timeout(10):  # the reply is generated in the background
            while not assistant_texts(session):
                await asyncio.sleep(0.02)
        assert assistant_texts(session) == ["Sorry, we were cut off. Which charge was it about?"]


def test_call_id_of_prefers_the_sip_call_id() -> None:
    caller = SimpleNamespace(attributes={"sip.callID": "SCL_abc123"})
    other = SimpleNamespace(attributes={})
    room = SimpleNamespace(name="room-9", remote_participants={"a": other, "b": caller})
    assert call_id_of(room) == "SCL_abc123"  # type: ignore[arg-type]
    room.remote_participants = {"a": other}
    assert call_id_of(room) == "room-9"  # type: ignore[arg-type]


class BrokenStore(MemoryStore):
    kind = "broken"

    async def load(self, call_id: str) -> Checkpoint | None:
        raise ConnectionError("store unreachable")


async def test_unreadable_store_or_checkpoint_starts_fresh(
    flow: Any, metrics: HandoffMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """A store outage at call start, a checkpoint of another flow, or of an unknown format."""
    other_flow = MemoryStore()
    await other_flow.save(Checkpoint(call_id="x", flow="hotel", flow_version="1",
                                     state="Lobby", seq=1, context={}))
    unknown_format = MemoryStore()
    unknown_format._data["x"] = (1, 1e20, '{"format": 2}')
    for store, expected in [(BrokenStore(), "store unreachable"),
                            (other_flow, "flow 'hotel'"),
                            (unknown_format, "format 2 is not supported")]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="handoff"):
            async with AgentSession[Call]() as session:
                run = await resume_or_start(
                    flow, session, checkpointer=Checkpointer(store, metrics=metrics),
                    call_id="x", llm=ScriptedLLM([AGENT_SCRIPT[0]]), wait_opening=True)
                assert run.state == "Greeter" and not run.resuming
                assert assistant_texts(session) == [AGENT_SCRIPT[0]]
        assert expected in caplog.text and "starting fresh" in caplog.text
    assert metrics.value("handoff_checkpoint_errors_total", store="broken") == 1


async def test_a_side_trip_resumes_with_its_return_stack(metrics: HandoffMetrics) -> None:
    """Killed during a side trip (Billing -> Verify), the call still returns to Billing."""
    from .test_return_stack import Trip
    from .test_return_stack import flow as trips

    store = MemoryStore()
    saved = list(trips.observers)
    try:
        first = Checkpointer(store, metrics=metrics, forget_on=frozenset())
        async with AgentSession[Trip]() as session:
            run = await resume_or_start(trips, session, checkpointer=first, call_id="trip",
                                        llm=ScriptedLLM(["Hello.", call("billing"),
                                                         "Billing here.",
                                                         call("verify_identity"),
                                                         "Let me verify you first."]),
                                        wait_opening=True)
            await session.run(user_input="billing please")
            await session.run(user_input="is my card on file?")
            assert run.state == "Verify" and run.return_stack == ["Billing"]
            assert await first.flush(5)
        cp = await store.load("trip")
        assert cp is not None and cp.return_stack == ["Billing"]

        second = Checkpointer(store, metrics=metrics)
        async with AgentSession[Trip]() as session:
            run = await resume_or_start(trips, session, checkpointer=second, call_id="trip",
                                        llm=ScriptedLLM([call("identity_confirmed"),
                                                         "Verified; back to your card."]))
            assert run.state == "Verify" and run.return_stack == ["Billing"]
            await session.run(user_input="my PIN is 1234")
            assert run.state == "Billing" and run.return_stack == [] and run.context.verified
            assert assistant_texts(session) == ["Verified; back to your card."]
    finally:
        trips.observers[:] = saved


async def test_a_checkpoint_that_cannot_be_restored_does_not_stop_the_call(
    flow: Any, metrics: HandoffMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """Sealed sensitive fields and no sealer to open them: the call starts over."""
    store = MemoryStore()
    await store.save(Checkpoint(call_id="sealed", flow="callcenter", flow_version="1",
                                state="Billing", seq=1, context={"caller_name": "Dana"},
                                sensitive="c2VhbGVk"))
    with caplog.at_level(logging.WARNING, logger="handoff"):
        async with AgentSession[Call]() as session:
            run = await resume_or_start(flow, session, call_id="sealed",
                                        checkpointer=Checkpointer(store, metrics=metrics),
                                        llm=ScriptedLLM([AGENT_SCRIPT[0]]), wait_opening=True)
            assert run.state == "Greeter" and run.context.caller_name is None
    assert "cannot be restored" in caplog.text and "sealed" in caplog.text
    assert metrics.value("handoff_resumes_total", flow="callcenter", outcome="failed") == 1


async def test_resume_from_redis_on_another_worker(flow: Any, metrics: HandoffMetrics,
                                                   redis_server: RedisServer) -> None:
    """Two workers share a Redis: the second picks the call up where the first left it."""
    first = Checkpointer(RedisStore(redis_server.url), metrics=metrics, forget_on=frozenset())
    before = await first_part(flow, first, "room-redis")
    await first.aclose()

    second = Checkpointer(RedisStore(redis_server.url), metrics=metrics)
    async with AgentSession[Call]() as session:
        run = await resume_or_start(flow, session, checkpointer=second, call_id="room-redis",
                                    llm=ScriptedLLM(list(AGENT_SCRIPT[REPLIES_TO_BILLING:])))
        assert run.state == "Billing" and run.context.model_dump() == before
        await session.run(user_input=CALLER[3])
        assert any("refund up to 100.00" in t for t in assistant_texts(session))
    await second.aclose()
