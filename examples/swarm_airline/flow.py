"""Airline customer service as a router with specialists: triage, flight modification
(cancel or change), lost baggage, each handing the customer back to triage.

Ported from OpenAI Swarm's airline example: repository openai/swarm, path
``examples/airline/`` (``configs/agents.py``, ``configs/tools.py``, ``data/routines/``,
``main.py``; MIT License, Copyright (c) 2024 OpenAI). Same six agents (one State each,
the two terminal outcomes added as states, below), same transfer function names, same
tools, prompts and policies word for word (``policies.py``), the same customer and flight
(``context.py``).

    Triage ─transfer_to_flight_modification─▶ FlightModification
    FlightModification ─transfer_to_flight_cancel─▶ FlightCancel
    FlightModification ─transfer_to_flight_change─▶ FlightChange ─change_flight─▶ FlightChange
    Triage ─transfer_to_lost_baggage─▶ LostBaggage
    FlightCancel | FlightChange | LostBaggage ─transfer_to_triage─▶ Triage
    FlightCancel | FlightChange | LostBaggage ─case_resolved─▶ Resolved
    any state ─escalate_to_agent─▶ Escalated

A customer with several requests goes Triage → specialist → Triage again and again; the
loop policy must not take that for a loop (``tests/test_port_swarm_airline.py``).

What the port needed from handoff: a transition per Swarm ``transfer_to_*`` function
(Swarm's "a function that returns an Agent"); the tools as LiveKit ``function_tool``s in
``tools = [...]`` (``tools.py``); the two context strings as a typed Context whose brief
is what ``triage_instructions`` interpolated; ``transfer_to_triage`` and
``case_resolved``, which the original repeats in each policy agent's ``functions``,
declared once on a ``Policy`` base; Swarm's whole-history-to-every-agent as
``history = "full+tools"``; ``parallel_tool_calls=False`` is handoff's rule anyway (one
transition per turn).

Departures, each for a reason:

* ``case_resolved`` ends the call in ``Resolved`` and ``escalate_to_agent`` hands it to
  a person in ``Escalated`` (in Swarm's REPL both return a string and the loop reads on;
  on a phone line a resolved case hangs up and an escalation is a transfer);
* ``escalate_to_agent`` is offered in every state, not only in the three policy agents,
  and is the flow's error transition: the loop and failure policy need somewhere to go;
* ``valid_to_change_flight`` checks a rule (more than 24 hours before departure,
  ``tools.CHANGE_CUTOFF_HOURS``) where the original always answers "eligible", and
  ``change_flight`` is a guarded transition that refuses until the check said yes (the
  original's ``change_flight`` succeeds whatever the check said, or if it never ran).

What the original lacks (found by porting it; each a test in
``tests/test_port_swarm_airline.py`` that fails the day it is gone):

* the policy prompt every specialist gets tells the model to call ``change_intent``,
  which no agent has (``transfer_to_triage`` is meant): handoff refuses the call and
  names the tools that exist;
* the flight modification agent has no way back: a customer who turns out to have lost
  a bag instead, or wants a human, stays with an agent told to "either ask clarifying
  questions, or call one of your functions" (cancel or change);
* a cancellation can get both a refund and flight credits (nothing stops the second);
* ``initiate_baggage_search`` always finds the bag, so the policy's "not found:
  escalate" step never happens;
* ``case_resolved`` can be called before any step of the policy was done: only the
  prompt asks for it.
"""

from __future__ import annotations

from handoff import Flow, RunContext, State, transition

from .context import FlightCall
from .policies import (
    FLIGHT_CANCELLATION_POLICY,
    FLIGHT_CHANGE_POLICY,
    FLIGHT_MODIFICATION_INSTRUCTIONS,
    LOST_BAGGAGE_POLICY,
    STARTER_PROMPT,
    TRIAGE_INSTRUCTIONS,
)
from .tools import initiate_baggage_search, initiate_flight_credits, initiate_refund, valid_to_change_flight


class Agent(State[FlightCall]):
    """A Swarm agent: each one sees the whole conversation, tool calls included."""

    history = "full+tools"


class Triage(Agent):
    """Finds the topic of the customer's request and transfers to the agent for it."""

    instructions = TRIAGE_INSTRUCTIONS

    @transition(to="FlightModification")
    async def transfer_to_flight_modification(self, ctx: RunContext[FlightCall]) -> None:
        """Call this function when the customer wants to cancel or change a flight."""

    @transition(to="LostBaggage")
    async def transfer_to_lost_baggage(self, ctx: RunContext[FlightCall]) -> None:
        """Call this function when the customer has lost their baggage."""


class FlightModification(Agent):
    """Finds out whether the customer wants to cancel or to change their flight."""

    instructions = FLIGHT_MODIFICATION_INSTRUCTIONS

    @transition(to="FlightCancel")
    async def transfer_to_flight_cancel(self, ctx: RunContext[FlightCall]) -> None:
        """Call this function when the customer wants to cancel their flight."""

    @transition(to="FlightChange")
    async def transfer_to_flight_change(self, ctx: RunContext[FlightCall]) -> None:
        """Call this function when the customer wants to change their flight."""


class Policy(Agent):
    """A policy agent (the original's "traversal" agents): follows one policy, then
    resolves the case or hands the customer back to triage."""

    @transition(to="Triage")
    async def transfer_to_triage(self, ctx: RunContext[FlightCall]) -> None:
        """Call this function when a user needs to be transferred to a different agent and a different policy.
        For instance, if a user is asking about a topic that is not handled by the current agent, call this function."""  # noqa: E501

    @transition(to="Resolved")
    async def case_resolved(self, ctx: RunContext[FlightCall]) -> None:
        """Call this function when the case is resolved and the customer has no further questions."""


class FlightCancel(Policy):
    """Cancels the flight for a refund or flight credits."""

    instructions = STARTER_PROMPT + FLIGHT_CANCELLATION_POLICY
    tools = [initiate_refund, initiate_flight_credits]


def _change_refused(call: FlightCall) -> str:
    if call.hours_to_departure is None:
        return "call valid_to_change_flight first"
    return "the customer is not eligible to change this flight (valid_to_change_flight said so)"


class FlightChange(Policy):
    """Changes the flight, if it is still eligible for a change."""

    instructions = STARTER_PROMPT + FLIGHT_CHANGE_POLICY
    tools = [valid_to_change_flight]

    @transition(to="FlightChange",
                when=lambda c: c.hours_to_departure is not None and c.hours_to_departure > 24,
                refused=_change_refused)
    async def change_flight(self, ctx: RunContext[FlightCall]) -> None:
        """Change the customer's flight, once valid_to_change_flight has said it is eligible."""
        ctx.userdata.changed_with_hours = ctx.userdata.hours_to_departure


class LostBaggage(Policy):
    """Searches for the customer's lost baggage."""

    instructions = STARTER_PROMPT + LOST_BAGGAGE_POLICY
    tools = [initiate_baggage_search]


class Resolved(Agent):
    """The case is resolved and the customer has no further questions: the call ends."""

    instructions = "The customer's case is resolved. Thank them for flying with us and say goodbye."


class Escalated(Agent):
    """A human agent takes the call over."""

    instructions = ("Tell the customer, with sympathy, that you are transferring them to a human agent "
                    "who will take it from here.")


@transition(to="Escalated")
async def escalate_to_agent(ctx: RunContext[FlightCall], reason: str | None = None) -> None:
    """Call this function if the user demands to talk to a supervisor or a human agent, or if
    the policy says to escalate.

    Args:
        reason: one line on why the customer needs a human agent.
    """
    ctx.userdata.escalation_reason = reason or "no reason given"


flow = Flow(
    "swarm_airline",
    context=FlightCall,
    initial=Triage,
    states=[Triage, FlightModification, FlightCancel, FlightChange, LostBaggage, Resolved, Escalated],
    final=[Resolved, Escalated],
    global_transitions=[escalate_to_agent],
    error_transition="escalate_to_agent",
)
