"""The testing toolkit on side trips with typed results: the generated machine (pure and
through real AgentSessions), exhaustive exploration and the transition cover drive the
``to=RETURN`` edges with values of their declared types, check that what comes back is a
value of the declared type, and find a side trip whose body returns something else."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test
from pydantic import BaseModel, Field

from handoff import RETURN, Context, Flow, Returned, RunContext, State, transition
from handoff.records import TransitionRecord
from handoff.testing import FlowStateMachine, explore, transition_cover
from handoff.testing.oracle import result_problem
from handoff.testing.strategies import for_type
from handoff.testing.values import pattern_example, values_for

logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)

ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


class Identity(BaseModel):
    verified: bool
    date_of_birth: str = Field(pattern=ISO_DATE)


class Account(Context):
    verified: bool = False
    recording: bool | None = None


class Billing(State[Account]):
    """Answers billing questions once the caller is verified."""

    instructions = "You are billing."

    @transition(to="Verify", returns=True)
    async def verify(self, ctx: RunContext[Account]) -> None:
        """Call before anything about the account."""

    @transition(to="Consent", returns=True)
    async def ask_consent(self, ctx: RunContext[Account]) -> None:
        """Call to ask the caller's consent to record the call."""

    @transition(to="Done", when=lambda c: c.verified and c.recording is not None,
                refused="verify the caller and ask for consent first")
    async def finish(self, ctx: RunContext[Account]) -> None:
        """Call when the caller has nothing more."""

    async def on_return(self, returned: Returned[Any]) -> str | None:
        if isinstance(returned.value, Identity):
            self.context.verified = returned.value.verified
        elif isinstance(returned.value, bool):
            self.context.recording = returned.value
        return await super().on_return(returned)


class Verify(State[Account]):
    """Checks the caller's date of birth; comes back with who they are."""

    instructions = "Ask for the date of birth."

    @transition(to=RETURN)
    async def identity_checked(
        self, ctx: RunContext[Account],
        date_of_birth: Annotated[str, Field(pattern=ISO_DATE, description="YYYY-MM-DD")],
    ) -> Identity:
        """Call once the caller told you their date of birth."""
        return Identity(verified=True, date_of_birth=date_of_birth)


class Consent(State[Account]):
    """Asks whether the call may be recorded; comes back with yes or no."""

    instructions = "Ask for consent."

    @transition(to=RETURN)
    async def answered(self, ctx: RunContext[Account], agreed: bool) -> bool:
        """Call with the caller's answer."""
        return agreed


class Done(State[Account]):
    """Says goodbye."""

    instructions = "Say goodbye."


class SloppyConsent(Consent):
    """Passes the caller's words on as the answer: "maybe" is not a bool."""

    name = "Consent"

    @transition(to=RETURN)
    async def answered(self, ctx: RunContext[Account],  # type: ignore[override]
                       answer: Literal["yes", "no", "maybe"]) -> bool:
        """Call with the caller's answer."""
        return answer  # type: ignore[return-value]


def bank(consent: type[Consent] = Consent) -> Flow[Account]:
    return Flow("bank", context=Account, initial=Billing,
                states=[Billing, Verify, consent, Done], final=[Done])


def _settings(n: int) -> settings:
    return settings(max_examples=n, stateful_step_count=8, deadline=None, database=None,
                    derandomize=True, suppress_health_check=list(HealthCheck))


# -- values of the declared types ------------------------------------------------------
def test_constrained_text_and_models_get_values_that_fit() -> None:
    """A pattern is generated from, not filtered for (text would almost never match)."""
    assert pattern_example(ISO_DATE) == "0000-00-00"
    assert values_for(Annotated[str, Field(pattern=ISO_DATE)], []) == ["0000-00-00"]
    assert values_for(Identity, []) == [Identity(verified=False, date_of_birth="0000-00-00")]

    @settings(max_examples=30, database=None, derandomize=True)
    @given(for_type(Identity), for_type(Annotated[str, Field(pattern=ISO_DATE)]))
    def fits(identity: Identity, text: str) -> None:
        Identity.model_validate(identity.model_dump())
        Identity(verified=True, date_of_birth=text)

    fits()


def test_the_oracle_flags_a_logged_result_of_the_wrong_type() -> None:
    flow = bank()
    edge = flow.table["Verify"]["identity_checked"]
    good = TransitionRecord("Verify", "Billing", "identity_checked", {}, 0.0, "code",
                            {"verified": True, "date_of_birth": "1990-04-01"})
    assert result_problem(edge, good) is None
    for wrong in (None, {"verified": "perhaps", "date_of_birth": "1990-04-01"}):
        bad = TransitionRecord("Verify", "Billing", "identity_checked", {}, 0.0, "code", wrong)
        assert "which is not a Identity" in (result_problem(edge, bad) or "")
    untyped = flow.table["Billing"]["verify"]
    assert result_problem(untyped, good) is None  # not a return: nothing to check


# -- exploration and paths -------------------------------------------------------------
def test_exploration_takes_the_typed_returns_and_finds_nothing_wrong() -> None:
    result = explore(bank(), depth=4).raise_if_failed()
    assert {("Verify", "identity_checked"), ("Consent", "answered"),
            ("Billing", "finish")} <= result.taken


def test_exploration_finds_a_side_trip_returning_the_wrong_type() -> None:
    result = explore(bank(SloppyConsent), depth=3)
    assert not result.ok and result.counterexample is not None
    assert [str(m) for m in result.counterexample] == ["await run.go('ask_consent')",
                                                    "await run.go('answered', answer='maybe')"]
    assert any("its result 'maybe' is not a bool" in p for p in result.problems)


def test_the_transition_cover_goes_out_and_back_with_a_value_of_the_type() -> None:
    cover = transition_cover(bank()).require_complete()
    steps = {(s.source, s.trigger): s for p in cover for s in p.steps}
    assert {("Verify", "identity_checked"), ("Consent", "answered"),
            ("Billing", "finish")} <= set(steps)
    date = steps[("Verify", "identity_checked")].arguments["date_of_birth"]
    Identity(verified=True, date_of_birth=date)  # the search drew it from the pattern


# -- the generated machine -------------------------------------------------------------
def test_the_generated_machine_drives_typed_side_trips_on_pure_runs() -> None:
    machine = FlowStateMachine(bank(), entry_conditions={"Done": lambda c: c.verified})
    run_state_machine_as_test(machine, settings=_settings(80))


def test_the_generated_machine_drives_typed_side_trips_through_sessions() -> None:
    machine = FlowStateMachine(bank(), mode="session",
                               entry_conditions={"Done": lambda c: c.verified})
    run_state_machine_as_test(machine, settings=_settings(15))


def test_the_generated_machine_finds_a_side_trip_returning_the_wrong_type() -> None:
    machine = FlowStateMachine(bank(SloppyConsent))
    try:
        run_state_machine_as_test(machine, settings=_settings(200))
    except AssertionError as exc:
        assert "its result 'maybe' is not a bool" in str(exc)
    else:
        raise AssertionError("the machine did not find the side trip returning 'maybe'")
