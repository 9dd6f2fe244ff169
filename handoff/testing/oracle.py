"""The oracle: what the declared table says an attempt must do, and the checks of DESIGN §2.

The flow's own declaration is the oracle. For an attempt in a state it says whether
the move is *invalid* (not declared from here), *refused by the guard* (with the
guard's reason) or *allowed by the guard* (the body may still refuse). After the
attempt, :func:`violations` compares what happened with that and with the invariants:
only declared transitions happen, a refusal changes nothing, the context is never
lost across a transition (same object; no field that held a value turns to None), a
side trip that declares a result type comes back with a value of it.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import TransitionCallError
from ..flow import Flow
from ..graph import Edge
from ..records import Refusal, TransitionRecord
from ..redaction import Redactor
from ..run import FlowRun
from ..semantics import (
    after_move,
    approval_for,
    converted_arguments,
    dropped_by,
    failure_is_due,
    follow_up,
    return_targets,
    stack_after,
    validity,
)
from .strategies import Attempt

Verdict = Literal["invalid", "arguments", "guard", "guard-error", "allowed", "denied"]


@dataclass(frozen=True)
class Expectation:
    """What the declared table and the guard say about one attempt.

    ``targets`` are the states the move may end in: the edge's target, the state a
    side trip returns to (``to=RETURN``), or each target a dynamic edge declares.
    """

    verdict: Verdict
    targets: tuple[str, ...] = ()
    reason: str | None = None

    def allows(self, target: str) -> bool:
        return target in self.targets

    @property
    def target(self) -> str | None:
        """The one target, when there is exactly one."""
        return self.targets[0] if len(self.targets) == 1 else None


NO_RETURN = "there is no earlier state to return to"
"""What the run says when a side trip's return has nowhere to go (see ``semantics.validity``)."""


def declared_targets(flow: Flow[Any], edge: Edge,
                     return_stack: Sequence[str] = ()) -> tuple[str, ...]:
    """Where ``edge`` may lead from a run whose return stack is ``return_stack``.

    A side trip's return (``to=RETURN``) goes to the top of the stack, or with
    ``back_to=[...]`` to any declared frame on it (nowhere when it is empty:
    :func:`handoff.semantics.return_targets`); a ``to=[...]`` transition may go to any
    of its candidates.
    """
    if edge.is_return:
        return return_targets(edge, return_stack)
    if edge.is_dynamic:
        return tuple(e.target for e in flow.edges
                     if e.transition is edge.transition and e.source == edge.source)
    return (edge.target,)


def expect(flow: Flow[Any], state: str, context: Any, attempt: Attempt,
           return_stack: Sequence[str] = (), *, by_llm: bool = False,
           isolate: bool = True, approved: bool = True) -> Expectation:
    """The oracle's verdict for ``attempt`` in ``state`` with ``context`` (left untouched).

    ``return_stack`` is the run's (``run.return_stack``): it says where a ``to=RETURN``
    edge goes, and that it is refused as invalid when there is nowhere to go back to.
    ``by_llm``: the LLM asks, so a code-only transition (``llm=False``) is not available.
    ``isolate``: the guard sees a deep copy of ``context`` (off: the context itself,
    faster; a guard that writes to it then shows as a refusal that changed something).
    ``approved``: the caller's answer to the transition's ``confirm=`` question, asked
    when the LLM takes it (False: an allowed move is ``denied``).
    """
    valid = validity(flow, state, attempt.trigger, return_stack, by_llm=by_llm)
    edge = valid.edge
    if valid.kind is not None or edge is None:  # the run refuses it before any guard
        return Expectation("invalid", (), valid.reason)
    targets = declared_targets(flow, edge, return_stack)
    try:  # the guard sees what the run's does: the arguments as the tool schema converts them
        arguments = converted_arguments(edge, attempt.arguments)
    except TransitionCallError as exc:
        return Expectation("arguments", targets, str(exc))
    try:
        seen = copy.deepcopy(context) if isolate else context
        reason = edge.transition.check_guard(seen, arguments)
    except Exception as exc:
        return Expectation("guard-error", targets, f"{type(exc).__name__}: {exc}")
    if reason is not None:
        return Expectation("guard", targets, reason)
    if not approved and approval_for(edge, "llm" if by_llm else "code") is not None:
        return Expectation("denied", targets, "the caller did not approve")
    return Expectation("allowed", targets)


def expect_for(run: FlowRun[Any], attempt: Attempt, *, by_llm: bool = False,
               isolate: bool = True, approved: bool = True) -> Expectation:
    """:func:`expect` for ``attempt`` on ``run`` now (its state, context and return stack)."""
    return expect(run.flow, run.state, run.context, attempt, run.return_stack, by_llm=by_llm,
                  isolate=isolate, approved=approved)


@dataclass(frozen=True)
class Observation:
    """What must not change on a refusal: the state, the context's values and identity."""

    state: str
    context: dict[str, Any]
    context_id: int
    log_len: int
    refusals_len: int
    return_stack: tuple[str, ...] = ()
    failures: int = 0
    """Failures in a row so far (what decides whether an ``error`` refusal is followed
    by the error transition)."""

    @classmethod
    def of(cls, run: FlowRun[Any]) -> Observation:
        # model_dump builds new containers all the way down: nothing later writes reach it
        return cls(run.state, run.context.model_dump(), id(run.context),
                   len(run.log), len(run.refusals), tuple(run.return_stack),
                   run.consecutive_failures)


@dataclass(frozen=True)
class Outcome:
    """What one attempt did: the transitions taken and the refusals recorded meanwhile.

    ``move`` is the attempt's own transition (None when it was refused); ``follow_ups``
    are the moves the runtime's rules took after it, in order: the failure policy's error
    transition (``by="failover"``, after a loop or ``max_failures`` failures), or a move
    a State's hook asked for from code once its state was entered (``on_enter``);
    ``extra`` are any other transitions (at most one per attempt: always a problem).
    """

    taken: tuple[TransitionRecord, ...]
    refused: tuple[Refusal, ...]
    move: TransitionRecord | None = None
    follow_ups: tuple[TransitionRecord, ...] = ()
    extra: tuple[TransitionRecord, ...] = ()

    @classmethod
    def since(cls, run: FlowRun[Any], before: Observation) -> Outcome:
        taken = tuple(run.log[before.log_len:])
        move: TransitionRecord | None = None
        follow_ups: list[TransitionRecord] = []
        extra: list[TransitionRecord] = []
        previous: TransitionRecord | None = None
        for record in taken:
            if record.by == "failover":
                follow_ups.append(record)
            elif previous is None:
                move = record
            elif record.by == "code" and previous.target == record.source:
                follow_ups.append(record)  # the entered state's hook moved on
            else:
                extra.append(record)
            previous = record
        return cls(taken, tuple(run.refusals[before.refusals_len:]), move, tuple(follow_ups),
                   tuple(extra))


def follow_up_problems(flow: Flow[Any], run: FlowRun[Any], before: Observation,
                       out: Outcome) -> tuple[list[str], str]:
    """What is wrong with the moves that followed the attempt, and the state they end in.

    A ``failover`` move must be the one the semantic core calls for at that point of the
    log (:func:`handoff.semantics.after_move` after a loop, or ``max_failures`` failures in
    a row after an ``error`` refusal), from the state the run was in; a hook's code move
    must be declared from the state it left. On a run without a session (where the
    follow-up is taken within the move) a loop's error transition must have been taken.
    """
    problems: list[str] = []
    state = out.move.target if out.move is not None else before.state
    index = before.log_len + (out.move is not None)
    due = after_move(flow, run.log[:index]) if out.move is not None else None
    if out.move is None and failure_is_due(flow, before.failures + sum(
            r.kind == "error" for r in out.refused)):
        due = follow_up(flow, before.state, "failures")
    for record in out.follow_ups:
        if record.source != state:
            problems.append(f"{record.trigger} was taken from {record.source}, but the run "
                            f"was in {state}")
        if record.by == "failover":
            if due is None or due.trigger != record.trigger:
                problems.append(f"the error transition {record.trigger} was taken from "
                                f"{record.source}, but the failure policy calls for "
                                f"{due.trigger if due else 'nothing'} here")
            due = None
        else:
            edge = flow.table.get(record.source, {}).get(record.trigger)
            if edge is None or not (edge.is_return or record.target in declared_targets(flow, edge)):
                problems.append(f"a hook moved {record.source} -{record.trigger}-> "
                                f"{record.target}, which is not declared")
        state = record.target
    if due is not None and out.move is not None and not run.attached and run.failover is None:
        problems.append(f"the log shows a loop ({due.reason}) but the error transition "
                        f"{due.trigger} was not taken")
    return problems, state


def lost_fields(
    flow: Flow[Any], before: Mapping[str, Any], after: Mapping[str, Any],
    may_clear: Collection[str] = (),
) -> list[str]:
    """Fields that held a value before and hold nothing (``None``, or are gone) after.

    Writing a new value — even the default, an empty string or ``False`` — is a write,
    not a loss: only a value turned into ``None`` (the "unknown" of a Context field)
    or a field that disappeared counts. List fields a transition may clear on purpose
    in ``may_clear``.
    """
    lost = []
    for name, value in before.items():
        if name in may_clear or value is None:
            continue
        if after.get(name) is None:
            lost.append(f"{name} (was {value!r}, now {after.get(name, '<missing>')!r})")
    return lost


def _stack_after(edge: Edge | None, stack: Sequence[str] | None,
                 record: TransitionRecord) -> tuple[str, ...] | None:
    """The return stack ``record``'s move along ``edge`` leaves from ``stack`` (the
    semantic core's :func:`~handoff.semantics.stack_after`, the frames it drops
    included), or None when it cannot be known."""
    if edge is None or stack is None:
        return None
    dropped = dropped_by(edge, stack, record.target)
    if dropped is None:
        return None
    return stack_after(edge, stack, record.source, dropped)


def result_problem(edge: Edge, record: TransitionRecord) -> str | None:
    """What is wrong with the result a taken side-trip return logged, or None: a ``to=RETURN``
    edge whose body declares a type must log a value of it (in its JSON form)."""
    tdef = edge.transition
    if not edge.is_return or tdef.result_type is None:
        return None
    try:
        tdef.result_adapter.validate_python(record.result)
    except ValueError as exc:
        return (f"the side trip returned {record.result!r}, which is not a {tdef.result_name} "
                f"({str(exc).splitlines()[-1].strip()})")
    return None


def violations(
    flow: Flow[Any],
    run: FlowRun[Any],
    attempt: Attempt,
    expectation: Expectation,
    before: Observation,
    *,
    allow_errors: bool = False,
    may_clear: Mapping[str, Collection[str]] | None = None,
    unknown_tool_ok: bool = False,
    may_not_happen: bool = False,
) -> list[str]:
    """Every way the run's behaviour on ``attempt`` breaks the table or DESIGN §2.

    ``allow_errors``: a body raising something other than ``TransitionRefused`` is a
    refusal the flow accepts (otherwise it is reported: usually a bug in the body).
    ``unknown_tool_ok``: in a session, LiveKit itself rejects a tool the agent does not
    offer, so the run records no refusal for it.
    ``may_not_happen``: the attempt may never have reached the flow (the caller
    interrupted the LLM before it called the tool): no refusal is then fine.
    """
    out = Outcome.since(run, before)
    after = Observation.of(run)
    problems: list[str] = []
    where = f"{attempt!r} in {before.state}"
    if out.extra:
        problems.append(f"{where}: {1 + len(out.extra)} transitions in one attempt (at most one)")
    followed, end = follow_up_problems(flow, run, before, out)
    problems += [f"{where}: {p}" for p in followed]
    if out.move is not None:
        record = out.move
        if expectation.verdict != "allowed":
            why = f" ({expectation.reason})" if expectation.reason else ""
            problems.append(f"{where}: taken to {record.target}, but the table/guard says "
                            f"{expectation.verdict}{why}")
        elif ((record.source, record.trigger) != (before.state, attempt.trigger)
              or not expectation.allows(record.target)):
            declared = " or ".join(expectation.targets)
            problems.append(f"{where}: took {record.source} -{record.trigger}-> {record.target}, "
                            f"declared {before.state} -{attempt.trigger}-> {declared}")
        if run.state != end:
            problems.append(f"{where}: the log says {end} but the run is in {run.state}")
        if after.context_id != before.context_id:
            problems.append(f"{where}: the run's context was replaced by another object")
        clear = (may_clear or {}).get(attempt.trigger, ())
        lost = lost_fields(flow, before.context, after.context, clear)
        if lost:
            problems.append(f"{where}: context lost across the transition: {', '.join(lost)}")
        edge = flow.table[before.state].get(attempt.trigger)
        if edge is not None and (expected := dropped_by(edge, before.return_stack,
                                                        record.target)) is not None \
                and tuple(record.dropped) != expected:
            problems.append(f"{where}: the move dropped the frames {list(record.dropped)}, "
                            f"expected {list(expected)}")
        stack = _stack_after(edge, before.return_stack, record)
        for later in out.follow_ups:
            stack = _stack_after(flow.table.get(later.source, {}).get(later.trigger), stack,
                                 later)
        if stack is not None and after.return_stack != stack:
            problems.append(f"{where}: the return stack is {list(after.return_stack)}, "
                            f"expected {list(stack)}")
        if edge is not None and (problem := result_problem(edge, record)) is not None:
            problems.append(f"{where}: {problem}")
        return problems

    # not taken: nothing may have changed (but what a follow-up move did), and the
    # refusal must be the right one
    if not out.follow_ups and (after.state, after.context, after.context_id, after.return_stack) != (
        before.state, before.context, before.context_id, before.return_stack
    ):
        changed = sorted(k for k in before.context if before.context[k] != after.context.get(k))
        problems.append(f"{where}: refused but something changed: state {before.state}→"
                        f"{after.state}, context fields {changed}, return stack "
                        f"{list(before.return_stack)}→{list(after.return_stack)}")
    kinds = [r.kind for r in out.refused if r.trigger == attempt.trigger]
    kind = kinds[0] if kinds else None
    if kind is None and may_not_happen:
        return problems
    expected_kinds: dict[Verdict, set[str | None]] = {
        "invalid": {"invalid", None} if unknown_tool_ok else {"invalid"},
        "arguments": {"invalid"} if unknown_tool_ok else {None},
        "guard": {"guard"},
        "guard-error": {"error"},
        "allowed": {"body", "error", "interrupted"} if allow_errors else {"body", "interrupted"},
        "denied": {"denied", "interrupted"},
    }
    if kind not in expected_kinds[expectation.verdict]:
        detail = next((r.reason for r in out.refused if r.trigger == attempt.trigger), "")
        problems.append(f"{where}: expected {expectation.verdict}, got "
                        f"{kind or 'no refusal'}" + (f": {detail}" if detail else ""))
    if expectation.verdict == "guard" and kinds and expectation.reason:
        reason = next(r.reason for r in out.refused if r.trigger == attempt.trigger)
        # the run scrubs refusal reasons of every sensitive value the call has heard (a
        # PIN "0000" inside a limit of 31250000): the guard's reason as the run records it
        guard_reason = Redactor(run.context).text(expectation.reason)
        if guard_reason not in reason:
            problems.append(f"{where}: refusal reason {reason!r} does not carry the guard's "
                            f"reason {guard_reason!r}")
    return problems


@contextlib.contextmanager
def checking(
    run: FlowRun[Any],
    attempt: Attempt,
    *,
    allow_errors: bool = False,
    may_clear: Mapping[str, Collection[str]] | None = None,
    by_llm: bool = False,
) -> Iterator[Expectation]:
    """Check what the code inside the block does with ``attempt`` against the table.

    ::

        with checking(driver.run, attempt, by_llm=True):
            await driver.turn(ToolCall(attempt.trigger, attempt.arguments))

    Raises ``AssertionError`` listing every violation (undeclared move, wrong target,
    a refusal that changed something, lost context, ...). ``by_llm``: the attempt is
    an LLM tool call, which LiveKit itself rejects when the agent does not offer it.
    """
    before = Observation.of(run)
    expectation = expect_for(run, attempt, by_llm=by_llm)
    yield expectation
    problems = violations(run.flow, run, attempt, expectation, before, allow_errors=allow_errors,
                          may_clear=may_clear, unknown_tool_ok=by_llm)
    assert not problems, "\n".join(problems)
