"""History policies: what of the old agent's conversation the new agent receives.

LiveKit starts every new Agent with an empty chat context. A policy decides what
to carry over on a handoff:

- ``full``    every user and assistant message so far;
- ``last:N``  the last N of those messages;
- ``none``    nothing (the context brief in the instructions still carries the facts);
- ``summary`` / ``summary:N``  the new agent starts at once with the last N messages
  (default 6); a summary of the older ones, written by the new state's tier LLM in the
  background, is added to its context when ready. It never delays the handoff, and a
  summary that fails or times out changes nothing.

The old agent's own tool calls are never carried: the new agent does not have
those tools (LiveKit would drop the calls anyway) and what they established lives
in the Context, which reaches the new agent through its brief.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from livekit.agents import llm

if TYPE_CHECKING:
    from livekit.agents import Agent

logger = logging.getLogger("handoff")

DEFAULT_SUMMARY_TAIL = 6
SUMMARY_TIMEOUT = 15.0
SUMMARY_INSTRUCTIONS = (
    "Summarise this phone call so far for the colleague taking it over, in at most five "
    "short lines. Keep names, numbers, what was verified and what was decided."
)
SUMMARY_PREFIX = "Summary of the call before the messages that follow: "

PolicyKind = Literal["full", "last", "none", "summary"]


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    kind: PolicyKind
    count: int = 0

    @classmethod
    def parse(cls, spec: str | HistoryPolicy) -> HistoryPolicy:
        """Parse ``"full"``, ``"none"``, ``"last:N"``; raise ValueError with the fix otherwise."""
        if isinstance(spec, HistoryPolicy):
            return spec
        text = spec.strip().lower()
        if text in ("full", "none"):
            return cls(text)  # type: ignore[arg-type]
        if text == "summary":
            return cls("summary", DEFAULT_SUMMARY_TAIL)
        for kind in ("last", "summary"):
            if text.startswith(f"{kind}:"):
                count = text.removeprefix(f"{kind}:")
                if count.isdigit() and int(count) > 0:
                    return cls(kind, int(count))
        raise ValueError(
            f"unknown history policy {spec!r}; use 'full', 'last:N', 'summary[:N]' or 'none'"
        )

    def __str__(self) -> str:
        return f"{self.kind}:{self.count}" if self.kind in ("last", "summary") else self.kind

    def carry(self, old: llm.ChatContext) -> llm.ChatContext:
        """The chat context a new agent starts with, taken from the old agent's."""
        if self.kind == "none":
            return llm.ChatContext.empty()
        messages = [
            item
            for item in old.items
            if item.type == "message" and item.role in ("user", "assistant")
        ]
        if self.kind in ("last", "summary"):
            messages = messages[-self.count :]
        return llm.ChatContext(list(messages))

    def left_behind(self, old: llm.ChatContext) -> list[llm.ChatMessage]:
        """The messages ``carry`` did not keep (what a summary has to cover)."""
        messages = [
            item
            for item in old.items
            if item.type == "message" and item.role in ("user", "assistant")
        ]
        if self.kind not in ("last", "summary"):
            return []
        return messages[: -self.count] if len(messages) > self.count else []


async def add_summary(
    agent: Agent,
    older: list[llm.ChatMessage],
    model: llm.LLM,
    on_error: Callable[[BaseException], None] | None = None,
) -> str | None:
    """Summarise ``older`` with ``model`` and put the summary at the top of the agent's context.

    Runs in the background after a handoff; on any failure it logs and changes nothing.
    """
    transcript = "\n".join(f"{m.role}: {m.text_content or ''}" for m in older)
    request = llm.ChatContext.empty()
    request.add_message(role="system", content=SUMMARY_INSTRUCTIONS)
    request.add_message(role="user", content=transcript)
    try:
        async with asyncio.timeout(SUMMARY_TIMEOUT):
            async with model.chat(chat_ctx=request) as stream:
                summary = (await stream.collect()).text.strip()
        if not summary:
            return None
        updated = agent.chat_ctx.copy()
        updated.items.insert(0, llm.ChatMessage(role="system", content=[SUMMARY_PREFIX + summary]))
        await agent.update_chat_ctx(updated)
        return summary
    except Exception as exc:  # a summary is a nicety: never let it hurt the call
        if on_error is not None:
            on_error(exc)
        logger.warning("history summary failed, keeping the last messages only: %s", exc)
        return None
