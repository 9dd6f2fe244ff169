"""`python -m examples.airline.demo`: a customer asks about baggage, then changes their seat."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from handoff.testing import call

from .._demo import play_scripted
from .flow import flow

CALLER = [
    "How much luggage can I bring?",
    "Thanks. I'd also like to change my seat.",
    "My confirmation number is LL0EZ6.",
    "Seat 23A, please.",
    "Yes, go ahead.",
    "Can you tell me the wifi network name?",
]

AGENT_SCRIPT: list[Any] = [
    "Hello, how can I help you today?",
    call("transfer_to_faq_agent"),
    call("faq_lookup_tool", question="How much luggage can I bring?"),
    "You can bring one bag, under 50 pounds and 22 x 14 x 9 inches.",
    call("transfer_to_triage_agent"),
    call("transfer_to_seat_booking_agent"),
    "I can help with your seat. What is your confirmation number?",
    "Thanks. Which seat would you like?",
    call("update_seat", confirmation_number="LL0EZ6", new_seat="23A"),
    # the agent asks "Shall I move booking LL0EZ6 to seat 23A?"; the customer says yes
    call("approve"),
    "Done: you are now in seat 23A.",
    call("transfer_to_triage_agent"),
    call("transfer_to_faq_agent"),
    call("faq_lookup_tool", question="What is the wifi network name?"),
    "We have free wifi on the plane: join Airline-Wifi.",
]


async def main() -> int:
    random.seed(7)  # the original's on_handoff hook draws the flight number at random
    run = await play_scripted(flow, CALLER, AGENT_SCRIPT)
    return 0 if run.context.seat_number == "23A" else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
