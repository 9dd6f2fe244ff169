"""The graph of a flow: its edges, the state → trigger table, and reachability.

Pure data over the declared states and transitions, no LiveKit session and no FSM:
:mod:`handoff.validate` reads it for findings, and :mod:`handoff.fsm` builds the Machine
from the same edges (the Machine is the table every decision reads).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .state import State
from .transition import RETURN, TransitionDef


@dataclass(frozen=True, slots=True)
class Edge:
    """One declared edge: from ``source`` (None = every state) by ``trigger`` to ``target``."""

    source: str | None
    target: str
    transition: TransitionDef

    @property
    def trigger(self) -> str:
        return self.transition.name

    @property
    def is_global(self) -> bool:
        return self.source is None

    @property
    def is_return(self) -> bool:
        """True for ``to=RETURN``: the target is the top of the run's return stack."""
        return self.target == RETURN

    @property
    def is_dynamic(self) -> bool:
        """One candidate of a ``to=[...]`` transition (the body chooses at run time)."""
        return self.transition.dynamic

    @property
    def is_code_only(self) -> bool:
        """Declared with ``llm=False``: taken by ``run.go()`` only."""
        return not self.transition.offered


class Graph(Protocol):
    """What reachability reads of a flow: its states by name and its edges."""

    @property
    def states(self) -> Mapping[str, type[State[Any]]]: ...

    @property
    def edges(self) -> Sequence[Edge]: ...


def resolve_target(target: Any, states: Mapping[str, type[State[Any]]]) -> str:
    """The name of the state a declared target is (``RETURN`` stays as it is)."""
    if isinstance(target, str):  # a state name, or RETURN
        return target
    # a class target: the flow's state of that name, or the flow's subclass of it
    if target.state_name() in states:
        return str(target.state_name())
    for name, cls in states.items():
        if isinstance(target, type) and issubclass(cls, target):
            return name
    return str(target.state_name())


def resolve_targets(tdef: TransitionDef, states: Mapping[str, type[State[Any]]]) -> list[str]:
    """The names of the states ``tdef`` may go to (one, or each candidate of ``to=[...]``)."""
    return [resolve_target(t, states) for t in tdef.candidates]


def collect_edges(
    state_classes: Iterable[type[State[Any]]],
    global_transitions: Iterable[TransitionDef],
    states: Mapping[str, type[State[Any]]],
) -> list[Edge]:
    """Every declared edge: each state's own transitions, then the global ones; a
    ``to=[...]`` transition gives one edge per candidate target."""
    edges: list[Edge] = []
    for cls in state_classes:
        for tdef in cls.declared_transitions():
            edges.extend(Edge(cls.state_name(), target, tdef)
                         for target in resolve_targets(tdef, states))
    for tdef in global_transitions:
        edges.extend(Edge(None, target, tdef) for target in resolve_targets(tdef, states))
    return edges


ANY = "\x00any state"
"""The node global transitions leave from: every state leads to it, it leads to their targets."""
BACK = "\x00return point"
"""The node ``to=RETURN`` transitions lead to: it leads to every state a side trip can start
from (the sources of ``returns=True`` transitions; every state for a global one)."""


def successors(flow: Graph, with_returns: bool = True) -> dict[str, set[str]]:
    """state -> the states its own transitions lead to, plus ``ANY`` (the global ones)
    and ``BACK`` (when it has a ``to=RETURN`` transition).

    Global transitions go through the one ``ANY`` node and returns through the one
    ``BACK`` node, so the graph has O(states + transitions) edges.
    """
    out: dict[str, set[str]] = {name: {ANY} for name in flow.states}
    out[ANY], out[BACK] = set(), set()
    for edge in flow.edges:
        source = ANY if edge.source is None else edge.source
        if edge.is_return:
            if with_returns:
                out[source].add(BACK)
        elif edge.target in flow.states:
            out[source].add(edge.target)
        if with_returns and getattr(edge.transition, "returns", False):
            out[BACK] |= set(flow.states) if edge.source is None else {edge.source}
    return out


def predecessors(succ: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The reverse graph of ``succ``."""
    out: dict[str, set[str]] = {name: set() for name in succ}
    for source, targets in succ.items():
        for target in targets:
            out[target].add(source)
    return out


def reach(start: Iterable[str], succ: Mapping[str, Iterable[str]]) -> set[str]:
    """Every node reachable from ``start`` (included) by breadth-first search."""
    seen = set(start)
    queue = deque(seen)
    while queue:
        for nxt in succ[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
