"""Definitions that used to build and then kill the call: refused when the Flow is built."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from handoff import (
    Context,
    Flow,
    FlowDefinitionError,
    FlowError,
    RunContext,
    State,
    function_tool,
    transition,
)
from handoff.secrets import SecretChain
from handoff.testing import ScriptedLLM
from handoff.validate import check
from handoff.worker import WorkerSettings, startup_checks


class Call(Context):
    name: str | None = None


class Other(Context):
    size: int = 0


def _codes(build: Callable[[], object]) -> set[str]:
    with pytest.raises(FlowDefinitionError) as info:
        build()
    return {f.code for f in info.value.findings}


def test_a_transition_and_a_tool_with_one_name() -> None:
    class Desk(State[Call]):
        """Desk."""

        @function_tool
        async def lookup(self, ctx: RunContext[Call]) -> str:
            """Look up."""
            return ""

        @transition(to="Desk", name="lookup")
        async def look(self, ctx: RunContext[Call]) -> None:
            """Move."""

    assert "tool-name-clash" in _codes(lambda: Flow("f", context=Call, initial=Desk,
                                                     states=[Desk], final=[Desk]))


def test_reserved_and_provider_invalid_names() -> None:
    class Star(State[Call]):
        """The wildcard."""

        name = "*"

        @transition(to="*", name="go to star!")
        async def move(self, ctx: RunContext[Call]) -> None:
            """Move."""

    codes = _codes(lambda: Flow("f", context=Call, initial=Star, states=[Star], final=[Star]))
    assert {"reserved-name", "bad-tool-name"} <= codes


def test_a_state_of_another_context() -> None:
    class Sized(State[Other]):
        """Needs Other."""

    assert "wrong-context" in _codes(lambda: Flow("f", context=Call, initial=Sized,
                                                   states=[Sized], final=[Sized]))


def test_a_context_that_cannot_be_made_empty_is_reported_by_check() -> None:
    """A warning (handoff check): calls that always bring their Context are fine."""
    class Strict(Context):
        account: str

    class Desk(State[Strict]):
        """Desk."""

    flow = Flow("f", context=Strict, initial=Desk, states=[Desk], final=[Desk])
    assert [f.code for f in check(flow) if f.code == "context-needs-values"] == [
        "context-needs-values"]


class NeedsAccount(Context):
    account: str
    pin: str | None = None


class Counter(State[NeedsAccount]):
    """Serves an account the call brought."""

    instructions = "Serve the account."


strict_flow = Flow("strict", context=NeedsAccount, initial=Counter, states=[Counter],
                   final=[Counter])
"""Builds (a call that brings its Context is fine); a call started without one is not."""


async def test_a_call_without_the_context_it_needs_fails_before_it_starts() -> None:
    """Flow() accepts it (the warning above); starting a call without a Context is a
    FlowError naming the fields and the fix, not pydantic's raw error, before any
    session starts; with ``context=`` the same flow runs."""
    with pytest.raises(FlowError, match=r"account have no default.*fix: give every field") as err:
        async with strict_flow.session(llm=ScriptedLLM(["Hello."])):
            raise AssertionError("the session started")
    assert not isinstance(err.value, ValidationError)
    with pytest.raises(FlowError, match="account"):
        strict_flow.new_run()
    llm = ScriptedLLM(["Hello.", "Your account is open."])
    async with strict_flow.session(context=NeedsAccount(account="A-17"), llm=llm) as run:
        await run.session.run(user_input="hi")
        assert run.state == "Counter" and run.context.account == "A-17"


def test_a_worker_refuses_a_flow_whose_calls_cannot_start() -> None:
    """A worker starts every call without a Context: such a flow fails at start-up, as
    a definition error naming the fields, not on each call."""
    settings = WorkerSettings.from_env("tests.test_call_killers:strict_flow", environ={})
    with pytest.raises(FlowDefinitionError) as err:
        startup_checks(settings, SecretChain([]), connect=False, voice=False, models=False)
    assert [(f.severity, f.code) for f in err.value.findings] == [
        ("error", "context-needs-values")]
