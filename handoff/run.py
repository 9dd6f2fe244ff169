"""FlowRun: one call's binding of a Flow — its FSM model, Context and transition log.

Every move goes through one path, whoever asks (the LLM through a transition
tool, or code through :meth:`FlowRun.go`), one :class:`~handoff.move.Move` object:

    validity (the FSM table) → guard → body → LiveKit handoff → FSM commit

The run holds the call's state (FSM model, Context, log, return stack, caller turns)
and its LiveKit wiring (the session's events, the agents, the awaited tasks); the
decisions are the semantic core's (:mod:`handoff.semantics`).

The FSM commits when LiveKit actually makes the new agent active (the session's
``agent_handoff`` item), never before: a handoff LiveKit drops (the caller
interrupted the turn) leaves the FSM where it was and rolls the body's context
changes back. Between turns ``run.state == session.current_agent.id`` always.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from livekit.agents import (
    AgentSession,
    AgentTask,
    RunResult,
    llm,
)

from . import providers
from ._listeners import Hub
from ._livekit import on_speech_items
from .approval import ApprovalRecord
from .context import Context
from .errors import FlowError, TransitionCallError
from .failures import FailureWatch
from .graph import Edge
from .items_added import on_item_added
from .move import Move, by_code, drive, take_error_transition, transition_tool
from .observers import tell
from .realtime import Model
from .records import FlowObserver, Refusal, Resumption, TransitionRecord
from .redaction import Redactor
from .semantics import converted_arguments, offer, trigger_for
from .state import State, making
from .tasks import AwaitedTasks
from .tools_executed import on_tools_executed

if TYPE_CHECKING:
    from livekit.agents import (
        CloseEvent,
        ErrorEvent,
        SpeechCreatedEvent,
    )

    from .flow import Flow  # type-only: the Flow makes runs, so it sits above this module

logger = logging.getLogger("handoff")

C = TypeVar("C", bound=Context)



_Pending = Move
"""The move under way (``run._pending``): see :mod:`handoff.move`."""


class _FsmModel:
    """The object the shared Machine moves (kept apart so trigger names never clash)."""

    __slots__ = ("__weakref__", "state")

    state: str


class FlowRun(Generic[C]):
    """The per-call state of a Flow. Made by ``Flow.new_run`` / ``Flow.start``."""

    # one per call, thousands per process: no per-object __dict__ (DESIGN §8, heap per run)
    __slots__ = ("__weakref__", "_agent", "_fsm", "_hand_over_later", "_hub", "_kept",
                 "_llm_override",
                 "_pending", "_reached", "_session", "_session_started", "_settled",
                 "_speech_listened",
                 "_start_failed", "_tasks", "call_id", "closed", "context", "failures",
                 "flow", "log", "observers", "opening", "refusals", "resuming", "resumption", "return_stack",
                 "summary", "turns")

    def __init__(
        self,
        flow: Flow[C],
        context: C,
        *,
        llm_override: Model | Mapping[str, Model] | None = None,
        call_id: str | None = None,
    ) -> None:
        if not isinstance(context, flow.context_type):
            raise FlowError(
                f"flow {flow.name!r} needs a {flow.context_type.__name__} context, "
                f"got {type(context).__name__}"
            )
        self.flow = flow
        self.context = context
        self.call_id = call_id
        self.log: list[TransitionRecord] = []
        self.refusals: list[Refusal] = []
        self.observers: list[FlowObserver[FlowRun[Any]]] = []
        """This call's own observers (a watcher of one run), told after the flow-wide
        ``flow.observers`` that every run of the flow tells (:mod:`handoff.observers`)."""
        self.turns = 0
        """Caller turns so far (each user message of the session; see :meth:`caller_turn`):
        what tells a caller-driven round trip from a loop."""
        self._reached: set[str] | None = None
        """Call ids of this turn's transition tool calls that reached the run (the others
        LiveKit rejected before calling the tool: arguments the schema does not take);
        made by the first one."""
        self._session: AgentSession[C] | None = None
        self.resuming = False
        self.resumption: Resumption | None = None
        """How this run was picked up from a checkpoint (set by ``resume_or_start``)."""
        self.opening: RunResult[Any] | None = None
        self._llm_override = llm_override
        self._fsm = _FsmModel()
        flow.machine.add_model(self._fsm)
        self.closed = False
        self._pending: _Pending | None = None
        self._settled: asyncio.Event | None = None
        """Made when the error transition waits for a move under way; set when it ends."""
        self._agent: State[C] | None = None
        self.return_stack: list[str] = []
        """States to come back to: pushed by ``returns=True`` edges, popped by ``to=RETURN``."""
        self.failures = FailureWatch(flow.failure_policy, self._fail_over)
        self._tasks = AwaitedTasks()
        self._kept: dict[str, State[C]] | None = None
        """The agent of each ``keep_agent`` state, kept for the whole call (made by the
        first: most flows have none)."""
        self._session_started: asyncio.Event | None = None
        """Made by ``attach`` and set once ``AgentSession.start`` has returned (or failed):
        LiveKit ignores ``update_agent`` until then, apart from what ``current_agent``
        reports. None on a run without a session (most runs of exploration: ~0.75 KB each)
        and once the session has started (each live call: the same)."""
        self._hand_over_later: asyncio.Task[None] | None = None
        """A move asked for by the first state's on_enter, handed over once started."""
        self._start_failed = False
        self._speech_listened = False
        """Whether the session's speech_created reaches the run: once an agent on a realtime
        model is made (a pipeline model's calls reach the agent's llm_node instead)."""
        self._hub: Hub | None = None
        """The run's one listener per session event it follows, once attached (:meth:`listen`)."""
        self.summary: asyncio.Task[str | None] | None = None
        """The latest background history summary (``history="summary"``), if any."""

    # -- reading -------------------------------------------------------------------
    @property
    def state(self) -> str:
        """The current state: the FSM's, which is the single source of truth."""
        return self._fsm.state

    @property
    def session(self) -> AgentSession[C]:
        """The AgentSession this run drives; FlowError for a run with none (``new_run``)."""
        if self._session is None:
            raise FlowError("this run has no session: it was made by new_run(); "
                            "use flow.start(session) or flow.session()")
        return self._session

    def listen(self, name: str, callback: Callable[[Any], Any]) -> None:
        """Tell ``callback(event)`` each of the session's events ``name`` from now on,
        through the run's one listener for that name (how the call's checkpointer, event
        log and telemetry follow it: one listener per event for all of them, where LiveKit
        inspects each listener at every event). Needs the run attached to its session."""
        if self._hub is None:
            raise FlowError("listen() needs a run attached to its session")
        self._hub.add(name, callback)

    @property
    def attached(self) -> bool:
        """True once the run drives an AgentSession."""
        return self._session is not None

    @property
    def agent(self) -> State[C] | None:
        """The live agent of the current state (None before ``attach``)."""
        return self._agent

    @property
    def tasks(self) -> tuple[AgentTask[Any], ...]:
        """The LiveKit ``AgentTask``s the state's agent is awaiting, outermost first
        (``await GetEmailTask()`` in a tool; a ``TaskGroup`` and its current task). Between
        turns the session's active agent is ``run.agent`` or ``run.tasks[-1]``.

        A task that has completed is left out once LiveKit has moved on from it (it
        resumes its parent in the background, which may end just after a turn)."""
        return self._tasks.active(self._session.current_agent if self._session else None)

    @property
    def task_callers(self) -> tuple[asyncio.Task[Any], ...]:
        """The code still finishing after a LiveKit task of this call completed: the
        asyncio task of the state's tool, body or hook (or of a ``TaskGroup``) that
        awaited it and has not returned yet. Until it has, it resumes its agent in the
        background: a caller line sent meanwhile finds the agent paused (LiveKit refuses
        the turn, and the task's result never arrives), so a driver of text turns waits
        for these first (``handoff.testing.settle``)."""
        return self._tasks.callers()

    @property
    def in_transition(self) -> bool:
        return self._pending is not None

    @property
    def consecutive_failures(self) -> int:
        return self.failures.consecutive

    @property
    def failover(self) -> asyncio.Task[Any] | None:
        """The task taking the error transition, once failures or a loop called for it."""
        return self.failures.failover

    def available(self) -> list[str]:
        """The triggers valid from the current state."""
        return list(self.flow.triggers_from(self.state))

    def is_final(self) -> bool:
        return self.flow.is_final(self.state)

    def caller_turn(self) -> None:
        """Count one caller turn. The session's user messages count by themselves (voice
        and text); a driver of a run without a session (``new_run``) that stands for a
        caller calls this between the caller's requests. Moves with no caller turn
        between them are what the loop policy judges (:func:`handoff.semantics.loop_reason`)."""
        self.turns += 1

    def close(self) -> None:
        """End the run: it can no longer move (the shared Machine never kept it).

        Called when its session closes; a run made with ``new_run`` (no session) is
        closed by the caller, or by ``with flow.new_run() as run:``. State, context and
        log stay readable.
        """
        if self.closed:
            return
        self.closed = True
        self._tasks.clear(callers=True)
        pending = self._pending
        if pending is not None:  # the call ended before LiveKit applied the handoff
            pending.abandon("interrupted", "the call ended before the handoff happened")
        self._settle()

    def __enter__(self) -> FlowRun[C]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def restore(
        self,
        state: str,
        log: list[TransitionRecord] | None = None,
        return_stack: list[str] | None = None,
    ) -> None:
        """Put this run, not yet attached, in ``state`` to resume a checkpointed call.

        No transition is taken and no observer is told: the call already made those
        moves. ``log`` is the transition log so far, ``return_stack`` the states it may
        return to. ``resuming`` is set, so the state's agent does not speak first on
        ``attach`` (the caller already heard it).
        """
        if self._session is not None or self.closed:
            raise FlowError("restore() is for a run that is not attached to a session yet")
        if state not in self.flow.states:
            raise FlowError(f"flow {self.flow.name!r} has no state {state!r} to restore")
        unknown = [s for s in return_stack or () if s not in self.flow.states]
        if unknown:
            raise FlowError(f"flow {self.flow.name!r} has no state {unknown[0]!r} to return to")
        self.flow.machine.set_state(state, model=self._fsm)
        if log is not None:
            self.log[:] = log
            self.turns = max((r.turn for r in log), default=0)
        if return_stack is not None:
            self.return_stack[:] = return_stack
        self.resuming = True

    # -- attaching to LiveKit ------------------------------------------------------
    async def attach(
        self, session: AgentSession[C], *, wait_opening: bool = False, **start_kwargs: Any
    ) -> None:
        """Make ``session`` run this flow: its userdata is our Context, its agent our state.

        With ``wait_opening`` it returns once the first agent's opening reply is done
        (``run.opening`` then holds that RunResult, for tests and text chats).
        """
        if self._session is not None:
            raise FlowError("this flow run is already attached to a session")
        self._session = session
        self._session_started = started = asyncio.Event()
        if self.flow.failure_policy.max_failures > session.conn_options.max_unrecoverable_errors:
            logger.warning(
                "flow %s: max_failures=%d exceeds the session's max_unrecoverable_errors=%d; "
                "LiveKit would close the session before the error transition is taken",
                self.flow.name, self.flow.failure_policy.max_failures,
                session.conn_options.max_unrecoverable_errors)
        session.userdata = self.context
        drive(session, self)  # the flow's transition tools find this run from the session
        self._hub = Hub(session, self, _SESSION_EVENTS)  # one listener per event name
        self._agent = self.make_agent(self.state)
        self.prewarm()
        try:
            if wait_opening:
                self.opening = await session.start(self._agent, capture_run=True, **start_kwargs)
            else:
                await session.start(self._agent, **start_kwargs)
        except BaseException:
            self._start_failed = True
            raise
        finally:
            started.set()
            self._session_started = None  # started: nothing waits for it from now on
        if self.opening is not None:
            await self.opening
        if wait_opening and self._hand_over_later is not None:  # the first on_enter moved on
            await self._hand_over_later

    def make_agent(
        self, state: str, chat_ctx: llm.ChatContext | None = None, note: str | None = None
    ) -> State[C]:
        """A new agent for ``state`` (one per visit, or one per call for a State with
        ``keep_agent``), starting from ``chat_ctx``."""
        cls = self.flow.states[state]
        with making(self, chat_ctx, note):  # a LiveKit-style __init__(self) takes no arguments
            agent = cls()
        if (not self._speech_listened and self._session is not None
                and isinstance(agent.llm, llm.RealtimeModel)):
            self._speech_listened = True
            self.listen("speech_created", self._on_speech_created)
        if cls.keep_agent:
            if self._kept is None:
                self._kept = {}
            self._kept[state] = agent
        return agent

    def kept_agent(self, state: str) -> State[C] | None:
        """The agent kept for ``state`` (a ``keep_agent`` State visited before), or None."""
        return None if self._kept is None else self._kept.get(state)

    def llm_for(self, tier: str) -> Model:
        """The model of ``tier`` for this call (:func:`handoff.providers.llm_for`)."""
        return providers.llm_for(self.flow.tiers, self._llm_override, tier)

    def prewarm(self) -> None:
        """Warm every state's LLM and voice now (:func:`handoff.providers.prewarm`)."""
        providers.prewarm(self.flow.name, self.flow.states.values(), self.llm_for,
                          self.options_for)

    def options_for(self, state: type[State[Any]]) -> dict[str, Any]:
        """Extra ``Agent`` keyword arguments for ``state`` (``Flow.agent_options``)."""
        return self.flow.agent_options(state) if self.flow.agent_options else {}

    def note_approval(self, record: ApprovalRecord) -> None:
        """Tell the observers a step of an approval (``on_approval``, optional)."""
        tell(self, "on_approval", record)

    def note_failure(self, what: str) -> None:
        """Count one failure the caller would notice (see :mod:`handoff.failures`)."""
        self.failures.note(what)

    def shared_tools(self) -> list[llm.Tool | llm.Toolset]:
        """The flow-wide ordinary tools, offered in every state (``Flow(tools=[...])``)."""
        return list(self.flow.tools)

    def tools_for(self, state: str) -> list[llm.Tool | llm.Toolset]:
        """The transition tools the agent of ``state`` offers, as the semantic core decides
        (:func:`handoff.semantics.offer`): code-only transitions (``llm=False``) are not
        among them. Made once per flow and shared by its runs (``Flow.transition_tools``):
        a call finds its run from its session."""
        return [self._tool(edge) for edge in offer(self.flow, state).transitions]

    def _tool(self, edge: Edge) -> llm.FunctionTool:
        # one tool per declared transition: a trigger name two states share is two tools
        tools = self.flow.transition_tools
        tool = tools.get(edge.transition)
        if tool is None:
            tool = tools[edge.transition] = transition_tool(edge)
        return tool

    # -- moving --------------------------------------------------------------------
    async def go(self, target: str, /, **arguments: Any) -> TransitionRecord:
        """Move the flow from code, through the same checks as the LLM's tool calls.

        ``target`` is a trigger name, or a state name reachable by exactly one
        declared transition from the current state. Raises ``TransitionRefused``
        (with the reason) when the move is not allowed; nothing changes then.

        ``arguments`` are checked with the schema of the transition's tool, as the
        LLM's are, and the body gets them as validated (``"5"`` for an ``int``
        parameter is ``5``). Arguments it does not take raise
        :class:`~handoff.errors.TransitionCallError`: a bug in the calling code, not a
        refusal and not a failure of the call.
        """
        trigger = trigger_for(self.flow, self.state, target)
        return await by_code(self, trigger, self._checked_arguments(trigger, arguments))

    def _checked_arguments(self, trigger: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """``arguments`` converted by the tool schema of ``trigger`` from the current state
        (:func:`handoff.semantics.converted_arguments`); unchanged when ``trigger`` is not
        declared from here (``_prepare`` refuses it)."""
        edge = self.flow.triggers_from(self.state).get(trigger)
        if edge is None:
            return arguments
        try:
            return converted_arguments(edge, arguments)
        except TransitionCallError as exc:  # a value may be quoted: scrub it
            raise TransitionCallError(self._scrubbed(str(exc))) from None

    def _fail_over(self, reason: str) -> asyncio.Task[Any] | None:
        return take_error_transition(self, reason)

    def _on_speech_created(self, event: SpeechCreatedEvent) -> None:
        """On a realtime model, the agent learns its calls' pii arguments as LiveKit
        records each call (a pipeline model's ``llm_node`` sees them first)."""
        agent = self._agent
        if agent is not None and isinstance(agent.llm, llm.RealtimeModel):
            on_speech_items(event.speech_handle, agent.learn_pii)

    def reached(self, call_id: str) -> None:
        """The transition tool call ``call_id`` reached the run (LiveKit took its arguments)."""
        if self._reached is None:
            self._reached = set()
        self._reached.add(call_id)

    def _settle(self) -> None:
        """No move is under way any more: wake the error transition if it waits."""
        if self._settled is not None:
            self._settled.set()
            self._settled = None

    def _scrubbed(self, text: str) -> str:
        """``text`` without any value a sensitive Context field ever held (LLM-visible)."""
        return Redactor(self.context).text(text)

    def __repr__(self) -> str:
        return f"<FlowRun {self.flow.name} state={self.state} transitions={len(self.log)}>"


def _on_error(run: FlowRun[Any], event: ErrorEvent) -> None:
    run.failures.on_session_error(event)


def _on_close(run: FlowRun[Any], event: CloseEvent) -> None:
    run.close()


_SESSION_EVENTS: dict[str, Callable[[Any, Any], None]] = {
    "conversation_item_added": on_item_added,  # see handoff.items_added
    "function_tools_executed": on_tools_executed,  # see handoff.tools_executed
    "error": _on_error,
    "close": _on_close,
}
"""The session's events a run follows, each to its handler (told apart by ``type``)."""
