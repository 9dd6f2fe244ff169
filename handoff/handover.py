"""The handoff step of a move: the next agent, and giving it to LiveKit.

A move's fourth step (:meth:`Move.handoff <handoff.move.Move.handoff>`) builds the agent
it hands over to, with the history its policy carries (a new agent, or the state's kept
one with that history merged in), lets the state a side trip returns to receive the
result (``on_return``), reads the bridge line (``say=``), and hands the agent to LiveKit
(``session.update_agent``), once ``AgentSession.start`` has returned. Functions of the
run and the move: the run holds the call's state, the move its transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from livekit.agents import llm

from .context import Context
from .deadline import Deadline
from .history import revisit, whole_call
from .records import Returned

if TYPE_CHECKING:
    from .move import Move  # type-only: the move under way
    from .run import FlowRun  # type-only: the run the move belongs to
    from .state import State

logger = logging.getLogger("handoff")


def hand_over(run: FlowRun[Any], agent: State[Any]) -> None:
    """Give the move under way's agent to LiveKit (or once the session has started)."""
    pending, session = run._pending, run._session
    assert pending is not None and session is not None
    pending.done = asyncio.get_running_loop().create_future()
    started = run._session_started  # None once AgentSession.start has returned
    if started is None or started.is_set():
        session.update_agent(agent)
    else:  # the first state's on_enter, while AgentSession.start still runs
        run._hand_over_later = asyncio.get_running_loop().create_task(
            _hand_over_once_started(run, pending, started))


async def _hand_over_once_started(run: FlowRun[Any], pending: Move,
                                  started: asyncio.Event) -> None:
    """Hand ``pending`` to LiveKit once ``AgentSession.start`` has returned (``started``
    is set): before, ``update_agent`` only renames ``current_agent`` (LiveKit 1.8.9), and
    a start that captures the opening reply waits for the very on_enter asking for the move."""
    await started.wait()
    if run._pending is not pending or run._session is None or run.closed:
        return
    if run._start_failed:
        pending.abandon("interrupted", "the call did not start")
        return
    assert pending.agent is not None and pending.done is not None
    run._session.update_agent(pending.agent)
    with contextlib.suppress(Exception):  # refused or interrupted: the run says so
        await asyncio.shield(pending.done)


async def next_agent(run: FlowRun[Any], pending: Move) -> State[Any]:
    """The agent ``pending`` hands over to, with the history its policy carries: a new
    one, or the state's kept agent (``keep_agent``) with that history merged in."""
    policy = pending.edge.transition.history or run.flow.history_policies[pending.target]
    old = llm.ChatContext.empty() if policy.kind == "none" else whole_call(
        run._agent.chat_ctx if run._agent is not None else None,
        run._session.history if run._session is not None else None,
        last=policy.count if policy.kind == "last" else None)
    if policy.kind == "summary":
        pending.to_summarise = policy.left_behind(old)
    handoff = None if pending.call is None else (pending.call, pending.handed_over())
    carried = policy.carry(old, handoff, scrub=run._scrubbed)
    kept = run.kept_agent(pending.target)
    if kept is not None and kept is not run._agent:
        agent = kept  # not running, so the updates set its own copies at once (LiveKit's API)
        await agent.update_chat_ctx(revisit(kept.chat_ctx, carried),
                                    exclude_invalid_function_calls=False)
    else:
        agent = run.make_agent(pending.target, chat_ctx=carried, note=pending.note)
        if policy.tools:  # keep the calls of tools the new agent lacks (LiveKit drops them)
            await agent.update_chat_ctx(carried, exclude_invalid_function_calls=False)
    if pending.edge.is_return:
        await _hand_back(run, agent, pending)
    if agent is kept or pending.edge.is_return:
        await agent.update_instructions(agent.compose_instructions(run.context, pending.note))
    agent.bridge = _bridge_line(run, pending)
    return agent


async def _hand_back(run: FlowRun[Any], agent: State[Any], pending: Move) -> None:
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
        pending.note = run._scrubbed(str(note))


def _bridge_line(run: FlowRun[Any], pending: Move) -> str | None:
    try:
        return pending.edge.transition.bridge_line(run.context)
    except Exception as exc:  # a bridge line never stops a handoff
        logger.exception("the say= of %s raised", pending.edge.trigger)
        run.note_failure(f"say= of {pending.edge.trigger} raised {exc!r}")
        return None
