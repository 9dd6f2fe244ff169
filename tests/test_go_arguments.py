"""``run.go()`` checks its arguments as the LLM's tool calls are checked, and a programming
error in the calling code is raised to it, never counted as a failure of the call.

The schema is the one LiveKit validates the transition's tool call with; what code
gives is coerced the same way (``"3"`` for an ``int`` is ``3``). A name the transition
does not take, a missing required argument or a value of the wrong type raises
:class:`TransitionCallError` and changes nothing: no refusal, no failure counted, no
error transition, however often it happens. An unknown trigger stays a refusal (it is
not declared from here), which never counts either.
"""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from handoff import (
    Context,
    Flow,
    RunContext,
    State,
    TransitionCallError,
    TransitionRefused,
    function_tool,
    transition,
)
from handoff.testing import ScriptedLLM, call


class Order(Context):
    seats: int = 0
    note: str = ""
    bodies: int = 0


class Counter(State[Order]):
    """Takes the order."""

    instructions = "Take the order."

    @transition(to="Kitchen")
    async def order(self, ctx: RunContext[Order],
                    seats: Annotated[int, Field(ge=1, le=12)], note: str = "none") -> None:
        """Send the order to the kitchen."""
        ctx.userdata.bodies += 1
        ctx.userdata.seats, ctx.userdata.note = seats, note

    @function_tool
    async def rush(self, ctx: RunContext[Order], seats: str) -> str:
        """Send the order at once (moves the flow from code)."""
        try:
            await self.run.go("order", seats=seats, rushed=True)  # a bug: no such parameter
        except TransitionCallError as exc:
            return f"could not rush: {exc}"
        return "rushed"


class Kitchen(State[Order]):
    """Cooks."""

    instructions = "Cook."


class Help(State[Order]):
    """A person takes over."""

    instructions = "Help."


@transition(to="Help")
async def to_help(ctx: RunContext[Order], reason: str = "") -> None:
    """Hand the call to a person."""


flow = Flow("orders", context=Order, initial=Counter, states=[Counter, Kitchen, Help],
            final=[Kitchen, Help], global_transitions=[to_help], error_transition="to_help",
            max_failures=1)

BAD_CALLS: list[tuple[dict[str, object], str]] = [
    ({"seats": 2, "rushed": True}, "no argument 'rushed'"),
    ({}, "seats: Field required"),
    ({"seats": "many"}, "seats: Input should be a valid integer"),
    ({"seats": 40}, "seats: Input should be less than or equal to 12"),
    ({"seats": 2, "note": ["a", "list"]}, "note: Input should be a valid string"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_CALLS)
async def test_bad_arguments_from_code_raise_and_change_nothing(
    arguments: dict[str, object], message: str,
) -> None:
    run = flow.new_run()
    for _ in range(3):  # max_failures=1: one counted failure would take to_help
        with pytest.raises(TransitionCallError, match=message) as err:
            await run.go("order", **arguments)
        assert isinstance(err.value, TypeError)
    assert run.state == "Counter" and run.log == [] and run.refusals == []
    assert run.context.bodies == 0 and run.consecutive_failures == 0 and run.failover is None


async def test_the_message_names_the_parameter_never_the_value() -> None:
    run = flow.new_run()
    with pytest.raises(TransitionCallError) as err:
        await run.go("order", seats="QX-SECRET-7731")
    assert "seats" in str(err.value) and "QX-SECRET-7731" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


async def test_code_arguments_are_coerced_like_the_llms() -> None:
    run = flow.new_run()
    record = await run.go("order", seats="3")
    assert run.context.seats == 3 and record.arguments == {"seats": 3}
    assert run.context.note == "none"  # an omitted argument keeps the body's default


class Loose(State[Order]):
    """A body with an untyped parameter."""

    instructions = "x"

    @transition(to="Kitchen")
    async def order(self, ctx: RunContext[Order], seats) -> None:  # type: ignore[no-untyped-def]
        """Send the order (the LLM sends text for an untyped parameter)."""
        ctx.userdata.seats = seats


loose_flow = Flow("loose", context=Order, initial=Loose, states=[Loose, Kitchen],
                  final=[Kitchen])


async def test_an_untyped_parameter_takes_anything_from_code() -> None:
    """The LLM's untyped arguments are text; code may pass the body what it accepts."""
    run = loose_flow.new_run()
    record = await run.go("order", seats=3)
    assert run.context.seats == 3 and record.arguments == {"seats": 3}
    with pytest.raises(TransitionCallError, match="seats: Field required"):
        await loose_flow.new_run().go("order")


async def test_the_llm_and_code_are_held_to_one_schema() -> None:
    """What LiveKit refuses from the LLM, run.go() raises; what it accepts, go() takes."""
    for arguments, _ in BAD_CALLS[1:]:
        llm = ScriptedLLM(["Hello.", call("order", **arguments), "Sorry."])
        async with flow.session(llm=llm) as run:
            result = await run.session.run(user_input="order")
            output = result.expect.next_event(type="function_call_output").event().item
            assert output.is_error, arguments
            with pytest.raises(TransitionCallError):
                await run.go("order", **arguments)
            assert run.state == "Counter" and run.context.bodies == 0
    llm = ScriptedLLM(["Hello.", call("order", seats="4"), "Cooking."])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="order")
        assert run.state == "Kitchen" and run.context.seats == 4


async def test_a_tool_catching_its_bad_move_is_no_failure() -> None:
    """A tool's run.go() with an argument the transition does not take raises inside
    the tool, which can say so; the call stays where it is and nothing counts."""
    llm = ScriptedLLM(["Hello.", call("rush", seats="2"), "Let me check."])
    async with flow.session(llm=llm) as run:
        result = await run.session.run(user_input="rush it")
        output = result.expect.next_event(type="function_call_output").event().item
        assert not output.is_error and "no argument 'rushed'" in output.output
        assert run.state == "Counter" and run.session.current_agent.id == "Counter"
        assert run.consecutive_failures == 0 and run.failover is None and run.refusals == []


async def test_an_unknown_trigger_is_a_refusal_and_never_a_failure() -> None:
    run = flow.new_run()
    for name in ("ordr", "Nowhere", "order_twice"):
        with pytest.raises(TransitionRefused) as err:
            await run.go(name)
        assert err.value.kind == "invalid" and "order" in err.value.message
    assert run.state == "Counter" and run.consecutive_failures == 0 and run.failover is None
