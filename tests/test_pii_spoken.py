"""A sensitive value the caller says before any field holds it stays out of the stores.

The caller reads out a card number; the LLM passes it to a tool that stores it in a
sensitive field. When the caller's line arrived, nothing yet said it was sensitive: the
event log holds a turn's events from the caller's line until the turn ends, then scrubs
them again, and the checkpointer saves the caller's line at the turn's end, never
before its tools ran. Looked for in the raw bytes of both SQLite files (WAL included)
and in the events read back, through a real AgentSession.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession, RunContext
from pydantic import Field

from handoff import Context, Flow, State, function_tool
from handoff.events import EventLog, SQLiteEventStore
from handoff.persistence import Checkpoint, Checkpointer, SQLiteStore
from handoff.sealing import KeyringSealer
from handoff.testing import Reply, ScriptedLLM, Turn, call

CARD = "4111222233334444"
BEFORE_STORING: list[Callable[[], Awaitable[Any]]] = []
"""Awaited by the tool before it stores the card: the test flushes the writers there, so
whatever they were given before the tool ran is in the files, not only still queued."""


class Payer(Context):
    name: str | None = None
    card: str | None = Field(default=None, json_schema_extra={"pii": True})


class Till(State[Payer]):
    """Takes the payment."""

    instructions = "Take the card number the caller reads out."

    @function_tool
    async def store_card(self, ctx: RunContext[Payer], number: str) -> str:
        """Store the card number the caller read out."""
        for wait in BEFORE_STORING:
            await wait()
        ctx.userdata.card = number
        return "The card is stored."


flow = Flow("till", context=Payer, initial=Till, states=[Till])


def policy(turn: Turn) -> Any:
    said = turn.last_user_text
    if said.startswith("my card is ") and not turn.answering_tool:
        # text with the call: LiveKit adds this agent line before the tool has run
        return Reply(text="Let me store that.",
                     calls=(call("store_card", number=said.removeprefix("my card is ")),))
    return "Thank you."


class KeepingStore(SQLiteStore):
    """A SQLite store that also keeps every document it was asked to save: a row
    overwritten in place leaves no bytes behind, but it was at rest meanwhile."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saved: list[str] = []

    async def save(self, checkpoint: Checkpoint) -> bool:
        self.saved.append(checkpoint.to_json())
        return await super().save(checkpoint)


def _raw(directory: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in sorted(directory.iterdir())
                     if p.is_file())


async def test_a_card_number_the_caller_says_is_scrubbed_from_events_and_checkpoints(
    tmp_path: Path,
) -> None:
    call_id = "spoken-1"
    checkpoints, events_store = KeepingStore(tmp_path / "cp.db"), SQLiteEventStore(tmp_path / "ev.db")
    sealer = KeyringSealer([("k1", os.urandom(32))])  # the sensitive fields, encrypted at rest
    checkpointer = Checkpointer(checkpoints, sealer=sealer, forget_on=frozenset())
    events = EventLog(events_store)
    checkpointer.install(flow)
    events.install(flow)
    BEFORE_STORING[:] = [checkpointer.flush, events.flush]
    try:
        async with AgentSession[Payer]() as session:
            run = await flow.start(session, llm=ScriptedLLM(policy), call_id=call_id,
                                   wait_opening=True)
            checkpointer.track(run, call_id)
            events.track(run, call_id)
            await session.run(user_input=f"my card is {CARD}")
            await session.run(user_input="that is all")
            assert run.context.card == CARD
            await events.flush()
            live = [e for e in await events_store.events(call_id) if e.kind == "message"]
            # the caller's line is written once its turn has ended, scrubbed
            assert [e.data["role"] for e in live][:2] == ["assistant", "user"]
            assert live[1].data["text"] == "my card is [redacted]"
        await checkpointer.aclose()
        await events.aclose()
        read_back = "\n".join(json.dumps(e.to_dict()) for e in await events_store.events(call_id))
        assert "[redacted]" in read_back
        assert CARD not in read_back
        raw = _raw(tmp_path)
        assert "that is all" in raw  # the files hold the conversation: the search means something
        assert CARD not in raw
        assert len(checkpoints.saved) >= 2 and not [d for d in checkpoints.saved if CARD in d]
    finally:
        BEFORE_STORING.clear()
        flow.observers[:] = [o for o in flow.observers if o not in (checkpointer, events)]
        await checkpoints.aclose()
        await events_store.aclose()
