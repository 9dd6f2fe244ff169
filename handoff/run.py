"""FlowRun: one call's binding of a Flow — its FSM model, Context and transition log.

Every move goes through one path, whoever asks (the LLM through a transition
tool, or code through :meth:`FlowRun.go`):

    validity (the FSM table) → guard → body → LiveKit handoff → FSM commit

The FSM commits when LiveKit actually makes the new agent active (the session's
``agent_handoff`` item), never before: a handoff LiveKit drops (the caller
interrupted the turn) leaves the FSM where it was and rolls the body's context
changes back. Between turns ``run.state == session.current_agent.id`` always.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from livekit.agents import (
    Agent,
    AgentSession,
    AgentTask,
    RunContext,
    RunResult,
    llm,
    stt,
    tts,
)
from livekit.agents.utils import is_given
from livekit.agents.voice import SpeechHandle
from pydantic import ValidationError

from ._listeners import listener
from .approval import ApprovalRecord, ask, denial
from .context import ChangeJournal, Context, sensitive_fields
from .deadline import Deadline, in_agent_code
from .errors import FlowError, RefusalKind, TransitionCallError, TransitionRefused
from .failures import FailureWatch
from .graph import Edge
from .history import add_summary, revisit, whole_call
from .records import MovedBy, Refusal, Resumption, Returned, TransitionRecord
from .redaction import Redactor
from .returns import frames_above
from .sensitive_args import remember_arguments, scrub_calls
from .state import State, making
from .transition import Chosen, TransitionDef

if TYPE_CHECKING:
    from livekit.agents import ConversationItemAddedEvent, FunctionToolsExecutedEvent

    from .flow import Flow  # type-only: the Flow makes runs, so it sits above this module

logger = logging.getLogger("handoff")

C = TypeVar("C", bound=Context)

_IMMUTABLE = (str, int, float, bool, type(None), bytes, tuple, frozenset)


def _function_tool_ids(tools: Sequence[llm.Tool | llm.Toolset]) -> set[str]:
    """The names of the function tools in ``tools``, those of Toolsets included
    (LiveKit's ``EndCallTool`` offers ``end_call`` from a Toolset)."""
    ids: set[str] = set()
    for tool in tools:
        if isinstance(tool, llm.Toolset):
            ids |= _function_tool_ids(tool.tools)
        elif isinstance(tool, llm.FunctionTool | llm.RawFunctionTool):
            ids.add(tool.id)
    return ids


class CodeContext(Generic[C]):
    """What a transition body receives as ``ctx`` when code (not the LLM) moves the flow:
    the part of LiveKit's ``RunContext`` that has a meaning without a tool call.

    ``userdata`` and ``session`` (None for a run without a session, ``Flow.new_run``);
    ``speech_handle`` is the session's current speech (None when nothing is being said);
    ``function_call`` is None; ``disallow_interruptions()`` protects the current speech, if
    any; ``wait_for_playout()`` waits for it to be played, unless the move was asked for
    from inside that speech's own tool (where waiting would never end).
    """

    def __init__(self, run: FlowRun[C]) -> None:
        self.userdata = run.context
        self.session = run.session if run.attached else None
        self.function_call = None

    @property
    def speech_handle(self) -> SpeechHandle | None:
        return self.session.current_speech if self.session is not None else None

    def disallow_interruptions(self) -> None:
        if (speech := self.speech_handle) is not None and not speech.interrupted:
            speech.allow_interruptions = False

    async def wait_for_playout(self) -> None:
        if (speech := self.speech_handle) is not None and not in_agent_code():
            await speech.wait_for_playout()


@dataclass(slots=True)
class _Pending:
    edge: Edge
    source: str
    target: str
    arguments: dict[str, Any]
    journal: ChangeJournal
    by: MovedBy
    note: str | None = None
    agent: State[Any] | None = None
    done: asyncio.Future[TransitionRecord] | None = field(default=None)
    record: TransitionRecord | None = None
    """Made before the commit when ``run.go()`` returned at once (called from agent code)."""
    to_summarise: list[llm.ChatMessage] = field(default_factory=list)
    result: Any = None
    """A side trip's typed result (``to=RETURN`` with a declared type), as the type."""
    result_json: Any = None
    """The same, in its JSON form (the record's ``result``)."""
    call: llm.FunctionCall | None = None
    """The model's call that asked for this move (None for a move code asked for)."""
    dropped: tuple[str, ...] = ()
    """Frames of the return stack the move drops (see :mod:`handoff.returns`)."""


def _handed_over(pending: _Pending) -> str:
    """The output of the model's transition call once the move is made."""
    return f"Handed over to {pending.target}."


class _FsmModel:
    """The object the shared Machine moves (kept apart so trigger names never clash)."""

    state: str


class FlowRun(Generic[C]):
    """The per-call state of a Flow. Made by ``Flow.new_run`` / ``Flow.start``."""

    def __init__(
        self,
        flow: Flow[C],
        context: C,
        *,
        llm_override: llm.LLM | Mapping[str, llm.LLM] | None = None,
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
        self._tools: dict[TransitionDef, llm.FunctionTool] = {}
        self.return_stack: list[str] = []
        """States to come back to: pushed by ``returns=True`` edges, popped by ``to=RETURN``."""
        self.failures = FailureWatch(flow.failure_policy, self._take_error_transition)
        self._tasks: list[AgentTask[Any]] = []
        self._task_tools: frozenset[str] = frozenset()
        """The tools of the latest tasks: the one that completes a task reports after the
        state's agent resumed, and is not a made-up name of the state's."""
        self._task_callers: list[tuple[AgentTask[Any], asyncio.Task[Any]]] = []
        self._kept: dict[str, State[C]] = {}
        """The agent of each ``keep_agent`` state, kept for the whole call."""
        self._session_started = asyncio.Event()
        """Set once ``AgentSession.start`` has returned (or failed): LiveKit ignores
        ``update_agent`` until then, apart from what ``current_agent`` reports."""
        self._hand_over_later: asyncio.Task[None] | None = None
        """A move asked for by the first state's on_enter, handed over once started."""
        self._start_failed = False
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
        active = self._session.current_agent if self._session is not None else None
        return tuple(t for t in self._tasks if not t.done() or t is active)

    @property
    def task_callers(self) -> tuple[asyncio.Task[Any], ...]:
        """The code still finishing after a LiveKit task of this call completed: the
        asyncio task of the state's tool, body or hook (or of a ``TaskGroup``) that
        awaited it and has not returned yet. Until it has, it resumes its agent in the
        background: a caller line sent meanwhile finds the agent paused (LiveKit refuses
        the turn, and the task's result never arrives), so a driver of text turns waits
        for these first (``handoff.testing.settle``)."""
        self._task_callers[:] = [(t, c) for t, c in self._task_callers if not c.done()]
        awaiting = {c for t, c in self._task_callers if not t.done()}  # e.g. a TaskGroup's next task
        return tuple(dict.fromkeys(c for t, c in self._task_callers if t.done() and c not in awaiting))

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

    def close(self) -> None:
        """End the run: it can no longer move (the shared Machine never kept it).

        Called when its session closes; a run made with ``new_run`` (no session) is
        closed by the caller, or by ``with flow.new_run() as run:``. State, context and
        log stay readable.
        """
        if self.closed:
            return
        self.closed = True
        self._tasks.clear()
        self._task_callers.clear()
        pending = self._pending
        if pending is not None:  # the call ended before LiveKit applied the handoff
            self._end_unapplied(pending, "the call ended before the handoff happened")
        self._settle()

    def _end_unapplied(self, pending: _Pending, reason: str) -> None:
        """End a move LiveKit never applied: rolled back, refused as interrupted, and its
        waiter (``run.go()`` outside agent code) told so."""
        self._abandon(pending)
        self._record_refusal(pending.edge.trigger, "interrupted", reason)
        if pending.done is not None and not pending.done.done():
            pending.done.set_exception(TransitionRefused(reason, trigger=pending.edge.trigger,
                                                         kind="interrupted"))
            pending.done.exception()  # nobody may be waiting: do not warn

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
        if self.flow.failure_policy.max_failures > session.conn_options.max_unrecoverable_errors:
            logger.warning(
                "flow %s: max_failures=%d exceeds the session's max_unrecoverable_errors=%d; "
                "LiveKit would close the session before the error transition is taken",
                self.flow.name, self.flow.failure_policy.max_failures,
                session.conn_options.max_unrecoverable_errors)
        session.userdata = self.context
        session.on("conversation_item_added", listener(self._on_item_added))
        session.on("function_tools_executed", listener(self._on_tools_executed))
        session.on("error", listener(self.failures.on_session_error))
        session.on("close", listener(lambda _: self.close()))
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
            self._session_started.set()
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
        if cls.keep_agent:
            self._kept[state] = agent
        return agent

    def llm_for(self, tier: str) -> llm.LLM:
        override = self._llm_override
        if override is None:
            return self.flow.tiers.llm(tier)
        if isinstance(override, llm.LLM):
            return override
        if tier in override:
            return override[tier]
        if "*" in override:
            return override["*"]
        return self.flow.tiers.llm(tier)

    def prewarm(self) -> None:
        """Warm the providers of every state now, not at its first handoff.

        LiveKit prewarms an agent's LLM, STT and TTS when its activity starts, which for a
        handoff is the moment the caller is waiting. The flow's models are made once per
        process (tiers, voices), so warming them all when the call starts costs one
        connection each (LiveKit calls the same ``prewarm()`` at every activity start, so
        providers already expect repeated calls).

        Best-effort: a model or voice that cannot be made here (a tier whose key is
        missing) never ends the call. It is logged once per call, and a move into a
        state that needs it is refused and counted when it is asked for
        (``_cannot_start``), so the call goes on where it is.
        """
        unready: dict[str, list[str]] = {}  # what failed → the states that need it
        for cls in self.flow.states.values():
            try:
                self.llm_for(cls.tier).prewarm()
            except Exception as exc:
                unready.setdefault(f"tier {cls.tier!r} cannot be used ({exc})", []).append(cls.name)
            try:
                for provider in self.options_for(cls).values():
                    if isinstance(provider, stt.STT | tts.TTS):
                        provider.prewarm()
            except Exception as exc:
                unready.setdefault(f"the voice of {cls.name} cannot be used ({exc})",
                                   []).append(cls.name)
        for reason, states in unready.items():
            logger.warning("flow %s: %s; a move into %s will be refused until it can",
                           self.flow.name, reason, ", ".join(states))

    def options_for(self, state: type[State[Any]]) -> dict[str, Any]:
        """Extra ``Agent`` keyword arguments for ``state`` (``Flow.agent_options``)."""
        return self.flow.agent_options(state) if self.flow.agent_options else {}

    def note_failure(self, what: str) -> None:
        """Count one failure the caller would notice (see :mod:`handoff.failures`)."""
        self.failures.note(what)

    def shared_tools(self) -> list[llm.Tool | llm.Toolset]:
        """The flow-wide ordinary tools, offered in every state (``Flow(tools=[...])``)."""
        return list(self.flow.tools)

    def tools_for(self, state: str) -> list[llm.Tool | llm.Toolset]:
        """The transition tools the agent of ``state`` offers (made once per run); code-only
        transitions (``llm=False``) are not among them."""
        return [self._tool(edge) for edge in self.flow.triggers_from(state).values()
                if edge.transition.offered]

    def _tool(self, edge: Edge) -> llm.FunctionTool:
        # one tool per declared transition: a trigger name two states share is two tools,
        # each with its own description, parameters and body
        trigger = edge.trigger
        tdef = edge.transition
        if tdef not in self._tools:

            signature, annotations = tdef.tool_signature()
            ctx_name = next(iter(signature.parameters))

            async def invoke(**arguments: Any) -> Any:
                ctx = arguments.pop(ctx_name)
                return await self._take_from_llm(trigger, ctx, arguments)

            invoke.__signature__ = signature  # type: ignore[attr-defined]
            invoke.__annotations__ = annotations
            invoke.__name__ = trigger
            invoke.__doc__ = tdef.doc
            self._tools[tdef] = llm.function_tool(invoke, name=trigger,
                                                  description=tdef.description)
        return self._tools[tdef]

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
        trigger = self._trigger_for(target)
        return await self._go(trigger, self._checked_arguments(trigger, arguments), by="code")

    def _checked_arguments(self, trigger: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """``arguments`` validated by the tool schema of ``trigger`` from the current
        state (those given, coerced; omitted ones keep the body's defaults); unchanged
        when ``trigger`` is not declared from here (``_prepare`` refuses it)."""
        edge = self.flow.triggers_from(self.state).get(trigger)
        if edge is None:
            return arguments
        known = {p.name for p in edge.transition.params}
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise TransitionCallError(
                f"{trigger}() takes no argument {', '.join(map(repr, unknown))}; its "
                f"parameters are: {', '.join(sorted(known)) or 'none'}")
        # an untyped parameter is text to the LLM; from code it takes anything, as its body does
        untyped = {p.name for p in edge.transition.params if p.annotation is p.empty}
        checked = {k: str(v) if k in untyped else v for k, v in arguments.items()}
        try:
            valid = edge.transition.arguments_model().model_validate(checked)
        except ValidationError as exc:  # the values may be sensitive: name the places only
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or trigger}: {e['msg']}"
                                 for e in exc.errors(include_input=False, include_url=False))
            raise TransitionCallError(self._scrubbed(
                f"{trigger}() was called with arguments its transition does not take: "
                f"{problems}")) from None
        return {name: arguments[name] if name in untyped else getattr(valid, name)
                for name in arguments}

    async def _go(
        self, trigger: str, arguments: dict[str, Any], *, by: MovedBy, note: str | None = None
    ) -> TransitionRecord:
        pending, _ = await self._prepare(trigger, arguments, CodeContext(self), by=by)
        if note is not None:
            pending.note = self._scrubbed(note)
        if self._session is None:
            return self._commit(pending)
        try:
            pending.agent = await self._next_agent(pending)
            pending.done = asyncio.get_running_loop().create_future()
            if self._session_started.is_set():
                self._session.update_agent(pending.agent)
            else:  # the first state's on_enter, while AgentSession.start still runs
                self._hand_over_later = asyncio.get_running_loop().create_task(
                    self._hand_over_once_started(pending))
        except Exception as exc:  # nothing half-done: the body's changes go, the run can move
            self._cannot_start(pending, exc)
        except BaseException:
            self._abandon(pending)
            raise
        if in_agent_code():
            # a tool, body or hook: LiveKit applies the handoff once this turn ends, so
            # waiting here would wait for ourselves. The record is the one the commit logs.
            pending.record = TransitionRecord(pending.source, pending.target, trigger,
                                              pending.arguments, time.time(), pending.by,
                                              pending.result_json, pending.dropped)
            return pending.record
        assert pending.done is not None
        return await pending.done

    async def _hand_over_once_started(self, pending: _Pending) -> None:
        """Hand ``pending`` to LiveKit once ``AgentSession.start`` has returned: before,
        ``update_agent`` only renames ``current_agent`` (LiveKit 1.8.9), and a start that
        captures the opening reply waits for the very on_enter asking for the move."""
        await self._session_started.wait()
        if self._pending is not pending or self._session is None or self.closed:
            return
        if self._start_failed:
            self._end_unapplied(pending, "the call did not start")
            return
        assert pending.agent is not None and pending.done is not None
        self._session.update_agent(pending.agent)
        with contextlib.suppress(Exception):  # refused or interrupted: the run says so
            await asyncio.shield(pending.done)

    async def _take_from_llm(self, trigger: str, ctx: RunContext[C], arguments: dict[str, Any]) -> Any:
        pending, _ = await self._prepare(trigger, arguments, ctx, by="llm")
        pending.call = ctx.function_call
        try:
            pending.agent = await self._next_agent(pending)
        except Exception as exc:
            self._cannot_start(pending, exc)
        except BaseException:
            self._abandon(pending)
            raise
        ctx.speech_handle.add_done_callback(lambda _: self._drop_if_unapplied(pending))
        # the new agent speaks next (from on_enter); the old one must not answer the tool
        return pending.agent, llm.ToolResult(_handed_over(pending), reply_required=False)

    def _cannot_start(self, pending: _Pending, exc: Exception) -> None:
        """The next agent could not be built or handed to LiveKit (a tier whose key is
        missing, a State whose ``__init__`` raised): the move is rolled back and refused,
        and counts as a failure (the caller notices)."""
        self._abandon(pending)
        logger.error("could not hand %s over to %s: %s: %s", pending.source, pending.target,
                     type(exc).__name__, exc, exc_info=exc)
        self._refuse(pending.edge.trigger, "error",
                     f"'{pending.edge.trigger}' could not be taken: {pending.target} failed "
                     f"to start ({type(exc).__name__}: {exc}); the flow stays where it is.")

    def _take_error_transition(self, reason: str) -> asyncio.Task[Any] | None:
        """Start taking the error transition of the current state (the FailureWatch's
        callback); None when there is none from here."""
        trigger = self.flow.states[self.state].error_transition or (
            self.flow.failure_policy.error_transition
        )
        table = self.flow.triggers_from(self.state)
        if trigger is None or trigger not in table:
            logger.error("flow %s: %s, and no error transition from %s",
                         self.flow.name, reason, self.state)
            return None
        logger.warning("flow %s: %s; taking %s", self.flow.name, reason, trigger)
        params = {p.name for p in table[trigger].transition.params}
        arguments = {"reason": reason} if "reason" in params else {}
        note = (f"The call was moved here automatically because {self._scrubbed(reason)}. "
                "Tell the caller briefly that something went wrong and what happens now.")
        return asyncio.get_running_loop().create_task(self._take_failover(trigger, arguments, note))

    async def _take_failover(self, trigger: str, arguments: dict[str, Any], note: str) -> Any:
        while self._pending is not None and not self.closed:  # an in-flight handoff lands first
            self._settled = asyncio.Event()
            await self._settled.wait()
        if self.closed:
            return None
        try:
            return await self._go(trigger, arguments, by="failover", note=note)
        except TransitionRefused as exc:
            logger.error("error transition %s was refused: %s", trigger, exc.message)
            return None

    def _trigger_for(self, target: str) -> str:
        table = self.flow.triggers_from(self.state)
        if target in table:
            return target
        if target in self.flow.states:
            to_target = sorted({e.trigger for e in self.flow.edges if e.target == target
                                and e.source in (self.state, None) and e.trigger in table
                                and table[e.trigger].transition is e.transition})
            if len(to_target) == 1:
                return to_target[0]
            if len(to_target) > 1:
                raise TransitionRefused(
                    f"several transitions lead from {self.state} to {target}: "
                    f"{', '.join(to_target)}; name the trigger",
                    trigger=target, kind="invalid",
                )
        return target  # _prepare refuses it with the list of what is available

    async def _prepare(
        self, trigger: str, arguments: dict[str, Any], ctx: Any, *, by: MovedBy
    ) -> tuple[_Pending, Any]:
        state = self.state
        if self.closed:
            raise FlowError(f"this run of {self.flow.name!r} is closed (its call ended)")
        self._tell_observers("on_transition_requested", trigger, by)
        if self._pending is not None:
            self._refuse(trigger, "busy",
                         f"'{trigger}' was not taken: the transition "
                         f"'{self._pending.edge.trigger}' is already under way this turn. "
                         "Only one transition can happen per turn.")
        edge = self.flow.triggers_from(state).get(trigger)
        if edge is None:
            options = ", ".join(self.flow.triggers_from(state)) or "none"
            self._refuse(trigger, "invalid",
                         f"'{trigger}' is not available in state {state}; "
                         f"the transitions available now are: {options}.")
        assert edge is not None
        remember_arguments(self.context, sensitive_fields(edge.transition.arguments_model()),
                           arguments)  # its pii arguments, before anything records them
        target = edge.target
        if edge.is_return:
            if not self.return_stack:
                self._refuse(trigger, "invalid", f"'{trigger}' refused: there is no earlier "
                             "state to return to in this call.")
            target = self.return_stack[-1]
        # from here on what the guard and the body write is journaled, so a refusal or an
        # interruption undoes exactly that, never an ordinary tool's write of the same turn
        journal, owner = self.context.open_journal(self._save_context())
        pending = _Pending(edge, state, target, dict(arguments), journal, by)
        self._pending = pending
        timeout = self.flow.states[state].tool_timeout
        try:
            output = await self._guard_and_body(pending, ctx, arguments, timeout)
        finally:
            Context.stop_owning(owner)
        if self._pending is not pending:  # the call ended while the body ran (rolled back)
            raise TransitionRefused(f"'{trigger}' was not taken: the call ended",
                                    trigger=trigger, kind="interrupted")
        if edge.is_dynamic:
            chosen, declared = self._chosen_target(pending, output)
            if chosen is None:  # a body choosing an undeclared target is a bug: a failure
                self._abandon(pending)
                self._refuse(trigger, "error",
                             f"'{trigger}' chose {output!r}, which is not one of its declared "
                             f"targets ({', '.join(declared)}); the flow stays where it is.")
            assert chosen is not None
            pending.target = chosen
        if edge.transition.back_to or edge.transition.abandons:
            self._drop_frames(pending, output)
        if edge.is_return and edge.transition.result_type is not None:
            try:
                pending.result, pending.result_json = edge.transition.check_result(output)
            except ValueError as exc:  # the body's bug, or the LLM's arguments: it may retry
                self._abandon(pending)
                self._refuse(trigger, "error", f"'{trigger}' refused: its result {exc}; "
                             "the flow stays where it is.")
        return pending, output

    def _drop_frames(self, pending: _Pending, output: Any) -> None:
        """The frames ``pending`` drops: the top one (``abandons``), or those above the frame
        a ``back_to`` body chose, which becomes the target; refused if it is not one."""
        tdef, trigger = pending.edge.transition, pending.edge.trigger
        if tdef.abandons:
            pending.dropped = tuple(self.return_stack[-1:])
            return
        frame = tdef.chosen(output)
        dropped = frames_above(self.return_stack, frame) if frame in tdef.frames else None
        if dropped is None:  # not a declared frame, or not one this call interrupted
            self._abandon(pending)
            self._refuse(trigger, "body" if frame in tdef.frames else "error",
                         f"'{trigger}' chose {frame or output!r}, " + (
                             "which this call did not interrupt" if frame in tdef.frames
                             else "which is not one of its back_to frames")
                         + f"; the tasks it can go back to: {', '.join(reversed(self.return_stack))}.")
        assert frame is not None and dropped is not None
        pending.target, pending.dropped = frame, dropped

    async def _guard_and_body(
        self, pending: _Pending, ctx: Any, arguments: dict[str, Any], timeout: float
    ) -> Any:
        """Check the guard, then run the body; refuse (rolled back) if either says no."""
        trigger, edge = pending.edge.trigger, pending.edge
        try:
            reason = await edge.transition.judge(self.context, arguments, timeout)
        except Exception as exc:
            self._abandon(pending)
            logger.exception("guard of %s raised", trigger)
            self._refuse(trigger, "error", f"'{trigger}' could not be checked ({exc}); "
                         "the flow stays where it is.")
        except BaseException:  # cancelled: the caller interrupted the turn mid-guard
            self._abandon(pending)
            self._record_refusal(trigger, "interrupted",
                                 f"'{trigger}' was interrupted while its guard was checked")
            raise
        if reason is not None:
            self._abandon(pending)
            self._refuse(trigger, "guard", f"'{trigger}' refused: {reason}")
        if (denied := await self._approval(pending, arguments)) is not None:  # confirm=
            self._abandon(pending)
            self._refuse(trigger, "denied", f"'{trigger}' was not taken: {denied}")
        try:
            async with Deadline(timeout):  # paused while a sub-task of the body talks
                output = await edge.transition.run_body(self._agent, ctx, arguments)
            if isinstance(output, Chosen):  # a choosing body's note
                pending.note = None if output.note is None else self._scrubbed(output.note)
            elif not edge.is_dynamic and not edge.transition.back_to \
                    and edge.transition.result_type is None:
                pending.note = None if output is None else self._scrubbed(str(output))
        except TransitionRefused as exc:
            self._abandon(pending)
            self._refuse(trigger, "body", f"'{trigger}' refused: {exc.message}")
        except TimeoutError:
            self._abandon(pending)
            self._refuse(trigger, "error", f"'{trigger}' took longer than {timeout:g} s and was "
                         "not taken; the flow stays where it is.")
        except Exception as exc:
            self._abandon(pending)
            logger.exception("transition body %s raised", trigger)
            self._refuse(trigger, "error",
                         f"'{trigger}' failed ({type(exc).__name__}: {exc}); "
                         "the flow stays where it is.")
        except BaseException:  # cancelled: the caller interrupted the turn mid-body
            self._abandon(pending)
            self._record_refusal(trigger, "interrupted",
                                 f"'{trigger}' was interrupted before it finished")
            raise
        return output

    async def _approval(self, pending: _Pending, arguments: dict[str, Any]) -> str | None:
        """The caller's answer to the transition's ``confirm=`` question, when the LLM asked
        for the move: None (yes, or nothing to ask), else why not. Cancelled (the caller
        interrupted): the move is abandoned and the cancellation goes on."""
        approval, trigger = pending.edge.transition.approval, pending.edge.trigger
        if approval is None or pending.by != "llm" or self._session is None:
            return None
        try:
            reason = await ask(approval, trigger, arguments, self.note_approval)
        except BaseException:
            self._abandon(pending)
            self._record_refusal(trigger, "interrupted",
                                 f"'{trigger}' was interrupted while the caller was asked")
            raise
        return None if reason is None else denial(trigger, reason)

    def note_approval(self, record: ApprovalRecord) -> None:
        """Tell the observers a step of an approval (``on_approval``, optional)."""
        self._tell_observers("on_approval", record)

    def _chosen_target(self, pending: _Pending, output: Any) -> tuple[str | None, list[str]]:
        """(the target a ``to=[...]`` body returned if it declared it, else None; the
        declared targets)."""
        edge = pending.edge
        declared = [e.target for e in self.flow.edges
                    if e.transition is edge.transition and e.source == edge.source]
        chosen = edge.transition.chosen(output)
        return (chosen if chosen in declared else None), declared

    async def _next_agent(self, pending: _Pending) -> State[C]:
        """The agent ``pending`` hands over to, with the history its policy carries: a new
        one, or the state's kept agent (``keep_agent``) with that history merged in."""
        policy = pending.edge.transition.history or self.flow.history_policies[pending.target]
        old = llm.ChatContext.empty() if policy.kind == "none" else whole_call(
            self._agent.chat_ctx if self._agent is not None else None,
            self._session.history if self._session is not None else None)
        if policy.kind == "summary":
            pending.to_summarise = policy.left_behind(old)
        handoff = None if pending.call is None else (pending.call, _handed_over(pending))
        carried = policy.carry(old, handoff, scrub=self._scrubbed)
        kept = self._kept.get(pending.target)
        if kept is not None and kept is not self._agent:
            agent = kept  # not running, so the updates set its own copies at once (LiveKit's API)
            await agent.update_chat_ctx(revisit(kept.chat_ctx, carried),
                                        exclude_invalid_function_calls=False)
        else:
            agent = self.make_agent(pending.target, chat_ctx=carried, note=pending.note)
            if policy.tools:  # keep the calls of tools the new agent lacks (LiveKit drops them)
                await agent.update_chat_ctx(carried, exclude_invalid_function_calls=False)
        if pending.edge.is_return:
            await self._hand_back(agent, pending)
        if agent is kept or pending.edge.is_return:
            await agent.update_instructions(agent.compose_instructions(self.context, pending.note))
        agent.bridge = self._bridge_line(pending)
        return agent

    async def _hand_back(self, agent: State[C], pending: _Pending) -> None:
        """A side trip returns: the state that started it receives the result in its
        ``on_return``, as part of the move (its Context writes are the move's, rolled back
        with it), and what the hook returns is its agent's note."""
        returned = Returned(pending.source, pending.edge.trigger, pending.result)
        token = Context.start_owning(pending.journal)
        try:
            async with Deadline(agent.tool_timeout):
                note = await agent.on_return(returned)
        finally:
            Context.stop_owning(token)
        if note is not None:
            pending.note = self._scrubbed(str(note))

    def _bridge_line(self, pending: _Pending) -> str | None:
        try:
            return pending.edge.transition.bridge_line(self.context)
        except Exception as exc:  # a bridge line never stops a handoff
            logger.exception("the say= of %s raised", pending.edge.trigger)
            self.note_failure(f"say= of {pending.edge.trigger} raised {exc!r}")
            return None

    def _commit(self, pending: _Pending) -> TransitionRecord:
        edge = pending.edge
        event = self.flow.machine.events[edge.trigger]
        if pending.dropped:
            del self.return_stack[-len(pending.dropped):]
        if edge.is_return:
            event.trigger(self._fsm, dest=pending.target)
            self.return_stack.pop()
        elif edge.is_dynamic:
            event.trigger(self._fsm, dest=pending.target)
        else:
            event.trigger(self._fsm)
        if edge.transition.returns:
            self.return_stack.append(pending.source)
        record = pending.record or TransitionRecord(
            pending.source, self.state, pending.edge.trigger, pending.arguments, time.time(),
            pending.by, pending.result_json, pending.dropped)
        self.log.append(record)
        self._pending = None
        self.context.close_journal(pending.journal)
        self._settle()
        self._tasks.clear()  # a move replaces any task that was still talking
        if pending.agent is not None:
            self._agent = pending.agent
            if pending.to_summarise:
                model = self.llm_for(pending.agent.tier)
                self.summary = asyncio.get_running_loop().create_task(
                    add_summary(pending.agent, pending.to_summarise, model, self.failures.forgive,
                                prompt=pending.agent.summary_prompt))
        if pending.done is not None and not pending.done.done():
            pending.done.set_result(record)
        self._tell_observers("on_transition", record)
        self.failures.after_transition(self.log)
        return record

    def _on_item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if item.type != "agent_handoff":
            return
        pending = self._pending
        active = self._session.current_agent if self._session is not None else None
        if (
            pending is not None
            and pending.agent is not None
            and item.new_agent_id == pending.agent.id
            and self._is_active(pending.agent)
        ):
            self._commit(pending)
        elif active is not None and active is self._agent:
            self._end_tasks()  # the state's agent resumed: the tasks it awaited are done
        elif active is not None and active in self._tasks:
            del self._tasks[self._tasks.index(active) + 1:]  # a task group resumed
        elif isinstance(active, AgentTask) and active.id == item.new_agent_id:
            self._start_task(active)
        elif item.new_agent_id != self.state:
            logger.error(
                "agent %s became active outside the flow (FSM state %s); "
                "move the flow with run.go() instead of session.update_agent()",
                item.new_agent_id, self.state,
            )

    def _on_tools_executed(self, event: FunctionToolsExecutedEvent) -> None:
        """Count the state's failed tools. A name the agent does not offer (the LLM made
        it up) is a refusal, not a failure: LiveKit told the LLM the tools it has. A task's
        own tools report to the tool awaiting the task, which counts if it fails."""
        scrub_calls(event.function_calls, self._scrubbed)  # before LiveKit stores them
        agent = self._agent
        if agent is None or self._session is None or self._session.current_agent is not agent:
            return
        offered = _function_tool_ids(agent.tools)
        for call in event.function_calls:
            if call.name not in offered and call.name not in self._task_tools:
                self._record_refusal(call.name, "invalid",
                                     f"'{call.name}' is not a tool of state {self.state}; "
                                     f"the transitions available now are: "
                                     f"{', '.join(self.available()) or 'none'}.")
        self.failures.on_tools_executed(event, self.flow.triggers_from(self.state), offered)

    def _start_task(self, task: AgentTask[Any]) -> None:
        """A LiveKit AgentTask awaited by the state's agent (or by a task of it) became
        active: it talks with its parent's models unless it names its own, and the
        deadline of the tool awaiting it stops while it talks with the caller."""
        parent: Agent = self._tasks[-1] if self._tasks else self._agent  # type: ignore[assignment]
        self._task_tools = (self._task_tools if self._tasks else frozenset()) | frozenset(
            _function_tool_ids(task.tools))
        self._tasks.append(task)
        caller = asyncio.current_task()  # LiveKit starts the task from the code awaiting it
        self._task_callers[:] = [(t, c) for t, c in self._task_callers if not c.done()]
        if caller is not None:
            self._task_callers.append((task, caller))
        inherited = {name: getattr(parent, name) for name in ("llm", "tts", "stt")
                     if not is_given(getattr(task, name)) and is_given(getattr(parent, name))}
        if inherited:
            task.update_options(**inherited)
        if (deadline := Deadline.current()) is not None:
            deadline.pause()

    def _end_tasks(self) -> None:
        if self._tasks:
            self._tasks.clear()
            if (deadline := Deadline.current()) is not None:
                deadline.restart()

    def _is_active(self, agent: State[C]) -> bool:
        return self._session is not None and self._session.current_agent is agent

    def _drop_if_unapplied(self, pending: _Pending) -> None:
        """The turn that asked for ``pending`` ended; if LiveKit dropped the handoff, undo it."""
        if self._pending is not pending or self._session is None:
            return
        if self._session.current_agent is pending.agent:
            return  # LiveKit switches agents after the turn; the commit follows
        if pending.agent is not None:
            pending.agent.bridge = None  # a kept agent must not say it on a later visit
        self._abandon(pending)
        self._record_refusal(pending.edge.trigger, "interrupted",
                             "the handoff was interrupted and did not happen")
        if pending.done is not None and not pending.done.done():
            pending.done.set_exception(TransitionRefused("the handoff was interrupted",
                                                         trigger=pending.edge.trigger,
                                                         kind="interrupted"))

    # -- context save points (rolled back when a move is abandoned) ----------------
    def _save_context(self) -> dict[str, Any]:
        return {
            k: v if isinstance(v, _IMMUTABLE) else copy.deepcopy(v)
            for k, v in self.context.__dict__.items()
        }

    def _abandon(self, pending: _Pending) -> None:
        """Undo what the move's guard and body wrote (only that) and end it."""
        pending.journal.undo(self.context)
        self.context.close_journal(pending.journal)
        if self._pending is pending:
            self._pending = None
            self._settle()

    def _settle(self) -> None:
        """No move is under way any more: wake the error transition if it waits."""
        if self._settled is not None:
            self._settled.set()
            self._settled = None

    def _scrubbed(self, text: str) -> str:
        """``text`` without any value a sensitive Context field ever held (LLM-visible)."""
        return Redactor(self.context).text(text)

    def _tell_observers(self, hook: str, *args: Any) -> None:
        """Call ``hook(run, *args)`` on every observer that has it (``on_transition_requested``
        is optional); an observer that raises is logged and never stops the call."""
        for observer in self.flow.observers:
            method = getattr(observer, hook, None)
            if method is None:
                continue
            try:
                method(self, *args)
            except Exception:
                logger.exception("flow observer %r failed in %s", observer, hook)

    def _refuse(self, trigger: str, kind: RefusalKind, reason: str) -> None:
        refusal = self._record_refusal(trigger, kind, reason)
        raise TransitionRefused(refusal.reason, trigger=trigger, kind=kind)

    def _record_refusal(self, trigger: str, kind: RefusalKind, reason: str) -> Refusal:
        """Record and report a refusal; its reason (what the LLM is told) is scrubbed of
        sensitive values, as it may quote an exception or a guard's text."""
        refusal = Refusal(self.state, trigger, self._scrubbed(reason), kind, time.time())
        self.refusals.append(refusal)
        self._tell_observers("on_refusal", refusal)
        if kind == "error":
            self.failures.note(refusal.reason)
        return refusal

    def __repr__(self) -> str:
        return f"<FlowRun {self.flow.name} state={self.state} transitions={len(self.log)}>"
