"""The `transitions` Machine of a Flow: the only module that imports `transitions`.

One Machine per Flow, shared by every run of it (a run's ``_FsmModel`` is a model of
it): the FSM's state is the single source of truth for where a call is. Which moves
are valid is decided by the flow's table (:mod:`handoff.graph`) before the Machine is
asked; the Machine executes the move.
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
    new run). Runs fire events with ``machine.events[trigger].trigger(model)``, which
    is what those partials call, so the FSM still executes every move.
    """

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
    for edge in edges:
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
