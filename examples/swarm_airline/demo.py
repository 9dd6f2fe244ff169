"""`python -m examples.swarm_airline.demo`: a customer with three requests in a row —
change the flight, find a lost bag, then cancel after all — each through triage."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from handoff.testing import call

from .._demo import play_scripted
from . import context as clock
from .context import FlightCall
from .flow import flow

CALLER = [
    "Hi, I need to change my flight to Los Angeles.",
    "It's flight 1919 from LaGuardia. Something came up at work.",
    "The day before works, and the fare difference is fine.",
    "Thanks. Also, my bag never arrived after my last trip.",
    "Great. Actually, I'd rather cancel flight 1919 altogether.",
    "A refund, please.",
    "No, that's everything. Thank you!",
]

AGENT_SCRIPT: list[Any] = [
    "Hello, how can I help you today?",
    call("transfer_to_flight_modification"),
    call("transfer_to_flight_change"),
    "I can help with that. Which flight is it, and why do you need to change it?",
    call("valid_to_change_flight"),
    "Your flight can be changed. The same flight one day earlier has seats, "
    "with a fare difference of $50. Shall I change it?",
    call("change_flight"),
    "Done: your flight is changed to the day before. Is there anything else?",
    call("transfer_to_triage"),
    call("transfer_to_lost_baggage"),
    call("initiate_baggage_search"),
    "I'm sorry about your bag. Good news: we found it, and we'll deliver it to your address. "
    "Anything else?",
    call("transfer_to_triage"),
    call("transfer_to_flight_modification"),
    call("transfer_to_flight_cancel"),
    "Flight 1919 from LaGuardia to Los Angeles, then. Would you like a refund or flight credits?",
    call("initiate_refund"),
    "Your refund is initiated and will be processed within 3-5 business days. Anything else?",
    call("case_resolved"),
    "Thank you for flying with us. Goodbye!",
]


async def main() -> int:
    booking = FlightCall(departure=clock.now() + timedelta(days=3))  # still open for changes
    run = await play_scripted(flow, CALLER, AGENT_SCRIPT, context=booking)
    done = run.context
    ok = (done.changed_with_hours is not None and done.baggage_search_started
          and done.refund_initiated and run.state == "Resolved")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
