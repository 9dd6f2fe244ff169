"""Findings about a Flow's definition: what is wrong, where, and how to fix it.

Errors make ``Flow(...)`` raise :class:`~handoff.errors.FlowDefinitionError`.
Every check is linear in states + transitions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .history import HistoryPolicy

if TYPE_CHECKING:
    from .flow import Flow

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str
    message: str
    hint: str
    state: str | None = None
    trigger: str | None = None

    def __str__(self) -> str:
        where = self.state or "flow"
        if self.trigger:
            where += f".{self.trigger}"
        return f"{self.severity} [{self.code}] {where}: {self.message} — fix: {self.hint}"


def definition_errors(flow: Flow[Any]) -> list[Finding]:
    """The findings that make a Flow unusable; the Flow constructor raises on any."""
    out: list[Finding] = []
    names = Counter(cls.state_name() for cls in flow.state_classes)
    for name, count in names.items():
        if count > 1:
            out.append(Finding("error", "duplicate-state", f"state {name!r} is declared {count} times",
                               "give each State class a distinct name (class name or `name = ...`)",
                               state=name))
    if not flow.state_classes:
        out.append(Finding("error", "no-states", "the flow has no states", "pass states=[...]"))
    if flow.initial not in flow.states:
        out.append(Finding("error", "no-initial", f"initial state {flow.initial!r} is not among the states",
                           f"add {flow.initial} to states=[...] or pick a declared initial state"))
    for final in sorted(flow.final - set(flow.states)):
        out.append(Finding("error", "unknown-final", f"final state {final!r} is not among the states",
                           f"add {final} to states=[...] or remove it from final=[...]", state=final))
    for name, cls in flow.states.items():
        if cls.tier not in flow.tiers:
            out.append(Finding("error", "unknown-tier",
                               f"tier {cls.tier!r} is not declared ({flow.tiers.source})",
                               f"use one of {flow.tiers.names()} or declare [tool.handoff.tiers.{cls.tier}]",
                               state=name))
        try:
            HistoryPolicy.parse(cls.history)
        except ValueError as exc:
            out.append(Finding("error", "bad-history", str(exc), "use 'full', 'last:N' or 'none'",
                               state=name))

    per_source: Counter[tuple[str | None, str]] = Counter()
    global_triggers = {e.trigger for e in flow.edges if e.is_global}
    for edge in flow.edges:
        where = edge.source or "global"
        per_source[(edge.source, edge.trigger)] += 1
        if edge.target not in flow.states and not edge.is_return:
            out.append(Finding("error", "unknown-target",
                               f"transition goes to unknown state {edge.target!r}",
                               f"add a State named {edge.target} to the flow or fix `to=`",
                               state=where, trigger=edge.trigger))
        if not edge.transition.doc.strip():
            out.append(Finding("error", "no-docstring",
                               "transition has no docstring; the LLM would not know when to call it",
                               "write a docstring saying when to call it", state=where,
                               trigger=edge.trigger))
        if edge.source is not None and edge.trigger in global_triggers:
            out.append(Finding("error", "duplicate-trigger",
                               f"trigger {edge.trigger!r} is also a global transition",
                               "rename one of them", state=where, trigger=edge.trigger))
    triggers = {e.trigger for e in flow.edges}
    error_transitions = [(None, flow.failure_policy.error_transition)] + [
        (name, cls.error_transition) for name, cls in flow.states.items()
    ]
    for state, trigger in error_transitions:
        if trigger is not None and trigger not in triggers:
            out.append(Finding("error", "unknown-error-transition",
                               f"error transition {trigger!r} is not a declared trigger",
                               "name a declared (usually global) transition, e.g. escalate_to_human",
                               state=state))
    for (source, trigger), count in per_source.items():
        if count > 1:
            out.append(Finding("error", "duplicate-trigger",
                               f"trigger {trigger!r} is declared {count} times",
                               "rename one of them", state=source or "global", trigger=trigger))
    return out
