"""FlowMachineBase: what every generated state machine checks, whatever its rules.

Each step (a code move, an LLM turn, a parallel batch, an interrupted handoff, an
ordinary tool call) is observed before and after and checked against the oracle
(:func:`handoff.testing.oracle.violations`), the entry conditions, and, after every
step, the invariants of DESIGN §2. :mod:`.machine` generates the rules per flow.

Each test case runs on its own event loop (``asyncio.Runner``), opened in
``__init__`` and closed in ``teardown``, so hypothesis' synchronous rules can drive
the async flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import Any, ClassVar, Literal, TypeVar

from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ..errors import TransitionRefused
from ..flow import Flow
from ..run import FlowRun
from .answers import APPROVAL_TASK
from .driver import FlowDriver, InterruptAt, ModelFactory, _no_hang
from .explore import Reset, call_reset, guard_raised
from .movewatch import MoveWatch
from .offered import state_tools
from .oracle import Expectation, Observation, expect_for, violations
from .scripted import ToolCall
from .strategies import (
    Attempt,
)

Mode = Literal["pure", "session"]
EntryCondition = Callable[[Any], bool]
ToolErrorsOk = bool | Callable[[dict[str, Any], str], bool]
"""May an ordinary tool fail? True (any error), or a test of its arguments and error text."""
T = TypeVar("T")


class FlowMachineBase(RuleBasedStateMachine):
    """What every generated machine shares; the rules are added per flow.

    Subclass the class :func:`FlowStateMachine` returns to add your own
    ``@invariant()`` or ``@rule()`` methods; ``self.run`` is the FlowRun and
    ``self.driver`` the session driver (session mode).
    """

    flow: ClassVar[Flow[Any]]
    mode: ClassVar[Mode] = "pure"
    entry_conditions: ClassVar[Mapping[str, EntryCondition]] = {}
    may_clear: ClassVar[Mapping[str, Collection[str]]] = {}
    allow_errors: ClassVar[bool] = False
    tool_errors: ClassVar[Mapping[str, ToolErrorsOk]] = {}
    resets: ClassVar[tuple[Reset, ...]] = ()
    """Called before each conversation starts (``FlowStateMachine(reset=...)``)."""
    models: ClassVar[tuple[ModelFactory, ...]] = ()
    """Session mode: the factory of every state's scripted model (``FlowStateMachine(
    model=...)``, in a tuple so it is not bound as a method); empty: each tier's scripted
    counterpart (see :class:`FlowDriver`)."""

    def __init__(self) -> None:
        super().__init__()
        self._loop = asyncio.Runner()
        self._run: FlowRun[Any] | None = None
        self.driver: FlowDriver[Any] | None = None
        self._refused_since = 0
        self.moves = MoveWatch()
        """The window of every refused move (session mode: hooks write the Context too)."""

    @property
    def run(self) -> FlowRun[Any]:
        assert self._run is not None, "the machine has not started"
        return self._run

    def live(self) -> bool:
        """The call is on: a run that can still move (a call that hung up draws no steps)."""
        return self._run is not None and not self._run.closed and not (
            self.driver is not None and self.driver.ended)

    def teardown(self) -> None:
        try:
            self.moves.stop()
            if self.driver is not None:
                self._await(self.driver.__aexit__(None, None, None))
        finally:
            self._loop.close()
            if self._run is not None:
                self._run.close()
            # hypothesis keeps failing examples' tracebacks, whose frames hold this
            # machine: drop the session so thousands of cases do not keep theirs alive
            self.driver = None
            self._run = None

    def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    # -- starting ------------------------------------------------------------------------
    def _start(self, changes: dict[str, Any]) -> None:
        for reset in self.resets:
            self._await(call_reset(reset))
        context = self.flow.context_type.model_validate(changes)
        if self.mode == "pure":
            self._run = self.flow.new_run(context)
            return
        self.driver = FlowDriver(self.flow, context=context,
                                 model=self.models[0] if self.models else None)
        self._await(self.driver.__aenter__())
        self._run = self.driver.run
        self.moves.watch(self._run)

    # -- the checks ----------------------------------------------------------------------
    def _check(self, attempt: Attempt, expectation: Expectation, before: Observation,
               *, by_llm: bool = False, interrupted: bool = False) -> None:
        problems, before = self._own_writes(before, f"{attempt!r} in {before.state}")
        problems += violations(
            self.flow, self.run, attempt, expectation, before,
            allow_errors=self.allow_errors, may_clear=self.may_clear, unknown_tool_ok=by_llm,
            may_not_happen=interrupted,
        )
        if expectation.verdict == "guard-error" and not self.allow_errors:
            problems.append(guard_raised(attempt, before.state, expectation.reason))
        problems += self._entry_problems(before)
        assert not problems, "\n".join(problems)

    def _own_writes(self, before: Observation, where: str) -> tuple[list[str], Observation]:
        """In a session, a refused move must undo its own writes, not the hooks' and tools'
        of the same turn: the problems of the moves refused since ``before``, and
        ``before`` with the Context as it is now when no transition was taken (so the
        whole-turn comparison sees only the state, the return stack and the Context's
        identity). Pure runs have no hooks: ``before`` as it is."""
        if self.driver is None or len(self.run.log) != before.log_len:
            return [], before
        problems = self.moves.problems(self._refused_since, where)
        return problems, dataclasses.replace(before, context=self.run.context.model_dump())

    def _observe(self) -> Observation:
        """What must not change on a refusal, as a step begins."""
        self._refused_since = len(self.moves.refused)
        return Observation.of(self.run)

    def _entry_problems(self, before: Observation) -> list[str]:
        problems = []
        for record in self.run.log[before.log_len:]:
            condition = self.entry_conditions.get(record.target)
            if condition is not None and not condition(self.run.context):
                problems.append(
                    f"entered {record.target} by {record.trigger} from {record.source} but its "
                    f"entry condition does not hold; context: {self.run.context.model_dump()}")
        return problems

    # -- moving --------------------------------------------------------------------------
    def _go(self, attempt: Attempt) -> None:
        """A code-driven move (``run.go``), checked against the oracle."""
        before = self._observe()
        expectation = expect_for(self.run, attempt)

        async def move() -> None:
            with contextlib.suppress(TransitionRefused):
                await _no_hang(self.run.go(attempt.trigger, **attempt.arguments),
                               f"run.go({attempt!r})")
            if self.driver is not None:
                await self.driver.settle()

        self._await(move())
        self._check(attempt, expectation, before)

    def _say(self, attempt: Attempt, *, approve: bool = False) -> None:
        """An LLM-driven move: the model calls the transition tool in a real session.

        A name that is an ordinary tool here (a transition of another state) runs that
        tool: the flow must stay where it is (the tool may reject arguments drawn for the
        transition). A ``confirm=`` question is answered by the caller's next line:
        yes when ``approve``, else no (the move is then denied)."""
        assert self.driver is not None
        if self._is_tool_here(attempt.trigger):
            self._tool(attempt.trigger, attempt.arguments, may_fail=True)
            return
        before = self._observe()
        expectation = expect_for(self.run, attempt, by_llm=True, approved=approve)
        self._await(self.driver.turn(ToolCall(attempt.trigger, attempt.arguments)))
        self._answer(approve)
        self._check(attempt, expectation, before, by_llm=True)

    def _answer(self, approve: bool = False) -> None:
        """The caller answers the approval question the last turn asked, if any."""
        assert self.driver is not None
        if any(t.id == APPROVAL_TASK for t in self.run.tasks):
            reply = ToolCall("approve") if approve else ToolCall(
                "deny", {"reason": "the caller said no"})
            self._await(self.driver.turn(reply, user="yes" if approve else "no"))

    def _say_parallel(self, batch: list[Attempt]) -> None:
        """One LLM response naming several transitions: at most the first allowed applies.

        Names that are ordinary tools here are left out (their writes are not a move's;
        the tool rules call them)."""
        assert self.driver is not None
        batch = [a for a in batch if not self._is_tool_here(a.trigger)]
        if not batch:
            return
        before = self._observe()
        verdicts = [expect_for(self.run, a, by_llm=True) for a in batch]
        calls = [ToolCall(a.trigger, a.arguments) for a in batch]
        self._await(self.driver.turn(calls))
        self._answer()  # a confirm= question: the caller says no
        taken = self.run.log[before.log_len:]
        refused_after_guard = {r.trigger for r in self.run.refusals[before.refusals_len:]
                               if r.kind in ("body", "error", "denied")}
        # the first call the table allows applies — unless its own body refused it
        first_allowed = next((a for a, v in zip(batch, verdicts, strict=True)
                              if v.verdict == "allowed"
                              and not (a.trigger in refused_after_guard
                                       and (not taken or taken[0].trigger != a.trigger))),
                             None)
        problems = []
        if len(taken) > 1:
            problems.append(f"{batch!r}: {len(taken)} transitions in one turn (at most one)")
        if taken and (first_allowed is None or taken[0].trigger != first_allowed.trigger):
            problems.append(f"{batch!r}: took {taken[0].trigger}, the first call the table "
                            f"allows is {first_allowed!r}")
        if taken and first_allowed is not None:
            index = batch.index(first_allowed)
            verdict = verdicts[index]
            problems += violations(self.flow, self.run, first_allowed, verdict, before,
                                   allow_errors=self.allow_errors, may_clear=self.may_clear)
        elif not taken:
            own, before = self._own_writes(before, repr(batch))
            problems += own
            after = Observation.of(self.run)
            if (after.state, after.context) != (before.state, before.context):
                problems.append(f"{batch!r}: nothing taken but the state/context changed")
        problems += self._entry_problems(before)
        assert not problems, "\n".join(problems)

    def _interrupt(self, attempt: Attempt, at: InterruptAt) -> None:
        """The caller talks over the turn that asked for a handoff: all or nothing."""
        assert self.driver is not None
        before = self._observe()
        expectation = expect_for(self.run, attempt, by_llm=True, approved=False)
        self._await(self.driver.interrupted_turn(ToolCall(attempt.trigger, attempt.arguments),
                                                 at=at))
        self._answer()  # a confirm= question still open after the interruption: no
        self._check(attempt, expectation, before, by_llm=True, interrupted=True)

    def _is_tool_here(self, name: str) -> bool:
        return (name not in self.flow.table[self.run.state]
                and name in state_tools(self.flow, self.run.state))

    def _tool(self, name: str, args: dict[str, Any], *, may_fail: bool = False) -> None:
        """The LLM calls an ordinary tool: it succeeds (or fails as allowed); the flow stays."""
        assert self.driver is not None
        before = self._observe()
        result = self._await(self.driver.turn(ToolCall(name, args)))
        start = len(self.run.session.history.items)
        self._answer(approve=True)  # a @confirm tool: the caller says yes, so it runs
        errors = [e.item.output for e in result.events
                  if e.type == "function_call_output" and e.item.name == name and e.item.is_error]
        errors += [i.output for i in self.run.session.history.items[start:]  # after the yes
                   if i.type == "function_call_output" and i.name == name and i.is_error]
        allowed = True if may_fail else self.tool_errors.get(name, False)
        for error in errors:
            ok = allowed(args, error) if callable(allowed) else allowed
            assert ok, (f"tool {name}({args}) failed: {error} (pass tool_errors="
                        f"{{{name!r}: ...}} if it may fail this way)")
        assert self.run.state == before.state and len(self.run.log) == before.log_len, (
            f"tool {name}({args}) moved the flow: {self.run.log[before.log_len:]}")
        assert self.run.context is not None and id(self.run.context) == before.context_id

    @precondition(lambda self: self._run is not None and not self.live())
    @rule()
    def call_ended(self) -> None:
        """The call has hung up: nothing more can happen; it ended cleanly."""
        assert not self.run.in_transition, "the call ended with a transition still pending"

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def flow_invariants(self) -> None:
        """DESIGN §2.1 and §2.4, checked after every step (between turns)."""
        problems = self._invariant_problems()
        assert not problems, "\n".join(problems)

    def _invariant_problems(self) -> list[str]:
        if self._run is None:
            return []
        run = self.run
        if run.state not in self.flow.states:
            return [f"the run is in {run.state!r}, which the flow does not declare"]
        if self.driver is None or not run.attached or not self.live():
            return []
        session = run.session
        agent = session.current_agent
        problems = []
        if agent in run.tasks:  # a LiveKit AgentTask the state's agent is awaiting
            pass
        elif run.state != agent.id:
            problems.append(f"FSM is in {run.state} but the active agent is {agent.id}")
        elif run.agent is not agent:
            problems.append("run.agent is not the session's current agent")
        if run.in_transition:
            problems.append("a transition is still pending between turns")
        if session.userdata is not run.context:
            problems.append("session.userdata is no longer the run's context (it was "
                            f"replaced by {session.userdata!r})")
        return problems
