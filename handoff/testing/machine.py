"""FlowStateMachine: a hypothesis ``RuleBasedStateMachine`` generated from a Flow.

The declared table is the oracle. Each rule attempts something — a transition by
code (``go_<trigger>``), by the LLM through a real AgentSession (``llm_<trigger>``,
session mode), any trigger from anywhere (``attempt_any``), parallel tool calls, an
interrupted handoff, a code change of the context — and checks the outcome against
:func:`handoff.testing.oracle.expect` and the invariants of DESIGN §2. A failure is
shrunk by hypothesis to a short, readable list of steps.

    TestMyFlow = FlowStateMachine(flow).TestCase             # pure FSM: fast
    TestMyFlowLive = FlowStateMachine(flow, mode="session").TestCase

The checks every step makes are :class:`~handoff.testing.machine_base.FlowMachineBase`'s.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from ..flow import Flow
from ..graph import Edge
from .driver import InterruptAt, ModelFactory
from .explore import Reset
from .machine_base import EntryCondition, FlowMachineBase, Mode, ToolErrorsOk
from .offered import ordinary_tools
from .strategies import (
    UNDECLARED,
    ArgumentOverrides,
    Attempt,
    Overrides,
    arguments,
    attempts,
    context_changes,
    edge_arguments,
    field_changes,
    model_arguments,
    parameter_strategy,
    trigger_names,
)

__all__ = ["FlowMachineBase", "FlowStateMachine"]


CALLER_SAYS = "caller_says_yes"
"""The drawn answer of an ``llm_<trigger>`` rule to the transition's ``confirm=`` question."""


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name)


def FlowStateMachine(
    flow: Flow[Any],
    *,
    mode: Mode = "pure",
    entry_conditions: Mapping[str, EntryCondition] | None = None,
    may_clear: Mapping[str, Collection[str]] | None = None,
    allow_errors: bool = False,
    context_updates: bool = True,
    context_overrides: Overrides | None = None,
    argument_overrides: ArgumentOverrides | None = None,
    tools: Mapping[str, Overrides] | None = None,
    tool_errors: Mapping[str, ToolErrorsOk] | None = None,
    interruptions: bool = True,
    initial: Mapping[str, Any] | None = None,
    max_context_fields: int | None = None,
    reset: Reset | None = None,
    model: ModelFactory | None = None,
    name: str | None = None,
) -> type[FlowMachineBase]:
    """A RuleBasedStateMachine class that tests ``flow`` against its own declaration.

    Args:
        mode: ``"pure"`` drives only the FSM (``flow.new_run``, thousands of steps a
            second); ``"session"`` drives a real text-mode AgentSession with scripted
            models: LLM tool calls, parallel calls, interruptions, code moves.
        entry_conditions: state → predicate on the Context that must hold whenever the
            flow enters that state (``{"Billing": lambda c: c.verified}``).
        may_clear: trigger → Context fields that transition may legitimately reset
            (otherwise a field going back to its default is reported as lost context).
        allow_errors: accept a body raising something other than ``TransitionRefused``
            (by default that is reported: it is usually a bug in the body).
        context_updates: add the ``set_context`` rule (code or a tool setting a Context
            field between moves), which lets guards be seen both ways.
        context_overrides: strategies for Context fields (field → strategy).
        argument_overrides: strategies for transition arguments (trigger → parameter →
            strategy).
        tools: session mode: ordinary tools the LLM may call, with strategies for
            their arguments (``{"verify_account": {"pin": st.just("1234")}}``). Each
            call must succeed, unless ``tool_errors`` says it may fail.
        tool_errors: tool → ``True`` (any error is fine) or ``(arguments, error text)
            → bool`` (``lambda args, error: "wrong pin" in error``).
        interruptions: session mode: add the rule that interrupts handoffs.
        initial: Context fields every run starts with (before the drawn changes), to
            start the exploration where it matters (``{"verified": True}``).
        max_context_fields: how many Context fields ``start`` may set (default: all).
        reset: called (awaited, if it returns an awaitable) before each generated
            conversation starts: put back what bodies and tools changed outside the
            Context (a fake backend), as ``explore(reset=...)`` does between branches.
        model: session mode: the scripted model every state runs on
            (``ScriptedRealtimeModel``: the whole flow speech to speech). By default each
            tier gets the scripted model of its kind, a ``ScriptedRealtimeModel`` for a
            realtime tier and a ``ScriptedLLM`` for a pipeline tier.

    A call that ends (a final state or a tool closes the session) draws no more steps.
    """
    if model is not None and mode != "session":
        raise ValueError(f"model={model!r} picks the model of a session: pass mode='session' "
                         "(a pure machine runs no model)")
    co = dict(context_overrides or {})
    base = dict(initial or {})
    ao = dict(argument_overrides or {})
    ns: dict[str, Any] = {
        "flow": flow,
        "mode": mode,
        "entry_conditions": dict(entry_conditions or {}),
        "may_clear": dict(may_clear or {}),
        "allow_errors": allow_errors,
        "tool_errors": dict(tool_errors or {}),
        "resets": (reset,) if reset is not None else (),
        "models": (model,) if model is not None else (),
        "__doc__": f"Generated model-based test of flow {flow.name!r} ({mode} mode).",
    }

    @initialize(context=context_changes(flow, max_fields=max_context_fields, **co))
    def start(self: FlowMachineBase, context: dict[str, Any]) -> None:
        """Start a run in the initial state, the Context's defaults with these fields set."""
        self._start({**base, **context})

    ns["start"] = start

    for trigger in trigger_names(flow):
        _add_transition_rules(ns, flow, trigger, ao.get(trigger), mode)

    ns["attempt_any"] = _any_rule(flow, ao, "go")

    if context_updates and flow.context_type.model_fields:
        ns["set_context"] = _setter_rule(flow, co)

    if mode == "session":
        _add_session_rules(ns, flow, ao, tools or {}, interruptions)

    cls_name = name or f"{_ident(flow.name).title().replace('_', '')}Machine"
    return type(cls_name, (FlowMachineBase,), ns)


def _shared_names_differ(flow: Flow[Any]) -> bool:
    """Whether some trigger name is declared twice with different parameters."""
    return any(len({_signature(e) for e in flow.edges if e.trigger == t}) > 1
               for t in trigger_names(flow))


def _any_rule(flow: Flow[Any], ao: ArgumentOverrides, kind: str) -> Any:
    """Any trigger (declared here, elsewhere or nowhere), by code (``go``) or the LLM.

    Arguments come from the trigger's declaration; when a name is declared twice with
    different parameters, from the current state's declaration (drawn in the step).
    """

    def attempt_any(self: FlowMachineBase, attempt: Attempt) -> None:
        """Any trigger (declared here or not, or by no state)."""
        if kind == "go":
            self._go(attempt)
        else:
            self._say(attempt)

    attempt_any.__name__ = "attempt_any" if kind == "go" else "llm_attempt_any"
    if not _shared_names_differ(flow):
        decorated = rule(attempt=attempts(flow, argument_overrides=ao))(attempt_any)
    else:
        everything = [*trigger_names(flow), UNDECLARED]

        def attempt_any_here(self: FlowMachineBase, trigger: str, data: st.DataObject) -> None:
            """Any trigger (declared here or not, or by no state)."""
            args = data.draw(arguments(self.flow, trigger, ao.get(trigger),
                                       state=self.run.state), label="arguments")
            attempt_any(self, Attempt(trigger, args))

        attempt_any_here.__name__ = attempt_any.__name__
        decorated = rule(trigger=st.sampled_from(everything), data=st.data())(attempt_any_here)
    return precondition(FlowMachineBase.live)(decorated)


def _parallel_rule(flow: Flow[Any], ao: ArgumentOverrides) -> Any:
    """One LLM response naming two or three transitions (DESIGN §2.3)."""
    if not _shared_names_differ(flow):
        @rule(batch=st.lists(attempts(flow, undeclared=False, argument_overrides=ao),
                             min_size=2, max_size=3))
        def llm_parallel(self: FlowMachineBase, batch: list[Attempt]) -> None:
            """The LLM names several transitions in one response (DESIGN §2.3)."""
            self._say_parallel(batch)

        return precondition(FlowMachineBase.live)(llm_parallel)

    @rule(names=st.lists(st.sampled_from(trigger_names(flow)), min_size=2, max_size=3),
          data=st.data())
    def llm_parallel_here(self: FlowMachineBase, names: list[str], data: st.DataObject) -> None:
        """The LLM names several transitions in one response (DESIGN §2.3)."""
        batch = [Attempt(t, data.draw(arguments(self.flow, t, ao.get(t), state=self.run.state),
                                      label=f"arguments of {t}")) for t in names]
        self._say_parallel(batch)

    return precondition(FlowMachineBase.live)(llm_parallel_here)


def _setter_rule(flow: Flow[Any], overrides: Overrides) -> Any:
    """A rule setting one Context field (as code or a tool would) between moves. Its
    argument is the field by name with its new value, so a counterexample's
    ``state.set_context(fields={'verified': True})`` reads as ``run.context.verified = True``."""

    def set_context(self: FlowMachineBase, fields: dict[str, Any]) -> None:
        """Code (or a tool) sets one Context field between moves."""
        for name, value in fields.items():
            setattr(self.run.context, name, value)

    one_field = field_changes(flow, **overrides).map(lambda change: {change[0]: change[1]})
    return precondition(FlowMachineBase.live)(rule(fields=one_field)(set_context))


def _signature(edge: Edge) -> tuple[tuple[str, Any, Any], ...]:
    return tuple((p.name, repr(p.annotation), p.default is p.empty)
                 for p in edge.transition.params)


def _add_transition_rules(
    ns: dict[str, Any], flow: Flow[Any], trigger: str, over: Overrides | None, mode: Mode
) -> None:
    """``go_<trigger>`` (and ``llm_<trigger>``) rules, one per distinct declaration.

    A trigger name declared by two states with different parameters gets one rule per
    state (``go_<trigger>_from_<State>``), each drawing the arguments of its own edge.
    """
    edges = [e for e in flow.edges if e.trigger == trigger]
    distinct = {_signature(e) for e in edges}
    groups: list[tuple[str, list[Edge]]] = (
        [("", edges)] if len(distinct) == 1
        else [(f"_from_{_ident(e.source or 'any')}", [e]) for e in edges])
    for suffix, group in groups:
        for kind in ("go", "llm") if mode == "session" else ("go",):
            name = f"{kind}_{_ident(trigger)}{suffix}"
            ns[name] = _transition_rule(name, kind, trigger, group, over)


def _transition_rule(name: str, kind: str, trigger: str, group: list[Edge],
                     over: Overrides | None) -> Any:
    edge_ids = {id(e) for e in group}
    params = group[0].transition.params
    reserved = {p.name for p in params} & {"self", "target", "targets", "data", CALLER_SAYS}
    asks = kind == "llm" and group[0].transition.approval is not None  # confirm=: both answers

    def declared_here(self: FlowMachineBase) -> bool:
        if not self.live():
            return False
        edge = self.flow.table[self.run.state].get(trigger)
        return edge is not None and id(edge) in edge_ids

    def step(self: FlowMachineBase, **kw: Any) -> None:
        yes = kw.pop(CALLER_SAYS, False)
        attempt = Attempt(trigger, kw["arguments"] if reserved else kw)
        if kind == "go":
            self._go(attempt)
        else:
            self._say(attempt, approve=yes)

    step.__name__ = name
    step.__doc__ = f"{'Code' if kind == 'go' else 'The LLM'} takes {trigger!r} (declared here)."
    answers = {CALLER_SAYS: st.booleans()} if asks else {}
    if reserved:
        decorated = rule(arguments=edge_arguments(group[0], over),  # type: ignore[call-overload]
                         **answers)(step)
    else:
        strategies = {p.name: parameter_strategy(group[0], p.name, over) for p in params}
        decorated = rule(**strategies, **answers)(step)  # type: ignore[call-overload]
    return precondition(declared_here)(decorated)


def _add_session_rules(
    ns: dict[str, Any],
    flow: Flow[Any],
    ao: ArgumentOverrides,
    tools: Mapping[str, Overrides],
    interruptions: bool,
) -> None:
    ns["llm_attempt_any"] = _any_rule(flow, ao, "llm")
    if trigger_names(flow):  # a flow without transitions has no batch to name
        ns["llm_parallel"] = _parallel_rule(flow, ao)

    def can_interrupt(self: FlowMachineBase) -> bool:
        return self.live() and bool(self.flow.table[self.run.state])

    if interruptions:
        @precondition(can_interrupt)
        @rule(data=st.data(), at=st.sampled_from(["thinking", "handing_over"]))
        def interrupt(self: FlowMachineBase, data: st.DataObject, at: InterruptAt) -> None:
            """The caller talks over a turn whose LLM asks for a handoff (DESIGN §2.5)."""
            available = sorted(self.flow.table[self.run.state])
            trigger = data.draw(st.sampled_from(available), label="trigger")
            args = data.draw(arguments(self.flow, trigger, ao.get(trigger),
                                       state=self.run.state), label="arguments")
            self._interrupt(Attempt(trigger, args), at)

        ns["interrupt"] = interrupt

    for tool, over in tools.items():
        ns[f"tool_{_ident(tool)}"] = _tool_rule(flow, tool, over)


def _tool_rule(flow: Flow[Any], tool: str, over: Overrides) -> Any:
    offered = ordinary_tools(flow).get(tool)
    if offered is None:
        raise ValueError(f"no state of flow {flow.name!r} offers a tool named {tool!r} (its "
                         f"ordinary tools: {', '.join(sorted(ordinary_tools(flow))) or 'none'})")
    owners = offered.states
    model = offered.arguments_model()
    if model is None and not over:
        raise ValueError(f"tool {tool!r} has a raw JSON schema: give strategies for its "
                         "arguments (tools={...: {name: strategy}})")
    params = set(model.model_fields) if model is not None else set(over)
    unknown = set(over) - params
    if unknown:
        raise ValueError(f"tool {tool!r} has no parameter(s) {sorted(unknown)} (its "
                         f"parameters: {', '.join(sorted(params)) or 'none'})")
    strategy = (model_arguments(model, over) if model is not None
                else st.fixed_dictionaries(dict(over)))

    def offered_here(self: FlowMachineBase) -> bool:
        return self.live() and self.run.state in owners

    def step(self: FlowMachineBase, args: dict[str, Any]) -> None:
        self._tool(tool, args)

    step.__name__ = f"tool_{_ident(tool)}"
    step.__doc__ = f"The LLM calls the ordinary tool {tool!r} (in {', '.join(owners)})."
    return precondition(offered_here)(rule(args=strategy)(step))
