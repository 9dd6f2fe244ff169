"""A worker process for the flow-version tests: one version of the test call centre.

    python tests/versions_worker.py write tests.versioned.callcenter_v1 STORE CALL=STATE...
    python tests/versions_worker.py resume tests.versioned.callcenter_v2[:ATTR] STORE CALL... \\
        [--line TEXT] [--call NAME --args JSON]

``write`` plays each call until it is in the given state, waits for its checkpoint
to be written and prints ``{"kind": "written", ...}``; then the process dies with
every call open (``os._exit``: no session closes, as when a worker is killed). ``resume`` is the
worker of the next deploy: it resumes each call with its own flow version, prints how
(``{"kind": "resumed", "call_id", "outcome", "state", "context", ...}``), then plays
one caller line (the agent calls NAME with ARGS if given, then speaks) and prints
where the call went (``{"kind": "after", ...}``). STORE is ``sqlite:///path`` or ``redis://...``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit.agents import AgentSession
from prometheus_client import CollectorRegistry

from handoff.events import EventLog, MemoryEventStore
from handoff.persistence import Checkpointer, store_from_url
from handoff.records import Resumption
from handoff.resume import resume_or_start
from handoff.sealing import KeyringSealer
from handoff.secrets import SecretChain
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM, call

CALLER = ["Hi, I'm Dana.", "Account 4411, PIN 1234.", "Refund the 45 please."]
V1_SCRIPT: list[Any] = [
    "Hello, who's calling?",
    call("caller_identified", name="Dana"),
    "Thanks Dana. Your account number and PIN?",
    call("verify_account", account_id="4411", pin="1234"),
    call("billing_question"),
    "I see a roaming charge of 45. Shall I refund it?",
    call("open_refund", amount=45.0),
    "Refund R-4500 is open. Anything else?",
]
"""The agent side of v1 for CALLER: one reply per LLM request."""


def emit(kind: str, **data: Any) -> None:
    print(json.dumps({"kind": kind, **data}, default=str), flush=True)


class ResumeWatch:
    """A flow observer that reports the resumption (what an event log would record)."""

    def __init__(self) -> None:
        self.seen: list[Resumption] = []

    def on_transition(self, run: Any, record: Any) -> None:
        pass

    def on_refusal(self, run: Any, refusal: Any) -> None:
        pass

    def on_resume(self, run: Any, resumption: Resumption) -> None:
        self.seen.append(resumption)


async def write(flow: Any, checkpointer: Checkpointer, call_id: str, until: str,
                sessions: list[AgentSession[Any]]) -> None:
    script = ScriptedLLM(list(V1_SCRIPT))
    session = AgentSession[Any]()
    sessions.append(session)  # kept open: the worker dies mid-call
    run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                llm=script, wait_opening=True)
    for line in CALLER:
        if run.state == until:
            break
        await session.run(user_input=line)
    if run.state != until:
        raise SystemExit(f"the call never reached {until} (it is in {run.state})")
    checkpointer.checkpoint(run)
    assert await checkpointer.flush(10), "the checkpoint was not written"
    emit("written", call_id=call_id, state=run.state, version=flow.version,
         context=run.context.model_dump(mode="json"))


async def resume(flow: Any, checkpointer: Checkpointer, call_id: str,
                 args: argparse.Namespace) -> None:
    watch = ResumeWatch()
    flow.observers[:] = [o for o in flow.observers if not isinstance(o, ResumeWatch)]
    flow.observers.append(watch)
    replies: list[Any] = []
    if args.call:
        replies.append(call(args.call, **json.loads(args.args or "{}")))
    replies.append("Certainly.")
    script = ScriptedLLM(replies)
    event_store = MemoryEventStore()
    event_log = EventLog(event_store).install(flow)
    async with AgentSession[Any]() as session:
        run = await resume_or_start(flow, session, checkpointer=checkpointer, call_id=call_id,
                                    llm=script)
        event_log.track(run, call_id)
        await event_log.flush(10)
        started = (await event_store.events(call_id))[0]
        seen = watch.seen[0] if watch.seen else None
        emit("resumed", call_id=call_id, state=run.state, version=flow.version,
             outcome=seen.outcome if seen else None,
             migrations=list(seen.migrations) if seen else [],
             error=seen.error if seen else None,
             resumes={o: checkpointer.metrics.value("handoff_resumes_total", flow=flow.name,
                                                    outcome=o)
                      for o in ("resumed", "migrated", "fallback", "migration_failed")},
             context=run.context.model_dump(mode="json"), agent=session.current_agent.id,
             event={"kind": started.kind, "flow_version": started.flow_version,
                    "resumption": started.data.get("resumption")})
        if args.line:
            await session.run(user_input=args.line)
            emit("after", call_id=call_id, state=run.state, asked_by=[t.state for t in script.turns],
                 context=run.context.model_dump(mode="json"))
        checkpointer.checkpoint(run)
        await checkpointer.flush(10)
    await event_log.aclose()
    flow.observers.remove(event_log)


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    module, _, attr = args.module.partition(":")
    flow = getattr(importlib.import_module(module), attr or "flow")
    metrics = HandoffMetrics(CollectorRegistry())
    # sealed as the worker seals: with HANDOFF_SEAL_KEYS from the secrets chain, when set
    checkpointer = Checkpointer(store_from_url(args.store), metrics=metrics,
                                forget_on=frozenset(),
                                sealer=KeyringSealer.from_secrets(SecretChain.from_env()))
    if args.mode == "write":
        sessions: list[AgentSession[Any]] = []
        for spec in args.calls:
            call_id, _, until = spec.partition("=")
            await write(flow, checkpointer, call_id, until, sessions)
        os._exit(0)  # the worker dies mid-call: no close, the checkpoints stay
    for call_id in args.calls:
        await resume(flow, checkpointer, call_id, args)
    await checkpointer.aclose()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["write", "resume"])
    parser.add_argument("module")
    parser.add_argument("store")
    parser.add_argument("calls", nargs="+", help="write: CALL=STATE...; resume: CALL...")
    parser.add_argument("--line", default=None)
    parser.add_argument("--call", default=None)
    parser.add_argument("--args", default=None)
    raise SystemExit(asyncio.run(main(parser.parse_args())))
