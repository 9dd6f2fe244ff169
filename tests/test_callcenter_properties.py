"""The call centre tested with handoff.testing — the pattern docs/testing.md teaches.

``HYPOTHESIS_PROFILE=ci`` (``make test``) runs thousands of generated conversations
through real AgentSessions; the default ``handoff-dev`` profile runs a few dozen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.callcenter import Call, flow
from handoff.testing import (
    Attempt,
    FlowDriver,
    FlowPath,
    FlowStateMachine,
    ToolCall,
    checking,
    contexts,
    load_profile,
    transition_cover,
    walks,
)
from handoff.testing.paths import SearchHints

load_profile()  # HYPOTHESIS_PROFILE selects it; before .TestCase reads the settings
logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)

# What must hold whenever the call enters a state (DESIGN §2 comes for free).
ENTRY = {
    "Billing": lambda c: c.verified,
    "Wrapup": lambda c: c.refund_ticket is not None,
    "Escalation": lambda c: c.escalation_reason is not None,
}
# The LLM also calls the real verify_account tool, with accounts the backend knows.
TOOLS = {
    "verify_account": {"account_id": st.sampled_from(["4411", "5522", "0"]),
                       "pin": st.sampled_from(["1234", "0000", "9"])},
    "list_charges": {},
}

# 1. the FSM alone: fast, thousands of walks
TestCallcenterModel = FlowStateMachine(flow, entry_conditions=ENTRY).TestCase

# 2. whole conversations through a real AgentSession with a scripted LLM: tool calls,
#    parallel calls, interruptions, code moves, ordinary tools
TestCallcenterConversations = FlowStateMachine(
    flow, mode="session", entry_conditions=ENTRY, tools=TOOLS
).TestCase


# 3. a plain @given property: generated callers' walks played as LLM tool calls
@given(contexts(flow, refund_limit=st.floats(0, 500)), walks(flow, max_len=6))
def test_generated_conversations_follow_the_table(context: Call, walk: list[Attempt]) -> None:
    asyncio.run(_converse(context, walk))


async def _converse(context: Call, walk: list[Attempt]) -> None:
    async with FlowDriver(flow, context=context) as driver:
        run = driver.run
        for attempt in walk:
            with checking(run, attempt, by_llm=True):
                await driver.turn(ToolCall(attempt.trigger, attempt.arguments))
            assert run.state == run.session.current_agent.id


# 4. every transition of the table, each by a path found for it, through a real session
COVER_HINTS: SearchHints = {
    "arguments": {"caller_identified": {"name": "Dana Reyes", "topic": "a charge"},
                  "open_refund": {"amount": 45.0, "reason": "roaming pass"},
                  "escalate_to_human": {"reason": "asks for a person"}},
    "setup": {"billing_question": {"verified": True, "account_id": "4411"}},
}
COVER = transition_cover(flow, **COVER_HINTS).require_complete()


async def take_by_the_llm(driver: FlowDriver[Any], path: FlowPath) -> None:
    """Take ``path`` as the LLM's tool calls, checking each step's target."""
    for step, tool_call in zip(path.steps, path.tool_calls(), strict=True):
        for key, value in step.setup.items():  # what verify_account would have set
            setattr(driver.run.context, key, value)
        await driver.turn(tool_call)
        assert driver.run.state == step.target
        assert driver.run.state == driver.run.session.current_agent.id
    assert [(r.source, r.trigger) for r in driver.run.log] == path.transitions
    assert all(r.by == "llm" for r in driver.run.log)


@pytest.mark.parametrize("path", COVER, ids=str)
async def test_every_transition_by_the_llm(path: FlowPath) -> None:
    async with FlowDriver(flow) as driver:
        await take_by_the_llm(driver, path)


# 5. each guard seen both ways, deterministically (the coverage gate does not hang on luck)
async def test_each_guard_refuses_then_allows() -> None:
    async with FlowDriver(flow) as driver:
        run = driver.run
        await driver.turn(ToolCall("caller_identified", {"name": "Ann", "topic": "bill"}))
        await driver.turn(ToolCall("billing_question", {}))
        assert run.state == "Triage" and run.refusals[-1].kind == "guard"
        await driver.turn(ToolCall("verify_account", {"account_id": "4411", "pin": "1234"}))
        await driver.turn(ToolCall("billing_question", {}))
        assert run.state == "Billing"
        await driver.turn(ToolCall("open_refund", {"amount": 500.0, "reason": "too much"}))
        assert run.state == "Billing" and run.refusals[-1].kind == "guard"
        assert "at most 100.00" in run.refusals[-1].reason
        await driver.turn(ToolCall("open_refund", {"amount": 45.0, "reason": "roaming"}))
        assert run.state == "Wrapup" and run.context.refund_ticket is not None
