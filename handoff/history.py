"""History policies: what of the old agent's conversation the new agent receives.

LiveKit starts every new Agent with an empty chat context. A policy decides what
to carry over on a handoff:

- ``full``    every user and assistant message so far;
- ``last:N``  the last N *messages* (user and assistant messages; tool calls, handoff
  markers and instructions are not counted);
- ``none``    nothing (the context brief in the instructions still carries the facts);
- ``summary`` / ``summary:N``  the new agent starts at once with the last N messages
  (default 6; ``summary:0`` keeps none); a summary of the older ones, written by the new
  state's tier LLM in the background (with the state's ``summary_prompt`` if it has one),
  is added to its context when ready. It never delays the handoff, and a summary that
  fails or times out changes nothing.

The messages are the whole call's (LiveKit's ``session.history``), whatever the previous
state was given: ``full`` after a ``last:2`` state is still the whole conversation.

Any of them followed by ``+tools`` (``full+tools``, ``last:8+tools``) also carries the
function calls and their outputs made between the carried messages, even of tools the
new agent does not have (LiveKit's ``preserve_function_call_history``), and the
transition call that made the handoff, with its arguments. Without it the
old agent's tool calls are left behind: what they established lives in the Context,
which reaches the new agent through its brief.

A State with ``keep_agent = True`` keeps one agent for the whole call (LiveKit's own
multi-agent examples keep their agents in ``userdata``): on a revisit it remembers its
earlier talk, and the policy's messages from the state it came from are merged in.
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
POLICIES = "'full', 'last:N', 'summary[:N]' or 'none', optionally followed by '+tools'"
"""The policies as a user writes them (error messages and fixes)."""


_SYNTAX = f"use {POLICIES}"


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    kind: PolicyKind
    count: int = 0
    """How many messages ``last``/``summary`` keep (user and assistant messages)."""
    tools: bool = False
    """Also carry the function calls and outputs between the kept messages."""

    @classmethod
    def parse(cls, spec: str | HistoryPolicy) -> HistoryPolicy:
        """Parse ``"full"``, ``"none"``, ``"last:N"``, ``"summary[:N]"``, each with an
        optional ``"+tools"``; raise ValueError with the fix otherwise."""
        if isinstance(spec, HistoryPolicy):
            return spec
        if not isinstance(spec, str):
            raise ValueError(f"history policy {spec!r} is not text; {_SYNTAX} (e.g. 'last:4')")
        text = spec.strip().lower().replace(" ", "")
        tools = text.endswith("+tools")
        text = text.removesuffix("+tools")
        if text in ("full", "none"):
            return cls(text, 0, tools)  # type: ignore[arg-type]
        if text == "summary":
            return cls("summary", DEFAULT_SUMMARY_TAIL, tools)
        for kind, least in (("last", 1), ("summary", 0)):
            if text.startswith(f"{kind}:"):
                count = text.removeprefix(f"{kind}:")
                if count.isdigit() and int(count) >= least:
                    return cls(kind, int(count), tools)  # type: ignore[arg-type]
        raise ValueError(f"unknown history policy {spec!r}; {_SYNTAX}")

    def __str__(self) -> str:
        text = f"{self.kind}:{self.count}" if self.kind in ("last", "summary") else self.kind
        return text + ("+tools" if self.tools else "")

    def carry(
        self,
        old: llm.ChatContext,
        handoff: tuple[llm.FunctionCall, str] | None = None,
        scrub: Callable[[str], str] | None = None,
    ) -> llm.ChatContext:
        """The chat context a new agent starts with, taken from the conversation so far
        (the whole call's, not only what the old agent was given).

        ``handoff`` is the model's call that made this handoff and the output LiveKit
        records for it: with ``+tools`` it comes along (LiveKit adds it to the history
        only once the turn has ended), so the new agent sees what it was called with.
        ``scrub`` rewrites the carried calls' arguments and outputs (sensitive values)."""
        if self.kind == "none":
            return llm.ChatContext.empty()
        kept = self._items(old)
        if self.kind in ("last", "summary"):
            kept = _tail(kept, self.count)
        if self.tools and handoff is not None:
            fnc, output = handoff
            # (a realtime turn's call is in the history already: LiveKit adds a realtime
            # model's calls as they arrive, so only what is missing comes along)
            have = {(item.type, item.call_id) for item in kept
                    if item.type in ("function_call", "function_call_output")}
            kept += [item for item in (fnc, llm.FunctionCallOutput(
                call_id=fnc.call_id, name=fnc.name, output=output, is_error=False))
                if (item.type, item.call_id) not in have]
        if self.tools and scrub is not None:
            kept = [_scrubbed(item, scrub) for item in kept]
        return llm.ChatContext(kept)

    def left_behind(self, old: llm.ChatContext) -> list[llm.ChatMessage]:
        """The messages ``carry`` did not keep (what a summary has to cover)."""
        if self.kind not in ("last", "summary"):
            return []
        messages = [item for item in self._items(old) if item.type == "message"]
        return messages[: len(messages) - self.count] if len(messages) > self.count else []

    def _items(self, old: llm.ChatContext) -> list[llm.ChatItem]:
        """The user/assistant messages of ``old`` (and its tool calls with ``+tools``)."""
        return [
            item for item in old.items
            if (item.type == "message" and item.role in ("user", "assistant"))
            or (self.tools and item.type in ("function_call", "function_call_output"))
        ]


def _scrubbed(item: llm.ChatItem, scrub: Callable[[str], str]) -> llm.ChatItem:
    """A carried tool call or output with ``scrub`` applied to its text (a copy if changed)."""
    if item.type == "function_call":
        text = scrub(item.arguments)
        return item if text == item.arguments else item.model_copy(update={"arguments": text})
    if item.type == "function_call_output":
        text = scrub(item.output)
        return item if text == item.output else item.model_copy(update={"output": text})
    return item


def _tail(items: list[llm.ChatItem], messages: int) -> list[llm.ChatItem]:
    """The end of ``items`` that holds its last ``messages`` messages (a tool call and
    its output stay together with the message after them)."""
    if messages == 0:
        return []
    seen = 0
    for index in range(len(items) - 1, -1, -1):
        if items[index].type == "message":
            seen += 1
            if seen == messages:
                return _whole_calls(items[index:])
    return _whole_calls(items)


def _whole_calls(items: list[llm.ChatItem]) -> list[llm.ChatItem]:
    """``items`` without a function output whose call was cut off (providers reject one)."""
    calls = {item.call_id for item in items if item.type == "function_call"}
    return [item for item in items if item.type != "function_call_output" or item.call_id in calls]


def whole_call(current: llm.ChatContext | None, session: llm.ChatContext | None, *,
               last: int | None = None) -> llm.ChatContext:
    """The conversation so far, what a policy carries from: the session's history (every
    agent's turns, LiveKit's ``session.history``) merged by item id with what the current
    agent holds (it may hold more: the history a resumed call restored into it).

    ``last``: only the part holding the last ``last`` caller and agent messages is wanted
    (a ``last:N`` policy), so each side is cut to its own such part before they are merged
    (the last N messages of the two together are among each side's last N): a handoff then
    costs the same however long the call has been, not a copy of the whole call.
    """
    if last is not None:
        current, session = _recent(current, last), _recent(session, last)
    merged = current.copy() if current is not None else llm.ChatContext.empty()
    return merged.merge(session, exclude_instructions=True) if session is not None else merged


def _recent(ctx: llm.ChatContext | None, messages: int) -> llm.ChatContext | None:
    """The end of ``ctx`` from its ``messages``-th last caller or agent message on."""
    if ctx is None:
        return None
    items = ctx.items
    seen = 0
    for index in range(len(items) - 1, -1, -1):
        item = items[index]
        if item.type == "message" and item.role in ("user", "assistant"):
            seen += 1
            if seen == messages:
                return llm.ChatContext(items[index:])
    return ctx


def revisit(kept: llm.ChatContext, carried: llm.ChatContext) -> llm.ChatContext:
    """A kept agent's own earlier talk with what the policy carried from the last state
    merged in (by item id, in time order): the context of a ``keep_agent`` state's revisit."""
    return kept.copy().merge(carried, exclude_instructions=True)


async def add_summary(
    agent: Agent,
    older: list[llm.ChatMessage],
    model: llm.LLM,
    on_error: Callable[[BaseException], None] | None = None,
    prompt: str | None = None,
) -> str | None:
    """Summarise ``older`` with ``model`` and put the summary at the top of the agent's context.

    ``prompt`` replaces :data:`SUMMARY_INSTRUCTIONS` (a State's ``summary_prompt``).
    Runs in the background after a handoff; on any failure it logs and changes nothing.
    """
    transcript = "\n".join(f"{m.role}: {m.text_content or ''}" for m in older)
    request = llm.ChatContext.empty()
    request.add_message(role="system", content=prompt or SUMMARY_INSTRUCTIONS)
    request.add_message(role="user", content=transcript)
    try:
        async with asyncio.timeout(SUMMARY_TIMEOUT):
            async with model.chat(chat_ctx=request) as stream:
                summary = (await stream.collect()).text.strip()
        if not summary:
            return None
        updated = agent.chat_ctx.copy()
        updated.items.insert(0, llm.ChatMessage(role="system", content=[SUMMARY_PREFIX + summary]))
        # keep carried calls of tools this agent lacks (``+tools``): its context has them on purpose
        await agent.update_chat_ctx(updated, exclude_invalid_function_calls=False)
        return summary
    except Exception as exc:  # a summary is a nicety: never let it hurt the call
        if on_error is not None:
            on_error(exc)
        logger.warning("history summary failed, keeping the last messages only: %s", exc)
        return None
