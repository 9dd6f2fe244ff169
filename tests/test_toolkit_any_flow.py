"""The toolkit drives any flow, and says what it did not see.

Free tools of ``tools = [...]`` and ``Flow(tools=...)`` with required arguments, a flow
without transitions, an ordinary tool named like another state's transition, hooks that
write the Context on every turn; explore's report of what it never reached, guards that
raise, collection lengths, types it has no value for, counterexamples as code, a side
trip's return covered through another path, the reset hook.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from handoff import RETURN, Context, Flow, RunContext, State, transition
from handoff.testing import FlowStateMachine, explore, transition_cover
from handoff.testing.movewatch import MoveWatch
from handoff.testing.offered import ordinary_tools, state_tools
from handoff.testing.strategies import model_arguments
from tests.flowgen import TIERS, router_flow, still_flow, triage_flow

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)
pytestmark = pytest.mark.usefixtures("quiet_handoff_logs")


def _settings(n: int, steps: int = 6) -> settings:
    return settings(max_examples=n, stateful_step_count=steps, deadline=None, database=None,
                    derandomize=True, suppress_health_check=list(HealthCheck))


# -- the session machine drives any flow -------------------------------------------------------
def test_every_ordinary_tool_is_known_with_the_states_that_offer_it() -> None:
    tools = ordinary_tools(router_flow().flow)
    assert tools["lookup"].states == ("Router",)                   # tools = [lookup]
    assert tools["take_note"].states == ("Router", "Billing", "Tech", "Human")  # Flow(tools=)
    assert tools["verify"].states == ("Router",)                   # a method tool
    model = tools["lookup"].arguments_model()
    assert model is not None and model.model_fields["query"].is_required()


def test_tool_arguments_always_carry_the_required_parameters() -> None:
    model = ordinary_tools(router_flow().flow)["lookup"].arguments_model()
    assert model is not None

    @settings(max_examples=30, database=None, derandomize=True)
    @given(model_arguments(model))
    def check(args: dict[str, Any]) -> None:
        assert isinstance(args["query"], str)

    check()


def test_free_and_flow_wide_tools_run_in_the_session_machine() -> None:
    corpus = router_flow()
    machine = FlowStateMachine(corpus.flow, mode="session", tools=corpus.tools,
                               entry_conditions=corpus.entry_conditions)
    run_state_machine_as_test(machine, settings=_settings(10))


def test_a_tool_the_flow_does_not_offer_is_refused_with_the_ones_it_does() -> None:
    with pytest.raises(ValueError, match=r"offers a tool named 'nope'.*lookup"):
        FlowStateMachine(router_flow().flow, mode="session", tools={"nope": {}})
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['q'\].*query"):
        FlowStateMachine(router_flow().flow, mode="session", tools={"lookup": {"q": st.just("")}})


@pytest.mark.parametrize("mode", ["pure", "session"])
def test_a_flow_without_transitions_is_driven(mode: str) -> None:
    corpus = still_flow()
    machine = FlowStateMachine(corpus.flow, mode=mode,  # type: ignore[arg-type]
                               tools=corpus.tools if mode == "session" else None)
    run_state_machine_as_test(machine, settings=_settings(8))


def test_a_tool_named_like_another_states_transition_is_a_tool_there() -> None:
    flow = triage_flow().flow
    assert "close" in state_tools(flow, "Intake") and "close" not in state_tools(flow, "Urgent")
    machine = FlowStateMachine(flow, mode="session", interruptions=False)
    run_state_machine_as_test(machine, settings=_settings(10))


def test_a_refused_move_is_judged_by_its_own_writes() -> None:
    """The watch sees a write between a move's request and its refusal (what the run
    would leave behind if it did not undo the move), and nothing before or after it."""

    async def walk() -> list[str]:
        corpus = triage_flow()
        with corpus.flow.new_run() as run:
            watch = MoveWatch()
            watch.watch(run)
            try:
                run.context.turns += 1                             # a hook, before the move
                watch.on_transition_requested(run, "assess", "llm")
                run.context.severity = 5                           # left behind by the move
                from handoff.records import Refusal
                watch.on_refusal(run, Refusal("Intake", "assess", "no", "body", 0.0))
                run.context.turns += 1                             # a hook, after the move
                return watch.problems(0, "assess")
            finally:
                watch.stop()

    problems = asyncio.run(walk())
    assert problems == ["assess: assess was refused (body) but left its own writes to "
                        "['severity']"]


# -- explore reports what it did not see ------------------------------------------------------
class Limits(Context):
    limit: float = 10.0


class Start(State[Limits]):
    """Start."""

    instructions = "Start."

    @transition(to="Big", when=lambda c: c.limit > 1000)
    async def go_big(self, ctx: RunContext[Limits]) -> None:
        """Call for a big one."""

    @transition(to="Big")
    async def zone(self, ctx: RunContext[Limits], day: datetime.date) -> None:
        """Call with a day."""


class Big(State[Limits]):
    """Big."""

    instructions = "Big."


def test_explore_lists_edges_and_guard_outcomes_never_reached_with_the_condition() -> None:
    flow = Flow("limits", context=Limits, initial=Start, states=[Start, Big], final=[Big],
                tiers=TIERS)
    result = explore(flow, depth=2, context_moves=False)
    assert result.ok
    assert "Start.go_big: never taken; condition never met: `c.limit > 1000`" in result.unreached
    assert ("Start.go_big: guard never allowed; condition never met: `c.limit > 1000`"
            in result.unreached)
    assert "Start.zone: never taken" in result.unreached
    assert any("Start.zone(day): no value of type date" in g for g in result.ungenerated)
    with pytest.raises(AssertionError, match="not everything was explored"):
        result.require_complete()
    # the boundary the guard states is a context move: with them, it is reached
    assert ("Start", "go_big") in explore(flow, depth=2).taken


def test_a_guard_that_raises_is_a_finding_not_a_refusal() -> None:
    corpus = router_flow("guard raises")
    result = explore(corpus.flow, depth=1)
    assert not result.ok
    assert any("its guard raised (RuntimeError: planted bug)" in p for p in result.problems)
    assert explore(corpus.flow, depth=1, allow_errors=True).ok


def test_a_counterexample_is_code_that_replays_it() -> None:
    corpus = router_flow("missing guard")
    result = explore(corpus.flow, depth=2, entry_conditions=corpus.entry_conditions)
    assert result.counterexample is not None
    lines = [str(m) for m in result.counterexample]
    assert lines == ["await run.go('to_billing')"]
    source = "async def replay(run):\n" + "".join(f"    {line}\n" for line in lines)
    namespace: dict[str, Any] = {}
    exec(source, namespace)

    async def again() -> bool:
        with corpus.flow.new_run() as run:
            await namespace["replay"](run)
            return corpus.entry_conditions[run.state](run.context)

    assert asyncio.run(again()) is False  # the replay enters Billing unverified again


def test_the_machine_sets_context_fields_by_name() -> None:
    machine = FlowStateMachine(router_flow().flow)
    strategy = machine.set_context.hypothesis_stateful_rule.arguments_strategies["fields"]
    fields = find(strategy, lambda f: "verified" in f)
    assert fields == {"verified": False}  # the field by name, with its value
    assert find(strategy, lambda f: "notes" in f) == {"notes": 0}  # one field at a time


def test_explore_rewinds_external_state_with_the_reset_hook() -> None:
    backend: list[str] = []
    calls: list[int] = []

    class Desk(Context):
        booked: bool = False

    class Open(State[Desk]):
        """Open."""

        instructions = "Open."

        @transition(to="Booked")
        async def book_morning(self, ctx: RunContext[Desk]) -> None:
            """Book the morning slot."""
            assert not backend, "a booking of another branch is still there"
            backend.append("morning")

        @transition(to="Booked")
        async def book_evening(self, ctx: RunContext[Desk]) -> None:
            """Book the evening slot."""
            assert not backend, "a booking of another branch is still there"
            backend.append("evening")

    class Booked(State[Desk]):
        """Booked."""

        instructions = "Booked."

    flow = Flow("reset", context=Desk, initial=Open, states=[Open, Booked], final=[Booked],
                tiers=TIERS)

    def reset() -> None:
        calls.append(1)
        backend.clear()

    assert explore(flow, depth=1, reset=reset).ok and calls
    backend.clear()
    assert not explore(flow, depth=1).ok  # without it the second branch sees the first's


# -- paths ---------------------------------------------------------------------------------------
class Trip(Context):
    verified: bool = False


class Lobby(State[Trip]):
    """Lobby."""

    instructions = "Lobby."

    @transition(to="Check")
    async def a_walk_in(self, ctx: RunContext[Trip]) -> None:
        """Walk straight into the check (no way back)."""

    @transition(to="Check", returns=True)
    async def check(self, ctx: RunContext[Trip]) -> None:
        """Get checked, then come back."""


class Check(State[Trip]):
    """Check."""

    instructions = "Check."

    @transition(to=RETURN)
    async def checked(self, ctx: RunContext[Trip]) -> None:
        """Done checking."""


def test_a_return_edge_is_covered_through_a_path_that_starts_the_side_trip() -> None:
    flow = Flow("trip", context=Trip, initial=Lobby, states=[Lobby, Check], tiers=TIERS)
    cover = transition_cover(flow)
    assert "Check.checked" not in cover.missing
    assert any([s.trigger for s in p.steps] == ["check", "checked"] for p in cover)


def test_the_machine_and_the_path_search_call_the_reset_hook() -> None:
    calls: list[str] = []
    corpus = still_flow()
    machine = FlowStateMachine(corpus.flow, reset=lambda: calls.append("machine"))
    run_state_machine_as_test(machine, settings=_settings(3, steps=2))
    assert calls.count("machine") == 3  # once per generated conversation

    async def reset() -> None:
        calls.append("paths")

    flow = Flow("trip", context=Trip, initial=Lobby, states=[Lobby, Check], tiers=TIERS)
    transition_cover(flow, reset=reset)
    assert "paths" in calls


def test_transition_cover_reports_guard_outcomes_it_never_saw() -> None:
    flow = Flow("limits", context=Limits, initial=Start, states=[Start, Big], final=[Big],
                tiers=TIERS)
    cover = transition_cover(flow, max_examples=30, arguments={"zone": {"day": "2024-01-01"}})
    assert "Start.go_big [guard refused]" not in cover.unseen  # the default limit says no
    assert "Start.go_big [guard allowed]" not in cover.unseen  # its boundary says yes

    def roomy(c: Limits) -> bool:
        room = c.limit > -1e300  # no single expression: no boundary to read
        return room

    class Open(State[Limits]):
        """Open."""

        instructions = "Open."

        @transition(to="Big", when=roomy)
        async def enter(self, ctx: RunContext[Limits]) -> None:
            """Enter."""

    always = Flow("always", context=Limits, initial=Open, states=[Open, Big], final=[Big],
                  tiers=TIERS)
    report = transition_cover(always, max_examples=20)
    assert report.unseen == {"Open.enter [guard refused]": "no value tried made the guard say no"}
    assert report.require_complete() is report  # a report, not a gap in the paths
    corpus = router_flow()
    seen = transition_cover(corpus.flow, max_examples=30)
    assert not any(k.startswith("Router.to_billing") for k in seen.unseen), seen.unseen
