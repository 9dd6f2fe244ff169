"""The demo loop the examples share (``make demo``, ``python -m examples.<name>.demo``).

The caller's lines are scripted; the agent side is the LLM given (a ScriptedLLM
offline, so a demo runs with no key and no network) through a real LiveKit
``AgentSession`` in text mode, real tool calls and real handoffs. Each turn is printed
as it happens, then the transitions taken, the refusals and the final Context. With
``HANDOFF_EVENT_STORE`` set, the call is recorded there for ``handoff inspect``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from livekit.agents import RunResult

from handoff import Context, Flow, FlowRun
from handoff.events import Recording
from handoff.realtime import Model
from handoff.testing import ScriptedLLM, settle
from handoff.transcript import TranscriptPrinter


async def play_scripted(flow: Flow[Any], caller: Sequence[str], script: Sequence[Any], *,
                        context: Context | None = None) -> FlowRun[Any]:
    """Play ``caller`` against ``flow`` with the agent side scripted by ``script``."""
    print("LLM: offline — the agent side is played by handoff.testing.ScriptedLLM "
          "(deterministic); the caller's lines are scripted.")
    return await play(flow, caller, llm=ScriptedLLM(list(script)), context=context)


async def play(flow: Flow[Any], caller: Sequence[str], *, llm: Model | Mapping[str, Model] | None,
               context: Context | None = None) -> FlowRun[Any]:
    """Play ``caller`` against ``flow``; ``llm=None`` uses the tiers' real models."""
    logging.basicConfig(level=logging.ERROR)  # LiveKit logs each refused tool call; we print them
    print(f"flow: {flow.name} — states {', '.join(flow.states)}; starts in {flow.initial}\n")
    async with Recording.configured() as recording, flow.session(llm=llm, context=context) as run:
        if (call_id := recording.track(run, flow.name)) is not None:  # HANDOFF_EVENT_STORE set
            print(f"events: call {call_id} in {recording.where} (`handoff inspect` replays it)\n")
        assert run.opening is not None
        printer = TranscriptPrinter(run)
        print(f"[{run.state}]")
        print(*printer.lines(run.opening), sep="\n")
        for line in caller:
            if run.closed:
                break
            print(f"\ncaller: {line}")
            start = len(run.session.history.items)
            result: RunResult[Any] = await run.session.run(user_input=line)
            await settle(run)  # a tool that awaited a LiveKit task may still be finishing
            for said in (*printer.lines(result), *printer.after(run.session.history.items[start:])):
                print(said)
            print(f"[{run.state}]")
        print("\n── transitions taken ──")
        for r in run.log:
            print(f"  {r.source} → {r.target}  ({r.trigger}, by {r.by})")
        print("── refused ──")
        for refusal in run.refusals:
            print(f"  in {refusal.state}: {refusal.reason}")
        print("── final context ──")
        print(json.dumps(run.context.model_dump(mode="json"), indent=2))
    return run
