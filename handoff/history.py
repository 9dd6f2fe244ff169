"""History policies: what of the old agent's conversation the new agent receives.

LiveKit starts every new Agent with an empty chat context. A policy decides what
to carry over on a handoff:

- ``full``    every user and assistant message so far;
- ``last:N``  the last N of those messages;
- ``none``    nothing (the context brief in the instructions still carries the facts).

The old agent's own tool calls are never carried: the new agent does not have
those tools (LiveKit would drop the calls anyway) and what they established lives
in the Context, which reaches the new agent through its brief.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from livekit.agents import llm

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
        if text.startswith("last:"):
            count = text.removeprefix("last:")
            if count.isdigit() and int(count) > 0:
                return cls("last", int(count))
        if text == "summary" or text.startswith("summary"):
            raise ValueError(
                f"history policy {spec!r} is not available yet; use 'full', 'last:N' or 'none'"
            )
        raise ValueError(f"unknown history policy {spec!r}; use 'full', 'last:N' or 'none'")

    def __str__(self) -> str:
        return f"last:{self.count}" if self.kind == "last" else self.kind

    def carry(self, old: llm.ChatContext) -> llm.ChatContext:
        """The chat context a new agent starts with, taken from the old agent's."""
        if self.kind == "none":
            return llm.ChatContext.empty()
        messages = [
            item
            for item in old.items
            if item.type == "message" and item.role in ("user", "assistant")
        ]
        if self.kind == "last":
            messages = messages[-self.count :]
        return llm.ChatContext(list(messages))
