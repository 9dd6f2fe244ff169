"""What a change of a flow does to the calls in flight: safe, tightens, or needs a migration.

``handoff diff`` lists what changed; this module judges each change for a call
that was checkpointed by the old version and is resumed by the new one:

- **safe**: the call resumes as it is (a prompt, a tier, a new state, a new
  transition, a guard removed, a new Context field with a default, a field whose
  type now accepts more);
- **tightens**: the call resumes, but may be stranded: a transition it could take
  is gone, or a guard may now refuse what it allowed;
- **needs a migration**: the call cannot resume where it was without one: its
  state (or a state it would return to) is gone or renamed, a Context field is gone,
  renamed, retyped to something narrower, or new and required.

For each needed migration the assessment says what to write (``states=``,
``fields=``, ``values=`` of a :class:`~handoff.migrations.Migration`), and whether the
new version's declared migrations already cover it. Everything here reads two
:class:`~handoff.snapshot.FlowSnap`\\ s, so either side may come from a git revision.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .diagram_diff import FlowDiff
from .guard_effect import GuardChange, compare_guards
from .migrations import chain as migration_chain
from .snapshot import EdgeSnap, FlowSnap, MigrationSnap, StateSnap
from .versions import FieldSpec

Verdict = Literal["safe", "tightens", "needs-migration"]
_RANK: dict[Verdict, int] = {"safe": 0, "tightens": 1, "needs-migration": 2}
MARKS: dict[Verdict, str] = {"safe": "🟢 safe", "tightens": "🟠 tightens",
                             "needs-migration": "🔴 needs a migration"}
_SIMPLE_TYPES = {"int", "float", "str", "bool"}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    return max(verdicts, key=_RANK.__getitem__, default="safe")


@dataclass(frozen=True)
class Impact:
    """One change and what it does to calls in flight."""

    verdict: Verdict
    element: str
    """What changed, for people: ``state `Billing```, ``field `age```…"""
    change: str
    why: str
    """What happens to a call in flight because of it."""
    fix: str = ""
    """The migration entry that handles it, e.g. ``states={"Billing": "Payments"}``."""
    covered_by: str | None = None
    """The new version's migration that already handles it."""
    state: str | None = None
    """The old state whose calls it concerns (None: every call)."""

    @property
    def breaking(self) -> bool:
        """A call in flight breaks: a migration is needed and none is declared."""
        return self.verdict == "needs-migration" and self.covered_by is None


@dataclass
class Suggestion:
    """The migration still to write, as its declared parts."""

    states: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str | None] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    """Field → converter, as source text (a Python expression)."""
    notes: list[str] = field(default_factory=list)
    """What the person writing the migration must fill in (printed as comments)."""
    sets: dict[str, str] = field(default_factory=dict)
    """New required fields → their type: the function must give them a value."""

    def __bool__(self) -> bool:
        return bool(self.states or self.fields or self.values or self.sets)


@dataclass
class InFlight:
    """The assessment of one flow change for calls in flight."""

    old: FlowSnap
    new: FlowSnap
    impacts: list[Impact]
    states: dict[str, Verdict]
    """Each old state: what the change does to a call in it (its Context aside)."""
    context: Verdict
    """What the Context changes do to every call."""
    chain: list[MigrationSnap] | None
    """The new version's migrations from the old version, if it declares a way."""
    suggestion: Suggestion
    resume_check: str | None = None
    """What resuming representative checkpoints with the new flow showed, when it was run
    (:func:`handoff.diff_effect.check_by_resuming`)."""

    @property
    def bump(self) -> str | None:
        """The version to give the new flow when a migration is needed and both sides have
        the same version (a migration cannot start at the version it ends at)."""
        if self.old.version != self.new.version or not (self.suggestion or self.breaking):
            return None
        return next_version(self.old.version)

    @property
    def breaking(self) -> list[Impact]:
        return [i for i in self.impacts if i.breaking]

    def counts(self) -> dict[Verdict, int]:
        out: dict[Verdict, int] = dict.fromkeys(_RANK, 0)
        for impact in self.impacts:
            out[impact.verdict] += 1
        return out

    def call_verdict(self, state: str, return_stack: Sequence[str] = ()) -> Verdict:
        """What the change does to a call checkpointed in ``state`` with ``return_stack``."""
        back: list[Verdict] = [
            "needs-migration" if self.new.state(s) is None else "safe" for s in return_stack]
        return worst([self.states.get(state, "needs-migration"), self.context, *back])

    def migration_code(self) -> str:
        """Python for the migration still to write ("" when none is needed)."""
        s = self.suggestion
        if not s:
            return ""
        target = self.bump or self.new.version
        comments = "".join(f"# {note}\n" for note in s.notes)
        if self.bump is not None:
            comments = (f"# first bump the flow's version: Flow(..., version={json.dumps(target)})"
                        "\n" + comments)
        parts = []
        if s.states:
            parts.append(f"states={_dict_text(s.states)}")
        if s.fields:
            parts.append(f"fields={_dict_text(s.fields)}")
        if s.values:
            parts.append("values={" + ", ".join(f"{json.dumps(k)}: {v}"
                                               for k, v in s.values.items()) + "}")
        head = f"{json.dumps(self.old.version)}, {json.dumps(target)}"
        if not s.sets:
            indent = "\n" + " " * len("Migration(")
            return comments + f"Migration({head}," + indent + ("," + indent).join(parts) + ")\n"
        indent = "\n" + " " * len("@migration(")
        name = _identifier(f"v{self.old.version}_to_v{target}")
        lines = [f"@migration({head}" + "".join("," + indent + p for p in parts) + ")",
                 f"def {name}(doc: dict) -> dict:"]
        for field_name, kind in s.sets.items():
            lines.append(f"    doc[\"context\"][{json.dumps(field_name)}] = ...  "
                         f"# {kind}: new and required; give calls in flight a value")
        lines.append("    return doc")
        return comments + "\n".join(lines) + "\n"


def assess(diff: FlowDiff) -> InFlight:
    """Judge every change of ``diff`` for the calls the old version checkpointed."""
    old, new = diff.old, diff.new
    chain = migration_chain(new.migrations, old.version, new.version) or None
    view = _ChainView(chain)
    suggestion = Suggestion()
    impacts: list[Impact] = []
    states: dict[str, Verdict] = {s.name: "safe" for s in old.states}

    for name, element in diff.states.items():
        if element.status == "added":
            impacts.append(Impact("safe", f"state `{name}`", "added",
                                  "no call is in it yet"))
        elif element.status == "removed":
            target, how = _replacement(old, new, name)
            covered = view.state_cover(name, new)
            impacts.append(Impact(
                "needs-migration", f"state `{name}`", "removed",
                f"calls in {name}, or returning to it, cannot resume there; {how}",
                f"states={_dict_text({name: target})}", covered, state=name))
            states[name] = "needs-migration"
            if covered is None:
                suggestion.states[name] = target
        elif element.status == "changed":
            impacts.append(Impact("safe", f"state `{name}`", "; ".join(element.details),
                                  "calls in it go on with the new definition", state=name))

    for key, element in diff.edges.items():
        edge = diff.edge(key)
        where = f"{edge.source or 'any state'}.{edge.trigger}"
        source_kept = edge.source is None or new.state(edge.source) is not None
        if element.status == "removed" and source_kept:
            impacts.append(Impact("tightens", f"transition `{where}`", "removed",
                                  f"calls in {edge.source or 'any state'} can no longer "
                                  f"take {edge.trigger} to {edge.target}", state=edge.source))
        elif element.status == "changed":
            before, after = _old_edge(old, key), edge
            guard_change = next((d for d in element.details if d.startswith("guard")), None)
            if guard_change is not None:
                impacts.append(_guard_impact(before, after, where, guard_change, old, new))
            else:
                impacts.append(Impact("safe", f"transition `{where}`",
                                      "; ".join(element.details),
                                      "calls take the new definition from their next move",
                                      state=edge.source))
        elif element.status == "added":
            impacts.append(Impact("safe", f"transition `{where}`", "added",
                                  "a new way out for calls in its state", state=edge.source))
    for impact in impacts:
        if impact.verdict == "tightens":
            sources = list(states) if impact.state is None else [impact.state]
            for source in sources:
                if states.get(source) == "safe":
                    states[source] = "tightens"
    if diff.initial_changed:
        impacts.append(Impact("safe", "initial state", f"{old.initial} → {new.initial}",
                              "only new calls start there"))

    field_impacts = list(_field_impacts(old, new, view, suggestion))
    impacts.extend(field_impacts)
    return InFlight(old, new, impacts, states, worst(i.verdict for i in field_impacts),
                    chain, suggestion)


def _guard_impact(before: EdgeSnap, after: EdgeSnap, where: str, change: str, old: FlowSnap,
                  new: FlowSnap) -> Impact:
    """A changed guard judged by running both versions on the same contexts."""
    element = f"transition `{where}`"
    states = f"calls in {after.source}" if after.source else "calls in every state"
    unknown = [g for g, code in ((before.guard, before.guard_code), (after.guard, after.guard_code))
               if g is not None and code is None]
    fields = [*old.context, *(f for f in new.context if old.context_field(f.name) is None)]
    result = (GuardChange(None, why="its code is not known") if unknown
              else compare_guards(before.guard_code, after.guard_code, fields))
    if result.direction == "same":
        return Impact("safe", element, change, f"same answers on every context tried: {states} "
                      "move as before", state=after.source)
    if result.direction == "loosens":
        return Impact("safe", element, f"{change} (loosens)",
                      f"it now allows what it refused, e.g. {_example(result.allowed_now)}; "
                      f"{states} keep every move they had", state=after.source)
    if result.direction is None:
        return Impact("tightens", element, change, f"cannot run the guards here ({result.why}): "
                      f"it may refuse {states} a move it let through before", state=after.source)
    also = (f"; it also allows what it refused, e.g. {_example(result.allowed_now)}"
            if result.direction == "both" else "")
    return Impact("tightens", element, f"{change} (tightens)",
                  f"it now refuses {states} a move it allowed, e.g. "
                  f"{_example(result.refused_now)}{also}", state=after.source)


def _example(values: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in sorted((values or {}).items())) or "()"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 24 else text[:21] + "…"


def _field_impacts(old: FlowSnap, new: FlowSnap, view: _ChainView,
                   suggestion: Suggestion) -> Iterable[Impact]:
    before = {f.name: f for f in old.context}
    after = {f.name: f for f in new.context}
    gone = [before[n] for n in sorted(before.keys() - after.keys())]
    added = [after[n] for n in sorted(after.keys() - before.keys())]
    renamed: dict[str, str] = {}
    for spec in gone:
        same = [a for a in added if a.schema == spec.schema and a.name not in renamed.values()]
        if len(same) == 1:
            renamed[spec.name] = same[0].name
    for spec in gone:
        target = renamed.get(spec.name)
        covered = view.field_cover(spec.name)
        if target is not None:
            yield Impact("needs-migration", f"field `{spec.name}`", f"renamed to `{target}`?",
                         f"the value of {spec.name} in calls in flight is lost unless moved "
                         f"to {target}", f"fields={_dict_text({spec.name: target})}", covered)
        else:
            yield Impact("needs-migration", f"field `{spec.name}`", "removed",
                         f"calls in flight hold a value of {spec.name} that no longer fits",
                         f"fields={_dict_text({spec.name: None})} (drop it)", covered)
        if covered is None:
            suggestion.fields[spec.name] = target
    for spec in added:
        if spec.name in renamed.values():
            continue
        if not spec.required:
            yield Impact("safe", f"field `{spec.name}`", f"added: {spec.type_text}",
                         "calls in flight get its default")
            continue
        covered = view.function_cover()
        yield Impact("needs-migration", f"field `{spec.name}`",
                     f"added, required: {spec.type_text}",
                     "calls in flight have no value for it",
                     "give it a default, or set it in the migration's function", covered)
        if covered is None:
            suggestion.sets[spec.name] = spec.type_text
    for name in sorted(before.keys() & after.keys()):
        a, b = before[name], after[name]
        if a.schema == b.schema:
            continue
        change = f"type: {a.type_text} → {b.type_text}"
        if b.accepts_every_value_of(a):
            yield Impact("safe", f"field `{name}`", change, "every value it held still fits")
            continue
        converter = _converter(a, b)
        covered = view.value_cover(name)
        yield Impact("needs-migration", f"field `{name}`", change,
                     "a value held by calls in flight may not fit the new type",
                     f"values={{{json.dumps(name)}: {converter}}}", covered)
        if covered is None:
            suggestion.values[name] = converter
            if converter.endswith("..."):
                suggestion.notes.append(f"values[{json.dumps(name)}]: write the conversion "
                                        f"from {a.type_text} to {b.type_text}")


# -- the new version's declared migrations ---------------------------------------------------
class _ChainView:
    """Which changes the declared chain from the old version handles."""

    def __init__(self, chain: list[MigrationSnap] | None) -> None:
        self.chain = chain or []

    def _names(self) -> str:
        return ", ".join(m.function or f"{m.source}→{m.target}" for m in self.chain)

    def state_cover(self, state: str, new: FlowSnap) -> str | None:
        ends, declared = {state}, False
        for step in self.chain:
            moved: set[str] = set()
            for end in ends:
                if end in step.states:
                    declared = True
                moved.update(step.states.get(end, (end,)))
            ends = moved
        if declared and all(new.state(e) is not None for e in ends):
            return self._names()
        return None

    def field_cover(self, name: str) -> str | None:
        if any(name in step.fields for step in self.chain):
            return self._names()
        return self.function_cover()

    def value_cover(self, name: str) -> str | None:
        if any(name in step.values for step in self.chain):
            return self._names()
        return self.function_cover()

    def function_cover(self) -> str | None:
        functions = [m.function for m in self.chain if m.function]
        return f"{', '.join(functions)} (a function: check it with --dry-run)" if functions else None


# -- guesses -----------------------------------------------------------------------------
def _replacement(old: FlowSnap, new: FlowSnap, gone: str) -> tuple[str, str]:
    """Where calls of a removed state should go, and how that was found."""
    new_edges = {e.key: e for e in new.edges}
    votes: dict[str, int] = {}
    for edge in old.edges:
        after = new_edges.get(edge.key)
        if edge.target == gone and after is not None and new.state(after.target) is not None:
            votes[after.target] = votes.get(after.target, 0) + 1
    if votes:
        target = max(sorted(votes), key=votes.__getitem__)
        return target, f"transitions that led to {gone} now lead to {target}"
    was = old.state(gone)
    added = [s for s in new.states if old.state(s.name) is None]
    alike = [s for s in added if was is not None and _alike(was, s)]
    if len(alike) == 1:
        return alike[0].name, f"{alike[0].name} has its prompt: a rename"
    if len(added) == 1 and len([s for s in old.states if new.state(s.name) is None]) == 1:
        return added[0].name, f"{added[0].name} is the one new state"
    fallback = new.resume_fallback or new.initial
    return fallback, f"no state replaces it: calls would resume in {fallback}"


def _alike(a: StateSnap, b: StateSnap) -> bool:
    return bool(a.prompt and a.prompt == b.prompt) or bool(a.doc and a.doc == b.doc)


def _old_edge(old: FlowSnap, key: tuple[str, str]) -> EdgeSnap:
    return next(e for e in old.edges if e.key == key)


def _converter(a: FieldSpec, b: FieldSpec) -> str:
    """Source text of a function from a value of ``a`` to one of ``b``."""
    target = b.type_text
    if target in _SIMPLE_TYPES:
        return target
    parts = [p.strip() for p in target.split("|")]
    if len(parts) == 2 and "None" in parts:
        inner = next(p for p in parts if p != "None")
        if inner in _SIMPLE_TYPES:
            return f"lambda v: None if v is None else {inner}(v)"
    return "lambda v: ..."


def next_version(version: str) -> str:
    """The version after ``version``: ``"3"`` → ``"4"``, ``"1.2"`` → ``"1.3"``, else ``"<v>.1"``."""
    head, dot, last = version.rpartition(".")
    if last.isdigit():
        return f"{head}{dot}{int(last) + 1}"
    return f"{version}.1"


def _dict_text(data: Mapping[str, str | None]) -> str:
    return "{" + ", ".join(f"{json.dumps(k)}: {'None' if v is None else json.dumps(v)}"
                           for k, v in data.items()) + "}"


def _identifier(text: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in text)
    return out if out[:1].isalpha() or out[:1] == "_" else f"_{out}"


def inflight_json(assessment: InFlight) -> dict[str, Any]:
    """The assessment as JSON-ready data (``handoff diff -f json``)."""
    return {
        "flow": assessment.new.name,
        "old_version": assessment.old.version,
        "new_version": assessment.new.version,
        "breaking": len(assessment.breaking),
        "counts": assessment.counts(),
        "states": assessment.states,
        "context": assessment.context,
        "impacts": [asdict(i) for i in assessment.impacts],
        "migration": assessment.migration_code(),
        "bump_version_to": assessment.bump,
        "resume_check": assessment.resume_check,
    }


# -- Markdown ----------------------------------------------------------------------------
def inflight_markdown(assessment: InFlight) -> str:
    """The section ``handoff diff`` adds to its PR table: every change judged for calls in
    flight, and the migration to write."""
    counts = assessment.counts()
    if not assessment.impacts:
        checked = (f" (checked by effect: {assessment.resume_check})"
                   if assessment.resume_check else "")
        return f"#### Calls in flight\n\nNothing changes for them{checked}.\n"
    summary = ", ".join(f"{n} {MARKS[v].split(' ', 1)[1]}" for v, n in counts.items() if n)
    rows = ["| verdict | change | calls in flight | migration |", "|---|---|---|---|"]
    order = sorted(assessment.impacts, key=lambda i: -_RANK[i.verdict])
    for impact in order:
        fix = ""
        if impact.verdict == "needs-migration":
            fix = (f"covered by {impact.covered_by}" if impact.covered_by
                   else f"`{_md(impact.fix)}`")
        rows.append(f"| {MARKS[impact.verdict]} | {_md(impact.element)} {_md(impact.change)} | "
                    f"{_md(impact.why)} | {fix} |")
    out = f"#### Calls in flight\n\n{summary}\n\n" + "\n".join(rows) + "\n"
    if assessment.resume_check:
        out += f"\nChecked by effect: {assessment.resume_check}.\n"
    code = assessment.migration_code()
    if assessment.bump is not None:
        out += (f"\nBoth sides are version {json.dumps(assessment.old.version)}: bump `version` "
                f"first (to {json.dumps(assessment.bump)}); a migration leads from the old "
                "version to a new one, and `Flow()` refuses one that starts at its own.\n")
    if code:
        where = ("add it to `migrations=[...]` of the new version" if assessment.chain is None
                 else "add these entries to the migrations that already lead there")
        out += (f"\nCalls in flight break without this migration ({where}):\n\n"
                f"```python\n{code}```\n")
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|")
