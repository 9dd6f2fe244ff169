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


class CountingLoop(asyncio.SelectorEventLoop):
    """An event loop that counts the timers armed on it (``call_later`` goes through
    ``call_at``)."""

    def __init__(self) -> None:
        super().__init__()
        self.timers = 0

    def call_at(self, when: float, callback: Any, *args: Any,
                context: Any = None) -> asyncio.TimerHandle:
        self.timers += 1
        return super().call_at(when, callback, *args, context=context)


class HeldCoalesce(threading.Event):
    """A writer's ``_stopping`` whose wait of ``coalesce`` seconds (the thread letting a
    burst arrive) says it began and lasts until the test releases it: no clock involved."""

    def __init__(self, coalesce: float) -> None:
        super().__init__()
        self.coalesce = coalesce
        self.waiting = threading.Event()
        self.release = threading.Event()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if timeout == self.coalesce:
            self.waiting.set()
            self.release.wait(10)
            return self.is_set()
        return super().wait(timeout)


def _cp(call_id: str, seq: int) -> Checkpoint:
    return Checkpoint(call_id=call_id, flow="f", flow_version="1", state=f"S{seq}", seq=seq,
                      context={}, sensitive={}, log=[], history=[], saved_at=0.0)


def test_a_burst_reaches_the_writers_thread_with_no_timer_on_the_loop(
        metrics: HandoffMetrics, tmp_path: Path) -> None:
    store = WatchedStore(tmp_path / "cp.db")
    checkpointer = Checkpointer(store, metrics=metrics, coalesce=0.05)
    held = checkpointer._stopping = HeldCoalesce(0.05)

    async def burst() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, CountingLoop)
        checkpointer._enqueue("burst", _cp("burst", 1))  # the burst's first: a kick
        assert loop.timers == 0
        await asyncio.to_thread(held.waiting.wait, 10)  # the thread waits out the burst
        checkpointer._enqueue("burst", _cp("burst", 2))
        checkpointer._enqueue("other", _cp("other", 1))
        checkpointer._enqueue("burst", _cp("burst", 3))
        assert loop.timers == 0 and checkpointer._kicks.qsize() == 0  # no second kick
        assert not store.threads  # nothing taken yet
        held.release.set()
        assert await checkpointer.flush(10)
        stored = await store.load("burst")
        assert stored is not None and stored.seq == 3
        assert held.waits.count(0.05) == 1  # one burst, one wait
        assert metrics.value("handoff_checkpoint_writes_total", store="sqlite") == 2
        await checkpointer.aclose()

    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        runner.run(burst())
    assert not _writer_threads("handoff.checkpoint_writer")


async def test_a_writer_stopped_while_its_thread_waits_out_a_burst_writes_nothing(
        metrics: HandoffMetrics, tmp_path: Path) -> None:
    store = WatchedStore(tmp_path / "cp.db")
    checkpointer = Checkpointer(store, metrics=metrics, coalesce=0.05)
    held = checkpointer._stopping = HeldCoalesce(0.05)
    checkpointer._enqueue("late", _cp("late", 1))
    await asyncio.to_thread(held.waiting.wait, 10)
    stopping = asyncio.ensure_future(checkpointer._stop())
    await asyncio.sleep(0)  # it runs up to joining the thread
    assert held.is_set()
    held.release.set()
    await stopping
    assert not _writer_threads("handoff.checkpoint_writer") and not store.threads
    assert checkpointer.backlog == 1  # queued, unwritten: the store may be gone
    checkpointer._enqueue("later", _cp("later", 1))
    assert not _writer_threads("handoff.checkpoint_writer")


async def test_an_idle_writers_thread_ends_and_the_next_burst_starts_another(
        metrics: HandoffMetrics, tmp_path: Path) -> None:
    store = WatchedStore(tmp_path / "cp.db")
    checkpointer = Checkpointer(store, metrics=metrics, coalesce=0.0)
    checkpointer.idle_exit = 0.01
    checkpointer._enqueue("a", _cp("a", 1))
    assert await checkpointer.flush(10)
    first = checkpointer._thread
    assert first is not None
    await asyncio.to_thread(first.join, 10)
    assert not first.is_alive() and checkpointer._thread is None
    checkpointer._enqueue("b", _cp("b", 1))
    assert await checkpointer.flush(10)
    assert await store.load("a") is not None and await store.load("b") is not None
    await checkpointer.aclose()
