"""Findings about a Flow's definition: what is wrong, where, and how to fix it.

Errors make ``Flow(...)`` raise :class:`~handoff.errors.FlowDefinitionError`:
unknown target, duplicate state or trigger, transition without docstring, unknown
tier, no initial state (and a few more: unknown final state, bad history policy,
unknown error transition, a side trip's result type pydantic cannot check,
``bad-result-type``, a guard that takes an argument the transition does not have,
``guard-parameter``).

Warnings come from :func:`check` (``handoff check``), and count as errors with
``strict=True``: a state the initial state cannot reach (``unreachable``), a
non-final state with no transition to another state (``dead-end``), a state from
which no final state can be reached (``no-path-to-final``), a flow without final
states (``no-final``), a guard or refusal reading a field the Context does not have
(``unknown-context-field``), a transition argument without a type
(``untyped-argument``), a ``to=RETURN`` transition although no transition starts
a side trip with ``returns=True`` (``return-without-side-trip``).

Every check is linear in states + transitions: the graph checks are one BFS over
the flow's transitions from the initial state and one over their reverse from the
finals. A ``to=RETURN`` transition counts as a way out, towards every state a side
trip can start from; it never makes a new state reachable (it only goes back).
"""

from __future__ import annotations

import difflib
import re
import typing
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, get_args

from pydantic import TypeAdapter, ValidationError

from .context import Context
from .errors import Finding, Severity
from .failures import FailurePolicy
from .graph import ANY, BACK, Edge, Graph, predecessors, reach, successors
from .guards import context_fields
from .history import POLICIES, HistoryPolicy
from .realtime import realtime_findings
from .state import State
from .tiers import Tiers
from .transition import RETURN

__all__ = ["Definition", "Finding", "Severity", "check", "definition_errors"]


class Definition(Graph, Protocol):
    """What validation reads of a :class:`~handoff.flow.Flow` (a Flow is one)."""

    @property
    def state_classes(self) -> Sequence[type[State[Any]]]: ...

    @property
    def initial(self) -> str: ...

    @property
    def final(self) -> frozenset[str]: ...

    @property
    def resume_fallback(self) -> str: ...

    @property
    def tiers(self) -> Tiers: ...

    @property
    def failure_policy(self) -> FailurePolicy: ...

    @property
    def context_type(self) -> type[Context]: ...


def definition_errors(flow: Definition) -> list[Finding]:
    """The findings that make a Flow unusable; the Flow constructor raises on any."""
    out: list[Finding] = []
    names = Counter(cls.state_name() for cls in flow.state_classes)
    for name, count in names.items():
        if count > 1:
            out.append(Finding("error", "duplicate-state",
                               f"state {name!r} is declared {count} times",
                               "give each State class a distinct name (class name or `name = ...`)",
                               state=name))
    if not flow.state_classes:
        out.append(Finding("error", "no-states", "the flow has no states", "pass states=[...]"))
    if flow.initial not in flow.states:
        out.append(Finding("error", "no-initial",
                           f"initial state {flow.initial!r} is not among the states",
                           f"add {flow.initial} to states=[...] or pick a declared initial state"))
    if flow.resume_fallback != flow.initial and flow.resume_fallback not in flow.states:
        out.append(Finding("error", "unknown-resume-fallback",
                           f"resume fallback {flow.resume_fallback!r} is not among the states",
                           "name a declared state (or leave it to the initial state)"))
    for final in sorted(flow.final - set(flow.states)):
        out.append(Finding("error", "unknown-final",
                           f"final state {final!r} is not among the states",
                           f"add {final} to states=[...] or remove it from final=[...]",
                           state=final))
    for name, cls in flow.states.items():
        if cls.tier not in flow.tiers:
            out.append(Finding("error", "unknown-tier",
                               f"tier {cls.tier!r} is not declared ({flow.tiers.source})",
                               f"use one of {flow.tiers.names()} or declare "
                               f"[tool.handoff.tiers.{cls.tier}]",
                               state=name))
        out.extend(_option_findings(name, cls))
        if (problem := cls.init_problem()) is not None:
            out.append(Finding("error", "init-signature", problem,
                               "take no arguments of your own: def __init__(self) -> None: "
                               "super().__init__(instructions=..., tools=[...])", state=name))
        clashes = _tool_clashes(flow, name, cls)
        if clashes:
            out.append(Finding("error", "duplicate-tool",
                               f"tool name(s) {', '.join(clashes)} used twice in this state "
                               "(its tools, its transitions, the flow's tools)",
                               "rename one of them (function_tool(name=...))", state=name))
        try:
            HistoryPolicy.parse(cls.history)
        except ValueError:
            out.append(Finding("error", "bad-history", f"unknown history policy {cls.history!r}",
                               f"use {POLICIES}", state=name))

    per_source: dict[tuple[str | None, str], set[int]] = {}
    global_triggers = {e.trigger for e in flow.edges if e.is_global}
    for edge in flow.edges:
        where = edge.source or "global"
        per_source.setdefault((edge.source, edge.trigger), set()).add(id(edge.transition))
        if edge.target not in flow.states and not edge.is_return:
            out.append(Finding("error", "unknown-target",
                               f"transition goes to unknown state {edge.target!r}",
                               f"add a State named {edge.target} to the flow or fix `to=`",
                               state=where, trigger=edge.trigger))
        if not edge.transition.doc.strip() and edge.transition.offered:
            out.append(Finding("error", "no-docstring",
                               "transition has no docstring; the LLM would not know when to "
                               "call it",
                               "write a docstring saying when to call it", state=where,
                               trigger=edge.trigger))
        for frame in getattr(edge.transition, "frames", ()):
            if frame not in flow.states or frame not in successors(flow)[BACK]:
                out.append(Finding(
                    "error", "bad-return-frame",
                    f"back_to= names {frame!r}, which "
                    + ("is not a state of the flow" if frame not in flow.states
                       else "starts no side trip, so it is never on the return stack"),
                    "list states that start a side trip (a transition with returns=True)",
                    state=where, trigger=edge.trigger))
        if edge.is_return and (problem := edge.transition.result_problem()) is not None:
            out.append(Finding("error", "bad-result-type",
                               f"the side trip's result cannot be checked: {problem}",
                               "annotate the body's return with a type pydantic can check and "
                               "serialise (bool, str, a BaseModel, list[...]), or -> None for "
                               "no result", state=where, trigger=edge.trigger))
        guard = edge.transition.guard_parameters
        if guard is not None and (missing := guard.unknown({p.name for p in edge.transition.params})):
            out.append(Finding("error", "guard-parameter",
                               f"the guard takes {', '.join(map(repr, missing))}, which the "
                               "transition does not take; it could never be checked",
                               "name only the transition's parameters after the Context "
                               "(or give them defaults)", state=where, trigger=edge.trigger))
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
    for (source, trigger), declared in per_source.items():
        if (count := len(declared)) > 1:
            out.append(Finding("error", "duplicate-trigger",
                               f"trigger {trigger!r} is declared {count} times",
                               "rename one of them", state=source or "global", trigger=trigger))
    return out + call_killers(flow)


TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What providers accept as a tool name (OpenAI's rule; the strictest of the common ones)."""
RESERVED_STATE_NAMES = frozenset({"*", "=", RETURN})
"""``*`` and ``=`` mean "every state" and "the same state" to ``transitions``; RETURN is the
target of a side trip's way back."""


def call_killers(flow: Definition) -> list[Finding]:
    """What builds but would kill a call: a tool name a provider rejects, a transition
    and a tool of one state with the same name (LiveKit refuses the agent), a reserved
    state name, a state of another Context type."""
    out: list[Finding] = []
    for name, cls in flow.states.items():
        if name in RESERVED_STATE_NAMES:
            out.append(Finding("error", "reserved-name", f"state name {name!r} is reserved",
                               "give the State another name", state=name))
        tools = set(cls.tool_names())
        for tool in sorted(tools):
            if not TOOL_NAME.match(tool):
                out.append(Finding("error", "bad-tool-name",
                                   f"tool name {tool!r} is refused by LLM providers",
                                   "use 1 to 64 letters, digits, '_' or '-'", state=name))
        triggers = {e.trigger for e in flow.edges if e.source in (name, None)}
        for trigger in sorted(tools & triggers):
            out.append(Finding("error", "tool-name-clash",
                               f"{trigger!r} is both a transition and a tool of this state "
                               "(LiveKit refuses the agent: the call would end)",
                               "rename the tool or the transition (`@transition(name=...)`)",
                               state=name, trigger=trigger))
        wanted = _context_of(cls)
        if wanted is not None and not issubclass(flow.context_type, wanted):
            out.append(Finding("error", "wrong-context",
                               f"the State is a State[{wanted.__name__}] but the flow's context "
                               f"is {flow.context_type.__name__}",
                               f"make it State[{flow.context_type.__name__}] or give the flow a "
                               f"context that subclasses {wanted.__name__}", state=name))
    for trigger in sorted({e.trigger for e in flow.edges}):
        if not TOOL_NAME.match(trigger):
            out.append(Finding("error", "bad-tool-name",
                               f"trigger {trigger!r} is refused by LLM providers as a tool name",
                               "use 1 to 64 letters, digits, '_' or '-' (`@transition(name=...)`)",
                               trigger=trigger))
    return out


def context_warnings(flow: Definition) -> list[Finding]:
    """A Context that cannot be made without values: every call must be given one
    (``flow.session(context=...)``), else it fails to start. A warning, not an error:
    a flow whose calls always bring their Context (or a version under migration) is fine."""
    try:
        flow.context_type()
    except ValidationError as exc:
        missing = sorted(str(e["loc"][0]) for e in exc.errors() if e.get("loc"))
        return [Finding("warning", "context-needs-values",
                        f"{flow.context_type.__name__} cannot be made without values "
                        f"({', '.join(missing)} have no default): a call started without a "
                        "Context would fail", "give every field a default (`= None`, "
                        "`Field(default=...)`), or always start calls with `context=`")]
    return []


def _context_of(cls: type) -> type | None:
    """The Context type ``X`` of a ``State[X]`` class (looked up its bases), if concrete."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            args = get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], Context):
                return args[0]
    return None


def check(flow: Definition, strict: bool = False) -> list[Finding]:
    """Every finding about ``flow``: its definition errors, then the warnings.

    With ``strict`` the warnings are reported as errors (``handoff check --strict``).
    The order is stable: errors first, then warnings by kind, each by state name.
    """
    found = definition_errors(flow) + graph_warnings(flow) + guard_warnings(flow)
    found += argument_warnings(flow) + context_warnings(flow) + realtime_findings(flow)
    found.sort(key=lambda f: f.severity != "error")  # stable: errors first, each kind in order
    if strict:
        found = [replace(f, severity="error") for f in found]
    return found


def graph_warnings(flow: Definition) -> list[Finding]:
    """Unreachable states, dead ends, states with no path to a final state, and
    ``to=RETURN`` transitions that nothing can return through."""
    forward = successors(flow, with_returns=False)  # a return only revisits a reached state
    targets = successors(flow, with_returns=True)
    states = set(flow.states)
    reachable = reach({flow.initial} & states, forward) & states
    out = [
        Finding("warning", "unreachable",
                f"no sequence of transitions leads from {flow.initial!r} to this state",
                f"add a transition to {name} or remove it from states=[...]", state=name)
        for name in sorted(states - reachable)
    ]
    dead_ends = {
        name for name in states
        if name not in flow.final and not (targets[name] - {name, ANY})
        and not (targets[ANY] - {name})
    }
    out += [
        Finding("warning", "dead-end",
                "the state is not final and has no transition to another state; a call "
                "would be stuck here",
                f"add a @transition out of {name} or list it in final=[...]", state=name)
        for name in sorted(dead_ends)
    ]
    if not targets[BACK]:
        out += [
            Finding("warning", "return-without-side-trip",
                    "the transition goes back to the state that started a side trip, but no "
                    "transition starts one", "mark the transitions into this side trip with "
                    "`returns=True`", state=edge.source or "global", trigger=edge.trigger)
            for edge in _sorted_edges(flow) if edge.is_return
        ]
        out += [
            Finding("warning", "abandon-without-side-trip",
                    "the transition drops the task a side trip interrupted, but no transition "
                    "starts one", "mark the transitions into the side trip with `returns=True`, "
                    "or remove abandons=True", state=edge.source or "global", trigger=edge.trigger)
            for edge in _sorted_edges(flow) if getattr(edge.transition, "abandons", False)
        ]
    if not flow.final:
        out.append(Finding("warning", "no-final", "the flow declares no final state",
                           "list the states where a call may end in final=[...]"))
        return out
    can_finish = reach(flow.final & states, predecessors(targets))
    out += [
        Finding("warning", "no-path-to-final",
                "no sequence of transitions leads from this state to a final state "
                f"({', '.join(sorted(flow.final))})",
                "add a transition towards a final state, or make this state final",
                state=name)
        for name in sorted(states - can_finish - dead_ends)
    ]
    return out


def guard_warnings(flow: Definition) -> list[Finding]:
    """Guards (and refusal functions) that read a field the Context does not have."""
    known = _context_attributes(flow.context_type)
    out = []
    for edge in _sorted_edges(flow):
        functions: list[tuple[str, Callable[..., Any]]] = []
        if edge.transition.when is not None:
            functions.append(("guard", edge.transition.when))
        if callable(edge.transition.refused):
            functions.append(("refusal", edge.transition.refused))
        for role, fn in functions:
            fields = context_fields(fn)
            for name in sorted((fields or set()) - known):
                out.append(Finding(
                    "warning", "unknown-context-field",
                    f"the {role} reads {name!r}, which {flow.context_type.__name__} does not have",
                    f"add a field {name} to {flow.context_type.__name__} or fix the {role}",
                    state=edge.source or "global", trigger=edge.trigger))
    return out


def argument_warnings(flow: Definition) -> list[Finding]:
    """Transition arguments without a type: the LLM would be told they are strings."""
    return [
        Finding("warning", "untyped-argument",
                f"argument {param!r} has no type annotation; the LLM is told it is a string",
                f"annotate it, e.g. `{param}: str`", state=edge.source or "global",
                trigger=edge.trigger)
        for edge in _sorted_edges(flow)
        for param in edge.transition.untyped_params
    ]


def _sorted_edges(flow: Definition) -> list[Edge]:
    return sorted(flow.edges, key=lambda e: (e.source is None, e.source or "", e.trigger))


def _context_attributes(context_type: type) -> set[str]:
    """Fields, properties and methods a guard may read on the Context."""
    names = set(dir(context_type))
    names |= set(getattr(context_type, "model_fields", {}))
    names |= set(getattr(context_type, "model_computed_fields", {}))
    return names


def _tool_clashes(flow: Any, name: str, cls: Any) -> list[str]:
    """Names the flow-wide tools or the state's ``tools = [...]`` share with another tool or
    a transition of state ``name`` (LiveKit refuses an agent offering a name twice)."""
    added = [t.info.name for t in (*getattr(flow, "tools", ()), *cls.own_tools)
             if hasattr(t, "info")]
    methods = set(cls.tool_names()) - {t.info.name for t in cls.own_tools if hasattr(t, "info")}
    triggers = {e.trigger for e in flow.edges if e.source in (name, None)}
    counts = Counter(added)
    return sorted({n for n, c in counts.items() if c > 1} | (set(added) & (methods | triggers)))


def _option_findings(name: str, cls: Any) -> list[Finding]:
    """A class attribute that is no State option (a typo such as ``tts_voise``), or an
    option of the wrong type. A subclass declares its own with an annotation
    (``backend: ClassVar[Backend]``); UPPER_CASE constants are left alone."""
    from .state import State

    found: list[Finding] = []
    declared = _declared_names(cls)
    hints = _option_types()
    for klass in cls.__mro__:
        if klass is State or not issubclass(klass, State):
            break
        own_annotations = set(vars(klass).get("__annotations__", {}))
        for attr, value in vars(klass).items():
            if attr.startswith("_") or attr.isupper() or _is_behaviour(value):
                continue
            if attr not in declared and attr not in own_annotations:
                close = difflib.get_close_matches(attr, sorted(hints), n=1)
                found.append(Finding(
                    "error", "unknown-option", f"{klass.__name__}.{attr} is not a State option",
                    (f"did you mean {close[0]!r}? " if close else "")
                    + f"or declare it: {attr}: ClassVar[...] = ...", state=name))
            elif attr in hints and not _fits(hints[attr], value):
                found.append(Finding(
                    "error", "bad-option",
                    f"{klass.__name__}.{attr} = {value!r} is not a {hints[attr]}",
                    f"give {attr} a value of type {hints[attr]}", state=name))
    return found


def _declared_names(cls: Any) -> set[str]:
    """Names State, Agent and the user's bases declare (attributes or annotations)."""
    from .state import State

    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        if klass is not cls or klass is State:
            names |= set(vars(klass)) | set(vars(klass).get("__annotations__", {}))
    return names


def _is_behaviour(value: Any) -> bool:
    """Methods, properties, tools, transitions, nested classes: not options."""
    return callable(value) or isinstance(value, property | classmethod | staticmethod | type) or (
        hasattr(value, "__get__") and not isinstance(value, str | int | float | bool | tuple | list
                                                     | dict | type(None)))


_OPTION_TYPES: dict[str, Any] = {}


def _option_types() -> dict[str, Any]:
    """The declared types of State's options (``ClassVar[...]`` unwrapped)."""
    if not _OPTION_TYPES:
        from .state import State

        for attr, hint in typing.get_type_hints(State).items():
            if attr in ("own_tools", "bridge", "prompt"):  # set by handoff, not options
                continue
            if typing.get_origin(hint) is typing.ClassVar:
                (hint,) = typing.get_args(hint) or (Any,)
            _OPTION_TYPES[attr] = hint
    return _OPTION_TYPES


def _fits(hint: Any, value: Any) -> bool:
    try:
        TypeAdapter(hint).validate_python(value, strict=True)
    except Exception:
        return False
    return True
