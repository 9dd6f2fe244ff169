"""Checkpoints under attack: poison documents, malformed stores, ended calls, NaN.

Each case goes through a real AgentSession, and a real SQLite file or redis-server.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession

from handoff.persistence import (
    Checkpoint,
    Checkpointer,
    CheckpointFormatError,
    CheckpointStore,
    RedisStore,
    SQLiteStore,
)
from handoff.resume import resume_or_start
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM, call

from .ops_support import RedisServer
from .small_flows import Ticket
from .small_flows import flow as tickets


@pytest.fixture
def flow() -> Iterator[Any]:
    """The small tickets flow, with its observers restored after the test."""
    saved = list(tickets.observers)
    try:
        yield tickets
    finally:
        tickets.observers[:] = saved


def _store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> CheckpointStore:
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "calls.db")
    server: RedisServer = request.getfixturevalue("redis_server")
    return RedisStore(server.url)


async def _named(flow: Any, checkpointer: Checkpointer, call_id: str, name: str,
                 *, then: list[Any] | None = None) -> Any:
    """A call that hears its caller's name (the Front → Back move); returns the run."""
    llm = ScriptedLLM(["Hello?", call("named", name=name), "Hi.", *(then or [])])
    async with AgentSession[Ticket]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                    llm=llm, wait_opening=True)
        await session.run(user_input="my name")
        for _ in range(len(then or []) // 2):
            await session.run(user_input="next")
        assert await checkpointer.flush(10)
    return run


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_a_lone_surrogate_is_stored_and_does_not_hold_other_calls(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path, request: pytest.FixtureRequest,
    kind: str,
) -> None:
    """The LLM sent "\\ud800" (valid JSON): the checkpoint is still written, whole, at
    once, and the other call's checkpoint too: no error, no retry, no backoff."""
    checkpointer = Checkpointer(_store(kind, tmp_path, request), metrics=metrics,
                                forget_on=frozenset())
    odd = "Bo\ud800b"
    await _named(flow, checkpointer, "poison", odd)
    await _named(flow, checkpointer, "other", "Ann")
    assert metrics.value("handoff_checkpoint_errors_total", store=kind) == 0
    poison = await checkpointer.store.load("poison")
    assert poison is not None and poison.context["name"] == odd
    assert (await checkpointer.store.load("other")).context["name"] == "Ann"  # type: ignore[union-attr]
    # and it resumes with the value it had
    async with AgentSession[Ticket]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id="poison",
                                    llm=ScriptedLLM(["Yes?"]))
        assert run.state == "Back" and run.context.name == odd
    await checkpointer.aclose()


def test_stored_text_is_strict_json_whatever_the_numbers() -> None:
    """A logged argument that is not finite is stored as a string, never as bare NaN."""
    cp = Checkpoint(call_id="n", flow="tickets", flow_version="1", state="Back", seq=1,
                    context={}, log=[{"source": "Back", "target": "Done", "trigger": "finish",
                                      "arguments": {"amount": math.nan, "cap": -math.inf},
                                      "at": 1.0, "by": "code"}])
    text = cp.to_json()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in {text}"))
    assert data["log"][0]["arguments"] == {"amount": "NaN", "cap": "-Infinity"}
    assert Checkpoint.from_json(text).log[0]["arguments"]["amount"] == "NaN"


async def test_nan_never_enters_the_context(flow: Any) -> None:
    """NaN passes every `<`/`>` check a body could make; the Context refuses it like
    any wrong value, so the move is refused and rolled back."""
    llm = ScriptedLLM(["Hello?", call("named", name="Bo"), "Hi.", call("verify", code="42"),
                       "Verified.", call("finish", amount=math.nan), "Not finished."])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="Bo")
        await run.session.run(user_input="code 42")
        await run.session.run(user_input="finish")
        assert run.state == "Back" and run.context.amount == 0.0
        assert run.refusals[-1].kind == "error" and "finite" in run.refusals[-1].reason
    with pytest.raises(ValueError, match="finite"):
        Ticket(amount=math.inf)


GOOD = {"format": 1, "call_id": "bad", "flow": {"name": "tickets", "version": "1"},
        "state": "Back", "seq": 5, "saved_at": 1.0, "context": {"name": "Old"},
        "sensitive": {}, "return_stack": [], "log": [], "history": []}
MALFORMED = {
    "history text not a string": {**GOOD, "history": [{"role": "user", "text": 5}]},
    "history not a list": {**GOOD, "history": "hello"},
    "history role unknown": {**GOOD, "history": [{"role": "system", "text": "x"}]},
    "log entry without target": {**GOOD, "log": [{"source": "Front", "trigger": "named",
                                                  "at": 1.0}]},
    "return stack of numbers": {**GOOD, "return_stack": [1]},
    "context a list": {**GOOD, "context": ["Old"]},
    "seq a string": {**GOOD, "seq": "5"},
    "no state": {k: v for k, v in GOOD.items() if k != "state"},
}


@pytest.mark.parametrize("defect", sorted(MALFORMED))
async def test_a_malformed_checkpoint_starts_the_call_fresh(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path, defect: str
) -> None:
    """Validated whole before the session is attached: the call starts fresh and works."""
    store = SQLiteStore(tmp_path / "calls.db")
    await store.save(Checkpoint.from_json(json.dumps(GOOD)))  # makes the table
    with sqlite3.connect(tmp_path / "calls.db") as db:
        db.execute("UPDATE handoff_checkpoints SET data = ? WHERE call_id = 'bad'",
                   (json.dumps(MALFORMED[defect]),))
    checkpointer = Checkpointer(store, metrics=metrics, forget_on=frozenset())
    llm = ScriptedLLM(["Hello, who is calling?", call("named", name="New"), "Hi New."])
    async with AgentSession[Ticket]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id="bad",
                                    llm=llm, wait_opening=True)
        assert run.state == "Front" and not run.resuming and run.context.name is None
        await session.run(user_input="I'm New")
        assert run.state == "Back" and run.context.name == "New"
    await checkpointer.aclose()


async def test_a_bare_nan_in_a_stored_document_is_malformed() -> None:
    text = json.dumps({**GOOD, "context": {"amount": math.nan}})
    with pytest.raises(CheckpointFormatError, match="NaN"):
        Checkpoint.from_json(text)


async def _hang_up(flow: Any, checkpointer: Checkpointer, call_id: str, name: str) -> Any:
    """A call that gives its name and hangs up (reaches the final state Done)."""
    return await _named(flow, checkpointer, call_id, name,
                        then=[call("hang_up"), "Goodbye."])


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_a_new_call_on_an_ended_calls_id_never_resumes_it(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path, request: pytest.FixtureRequest,
    kind: str,
) -> None:
    store = _store(kind, tmp_path, request)
    checkpointer = Checkpointer(store, metrics=metrics)
    ended = await _hang_up(flow, checkpointer, "room-1", "Previous Caller")
    assert ended.is_final()
    # the session closed a moment ago: its end may still be queued in this process
    llm = ScriptedLLM(["Hello, who is calling?"])
    async with AgentSession[Ticket]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer,
                                    call_id="room-1", llm=llm, wait_opening=True)
        assert run.state == "Front" and run.context.name is None and not run.resuming
    # another worker, once the end of a call is written: fresh too, nothing of it is kept
    await _hang_up(flow, checkpointer, "room-3", "Previous Caller")
    assert await checkpointer.flush(10)
    other = Checkpointer(_store(kind, tmp_path, request), metrics=metrics)
    tomb = await other.load("room-3")
    assert tomb is not None and tomb.ended and tomb.context == {} and tomb.history == []
    # a late write of the ended call (an older seq) can never bring it back
    late = Checkpoint(call_id="room-3", flow="tickets", flow_version="1", state="Back",
                      seq=tomb.seq - 1, context={"name": "Previous Caller"})
    assert not await store.save(late)
    async with AgentSession[Ticket]() as session:
        run = await resume_or_start(flow, session, checkpointer=other, call_id="room-3",
                                    llm=ScriptedLLM(["Hello?"]), wait_opening=True)
        assert run.state == "Front" and run.context.name is None
    await checkpointer.aclose()
    await other.aclose()


async def test_a_new_call_after_an_ended_one_is_checkpointed_whatever_the_clocks(
    flow: Any, metrics: HandoffMetrics, tmp_path: Path
) -> None:
    """The end was written by a worker whose clock runs ahead: the new call's
    checkpoints still land (its seqs start above the tombstone's)."""
    store = SQLiteStore(tmp_path / "calls.db")
    far = 2**62
    await store.save(Checkpoint.tombstone("room-2", "tickets", "1", far))
    checkpointer = Checkpointer(store, metrics=metrics, forget_on=frozenset())
    await _named(flow, checkpointer, "room-2", "Cleo")
    saved = await store.load("room-2")
    assert saved is not None and not saved.ended and saved.context["name"] == "Cleo"
    assert saved.seq > far
    await checkpointer.aclose()
