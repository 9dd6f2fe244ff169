"""History completed: ``+tools`` carries the transition call that made the handoff (with
its arguments), and ``full`` is the whole conversation whatever the previous state got."""

from __future__ import annotations

import json

from handoff import Context, Flow, RunContext, State, transition
from handoff.testing import ScriptedLLM, Turn, call


class Trip(Context):
    location: str | None = None


class Router(State[Trip]):
    """Routes the caller to a specialist."""

    instructions = "You route travel requests."

    @transition(to="CarRental", history="full+tools")
    async def to_car_rental(self, ctx: RunContext[Trip], location: str, dates: str) -> None:
        """Call for a car rental, with where and when."""
        ctx.userdata.location = location

    @transition(to="Hotels")
    async def to_hotels(self, ctx: RunContext[Trip]) -> None:
        """Call for a hotel."""


class CarRental(State[Trip]):
    """Rents cars."""

    instructions = "You rent cars."


class Hotels(State[Trip]):
    """Books hotels; sees only the last two messages."""

    instructions = "You book hotels."
    history = "last:2"

    @transition(to="Concierge")
    async def to_concierge(self, ctx: RunContext[Trip]) -> None:
        """Call for anything else."""


class Concierge(State[Trip]):
    """Sees the whole call."""

    instructions = "You help with anything."
    history = "full"


flow = Flow("trips", context=Trip, initial=Router, states=[Router, CarRental, Hotels, Concierge],
            final=[CarRental, Concierge])


def _calls(turn: Turn) -> list[tuple[str, dict[str, str]]]:
    return [(i.name, json.loads(i.arguments)) for i in turn.chat_ctx.items if i.type == "function_call"]


async def test_plus_tools_carries_the_handoff_call_with_its_arguments() -> None:
    model = ScriptedLLM(["Hello.", call("to_car_rental", location="Lisbon", dates="3-5 May"),
                         "A car in Lisbon from the 3rd, let me look."])
    async with flow.session(llm=model) as run:
        await run.session.run(user_input="I need a car in Lisbon from 3 to 5 May")
        assert run.state == "CarRental"
    first = model.turns[-1]
    assert first.state == "CarRental"
    assert _calls(first) == [("to_car_rental", {"location": "Lisbon", "dates": "3-5 May"})]
    outputs = [i for i in first.chat_ctx.items if i.type == "function_call_output"]
    assert [o.output for o in outputs] == ["Handed over to CarRental."]
    assert first.messages() == [("assistant", "Hello."),
                                ("user", "I need a car in Lisbon from 3 to 5 May")]


async def test_full_is_the_whole_call_after_a_state_that_got_a_part() -> None:
    model = ScriptedLLM(["Hello.", "Where to?", "Paris, noted.", call("to_hotels"),
                         "Hotels here.", "Sure.", call("to_concierge"), "Concierge here."])
    async with flow.session(llm=model) as run:
        for line in ("hi, I'm planning a trip", "Paris in June", "a hotel please",
                     "and a restaurant", "ask the concierge"):
            await run.session.run(user_input=line)
        assert run.state == "Concierge"
    hotels = next(t for t in model.turns if t.state == "Hotels")
    assert len(hotels.messages()) == 2  # last:2, as declared
    concierge = model.turns[-1]
    said = [text for role, text in concierge.messages() if role == "user"]
    assert said == ["hi, I'm planning a trip", "Paris in June", "a hotel please",
                    "and a restaurant", "ask the concierge"]
    assert _calls(concierge) == []  # plain "full": no tool calls


def test_a_last_n_policy_carries_the_same_from_the_recent_part_as_from_the_whole_call() -> None:
    """``whole_call(..., last=N)`` cuts each side to its last N caller and agent messages
    before merging (a handoff's cost must not grow with the call): what ``last:N`` carries
    is the same as from the whole call, tool calls between the kept messages included."""
    from livekit.agents import llm

    from handoff.history import HistoryPolicy, whole_call

    session = llm.ChatContext.empty()
    for i in range(40):
        session.add_message(role="user", content=f"caller {i}", created_at=float(4 * i))
        if i % 3 == 0:
            session.items.append(llm.FunctionCall(call_id=f"c{i}", name="lookup", arguments="{}",
                                                  created_at=float(4 * i + 1)))
            session.items.append(llm.FunctionCallOutput(call_id=f"c{i}", name="lookup",
                                                        output="ok", is_error=False,
                                                        created_at=float(4 * i + 2)))
        session.add_message(role="assistant", content=f"agent {i}", created_at=float(4 * i + 3))
    agent = llm.ChatContext(session.items[-7:])  # the current agent holds a recent part
    agent.add_message(role="system", content="instructions", created_at=0.5)
    for spec in ("last:1", "last:4", "last:6+tools", "last:200"):
        policy = HistoryPolicy.parse(spec)
        whole = policy.carry(whole_call(agent, session))
        recent = policy.carry(whole_call(agent, session, last=policy.count))
        assert [i.id for i in recent.items] == [i.id for i in whole.items], spec
