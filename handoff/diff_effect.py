"""``handoff diff`` decided by effect: the old version's checkpoints resumed by the new flow.

:func:`handoff.inflight.assess` reads two snapshots. When the new version is a Flow
loaded here (the working tree), :func:`check_by_resuming` builds representative
checkpoints of the old version — one in every old state with every Context field at a
boundary value, then each field through each of its boundary values
(:meth:`~handoff.versions.FieldSpec.samples`) — and resumes each with
:func:`~handoff.persistence.fit.plan_resume`, the decision a worker makes (the new
version's migrations included). The verdicts follow what happened:

- a retyped field whose every value resumes unchanged is *safe* (``int`` → ``float``,
  a ``Literal`` that gains a value, ``int`` → ``int | str``), whatever its schema says;
  one with a value that is dropped or changed *needs a migration*, with that value;
- a state whose calls resume elsewhere, or lose a field, *needs a migration*, even where
  the names looked unchanged; one the new version's migrations carry is covered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .inflight import Impact, InFlight
from .persistence.checkpoint import Checkpoint
from .persistence.fit import plan_resume

if TYPE_CHECKING:
    from .flow import Flow
    from .versions import FieldSpec


MAX_CHECKPOINTS = 5000
"""About how many checkpoints are resumed: past it, the remaining states get only the
checkpoint with every field at its first boundary value."""


@dataclass
class ResumeCheck:
    """What resuming the representative checkpoints did."""

    checkpoints: int = 0
    lost_state: dict[str, str] = field(default_factory=dict)
    """old state → where its calls resumed instead (or why they could not)."""
    dropped: dict[str, Any] = field(default_factory=dict)
    """field → a value of it that was dropped or changed."""
    migrated: set[str] = field(default_factory=set)
    """old states whose checkpoints the new version's migrations carried."""
    unrestorable: str | None = None
    """Why no checkpoint of the old version can be restored at all (a new required field)."""

    def summary(self) -> str:
        losing = len(self.lost_state) + len(self.dropped)
        return (f"resumed {self.checkpoints} representative checkpoint(s) of the old version "
                "(every state, every field at its boundary values) with the new flow: "
                + (f"{len(self.lost_state)} state(s) and {len(self.dropped)} field(s) lose "
                   "something" if losing else "none loses its state or a value"))


def representative(old_fields: Iterable[FieldSpec]) -> list[dict[str, Any]]:
    """Contexts of the old version: every field at its first boundary value, then each
    field through each of its values (the others at their first)."""
    fields = list(old_fields)
    base = {f.name: f.samples()[0] for f in fields if f.samples()}
    out = [base]
    for spec in fields:
        out += [{**base, spec.name: value} for value in spec.samples()[1:]]
    return out


def check_by_resuming(in_flight: InFlight, new_flow: Flow[Any]) -> ResumeCheck:
    """Resume representative checkpoints of ``in_flight.old`` with ``new_flow``, and set
    the verdicts of ``in_flight`` by what happened."""
    old = in_flight.old
    check = ResumeCheck()
    contexts = representative(old.context)
    every_value_in = max(1, MAX_CHECKPOINTS // len(contexts))  # states, then the base only
    for index, state in enumerate(s.name for s in old.states):
        for values in contexts if index < every_value_in else contexts[:1]:
            check.checkpoints += 1
            checkpoint = Checkpoint(call_id="diff", flow=new_flow.name,
                                    flow_version=old.version, state=state, seq=1,
                                    context=json.loads(json.dumps(values)))
            try:
                plan = plan_resume(new_flow, checkpoint)
            except Exception as exc:  # the new Context cannot be made from it at all
                check.unrestorable = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                continue
            if plan.upgraded.migrated:
                check.migrated.add(state)
            if plan.lost_state:
                why = (f"migration failed: {plan.upgraded.error}" if plan.upgraded.error
                       else f"resumes in {plan.state}")
                check.lost_state.setdefault(state, why)
            for name in plan.dropped:
                check.dropped.setdefault(name, values.get(name))
            if plan.upgraded.migrated:
                continue  # a migration may convert values on purpose
            kept = json.loads(plan.context.model_dump_json())
            for name, value in values.items():
                if name in kept and name not in plan.dropped and kept[name] != value:
                    check.dropped.setdefault(name, value)
    _apply(in_flight, check)
    return check


def _apply(in_flight: InFlight, check: ResumeCheck) -> None:
    impacts: list[Impact] = []
    for impact in in_flight.impacts:
        name = _field_name(impact)
        if name is not None and impact.change.startswith("type:"):
            if (name not in check.dropped and impact.verdict == "needs-migration"
                    and impact.covered_by is None):  # (a declared conversion stays one)
                impact = replace(impact, verdict="safe", fix="", covered_by=None,
                                 why="every boundary value of it resumes unchanged")
                in_flight.suggestion.values.pop(name, None)
                in_flight.suggestion.notes[:] = [
                    n for n in in_flight.suggestion.notes if not n.startswith(f'values["{name}"]')]
            elif name in check.dropped and impact.verdict == "safe":
                value = json.dumps(check.dropped[name])[:40]
                impact = replace(impact, verdict="needs-migration",
                                 why=f"a value it held does not resume as it was: {value}")
        impacts.append(impact)
    if check.unrestorable is not None:
        if not any(_field_name(i) and i.verdict == "needs-migration" for i in impacts):
            impacts.append(Impact("needs-migration", "Context", "cannot be restored",
                                  f"no checkpoint of the old version restores: "
                                  f"{check.unrestorable}"))
        in_flight.states.update(dict.fromkeys(in_flight.states, "needs-migration"))
    for state, why in sorted(check.lost_state.items()):
        if in_flight.states.get(state) != "needs-migration":
            impacts.append(Impact("needs-migration", f"state `{state}`", "resumed elsewhere",
                                  f"a checkpoint in {state} does not resume there: {why}",
                                  state=state))
        in_flight.states[state] = "needs-migration"
    in_flight.impacts[:] = impacts
    fields = [i for i in impacts if _field_name(i) is not None]
    in_flight.context = "needs-migration" if check.unrestorable else max(
                            (i.verdict for i in fields),
                            key=("safe", "tightens", "needs-migration").index, default="safe")
    in_flight.resume_check = check.summary()


def _field_name(impact: Impact) -> str | None:
    if impact.element.startswith("field `") and impact.element.endswith("`"):
        return impact.element[len("field `"):-1]
    return None
