"""History completed: tool calls carried with '+tools', last:N counts messages, one agent per
state across revisits (keep_agent), a per-state summary prompt, and summary:0."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handoff import (
    Context,
    Flow,
    FlowDefinitionError,
    RunContext,
    State,
    function_tool,
    transition,
)
from handoff.history import SUMMARY_PREFIX, HistoryPolicy
from handoff.testing import ScriptedLLM, Turn, call


class Talk(Context):
    pass


class Front(State[Talk]):
    """Looks things up, then passes the caller on."""

    instructions = "You are Front."
    keep_agent = True

    @function_tool
    async def lookup(self, ctx: RunContext[Talk], what: str) -> str:
        """Look something up."""
        return f"{what} is in stock"

    @transition(to="Back", history="full+tools")
    async def to_back(self, ctx: RunContext[Talk]) -> None:
        """Pass the caller to Back with the tool results."""

    @transition(to="Plain")
    async def to_plain(self, ctx: RunContext[Talk]) -> None:
        """Pass the caller to Plain (full history, no tool calls)."""

    @transition(to="Brief")
    async def to_brief(self, ctx: RunContext[Talk]) -> None:
        """Pass the caller to Brief."""


class Back(State[Talk]):
    """Goes back to Front."""

    instructions = "You are Back."
    history = "none"

    @transition(to="Front", history="none")
    async def to_front(self, ctx: RunContext[Talk]) -> None:
        """Back to Front."""


class Plain(State[Talk]):
    """Full history without tool calls."""

    instructions = "You are Plain."


class Brief(State[Talk]):
    """Starts from a summary only."""

    instructions = "You are Brief."
    history = "summary:0"
    summary_prompt = "Summarise for Brief in one line."


flow = Flow("histories", context=Talk, initial=Front, states=[Front, Back, Plain, Brief],
            final=[Plain, Brief])


def policy(turn: Turn) -> Any:
    said = turn.last_user_text
    if turn.instructions.startswith("Summarise for Brief"):
        return "The caller asked about apples."
    if turn.agent_id == "Front" and not turn.answering_tool:
        if said.startswith("apples?"):
            return call("lookup", what="apples")
        for word in ("back", "plain", "brief"):
            if said == word:
                return call(f"to_{word}")
    if turn.agent_id == "Back" and said == "front" and not turn.answering_tool:
        return call("to_front")
    return f"{turn.agent_id} says {turn.index}."


def opening_of(llm: ScriptedLLM, state: str) -> Turn:
    return next(t for t in llm.turns if t.agent_id == state)


def test_policies_parse_with_tools_and_summary_zero() -> None:
    assert HistoryPolicy.parse("last:4+tools") == HistoryPolicy("last", 4, True)
    assert HistoryPolicy.parse("full + tools") == HistoryPolicy("full", 0, True)
    assert HistoryPolicy.parse("summary:0") == HistoryPolicy("summary", 0)
    assert str(HistoryPolicy.parse("summary:2+tools")) == "summary:2+tools"
    for bad in ("last:0", "tools", "last:x", 4):
        with pytest.raises(ValueError, match="optionally followed by"):
            HistoryPolicy.parse(bad)  # type: ignore[arg-type]


def test_a_history_that_is_not_text_fails_at_flow_with_the_fix() -> None:
    class Odd(State[Talk]):
        """Odd."""

        instructions = "x"
        history = 4  # type: ignore[assignment]

    with pytest.raises(FlowDefinitionError, match=r"bad-history.*Odd.*'\+tools'"):
        Flow("odd", context=Talk, initial=Odd, states=[Odd], final=[Odd])


async def test_plus_tools_carries_function_calls_and_outputs() -> None:
    llm = ScriptedLLM(policy)
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="apples?")
        await run.session.run(user_input="back")
        assert run.state == "Back"
    items = opening_of(llm, "Back").chat_ctx.items
    calls = [i for i in items if i.type == "function_call"]
    outputs = [i for i in items if i.type == "function_call_output"]
    # Back has no lookup tool: kept anyway; and the call that made the handoff
    assert [c.name for c in calls] == ["lookup", "to_back"]
    assert [o.output for o in outputs] == ["apples is in stock", "Handed over to Back."]


async def test_without_tools_the_calls_stay_behind() -> None:
    llm = ScriptedLLM(policy)
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="apples?")
        await run.session.run(user_input="plain")
        assert run.state == "Plain"
    opening = opening_of(llm, "Plain")
    assert not {i.type for i in opening.chat_ctx.items} & {"function_call", "function_call_output"}
    assert ("user", "apples?") in opening.messages()


def test_last_n_counts_messages_and_keeps_a_call_with_its_output() -> None:
    from livekit.agents import llm

    ctx = llm.ChatContext.empty()
    ctx.add_message(role="user", content="one")
    ctx.add_message(role="assistant", content="two")
    ctx.insert(llm.FunctionCall(call_id="c1", name="lookup", arguments="{}"))
    ctx.insert(llm.FunctionCallOutput(call_id="c1", name="lookup", output="x", is_error=False))
    ctx.add_message(role="assistant", content="three")
    kept = HistoryPolicy.parse("last:1+tools").carry(ctx).items
    assert [i.type for i in kept] == ["message"]  # the message after the call: 1 message
    kept = HistoryPolicy.parse("last:2+tools").carry(ctx).items
    assert [getattr(i, "text_content", None) or i.type for i in kept] == [
        "two", "function_call", "function_call_output", "three"]
    assert [m.text_content for m in HistoryPolicy.parse("last:2").carry(ctx).items] == ["two", "three"]


async def test_a_kept_agent_remembers_its_earlier_talk_on_a_revisit() -> None:
    llm = ScriptedLLM(policy)
    async with flow.session(llm=llm) as run:
        first = run.agent
        await run.session.run(user_input="hello front")
        await run.session.run(user_input="back")
        await run.session.run(user_input="front")  # history="none" on this edge
        assert run.state == "Front" and run.agent is first
        await run.session.run(user_input="still me?")
    last = llm.turns[-1]
    assert last.agent_id == "Front"
    said = [text for role, text in last.messages() if role == "user"]
    assert said[0] == "hello front" and said[-1] == "still me?"
    assert "back" in said and "front" not in said  # nothing of Back's talk was carried


async def test_summary_zero_starts_empty_and_uses_the_state_summary_prompt() -> None:
    llm = ScriptedLLM(policy)
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="apples?")
        await run.session.run(user_input="brief")
        assert run.state == "Brief" and run.summary is not None
        assert await asyncio.wait_for(run.summary, 10) == "The caller asked about apples."
        assert opening_of(llm, "Brief").messages() == []
        await run.session.run(user_input="and?")
    systems = [i.text_content for i in llm.turns[-1].chat_ctx.items
               if i.type == "message" and i.role == "system"]
    assert SUMMARY_PREFIX + "The caller asked about apples." in systems
