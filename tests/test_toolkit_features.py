"""Every toolkit piece on every flow feature: side trips, hang-ups, empty Contexts, typed
arguments, shared trigger names, ordinary tools, guard boundaries."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.stateful import run_state_machine_as_test

from handoff import RunContext, TransitionRefused, transition
from handoff.testing import (
    FlowDriver,
    FlowStateMachine,
    ToolCall,
    call,
    checking,
    shortest_paths,
    transition_cover,
)
from handoff.testing.boundaries import guard_boundaries
from handoff.testing.oracle import expect_for
from handoff.testing.strategies import Attempt, arguments, context_changes
from tests.feature_flows import Allergy, Menu, Order, Size, hangup_flow, order_flow, trip_flow

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)


def _settings(n: int, steps: int = 8) -> settings:
    return settings(max_examples=n, stateful_step_count=steps, deadline=None, database=None,
                    derandomize=True, suppress_health_check=list(HealthCheck))


# -- side trips ------------------------------------------------------------------------------
def test_the_oracle_knows_where_a_side_trip_returns() -> None:
    flow = trip_flow()

    async def walk() -> None:
        with flow.new_run() as run:
            attempt = Attempt("verified")
            assert expect_for(run, attempt).verdict == "invalid"  # no side trip open yet
            with checking(run, attempt), pytest.raises(TransitionRefused):
                await run.go("verified")
            with checking(run, Attempt("verify")):
                await run.go("verify")
            assert expect_for(run, attempt).targets == ("Reception",)
            with checking(run, attempt):
                await run.go("verified")
            assert run.state == "Reception" and run.return_stack == []

    asyncio.run(walk())


def test_side_trips_pass_the_machine_in_pure_mode() -> None:
    run_state_machine_as_test(FlowStateMachine(trip_flow()), settings=_settings(150))


def test_side_trips_pass_the_machine_in_session_mode() -> None:
    run_state_machine_as_test(FlowStateMachine(trip_flow(), mode="session"),
                              settings=_settings(12, steps=6))


def test_paths_take_side_trips_and_their_returns() -> None:
    flow = trip_flow()
    cover = transition_cover(flow).require_complete()
    taken = {(s.source, s.trigger, s.target) for p in cover for s in p.steps}
    assert ("Verify", "verified", "Reception") in taken
    assert {("Reception", "verify", "Verify"), ("Account", "verify", "Verify")} <= taken
    reach = shortest_paths(flow).require_complete()
    assert {p.target for p in reach} == set(flow.states)


# -- hang-ups, final states without transitions, empty Contexts -----------------------------
def test_a_flow_that_hangs_up_stops_drawing_steps() -> None:
    """Hangup's on_enter ends the session; Hello's end_call tool does too; no fields."""
    machine = FlowStateMachine(hangup_flow(), mode="session", tools={"end_call": {}})
    run_state_machine_as_test(machine, settings=_settings(15, steps=6))


def test_an_empty_context_and_a_final_state_without_transitions_in_pure_mode() -> None:
    flow = hangup_flow()
    assert find(context_changes(flow), lambda c: True) == {}
    run_state_machine_as_test(FlowStateMachine(flow), settings=_settings(50))


async def test_the_driver_sees_the_call_end() -> None:
    async with FlowDriver(hangup_flow()) as driver:
        await driver.turn(call("goodbye"))
        assert driver.ended and driver.run.closed and driver.run.state == "Hangup"


# -- typed arguments, shared trigger names, ordinary tools -----------------------------------
async def test_pydantic_and_enum_arguments_reach_the_body_as_a_real_llm_sends_them() -> None:
    args = {"people": 3, "allergies": [Allergy(name="nuts", severe=True)], "size": Size.LARGE,
            "kind": "takeaway"}
    async with FlowDriver(order_flow()) as driver:
        with checking(driver.run, Attempt("next", args), by_llm=True):
            await driver.turn(ToolCall("next", args))
        context = driver.run.context
        assert driver.run.state == "Table"
        assert context.allergies == [Allergy(name="nuts", severe=True)]
        assert context.size is Size.LARGE and context.kind == "takeaway"


def test_a_shared_trigger_name_draws_each_states_own_arguments() -> None:
    flow = order_flow()
    machine = FlowStateMachine(flow)
    rules = {name for name in vars(machine) if name.startswith("go_")}
    assert rules == {"go_next_from_Menu", "go_next_from_Table"}
    table_args = find(arguments(flow, "next", state="Table"), lambda a: True)
    assert set(table_args) == {"note"}
    run_state_machine_as_test(machine, settings=_settings(150))


async def test_a_shared_trigger_name_is_each_states_own_tool_in_a_session() -> None:
    """(Caught by the session machine before the core offered each state its own tool.)"""
    first = {"people": 2, "allergies": [], "size": Size.SMALL}
    async with FlowDriver(order_flow()) as driver:
        await driver.turn(ToolCall("next", first))
        driver.run.context.confirmed = True
        with checking(driver.run, Attempt("next", {"note": "window seat"}), by_llm=True):
            await driver.turn(ToolCall("next", {"note": "window seat"}))
        assert driver.run.state == "Served"


def test_typed_arguments_and_shared_names_pass_in_session_mode() -> None:
    machine = FlowStateMachine(order_flow(), mode="session", tools={"specials": {}, "confirm": {}},
                               interruptions=False)
    run_state_machine_as_test(machine, settings=_settings(12, steps=6))


def test_a_broken_ordinary_tool_is_caught() -> None:
    machine = FlowStateMachine(order_flow(shared_name=False), mode="session",
                               tools={"broken_lookup": {}}, interruptions=False)
    no_shrinking = settings(_settings(15, steps=6), phases=[Phase.generate])  # the error is enough
    with pytest.raises(AssertionError, match=r"tool broken_lookup.* failed: the lookup service"):
        run_state_machine_as_test(machine, settings=no_shrinking)


def test_a_tool_may_fail_the_way_the_test_allows() -> None:
    machine = FlowStateMachine(
        order_flow(shared_name=False), mode="session", tools={"broken_lookup": {}, "confirm": {}},
        interruptions=False,
        tool_errors={"broken_lookup": lambda args, error: "service is down" in error})
    run_state_machine_as_test(machine, settings=_settings(8, steps=5))


# -- search limits: boundaries from guards, every field settable, unmet conditions named ------
def test_boundaries_come_from_the_guard() -> None:
    edge = order_flow().table["Menu"]["next"]
    found = guard_boundaries(edge.transition.when)
    assert found.arguments == {"people": [0, 1, 12, 13]}
    table = guard_boundaries(order_flow().table["Table"]["next"].transition.when)
    assert table.context["people"] == [1, 2] and table.context["confirmed"] == [False, True]
    assert [c.text for c in table.conditions] == [
        "c.confirmed", "c.people >= 2", "c.kind == 'dine-in'"]


def test_a_guard_needing_several_fields_is_covered_without_hints() -> None:
    """Table.next needs three fields set at once: found by the search, no setup= given."""
    cover = transition_cover(order_flow()).require_complete()
    step = next(s for p in cover for s in p.steps if s.source == "Table")
    assert step.setup["confirmed"] is True


class NeverTable(Menu):
    """A Menu whose guard needs six severe allergies: the length is a boundary (six items),
    but no value tried has six severe ones."""

    name = "Menu"

    @transition(to="Table", when=lambda c, people: people >= 1
                and sum(a.severe for a in c.allergies) > 5, refused="too few allergies")
    async def next(self, ctx: RunContext[Order], people: int) -> None:
        """Call with the party's size."""


def test_an_uncovered_edge_names_the_guard_condition_never_met() -> None:
    from handoff import Flow
    from tests.feature_flows import Served, Table

    flow = Flow("never", context=Order, initial=NeverTable, states=[NeverTable, Table, Served],
                final=[Served])
    cover = transition_cover(flow, max_examples=60)
    assert cover.missing["Menu.next"] == (
        "no arguments/setup found that meet its guard condition(s) "
        "`sum((a.severe for a in c.allergies)) > 5`")


class SixTable(Menu):
    """A Menu whose guard needs six allergies: a collection's length gets boundary values."""

    name = "Menu"

    @transition(to="Table", when=lambda c, people: people >= 1 and len(c.allergies) > 5,
                refused="too few allergies")
    async def next(self, ctx: RunContext[Order], people: int) -> None:
        """Call with the party's size."""


def test_a_guard_over_a_collection_length_is_met_with_boundary_lengths() -> None:
    from handoff import Flow
    from handoff.testing import explore
    from tests.feature_flows import Served, Table

    flow = Flow("six", context=Order, initial=SixTable, states=[SixTable, Table, Served],
                final=[Served])
    cover = transition_cover(flow, max_examples=60)
    assert "Menu.next" not in cover.missing
    found = explore(flow, depth=2)
    assert ("Menu", "next") in found.taken
    assert not any(line.startswith("Menu.next") for line in found.unreached)
