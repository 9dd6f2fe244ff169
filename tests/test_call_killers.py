"""Definitions that used to build and then kill the call: refused when the Flow is built."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from handoff import Context, Flow, FlowDefinitionError, RunContext, State, function_tool, transition
from handoff.validate import check


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
