"""`make demo`: one caller conversation through the call-centre flow, printed as it happens.

The caller's lines are scripted. The agent side is a real LLM when a tier can reach
one (OPENAI_API_KEY set, or a tier's base_url pointing at an OpenAI-compatible server);
otherwise the deterministic ScriptedLLM plays it, and the first line says so. Either
way the conversation runs through a real LiveKit AgentSession (text mode), real tool
calls and real handoffs.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from handoff.testing import Reply, ScriptedLLM, call

from .._demo import play
from .flow import flow

CALLER = [
    "Hi, this is Dana Reyes. I have a question about a charge on my bill.",
    "Can you just tell me why my bill is so high?",
    "Sure. Account 4411, PIN 1234.",
    "The roaming pass! I never left the country. Refund me 500 for the trouble.",
    "Fine, refund the 45 for the roaming pass then.",
    "Actually, I'd like to talk to a person about my plan itself.",
]

# The agent side, offline: one reply per LLM request, in order.
AGENT_SCRIPT: list[Any] = [
    # Greeter speaks first
    "Thank you for calling Acme Telecom. May I have your name and what you're calling about?",
    call("caller_identified", name="Dana Reyes", topic="a charge on the bill"),
    # Triage enters
    "Thanks, Dana. Before we look at your bill, what is your account number and PIN?",
    call("billing_question"),  # refused: not verified yet
    "I do need to verify your account first. What's your account number and PIN?",
    call("verify_account", account_id="4411", pin="1234"),
    call("billing_question"),
    # Billing enters
    call("list_charges"),
    "I see your monthly plan at 29.00 and a roaming data pass at 45.00 on November 9th. "
    "Which charge is the question about?",
    call("open_refund", amount=500.0, reason="caller disputes the bill"),  # refused: limit
    "I can refund up to 100.00 on this call, so I can refund the 45.00 roaming pass now, "
    "or transfer you to an operator for more. Which would you like?",
    call("open_refund", amount=45.0, reason="roaming pass charged while not roaming"),
    # Wrapup enters
    "Your refund of 45.00 is open, ticket R-9001. Is there anything else I can do?",
    call("escalate_to_human", reason="wants to discuss the plan itself with a person"),
    # Escalation enters
    Reply(
        text="Of course. I'm transferring you to an operator now.",
        calls=(call("transfer_call", agent_id="billing-desk",
                    reason="Dana Reyes, account 4411, refund R-9001 opened; wants to discuss plan"),),
    ),
    "I'm sorry, I can't connect the line from here; an operator will call you back shortly.",
]


def _real_llm_available() -> bool:
    return all(flow.tiers.is_configured(cls.tier) for cls in flow.states.values())


async def main() -> int:
    real = _real_llm_available()
    scripted = None if real else ScriptedLLM(AGENT_SCRIPT)
    if real:
        print("LLM: real models from the tier table "
              f"({', '.join(f'{t}={flow.tiers.describe(t)}' for t in flow.tiers.names())}); "
              "the caller's lines are scripted.")
    else:
        print("LLM: offline — no API key or endpoint is configured, so the agent side is played "
              "by handoff.testing.ScriptedLLM (deterministic). Set OPENAI_API_KEY or a tier "
              "base_url to use a real model.")
    run = await play(flow, CALLER, llm=scripted)
    visited = {flow.initial} | {r.target for r in run.log}
    missing = set(flow.states) - visited
    if missing:
        print(f"states not visited: {sorted(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
