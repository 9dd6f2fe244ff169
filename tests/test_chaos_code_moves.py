"""The chaos suite for moves taken by code: ``run.go()`` from tools and from hooks.

Each example is one call through a real AgentSession. On each caller line the scripted
model does one thing: take a transition itself; call a tool that moves the flow with
``run.go()`` (to a code-only transition or an LLM one, available from here or not, its
body fine, raising, hanging or held while the caller interrupts); arm the next state's
``on_enter`` to move the flow with ``run.go()`` as soon as it is entered; or call such a
tool and a transition together, next to an ordinary tool that writes the context. After
every line, the invariants of DESIGN §2 hold:

1. the FSM state and the active agent agree, and nothing is under way;
2. every logged move is a declared edge;
3. one move per turn: besides the error transition and a move asked for by the entered
   state's ``on_enter``, at most one move happened;
4. the context holds exactly the effects of the moves that happened (a refused, failed,
   hung or interrupted body leaves no trace), and every completed write of the ordinary
   tool (even next to a refused or interrupted move);
5. no ``run.go()`` and no turn hangs, and the session keeps answering.

``HANDOFF_CHAOS_EXAMPLES`` sets the number of conversations (a tenth of it here: these
calls are longer).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handoff import (
    Context,
    Flow,
    RunContext,
    State,
    TransitionRefused,
    function_tool,
    transition,
)
from handoff.testing import Reply, ScriptedLLM, Turn, call

from .faults import misbehave

EXAMPLES = max(20, int(os.environ.get("HANDOFF_CHAOS_EXAMPLES", "60")) // 10)
SETTLE = 10.0
"""Seconds a turn may take to settle before the test calls the call stuck."""


class Moves(Context):
    moves: int = 0
    trail: list[str] = []
    tally: int = 0
    hook_go: str = ""
    """``trigger:mode`` the next state's ``on_enter`` takes with ``run.go()``."""


class _Book:
    """What the test counts apart from the call: completed tool writes, hook moves."""

    tally = 0
    hook_moves = 0
    gate: asyncio.Event | None = None
    reached: asyncio.Event | None = None


BOOK = _Book()


async def _body(ctx: RunContext[Moves], name: str, mode: str) -> None:
    ctx.userdata.moves += 1
    ctx.userdata.trail.append(name)
    if mode == "hold" and BOOK.gate is not None:
        if BOOK.reached is not None:
            BOOK.reached.set()
        await BOOK.gate.wait()
    await misbehave(mode, raise_on="raise", hang_on="hang", error=f"{name} failed")


class _Node(State[Moves]):
    instructions = "node"
    tool_timeout = 0.2

    async def on_enter(self) -> None:
        armed, self.context.hook_go = self.context.hook_go, ""
        if armed:
            trigger, mode = armed.split(":")
            with contextlib.suppress(TransitionRefused):  # not from here, or its body failed
                await asyncio.wait_for(self.run.go(trigger, mode=mode), SETTLE)
                BOOK.hook_moves += 1
        await super().on_enter()

    @function_tool
    async def go_from_tool(self, ctx: RunContext[Moves], trigger: str, mode: str) -> str:
        """Move the flow from code."""
        try:
            record = await asyncio.wait_for(self.run.go(trigger, mode=mode), SETTLE)
        except TransitionRefused as exc:
            return f"refused: {exc.message}"
        return f"moving to {record.target}"

    @function_tool
    async def arm_hook(self, ctx: RunContext[Moves], trigger: str, mode: str) -> str:
        """The next state entered moves the flow from its on_enter."""
        ctx.userdata.hook_go = f"{trigger}:{mode}"
        return "armed"

    @function_tool
    async def tally_up(self, ctx: RunContext[Moves]) -> str:
        """Count one more."""
        await asyncio.sleep(0)  # a move of the same turn may be writing now
        ctx.userdata.tally = ctx.userdata.tally + 1
        BOOK.tally += 1  # no await in between: counted exactly when the write completed
        return "counted"


class P(_Node):
    """P."""

    @transition(to="Q")
    async def to_q(self, ctx: RunContext[Moves], mode: str = "ok") -> None:
        """Go to Q."""
        await _body(ctx, "to_q", mode)

    @transition(to="R", llm=False)
    async def p_to_r(self, ctx: RunContext[Moves], mode: str = "ok") -> None:
        """Go to R (code only)."""
        await _body(ctx, "p_to_r", mode)


class Q(_Node):
    """Q."""

    @transition(to="P")
    async def to_p(self, ctx: RunContext[Moves], mode: str = "ok") -> None:
        """Go to P."""
        await _body(ctx, "to_p", mode)

    @transition(to="R", llm=False)
    async def q_to_r(self, ctx: RunContext[Moves], mode: str = "ok") -> None:
        """Go to R (code only)."""
        await _body(ctx, "q_to_r", mode)


class R(_Node):
    """R."""

    @transition(to="P", llm=False)
    async def r_to_p(self, ctx: RunContext[Moves], mode: str = "ok") -> None:
        """Back to P (code only)."""
        await _body(ctx, "r_to_p", mode)

    @transition(to="Q")
    async def r_to_q(self, ctx: RunContext[Moves], mode: str = "ok") -> None:
        """Go to Q."""
        await _body(ctx, "r_to_q", mode)


class Human(_Node):
    """The operator."""

    @transition(to="P")
    async def human_done(self, ctx: RunContext[Moves], mode: str = "ok") -> None:
        """Back to P."""
        await _body(ctx, "human_done", mode)


@transition(to="Human")
async def to_human(ctx: RunContext[Moves], reason: str = "asked", mode: str = "ok") -> None:
    """Escalate."""
    await _body(ctx, "to_human", mode)


flow = Flow("chaos-code", context=Moves, initial=P, states=[P, Q, R, Human], final=[Human],
            global_transitions=[to_human], error_transition="to_human",
            max_failures=3, max_transitions=1000, max_ping_pong=1000)
TRIGGERS = sorted({e.trigger for e in flow.edges})
MODES = ["ok", "ok", "ok", "raise", "hang"]


@dataclass(frozen=True)
class Step:
    kind: str  # "llm", "tool", "hook", "interrupt", "mixed"
    trigger: str
    mode: str = "ok"


steps = st.one_of(
    st.builds(Step, st.just("llm"), st.sampled_from(TRIGGERS), st.sampled_from(MODES)),
    st.builds(Step, st.just("tool"), st.sampled_from(TRIGGERS), st.sampled_from(MODES)),
    st.builds(Step, st.just("hook"), st.sampled_from(TRIGGERS), st.sampled_from(MODES)),
    st.builds(Step, st.just("interrupt"), st.sampled_from(TRIGGERS), st.just("hold")),
    # a code move, a transition of the model's own and a context-writing tool at once
    st.builds(Step, st.just("mixed"), st.sampled_from(TRIGGERS), st.sampled_from(MODES)),
)


def _reply_for(step: Step) -> Any:
    if step.kind == "llm":
        return call(step.trigger, mode=step.mode)
    if step.kind == "hook":
        # the model moves (to_human is offered everywhere), the entered state's hook moves on
        return Reply(calls=(call("arm_hook", trigger=step.trigger, mode=step.mode),
                            call("to_human")))
    if step.kind == "mixed":
        return Reply(calls=(call("go_from_tool", trigger=step.trigger, mode=step.mode),
                            call("to_human", mode=step.mode), call("tally_up")))
    return Reply(calls=(call("go_from_tool", trigger=step.trigger, mode=step.mode),
                        call("tally_up")))


class Plan:
    """What the model does for the next caller line (its first request of the line)."""

    def __init__(self) -> None:
        self.reply: Any = None
        self.consumed = True

    def policy(self, turn: Turn) -> Any:
        if not self.consumed and not turn.answering_tool and turn.last_user_text.startswith("turn"):
            self.consumed = True
            return self.reply
        return "Okay."


def _consistent(run: Any) -> bool:
    failing_over = run.failover is not None and not run.failover.done()
    return (not run.in_transition and not failing_over
            and run.session.current_agent.id == run.state)


async def _settle(run: Any) -> None:
    """Until the turn's moves (a hook's, the error transition's) have landed and the
    agent is idle; bounded by SETTLE (then the call is stuck and the test fails)."""
    session = run.session
    while True:
        if run.failover is not None:
            await run.failover
        await session.wait_for_idle()
        if _consistent(run):
            return
        await asyncio.sleep(0.01)  # a move LiveKit applies when the turn allows


def _check(run: Any, log_before: int, hooks_before: int) -> None:
    assert run.state == run.session.current_agent.id, "FSM and active agent disagree"
    assert not run.in_transition, "a transition is still under way between turns"
    for record in run.log:
        edge = flow.triggers_from(record.source).get(record.trigger)
        assert edge is not None and edge.target == record.target, f"undeclared move {record}"
    taken = [r for r in run.log[log_before:] if r.by != "failover"]
    hook_moves = BOOK.hook_moves - hooks_before
    assert len(taken) - hook_moves <= 1, f"two moves in one turn: {taken}"
    assert run.context.moves == len(run.log), "context effects differ from the moves taken"
    assert run.context.trail == [r.trigger for r in run.log]
    assert run.context.tally == BOOK.tally, "a completed tool write was lost (or invented)"


async def _conversation(plan_steps: list[Step]) -> None:
    plan = Plan()
    BOOK.tally = BOOK.hook_moves = 0
    async with flow.session(llm=ScriptedLLM(plan.policy)) as run:
        session = run.session
        for index, step in enumerate(plan_steps):
            log_before, hooks_before = len(run.log), BOOK.hook_moves
            plan.reply, plan.consumed = _reply_for(step), False
            BOOK.gate, BOOK.reached = asyncio.Event(), asyncio.Event()
            task = asyncio.ensure_future(session.run(user_input=f"turn {index}"))
            if step.kind == "interrupt":
                # the code move's body is held inside the tool: the caller cuts in then
                reached = asyncio.ensure_future(BOOK.reached.wait())
                await asyncio.wait((task, reached), timeout=SETTLE,
                                   return_when=asyncio.FIRST_COMPLETED)
                reached.cancel()
                if BOOK.reached.is_set():
                    session.interrupt(force=True)
            BOOK.gate.set()
            try:
                await asyncio.wait_for(task, SETTLE)
            except TimeoutError:
                raise AssertionError(f"turn {index} ({step}) hung") from None
            except Exception:  # an interrupted run may end in error: checked below
                pass
            await asyncio.wait_for(_settle(run), SETTLE)
            _check(run, log_before, hooks_before)
        plan.reply, plan.consumed = "Still here.", False
        result = await asyncio.wait_for(session.run(user_input="turn last"), SETTLE)
        assert any(e.type == "message" for e in result.events)
        _check(run, len(run.log), BOOK.hook_moves)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=1, max_size=6))
def test_code_moves_from_tools_and_hooks_keep_every_invariant(plan_steps: list[Step]) -> None:
    asyncio.run(_conversation(plan_steps))
