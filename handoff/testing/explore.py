"""Exhaustive exploration: every sequence of moves up to a depth, checked by the oracle.

Where the generated state machine samples conversations at random, :func:`explore`
enumerates *all* of them up to ``depth`` moves over the declared table, on pure runs
(no LiveKit), so a bug within reach of the depth cannot be missed. A move is either

* a declared transition from the current state, with each combination of
  representative arguments — the values where its guard changes its answer
  (:mod:`.boundaries`: ``1 <= size <= 12`` tries 0, 1, 12, 13) and one value of each
  other type (every member of a ``Literal``/enum/bool); or
* code setting one Context field that some guard reads, to one of its boundary
  values (so ``c.verified`` is seen both ways).

After every move the oracle checks it (:func:`.oracle.violations`: only declared moves,
a refusal changes nothing, no lost context, the return stack) and your
``entry_conditions``. The search is depth first with the run rewound between siblings,
and stops descending below the depth of the shortest counterexample found so far, so
the one reported is a shortest::

    result = explore(flow, depth=4)
    result.raise_if_failed()            # AssertionError with the shortest counterexample
    print(result.paths, result.paths_per_second)

``handoff check MODULE:flow --explore N`` runs it from the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import itertools
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import TransitionRefused
from ..flow import Flow
from ..graph import Edge
from ..run import FlowRun
from .boundaries import (
    argument_boundaries,
    context_boundaries,
    guard_boundaries,
    unmet_conditions,
)
from .coverage import INTERNAL_CALL_ID, coverage_rows
from .oracle import Observation, expect_for, violations
from .strategies import Attempt
from .values import values_for

Reset = Callable[[], Any]
"""Puts external state (a fake backend a body writes to) back as it was when a path
starts; may be async."""

MAX_ARGUMENT_COMBINATIONS = 16
"""Argument combinations tried per transition (the product of each parameter's values)."""


@dataclass(frozen=True)
class Move:
    """One move of an explored sequence: a transition attempt, or code setting a field."""

    attempt: Attempt | None = None
    field: str | None = None
    value: Any = None

    def __str__(self) -> str:
        """The move as the code that replays it on a run."""
        if self.attempt is not None:
            args = "".join(f", {k}={v!r}" for k, v in self.attempt.arguments.items())
            return f"await run.go({self.attempt.trigger!r}{args})"
        return f"run.context.{self.field} = {self.value!r}"


@dataclass
class Exploration:
    """What :func:`explore` did: how much it enumerated, and the shortest failure."""

    flow: str
    depth: int
    paths: int = 0
    """Move sequences enumerated (of ``depth`` moves, or shorter where no move was left)."""
    steps: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time of this process meanwhile (the wall time includes waiting for a busy CPU)."""
    counterexample: list[Move] | None = None
    problems: list[str] = field(default_factory=list)
    taken: set[tuple[str, str]] = field(default_factory=set)
    """(state, trigger) of every transition some sequence took."""
    unreached: list[str] = field(default_factory=list)
    """Every state, edge (each target of a ``to=[...]`` one) and guard outcome no sequence
    reached, with the guard conditions never met on the way (see :meth:`require_complete`)."""
    ungenerated: list[str] = field(default_factory=list)
    """Parameters and fields of a type exploration has no value for (give ``arguments=``)."""

    @property
    def ok(self) -> bool:
        return self.counterexample is None

    @property
    def paths_per_second(self) -> float:
        return self.paths / self.seconds if self.seconds else 0.0

    def describe(self, *, with_rate: bool = False) -> str:
        """The counterexample as replayable code and what went wrong; or "no violation"
        (with the paths explored per second, ``with_rate``) and what was not seen."""
        gaps = self.gaps()
        if self.counterexample is None:
            rate = f" ({self.paths_per_second:,.0f} paths/s)" if with_rate else ""
            return (f"flow {self.flow}: no violation in {self.paths} paths of depth ≤ "
                    f"{self.depth}{rate}" + (f"; not seen:\n{gaps}" if gaps else ""))
        steps = "\n".join(f"  {m}  # {i + 1}" for i, m in enumerate(self.counterexample))
        problems = "\n".join(f"  - {p}" for p in self.problems)
        return (f"flow {self.flow}: shortest counterexample ({len(self.counterexample)} moves), "
                f"replayed on `run = flow.new_run()`:\n{steps}\n{problems}")

    def gaps(self) -> str:
        """What the exploration did not see, one line each (empty when it saw everything)."""
        return "\n".join(f"  - {line}" for line in [*self.ungenerated, *self.unreached])

    def require_complete(self) -> Exploration:
        """Raise when some edge, guard outcome or parameter type was not explored."""
        self.raise_if_failed()
        if self.unreached or self.ungenerated:
            raise AssertionError(f"flow {self.flow}: not everything was explored at depth "
                                 f"{self.depth}:\n{self.gaps()}")
        return self

    def raise_if_failed(self) -> Exploration:
        if self.counterexample is not None:
            raise AssertionError(self.describe())
        return self


@dataclass
class _Mark:
    """Everything a move may change on a pure run, to rewind it."""

    state: str
    context: dict[str, Any]
    log: int
    refusals: int
    stack: list[str]


_IMMUTABLE = (str, int, float, bool, type(None), bytes, tuple, frozenset)


def _mark(run: FlowRun[Any]) -> _Mark:
    values = {k: v if isinstance(v, _IMMUTABLE) else copy.deepcopy(v)
              for k, v in run.context.__dict__.items()}
    return _Mark(run.state, values, len(run.log), len(run.refusals), list(run.return_stack))


def _rewind(run: FlowRun[Any], mark: _Mark) -> None:
    """Put the run back where ``mark`` was taken (same Context object, its old values)."""
    run.context.__dict__.update(
        {k: v if isinstance(v, _IMMUTABLE) else copy.deepcopy(v) for k, v in mark.context.items()})
    del run.refusals[mark.refusals:]
    if run.state != mark.state or len(run.log) != mark.log or run.return_stack != mark.stack:
        run.restore(mark.state, log=run.log[: mark.log], return_stack=mark.stack)
    run.failures.consecutive = 0
    if run.failures.failover is not None:  # an error transition the rewound moves asked for
        run.failures.failover.cancel()
        run.failures.failover = None


async def call_reset(reset: Reset | None) -> None:
    """Call ``reset`` (if any), awaiting what it returns when that is awaitable."""
    if reset is not None and inspect.isawaitable(result := reset()):
        await result


def guard_raised(attempt: Attempt, state: str, reason: str | None) -> str:
    """The finding for a guard that raised instead of answering."""
    return (f"{attempt!r} in {state}: its guard raised ({reason}); a guard must answer yes "
            "or no (pass allow_errors=True if it may raise on purpose)")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or repr(hint)


class _Explorer:
    def __init__(self, flow: Flow[Any], depth: int, *, entry_conditions: Mapping[str, Callable[[Any], bool]],
                 may_clear: Mapping[str, Collection[str]], allow_errors: bool,
                 context_moves: bool, arguments: Mapping[str, Mapping[str, list[Any]]],
                 reset: Reset | None = None) -> None:
        self.flow = flow
        self.depth = depth
        self.entry_conditions = entry_conditions
        self.may_clear = may_clear
        self.allow_errors = allow_errors
        self.result = Exploration(flow.name, depth)
        self.best = depth  # never descend below the shortest counterexample so far
        self.field_values = context_boundaries(flow) if context_moves else {}
        self.given = arguments
        self._attempts: dict[int, list[Attempt]] = {}
        self.reset = reset
        self.states: set[str] = set()
        self.targets: set[tuple[str, str, str]] = set()
        """(source, trigger, target) of every transition taken."""
        self.outcomes: set[tuple[str, str, str]] = set()
        """(state, trigger, "allowed" | "refused") of every guarded attempt."""
        self.held: dict[tuple[str, str], set[str]] = {}
        """(state, trigger) → the guard conditions seen true there."""

    def attempts(self, edge: Edge) -> list[Attempt]:
        """Every combination (capped) of representative arguments for ``edge``."""
        key = id(edge)
        if key not in self._attempts:
            bounds = argument_boundaries(edge)
            given = self.given.get(edge.trigger, {})
            names, choices = [], []
            for p in edge.transition.params:
                values = given.get(p.name) or bounds.get(p.name) or values_for(p.annotation, [])
                if not values:
                    where = f"{edge.source or '*'}.{edge.trigger}({p.name})"
                    note = (f"{where}: no value of type {_type_name(p.annotation)} to try "
                            f"(give arguments={{{edge.trigger!r}: {{{p.name!r}: [...]}}}})")
                    if note not in self.result.ungenerated:
                        self.result.ungenerated.append(note)
                    if p.default is p.empty:
                        values = []
                    else:
                        continue
                names.append(p.name)
                choices.append(values)
            combos = itertools.islice(itertools.product(*choices), MAX_ARGUMENT_COMBINATIONS)
            self._attempts[key] = [Attempt(edge.trigger, dict(zip(names, c, strict=True)))
                                   for c in combos]
        return self._attempts[key]

    def moves(self, run: FlowRun[Any]) -> list[Move]:
        out = [Move(attempt=a) for edge in self.flow.table[run.state].values()
               for a in self.attempts(edge)]
        for name, values in self.field_values.items():
            current = getattr(run.context, name)
            out += [Move(field=name, value=v) for v in values
                    if not (type(v) is type(current) and v == current)]
        return out

    async def apply(self, run: FlowRun[Any], move: Move) -> list[str]:
        """Make the move; the oracle's problems with it (empty when all is well)."""
        self.result.steps += 1
        if move.attempt is None:
            assert move.field is not None
            setattr(run.context, move.field, move.value)
            return []
        before = Observation.of(run)
        self._note_guard(run, move.attempt)
        expectation = expect_for(run, move.attempt, isolate=False)
        with contextlib.suppress(TransitionRefused):
            await run.go(move.attempt.trigger, **move.attempt.arguments)
        problems = violations(self.flow, run, move.attempt, expectation, before,
                              allow_errors=self.allow_errors, may_clear=self.may_clear)
        if expectation.verdict == "guard-error" and not self.allow_errors:
            problems.append(guard_raised(move.attempt, before.state, expectation.reason))
        for record in run.log[before.log_len:]:
            self.result.taken.add((record.source, record.trigger))
            self.targets.add((record.source, record.trigger, record.target))
            self.states.add(record.target)
            condition = self.entry_conditions.get(record.target)
            if condition is not None and not condition(run.context):
                problems.append(f"entered {record.target} by {record.trigger} from "
                                f"{record.source} but its entry condition does not hold; "
                                f"context: {run.context.model_dump()}")
        return problems

    def _note_guard(self, run: FlowRun[Any], attempt: Attempt) -> None:
        """Which guard outcome ``attempt`` meets here, and which conditions of it hold."""
        edge = self.flow.table[run.state].get(attempt.trigger)
        if edge is None or edge.transition.when is None:
            return
        conditions = guard_boundaries(edge.transition.when).conditions
        held = self.held.setdefault((run.state, attempt.trigger), set())
        held.update(c.text for c in conditions if c.holds(run.context, attempt.arguments))
        try:
            reason = edge.transition.check_guard(run.context, dict(attempt.arguments))
        except Exception:
            return
        self.outcomes.add((run.state, attempt.trigger,
                           "allowed" if reason is None else "refused"))

    def unreached(self) -> list[str]:
        """Every state, edge and guard outcome never seen, with the conditions never met."""
        out = [f"state {s}: never entered" for s in self.flow.states
               if s not in self.states and s != self.flow.initial]
        guarded: set[tuple[str, str]] = set()
        for row in coverage_rows(self.flow):
            if row.state not in self.states and row.state != self.flow.initial:
                continue  # the state's own line says it
            key = (row.state, row.trigger)
            edge = self.flow.table[row.state][row.trigger]
            taken = (any(t[:2] == key and t[2] == row.target for t in self.targets)
                     if edge.is_dynamic else key in self.result.taken)
            if not taken:
                out.append(f"{row.state}.{row.key}: never taken{self._why(edge, key)}")
            if row.guarded and key not in guarded:
                guarded.add(key)
                for outcome in ("allowed", "refused"):
                    if (*key, outcome) not in self.outcomes:
                        why = self._why(edge, key) if outcome == "allowed" else ""
                        out.append(f"{row.state}.{row.trigger}: guard never {outcome}{why}")
        return out

    def _why(self, edge: Edge, key: tuple[str, str]) -> str:
        conditions = guard_boundaries(edge.transition.when).conditions
        unmet = unmet_conditions(conditions, self.held.get(key, set()))
        return ("; condition never met: " + ", ".join(f"`{c}`" for c in unmet)) if unmet else ""

    async def search(self, run: FlowRun[Any], trail: list[Move]) -> None:
        if len(trail) >= self.best:
            self.result.paths += 1
            return
        moves = self.moves(run)
        if not moves:
            self.result.paths += 1
            return
        mark = _mark(run)
        for move in moves:
            problems = await self.apply(run, move)
            trail.append(move)
            if problems:
                self.result.paths += 1
                if (self.result.counterexample is None
                        or len(trail) < len(self.result.counterexample)):
                    self.result.counterexample = list(trail)
                    self.result.problems = problems
                    self.best = len(trail) - 1
            else:
                await self.search(run, trail)
            trail.pop()
            _rewind(run, mark)
            await call_reset(self.reset)
            if len(trail) >= self.best:
                return


def explore(
    flow: Flow[Any],
    *,
    depth: int = 4,
    initial: Mapping[str, Any] | None = None,
    entry_conditions: Mapping[str, Callable[[Any], bool]] | None = None,
    may_clear: Mapping[str, Collection[str]] | None = None,
    allow_errors: bool = False,
    context_moves: bool = True,
    arguments: Mapping[str, Mapping[str, list[Any]]] | None = None,
    reset: Reset | None = None,
) -> Exploration:
    """Enumerate every move sequence of up to ``depth`` moves from the initial state.

    Args:
        depth: moves per sequence (transitions and Context changes both count).
        initial: Context fields the run starts with.
        entry_conditions / may_clear / allow_errors: as for ``FlowStateMachine``.
        context_moves: also enumerate code setting each guarded Context field to each
            of its boundary values (off: transitions only, a much smaller tree).
        arguments: trigger → parameter → values to try instead of the derived ones.
        reset: called (and awaited, if it returns an awaitable) before the first path
            and whenever the run is rewound to try another branch: put back what the
            bodies changed outside the Context (a fake backend, a counter).

    A guard that raises is a finding (unless ``allow_errors``), as is a body that
    raises. Returns an :class:`Exploration`: ``.raise_if_failed()`` in a test, and
    ``.unreached`` / ``.ungenerated`` (``.require_complete()``) for what the search
    never saw: states, edges, guard outcomes (with the guard conditions never met),
    parameters of a type it has no value for.
    """
    if depth < 0:
        raise ValueError("depth must be at least 0")
    explorer = _Explorer(flow, depth, entry_conditions=dict(entry_conditions or {}),
                         may_clear=dict(may_clear or {}), allow_errors=allow_errors,
                         context_moves=context_moves, arguments=dict(arguments or {}),
                         reset=reset)
    context = flow.context_type.model_validate(dict(initial or {}))

    async def run_all() -> None:
        run = flow.new_run(context, call_id=INTERNAL_CALL_ID)
        try:
            await call_reset(reset)
            await explorer.search(run, [])
        finally:
            run.close()

    started, cpu = time.perf_counter(), time.process_time()
    asyncio.run(run_all())
    explorer.result.seconds = time.perf_counter() - started
    explorer.result.cpu_seconds = time.process_time() - cpu
    explorer.result.unreached = explorer.unreached()
    return explorer.result
