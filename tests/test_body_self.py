"""A transition body's ``self`` is its State everywhere: in a session, and on a run
without one (``flow.new_run()``: the pure machine, ``explore``, path search), with no
provider key anywhere (the pure path resolves no LLM: LiveKit's ``Agent(llm=None)``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from handoff import Context, Flow, RunContext, State, transition
from handoff.testing import FlowStateMachine, ScriptedLLM, call, explore
from handoff.tiers import TierConfig, Tiers

SEEN: list[Any] = []
"""The ``self`` of every body that ran, for the tests to look at."""


class Desk(Context):
    visits: int = 0
    labels: list[str] = []


class Front(State[Desk]):
    """Takes the caller in."""

    instructions = "Take the caller in."

    def label(self, why: str) -> str:
        """A helper of the State, called from its bodies."""
        return f"{self.name}:{self.context.visits}:{why}"

    @transition(to="Back")
    async def hand_on(self, ctx: RunContext[Desk], why: str) -> None:
        """Call to hand the caller on."""
        SEEN.append(self)
        assert self.run.context is ctx.userdata is self.context
        self.context.visits += 1
        ctx.userdata.labels.append(self.label(why))

    @transition(to="Back", llm=False)
    async def skip(self, ctx: RunContext[Desk]) -> None:
        """Code only; the body never reads its self (so none is made for it)."""
        SEEN.append("skip")


class Back(State[Desk]):
    """Helps the caller."""

    instructions = "Help the caller."

    @transition(to="Front")
    async def back(self, ctx: RunContext[Desk]) -> None:
        """Call to send the caller back to the front."""
        SEEN.append(self)
        self.context.labels.append(f"{self.name} by {type(self).__name__}")


def _flow() -> Flow[Desk]:
    no_keys = Tiers({"fast": TierConfig("fast", "gpt-4o-mini")})  # openai's, unset below
    return Flow("desk", context=Desk, initial=Front, states=[Front, Back], final=[],
                tiers=no_keys)


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(key, raising=False)
    SEEN.clear()


def test_the_tier_has_no_key() -> None:
    """The premise: resolving the tier's LLM fails here, so no body may need it."""
    with pytest.raises(Exception, match="could not be made"):
        _flow().tiers.llm("fast")


async def test_pure_run_body_gets_its_state() -> None:
    with _flow().new_run() as run:
        await run.go("hand_on", why="billing")
        await run.go("back")
        assert run.context.labels == ["Front:1:billing", "Back by Back"]
        front, back = SEEN
        assert type(front) is Front and type(back) is Back and front.run is run
        assert front.llm is None and run.agent is None  # never handed to LiveKit
        await run.go("skip")
        assert SEEN[-1] == "skip"


async def test_session_body_gets_the_live_agent() -> None:
    llm = ScriptedLLM(["Hi.", call("hand_on", why="billing"), "Back here.",
                       call("back"), "Front again."])
    async with _flow().session(llm=llm) as run:
        await run.session.run(user_input="my bill")
        assert SEEN and SEEN[0] is not None and type(SEEN[0]) is Front
        await run.session.run(user_input="go back")
        assert run.context.labels == ["Front:1:billing", "Back by Back"]
        assert type(SEEN[1]) is Back and SEEN[1] is not run.agent  # Back's, now replaced


def test_explore_runs_bodies_that_read_self() -> None:
    result = explore(_flow(), depth=3, context_moves=False)
    assert result.ok, result.problems
    assert {("Front", "hand_on"), ("Back", "back")} <= result.taken
    assert any(type(s) is Front for s in SEEN) and any(type(s) is Back for s in SEEN)


@pytest.mark.parametrize(("mode", "examples"), [("pure", 30), ("session", 4)])
def test_the_generated_machine_runs_bodies_that_read_self(mode: str, examples: int) -> None:
    machine = FlowStateMachine(_flow(), mode=mode,  # type: ignore[arg-type]
                               context_updates=False, interruptions=False)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=6, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
    assert any(type(s) is Front for s in SEEN)


def _wrapped(func: Any) -> Any:
    import functools

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await func(*args, **kwargs)
    return wrapper


async def _reads_in_a_closure(self: Any) -> None:
    def later() -> Any:
        return self.context
    later()


class _Base:
    async def _reads_through_super(self) -> None:
        super().__init__()  # zero-argument super() reads the frame's self: no LOAD_FAST


async def _reads_plainly(self: Any) -> None:
    print(self)


async def _never_reads(self: Any) -> None:
    print("no self here")


@pytest.mark.parametrize(("body", "reads"), [
    (_reads_in_a_closure, True), (_Base._reads_through_super, True), (_reads_plainly, True),
    (_wrapped(_never_reads), True),  # a wrapper's *args cannot be told apart: made
    (_never_reads, False),
])
def test_which_bodies_read_self_is_told_from_their_code(body: Any, reads: bool) -> None:
    assert transition(to="Back")(body).reads_self is reads
