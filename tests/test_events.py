"""The event log: every kind recorded for the call-centre demo, the stores agree, a killed
writer loses only what was not flushed, retention, and pii redacted at the source."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from livekit.agents import AgentSession

from examples.callcenter.demo import AGENT_SCRIPT, CALLER
from examples.callcenter.flow import Call
from handoff import Context
from handoff.events import (
    KINDS,
    Event,
    EventLog,
    EventStore,
    MemoryEventStore,
    RedisEventStore,
    Retention,
    SQLiteEventStore,
    event_store_from_env,
)
from handoff.events.recorder import LATENCY_KEYS
from handoff.redaction import REDACTED
from handoff.testing import ScriptedLLM

from .ops_support import REPO, RedisServer

PII = "ZEBRA-7731"
DEMO_MOVES = [("Greeter", "Triage", "caller_identified", "llm"),
              ("Triage", "Billing", "billing_question", "llm"),
              ("Billing", "Wrapup", "open_refund", "llm"),
              ("Wrapup", "Escalation", "escalate_to_human", "llm")]
"""(source, target, trigger, by) of each transition of the demo call."""


async def demo_call(flow: Any, *logs: EventLog, call_id: str = "call-1",
                    context: Call | None = None, caller: list[str] | None = None) -> None:
    """The demo conversation, recorded by ``logs``, all flushed."""
    async with AgentSession[Call]() as session:
        run = await flow.start(session, context=context, llm=ScriptedLLM(list(AGENT_SCRIPT)),
                               call_id=call_id)
        for log in logs:
            log.track(run, call_id)
        for line in caller or CALLER:
            await session.run(user_input=line)
    for log in logs:
        assert await log.flush(10)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    store = SQLiteEventStore(tmp_path / "events.db")
    yield store
    await store.aclose()


@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[RedisEventStore]:
    store = RedisEventStore(redis_server.url)
    yield store
    await store.aclose()


def shown(event: Event) -> tuple[Any, ...]:
    """What two logs of the same call share (seq, times and the writer are each log's own)."""
    data = {k: v for k, v in event.data.items() if k not in ("duration_ms", "writer")}
    return event.kind, event.state, event.flow, event.flow_version, json.dumps(data, sort_keys=True)


# -- what is recorded ---------------------------------------------------------------------------
async def test_every_kind_of_event_is_written_for_the_callcenter_demo(
        flow: Any, sqlite_store: SQLiteEventStore) -> None:
    log = EventLog(sqlite_store).install(flow)
    await demo_call(flow, log)
    events = await sqlite_store.events("call-1")
    # the demo has no confirm= question: tests/test_approvals.py records approval events
    assert {e.kind for e in events} == set(KINDS) - {"approval"}
    assert [e.seq for e in events] == sorted({e.seq for e in events})  # grows, no repeats
    assert {e.flow_version for e in events} == {flow.version}

    moves = [(e.data["source"], e.data["target"], e.data["trigger"], e.data["by"])
             for e in events if e.kind == "transition"]
    assert moves == DEMO_MOVES
    assert all(e.data["duration_ms"] is not None and e.data["duration_ms"] >= 0
               for e in events if e.kind == "transition")
    refusals = [e for e in events if e.kind == "refusal"]
    assert [(e.state, e.data["trigger"], e.data["kind"]) for e in refusals] == [
        ("Triage", "billing_question", "guard"), ("Billing", "open_refund", "guard")]
    assert "not verified yet" in refusals[0].data["reason"]
    said = [(e.data["role"], e.data["text"]) for e in events if e.kind == "message"]
    # the PIN the caller said is a pii argument of verify_account: scrubbed from the line
    assert [t for r, t in said if r == "user"] == [
        line.replace("PIN 1234", "PIN [redacted]") for line in CALLER]
    assert ("assistant", AGENT_SCRIPT[0]) in said
    tools = {e.data["name"]: e.data for e in events if e.kind == "tool_call"}
    assert tools["verify_account"]["output"] == "Account 4411 verified."
    assert tools["transfer_call"]["is_error"] and not tools["transfer_call"]["transition"]
    errors = [e for e in events if e.kind == "error"]
    assert [e.data["source"] for e in errors] == ["tool transfer_call"]
    steps = [e.data["changed"] for e in events if e.kind == "context"]
    assert {"account_id": [None, "4411"], "verified": [False, True]} in steps
    # the demo backend numbers tickets per process (R-9001, R-9002, …): any of them
    (ticket,) = [step["refund_ticket"] for step in steps if set(step) == {"refund_ticket"}]
    assert ticket[0] is None and ticket[1].startswith("R-")
    latencies = [e.data for e in events if e.kind == "latency"]
    assert latencies and all(d["llm_node_ttft"] >= 0 for d in latencies)
    assert events[0].kind == "call_started" and events[0].data["context"]["refund_limit"] == 100.0
    assert events[-1].kind == "call_ended" and events[-1].data["final"] is True

    summary = await sqlite_store.call("call-1")
    assert summary is not None and summary.ended and summary.state == "Escalation"
    assert summary.events == len(events) and summary.last_seq == events[-1].seq
    assert summary.status(now=time.time() + 3600, stale_after=1) == "ended"
    dot = await sqlite_store.flow_source(flow.name, flow.version)
    assert dot is not None and "Greeter" in dot and "digraph" in dot


async def test_pii_is_redacted_before_an_event_is_queued(flow: Any) -> None:
    store = MemoryEventStore()
    log = EventLog(store).install(flow)
    caller = list(CALLER)
    caller[2] = f"Sure. Account 4411, PIN 1234. My hint is {PII}."
    await demo_call(flow, log, context=Call(pin_hint=PII), caller=caller)
    events = await store.events("call-1")
    assert all(PII not in e.to_json() for e in events)
    assert any(REDACTED in e.data.get("text", "") for e in events if e.kind == "message")
    assert events[0].data["context"]["pin_hint"] == REDACTED


async def test_a_changed_sensitive_field_is_a_context_step_without_its_value(flow: Any) -> None:
    store = MemoryEventStore()
    log = EventLog(store).install(flow)
    async with AgentSession[Call]() as session:
        run = await flow.start(session, llm=ScriptedLLM(["Hello."]), call_id="c")
        log.track(run, "c")
        run.context.pin_hint = PII
        log._context_step(run, log._runs[run])
    await log.flush(5)
    steps = [e.data["changed"] for e in await store.events("c") if e.kind == "context"]
    assert steps == [{"pin_hint": [None, REDACTED]}]


# -- stores --------------------------------------------------------------------------------------
async def test_sqlite_and_redis_give_the_same_events_in_the_same_order(
        flow: Any, sqlite_store: SQLiteEventStore, redis_store: RedisEventStore) -> None:
    to_sqlite = EventLog(sqlite_store).install(flow)
    to_redis = EventLog(redis_store).install(flow)
    await demo_call(flow, to_sqlite, to_redis)
    from_sqlite = await sqlite_store.events("call-1")
    from_redis = await redis_store.events("call-1")
    assert len(from_sqlite) == len(from_redis) > 40
    assert [shown(e) for e in from_sqlite] == [shown(e) for e in from_redis]

    # the same batches appended to both come back identical, summaries included
    batch = [dataclasses.replace(e, call_id="copy") for e in from_sqlite]
    memory = MemoryEventStore()
    stores: list[EventStore] = [sqlite_store, redis_store, memory]
    for store in stores:
        await store.append(batch[:10], writer="w")
        await store.append(batch[10:], writer="w")
    for store in stores:
        assert await store.events("copy") == batch
        assert await store.events("copy", after=batch[20].seq) == batch[21:]
    summaries = [await store.call("copy") for store in stores]
    assert all(s is not None for s in summaries)
    same = {repr(dataclasses.replace(s, seen_at=0.0)) for s in summaries if s is not None}
    assert len(same) == 1 and summaries[0] is not None and summaries[0].ended
    assert summaries[0].events == len(batch) and summaries[0].last_seq == batch[-1].seq
    for store in stores[:2]:  # the two calls end at the same moment: any order
        assert sorted(c.call_id for c in await store.calls()) == ["call-1", "copy"]


def old_call(call_id: str, at: float) -> list[Event]:
    return [Event(call_id, 1, at, "call_started", "Greeter", "callcenter", "1", {}),
            Event(call_id, 2, at + 1, "message", "Greeter", "callcenter", "1",
                  {"role": "user", "text": "hi", "interrupted": False})]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_retention_forgets_old_calls_and_keeps_the_newest(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    retention = Retention(max_age=3600, max_calls=2)
    store: EventStore
    if kind == "memory":
        store = MemoryEventStore(retention)
    elif kind == "sqlite":
        store = SQLiteEventStore(tmp_path / "e.db", retention=retention)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisEventStore(server.url, retention=retention)
    now = time.time()
    for call_id, age in (("ancient", 7200), ("a", 30), ("b", 20), ("c", 10)):
        await store.append(old_call(call_id, now - age))
    assert await store.purge(now) == 2  # too old; beyond the two newest
    assert [c.call_id for c in await store.calls()] == ["c", "b"]
    assert await store.events("ancient") == [] and await store.events("a") == []
    assert len(await store.events("c")) == 2
    await store.aclose()


def test_the_event_store_sits_next_to_the_checkpoints(tmp_path: Path) -> None:
    store = event_store_from_env({"HANDOFF_CHECKPOINT_DIR": str(tmp_path / "cp")})
    assert isinstance(store, SQLiteEventStore) and store.path == tmp_path / "cp" / "events.db"
    store = event_store_from_env({"HANDOFF_CHECKPOINT_STORE": f"sqlite://{tmp_path}/x/cp.db",
                                  "HANDOFF_EVENT_RETENTION_DAYS": "2"})
    assert isinstance(store, SQLiteEventStore) and store.path == tmp_path / "x" / "events.db"
    assert store.retention.max_age == 2 * 24 * 3600
    assert event_store_from_env({}) is None
    assert event_store_from_env({"HANDOFF_CHECKPOINT_DIR": str(tmp_path),
                                 "HANDOFF_EVENT_STORE": "off"}) is None
    with pytest.raises(ValueError, match="sqlite:///"):
        event_store_from_env({"HANDOFF_EVENT_STORE": "postgres://x"})


async def test_a_store_outage_is_retried_off_the_call_path(flow: Any) -> None:
    class Flaky(MemoryEventStore):
        failures = 2

        async def append(self, batch: Any, *, writer: str = "") -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("store down")
            await super().append(batch, writer=writer)

    store = Flaky()
    log = EventLog(store, retry_delay=0.01).install(flow)
    await demo_call(flow, log)
    assert store.failures == 0 and log.dropped == 0
    events = await store.events("call-1")
    assert events[0].kind == "call_started" and events[-1].kind == "call_ended"
    assert log.written == len(events)


# -- a writer killed mid-call ------------------------------------------------------------------------
@pytest.fixture
def call_process(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_killed_writer_loses_only_unflushed_events_and_the_log_says_where_it_ends(
        tmp_path: Path, call_process: list[subprocess.Popen[str]]) -> None:
    db = tmp_path / "events.db"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "events_call.py"), f"sqlite://{db}", "killed",
         "--hold-after", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    call_process.append(proc)
    assert proc.stdout is not None
    lines: list[dict[str, Any]] = []
    for raw in proc.stdout:
        lines.append(json.loads(raw))
        if lines[-1]["kind"] == "done":
            break
    assert lines[-1]["kind"] == "done" and lines[-1]["backlog"] > 0, lines[-3:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    written = [seq for line in lines if line["kind"] == "written" for seq in line["seqs"]]
    store = SQLiteEventStore(db)
    stored = await store.events("killed")
    assert [e.seq for e in stored] == written  # every flushed event, nothing else
    summary = await store.call("killed")
    assert summary is not None and not summary.ended
    assert summary.last_seq == stored[-1].seq and summary.events == len(stored)
    assert summary.status(now=summary.seen_at + 60, stale_after=15) == "stopped"
    assert summary.status(now=summary.seen_at + 1, stale_after=15) == "live"
    await store.aclose()


async def test_reading_after_a_step_gives_the_same_events_from_every_store(
        sqlite_store: SQLiteEventStore, redis_store: RedisEventStore) -> None:
    """A live reader asks for what follows its last event: Redis reads that from the end
    of the stream in chunks; the answer must not depend on where the chunks fall."""
    now = time.time()
    batch = [Event("long", seq, now + seq, "message", "Greeter", "callcenter", "1",
                   {"role": "user", "text": f"line {seq}", "interrupted": False})
             for seq in range(1, 251)]
    memory = MemoryEventStore()
    for store in (sqlite_store, redis_store, memory):
        await store.append(batch)
    for after in (0, 1, 99, 100, 101, 150, 200, 249, 250, 300):
        expected = batch[after:]
        for store in (sqlite_store, redis_store, memory):
            assert await store.events("long", after=after) == expected, (store.kind, after)
    assert await redis_store.events("long", limit=7) == batch[:7]


async def test_a_plain_field_quoting_a_sensitive_value_keeps_the_rest_of_its_text(
        flow: Any) -> None:
    store = MemoryEventStore()
    log = EventLog(store).install(flow)
    async with AgentSession[Call]() as session:
        run = await flow.start(session, context=Call(pin_hint=PII),
                               llm=ScriptedLLM(["Hello."]), call_id="c")
        log.track(run, "c")
        run.context.topic = f"caller read out {PII} twice"
        log._context_step(run, log._runs[run])
    await log.flush(5)
    steps = [e.data["changed"] for e in await store.events("c") if e.kind == "context"]
    assert steps == [{"topic": [None, f"caller read out {REDACTED} twice"]}]


# -- a context step that reads nothing new -----------------------------------------------------------
async def test_a_context_step_skips_the_dump_only_when_the_same_objects_are_there(flow: Any) -> None:
    """The step skips the Context's dump when every field holds the very object it held at
    the last step (immutable scalars) and the sensitive values are the same; any other
    write (a new object, one put straight into ``__dict__`` as a rollback does, a newly
    remembered sensitive value) is read, and its change recorded."""
    from handoff.events.recorder import _built
    from handoff.redaction import Redactor, dump_inputs

    log = EventLog(MemoryEventStore())
    async with AgentSession[Call]() as session:
        run = await flow.start(session, llm=ScriptedLLM(list(AGENT_SCRIPT)), call_id="skip")
        log.track(run, "skip")
        tracked = log._runs[run]

        def step() -> list[dict[str, Any]]:
            before = len(log._queue)
            redactor = Redactor(run.context)
            log._context_step(run, tracked, redactor, redactor.values())
            queued = [_built(raw) for raw in list(log._queue)[before:]]
            return [e.data["changed"] for e in queued if e.kind == "context"]

        assert step() == [] and tracked.read  # read once; nothing changed since the start
        dumps = 0
        real = Redactor.context_dump

        def counting(self: Redactor, values: Any = None) -> Any:
            nonlocal dumps
            dumps += 1
            return real(self, values)

        Redactor.context_dump = counting  # type: ignore[method-assign]
        try:
            assert step() == [] and dumps == 0  # the same objects: not dumped again
            run.context.topic = "billing"
            assert step() == [{"topic": [None, "billing"]}] and dumps == 1
            run.context.__dict__["topic"] = "refund"  # as ChangeJournal.undo writes
            assert step() == [{"topic": ["billing", "refund"]}] and dumps == 2
            run.context.remember_sensitive(["refund"])  # now a sensitive value
            assert step() == [{"topic": ["refund", REDACTED]}] and dumps == 3
        finally:
            Redactor.context_dump = real  # type: ignore[method-assign]

    class Notes(Context):
        notes: list[str] = []
        count: int = 0

    notes = Notes()
    assert dump_inputs(notes, []) == ()  # a list changes in place: always read afresh



async def test_a_closed_calls_record_lets_its_context_go(flow: Any) -> None:
    """The record of a call lives on in its session's listeners (and in whatever holds
    them: a class made in a test keeps its frame's locals); once the call ends it no
    longer holds the Context, whose remembered sensitive values would otherwise stay in
    the process's log scrubbing."""
    log = EventLog(MemoryEventStore())
    async with AgentSession[Call]() as session:
        run = await flow.start(session, llm=ScriptedLLM(list(AGENT_SCRIPT)), call_id="gone")
        log.track(run, "gone")
        tracked = log._runs[run]
        await session.run(user_input=CALLER[0])
        assert tracked.redactor is not None and tracked.redactor.context is run.context
    assert tracked.over and tracked.redactor is None and tracked.read == ()


# -- a full queue ------------------------------------------------------------------------------------
def _dropping_as_one_at_a_time(batches: list[list[int]], max_pending: int
                               ) -> tuple[list[int], int, list[int]]:
    """The queue's rule stated event by event: past ``max_pending`` the oldest goes, and
    a queueing warns of the count of drops when it reached the first or a thousandth."""
    queue: list[int] = []
    dropped, warnings = 0, []
    for batch in batches:
        warn = 0
        for item in batch:
            if len(queue) >= max_pending:
                queue.pop(0)
                dropped += 1
                if dropped == 1 or dropped % 1000 == 0:
                    warn = dropped
            queue.append(item)
        if warn:
            warnings.append(warn)
    return queue, dropped, warnings


@pytest.mark.parametrize(("max_pending", "sizes"), [
    (3, [1, 1, 1]),  # not full yet
    (3, [2, 2, 1, 5]),  # the first drop inside a batch, then a batch larger than the queue
    (1, [1] * 1002),  # one at a time: warned at the first and the thousandth
    (5, [4, 996, 1, 1003, 2]),  # a batch crossing 1000 exactly, one crossing 2000
    (2, [2, 2999]),  # one batch past 1000 and 2000: warned once, of the last thousand
])
async def test_a_full_queue_drops_the_oldest_events_counts_them_and_warns(
        max_pending: int, sizes: list[int], caplog: pytest.LogCaptureFixture) -> None:
    """Queueing a whole batch at once (the events a turn held) drops and warns as queueing
    its events one by one would."""
    log = EventLog(MemoryEventStore(), max_pending=max_pending)  # writes on this loop: not now
    ident = ("full", "callcenter", "1")
    batches, seq = [], 0
    for size in sizes:
        batches.append(list(range(seq + 1, seq + size + 1)))
        seq += size
    caplog.set_level("WARNING", logger="handoff.events")
    for batch in batches:
        log._enqueue([(ident, s, s * 1000, "message", "Greeter", {}) for s in batch])
    kept, dropped, warnings = _dropping_as_one_at_a_time(batches, max_pending)
    assert [raw[1] for raw in log._queue] == kept and log.dropped == dropped
    assert [r.getMessage() for r in caplog.records] == [
        f"event queue full: {n} events dropped so far" for n in warnings]
    await log.aclose()
    assert [e.seq for e in await log.store.events("full")] == kept  # with a gap before them


def test_a_tools_arguments_are_json_data_or_the_text_the_llm_wrote() -> None:
    from handoff.events.recorder import _arguments

    for text in (None, "", "{}", " {} ", '{"day": "2026-12-07", "n": [1, 2]}', "[1]", "3"):
        assert _arguments(text) == json.loads(text or "{}"), text
    assert _arguments("{not json") == "{not json"


@given(st.dictionaries(
    st.sampled_from([*LATENCY_KEYS, "started_speaking_at", "llm_metadata", "playback_latency"]),
    st.one_of(st.floats(allow_nan=False), st.integers(-10**9, 10**9), st.booleans(), st.none(), st.text())))
def test_latency_figures_are_the_numbers_of_livekits_report_in_their_order(
        metrics: dict[str, Any]) -> None:
    from handoff.events.recorder import _latency

    expected = {k: round(float(v), 6) for k in LATENCY_KEYS
                if isinstance(v := metrics.get(k), int | float)}
    assert list(_latency(metrics).items()) == list(expected.items())
