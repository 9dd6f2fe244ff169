"""A worker process for the crash test: the call-centre conversation over a SQLite store.

    python tests/crash_worker.py DB CALL_ID --stop-in Billing        # then wait, mid-call
    python tests/crash_worker.py DB CALL_ID --replies-used N --from-line K

The first form starts (or resumes) the call and plays the caller's lines until the
flow is in the given state, prints ``REACHED <state> REPLIES <n>`` and then stays
in the call (the session open, doing nothing) until it is killed. The second form
is the new worker: it resumes the call, plays the caller's lines from K on with
the agent script from reply N on, and prints what the agent said, the transitions
and the final context as JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit.agents import AgentSession

from examples.callcenter.demo import AGENT_SCRIPT, CALLER
from examples.callcenter.flow import Call, flow
from handoff.persistence import Checkpointer, SQLiteStore
from handoff.resume import resume_or_start
from handoff.testing import ScriptedLLM


def emit(kind: str, **data: object) -> None:
    print(json.dumps({"kind": kind, **data}), flush=True)


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    checkpointer = Checkpointer(SQLiteStore(args.db))
    script = ScriptedLLM(list(AGENT_SCRIPT[args.replies_used:]))
    async with AgentSession[Call]() as session:
        def on_item(event: object) -> None:
            item = getattr(event, "item", None)
            if getattr(item, "type", None) == "message" and item.role == "assistant":  # type: ignore[union-attr]
                emit("agent", text=item.text_content)  # type: ignore[union-attr]

        session.on("conversation_item_added", on_item)
        run = await resume_or_start(flow, session, checkpointer=checkpointer,
                                    call_id=args.call_id, llm=script,
                                    wait_opening=args.from_line == 0)
        emit("started", state=run.state, resumed=run.resuming)
        for line in CALLER[args.from_line:]:
            emit("caller", text=line)
            await session.run(user_input=line)
            emit("state", state=run.state)
            if args.stop_in and run.state == args.stop_in:
                emit("reached", state=run.state, replies=args.replies_used + len(script.turns),
                     next_line=CALLER.index(line) + 1)
                await asyncio.Event().wait()  # mid-call: wait to be killed
        emit("log", transitions=[[r.source, r.target, r.trigger] for r in run.log])
        emit("context", context=run.context.model_dump())
        await checkpointer.flush(5)
    await checkpointer.aclose()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("call_id")
    parser.add_argument("--stop-in", default=None)
    parser.add_argument("--replies-used", type=int, default=0)
    parser.add_argument("--from-line", type=int, default=0)
    raise SystemExit(asyncio.run(main(parser.parse_args())))
