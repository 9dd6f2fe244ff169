"""A transition whose body does nothing is not called: no coroutine, no timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livekit.agents import RunContext

from handoff import Context, Flow, State, transition
from handoff.transition import TransitionDef


def _made(body: Any) -> TransitionDef:
    return transition(to="B")(body)


class Empty(Context):
    seen: int = 0


async def _docstring(self: Any, ctx: RunContext[Empty]) -> None:
    """Only a docstring."""


async def _pass(self: Any, ctx: RunContext[Empty]) -> None:
    pass


async def _ellipsis(self: Any, ctx: RunContext[Empty]) -> None: ...


async def _return_none(self: Any, ctx: RunContext[Empty]) -> None:
    """Explicitly None."""
    return None


async def _returns_text(self: Any, ctx: RunContext[Empty]) -> str:
    return "noted"


async def _writes(self: Any, ctx: RunContext[Empty]) -> None:
    ctx.userdata.seen += 1


async def _awaits(self: Any, ctx: RunContext[Empty]) -> None:
    await asyncio.sleep(0)


def _closure() -> Any:
    marker: list[int] = []

    async def body(self: Any, ctx: RunContext[Empty]) -> None:
        marker.append(1)
    return body


@pytest.mark.parametrize("body", [_docstring, _pass, _ellipsis, _return_none])
def test_bodies_that_only_return_none_do_nothing(body: Any) -> None:
    assert _made(body).does_nothing


@pytest.mark.parametrize("body", [_returns_text, _writes, _awaits, _closure()])
def test_bodies_with_any_code_do_something(body: Any) -> None:
    assert not _made(body).does_nothing


class A(State[Empty]):
    """A."""

    instructions = "A."

    @transition(to="B")
    async def quiet(self, ctx: RunContext[Empty]) -> None:
        """Call to move on."""

    @transition(to="B")
    async def busy(self, ctx: RunContext[Empty]) -> None:
        """Call to move on, counting."""
        ctx.userdata.seen += 1


class B(State[Empty]):
    """B."""

    instructions = "B."


async def test_a_move_runs_only_a_body_that_does_something(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = Flow("empty_bodies", context=Empty, initial=A, states=[A, B])
    ran: list[str] = []
    real = TransitionDef.run_body

    async def counted(self: TransitionDef, agent: Any, ctx: Any, arguments: dict[str, Any]) -> Any:
        ran.append(self.name)
        return await real(self, agent, ctx, arguments)

    monkeypatch.setattr(TransitionDef, "run_body", counted)
    quiet, busy = flow.new_run(), flow.new_run()
    await quiet.go("quiet")
    await busy.go("busy")
    assert ran == ["busy"]
    assert (quiet.state, busy.state) == ("B", "B")
    assert (quiet.context.seen, busy.context.seen) == (0, 1)
    assert [r.trigger for r in quiet.log] == ["quiet"] and quiet.log[0].target == "B"
