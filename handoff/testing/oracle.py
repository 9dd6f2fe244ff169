"""The oracle: what the declared table says an attempt must do, and the checks of DESIGN §2.

The flow's own declaration is the oracle. For an attempt in a state it says whether
the move is *invalid* (not declared from here), *refused by the guard* (with the
guard's reason) or *allowed by the guard* (the body may still refuse). After the
attempt, :func:`violations` compares what happened with that and with the invariants:
only declared transitions happen, a refusal changes nothing, the context is never
lost across a transition (same object; no field that held a value turns to None).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..flow import Flow
from ..records import Refusal, TransitionRecord
from ..run import FlowRun
from .strategies import Attempt

Verdict = Literal["invalid", "guard", "guard-error", "allowed"]


@dataclass(frozen=True)
class Expectation:
    """What the declared table and the guard say about one attempt."""

    verdict: Verdict
    target: str | None = None
    reason: str | None = None
    alternatives: frozenset[str] = frozenset()
    """For a ``to=[...]`` transition: every target its body may choose (``target`` is one)."""

    def allows(self, target: str) -> bool:
        return target == self.target or target in self.alternatives


def expect(flow: Flow[Any], state: str, context: Any, attempt: Attempt,
           *, by_llm: bool = False) -> Expectation:
    """The oracle's verdict for ``attempt`` in ``state`` with ``context`` (left untouched);
    ``by_llm``: the LLM asks, so a code-only transition (``llm=False``) is not available."""
    edge = flow.table[state].get(attempt.trigger)
    if edge is None or (by_llm and not edge.transition.offered):
        return Expectation("invalid")
    expectation = _verdict(edge, context, attempt)
    if not edge.is_dynamic:
        return expectation
    candidates = frozenset(e.target for e in flow.edges
                           if e.transition is edge.transition and e.source == edge.source)
    return Expectation(expectation.verdict, expectation.target, expectation.reason, candidates)


def _verdict(edge: Any, context: Any, attempt: Attempt) -> Expectation:
    try:
        reason = edge.transition.check_guard(copy.deepcopy(context), dict(attempt.arguments))
    except Exception as exc:
        return Expectation("guard-error", edge.target, f"{type(exc).__name__}: {exc}")
    if reason is not None:
        return Expectation("guard", edge.target, reason)
    return Expectation("allowed", edge.target)


@dataclass(frozen=True)
class Snapshot:
    """What must not change on a refusal: the state, the context's values and identity."""

    state: str
    context: dict[str, Any]
    context_id: int
    log_len: int
    refusals_len: int

    @classmethod
    def of(cls, run: FlowRun[Any]) -> Snapshot:
        return cls(run.state, copy.deepcopy(run.context.model_dump()), id(run.context),
                   len(run.log), len(run.refusals))


@dataclass(frozen=True)
class Outcome:
    """What one attempt did: the transitions taken and the refusals recorded meanwhile."""

    taken: tuple[TransitionRecord, ...]
    refused: tuple[Refusal, ...]

    @classmethod
    def since(cls, run: FlowRun[Any], before: Snapshot) -> Outcome:
        return cls(tuple(run.log[before.log_len:]), tuple(run.refusals[before.refusals_len:]))


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


def violations(
    flow: Flow[Any],
    run: FlowRun[Any],
    attempt: Attempt,
    expectation: Expectation,
    before: Snapshot,
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
    after = Snapshot.of(run)
    problems: list[str] = []
    where = f"{attempt!r} in {before.state}"
    if len(out.taken) > 1:
        problems.append(f"{where}: {len(out.taken)} transitions in one attempt (at most one)")
    if out.taken:
        record = out.taken[0]
        if expectation.verdict != "allowed":
            why = f" ({expectation.reason})" if expectation.reason else ""
            problems.append(f"{where}: taken to {record.target}, but the table/guard says "
                            f"{expectation.verdict}{why}")
        elif (record.source, record.trigger) != (before.state, attempt.trigger) or not (
            expectation.allows(record.target)
        ):
            problems.append(f"{where}: took {record.source} -{record.trigger}-> {record.target}, "
                            f"declared {before.state} -{attempt.trigger}-> {expectation.target}")
        if run.state != record.target:
            problems.append(f"{where}: the log says {record.target} but the run is in {run.state}")
        if after.context_id != before.context_id:
            problems.append(f"{where}: the run's context was replaced by another object")
        clear = (may_clear or {}).get(attempt.trigger, ())
        lost = lost_fields(flow, before.context, after.context, clear)
        if lost:
            problems.append(f"{where}: context lost across the transition: {', '.join(lost)}")
        return problems

    # not taken: nothing may have changed, and the refusal must be the right one
    if (after.state, after.context, after.context_id) != (
        before.state, before.context, before.context_id
    ):
        changed = sorted(k for k in before.context if before.context[k] != after.context.get(k))
        problems.append(f"{where}: refused but something changed: state {before.state}→"
                        f"{after.state}, context fields {changed}")
    kinds = [r.kind for r in out.refused if r.trigger == attempt.trigger]
    kind = kinds[0] if kinds else None
    if kind is None and may_not_happen:
        return problems
    expected_kinds: dict[Verdict, set[str | None]] = {
        "invalid": {"invalid", None} if unknown_tool_ok else {"invalid"},
        "guard": {"guard"},
        "guard-error": {"error"},
        "allowed": {"body", "error", "interrupted"} if allow_errors else {"body", "interrupted"},
    }
    if kind not in expected_kinds[expectation.verdict]:
        detail = next((r.reason for r in out.refused if r.trigger == attempt.trigger), "")
        problems.append(f"{where}: expected {expectation.verdict}, got "
                        f"{kind or 'no refusal'}" + (f": {detail}" if detail else ""))
    if expectation.verdict == "guard" and kinds and expectation.reason:
        reason = next(r.reason for r in out.refused if r.trigger == attempt.trigger)
        if expectation.reason not in reason:
            problems.append(f"{where}: refusal reason {reason!r} does not carry the guard's "
                            f"reason {expectation.reason!r}")
    return problems
