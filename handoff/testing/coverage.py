"""Transition coverage: which transitions and which guard outcomes a test run exercised.

The universe is the flow's table: every (state, trigger) pair is one transition (a
global transition counts once per state it can leave), and every guarded pair has two
guard outcomes, *allowed* and *refused*. A :class:`CoverageObserver` registered on a
flow (``flow.observers``) counts what the runs did; the pytest plugin prints it with
``--handoff-coverage`` and gates on ``--handoff-coverage-min``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from ..flow import Flow
from ..records import Refusal, TransitionRecord
from ..run import FlowRun

GuardOutcome = Literal["allowed", "refused"]
INTERNAL_CALL_ID = "handoff.testing:internal"
"""Runs made with this call_id (the path search) are not counted."""

# refusals that happen after the guard said yes
_PAST_THE_GUARD = frozenset({"body", "interrupted"})


@dataclass
class FlowCoverage:
    """What the runs of one flow exercised, against what the flow declares."""

    flow: Flow[Any]
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    guards: Counter[tuple[str, str, GuardOutcome]] = field(default_factory=Counter)
    runs: int = 0
    sessions: int = 0

    # -- the universe ------------------------------------------------------------------
    def declared_transitions(self) -> list[tuple[str, str]]:
        """Every (state, trigger); a ``to=[...]`` transition counts once per candidate, as
        (state, ``"trigger → Target"``)."""
        out = []
        for s in self.flow.states:
            for t in sorted(self.flow.table[s]):
                edge = self.flow.table[s][t]
                if edge.is_dynamic:
                    out += [(s, candidate_key(t, c)) for c in sorted(
                        e.target for e in self.flow.edges
                        if e.transition is edge.transition and e.source == edge.source)]
                else:
                    out.append((s, t))
        return out

    def declared_guard_outcomes(self) -> list[tuple[str, str, GuardOutcome]]:
        return [
            (s, t, outcome)
            for s in self.flow.states for t in sorted(self.flow.table[s])
            if self.flow.table[s][t].transition.when is not None
            for outcome in ("allowed", "refused")
        ]

    # -- the numbers -------------------------------------------------------------------
    @property
    def covered(self) -> int:
        return (sum(1 for k in self.declared_transitions() if self.transitions[k])
                + sum(1 for k in self.declared_guard_outcomes() if self.guards[k]))

    @property
    def total(self) -> int:
        return len(self.declared_transitions()) + len(self.declared_guard_outcomes())

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * self.covered / self.total

    def missing(self) -> list[str]:
        """What was never exercised, as ``State.trigger`` and ``State.trigger [guard: …]``."""
        out = [f"{s}.{t}" for s, t in self.declared_transitions() if not self.transitions[(s, t)]]
        out += [f"{s}.{t} [guard {o}]" for s, t, o in self.declared_guard_outcomes()
                if not self.guards[(s, t, o)]]
        return out

    def report(self) -> str:
        n_t = len(self.declared_transitions())
        n_g = len(self.declared_guard_outcomes())
        t_cov = sum(1 for k in self.declared_transitions() if self.transitions[k])
        g_cov = sum(1 for k in self.declared_guard_outcomes() if self.guards[k])
        lines = [
            f"flow {self.flow.name}: {self.percent:.1f}% "
            f"(transitions {t_cov}/{n_t}, guard outcomes {g_cov}/{n_g}; "
            f"{self.runs} runs, {self.sessions} through a session)"
        ]
        for s, key in self.declared_transitions():
            t, _, target = key.partition(" → ")
            edge = self.flow.table[s][t]
            mark = "x" if self.transitions[(s, key)] else " "
            line = f"  [{mark}] {s} --{t}--> {target or edge.target}  x{self.transitions[(s, key)]}"
            if edge.transition.when is not None:
                line += (f"   guard: allowed x{self.guards[(s, t, 'allowed')]}, "
                         f"refused x{self.guards[(s, t, 'refused')]}")
            lines.append(line)
        return "\n".join(lines)


def candidate_key(trigger: str, target: str) -> str:
    """How coverage names one candidate of a ``to=[...]`` transition."""
    return f"{trigger} → {target}"


class CoverageObserver:
    """A FlowObserver counting transitions and guard outcomes, per flow it watches."""

    def __init__(self) -> None:
        self.flows: dict[int, FlowCoverage] = {}

    def watch(self, flow: Flow[Any]) -> FlowCoverage:
        """Start counting ``flow``'s runs (idempotent)."""
        if id(flow) not in self.flows:
            self.flows[id(flow)] = FlowCoverage(flow)
        if self not in flow.observers:  # (again, if a test restored the observer list)
            flow.observers.append(self)
        return self.flows[id(flow)]

    def unwatch_all(self) -> None:
        for cov in self.flows.values():
            if self in cov.flow.observers:
                cov.flow.observers.remove(self)

    def coverage(self, flow: Flow[Any]) -> FlowCoverage:
        return self.watch(flow)

    def count_run(self, flow: Flow[Any], *, session: bool = False,
                  call_id: str | None = None) -> None:
        """Count one run of ``flow`` (``session``: one conversation through an AgentSession)."""
        if call_id == INTERNAL_CALL_ID:
            return
        cov = self.watch(flow)
        if session:
            cov.sessions += 1
        else:
            cov.runs += 1

    def _cov(self, run: FlowRun[Any]) -> FlowCoverage | None:
        if run.call_id == INTERNAL_CALL_ID:
            return None
        return self.flows.get(id(run.flow))

    # -- FlowObserver --------------------------------------------------------------------
    def on_transition(self, run: FlowRun[Any], record: TransitionRecord) -> None:
        cov = self._cov(run)
        if cov is None:
            return
        edge = run.flow.table[record.source].get(record.trigger)
        key = record.trigger
        if edge is not None and edge.is_dynamic:
            key = candidate_key(record.trigger, record.target)
        cov.transitions[(record.source, key)] += 1
        if edge is not None and edge.transition.when is not None:
            cov.guards[(record.source, record.trigger, "allowed")] += 1

    def on_refusal(self, run: FlowRun[Any], refusal: Refusal) -> None:
        cov = self._cov(run)
        if cov is None:
            return
        edge = run.flow.table[refusal.state].get(refusal.trigger)
        if edge is None or edge.transition.when is None:
            return
        if refusal.kind == "guard":
            cov.guards[(refusal.state, refusal.trigger, "refused")] += 1
        elif refusal.kind in _PAST_THE_GUARD:
            cov.guards[(refusal.state, refusal.trigger, "allowed")] += 1
