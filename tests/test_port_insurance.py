"""The insurance-quote port (Pipecat Flows) tested with handoff.testing, pure and session.

Also the original's gaps the toolkit finds (named in examples/insurance/flow.py): each
is a generated machine with the entry condition a reviewer would write, and the test
asserts that hypothesis finds the counterexample, so it fails the day the gap is gone.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import strategies as st

from examples.insurance import demo
from examples.insurance.flow import BASE_COVERAGE, BASE_DEDUCTIBLE, adjusted_premium, flow, initial_premium
from handoff.testing import FlowDriver, FlowPath, FlowStateMachine, call, load_profile, transition_cover
from handoff.validate import check

from .ports_support import PURE_EXAMPLES, SESSION_EXAMPLES, budget, finds, take_path

load_profile()
logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)

# What must hold on entering each state (true of the original as it is).
ENTRY = {
    "MaritalStatus": lambda c: c.age is not None,
    "QuoteCalculation": lambda c: c.age is not None and c.marital_status is not None,
    "QuoteResults": lambda c: None not in (c.monthly_premium, c.coverage_amount, c.deductible),
}
AGES = {"collect_age": {"age": st.integers(-5, 120)}}

TestInsuranceModel = budget(FlowStateMachine(flow, entry_conditions=ENTRY, argument_overrides=AGES,
                                             context_updates=False).TestCase, PURE_EXAMPLES)
TestInsuranceConversations = budget(FlowStateMachine(
    flow, mode="session", entry_conditions=ENTRY, argument_overrides=AGES,
    context_updates=False).TestCase, SESSION_EXAMPLES)


def test_the_port_passes_check_strict() -> None:
    assert check(flow, strict=True) == []


def test_the_rates_are_the_originals() -> None:
    assert initial_premium(24, "single") == 225.0  # young: 150 * 1.5
    assert initial_premium(25, "single") == 100.0  # adult from 25
    assert initial_premium(20, "married") == pytest.approx(169.0)
    assert initial_premium(40, "married") == pytest.approx(81.0)
    assert adjusted_premium(500_000, 2_000) == pytest.approx(180.0)
    assert adjusted_premium(BASE_COVERAGE, BASE_DEDUCTIBLE) == 100.0


COVER = transition_cover(
    flow,
    arguments={"collect_age": {"age": 23}, "collect_marital_status": {"marital_status": "single"},
               "calculate_quote": {"age": 23, "marital_status": "single"},
               "update_coverage": {"coverage_amount": 500_000, "deductible": 2_000}},
).require_complete()


@pytest.mark.parametrize("path", COVER, ids=str)
async def test_every_transition_by_the_llm(path: FlowPath) -> None:
    await take_path(flow, path)


async def test_the_demo_reaches_the_end() -> None:
    assert await demo.main() == 0


async def test_end_says_goodbye_then_closes_the_session() -> None:
    """Pipecat's ``end_conversation`` post-action: the End node speaks, then the call ends."""
    async with FlowDriver(flow) as driver:
        closed = asyncio.Event()
        driver.run.session.on("close", lambda _: closed.set())
        await driver.turn(call("collect_age", age=30))
        await driver.turn(call("collect_marital_status", marital_status="married"))
        await driver.turn(call("calculate_quote", age=30, marital_status="married"))
        assert driver.run.context.monthly_premium == pytest.approx(81.0)
        await driver.turn(call("end_quote"))
        await asyncio.wait_for(closed.wait(), 30)  # a deadlock guard, not a timing assertion
        assert driver.run.state == "End" and driver.run.closed
        spoken = [m.text_content for m in driver.run.session.history.messages()
                  if m.role == "assistant"]
        assert spoken[-1] == driver.filler  # End's goodbye (the driver's filler text)


# -- the original's gaps, found by the toolkit ------------------------------------------
def test_toolkit_finds_a_quote_for_another_age_than_collected() -> None:
    finds(FlowStateMachine(flow, entry_conditions={
        "QuoteResults": lambda c: c.coverage_amount != BASE_COVERAGE
        or c.monthly_premium == initial_premium(c.age, c.marital_status)},
        context_updates=False), "entered QuoteResults by calculate_quote")


def test_toolkit_finds_an_adjustment_that_forgets_the_risk_profile() -> None:
    finds(FlowStateMachine(flow, entry_conditions={
        "QuoteResults": lambda c: c.age is None or c.marital_status is None
        or c.coverage_amount != BASE_COVERAGE or c.deductible != BASE_DEDUCTIBLE
        or c.monthly_premium == initial_premium(c.age, c.marital_status)},
        # one young single customer throughout, so only update_coverage can break it
        argument_overrides={"collect_age": {"age": st.just(20)},
                            "collect_marital_status": {"marital_status": st.just("single")},
                            "calculate_quote": {"age": st.just(20), "marital_status": st.just("single")},
                            "update_coverage": {"coverage_amount": st.just(BASE_COVERAGE),
                                                "deductible": st.just(BASE_DEDUCTIBLE)}},
        context_overrides={"age": st.just(20), "marital_status": st.just("single")},
        context_updates=False),
        "entered QuoteResults by update_coverage")


def test_toolkit_finds_a_quote_that_costs_nothing() -> None:
    finds(FlowStateMachine(flow, entry_conditions={
        "QuoteResults": lambda c: (c.monthly_premium or 0) > 0}, context_updates=False),
        "entered QuoteResults by update_coverage")
