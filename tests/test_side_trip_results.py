"""Side trips with typed results: LiveKit's ``AgentTask[T]`` shape for handoff's own side trips.

A ``to=RETURN`` body annotated ``-> Identity`` (or ``-> bool``) returns the side trip's
result, like ``AgentTask.complete(result)``; it is checked against the annotation; the
state that started the side trip receives it in ``on_return`` (the value ``await
VerifyTask()`` gives a LiveKit tool), as part of the move; checkpoints keep it as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from livekit.agents import AgentSession
from pydantic import BaseModel, Field

from handoff import (
    RETURN,
    Context,
    Flow,
    FlowDefinitionError,
    FlowRun,
    RunContext,
    State,
    TransitionRefused,
    transition,
)
from handoff.persistence import Checkpointer, MemoryStore
from handoff.records import Returned
from handoff.resume import resume_or_start
from handoff.telemetry import HandoffMetrics
from handoff.testing import ScriptedLLM, call


class Identity(BaseModel):
    verified: bool
    date_of_birth: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")


class Call(Context):
    verified: bool = False
    date_of_birth: str | None = None
    saw: list[str] = []
    caller_agreed: bool | None = None


class Billing(State[Call]):
    """Answers billing questions once the caller is verified."""

    instructions = "You are billing."
    received: ClassVar[list[Returned[Any]]] = []  # what each visit got (the test reads it)

    @transition(to="Verify", returns=True)
    async def verify(self, ctx: RunContext[Call]) -> None:
        """Call before anything about the account: the caller must be verified."""

    @transition(to="Consent", returns=True)
    async def ask_consent(self, ctx: RunContext[Call]) -> None:
        """Call to ask the caller's consent to record the call."""

    async def on_return(self, returned: Returned[Any]) -> str | None:
        Billing.received.append(returned)
        if isinstance(returned.value, Identity):
            self.context.verified = returned.value.verified
            self.context.date_of_birth = returned.value.date_of_birth
            return "The caller is verified." if returned.value.verified else "Not verified."
        return await super().on_return(returned)


class Verify(State[Call]):
    """Checks the caller's date of birth, and comes back with who they are."""

    instructions = "Ask for the date of birth."

    @transition(to=RETURN)
    async def identity_checked(self, ctx: RunContext[Call], date_of_birth: str) -> Identity:
        """Call once the caller told you their date of birth (YYYY-MM-DD)."""
        ctx.userdata.saw = [*ctx.userdata.saw, "Verify"]
        return Identity(verified=True, date_of_birth=date_of_birth)


class Consent(State[Call]):
    """Asks whether the call may be recorded; comes back with yes or no."""

    instructions = "Ask for consent."

    @transition(to=RETURN)
    async def answered(self, ctx: RunContext[Call], answer: str) -> bool:
        """Call with the caller's answer: yes or no."""
        return answer  # type: ignore[return-value] — checked as a bool: "no" is False


def make_flow() -> Flow[Call]:
    return Flow("results", context=Call, initial=Billing, states=[Billing, Verify, Consent])


flow = make_flow()


@pytest.fixture(autouse=True)
def _fresh_receipts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Billing, "received", [])


# -- declaration ----------------------------------------------------------------------
def test_the_result_type_is_the_return_annotation_of_the_return_body() -> None:
    edges = {e.trigger: e.transition for e in flow.edges}
    assert edges["identity_checked"].result_type is Identity
    assert edges["answered"].result_type is bool
    assert edges["verify"].result_type is None  # only a to=RETURN edge carries a result
    assert edges["answered"].result_name == "bool"


class Opaque:
    """No pydantic schema: a value of it can be neither checked nor kept in a checkpoint."""


def test_a_result_type_pydantic_cannot_check_fails_when_the_flow_is_built() -> None:
    class Local:  # defined in a function: its name cannot be resolved from the annotation
        pass

    class Odd(State[Call]):
        """Returns something opaque."""

        instructions = "x"

        @transition(to=RETURN)
        async def done(self, ctx: RunContext[Call]) -> Opaque:
            """Done."""
            return Opaque()

        @transition(to=RETURN)
        async def other(self, ctx: RunContext[Call]) -> Local:
            """Other."""
            return Local()

    class Start(State[Call]):
        """Starts it."""

        instructions = "x"

        @transition(to="Odd", returns=True)
        async def go_odd(self, ctx: RunContext[Call]) -> None:
            """Go."""

    with pytest.raises(FlowDefinitionError) as info:
        Flow("odd", context=Call, initial=Start, states=[Start, Odd])
    found = {f.trigger: f for f in info.value.findings if f.code == "bad-result-type"}
    assert set(found) == {"done", "other"} and {f.state for f in found.values()} == {"Odd"}
    assert "pydantic cannot check or serialise Opaque" in found["done"].message
    assert "'Local' names nothing importable" in found["other"].message
    assert "-> None" in found["done"].hint


def test_no_annotation_or_none_declares_no_result() -> None:
    from .test_return_stack import flow as trips

    assert all(e.transition.result_type is None for e in trips.edges)


# -- the pure run ---------------------------------------------------------------------
async def test_the_result_is_checked_and_logged_as_json() -> None:
    run = flow.new_run()
    await run.go("verify")
    record = await run.go("identity_checked", date_of_birth="1990-04-01")
    assert run.state == "Billing" and run.return_stack == []
    assert record.result == {"verified": True, "date_of_birth": "1990-04-01"}
    assert run.log[-1] is record


async def test_a_result_that_does_not_fit_is_refused_and_changes_nothing() -> None:
    run = flow.new_run()
    await run.go("ask_consent")
    before = (run.state, run.context.model_dump(), list(run.return_stack), len(run.log))
    with pytest.raises(TransitionRefused) as info:
        await run.go("answered", answer="maybe")
    assert info.value.kind == "error"
    assert info.value.message.startswith("'answered' refused: its result 'maybe' is not a bool")
    assert "valid boolean" in info.value.message
    assert "the flow stays where it is" in info.value.message
    assert (run.state, run.context.model_dump(), list(run.return_stack), len(run.log)) == before
    assert run.refusals[-1].kind == "error"


async def test_a_plain_value_is_coerced_to_the_declared_type_like_a_tool_argument() -> None:
    class Lax(State[Call]):
        """Returns a dict that is an Identity."""

        instructions = "x"

        @transition(to=RETURN)
        async def done(self, ctx: RunContext[Call]) -> Identity:
            """Done."""
            return {"verified": "true", "date_of_birth": "2000-01-02"}  # type: ignore[return-value]

    class Start(State[Call]):
        """Starts it."""

        instructions = "x"

        @transition(to="Lax", returns=True)
        async def go_lax(self, ctx: RunContext[Call]) -> None:
            """Go."""

    run = Flow("lax", context=Call, initial=Start, states=[Start, Lax]).new_run()
    await run.go("go_lax")
    assert (await run.go("done")).result == {"verified": True, "date_of_birth": "2000-01-02"}


# -- through a real AgentSession -------------------------------------------------------
async def test_the_state_that_started_the_side_trip_receives_the_typed_value() -> None:
    llm = ScriptedLLM([
        "Billing here.", call("verify"), "Your date of birth?",
        call("identity_checked", date_of_birth="1990-04-01"), "Thanks, you are verified.",
    ])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="what's my balance?")
        assert run.state == "Verify" and run.session.current_agent.id == "Verify"
        await run.session.run(user_input="1990-04-01")
        assert run.state == "Billing" and run.session.current_agent.id == "Billing"
        [returned] = Billing.received
        assert returned == Returned("Verify", "identity_checked",
                                    Identity(verified=True, date_of_birth="1990-04-01"))
        assert isinstance(returned.value, Identity)
        assert run.context.verified and run.context.date_of_birth == "1990-04-01"
        assert run.log[-1].result == {"verified": True, "date_of_birth": "1990-04-01"}
        back = llm.turns[-1]
        assert back.agent_id == "Billing"
        # the hook's note, and the brief already holding what the hook wrote
        assert "Note from the previous agent: The caller is verified." in back.instructions
        assert "date_of_birth: 1990-04-01" in back.instructions


@contextlib.asynccontextmanager
async def consent_answered(answer: str) -> AsyncIterator[tuple[FlowRun[Call], ScriptedLLM]]:
    """Billing starts the Consent side trip, and the LLM answers ``answer`` for the caller."""
    llm = ScriptedLLM(["Billing here.", call("ask_consent"), "May we record?",
                       call("answered", answer=answer), "Noted."])
    async with flow.session(llm=llm) as run:
        for line in ("hi", answer):
            await run.session.run(user_input=line)
        yield run, llm


async def test_a_bool_result_reaches_the_default_hook_as_a_note() -> None:
    async with consent_answered("no") as (run, llm):
        assert run.state == "Billing"
        assert Billing.received == [Returned("Consent", "answered", False)]
        assert run.log[-1].result is False
        note = "Consent finished (answered) and returned: false"
        assert note in llm.turns[-1].instructions


async def test_the_llm_is_told_why_a_wrong_result_was_refused() -> None:
    async with consent_answered("maybe") as (run, llm):
        assert run.state == "Consent" and run.session.current_agent.id == "Consent"
        assert run.return_stack == ["Billing"] and Billing.received == []
        [output] = llm.turns[-1].tool_outputs()
        assert output.is_error and "its result 'maybe' is not a bool" in output.output


async def test_a_failing_on_return_rolls_the_return_back() -> None:
    class Proud(State[Call]):
        """Refuses to take the result back."""

        instructions = "x"

        @transition(to="Verify", returns=True)
        async def verify(self, ctx: RunContext[Call]) -> None:
            """Verify."""

        async def on_return(self, returned: Returned[Any]) -> str | None:
            self.context.verified = True  # written as part of the move, then undone
            raise RuntimeError("ledger offline")

    f = Flow("proud", context=Call, initial=Proud, states=[Proud, Verify])
    llm = ScriptedLLM(["Hello.", call("verify"), "Date of birth?",
                       call("identity_checked", date_of_birth="1990-04-01"), "Sorry."])
    async with f.session(llm=llm) as run:
        await run.session.run(user_input="hi")
        await run.session.run(user_input="1990-04-01")
        assert run.state == "Verify" and run.session.current_agent.id == "Verify"
        assert run.return_stack == ["Proud"] and not run.context.verified
        assert run.context.saw == []  # the body's write went with it
        assert run.refusals[-1].kind == "error" and "ledger offline" in run.refusals[-1].reason


async def test_a_call_resumed_in_the_middle_of_a_side_trip_still_gets_the_result(
    metrics: HandoffMetrics,
) -> None:
    store = MemoryStore()
    saved = list(flow.observers)
    try:
        first = Checkpointer(store, metrics=metrics, forget_on=frozenset())
        async with AgentSession[Call]() as session:
            run = await resume_or_start(flow, session, checkpointer=first, call_id="mid-trip",
                                        llm=ScriptedLLM(["Billing here.", call("verify"),
                                                         "Your date of birth?"]),
                                        wait_opening=True)
            await session.run(user_input="balance please")
            assert run.state == "Verify" and run.return_stack == ["Billing"]
            assert await first.flush(5)

        second = Checkpointer(store, metrics=metrics, forget_on=frozenset())
        async with AgentSession[Call]() as session:
            run = await resume_or_start(flow, session, checkpointer=second, call_id="mid-trip",
                                        llm=ScriptedLLM([call("identity_checked",
                                                              date_of_birth="1990-04-01"),
                                                         "Verified."]))
            assert run.state == "Verify" and run.resuming
            await session.run(user_input="1990-04-01")
            assert run.state == "Billing" and run.context.verified
            assert [r.value for r in Billing.received] == [
                Identity(verified=True, date_of_birth="1990-04-01")]
            assert await second.flush(5)
        checkpoint = await store.load("mid-trip")
        assert checkpoint is not None
        assert checkpoint.records()[-1].result == {"verified": True, "date_of_birth": "1990-04-01"}
    finally:
        flow.observers[:] = saved


async def test_code_can_take_a_typed_return_too() -> None:
    """``run.go()`` from outside the call (a supervisor's console) returns the record,
    whose result is the JSON form; the state's hook got the typed value."""
    llm = ScriptedLLM(["Billing here.", "May we record?", "Thanks."])
    async with flow.session(llm=llm) as run:
        await run.go("ask_consent")
        assert run.state == "Consent"
        record = await asyncio.wait_for(run.go("answered", answer="yes"), 5)
        assert record.result is True and run.state == "Billing"
        assert Billing.received == [Returned("Consent", "answered", True)]


async def test_the_bank_example_comes_back_with_an_identity_each_time() -> None:
    from examples._demo import play_scripted
    from examples.bank import demo
    from examples.bank.flow import flow as bank

    run = await play_scripted(bank, demo.CALLER, demo.AGENT_SCRIPT)
    assert run.state == "Statement" and run.context.holder == "Ann Lee"
    assert [r.result for r in run.log if r.trigger == "identity_checked"] == [
        {"verified": False, "holder": None}, {"verified": True, "holder": "Ann Lee"}]
    assert run.context.attempts == 1  # the failed verification, counted by Desk.on_return
    assert [r.reason for r in run.refusals] == [
        "'statement' refused: the caller is not verified yet: call verify first"]


async def test_a_kept_agent_receives_the_result_and_remembers_its_earlier_talk() -> None:
    class KeptBilling(Billing):
        """Billing, one agent for the whole call."""

        name = "Billing"
        keep_agent = True

    f = Flow("kept", context=Call, initial=KeptBilling, states=[KeptBilling, Verify, Consent])
    llm = ScriptedLLM(["Billing here.", call("verify"), "Your date of birth?",
                       call("identity_checked", date_of_birth="1990-04-01"), "Verified."])
    async with f.session(llm=llm) as run:
        first = run.agent
        await run.session.run(user_input="balance?")
        await run.session.run(user_input="1990-04-01")
        assert run.state == "Billing" and run.agent is first and run.context.verified
        assert [r.value.verified for r in Billing.received] == [True]
        back = llm.turns[-1]
        assert "Note from the previous agent: The caller is verified." in back.instructions
        assert any(m.text_content == "Billing here." for m in back.chat_ctx.messages())


async def test_the_event_log_records_the_result_with_the_transition() -> None:
    from handoff.events import EventLog, MemoryEventStore

    own = make_flow()  # install() adds an observer to the flow: not the shared one
    store = MemoryEventStore()
    log = EventLog(store).install(own)
    llm = ScriptedLLM(["Billing here.", call("verify"), "Your date of birth?",
                       call("identity_checked", date_of_birth="1990-04-01"), "Verified."])
    async with AgentSession[Call]() as session:
        run = await own.start(session, llm=llm, call_id="events", wait_opening=True)
        log.track(run, "events")
        for line in ("balance?", "1990-04-01"):
            await session.run(user_input=line)
    assert await log.flush(10)
    moves = [e.data for e in await store.events("events") if e.kind == "transition"]
    assert [m.get("result") for m in moves] == [
        None, {"verified": True, "date_of_birth": "1990-04-01"}]
