"""Approval before actions (issue 23 item 2): ``confirm=`` on a transition, ``@confirm`` on
a tool. Through real AgentSessions with the ScriptedLLM: the agent asks in its own words
(a LiveKit AgentTask), the caller's line decides; granted, denied (the reason reaches the
LLM), interrupted, timed out, and the session closing while asking. Nothing runs before
the yes, nothing runs twice, invariant 1 holds between turns."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

import pytest
from livekit.agents import AgentSession, AgentTask, RunContext, function_tool
from pydantic import Field

from handoff import Approval, Context, Flow, FlowRun, State, confirm, transition
from handoff.approval import ApprovalRecord
from handoff.diagram import to_mermaid
from handoff.errors import FlowDefinitionError
from handoff.events import EventLog, MemoryEventStore
from handoff.redaction import REDACTED
from handoff.snapshot import snapshot
from handoff.testing import ScriptedLLM, Turn, answering, call, settle
from handoff.testing.audio import EspeakTTS, RealtimeAudioOutput, espeak_available


class Ticket(Context):
    cancelled: list[str] = []
    refunds: list[int] = []


class Desk(State[Ticket]):
    """Looks after the caller's ticket."""

    instructions = "You are the ticket desk."

    @confirm("Shall I refund {amount} euros?")
    @function_tool
    async def refund(self, ctx: RunContext[Ticket], amount: int) -> str:
        """Refund the caller."""
        ctx.userdata.refunds.append(amount)
        return f"Refunded {amount} euros."

    @transition(to="Cancelled", confirm="Shall I cancel ticket {ticket}?")
    async def cancel(self, ctx: RunContext[Ticket], ticket: str) -> None:
        """Cancel the caller's ticket."""
        ctx.userdata.cancelled.append(ticket)


class Cancelled(State[Ticket]):
    """The ticket is cancelled."""

    instructions = "Say the ticket is cancelled."


class Steps:
    """An observer: every approval step, and a future for the first decision."""

    def __init__(self) -> None:
        self.records: list[ApprovalRecord] = []
        self.decided: asyncio.Future[ApprovalRecord] = asyncio.get_running_loop().create_future()

    def on_transition(self, run: Any, record: Any) -> None: ...

    def on_refusal(self, run: Any, refusal: Any) -> None: ...

    def on_approval(self, run: Any, record: ApprovalRecord) -> None:
        self.records.append(record)
        if record.outcome != "asked" and not self.decided.done():
            self.decided.set_result(record)


def make_flow(steps: Steps, states: list[type[State[Ticket]]] | None = None) -> Flow[Ticket]:
    states = states or [Desk, Cancelled]
    flow = Flow("tickets", context=Ticket, initial=states[0], states=states, final=[Cancelled])
    flow.observers.append(steps)
    return flow


def policy(turn: Turn) -> Any:
    if turn.agent_id == "Desk" and not turn.answering_tool:
        if turn.last_user_text == "refund please":
            return call("refund", amount=20)
        if turn.last_user_text == "cancel please":
            return call("cancel", ticket="T-7")
    return "Okay."


async def recorded_call(flow: Flow[Ticket], llm: ScriptedLLM, store: Any, call_id: str,
                        answer: str, steps: Steps) -> None:
    """A call asking to cancel, answered with ``answer``, in ``store``'s event log."""
    log = EventLog(store).install(flow)
    async with flow.session(llm=llm) as run:
        log.track(run, call_id)
        await run.session.run(user_input="cancel please")
        await run.session.run(user_input=answer)
        await asyncio.wait_for(steps.decided, 10)
        await settle(run)
    assert await log.flush(10)


def check_invariant_1(run: FlowRun[Any]) -> None:
    agent = run.session.current_agent
    assert run.agent is not None and run.agent.id == run.state
    assert agent is run.agent or (run.tasks and agent is run.tasks[-1]
                                  and isinstance(agent, AgentTask)), (agent.id, run.state)


def said(run: FlowRun[Any]) -> list[str]:
    return [i.text_content or "" for i in run.session.history.items
            if i.type == "message" and i.role == "assistant"]


def tool_errors(llm: ScriptedLLM) -> list[str]:
    return [str(o.output) for t in llm.turns if t.agent_id == "Desk"
            for o in t.tool_outputs() if o.is_error]


@pytest.mark.parametrize(("line", "question"), [
    ("cancel please", "Shall I cancel ticket T-7?"), ("refund please", "Shall I refund 20 euros?")])
async def test_granted_runs_the_action_once_after_the_yes(line: str, question: str) -> None:
    steps = Steps()
    llm = ScriptedLLM(answering(policy))
    async with make_flow(steps).session(llm=llm) as run:
        await run.session.run(user_input=line)
        check_invariant_1(run)
        assert [t.id for t in run.tasks] == ["approval"] and question in said(run)
        assert (run.state, run.context.cancelled, run.context.refunds) == ("Desk", [], [])
        await run.session.run(user_input="yes please")
        await asyncio.wait_for(steps.decided, 10)
        await settle(run)
        check_invariant_1(run)
        if line == "cancel please":
            assert run.state == "Cancelled" and run.context.cancelled == ["T-7"]
            assert [r.trigger for r in run.log] == ["cancel"]
        else:
            assert run.state == "Desk" and run.context.refunds == [20]
        assert run.refusals == []  # approve is the task's tool, not a name the model made up
    assert [(r.outcome, r.question, r.reason) for r in steps.records] == [
        ("asked", question, None), ("granted", question, None)]


@pytest.mark.parametrize(("line", "action"), [("cancel please", "cancel"), ("refund please", "refund")])
async def test_denied_tells_the_llm_why_and_changes_nothing(line: str, action: str) -> None:
    steps = Steps()
    llm = ScriptedLLM(answering(policy))
    async with make_flow(steps).session(llm=llm) as run:
        await run.session.run(user_input=line)
        await run.session.run(user_input="no, I found the receipt")
        await asyncio.wait_for(steps.decided, 10)
        await settle(run)
        check_invariant_1(run)
        assert (run.state, run.context.cancelled, run.context.refunds, run.log) == (
            "Desk", [], [], [])
        errors = tool_errors(llm)
        assert len(errors) == 1 and f"did not approve {action} (no, I found the receipt)" in errors[0]
        if action == "cancel":
            assert run.refusals[-1].kind == "denied"
    assert steps.records[-1].outcome == "denied"
    assert steps.records[-1].reason == "no, I found the receipt"


async def test_an_unrelated_question_is_answered_and_the_question_stays_open() -> None:
    steps = Steps()
    async with make_flow(steps).session(llm=ScriptedLLM(answering(policy))) as run:
        await run.session.run(user_input="refund please")
        await run.session.run(user_input="how long does it take?")
        check_invariant_1(run)
        assert [t.id for t in run.tasks] == ["approval"] and run.context.refunds == []
        assert not steps.decided.done()
        await run.session.run(user_input="ok")
        await asyncio.wait_for(steps.decided, 10)
        await settle(run)
        assert run.context.refunds == [20]


async def test_two_questions_in_one_turn_are_asked_one_after_the_other() -> None:
    """The model calls a @confirm tool twice at once: one question at a time, each answer
    decides its own call, each runs at most once."""
    def two(turn: Turn) -> Any:
        if turn.agent_id == "Desk" and not turn.answering_tool and turn.last_user_text == "two":
            return [call("refund", amount=20), call("refund", amount=30)]
        return policy(turn)

    steps = Steps()
    async with make_flow(steps).session(llm=ScriptedLLM(answering(two))) as run:
        await run.session.run(user_input="two")
        assert said(run)[-1] == "Shall I refund 20 euros?"
        await run.session.run(user_input="no")
        await settle(run)
        assert said(run)[-1] == "Shall I refund 30 euros?" and run.context.refunds == []
        await run.session.run(user_input="yes")
        await settle(run)
        check_invariant_1(run)
        assert run.tasks == () and run.context.refunds == [30]
    assert [(r.outcome, r.question[-9:]) for r in steps.records] == [
        ("asked", "20 euros?"), ("denied", "20 euros?"), ("asked", "30 euros?"),
        ("granted", "30 euros?")]


async def test_an_interruption_while_asking_runs_nothing_and_the_answer_still_counts() -> None:
    steps = Steps()
    async with make_flow(steps).session(llm=ScriptedLLM(answering(policy))) as run:
        await run.session.run(user_input="cancel please")
        run.session.interrupt(force=True)
        await run.session.run(user_input="sorry, what?")
        check_invariant_1(run)
        assert (run.state, run.context.cancelled, run.log) == ("Desk", [], [])
        await run.session.run(user_input="yes")
        await asyncio.wait_for(steps.decided, 10)
        await settle(run)
        check_invariant_1(run)
        assert run.state == "Cancelled" and run.context.cancelled == ["T-7"]
        assert [r.trigger for r in run.log] == ["cancel"]


class QuickDesk(Desk):
    """A desk whose question waits a moment only."""

    @transition(to="Cancelled", confirm=Approval("Cancel ticket {ticket}?", timeout=0.05))
    async def cancel(self, ctx: RunContext[Ticket], ticket: str) -> None:
        """Cancel the caller's ticket."""
        ctx.userdata.cancelled.append(ticket)


def quick_policy(turn: Turn) -> Any:
    return policy(turn) if turn.agent_id != "QuickDesk" else policy(
        Turn(turn.index, turn.chat_ctx, turn.tool_names, turn.instructions, "Desk"))


async def test_silence_times_out_as_a_denial() -> None:
    steps = Steps()
    flow = make_flow(steps, [QuickDesk, Cancelled])
    llm = ScriptedLLM(answering(quick_policy))
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="cancel please")
        decided = await asyncio.wait_for(steps.decided, 10)  # the caller says nothing
        await settle(run)
        check_invariant_1(run)
        assert decided.outcome == "denied" and decided.reason == "the caller did not answer"
        assert (run.state, run.context.cancelled, run.log) == ("QuickDesk", [], [])
        assert run.refusals[-1].kind == "denied"
        assert "the caller did not answer" in run.refusals[-1].reason


async def test_the_session_closing_while_asking_ends_cleanly() -> None:
    steps = Steps()
    async with AgentSession[Ticket]() as session:
        run = await make_flow(steps).start(session, llm=ScriptedLLM(answering(policy)),
                                           wait_opening=True)
        await session.run(user_input="cancel please")
        assert [t.id for t in run.tasks] == ["approval"]
        await asyncio.wait_for(session.aclose(), 10)
    assert run.closed and run.tasks == () and not run.in_transition
    assert (run.state, run.context.cancelled, run.log) == ("Desk", [], [])
    assert [r.outcome for r in steps.records] == ["asked", "denied"]


async def test_code_moves_are_not_asked_about() -> None:
    steps = Steps()
    async with make_flow(steps).session(llm=ScriptedLLM(answering(policy))) as run:
        await run.go("cancel", ticket="T-9")
        assert run.state == "Cancelled" and run.context.cancelled == ["T-9"]
    assert steps.records == []


def test_a_question_naming_an_unknown_argument_fails_when_declared() -> None:
    with pytest.raises(FlowDefinitionError, match="names tiket, which cancel does not take"):
        transition(to="Cancelled", confirm="Cancel {tiket}?")(Desk.cancel.func)
    with pytest.raises(FlowDefinitionError, match="names sum, which refund does not take"):
        confirm("Refund {sum}?")(Desk.refund)
    with pytest.raises(FlowDefinitionError, match="confirm= with llm=False"):
        transition(to="Cancelled", confirm="Cancel {ticket}?", llm=False)(Desk.cancel.func)
    with pytest.raises(FlowDefinitionError, match="timeout"):
        confirm("Refund {amount}?", timeout=0)(Desk.refund)


def test_the_diagram_marks_a_confirmed_edge() -> None:
    flow = Flow("tickets", context=Ticket, initial=Desk, states=[Desk, Cancelled],
                final=[Cancelled])
    [edge] = [e for e in snapshot(flow).edges if e.trigger == "cancel"]
    assert edge.confirm == "Shall I cancel ticket {ticket}?"
    assert "✓ caller confirms" in to_mermaid(flow)
    assert {s.name: s.confirmed for s in snapshot(flow).states}["Desk"] == ("refund",)
    assert "tools: refund ✓" in to_mermaid(flow)


async def test_a_denial_is_not_a_failure() -> None:
    steps = Steps()
    async with make_flow(steps).session(llm=ScriptedLLM(answering(policy))) as run:
        await run.session.run(user_input="cancel please")
        await run.session.run(user_input="no")
        await asyncio.wait_for(steps.decided, 10)
        await settle(run)
        assert run.refusals[-1].kind == "denied" and run.consecutive_failures == 0


async def test_the_event_log_records_asked_and_denied_with_pii_redacted() -> None:
    """An ``approval`` event when asked and when answered; a pii argument quoted in the
    question or the reason never reaches the log."""
    steps = Steps()
    flow = make_flow(steps, [PinDesk, Cancelled])
    store = MemoryEventStore()
    llm = ScriptedLLM(answering(lambda t: call("cancel", ticket="T-7", pin="4321")
                                if t.agent_id == "PinDesk" and not t.answering_tool
                                and t.last_user_text == "cancel please" else "Okay."))
    await recorded_call(flow, llm, store, "c-1", "no, 4321 is not my pin", steps)
    approvals = [e.data for e in await store.events("c-1") if e.kind == "approval"]
    assert [a["outcome"] for a in approvals] == ["asked", "denied"]
    assert approvals[0]["action"] == "cancel" and "T-7" in approvals[0]["question"]
    assert "4321" not in json.dumps(approvals) and REDACTED in approvals[1]["reason"]


class PinDesk(Desk):
    """A desk that checks a PIN before cancelling."""

    @transition(to="Cancelled", confirm="Cancel ticket {ticket} with PIN {pin}?")
    async def cancel(self, ctx: RunContext[Ticket], ticket: str,
                     pin: Annotated[str, Field(json_schema_extra={"pii": True})]) -> None:
        """Cancel the caller's ticket."""
        ctx.userdata.cancelled.append(ticket)


def test_the_generated_session_machine_answers_both_ways() -> None:
    """The session machine draws the caller's answer for a ``confirm=`` transition: the
    oracle expects the move on a yes and a ``denied`` refusal that changes nothing on a
    no; both happen, and every step's checks and the invariants hold."""
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    from handoff.testing import FlowStateMachine

    class Seen:
        def __init__(self) -> None:
            self.records: list[ApprovalRecord] = []

        def on_transition(self, run: Any, record: Any) -> None: ...

        def on_refusal(self, run: Any, refusal: Any) -> None: ...

        def on_approval(self, run: Any, record: ApprovalRecord) -> None:
            self.records.append(record)

    flow = Flow("tickets", context=Ticket, initial=Desk, states=[Desk, Cancelled],
                final=[Cancelled])
    watch = Seen()
    flow.observers.append(watch)
    machine = FlowStateMachine(flow, mode="session")
    run_state_machine_as_test(machine, settings=settings(
        max_examples=25, stateful_step_count=6, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck)))
    outcomes = {(r.action, r.outcome) for r in watch.records}
    assert {("cancel", "granted"), ("cancel", "denied")} <= outcomes, outcomes


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
async def test_voice_mode_speaks_the_question_then_the_yes_runs_the_move() -> None:
    """Voice mode: a session with a TTS (espeak-ng) and a speaker that plays in real time;
    the question is synthesised and played as audio, and the caller's yes takes the move."""
    steps = Steps()
    session: AgentSession[Ticket] = AgentSession(tts=EspeakTTS(words_per_minute=300))
    speaker = RealtimeAudioOutput(speed=4.0)
    session.output.audio = speaker
    try:
        run = await asyncio.wait_for(make_flow(steps).start(
            session, llm=ScriptedLLM(answering(policy)), wait_opening=True), 30)
        await session.run(user_input="cancel please")
        assert [t.id for t in run.tasks] == ["approval"]
        spoken = [i for i in session.history.items if i.type == "message"
                  and i.role == "assistant" and "Shall I cancel ticket T-7?" in (i.text_content or "")]
        assert spoken and len(speaker.segments) == 2 and speaker.segments[-1].pushed > 0  # opening, question
        await session.run(user_input="yes")
        await asyncio.wait_for(steps.decided, 30)
        await settle(run)
        assert run.state == "Cancelled" and run.context.cancelled == ["T-7"]
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.aclose(), 15)
        await speaker.aclose()
