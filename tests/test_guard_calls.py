"""Guards during a call: async guards are awaited, slow ones never stall the loop twice.

A coroutine object is truthy: an ``async def`` guard used to let every caller through.
A plain guard cannot be preempted on the event loop: the first time one takes longer
than ``handoff.guards.SLOW_GUARD`` it is moved to a worker thread (on a copy of the
context) for good, and a guard that does not answer within the state's timeout refuses
the move as an error.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

import handoff.guards
from handoff import Context, Flow, RunContext, State, transition
from handoff.testing import ScriptedLLM, call


class Caller(Context):
    verified: bool = False


class Blocker:
    """What the guards wait on: a loop-side event and a thread-side one."""

    loop_event: asyncio.Event
    thread_event: threading.Event
    thread_started: threading.Event

    def reset(self) -> None:
        self.loop_event = asyncio.Event()
        self.thread_event = threading.Event()
        self.thread_started = threading.Event()


BLOCK = Blocker()


async def remote_check(c: Caller) -> bool:
    """An async guard (it asks a backend)."""
    await asyncio.sleep(0)
    return c.verified


async def hanging_check(c: Caller) -> bool:
    await BLOCK.loop_event.wait()
    return True


def blocking_check(c: Caller) -> bool:
    """A plain guard that blocks its thread until the test says so."""
    BLOCK.thread_started.set()
    return BLOCK.thread_event.wait(5)


class Desk(State[Caller]):
    """The desk."""

    instructions = "Desk."
    tool_timeout = 0.2

    @transition(to="Vault", when=remote_check, refused="verify the caller first")
    async def vault(self, ctx: RunContext[Caller]) -> None:
        """Open the vault."""

    @transition(to="Vault", when=hanging_check)
    async def vault_slowly(self, ctx: RunContext[Caller]) -> None:
        """Open the vault, slowly."""

    @transition(to="Vault", when=blocking_check)
    async def vault_blocking(self, ctx: RunContext[Caller]) -> None:
        """Open the vault, blocking."""


class Vault(State[Caller]):
    """The vault."""

    instructions = "Vault."


flow = Flow("guarded", context=Caller, initial=Desk, states=[Desk, Vault], final=[Vault])


@pytest.fixture
def blocker() -> Iterator[Blocker]:
    BLOCK.reset()
    try:
        yield BLOCK
    finally:
        BLOCK.thread_event.set()  # never leave a guard thread blocked
        blocking_guard = next(e for e in flow.edges if e.trigger == "vault_blocking")
        blocking_guard.transition._guard.off_loop = False  # type: ignore[union-attr]


async def test_an_async_guard_is_awaited_and_can_refuse(blocker: Blocker) -> None:
    llm = ScriptedLLM(["Hello.", call("vault"), "Verify first.", call("vault"), "Opening."])
    async with flow.session(llm=llm) as run:
        result = await run.session.run(user_input="open the vault")
        out = result.expect.next_event(type="function_call_output").event().item
        assert out.is_error and "verify the caller first" in out.output
        assert run.state == "Desk" and run.refusals[-1].kind == "guard"
        run.context.verified = True
        await run.session.run(user_input="open it now")
        assert run.state == "Vault"


async def test_an_async_guard_that_never_answers_refuses_as_an_error(blocker: Blocker) -> None:
    llm = ScriptedLLM(["Hello.", call("vault_slowly"), "It did not work."])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="open the vault slowly")
        assert run.state == "Desk" and not run.in_transition
        assert run.refusals[-1].kind == "error" and "did not answer" in run.refusals[-1].reason


async def test_a_slow_plain_guard_is_moved_off_the_loop(
    blocker: Blocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First evaluation: the fake clock says it took 1 s (it held the loop): from then on
    the guard runs in a thread, so the loop runs while it blocks, and its answer counts."""
    ticks = iter([0.0, 1.0])
    monkeypatch.setattr(handoff.guards, "clock", lambda: next(ticks))
    monkeypatch.setattr(Desk, "tool_timeout", 30.0)
    blocker.thread_event.set()  # the first evaluation answers at once
    llm = ScriptedLLM(["Hello.", call("vault_blocking"), "Opening.", "Welcome back."])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="open")
        assert run.state == "Vault"  # the answer of the slow evaluation is used
    blocker.reset()
    llm = ScriptedLLM(["Hello.", call("vault_blocking"), "Opening."])
    async with flow.session(llm=llm) as run:
        turn = asyncio.ensure_future(run.session.run(user_input="open"))
        # the guard now blocks a worker thread; the loop is free: this await returns
        await asyncio.to_thread(blocker.thread_started.wait, 5)
        assert blocker.thread_started.is_set() and not turn.done()
        blocker.thread_event.set()
        await turn
        assert run.state == "Vault"


async def test_a_guard_thread_that_never_answers_refuses_as_an_error(
    blocker: Blocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = next(e for e in flow.edges if e.trigger == "vault_blocking")
    edge.transition._guard.off_loop = True  # type: ignore[union-attr]  # measured slow before
    monkeypatch.setattr(Desk, "tool_timeout", 0.05)
    llm = ScriptedLLM(["Hello.", call("vault_blocking"), "It did not work."])
    async with flow.session(llm=llm) as run:
        await run.session.run(user_input="open")
        assert run.state == "Desk" and run.refusals[-1].kind == "error"
        assert "did not answer" in run.refusals[-1].reason
    blocker.thread_event.set()  # the abandoned thread ends (its answer is ignored)


def test_the_pure_model_refuses_to_judge_an_async_guard() -> None:
    edge = next(e for e in flow.edges if e.trigger == "vault")
    with pytest.raises(TypeError, match="async"):
        edge.transition.check_guard(Caller(), {})
