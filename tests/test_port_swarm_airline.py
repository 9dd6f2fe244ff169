"""The Swarm airline port (examples/swarm_airline) tested with handoff.testing.

Pure and session machines (the LLM also calls the four ordinary tools), a transition
cover through real sessions, the change policy against a fake clock, the router
topology against the loop policy (a customer's requests in a row are no loop; an LLM
bouncing between two agents with no customer turn is), and the original's gaps (named
in examples/swarm_airline/flow.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from examples.swarm_airline import context as clock
from examples.swarm_airline import demo
from examples.swarm_airline.context import DEPARTURE, FlightCall
from examples.swarm_airline.flow import flow
from handoff.testing import (
    FlowDriver,
    FlowPath,
    FlowStateMachine,
    ScriptedLLM,
    call,
    load_profile,
    settle,
    transition_cover,
)
from handoff.validate import check

from .ports_support import PURE_EXAMPLES, SESSION_EXAMPLES, budget, take_path

load_profile()
logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)

CHANGED_IN_TIME = {"FlightChange": lambda c: c.changed_with_hours is None or c.changed_with_hours > 24}
TOOLS: dict[str, dict[str, Any]] = {name: {} for name in (
    "valid_to_change_flight", "initiate_refund", "initiate_flight_credits", "initiate_baggage_search")}

# The machines draw any starting Context (a flight already "changed" at 0 hours, say), so
# the change rule is checked from the shipped Context by explore (test_explore_*, below).
TestSwarmAirlineModel = budget(FlowStateMachine(flow).TestCase, PURE_EXAMPLES)
TestSwarmAirlineConversations = budget(FlowStateMachine(flow, mode="session", tools=TOOLS).TestCase,
                                       SESSION_EXAMPLES)


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A fake clock for the tools: ``at[0]`` is now (the original's departure minus 3 days)."""
    now = [DEPARTURE - timedelta(days=3)]
    monkeypatch.setattr(clock, "now", lambda: now[0])
    return now


def test_the_port_passes_check_strict() -> None:
    assert check(flow, strict=True) == []


COVER = transition_cover(flow).require_complete()


@pytest.mark.parametrize("path", COVER, ids=str)
async def test_every_transition_by_the_llm(path: FlowPath) -> None:
    await take_path(flow, path)


async def test_the_demo_changes_finds_the_bag_and_cancels() -> None:
    assert await demo.main() == 0


# -- a router with specialists: round trips driven by the customer are no loop -----------------
async def test_six_requests_in_a_row_go_through_triage_without_the_error_transition(at: list[Any]) -> None:
    """Three lost bags, a change, another bag, a cancellation: each request a new customer
    turn, each through triage and back (Triage ⇄ LostBaggage three times running, too)."""
    async with FlowDriver(flow) as driver:
        run = driver.run
        for bag in ("my suitcase", "my golf bag", "my stroller"):
            await driver.turn(call("transfer_to_lost_baggage"), user=f"I lost {bag}.")
            await driver.turn(call("initiate_baggage_search"), user="It's a black one.")
            await driver.turn(call("transfer_to_triage"), user="One more thing.")
        await driver.turn(call("transfer_to_flight_modification"), user="Can I change flight 1919?")
        await driver.turn(call("transfer_to_flight_change"), user="Change it, please.")
        await driver.turn(call("valid_to_change_flight"), user="A day earlier.")
        await driver.turn(call("change_flight"), user="Yes, go ahead.")
        await driver.turn(call("transfer_to_triage"), user="And another bag is missing.")
        await driver.turn(call("transfer_to_lost_baggage"), user="My backpack.")
        await driver.turn(call("transfer_to_triage"), user="Actually, cancel the flight instead.")
        await driver.turn(call("transfer_to_flight_modification"), user="Cancel flight 1919.")
        await driver.turn(call("transfer_to_flight_cancel"), user="Cancel it.")
        await driver.turn(call("initiate_refund"), user="A refund.")
        await driver.turn(call("case_resolved"), user="That's all, thanks.")
        assert run.state == "Resolved" and run.context.escalation_reason is None
        assert "escalate_to_agent" not in [r.trigger for r in run.log]
        assert [r.target for r in run.log].count("Triage") == 5
        assert run.context.changed_with_hours == 72 and run.context.refund_initiated


async def test_an_llm_bouncing_between_triage_and_baggage_is_escalated() -> None:
    """No customer turn between the moves: the loop policy takes the error transition."""
    bounce = [call("transfer_to_lost_baggage"), call("transfer_to_triage")] * 4
    script = ["Hello, how can I help you today?", *bounce,
              "I'm transferring you to a human agent who will take it from here."]
    async with flow.session(llm=ScriptedLLM(script)) as run:
        await run.session.run(user_input="I lost my bag.")
        await settle(run)
        assert run.state == "Escalated"
        assert run.log[-1].trigger == "escalate_to_agent"
        assert run.context.escalation_reason is not None
        assert "back and forth" in run.context.escalation_reason or "loop" in run.context.escalation_reason


# -- the change policy (the port's rule where the original always says "eligible") ---------
async def _in_flight_change(driver: FlowDriver[FlightCall]) -> None:
    await driver.turn(call("transfer_to_flight_modification"))
    await driver.turn(call("transfer_to_flight_change"))


async def test_a_flight_more_than_24_hours_out_is_changed(at: list[Any]) -> None:
    at[0] = DEPARTURE - timedelta(hours=25)
    async with FlowDriver(flow) as driver:
        await _in_flight_change(driver)
        await driver.turn(call("valid_to_change_flight"))
        assert driver.run.context.hours_to_departure == 25
        await driver.turn(call("change_flight"))
        assert driver.run.log[-1].trigger == "change_flight"
        assert driver.run.context.changed_with_hours == 25


async def test_a_flight_24_hours_out_is_not_changed(at: list[Any]) -> None:
    at[0] = DEPARTURE - timedelta(hours=24)
    async with FlowDriver(flow) as driver:
        await _in_flight_change(driver)
        result = await driver.turn(call("valid_to_change_flight"))
        assert "not eligible" in str(result.events)
        await driver.turn(call("change_flight"))
        run = driver.run
        assert run.context.changed_with_hours is None and run.log[-1].trigger == "transfer_to_flight_change"
        assert "not eligible" in run.refusals[-1].reason


async def test_change_flight_before_the_check_is_refused(at: list[Any]) -> None:
    async with FlowDriver(flow) as driver:
        await _in_flight_change(driver)
        await driver.turn(call("change_flight"))
        assert driver.run.context.changed_with_hours is None
        assert "call valid_to_change_flight first" in driver.run.refusals[-1].reason


# -- the original's gaps, kept ---------------------------------------------------------------------
async def test_gap_the_policy_prompt_names_change_intent_which_no_agent_has() -> None:
    async with FlowDriver(flow) as driver:
        await driver.turn(call("transfer_to_lost_baggage"))
        assert "change_intent" in driver.run.session.current_agent.instructions
        await driver.turn(call("change_intent"))
        assert driver.run.state == "LostBaggage"
        refused = driver.run.refusals[-1]
        assert "change_intent" in refused.reason and "transfer_to_triage" in refused.reason


async def test_gap_flight_modification_has_no_way_back_to_triage() -> None:
    async with FlowDriver(flow) as driver:
        await driver.turn(call("transfer_to_flight_modification"))
        await driver.turn(call("transfer_to_triage"), user="Oh, it's about my lost bag actually.")
        assert driver.run.state == "FlightModification"
        assert "transfer_to_triage" not in flow.table["FlightModification"]


async def test_gap_a_cancellation_gets_a_refund_and_credits() -> None:
    async with FlowDriver(flow) as driver:
        await driver.turn(call("transfer_to_flight_modification"))
        await driver.turn(call("transfer_to_flight_cancel"))
        await driver.turn(call("initiate_refund"))
        await driver.turn(call("initiate_flight_credits"))
        assert driver.run.context.refund_initiated and driver.run.context.credits_initiated


async def test_gap_the_bag_is_always_found_and_a_case_resolves_before_any_step() -> None:
    async with FlowDriver(flow) as driver:
        await driver.turn(call("transfer_to_lost_baggage"))
        result = await driver.turn(call("initiate_baggage_search"))
        assert "Baggage was found!" in str(result.events)
        await driver.turn(call("transfer_to_triage"))
        await driver.turn(call("transfer_to_flight_modification"))
        await driver.turn(call("transfer_to_flight_cancel"))
        await driver.turn(call("case_resolved"))  # nothing cancelled, nothing refunded
        assert driver.run.state == "Resolved" and not driver.run.context.refund_initiated
