"""Flows on realtime (speech-to-speech) tiers through a real AgentSession in text mode,
driven by the ScriptedRealtimeModel: handoffs realtime → realtime, realtime ↔ pipeline,
refusals, side trips with typed results, LiveKit AgentTasks, invariant 1 between turns."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from livekit.agents import AgentSession, llm

from handoff import Context, Flow, RunContext, State, transition
from handoff.errors import ConfigError
from handoff.persistence import Checkpointer, MemoryStore
from handoff.realtime import realtime_findings
from handoff.resume import resume_or_start
from handoff.testing import Reply, ScriptedLLM, ScriptedRealtimeModel, Turn, call, fail, settle
from handoff.tiers import TierConfig, Tiers
from handoff.validate import check

from .small_flows import flow as tickets
from .test_side_trip_results import Billing, Identity
from .test_side_trip_results import flow as results_flow
from .test_subtasks import check_invariant_1, gate_policy, pass_the_gate

TIERS = Tiers({
    "fast": TierConfig("fast", model="gpt-4o-mini"),
    "voice": TierConfig("voice", model="gpt-realtime", kind="realtime"),
}, source="test")


class Line(Context):
    name: str | None = None
    topic: str | None = None


class Reception(State[Line]):
    """Greets the caller on a speech-to-speech model."""

    tier = "voice"
    instructions = "Greet the caller and ask their name."

    @transition(to="Desk")
    async def named(self, ctx: RunContext[Line], name: str) -> None:
        """Call once the caller said their name."""
        ctx.userdata.name = name


class Desk(State[Line]):
    """A pipeline (STT → LLM → TTS) state."""

    tier = "fast"
    instructions = "Help with the caller's question."

    @transition(to="Reception", history="last:4")
    async def back_to_reception(self, ctx: RunContext[Line], topic: str) -> None:
        """Call when the caller wants reception again."""
        ctx.userdata.topic = topic


mixed = Flow("mixed", context=Line, initial=Reception, states=[Reception, Desk], tiers=TIERS)


class Hold(State[Line]):
    """A pipeline state that puts the caller through to a realtime one with a bridge line."""

    tier = "fast"
    instructions = "Put the caller through."

    @transition(to="Reception", say="One moment, connecting you.")
    async def connect(self, ctx: RunContext[Line]) -> None:
        """Call to put the caller through to reception."""


class Counter(State[Line]):
    """A pipeline state that hands back with a summary policy."""

    tier = "fast"
    instructions = "Answer at the counter."

    @transition(to="Reception", history="summary:2")
    async def done_here(self, ctx: RunContext[Line]) -> None:
        """Call when the caller is done at the counter."""


bridged = Flow("bridged", context=Line, initial=Hold, states=[Hold, Reception, Desk], tiers=TIERS)
summarised = Flow("summarised", context=Line, initial=Counter, states=[Counter, Reception, Desk],
                  tiers=TIERS)


async def test_realtime_to_realtime_reuses_the_session_when_the_model_may_update_it() -> None:
    model = ScriptedRealtimeModel(["Front desk, your name?", call("named", name="Ann"),
                                   "Back office here, Ann.", call("restart"), "Front again."])
    async with tickets.session(llm=model) as run:
        check_invariant_1(run)
        await run.session.run(user_input="I'm Ann")
        assert run.state == "Back" and run.context.name == "Ann"
        check_invariant_1(run)
        await run.session.run(user_input="start over")
        assert run.state == "Front"
        check_invariant_1(run)
        assert len(model.sessions) == 1  # one realtime session across both handoffs
        # the Back agent's instructions (with the context brief) reached the session
        assert model.turns[2].state == "Back"
        assert model.turns[2].instructions.startswith("You are the back office.")
        assert "name: Ann" in model.turns[2].instructions
        assert "named" not in model.turns[2].tool_names and "finish" in model.turns[2].tool_names
    assert [(r.source, r.target) for r in run.log] == [("Front", "Back"), ("Back", "Front")]
    assert model.remaining == 0


async def test_realtime_to_realtime_reopens_the_session_when_the_model_cannot_update_it() -> None:
    model = ScriptedRealtimeModel(["Your name?", call("named", name="Bo"), "Hello Bo."],
                                  mutable=False)
    async with tickets.session(llm=model) as run:
        await run.session.run(user_input="Bo")
        assert run.state == "Back"
        check_invariant_1(run)
        first, second = model.sessions  # LiveKit closed the first and opened a new one
        assert first.closed and not second.closed
        assert model.turns[-1].instructions.startswith("You are the back office.")


async def test_realtime_to_pipeline_and_back() -> None:
    realtime = ScriptedRealtimeModel(["Hello, who's calling?", call("named", name="Cy"),
                                      "Welcome back, Cy."])
    pipeline = ScriptedLLM(["Desk here, Cy.", call("back_to_reception", topic="parking")])
    async with mixed.session(llm={"voice": realtime, "fast": pipeline}) as run:
        assert isinstance(run.agent.llm, llm.RealtimeModel)
        await run.session.run(user_input="I'm Cy")
        assert run.state == "Desk" and run.agent.llm is pipeline
        check_invariant_1(run)
        assert "name: Cy" in pipeline.turns[0].instructions  # the brief crossed over
        await run.session.run(user_input="reception please")
        assert run.state == "Reception" and run.context.topic == "parking"
        check_invariant_1(run)
        # the realtime state got the pipeline turn's history (last:4) in its session
        seen = [text for _, text in realtime.turns[-1].messages()]
        assert "reception please" in seen and "Desk here, Cy." in seen
    assert [(r.source, r.target) for r in run.log] == [("Reception", "Desk"),
                                                      ("Desk", "Reception")]


async def test_a_bridge_line_into_a_realtime_state_comes_before_its_reply() -> None:
    realtime = ScriptedRealtimeModel(["Reception, how can I help?"])
    pipeline = ScriptedLLM(["Hello.", call("connect")])
    async with bridged.session(llm={"voice": realtime, "fast": pipeline}) as run:
        await run.session.run(user_input="reception please")
        await settle(run)
        assert run.state == "Reception"
        check_invariant_1(run)
        said = [m.text_content for m in run.session.history.messages() if m.role == "assistant"]
        assert said[-2:] == ["One moment, connecting you.", "Reception, how can I help?"]
        assert realtime.turns[0].state == "Reception"


async def test_summary_into_a_realtime_state_keeps_the_recent_messages_only() -> None:
    realtime = ScriptedRealtimeModel(["Reception."])
    pipeline = ScriptedLLM(["Counter.", "Noted one.", "Noted two.", call("done_here")])
    async with summarised.session(llm={"voice": realtime, "fast": pipeline}) as run:
        for line in ("one", "two", "done"):
            await run.session.run(user_input=line)
        await settle(run)
        assert run.state == "Reception" and run.summary is None  # no summary request made
        check_invariant_1(run)
        assert len(pipeline.turns) == 4  # the model was not asked to summarise
        kept = [text for _, text in realtime.turns[0].messages()]
        assert kept[:2] == ["Noted two.", "done"]  # the last 2 messages, nothing older
        assert "one" not in kept
    assert [f.code for f in realtime_findings(summarised)] == ["realtime-summary"]


async def test_a_refused_transition_changes_nothing_and_tells_the_model_why() -> None:
    model = ScriptedRealtimeModel(["Name?", call("named", name="Di"), "Hi Di.",
                                   call("finish", amount=10), "You need to verify first."])
    async with tickets.session(llm=model) as run:
        await run.session.run(user_input="Di")
        result = await run.session.run(user_input="finish it")
        result.expect.contains_function_call(name="finish")
        output = result.expect.contains_function_call_output().event().item
        assert output.is_error and "verify the caller first" in output.output
        assert run.state == "Back" and run.context.amount == 0.0
        check_invariant_1(run)
        assert [r.trigger for r in run.refusals] == ["finish"]
        # the refusal reached the model's own chat context for its next reply
        assert model.turns[-1].answering_tool


async def test_a_side_trip_with_a_typed_result_on_a_realtime_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Billing, "received", [])

    def policy(turn: Turn) -> Any:
        wanted = {("Billing", "my bill"): call("verify"),
                  ("Verify", "1990-01-02"): call("identity_checked", date_of_birth="1990-01-02")}
        if turn.answering_tool or (turn.state, turn.last_user_text) not in wanted:
            return f"{turn.state} speaking."
        return wanted[turn.state or "", turn.last_user_text]

    model = ScriptedRealtimeModel(policy)
    async with results_flow.session(llm=model) as run:
        await run.session.run(user_input="my bill")
        assert run.state == "Verify"
        check_invariant_1(run)
        await run.session.run(user_input="1990-01-02")
        assert run.state == "Billing"
        check_invariant_1(run)
        assert run.context.verified
    (returned,) = Billing.received
    assert returned.value == Identity(verified=True, date_of_birth="1990-01-02")


async def test_an_agent_task_inside_a_realtime_state() -> None:
    model = ScriptedRealtimeModel(gate_policy)
    await pass_the_gate(model)  # the LiveKit AgentTask runs on the realtime model too
    assert {t.state for t in model.turns} >= {"Gate", "verifier", "Inside"}


# -- tiers ----------------------------------------------------------------------------
def test_a_tier_names_a_realtime_model_by_kind() -> None:
    cfg = TierConfig.from_mapping("voice", {"kind": "realtime", "model": "gpt-realtime",
                                            "options": {"voice": "marin"}})
    assert cfg.kind == "realtime"
    tiers = Tiers({"voice": cfg}, secrets=lambda _: "sk-test")
    made = tiers.llm("voice")
    assert isinstance(made, llm.RealtimeModel) and made.model == "gpt-realtime"
    assert tiers.kind_of("voice") == "realtime"
    with pytest.raises(ConfigError, match="kind 'speech'"):
        TierConfig.from_mapping("x", {"kind": "speech", "model": "m"})


def scripted_realtime(**_: Any) -> ScriptedRealtimeModel:
    """A factory a tier can name (``provider = "module:scripted_realtime"``)."""
    return ScriptedRealtimeModel(["Hello."])


def test_a_factory_that_makes_a_realtime_model_is_a_realtime_tier() -> None:
    tiers = Tiers({"voice": TierConfig("voice", model="m",
                                       provider=f"{__name__}:scripted_realtime")})
    assert tiers.kind_of("voice") == "llm"  # not known before it is made
    assert isinstance(tiers.llm("voice"), ScriptedRealtimeModel)
    assert tiers.kind_of("voice") == "realtime"


def test_fallbacks_stay_within_one_kind() -> None:
    both = Tiers({
        "voice": TierConfig("voice", model="m", provider=f"{__name__}:scripted_realtime",
                            fallbacks=("voice2",)),
        "voice2": TierConfig("voice2", model="m", provider=f"{__name__}:scripted_realtime"),
        "odd": TierConfig("odd", model="m", provider=f"{__name__}:scripted_realtime",
                          fallbacks=("fast",)),
        "fast": TierConfig("fast", model="gpt-4o-mini"),
    }, secrets=lambda _: "sk-test")
    assert isinstance(both.llm("voice"), llm.RealtimeModelFallbackAdapter)
    with pytest.raises(ConfigError, match="mixes realtime and pipeline"):
        both.llm("odd")


# -- check ----------------------------------------------------------------------------
def test_check_reports_what_livekit_refuses_or_ignores_on_a_realtime_state() -> None:
    class Loud(State[Line]):
        """Reads the terms without being cut off."""

        tier = "voice"
        instructions = "Read the terms."
        interruptible = False
        history = "summary"

        @transition(to="Quiet")
        async def read(self, ctx: RunContext[Line]) -> None:
            """Call when the terms were read."""

    class Quiet(State[Line]):
        """Client-side turns: interruptible may be off."""

        tier = "voice"
        instructions = "x"
        interruptible = False
        turn_mode = "vad"

        @transition(to="Loud", history="summary")
        async def again(self, ctx: RunContext[Line]) -> None:
            """Call to read again."""

    flow = Flow("rt", context=Line, initial=Loud, states=[Loud, Quiet], tiers=TIERS)
    found = {(f.code, f.state) for f in realtime_findings(flow)}
    assert found == {("realtime-not-interruptible", "Loud"), ("realtime-summary", "Loud")}
    assert {("realtime-not-interruptible", "Loud")} <= {(f.code, f.state) for f in check(flow)}
    assert realtime_findings(mixed) == []


# -- the call centre on a realtime tier (make demo MODE=realtime) ---------------------
async def test_the_realtime_demo_runs_the_whole_call_on_one_realtime_session(
        capsys: pytest.CaptureFixture[str]) -> None:
    from examples.callcenter import realtime_demo

    assert await realtime_demo.main() == 0  # every state visited, the script used up
    text = capsys.readouterr().out
    for edge in ("Greeter → Triage", "Triage → Billing", "Billing → Wrapup", "Wrapup → Escalation"):
        assert edge in text
    assert "the account is not verified yet" in text
    assert "\"refund_ticket\": \"R-" in text  # the backend numbers tickets per process
    assert "realtime sessions opened: 1 (reused across 4 handoffs)" in text


# -- resume -----------------------------------------------------------------------------
async def test_resume_from_a_checkpoint_into_a_realtime_state() -> None:
    """Killed in a realtime state, the call comes back in it on a new realtime session
    holding the restored history, says nothing until the caller speaks, and goes on."""
    store = MemoryStore()
    saved = list(mixed.observers)
    try:
        first = Checkpointer(store, forget_on=frozenset())
        async with AgentSession[Line]() as session:
            run = await resume_or_start(
                mixed, session, checkpointer=first, call_id="rt-1", wait_opening=True,
                llm={"voice": ScriptedRealtimeModel(["Hello, who's calling?",
                                                     call("named", name="Eve"), "Back, Eve."]),
                     "fast": ScriptedLLM(["Desk here.", call("back_to_reception",
                                                             topic="fees")])})
            await session.run(user_input="I'm Eve")
            await session.run(user_input="reception again")
            assert run.state == "Reception"
            assert await first.flush(5)

        model = ScriptedRealtimeModel([call("named", name="Eve"), "Desk again, Eve."])
        desk = ScriptedLLM(["Desk again, Eve."])
        async with AgentSession[Line]() as session:
            run = await resume_or_start(mixed, session, checkpointer=Checkpointer(store),
                                        call_id="rt-1", llm={"voice": model, "fast": desk})
            assert run.state == "Reception" == session.current_agent.id and run.resuming
            assert run.context.name == "Eve" and run.context.topic == "fees"
            assert model.turns == []  # nothing said on resume
            (live,) = model.sessions
            restored = [item.text_content for item in live.chat_ctx.items if item.type == "message"]
            assert "reception again" in restored  # the history is in the realtime session
            await session.run(user_input="the desk, please")
            assert model.turns[0].last_user_text == "the desk, please"
            assert run.state == "Desk"
            check_invariant_1(run)
    finally:
        mixed.observers[:] = saved


@pytest.mark.parametrize("calls_first", [True, False])
async def test_an_interruption_in_the_middle_of_a_handoff_leaves_a_consistent_call(
        calls_first: bool) -> None:
    """The caller talks over a realtime reply that asks for a handoff, while it streams:
    the move happens entirely or not at all, and the call goes on."""
    hold = asyncio.Event()
    model = ScriptedRealtimeModel([
        "Hello, who's calling?",
        Reply(text="Thank you, putting you through to the desk now",
              calls=(call("named", name="Flo"),), calls_first=calls_first,
              pause_between=hold.wait),
        "Sorry, go ahead.",
    ])
    desk = ScriptedLLM(lambda turn: "Desk here.")
    async with mixed.session(llm={"voice": model, "fast": desk}) as run:
        turn = asyncio.ensure_future(run.session.run(user_input="I'm Flo"))
        while len(model.turns) < 2 or not model.sessions[-1].generating:
            await asyncio.sleep(0)
        await run.session.interrupt(force=True)
        hold.set()
        with contextlib.suppress(Exception):
            await turn
        await settle(run)
        check_invariant_1(run)
        moved = [(r.source, r.target) for r in run.log]
        assert (moved, run.state, run.context.name) in (
            ([], "Reception", None), ([("Reception", "Desk")], "Desk", "Flo"))
        await run.session.run(user_input="hello?")
        await settle(run)
        check_invariant_1(run)
    assert not any(s.generating for s in model.sessions)


async def test_a_failed_realtime_response_counts_as_a_failure_and_the_call_goes_on() -> None:
    model = ScriptedRealtimeModel(["Hi.", fail("provider down"), call("named", name="Al"),
                                   "Back office, Al."])
    async with tickets.session(llm=model) as run:
        with pytest.raises(llm.RealtimeError, match="provider down"):
            await run.session.run(user_input="hello?")  # LiveKit's RunResult raises it
        await run.failures.settled()
        assert run.failures.consecutive == 1 and run.state == "Front"
        check_invariant_1(run)
        await run.session.run(user_input="I'm Al")
        assert run.state == "Back"
        check_invariant_1(run)


async def test_two_realtime_models_in_one_flow_each_open_their_own_session() -> None:
    """LiveKit allows a handoff between agents on different realtime models (the old
    session is closed, the new model's opened), so check has nothing to report."""
    front = ScriptedRealtimeModel(["Name?", call("named", name="Gus")])
    back = ScriptedRealtimeModel(["Back office, Gus."], model="another-realtime")
    two = Tiers({"voice": TierConfig("voice", model="a", kind="realtime"),
                 "voice2": TierConfig("voice2", model="b", kind="realtime")}, source="test")

    class Front(State[Line]):
        """Front, on one realtime model."""

        tier = "voice"
        instructions = "Front."

        @transition(to="Back")
        async def named(self, ctx: RunContext[Line], name: str) -> None:
            """Call once the caller said their name."""
            ctx.userdata.name = name

    class Back(State[Line]):
        """Back, on another realtime model."""

        tier = "voice2"
        instructions = "Back."

    flow = Flow("two", context=Line, initial=Front, states=[Front, Back], final=[Back], tiers=two)
    assert realtime_findings(flow) == []
    async with flow.session(llm={"voice": front, "voice2": back}) as run:
        await run.session.run(user_input="Gus")
        assert run.state == "Back" and run.agent.llm is back
        check_invariant_1(run)
        assert front.sessions[0].closed and len(back.sessions) == 1
        assert back.turns[0].state == "Back" and "name: Gus" in back.turns[0].instructions
