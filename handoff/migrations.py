"""Migrations: how a checkpoint of an older flow version becomes one of the current version.

A migration reads the checkpoint *document* of one version and returns the
document of the next one. Declare what moved, and write code only for what
cannot be declared::

    from handoff import Flow, Migration, migration

    @migration("2", "3", states={"Billing": ("Payments", "Refunds")},   # a split
               fields={"account_id": "account"},                       # a renamed field
               values={"amount": float})                               # a retyped one
    def split_billing(doc: dict) -> dict:
        if doc["state"] == "Billing":
            doc["state"] = "Refunds" if doc["context"].get("refund") else "Payments"
        return doc

    flow = Flow("callcenter", version="3", ...,
                migrations=[Migration("1", "2", states={"Billing": "Billing"}), split_billing])

The document is the checkpoint's JSON (see :mod:`handoff.persistence.checkpoint`)
with the *whole* Context under ``"context"`` (sensitive fields included, already
unsealed); a migration may change ``state``, ``context``, ``return_stack``, ``log``
and ``history``. One migration applies, in this order:

1. ``states``: old state name → new name. A tuple names the states a split may
   choose among: the state is left for the function to choose, and after it the
   call must be in one of them. A state in the return stack moves the same way.
2. ``fields``: old Context field → new name, or ``None`` to drop the field.
3. ``values``: field (its new name) → function of its old value giving the new one
   (``int``, ``float``, ``str``, or any callable); absent fields are left alone.
4. the function itself, if any: it may edit the document in place (return None)
   or return a new one.

Migrations chain: a Flow runs every migration from a checkpoint's version to its
own, one after another, on a copy (a migration that raises changes nothing).
When the Flow is built, the chain is checked: one migration per version it reads,
none from the current version, no gap and no loop on the way to the current
version, and every state a migration moves calls to exists at the end of the
chain; each problem is a :class:`~handoff.errors.Finding` naming the fix.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .errors import Finding, MigrationError

Document = dict[str, Any]
"""A checkpoint document with the whole Context under ``"context"``."""

StateTarget = str | tuple[str, ...]


@dataclass(frozen=True)
class Migration:
    """From checkpoint documents of version ``source`` to documents of version ``target``."""

    source: str
    target: str
    states: Mapping[str, StateTarget] = field(default_factory=dict)
    fields: Mapping[str, str | None] = field(default_factory=dict)
    values: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    function: Callable[[Document], Document | None] | None = None

    @property
    def name(self) -> str:
        """How findings and reports name it: the function's name, else ``SOURCE→TARGET``."""
        if self.function is not None:
            return getattr(self.function, "__name__", repr(self.function))
        return f"{self.source}→{self.target}"

    def targets(self, state: str) -> tuple[str, ...]:
        """The states a call in ``state`` may be in after this migration."""
        target = self.states.get(state, state)
        return target if isinstance(target, tuple) else (target,)

    def __call__(self, doc: Document) -> Document:
        """Apply this migration to ``doc`` (edited in place, and returned)."""
        before = doc.get("state")
        doc["state"] = self._moved(before)
        doc["return_stack"] = [self._moved(s) for s in doc.get("return_stack") or []]
        for entry in doc.get("log") or []:
            for end in ("source", "target"):
                if isinstance(self.states.get(entry.get(end)), str):
                    entry[end] = self.states[entry[end]]
        context = doc.setdefault("context", {})
        renamed = {}
        for name, value in context.items():
            new = self.fields.get(name, name)
            if new is not None:
                renamed[new] = value
        for name, convert in self.values.items():
            if name in renamed:
                renamed[name] = convert(renamed[name])
        doc["context"] = renamed
        if self.function is not None:
            result = self.function(doc)
            doc = doc if result is None else result
        if not isinstance(doc, dict):
            raise MigrationError(f"migration {self.name} returned a {type(doc).__name__}, "
                                 "not the checkpoint document", migration=self.name)
        allowed = self.targets(before) if isinstance(before, str) else ()
        if isinstance(before, str) and doc.get("state") not in allowed:
            raise MigrationError(
                f"migration {self.name} left a call of state {before!r} in "
                f"{doc.get('state')!r}; it declares {' or '.join(map(repr, allowed))}",
                migration=self.name)
        doc.setdefault("flow", {})["version"] = self.target
        return doc

    def _moved(self, state: Any) -> Any:
        target = self.states.get(state) if isinstance(state, str) else None
        return target if isinstance(target, str) else state


def migration(
    source: str,
    target: str,
    *,
    states: Mapping[str, StateTarget] | None = None,
    fields: Mapping[str, str | None] | None = None,
    values: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Callable[[Callable[[Document], Document | None]], Migration]:
    """Decorate a plain function ``doc -> doc`` as the migration from ``source`` to ``target``."""

    def wrap(function: Callable[[Document], Document | None]) -> Migration:
        return Migration(source, target, dict(states or {}), dict(fields or {}),
                         dict(values or {}), function)

    return wrap


# -- the chain ---------------------------------------------------------------------------
class Step(Protocol):
    """What a chain is made of: a Migration, or its snapshot (``handoff diff``)."""

    @property
    def source(self) -> str: ...

    @property
    def target(self) -> str: ...


S = TypeVar("S", bound=Step)


def chain(migrations: Sequence[S], source: str, target: str) -> list[S] | None:
    """The migrations from ``source`` to ``target`` in order; None when there is no way."""
    by_source = {m.source: m for m in migrations}
    steps: list[S] = []
    version = source
    while version != target:
        step = by_source.get(version)
        if step is None or step in steps:
            return None
        steps.append(step)
        version = step.target
    return steps


def migrate(doc: Document, steps: Sequence[Migration]) -> Document:
    """``doc`` taken through ``steps``, on a deep copy: ``doc`` itself is never changed.

    Any exception of a step becomes a :class:`MigrationError` naming it.
    """
    out = copy.deepcopy(doc)
    for step in steps:
        try:
            out = step(out)
        except MigrationError:
            raise
        except Exception as exc:
            # the exception's own text may quote a Context value (a pii one): name where
            # it was raised instead; the exception stays chained for a debugger
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
            raise MigrationError(f"migration {step.name} ({step.source}→{step.target}) raised "
                                 f"{type(exc).__name__} at {where}", migration=step.name) from exc
    return out


def chain_findings(migrations: Sequence[Any], version: str, states: Sequence[str],
                   context_fields: Sequence[str], *, derived_version: bool = False) -> list[Finding]:
    """What is wrong with a flow's migrations; the Flow constructor raises on any."""
    out: list[Finding] = []
    valid: list[Migration] = []
    for index, item in enumerate(migrations):
        if isinstance(item, Migration):
            valid.append(item)
        else:
            out.append(Finding(
                "error", "not-a-migration",
                f"migrations[{index}] is a {type(item).__name__}, not a Migration",
                "decorate the function with @migration(FROM_VERSION, TO_VERSION) or write "
                "Migration(FROM_VERSION, TO_VERSION, states={...}, fields={...})"))
    seen: dict[str, Migration] = {}
    for m in valid:
        if m.source in seen:
            out.append(Finding("error", "duplicate-migration",
                               f"migrations {seen[m.source].name} and {m.name} both read "
                               f"version {m.source!r}",
                               "keep one migration per version it reads; chain the other "
                               "after it", trigger=m.name))
        seen.setdefault(m.source, m)
        if m.source == version:
            out.append(Finding("error", "migration-from-current",
                               f"migration {m.name} reads version {m.source!r}, the flow's "
                               "own version",
                               "a migration goes from an older version to the flow's version: "
                               f"set its target to {version!r} and its source to the version "
                               "before", trigger=m.name))
    fix_version = (f" (the flow's version {version!r} is derived from its definition: give "
                   "Flow an explicit version= so migrations can name it)" if derived_version
                   else "")
    loops: set[frozenset[str]] = set()
    for m in seen.values():
        if m.source == version:
            continue
        path = [m]
        step = m
        while step.target != version:
            nxt = seen.get(step.target)
            if nxt is None:
                out.append(Finding(
                    "error", "migration-gap",
                    f"calls saved by version {m.source!r} reach version {step.target!r} "
                    f"(after {step.name}) and no migration reads it",
                    f"add a migration from {step.target!r} to {version!r}, or set "
                    f"{step.name}'s target to {version!r}{fix_version}", trigger=m.name))
                break
            if nxt in path:
                cycle = frozenset(p.source for p in path[path.index(nxt):])
                if cycle in loops:
                    break
                loops.add(cycle)
                out.append(Finding("error", "migration-loop",
                                   f"the migrations from version {m.source!r} go round in a loop "
                                   f"({' → '.join(p.source for p in path)} → {nxt.source})",
                                   f"make the chain end at the flow's version {version!r}",
                                   trigger=m.name))
                break
            path.append(nxt)
            step = nxt
        else:
            out.extend(_unknown_states(path, set(states)))
            out.extend(_unknown_fields(path[-1], set(context_fields)))
    return _unique(out)


def _unknown_states(path: list[Migration], states: set[str]) -> list[Finding]:
    """Findings for states the chain ``path`` moves calls to that the flow does not have."""
    out = []
    for index, m in enumerate(path):
        for old, declared in m.states.items():
            ends = set(declared if isinstance(declared, tuple) else (declared,))
            for later in path[index + 1:]:
                ends = {t for e in ends for t in later.targets(e)}
            for end in sorted(ends - states):
                out.append(Finding(
                    "error", "migration-unknown-state",
                    f"migration {m.name} moves calls in {old!r} to {end!r}, which the flow "
                    "does not have" + ("" if index == len(path) - 1 else
                                       " at the end of the chain"),
                    f"move them to one of the flow's states ({', '.join(sorted(states))})",
                    state=end, trigger=m.name))
    return out


def _unknown_fields(last: Migration, fields: set[str]) -> list[Finding]:
    out = []
    for old, new in last.fields.items():
        if new is not None and new not in fields:
            out.append(Finding("error", "migration-unknown-field",
                               f"migration {last.name} renames field {old!r} to {new!r}, which "
                               "the Context does not have",
                               f"rename it to one of {', '.join(sorted(fields))}, or to None "
                               "to drop it", trigger=last.name))
    for name in last.values:
        if name not in fields:
            out.append(Finding("error", "migration-unknown-field",
                               f"migration {last.name} converts field {name!r}, which the "
                               "Context does not have",
                               "name the field as the Context calls it now (after `fields=` "
                               f"renames): one of {', '.join(sorted(fields))}",
                               trigger=last.name))
    return out


def _unique(findings: list[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))
