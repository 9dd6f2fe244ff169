"""What a run learns from LiveKit's ``conversation_item_added``: a caller turn, and each
``agent_handoff`` item — the moment LiveKit made an agent active.

That moment commits the move under way (the FSM moves only when LiveKit's handoff has
happened, never before), or tells the run that an ``AgentTask`` its state awaits started,
resumed or ended. An agent made active by anything else (``session.update_agent`` from
user code) is logged: the flow cannot follow a move it did not make.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from livekit.agents import AgentTask

if TYPE_CHECKING:
    from livekit.agents import ConversationItemAddedEvent

    from .run import FlowRun  # type-only: the run listens to its session with this

logger = logging.getLogger("handoff")


def on_item_added(run: FlowRun[Any], event: ConversationItemAddedEvent) -> None:
    """Count a caller turn, or follow an agent LiveKit made active."""
    item = event.item
    if item.type == "message" and item.role == "user":
        run.caller_turn()
        return
    if item.type != "agent_handoff":
        return
    pending, session, tasks = run._pending, run._session, run._tasks
    active = session.current_agent if session is not None else None
    if (
        pending is not None
        and pending.agent is not None
        and item.new_agent_id == pending.agent.id
        and active is pending.agent
    ):
        pending.commit()
    elif active is not None and active is run.agent:
        tasks.end()  # the state's agent resumed: the tasks it awaited are done
    elif isinstance(active, AgentTask) and active in tasks:
        tasks.resumed(active)  # a task group resumed
    elif isinstance(active, AgentTask) and active.id == item.new_agent_id:
        tasks.start(active, run.agent)
    elif item.new_agent_id != run.state:
        logger.error(
            "agent %s became active outside the flow (FSM state %s); "
            "move the flow with run.go() instead of session.update_agent()",
            item.new_agent_id, run.state,
        )
