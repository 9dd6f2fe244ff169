"""A refused or interrupted transition undoes exactly what its guard and body wrote.

An ordinary tool of the same turn that completed a write keeps it (the LLM was told it
succeeded), whether it wrote another field or the same one after the body.
"""

from __future__ import annotations

import asyncio

from handoff import Context, Flow, RunContext, State, TransitionRefused, function_tool, transition
from handoff.testing import Reply, ScriptedLLM, call


class Till(Context):
    amount: float = 0.0
    memo: str = ""
    checked: int = 0
    items: list[str] = []


class Signal:
    tool_done: asyncio.Event

    def reset(self) -> None:
        self.tool_done = asyncio.Event()


SIGNAL = Signal()


def nosy_guard(c: Till) -> bool:
    """A guard that writes the context (it should not) and then says no."""
    c.checked += 1
    c.items.append("guard was here")
    return False


class Counter(State[Till]):
    """The counter."""

    instructions = "Counter."

    @function_tool
    async def write_memo(self, ctx: RunContext[Till], memo: str) -> str:
        """Write a memo."""
        ctx.userdata.memo = memo
        SIGNAL.tool_done.set()
        return "memo written"

    @function_tool
    async def set_amount(self, ctx: RunContext[Till], amount: float) -> str:
        """Set the amount."""
        await asyncio.sleep(0)  # let the body write first
        ctx.userdata.amount = amount
        SIGNAL.tool_done.set()
        return "amount set"

    @transition(to="Closed")
    async def close_till(self, ctx: RunContext[Till], amount: float) -> None:
        """Close the till with an amount."""
        ctx.userdata.amount = amount
        ctx.userdata.items.append("closing")
        await SIGNAL.tool_done.wait()  # the ordinary tool completes meanwhile
        raise TransitionRefused("the till cannot close now")

    @transition(to="Closed", when=nosy_guard, refused="not now")
    async def audit(self, ctx: RunContext[Till]) -> None:
        """Audit the till."""


class Closed(State[Till]):
    """Closed."""

    instructions = "Closed."


flow = Flow("till", context=Till, initial=Counter, states=[Counter, Closed], final=[Closed])


async def test_a_refused_body_keeps_a_concurrent_tools_write_of_another_field() -> None:
    SIGNAL.reset()
    llm = ScriptedLLM(["Hello.", Reply(calls=(call("close_till", amount=50.0),
                                              call("write_memo", memo="customer happy"))),
                       "Could not close."])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="close with 50, note the customer is happy")
        assert run.state == "Counter" and run.refusals[-1].kind == "body"
        assert run.context.memo == "customer happy"  # the tool's completed write stays
        assert run.context.amount == 0.0 and run.context.items == []  # the body's is undone


async def test_a_refused_body_keeps_a_tools_later_write_of_the_same_field() -> None:
    SIGNAL.reset()
    llm = ScriptedLLM(["Hello.", Reply(calls=(call("close_till", amount=50.0),
                                              call("set_amount", amount=7.0))),
                       "Could not close."])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="close with 50, and set the amount to 7")
        assert run.refusals[-1].kind == "body"
        assert run.context.amount == 7.0  # written by the tool after the body: kept


async def test_a_guard_that_writes_and_refuses_leaves_nothing() -> None:
    llm = ScriptedLLM(["Hello.", call("audit"), "Not now."])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="audit")
        assert run.refusals[-1].kind == "guard"
        assert run.context.checked == 0 and run.context.items == []
