"""Random conversations mixing every fault, through a real AgentSession: zero violations.

Each example is one call: a list of caller turns, each turn making the scripted model
do one thing — take a transition, take two or three at once, call a tool that raises or
hangs, fail as a provider (once, or for the whole turn: an outage that the error state's
opening meets too), or be interrupted at a chosen moment. After every turn the
invariants of DESIGN §2 are checked:

1. the FSM state and the active agent agree, and nothing is in flight;
2. every logged move is a declared edge;
3. at most one transition per turn;
4. the context holds exactly the effects of the moves that happened (each body bumps
   ``moves``; a refused, failed or rolled-back body leaves no trace), and every write of
   an ordinary tool that completed, even in the same turn as a refused, failed or
   interrupted transition (``tally``: the tool's completed writes, counted apart);
5. the session keeps answering, or LiveKit ended it cleanly: after more than
   ``max_unrecoverable_errors`` (3) provider errors with no agent speech between them,
   LiveKit 1.8.9 closes the session (reason ``error``), and then ``wait_for_idle()``
   raises (``ActivityClosedError`` while closing, ``RuntimeError: AgentSession has no
   active AgentActivity`` once closed). The harness then checks invariants 2-4 on the
   ended run and that only a provider error ended it.

Nothing here waits on the clock: interruptions are aimed at loop steps or at the held
body's gate, and provider errors are awaited through ``FailureWatch.settled()``.
``HANDOFF_CHAOS_EXAMPLES`` sets the number of conversations (CI runs 5 000).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from livekit.agents import CloseEvent, CloseReason

import handoff.failures
from handoff import Context, Flow, RunContext, State, function_tool, transition
from handoff._livekit import session_is_closing
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
AT_THE_GATE = -1
moments = st.one_of(st.just(AT_THE_GATE), st.integers(0, 40))


@dataclass(frozen=True)
class Step:
    kind: str  # "move", "parallel", "tool", "provider", "outage", "interrupt", "mixed"
    triggers: tuple[str, ...] = ()
    mode: str = "ok"
    moment: int = AT_THE_GATE
    """When a held turn is interrupted: ``AT_THE_GATE`` (while its body is held, or once
    the turn is over when no body was reached), or after that many event-loop steps of
    the turn (a moment counted by the loop, never by the clock)."""


steps = st.one_of(
    st.builds(lambda t, m: Step("move", (t,), m), st.sampled_from(TRIGGERS), st.sampled_from(MODES)),
    st.builds(lambda ts: Step("parallel", tuple(ts)),
              st.lists(st.sampled_from(TRIGGERS), min_size=2, max_size=3)),
    st.builds(lambda m: Step("tool", (), m), st.sampled_from(["ok", "raise", "hang"])),
    st.just(Step("provider")),
    st.just(Step("outage")),
    st.builds(lambda t, at: Step("interrupt", (t,), "hold", at), st.sampled_from(TRIGGERS),
              moments),
    # a transition and an ordinary tool writing the context in the same turn, the
    # transition ok, raising, hanging, held or (with "hold") interrupted
    st.builds(lambda t, m, at: Step("mixed", (t,), m, at), st.sampled_from(TRIGGERS),
              st.sampled_from(MODES), moments),
)


class Plan:
    """What the model does for the next caller turn (the first request of the turn); in an
    outage, every request fails until the next turn is planned."""

    def __init__(self) -> None:
        self.reply: Any = None
        self.consumed = True
        self.outage = False

    def policy(self, turn: Turn) -> Any:
        if self.outage:
            return fail("provider down", retryable=False)
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
    if step.kind in ("provider", "outage"):
        return fail("provider down", retryable=False)
    if step.kind == "mixed":
        return Reply(calls=(call(step.triggers[0], mode=step.mode), call("tally_up")))
    return call(step.triggers[0], mode="hold")


def _check(run: Any, moves_before: int, log_before: int) -> None:
    session = run.session
    assert run.state == session.current_agent.id, "FSM and active agent disagree"
    _check_log(run, log_before)


def _check_log(run: Any, log_before: int) -> None:
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


def _check_ended(run: Any, closed: list[CloseEvent], log_before: int) -> None:
    """LiveKit ended the call: only provider errors may have, and cleanly."""
    (event,) = closed
    assert event.reason == CloseReason.ERROR, f"the session closed: {event.reason}"
    assert event.error is not None and event.error.type == "llm_error", event.error
    assert run.closed, "the session closed but the run did not"
    _check_log(run, log_before)


async def _interrupt_at(step: Step, turn: asyncio.Future[Any], session: Any) -> None:
    """Wait for the step's moment, then interrupt whatever the session is saying."""
    if step.moment == AT_THE_GATE:
        assert GATE.reached is not None
        reached = asyncio.ensure_future(GATE.reached.wait())
        await asyncio.wait([reached, turn], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        reached.cancel()
    else:
        for _ in range(step.moment):
            await asyncio.sleep(0)
    session.interrupt(force=True)


async def _until(condition: Any, what: str) -> None:
    """Wait until ``condition()`` holds (a deadlock guard, not a timing assumption)."""
    try:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not settled within 10 s: {what}") from None


async def _conversation(plan_steps: list[Step]) -> None:
    plan = Plan()
    TALLY.done = 0
    GATE.event = asyncio.Event()
    async with flow.session(llm=ScriptedLLM(plan.policy)) as run:
        session = run.session
        assert session is not None
        closed: list[CloseEvent] = []
        ended = asyncio.Event()
        session.on("close", lambda event: (closed.append(event), ended.set()))
        for index, step in enumerate(plan_steps):
            moves_before, log_before = run.context.moves, len(run.log)
            plan.reply, plan.consumed = _reply_for(step), False
            plan.outage = step.kind == "outage"
            GATE.event, GATE.reached = asyncio.Event(), asyncio.Event()
            task = asyncio.ensure_future(session.run(user_input=f"turn {index}"))
            if step.kind == "interrupt" or (step.kind == "mixed" and step.mode == "hold"):
                await _interrupt_at(step, task, session)
            GATE.event.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
            await asyncio.wait_for(run.failures.settled(), 10)  # provider errors counted
            await _until(lambda: session_is_closing(session) or (
                not run.in_transition and session.current_agent.id == run.state
                and (run.failover is None or run.failover.done())),
                "the turn's transition or failover")
            if run.failover is not None and not session_is_closing(session):
                # let the error state's opening reply finish (if LiveKit closes the
                # session meanwhile, wait_for_idle raises: the close is checked below)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.wait_for_idle(), 10)
            if session_is_closing(session):
                await asyncio.wait_for(ended.wait(), 10)
                _check_ended(run, closed, log_before)
                return
            _check(run, moves_before, log_before)
        # the session still answers
        plan.reply, plan.consumed, plan.outage = "Still here.", False, False
        result = await asyncio.wait_for(session.run(user_input="turn last"), 10)
        assert any(e.type == "message" for e in result.events)
        _check(run, run.context.moves, len(run.log))


PROVIDER, OUTAGE = Step("provider"), Step("outage")
SHARDS = 4
"""The search is cut into this many tests, each with its own seed, so that pytest-xdist's
workers share it (one test would keep one worker busy for the whole search)."""


def _search(shard: int) -> Any:
    """``EXAMPLES / SHARDS`` random conversations; a derandomized profile (ci) gives each
    shard its own fixed seed (the same seed in every shard would search the same calls)."""

    @settings(max_examples=max(1, EXAMPLES // SHARDS), deadline=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(steps, min_size=1, max_size=5))
    def conversations(plan_steps: list[Step]) -> None:
        asyncio.run(_conversation(plan_steps))

    if shard == 0:
        # the CI failure (wait_for_idle: "AgentSession has no active AgentActivity"): two
        # provider errors, then an outage that the error state's opening meets too:
        # LiveKit's fourth unrecoverable error in a row, with no speech between, closes
        # the session
        conversations = example([PROVIDER, PROVIDER, OUTAGE,
                                 Step("parallel", ("b_to_c",) * 3)])(conversations)
        conversations = example([Step("move", ("to_b",)), PROVIDER, PROVIDER, OUTAGE,
                                 PROVIDER])(conversations)
    if settings.default.derandomize:
        conversations = seed(shard)(conversations)
    return conversations


@pytest.mark.parametrize("shard", range(SHARDS))
def test_random_conversations_with_faults_keep_every_invariant(
    quick_llm_error_grace: None, shard: int
) -> None:
    _search(shard)()
