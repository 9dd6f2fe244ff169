"""Flow: the declared states and transitions, and the one `transitions` Machine.

A Flow is built once (at import time) and shared by every call. Building it
collects the edges (:mod:`handoff.graph`), checks them (:mod:`handoff.validate`)
and fails on the errors, all reported at once (the graph warnings, such as an
unreachable state, are ``handoff check``'s), then builds the table and the Machine
(:mod:`handoff.fsm`). Each call gets a cheap :class:`~handoff.run.FlowRun` bound to
the shared Machine with ``add_model``: the Flow is the run factory, so it sits
above run.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from livekit.agents import AgentSession, llm
from livekit.agents.llm import LLM
from pydantic import ValidationError

from .context import Context
from .errors import FlowDefinitionError, FlowError
from .failures import FailurePolicy
from .fsm import build_machine, machine_table
from .graph import Edge, collect_edges
from .history import HistoryPolicy
from .migrations import Migration, chain_findings
from .realtime import Model
from .records import FlowObserver
from .run import FlowRun
from .state import State
from .tiers import Tiers
from .transition import TransitionDef
from .validate import context_warnings, definition_errors
from .versions import flow_fingerprint

C = TypeVar("C", bound=Context)


class Flow(Generic[C]):
    """A conversation as a finite state machine of specialised agents.

    Args:
        name: the flow's name (diagrams, metrics, checkpoints).
        context: the Context subclass shared by the states.
        initial: the state a call starts in.
        states: every State class of the flow (names must be unique).
        final: states where a call may end (no way out is expected there).
        global_transitions: module-level ``@transition`` functions valid from every state.
        tools: module-level ``@function_tool`` functions offered in every state.
        tiers: the tier table; defaults to ``Tiers.load()`` (pyproject/handoff.toml/env).
        version: the flow's version, stored with checkpoints; default: a fingerprint of
            its states, table and Context schema (see :mod:`handoff.versions`).
        migrations: how checkpoints of older versions become checkpoints of this one
            (see :mod:`handoff.migrations`); checked when the Flow is built.
        error_transition: the trigger taken after ``max_failures`` failures in a row or a
            loop: more than ``max_transitions`` moves, or ``max_ping_pong`` back-and-forths
            between two states, with no caller turn between them (a caller-driven round
            trip is never a loop); a State may name its own with ``error_transition``.
            See :func:`handoff.semantics.loop_reason`.
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
        tools: Sequence[llm.Tool | llm.Toolset] = (),
        tiers: Tiers | None = None,
        version: str | None = None,
        migrations: Sequence[Migration] = (),
        error_transition: str | None = None,
        max_failures: int = 2,
        max_transitions: int = 20,
        max_ping_pong: int = 3,
        resume_fallback: type[State[Any]] | str | None = None,
    ) -> None:
        self.name = name
        self.version = version or ""
        self.migrations: list[Migration] = list(migrations)
        self.failure_policy = FailurePolicy(error_transition, max_failures, max_transitions,
                                            max_ping_pong)
        self.context_type = context
        self.tiers = tiers if tiers is not None else Tiers.load()
        self.state_classes: list[type[State[Any]]] = list(states)
        self.global_transitions: list[TransitionDef] = list(global_transitions)
        self.tools: list[llm.Tool | llm.Toolset] = list(tools)
        """Ordinary function tools offered in every state (Pipecat's global functions)."""
        self.initial = _state_ref(initial)
        self.final = frozenset(_state_ref(s) for s in final)
        self.resume_fallback = _state_ref(resume_fallback) if resume_fallback else self.initial
        self.states: dict[str, type[State[Any]]] = {}
        for cls in self.state_classes:
            self.states.setdefault(cls.state_name(), cls)

        self.edges: list[Edge] = collect_edges(self.state_classes, self.global_transitions,
                                               self.states)

        self.version_derived = version is None
        self.version = flow_fingerprint(self) if version is None else str(version)
        errors = definition_errors(self)
        errors += chain_findings(self.migrations, self.version, list(self.states),
                                 list(context.model_fields),
                                 derived_version=self.version_derived)
        if errors:
            raise FlowDefinitionError(name, errors)

        self.history_policies = {
            n: HistoryPolicy.parse(cls.history) for n, cls in self.states.items()
        }

        self.machine = build_machine(list(self.states), self.initial, self.edges)
        self.table: dict[str, dict[str, Edge]] = machine_table(self.machine, list(self.states))
        """state → trigger → edge: the Machine's transitions, indexed (the one table)."""
        self.observers: list[FlowObserver[FlowRun[Any]]] = []
        """Observers of every run of this flow (telemetry, checkpoints, coverage); a watcher
        of one call goes in that run's ``run.observers`` (see :class:`FlowObserver`)."""
        self.transition_tools: dict[TransitionDef, llm.FunctionTool] = {}
        """The LLM-facing tool of each transition (:func:`handoff.move.transition_tool`),
        made when a run first offers it and shared by every run of the flow."""
        self.agent_options: Callable[[type[State[Any]]], dict[str, Any]] | None = None
        """Extra ``Agent`` keyword arguments per State (the worker sets per-state voices)."""

    # -- introspection -------------------------------------------------------------
    def triggers_from(self, state: str) -> Mapping[str, Edge]:
        """The transitions the LLM may call in ``state`` (its own and the global ones)."""
        return self.table[state]

    def is_final(self, state: str) -> bool:
        return state in self.final

    # -- running -------------------------------------------------------------------
    def new_run(
        self,
        context: C | None = None,
        *,
        llm: Model | Mapping[str, Model] | None = None,
        call_id: str | None = None,
    ) -> FlowRun[C]:
        """A flow run in the initial state, not yet attached to a session.

        ``llm`` overrides the tier table for this run: one LLM for every tier (a
        ScriptedLLM in tests, a local model in development) or a tier → LLM mapping.
        """
        if context is None:
            try:
                context = self.context_type()
            except ValidationError:  # before any session starts; never pydantic's raw error
                needs = context_warnings(self)  # (which may quote a value)
                if not needs:
                    raise
                raise FlowError(f"flow {self.name!r}: {needs[0].message}; "
                                f"fix: {needs[0].hint}") from None
        return FlowRun(self, context, llm_override=llm, call_id=call_id)

    async def start(
        self,
        session: AgentSession[Any],
        *,
        context: C | None = None,
        llm: Model | Mapping[str, Model] | None = None,
        call_id: str | None = None,
        wait_opening: bool = False,
        **start_kwargs: Any,
    ) -> FlowRun[C]:
        """Start ``session`` in the initial state and return the run that drives it.

        ``start_kwargs`` go to ``AgentSession.start`` (``room=``, ``room_options=``…).
        """
        if context is None:
            context = _userdata_of(session, self.context_type)
        run = self.new_run(context, llm=llm, call_id=call_id)
        await run.attach(session, wait_opening=wait_opening, **start_kwargs)
        return run

    @asynccontextmanager
    async def session(
        self,
        *,
        context: C | None = None,
        llm: Model | Mapping[str, Model] | None = None,
        **session_kwargs: Any,
    ) -> AsyncIterator[FlowRun[C]]:
        """A started text-mode AgentSession for this flow (tests, ``handoff chat``)."""
        if isinstance(llm, LLM):  # LiveKit's own helpers (TaskGroup's summary) read session.llm
            session_kwargs.setdefault("llm", llm)
        async with AgentSession[C](**session_kwargs) as session:
            yield await self.start(session, context=context, llm=llm, wait_opening=True)

    def __repr__(self) -> str:
        return f"<Flow {self.name} v{self.version}: {len(self.states)} states, {len(self.edges)} edges>"


def _state_ref(ref: type[State[Any]] | str) -> str:
    return ref if isinstance(ref, str) else ref.state_name()


def _userdata_of(session: AgentSession[Any], context_type: type[C]) -> C | None:
    """The session's userdata when it is already a ``context_type``, else None."""
    try:
        userdata = session.userdata
    except ValueError:  # LiveKit's "AgentSession userdata is not set"
        return None
    return userdata if isinstance(userdata, context_type) else None
