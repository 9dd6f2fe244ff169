"""What each move itself changed: the Context when it was asked for and when it was refused.

"A refusal changes nothing" is about the move: what its guard and body wrote must be
gone once it is refused or interrupted (the run undoes exactly that). A State hook
that writes the Context on every turn (``llm_node`` refreshing data, ``on_user_turn_completed``
counting turns) or an ordinary tool of the same turn writes too, but those writes are
not the move's, and comparing the Context before and after the whole turn would call
them a refusal that changed something.

A :class:`MoveWatch` attached to the run (``run.observers``) sees each move's request
(``on_transition_requested``) and its refusal (``on_refusal``), which the run reports
after undoing the move, and keeps the Context as it was at both moments: the move's
window. Nothing else runs in the window but the move (and the tools of the same LLM
response, which the generated machine does not mix with transitions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..observers import attach, detach
from ..records import MovedBy, Refusal, TransitionRecord
from ..run import FlowRun


@dataclass
class Window:
    """One refused move: its trigger, the refusal's kind, the Context at its request and
    after its refusal."""

    trigger: str
    before: dict[str, Any]
    after: dict[str, Any] | None = None
    kind: str | None = None

    def changed(self) -> list[str]:
        """The fields the refused move left changed (empty when it changed nothing)."""
        if self.after is None:
            return []
        return sorted(k for k in self.before if self.before[k] != self.after.get(k))


@dataclass(eq=False)
class MoveWatch:
    """A run observer keeping the window of every refused move of the run it watches."""

    run: FlowRun[Any] | None = None
    open: list[Window] = field(default_factory=list)
    refused: list[Window] = field(default_factory=list)

    def on_transition_requested(self, run: FlowRun[Any], trigger: str, by: MovedBy) -> None:
        if run is self.run:
            self.open.append(Window(trigger, run.context.model_dump()))

    def on_refusal(self, run: FlowRun[Any], refusal: Refusal) -> None:
        if run is not self.run:
            return
        for i in range(len(self.open) - 1, -1, -1):
            window = self.open[i]
            if window.trigger == refusal.trigger:
                del self.open[i]
                window.after, window.kind = run.context.model_dump(), refusal.kind
                self.refused.append(window)
                return

    def on_transition(self, run: FlowRun[Any], record: TransitionRecord) -> None:
        if run is not self.run:
            return
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i].trigger == record.trigger:
                del self.open[i]
                return

    def problems(self, since: int, where: str) -> list[str]:
        """A line for each move refused since the ``since``-th refusal that left its own
        writes behind."""
        return [f"{where}: {w.trigger} was refused ({w.kind}) but left its own writes to "
                f"{w.changed()}" for w in self.refused[since:] if w.changed()]

    def watch(self, run: FlowRun[Any]) -> None:
        """Watch ``run``: it reports to this watch from now on (``run.observers``; another
        run of the same flow never does)."""
        self.run = run
        attach(run, self)

    def stop(self) -> None:
        if self.run is not None:
            detach(self.run, self)
        self.run = None
