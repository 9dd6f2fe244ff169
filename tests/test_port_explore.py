"""`explore` finds a planted off-by-one guard in a copy of each port (the originals untouched).

Each planted copy is made here, by subclassing the shipped states; the depth at which
explore finds it (and, one less, does not) is asserted:

* survey, depth 5: ``behavioral_complete`` fires when two of the three behavioural
  answers are recorded instead of all three (a guard the original has, in code);
* insurance, depth 4: the guard closing the original's "coverage 0 costs nothing" gap
  written ``coverage_amount >= 0`` instead of ``> 0``;
* airline, depth 6 (conversation alone): a cap on hand-backs to triage written
  ``handbacks <= 2`` instead of ``< 2``;
* swarm_airline, depth 4: the port's change rule (more than 24 hours before departure)
  written ``hours_to_departure >= 24`` instead of ``> 24``;
* healthcare, depth 2: ``confirm_payment_proceeds`` accepting 0, in
  tests/test_port_healthcare.py next to the port.

The right guard passes at the same depth or deeper, so each test fails if explore stops
seeing the boundary (or starts seeing bugs that are not there).
"""

from __future__ import annotations

import importlib
from typing import Any

from handoff import Flow, RunContext, transition
from handoff.testing import explore

survey = importlib.import_module("examples.survey.flow")  # the package re-exports `flow`

ENTRY = {"Closing": lambda c: None not in (c.strengths, c.weaknesses, c.work_style)}
KNOWN = {"email": "kim@example.com", "strengths": "focus", "weaknesses": "impatience"}


def _two_of_three(c: Any) -> bool:  # the planted bug: >= 2 where all 3 are needed
    return sum(v is not None for v in (c.strengths, c.weaknesses, c.work_style)) >= 2


class PlantedBehavioral(survey.Behavioral):  # type: ignore[name-defined,misc]
    name = "Behavioral"

    @transition(to="Closing", llm=False, when=_two_of_three, refused="not all recorded")
    async def behavioral_complete(self) -> None:
        """Taken by code once strengths, weaknesses and work style are all recorded."""


PLANTED = Flow("survey_planted", context=survey.Screening, initial=survey.Intro,
               states=[survey.Intro, survey.Email, survey.Commute, survey.Experience,
                       PlantedBehavioral, survey.Closing, survey.Disqualified],
               final=[survey.Closing, survey.Disqualified])


def test_explore_passes_the_survey_as_ported() -> None:
    assert explore(survey.flow, depth=5, entry_conditions=ENTRY, initial=KNOWN).counterexample is None


def test_explore_finds_the_planted_off_by_one_at_depth_5() -> None:
    found = explore(PLANTED, depth=5, entry_conditions=ENTRY, initial=KNOWN)
    assert found.counterexample is not None
    moves = [m.attempt.trigger for m in found.counterexample if m.attempt is not None]
    assert moves[-1] == "behavioral_complete" and len(moves) == 5
    assert explore(PLANTED, depth=4, entry_conditions=ENTRY, initial=KNOWN).counterexample is None


# -- insurance ------------------------------------------------------------------------------
# The original has no guard: ``update_coverage`` takes any coverage, and a coverage of 0
# gives a premium of 0 (a gap examples/insurance/flow.py names). The guard a maintainer
# adds to close it is ``coverage_amount > 0``; the planted copy writes ``>= 0``. The
# entry condition "a quote costs something" is the spec. Depth 4 reaches it:
# collect_age → collect_marital_status → calculate_quote → update_coverage(0).

insurance = importlib.import_module("examples.insurance.flow")

COSTS_SOMETHING = {"QuoteResults": lambda c: c.monthly_premium is not None and c.monthly_premium > 0}


def _results_with(guard: Any) -> type:
    class Results(insurance.QuoteResults):  # type: ignore[name-defined,misc]
        name = "QuoteResults"

        @transition(to="QuoteResults", when=guard, refused="the coverage must be above 0")
        async def update_coverage(self, ctx: RunContext[Any], coverage_amount: int, deductible: int) -> None:
            """Recalculate quote with new coverage options"""
            await insurance.QuoteResults.update_coverage.func(self, ctx, coverage_amount, deductible)

    return Results


def _insurance(results: type, name: str) -> Flow[Any]:
    return Flow(name, context=insurance.Quote, initial=insurance.Initial,
                states=[insurance.Initial, insurance.MaritalStatus, insurance.QuoteCalculation,
                        results, insurance.End], final=[insurance.End])


INSURANCE_FIXED = _insurance(_results_with(lambda c, coverage_amount, deductible: coverage_amount > 0),
                             "insurance_fixed")
INSURANCE_PLANTED = _insurance(
    _results_with(lambda c, coverage_amount, deductible: coverage_amount >= 0),  # planted: >= 0
    "insurance_planted")


def test_explore_finds_the_insurance_gap_the_port_keeps() -> None:
    found = explore(insurance.flow, depth=4, entry_conditions=COSTS_SOMETHING)
    assert [m.attempt.trigger for m in found.counterexample or [] if m.attempt] == [
        "collect_age", "collect_marital_status", "calculate_quote", "update_coverage"]


def test_explore_passes_the_insurance_with_the_right_guard() -> None:
    found = explore(INSURANCE_FIXED, depth=5, entry_conditions=COSTS_SOMETHING)
    assert found.ok and ("QuoteResults", "update_coverage") in found.taken


def test_explore_finds_the_planted_insurance_off_by_one_at_depth_4() -> None:
    found = explore(INSURANCE_PLANTED, depth=4, entry_conditions=COSTS_SOMETHING)
    assert found.counterexample is not None
    last = found.counterexample[-1].attempt
    assert last is not None and last.trigger == "update_coverage"
    assert last.arguments["coverage_amount"] == 0 and len(found.counterexample) == 4
    assert explore(INSURANCE_PLANTED, depth=3, entry_conditions=COSTS_SOMETHING).ok


# -- airline --------------------------------------------------------------------------------
# The original has no guard at all, and nothing stops triage and a specialist handing a
# customer back and forth (the SDK bounds one input's agent turns, ``max_turns``; a voice
# call has no such bound). The guard a port adds: at most two hand-backs to triage,
# ``c.handbacks < 2``; the planted copy writes ``<= 2``. Found by conversation alone
# (no code setting the counter): depth 6 is FAQ, back, FAQ, back, FAQ, back.

airline = importlib.import_module("examples.airline.flow")


class Counted(airline.AirlineAgentContext):  # type: ignore[name-defined,misc]
    handbacks: int = 0


AT_MOST_TWO = {"Triage": lambda c: c.handbacks <= 2}


def _airline(guard: Any, name: str) -> Flow[Any]:
    class Back(airline.Specialist):  # type: ignore[name-defined,misc]
        @transition(to="Triage", when=guard, refused="handed back twice already: stay")
        async def transfer_to_triage_agent(self, ctx: RunContext[Any]) -> None:
            """Handoff to the Triage Agent agent to handle the request."""
            ctx.userdata.handbacks += 1

    class FAQ(Back, airline.FAQ):  # type: ignore[name-defined,misc]
        name = "FAQ"

    class SeatBooking(Back, airline.SeatBooking):  # type: ignore[name-defined,misc]
        name = "SeatBooking"

    return Flow(name, context=Counted, initial=airline.Triage,
                states=[airline.Triage, FAQ, SeatBooking], final=[airline.Triage])


AIRLINE_FIXED = _airline(lambda c: c.handbacks < 2, "airline_fixed")
AIRLINE_PLANTED = _airline(lambda c: c.handbacks <= 2, "airline_planted")  # planted: <= 2


def test_explore_passes_the_airline_with_the_right_guard() -> None:
    found = explore(AIRLINE_FIXED, depth=7, entry_conditions=AT_MOST_TWO, context_moves=False)
    assert found.ok and ("SeatBooking", "transfer_to_triage_agent") in found.taken


def test_explore_finds_the_planted_airline_off_by_one_at_depth_6() -> None:
    found = explore(AIRLINE_PLANTED, depth=6, entry_conditions=AT_MOST_TWO, context_moves=False)
    assert found.counterexample is not None and len(found.counterexample) == 6
    assert found.counterexample[-1].attempt is not None
    assert found.counterexample[-1].attempt.trigger == "transfer_to_triage_agent"
    assert explore(AIRLINE_PLANTED, depth=5, entry_conditions=AT_MOST_TWO, context_moves=False).ok


# -- swarm airline --------------------------------------------------------------------------
# The original's ``valid_to_change_flight`` always says yes; the port's rule is "more than
# 24 hours before departure", the guard of ``change_flight``: ``hours_to_departure > 24``.
# The planted copy writes ``>= 24``. The spec, an entry condition: a changed flight was
# changed more than 24 hours out. Depth 4: transfer_to_flight_modification,
# transfer_to_flight_change, code setting hours_to_departure to 24 (a boundary read from
# the guard), change_flight.

swarm = importlib.import_module("examples.swarm_airline.flow")

CHANGED_IN_TIME = {"FlightChange": lambda c: c.changed_with_hours is None or c.changed_with_hours > 24}


def _swarm(guard: Any, name: str) -> Flow[Any]:
    class FlightChange(swarm.FlightChange):  # type: ignore[name-defined,misc]
        name = "FlightChange"

        @transition(to="FlightChange", when=guard, refused="not eligible for a change")
        async def change_flight(self, ctx: RunContext[Any]) -> None:
            """Change the customer's flight, once valid_to_change_flight has said it is eligible."""
            await swarm.FlightChange.change_flight.func(self, ctx)

    states = [FlightChange if s is swarm.FlightChange else s for s in swarm.flow.states.values()]
    return Flow(name, context=swarm.FlightCall, initial=swarm.Triage, states=states,
                final=[swarm.Resolved, swarm.Escalated], global_transitions=[swarm.escalate_to_agent],
                error_transition="escalate_to_agent")


SWARM_PLANTED = _swarm(lambda c: c.hours_to_departure is not None and c.hours_to_departure >= 24,
                       "swarm_airline_planted")  # planted: >= 24


def test_explore_passes_the_swarm_airline_as_ported() -> None:
    found = explore(swarm.flow, depth=5, entry_conditions=CHANGED_IN_TIME)
    assert found.ok and ("FlightChange", "change_flight") in found.taken


def test_explore_finds_the_planted_swarm_airline_off_by_one_at_depth_4() -> None:
    found = explore(SWARM_PLANTED, depth=4, entry_conditions=CHANGED_IN_TIME)
    assert found.counterexample is not None and len(found.counterexample) == 4
    last = found.counterexample[-1].attempt
    assert last is not None and last.trigger == "change_flight"
    assert explore(SWARM_PLANTED, depth=3, entry_conditions=CHANGED_IN_TIME).ok
