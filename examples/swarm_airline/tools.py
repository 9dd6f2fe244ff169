"""The original's ``configs/tools.py`` as LiveKit ``function_tool``s, given to the states
that offer them with ``tools = [...]`` (the original's ``functions=[...]``).

Same names and the same replies; each writes what it did to the Context.
``valid_to_change_flight`` checks a rule where the original always answers "eligible"
(see ``CHANGE_CUTOFF_HOURS``); ``change_flight``, ``escalate_to_agent`` and
``case_resolved`` move the call, so they are transitions (flow.py).
"""

from __future__ import annotations

from livekit.agents import RunContext, function_tool

from . import context as clock
from .context import FlightCall

CHANGE_CUTOFF_HOURS = 24
"""A flight leaving in this many hours or fewer can no longer be changed. The original's
policy says "call valid_to_change_flight" and leaves the rule to the function, which
always says yes; this is the port's rule (an airline's usual 24-hour cutoff)."""


@function_tool
async def valid_to_change_flight(ctx: RunContext[FlightCall]) -> str:
    """Check whether the customer's flight can still be changed."""
    call = ctx.userdata
    hours = int((call.departure - clock.now()).total_seconds() // 3600)
    call.hours_to_departure = hours
    if hours > CHANGE_CUTOFF_HOURS:
        return "Customer is eligible to change flight"
    return (f"Customer is not eligible to change flight: it departs in {max(hours, 0)} hours, "
            f"and changes close {CHANGE_CUTOFF_HOURS} hours before departure")


@function_tool
async def initiate_refund(ctx: RunContext[FlightCall]) -> str:
    """Start the refund of the cancelled flight."""
    ctx.userdata.refund_initiated = True
    return "Refund initiated"


@function_tool
async def initiate_flight_credits(ctx: RunContext[FlightCall]) -> str:
    """Give the customer flight credits for the cancelled flight."""
    ctx.userdata.credits_initiated = True
    return "Successfully initiated flight credits"


@function_tool
async def initiate_baggage_search(ctx: RunContext[FlightCall]) -> str:
    """Start the search for the customer's lost baggage."""
    ctx.userdata.baggage_search_started = True
    return "Baggage was found!"
