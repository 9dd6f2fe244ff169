"""What a state offers the LLM is decided once (:func:`handoff.semantics.offer`).

The run's agents are built from it, the run counts a call to anything else as made up,
and the toolkit's machines call exactly its tools: on every example flow and on every flow
of the corpus (correct and mutated), the tools a real agent of each state holds are the
core's offer, and the toolkit's view (``state_tools`` plus the offered transitions) is
the same set.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from livekit.agents import RunContext, function_tool

from handoff import Context, Flow, State, transition
from handoff.semantics import function_tools, offer
from handoff.testing.offered import ordinary_tools, state_tools
from handoff.testing.scripted import ScriptedLLM

from .flowgen import CORPUS, MUTATIONS, TIERS

EXAMPLES = ["examples.airline.flow", "examples.bank.flow", "examples.callcenter.flow",
            "examples.healthcare.flow", "examples.insurance.flow", "examples.survey.flow",
            "examples.readme.hello"]


def _agent_tool_names(flow: Flow[Any], state: str) -> tuple[set[str], set[str]]:
    """The tool names a real agent of ``state`` holds, and those its __init__ added."""
    agent = flow.new_run(llm=ScriptedLLM([])).make_agent(state)
    return ({t.info.name for t in function_tools(agent.tools)},
            {t.info.name for t in function_tools(agent.added_tools)})


def _same_everywhere(flow: Flow[Any]) -> None:
    for state in flow.states:
        core = offer(flow, state)
        held, added = _agent_tool_names(flow, state)
        assert held == core.names | added, (state, held ^ (core.names | added))
        toolkit = set(state_tools(flow, state)) | {e.trigger for e in core.transitions}
        assert toolkit == core.names, (state, toolkit ^ core.names)
        code_only = {e.trigger for e in flow.triggers_from(state).values()
                     if not e.transition.offered}
        assert not code_only & held, state


@pytest.mark.parametrize("module", EXAMPLES)
def test_every_example_agent_offers_what_the_core_says(module: str) -> None:
    _same_everywhere(importlib.import_module(module).flow)


@pytest.mark.parametrize("mutation", [None, *MUTATIONS])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_corpus_agent_offers_what_the_core_says(name: str, mutation: str | None) -> None:
    _same_everywhere(CORPUS[name](mutation).flow)


class Memo(Context):
    note: str | None = None


@function_tool
async def lookup(ctx: RunContext[Memo], query: str) -> str:
    """Look something up."""
    return query


@function_tool
async def shared(ctx: RunContext[Memo]) -> str:
    """A flow-wide tool."""
    return "ok"


@function_tool
async def extra(ctx: RunContext[Memo]) -> str:
    """Added by the agent's own __init__."""
    return "ok"


class Desk(State[Memo]):
    """Desk."""

    instructions = "Desk."
    tools = [lookup]

    @function_tool
    async def verify(self, ctx: RunContext[Memo], pin: str) -> str:
        """Verify."""
        return "ok"

    @transition(to="Back")
    async def go_back(self, ctx: RunContext[Memo]) -> None:
        """Go back."""

    @transition(to="Back", llm=False)
    async def quietly(self, ctx: RunContext[Memo]) -> None:
        """Only code takes this."""


class Back(State[Memo]):
    """Back."""

    instructions = "Back."

    def __init__(self) -> None:
        super().__init__(tools=[extra])


def test_the_offer_lists_each_kind_of_tool_once() -> None:
    flow = Flow("offer", context=Memo, initial=Desk, states=[Desk, Back], tools=[shared],
                tiers=TIERS)
    desk = offer(flow, "Desk")
    assert [e.trigger for e in desk.transitions] == ["go_back"]  # code-only is not offered
    assert list(desk.tools) == ["lookup", "shared", "verify"]
    assert desk.names == {"go_back", "lookup", "shared", "verify"}
    assert offer(flow, "Back").names == {"shared"}
    held, added = _agent_tool_names(flow, "Back")
    assert added == {"extra"} and held == {"shared", "extra"}
    assert ordinary_tools(flow)["shared"].states == ("Desk", "Back")
    _same_everywhere(flow)
