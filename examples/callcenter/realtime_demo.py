"""`make demo MODE=realtime`: the call-centre call with every state on a speech-to-speech tier.

The same caller and the same agent script as `make demo`, but the agent side is played by
handoff.testing.ScriptedRealtimeModel, offline: LiveKit drives it through its realtime
path (the caller's line is pushed into the model's own chat context, `generate_reply()`
answers with a generation of text and function calls), and each handoff updates the one
live realtime session's instructions, tools and chat context (see docs/realtime.md).
"""

from __future__ import annotations

import asyncio
import sys

from handoff.testing import ScriptedRealtimeModel

from .._demo import play
from .demo import AGENT_SCRIPT, CALLER
from .flow import flow


async def main() -> int:
    model = ScriptedRealtimeModel(list(AGENT_SCRIPT))
    print("LLM: offline — every state runs on a realtime (speech-to-speech) tier played by "
          "handoff.testing.ScriptedRealtimeModel (deterministic, text modality).")
    run = await play(flow, CALLER, llm={"*": model})
    print(f"── realtime sessions opened: {len(model.sessions)} "
          f"(reused across {len(run.log)} handoffs) ──")
    visited = {flow.initial} | {r.target for r in run.log}
    missing = set(flow.states) - visited
    if missing or model.remaining:
        print(f"states not visited: {sorted(missing)}; script left: {model.remaining}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
