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


@dataclass(frozen=True)
class CoverageRow:
    """One declared transition of the universe: ``(state, key)`` with what the report shows."""

    state: str
    key: str
    """the trigger, or ``"trigger → Target"`` for one candidate of a ``to=[...]`` transition"""
    trigger: str
    target: str
    guarded: bool


def coverage_rows(flow: Flow[Any]) -> tuple[CoverageRow, ...]:
    """The flow's table as coverage counts it: every (state, trigger); a ``to=[...]``
    transition once per candidate."""
    rows = []
    for s in flow.states:
        for t in sorted(flow.table[s]):
            edge = flow.table[s][t]
            guarded = edge.transition.when is not None
            if edge.is_dynamic:
                rows += [CoverageRow(s, candidate_key(t, c), t, c, guarded) for c in sorted(
                    e.target for e in flow.edges
                    if e.transition is edge.transition and e.source == edge.source)]
            else:
                rows.append(CoverageRow(s, t, t, edge.target, guarded))
    return tuple(rows)


@dataclass
class FlowCoverage:
    """What the runs of one flow exercised, against what the flow declares.

    Made from a flow (``FlowCoverage(flow)``), or from another process's
    :meth:`to_wire` (``FlowCoverage.from_wire``, the pytest plugin under xdist):
    the universe is kept as plain rows, so the numbers and the report need no flow.
    """

    flow: Flow[Any] | None = None
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    guards: Counter[tuple[str, str, GuardOutcome]] = field(default_factory=Counter)
    runs: int = 0
    sessions: int = 0
    name: str = ""
    rows: tuple[CoverageRow, ...] = ()

    def __post_init__(self) -> None:
        if self.flow is not None:
            self.name, self.rows = self.flow.name, coverage_rows(self.flow)

    # -- the universe ------------------------------------------------------------------
    def declared_transitions(self) -> list[tuple[str, str]]:
        """Every (state, trigger); a ``to=[...]`` transition counts once per candidate, as
        (state, ``"trigger → Target"``)."""
        return [(r.state, r.key) for r in self.rows]

    def declared_guard_outcomes(self) -> list[tuple[str, str, GuardOutcome]]:
        seen = dict.fromkeys((r.state, r.trigger) for r in self.rows if r.guarded)
        return [(s, t, outcome) for s, t in seen for outcome in ("allowed", "refused")]

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
            f"flow {self.name}: {self.percent:.1f}% "
            f"(transitions {t_cov}/{n_t}, guard outcomes {g_cov}/{n_g}; "
            f"{self.runs} runs, {self.sessions} through a session)"
        ]
        for r in self.rows:
            count = self.transitions[(r.state, r.key)]
            line = f"  [{'x' if count else ' '}] {r.state} --{r.trigger}--> {r.target}  x{count}"
            if r.guarded:
                line += (f"   guard: allowed x{self.guards[(r.state, r.trigger, 'allowed')]}, "
                         f"refused x{self.guards[(r.state, r.trigger, 'refused')]}")
            lines.append(line)
        return "\n".join(lines)

    # -- across processes (pytest-xdist) ----------------------------------------------------
    @property
    def identity(self) -> tuple[str, tuple[CoverageRow, ...]]:
        """What makes two processes' coverages one flow's: its name and its table."""
        return self.name, self.rows

    def to_wire(self) -> dict[str, Any]:
        """The counts and the universe as plain lists and strings (what execnet sends)."""
        return {
            "name": self.name,
            "rows": [[r.state, r.key, r.trigger, r.target, r.guarded] for r in self.rows],
            "transitions": [[*k, n] for k, n in self.transitions.items()],
            "guards": [[*k, n] for k, n in self.guards.items()],
            "runs": self.runs, "sessions": self.sessions,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> FlowCoverage:
        """The inverse of :meth:`to_wire`."""
        cov = cls(name=data["name"], rows=tuple(CoverageRow(*r) for r in data["rows"]))
        cov.add(data)
        return cov

    def add(self, data: dict[str, Any]) -> None:
        """Add another process's counts (a :meth:`to_wire` of the same flow) to these."""
        for s, k, n in data["transitions"]:
            self.transitions[(s, k)] += n
        for s, t, o, n in data["guards"]:
            self.guards[(s, t, o)] += n
        self.runs += data["runs"]
        self.sessions += data["sessions"]


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
            if cov.flow is not None and self in cov.flow.observers:
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
