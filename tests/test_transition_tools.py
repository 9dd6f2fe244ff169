"""Transition tools the way function_tool makes them: per-state schemas for a shared trigger
name, Annotated/Field/pydantic/enum/Literal parameters with the same schema and validation,
decorator mistakes that fail with the fix, a transition callable as a method, and made-up
tool names that are refused without ever counting as failures."""

from __future__ import annotations

import enum
import gc
import weakref
from typing import Annotated, Any, Literal

import pytest
from livekit.agents import llm
from livekit.agents.llm.utils import build_legacy_openai_schema
from pydantic import BaseModel, Field

from handoff import Context, Flow, FlowDefinitionError, RunContext, State, function_tool, transition
from handoff.testing import ScriptedLLM, Turn, call


class Booking(Context):
    month: int | None = None
    size: str | None = None
    seat: str | None = None
    party: dict[str, Any] | None = None
    asked: list[str] = []


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class Party(BaseModel):
    adults: int = Field(ge=1)
    children: int = 0


class Start(State[Booking]):
    """Takes the booking."""

    instructions = "Start."

    @transition(to="Middle")
    async def proceed(
        self,
        ctx: RunContext[Booking],
        month: Annotated[int, Field(ge=1, le=12, description="month of the visit, 1-12")],
        size: Size,
        seat: Literal["window", "aisle"] = "aisle",
        party: Party | None = None,
    ) -> None:
        """Call when the caller has chosen the month and size.

        Args:
            size: the size of the table
        """
        ctx.userdata.month, ctx.userdata.size, ctx.userdata.seat = month, size.value, seat
        ctx.userdata.party = party.model_dump() if party else None

    def helper(self) -> str:
        return "helper"


class Middle(State[Booking]):
    """Asks a question, then proceeds."""

    instructions = "Middle."

    @transition(to="End")
    async def proceed(self, ctx: RunContext[Booking], question: str) -> None:
        """Call with the caller's last question."""
        ctx.userdata.asked.append(question)


class End(State[Booking]):
    """The end."""

    instructions = "End."


flow = Flow("shared-names", context=Booking, initial=Start, states=[Start, Middle, End],
            final=[End], error_transition=None)


def _schema(tool: llm.FunctionTool) -> dict[str, Any]:
    return build_legacy_openai_schema(tool, internally_tagged=True)["parameters"]


def _tool_named(run: Any, state: str, name: str) -> llm.FunctionTool:
    tool = next(t for t in run.tools_for(state) if t.id == name)
    assert isinstance(tool, llm.FunctionTool)
    return tool


def test_a_shared_trigger_name_gives_each_state_its_own_tool() -> None:
    with flow.new_run() as run:
        start, middle = _tool_named(run, "Start", "proceed"), _tool_named(run, "Middle", "proceed")
        assert start is not middle
        assert start.info.description.startswith("Call when the caller has chosen")
        assert middle.info.description == "Call with the caller's last question."
        assert set(_schema(start)["properties"]) == {"month", "size", "seat", "party"}
        assert set(_schema(middle)["properties"]) == {"question"}


def test_transition_parameters_get_the_schema_function_tool_gives() -> None:
    """The same signature as a plain function_tool: the same JSON schema, constraints,
    descriptions (Field and the docstring's Args), enums, Literal and nested models."""

    @function_tool
    async def proceed(
        ctx: RunContext[Booking],
        month: Annotated[int, Field(ge=1, le=12, description="month of the visit, 1-12")],
        size: Size,
        seat: Literal["window", "aisle"] = "aisle",
        party: Party | None = None,
    ) -> None:
        """Call when the caller has chosen the month and size.

        Args:
            size: the size of the table
        """

    with flow.new_run() as run:
        ours = _schema(_tool_named(run, "Start", "proceed"))
    assert ours == _schema(proceed)
    month = ours["properties"]["month"]
    assert (month["minimum"], month["maximum"], month["description"]) == (
        1, 12, "month of the visit, 1-12")
    assert ours["properties"]["seat"]["enum"] == ["window", "aisle"]


def _policy(calls: dict[str, Any]) -> Any:
    def policy(turn: Turn) -> Any:
        if turn.answering_tool or turn.last_user_text not in calls:
            return f"{turn.agent_id} speaking."
        return calls[turn.last_user_text]
    return policy


async def test_the_llm_arguments_are_validated_and_reach_each_states_body() -> None:
    llm_ = ScriptedLLM(_policy({
        "month 13": call("proceed", month=13, size="small"),
        "bad size": call("proceed", month=5, size="huge"),
        "go": call("proceed", month=5, size="large", seat="window", party={"adults": 2}),
        "ask": call("proceed", question="is there parking?"),
    }))
    async with flow.session(llm=llm_) as run:
        for line in ("month 13", "bad size"):
            await run.session.run(user_input=line)
            assert run.state == "Start" and run.context.month is None  # rejected like LiveKit does
        errors = [o for t in llm_.turns for o in t.tool_outputs() if o.is_error]
        assert len(errors) == 2
        await run.session.run(user_input="go")
        assert run.state == "Middle"
        assert (run.context.month, run.context.size, run.context.seat) == (5, "large", "window")
        assert run.context.party == {"adults": 2, "children": 0}
        await run.session.run(user_input="ask")
        assert run.state == "End" and run.context.asked == ["is there parking?"]
        assert run.consecutive_failures == 0


async def test_two_live_calls_share_each_tool_and_each_call_moves_its_own_run() -> None:
    """A transition's tool is made once per flow (no per-call closure): both calls' Start
    agents offer the same object, and a call of it moves the run of the session that
    made the call, never the other one."""
    llm_ = ScriptedLLM(_policy({"go": call("proceed", month=5, size="large")}))
    async with flow.session(llm=llm_) as first, flow.session(llm=llm_) as second:
        assert first.agent is not None and second.agent is not None
        mine = next(t for t in first.agent.tools if getattr(t, "id", None) == "proceed")
        theirs = next(t for t in second.agent.tools if getattr(t, "id", None) == "proceed")
        assert mine is theirs is flow.transition_tools[flow.table["Start"]["proceed"].transition]
        await second.session.run(user_input="go")
        assert (second.state, second.context.month) == ("Middle", 5)
        assert (first.state, first.context.month, first.log) == ("Start", None, [])
        await first.session.run(user_input="go")
        assert first.state == "Middle" and len(first.log) == len(second.log) == 1


async def test_an_ended_call_leaves_neither_its_session_nor_its_run_behind() -> None:
    """What lets a shared tool find its run must not keep an ended call alive."""
    llm_ = ScriptedLLM(_policy({"go": call("proceed", month=5, size="large")}))
    async with flow.session(llm=llm_) as run:
        await run.session.run(user_input="go")
        assert run.state == "Middle"
        ended = weakref.ref(run.session), weakref.ref(run)
    del run
    gc.collect()
    assert [ref() for ref in ended] == [None, None]


def test_decorator_mistakes_fail_at_definition_with_the_fix() -> None:
    with pytest.raises(FlowDefinitionError, match=r"no-target.*write @transition\(to="):
        class Bare(State[Booking]):
            """x"""

            @transition  # type: ignore[arg-type]
            async def go(self, ctx: RunContext[Booking]) -> None:
                """x"""

    with pytest.raises(FlowDefinitionError, match="remove @function_tool"):
        class ToolOnTop(State[Booking]):
            """x"""

            @function_tool  # type: ignore[arg-type]
            @transition(to="End")
            async def go(self, ctx: RunContext[Booking]) -> None:
                """x"""

    with pytest.raises(FlowDefinitionError, match="remove @function_tool"):
        class TransitionOnTop(State[Booking]):
            """x"""

            @transition(to="End")  # type: ignore[arg-type]
            @function_tool
            async def go(self, ctx: RunContext[Booking]) -> None:
                """x"""


async def test_a_transition_is_callable_as_a_bound_method() -> None:
    with flow.new_run(llm=ScriptedLLM([])) as run:
        agent = run.make_agent("Middle")
        ctx = type("Ctx", (), {"userdata": run.context})()
        await agent.proceed(ctx, question="direct?")  # the body only: no move
        assert run.context.asked == ["direct?"] and run.state == "Start"
        assert isinstance(Middle.proceed, type(Start.proceed))  # on the class: the TransitionDef


class Hub(State[Booking]):
    """Where the LLM makes up tool names."""

    instructions = "Hub."

    @transition(to="Human")
    async def to_human(self, ctx: RunContext[Booking], reason: str = "") -> None:
        """Hand the caller to a human."""


class Human(State[Booking]):
    """A person."""

    instructions = "Human."


hub_flow = Flow("hallucinations", context=Booking, initial=Hub, states=[Hub, Human],
                final=[Human], error_transition="to_human", max_failures=2)


async def test_ten_made_up_tool_names_in_a_row_never_take_the_error_transition() -> None:
    llm_ = ScriptedLLM(lambda t: call(f"made_up_{t.index}") if t.last_user_text.startswith("try")
                       and not t.answering_tool else "Hub speaking.")
    async with hub_flow.session(llm=llm_) as run:
        for i in range(10):
            await run.session.run(user_input=f"try {i}")
        assert run.state == "Hub" and run.log == [] and run.failover is None
        assert run.consecutive_failures == 0
        assert [r.kind for r in run.refusals] == ["invalid"] * 10
        assert all("the transitions available now are: to_human" in r.reason for r in run.refusals)
        outputs = [o for t in llm_.turns for o in t.tool_outputs()]
        assert outputs and all(o.is_error and "to_human" in o.output for o in outputs)
