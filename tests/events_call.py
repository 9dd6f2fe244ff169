"""A call-centre call in its own process, writing its event log to a store (for tests).

    python tests/events_call.py STORE_URL CALL_ID [--gate] [--hold-after N] [--pii VALUE]

Runs the demo conversation (scripted caller, ScriptedLLM agent) through a real
AgentSession with an EventLog on ``STORE_URL``, printing JSON lines on stdout:

- ``{"kind": "appending", "seqs": [...]}`` before each batch goes to the store and
  ``{"kind": "written", "seqs": [...]}`` once the store has it;
- ``{"kind": "transition", "target": ..., "at": wall clock}`` at each commit;
- ``{"kind": "done", "backlog": n}`` when the conversation is over; then, with
  ``--hold-after``, it waits to be killed, else it closes the call and exits.

``--gate``: wait for a line on stdin before each caller line (the test paces the call).
``--hold-after N``: the store accepts N batches, then every later write hangs (the
events stay queued, unflushed), so a kill loses exactly those. Until the N batches are
written, each caller line waits for the log to be flushed (or the store to hold), so
"done" always finds N batches written and the rest queued, however fast or slow the
machine is (the first write also draws the flow: on a quiet machine the whole call
used to end before it).
``--pii VALUE``: the Context starts with ``pin_hint=VALUE`` and the caller says it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit.agents import AgentSession

from examples.callcenter.demo import AGENT_SCRIPT, CALLER
from examples.callcenter.flow import Call, flow
from handoff.events import Event, EventLog, EventStore, open_event_store
from handoff.testing import ScriptedLLM

XSS_LINE = "<img src=x onerror=alert(1)>"


_EMITTING = threading.Lock()


def emit(kind: str, **data: Any) -> None:
    """One JSON line, whole, whichever thread prints it (the writer's or the call's)."""
    with _EMITTING:
        sys.stdout.write(json.dumps({"kind": kind, **data}) + "\n")
        sys.stdout.flush()


class Reporting:
    """Wraps a store: says what it appends, and hangs after ``hold_after`` batches.

    The store's writer may append from a thread of its own (the SQLite store's): the
    call's loop learns that the store holds through ``call_soon_threadsafe``."""

    def __init__(self, store: EventStore, hold_after: int | None) -> None:
        self.store = store
        self.hold_after = hold_after
        self.batches = 0
        self.held = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def append(self, batch: Sequence[Event], *, writer: str = "") -> None:
        seqs = [e.seq for e in batch]
        if self.hold_after is not None and self.batches >= self.hold_after:
            emit("holding", seqs=seqs)
            self.loop.call_soon_threadsafe(self.held.set)
            await asyncio.Event().wait()
        emit("appending", seqs=seqs)
        await self.store.append(batch, writer=writer)
        self.batches += 1
        emit("written", seqs=seqs)

    async def pace(self, events: EventLog) -> None:
        """Before the N held-after batches are written, wait until the log is flushed
        (or the store holds): the call never outruns the writer's first batches."""
        if self.hold_after is None or self.batches >= self.hold_after:
            return
        flushed = asyncio.ensure_future(events.flush())
        held = asyncio.ensure_future(self.held.wait())
        await asyncio.wait((flushed, held), return_when=asyncio.FIRST_COMPLETED)
        for waiter in (flushed, held):
            waiter.cancel()


class Announce:
    """A flow observer that prints each commit with its wall-clock time."""

    def on_transition(self, run: Any, record: Any) -> None:
        emit("transition", source=record.source, target=record.target, at=time.time())

    def on_refusal(self, run: Any, refusal: Any) -> None:
        emit("refusal", trigger=refusal.trigger, at=time.time())


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    store = Reporting(open_event_store(args.store), args.hold_after)
    events = EventLog(store, heartbeat=args.heartbeat).install(flow)  # type: ignore[arg-type]
    flow.observers.append(Announce())
    context = Call(pin_hint=args.pii) if args.pii else Call()
    caller = list(CALLER)
    if args.pii:
        caller[2] = f"Sure. Account 4411, PIN 1234. My hint is {args.pii}."
    caller[0] = f"{caller[0]} {XSS_LINE}"
    loop = asyncio.get_running_loop()
    async with AgentSession[Call]() as session:
        run = await flow.start(session, context=context, llm=ScriptedLLM(list(AGENT_SCRIPT)),
                               call_id=args.call_id)
        events.track(run, args.call_id)
        emit("started", state=run.state)
        for line in caller:
            await store.pace(events)
            if args.gate:
                emit("waiting")
                if not await loop.run_in_executor(None, sys.stdin.readline):
                    break
            await session.run(user_input=line)
            emit("state", state=run.state)
        emit("done", backlog=events.backlog)
        if args.hold_after is not None:
            await asyncio.Event().wait()  # unflushed events in the queue: wait to be killed
    await events.aclose()
    emit("closed")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("call_id")
    parser.add_argument("--gate", action="store_true")
    parser.add_argument("--hold-after", type=int, default=None)
    parser.add_argument("--pii", default=None)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    raise SystemExit(asyncio.run(main(parser.parse_args())))
