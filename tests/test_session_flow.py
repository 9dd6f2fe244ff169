"""The core through a real AgentSession (text mode) driven by the ScriptedLLM."""

from __future__ import annotations

import asyncio
import json

import pytest

from examples.callcenter import flow as callcenter
from examples.callcenter.flow import Billing, Escalation, Triage
from handoff import TransitionRefused
from handoff.testing import Reply, ScriptedLLM, call

from .small_flows import Back, Done, Ticket, flow


def _assert_consistent(run: object) -> None:
    """Invariant 1: between turns the FSM and the active LiveKit agent agree."""
    assert run.session is not None  # type: ignore[attr-defined]
    assert run.state == run.session.current_agent.id  # type: ignore[attr-defined]
    assert run.agent is run.session.current_agent  # type: ignore[attr-defined]


async def test_callcenter_greeter_triage_billing_escalation() -> None:
    llm = ScriptedLLM([
        "Acme Telecom, who is calling?",
        call("caller_identified", name="Ann Lee", topic="a charge"),
        "Hi Ann, your account number and PIN please?",
        call("verify_account", account_id="4411", pin="1234"),
        call("billing_question"),
        "Billing here, Ann. How can I help with your bill?",
        call("escalate_to_human", reason="wants a person"),
        "Transferring you now.",
    ])
    async with callcenter.session(llm=llm) as run:
        session = run.session
        assert session is not None
        assert run.state == "Greeter"
        _assert_consistent(run)

        result = await session.run(user_input="Hi, I'm Ann Lee, about a charge")
        result.expect.next_event().is_function_call(name="caller_identified")
        result.expect.next_event().is_function_call_output()
        result.expect.next_event().is_agent_handoff(new_agent_type=Triage)
        result.expect.next_event().is_message(role="assistant")
        assert run.state == "Triage"
        _assert_consistent(run)
        assert run.context.caller_name == "Ann Lee"
        # the context set by the Greeter reaches Triage's instructions as the brief
        assert "caller_name: Ann Lee" in llm.turns[2].instructions

        result = await session.run(user_input="4411, PIN 1234")
        result.expect.contains_function_call(name="verify_account")
        result.expect.contains_agent_handoff(new_agent_type=Billing)
        assert run.state == "Billing"
        _assert_consistent(run)
        assert run.context.verified and run.context.account_id == "4411"
        assert "verified: True" in llm.turns[5].instructions

        result = await session.run(user_input="I want a human")
        result.expect.contains_function_call(name="escalate_to_human")
        result.expect.contains_agent_handoff(new_agent_type=Escalation)
        assert run.state == "Escalation"
        _assert_consistent(run)
        assert run.context.escalation_reason == "wants a person"
        assert run.context.caller_name == "Ann Lee"  # nothing lost along the way

    assert [(r.source, r.target, r.trigger) for r in run.log] == [
        ("Greeter", "Triage", "caller_identified"),
        ("Triage", "Billing", "billing_question"),
        ("Billing", "Escalation", "escalate_to_human"),
    ]
    assert run.log[0].arguments == {"name": "Ann Lee", "topic": "a charge"}
    assert all(r.by == "llm" for r in run.log)
    assert llm.remaining == 0


async def test_guard_refusal_changes_nothing_and_tells_the_llm_why() -> None:
    llm = ScriptedLLM([
        "Hello?", call("named", name="Bo"), "Hi Bo.",
        call("finish", amount=10.0), "I need to verify you first.",
    ])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="I'm Bo")
        before = run.context.model_dump()
        result = await run.session.run(user_input="finish it")
        out = result.expect.next_event(type="function_call_output").event().item
        assert out.is_error and "verify the caller first" in out.output
        assert run.state == "Back"
        _assert_consistent(run)
        assert run.context.model_dump() == before
        assert [r.kind for r in run.refusals] == ["guard"]
        # the LLM saw the reason in its next request
        outputs = [o.output for o in llm.turns[-1].tool_outputs()]
        assert any("verify the caller first" in o for o in outputs)


async def test_body_refusal_rolls_back_context_changes() -> None:
    llm = ScriptedLLM([
        "Hello?", call("named", name="Bo"), "Hi Bo.",
        call("verify", code="42"), "Verified.",
        call("finish", amount=5000.0), "That needs a supervisor.",
    ])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="I'm Bo")
        await run.session.run(user_input="code 42")
        before = run.context.model_dump()
        result = await run.session.run(user_input="finish with 5000")
        out = result.expect.next_event(type="function_call_output").event().item
        assert out.is_error and "supervisor" in out.output
        assert run.state == "Back"
        # the body set amount and appended a note before refusing: both undone
        assert run.context.model_dump() == before
        assert run.refusals[-1].kind == "body"


async def test_undeclared_moves_change_nothing() -> None:
    llm = ScriptedLLM([
        "Hello?",
        call("finish", amount=1.0),       # a transition of another state
        "Sorry.",
        call("teleport", where="Done"),   # a tool that does not exist anywhere
        "Sorry again.",
    ])
    async with flow.session(llm=llm) as run:
        for line in ("finish now", "teleport me"):
            before = (run.state, run.context.model_dump())
            result = await run.session.run(user_input=line)
            out = result.expect.next_event(type="function_call_output").event().item
            assert out.is_error
            assert (run.state, run.context.model_dump()) == before
            _assert_consistent(run)
        assert run.log == []


async def test_parallel_transition_calls_apply_only_the_first() -> None:
    llm = ScriptedLLM([
        "Hello?", call("named", name="Bo"), "Hi Bo.",
        call("verify", code="42"), "Verified.",
        # two transitions and an ordinary tool in one response
        [call("finish", amount=3.0), call("restart"), call("verify", code="42")],
        "Finishing up.",  # the old agent answers the ordinary tool's output
        "Goodbye.",       # the new agent's opening
    ])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="I'm Bo")
        await run.session.run(user_input="42")
        result = await run.session.run(user_input="finish and restart")
        outputs = {
            e.item.name: e.item for e in result.events if e.type == "function_call_output"
        }
        assert not outputs["finish"].is_error
        assert outputs["restart"].is_error and "already under way" in outputs["restart"].output
        assert not outputs["verify"].is_error  # the ordinary tool in the batch still ran
        result.expect.contains_agent_handoff(new_agent_type=Done)
        assert run.state == "Done"
        _assert_consistent(run)
        assert [r.trigger for r in run.log] == ["named", "finish"]


async def test_two_sessions_of_one_flow_never_share_context() -> None:
    def script(name: str) -> ScriptedLLM:
        return ScriptedLLM(["Hello?", call("named", name=name), f"Hi {name}."])

    async def one_call(name: str) -> Ticket:
        async with flow.session(llm=script(name)) as run:
            await run.session.run(user_input=f"I'm {name}")
            assert run.session.userdata is run.context
            return run.context

    a, b = await asyncio.gather(one_call("Ann"), one_call("Bob"))
    assert (a.name, b.name) == ("Ann", "Bob")
    assert a is not b and a.notes is not b.notes
    assert a.notes == ["named Ann"] and b.notes == ["named Bob"]


async def test_code_moves_go_through_the_same_path() -> None:
    llm = ScriptedLLM(["Hello?", "Back office here.", "Bye now."])
    async with flow.session(llm=llm) as run:
        record = await run.go("named", name="Cy")
        assert (record.source, record.target, record.by) == ("Front", "Back", "code")
        assert run.state == "Back" and run.context.name == "Cy"
        _assert_consistent(run)
        with pytest.raises(TransitionRefused, match="verify the caller first"):
            await run.go("finish", amount=1.0)
        with pytest.raises(TransitionRefused, match="several transitions lead from Back to Done"):
            await run.go("Done")  # finish and hang_up both lead there: name the trigger
        assert run.state == "Back" and run.log[-1].trigger == "named"
        await run.go("hang_up")
        assert run.state == "Done"
        _assert_consistent(run)


def _messages_of_turn(llm: ScriptedLLM, index: int) -> list[tuple[str, str]]:
    return llm.turns[index].messages()


async def test_history_policies_shape_what_the_new_agent_receives() -> None:
    llm = ScriptedLLM([
        "Hello, front desk.",                 # 0 Front opening
        call("named", name="Di"),            # 1
        "Back office, Di.",                   # 2 Back enters: history=full
        call("verify", code="42"),           # 3
        "Verified.",                          # 4
        call("restart"),                      # 5 per-edge last:2 overrides Front's none
        "Front desk again.",                  # 6 Front enters
        call("hang_up"),                      # 7
        "Goodbye.",                           # 8 Done enters: history=last:3
    ])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="I'm Di")
        await run.session.run(user_input="code 42")
        await run.session.run(user_input="start over")
        await run.session.run(user_input="bye")
        assert run.state == "Done"

    full = _messages_of_turn(llm, 2)
    assert full == [("assistant", "Hello, front desk."), ("user", "I'm Di")]
    last2 = _messages_of_turn(llm, 6)
    assert last2 == [("assistant", "Verified."), ("user", "start over")]
    last3 = _messages_of_turn(llm, 8)
    assert last3 == [("user", "start over"), ("assistant", "Front desk again."), ("user", "bye")]
    # no old tool calls leak into a new agent's context
    for index in (2, 6, 8):
        kinds = {i.type for i in llm.turns[index].chat_ctx.items}
        assert not kinds & {"function_call", "function_call_output"}, kinds


async def test_history_none_still_carries_the_context_brief() -> None:
    llm = ScriptedLLM(["Hello.", call("named", name="Ed"), "Hi.", call("restart"), "Front."])

    class NoHistoryBack(Back):
        name = "Back"
        history = "none"

    from .small_flows import Done as DoneState
    from .small_flows import Front, make_flow

    f = make_flow(states=[Front, NoHistoryBack, DoneState])
    async with f.session(llm=llm) as run:
        await run.session.run(user_input="I'm Ed")
        assert llm.turns[2].messages() == []
        assert "name: Ed" in llm.turns[2].instructions


async def test_transition_body_note_reaches_the_next_agent() -> None:
    llm = ScriptedLLM([
        "Hello.", call("named", name="Fa"), "Hi.", call("verify", code="42"), "ok",
        call("finish", amount=7.5), "Goodbye.",
    ])
    async with flow.session(llm=llm) as run:
        for line in ("Fa", "42", "finish"):
            await run.session.run(user_input=line)
        assert run.state == "Done"
    assert "Note from the previous agent: finished with 7.5" in llm.turns[-1].instructions


async def test_scripted_llm_streams_text_in_chunks_and_reports_errors() -> None:
    llm = ScriptedLLM([Reply(text="one two three four five six seven")], chunk_words=2)
    from livekit.agents import llm as lk

    stream = llm.chat(chat_ctx=lk.ChatContext.empty())
    chunks = [c.delta.content async for c in stream if c.delta and c.delta.content]
    assert len(chunks) == 4 and "".join(chunks) == "one two three four five six seven"
    tool_stream = ScriptedLLM([[call("a", x=1), call("b")]]).chat(chat_ctx=lk.ChatContext.empty())
    calls = [tc for c in [c async for c in tool_stream] if c.delta for tc in c.delta.tool_calls]
    assert [c.name for c in calls] == ["a", "b"] and json.loads(calls[0].arguments) == {"x": 1}
