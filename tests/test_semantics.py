"""The semantic core's table: the `transitions` Machine is the one table of valid moves.

``Flow.table`` is read from the Machine's transitions (not built apart from it), and a
committed move sets the Machine's state without asking it to decide again. On random
flows the table holds exactly the declared transitions: each state's own, then the
global ones, an own trigger winning over a global one of the same name.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from handoff import RETURN, Context, Flow, RunContext, State, TransitionRefused, transition
from handoff.semantics import validity
from handoff.testing.oracle import expect
from handoff.testing.strategies import Attempt

from .flowgen import graphs, make_flow


@settings(max_examples=60, deadline=None)
@given(graphs())
def test_the_table_is_the_machines_transitions(kwargs: dict[str, Any]) -> None:
    flow = make_flow(**kwargs)
    globals_ = [t.name for t in flow.global_transitions]
    for name, cls in flow.states.items():
        own = [t.name for t in cls.declared_transitions()]
        expected = own + [g for g in globals_ if g not in own]
        assert list(flow.table[name]) == expected
        machine = {trigger for trigger, event in flow.machine.events.items()
                   if event.transitions.get(name)}
        assert set(flow.table[name]) == machine
        for trigger, edge in flow.table[name].items():
            assert edge.source in (name, None) and edge.trigger == trigger


class Ctx(Context):
    pass


class A(State[Ctx]):
    """A."""

    instructions = "A."

    @transition(to=["B", "C"])
    async def pick(self, ctx: RunContext[Ctx], where: str) -> str:
        """Pick a state."""
        return where


class B(State[Ctx]):
    """B."""

    instructions = "B."


class C(State[Ctx]):
    """C."""

    instructions = "C."


async def test_a_committed_move_puts_the_machine_where_the_table_said() -> None:
    flow = Flow("pick", context=Ctx, initial=A, states=[A, B, C], final=[B, C])
    with flow.new_run() as run:
        await run.go("pick", where="C")
        assert run.state == "C" and flow.machine.get_model_state(run._fsm).name == "C"


class Trip(State[Ctx]):
    """A side trip whose way back is guarded."""

    instructions = "Trip."

    @transition(to=RETURN, when=lambda c: False, refused="never")
    async def back(self, ctx: RunContext[Ctx]) -> None:
        """Go back."""


class Home(State[Ctx]):
    """Starts side trips."""

    instructions = "Home."

    @transition(to="Trip", returns=True)
    async def trip(self, ctx: RunContext[Ctx]) -> None:
        """Take a trip."""


async def test_the_run_and_the_oracle_check_validity_before_the_guard() -> None:
    """A return with nowhere to go is invalid, whatever its guard would say: one decision
    (``semantics.validity``) for both, in the same order."""
    flow = Flow("trips", context=Ctx, initial=Trip, states=[Trip, Home], final=[Home])
    expectation = expect(flow, "Trip", Ctx(), Attempt("back", {}))
    assert (expectation.verdict, expectation.reason) == (
        "invalid", "'back' refused: there is no earlier state to return to in this call.")
    with flow.new_run() as run:
        with pytest.raises(TransitionRefused) as refused:
            await run.go("back")
        assert refused.value.kind == "invalid" and run.refusals[-1].reason == expectation.reason
    assert validity(flow, "Trip", "back", ["Home"]).target == "Home"
    assert validity(flow, "Trip", "back", ["Home"], under_way="trip").kind == "busy"
    assert validity(flow, "Home", "nope").kind == "invalid"
