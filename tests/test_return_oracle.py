"""The toolkit knows abandoned and chosen returns (``abandons=True``, ``to=RETURN,
back_to=[...]``): the oracle's targets, dropped frames and return stack come from the
semantic core (:func:`handoff.semantics.return_targets`, ``dropped_by``, ``stack_after``),
so the pure and session machines report nothing on a correct flow that uses them, and
find a body that picks a frame it did not declare.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from handoff import RETURN, Chosen, Flow, RunContext, transition
from handoff.testing import FlowStateMachine
from handoff.testing.oracle import declared_targets, expect
from handoff.testing.strategies import Attempt

from .test_return_choices import Booked, Booking, Errands, Faq, Main, NoTable, Payment, flow

FRAMES = {"resume": {"task": st.sampled_from(["Booking", "Payment"])}}


def _machine(flow: Flow[Any], mode: str, *, shrink: bool = True) -> None:
    """``shrink`` off when a violation is expected: finding it is the point."""
    machine = FlowStateMachine(flow, mode=mode, argument_overrides=FRAMES,  # type: ignore[arg-type]
                               context_updates=False)
    steps, n = (12, 80) if mode == "pure" else (8, 15)
    phases = list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate]
    run_state_machine_as_test(machine, settings=settings(
        max_examples=n, stateful_step_count=steps, deadline=None, database=None,
        derandomize=True, suppress_health_check=list(HealthCheck), phases=phases))


def test_the_oracle_goes_back_to_any_declared_frame_on_the_stack() -> None:
    edge = flow.table["Faq"]["resume"]
    assert declared_targets(flow, edge, ["Main", "Booking", "Payment"]) == ("Payment", "Booking")
    assert declared_targets(flow, edge, ["Booking"]) == ("Booking",)
    assert declared_targets(flow, edge, []) == ()
    verdict = expect(flow, "Faq", Errands(), Attempt("resume", {"task": "Booking"}),
                     ["Booking", "Payment"])
    assert verdict.verdict == "allowed" and verdict.allows("Booking")


@pytest.mark.parametrize("mode", ["pure", "session"])
def test_machines_see_no_violation_on_dropped_and_chosen_returns(mode: str) -> None:
    _machine(flow, mode)


class WrongFaq(Faq):
    """Goes back to a frame it never declared: a planted bug."""

    name = "Faq"

    @transition(to=RETURN, back_to=["Booking", "Payment"])
    async def resume(self, ctx: RunContext[Errands], task: str) -> Chosen:
        """Call when the caller says which interrupted task to continue."""
        return Chosen("Main")


@pytest.mark.parametrize("mode", ["pure", "session"])
def test_a_planted_wrong_frame_is_found(mode: str) -> None:
    wrong = Flow("errands", context=Errands, initial=Main,
                 states=[Main, Booking, Payment, WrongFaq, Booked, NoTable],
                 final=[Booked, NoTable])
    with pytest.raises(AssertionError, match="resume"):
        _machine(wrong, mode, shrink=False)
