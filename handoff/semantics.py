"""The semantic core: pure, synchronous decisions that the runtime and the toolkit share.

:class:`~handoff.run.FlowRun` performs effects (LiveKit handoffs, bodies, observers)
around these decisions; the testing oracle (:mod:`handoff.testing.oracle`) and
``handoff check`` call the same functions, so a rule the runtime learns is known to
the toolkit by construction. Every function here is a plain function of its arguments
(a flow, a state, a log, arguments): no run, no session, no clock.

Decided here:

- the **loop policy** (:func:`loop_reason`): a loop is repeated moves *without
  progress*, that is without a caller turn between them, not a topology. A router and
  its specialists visited back and forth, each visit driven by a new caller request,
  never count; an LLM bouncing between two states on its own does;
- the **follow-up move** of the failure policy (:func:`follow_up`): the error
  transition the run takes after a loop or after ``max_failures`` failures in a row,
  with the arguments and the note it carries;
- the **approval** a move waits for (:func:`approval_for`): a ``confirm=`` question is
  asked when the LLM takes the transition, never for code or the failover;
- the **arguments** a transition is called with (:func:`converted_arguments`): those
  of code and of the oracle are validated and converted by the tool schema, as
  LiveKit converts the LLM's, so a guard sees pydantic models, never raw JSON;
- the **return stack** a move leaves (:func:`return_targets`, :func:`dropped_by`,
  :func:`stack_after`): where a ``to=RETURN`` edge may go (the top frame, or any
  ``back_to`` frame this call interrupted), which frames ``abandons`` and ``back_to``
  drop, and what is left;
- the **tools and transitions a state offers** (:func:`offer`): its offered
  transitions (own and global, not code-only ones), its method tools, its
  ``tools = [...]`` and the flow-wide ``Flow(tools=[...])``, Toolsets expanded. The
  run builds each agent from it and counts a call to anything else as made up; the
  generated machines call exactly these tools.

A guard gets only the arguments it declares (:class:`handoff.guards.GuardParameters`,
used by ``TransitionDef.check_guard`` and ``judge``).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from livekit.agents import llm
from pydantic import ValidationError

from .approval import Approval
from .errors import RefusalKind, TransitionCallError, TransitionRefused
from .failures import FailurePolicy
from .graph import Edge
from .records import TransitionRecord
from .returns import frames_above
from .state import State


class Semantic(Protocol):
    """What the core reads of a flow (a :class:`~handoff.flow.Flow` is one)."""

    @property
    def states(self) -> Mapping[str, type[State[Any]]]: ...

    @property
    def edges(self) -> Sequence[Edge]: ...

    @property
    def failure_policy(self) -> FailurePolicy: ...

    @property
    def tools(self) -> Sequence[llm.Tool | llm.Toolset]: ...

    def triggers_from(self, state: str) -> Mapping[str, Edge]: ...


# -- the loop policy ------------------------------------------------------------------
def unprompted(log: Sequence[TransitionRecord]) -> Sequence[TransitionRecord]:
    """The moves at the end of ``log`` with no caller turn between them (those taken
    since the caller last spoke; the whole log when the caller never did)."""
    if not log:
        return log
    turn = log[-1].turn
    start = len(log)
    while start > 0 and log[start - 1].turn == turn:
        start -= 1
    return log[start:]


def loop_reason(log: Sequence[TransitionRecord], policy: FailurePolicy) -> str | None:
    """Why the log ends in a loop the call must not continue, or None.

    Only moves without progress count: those taken with no caller turn between them
    (:attr:`TransitionRecord.turn` is the same). Among them, more than
    ``max_transitions`` moves, or the same two states back and forth ``max_ping_pong``
    times, is a loop. A caller turn resets both: a caller who asks three insurance
    questions in a row (Reception → Insurance → back, three times) is not looping.
    A body that writes the Context is not progress: an LLM bouncing while a counter
    climbs is still bouncing.
    """
    # turns never decrease along a log, so "no caller turn among the last k moves" is one
    # comparison of the k-th last record with the last: O(1) whatever the log's length
    if not log:
        return None
    turn = log[-1].turn
    limit = policy.max_transitions
    if len(log) > limit and log[-limit - 1].turn == turn:
        return (f"the call made more than {limit} transitions without "
                "the caller saying anything")
    span = 2 * policy.max_ping_pong
    if len(log) < span or log[-span].turn != turn:
        return None
    tail = log[-span:]
    a, b = tail[0].source, tail[0].target
    if a == b:
        return None
    expected = [(a, b), (b, a)] * policy.max_ping_pong
    if [(r.source, r.target) for r in tail] == expected:
        return (f"the call went back and forth between {a} and {b} {policy.max_ping_pong} "
                "times without the caller saying anything")
    return None


# -- the follow-up move ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FollowUp:
    """The move the failure policy takes next: the error transition, and why."""

    trigger: str
    reason: str
    arguments: dict[str, Any]
    note: str
    """What the next agent is told (its instructions' note), reason included."""


def error_trigger(flow: Semantic, state: str) -> str | None:
    """The error transition from ``state`` (the State's own, else the flow's), or None
    when there is none or it is not declared from there."""
    trigger = flow.states[state].error_transition or flow.failure_policy.error_transition
    if trigger is None or trigger not in flow.triggers_from(state):
        return None
    return trigger


def follow_up(flow: Semantic, state: str, reason: str) -> FollowUp | None:
    """The error transition ``state`` takes because of ``reason`` (None: there is none).

    Its ``reason`` argument, when the transition takes one, is ``reason``; the next
    agent's note tells it to say so to the caller. ``reason`` is used as given: the run
    passes it scrubbed of sensitive values.
    """
    trigger = error_trigger(flow, state)
    if trigger is None:
        return None
    params = {p.name for p in flow.triggers_from(state)[trigger].transition.params}
    arguments = {"reason": reason} if "reason" in params else {}
    note = (f"The call was moved here automatically because {reason}. "
            "Tell the caller briefly that something went wrong and what happens now.")
    return FollowUp(trigger, reason, arguments, note)


def after_move(flow: Semantic, log: Sequence[TransitionRecord]) -> FollowUp | None:
    """The follow-up a committed move calls for (a loop), from the state it reached."""
    if not log or (reason := loop_reason(log, flow.failure_policy)) is None:
        return None
    return follow_up(flow, log[-1].target, reason)


def failure_is_due(flow: Semantic, consecutive: int) -> bool:
    """True when ``consecutive`` failures in a row take the error transition."""
    return consecutive >= flow.failure_policy.max_failures


# -- validity ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Validity:
    """Whether a trigger may be taken now: the edge and its target, or the refusal."""

    edge: Edge | None
    target: str | None = None
    kind: RefusalKind | None = None
    """None: valid (the guard and body decide next); else ``busy`` or ``invalid``."""
    reason: str | None = None


def validity(flow: Semantic, state: str, trigger: str, return_stack: Sequence[str] = (), *,
             under_way: str | None = None, by_llm: bool = False) -> Validity:
    """The validity step of a move, before any guard: another move ``under_way`` this
    turn (``busy``), a trigger not declared from ``state`` (or code-only, asked by the
    LLM), or a side trip's return with nowhere to return to (``invalid``); else the edge
    and its target (a ``to=[...]`` edge's first candidate: its body chooses)."""
    if under_way is not None:
        return Validity(None, None, "busy", f"'{trigger}' was not taken: the transition "
                        f"'{under_way}' is already under way this turn. Only one transition "
                        "can happen per turn.")
    edge = flow.triggers_from(state).get(trigger)
    if edge is None or (by_llm and not edge.transition.offered):
        options = ", ".join(t for t, e in flow.triggers_from(state).items()
                            if e.transition.offered or not by_llm) or "none"
        return Validity(None, None, "invalid", f"'{trigger}' is not available in state "
                        f"{state}; the transitions available now are: {options}.")
    if edge.is_return:
        if not return_stack:
            return Validity(edge, None, "invalid", f"'{trigger}' refused: there is no earlier "
                            "state to return to in this call.")
        return Validity(edge, return_stack[-1])
    return Validity(edge, edge.target)


# -- target choice -------------------------------------------------------------------
def trigger_for(flow: Semantic, state: str, target: str) -> str:
    """The trigger ``run.go(target)`` means in ``state``: ``target`` itself when it is a
    trigger, else the one declared transition from ``state`` to the state ``target``
    (TransitionRefused when several lead there). Anything else is returned as it is, for
    the validity step to refuse with the list of what is available."""
    table = flow.triggers_from(state)
    if target in table:
        return target
    if target in flow.states:
        to_target = sorted({e.trigger for e in flow.edges if e.target == target
                            and e.source in (state, None) and e.trigger in table
                            and table[e.trigger].transition is e.transition})
        if len(to_target) == 1:
            return to_target[0]
        if len(to_target) > 1:
            raise TransitionRefused(
                f"several transitions lead from {state} to {target}: "
                f"{', '.join(to_target)}; name the trigger", trigger=target, kind="invalid")
    return target


# -- the return stack ---------------------------------------------------------------
def return_targets(edge: Edge, return_stack: Sequence[str]) -> tuple[str, ...]:
    """Where a ``to=RETURN`` ``edge`` may go with ``return_stack``: its top frame, or for a
    ``back_to=[...]`` return each declared frame this call interrupted (top first);
    nowhere when the stack is empty."""
    if not edge.is_return or not return_stack:
        return ()
    if not edge.transition.back_to:
        return (return_stack[-1],)
    frames = set(edge.transition.frames)
    return tuple(dict.fromkeys(f for f in reversed(return_stack) if f in frames))


def dropped_by(edge: Edge, return_stack: Sequence[str], target: str) -> tuple[str, ...] | None:
    """The frames a move along ``edge`` to ``target`` drops, top first: the top one for
    ``abandons=True``, those above the chosen frame for ``back_to`` (None: ``target`` is
    not on the stack), none for any other edge."""
    if edge.transition.abandons:
        return tuple(return_stack[-1:])
    if edge.is_return and edge.transition.back_to:
        return frames_above(return_stack, target)
    return ()


def stack_after(edge: Edge, return_stack: Sequence[str], source: str,
                dropped: Sequence[str] = ()) -> tuple[str, ...]:
    """The return stack once a move from ``source`` along ``edge`` committed, ``dropped``
    frames gone: a return pops the frame it goes back to, a side trip pushes ``source``."""
    stack = list(return_stack[:len(return_stack) - len(dropped)])
    if edge.is_return and stack:
        stack.pop()
    if edge.transition.returns:
        stack.append(source)
    return tuple(stack)


# -- arguments ------------------------------------------------------------------------
def approval_for(edge: Edge, by: str) -> Approval | None:
    """The caller's confirmation a move along ``edge`` asked for ``by`` (``llm``, ``code``,
    ``failover``) waits for: the transition's ``confirm=``, when the LLM asked."""
    return edge.transition.approval if by == "llm" else None


def converted_arguments(edge: Edge, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` validated and converted by ``edge``'s tool schema, as LiveKit converts
    the LLM's JSON (``"5"`` for an ``int`` is ``5``, a dict for a model is the model); the
    ones omitted keep the body's defaults. An untyped parameter takes anything.

    Raises :class:`~handoff.errors.TransitionCallError` naming the places (never the
    values, which may be sensitive) when the schema rejects them.
    """
    if not arguments and not edge.transition.params:  # nothing to check (most moves)
        return {}
    trigger = edge.trigger
    known = {p.name for p in edge.transition.params}
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise TransitionCallError(
            f"{trigger}() takes no argument {', '.join(map(repr, unknown))}; its "
            f"parameters are: {', '.join(sorted(known)) or 'none'}")
    # an untyped parameter is text to the LLM; from code it takes anything, as its body does
    untyped = set(edge.transition.untyped_params)
    checked = {k: str(v) if k in untyped else v for k, v in arguments.items()}
    try:
        valid = edge.transition.arguments_model().model_validate(checked)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or trigger}: {e['msg']}"
                             for e in exc.errors(include_input=False, include_url=False))
        raise TransitionCallError(f"{trigger}() was called with arguments its transition "
                                  f"does not take: {problems}") from None
    return {name: arguments[name] if name in untyped else getattr(valid, name)
            for name in arguments}


# -- what a state offers --------------------------------------------------------------
FunctionTool = llm.FunctionTool | llm.RawFunctionTool


@dataclass(frozen=True, slots=True)
class Offer:
    """What the agent of one state offers the LLM, decided by the declaration alone."""

    transitions: tuple[Edge, ...]
    """The transitions the LLM may call here (own and global; code-only ones are not)."""
    tools: Mapping[str, FunctionTool]
    """The ordinary tools by name: ``tools = [...]``, the flow-wide ones, then the
    State's method tools (unbound, as LiveKit finds them on the agent)."""
    free: tuple[llm.Tool | llm.Toolset, ...]
    """The tools handed to ``Agent(tools=...)`` besides the transitions: the State's
    ``tools = [...]`` then the flow-wide ones, as declared (Toolsets not expanded)."""
    names: frozenset[str] = field(init=False)
    """Every tool name the LLM sees here: transitions and ordinary tools (read after
    every tool call of the call, so worked out once)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(e.trigger for e in self.transitions)
                           | frozenset(self.tools))


def function_tools(tools: Iterable[Any]) -> Iterator[FunctionTool]:
    """The function tools of ``tools``, those of Toolsets included (LiveKit's
    ``EndCallTool`` offers ``end_call`` from a Toolset)."""
    for tool in tools:
        if isinstance(tool, llm.Toolset):
            yield from function_tools(tool.tools)
        elif isinstance(tool, llm.FunctionTool | llm.RawFunctionTool):
            yield tool


_OFFERS: weakref.WeakKeyDictionary[Any, dict[str, Offer]] = weakref.WeakKeyDictionary()


def offer(flow: Semantic, state: str) -> Offer:
    """What ``state``'s agent offers the LLM (computed once per flow and state: a built
    flow does not change). An ordinary tool named like a transition offered here is left
    out (``handoff check`` reports the clash: LiveKit would refuse the agent)."""
    offers = _OFFERS.setdefault(flow, {})
    if state not in offers:
        cls = flow.states[state]
        transitions = tuple(e for e in flow.triggers_from(state).values()
                            if e.transition.offered)
        free = (*cls.own_tools, *flow.tools)
        tools: dict[str, FunctionTool] = {}
        for tool in (*function_tools(free), *llm.find_function_tools(cls)):
            tools.setdefault(tool.info.name, tool)
        for trigger in flow.triggers_from(state):
            tools.pop(trigger, None)
        offers[state] = Offer(transitions, tools, free)
    return offers[state]
