"""resume_or_start: start a flow for a call, or pick the call up where it was left.

    checkpointer = Checkpointer(SQLiteStore("/var/lib/handoff/checkpoints.db"))
    FlowTelemetry().install(flow)

    async def entrypoint(ctx: JobContext) -> None:
        session = AgentSession(...)
        run = await resume_or_start(flow, session, checkpointer=checkpointer, room=ctx.room)

If the store holds a checkpoint for the call id (a worker died mid-call and the
call was dispatched again), the run starts in the checkpointed state with the
saved Context and recent history, and the agent does not speak first: the caller
already heard the opening. Otherwise the flow starts as usual. Either way the run
is checkpointed from then on.

Everything a resume needs (the document, the Context, the state, the return stack,
the history) is read and validated *before* the session is attached: a checkpoint
with any defect starts the call fresh, never a call that fails half-resumed. A call
that ended left a tombstone: a new call on its id starts fresh.

A checkpoint that cannot be opened (its pii section sealed with a key this worker
lacks, a format or flow it does not read, corrupt, a Context it cannot restore) is
never overwritten: it is *set aside* under ``<call id>#unopened-<seq>`` (kept 30 days,
see :meth:`~handoff.persistence.CheckpointStore.set_aside`) and the call goes on fresh
under its id; ``handoff migrate FLOW --recover`` puts it back once the key is. If it
cannot be moved (a store outage, a store without ``set_aside``), the fresh call is
checkpointed under ``<call id>#fresh-<µs>`` instead, and the unopened one stays where it is.

A checkpoint of an older flow version goes through the flow's migrations first
(see :mod:`handoff.migrations`): the call resumes where the migrations put it
(outcome ``migrated``). When a migration fails, or no migration reads that version
and the checkpoint names a state that no longer exists or Context fields that are
gone or changed type, the run resumes in the ``fallback`` state (default: the Flow's
declared ``resume_fallback``, else its initial state) with every Context field that
still fits, and a warning says what was dropped (outcome ``migration_failed`` or
``fallback``). The outcome is counted in ``handoff_resumes_total``, put on the
``handoff.resume`` span, kept as ``run.resumption`` (the event log records it) and
given to every flow observer that has an ``on_resume(run, resumption)`` method.
A store outage while loading is logged and counted, and the call starts fresh
rather than failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, TypeVar

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents import llm as llm_types
from livekit.agents.telemetry import tracer

from ._listeners import listener
from .context import Context
from .flow import Flow
from .observers import tell
from .persistence import fit
from .persistence.checkpoint import Checkpoint, CheckpointFormatError
from .persistence.fit import plan_resume
from .persistence.migrate import Upgrade, upgrade
from .persistence.store import CheckpointStore
from .persistence.writer import Checkpointer
from .realtime import Model
from .records import Resumption
from .run import FlowRun
from .state import State
from .telemetry.observer import FlowTelemetry

logger = logging.getLogger("handoff.resume")

C = TypeVar("C", bound=Context)

SIP_CALL_ID_ATTRIBUTE = "sip.callID"
RESUME_SPAN = "handoff.resume"




def call_id_of(room: rtc.Room) -> str:
    """The call id of a LiveKit room: its SIP participant's call id, else the room name."""
    for participant in room.remote_participants.values():
        call_id = participant.attributes.get(SIP_CALL_ID_ATTRIBUTE)
        if call_id:
            return call_id
    return room.name


async def load_checkpoint(
    checkpointer: Checkpointer, call_id: str
) -> Checkpoint | CheckpointFormatError | None:
    """The call's checkpoint (a tombstone if it ended); the error when one is stored but
    cannot be read; None when there is none or the store cannot be reached."""
    store: CheckpointStore = checkpointer.store
    try:
        return await checkpointer.load(call_id)
    except CheckpointFormatError as exc:
        return exc
    except Exception as exc:
        checkpointer.metrics.checkpoint_errors.labels(store.kind).inc()
        logger.warning("could not load the checkpoint of call %s (%s: %s); starting fresh",
                       call_id, type(exc).__name__, exc)
    return None


async def set_aside(checkpointer: Checkpointer, call_id: str, seq: int | None,
                    why: str) -> str:
    """Keep the call's unopened checkpoint out of the way of the call that goes on;
    returns the id the new call is checkpointed under (``call_id`` once it is moved)."""
    try:
        moved = await checkpointer.store.set_aside(call_id, seq)
    except Exception as exc:  # an outage, or a store that cannot move a checkpoint
        moved, failure = None, f"{type(exc).__name__}: {exc}"
    else:
        failure = "it changed meanwhile"
    if moved is not None:
        logger.warning("call %s: its checkpoint cannot be restored (%s); set aside as %r for "
                       "`handoff migrate --recover`; starting fresh", call_id, why, moved)
        return call_id
    fresh = f"{call_id}#fresh-{time.time_ns() // 1000}"
    logger.warning("call %s: its checkpoint cannot be restored (%s) nor set aside (%s); kept "
                   "as it is; starting fresh, checkpointed as %r", call_id, why,
                   failure, fresh)
    return fresh


async def resume_or_start(
    flow: Flow[C],
    session: AgentSession[Any],
    *,
    checkpointer: Checkpointer,
    call_id: str | None = None,
    room: rtc.Room | None = None,
    context: C | None = None,
    llm: Model | Mapping[str, Model] | None = None,
    fallback: str | type[State[Any]] | None = None,
    resume_prompt: str | None = None,
    telemetry: FlowTelemetry | None = None,
    wait_opening: bool = False,
    **start_kwargs: Any,
) -> FlowRun[C]:
    """Attach ``session`` to a run of ``flow`` for the call: resumed if checkpointed.

    Args:
        checkpointer: loads the call's checkpoint and checkpoints the run from now on.
        call_id: the key of the call; default :func:`call_id_of` ``room``.
        room: the LiveKit room (also passed on to ``session.start``).
        context: the Context of a fresh start (ignored when resuming).
        llm: overrides the tier table, as in ``Flow.new_run``.
        fallback: where a checkpoint whose state no longer exists resumes.
        resume_prompt: if set, the resumed agent speaks first with these instructions
            (e.g. "apologise briefly for the interruption and continue"); by default
            it waits for the caller, saying nothing the caller already heard.
        telemetry: tracks the run (active runs, time in state) when given.
        wait_opening: as in ``FlowRun.attach`` (only for a fresh start).
        start_kwargs: passed to ``AgentSession.start``.
    """
    if room is not None:
        start_kwargs["room"] = room
    if call_id is None:
        if room is None:
            raise ValueError("resume_or_start needs a call_id or a room to take it from")
        call_id = call_id_of(room)

    checkpointer.install(flow)
    loaded_or_error = await load_checkpoint(checkpointer, call_id)
    unopened: str | None = None  # why the stored checkpoint cannot be used
    checkpoint = None if isinstance(loaded_or_error, Exception) else loaded_or_error
    if isinstance(loaded_or_error, Exception):
        unopened = str(loaded_or_error)
    ended_seq = 0
    if checkpoint is not None and checkpoint.ended:
        logger.info("call %s ended earlier; a new call on its id starts fresh", call_id)
        ended_seq = checkpoint.seq
        checkpoint = None
    stored_seq = checkpoint.seq if checkpoint is not None else None
    if checkpoint is not None and checkpoint.flow != flow.name:
        unopened = f"a checkpoint of flow {checkpoint.flow!r}, not {flow.name!r}"
        checkpoint = None

    restored: FlowRun[C] | None = None
    history: llm_types.ChatContext | None = None
    outcome = "fresh"
    upgraded: Upgrade | None = None
    loaded = checkpoint  # as stored; ``checkpoint`` becomes the migrated one
    if checkpoint is not None:
        try:
            upgraded = upgrade(flow, checkpoint, checkpointer.sealer)
            checkpoint = upgraded.checkpoint
            restored, outcome = restore_run(flow, checkpoint, checkpointer, llm=llm,
                                            fallback=fallback, upgraded=upgraded)
            history = flow.history_policies[restored.state].carry(checkpoint.chat_ctx())
        except Exception as exc:  # a checkpoint must never stop the call from starting
            unopened = f"{type(exc).__name__}: {exc}"
            if restored is not None:
                restored.close()
            restored, checkpoint = None, None

    key = call_id  # where this call's checkpoints go
    if unopened is not None:
        checkpointer.metrics.resumes.labels(flow.name, "failed").inc()
        outcome = "failed"
        key = await set_aside(checkpointer, call_id, stored_seq, unopened)
        ended_seq = max(ended_seq, stored_seq or 0)
    if restored is None:
        run = flow.new_run(context, llm=llm, call_id=call_id)
        await run.attach(session, wait_opening=wait_opening, **start_kwargs)
    else:
        assert checkpoint is not None and history is not None
        run = restored
        _clear_resuming_when_the_call_moves_on(run, session)
        await run.attach(session, **start_kwargs)
        assert run.agent is not None
        await run.agent.update_chat_ctx(history)
        if resume_prompt:
            session.generate_reply(instructions=resume_prompt)
    if outcome != "fresh":
        _trace_resume(run, loaded if checkpoint is not None else None, outcome, upgraded)
    checkpointer.track(run, key, resumed=checkpoint, after_seq=ended_seq)
    if restored is not None and loaded is not None:
        run.resumption = Resumption(
            call_id, outcome, run.state, loaded.state, loaded.flow_version, flow.version,
            upgraded.steps if upgraded else (),
            str(upgraded.error) if upgraded and upgraded.error else None)
        tell(run, "on_resume", run.resumption)
    if telemetry is not None:
        telemetry.track(run)
    return run


def restore_run(
    flow: Flow[C],
    checkpoint: Checkpoint,
    checkpointer: Checkpointer,
    *,
    llm: Model | Mapping[str, Model] | None = None,
    fallback: str | type[State[Any]] | None = None,
    upgraded: Upgrade | None = None,
) -> tuple[FlowRun[C], str]:
    """A run in the checkpoint's state with its Context and log (not attached yet),
    and how it went: ``resumed``, ``migrated`` (through the flow's migrations),
    ``fallback`` when something had to be dropped, ``migration_failed`` when a
    migration failed (the run is then in the fallback state).

    ``upgraded`` is the checkpoint already taken through the migrations (by
    ``resume_or_start``); by default that is done here.
    """
    plan = plan_resume(flow, checkpoint, checkpointer.sealer, upgraded=upgraded,
                       fallback=_state_name(fallback) if fallback is not None else None)
    checkpoint = plan.upgraded.checkpoint
    if plan.upgraded.error is not None:
        logger.warning(
            "call %s: checkpoint of %s v%s could not be migrated to v%s (%s); resuming in %r "
            "with the Context fields that still fit", checkpoint.call_id, checkpoint.flow,
            checkpoint.flow_version, flow.version, plan.upgraded.error, plan.state)
    elif plan.lost_state:
        logger.warning(
            "call %s: checkpoint of %s v%s is in state %r, which flow %s v%s no longer has; "
            "resuming in %r", checkpoint.call_id, checkpoint.flow, checkpoint.flow_version,
            checkpoint.state, flow.name, flow.version, plan.state)
    if plan.dropped:
        logger.warning("call %s: context fields %s of the checkpoint do not fit %s v%s and "
                       "were dropped", checkpoint.call_id, ", ".join(sorted(plan.dropped)),
                       flow.name, flow.version)
    if plan.lost_returns:
        logger.warning("call %s: return states %s no longer exist and were dropped",
                       checkpoint.call_id, ", ".join(plan.lost_returns))
    context: C = plan.context  # type: ignore[assignment]  # the flow's own Context type
    run = flow.new_run(context, llm=llm, call_id=checkpoint.call_id)
    run.restore(plan.state, log=checkpoint.records(), return_stack=list(plan.stack))
    checkpointer.metrics.resumes.labels(flow.name, plan.outcome).inc()
    logger.info("call %s resumed in %s (%d transitions so far)", checkpoint.call_id, plan.state,
                len(run.log))
    return run, plan.outcome


def restore_context(flow: Flow[C], data: dict[str, Any]) -> tuple[C, list[str]]:
    """The flow's Context from saved data, dropping fields that no longer fit."""
    context, dropped = fit.restore_context(flow, data)
    return context, dropped


def _trace_resume(run: FlowRun[Any], checkpoint: Checkpoint | None, outcome: str,
                  upgraded: Upgrade | None = None) -> None:
    """A ``handoff.resume`` span in the new session's trace: this call was picked up."""
    attributes: dict[str, Any] = {
        "handoff.flow": run.flow.name,
        "handoff.flow_version": run.flow.version,
        "handoff.state": run.state,
        "handoff.resume.outcome": outcome,
    }
    if checkpoint is not None:
        attributes.update({
            "handoff.resume.checkpoint_state": checkpoint.state,
            "handoff.resume.checkpoint_version": checkpoint.flow_version,
            "handoff.resume.transitions": len(checkpoint.log),
            "handoff.resume.age_seconds": max(0.0, time.time() - checkpoint.saved_at),
        })
    if upgraded is not None and upgraded.steps:
        attributes["handoff.resume.migrations"] = list(upgraded.steps)
        attributes["handoff.resume.from_version"] = upgraded.source_version
        if upgraded.error is not None:
            attributes["handoff.resume.migration_error"] = str(upgraded.error)
    tracer.start_span(RESUME_SPAN, attributes=attributes).end()


def _state_name(ref: str | type[State[Any]]) -> str:
    return ref if isinstance(ref, str) else ref.state_name()


def _clear_resuming_when_the_call_moves_on(run: FlowRun[Any], session: AgentSession[Any]) -> None:
    """``run.resuming`` silences the restored agent's entry; later entries must speak."""

    def on_item(event: Any) -> None:
        item = event.item
        # the session's own start emits a handoff to the first agent (old_agent_id None),
        # before its on_enter runs: that one must leave the flag set
        moved_on = item.type == "message" or (
            item.type == "agent_handoff" and item.old_agent_id is not None)
        if run.resuming and moved_on:
            run.resuming = False
            session.off("conversation_item_added", on_item)

    session.on("conversation_item_added", listener(on_item))
