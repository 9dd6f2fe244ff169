"""Checkpoints and stores: the document, the three stores, the background writer."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession, RunContext
from prometheus_client import CollectorRegistry

from examples.callcenter.demo import CALLER
from examples.callcenter.flow import Call
from handoff import Context, Flow, State, transition
from handoff.persistence import (
    Checkpoint,
    Checkpointer,
    CheckpointFormatError,
    CheckpointStore,
    MemoryStore,
    RedisStore,
    SQLiteStore,
)
from handoff.resume import resume_or_start
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM, call

from .ops_support import REPO, RedisServer, demo_call


def make_checkpoint(call_id: str = "call-1", seq: int = 1, state: str = "Billing") -> Checkpoint:
    return Checkpoint(
        call_id=call_id, flow="callcenter", flow_version="1", state=state, seq=seq,
        context={"caller_name": "Dana Reyes", "verified": True},
        sensitive={"pin_hint": "ZEBRA-7731"},
        log=[{"source": "Greeter", "target": "Triage", "trigger": "caller_identified",
              "arguments": {"name": "Dana Reyes"}, "at": 1.0, "by": "llm"}],
        history=[{"role": "user", "text": "hello"}, {"role": "assistant", "text": "hi"}],
        saved_at=time.time(),
    )


# -- the document --------------------------------------------------------------------------
def test_checkpoint_json_round_trip_keeps_everything() -> None:
    cp = make_checkpoint()
    back = Checkpoint.from_json(cp.to_json())
    assert back == cp
    assert json.loads(cp.to_json())["format"] == 1
    assert back.context_data() == {"caller_name": "Dana Reyes", "verified": True,
                                   "pin_hint": "ZEBRA-7731"}
    assert [r.trigger for r in back.records()] == ["caller_identified"]
    assert [(m.role, m.text_content) for m in back.chat_ctx().messages()] == [
        ("user", "hello"), ("assistant", "hi")]


def test_unknown_format_is_refused_with_a_clear_error() -> None:
    data = json.loads(make_checkpoint().to_json())
    data["format"] = 99
    with pytest.raises(CheckpointFormatError, match="format 99 is not supported"):
        Checkpoint.from_json(json.dumps(data))
    with pytest.raises(CheckpointFormatError, match="not JSON"):
        Checkpoint.from_json("{nope")


class XorSealer:
    """A toy sealer for the test (production would use Fernet or a KMS)."""

    def seal(self, data: bytes) -> str:
        return base64.b64encode(bytes(b ^ 0x5A for b in data)).decode()

    def unseal(self, token: str) -> bytes:
        return bytes(b ^ 0x5A for b in base64.b64decode(token))


async def test_snapshot_keeps_sensitive_values_out_of_the_plain_text(
    flow: Any, metrics: HandoffMetrics
) -> None:
    """The PIN hint is restorable, but absent from log and history text, and sealable."""
    store = MemoryStore()
    checkpointer = Checkpointer(store, metrics=metrics, sealer=XorSealer())
    context = Call(pin_hint="ZEBRA-7731")
    script = ScriptedLLM([
        "Hello, who is calling?",
        call("caller_identified", name="Dana", topic="my hint is ZEBRA-7731"),
        "Thanks Dana.",
    ])
    async with AgentSession[Call]() as session:
        await resume_or_start(flow, session, checkpointer=checkpointer, call_id="pii-1",
                              context=context, llm=script, wait_opening=True)
        await session.run(user_input="I'm Dana, my hint is ZEBRA-7731")
        assert await checkpointer.flush(5)
        raw = store._data["pii-1"][2]
        cp = await store.load("pii-1")
    assert "ZEBRA-7731" not in raw
    assert cp is not None and isinstance(cp.sensitive, str)  # sealed
    assert "[redacted]" in json.dumps(cp.log) and "[redacted]" in json.dumps(cp.history)
    with pytest.raises(CheckpointFormatError, match="sealed"):
        cp.context_data()
    assert cp.context_data(XorSealer())["pin_hint"] == "ZEBRA-7731"
    await checkpointer.aclose()


# -- the stores (one contract, three real backends) ------------------------------------------
@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CheckpointStore]:
    if request.param == "memory":
        made: CheckpointStore = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "checkpoints.db")
    else:
        server = RedisServer(tmp_path)
        server.start()
        request.addfinalizer(server.stop)
        made = RedisStore(server.url)
    yield made
    await made.aclose()


async def test_store_write_read_delete(store: CheckpointStore) -> None:
    assert await store.load("call-1") is None
    saved = make_checkpoint(seq=1)
    assert await store.save(saved)
    assert await store.load("call-1") == saved
    assert await store.load("call-2") is None
    await store.delete("call-1")
    assert await store.load("call-1") is None


async def test_store_keeps_the_newest_seq_whatever_the_order(store: CheckpointStore) -> None:
    assert await store.save(make_checkpoint(seq=5, state="Billing"))
    assert not await store.save(make_checkpoint(seq=3, state="Triage"))  # late, older
    assert not await store.save(make_checkpoint(seq=5, state="Greeter"))  # same seq
    assert await store.save(make_checkpoint(seq=6, state="Wrapup"))
    loaded = await store.load("call-1")
    assert loaded is not None and (loaded.seq, loaded.state) == (6, "Wrapup")


class FakeClock:
    """``time.time`` for the stores that keep their own expiry: moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def store_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The memory and SQLite stores read this clock (their module's ``time``) in the test."""
    clock = FakeClock()
    monkeypatch.setattr("handoff.persistence.store.time", clock)
    monkeypatch.setattr("handoff.persistence.sqlite.time", clock)
    return clock


async def test_expired_checkpoints_are_not_resumed(tmp_path: Path, store_clock: FakeClock,
                                                   redis_server: RedisServer) -> None:
    redis_store = RedisStore(redis_server.url, ttl=60.0)
    stores: list[CheckpointStore] = [
        MemoryStore(ttl=60.0), SQLiteStore(tmp_path / "ttl.db", ttl=60.0), redis_store]
    for s in stores:
        assert await s.save(make_checkpoint(seq=1))
        assert await s.load("call-1") is not None
    store_clock.now += 59.0
    for s in stores:
        assert await s.load("call-1") is not None, s.kind
    # redis keeps time itself: the key's expiry is the store's ttl; the test then moves
    # it into the past (PEXPIREAT: a past time expires the key at once), as 60 s would
    key = redis_store.key("call-1")
    assert 0 < await redis_store._client.pttl(key) <= 60_000
    assert await redis_store._client.pexpireat(key, 1)
    store_clock.now += 2.0
    for s in stores:
        assert await s.load("call-1") is None, s.kind
        # a new call on the same id may start over at a low seq once the old one expired
        assert await s.save(make_checkpoint(seq=1, state="Greeter"))
        await s.aclose()


def test_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    asyncio.run(SQLiteStore(path).save(make_checkpoint()))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


WRITER = textwrap.dedent("""
    import asyncio, sys, time
    from handoff.persistence import Checkpoint, SQLiteStore

    async def main(path, name, start):
        store = SQLiteStore(path)
        saved = 0
        for i in range(300):
            for call_id, seq in ((name, i + 1), ("shared", start + 2 * i)):
                cp = Checkpoint(call_id=call_id, flow="callcenter", flow_version="1",
                                state="Billing", seq=seq, context={"n": i, "by": name})
                saved += await store.save(cp)
        await store.aclose()
        print(saved)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
""")


def test_two_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    """Two writer processes, each its own call plus one shared call id, at the same time."""
    path = tmp_path / "shared.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(start)],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, start in (("a", 1), ("b", 2))  # odd and even seqs on the shared call
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    store = SQLiteStore(path)
    a, b, shared = (asyncio.run(store.load(k)) for k in ("a", "b", "shared"))
    assert a is not None and a.seq == 300 and a.context == {"n": 299, "by": "a"}
    assert b is not None and b.seq == 300 and b.context == {"n": 299, "by": "b"}
    # the shared call keeps the highest seq written by either process: b's last (2 + 598)
    assert shared is not None and shared.seq == 600 and shared.context["by"] == "b"
    # each process stored all 300 of its own call plus the shared writes that were newest
    assert all(int(out) >= 300 for out, _ in outputs)


# -- the writer --------------------------------------------------------------------------------
class SlowStore(MemoryStore):
    """A store whose every write takes ``delay`` seconds, and can be switched off."""

    kind = "slow"

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.down = False
        self.saves: list[int] = []

    async def save(self, checkpoint: Checkpoint) -> bool:
        await asyncio.sleep(self.delay)
        if self.down:
            raise ConnectionError("store is down")
        self.saves.append(checkpoint.seq)
        return await super().save(checkpoint)


class GatedStore(MemoryStore):
    """A store whose writes hang until the test opens the gate (a store that stalls)."""

    kind = "gated"

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.saves: list[int] = []

    async def save(self, checkpoint: Checkpoint) -> bool:
        await self.gate.wait()
        self.saves.append(checkpoint.seq)
        return await super().save(checkpoint)


async def test_a_stalled_store_never_holds_the_call(flow: Any, metrics: HandoffMetrics) -> None:
    """No write can finish until the gate opens, and the call goes on regardless."""
    store = GatedStore()
    checkpointer = Checkpointer(store, metrics=metrics)
    async with demo_call(flow, checkpointer, "slow") as (session, run):
        for line in CALLER[:3]:
            await session.run(user_input=line)
        assert run.state == "Billing"  # three turns and two handoffs, no write done
        assert store.saves == [] and checkpointer.backlog >= 1
        assert checkpointer.taken >= 6  # agent lines, turn ends, transitions (not caller lines)

        store.gate.set()
        assert await checkpointer.flush(10)
        # latest wins: the write that was hanging, then only the newest snapshot
        assert len(store.saves) == 2 and store.saves == sorted(store.saves)
        stored = await store.load("slow")
        assert stored is not None and stored.state == "Billing"
        assert stored.context["verified"] is True
    await checkpointer.aclose()


async def test_store_outage_is_counted_and_retried(flow: Any, metrics: HandoffMetrics) -> None:
    store = SlowStore(0.0)
    store.down = True
    checkpointer = Checkpointer(store, metrics=metrics, retry_delay=0.05, max_retry_delay=0.1)
    async with demo_call(flow, checkpointer, "down") as (session, run):
        await session.run(user_input=CALLER[0])
        assert run.state == "Triage"  # the call went on
        assert not await checkpointer.flush(0.3)
        assert metrics.value("handoff_checkpoint_errors_total", store="slow") >= 2
        assert await store.load("down") is None
        store.down = False
        assert await checkpointer.flush(5)
        stored = await store.load("down")
        assert stored is not None and stored.state == "Triage"
        assert stored.context["caller_name"] == "Dana Reyes"
    await checkpointer.aclose()


async def test_queue_is_bounded_and_drops_are_counted(metrics: HandoffMetrics) -> None:
    store = SlowStore(0.05)
    checkpointer = Checkpointer(store, metrics=metrics, max_pending=3)
    for i in range(10):
        checkpointer._enqueue(f"call-{i}", make_checkpoint(call_id=f"call-{i}", seq=1))
    assert len(checkpointer._pending) <= 3
    assert await checkpointer.flush(5)
    written = {cid for cid in (f"call-{i}" for i in range(10)) if await store.load(cid)}
    assert "call-9" in written and len(written) <= 4
    assert metrics.value("handoff_checkpoints_dropped_total", store="slow") == 10 - len(written)
    await checkpointer.aclose()


async def test_redis_restarted_mid_call(flow: Any, metrics: HandoffMetrics,
                                        redis_server: RedisServer) -> None:
    """Redis goes away during a call: writes fail and are counted; when it is back they land."""
    store = RedisStore(redis_server.url, timeout=0.5)
    checkpointer = Checkpointer(store, metrics=metrics, retry_delay=0.05, max_retry_delay=0.2)
    async with demo_call(flow, checkpointer, "room-7") as (session, run):
        await session.run(user_input=CALLER[0])
        assert await checkpointer.flush(5)
        before = await store.load("room-7")
        assert before is not None and before.state == "Triage"
        written = metrics.value("handoff_checkpoint_writes_total", store="redis")

        redis_server.stop()  # a fresh empty server comes back below (no persistence)
        for line in CALLER[1:3]:
            await session.run(user_input=line)
        assert run.state == "Billing"  # the call never noticed
        assert not await checkpointer.flush(0.5)
        assert metrics.value("handoff_checkpoint_errors_total", store="redis") >= 1

        redis_server.start()
        assert await checkpointer.flush(10)
        after = await store.load("room-7")
        assert after is not None and after.state == "Billing"
        assert after.context["account_id"] == "4411" and after.context["verified"] is True
        assert metrics.value("handoff_checkpoint_writes_total", store="redis") > written
    await checkpointer.aclose()


async def test_concurrent_calls_keep_their_own_checkpoints(flow: Any, metrics: HandoffMetrics,
                                                           tmp_path: Path) -> None:
    """Two calls at once on one Checkpointer and one SQLite file: nothing crosses over."""
    store = SQLiteStore(tmp_path / "calls.db")
    checkpointer = Checkpointer(store, metrics=metrics)

    async def one_call(call_id: str, name: str) -> None:
        script = ScriptedLLM([
            "Hello, who is calling?",
            call("caller_identified", name=name, topic=f"{name}'s bill"),
            f"Thanks {name}. Account number and PIN?",
        ])
        async with AgentSession[Call]() as session:
            await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                  llm=script, wait_opening=True)
            await session.run(user_input=f"I am {name}")
            assert await checkpointer.flush(5)
            saved = await store.load(call_id)
            assert saved is not None and saved.state == "Triage"
            assert saved.context["caller_name"] == name
            assert saved.context["topic"] == f"{name}'s bill"
            assert [m["text"] for m in saved.history if m["role"] == "user"] == [f"I am {name}"]

    await asyncio.gather(one_call("call-a", "Ann"), one_call("call-b", "Bob"))
    await checkpointer.aclose()


class Slow(Context):
    note: str | None = None


class BodyGate:
    """Where the slow body stops: ``entered`` once it has written, then it waits for
    ``release`` (made by the test, in its own loop)."""

    entered: asyncio.Event
    release: asyncio.Event


SLOW_BODY = BodyGate()


class Start(State[Slow]):
    """Starts."""

    instructions = "Start."

    @transition(to="End")
    async def slow_move(self, ctx: RunContext[Slow]) -> None:
        """Moves slowly."""
        ctx.userdata.note = "half-made"
        SLOW_BODY.entered.set()
        await SLOW_BODY.release.wait()


class End(State[Slow]):
    """Ends."""

    instructions = "End."


slow_flow = Flow("slow", context=Slow, initial=Start, states=[Start, End], final=[End])


async def test_no_checkpoint_of_a_half_made_transition(metrics: HandoffMetrics) -> None:
    """While a body runs, the Context is ahead of the state: nothing is saved until commit."""
    store = MemoryStore()
    checkpointer = Checkpointer(store, metrics=metrics, forget_on=frozenset())
    try:
        async with AgentSession[Slow]() as session:
            run = await resume_or_start(slow_flow, session, checkpointer=checkpointer,
                                        call_id="slow", llm=ScriptedLLM(["Hi.", "Bye."]),
                                        wait_opening=True)
            SLOW_BODY.entered, SLOW_BODY.release = asyncio.Event(), asyncio.Event()
            move = asyncio.create_task(run.go("slow_move"))
            await asyncio.wait_for(SLOW_BODY.entered.wait(), 10)
            assert run.in_transition and run.context.note == "half-made"
            assert checkpointer.checkpoint(run) is False
            assert await checkpointer.flush(5)
            during = await store.load("slow")
            assert during is not None and during.context["note"] is None
            SLOW_BODY.release.set()
            await move
            assert await checkpointer.flush(5)
            after = await store.load("slow")
            assert after is not None and (after.state, after.context["note"]) == ("End",
                                                                                   "half-made")
    finally:
        slow_flow.observers.clear()
        await checkpointer.aclose()


async def test_a_burst_of_changes_is_one_write(flow: Any) -> None:
    async def writes(coalesce: float) -> float:
        registry_metrics = HandoffMetrics(CollectorRegistry())
        checkpointer = Checkpointer(MemoryStore(), metrics=registry_metrics,
                                    coalesce=coalesce, forget_on=frozenset())
        async with AgentSession[Call]() as session:
            run = await resume_or_start(flow, session, checkpointer=checkpointer,
                                        call_id="burst", llm=ScriptedLLM(["Hello."]),
                                        wait_opening=True)
            assert await checkpointer.flush(5)
            before = registry_metrics.value("handoff_checkpoint_writes_total", store="memory")
            for i in range(5):  # five changes, 10 ms apart
                run.context.topic = f"topic {i}"
                assert checkpointer.checkpoint(run)
                await asyncio.sleep(0.01)
            assert await checkpointer.flush(5)
            stored = await checkpointer.store.load("burst")
            assert stored is not None and stored.context["topic"] == "topic 4"
        await checkpointer.aclose()
        return registry_metrics.value("handoff_checkpoint_writes_total", store="memory") - before

    assert await writes(coalesce=0.5) == 1
    assert await writes(coalesce=0.0) >= 4
