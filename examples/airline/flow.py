"""Airline customer service: a triage agent hands over to an FAQ agent or a seat-booking agent.

Ported from the OpenAI Agents SDK's customer-service example: repository
openai/openai-agents-python, path ``examples/customer_service/main.py`` (MIT License,
Copyright (c) 2025 OpenAI). Same three agents (one State each), same handoff tool names
(``transfer_to_*``), same tools (``faq_lookup_tool``, ``update_seat``), same FAQ answers,
the same context fields and the same ``on_handoff`` hook (a random flight number).

    Triage ──transfer_to_faq_agent──▶ FAQ ──transfer_to_triage_agent──▶ Triage
    Triage ──transfer_to_seat_booking_agent──▶ SeatBooking ──transfer_to_triage_agent──▶ Triage

What the port needed from handoff: a transition per SDK handoff (the ``on_handoff``
hook is the transition's body); the SDK's ``RunContextWrapper[AirlineAgentContext]`` is
the flow's Context; the shared ``transfer_to_triage_agent`` is declared once in a base
both specialists subclass; the SDK's driver loop (``Runner.run`` with the last agent)
is what one ``AgentSession`` does. The SDK tools, module-level functions in the
original, are methods of the states that offer them (handoff on main had no
``tools=[...]`` when this was written).

What the original lacks (found by porting it and by ``tests/test_port_airline.py``):

* it never ends: there is no final agent and no way to finish a conversation (its loop
  reads input forever). ``handoff check --strict`` asks for a final state, so the port
  lets a call end in ``Triage``, where every conversation comes back to;
* ``on_seat_booking_handoff`` draws a new flight number on *every* handoff to the seat
  booking agent, so a customer who asks triage something and comes back has their flight
  changed under them (the toolkit's invariant "a flight number, once known, stays" fails
  after two visits);
* ``faq_lookup_tool`` checks the seat keywords (``"plane"``) before the wifi ones, so
  "Is there wifi on the plane?" is answered with the seat map;
* ``update_seat`` takes any confirmation number and any seat: nothing checks that the
  booking exists or that the seat is on the plane (the FAQ says 120 seats).

The port keeps all of them, as the original behaves; the tests name them. One addition:
``update_seat`` changes a booking, so the agent asks the customer to confirm the seat first
(``@confirm``, see docs/approvals.md); the original writes it at once.
"""

from __future__ import annotations

import random

from livekit.agents import ToolError

from handoff import Context, Flow, RunContext, State, confirm, function_tool, transition

### CONTEXT


class AirlineAgentContext(Context):
    """What the airline's agents share about the customer's booking."""

    passenger_name: str | None = None
    confirmation_number: str | None = None
    seat_number: str | None = None
    flight_number: str | None = None


### PROMPTS

HANDOFF_PROMPT_PREFIX = (
    "# System context\n"
    "You are one agent of a multi-agent system: each agent has its own instructions and "
    "tools and may hand the conversation to another by calling a `transfer_to_<agent>` "
    "function. Transfers happen in the background; never mention them to the customer.\n"
)


def faq_answer(question: str) -> str:
    """The original's ``faq_lookup_tool``: the first keyword group the question mentions."""
    question_lower = question.lower()
    if any(keyword in question_lower
           for keyword in ["bag", "baggage", "luggage", "carry-on", "hand luggage", "hand carry"]):
        return ("You are allowed to bring one bag on the plane. "
                "It must be under 50 pounds and 22 inches x 14 inches x 9 inches.")
    if any(keyword in question_lower for keyword in ["seat", "seats", "seating", "plane"]):
        return ("There are 120 seats on the plane. "
                "There are 22 business class seats and 98 economy seats. "
                "Exit rows are rows 4 and 16. "
                "Rows 5-8 are Economy Plus, with extra legroom. ")
    if any(keyword in question_lower
           for keyword in ["wifi", "internet", "wireless", "connectivity", "network", "online"]):
        return "We have free wifi on the plane, join Airline-Wifi"
    return "I'm sorry, I don't know the answer to that question."


### AGENTS


class Triage(State[AirlineAgentContext]):
    """Delegates the customer's request to the right agent."""

    instructions = (
        f"{HANDOFF_PROMPT_PREFIX} You are a helpful triaging agent. You can use your tools to "
        "delegate questions to other appropriate agents."
    )

    @transition(to="FAQ")
    async def transfer_to_faq_agent(self, ctx: RunContext[AirlineAgentContext]) -> None:
        """Handoff to the FAQ Agent agent to handle the request. A helpful agent that can
        answer questions about the airline."""

    @transition(to="SeatBooking")
    async def transfer_to_seat_booking_agent(self, ctx: RunContext[AirlineAgentContext]) -> None:
        """Handoff to the Seat Booking Agent agent to handle the request. A helpful agent
        that can update a seat on a flight."""
        # the original's on_seat_booking_handoff hook
        ctx.userdata.flight_number = f"FLT-{random.randint(100, 999)}"


class Specialist(State[AirlineAgentContext]):
    """An agent triage hands over to; it can hand back (the original appends this handoff
    to both specialists)."""

    @transition(to="Triage")
    async def transfer_to_triage_agent(self, ctx: RunContext[AirlineAgentContext]) -> None:
        """Handoff to the Triage Agent agent to handle the request. A triage agent that can
        delegate a customer's request to the appropriate agent."""


class FAQ(Specialist):
    """Answers airline questions from the FAQ."""

    instructions = f"""{HANDOFF_PROMPT_PREFIX}
    You are an FAQ agent. If you are speaking to a customer, you probably were transferred to from the triage agent.
    Use the following routine to support the customer.
    # Routine
    1. Identify the last question asked by the customer.
    2. Use the faq lookup tool to answer the question. Do not rely on your own knowledge.
    3. If you cannot answer the question, transfer back to the triage agent."""  # noqa: E501

    @function_tool(name="faq_lookup_tool", description="Lookup frequently asked questions.")
    async def faq_lookup_tool(self, question: str) -> str:
        return faq_answer(question)


class SeatBooking(Specialist):
    """Updates the seat of a booking."""

    instructions = f"""{HANDOFF_PROMPT_PREFIX}
    You are a seat booking agent. If you are speaking to a customer, you probably were transferred to from the triage agent.
    Use the following routine to support the customer.
    # Routine
    1. Ask for their confirmation number.
    2. Ask the customer what their desired seat number is.
    3. Use the update seat tool to update the seat on the flight.
    If the customer asks a question that is not related to the routine, transfer back to the triage agent. """  # noqa: E501

    @confirm("Shall I move booking {confirmation_number} to seat {new_seat}?")
    @function_tool
    async def update_seat(self, ctx: RunContext[AirlineAgentContext], confirmation_number: str,
                          new_seat: str) -> str:
        """Update the seat for a given confirmation number.

        Args:
            confirmation_number: The confirmation number for the flight.
            new_seat: The new seat to update to.
        """
        booking = ctx.userdata
        booking.confirmation_number = confirmation_number
        booking.seat_number = new_seat
        # the original asserts that the incoming handoff set the flight number
        if booking.flight_number is None:
            raise ToolError("Flight number is required")
        return f"Updated seat to {new_seat} for confirmation number {confirmation_number}"


flow = Flow(
    "airline",
    context=AirlineAgentContext,
    initial=Triage,
    states=[Triage, FAQ, SeatBooking],
    final=[Triage],  # the original never ends; a conversation may end back at triage
)
