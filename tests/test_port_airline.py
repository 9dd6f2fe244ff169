"""The airline customer-service port (OpenAI Agents SDK) tested with handoff.testing.

Pure and session machines (the LLM also calls the two ordinary tools), a transition
cover through real sessions, and the original's gaps the toolkit finds (named in
examples/airline/flow.py).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant

from examples.airline import demo
from examples.airline.flow import faq_answer, flow
from handoff.testing import FlowDriver, FlowPath, FlowStateMachine, call, load_profile, transition_cover
from handoff.validate import check

from .ports_support import PURE_EXAMPLES, SESSION_EXAMPLES, budget, finds, take_path

load_profile()
logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)

ENTRY = {"SeatBooking": lambda c: c.flight_number is not None}  # the original's assert
TOOLS = {
    "faq_lookup_tool": {"question": st.sampled_from(
        ["How many bags can I bring?", "Where are the exit rows?", "Is there internet?",
         "Do you serve meals?"])},
    "update_seat": {"confirmation_number": st.sampled_from(["LL0EZ6", "ABC123"]),
                    "new_seat": st.sampled_from(["23A", "4C", "99Z"])},
}

TestAirlineModel = budget(FlowStateMachine(flow, entry_conditions=ENTRY).TestCase, PURE_EXAMPLES)
# The machine may clear the flight number while the call is in SeatBooking (a context
# change drawn between moves); the original's update_seat then refuses, by design.
TOOL_ERRORS = {"update_seat": lambda args, error: "Flight number is required" in error}
TestAirlineConversations = budget(FlowStateMachine(
    flow, mode="session", entry_conditions=ENTRY, tools=TOOLS, tool_errors=TOOL_ERRORS).TestCase,
    SESSION_EXAMPLES)


def test_the_port_passes_check_strict() -> None:
    assert check(flow, strict=True) == []


COVER = transition_cover(flow).require_complete()


@pytest.mark.parametrize("path", COVER, ids=str)
async def test_every_transition_by_the_llm(path: FlowPath) -> None:
    await take_path(flow, path)


async def test_the_demo_changes_the_seat() -> None:
    assert await demo.main() == 0


async def test_seat_booking_updates_the_booking_through_its_tool() -> None:
    random.seed(3)
    async with FlowDriver(flow) as driver:
        await driver.turn(call("transfer_to_seat_booking_agent"))
        flight = driver.run.context.flight_number
        assert flight is not None and flight.startswith("FLT-") and 100 <= int(flight[4:]) <= 999
        await driver.turn(call("update_seat", confirmation_number="LL0EZ6", new_seat="23A"))
        booking = driver.run.context
        assert booking.seat_number is None  # asked first: "Shall I move booking LL0EZ6 ...?"
        await driver.turn(call("approve"), user="yes")
        assert (booking.confirmation_number, booking.seat_number) == ("LL0EZ6", "23A")
        await driver.turn(call("update_seat", confirmation_number="LL0EZ6", new_seat="4C"))
        await driver.turn(call("deny", reason="I'd rather keep 23A"), user="no, keep 23A")
        assert booking.seat_number == "23A"  # the customer said no: nothing was written
        await driver.turn(call("update_seat", confirmation_number="LL0EZ6", new_seat="99Z"))
        await driver.turn(call("approve"), user="yes")
        assert booking.seat_number == "99Z"  # gap: no seat 99Z on a 120-seat plane, accepted


def test_faq_answers_are_the_originals() -> None:
    assert faq_answer("Can I bring a carry-on?").startswith("You are allowed to bring one bag")
    assert faq_answer("How many seats?").startswith("There are 120 seats")
    assert faq_answer("Do you have internet?") == "We have free wifi on the plane, join Airline-Wifi"
    assert faq_answer("Do you serve meals?") == "I'm sorry, I don't know the answer to that question."


def test_gap_wifi_on_the_plane_is_answered_with_the_seat_map() -> None:
    assert faq_answer("Is there wifi on the plane?").startswith("There are 120 seats")


# -- the original's gaps, found by the toolkit ------------------------------------------
def test_toolkit_finds_the_flight_changing_under_the_customer() -> None:
    class FlightStays(FlowStateMachine(flow, context_updates=False)):  # type: ignore[misc]
        """Invariant a reviewer would write: a flight number, once known, stays."""

        first: Any = None

        @invariant()
        def flight_number_stays(self) -> None:
            if self._run is None:
                return
            now = self.run.context.flight_number
            if self.first is None:
                self.first = now
            assert now == self.first or now is None, f"flight changed: {self.first} -> {now}"

    finds(FlightStays, "flight changed")
