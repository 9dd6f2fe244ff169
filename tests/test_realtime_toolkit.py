"""The testing toolkit on realtime (speech-to-speech) tiers: FlowDriver, the generated session
machine, ``transition_cover`` paths and the pytest plugin's fixtures drive a flow whose states
run on the ScriptedRealtimeModel, through a real AgentSession (LiveKit's realtime path)."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest
from hypothesis.stateful import invariant, run_state_machine_as_test
from livekit.agents import llm

from examples.callcenter import flow as pipeline_callcenter
from handoff.testing import (
    FlowDriver,
    FlowMachineBase,
    FlowPath,
    FlowStateMachine,
    ModelFactory,
    ScriptedLLM,
    ScriptedRealtimeModel,
    call,
    transition_cover,
)

from .realtime_callcenter import flow as callcenter
from .realtime_callcenter import realtime_callcenter
from .test_callcenter_properties import COVER_HINTS, ENTRY, TOOLS, take_by_the_llm
from .test_realtime_flows import mixed
from .test_subtasks import check_invariant_1
from .test_toolkit_machine import ResettingTriage, _settings

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)

# -- FlowDriver ---------------------------------------------------------------------------
async def test_the_driver_plays_each_tier_with_the_scripted_model_of_its_kind() -> None:
    async with FlowDriver(mixed) as driver:
        realtime, pipeline = driver.models["voice"], driver.models["fast"]
        assert isinstance(realtime, ScriptedRealtimeModel) and isinstance(pipeline, ScriptedLLM)
        assert driver.llm is realtime  # the initial state's
        assert isinstance(driver.run.agent.llm, llm.RealtimeModel)
        await driver.turn(call("named", name="Ann"))
        assert driver.run.state == "Desk" and driver.run.agent.llm is pipeline
        check_invariant_1(driver.run)
        await driver.turn(call("back_to_reception", topic="parking"))
        assert driver.run.state == "Reception" and driver.run.context.topic == "parking"
        check_invariant_1(driver.run)
    # each model answered its own states' requests, through one live realtime session
    assert {t.state for t in realtime.turns} == {"Reception"}
    assert {t.state for t in pipeline.turns} == {"Desk"}
    assert len(realtime.sessions) == 2  # the second visit to Reception opened a new one


async def test_model_puts_one_scripted_model_on_every_state() -> None:
    async with FlowDriver(pipeline_callcenter, model=ScriptedRealtimeModel) as driver:
        assert list(driver.models) == ["*"] and isinstance(driver.llm, ScriptedRealtimeModel)
        await driver.turn(call("caller_identified", name="Ann", topic="a charge"))
        await driver.turn(call("verify_account", account_id="4411", pin="1234"))
        await driver.turn(call("billing_question"))
        assert driver.run.state == "Billing" and driver.run.context.verified
        assert isinstance(driver.run.agent.llm, ScriptedRealtimeModel)
        check_invariant_1(driver.run)
    assert {t.state for t in driver.llm.turns} == {"Greeter", "Triage", "Billing"}
    assert len(driver.llm.sessions) == 1  # one session reused across the handoffs


async def test_a_partial_factory_sets_the_model_options() -> None:
    frozen = functools.partial(ScriptedRealtimeModel, mutable=False)
    async with FlowDriver(callcenter, model=frozen) as driver:
        await driver.turn(call("caller_identified", name="Bo", topic="a bill"))
        assert driver.run.state == "Triage"
        check_invariant_1(driver.run)
        assert isinstance(driver.llm, ScriptedRealtimeModel)
        first, second = driver.llm.sessions  # it cannot update a session: LiveKit reopens
        assert first.closed and not second.closed


@pytest.mark.parametrize("at", ["thinking", "handing_over"])
async def test_an_interrupted_handoff_on_a_realtime_model_is_all_or_nothing(at: Any) -> None:
    async with FlowDriver(callcenter) as driver:
        await driver.interrupted_turn(call("caller_identified", name="Cy", topic="fees"), at=at)
        run = driver.run
        check_invariant_1(run)
        assert (run.state, run.context.caller_name) in (("Greeter", None), ("Triage", "Cy"))
        assert [r.target for r in run.log] == ([] if run.state == "Greeter" else ["Triage"])
        await driver.turn(call("escalate_to_human", reason="wants a person"))
        assert run.state == "Escalation"
    assert not any(s.generating for s in driver.llm.sessions)  # type: ignore[union-attr]


# -- transition_cover ---------------------------------------------------------------------
COVER = transition_cover(callcenter, **COVER_HINTS).require_complete()


@pytest.mark.parametrize("path", COVER, ids=str)
async def test_every_transition_by_the_realtime_model(path: FlowPath) -> None:
    async with FlowDriver(callcenter) as driver:
        await take_by_the_llm(driver, path)
    model = driver.llm
    assert list(driver.models) == ["fast", "smart"] and isinstance(model, ScriptedRealtimeModel)
    assert set(driver.models.values()) == {model}  # every tier is realtime: one model
    assert {s.source for s in path.steps} <= {t.state for t in model.turns}


# -- the generated session machine --------------------------------------------------------
class _OnRealtime(FlowMachineBase):
    """Every step of the machine ran on the realtime model."""

    @invariant()
    def on_the_realtime_model(self) -> None:
        if self.driver is not None and self.live():
            assert isinstance(self.run.agent.llm, ScriptedRealtimeModel)
            assert isinstance(self.driver.llm, ScriptedRealtimeModel)


def _machine(flow: Any, **options: Any) -> type[FlowMachineBase]:
    generated = FlowStateMachine(flow, mode="session", **options)
    return type(generated.__name__, (generated, _OnRealtime), {})


def test_the_session_machine_runs_the_call_centre_on_realtime_tiers() -> None:
    """Whole generated conversations: LLM tool calls, parallel calls, interruptions, code
    moves and the real tools; invariant 1 after every step (FlowMachineBase)."""
    machine = _machine(callcenter, entry_conditions=ENTRY, tools=TOOLS)
    run_state_machine_as_test(machine, settings=_settings(30))


def test_a_planted_bug_is_found_on_realtime_tiers() -> None:
    machine = _machine(realtime_callcenter(triage=ResettingTriage), entry_conditions=ENTRY)
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(machine, settings=_settings(20))
    assert "session.userdata is no longer the run's context" in str(info.value)
    steps = [line.strip() for line in getattr(info.value, "__notes__", [])
             if line.strip().startswith("state.")]
    assert any("caller_identified" in s for s in steps), steps  # the move into Triage


def test_a_model_is_for_the_session_mode() -> None:
    with pytest.raises(ValueError, match="mode='session'"):
        FlowStateMachine(callcenter, model=ScriptedRealtimeModel)


# -- the pytest plugin's fixtures ---------------------------------------------------------
@pytest.mark.handoff_flow(pipeline_callcenter)
class TestTheFixturesOnARealtimeModel:
    """``handoff_model`` overridden: the fixtures play the pipeline call centre on it."""

    @pytest.fixture
    def handoff_model(self) -> ModelFactory:
        return ScriptedRealtimeModel

    async def test_flow_driver(self, flow_driver: Any) -> None:
        driver = await flow_driver()
        assert isinstance(driver.llm, ScriptedRealtimeModel)
        await driver.turn(call("caller_identified", name="Eve", topic="a bill"))
        assert driver.run.state == "Triage"
        check_invariant_1(driver.run)

    async def test_flow_session_plays_a_script_on_it(self, flow_session: Any) -> None:
        run = await flow_session(["Hello.", call("caller_identified", name="Eve", topic="x"),
                                  "Triage here."])
        assert isinstance(run.agent.llm, ScriptedRealtimeModel)
        await run.session.run(user_input="I'm Eve")
        assert run.state == "Triage"


@pytest.mark.handoff_flow(callcenter)
async def test_by_default_the_fixtures_follow_the_tiers_kind(flow_session: Any,
                                                             flow_driver: Any) -> None:
    run = await flow_session(["Hello."])
    assert isinstance(run.agent.llm, ScriptedRealtimeModel)
    driver = await flow_driver()
    assert isinstance(driver.llm, ScriptedRealtimeModel)
