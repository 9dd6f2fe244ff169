"""A bad flow definition fails when the Flow is built, naming the state and the fix."""

from __future__ import annotations

import pytest

from handoff import Context, Flow, FlowDefinitionError, RunContext, State, transition
from handoff.tiers import TierConfig, Tiers

from .small_flows import Back, Done, Front, Ticket, hang_up, make_flow


def test_the_small_flow_builds_with_its_table() -> None:
    flow = make_flow()
    assert flow.initial == "Front" and flow.final == {"Done"}
    assert set(flow.triggers_from("Front")) == {"named", "hang_up"}
    assert set(flow.triggers_from("Back")) == {"finish", "restart", "hang_up"}
    assert flow.triggers_from("Back")["hang_up"].is_global


def test_unknown_target_names_the_state_and_trigger() -> None:
    class Lost(State[Ticket]):
        """Goes nowhere."""

        instructions = "x"

        @transition(to="Nowhere")
        async def leave(self) -> None:
            """Leave."""

    with pytest.raises(FlowDefinitionError) as err:
        make_flow(states=[Front, Back, Done, Lost])
    assert "Lost.leave" in str(err.value) and "unknown state 'Nowhere'" in str(err.value)


def test_duplicate_state_is_refused() -> None:
    class Front2(Front):
        name = "Front"

    with pytest.raises(FlowDefinitionError, match="state 'Front' is declared 2 times"):
        make_flow(states=[Front, Back, Done, Front2])


def test_unknown_tier_is_refused_with_the_declared_tiers() -> None:
    class Fancy(Done):
        name = "Fancy"
        tier = "genius"

    with pytest.raises(FlowDefinitionError) as err:
        make_flow(states=[Front, Back, Done, Fancy])
    text = str(err.value)
    assert "Fancy" in text and "'genius'" in text and "fast" in text


def test_missing_docstring_duplicate_trigger_and_bad_initial_are_all_reported() -> None:
    class Mute(State[Ticket]):
        """Has an undocumented transition."""

        instructions = "x"

        @transition(to="Done")
        async def hang_up(self) -> None:  # clashes with the global trigger, and no docstring
            pass

    with pytest.raises(FlowDefinitionError) as err:
        make_flow(states=[Front, Back, Done, Mute], initial="Nobody")
    findings = [str(f) for f in err.value.findings]
    assert any("no-docstring" in f and "Mute.hang_up" in f for f in findings)
    assert any("duplicate-trigger" in f and "Mute.hang_up" in f for f in findings)
    assert any("no-initial" in f and "Nobody" in f for f in findings)


def test_bad_history_policy_and_final_state_are_refused() -> None:
    class Chatty(Done):
        name = "Chatty"
        history = "most"

    with pytest.raises(FlowDefinitionError) as err:
        make_flow(states=[Front, Back, Done, Chatty], final=[Done, "Ghost"])
    text = str(err.value)
    assert "Chatty" in text and "'most'" in text and "Ghost" in text


def test_transition_must_be_async() -> None:
    with pytest.raises(TypeError, match="async def"):
        transition(to="Done")(lambda self: None)  # type: ignore[arg-type,return-value]


def test_class_targets_resolve_to_the_flow_subclass() -> None:
    class Start(State[Ticket]):
        """Start."""

        instructions = "x"

        @transition(to=Done)
        async def end(self) -> None:
            """End."""

    class MyDone(Done):
        name = "Finished"

    flow = Flow("t", context=Ticket, initial=Start, states=[Start, MyDone], final=[MyDone])
    assert flow.triggers_from("Start")["end"].target == "Finished"


def test_instructions_class_attribute_becomes_the_prompt() -> None:
    assert Front.prompt == "You are the front desk."
    assert "instructions" not in Front.__dict__  # Agent.instructions (a property) is intact


def test_tiers_from_config_env_and_unknown_tier(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "pyproject.toml").write_text(
        '[tool.handoff.tiers.cheap]\nmodel = "m-small"\n'
        '[tool.handoff.tiers.strong]\nmodel = "m-big"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'fallbacks = ["cheap"]\n'
    )
    tiers = Tiers.load(root, environ={"HANDOFF_TIER_CHEAP_MODEL": "m-tiny"})
    assert tiers.names() == ["cheap", "strong"]
    assert tiers.configs["cheap"].model == "m-tiny"
    assert tiers.configs["strong"].fallbacks == ("cheap",)
    assert tiers.is_configured("strong") and "127.0.0.1" in tiers.describe("strong")

    (root / "handoff.toml").write_text('[tiers.only]\nmodel = "x"\n')
    assert Tiers.load(root, environ={}).names() == ["only"]  # handoff.toml wins

    class Ctx(Context):
        pass

    class S(State[Ctx]):
        """S."""

        instructions = "x"
        tier = "fast"

    with pytest.raises(FlowDefinitionError, match="unknown-tier"):
        Flow("t", context=Ctx, initial=S, states=[S], final=[S], tiers=Tiers.load(root, environ={}))


def test_tier_llms_are_made_once_and_fall_back_through_livekit() -> None:
    from livekit.agents import llm

    tiers = Tiers({
        "a": TierConfig("a", "m-a", base_url="http://127.0.0.1:9/v1"),
        "b": TierConfig("b", "m-b", base_url="http://127.0.0.1:9/v1", fallbacks=("a",)),
    }, secrets=lambda name: None)
    assert tiers.llm("a") is tiers.llm("a")
    b = tiers.llm("b")
    assert isinstance(b, llm.FallbackAdapter)
    assert [x.model for x in b._llm_instances] == ["m-b", "m-a"]


def test_unknown_fallback_tier_is_refused() -> None:
    from handoff import UnknownTierError

    with pytest.raises(UnknownTierError, match="unknown tier 'nope'"):
        Tiers({"a": TierConfig("a", "m", fallbacks=("nope",))})


def test_global_transition_function_is_not_a_method() -> None:
    assert not hang_up.is_method and hang_up.context_param == "ctx"
    finish = next(t for t in Back.declared_transitions() if t.name == "finish")
    assert finish.is_method and [p.name for p in finish.params] == ["amount"]
    assert finish.params[0].annotation is float


def _unused(ctx: RunContext[Ticket]) -> None:  # keeps RunContext import honest for mypy
    pass


def test_context_brief_shows_set_fields_and_never_sensitive_ones() -> None:
    from handoff.states import CallContext

    call = CallContext(caller_name="Ann", verified=True, pin_hint="the usual 12")
    brief = call.brief()
    assert "- caller_name: Ann" in brief and "- verified: True" in brief
    assert "account_id" not in brief  # unset
    assert "pin_hint" not in brief and "12" not in brief  # marked pii
