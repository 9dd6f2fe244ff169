"""Abandoned and chosen returns, and notes from choosing bodies.

A caller breaks off a task for another and gives the first up: the side trip's frame is
dropped (``abandons=True``) with a record. With two interrupted tasks on the stack, a return
goes to the one the caller picks (``to=RETURN, back_to=[...]``), dropping the frames above
it. A body that chooses its target (``to=[...]``) leaves a note with :class:`Chosen`. All
through real AgentSessions with the ScriptedLLM.
"""

from __future__ import annotations

import pytest

from handoff import (
    RETURN,
    Chosen,
    Context,
    Flow,
    FlowDefinitionError,
    RunContext,
    State,
    TransitionRefused,
    transition,
)
from handoff.events import EventLog, MemoryEventStore
from handoff.testing import ScriptedLLM, call


class Errands(Context):
    pass


class Main(State[Errands]):
    """Asks what the caller needs."""

    instructions = "You help with errands."

    @transition(to="Booking")
    async def book(self, ctx: RunContext[Errands]) -> None:
        """Call to book a table."""


class Booking(State[Errands]):
    """Books a table; the caller may break off to pay a bill or ask a question."""

    instructions = "You book tables."

    @transition(to="Payment", returns=True)
    async def pay_first(self, ctx: RunContext[Errands]) -> None:
        """Call when the caller wants to pay a bill before going on."""

    @transition(to="Faq", returns=True)
    async def question(self, ctx: RunContext[Errands]) -> None:
        """Call for a question."""

    @transition(to=["Booked", "NoTable"])
    async def confirm(self, ctx: RunContext[Errands], time: str) -> Chosen:
        """Call to book the table at the time the caller chose."""
        if time == "20:00":
            return Chosen("Booked", note=f"Table booked for {time}; read it back.")
        return Chosen("NoTable", note=f"Nothing free at {time}.")


class Payment(State[Errands]):
    """Pays a bill; the caller may break off again."""

    instructions = "You take payments."

    @transition(to="Faq", returns=True)
    async def question(self, ctx: RunContext[Errands]) -> None:
        """Call for a question."""

    @transition(to=RETURN)
    async def paid(self, ctx: RunContext[Errands]) -> None:
        """Call once the bill is paid."""


class Faq(State[Errands]):
    """Answers a question, then goes back to a task the caller picks, or gives them up."""

    instructions = "You answer questions."

    @transition(to=RETURN, back_to=["Booking", "Payment"])
    async def resume(self, ctx: RunContext[Errands], task: str) -> Chosen:
        """Call when the caller says which interrupted task to continue."""
        return Chosen(task, note=f"The caller chose to continue with {task}.")

    @transition(to="Main", abandons=True)
    async def give_up(self, ctx: RunContext[Errands]) -> None:
        """Call when the caller no longer wants the task they broke off."""


class Booked(State[Errands]):
    """The table is booked."""

    instructions = "The table is booked."


class NoTable(State[Errands]):
    """No table was free."""

    instructions = "No table was free."


flow = Flow("errands", context=Errands, initial=Main,
            states=[Main, Booking, Payment, Faq, Booked, NoTable], final=[Booked, NoTable])


async def test_a_caller_gives_up_the_interrupted_task() -> None:
    model = ScriptedLLM(["Hello.", call("book"), "Booking.", call("question"), "Ask away.",
                         call("give_up"), "Sure, what else?", "Anything else?"])
    store = MemoryEventStore()
    events = EventLog(store).install(flow)
    try:
        async with flow.session(llm=model) as run:
            events.track(run, "errands-1")
            for line in ("a table please", "wait, a question first", "forget the table"):
                await run.session.run(user_input=line)
            assert run.state == "Main" and run.return_stack == []
            assert run.log[-1].trigger == "give_up" and run.log[-1].dropped == ("Booking",)
            await run.session.run(user_input="nothing, thanks")
            assert run.return_stack == []  # not left behind for the rest of the call
        await events.aclose()
    finally:
        flow.observers.remove(events)
    moves = [e.data for e in await store.events("errands-1") if e.kind == "transition"]
    assert [m.get("dropped") for m in moves] == [None, None, ["Booking"]]


async def test_a_return_goes_to_the_task_the_caller_picks() -> None:
    model = ScriptedLLM(["Hello.", call("book"), "Booking.", call("pay_first"), "Paying.",
                         call("question"), "Ask away.",
                         call("resume", task="Booking"), "Back to your table."])
    async with flow.session(llm=model) as run:
        for line in ("a table please", "let me pay my bill first", "a question",
                     "let's do the table"):
            await run.session.run(user_input=line)
        assert run.state == "Booking" == run.session.current_agent.id
        assert run.return_stack == []
        assert (run.log[-1].source, run.log[-1].target, run.log[-1].dropped) == (
            "Faq", "Booking", ("Payment",))
    assert "The caller chose to continue with Booking." in model.turns[-1].instructions


async def test_a_frame_not_on_the_stack_or_not_declared_is_refused() -> None:
    model = ScriptedLLM(["Hello.", call("book"), "Booking.", call("question"), "Ask away.",
                         call("resume", task="Payment"), "Sorry.", call("resume", task="Main"),
                         "Sorry again."])
    async with flow.session(llm=model) as run:
        for line in ("a table please", "a question", "back to my payment", "to the start"):
            await run.session.run(user_input=line)
        assert run.state == "Faq" and run.return_stack == ["Booking"]
        not_interrupted, undeclared = run.refusals[-2:]
        assert not_interrupted.kind == "body" and "did not interrupt" in not_interrupted.reason
        assert "the tasks it can go back to: Booking" in not_interrupted.reason
        assert undeclared.kind == "error" and "not one of its back_to frames" in undeclared.reason
        with pytest.raises(TransitionRefused, match="did not interrupt"):
            await run.go("resume", task="Payment")


async def test_a_choosing_body_leaves_a_note() -> None:
    model = ScriptedLLM(["Hello.", call("book"), "Booking.", call("confirm", time="20:00"),
                         "Your table is booked for eight."])
    async with flow.session(llm=model) as run:
        await run.session.run(user_input="a table please")
        await run.session.run(user_input="at eight")
        assert run.state == "Booked"
    assert model.turns[-1].instructions.endswith(
        "Note from the previous agent: Table booked for 20:00; read it back.")


def test_back_to_frames_are_checked_when_the_flow_is_built() -> None:
    class Lost(State[Errands]):
        """Goes back to a state that never starts a side trip."""

        instructions = "Lost."

        @transition(to=RETURN, back_to=["Main"])
        async def back(self, ctx: RunContext[Errands]) -> str:
            """Back."""
            return "Main"

    with pytest.raises(FlowDefinitionError, match=r"bad-return-frame.*'Main'.*starts no side trip"):
        Flow("lost", context=Errands, initial=Main, states=[Main, Booking, Payment, Faq, Booked,
                                                             NoTable, Lost], final=[Booked])
    with pytest.raises(FlowDefinitionError, match="back_to= is for a to=RETURN transition"):
        @transition(to="Main", back_to=["Booking"])
        async def wrong(ctx: RunContext[Errands]) -> None:
            """Wrong."""


def test_diagrams_draw_the_picked_frames_and_the_dropped_task() -> None:
    from handoff.diagram import to_dot, to_mermaid

    for text in (to_dot(flow).source, to_mermaid(flow)):
        assert "the caller picks: Booking, Payment" in text
        assert "drops the interrupted task" in text
