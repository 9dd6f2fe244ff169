"""Random conversations mixing every fault, through a real AgentSession: zero violations.

Each example is one call: a list of caller turns, each turn making the scripted model
do one thing — take a transition, take two or three at once, call a tool that raises or
hangs, fail as a provider, or be interrupted at a chosen moment. After every turn the
invariants of DESIGN §2 are checked:

1. the FSM state and the active agent agree, and nothing is in flight;
2. every logged move is a declared edge;
3. at most one transition per turn;
4. the context holds exactly the effects of the moves that happened (each body bumps
   ``moves``; a refused, failed or rolled-back body leaves no trace), and every write of
   an ordinary tool that completed, even in the same turn as a refused, failed or
   interrupted transition (``tally``: the tool's completed writes, counted apart);
5. the session keeps answering.

``HANDOFF_CHAOS_EXAMPLES`` sets the number of conversations (CI runs 5 000).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import handoff.failures
from handoff import Context, Flow, RunContext, State, function_tool, transition
from handoff.testing import Reply, ScriptedLLM, Turn, call, fail

from .faults import misbehave

EXAMPLES = int(os.environ.get("HANDOFF_CHAOS_EXAMPLES", "60"))
LLM_ERROR_GRACE = 0.02


@pytest.fixture
def quick_llm_error_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count provider errors sooner in this test only (never set at import: other test
    files running in the same process keep the real grace)."""
    monkeypatch.setattr(handoff.failures, "LLM_ERROR_GRACE", LLM_ERROR_GRACE)


class Chaos(Context):
    moves: int = 0
    ready: bool = False
    trail: list[str] = []
    tally: int = 0


class _Tally:
    done = 0


TALLY = _Tally()


class _Gate:
    event: asyncio.Event | None = None
    reached: asyncio.Event | None = None
    """Set when a held body reaches the gate: the moment an interruption is aimed at."""


GATE = _Gate()


async def _maybe_hold(mode: str) -> None:
    if mode == "hold" and GATE.event is not None:
        if GATE.reached is not None:
            GATE.reached.set()
        await GATE.event.wait()


class _Node(State[Chaos]):
    instructions = "node"
    tool_timeout = 0.05

    @function_tool
    async def work(self, ctx: RunContext[Chaos], mode: str) -> str:
        """Do some work."""
        await misbehave(mode, raise_on="raise", hang_on="hang", error="work failed")
        ctx.userdata.ready = not ctx.userdata.ready
        return "worked"

    @function_tool
    async def tally_up(self, ctx: RunContext[Chaos]) -> str:
        """Count one more."""
        await asyncio.sleep(0)  # a transition body of the same turn may be writing now
        ctx.userdata.tally = ctx.userdata.tally + 1
        TALLY.done += 1  # no await in between: counted exactly when the write completed
        return "counted"


async def _body(ctx: RunContext[Chaos], name: str, mode: str) -> None:
    ctx.userdata.moves += 1
    ctx.userdata.trail.append(name)
    await _maybe_hold(mode)
    if mode == "raise":
        raise RuntimeError(f"{name} failed")
    if mode == "hang":
        await asyncio.sleep(5)


class A(_Node):
    """A."""

    @transition(to="B")
    async def to_b(self, ctx: RunContext[Chaos], mode: str = "ok") -> None:
        """Go to B."""
        await _body(ctx, "to_b", mode)

    @transition(to="C", when=lambda c: c.ready, refused="not ready")
    async def to_c(self, ctx: RunContext[Chaos], mode: str = "ok") -> None:
        """Go to C when ready."""
        await _body(ctx, "to_c", mode)


class B(_Node):
    """B."""

    @transition(to="A")
    async def to_a(self, ctx: RunContext[Chaos], mode: str = "ok") -> None:
        """Go to A."""
        await _body(ctx, "to_a", mode)

    @transition(to="C")
    async def b_to_c(self, ctx: RunContext[Chaos], mode: str = "ok") -> None:
        """Go to C."""
        await _body(ctx, "b_to_c", mode)


class C(_Node):
    """C."""

    @transition(to="A")
    async def c_to_a(self, ctx: RunContext[Chaos], mode: str = "ok") -> None:
        """Go back to A."""
        await _body(ctx, "c_to_a", mode)


class Human(_Node):
    """The operator."""

    @transition(to="A")
    async def human_done(self, ctx: RunContext[Chaos], mode: str = "ok") -> None:
        """Back to A."""
        await _body(ctx, "human_done", mode)


@transition(to="Human")
async def to_human(ctx: RunContext[Chaos], reason: str = "asked", mode: str = "ok") -> None:
    """Escalate."""
    await _body(ctx, "to_human", mode)


flow = Flow("chaos", context=Chaos, initial=A, states=[A, B, C, Human], final=[Human],
            global_transitions=[to_human], error_transition="to_human",
            max_failures=3, max_transitions=1000, max_ping_pong=1000)
TRIGGERS = sorted({e.trigger for e in flow.edges})
MODES = ["ok", "ok", "ok", "raise", "hang", "hold"]


@dataclass(frozen=True)
class Step:
    kind: str  # "move", "parallel", "tool", "provider", "interrupt", "mixed"
    triggers: tuple[str, ...] = ()
    mode: str = "ok"


steps = st.one_of(
    st.builds(lambda t, m: Step("move", (t,), m), st.sampled_from(TRIGGERS), st.sampled_from(MODES)),
    st.builds(lambda ts: Step("parallel", tuple(ts)),
              st.lists(st.sampled_from(TRIGGERS), min_size=2, max_size=3)),
    st.builds(lambda m: Step("tool", (), m), st.sampled_from(["ok", "raise", "hang"])),
    st.just(Step("provider")),
    st.builds(lambda t: Step("interrupt", (t,), "hold"), st.sampled_from(TRIGGERS)),
    # a transition and an ordinary tool writing the context in the same turn, the
    # transition ok, raising, hanging, held or (with "hold") interrupted
    st.builds(lambda t, m: Step("mixed", (t,), m), st.sampled_from(TRIGGERS),
              st.sampled_from(MODES)),
)


class Plan:
    """What the model does for the next caller turn (the first request of the turn)."""

    def __init__(self) -> None:
        self.reply: Any = None
        self.consumed = True

    def policy(self, turn: Turn) -> Any:
        if not self.consumed and not turn.answering_tool and turn.last_user_text.startswith("turn"):
            self.consumed = True
            return self.reply
        return "Okay."


def _reply_for(step: Step) -> Any:
    if step.kind == "move":
        return call(step.triggers[0], mode=step.mode)
    if step.kind == "parallel":
        return Reply(calls=tuple(call(t) for t in step.triggers))
    if step.kind == "tool":
        return call("work", mode=step.mode)
    if step.kind == "provider":
        return fail("provider down", retryable=False)
    if step.kind == "mixed":
        return Reply(calls=(call(step.triggers[0], mode=step.mode), call("tally_up")))
    return call(step.triggers[0], mode="hold")


def _check(run: Any, moves_before: int, log_before: int) -> None:
    session = run.session
    assert run.state == session.current_agent.id, "FSM and active agent disagree"
    assert not run.in_transition, "a transition is still in flight between turns"
    for record in run.log:
        edge = flow.triggers_from(record.source).get(record.trigger)
        assert edge is not None and edge.target == record.target, f"undeclared move {record}"
    new = len(run.log) - log_before
    assert new <= 2, "more than one transition in a turn (plus at most one failover)"
    taken = [r for r in run.log if r.by != "failover"][log_before:]
    assert len(taken) <= 1, "two LLM/code transitions in one turn"
    assert run.context.moves == len(run.log), "context effects differ from the moves taken"
    assert run.context.trail == [r.trigger for r in run.log]
    assert run.context.tally == TALLY.done, "a completed tool write was lost (or invented)"


async def _conversation(plan_steps: list[Step]) -> None:
    plan = Plan()
    TALLY.done = 0
    GATE.event = asyncio.Event()
    async with flow.session(llm=ScriptedLLM(plan.policy)) as run:
        session = run.session
        assert session is not None
        for index, step in enumerate(plan_steps):
            moves_before, log_before = run.context.moves, len(run.log)
            plan.reply, plan.consumed = _reply_for(step), False
            GATE.event = asyncio.Event()
            task = asyncio.ensure_future(session.run(user_input=f"turn {index}"))
            if step.kind == "interrupt" or (step.kind == "mixed" and step.mode == "hold"):
                await asyncio.sleep(0.005)
                session.interrupt(force=True)
            GATE.event.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
            await asyncio.sleep(LLM_ERROR_GRACE + 0.01 if step.kind == "provider" else 0)
            for _ in range(300):
                failing_over = run.failover is not None and not run.failover.done()
                if not run.in_transition and not failing_over and (
                    session.current_agent.id == run.state
                ):
                    break
                await asyncio.sleep(0.01)
            if run.failover is not None:  # let the error state's opening reply finish
                await asyncio.wait_for(session.wait_for_idle(), 10)
            _check(run, moves_before, log_before)
        # the session still answers
        plan.reply, plan.consumed = "Still here.", False
        result = await asyncio.wait_for(session.run(user_input="turn last"), 10)
        assert any(e.type == "message" for e in result.events)
        _check(run, run.context.moves, len(run.log))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(steps, min_size=1, max_size=5))
def test_random_conversations_with_faults_keep_every_invariant(
    quick_llm_error_grace: None, plan_steps: list[Step]
) -> None:
    asyncio.run(_conversation(plan_steps))
