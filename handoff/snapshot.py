"""A Flow as plain data: what diagrams draw and what ``handoff diff`` compares.

A snapshot holds what a reviewer reads (names, docstrings, tiers, tools, guards,
targets) and what changes an agent's behaviour without showing on the picture
(prompts, history policies, transition docstrings and arguments), sorted so the
same flow always gives the same snapshot. It round-trips through JSON, which is
how a flow loaded from an older git revision, in a subprocess, reaches the
diagram code of the current one.

Like :mod:`handoff.guards` this module imports only the standard library (and
:mod:`handoff.versions`, which does too) and reads the Flow by duck typing: it
must work on the Flow of an older handoff.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .guards import guard_code
from .versions import FieldSpec, context_fields


@dataclass(frozen=True)
class StateSnap:
    name: str
    doc: str = ""
    tier: str = ""
    tools: tuple[str, ...] = ()
    history: str = ""
    prompt: str = ""
    tasks: tuple[str, ...] = ()
    """The LiveKit ``AgentTask`` classes the state's code awaits (``GetEmailTask``…)."""
    confirmed: tuple[str, ...] = ()
    """The tools among ``tools`` that ask the caller first (``@confirm``)."""


@dataclass(frozen=True)
class EdgeSnap:
    """One transition; ``source`` is None for a global transition (from every state)."""

    source: str | None
    trigger: str
    target: str
    guard: str | None = None
    doc: str = ""
    params: tuple[str, ...] = ()
    history: str | None = None
    returns: bool = False
    """A side trip: the state it leaves is where a later ``to=RETURN`` comes back to."""
    dynamic: bool = False
    """One candidate of ``to=[...]``: the body chooses this target or another at run time."""
    code_only: bool = False
    """Declared with ``llm=False``: never offered to the LLM, taken by ``run.go()``."""
    result: str | None = None
    """The type a side trip's ``to=RETURN`` edge returns (``Identity``), as written."""
    guard_code: str | None = None
    """The guard's code, normalised (:func:`handoff.guards.guard_code`): its body can
    change while its name stays."""
    back_to: tuple[str, ...] = ()
    """A ``to=RETURN`` edge whose body picks the frame to go back to: the frames it may pick."""
    abandons: bool = False
    """Taking it drops the task a side trip interrupted (the top frame of the return stack)."""
    confirm: str | None = None
    """The question the caller must say yes to before the body runs (``confirm=``)."""

    @property
    def key(self) -> tuple[str, str]:
        """What identifies an edge across versions: where it leaves from and its trigger
        (and, for a candidate of ``to=[...]``, its target)."""
        trigger = f"{self.trigger} → {self.target}" if self.dynamic else self.trigger
        return (self.source or "", trigger)


@dataclass(frozen=True)
class MigrationSnap:
    """What a migration declares (its function is only named: it runs, it is not read)."""

    source: str
    target: str
    states: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Old state → the states its calls may be in after it (one for a rename)."""
    fields: dict[str, str | None] = field(default_factory=dict)
    values: tuple[str, ...] = ()
    function: str | None = None


@dataclass(frozen=True)
class FlowSnap:
    name: str
    version: str
    initial: str
    final: tuple[str, ...]
    states: tuple[StateSnap, ...]
    edges: tuple[EdgeSnap, ...]
    meta: dict[str, str] = field(default_factory=dict, compare=False)
    context: tuple[FieldSpec, ...] = ()
    """The Context's fields (what a checkpoint of the flow holds)."""
    migrations: tuple[MigrationSnap, ...] = ()
    resume_fallback: str = ""

    def state(self, name: str) -> StateSnap | None:
        return next((s for s in self.states if s.name == name), None)

    def context_field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.context if f.name == name), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FlowSnap:
        data = json.loads(text)
        return cls(
            name=data["name"],
            version=data["version"],
            initial=data["initial"],
            final=tuple(data["final"]),
            states=tuple(
                StateSnap(**{**s, "tools": tuple(s["tools"]), "tasks": tuple(s.get("tasks", ())),
                             "confirmed": tuple(s.get("confirmed", ()))})
                for s in data["states"]
            ),
            edges=tuple(
                EdgeSnap(**{**e, "params": tuple(e["params"]),
                            "back_to": tuple(e.get("back_to", ()))}) for e in data["edges"]
            ),
            meta=dict(data.get("meta", {})),
            context=tuple(FieldSpec(**f) for f in data.get("context", ())),
            migrations=tuple(
                MigrationSnap(**{**m, "states": {k: tuple(v) for k, v in m["states"].items()},
                                 "values": tuple(m["values"])})
                for m in data.get("migrations", ())
            ),
            resume_fallback=str(data.get("resume_fallback") or data["initial"]),
        )


def snapshot(flow: Any) -> FlowSnap:
    """The snapshot of a built Flow (of this handoff or an older one)."""
    states = []
    for name, cls in flow.states.items():
        one_line = getattr(cls, "one_line", None)
        tools = getattr(cls, "tool_names", None)
        tasks = getattr(cls, "awaited_tasks", None)
        confirmed = getattr(cls, "confirmed_tools", None)
        states.append(StateSnap(
            name=name,
            doc=one_line() if callable(one_line) else "",
            tier=str(getattr(cls, "tier", "")),
            tools=tuple(sorted(tools())) if callable(tools) else (),
            confirmed=tuple(sorted(confirmed())) if callable(confirmed) else (),
            history=str(getattr(cls, "history", "")),
            prompt=str(getattr(cls, "prompt", "")),
            tasks=tuple(tasks()) if callable(tasks) else (),
        ))
    edges = []
    for edge in flow.edges:
        tdef = edge.transition
        history = getattr(tdef, "history", None)
        edges.append(EdgeSnap(
            source=edge.source,
            trigger=edge.trigger,
            target=edge.target,
            guard=tdef.guard_text(),
            guard_code=guard_code(getattr(tdef, "when", None)),
            doc=str(getattr(tdef, "doc", "")),
            params=tuple(_param_text(p) for p in getattr(tdef, "params", ())),
            history=None if history is None else _history_text(history),
            returns=bool(getattr(tdef, "returns", False)),
            dynamic=bool(getattr(tdef, "dynamic", False)),
            code_only=not getattr(tdef, "offered", True),
            result=(str(tdef.result_name) if getattr(tdef, "result_type", None) is not None
                    else None),
            back_to=tuple(getattr(tdef, "frames", ())),
            abandons=bool(getattr(tdef, "abandons", False)),
            confirm=(approval.question if (approval := getattr(tdef, "approval", None))
                     else None),
        ))
    return FlowSnap(
        name=str(flow.name),
        version=str(getattr(flow, "version", "")),
        initial=str(flow.initial),
        final=tuple(sorted(flow.final)),
        states=tuple(sorted(states, key=lambda s: s.name)),
        edges=tuple(sorted(edges, key=lambda e: (e.source is None, e.key))),
        context=_context(flow),
        migrations=tuple(_migration(m) for m in getattr(flow, "migrations", ())),
        resume_fallback=str(getattr(flow, "resume_fallback", flow.initial)),
    )


def _context(flow: Any) -> tuple[FieldSpec, ...]:
    model = getattr(flow, "context_type", None)
    return context_fields(model) if hasattr(model, "model_json_schema") else ()


def _migration(m: Any) -> MigrationSnap:
    function = getattr(m, "function", None)
    return MigrationSnap(
        source=str(m.source),
        target=str(m.target),
        states={str(k): tuple(v) if isinstance(v, tuple) else (str(v),)
                for k, v in dict(m.states).items()},
        fields={str(k): v for k, v in dict(m.fields).items()},
        values=tuple(sorted(m.values)),
        function=None if function is None else str(getattr(function, "__name__", function)),
    )


def _param_text(param: Any) -> str:
    annotation = getattr(param, "annotation", None)
    if annotation is None or annotation is getattr(param, "empty", object()):
        return str(param.name)
    kind = getattr(annotation, "__name__", None) or str(annotation)
    return f"{param.name}: {kind}"


def _history_text(policy: Any) -> str:
    kind = getattr(policy, "kind", None)
    if kind is None:
        return str(policy)
    count = getattr(policy, "count", 0)
    return f"{kind}:{count}" if kind == "last" else str(kind)
