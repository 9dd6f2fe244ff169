"""A State written the way LiveKit's docs write an Agent: tools=[...] of free function_tools
(shared between states, never bound to the agent), flow-wide tools, and __init__(self)
calling super().__init__(instructions=..., tools=[...])."""

from __future__ import annotations

from typing import Any

import pytest

from handoff import Context, Flow, FlowDefinitionError, RunContext, State, function_tool, transition
from handoff.testing import ScriptedLLM, Turn, call


class Shop(Context):
    looked_up: list[str] = []


@function_tool
async def lookup_order(ctx: RunContext[Shop], order_id: str) -> str:
    """Look an order up by its id."""
    ctx.userdata.looked_up.append(order_id)
    return f"order {order_id} ships tomorrow"


@function_tool
async def opening_hours(ctx: RunContext[Shop]) -> str:
    """Tell the opening hours."""
    return "9 to 5"


class Front(State[Shop]):
    """Greets; may look orders up."""

    instructions = "Front."
    tools = [lookup_order]

    @transition(to="Back")
    async def to_back(self, ctx: RunContext[Shop]) -> None:
        """Pass the caller to the back office."""


class Back(State[Shop]):
    """The back office, written as LiveKit's docs write an Agent."""

    lookup = lookup_order  # a free tool as a class attribute: never bound to the agent

    def __init__(self) -> None:
        super().__init__(instructions="You are the back office.", allow_interruptions=False)


flow = Flow("shop", context=Shop, initial=Front, states=[Front, Back], final=[Back],
            tools=[opening_hours])


def policy(turn: Turn) -> Any:
    said = turn.last_user_text
    if not turn.answering_tool:
        if said.startswith("order "):
            return call("lookup_order", order_id=said.removeprefix("order "))
        if said == "hours":
            return call("opening_hours")
        if said == "back":
            return call("to_back")
    return f"{turn.agent_id} speaking."


async def test_free_tools_and_flow_tools_work_in_every_state_they_are_offered() -> None:
    llm = ScriptedLLM(policy)
    async with flow.session(llm=llm) as run:
        assert {"lookup_order", "opening_hours", "to_back"} <= set(llm.turns[0].tool_names)
        await run.session.run(user_input="order 17")
        await run.session.run(user_input="hours")
        await run.session.run(user_input="back")
        assert run.state == "Back"
        await run.session.run(user_input="order 18")
        await run.session.run(user_input="hours")
        assert run.context.looked_up == ["17", "18"]
        outputs = [(o.name, o.output, o.is_error) for t in llm.turns for o in t.tool_outputs()
                   if o.name != "to_back"]
        assert ("lookup_order", "order 18 ships tomorrow", False) in outputs
        assert not [o for o in outputs if o[2]] and run.consecutive_failures == 0
        assert set(llm.turns[-1].tool_names) >= {"lookup_order", "opening_hours"}


async def test_a_livekit_style_init_sets_the_prompt_and_agent_options() -> None:
    llm = ScriptedLLM(policy)
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="back")
        assert run.agent is not None and isinstance(run.agent, Back)
        assert run.agent.allow_interruptions is False
    opening = next(t for t in llm.turns if t.agent_id == "Back")
    assert opening.instructions.startswith("You are the back office.")


def test_tool_names_and_mistakes_in_tools_fail_at_definition_or_flow() -> None:
    assert Front.tool_names() == ["lookup_order"] and Back.tool_names() == ["lookup_order"]
    with pytest.raises(FlowDefinitionError, match=r"bad-tools.*tools = \[lookup_order\]"):
        class Wrong(State[Shop]):
            """x"""

            tools = ["lookup_order"]  # type: ignore[list-item]

    class NeedsArgs(State[Shop]):
        """x"""

        def __init__(self, greeting: str) -> None:
            super().__init__(instructions=greeting)

    with pytest.raises(FlowDefinitionError, match=r"init-signature.*requires greeting"):
        Flow("args", context=Shop, initial=NeedsArgs, states=[NeedsArgs], final=[NeedsArgs])

    with pytest.raises(FlowDefinitionError, match=r"duplicate-tool.*lookup_order"):
        Flow("dup", context=Shop, initial=Front, states=[Front, Back], final=[Back],
             tools=[lookup_order])


def test_a_state_cannot_be_made_outside_its_run() -> None:
    from handoff import FlowError

    with pytest.raises(FlowError, match="made by its flow run"):
        Front()


def test_state_options_are_declared_typos_and_wrong_types_fail_at_flow() -> None:
    class Typo(State[Shop]):
        """x"""

        instructions = "x"
        tts_voise = "sage"

    with pytest.raises(FlowDefinitionError, match=r"unknown-option.*tts_voise.*did you mean 'tts_voice'"):
        Flow("typo", context=Shop, initial=Typo, states=[Typo], final=[Typo])

    class WrongType(State[Shop]):
        """x"""

        instructions = "x"
        interruptible = "no"  # type: ignore[assignment]

    with pytest.raises(FlowDefinitionError, match=r"bad-option.*interruptible = 'no'"):
        Flow("wrong", context=Shop, initial=WrongType, states=[WrongType], final=[WrongType])

    from typing import ClassVar

    class Declared(State[Shop]):
        """Its own options, declared with a type, and constants, are fine."""

        instructions = "x"
        greeting: ClassVar[str] = "hello"
        RETRIES = 3
        tts_voice = "sage"
        endpointing_min_delay = 1  # an int is a fine float

    Flow("fine", context=Shop, initial=Declared, states=[Declared], final=[Declared])
