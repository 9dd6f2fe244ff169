"""The `transitions` Machine of a Flow: the only module that imports `transitions`.

One Machine per Flow, shared by every run of it (a run's ``_FsmModel`` is a model of
it): the FSM's state is the single source of truth for where a call is, and the
Machine's transitions are the one table of which moves are valid. :func:`machine_table`
reads it into the per-state index every decision uses (``Flow.table``, built once with
the Flow); a move the semantic core found valid there is committed with
``machine.set_state``, so the Machine never decides a move twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transitions import Machine

from .graph import Edge


class _SharedMachine(Machine):
    """The `transitions` Machine of a Flow, shared by every run of it.

    ``add_model`` only puts a run's model in the initial state. transitions' own
    version also binds a partial per trigger, per ``may_<trigger>`` and per
    ``is_<state>`` to every model and keeps every model in a list it scans on each
    add (measured: 4.3 KB per run for 3 states, 288 KB for 200, and O(live runs) per
    new run). ``declared`` maps each Machine transition back to the edge that made it.
    """

    declared: dict[tuple[str | None, str], tuple[int, Edge]]
    """(source, trigger) → (the edge's place in the flow's declaration, the edge);
    source None for a global transition."""

    def add_model(self, model: Any, initial: Any = None) -> None:
        for mod in model if isinstance(model, list) else [model]:
            self.set_state(initial or self.initial, model=mod)  # type: ignore[arg-type]


class _GoesTo:
    """Condition of a Machine transition to one concrete state, for a trigger whose target
    is known only when it fires (a ``to=RETURN`` edge, a candidate of ``to=[...]``)."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state

    def __call__(self, dest: str | None = None, **_: Any) -> bool:
        return dest == self.state


def build_machine(states: Sequence[str], initial: str, edges: Sequence[Edge]) -> Machine:
    """The Machine of a flow: its states, and one Machine transition per declared edge
    (a ``to=RETURN`` edge gets one per state it may come back to). An edge whose target is
    known only when it fires is taken with ``machine.events[trigger].trigger(model,
    dest=target)``."""
    machine = _SharedMachine(
        model=None,
        states=list(states),
        initial=initial,
        auto_transitions=False,
        ignore_invalid_triggers=False,
        send_event=False,
    )
    machine.declared = {}
    for index, edge in enumerate(edges):
        machine.declared.setdefault((edge.source, edge.trigger), (index, edge))
        source = "*" if edge.source is None else edge.source
        if edge.is_return:  # one Machine transition per possible state to come back to
            for back in states:
                machine.add_transition(edge.trigger, source=source, dest=back,
                                       conditions=[_GoesTo(back)])
        elif edge.is_dynamic:
            machine.add_transition(edge.trigger, source=source, dest=edge.target,
                                   conditions=[_GoesTo(edge.target)])
        else:
            machine.add_transition(edge.trigger, source=source, dest=edge.target)
    return machine


def machine_table(machine: Machine, states: Sequence[str]) -> dict[str, dict[str, Edge]]:
    """state → trigger → edge, read from the Machine's transitions: a trigger is valid from
    a state exactly when the Machine has a transition for it there (its own edge wins
    over a global one of the same name), in the order the flow declares them."""
    declared: dict[tuple[str | None, str], tuple[int, Edge]] = machine.declared
    table: dict[str, dict[str, Edge]] = {}
    for state in states:
        found = []
        for trigger, event in machine.events.items():
            if event.transitions.get(state):
                entry = declared.get((state, trigger)) or declared[(None, trigger)]
                found.append(entry)
        table[state] = {edge.trigger: edge for _, edge in sorted(found, key=lambda e: e[0])}
    return table


def move_to(machine: Machine, model: Any, state: str) -> None:
    """Commit a move the table found valid: put ``model`` in ``state``."""
    machine.set_state(state, model=model)
