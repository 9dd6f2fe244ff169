"""The writers' own thread: with a store that works from any thread (SQLite), checkpoints and
events are written there, never on the call's event loop; a stalled or failing store holds
that thread only; ``flush`` is answered from it; a stopped writer starts no thread again."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession

from examples.callcenter.demo import AGENT_SCRIPT, CALLER
from examples.callcenter.flow import Call
from handoff.background import _writer_thread, off_loop
from handoff.events import Event, EventLog, SQLiteEventStore, recorder
from handoff.persistence import Checkpoint, Checkpointer, MemoryStore, SQLiteStore
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM

from .ops_support import demo_call


class WatchedStore(SQLiteStore):
    """A SQLite store that says which threads wrote, fails while ``down`` and blocks on ``gate``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: set[str] = set()
        self.down = False
        self.gate = threading.Event()
        self.gate.set()

    def _save(self, checkpoint: Checkpoint) -> bool:
        self.threads.add(threading.current_thread().name)
        self.gate.wait(10)
        if self.down:
            raise ConnectionError("store down")
        return super()._save(checkpoint)


def _writer_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


async def test_checkpoints_are_written_from_the_writers_thread_not_the_loop(
        flow: Any, metrics: HandoffMetrics, tmp_path: Path) -> None:
    store = WatchedStore(tmp_path / "cp.db")
    checkpointer = Checkpointer(store, metrics=metrics)
    assert checkpointer.threaded and not Checkpointer(MemoryStore()).threaded
    async with demo_call(flow, checkpointer, "threaded") as (session, run):
        for line in CALLER[:3]:
            await session.run(user_input=line)
        assert await checkpointer.flush(10)
        stored = await store.load("threaded")
        assert stored is not None and stored.state == run.state == "Billing"
    assert await checkpointer.flush(10)
    assert store.threads == {"handoff.checkpoint_writer"}  # no write on the loop's thread
    assert threading.current_thread().name not in store.threads
    await checkpointer.aclose()
    assert not _writer_threads("handoff.checkpoint_writer")  # stopped and joined


async def test_a_stalled_then_failing_store_holds_only_the_writers_thread(
        flow: Any, metrics: HandoffMetrics, tmp_path: Path) -> None:
    store = WatchedStore(tmp_path / "cp.db")
    store.gate.clear()
    checkpointer = Checkpointer(store, metrics=metrics, retry_delay=0.05, max_retry_delay=0.1)
    async with demo_call(flow, checkpointer, "stalled") as (session, run):
        for line in CALLER[:3]:
            await session.run(user_input=line)
        assert run.state == "Billing"  # three turns, two handoffs, the writer blocked
        assert not await checkpointer.flush(0.1) and checkpointer.backlog >= 1
        store.down = True
        store.gate.set()
        assert not await checkpointer.flush(0.3)
        assert metrics.value("handoff_checkpoint_errors_total", store="sqlite") >= 2
        store.down = False
        assert await checkpointer.flush(10)
        stored = await store.load("stalled")
        assert stored is not None and stored.state == "Billing" and stored.context["verified"]
    await checkpointer.aclose()


async def test_a_stopped_writer_starts_no_thread_and_leaves_the_work_queued(
        metrics: HandoffMetrics, tmp_path: Path) -> None:
    store = WatchedStore(tmp_path / "cp.db")
    checkpointer = Checkpointer(store, metrics=metrics)
    cp = Checkpoint(call_id="late", flow="f", flow_version="1", state="A", seq=1, context={},
                    sensitive={}, log=[], history=[], saved_at=0.0)
    checkpointer._enqueue("late", cp)
    assert await checkpointer.flush(10) and await store.load("late") is not None
    await checkpointer.aclose()
    checkpointer._enqueue("later", cp)  # a session closing after the writer was closed
    assert checkpointer.backlog == 1 and not _writer_threads("handoff.checkpoint_writer")
    assert not await checkpointer.flush(0.05)


class WatchedEvents(SQLiteEventStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: set[str] = set()

    def _append(self, batch: Sequence[Event], writer: str) -> None:
        self.threads.add(threading.current_thread().name)
        super()._append(batch, writer)


async def test_events_are_written_from_the_writers_thread_in_order(
        flow: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The call's loop queues each event as a tuple: the writer's thread makes the Event,
    scrubs a turn's held events with the values known at its end, encodes and writes them."""
    made_in: list[str] = []
    scrubbed_in: list[str] = []
    scrub_value = recorder.scrub_value

    def event(*fields: Any) -> Event:
        made_in.append(threading.current_thread().name)
        return Event(*fields)

    def scrub_at_turn_end(value: Any, pattern: Any) -> Any:
        scrubbed_in.append(threading.current_thread().name)
        return scrub_value(value, pattern)

    monkeypatch.setattr(recorder, "Event", event)
    monkeypatch.setattr(recorder, "scrub_value", scrub_at_turn_end)
    store = WatchedEvents(tmp_path / "events.db")
    log = EventLog(store).install(flow)
    async with AgentSession[Call]() as session:
        run = await flow.start(session, llm=ScriptedLLM(list(AGENT_SCRIPT)), call_id="ev")
        log.track(run, "ev")
        for line in CALLER:
            await session.run(user_input=line)
    assert await log.flush(10)
    events = await store.events("ev")
    assert events[0].kind == "call_started" and events[-1].kind == "call_ended"
    assert [e.seq for e in events] == sorted(e.seq for e in events) and log.written == len(events)
    assert store.threads == {"handoff.event_writer"}
    assert set(made_in) == {"handoff.event_writer"} and len(made_in) == len(events)
    # the caller's PIN, a pii argument, is known from its turn on: held events scrubbed there
    assert set(scrubbed_in) == {"handoff.event_writer"}
    said = [e.data["text"] for e in events if e.kind == "message" and e.data["role"] == "user"]
    assert any("PIN [redacted]" in text for text in said)
    assert not any("PIN 1234" in json.dumps(e.data) for e in events)
    assert await store.flow_source("callcenter", flow.version)  # drawn there too
    await log.aclose()


async def test_off_loop_blocks_only_in_a_writers_thread() -> None:
    loop_thread = threading.current_thread().name
    assert await off_loop(lambda: threading.current_thread().name) != loop_thread

    def in_writer() -> tuple[str, str]:
        _writer_thread.inline = True  # what a writer's own thread sets
        try:
            return (threading.current_thread().name,
                    asyncio.run(off_loop(lambda: threading.current_thread().name)))
        finally:
            _writer_thread.inline = False

    asking, ran = await asyncio.to_thread(in_writer)
    assert ran == asking  # inline, in the thread that asked
