"""history="summary": the new agent starts at once; the summary lands later or not at all."""

from __future__ import annotations

import asyncio
from typing import Any

from handoff import Context, Flow, RunContext, State, transition
from handoff.history import SUMMARY_INSTRUCTIONS, SUMMARY_PREFIX, HistoryPolicy
from handoff.testing import Reply, ScriptedLLM, Turn, call, fail


class Notes(Context):
    pass


class Talk(State[Notes]):
    """Talks a lot."""

    instructions = "Talk."

    @transition(to="Expert")
    async def expert(self, ctx: RunContext[Notes]) -> None:
        """Go to the expert."""


class Expert(State[Notes]):
    """Gets a summary of the long talk."""

    instructions = "Expert."
    history = "summary:2"


flow = Flow("summaries", context=Notes, initial=Talk, states=[Talk, Expert], final=[Expert])


def test_summary_policy_parses_and_keeps_the_tail() -> None:
    assert HistoryPolicy.parse("summary") == HistoryPolicy("summary", 6)
    assert str(HistoryPolicy.parse("summary:3")) == "summary:3"


def make_policy(summary: Any, gate: asyncio.Event) -> Any:
    def policy(turn: Turn) -> Any:
        if turn.instructions == SUMMARY_INSTRUCTIONS:
            return summary
        if turn.last_user_text == "expert please" and "expert" in turn.tool_names:
            return call("expert")
        return f"reply {turn.index}"

    return policy


async def _talk_then_hand_over(llm: ScriptedLLM) -> Any:
    ctx = flow.session(llm=llm)
    run = await ctx.__aenter__()
    for line in ("one", "two", "three", "expert please"):
        await run.session.run(user_input=line)
    return ctx, run


async def test_new_agent_speaks_before_the_summary_lands_then_gets_it() -> None:
    gate = asyncio.Event()
    summary = Reply(text="Caller said one, two, three.", pause=gate.wait)
    llm = ScriptedLLM(make_policy(summary, gate))
    ctx, run = await _talk_then_hand_over(llm)
    try:
        assert run.state == "Expert"
        opening = next(t for t in llm.turns if "Expert" in t.instructions)
        # the expert spoke with the last 2 messages only, while the summary was held back
        assert len(opening.messages()) == 2
        assert opening.messages()[-1] == ("user", "expert please")
        assert run.summary is not None and not run.summary.done()
        gate.set()
        assert await run.summary == "Caller said one, two, three."
        await run.session.run(user_input="what did I say?")
        last = llm.turns[-1]
        systems = [i.text_content for i in last.chat_ctx.items
                   if i.type == "message" and i.role == "system"]
        assert SUMMARY_PREFIX + "Caller said one, two, three." in systems
        # what the summary covered: the messages the tail left behind
        request = next(t for t in llm.turns if t.instructions == SUMMARY_INSTRUCTIONS)
        covered = request.chat_ctx.items[-1].text_content or ""
        assert "user: one" in covered and "expert please" not in covered
    finally:
        await ctx.__aexit__(None, None, None)


async def test_a_failed_summary_changes_nothing() -> None:
    llm = ScriptedLLM(make_policy(fail("summariser down", retryable=False), asyncio.Event()))
    ctx, run = await _talk_then_hand_over(llm)
    try:
        before = [i.id for i in run.agent.chat_ctx.items]
        assert await run.summary is None
        assert [i.id for i in run.agent.chat_ctx.items] == before
        await asyncio.wait_for(run.failures.settled(), 10)  # its error's grace is over
        assert run.state == "Expert" and run.consecutive_failures == 0
        result = await run.session.run(user_input="still there?")
        assert any(e.type == "message" for e in result.events)
    finally:
        await ctx.__aexit__(None, None, None)
