"""Exhaustive exploration: every move sequence to a depth, the shortest counterexample."""

from __future__ import annotations

import json
import subprocess
import sys

from examples.callcenter import flow as callcenter
from handoff import Flow, RunContext, State, transition
from handoff.testing import explore
from tests.feature_flows import Order, Served, Table, order_flow, trip_flow


def test_the_correct_call_centre_has_no_counterexample_at_depth_5() -> None:
    # open_refund's body needs an account (set by a tool, which no guard reads): start with one
    result = explore(callcenter, depth=5, initial={"account_id": "4411"},
                     entry_conditions={"Billing": lambda c: c.verified})
    assert result.ok, result.describe()
    assert result.paths > 50 and result.steps >= result.paths
    # every transition of the table within 5 moves is taken by some sequence
    declared = {(s, t) for s in callcenter.states for t in callcenter.table[s]}
    assert result.taken == declared


class OffByOneMenu(State[Order]):
    """BUG: seats parties of 0 (the guard says `>= 0`, the rule is 1 to 12)."""

    name = "Menu"
    instructions = "Menu."

    @transition(to="Table", when=lambda c, people: 0 <= people <= 12, refused="1 to 12")
    async def next(self, ctx: RunContext[Order], people: int) -> None:
        """Call with the party's size."""
        ctx.userdata.people = people


def test_an_off_by_one_guard_is_found_with_the_shortest_counterexample() -> None:
    flow = Flow("order-bug", context=Order, initial=OffByOneMenu,
                states=[OffByOneMenu, Table, Served], final=[Served])
    result = explore(flow, depth=3, entry_conditions={"Table": lambda c: c.people >= 1})
    assert not result.ok
    assert [str(m) for m in result.counterexample or []] == ["await run.go('next', people=0)"]
    assert "entered Table by next from Menu" in result.problems[0]


def test_side_trips_and_shared_names_explore_cleanly() -> None:
    for flow in (trip_flow(), order_flow()):
        result = explore(flow, depth=4)
        assert result.ok, result.describe()
    trips = explore(trip_flow(), depth=3)
    assert ("Verify", "verified") in trips.taken


def test_handoff_check_explore_from_the_command_line() -> None:
    ok = subprocess.run([sys.executable, "-m", "handoff.cli", "check", "examples.callcenter:flow",
                         "--explore", "3", "--format", "json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)["explore"]
    assert report["ok"] and report["depth"] == 3 and report["paths"] > 0
    bad = subprocess.run([sys.executable, "-m", "handoff.cli", "check", "examples.callcenter:flow",
                          "--explore", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
