"""One move of a run: the five steps of the README, and one way to end.

    validity → guard → body → handoff → commit

A :class:`Move` is made by its validity step (:meth:`Move.begin`: the semantic core's
table says the trigger is available now, nothing else is under way, a side trip has
somewhere to return to) and then ends exactly once: **committed** (:meth:`Move.commit`,
when LiveKit has made the new agent active, or at once on a run without a session) or
**abandoned** (:meth:`Move.abandon`: the guard or body wrote is undone, the refusal is
recorded with its kind and reason, and a ``run.go()`` waiting for it is told).
``move.ended`` says which, ``move.reason`` why it was abandoned.

The run (:class:`~handoff.run.FlowRun`) owns the call's state and its LiveKit wiring; a
move acts on the run that made it (the one upward reference, type-only).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from livekit import agents
from livekit.agents import RunContext
from livekit.agents.voice import SpeechHandle

from .approval import ask, denial
from .context import ChangeJournal, Context, sensitive_fields
from .deadline import Deadline, in_agent_code
from .errors import FlowError, RefusalKind, TransitionRefused
from .fsm import move_to
from .graph import Edge
from .handover import hand_over, next_agent
from .history import add_summary
from .observers import tell
from .records import MovedBy, Refusal, TransitionRecord
from .refusals import record_refusal, refuse
from .semantics import approval_for, dropped_by, follow_up, loop_reason, stack_after, validity
from .sensitive_args import remember_arguments
from .state import body_self
from .transition import Chosen

if TYPE_CHECKING:
    from .run import FlowRun  # type-only: a move acts on the run that made it
    from .state import State

logger = logging.getLogger("handoff")

Ending = Literal["committed", "abandoned"]

_IMMUTABLE = (str, int, float, bool, type(None), bytes, tuple, frozenset)


def snapshot(context: Context) -> dict[str, Any]:
    """The Context's values now (mutable ones copied): the save point a move rolls back to."""
    return {k: v if isinstance(v, _IMMUTABLE) else copy.deepcopy(v)
            for k, v in context.__dict__.items()}


class Move:
    """One move under way: where from and to, with what, and how it ended."""

    __slots__ = ("agent", "arguments", "by", "call", "done", "dropped", "edge", "ended",
                 "journal", "note", "reason", "record", "result", "result_json", "run",
                 "source", "target", "to_summarise")

    def __init__(self, run: FlowRun[Any], edge: Edge, target: str, arguments: dict[str, Any],
                 journal: ChangeJournal, by: MovedBy) -> None:
        self.run = run
        self.edge = edge
        self.source = run.state
        self.target = target
        self.arguments = arguments
        self.journal = journal
        self.by = by
        self.note: str | None = None
        """What the next agent is told (the body's return, ``on_return``'s, the failover's)."""
        self.agent: State[Any] | None = None
        self.done: asyncio.Future[TransitionRecord] | None = None
        """What a ``run.go()`` outside agent code awaits."""
        self.record: TransitionRecord | None = None
        """Made before the commit when ``run.go()`` returned at once (called from agent code)."""
        self.to_summarise: list[agents.llm.ChatMessage] = []
        self.result: Any = None
        """A side trip's typed result (``to=RETURN`` with a declared type), as the type."""
        self.result_json: Any = None
        """The same, in its JSON form (the record's ``result``)."""
        self.call: agents.llm.FunctionCall | None = None
        """The model's call that asked for this move (None for a move code asked for)."""
        self.dropped: tuple[str, ...] = ()
        """Frames of the return stack the move drops (see :mod:`handoff.returns`)."""
        self.ended: Ending | None = None
        self.reason: str | None = None
        """Why it was abandoned (the refusal's reason)."""

    # -- 1. validity -------------------------------------------------------------------
    @classmethod
    async def begin(cls, run: FlowRun[Any], trigger: str, arguments: dict[str, Any], ctx: Any,
                    *, by: MovedBy) -> tuple[Move, Any]:
        """Validity, guard and body: the move, ready to hand over (and the body's output),
        or TransitionRefused (nothing changed)."""
        state = run.state
        if run.closed:
            raise FlowError(f"this run of {run.flow.name!r} is closed (its call ended)")
        tell(run, "on_transition_requested", trigger, by)
        under_way = run._pending.edge.trigger if run._pending is not None else None
        valid = validity(run.flow, state, trigger, run.return_stack, under_way=under_way)
        if valid.kind is not None:
            refuse(run, trigger, valid.kind, valid.reason or "")
        edge, target = valid.edge, valid.target
        assert edge is not None and target is not None
        remember_arguments(run.context, sensitive_fields(edge.transition.arguments_model()),
                           arguments)  # its pii arguments, before anything records them
        # from here on what the guard and the body write is journaled, so a refusal or an
        # interruption undoes exactly that, never an ordinary tool's write of the same turn
        journal, owner = run.context.open_journal(snapshot(run.context))
        move = cls(run, edge, target, dict(arguments), journal, by)
        run._pending = move
        timeout = run.flow.states[state].tool_timeout
        try:
            await move.guard(arguments, timeout)
            await move.approve(arguments)
            output = await move.body(ctx, arguments, timeout)
        finally:
            Context.stop_owning(owner)
        if run._pending is not move:  # the call ended while the body ran (rolled back)
            raise TransitionRefused(f"'{trigger}' was not taken: the call ended",
                                    trigger=trigger, kind="interrupted")
        move.settle_target(output)
        return move, output

    # -- 2. guard ----------------------------------------------------------------------
    async def guard(self, arguments: dict[str, Any], timeout: float) -> None:
        """The guard, with the arguments it declares; refused (rolled back) when it says no."""
        trigger = self.edge.trigger
        try:
            reason = await self.edge.transition.judge(self.run.context, arguments, timeout)
        except Exception as exc:
            logger.exception("guard of %s raised", trigger)
            self.refuse("error", f"'{trigger}' could not be checked ({exc}); "
                        "the flow stays where it is.")
        except BaseException:  # cancelled: the caller interrupted the turn mid-guard
            self.abandon("interrupted", f"'{trigger}' was interrupted while its guard was checked")
            raise
        if reason is not None:
            self.refuse("guard", f"'{trigger}' refused: {reason}")

    async def approve(self, arguments: dict[str, Any]) -> None:
        """The caller's yes to the transition's ``confirm=`` question (asked when the LLM
        takes it, :mod:`handoff.approval`); refused (``denied``, rolled back) on a no,
        silence or the call ending."""
        approval, trigger = approval_for(self.edge, self.by), self.edge.trigger
        if approval is None or not self.run.attached:
            return
        try:
            reason = await ask(approval, trigger, arguments, self.run.note_approval)
        except BaseException:  # cancelled: the caller's turn ended mid-question
            self.abandon("interrupted", f"'{trigger}' was interrupted while the caller was asked")
            raise
        if reason is not None and self.ended is not None:  # the call ended: already undone
            raise TransitionRefused(f"'{trigger}' was not taken: the call ended",
                                    trigger=trigger, kind="interrupted")
        if reason is not None:
            self.refuse("denied", f"'{trigger}' was not taken: {denial(trigger, reason)}")

    # -- 3. body -----------------------------------------------------------------------
    async def body(self, ctx: Any, arguments: dict[str, Any], timeout: float) -> Any:
        """The body, under the state's timeout; refused (rolled back) if it refuses or fails."""
        trigger, edge = self.edge.trigger, self.edge
        try:
            if edge.transition.does_nothing:  # only a docstring: nothing to run or wait for
                output = None
            else:
                async with Deadline(timeout):  # paused while a sub-task of the body talks
                    output = await edge.transition.run_body(self.body_self(), ctx, arguments)
            if isinstance(output, Chosen):  # a choosing body's note
                self.note = None if output.note is None else self.run._scrubbed(output.note)
            elif not edge.is_dynamic and not edge.transition.back_to \
                    and edge.transition.result_type is None:
                self.note = None if output is None else self.run._scrubbed(str(output))
        except TransitionRefused as exc:
            self.refuse("body", f"'{trigger}' refused: {exc.message}")
        except TimeoutError:
            self.refuse("error", f"'{trigger}' took longer than {timeout:g} s and was "
                        "not taken; the flow stays where it is.")
        except Exception as exc:
            logger.exception("transition body %s raised", trigger)
            self.refuse("error", f"'{trigger}' failed ({type(exc).__name__}: {exc}); "
                        "the flow stays where it is.")
        except BaseException:  # cancelled: the caller interrupted the turn mid-body
            self.abandon("interrupted", f"'{trigger}' was interrupted before it finished")
            raise
        return output

    def body_self(self) -> State[Any] | None:
        """The body's ``self``: the state's live agent, or on a run without a session one
        made for the body when it reads ``self`` (:func:`handoff.state.body_self`)."""
        run, tdef = self.run, self.edge.transition
        if run.attached or not tdef.reads_self:
            return run.agent
        return body_self(run, run.flow.states[self.source])

    def settle_target(self, output: Any) -> None:
        """The target a ``to=[...]`` body chose, and a side trip's typed result; refused as
        an error (the body's bug, or arguments the LLM may correct) when they do not fit."""
        edge, trigger = self.edge, self.edge.trigger
        if edge.is_dynamic:
            declared = [e.target for e in self.run.flow.edges
                        if e.transition is edge.transition and e.source == edge.source]
            chosen = edge.transition.chosen(output)
            if chosen not in declared:
                self.refuse("error", f"'{trigger}' chose {output!r}, which is not one of its "
                            f"declared targets ({', '.join(declared)}); the flow stays where "
                            "it is.")
            assert chosen is not None
            self.target = chosen
        if edge.transition.back_to or edge.transition.abandons:
            self.drop_frames(output)
        if edge.is_return and edge.transition.result_type is not None:
            try:
                self.result, self.result_json = edge.transition.check_result(output)
            except ValueError as exc:
                self.refuse("error", f"'{trigger}' refused: its result {exc}; "
                            "the flow stays where it is.")

    def drop_frames(self, output: Any) -> None:
        """The frames this move drops: the top one (``abandons``), or those above the frame
        a ``back_to`` body chose, which becomes the target; refused if it is not one."""
        tdef, trigger, stack = self.edge.transition, self.edge.trigger, self.run.return_stack
        if tdef.abandons:
            self.dropped = dropped_by(self.edge, stack, self.target) or ()
            return
        frame = tdef.chosen(output)
        dropped = dropped_by(self.edge, stack, frame) if frame in tdef.frames else None
        if dropped is None:  # not a declared frame, or not one this call interrupted
            self.refuse("body" if frame in tdef.frames else "error",
                        f"'{trigger}' chose {frame or output!r}, " + (
                            "which this call did not interrupt" if frame in tdef.frames
                            else "which is not one of its back_to frames")
                        + f"; the tasks it can go back to: {', '.join(reversed(stack))}.")
        assert frame is not None
        self.target, self.dropped = frame, dropped

    def handed_over(self) -> str:
        """The output of the model's transition call once the move is made."""
        return f"Handed over to {self.target}."

    # -- 4. handoff --------------------------------------------------------------------
    async def handoff(self, hand_over: Callable[[State[Any]], None] | None = None) -> State[Any]:
        """Build the next agent (with the history its policy carries) and ``hand_over`` it
        to LiveKit; a next agent that cannot be built or handed over (a tier whose key is
        missing, an ``__init__`` that raised) refuses the move as an error, rolled back."""
        try:
            self.agent = agent = await next_agent(self.run, self)
            if hand_over is not None:
                hand_over(agent)
        except Exception as exc:
            logger.error("could not hand %s over to %s: %s: %s", self.source, self.target,
                         type(exc).__name__, exc, exc_info=exc)
            self.refuse("error", f"'{self.edge.trigger}' could not be taken: {self.target} "
                        f"failed to start ({type(exc).__name__}: {exc}); the flow stays "
                        "where it is.")
        except BaseException:
            self.abandon()
            raise
        return self.agent

    def make_record(self) -> TransitionRecord:
        """The log entry of this move (made once; the commit logs the same one)."""
        if self.record is None:
            self.record = TransitionRecord(self.source, self.target, self.edge.trigger,
                                           self.arguments, time.time(), self.by,
                                           self.result_json, self.run.turns, self.dropped)
        return self.record

    # -- 5. commit ---------------------------------------------------------------------
    def commit(self) -> TransitionRecord:
        """The move happened: the FSM, the return stack, the log, the agent, observers."""
        run, edge = self.run, self.edge
        move_to(run.flow.machine, run._fsm, self.target)  # valid by the Machine's table
        run.return_stack[:] = stack_after(edge, run.return_stack, self.source, self.dropped)
        record = self.make_record()
        run.log.append(record)
        self.ended = "committed"
        run._pending = None
        run.context.close_journal(self.journal)
        run._settle()
        run._tasks.clear()  # a move replaces any task that was still talking
        if self.agent is not None:
            run._agent = self.agent
            model = run.llm_for(self.agent.tier)
            if self.to_summarise and isinstance(model, agents.llm.LLM):  # realtime: check warns
                run.summary = asyncio.get_running_loop().create_task(
                    add_summary(self.agent, self.to_summarise, model, run.failures.forgive,
                                prompt=self.agent.summary_prompt))
        if self.done is not None and not self.done.done():
            self.done.set_result(record)
        tell(run, "on_transition", record)
        run.failures.after_transition(loop_reason(run.log, run.flow.failure_policy))
        return record

    # -- the one way not to happen -----------------------------------------------------
    def abandon(self, kind: RefusalKind | None = None, reason: str = "") -> Refusal | None:
        """End the move unapplied: undo what its guard and body wrote (only that), record
        the refusal (``kind``; none when the caller's task was cancelled and re-raises),
        and refuse a ``run.go()`` waiting for it."""
        run = self.run
        self.journal.undo(run.context)
        run.context.close_journal(self.journal)
        self.ended = "abandoned"
        self.reason = reason or self.reason
        if run._pending is self:
            run._pending = None
            run._settle()
        if kind is None:
            return None
        refusal = record_refusal(run, self.edge.trigger, kind, reason)
        if self.done is not None and not self.done.done():
            self.done.set_exception(TransitionRefused(refusal.reason, trigger=self.edge.trigger,
                                                      kind=kind))
            self.done.exception()  # nobody may be waiting: do not warn
        return refusal

    def refuse(self, kind: RefusalKind, reason: str) -> NoReturn:
        """Abandon the move and raise the refusal to whoever asked for it."""
        refusal = self.abandon(kind, reason)
        assert refusal is not None
        raise TransitionRefused(refusal.reason, trigger=self.edge.trigger, kind=kind)

    def drop_if_unapplied(self) -> None:
        """The turn that asked for the move ended: if LiveKit dropped the handoff (the
        caller interrupted), abandon it."""
        if self.run._pending is not self or not self.run.attached:
            return
        if self.run.session.current_agent is self.agent:
            return  # LiveKit switches agents after the turn; the commit follows
        if self.agent is not None:
            self.agent.bridge = None  # a kept agent must not say it on a later visit
        self.abandon("interrupted", "the handoff was interrupted and did not happen")

    def __repr__(self) -> str:
        return (f"<Move {self.source} -{self.edge.trigger}-> {self.target} "
                f"{self.ended or 'under way'}>")


# -- who asks: code, or the LLM through a transition tool ------------------------------
class CodeContext:
    """What a transition body receives as ``ctx`` when code (not the LLM) moves the flow:
    the part of LiveKit's ``RunContext`` that has a meaning without a tool call.

    ``userdata`` and ``session`` (None for a run without a session, ``Flow.new_run``);
    ``speech_handle`` is the session's current speech (None when nothing is being said);
    ``function_call`` is None; ``disallow_interruptions()`` protects the current speech, if
    any; ``wait_for_playout()`` waits for it to be played, unless the move was asked for
    from inside that speech's own tool (where waiting would never end).
    """

    def __init__(self, run: FlowRun[Any]) -> None:
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


async def by_code(run: FlowRun[Any], trigger: str, arguments: dict[str, Any], *,
                  by: MovedBy = "code", note: str | None = None) -> TransitionRecord:
    """A move code asked for (``run.go``, the failure policy): its record once committed,
    at once from agent code (LiveKit applies the handoff once the turn ends)."""
    move, _ = await Move.begin(run, trigger, arguments, CodeContext(run), by=by)
    if note is not None:
        move.note = run._scrubbed(note)
    if not run.attached:
        record = move.commit()
        # no session, so nothing else runs the follow-up: the move's own call waits for it
        failover = run.failures.failover
        if by != "failover" and failover is not None and not failover.done():
            await asyncio.shield(failover)
        return record
    await move.handoff(functools.partial(hand_over, run))
    if in_agent_code():
        # a tool, body or hook: LiveKit applies the handoff once this turn ends, so
        # waiting here would wait for ourselves. The record is the one the commit logs.
        return move.make_record()
    assert move.done is not None
    return await move.done


_RUNS: weakref.WeakValueDictionary[int, FlowRun[Any]] = weakref.WeakValueDictionary()
"""The run each attached session drives, by the session's ``id`` (:func:`drive`): how a
transition's tool, made once per flow and shared by its runs, finds the call it moves
(the LLM's ``RunContext`` gives the session). Weak on the run, and not keyed by the
session itself: the run holds its session, so a weak-keyed entry would keep every ended
session alive. A session's ``id`` is not reused while its run lives (the run holds it),
and the entry goes with the run."""


def drive(session: agents.AgentSession[Any], run: FlowRun[Any]) -> None:
    """From now on ``session``'s transition tool calls move ``run`` (``FlowRun.attach``)."""
    _RUNS[id(session)] = run


def transition_tool(edge: Edge) -> agents.llm.FunctionTool:
    """The LiveKit function tool the LLM calls to take ``edge``'s transition: the body's
    parameters as the schema, its docstring as the description; a call starts the move
    on the run its session drives (:func:`drive`), and its result hands LiveKit the next
    agent (the old one does not answer the tool). Made once per flow and transition
    (``Flow.transition_tools``), not per call: it holds no run."""
    trigger, tdef = edge.trigger, edge.transition
    signature, annotations = tdef.tool_signature()
    ctx_name = next(iter(signature.parameters))

    async def invoke(**arguments: Any) -> Any:
        ctx: RunContext[Any] = arguments.pop(ctx_name)
        run = _RUNS.get(id(ctx.session))
        if run is None or run._session is not ctx.session:
            raise FlowError(f"transition {trigger!r} was called in a session no flow run "
                            "drives: a State's tools work in its own flow's session")
        run.reached(ctx.function_call.call_id)
        move, _ = await Move.begin(run, trigger, arguments, ctx, by="llm")
        move.call = ctx.function_call
        agent = await move.handoff()
        ctx.speech_handle.add_done_callback(lambda _: move.drop_if_unapplied())
        return agent, agents.llm.ToolResult(move.handed_over(), reply_required=False)

    invoke.__signature__ = signature  # type: ignore[attr-defined]
    invoke.__annotations__ = annotations
    invoke.__name__ = trigger
    invoke.__doc__ = tdef.doc
    return agents.llm.function_tool(invoke, name=trigger, description=tdef.description)


def take_error_transition(run: FlowRun[Any], reason: str) -> asyncio.Task[Any] | None:
    """Start the follow-up move the failure policy calls for (the run's FailureWatch
    callback): the error transition :func:`handoff.semantics.follow_up` names from the
    current state, taken once any move under way has ended; None when there is none."""
    move = follow_up(run.flow, run.state, run._scrubbed(reason))
    if move is None:
        logger.error("flow %s: %s, and no error transition from %s", run.flow.name, reason,
                     run.state)
        return None
    logger.warning("flow %s: %s; taking %s", run.flow.name, reason, move.trigger)
    arguments = {"reason": reason} if "reason" in move.arguments else {}

    async def take() -> TransitionRecord | None:
        while run._pending is not None and not run.closed:  # an in-flight handoff lands first
            run._settled = asyncio.Event()
            await run._settled.wait()
        if run.closed:
            return None
        try:
            return await by_code(run, move.trigger, arguments, by="failover", note=move.note)
        except TransitionRefused as exc:
            logger.error("error transition %s was refused: %s", move.trigger, exc.message)
            return None

    return asyncio.get_running_loop().create_task(take())
