"""Flow: the declared states and transitions, and the one `transitions` Machine.

A Flow is built once (at import time) and shared by every call. Building it
checks the graph (see :mod:`handoff.validate`) and fails with every finding at
once. Each call gets a cheap :class:`~handoff.run.FlowRun` bound to the shared
Machine with ``add_model``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from livekit.agents import AgentSession, llm
from transitions import Machine

from .context import Context
from .errors import FlowDefinitionError
from .failures import FailurePolicy
from .history import HistoryPolicy
from .state import RETURN, State, TransitionDef
from .tiers import Tiers

if TYPE_CHECKING:
    from .run import FlowObserver, FlowRun

C = TypeVar("C", bound=Context)


@dataclass(frozen=True, slots=True)
class Edge:
    """One declared edge: from ``source`` (None = every state) by ``trigger`` to ``target``."""

    source: str | None
    target: str
    transition: TransitionDef

    @property
    def trigger(self) -> str:
        return self.transition.name

    @property
    def is_global(self) -> bool:
        return self.source is None

    @property
    def is_return(self) -> bool:
        """True for ``to=RETURN``: the target is the top of the run's return stack."""
        return self.target == RETURN


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

    def remove_model(self, model: Any) -> None:
        """Nothing to release: runs are not kept by the Machine."""


class _ReturnsTo:
    """Condition of a return edge's Machine transition to one concrete state."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state

    def __call__(self, return_to: str | None = None, **_: Any) -> bool:
        return return_to == self.state


class Flow(Generic[C]):
    """A conversation as a finite state machine of specialised agents.

    Args:
        name: the flow's name (diagrams, metrics, checkpoints).
        context: the Context subclass shared by the states.
        initial: the state a call starts in.
        states: every State class of the flow (names must be unique).
        final: states where a call may end (no way out is expected there).
        global_transitions: module-level ``@transition`` functions valid from every state.
        tiers: the tier table; defaults to ``Tiers.load()`` (pyproject/handoff.toml/env).
        version: the flow's version, stored with checkpoints.
        error_transition: the trigger taken after ``max_failures`` failures in a row or a
            loop (``max_transitions`` moves, or ``max_ping_pong`` back-and-forths); a State
            may name its own with ``error_transition``. See :mod:`handoff.failures`.
        resume_fallback: where a call resumes when its checkpoint names a state this
            version of the flow no longer has (default: the initial state).
    """

    def __init__(
        self,
        name: str,
        *,
        context: type[C],
        initial: type[State[Any]] | str,
        states: Sequence[type[State[Any]]],
        final: Sequence[type[State[Any]] | str] = (),
        global_transitions: Sequence[TransitionDef] = (),
        tiers: Tiers | None = None,
        version: str = "1",
        error_transition: str | None = None,
        max_failures: int = 2,
        max_transitions: int = 50,
        max_ping_pong: int = 3,
        resume_fallback: type[State[Any]] | str | None = None,
    ) -> None:
        from .validate import definition_errors

        self.name = name
        self.version = version
        self.failure_policy = FailurePolicy(error_transition, max_failures, max_transitions,
                                            max_ping_pong)
        self.context_type = context
        self.tiers = tiers if tiers is not None else Tiers.load()
        self.state_classes: list[type[State[Any]]] = list(states)
        self.global_transitions: list[TransitionDef] = list(global_transitions)
        self.initial = _state_ref(initial)
        self.final = frozenset(_state_ref(s) for s in final)
        self.resume_fallback = _state_ref(resume_fallback) if resume_fallback else self.initial
        self.states: dict[str, type[State[Any]]] = {}
        for cls in self.state_classes:
            self.states.setdefault(cls.state_name(), cls)

        self.edges: list[Edge] = []
        for cls in self.state_classes:
            for tdef in cls.declared_transitions():
                self.edges.append(Edge(cls.state_name(), self._resolve_target(tdef), tdef))
        for tdef in self.global_transitions:
            self.edges.append(Edge(None, self._resolve_target(tdef), tdef))

        errors = definition_errors(self)
        if errors:
            raise FlowDefinitionError(name, errors)

        # state -> trigger -> edge, globals included: the O(1) table every decision reads
        self.table: dict[str, dict[str, Edge]] = {s: {} for s in self.states}
        for edge in self.edges:
            sources = self.states if edge.source is None else [edge.source]
            for source in sources:
                self.table[source].setdefault(edge.trigger, edge)
        self.history_policies = {
            n: HistoryPolicy.parse(cls.history) for n, cls in self.states.items()
        }

        self.machine = _SharedMachine(
            model=None,
            states=list(self.states),
            initial=self.initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
        )
        for edge in self.edges:
            source = "*" if edge.source is None else edge.source
            if edge.is_return:  # one Machine transition per possible state to come back to
                for back in self.states:
                    self.machine.add_transition(edge.trigger, source=source, dest=back,
                                                conditions=[_ReturnsTo(back)])
            else:
                self.machine.add_transition(edge.trigger, source=source, dest=edge.target)
        self.observers: list[FlowObserver] = []
        self.agent_options: Callable[[type[State[Any]]], dict[str, Any]] | None = None
        """Extra ``Agent`` keyword arguments per State (the worker sets per-state voices)."""

    # -- introspection -------------------------------------------------------------
    def triggers_from(self, state: str) -> Mapping[str, Edge]:
        """The transitions the LLM may call in ``state`` (its own and the global ones)."""
        return self.table[state]

    def is_final(self, state: str) -> bool:
        return state in self.final

    def _resolve_target(self, tdef: TransitionDef) -> str:
        if isinstance(tdef.to, str):  # a state name, or RETURN
            return tdef.to
        # a class target: the flow's state of that name, or the flow's subclass of it
        if tdef.to.state_name() in self.states:
            return tdef.to.state_name()
        for name, cls in self.states.items():
            if issubclass(cls, tdef.to):
                return name
        return tdef.to.state_name()

    # -- running -------------------------------------------------------------------
    def new_run(
        self,
        context: C | None = None,
        *,
        llm: llm.LLM | Mapping[str, llm.LLM] | None = None,
        call_id: str | None = None,
    ) -> FlowRun[C]:
        """A flow run in the initial state, not yet attached to a session.

        ``llm`` overrides the tier table for this run: one LLM for every tier (a
        ScriptedLLM in tests, a local model in development) or a tier → LLM mapping.
        """
        from .run import FlowRun

        return FlowRun(self, context if context is not None else self.context_type(),
                       llm_override=llm, call_id=call_id)

    async def start(
        self,
        session: AgentSession[Any],
        *,
        context: C | None = None,
        llm: llm.LLM | Mapping[str, llm.LLM] | None = None,
        call_id: str | None = None,
        wait_opening: bool = False,
        **start_kwargs: Any,
    ) -> FlowRun[C]:
        """Start ``session`` in the initial state and return the run that drives it.

        ``start_kwargs`` go to ``AgentSession.start`` (``room=``, ``room_options=``…).
        """
        if context is None and isinstance(getattr(session, "_userdata", None), self.context_type):
            context = session.userdata
        run = self.new_run(context, llm=llm, call_id=call_id)
        await run.attach(session, wait_opening=wait_opening, **start_kwargs)
        return run

    @asynccontextmanager
    async def session(
        self,
        *,
        context: C | None = None,
        llm: llm.LLM | Mapping[str, llm.LLM] | None = None,
        **session_kwargs: Any,
    ) -> AsyncIterator[FlowRun[C]]:
        """A started text-mode AgentSession for this flow (tests, ``handoff chat``)."""
        async with AgentSession[C](**session_kwargs) as session:
            yield await self.start(session, context=context, llm=llm, wait_opening=True)

    def __repr__(self) -> str:
        return f"<Flow {self.name} v{self.version}: {len(self.states)} states, {len(self.edges)} edges>"


def _state_ref(ref: type[State[Any]] | str) -> str:
    return ref if isinstance(ref, str) else ref.state_name()
