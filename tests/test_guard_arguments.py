"""A guard gets only the arguments it declares, converted as the body gets them; the run,
the oracle and ``check`` agree, and a call whose arguments the schema rejects is refused
on the record."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from handoff import Context, Flow, RunContext, State, transition
from handoff.records import Refusal
from handoff.testing import ScriptedLLM, call
from handoff.testing.oracle import expect
from handoff.testing.strategies import Attempt
from handoff.validate import check


class Item(BaseModel):
    name: str
    size: int = 1


class Order(Context):
    limit: int = 3


def kind_is_known(c: Order, count: int, kind: str = "any") -> bool:  # some of them, one optional
    return kind in ("any", "tea", "cake") and count <= c.limit


class Counter(State[Order]):
    """Takes orders."""

    instructions = "Counter."

    @transition(to="Kitchen", when=lambda c, count: count <= c.limit,
                refused=lambda c: f"at most {c.limit}")
    async def order(self, ctx: RunContext[Order], count: int, kind: str) -> None:
        """Order ``count`` things of a ``kind``."""

    @transition(to="Kitchen", when=kind_is_known, refused="unknown kind")
    async def special(self, ctx: RunContext[Order], count: int, kind: str, note: str = "") -> None:
        """Order a special."""

    @transition(to="Kitchen", when=lambda c, item: item.size <= c.limit, refused="too big")
    async def custom(self, ctx: RunContext[Order], item: Item) -> None:
        """Order a custom item."""

    @transition(to="Kitchen", when=lambda c, **args: args["count"] > 0, refused="none")
    async def any_args(self, ctx: RunContext[Order], count: int, kind: str) -> None:
        """Order with a guard that takes every argument."""


class Kitchen(State[Order]):
    """Cooks."""

    instructions = "Kitchen."


flow = Flow("orders", context=Order, initial=Counter, states=[Counter, Kitchen], final=[Kitchen])


class Refusals:
    def __init__(self) -> None:
        self.seen: list[Refusal] = []

    def on_transition(self, run: Any, record: Any) -> None: ...

    def on_refusal(self, run: Any, refusal: Refusal) -> None:
        self.seen.append(refusal)


@pytest.mark.parametrize(("trigger", "arguments", "taken"), [
    ("order", {"count": 2, "kind": "tea"}, True),
    ("order", {"count": 9, "kind": "tea"}, False),
    ("special", {"count": 2, "kind": "tea"}, True),
    ("special", {"count": 2, "kind": "soup"}, False),
    ("custom", {"item": {"name": "cake", "size": 2}}, True),
    ("custom", {"item": {"name": "cake", "size": 5}}, False),
    ("any_args", {"count": 1, "kind": "tea"}, True),
    ("any_args", {"count": 0, "kind": "tea"}, False),
])
async def test_run_and_oracle_agree_on_guards_over_some_optional_and_all_arguments(
        trigger: str, arguments: dict[str, Any], taken: bool) -> None:
    verdict = expect(flow, "Counter", Order(), Attempt(trigger, arguments)).verdict
    assert verdict == ("allowed" if taken else "guard")
    llm = ScriptedLLM(["Hello.", call(trigger, **arguments), "Done."])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="an order")
        assert run.state == ("Kitchen" if taken else "Counter")
        assert [r.kind for r in run.refusals] == ([] if taken else ["guard"])
    with flow.new_run() as pure:  # code gets the same conversion (a dict becomes an Item)
        if taken:
            assert (await pure.go(trigger, **arguments)).target == "Kitchen"


def test_check_reports_nothing_for_guards_that_take_their_arguments_by_name() -> None:
    assert [f for f in check(flow, strict=True) if "guard" in f.code] == []


async def test_arguments_the_schema_rejects_are_refused_on_the_record() -> None:
    observer = Refusals()
    flow.observers.append(observer)
    try:
        llm = ScriptedLLM(["Hello.", call("order", count="many", kind="tea"), "Sorry."])
        async with flow.session(llm=llm) as run:
            await run.session.run(user_input="lots")
            assert run.state == "Counter"
            [refusal] = run.refusals
            assert (refusal.trigger, refusal.kind) == ("order", "invalid")
            assert "arguments its schema does not take" in refusal.reason
            assert observer.seen == [refusal]  # what the event log and telemetry hear
    finally:
        flow.observers.remove(observer)
    assert expect(flow, "Counter", Order(), Attempt("order", {"count": "many", "kind": "x"}),
                  by_llm=True).verdict == "arguments"
