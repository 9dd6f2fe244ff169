"""Per-turn context: what a State's ``before_reply`` hook adds to one model request.

LiveKit composes a request from the agent's instructions and its history; its
``on_user_turn_completed`` runs only after a *spoken* turn, never for text turns
(``session.run(user_input=...)``). The one step every request takes, in voice and text
mode, for a first reply, a reply after tools or a reply an agent starts itself, is the
agent's ``llm_node`` (a public override point of LiveKit's ``Agent``). A State runs its
``before_reply`` there, and the text it returns goes into that request only, as a system
message right after the instructions: the instructions stay the same from request to
request (a provider can cache them as a prefix, as LiveKit's ``Instructions(dynamic=...)``
does) and nothing of it is stored in the agent's history.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from livekit.agents import Agent, llm

from .deadline import Deadline, hook_scope

logger = logging.getLogger("handoff")

TURN_CONTEXT_ID = "handoff.turn_context"
"""The id of the system message that carries a request's per-turn context."""

Hook = Callable[[llm.ChatContext], Awaitable[str | None]]


def add_turn_context(chat_ctx: llm.ChatContext, text: str | None) -> None:
    """Put ``text`` into ``chat_ctx`` (a request's own copy) right after its leading system
    messages, replacing what an earlier request of the same turn put there."""
    while (old := chat_ctx.get_by_id(TURN_CONTEXT_ID)) is not None:
        chat_ctx.items.remove(old)
    if not text:
        return
    at = 0
    while at < len(chat_ctx.items) and (item := chat_ctx.items[at]).type == "message" \
            and item.role in ("system", "developer"):
        at += 1
    chat_ctx.items.insert(at, llm.ChatMessage(id=TURN_CONTEXT_ID, role="system", content=[text]))


async def run_before_reply(
    agent: Agent,
    chat_ctx: llm.ChatContext,
    *,
    hook: Hook,
    timeout: float,
    scrub: Callable[[str], str],
    on_error: Callable[[str], None],
) -> None:
    """Run ``hook`` (the state's ``before_reply``) and add its text to ``chat_ctx``. A hook
    that raises or runs past ``timeout`` is logged and counted (``on_error``), and the
    model answers without it."""
    text: str | None = None
    try:
        with hook_scope():  # run.go() from the hook returns without waiting for the handoff
            async with Deadline(timeout):
                text = await hook(chat_ctx.copy())
    except Exception as exc:
        what = "took too long" if isinstance(exc, TimeoutError) else f"raised {exc!r}"
        logger.exception("%s.before_reply %s", type(agent).__name__, what)
        on_error(f"{type(agent).__name__}.before_reply {what}")
    add_turn_context(chat_ctx, scrub(str(text)) if text is not None else None)
