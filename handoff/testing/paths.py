"""Paths through a flow: one script reaching each state, and a set taking every transition.

A :class:`FlowPath` (a path through the flow's graph) is a list of :class:`Step`\\ s from
the initial state. A step names the trigger, the arguments, and — when the guard or the
body needs the Context to hold something first — the ``setup``: Context fields that code
sets before the step (in a real call a tool such as ``verify_account`` would set them).

Guarded edges need values that pass the guard *and* the body. They are searched for
with hypothesis (``find``): first arguments alone, then arguments plus the smallest
setup; every candidate is checked by running the real transition on a pure FlowRun.
What cannot be found is reported in ``FlowPaths.missing`` rather than invented — give
``arguments=`` / ``setup=`` hints for those edges::

    @pytest.mark.parametrize("path", shortest_paths(flow), ids=str)
    async def test_reach(path): ...
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample, Unsatisfiable
from typing_extensions import Unpack

from ..errors import TransitionRefused
from ..flow import Flow
from ..graph import Edge
from ..run import FlowRun
from .boundaries import Condition, guard_boundaries, unmet_conditions
from .coverage import INTERNAL_CALL_ID
from .explore import Reset, call_reset
from .oracle import NO_RETURN, declared_targets
from .scripted import ToolCall
from .strategies import Overrides, arguments, context_changes

FoundBy = Literal["plain", "given", "search", "search+setup"]


@dataclass(frozen=True)
class Step:
    """One transition of a path, with what had to hold for its guard and body to allow it."""

    source: str
    trigger: str
    target: str
    arguments: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    found_by: FoundBy = "plain"

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        setup = "".join(f"[{k}={v!r}] " for k, v in self.setup.items())
        return f"{setup}{self.trigger}({args})"


@dataclass(frozen=True)
class FlowPath:
    """A sequence of steps from the flow's initial state to ``target``."""

    start: str
    steps: tuple[Step, ...] = ()

    @property
    def target(self) -> str:
        return self.steps[-1].target if self.steps else self.start

    @property
    def transitions(self) -> list[tuple[str, str]]:
        """(state, trigger) of every step: what this path covers."""
        return [(s.source, s.trigger) for s in self.steps]

    @property
    def id(self) -> str:
        """A short test id: the last transition taken (or the initial state)."""
        if not self.steps:
            return self.start
        last = self.steps[-1]
        return f"{last.source}.{last.trigger}->{last.target}"

    def __str__(self) -> str:
        return self.id

    def describe(self) -> str:
        """The whole path on one line, setups in brackets."""
        parts = [self.start]
        for step in self.steps:
            parts.append(f"--{step}--> {step.target}")
        return " ".join(parts)

    def then(self, step: Step) -> FlowPath:
        return FlowPath(self.start, (*self.steps, step))

    async def replay(self, run: FlowRun[Any]) -> None:
        """Take the path by code (``run.go``) on a pure run or a session's run."""
        for step in self.steps:
            _apply(run, step.setup)
            await run.go(step.trigger, **step.arguments)

    def tool_calls(self) -> list[ToolCall]:
        """The LLM's tool call for each step (play them with a FlowDriver; apply setups)."""
        return [ToolCall(s.trigger, dict(s.arguments)) for s in self.steps]


class FlowPaths(list[FlowPath]):
    """A list of paths, and what could not be reached (``missing``: what → why)."""

    def __init__(self, paths: list[FlowPath], missing: Mapping[str, str],
                 unseen: Mapping[str, str] | None = None) -> None:
        super().__init__(paths)
        self.missing: dict[str, str] = dict(missing)
        self.unseen: dict[str, str] = dict(unseen or {})
        """Guard outcomes of reached transitions the search never saw (``"Menu.next [guard
        refused]"`` → why): a report, not a gap in the paths (``require_complete`` ignores
        it)."""

    def require_complete(self) -> FlowPaths:
        """Raise when something was not reached (use it to make a gap fail loudly)."""
        if self.missing:
            lines = "\n".join(f"  - {k}: {v}" for k, v in self.missing.items())
            raise AssertionError(f"no path found for:\n{lines}\n"
                                 "give arguments=/setup= hints for these transitions")
        return self


def _apply(run: FlowRun[Any], setup: Mapping[str, Any]) -> None:
    for key, value in setup.items():
        setattr(run.context, key, value)


class _Searcher:
    """Finds arguments (and a setup) that take one edge, by running it for real.

    It remembers, per (state, trigger), which conditions of the guard it ever saw hold
    and the last refusal, so an edge it cannot take is reported with the reason.
    """

    def __init__(
        self,
        flow: Flow[Any],
        given_arguments: Mapping[str, Mapping[str, Any]],
        given_setup: Mapping[str, Mapping[str, Any]],
        argument_overrides: Mapping[str, Overrides],
        context_overrides: Overrides,
        max_examples: int,
        reset: Reset | None = None,
    ) -> None:
        self.flow = flow
        self.reset = reset
        self.given_arguments = given_arguments
        self.given_setup = given_setup
        self.argument_overrides = argument_overrides
        self.context_overrides = context_overrides
        self.settings = settings(
            max_examples=max_examples, database=None, derandomize=True, deadline=None,
            suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink),
        )
        self.quick_settings = settings(self.settings, max_examples=max(10, max_examples // 3))
        self.loop = asyncio.Runner()
        self.memo: dict[tuple[str, str, str | None], Step | None] = {}
        self.held: dict[tuple[str, str], set[str]] = {}
        self.refusals: dict[tuple[str, str], str] = {}
        self.outcomes: set[tuple[str, str, str]] = set()
        """(state, trigger, "allowed" | "refused") of every guard answer seen."""

    def close(self) -> None:
        self.loop.close()

    def takes(self, prefix: FlowPath, trigger: str, args: dict[str, Any],
              setup: dict[str, Any], wanted: str | None = None) -> str | None:
        """The state replaying ``prefix`` then ``setup`` + ``trigger(args)`` reaches.

        None unless it is a declared target of the edge (``wanted``, when given).
        """
        key = (prefix.target, trigger)
        edge = self.flow.table[prefix.target][trigger]
        conditions = guard_boundaries(edge.transition.when).conditions

        async def attempt() -> str | None:
            await call_reset(self.reset)
            run = self.flow.new_run(call_id=INTERNAL_CALL_ID)
            try:
                await prefix.replay(run)
                _apply(run, setup)
                self._note_conditions(key, conditions, run.context, args)
                targets = declared_targets(self.flow, edge, run.return_stack)
                if not targets:
                    self.refusals[key] = NO_RETURN
                    return None
                await run.go(trigger, **args)
            except TransitionRefused as exc:
                self.refusals[key] = exc.message
                self.outcomes.add((*key, "refused" if exc.kind == "guard" else "allowed"))
                return None
            except ValueError:
                return None
            finally:
                run.close()
            reached = run.state
            if reached not in targets or (wanted is not None and reached != wanted):
                return None
            return reached

        try:
            return self.loop.run(attempt())
        except Exception:
            return None

    def _note_conditions(self, key: tuple[str, str], conditions: list[Condition],
                         context: Any, args: dict[str, Any]) -> None:
        held = self.held.setdefault(key, set())
        held.update(c.text for c in conditions if c.text not in held and c.holds(context, args))

    def why_not(self, state: str, trigger: str) -> str:
        """Why no values were found that take ``state.trigger``: the unmet guard conditions."""
        key = (state, trigger)
        edge = self.flow.table[state][trigger]
        conditions = guard_boundaries(edge.transition.when).conditions
        unmet = unmet_conditions(conditions, self.held.get(key, set()))
        if unmet:
            return ("no arguments/setup found that meet its guard condition(s) "
                    + ", ".join(f"`{c}`" for c in unmet))
        last = self.refusals.get(key)
        if last:
            return f"no arguments/setup found that pass its guard and body (last refusal: {last})"
        return "no arguments/setup found that pass its guard and body"

    def step(self, prefix: FlowPath, trigger: str, wanted: str | None = None) -> Step | None:
        """The step taking ``trigger`` after ``prefix`` (to ``wanted``, when given)."""
        key = (prefix.describe(), trigger, wanted)
        if key not in self.memo:
            self.memo[key] = self._search(prefix, trigger, wanted)
        return self.memo[key]

    def _search(self, prefix: FlowPath, trigger: str, wanted: str | None) -> Step | None:
        source = prefix.target
        given_args = dict(self.given_arguments.get(trigger, {}))
        given_setup = dict(self.given_setup.get(trigger, {}))
        given = trigger in self.given_arguments or trigger in self.given_setup
        if given and (reached := self.takes(prefix, trigger, given_args, given_setup, wanted)):
            return Step(source, trigger, reached, given_args, given_setup, "given")
        args_strategy = arguments(self.flow, trigger, self.argument_overrides.get(trigger),
                                  state=source)
        if not self.flow.table[source][trigger].transition.params:
            if reached := self.takes(prefix, trigger, {}, {}, wanted):
                return Step(source, trigger, reached, {}, {}, "plain")
        else:
            found = self._find(args_strategy.map(lambda a: (a, {})), prefix, trigger, wanted,
                               quick=True)
            if found is not None:
                return self._step(prefix, trigger, wanted, found, "search")
        with_setup = st.tuples(args_strategy,
                               context_changes(self.flow, **_as_kwargs(self.context_overrides)))
        found = self._find(with_setup, prefix, trigger, wanted)
        if found is not None:
            return self._step(prefix, trigger, wanted, found, "search+setup")
        return None

    def _step(self, prefix: FlowPath, trigger: str, wanted: str | None,
              found: tuple[dict[str, Any], dict[str, Any]], how: FoundBy) -> Step | None:
        reached = self.takes(prefix, trigger, found[0], found[1], wanted)
        if reached is None:
            return None
        return Step(prefix.target, trigger, reached, found[0], found[1], how)

    def _find(self, strategy: st.SearchStrategy[tuple[dict[str, Any], dict[str, Any]]],
              prefix: FlowPath, trigger: str, wanted: str | None, *, quick: bool = False
              ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Search (then shrink) values taking the edge; ``quick`` spends a third of the budget."""
        chosen = self.quick_settings if quick else self.settings
        try:
            return find(strategy,
                        lambda v: self.takes(prefix, trigger, v[0], v[1], wanted) is not None,
                        settings=chosen)
        except (NoSuchExample, Unsatisfiable):
            return None


class SearchHints(TypedDict, total=False):
    """What :func:`shortest_paths` and :func:`transition_cover` accept to steer the search.

    arguments: trigger → concrete arguments to try first for that transition.
    setup: trigger → Context fields to set before that transition.
    argument_overrides / context_overrides: strategies steering the search.
    max_examples: how hard to search each guarded edge (default 200).
    reset: called (awaited, if it returns an awaitable) before each candidate is run:
    puts back what bodies changed outside the Context.
    """

    arguments: Mapping[str, Mapping[str, Any]]
    setup: Mapping[str, Mapping[str, Any]]
    argument_overrides: Mapping[str, Overrides]
    context_overrides: Overrides
    max_examples: int
    reset: Reset


def _searcher(flow: Flow[Any], hints: SearchHints, caller: str) -> _Searcher:
    """The search of ``caller``, which runs the flow on an event loop of its own: refused
    inside a running one (every attempt would fail, and each edge read "not found")."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            f"{caller}() runs the flow on an event loop of its own and cannot be called from "
            f"a running one: call it from synchronous code (a plain test function), or from "
            f"async code as `await asyncio.to_thread({caller}, flow)`")
    return _Searcher(flow, hints.get("arguments", {}), hints.get("setup", {}),
                     hints.get("argument_overrides", {}), hints.get("context_overrides", {}),
                     hints.get("max_examples", 200), hints.get("reset"))


def _wanted(flow: Flow[Any], edge: Edge) -> list[str | None]:
    """The targets to reach separately: each of a dynamic edge's, else any (None)."""
    targets = declared_targets(flow, edge)
    return list(targets) if len(targets) > 1 else [None]


def _reach(search: _Searcher) -> tuple[dict[str, FlowPath], dict[str, str]]:
    """Breadth first from the initial state: the fewest transitions to each state."""
    flow = search.flow
    paths = {flow.initial: FlowPath(flow.initial)}
    failed: dict[str, str] = {}
    queue = deque([flow.initial])
    while queue:
        state = queue.popleft()
        for trigger, edge in sorted(flow.table[state].items()):
            for wanted in _wanted(flow, edge):
                known = wanted if wanted is not None else (
                    None if edge.is_return else edge.target)
                if known is not None and known in paths:
                    continue
                step = search.step(paths[state], trigger, wanted)
                if step is None:
                    if known is not None:
                        failed.setdefault(known, f"{state}.{trigger}: "
                                          f"{search.why_not(state, trigger)}")
                    continue
                if step.target not in paths:
                    paths[step.target] = paths[state].then(step)
                    queue.append(step.target)
    missing = {s: failed.get(s, "no declared path leads there") for s in flow.states
               if s not in paths}
    return paths, missing


def shortest_paths(flow: Flow[Any], **hints: Unpack[SearchHints]) -> FlowPaths:
    """One path per reachable state, with the fewest transitions found.

    ``hints`` (see :class:`SearchHints`): ``arguments=``, ``setup=``,
    ``argument_overrides=``, ``context_overrides=``, ``max_examples=``.
    """
    search = _searcher(flow, hints, "shortest_paths")
    try:
        paths, missing = _reach(search)
    finally:
        search.close()
    ordered = [paths[s] for s in flow.states if s in paths]
    return FlowPaths(ordered, missing)


def transition_cover(flow: Flow[Any], **hints: Unpack[SearchHints]) -> FlowPaths:
    """Paths that together take every (state, trigger) of the table at least once.

    A global transition counts once per state it leaves from; a ``to=[...]`` transition
    once per candidate. Paths that are a prefix of another are dropped (the longer one
    covers them). ``missing`` names each transition no path was found for, and why.
    ``hints`` as for :func:`shortest_paths`.
    """
    search = _searcher(flow, hints, "transition_cover")
    found: list[FlowPath] = []
    missing: dict[str, str] = {}
    try:
        reached, unreached = _reach(search)
        for state in flow.states:
            for trigger in sorted(flow.table[state]):
                key = f"{state}.{trigger}"
                if state not in reached:
                    missing[key] = f"state {state} not reached: {unreached[state]}"
                    continue
                edge = flow.table[state][trigger]
                for wanted in _wanted(flow, edge):
                    item = key if wanted is None else f"{key}->{wanted}"
                    prefixes = [reached[state], *(_side_trips_into(search, reached, state)
                                                  if edge.is_return else [])]
                    taken = next(((p, step) for p in prefixes
                                  if (step := search.step(p, trigger, wanted)) is not None),
                                 None)
                    if taken is None:
                        missing[item] = search.why_not(state, trigger)
                        continue
                    found.append(taken[0].then(taken[1]))
    finally:
        search.close()
    kept = [p for p in found
            if not any(q is not p and q.steps[: len(p.steps)] == p.steps
                       and len(q.steps) > len(p.steps) for q in found)]
    for path in found:
        search.outcomes |= {(s.source, s.trigger, "allowed") for s in path.steps}
    return FlowPaths(kept, missing, _unseen_outcomes(search, reached))


def _unseen_outcomes(search: _Searcher, reached: Mapping[str, FlowPath]) -> dict[str, str]:
    """Each guard outcome of a reached state's transition the search never saw."""
    unseen = {}
    for state in reached:
        for trigger, edge in sorted(search.flow.table[state].items()):
            if edge.transition.when is None:
                continue
            for outcome in ("allowed", "refused"):
                if (state, trigger, outcome) not in search.outcomes:
                    unseen[f"{state}.{trigger} [guard {outcome}]"] = (
                        search.why_not(state, trigger) if outcome == "allowed"
                        else "no value tried made the guard say no")
    return unseen


def _side_trips_into(search: _Searcher, reached: Mapping[str, FlowPath], state: str
                     ) -> list[FlowPath]:
    """Paths that enter ``state`` by a side trip (``returns=True``), so a ``to=RETURN``
    edge of it has somewhere to go back to (the shortest path may not start one)."""
    out = []
    for edge in search.flow.edges:
        sources = [edge.source] if edge.source is not None else list(reached)
        if not edge.transition.returns or edge.target != state:
            continue
        for source in sources:
            if source in reached and edge.trigger in search.flow.table[source] and (
                    step := search.step(reached[source], edge.trigger, state)) is not None:
                out.append(reached[source].then(step))
    return out


def _as_kwargs(overrides: Overrides) -> dict[str, Any]:
    return dict(overrides)
